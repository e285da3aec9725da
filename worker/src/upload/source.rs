//! What brought an upload in (`uploads.source`), and so which reader opens
//! its file and what may be done with it.

vocabulary! {
    /// What brought an upload in (`uploads.source`).
    pub enum UploadSource / UnknownSource {
        /// An S3 `ObjectCreated` notification (or a file sent to the admin
        /// API for a tenant whose drops go to S3).
        S3 = "s3",
        /// A file taken from the drop folder (or sent to the admin API for a
        /// tenant that delivers there).
        Folder = "folder",
        /// A local file applied by `userfeed import`.
        Local = "local",
        /// A Xero import, whose file Userfeed stored itself.
        Xero = "xero",
        /// The undoing of an earlier upload.
        Undo = "undo",
    }
}

impl UploadSource {
    /// Whether the upload's file is kept where it came from, so a failed
    /// upload can be queued again from it (`uploads retry`).
    pub const fn can_retry(self) -> bool {
        matches!(self, UploadSource::S3 | UploadSource::Folder)
    }

    /// Whether Userfeed stored the upload's file itself (`upload_bodies`).
    pub const fn is_stored(self) -> bool {
        matches!(self, UploadSource::Xero)
    }

    /// Where an upload's file is, as its admin would name it: an S3 URL, or
    /// a local path for the drop folder and `userfeed import`.
    pub fn location(self, bucket: &str, key: &str) -> String {
        match self {
            UploadSource::S3 => format!("s3://{bucket}/{key}"),
            // The file moves on as its upload ends (intake::folder).
            UploadSource::Folder => format!("{bucket}/{{processing,processed,failed}}/{key}"),
            _ => std::path::Path::new(bucket).join(key).display().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_reads_back_from_its_stored_name() {
        for s in UploadSource::ALL {
            assert_eq!(s.as_str().parse::<UploadSource>(), Ok(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        assert!("ftp".parse::<UploadSource>().is_err());
    }

    #[test]
    fn only_files_kept_where_they_came_from_can_be_retried() {
        let retryable: Vec<_> = UploadSource::ALL
            .into_iter()
            .filter(|s| s.can_retry())
            .collect();
        assert_eq!(retryable, [UploadSource::S3, UploadSource::Folder]);
    }
}
