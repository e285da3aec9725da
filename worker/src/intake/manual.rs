//! Manual uploads (`POST /api/v1/tenants/{slug}/files`): a file sent to the
//! admin API is delivered exactly where the tenant's own drops go, so it
//! is queued, routed, identified and applied like any other drop.
//!
//! - A tenant with a bucket, on a daemon reading S3 notifications: the file
//!   is put under the tenant's prefix; its notification records the upload.
//! - Otherwise, with the drop folder on: the file is written into the
//!   tenant's drop folder under a dot-name (never taken while written) and
//!   renamed into place, which the folder watcher takes at once.
//!
//! The body arrives as a file the API spooled to disk while it streamed
//! (see `api::files`), so no upload is ever held in memory whole, and
//! `limits.max_object_bytes` was enforced as it arrived.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::folder::{DropFolder, is_ignored_name};
use crate::tenants::Tenant;

/// Where manual uploads can go on this daemon.
#[derive(Clone, Default)]
pub struct ManualUploads {
    /// S3, when the daemon reads S3 notifications (`intake.queue_url`).
    pub s3: Option<aws_sdk_s3::Client>,
    /// The drop folder, when it is watched.
    pub drop: Option<Arc<DropFolder>>,
}

/// Where a manual upload went.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Delivered {
    /// `s3://bucket/key` or the drop-folder path.
    pub location: String,
    /// The file's name as delivered (a timestamp, then the name given).
    pub name: String,
    /// Its size.
    pub bytes: u64,
}

/// Why a manual upload was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum ManualError {
    /// The name given cannot be a file name.
    #[error(
        "file name {0:?} is not allowed: use letters, digits, '.', '-' and '_', not starting with '.'"
    )]
    BadName(String),
    /// Nothing on this daemon delivers files for the tenant.
    #[error(
        "this daemon has no intake for tenant {0}: it needs a bucket and intake.queue_url, or the drop folder"
    )]
    NoIntake(String),
    /// S3 or the file system refused.
    #[error("the file could not be delivered: {0}")]
    Delivery(String),
}

/// The delivered name: a UTC timestamp (so repeated uploads of one name
/// are distinct files, in time order), then the given name, checked to be
/// a plain file name the drop folder does not ignore.
pub fn delivered_name(given: Option<&str>) -> Result<String, ManualError> {
    let given = given.unwrap_or("upload.csv");
    let ok = !given.is_empty()
        && given.len() <= 128
        && !given.starts_with('.')
        && given
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && !is_ignored_name(given);
    if !ok {
        return Err(ManualError::BadName(given.to_string()));
    }
    Ok(format!(
        "api-{}-{given}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
    ))
}

impl ManualUploads {
    /// Whether this daemon can deliver a file for `tenant`: to its bucket
    /// (with S3), or into the drop folder.
    pub fn can_deliver(&self, tenant: &Tenant) -> bool {
        (self.s3.is_some() && !tenant.bucket.is_empty()) || self.drop.is_some()
    }

    /// Delivers `file` (`bytes` long) for `tenant` under `name`.
    pub async fn deliver(
        &self,
        tenant: &Tenant,
        name: &str,
        file: &Path,
        bytes: u64,
    ) -> Result<Delivered, ManualError> {
        let failed = |e: &dyn std::fmt::Display| ManualError::Delivery(e.to_string());
        if let (Some(s3), false) = (&self.s3, tenant.bucket.is_empty()) {
            let key = format!("{}{name}", tenant.key_prefix);
            let body = aws_sdk_s3::primitives::ByteStream::from_path(file)
                .await
                .map_err(|e| failed(&e))?;
            s3.put_object()
                .bucket(&tenant.bucket)
                .key(&key)
                .content_type("text/csv")
                .body(body)
                .send()
                .await
                .map_err(|e| failed(&aws_sdk_s3::error::DisplayErrorContext(e)))?;
            return Ok(Delivered {
                location: format!("s3://{}/{key}", tenant.bucket),
                name: name.to_string(),
                bytes,
            });
        }
        if let Some(drop) = &self.drop {
            let folder = drop.tenant_folder(&tenant.slug);
            tokio::fs::create_dir_all(&folder)
                .await
                .map_err(|e| failed(&e))?;
            let hidden: PathBuf = folder.join(format!(".{name}.part"));
            let target = folder.join(name);
            // A copy, not a rename: the spool may be on another file system.
            tokio::fs::copy(file, &hidden)
                .await
                .map_err(|e| failed(&e))?;
            tokio::fs::rename(&hidden, &target)
                .await
                .map_err(|e| failed(&e))?;
            return Ok(Delivered {
                location: crate::upload::drop_location(&tenant.slug, name),
                name: name.to_string(),
                bytes,
            });
        }
        Err(ManualError::NoIntake(tenant.slug.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivered_name_is_stamped_and_only_plain_names_pass() {
        let n = delivered_name(Some("staff.csv")).unwrap();
        assert!(n.starts_with("api-") && n.ends_with("-staff.csv"), "{n}");
        assert!(delivered_name(None).unwrap().ends_with("-upload.csv"));
        for bad in [
            "../x.csv",
            ".hidden",
            "a/b.csv",
            "x.csv.part",
            "",
            "sp ace.csv",
        ] {
            assert!(
                matches!(delivered_name(Some(bad)), Err(ManualError::BadName(_))),
                "{bad:?} accepted"
            );
        }
    }
}
