//! [`ObjectReader`]s over local files: the object's `bucket` is a folder and
//! its `key` a relative path inside it. `userfeed import` and `preview` read
//! the admin's file with [`FolderReader`]; uploads from the drop folder are
//! read with [`DropFolderReader`], which follows a file through the folders
//! it moves between.

use std::path::{Component, Path};

use async_trait::async_trait;

use super::{ObjectBody, ObjectReader, ObjectRef, SourceError};

/// Opens `folder/key` from the local file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct FolderReader;

#[async_trait]
impl ObjectReader for FolderReader {
    async fn open(&self, object: &ObjectRef) -> Result<ObjectBody, SourceError> {
        let key = Path::new(&object.key);
        // A key may only name a file inside its folder, as a key under a
        // tenant's S3 prefix names an object inside that prefix.
        if !key
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(SourceError::Denied {
                key: object.key.clone(),
                message: "the path leaves its folder".into(),
            });
        }
        let path = Path::new(&object.bucket).join(key);
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => SourceError::NotFound {
                    key: object.key.clone(),
                },
                std::io::ErrorKind::PermissionDenied => SourceError::Denied {
                    key: object.key.clone(),
                    message: e.to_string(),
                },
                _ => SourceError::Transient(format!("{}: {e}", path.display())),
            })?;
        let size = file.metadata().await.ok().map(|m| m.len());
        Ok(ObjectBody {
            reader: Box::pin(tokio::io::BufReader::new(file)),
            size,
        })
    }
}

/// Opens a drop-folder upload: `bucket` is the tenant's folder and `key`
/// the taken file's name, which lives in `processing/` until its upload
/// ends and then in `processed/` or `failed/`. A retried upload's file is
/// moved from `failed/` back to `processing/` as it is opened.
#[derive(Debug, Clone, Copy, Default)]
pub struct DropFolderReader;

#[async_trait]
impl ObjectReader for DropFolderReader {
    async fn open(&self, object: &ObjectRef) -> Result<ObjectBody, SourceError> {
        use crate::intake::folder::{FAILED, PROCESSING, UPLOAD_DIRS};
        let folder = Path::new(&object.bucket);
        // A failed upload's file read again is a retry: it goes back to
        // processing/ (where the scanner follows it until its upload ends).
        // If the move fails, it is read where it is.
        let failed = folder.join(FAILED).join(&object.key);
        if tokio::fs::metadata(&failed).await.is_ok() {
            let _ = tokio::fs::create_dir_all(folder.join(PROCESSING)).await;
            let _ = tokio::fs::rename(&failed, folder.join(PROCESSING).join(&object.key)).await;
        }
        let mut last = None;
        // The file may be moved between two of these looks, hence the
        // second round.
        for _round in 0..2 {
            for dir in UPLOAD_DIRS {
                let candidate = ObjectRef {
                    bucket: folder.join(dir).display().to_string(),
                    ..object.clone()
                };
                match FolderReader.open(&candidate).await {
                    Err(e @ SourceError::NotFound { .. }) => last = Some(e),
                    other => return other,
                }
            }
        }
        Err(last.unwrap_or(SourceError::NotFound {
            key: object.key.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn object(folder: &Path, key: &str) -> ObjectRef {
        ObjectRef {
            source: crate::upload::UploadSource::Local,
            bucket: folder.display().to_string(),
            key: key.into(),
            version_id: None,
            etag: None,
        }
    }

    #[tokio::test]
    async fn reads_a_file_inside_its_folder_and_refuses_paths_that_leave_it() {
        let dir = std::env::temp_dir().join(format!("uf-folder-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("acme")).unwrap();
        std::fs::write(dir.join("acme/a.csv"), "email\nx@example.com\n").unwrap();

        let mut body = FolderReader
            .open(&object(&dir, "acme/a.csv"))
            .await
            .unwrap();
        let mut text = String::new();
        body.reader.read_to_string(&mut text).await.unwrap();
        assert_eq!(
            (text.as_str(), body.size),
            ("email\nx@example.com\n", Some(20))
        );

        for bad in ["../a.csv", "acme/../../etc/passwd", "/etc/passwd"] {
            let err = FolderReader.open(&object(&dir, bad)).await.err().unwrap();
            assert!(matches!(err, SourceError::Denied { .. }), "{bad}: {err}");
        }
        let err = FolderReader
            .open(&object(&dir, "acme/missing.csv"))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, SourceError::NotFound { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
