//! Uploads whose file Userfeed wrote itself from another system (a Xero
//! organisation's employees), kept in the database (`upload_bodies`) so any
//! worker of any pod can run or retry them.
//!
//! Such an upload is an **import**: it is applied additively. Its file has
//! the fixed columns of [`IMPORT_HEADERS`] (no status, no links), it is
//! matched on email whatever the tenant's match key, it never deactivates
//! anyone, and rows naming an existing user are dropped with a warning
//! before the merge ([`crate::rules::text::ALREADY_PRESENT`]), so an import
//! only ever creates users and never touches a field the feed manages.

use async_trait::async_trait;
use sea_orm::{DatabaseConnection, EntityTrait};

use super::{ObjectBody, ObjectReader, ObjectRef, SourceError};
use crate::db::entity::upload_body;
use crate::map::{Columns, Mapping};
use crate::upload::UploadSource;

/// Whether uploads of `source` are imports (applied additively, with
/// [`import_mapping`]).
pub fn is_import(source: UploadSource) -> bool {
    source.is_stored()
}

/// The header of an import's file, in order: first name, last name, email.
pub const IMPORT_HEADERS: [&str; 3] = ["first_name", "last_name", "email"];

/// The mapping of an import's file.
pub fn import_mapping() -> Mapping {
    Mapping {
        columns: Columns {
            first_name: Some(IMPORT_HEADERS[0].into()),
            last_name: Some(IMPORT_HEADERS[1].into()),
            email: Some(IMPORT_HEADERS[2].into()),
            ..Columns::default()
        },
        profile: Default::default(),
    }
}

/// Writes an import's file: the header, then one row per person.
pub fn import_csv<'a>(people: impl IntoIterator<Item = [&'a str; 3]>) -> Vec<u8> {
    let mut out = Vec::new();
    for row in std::iter::once(IMPORT_HEADERS).chain(people) {
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Not `csv_cell`: this file is read back by the parser, so a
            // name starting with `-` or `=` must stay as it is.
            out.extend_from_slice(crate::map::tools::csv_quoted(cell).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads uploads' files from `upload_bodies`, by bucket and key.
pub struct StoredReader {
    db: DatabaseConnection,
}

impl StoredReader {
    /// A reader over `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        StoredReader { db }
    }
}

#[async_trait]
impl ObjectReader for StoredReader {
    async fn open(&self, object: &ObjectRef) -> Result<ObjectBody, SourceError> {
        let row = upload_body::Entity::find_by_id((object.bucket.clone(), object.key.clone()))
            .one(&self.db)
            .await
            .map_err(|e| SourceError::Transient(e.to_string()))?
            .ok_or_else(|| SourceError::NotFound {
                key: object.key.clone(),
            })?;
        let size = row.body.len() as u64;
        Ok(ObjectBody {
            reader: Box::pin(std::io::Cursor::new(row.body)),
            size: Some(size),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_file_quotes_what_needs_quoting() {
        let csv = import_csv([
            ["Ann", "O'Neil, Jr", "ann@example.com"],
            ["Bo \"B\"", "Li", "bo@example.com"],
        ]);
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "first_name,last_name,email\r\nAnn,\"O'Neil, Jr\",ann@example.com\r\n\"Bo \"\"B\"\"\",Li,bo@example.com\r\n"
        );
    }
}
