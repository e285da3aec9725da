//! Uploads of local files: `userfeed import` (applied for real, in the
//! calling process) and `userfeed preview` (inside a rolled-back
//! transaction). They skip the queue: the row is created already claimed.

use std::path::Path;

use sea_orm::{ConnectionTrait, DbErr, EntityTrait};

use crate::db::entity::upload;
use crate::jobs::state::{self, UploadState};
use crate::upload::UploadSource;

/// Why a local upload could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum LocalUploadError {
    /// The path has no file name.
    #[error("{0} is not a file")]
    NotAFile(String),
    /// Another upload of the tenant is running (only for `running`).
    #[error("an upload of this tenant is running now; try again when it has finished")]
    TenantBusy,
    /// Database failure.
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

/// Splits `file` into the folder and name a [`crate::source::local::FolderReader`] opens.
pub fn folder_and_name(file: &Path) -> Result<(String, String), LocalUploadError> {
    let name = file
        .file_name()
        .ok_or_else(|| LocalUploadError::NotAFile(file.display().to_string()))?;
    let folder = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.display().to_string(),
        _ => ".".to_string(),
    };
    Ok((folder, name.to_string_lossy().into_owned()))
}

/// Creates the upload row of `file` for `tenant_id`, already claimed, in
/// `state` (`running` or `preview`), with a lease of `lease_secs`.
pub async fn record<C: ConnectionTrait>(
    c: &C,
    tenant_id: i64,
    file: &Path,
    state: UploadState,
    lease_secs: f64,
) -> Result<upload::Model, LocalUploadError> {
    let (folder, name) = folder_and_name(file)?;
    let id = state::record_local(
        c,
        tenant_id,
        UploadSource::Local,
        &folder,
        &name,
        state,
        lease_secs,
    )
    .await
    .map_err(|e| {
        if e.to_string().contains("uploads_one_running_per_tenant") {
            LocalUploadError::TenantBusy
        } else {
            LocalUploadError::Db(e)
        }
    })?;
    Ok(upload::Entity::find_by_id(id)
        .one(c)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("upload {id}")))?)
}
