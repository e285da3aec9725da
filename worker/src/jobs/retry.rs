//! `userfeed uploads retry ID`: a failed upload's object queued again.
//!
//! Re-driving the S3 notification cannot do this: intake records each object
//! version once, so the redelivery is absorbed as a duplicate. A retry is a
//! new upload of the same object version (same bucket, key, version ID and
//! ETag, so an object overwritten since fails as "changed" rather than
//! applying other bytes), with `retry_of` naming the failed one.
//!
//! Only the tenant's newest file may be retried: every file is a full list,
//! so applying an older one after a newer one applied would roll the tenant
//! back (people hired since deactivated, leavers reactivated).

use sea_orm::{DatabaseConnection, DbErr, EntityTrait, QuerySelect, TransactionTrait};

use crate::db::entity::upload;
use crate::jobs::state::{self, UploadState};

/// Why an upload cannot be retried.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// No such upload.
    #[error("no upload {0}")]
    NotFound(i64),
    /// Only failed uploads are retried.
    #[error("upload {id} is {state}, not failed; only a failed upload can be retried")]
    NotFailed {
        /// The upload.
        id: i64,
        /// Its state.
        state: UploadState,
    },
    /// A local import's file is not kept anywhere a worker can read it
    /// (S3 objects are, and so are drop-folder files, in `failed/`).
    #[error(
        "upload {id} came from a local file (source {origin}); run `userfeed import` with the file again"
    )]
    NotKept {
        /// The upload.
        id: i64,
        /// Its source.
        origin: crate::upload::UploadSource,
    },
    /// A newer upload of the tenant has applied or is about to.
    #[error(
        "upload {id} is not the tenant's newest file: upload {newer} is {state}; \
         retrying an older full list would roll the tenant back"
    )]
    NotNewest {
        /// The upload asked for.
        id: i64,
        /// The newer upload.
        newer: i64,
        /// The newer upload's state.
        state: String,
    },
    /// Database failure.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Queues upload `id` again; returns the new upload's id. The failed upload
/// row is locked while the checks run, so two retries of it cannot both
/// pass (the second sees the first's new upload as newer and queued).
pub async fn retry(db: &DatabaseConnection, id: i64) -> Result<i64, RetryError> {
    let txn = db.begin().await?;
    let up = upload::Entity::find_by_id(id)
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or(RetryError::NotFound(id))?;
    if up.state != UploadState::Failed {
        return Err(RetryError::NotFailed {
            id,
            state: up.state,
        });
    }
    if !up.source.can_retry() {
        return Err(RetryError::NotKept {
            id,
            origin: up.source,
        });
    }
    if let Some((newer, state)) = state::newer_blocking_retry(&txn, id).await? {
        return Err(RetryError::NotNewest {
            id,
            newer,
            state: state.to_string(),
        });
    }
    let new_id = state::requeue_failed(&txn, id)
        .await?
        .ok_or(RetryError::NotFound(id))?;
    txn.commit().await?;
    tracing::info!(upload_id = id, retry_id = new_id, "upload queued again");
    Ok(new_id)
}
