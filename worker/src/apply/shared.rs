//! The phases both stores share, whatever they do in between: what
//! happens right after staging ([`staged_in`]: the additive step, repeats,
//! digests, the absent) and the end of every upload ([`finish_in`]: the
//! deactivations or the hold), each inside the caller's fenced transaction,
//! with the small statement helpers they use.

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::{
    ApplyError, Finish, Lease, Plan, Progress, Staged, TenantRules, hold_reason, write_counters,
};
use crate::db::queries::{self, Queries};
use crate::jobs::state;
use crate::map::{FileHeaders, MatchKey};

/// The whole-file work after staging, shared by every store, inside the
/// caller's fenced transaction, after `setup`: marks repeated keys when the
/// parser hinted any ([`queries::MARK_DUPLICATES`]); then one join of the
/// staged rows to the tenant's users ([`queries::CLASSIFY_BY_EMAIL`], after
/// `planner`) lines up the rows whose digest does not match their user's,
/// when the tenant has digests at all (the others are unchanged and
/// skipped), and the users absent from the file, when they are to be
/// deactivated.
pub(super) async fn staged_in<C: ConnectionTrait>(
    txn: &C,
    lease: &Lease,
    rules: &TenantRules,
    (headers, staged): (&FileHeaders, &Staged),
    (setup, planner): (Option<&str>, Option<&str>),
) -> Result<Plan, sea_orm::DbErr> {
    if let Some(setup) = setup {
        tune(txn, setup).await?;
    }
    let mut staged = *staged;
    let mut present = 0;
    if staged.only_new && staged.rows > 0 {
        // An additive upload: rows naming an existing user are dropped,
        // with a warning each, and count as unchanged (see `warn_present`).
        txn.execute_raw(stmt(
            txn,
            |q| q.warn_present,
            [
                lease.upload_id.into(),
                rules.tenant_id.into(),
                headers.email.clone().into(),
            ],
        ))
        .await?;
        present = txn
            .execute_raw(stmt(
                txn,
                |q| q.drop_present,
                [lease.upload_id.into(), rules.tenant_id.into()],
            ))
            .await?
            .rows_affected();
        staged.rows = staged.rows.saturating_sub(present);
    }
    let mut plan = classify_staged(txn, lease, rules, headers, &staged, planner).await?;
    plan.unchanged += present;
    Ok(plan)
}

/// [`staged_in`] after the additive step: repeats, digests, the absent.
async fn classify_staged<C: ConnectionTrait>(
    txn: &C,
    lease: &Lease,
    rules: &TenantRules,
    headers: &FileHeaders,
    staged: &Staged,
    planner: Option<&str>,
) -> Result<Plan, sea_orm::DbErr> {
    if staged.repeat_hints > 0 {
        let key_header = match rules.match_key {
            MatchKey::Email => headers.email.clone(),
            MatchKey::ExternalId => headers.external_id.clone(),
        };
        txn.execute_raw(stmt(
            txn,
            |q| q.mark_duplicates,
            [lease.upload_id.into(), key_header.into()],
        ))
        .await?;
    }
    let any_digest = staged.rows > 0
        && txn
            .query_one_raw(stmt(txn, |q| q.any_digest, [rules.tenant_id.into()]))
            .await?
            .map(|r| r.try_get::<bool>("", "any"))
            .transpose()?
            .unwrap_or(false);
    if !any_digest && !staged.deactivate_absent {
        return Ok(Plan::all(staged.rows));
    }
    if let Some(planner) = planner {
        tune(txn, planner).await?;
    }
    let values = [
        lease.upload_id.into(),
        rules.tenant_id.into(),
        any_digest.into(),
        staged.deactivate_absent.into(),
    ];
    let lined = if txn.get_database_backend() == DbBackend::Sqlite {
        // No data-modifying CTEs: line up, then count.
        let sql = match rules.match_key {
            MatchKey::Email => queries::sqlite::CLASSIFY_BY_EMAIL,
            MatchKey::ExternalId => queries::sqlite::CLASSIFY_BY_EXTERNAL_ID,
        };
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            sql,
            values,
        ))
        .await?;
        txn.query_one_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            queries::sqlite::COUNT_PENDING,
            [lease.upload_id.into()],
        ))
        .await?
    } else {
        let sql = match rules.match_key {
            MatchKey::Email => queries::CLASSIFY_BY_EMAIL,
            MatchKey::ExternalId => queries::CLASSIFY_BY_EXTERNAL_ID,
        };
        txn.query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await?
    }
    .ok_or_else(|| sea_orm::DbErr::RecordNotFound("the classify counts".into()))?;
    if !any_digest {
        return Ok(Plan::all(staged.rows));
    }
    let pending = u64::try_from(lined.try_get::<i64>("", "pending")?).unwrap_or(0);
    Ok(Plan {
        only_pending: true,
        rows: pending,
        unchanged: staged.rows.saturating_sub(pending),
    })
}

/// The tenant's current feed epoch.
pub(super) async fn epoch_of<C: ConnectionTrait>(
    c: &C,
    tenant_id: i64,
) -> Result<i64, sea_orm::DbErr> {
    c.query_one_raw(stmt(c, |q| q.tenant_epoch, [tenant_id.into()]))
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound("the tenant".into()))?
        .try_get::<i64>("", "epoch")
}

/// Picks a statement out of a backend's [`Queries`].
pub(super) type Pick = fn(&Queries) -> &'static str;

/// The statement `pick` names, in `c`'s backend, with `values`.
pub(super) fn stmt<C: ConnectionTrait>(
    c: &C,
    pick: Pick,
    values: impl IntoIterator<Item = sea_orm::Value>,
) -> Statement {
    let backend = c.get_database_backend();
    Statement::from_sql_and_values(backend, pick(queries::of(backend)), values)
}

/// Runs a session setting: planner and commit tuning, PostgreSQL's only
/// (SQLite has no such settings; its transactions need none).
pub(super) async fn tune<C: ConnectionTrait>(c: &C, sql: &str) -> Result<(), sea_orm::DbErr> {
    if c.get_database_backend() == DbBackend::Postgres {
        c.execute_unprepared(sql).await?;
    }
    Ok(())
}

pub(super) async fn exec<C: sea_orm::ConnectionTrait>(
    c: &C,
    pick: Pick,
    id: i64,
) -> Result<u64, sea_orm::DbErr> {
    Ok(c.execute_raw(stmt(c, pick, [id.into()]))
        .await?
        .rows_affected())
}

/// The end of every upload, inside the caller's fenced transaction: lines up
/// the absent for deactivation (when asked; [`staged_in`] found them), then
/// either performs the deactivations and marks the upload succeeded, or
/// holds it. Shared by every [`ApplyStore`]; each drops its staged rows
/// after it, in the same transaction.
pub(super) async fn finish_in<C: ConnectionTrait>(
    txn: &C,
    lease: &Lease,
    rules: &TenantRules,
    deactivate_absent: bool,
    progress: &mut Progress,
) -> Result<Finish, ApplyError> {
    if deactivate_absent {
        exec(txn, |q| q.queue_absent, lease.upload_id).await?;
    }
    reconcile_with_log(txn, lease.upload_id, progress).await?;
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let (upload, keep, dropped) = (
        lease.upload_id.into(),
        n(rules.keep_row_problems).into(),
        n(progress.problems_dropped).into(),
    );
    let trimmed = if txn.get_database_backend() == DbBackend::Sqlite {
        // No data-modifying CTEs: delete, then count what was deleted.
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            queries::sqlite::TRIM_ROW_PROBLEMS,
            [upload, keep],
        ))
        .await?;
        txn.query_one_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            queries::sqlite::RECORD_ROW_PROBLEMS_DROPPED,
            [lease.upload_id.into(), dropped],
        ))
        .await?
    } else {
        txn.query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            queries::TRIM_ROW_PROBLEMS,
            [upload, keep, dropped],
        ))
        .await?
    }
    .ok_or_else(|| sea_orm::DbErr::RecordNotFound("the upload".into()))?;
    progress.problems_dropped = u64::try_from(trimmed.try_get::<i64>("", "n")?).unwrap_or(0);
    let pending = count(txn, |q| q.count_pending_deactivations, lease.upload_id).await?;
    let active = count(txn, |q| q.count_active_managed, rules.tenant_id).await?;
    exec(txn, |q| q.delete_pending_lines, lease.upload_id).await?;

    let outcome = match hold_reason(progress.rows_read, pending, active, rules) {
        Some(reason) => {
            // Keep the list for `uploads approve`; change nobody now.
            progress.deactivated = 0;
            write_counters(txn, lease.upload_id, progress).await?;
            if !state::hold(txn, lease, pending, &reason).await? {
                return Err(ApplyError::LeaseLost);
            }
            Finish::Held {
                deactivations: pending,
                reason,
            }
        }
        None => {
            exec(txn, |q| q.log_deactivations, lease.upload_id).await?;
            progress.deactivated = exec(txn, |q| q.apply_deactivations, lease.upload_id).await?;
            exec(txn, |q| q.delete_pending_deactivations, lease.upload_id).await?;
            write_counters(txn, lease.upload_id, progress).await?;
            if !state::succeed(txn, lease).await? {
                return Err(ApplyError::LeaseLost);
            }
            Finish::Succeeded
        }
    };
    Ok(outcome)
}

/// Makes the counters those of the upload as a whole, not of this attempt:
/// rows an earlier, interrupted attempt created or updated (and committed)
/// were found unchanged by this one. The users it created and the change
/// log hold every attempt's committed changes, so the counts come from
/// them, and the rows this attempt merged that they do not account for are
/// the unchanged ones. After an uninterrupted run this changes nothing.
async fn reconcile_with_log<C: ConnectionTrait>(
    txn: &C,
    upload_id: i64,
    progress: &mut Progress,
) -> Result<(), sea_orm::DbErr> {
    let row = txn
        .query_one_raw(stmt(txn, |q| q.count_logged_changes, [upload_id.into()]))
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound("logged changes".into()))?;
    let n = |col: &str| -> Result<u64, sea_orm::DbErr> {
        Ok(u64::try_from(row.try_get::<i64>("", col)?).unwrap_or(0))
    };
    let merged = progress.created + progress.updated + progress.unchanged;
    progress.created = n("created")?;
    progress.updated = n("updated")?;
    progress.unchanged = merged.saturating_sub(progress.created + progress.updated);
    Ok(())
}

pub(super) async fn count<C: sea_orm::ConnectionTrait>(
    c: &C,
    pick: Pick,
    id: i64,
) -> Result<u64, sea_orm::DbErr> {
    let row = c
        .query_one_raw(stmt(c, pick, [id.into()]))
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound("a count".to_string()))?;
    Ok(u64::try_from(row.try_get::<i64>("", "n")?).unwrap_or(0))
}
