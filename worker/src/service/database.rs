//! The database as a command of the CLI opens it: the embedded default
//! kept at the current schema, a schema that is behind refused with what
//! to run, and a command that only reads never creating a database.

use super::*;
use crate::config::Config;

/// What a command does with the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only reads: never creates a database or its folder.
    Read,
    /// Reads and writes.
    Write,
    /// Applies migrations itself (`userfeed migrate`).
    Migrate,
}

/// Opens the configured database for a command that does `access`.
///
/// On the embedded default (SQLite) the schema is migrated on open, since
/// nothing else on that host would; elsewhere a schema with pending
/// migrations is refused, naming `userfeed migrate`. A command that only
/// reads refuses an embedded database that does not exist yet, saying
/// where it looked, instead of creating an empty one there.
pub async fn open_database(
    cfg: &Config,
    access: Access,
) -> Result<DatabaseConnection, ServiceError> {
    if access == Access::Read
        && let Some(file) = crate::db::sqlite_file(&cfg.database.url)
        && !file.exists()
    {
        return Err(ServiceError::NotFound(format!(
            "there is no Userfeed database at {}: nothing was set up there yet. \
             Point USERFEED_DATA_DIR (or USERFEED_DATABASE_URL) at the data you mean, \
             or create a tenant first (`userfeed tenant add`)",
            file.display()
        )));
    }
    let db = crate::db::connect(&cfg.database).await.map_err(|e| {
        ServiceError::Unavailable(format!(
            "connecting to {}: {e}",
            crate::config::redact_url(&cfg.database.url)
        ))
    })?;
    if access != Access::Migrate {
        let pending = crate::db::pending_migrations(&db).await?;
        if !pending.is_empty() {
            return Err(ServiceError::Refused(format!(
                "the database schema is not up to date (pending: {}); run `userfeed migrate` first",
                pending.join(", ")
            )));
        }
    }
    Ok(db)
}

/// Applies the pending migrations (idempotent; concurrent runs take turns).
pub async fn migrate(db: &DatabaseConnection) -> Result<(), ServiceError> {
    Ok(crate::db::migrate(db).await?)
}
