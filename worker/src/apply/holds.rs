//! Resolving held uploads: `userfeed uploads approve` and `reject`.

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect,
    Statement, TransactionTrait,
};

use crate::db::entity::upload;
use crate::db::queries;
use crate::jobs::state::{self, Resolution, UploadState};

/// Why a hold could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// No such upload.
    #[error("no upload {0}")]
    NotFound(i64),
    /// The upload is not held.
    #[error("upload {id} is {state}, not held")]
    NotHeld {
        /// The upload.
        id: i64,
        /// Its state.
        state: crate::upload::UploadState,
    },
    /// A newer upload of the tenant has run since: its full list is the
    /// truth now, and this one's deactivations are out of date.
    #[error(
        "a newer upload of the same tenant (#{newer}) has already run, so upload {id}'s deactivations \
         are out of date; reject it instead"
    )]
    NewerRan {
        /// The held upload.
        id: i64,
        /// The newer upload.
        newer: i64,
    },
    /// Database failure.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Locks the held upload row for the rest of the transaction.
async fn lock_held<C: ConnectionTrait>(txn: &C, id: i64) -> Result<upload::Model, HoldError> {
    let up = upload::Entity::find_by_id(id)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or(HoldError::NotFound(id))?;
    if up.state != UploadState::Held {
        return Err(HoldError::NotHeld {
            id,
            state: up.state,
        });
    }
    Ok(up)
}

/// Performs a held upload's deactivations; returns how many users changed.
/// Refused when a newer upload of the tenant has started since.
pub async fn approve(db: &DatabaseConnection, id: i64) -> Result<u64, HoldError> {
    let txn = db.begin().await?;
    let up = lock_held(&txn, id).await?;
    let newer = upload::Entity::find()
        .filter(upload::Column::TenantId.eq(up.tenant_id))
        .filter(upload::Column::Id.gt(id))
        .filter(upload::Column::StartedAt.is_not_null())
        .one(&txn)
        .await?;
    if let Some(n) = newer {
        return Err(HoldError::NewerRan { id, newer: n.id });
    }
    let backend = txn.get_database_backend();
    let q = queries::of(backend);
    let stmt = |sql: &str| Statement::from_sql_and_values(backend, sql, [id.into()]);
    txn.execute_raw(stmt(q.log_deactivations)).await?;
    let n = txn
        .execute_raw(stmt(q.apply_deactivations))
        .await?
        .rows_affected();
    txn.execute_raw(stmt(q.delete_pending_deactivations))
        .await?;
    state::resolve_hold(&txn, id, Resolution::Approved, n).await?;
    txn.commit().await?;
    Ok(n)
}

/// Drops a held upload's deactivations; returns how many were dropped.
pub async fn reject(db: &DatabaseConnection, id: i64) -> Result<u64, HoldError> {
    let txn = db.begin().await?;
    let up = lock_held(&txn, id).await?;
    let backend = txn.get_database_backend();
    let q = queries::of(backend);
    let stmt = |sql: &str| Statement::from_sql_and_values(backend, sql, [id.into()]);
    txn.execute_raw(stmt(q.delete_pending_deactivations))
        .await?;
    state::resolve_hold(&txn, id, Resolution::Rejected, 0).await?;
    txn.commit().await?;
    Ok(u64::try_from(up.held_deactivations).unwrap_or(0))
}
