//! The portable [`ApplyStore`]: sea-orm entities and a few plain statements,
//! a bounded number of queries per batch (no per-row reads; one write per
//! changed row). Each batch is fetch → decide ([`crate::rules::decide`],
//! where the feed's rules live) → write.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::Utc;
use sea_orm::sea_query::{Expr, Func, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DbBackend, EntityTrait, ExprTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::Value;

use super::shared::{epoch_of, exec, finish_in, staged_in, tune};
use super::{
    ApplyError, ApplyStore, Finish, Lease, Plan, Prepared, Progress, Staged, TenantRules, fence,
    write_counters,
};
use crate::db::entity::{
    group, group_membership, upload_change, upload_deactivation, upload_link_change,
    upload_pending, upload_row, upload_row_error, user, user_manager, user_role,
};
use crate::db::queries;
use crate::map::{FileHeaders, MatchKey, RowError, split_list};
use crate::rules::decide::{
    Current, Decision, LinkLookups, LinkRow, Links, MergeBatch, Row, decide_links,
};

/// [`ApplyStore`] over any sea-orm connection.
///
/// Normally over the pool, where each batch is its own transaction. Over a
/// [`sea_orm::DatabaseTransaction`] each batch becomes a savepoint of that
/// one transaction: `userfeed preview` runs the real pipeline that way and
/// rolls everything back.
#[derive(Clone)]
pub struct PortableStore<C = DatabaseConnection> {
    db: C,
}

impl<C> PortableStore<C> {
    /// Wraps a connection pool (or an open transaction).
    pub fn new(db: C) -> Self {
        PortableStore { db }
    }

    /// The connection back, e.g. to read what a preview did before rolling back.
    pub fn into_inner(self) -> C {
        self.db
    }
}

fn error_models(upload_id: i64, errors: &[RowError]) -> Vec<upload_row_error::ActiveModel> {
    models(upload_id, errors, "error")
}

fn models(
    upload_id: i64,
    errors: &[RowError],
    severity: &str,
) -> Vec<upload_row_error::ActiveModel> {
    errors
        .iter()
        .map(|e| upload_row_error::ActiveModel {
            upload_id: Set(upload_id),
            line: Set(e.line as i64),
            column_name: Set(e.column.clone()),
            severity: Set(severity.into()),
            message: Set(e.message.clone()),
            ..Default::default()
        })
        .collect()
}

/// Only the upload's pending lines, when the plan says so.
fn pending_only(
    q: sea_orm::Select<upload_row::Entity>,
    upload_id: i64,
    plan: &Plan,
) -> sea_orm::Select<upload_row::Entity> {
    if !plan.only_pending {
        return q;
    }
    q.filter(
        upload_row::Column::Line.in_subquery(
            Query::select()
                .column(upload_pending::Column::Line)
                .from(upload_pending::Entity)
                .and_where(upload_pending::Column::UploadId.eq(upload_id))
                .to_owned(),
        ),
    )
}

#[async_trait]
impl<C> ApplyStore for PortableStore<C>
where
    C: TransactionTrait<Transaction = sea_orm::DatabaseTransaction> + Send + Sync,
{
    async fn begin(&self, lease: &Lease) -> Result<(), ApplyError> {
        let txn = self.db.begin().await?;
        fence(&txn, lease).await?;
        // Not the last word either (see `ASYNC_COMMIT`).
        tune(&txn, queries::ASYNC_COMMIT).await?;
        exec(&txn, |q| q.delete_staged, lease.upload_id).await?;
        exec(&txn, |q| q.delete_row_errors, lease.upload_id).await?;
        exec(&txn, |q| q.delete_pending_deactivations, lease.upload_id).await?;
        exec(&txn, |q| q.delete_pending_lines, lease.upload_id).await?;
        write_counters(&txn, lease.upload_id, &Progress::default()).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn stage(
        &self,
        lease: &Lease,
        batch: &Prepared,
        progress: &Progress,
    ) -> Result<(), ApplyError> {
        let Prepared::Rows {
            staged: rows,
            rejected,
        } = batch
        else {
            return Err(ApplyError::Db(sea_orm::DbErr::Custom(
                "the portable store stages parsed rows, not COPY text".into(),
            )));
        };
        let txn = self.db.begin().await?;
        fence(&txn, lease).await?;
        // SQLite keeps no digests (nothing there invalidates them), so its
        // staged rows carry none and every user's stays NULL.
        let digests = txn.get_database_backend() == DbBackend::Postgres;
        // Inserts of at most 1,000 rows: SQLite binds at most 32,766 values
        // a statement (16 a row here), PostgreSQL 65,535.
        for rows in rows.chunks(1000) {
            let models = rows.iter().map(|r| upload_row::ActiveModel {
                upload_id: Set(lease.upload_id),
                line: Set(r.line as i64),
                match_key: Set(r.match_key.clone()),
                email: Set(r.email.clone()),
                external_id: Set(r.external_id.clone()),
                first_name: Set(r.first_name.clone()),
                last_name: Set(r.last_name.clone()),
                active: Set(r.active),
                profile: Set(r.profile.clone().map(Value::Object)),
                error_column: Set(r.error.as_ref().and_then(|e| e.column.clone())),
                error_message: Set(r.error.as_ref().map(|e| e.message.clone())),
                managers: Set(r.managers.clone()),
                groups: Set(r.groups.clone()),
                roles: Set(r.roles.clone()),
                rejected: Set(false),
                digest: Set(r.digest.filter(|_| digests).map(|d| d.to_vec())),
                repeat_hint: Set(r.repeat_hint),
            });
            upload_row::Entity::insert_many(models).exec(&txn).await?;
        }
        if !rejected.is_empty() {
            upload_row_error::Entity::insert_many(error_models(lease.upload_id, rejected))
                .exec(&txn)
                .await?;
        }
        let warnings: Vec<RowError> = rows
            .iter()
            .flat_map(|r| r.warnings.iter().cloned())
            .collect();
        if !warnings.is_empty() {
            upload_row_error::Entity::insert_many(models(lease.upload_id, &warnings, "warning"))
                .exec(&txn)
                .await?;
        }
        write_counters(&txn, lease.upload_id, progress).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn staged(
        &self,
        lease: &Lease,
        rules: &TenantRules,
        headers: &FileHeaders,
        staged: &Staged,
    ) -> Result<Plan, ApplyError> {
        let txn = self.db.begin().await?;
        fence(&txn, lease).await?;
        let plan = staged_in(
            &txn,
            lease,
            rules,
            (headers, staged),
            (Some(queries::FORCE_CUSTOM_PLANS), None),
        )
        .await?;
        txn.commit().await?;
        Ok(plan)
    }

    async fn epoch(&self, tenant_id: i64) -> Result<i64, ApplyError> {
        let txn = self.db.begin().await?;
        let epoch = epoch_of(&txn, tenant_id).await?;
        txn.commit().await?;
        Ok(epoch)
    }

    async fn merge(
        &self,
        lease: &Lease,
        rules: &TenantRules,
        headers: &FileHeaders,
        has_status: bool,
        (after, limit): (i64, usize),
        plan: &Plan,
        progress: &mut Progress,
    ) -> Result<Option<i64>, ApplyError> {
        let txn = self.db.begin().await?;
        fence(&txn, lease).await?;
        tune(&txn, queries::FORCE_CUSTOM_PLANS).await?;
        let rows = pending_only(upload_row::Entity::find(), lease.upload_id, plan)
            .filter(upload_row::Column::UploadId.eq(lease.upload_id))
            .filter(upload_row::Column::Line.gt(after))
            .order_by_asc(upload_row::Column::Line)
            .limit(limit as u64)
            .all(&txn)
            .await?;
        let Some(last) = rows.last().map(|r| r.line) else {
            txn.commit().await?;
            return Ok(None);
        };

        // Fetch: the stored users the batch can touch, by email or
        // external ID (its own people and owners of values it wants).
        let lower_email = || Expr::expr(Func::lower(Expr::col(user::Column::Email)));
        let emails: Vec<String> = rows
            .iter()
            .filter_map(|r| r.email.as_ref().map(|e| e.to_lowercase()))
            .collect();
        let ext_ids: Vec<String> = rows.iter().filter_map(|r| r.external_id.clone()).collect();
        let found = user::Entity::find()
            .filter(user::Column::TenantId.eq(rules.tenant_id))
            .filter(
                lower_email()
                    .is_in(emails)
                    .or(user::Column::ExternalId.is_in(ext_ids)),
            )
            .all(&txn)
            .await?;
        let digests: HashMap<i64, Option<Vec<u8>>> = found
            .iter()
            .map(|u| (u.id, u.feed_digest.clone()))
            .collect();
        let current = found.into_iter().map(|u| Current {
            id: u.id,
            email: u.email,
            external_id: u.external_id,
            first_name: u.first_name,
            last_name: u.last_name,
            active: u.active,
            profile: u.profile.as_object().cloned().unwrap_or_default(),
        });
        let mut batch = MergeBatch::new(rules.match_key, has_status, headers, current);

        // Decide, then write.
        let mut errors: Vec<RowError> = Vec::new();
        let mut inserts: Vec<user::ActiveModel> = Vec::new();
        let mut deactivations: Vec<upload_deactivation::ActiveModel> = Vec::new();
        let mut changes: Vec<upload_change::ActiveModel> = Vec::new();
        let now = Utc::now();
        for row in &rows {
            let profile = row.profile.as_ref().and_then(|p| p.as_object());
            let decision = batch.decide(&Row {
                line: row.line,
                match_key: &row.match_key,
                email: row.email.as_deref(),
                external_id: row.external_id.as_deref(),
                first_name: row.first_name.as_deref(),
                last_name: row.last_name.as_deref(),
                active: row.active,
                profile,
                error: row
                    .error_message
                    .as_deref()
                    .map(|m| (row.error_column.as_deref(), m)),
            });
            let (id, deactivate) = match decision {
                Decision::Reject(e) => {
                    errors.push(e);
                    continue;
                }
                Decision::Create(u) => {
                    inserts.push(user::ActiveModel {
                        tenant_id: Set(rules.tenant_id),
                        email: Set(u.email),
                        external_id: Set(u.external_id),
                        first_name: Set(u.first_name),
                        last_name: Set(u.last_name),
                        active: Set(u.active),
                        profile: Set(Value::Object(u.profile)),
                        feed_managed: Set(true),
                        created_by_upload_id: Set(Some(lease.upload_id)),
                        last_changed_upload_id: Set(Some(lease.upload_id)),
                        created_at: Set(now),
                        updated_at: Set(now),
                        deactivated_at: Set((!u.active).then_some(now)),
                        feed_digest: Set(row.digest.clone()),
                        ..Default::default()
                    });
                    progress.created += 1;
                    continue;
                }
                Decision::Update {
                    id,
                    update,
                    deactivate,
                } => {
                    let mut am = user::ActiveModel {
                        id: Set(id),
                        updated_at: Set(now),
                        last_changed_upload_id: Set(Some(lease.upload_id)),
                        feed_digest: Set(row.digest.clone()),
                        ..Default::default()
                    };
                    if let Some(v) = update.email {
                        am.email = Set(v);
                    }
                    if let Some(v) = update.external_id {
                        am.external_id = Set(Some(v));
                    }
                    if let Some(v) = update.first_name {
                        am.first_name = Set(v);
                    }
                    if let Some(v) = update.last_name {
                        am.last_name = Set(v);
                    }
                    if update.reactivate {
                        am.active = Set(true);
                        am.deactivated_at = Set(None);
                    }
                    if let Some(p) = update.profile {
                        am.profile = Set(Value::Object(p));
                    }
                    am.update(&txn).await?;
                    progress.updated += 1;
                    changes.push(upload_change::ActiveModel {
                        upload_id: Set(lease.upload_id),
                        user_id: Set(id),
                        kind: Set(if update.reactivate {
                            "reactivated"
                        } else {
                            "updated"
                        }
                        .into()),
                        changes: Set(Some(Value::Object(update.changes))),
                        ..Default::default()
                    });
                    (id, deactivate)
                }
                Decision::Unchanged { id, deactivate } => {
                    // The digest is still stored (the links may be what
                    // changed).
                    if digests.get(&id).is_some_and(|d| *d != row.digest) {
                        user::ActiveModel {
                            id: Set(id),
                            feed_digest: Set(row.digest.clone()),
                            ..Default::default()
                        }
                        .update(&txn)
                        .await?;
                    }
                    // A row whose only change is a deactivation is counted
                    // when the finish transaction performs it.
                    if !deactivate {
                        progress.unchanged += 1;
                    }
                    (id, deactivate)
                }
            };
            if deactivate {
                deactivations.push(upload_deactivation::ActiveModel {
                    upload_id: Set(lease.upload_id),
                    user_id: Set(id),
                });
            }
        }
        if !inserts.is_empty() {
            user::Entity::insert_many(inserts).exec(&txn).await?;
        }
        // The change log: one multi-row insert per batch.
        if !changes.is_empty() {
            upload_change::Entity::insert_many(changes)
                .exec(&txn)
                .await?;
        }
        if !deactivations.is_empty() {
            upload_deactivation::Entity::insert_many(deactivations)
                .exec(&txn)
                .await?;
        }
        progress.rejected += errors.len() as u64;
        if !errors.is_empty() {
            // Their managers, groups and roles are not applied either.
            let lines: Vec<i64> = errors.iter().map(|e| e.line as i64).collect();
            upload_row::Entity::update_many()
                .col_expr(upload_row::Column::Rejected, Expr::value(true))
                .filter(upload_row::Column::UploadId.eq(lease.upload_id))
                .filter(upload_row::Column::Line.is_in(lines))
                .exec(&txn)
                .await?;
            upload_row_error::Entity::insert_many(error_models(lease.upload_id, &errors))
                .exec(&txn)
                .await?;
        }
        write_counters(&txn, lease.upload_id, progress).await?;
        txn.commit().await?;
        Ok(Some(last))
    }

    async fn link(
        &self,
        lease: &Lease,
        rules: &TenantRules,
        headers: &FileHeaders,
        (after, limit): (i64, usize),
        plan: &Plan,
    ) -> Result<Option<i64>, ApplyError> {
        let txn = self.db.begin().await?;
        fence(&txn, lease).await?;
        tune(&txn, queries::FORCE_CUSTOM_PLANS).await?;
        tune(&txn, queries::FEED_WRITER).await?;
        let rows = pending_only(upload_row::Entity::find(), lease.upload_id, plan)
            .filter(upload_row::Column::UploadId.eq(lease.upload_id))
            .filter(upload_row::Column::Line.gt(after))
            .filter(upload_row::Column::Rejected.eq(false))
            .filter(upload_row::Column::ErrorMessage.is_null())
            .order_by_asc(upload_row::Column::Line)
            .limit(limit as u64)
            .all(&txn)
            .await?;
        let Some(last) = rows.last().map(|r| r.line) else {
            txn.commit().await?;
            return Ok(None);
        };

        // The rows' users, the managers they name, the groups they name.
        let lower_email = || Expr::expr(Func::lower(Expr::col(user::Column::Email)));
        let keys: Vec<String> = rows.iter().map(|r| r.match_key.clone()).collect();
        let key_filter = match rules.match_key {
            MatchKey::Email => lower_email().is_in(keys),
            MatchKey::ExternalId => Expr::col(user::Column::ExternalId).is_in(keys),
        };
        let mut user_of: HashMap<String, i64> = HashMap::new();
        // Users this upload created: their links are not logged (an undo
        // removes them wholesale), as `link_log` in postgres/link.sql.
        let mut fresh: HashSet<i64> = HashSet::new();
        for u in user::Entity::find()
            .filter(user::Column::TenantId.eq(rules.tenant_id))
            .filter(key_filter)
            .all(&txn)
            .await?
        {
            let key = match rules.match_key {
                MatchKey::Email => u.email.to_lowercase(),
                MatchKey::ExternalId => u.external_id.clone().unwrap_or_default(),
            };
            if u.created_by_upload_id == Some(lease.upload_id) {
                fresh.insert(u.id);
            }
            user_of.insert(key, u.id);
        }
        let manager_emails: Vec<String> = rows
            .iter()
            .filter_map(|r| r.managers.as_deref())
            .flat_map(|c| split_list(c).map(str::to_lowercase).collect::<Vec<_>>())
            .collect();
        let mut manager_of: HashMap<String, i64> = HashMap::new();
        if !manager_emails.is_empty() {
            for u in user::Entity::find()
                .filter(user::Column::TenantId.eq(rules.tenant_id))
                .filter(lower_email().is_in(manager_emails))
                .all(&txn)
                .await?
            {
                if u.created_by_upload_id == Some(lease.upload_id) {
                    fresh.insert(u.id);
                }
                manager_of.insert(u.email.to_lowercase(), u.id);
            }
        }
        let group_keys: Vec<String> = rows
            .iter()
            .filter_map(|r| r.groups.as_deref())
            .flat_map(|c| split_list(c).map(str::to_string).collect::<Vec<_>>())
            .collect();
        let mut group_of: HashMap<String, i64> = HashMap::new();
        if !group_keys.is_empty() {
            for g in group::Entity::find()
                .filter(group::Column::TenantId.eq(rules.tenant_id))
                .filter(group::Column::GroupKey.is_in(group_keys))
                .all(&txn)
                .await?
            {
                group_of.insert(g.group_key, g.id);
            }
        }

        let links = decide_links(
            rows.iter().map(|r| LinkRow {
                line: r.line,
                match_key: &r.match_key,
                managers: r.managers.as_deref(),
                groups: r.groups.as_deref(),
                roles: r.roles.as_deref(),
            }),
            &LinkLookups {
                user_of,
                manager_of,
                group_of,
            },
            headers,
        );
        let Links {
            replace_managers_of,
            managers: links,
            memberships,
            roles,
            warnings,
            warned: unclean,
        } = links;

        // Managers are replaced; memberships and roles only ever added.
        // What was there first, for the link log (migration 0014).
        let mut log: Vec<upload_link_change::ActiveModel> = Vec::new();
        let entry = |user_id: i64, kind: &str, target: Option<i64>, role: Option<String>| {
            upload_link_change::ActiveModel {
                upload_id: Set(lease.upload_id),
                user_id: Set(user_id),
                kind: Set(kind.into()),
                target: Set(target),
                role: Set(role),
                ..Default::default()
            }
        };
        if !replace_managers_of.is_empty() {
            let had: HashSet<(i64, i64)> = user_manager::Entity::find()
                .filter(user_manager::Column::UserId.is_in(replace_managers_of.clone()))
                .all(&txn)
                .await?
                .into_iter()
                .map(|l| (l.user_id, l.manager_id))
                .collect();
            let wanted: HashSet<(i64, i64)> = links.iter().copied().collect();
            for &(u, m) in had.difference(&wanted) {
                if !fresh.contains(&u) {
                    log.push(entry(u, "manager_removed", Some(m), None));
                }
            }
            for &(u, m) in wanted.difference(&had) {
                if !fresh.contains(&u) {
                    log.push(entry(u, "manager_added", Some(m), None));
                }
            }
        }
        if !roles.is_empty() {
            let uids: Vec<i64> = roles.iter().map(|(u, _)| *u).collect();
            let had: HashSet<(i64, String)> = user_role::Entity::find()
                .filter(user_role::Column::UserId.is_in(uids))
                .all(&txn)
                .await?
                .into_iter()
                .map(|r| (r.user_id, r.role))
                .collect();
            // `roles` is a set: each (user, role) comes once.
            for (u, r) in &roles {
                let key = (*u, r.as_str().to_string());
                if !fresh.contains(u) && !had.contains(&key) {
                    log.push(entry(key.0, "role_added", None, Some(key.1)));
                }
            }
        }
        if !replace_managers_of.is_empty() {
            user_manager::Entity::delete_many()
                .filter(user_manager::Column::UserId.is_in(replace_managers_of))
                .exec(&txn)
                .await?;
        }
        if !links.is_empty() {
            let models = links.into_iter().map(|(u, m)| user_manager::ActiveModel {
                user_id: Set(u),
                manager_id: Set(m),
            });
            user_manager::Entity::insert_many(models)
                .on_conflict_do_nothing()
                .exec_without_returning(&txn)
                .await?;
        }
        if !memberships.is_empty() {
            let now = Utc::now();
            let models = memberships
                .into_iter()
                .map(|(g, u)| group_membership::ActiveModel {
                    group_id: Set(g),
                    user_id: Set(u),
                    created_by_upload_id: Set(Some(lease.upload_id)),
                    created_at: Set(now),
                });
            group_membership::Entity::insert_many(models)
                .on_conflict_do_nothing()
                .exec_without_returning(&txn)
                .await?;
        }
        if !roles.is_empty() {
            let models = roles.into_iter().map(|(u, r)| user_role::ActiveModel {
                user_id: Set(u),
                role: Set(r.as_str().into()),
            });
            user_role::Entity::insert_many(models)
                .on_conflict_do_nothing()
                .exec_without_returning(&txn)
                .await?;
        }
        if !log.is_empty() {
            upload_link_change::Entity::insert_many(log)
                .exec_without_returning(&txn)
                .await?;
        }
        if !warnings.is_empty() {
            upload_row_error::Entity::insert_many(models(lease.upload_id, &warnings, "warning"))
                .exec(&txn)
                .await?;
        }
        if !unclean.is_empty() {
            user::Entity::update_many()
                .col_expr(
                    user::Column::FeedDigest,
                    Expr::value(Option::<Vec<u8>>::None),
                )
                .filter(user::Column::Id.is_in(unclean))
                .filter(user::Column::FeedDigest.is_not_null())
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(Some(last))
    }

    async fn finish(
        &self,
        lease: &Lease,
        rules: &TenantRules,
        deactivate_absent: bool,
        progress: &mut Progress,
    ) -> Result<Finish, ApplyError> {
        let txn = self.db.begin().await?;
        fence(&txn, lease).await?;
        let outcome = finish_in(&txn, lease, rules, deactivate_absent, progress).await?;
        exec(&txn, |q| q.delete_staged, lease.upload_id).await?;
        txn.commit().await?;
        Ok(outcome)
    }
}
