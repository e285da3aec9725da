//! Upload history and user listings, for the CLI (and later the admin API).

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement,
};
use serde::Serialize;

use crate::db::entity::{upload, upload_row_error, user};
use crate::db::queries;

/// SQL LIMITs are signed 64-bit: a larger request means "all".
fn clamp(limit: u64) -> u64 {
    limit.min(i64::MAX as u64)
}

/// One upload with its row problems, as `uploads show` prints it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadDetail {
    /// The upload row.
    #[serde(flatten)]
    pub upload: upload::Model,
    /// Tenant slug.
    pub tenant: String,
    /// Per-row errors, by line (at most `limit`).
    pub errors: Vec<upload_row_error::Model>,
    /// Webhook notifications of its end, each with every attempt.
    pub notifications: Vec<crate::notify::NotificationView>,
}

/// Newest uploads of a tenant first.
pub async fn uploads<C: ConnectionTrait>(
    db: &C,
    tenant_id: i64,
    limit: u64,
) -> Result<Vec<upload::Model>, DbErr> {
    uploads_page(db, tenant_id, &UploadFilter::default(), limit).await
}

/// Which uploads a page of the history shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadFilter {
    /// Only uploads older than this id (the cursor: the last id of the
    /// previous page).
    pub before: Option<i64>,
    /// Only uploads in this state.
    pub state: Option<String>,
    /// Only uploads queued at or after this time.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
}

/// Newest uploads of a tenant first, filtered, at most `limit` (1 to 1000).
pub async fn uploads_page<C: ConnectionTrait>(
    db: &C,
    tenant_id: i64,
    filter: &UploadFilter,
    limit: u64,
) -> Result<Vec<upload::Model>, DbErr> {
    let mut q = upload::Entity::find().filter(upload::Column::TenantId.eq(tenant_id));
    if let Some(before) = filter.before {
        q = q.filter(upload::Column::Id.lt(before));
    }
    if let Some(state) = &filter.state {
        q = q.filter(upload::Column::State.eq(state.clone()));
    }
    if let Some(since) = filter.since {
        q = q.filter(upload::Column::QueuedAt.gte(since));
    }
    q.order_by_desc(upload::Column::Id)
        .limit(clamp(limit))
        .all(db)
        .await
}

/// One upload and up to `error_limit` of its row errors.
pub async fn upload_detail<C: ConnectionTrait>(
    db: &C,
    id: i64,
    error_limit: u64,
) -> Result<Option<UploadDetail>, DbErr> {
    let Some(up) = upload::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    let tenant = crate::db::entity::tenant::Entity::find_by_id(up.tenant_id)
        .one(db)
        .await?
        .map(|t| t.slug)
        .unwrap_or_default();
    let errors = upload_row_error::Entity::find()
        .filter(upload_row_error::Column::UploadId.eq(id))
        .order_by_asc(upload_row_error::Column::Line)
        .order_by_asc(upload_row_error::Column::Id)
        .limit(clamp(error_limit))
        .all(db)
        .await?;
    let notifications = crate::notify::of_upload(db, id).await?;
    Ok(Some(UploadDetail {
        upload: up,
        tenant,
        errors,
        notifications,
    }))
}

/// One entry of an upload's change log.
#[derive(Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Change {
    /// `created`, `updated`, `reactivated` or `deactivated`; for links,
    /// `manager_added`, `manager_removed`, `role_added`, `role_removed`,
    /// `member_added` or `member_removed`.
    pub kind: String,
    /// The user's current email.
    pub email: String,
    /// For updates: field -> [old, new]; for links, the `manager` (email),
    /// `role` or `group` (key).
    pub changes: Option<serde_json::Value>,
}

/// What an upload did, user by user: created, updated (with old and new
/// values), reactivated, deactivated. Creations come from the users the
/// upload created (`users.created_by_upload_id`), the rest from the change
/// log (migration 0013).
pub async fn changes<C: ConnectionTrait>(db: &C, upload_id: i64) -> Result<Vec<Change>, DbErr> {
    use crate::db::entity::upload_change;
    let created = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            queries::of(db.get_database_backend()).created_by_upload,
            [upload_id.into()],
        ))
        .await?;
    let mut out = Vec::with_capacity(created.len());
    for r in created {
        out.push(Change {
            email: r.try_get("", "email")?,
            kind: "created".into(),
            changes: None,
        });
    }
    let list = upload_change::Entity::find()
        .filter(upload_change::Column::UploadId.eq(upload_id))
        .order_by_asc(upload_change::Column::Kind)
        .order_by_asc(upload_change::Column::Id)
        .all(db)
        .await?;
    let ids: Vec<i64> = list.iter().map(|c| c.user_id).collect();
    let emails: std::collections::HashMap<i64, String> = user::Entity::find()
        .filter(user::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u.email))
        .collect();
    out.extend(list.into_iter().map(|c| Change {
        email: emails.get(&c.user_id).cloned().unwrap_or_default(),
        kind: c.kind,
        changes: c.changes,
    }));
    out.extend(link_changes(db, upload_id).await?);
    Ok(out)
}

/// The link log of an upload (migration 0014): managers, roles and
/// memberships it added or removed, each naming the manager's email, the
/// role or the group's key.
async fn link_changes<C: ConnectionTrait>(db: &C, upload_id: i64) -> Result<Vec<Change>, DbErr> {
    link_changes_between(db, upload_id, 0, i64::MAX).await
}

/// The link-log entries of an upload with ids in `(after, upto]`.
async fn link_changes_between<C: ConnectionTrait>(
    db: &C,
    upload_id: i64,
    after: i64,
    upto: i64,
) -> Result<Vec<Change>, DbErr> {
    use crate::db::entity::{group, upload_link_change};
    let list = upload_link_change::Entity::find()
        .filter(upload_link_change::Column::UploadId.eq(upload_id))
        .filter(upload_link_change::Column::Id.gt(after))
        .filter(upload_link_change::Column::Id.lte(upto))
        .order_by_asc(upload_link_change::Column::Id)
        .all(db)
        .await?;
    if list.is_empty() {
        return Ok(Vec::new());
    }
    let people: Vec<i64> = list
        .iter()
        .flat_map(|l| {
            let manager = l.target.filter(|_| l.kind.starts_with("manager_"));
            std::iter::once(l.user_id).chain(manager)
        })
        .collect();
    let mut emails = std::collections::HashMap::new();
    for chunk in people.chunks(5_000) {
        for u in user::Entity::find()
            .filter(user::Column::Id.is_in(chunk.to_vec()))
            .all(db)
            .await?
        {
            emails.insert(u.id, u.email);
        }
    }
    let group_ids: Vec<i64> = list
        .iter()
        .filter(|l| l.kind.starts_with("member_"))
        .filter_map(|l| l.target)
        .collect();
    let groups: std::collections::HashMap<i64, String> = group::Entity::find()
        .filter(group::Column::Id.is_in(group_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|g| (g.id, g.group_key))
        .collect();
    Ok(list
        .into_iter()
        .map(|l| {
            let detail = if let Some(role) = &l.role {
                serde_json::json!({ "role": role })
            } else if l.kind.starts_with("manager_") {
                let m = l.target.and_then(|m| emails.get(&m)).cloned();
                serde_json::json!({ "manager": m })
            } else {
                let g = l.target.and_then(|g| groups.get(&g)).cloned();
                serde_json::json!({ "group": g })
            };
            Change {
                email: emails.get(&l.user_id).cloned().unwrap_or_default(),
                kind: l.kind,
                changes: Some(detail),
            }
        })
        .collect())
}

/// The change log as a table.
pub fn changes_table(list: &[Change]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            let detail = c
                .changes
                .as_ref()
                .and_then(|v| v.as_object())
                .map(|m| {
                    m.iter()
                        .map(|(field, v)| {
                            if let serde_json::Value::String(s) = v {
                                // A link's manager, role or group.
                                return format!("{field}: {s}");
                            }
                            let pair = v.as_array().cloned().unwrap_or_default();
                            let show = |x: Option<&serde_json::Value>| match x {
                                Some(serde_json::Value::String(s)) => s.clone(),
                                Some(serde_json::Value::Null) | None => "(none)".into(),
                                Some(other) => other.to_string(),
                            };
                            format!("{field}: {} -> {}", show(pair.first()), show(pair.get(1)))
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            vec![c.kind.clone(), c.email.clone(), detail]
        })
        .collect();
    table(&["CHANGE", "USER", "DETAILS"], &rows)
}

/// A user with their roles, managers and group memberships.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserListing {
    /// The user row.
    #[serde(flatten)]
    pub user: user::Model,
    /// Roles, e.g. `Learner`, `Manager`.
    pub roles: Vec<String>,
    /// Managers' emails.
    pub managers: Vec<String>,
    /// Group IDs.
    pub groups: Vec<String>,
}

/// Users of a tenant by email, with their links.
pub async fn users<C: ConnectionTrait>(db: &C, tenant_id: i64) -> Result<Vec<UserListing>, DbErr> {
    let list = user::Entity::find()
        .filter(user::Column::TenantId.eq(tenant_id))
        .order_by_asc(user::Column::Email)
        .all(db)
        .await?;
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            queries::of(db.get_database_backend()).user_links,
            [tenant_id.into()],
        ))
        .await?;
    let split = |s: String| -> Vec<String> {
        s.split(',')
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut links = std::collections::HashMap::new();
    for r in rows {
        let id: i64 = r.try_get("", "id")?;
        let roles: Vec<String> = split(r.try_get("", "roles")?)
            .into_iter()
            .map(|role| match crate::map::Role::parse(&role) {
                Some(r) => r.display_name().to_string(),
                None => role,
            })
            .collect();
        links.insert(
            id,
            (
                roles,
                split(r.try_get("", "managers")?),
                split(r.try_get("", "groups")?),
            ),
        );
    }
    Ok(list
        .into_iter()
        .map(|user| {
            let (roles, managers, groups) = links.remove(&user.id).unwrap_or_default();
            UserListing {
                user,
                roles,
                managers,
                groups,
            }
        })
        .collect())
}

/// Renders rows as a left-aligned text table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(c.chars().count());
            s.push_str(c);
            if i + 1 < cells.len() {
                s.push_str(&" ".repeat(pad + 2));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// The upload history as a table.
pub fn uploads_table(list: &[upload::Model]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|u| {
            vec![
                u.id.to_string(),
                u.state.clone(),
                u.queued_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                u.object_key.clone(),
                u.rows_read.to_string(),
                u.rows_created.to_string(),
                u.rows_updated.to_string(),
                u.rows_unchanged.to_string(),
                u.rows_deactivated.to_string(),
                u.rows_rejected.to_string(),
                u.failure_reason
                    .clone()
                    .or_else(|| u.hold_reason.clone())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "STATE",
            "QUEUED (UTC)",
            "KEY",
            "READ",
            "CREATED",
            "UPDATED",
            "UNCHANGED",
            "DEACTIVATED",
            "REJECTED",
            "REASON",
        ],
        &rows,
    )
}

/// Where an upload's file is, as its admin would name it: an S3 URL, or a
/// local path for the drop folder and `userfeed import`.
pub fn object_location(source: &str, bucket: &str, key: &str) -> String {
    match source {
        "s3" => format!("s3://{bucket}/{key}"),
        // The file moves on as its upload ends (intake::folder).
        crate::intake::folder::SOURCE => format!("{bucket}/{{processing,processed,failed}}/{key}"),
        _ => std::path::Path::new(bucket).join(key).display().to_string(),
    }
}

/// One upload in full, for people.
pub fn upload_text(d: &UploadDetail) -> String {
    let u = &d.upload;
    let ts = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|| "-".into())
    };
    let mut s = format!(
        "upload {id} ({tenant})\n  object:      {object}\n  state:       {state}\n  attempts:    {attempts}\n  queued:      {queued}\n  started:     {started}\n  finished:    {finished}\n  rows read:   {read}\n  created:     {created}\n  updated:     {updated}\n  unchanged:   {unchanged}\n  deactivated: {deact}\n  rejected:    {rejected}\n",
        id = u.id,
        tenant = d.tenant,
        object = object_location(&u.source, &u.bucket, &u.object_key),
        state = u.state,
        attempts = u.attempts,
        queued = ts(Some(u.queued_at)),
        started = ts(u.started_at),
        finished = ts(u.finished_at),
        read = u.rows_read,
        created = u.rows_created,
        updated = u.rows_updated,
        unchanged = u.rows_unchanged,
        deact = u.rows_deactivated,
        rejected = u.rows_rejected,
    );
    if let Some(r) = &u.failure_reason {
        s.push_str(&format!("  reason:      {r}\n"));
    }
    if let Some(r) = &u.hold_reason {
        s.push_str(&format!("  held:        {r}\n"));
        match &u.hold_resolution {
            Some(res) => s.push_str(&format!("  resolution:  {res} {}\n", ts(u.resolved_at))),
            None => s.push_str(&format!(
                "  waiting:     {} deactivation(s); `userfeed uploads approve {id}` or `userfeed uploads reject {id}`\n",
                u.held_deactivations,
                id = u.id
            )),
        }
    }
    if let Some(n) = u.superseded_by {
        s.push_str(&format!(
            "  superseded:  by upload {n}, a newer full list of the same tenant\n"
        ));
    }
    if let Some(n) = u.retry_of {
        s.push_str(&format!("  retry of:    upload {n}\n"));
    }
    if u.state == crate::jobs::UploadState::Failed.as_str() && u.source == "s3" {
        s.push_str(&format!(
            "  retry:       `userfeed uploads retry {}` once the cause is fixed (refused if a newer file has applied)\n",
            u.id
        ));
    }
    if !d.errors.is_empty() {
        s.push_str("\nrow problems:\n");
        s.push_str(&errors_table(&d.errors));
    }
    if u.row_problems_dropped > 0 {
        s.push_str(&format!(
            "\n... and {} more row problem(s), counted but not kept (limits.max_row_problems)\n",
            u.row_problems_dropped
        ));
    }
    for n in &d.notifications {
        let n_ = &n.notification;
        s.push_str(&format!(
            "\nwebhook {} ({}): {} after {} attempt(s){}\n",
            n_.id,
            n_.event,
            n_.state,
            n_.attempts,
            n_.last_error
                .as_deref()
                .map(|e| format!("; last: {e}"))
                .unwrap_or_default()
        ));
        for a in &n.attempt_log {
            s.push_str(&format!(
                "  {} {} -> {} ({} ms)\n",
                a.attempted_at.format("%Y-%m-%d %H:%M:%S"),
                a.url,
                a.status
                    .map(|c| c.to_string())
                    .or_else(|| a.error.clone())
                    .unwrap_or_default(),
                a.duration_ms
            ));
        }
    }
    s
}

/// Row errors and warnings as a table.
pub fn errors_table(errors: &[upload_row_error::Model]) -> String {
    let rows: Vec<Vec<String>> = errors
        .iter()
        .map(|e| {
            vec![
                e.line.to_string(),
                e.severity.clone(),
                e.column_name.clone().unwrap_or_default(),
                e.message.clone(),
            ]
        })
        .collect();
    table(&["LINE", "SEVERITY", "COLUMN", "MESSAGE"], &rows)
}

/// Users as a table, with their roles, managers and groups.
pub fn users_table(list: &[UserListing]) -> String {
    let dash = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(",")
        }
    };
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|l| {
            let u = &l.user;
            vec![
                u.email.clone(),
                u.external_id.clone().unwrap_or_else(|| "-".into()),
                u.first_name.clone(),
                u.last_name.clone(),
                if u.active { "active" } else { "inactive" }.into(),
                if u.feed_managed { "feed" } else { "platform" }.into(),
                dash(&l.roles),
                dash(&l.managers),
                dash(&l.groups),
            ]
        })
        .collect();
    table(
        &[
            "EMAIL",
            "EXTERNAL ID",
            "FIRST NAME",
            "LAST NAME",
            "STATUS",
            "SOURCE",
            "ROLES",
            "MANAGERS",
            "GROUPS",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_aligns_columns_by_widest_cell() {
        let t = super::table(
            &["A", "BB"],
            &[vec!["xxx".into(), "y".into()], vec!["z".into(), "".into()]],
        );
        assert_eq!(t, "A    BB\nxxx  y\nz\n");
    }
}

/// What an undo did, or would do, for people.
pub fn undo_text(r: &crate::apply::undo::UndoReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let (head, verb) = match r.undo_id {
        Some(u) => (format!("upload {} undone by upload {u}", r.upload_id), ""),
        None => (
            format!("preview: undoing upload {} would", r.upload_id),
            "(nothing was changed) ",
        ),
    };
    let _ = writeln!(
        out,
        "{head}: {} deactivated, {} reactivated, {} updated, {} link(s) restored {verb}",
        r.deactivated.len(),
        r.reactivated.len(),
        r.updated.len(),
        r.links_restored
    );
    let list = |out: &mut String, title: &str, emails: &[String]| {
        if !emails.is_empty() {
            let _ = writeln!(out, "{title}: {}", emails.join(", "));
        }
    };
    list(&mut out, "deactivated", &r.deactivated);
    list(&mut out, "reactivated", &r.reactivated);
    for u in &r.updated {
        let fields: Vec<String> = u
            .fields
            .iter()
            .map(|(f, v)| format!("{f}: {} -> {}", v[0], v[1]))
            .collect();
        let _ = writeln!(out, "updated {}: {}", u.email, fields.join("; "));
    }
    for l in &r.left_alone {
        let _ = writeln!(out, "left alone: {}", l.reason);
    }
    out
}

/// Where a page of an upload's row problems ends: the last problem's line
/// and id (problems are listed by line, then as found).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProblemCursor {
    /// The last line shown.
    pub line: i64,
    /// The last problem shown.
    pub id: i64,
}

impl std::fmt::Display for ProblemCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.line, self.id)
    }
}

impl std::str::FromStr for ProblemCursor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a cursor this API gave out");
        let (line, id) = s.split_once('-').ok_or_else(bad)?;
        Ok(ProblemCursor {
            line: line.parse().map_err(|_| bad())?,
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

/// A page of an upload's row problems after `after`, by line.
pub async fn problems_page<C: ConnectionTrait>(
    db: &C,
    upload_id: i64,
    after: Option<ProblemCursor>,
    limit: u64,
) -> Result<Vec<upload_row_error::Model>, DbErr> {
    use sea_orm::Condition;
    let mut q =
        upload_row_error::Entity::find().filter(upload_row_error::Column::UploadId.eq(upload_id));
    if let Some(c) = after {
        q = q.filter(
            Condition::any()
                .add(upload_row_error::Column::Line.gt(c.line))
                .add(
                    Condition::all()
                        .add(upload_row_error::Column::Line.eq(c.line))
                        .add(upload_row_error::Column::Id.gt(c.id)),
                ),
        );
    }
    q.order_by_asc(upload_row_error::Column::Line)
        .order_by_asc(upload_row_error::Column::Id)
        .limit(clamp(limit))
        .all(db)
        .await
}

/// Where a page of an upload's change log ends: creations come first (by
/// user), then the change log, then the link log, each by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeCursor {
    /// After this created user.
    Created(i64),
    /// After this change-log entry.
    Changed(i64),
    /// After this link-log entry.
    Linked(i64),
}

impl std::fmt::Display for ChangeCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangeCursor::Created(n) => write!(f, "created-{n}"),
            ChangeCursor::Changed(n) => write!(f, "changed-{n}"),
            ChangeCursor::Linked(n) => write!(f, "linked-{n}"),
        }
    }
}

impl std::str::FromStr for ChangeCursor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a cursor this API gave out");
        let (kind, n) = s.split_once('-').ok_or_else(bad)?;
        let n: i64 = n.parse().map_err(|_| bad())?;
        match kind {
            "created" => Ok(ChangeCursor::Created(n)),
            "changed" => Ok(ChangeCursor::Changed(n)),
            "linked" => Ok(ChangeCursor::Linked(n)),
            _ => Err(bad()),
        }
    }
}

/// A page of what an upload changed, after `after`; with the cursor of
/// its last entry when the page is full.
pub async fn changes_page<C: ConnectionTrait>(
    db: &C,
    upload_id: i64,
    after: Option<ChangeCursor>,
    limit: u64,
) -> Result<(Vec<Change>, Option<ChangeCursor>), DbErr> {
    use crate::db::entity::{upload_change, upload_link_change};
    let mut out = Vec::new();
    let mut last = None;
    let want = |out: &Vec<Change>| clamp(limit.saturating_sub(out.len() as u64));
    let created_after = match after {
        None => Some(0),
        Some(ChangeCursor::Created(n)) => Some(n),
        _ => None,
    };
    if let Some(a) = created_after {
        for u in user::Entity::find()
            .filter(user::Column::CreatedByUploadId.eq(upload_id))
            .filter(user::Column::Id.gt(a))
            .order_by_asc(user::Column::Id)
            .limit(want(&out))
            .all(db)
            .await?
        {
            last = Some(ChangeCursor::Created(u.id));
            out.push(Change {
                kind: "created".into(),
                email: u.email,
                changes: None,
            });
        }
    }
    let changed_after = match after {
        None | Some(ChangeCursor::Created(_)) => Some(0),
        Some(ChangeCursor::Changed(n)) => Some(n),
        Some(ChangeCursor::Linked(_)) => None,
    };
    if let (Some(a), true) = (changed_after, want(&out) > 0) {
        let list = upload_change::Entity::find()
            .filter(upload_change::Column::UploadId.eq(upload_id))
            .filter(upload_change::Column::Id.gt(a))
            .order_by_asc(upload_change::Column::Id)
            .limit(want(&out))
            .all(db)
            .await?;
        let emails: std::collections::HashMap<i64, String> = user::Entity::find()
            .filter(user::Column::Id.is_in(list.iter().map(|c| c.user_id)))
            .all(db)
            .await?
            .into_iter()
            .map(|u| (u.id, u.email))
            .collect();
        for c in list {
            last = Some(ChangeCursor::Changed(c.id));
            out.push(Change {
                email: emails.get(&c.user_id).cloned().unwrap_or_default(),
                kind: c.kind,
                changes: c.changes,
            });
        }
    }
    let linked_after = match after {
        Some(ChangeCursor::Linked(n)) => n,
        _ => 0,
    };
    if want(&out) > 0 {
        let ids: Vec<i64> = upload_link_change::Entity::find()
            .filter(upload_link_change::Column::UploadId.eq(upload_id))
            .filter(upload_link_change::Column::Id.gt(linked_after))
            .order_by_asc(upload_link_change::Column::Id)
            .limit(want(&out))
            .all(db)
            .await?
            .into_iter()
            .map(|l| l.id)
            .collect();
        if let Some(&max) = ids.last() {
            let entries = link_changes_between(db, upload_id, linked_after, max).await?;
            out.extend(entries);
            last = Some(ChangeCursor::Linked(max));
        }
    }
    let next = if out.len() as u64 >= limit {
        last
    } else {
        None
    };
    Ok((out, next))
}

/// Row problems as CSV (line, severity, column, message), for a spreadsheet.
pub fn problems_csv(list: &[upload_row_error::Model]) -> String {
    use crate::map::tools::csv_cell;
    let mut out = String::from("line,severity,column,message\n");
    for e in list {
        out.push_str(&format!(
            "{},{},{},{}\n",
            e.line,
            e.severity,
            csv_cell(e.column_name.as_deref().unwrap_or("")),
            csv_cell(&e.message)
        ));
    }
    out
}
