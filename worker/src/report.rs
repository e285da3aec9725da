//! Upload history and user listings, for the CLI (and later the admin API).

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement,
};
use serde::Serialize;

use crate::db::entity::{notification, notification_attempt, upload, upload_row_error, user};
use crate::db::queries;
use crate::upload::UploadState;

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
    pub notifications: Vec<NotificationView>,
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
    pub state: Option<UploadState>,
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
        q = q.filter(upload::Column::State.eq(*state));
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
    let notifications = notifications_of(db, id).await?;
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

/// A person an upload names: who an approval would deactivate, whom an
/// undo would change.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Person {
    /// The user's id (the cursor of a page).
    pub user_id: i64,
    /// Email address.
    pub email: String,
    /// The HR system's employee ID.
    pub external_id: Option<String>,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
}

impl From<user::Model> for Person {
    fn from(u: user::Model) -> Self {
        Person {
            user_id: u.id,
            email: u.email,
            external_id: u.external_id,
            first_name: u.first_name,
            last_name: u.last_name,
        }
    }
}

/// The people a held upload would deactivate if approved, by user id,
/// after `after`, at most `limit`.
pub async fn held_people<C: ConnectionTrait>(
    db: &C,
    upload_id: i64,
    after: Option<i64>,
    limit: u64,
) -> Result<Vec<Person>, DbErr> {
    use crate::db::entity::upload_deactivation;
    use sea_orm::sea_query::Query;
    let held = Query::select()
        .column(upload_deactivation::Column::UserId)
        .from(upload_deactivation::Entity)
        .and_where(upload_deactivation::Column::UploadId.eq(upload_id))
        .to_owned();
    Ok(user::Entity::find()
        .filter(user::Column::Id.in_subquery(held))
        .filter(user::Column::Id.gt(after.unwrap_or(0)))
        .order_by_asc(user::Column::Id)
        .limit(clamp(limit))
        .all(db)
        .await?
        .into_iter()
        .map(Person::from)
        .collect())
}

/// People as CSV (email, external ID, first and last name), for a
/// spreadsheet.
pub fn people_csv(list: &[Person]) -> String {
    use crate::map::tools::csv_cell;
    let mut out = String::from("email,external_id,first_name,last_name\n");
    for p in list {
        out.push_str(&format!(
            "{},{},{},{}\n",
            csv_cell(&p.email),
            csv_cell(p.external_id.as_deref().unwrap_or("")),
            csv_cell(&p.first_name),
            csv_cell(&p.last_name)
        ));
    }
    out
}

/// A notification with its attempts, for an upload's detail.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct NotificationView {
    /// The notification.
    #[serde(flatten)]
    pub notification: notification::Model,
    /// Every attempt, oldest first.
    pub attempt_log: Vec<notification_attempt::Model>,
}

/// An upload's notifications and their attempts.
pub async fn notifications_of<C: ConnectionTrait>(
    db: &C,
    upload_id: i64,
) -> Result<Vec<NotificationView>, DbErr> {
    let list = notification::Entity::find()
        .filter(notification::Column::UploadId.eq(upload_id))
        .order_by_asc(notification::Column::Id)
        .all(db)
        .await?;
    let mut out = Vec::with_capacity(list.len());
    for n in list {
        let attempt_log = notification_attempt::Entity::find()
            .filter(notification_attempt::Column::NotificationId.eq(n.id))
            .order_by_asc(notification_attempt::Column::Id)
            .all(db)
            .await?;
        out.push(NotificationView {
            notification: n,
            attempt_log,
        });
    }
    Ok(out)
}
