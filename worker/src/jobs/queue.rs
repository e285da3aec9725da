//! The upload queue in PostgreSQL: claim, renew, hand back, fail.
//! The SQL and its reasoning are in [`crate::db::queries`].

use std::time::Duration;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, SqlErr, Statement, TransactionTrait,
};

use crate::apply::{Lease, Progress, write_counters};
use crate::db::queries;

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

/// Queue operations for one worker identity.
#[derive(Clone)]
pub struct Queue {
    db: DatabaseConnection,
    owner: String,
    lease: Duration,
}

impl Queue {
    /// A queue handle claiming as `owner` with leases of `lease`.
    pub fn new(db: DatabaseConnection, owner: impl Into<String>, lease: Duration) -> Self {
        Queue {
            db,
            owner: owner.into(),
            lease,
        }
    }

    fn lease_secs(&self) -> f64 {
        self.lease.as_secs_f64()
    }

    /// Claims the next runnable upload, if any (see [`queries::CLAIM`]).
    pub async fn claim(&self) -> Result<Option<Claimed>, DbErr> {
        let res = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                queries::CLAIM,
                [self.owner.clone().into(), self.lease_secs().into()],
            ))
            .await;
        let row = match res {
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
                seconds: self.lease_secs(),
            },
            tenant_id: row.try_get("", "tenant_id")?,
            attempts: row.try_get("", "attempts")?,
            previous_error: row.try_get("", "failure_reason")?,
        }))
    }

    /// Ends a just-claimed upload as superseded when a newer upload of the
    /// tenant is queued; returns the newer upload's id if so.
    pub async fn supersede_if_newer(
        &self,
        lease: &Lease,
        tenant_id: i64,
    ) -> Result<Option<i64>, DbErr> {
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                queries::SUPERSEDE_IF_NEWER,
                [lease.upload_id.into(), lease.token.into(), tenant_id.into()],
            ))
            .await?;
        row.map(|r| r.try_get::<i64>("", "newest")).transpose()
    }

    /// Extends the lease. `false` means it is lost.
    pub async fn renew(&self, lease: &Lease) -> Result<bool, DbErr> {
        let res = self
            .db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                queries::RENEW_LEASE,
                [
                    lease.upload_id.into(),
                    lease.token.into(),
                    self.lease_secs().into(),
                ],
            ))
            .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Gives the upload back to the queue, runnable after `delay`.
    /// `refund_attempt` for shutdowns, which are not the upload's fault.
    pub async fn hand_back(
        &self,
        lease: &Lease,
        delay: Duration,
        refund_attempt: bool,
        reason: Option<&str>,
    ) -> Result<bool, DbErr> {
        let txn = self.db.begin().await?;
        let res = txn
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                queries::HAND_BACK,
                [
                    lease.upload_id.into(),
                    lease.token.into(),
                    delay.as_secs_f64().into(),
                    i32::from(refund_attempt).into(),
                    reason.map(str::to_string).into(),
                ],
            ))
            .await?;
        if res.rows_affected() == 1 {
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                queries::DELETE_STAGED,
                [lease.upload_id.into()],
            ))
            .await?;
        }
        txn.commit().await?;
        Ok(res.rows_affected() == 1)
    }

    /// Ends the upload as failed with `reason`; drops its staging rows.
    pub async fn fail(
        &self,
        lease: &Lease,
        reason: &str,
        progress: &Progress,
    ) -> Result<bool, DbErr> {
        let txn = self.db.begin().await?;
        let res = txn
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                queries::FAIL,
                [lease.upload_id.into(), lease.token.into(), reason.into()],
            ))
            .await?;
        if res.rows_affected() == 1 {
            write_counters(&txn, lease.upload_id, progress).await?;
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                queries::DELETE_STAGED,
                [lease.upload_id.into()],
            ))
            .await?;
        }
        txn.commit().await?;
        Ok(res.rows_affected() == 1)
    }
}

/// What the queue gauges show, across all pods.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueStats {
    /// Uploads waiting to run.
    pub queued: i64,
    /// Uploads running.
    pub running: i64,
    /// Age of the oldest queued upload in seconds (0 when none).
    pub oldest_queued_age_s: f64,
    /// Uploads held for approval.
    pub held: i64,
    /// How long the oldest held upload has waited, in seconds (0 when none).
    pub oldest_held_age_s: f64,
}

/// Queue depth and held uploads (see [`queries::QUEUE_STATS`]).
pub async fn stats<C: ConnectionTrait>(db: &C) -> Result<QueueStats, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            queries::QUEUE_STATS,
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("queue stats".into()))?;
    Ok(QueueStats {
        queued: row.try_get("", "queued")?,
        running: row.try_get("", "running")?,
        oldest_queued_age_s: row.try_get("", "oldest_queued_age_s")?,
        held: row.try_get("", "held")?,
        oldest_held_age_s: row.try_get("", "oldest_held_age_s")?,
    })
}
