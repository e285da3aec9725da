//! The store seam: what applying an upload asks of a database
//! ([`ApplyStore`]), the values that cross it, and the choice of store per
//! backend.

use std::sync::Arc;

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use crate::db::queries;
use crate::jobs::lease::{FenceError, Lease};
use crate::map::{FileHeaders, MatchKey, RowError, StagedRow};

use super::portable;
use super::postgres;

/// The store for `db`: the set-based PostgreSQL one ([`postgres::PgStore`])
/// on PostgreSQL, the portable one on any other backend.
pub fn store_for(db: &sea_orm::DatabaseConnection) -> Arc<dyn ApplyStore> {
    match db.get_database_backend() {
        DbBackend::Postgres => Arc::new(postgres::PgStore::new(db.clone())),
        _ => Arc::new(portable::PortableStore::new(db.clone())),
    }
}

/// Row counts of an upload, as shown in its history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Progress {
    /// Data rows read from the file.
    pub rows_read: u64,
    /// Users created.
    pub created: u64,
    /// Users whose details or status changed.
    pub updated: u64,
    /// Rows that matched a user with nothing to change.
    pub unchanged: u64,
    /// Users deactivated for being absent from the file.
    pub deactivated: u64,
    /// Rows rejected (see the upload's errors).
    pub rejected: u64,
    /// Row problems found but not kept (over `limits.max_row_problems`).
    pub problems_dropped: u64,
}

/// What a tenant contributes to applying a file.
#[derive(Debug, Clone, Copy)]
pub struct TenantRules {
    /// Tenant id.
    pub tenant_id: i64,
    /// Identity field.
    pub match_key: MatchKey,
    /// Hold when deactivating more than this percentage of active feed-managed users...
    pub hold_over_percent: i32,
    /// ...and more than this many users.
    pub hold_over_count: i32,
    /// Row problems kept for the upload (`limits.max_row_problems`).
    pub keep_row_problems: u64,
    /// The tenant's feed epoch when the upload started, folded into the
    /// digests it writes. The link phase compares it with the current one:
    /// when they differ, something outside the file changed during the
    /// upload (an email, a group...), and every row is linked.
    pub epoch: i64,
}

/// What staging wrote, for [`ApplyStore::staged`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Staged {
    /// Rows staged.
    pub rows: u64,
    /// Rows the parser hinted as possible repeats of an earlier key
    /// (`StagedRow::repeat_hint`); with none, no key repeats.
    pub repeat_hints: u64,
    /// The file has no status column: users it leaves out are deactivated.
    pub deactivate_absent: bool,
    /// An additive upload (a Xero import): rows naming an existing user
    /// are dropped with a warning before the merge, so it only creates.
    pub only_new: bool,
}

/// Which staged rows the merge and link phases handle, as
/// [`ApplyStore::staged`] found them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plan {
    /// Only the lines in `upload_pending`: every other staged row matched
    /// its user's digest and is unchanged.
    pub only_pending: bool,
    /// Rows to handle (a store may choose its method by this count).
    pub rows: u64,
    /// Rows found unchanged by their digest, counted without being handled.
    pub unchanged: u64,
}

impl Plan {
    /// Every staged row, none skipped.
    pub fn all(rows: u64) -> Plan {
        Plan {
            only_pending: false,
            rows,
            unchanged: 0,
        }
    }

    /// No row to merge or link: every staged row matched its digest (or
    /// nothing was staged).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }
}

/// A batch of parsed rows as a store writes it (see [`ApplyStore::prepare`]).
#[derive(Debug)]
pub enum Prepared {
    /// The rows as parsed: valid-key rows (with their warnings) and rows
    /// rejected outright.
    Rows {
        /// Rows with a usable key.
        staged: Vec<StagedRow>,
        /// Rows rejected outright.
        rejected: Vec<RowError>,
    },
    /// PostgreSQL `COPY` text: the staged rows, and the row problems
    /// (rejections, then warnings).
    Copy {
        /// Rows for `upload_rows`.
        rows: Vec<u8>,
        /// Rows for `upload_row_errors`.
        problems: Vec<u8>,
    },
}

impl Prepared {
    /// Moves `next`'s text into this batch when both are `COPY` text and
    /// this one holds less than `max_bytes`, so one staging transaction
    /// writes several parse batches; returns whether it did (`next` is
    /// left untouched when not).
    pub(super) fn absorb(&mut self, next: &mut Prepared, max_bytes: usize) -> bool {
        match (self, next) {
            (
                Prepared::Copy { rows, problems },
                Prepared::Copy {
                    rows: more_rows,
                    problems: more_problems,
                },
            ) if rows.len() + problems.len() < max_bytes => {
                // Exactly: a doubling buffer would hold up to twice the cap.
                rows.reserve_exact(more_rows.len());
                rows.append(more_rows);
                problems.reserve_exact(more_problems.len());
                problems.append(more_problems);
                true
            }
            _ => false,
        }
    }
}

/// How an upload that ran to the end finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Everything applied, deactivations included.
    Succeeded,
    /// Creations and updates applied; deactivations wait for approval.
    Held {
        /// Deactivations waiting.
        deactivations: u64,
        /// Why, for the history.
        reason: String,
    },
}

/// Whether an upload's deactivations must wait for approval, and why
/// (the rule is [`crate::rules::decide::hold_reason`], with the tenant's
/// limits).
pub fn hold_reason(
    rows_read: u64,
    pending: u64,
    active: u64,
    rules: &TenantRules,
) -> Option<String> {
    crate::rules::decide::hold_reason(
        rows_read,
        pending,
        active,
        rules.hold_over_percent,
        rules.hold_over_count,
    )
}

/// A storage failure while applying.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The fence refused the write: another worker owns the upload now.
    #[error("the lease was lost to another worker")]
    LeaseLost,
    /// Database failure.
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

impl From<FenceError> for ApplyError {
    fn from(e: FenceError) -> Self {
        match e {
            FenceError::LeaseLost => ApplyError::LeaseLost,
            FenceError::Db(e) => ApplyError::Db(e),
        }
    }
}

/// The storage side of applying an upload. Implementations must start every
/// transaction with [`fence`].
#[async_trait]
pub trait ApplyStore: Send + Sync {
    /// Starts an attempt: drops what an earlier attempt staged or reported.
    async fn begin(&self, lease: &Lease) -> Result<(), ApplyError>;

    /// Turns a batch of parsed rows (valid-key rows and rows rejected
    /// outright) into what [`stage`](Self::stage) writes. It runs in the
    /// parser's task, ahead of the database, so the CPU work done here
    /// overlaps the writes of earlier batches. The default keeps the rows.
    fn prepare(&self, upload_id: i64, staged: Vec<StagedRow>, rejected: Vec<RowError>) -> Prepared {
        let _ = upload_id;
        Prepared::Rows { staged, rejected }
    }

    /// Stages a batch made by [`prepare`](Self::prepare) and records its
    /// row problems.
    async fn stage(
        &self,
        lease: &Lease,
        batch: &Prepared,
        progress: &Progress,
    ) -> Result<(), ApplyError>;

    /// Called once after the last row is staged, before the first merge:
    /// marks repeated keys, finds the rows unchanged since the last upload
    /// by their digest (the merge and link phases then skip them), and the
    /// feed-managed users absent from the file (when `staged` says to
    /// deactivate them; the finish lines them up).
    async fn staged(
        &self,
        lease: &Lease,
        rules: &TenantRules,
        headers: &FileHeaders,
        staged: &Staged,
    ) -> Result<Plan, ApplyError>;

    /// The tenant's current feed epoch (migration 0011).
    async fn epoch(&self, tenant_id: i64) -> Result<i64, ApplyError>;

    /// Merges up to `limit` of the `plan`'s rows after line `after` into
    /// users. Returns the last line merged, or `None` when nothing was left.
    /// `headers` name the columns of rows rejected here.
    #[allow(clippy::too_many_arguments)]
    async fn merge(
        &self,
        lease: &Lease,
        rules: &TenantRules,
        headers: &FileHeaders,
        has_status: bool,
        (after, limit): (i64, usize),
        plan: &Plan,
        progress: &mut Progress,
    ) -> Result<Option<i64>, ApplyError>;

    /// Applies managers, group memberships and roles for up to `limit` staged,
    /// accepted rows after line `after`, once every row has been merged (a
    /// manager may appear later in the file than their report). Returns the
    /// last line handled, or `None` when nothing was left. Only the
    /// `plan`'s rows are linked.
    async fn link(
        &self,
        lease: &Lease,
        rules: &TenantRules,
        headers: &FileHeaders,
        (after, limit): (i64, usize),
        plan: &Plan,
    ) -> Result<Option<i64>, ApplyError>;

    /// Lines up the absent for deactivation (when asked), then in the same
    /// transaction either performs every lined-up deactivation and marks the
    /// upload succeeded, or holds it (see [`hold_reason`]). Drops the staging
    /// rows either way.
    async fn finish(
        &self,
        lease: &Lease,
        rules: &TenantRules,
        deactivate_absent: bool,
        progress: &mut Progress,
    ) -> Result<Finish, ApplyError>;
}

/// Writes the counters of a running upload (inside a fenced transaction).
pub async fn write_counters<C: ConnectionTrait>(
    c: &C,
    upload_id: i64,
    p: &Progress,
) -> Result<(), DbErr> {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let backend = c.get_database_backend();
    c.execute_raw(Statement::from_sql_and_values(
        backend,
        queries::of(backend).set_counters,
        [
            upload_id.into(),
            n(p.rows_read).into(),
            n(p.created).into(),
            n(p.updated).into(),
            n(p.unchanged).into(),
            n(p.deactivated).into(),
            n(p.rejected).into(),
        ],
    ))
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_batches_are_joined_up_to_the_size_and_parsed_rows_never() {
        let copy = |n: usize| Prepared::Copy {
            rows: vec![b'r'; n],
            problems: vec![b'p'; 1],
        };
        let mut batch = copy(10);
        assert!(batch.absorb(&mut copy(5), 100), "room left: joined");
        let Prepared::Copy { rows, problems } = &batch else {
            panic!("COPY text expected");
        };
        assert_eq!((rows.len(), problems.len()), (15, 2));
        let mut next = copy(5);
        assert!(!batch.absorb(&mut next, 17), "full: not joined");
        let Prepared::Copy { rows, .. } = &next else {
            panic!("COPY text expected");
        };
        assert_eq!(rows.len(), 5, "what is not joined is left whole");
        let mut parsed = Prepared::Rows {
            staged: vec![],
            rejected: vec![],
        };
        assert!(!parsed.absorb(&mut copy(1), 100), "parsed rows stay apart");
    }
}
