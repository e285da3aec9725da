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

    /// Where an upload's file is, as the tenant's admin names it: an S3
    /// URL, or `drop/<tenant>/<file>` for the drop folder. Never a path
    /// of the host: an imported or stored file shows its name only.
    pub fn location(self, bucket: &str, key: &str) -> String {
        match self {
            UploadSource::S3 => format!("s3://{bucket}/{key}"),
            // `bucket` is the tenant's folder (on the host, or as
            // [`Self::shown_bucket`] gives it): its last part names it.
            UploadSource::Folder => drop_location(
                &std::path::Path::new(bucket)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                key,
            ),
            _ => std::path::Path::new(key)
                .file_name()
                .map_or_else(|| key.to_string(), |n| n.to_string_lossy().into_owned()),
        }
    }
}

impl UploadSource {
    /// The `bucket` of an upload as its tenant may see it: the S3 bucket,
    /// `drop/<tenant>` for the drop folder, and nothing for the others,
    /// whose `bucket` is a folder of the host.
    pub fn shown_bucket(self, bucket: &str, tenant: &str) -> String {
        match self {
            UploadSource::S3 => bucket.to_string(),
            UploadSource::Folder => format!("drop/{tenant}"),
            _ => String::new(),
        }
    }
}

/// A file in a tenant's drop folder as the tenant names it:
/// `drop/<tenant>/<file>`.
pub fn drop_location(tenant: &str, file: &str) -> String {
    format!("drop/{tenant}/{file}")
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
    fn locations_never_show_a_host_path() {
        assert_eq!(
            UploadSource::Folder.location("/var/lib/userfeed/drop/acme", "staff.csv"),
            "drop/acme/staff.csv"
        );
        assert_eq!(
            UploadSource::S3.location("hr-drops", "acme/staff.csv"),
            "s3://hr-drops/acme/staff.csv"
        );
        assert_eq!(
            UploadSource::Local.location("/home/ops/exports", "staff.csv"),
            "staff.csv"
        );
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
