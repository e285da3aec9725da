//! Undo of an applied upload: `userfeed uploads undo ID` and
//! `POST /api/v1/uploads/{id}/undo`, with a preview that changes nothing.
//!
//! An undo reads what the upload did from its logs and does the inverse:
//! - users it created become inactive (never deleted: people may have
//!   signed in), and the links they got from it are removed;
//! - users it deactivated are reactivated, users it reactivated are
//!   deactivated;
//! - fields it updated go back to their old value, but only where the value
//!   is still the one the upload wrote: a field changed since (by an admin,
//!   or by a later upload's partial attempt) is left alone and reported;
//! - manager links, roles and memberships it added or removed are restored
//!   (`upload_link_changes`, migration 0014; memberships also by
//!   `group_memberships.created_by_upload_id`).
//!
//! The undo is itself an upload (source `undo`, `undo_of` naming the
//! upload), with its own change log and link log, so it shows in the
//! history and can be undone in turn. Only the tenant's newest applied
//! upload can be undone: undoing an older one would revert a state that a
//! newer full list has already replaced. Everything runs in one
//! transaction; a preview runs the same code and rolls it back.
//!
//! Bookkeeping columns say the undo happened rather than returning to
//! their old values: `updated_at`, `last_changed_upload_id`, a
//! deactivation's `deactivated_at`, and the feed digests (which the
//! PostgreSQL triggers clear, so the next file compares those users in
//! full; the tenant's feed epoch is bumped as well).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, ExprTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::db::entity::{
    group, group_membership, tenant, upload, upload_change, upload_link_change, upload_row_error,
    user, user_manager, user_role,
};
use crate::jobs::state::{self, UploadState};
use crate::rules::text;

/// Why an upload cannot be undone.
#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    /// No such upload.
    #[error("no upload {0}")]
    NotFound(i64),
    /// Only uploads that applied can be undone.
    #[error(
        "upload {id} is {state}; only an upload that applied (succeeded, or a hold approved \
         or rejected) can be undone"
    )]
    NotApplied {
        /// The upload.
        id: i64,
        /// Its state.
        state: crate::upload::UploadState,
    },
    /// A newer upload of the tenant has applied, is applying or is held.
    #[error(
        "upload {id} is not the tenant's newest applied upload: upload {newer} is {state}; \
         only the newest can be undone"
    )]
    NotNewest {
        /// The upload asked for.
        id: i64,
        /// The newer upload.
        newer: i64,
        /// Its state, in words ("being undone" for a concurrent undo).
        state: String,
    },
    /// Database failure.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A field an undo put back.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Reverted {
    /// The user's email after the undo.
    pub email: String,
    /// field -> [value before the undo, value after it].
    pub fields: Map<String, Value>,
}

/// A change an undo left alone, and why.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct LeftAlone {
    /// The user's email.
    pub email: String,
    /// The field (`active` for a status).
    pub field: String,
    /// Why, for the admin.
    pub reason: String,
}

/// What an undo did, or in a preview would do.
#[derive(Debug, Clone, Serialize, PartialEq, Default, utoipa::ToSchema)]
pub struct UndoReport {
    /// The upload undone.
    pub upload_id: i64,
    /// The undo's own upload; `None` in a preview.
    pub undo_id: Option<i64>,
    /// True when nothing was changed.
    pub preview: bool,
    /// Users made inactive (those the upload created or reactivated).
    pub deactivated: Vec<String>,
    /// Users made active again (those the upload deactivated).
    pub reactivated: Vec<String>,
    /// Fields put back.
    pub updated: Vec<Reverted>,
    /// Manager links, roles and memberships added back or removed.
    pub links_restored: u64,
    /// What was left alone, and why.
    pub left_alone: Vec<LeftAlone>,
}

/// Undoes upload `id`, or with `preview` says what that would do and
/// changes nothing.
pub async fn undo(
    db: &DatabaseConnection,
    id: i64,
    preview: bool,
) -> Result<UndoReport, UndoError> {
    let txn = db.begin().await?;
    let mut report = undo_in(&txn, id).await?;
    if preview {
        txn.rollback().await?;
        report.undo_id = None;
        report.preview = true;
    } else {
        txn.commit().await?;
        tracing::info!(
            upload_id = id,
            undo_id = report.undo_id,
            deactivated = report.deactivated.len(),
            reactivated = report.reactivated.len(),
            updated = report.updated.len(),
            links = report.links_restored,
            left_alone = report.left_alone.len(),
            "upload undone"
        );
    }
    Ok(report)
}

/// Loads users by id, in chunks that stay under every backend's limit on
/// bound values.
async fn users_by_id<C: ConnectionTrait>(
    c: &C,
    ids: impl IntoIterator<Item = i64>,
) -> Result<HashMap<i64, user::Model>, DbErr> {
    let ids: Vec<i64> = ids
        .into_iter()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(5_000) {
        for u in user::Entity::find()
            .filter(user::Column::Id.is_in(chunk.to_vec()))
            .all(c)
            .await?
        {
            out.insert(u.id, u);
        }
    }
    Ok(out)
}

/// A user field's current value, as the change log writes values.
fn current(u: &user::Model, field: &str) -> Option<Value> {
    Some(match field {
        "email" => json!(u.email),
        "external_id" => json!(u.external_id),
        "first_name" => json!(u.first_name),
        "last_name" => json!(u.last_name),
        f => {
            let key = f.strip_prefix("profile.")?;
            u.profile.get(key).cloned().unwrap_or(Value::Null)
        }
    })
}

/// Sets a user field to a change-log value.
fn set_field(u: &mut user::Model, field: &str, value: &Value) {
    let text = || value.as_str().unwrap_or_default().to_string();
    match field {
        "email" => u.email = text(),
        "external_id" => u.external_id = value.as_str().map(str::to_string),
        "first_name" => u.first_name = text(),
        "last_name" => u.last_name = text(),
        f => {
            if let Some(key) = f.strip_prefix("profile.") {
                if !u.profile.is_object() {
                    u.profile = json!({});
                }
                let map = u.profile.as_object_mut().expect("an object");
                if value.is_null() {
                    map.remove(key);
                } else {
                    map.insert(key.to_string(), value.clone());
                }
            }
        }
    }
}

/// What the undo does to one user.
#[derive(Default)]
struct UserPlan {
    /// field -> [current, back to].
    fields: BTreeMap<String, (Value, Value)>,
    /// Some(true) to reactivate, Some(false) to deactivate.
    active: Option<bool>,
}

/// A link the undo adds or removes: (user, kind of the undo's log entry,
/// manager or group, role).
type LinkOp = (i64, &'static str, Option<i64>, Option<String>);

async fn undo_in<C: ConnectionTrait>(c: &C, id: i64) -> Result<UndoReport, UndoError> {
    let up = upload::Entity::find_by_id(id)
        .lock_exclusive()
        .one(c)
        .await?
        .ok_or(UndoError::NotFound(id))?;
    if up.state != UploadState::Succeeded {
        return Err(UndoError::NotApplied {
            id,
            state: up.state,
        });
    }
    if let Some(newer) = upload::Entity::find()
        .filter(upload::Column::TenantId.eq(up.tenant_id))
        .filter(upload::Column::Id.gt(id))
        .filter(upload::Column::State.is_in([
            UploadState::Succeeded,
            UploadState::Held,
            UploadState::Running,
        ]))
        .order_by_desc(upload::Column::Id)
        .one(c)
        .await?
    {
        return Err(UndoError::NotNewest {
            id,
            newer: newer.id,
            state: newer.state.to_string(),
        });
    }
    let undo_id = match state::record_undo(c, id).await {
        Ok(n) => n,
        // A concurrent undo of the same upload committed first.
        Err(e) if crate::db::is_unique_race(&e) => {
            return Err(UndoError::NotNewest {
                id,
                newer: id,
                state: "being undone".into(),
            });
        }
        Err(e) => return Err(e.into()),
    };

    let created: Vec<user::Model> = user::Entity::find()
        .filter(user::Column::CreatedByUploadId.eq(id))
        .order_by_asc(user::Column::Id)
        .all(c)
        .await?;
    let created_ids: HashSet<i64> = created.iter().map(|u| u.id).collect();
    let changes = upload_change::Entity::find()
        .filter(upload_change::Column::UploadId.eq(id))
        .order_by_asc(upload_change::Column::Id)
        .all(c)
        .await?;
    let link_log = upload_link_change::Entity::find()
        .filter(upload_link_change::Column::UploadId.eq(id))
        .order_by_desc(upload_link_change::Column::Id)
        .all(c)
        .await?;
    let memberships = group_membership::Entity::find()
        .filter(group_membership::Column::CreatedByUploadId.eq(id))
        .all(c)
        .await?;
    let mut users = users_by_id(
        c,
        changes
            .iter()
            .map(|ch| ch.user_id)
            .chain(link_log.iter().map(|l| l.user_id))
            .chain(
                link_log
                    .iter()
                    .filter(|l| l.kind.starts_with("manager_"))
                    .filter_map(|l| l.target),
            ),
    )
    .await?;
    for u in &created {
        users.insert(u.id, u.clone());
    }

    let mut report = UndoReport {
        upload_id: id,
        undo_id: Some(undo_id),
        ..Default::default()
    };
    let upload_no = id.to_string();

    // Users: the inverse of each change-log entry, where the value is
    // still the one the upload wrote.
    let mut plans: BTreeMap<i64, UserPlan> = BTreeMap::new();
    for ch in &changes {
        let Some(u) = users.get(&ch.user_id) else {
            continue;
        };
        let plan = plans.entry(u.id).or_default();
        let left = |field: &str| LeftAlone {
            email: u.email.clone(),
            field: field.to_string(),
            reason: text::UNDO_CHANGED_SINCE.render(&[&u.email, field, &upload_no]),
        };
        if let Some(Value::Object(fields)) = &ch.changes {
            for (field, pair) in fields {
                if field == "active" {
                    continue;
                }
                let (Some(old), Some(new)) = (pair.get(0), pair.get(1)) else {
                    continue;
                };
                match current(u, field) {
                    Some(cur) if &cur == new => {
                        plan.fields.insert(field.clone(), (cur, old.clone()));
                    }
                    Some(_) => report.left_alone.push(left(field)),
                    None => {}
                }
            }
        }
        match ch.kind.as_str() {
            "reactivated" if u.active => plan.active = Some(false),
            "deactivated" if !u.active => plan.active = Some(true),
            "reactivated" | "deactivated" => report.left_alone.push(left("active")),
            _ => {}
        }
    }
    for u in &created {
        if u.active {
            plans.entry(u.id).or_default().active = Some(false);
        }
    }

    let now = Utc::now();
    let mut log: Vec<upload_change::ActiveModel> = Vec::new();
    for (uid, plan) in plans {
        let Some(before) = users.get(&uid).cloned() else {
            continue;
        };
        let mut after = before.clone();
        let mut done = Map::new();
        for (field, (cur, back)) in &plan.fields {
            // An email or external ID another user has now stays: the
            // unique index would refuse it, and the other user is not
            // this undo's to change.
            let taken = match (field.as_str(), back.as_str()) {
                ("email", Some(v)) => user::Entity::find()
                    .filter(user::Column::TenantId.eq(before.tenant_id))
                    .filter(user::Column::Id.ne(uid))
                    .filter(
                        Expr::expr(sea_orm::sea_query::Func::lower(Expr::col(
                            user::Column::Email,
                        )))
                        .eq(v.to_lowercase()),
                    )
                    .one(c)
                    .await?
                    .is_some(),
                ("external_id", Some(v)) => user::Entity::find()
                    .filter(user::Column::TenantId.eq(before.tenant_id))
                    .filter(user::Column::Id.ne(uid))
                    .filter(user::Column::ExternalId.eq(v))
                    .one(c)
                    .await?
                    .is_some(),
                _ => false,
            };
            if taken {
                report.left_alone.push(LeftAlone {
                    email: before.email.clone(),
                    field: field.clone(),
                    reason: text::UNDO_VALUE_TAKEN.render(&[
                        &before.email,
                        field,
                        back.as_str().unwrap_or_default(),
                    ]),
                });
                continue;
            }
            set_field(&mut after, field, back);
            done.insert(field.clone(), json!([cur, back]));
        }
        if let Some(active) = plan.active {
            after.active = active;
            after.deactivated_at = if active { None } else { Some(now) };
        }
        if done.is_empty() && plan.active.is_none() {
            continue;
        }
        let mut am = before.clone().into_active_model();
        am.email = Set(after.email.clone());
        am.external_id = Set(after.external_id.clone());
        am.first_name = Set(after.first_name.clone());
        am.last_name = Set(after.last_name.clone());
        am.profile = Set(after.profile.clone());
        am.active = Set(after.active);
        am.deactivated_at = Set(after.deactivated_at);
        am.updated_at = Set(now);
        am.last_changed_upload_id = Set(Some(undo_id));
        am.update(c).await?;
        let entry = |kind: &str, changes: Option<Value>| upload_change::ActiveModel {
            upload_id: Set(undo_id),
            user_id: Set(uid),
            kind: Set(kind.into()),
            changes: Set(changes),
            ..Default::default()
        };
        if !done.is_empty() {
            log.push(entry("updated", Some(Value::Object(done.clone()))));
            report.updated.push(Reverted {
                email: after.email.clone(),
                fields: done,
            });
        }
        match plan.active {
            Some(true) => {
                log.push(entry("reactivated", Some(json!({"active": [false, true]}))));
                report.reactivated.push(after.email.clone());
            }
            Some(false) => {
                log.push(entry("deactivated", None));
                report.deactivated.push(after.email.clone());
            }
            None => {}
        }
        users.insert(uid, after);
    }
    for chunk in log.chunks(1_000) {
        upload_change::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(c)
            .await?;
    }

    // Links: the inverse of the link log, newest entry first, then the
    // memberships the upload created, then every link of the users it
    // created (not logged: see migration 0014).
    let mut ops: Vec<LinkOp> = Vec::new();
    for l in &link_log {
        let op: LinkOp = match l.kind.as_str() {
            "manager_added" => (l.user_id, "manager_removed", l.target, None),
            "manager_removed" => (l.user_id, "manager_added", l.target, None),
            "role_added" => (l.user_id, "role_removed", None, l.role.clone()),
            "role_removed" => (l.user_id, "role_added", None, l.role.clone()),
            "member_added" => (l.user_id, "member_removed", l.target, None),
            "member_removed" => (l.user_id, "member_added", l.target, None),
            _ => continue,
        };
        ops.push(op);
    }
    // A feed upload's memberships are known by `created_by_upload_id`; an
    // undo's are in its link log (and carry its id too).
    if up.source != crate::upload::UploadSource::Undo {
        for m in &memberships {
            ops.push((m.user_id, "member_removed", Some(m.group_id), None));
        }
    }
    if !created_ids.is_empty() {
        let ids: Vec<i64> = created_ids.iter().copied().collect();
        for chunk in ids.chunks(5_000) {
            for l in user_manager::Entity::find()
                .filter(user_manager::Column::UserId.is_in(chunk.to_vec()))
                .all(c)
                .await?
            {
                ops.push((l.user_id, "manager_removed", Some(l.manager_id), None));
            }
            for r in user_role::Entity::find()
                .filter(user_role::Column::UserId.is_in(chunk.to_vec()))
                .all(c)
                .await?
            {
                ops.push((r.user_id, "role_removed", None, Some(r.role)));
            }
        }
    }
    let mut link_entries: Vec<upload_link_change::ActiveModel> = Vec::new();
    for (uid, kind, target, role) in ops {
        if link_op(c, undo_id, uid, kind, target, role.as_deref()).await? {
            report.links_restored += 1;
            link_entries.push(upload_link_change::ActiveModel {
                upload_id: Set(undo_id),
                user_id: Set(uid),
                kind: Set(kind.into()),
                target: Set(target),
                role: Set(role),
                ..Default::default()
            });
        }
    }
    for chunk in link_entries.chunks(1_000) {
        upload_link_change::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(c)
            .await?;
    }

    // What was left alone is readable beside the undo, as row warnings.
    let warnings: Vec<upload_row_error::ActiveModel> = report
        .left_alone
        .iter()
        .map(|l| upload_row_error::ActiveModel {
            upload_id: Set(undo_id),
            line: Set(0),
            column_name: Set(Some(l.field.clone())),
            severity: Set("warning".into()),
            message: Set(l.reason.clone()),
            ..Default::default()
        })
        .collect();
    for chunk in warnings.chunks(1_000) {
        upload_row_error::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(c)
            .await?;
    }

    upload::Entity::update_many()
        .col_expr(
            upload::Column::RowsUpdated,
            Expr::value((report.updated.len() + report.reactivated.len()) as i64),
        )
        .col_expr(
            upload::Column::RowsDeactivated,
            Expr::value(report.deactivated.len() as i64),
        )
        .filter(upload::Column::Id.eq(undo_id))
        .exec(c)
        .await?;
    // Every stored digest of the tenant is suspect after an undo.
    tenant::Entity::update_many()
        .col_expr(
            tenant::Column::FeedEpoch,
            Expr::col(tenant::Column::FeedEpoch).add(1),
        )
        .filter(tenant::Column::Id.eq(up.tenant_id))
        .exec(c)
        .await?;
    Ok(report)
}

/// Adds or removes one link for the undo `undo_id`; true when it changed
/// something (a link already in the wanted state, or whose group or
/// manager is gone, is skipped). A membership put back names the undo as
/// the upload that created it.
async fn link_op<C: ConnectionTrait>(
    c: &C,
    undo_id: i64,
    uid: i64,
    kind: &str,
    target: Option<i64>,
    role: Option<&str>,
) -> Result<bool, DbErr> {
    Ok(match (kind, target, role) {
        ("manager_removed", Some(m), _) => {
            user_manager::Entity::delete_many()
                .filter(user_manager::Column::UserId.eq(uid))
                .filter(user_manager::Column::ManagerId.eq(m))
                .exec(c)
                .await?
                .rows_affected
                > 0
        }
        ("manager_added", Some(m), _) => {
            let there = user_manager::Entity::find_by_id((uid, m)).one(c).await?;
            let manager = user::Entity::find_by_id(m).one(c).await?;
            if there.is_some() || manager.is_none() {
                false
            } else {
                user_manager::ActiveModel {
                    user_id: Set(uid),
                    manager_id: Set(m),
                }
                .insert(c)
                .await?;
                true
            }
        }
        ("role_removed", _, Some(r)) => {
            user_role::Entity::delete_many()
                .filter(user_role::Column::UserId.eq(uid))
                .filter(user_role::Column::Role.eq(r))
                .exec(c)
                .await?
                .rows_affected
                > 0
        }
        ("role_added", _, Some(r)) => {
            if user_role::Entity::find_by_id((uid, r.to_string()))
                .one(c)
                .await?
                .is_some()
            {
                false
            } else {
                user_role::ActiveModel {
                    user_id: Set(uid),
                    role: Set(r.to_string()),
                }
                .insert(c)
                .await?;
                true
            }
        }
        ("member_removed", Some(g), _) => {
            group_membership::Entity::delete_many()
                .filter(group_membership::Column::GroupId.eq(g))
                .filter(group_membership::Column::UserId.eq(uid))
                .exec(c)
                .await?
                .rows_affected
                > 0
        }
        ("member_added", Some(g), _) => {
            let there = group_membership::Entity::find_by_id((g, uid))
                .one(c)
                .await?;
            let group = group::Entity::find_by_id(g).one(c).await?;
            if there.is_some() || group.is_none() {
                false
            } else {
                group_membership::ActiveModel {
                    group_id: Set(g),
                    user_id: Set(uid),
                    created_by_upload_id: Set(Some(undo_id)),
                    created_at: Set(Utc::now()),
                }
                .insert(c)
                .await?;
                true
            }
        }
        _ => false,
    })
}
