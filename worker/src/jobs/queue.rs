//! The upload queue for one worker identity: claim, renew, hand back, fail.
//! The state changes themselves are [`crate::jobs::state`]'s.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement, TransactionTrait};

use crate::apply::{Progress, write_counters};
use crate::db::queries;
use crate::jobs::lease::{self, Lease};
use crate::jobs::state::{self, Claimed};
pub use crate::upload::QueueStats;

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

    /// Claims the next runnable upload, if any (see [`state::claim`]).
    pub async fn claim(&self) -> Result<Option<Claimed>, DbErr> {
        state::claim(&self.db, &self.owner, self.lease_secs()).await
    }

    /// Ends a just-claimed upload as superseded when a newer upload of the
    /// tenant is queued; returns the newer upload's id if so.
    pub async fn supersede_if_newer(
        &self,
        lease: &Lease,
        tenant_id: i64,
    ) -> Result<Option<i64>, DbErr> {
        state::supersede_if_newer(&self.db, lease, tenant_id).await
    }

    /// Extends the lease. `false` means it is lost.
    pub async fn renew(&self, lease: &Lease) -> Result<bool, DbErr> {
        let lease = Lease {
            seconds: self.lease_secs(),
            ..*lease
        };
        lease::renew(&self.db, &lease).await
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
        let handed = state::hand_back(&txn, lease, delay, refund_attempt, reason).await?;
        if handed {
            let backend = txn.get_database_backend();
            txn.execute_raw(Statement::from_sql_and_values(
                backend,
                queries::of(backend).delete_staged,
                [lease.upload_id.into()],
            ))
            .await?;
        }
        txn.commit().await?;
        Ok(handed)
    }

    /// Ends the upload as failed with `reason`; drops its staging rows.
    pub async fn fail(
        &self,
        lease: &Lease,
        reason: &str,
        progress: &Progress,
    ) -> Result<bool, DbErr> {
        let txn = self.db.begin().await?;
        let failed = state::fail(&txn, lease, reason).await?;
        if failed {
            write_counters(&txn, lease.upload_id, progress).await?;
            let backend = txn.get_database_backend();
            txn.execute_raw(Statement::from_sql_and_values(
                backend,
                queries::of(backend).delete_staged,
                [lease.upload_id.into()],
            ))
            .await?;
        }
        txn.commit().await?;
        Ok(failed)
    }
}

/// Queue depth and held uploads (see [`queries::QUEUE_STATS`]).
pub async fn stats<C: ConnectionTrait>(db: &C) -> Result<QueueStats, DbErr> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_string(
            backend,
            queries::of(backend).queue_stats,
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
