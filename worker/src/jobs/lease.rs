//! Leases and the fence: an attempt's right to write, and the check that
//! starts every transaction of the attempt. Also the backoff between
//! attempts of a transient failure.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbErr, Statement};

use crate::db::queries;

/// The right to write for one attempt of one upload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lease {
    /// The upload.
    pub upload_id: i64,
    /// The fencing token of this attempt.
    pub token: i64,
    /// Lease length, renewed by each fenced write.
    pub seconds: f64,
}

/// Why a fence refused.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// Another worker owns the upload now (or it ended).
    #[error("the lease was lost to another worker")]
    LeaseLost,
    /// Database failure.
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

/// Extends `lease` by its length. `false` means it is lost: the upload is
/// no longer running under this token.
pub async fn renew<C: ConnectionTrait>(c: &C, lease: &Lease) -> Result<bool, DbErr> {
    let backend = c.get_database_backend();
    let res = c
        .execute_raw(Statement::from_sql_and_values(
            backend,
            queries::of(backend).renew_lease,
            [
                lease.upload_id.into(),
                lease.token.into(),
                lease.seconds.into(),
            ],
        ))
        .await?;
    Ok(res.rows_affected() == 1)
}

/// Checks, inside the caller's transaction, that `lease` still holds, and
/// extends it. The row lock taken here is held until commit, so no claim can
/// interleave with the rest of the transaction.
pub async fn fence<C: ConnectionTrait>(c: &C, lease: &Lease) -> Result<(), FenceError> {
    if renew(c, lease).await? {
        Ok(())
    } else {
        Err(FenceError::LeaseLost)
    }
}

/// Backoff before retry number `attempt` (1-based) of a transient failure:
/// 5 s, 10 s, 20 s, ... capped at 5 minutes.
pub fn retry_delay(attempt: i32) -> Duration {
    let exp = attempt.clamp(1, 7) as u32 - 1;
    Duration::from_secs((5u64 << exp).min(300))
}
