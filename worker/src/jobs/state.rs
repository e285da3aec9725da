//! Upload states, and every change of an upload's state: the one module
//! that writes `uploads.state`.
//!
//! ```text
//!            record ──▶ queued ──claim──▶ running ──succeed──▶ succeeded
//!   (intake, retry)       ▲                 │  ├──hold──▶ held ──resolve──▶ succeeded
//!                         └──hand back──────┤  ├──fail──▶ failed ──retry──▶ (a new queued upload)
//!                                           │  └──supersede──▶ superseded
//!   record_local ──▶ running (import) / preview (inside a rolled-back transaction)
//! ```
//!
//! Each change is one named statement (`db/sql/postgres/queue.sql`,
//! `intake.sql`) whose `WHERE` states the change's precondition (the state
//! it leaves and, for an attempt's writes, the lease token), so a change
//! that no longer applies matches no row and the caller learns it lost the
//! race. Every function takes the caller's connection or transaction: an
//! upload's end commits with the writes it concludes.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbErr, SqlErr, Statement, Value};

use crate::db::queries::{self, Queries};
use crate::jobs::lease::Lease;
use crate::upload::{ObjectCreated, UploadSource};
pub use crate::upload::{Resolution, UnknownState, UploadState};

/// An upload this worker now holds.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The lease (and fencing token) of this attempt.
    pub lease: Lease,
    /// Owner tenant.
    pub tenant_id: i64,
    /// Attempt number, 1 for the first.
    pub attempts: i32,
    /// Why the previous attempt did not finish, if it said.
    pub previous_error: Option<String>,
}

/// The statement named by `pick` in `c`'s backend, with `values`.
fn stmt<C: ConnectionTrait>(
    c: &C,
    pick: fn(&Queries) -> &'static str,
    values: impl IntoIterator<Item = Value>,
) -> Statement {
    let backend = c.get_database_backend();
    Statement::from_sql_and_values(backend, pick(queries::of(backend)), values)
}

async fn changed<C: ConnectionTrait>(
    c: &C,
    pick: fn(&Queries) -> &'static str,
    values: impl IntoIterator<Item = Value>,
) -> Result<bool, DbErr> {
    Ok(c.execute_raw(stmt(c, pick, values)).await?.rows_affected() == 1)
}

/// After an upload's end (`done`): its notification, when the end needs a
/// person ([`crate::notify`]), in the same transaction.
async fn notify_end<C: ConnectionTrait>(c: &C, upload_id: i64, done: bool) -> Result<bool, DbErr> {
    if done {
        c.execute_raw(stmt(c, |q| q.enqueue_notification, [upload_id.into()]))
            .await?;
    }
    Ok(done)
}

/// queued (or running under an expired lease) → running: claims the next
/// runnable upload for `owner` with a lease of `lease_secs` (see
/// [`queries::CLAIM`]).
pub async fn claim<C: ConnectionTrait>(
    c: &C,
    owner: &str,
    lease_secs: f64,
) -> Result<Option<Claimed>, DbErr> {
    let row = match c
        .query_one_raw(stmt(c, |q| q.claim, [owner.into(), lease_secs.into()]))
        .await
    {
        Ok(row) => row,
        // The one-running-per-tenant index caught a race the claim query
        // already avoids; nothing was claimed, try again next poll.
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let Some(row) = row else { return Ok(None) };
    Ok(Some(Claimed {
        lease: Lease {
            upload_id: row.try_get("", "id")?,
            token: row.try_get("", "lease_token")?,
            seconds: lease_secs,
        },
        tenant_id: row.try_get("", "tenant_id")?,
        attempts: row.try_get("", "attempts")?,
        previous_error: row.try_get("", "failure_reason")?,
    }))
}

/// running → superseded, when a newer upload of the tenant is queued;
/// returns the newest one's id if so.
pub async fn supersede_if_newer<C: ConnectionTrait>(
    c: &C,
    lease: &Lease,
    tenant_id: i64,
) -> Result<Option<i64>, DbErr> {
    let row = c
        .query_one_raw(stmt(
            c,
            |q| q.supersede_if_newer,
            [lease.upload_id.into(), lease.token.into(), tenant_id.into()],
        ))
        .await?;
    let newest = row.map(|r| r.try_get::<i64>("", "newest")).transpose()?;
    notify_end(c, lease.upload_id, newest.is_some()).await?;
    Ok(newest)
}

/// running → queued, runnable after `delay`; `refund_attempt` for
/// shutdowns, which are not the upload's fault. `false`: the lease was lost.
pub async fn hand_back<C: ConnectionTrait>(
    c: &C,
    lease: &Lease,
    delay: Duration,
    refund_attempt: bool,
    reason: Option<&str>,
) -> Result<bool, DbErr> {
    changed(
        c,
        |q| q.hand_back,
        [
            lease.upload_id.into(),
            lease.token.into(),
            delay.as_secs_f64().into(),
            i32::from(refund_attempt).into(),
            reason.map(str::to_string).into(),
        ],
    )
    .await
}

/// running → failed, with the reason the customer's admin reads.
/// `false`: the lease was lost.
pub async fn fail<C: ConnectionTrait>(c: &C, lease: &Lease, reason: &str) -> Result<bool, DbErr> {
    let done = changed(
        c,
        |q| q.fail,
        [lease.upload_id.into(), lease.token.into(), reason.into()],
    )
    .await?;
    notify_end(c, lease.upload_id, done).await
}

/// running (or preview) → succeeded, in the transaction that performed the
/// deactivations. `false`: the lease was lost.
pub async fn succeed<C: ConnectionTrait>(c: &C, lease: &Lease) -> Result<bool, DbErr> {
    let done = changed(
        c,
        |q| q.succeed,
        [lease.upload_id.into(), lease.token.into()],
    )
    .await?;
    notify_end(c, lease.upload_id, done).await
}

/// running (or preview) → held, with `deactivations` waiting for approval
/// and the reason. `false`: the lease was lost.
pub async fn hold<C: ConnectionTrait>(
    c: &C,
    lease: &Lease,
    deactivations: u64,
    reason: &str,
) -> Result<bool, DbErr> {
    let done = changed(
        c,
        |q| q.hold,
        [
            lease.upload_id.into(),
            lease.token.into(),
            i64::try_from(deactivations).unwrap_or(i64::MAX).into(),
            reason.into(),
        ],
    )
    .await?;
    notify_end(c, lease.upload_id, done).await
}

/// held → succeeded, remembering the resolution and how many users were
/// deactivated. `false`: the upload was not held.
pub async fn resolve_hold<C: ConnectionTrait>(
    c: &C,
    upload_id: i64,
    resolution: Resolution,
    deactivated: u64,
) -> Result<bool, DbErr> {
    changed(
        c,
        |q| q.resolve_hold,
        [
            upload_id.into(),
            resolution.as_str().into(),
            i64::try_from(deactivated).unwrap_or(i64::MAX).into(),
        ],
    )
    .await
}

/// → queued: records an upload for an object version of `source`; `None`
/// when that version was recorded before (notifications repeat).
pub async fn record<C: ConnectionTrait>(
    c: &C,
    tenant_id: i64,
    source: UploadSource,
    obj: &ObjectCreated,
) -> Result<Option<i64>, DbErr> {
    let row = c
        .query_one_raw(stmt(
            c,
            |q| q.record_upload,
            [
                tenant_id.into(),
                source.as_str().into(),
                obj.bucket.clone().into(),
                obj.key.clone().into(),
                obj.identity().into(),
                obj.version_id.clone().into(),
                obj.etag.clone().into(),
                obj.size.into(),
                obj.event_time.into(),
            ],
        ))
        .await?;
    row.map(|r| r.try_get::<i64>("", "id")).transpose()
}

/// → running (`userfeed import`, `userfeed xero import`) or preview: an
/// upload of `source` run by the calling process (a local file, or a Xero
/// import's stored file), created already claimed with lease token 1.
/// Returns its id.
pub async fn record_local<C: ConnectionTrait>(
    c: &C,
    tenant_id: i64,
    source: UploadSource,
    folder: &str,
    name: &str,
    state: UploadState,
    lease_secs: f64,
) -> Result<i64, DbErr> {
    debug_assert!(matches!(state, UploadState::Running | UploadState::Preview));
    let row = c
        .query_one_raw(stmt(
            c,
            |q| q.insert_local_upload,
            [
                tenant_id.into(),
                folder.into(),
                name.into(),
                state.as_str().into(),
                lease_secs.into(),
                source.as_str().into(),
            ],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the new upload row".into()))?;
    row.try_get("", "id")
}

/// failed → a new queued upload of the same object, newest of its tenant;
/// `None` when `upload_id` is not failed. The caller has checked that no
/// newer upload blocks it ([`newer_blocking_retry`]).
pub async fn requeue_failed<C: ConnectionTrait>(
    c: &C,
    upload_id: i64,
) -> Result<Option<i64>, DbErr> {
    let row = c
        .query_one_raw(stmt(c, |q| q.insert_retry, [upload_id.into()]))
        .await?;
    row.map(|r| r.try_get::<i64>("", "id")).transpose()
}

/// → succeeded: the upload that undoes `undone` (source `undo`), born
/// finished in the caller's transaction, which writes what it did. Returns
/// its id.
pub async fn record_undo<C: ConnectionTrait>(c: &C, undone: i64) -> Result<i64, DbErr> {
    let row = c
        .query_one_raw(stmt(c, |q| q.insert_undo, [undone.into()]))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("upload {undone}")))?;
    row.try_get("", "id")
}

/// The newest upload of the tenant after `upload_id` that has applied or
/// will run, with its state: retrying `upload_id` is refused while one exists.
pub async fn newer_blocking_retry<C: ConnectionTrait>(
    c: &C,
    upload_id: i64,
) -> Result<Option<(i64, UploadState)>, DbErr> {
    let Some(row) = c
        .query_one_raw(stmt(c, |q| q.newer_blocking_retry, [upload_id.into()]))
        .await?
    else {
        return Ok(None);
    };
    let state: String = row.try_get("", "state")?;
    let state = state
        .parse()
        .map_err(|e: UnknownState| DbErr::Type(e.to_string()))?;
    Ok(Some((row.try_get("", "id")?, state)))
}
