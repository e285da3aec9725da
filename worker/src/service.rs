//! The service layer: every operation the CLI and the admin API offer, with
//! the caller's reach checked in one place. The CLI calls these as the
//! platform; the API as the token's scope. Neither surface holds business
//! logic, so an operation refused on one is refused on the other with the
//! same reason.

use sea_orm::{DatabaseConnection, DbErr, EntityTrait};
use serde::{Deserialize, Serialize};

use crate::apply::holds::{self, HoldError};
use crate::apply::undo::{self, UndoError, UndoReport};
use crate::credentials::{self, Connection, CredentialsError, Iam, NewKey};
use crate::db::entity::{group, upload, upload_row_error};
use crate::jobs::retry::{self, RetryError};
use crate::map::{FieldType, Mapping, MatchKey};
use crate::report::{self, Change, UploadDetail};
use crate::tenants::{self, Tenant, TenantError};

/// Who is asking: the platform (operators, the CLI) reaches every tenant;
/// a tenant's admin reaches only their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Every tenant.
    Platform,
    /// Only the tenant with this slug.
    Tenant(String),
}

impl Caller {
    /// Whether the caller may see tenant `slug`.
    pub fn reaches(&self, slug: &str) -> bool {
        match self {
            Caller::Platform => true,
            Caller::Tenant(own) => own == slug,
        }
    }
}

/// Why an operation did not happen. The message is for the person asking
/// and names no other tenant's data.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No such object, or not one the caller reaches (the two are
    /// indistinguishable on purpose).
    #[error("{0}")]
    NotFound(String),
    /// The operation is not allowed in the object's current state.
    #[error("{0}")]
    Refused(String),
    /// The request itself is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The caller may not do this at all (a tenant token creating tenants).
    #[error("{0}")]
    Forbidden(String),
    /// A service this one depends on (S3, the file system) failed; the
    /// message names what, for the caller to try again later.
    #[error("{0}")]
    Unavailable(String),
    /// Database failure (logged; shown only as a generic message by the API).
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

impl From<TenantError> for ServiceError {
    fn from(e: TenantError) -> Self {
        match e {
            TenantError::NotFound(_) => ServiceError::NotFound(e.to_string()),
            TenantError::Db(db) => ServiceError::Db(db),
            TenantError::Missing(_) => ServiceError::NotFound(e.to_string()),
            TenantError::Exists(_) | TenantError::Overlap { .. } | TenantError::InUse(_) => {
                ServiceError::Refused(e.to_string())
            }
            other => ServiceError::Invalid(other.to_string()),
        }
    }
}

impl From<UndoError> for ServiceError {
    fn from(e: UndoError) -> Self {
        match e {
            UndoError::Db(db) => ServiceError::Db(db),
            UndoError::NotFound(_) => ServiceError::NotFound(e.to_string()),
            other => ServiceError::Refused(other.to_string()),
        }
    }
}

impl From<HoldError> for ServiceError {
    fn from(e: HoldError) -> Self {
        match e {
            HoldError::Db(db) => ServiceError::Db(db),
            HoldError::NotFound(_) => ServiceError::NotFound(e.to_string()),
            other => ServiceError::Refused(other.to_string()),
        }
    }
}

impl From<RetryError> for ServiceError {
    fn from(e: RetryError) -> Self {
        match e {
            RetryError::Db(db) => ServiceError::Db(db),
            RetryError::NotFound(_) => ServiceError::NotFound(e.to_string()),
            other => ServiceError::Refused(other.to_string()),
        }
    }
}

fn no_tenant(slug: &str) -> ServiceError {
    ServiceError::NotFound(TenantError::NotFound(slug.to_string()).to_string())
}

fn no_upload(id: i64) -> ServiceError {
    ServiceError::NotFound(format!("no upload {id}"))
}

/// The tenants the caller reaches, by slug.
pub async fn tenants(
    db: &DatabaseConnection,
    caller: &Caller,
) -> Result<Vec<Tenant>, ServiceError> {
    let all = tenants::list(db).await?;
    Ok(all
        .into_iter()
        .filter(|t| caller.reaches(&t.slug))
        .collect())
}

/// A new tenant, as asked for by `tenant add` and `POST /tenants`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// Short unique name (lowercase letters, digits, dashes).
    pub slug: String,
    /// Bucket of its S3 drop location; empty for the drop folder only.
    #[serde(default)]
    pub bucket: String,
    /// Key prefix in the bucket; the slug when not given.
    #[serde(default)]
    pub prefix: Option<String>,
    /// How people are matched across files.
    pub match_on: MatchKey,
}

/// Creates a tenant. Only the platform may.
pub async fn add_tenant(
    db: &DatabaseConnection,
    caller: &Caller,
    new: &NewTenant,
) -> Result<Tenant, ServiceError> {
    if *caller != Caller::Platform {
        return Err(ServiceError::Forbidden(
            "only a platform token can create tenants".into(),
        ));
    }
    let prefix = new
        .prefix
        .clone()
        .unwrap_or_else(|| format!("{}/", new.slug));
    Ok(tenants::add(db, &new.slug, &new.bucket, &prefix, new.match_on).await?)
}

/// A tenant's users with their roles, managers and groups.
pub async fn users(
    db: &DatabaseConnection,
    caller: &Caller,
    slug: &str,
) -> Result<Vec<report::UserListing>, ServiceError> {
    let t = tenant(db, caller, slug).await?;
    Ok(report::users(db, t.id).await?)
}

/// New safety-cap limits; a field left out keeps its value.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// Hold an upload deactivating more than this % of the active
    /// feed-managed users...
    pub hold_over_percent: Option<i32>,
    /// ...and more than this many.
    pub hold_over_count: Option<i32>,
}

/// Changes a tenant's settings.
pub async fn set_tenant(
    db: &DatabaseConnection,
    caller: &Caller,
    slug: &str,
    settings: &TenantSettings,
) -> Result<Tenant, ServiceError> {
    tenant(db, caller, slug).await?;
    Ok(tenants::set_hold_limits(
        db,
        slug,
        settings.hold_over_percent,
        settings.hold_over_count,
    )
    .await?)
}

/// A tenant's mapping.
pub async fn mapping(
    db: &DatabaseConnection,
    caller: &Caller,
    slug: &str,
) -> Result<Mapping, ServiceError> {
    tenant(db, caller, slug)
        .await?
        .mapping
        .ok_or_else(|| ServiceError::NotFound(format!("tenant {slug:?} has no mapping yet")))
}

/// Replaces a tenant's mapping, checked against its match key and its
/// profile fields.
pub async fn set_mapping(
    db: &DatabaseConnection,
    caller: &Caller,
    slug: &str,
    mapping: &Mapping,
) -> Result<Tenant, ServiceError> {
    let t = tenant(db, caller, slug).await?;
    mapping
        .check(t.match_key)
        .map_err(|e| ServiceError::Invalid(e.to_string()))?;
    Ok(tenants::set_mapping(db, slug, mapping).await?)
}

/// A tenant's groups, by key.
pub async fn groups(
    db: &DatabaseConnection,
    caller: &Caller,
    slug: &str,
) -> Result<Vec<group::Model>, ServiceError> {
    tenant(db, caller, slug).await?;
    Ok(crate::groups::list(db, slug).await?)
}

/// A group files can add people to.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    /// The ID files name it by.
    pub id: String,
    /// Its name on the platform.
    pub name: String,
}

/// Adds a group to a tenant.
pub async fn add_group(
    db: &DatabaseConnection,
    caller: &Caller,
    slug: &str,
    new: &NewGroup,
) -> Result<group::Model, ServiceError> {
    tenant(db, caller, slug).await?;
    Ok(crate::groups::add(db, slug, &new.id, &new.name).await?)
}

/// What removing a group did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RemovedGroup {
    /// The group's key.
    pub id: String,
    /// Memberships removed with it.
    pub memberships: u64,
}

/// Removes a group and its memberships.
pub async fn remove_group(
    db: &DatabaseConnection,
    caller: &Caller,
    slug: &str,
    key: &str,
) -> Result<RemovedGroup, ServiceError> {
    tenant(db, caller, slug).await?;
    let memberships = crate::groups::remove(db, slug, key).await?;
    Ok(RemovedGroup {
        id: key.to_string(),
        memberships,
    })
}

/// Removes a custom profile field (refused while the mapping fills it).
pub async fn remove_profile_field(
    db: &DatabaseConnection,
    caller: &Caller,
    slug: &str,
    key: &str,
) -> Result<(), ServiceError> {
    tenant(db, caller, slug).await?;
    Ok(tenants::remove_profile_field(db, slug, key).await?)
}

/// A custom profile field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileField {
    /// Its key, as mappings name it.
    pub key: String,
    /// Its type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
}

/// A tenant's custom profile fields, by key.
pub async fn profile_fields(
    db: &DatabaseConnection,
    caller: &Caller,
    slug: &str,
) -> Result<Vec<ProfileField>, ServiceError> {
    let t = tenant(db, caller, slug).await?;
    Ok(t.profile_fields
        .into_iter()
        .map(|(key, field_type)| ProfileField { key, field_type })
        .collect())
}

/// Adds a custom profile field to a tenant.
pub async fn add_profile_field(
    db: &DatabaseConnection,
    caller: &Caller,
    slug: &str,
    field: &ProfileField,
) -> Result<(), ServiceError> {
    tenant(db, caller, slug).await?;
    Ok(tenants::add_profile_field(db, slug, &field.key, field.field_type).await?)
}

/// One tenant.
pub async fn tenant(
    db: &DatabaseConnection,
    caller: &Caller,
    slug: &str,
) -> Result<Tenant, ServiceError> {
    if !caller.reaches(slug) {
        return Err(no_tenant(slug));
    }
    Ok(tenants::by_slug(db, slug).await?)
}

/// A tenant's uploads, newest first.
pub async fn uploads(
    db: &DatabaseConnection,
    caller: &Caller,
    slug: &str,
    limit: u64,
) -> Result<Vec<upload::Model>, ServiceError> {
    uploads_page(db, caller, slug, &report::UploadFilter::default(), limit).await
}

/// A page of a tenant's uploads, newest first (see [`report::UploadFilter`]).
pub async fn uploads_page(
    db: &DatabaseConnection,
    caller: &Caller,
    slug: &str,
    filter: &report::UploadFilter,
    limit: u64,
) -> Result<Vec<upload::Model>, ServiceError> {
    if let Some(state) = &filter.state
        && state.parse::<crate::jobs::UploadState>().is_err()
    {
        return Err(ServiceError::Invalid(format!(
            "{state:?} is not an upload state"
        )));
    }
    let t = tenant(db, caller, slug).await?;
    Ok(report::uploads_page(db, t.id, filter, limit).await?)
}

/// The upload `id` if the caller reaches its tenant.
async fn reachable_upload(
    db: &DatabaseConnection,
    caller: &Caller,
    id: i64,
) -> Result<upload::Model, ServiceError> {
    let up = upload::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| no_upload(id))?;
    if let Caller::Tenant(_) = caller {
        let t = tenants::by_id(db, up.tenant_id).await?;
        if !caller.reaches(&t.slug) {
            return Err(no_upload(id));
        }
    }
    Ok(up)
}

/// One upload with its first `problems` row problems.
pub async fn upload(
    db: &DatabaseConnection,
    caller: &Caller,
    id: i64,
    problems: u64,
) -> Result<UploadDetail, ServiceError> {
    reachable_upload(db, caller, id).await?;
    report::upload_detail(db, id, problems)
        .await?
        .ok_or_else(|| no_upload(id))
}

/// A page of an upload's row problems, by line, after `after`.
pub async fn problems_page(
    db: &DatabaseConnection,
    caller: &Caller,
    id: i64,
    after: Option<report::ProblemCursor>,
    limit: u64,
) -> Result<Vec<upload_row_error::Model>, ServiceError> {
    reachable_upload(db, caller, id).await?;
    Ok(report::problems_page(db, id, after, limit).await?)
}

/// A page of what an upload changed, after `after`, with the next cursor.
pub async fn changes_page(
    db: &DatabaseConnection,
    caller: &Caller,
    id: i64,
    after: Option<report::ChangeCursor>,
    limit: u64,
) -> Result<(Vec<Change>, Option<report::ChangeCursor>), ServiceError> {
    reachable_upload(db, caller, id).await?;
    Ok(report::changes_page(db, id, after, limit).await?)
}

/// What an upload changed.
pub async fn changes(
    db: &DatabaseConnection,
    caller: &Caller,
    id: i64,
) -> Result<Vec<Change>, ServiceError> {
    reachable_upload(db, caller, id).await?;
    Ok(report::changes(db, id).await?)
}

/// What resolving a hold did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Resolved {
    /// The upload.
    pub upload_id: i64,
    /// Users deactivated (approve) or deactivations dropped (reject).
    pub deactivations: u64,
}

/// Performs a held upload's deactivations.
pub async fn approve(
    db: &DatabaseConnection,
    caller: &Caller,
    id: i64,
) -> Result<Resolved, ServiceError> {
    reachable_upload(db, caller, id).await?;
    let n = holds::approve(db, id).await?;
    Ok(Resolved {
        upload_id: id,
        deactivations: n,
    })
}

/// Drops a held upload's deactivations.
pub async fn reject(
    db: &DatabaseConnection,
    caller: &Caller,
    id: i64,
) -> Result<Resolved, ServiceError> {
    reachable_upload(db, caller, id).await?;
    let n = holds::reject(db, id).await?;
    Ok(Resolved {
        upload_id: id,
        deactivations: n,
    })
}

/// Reverts what an applied upload changed (the tenant's newest), or with
/// `preview` says what that would do and changes nothing.
pub async fn undo(
    db: &DatabaseConnection,
    caller: &Caller,
    id: i64,
    preview: bool,
) -> Result<UndoReport, ServiceError> {
    reachable_upload(db, caller, id).await?;
    Ok(undo::undo(db, id, preview).await?)
}

/// A failed upload queued again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Retried {
    /// The failed upload.
    pub upload_id: i64,
    /// The new upload that will read its file again.
    pub retry_id: i64,
}

/// Queues a failed upload's file again as a new upload.
pub async fn retry(
    db: &DatabaseConnection,
    caller: &Caller,
    id: i64,
) -> Result<Retried, ServiceError> {
    reachable_upload(db, caller, id).await?;
    let new_id = retry::retry(db, id).await?;
    Ok(Retried {
        upload_id: id,
        retry_id: new_id,
    })
}

/// A mapping suggested from a sample file's header.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SuggestedMapping {
    /// The file's columns, in order.
    pub columns: Vec<String>,
    /// The suggestion as a mapping document (what `PUT .../mapping` takes).
    pub mapping: Mapping,
    /// The same as a commented TOML file (what `userfeed mapping set` takes).
    pub toml: String,
    /// Columns not recognised (candidates for custom profile fields).
    pub unmapped: Vec<String>,
    /// The file's first rows (up to [`SAMPLE_ROWS`]), for a preview beside
    /// the mapping.
    pub sample: Vec<Vec<String>>,
}

/// How many rows of a sample file [`suggest_mapping`] returns.
pub const SAMPLE_ROWS: usize = 5;

/// Suggests a mapping from the header of the CSV `file` (only the header
/// is read).
pub async fn suggest_mapping(file: &std::path::Path) -> Result<SuggestedMapping, ServiceError> {
    let f = tokio::fs::File::open(file)
        .await
        .map_err(|e| ServiceError::Invalid(format!("the sample file could not be read: {e}")))?;
    let mut csv = crate::parse::CsvStream::open(f).await.map_err(|e| {
        ServiceError::Invalid(format!("the sample file has no readable header: {e}"))
    })?;
    let s = crate::map::tools::suggest(csv.header());
    let mut sample = Vec::new();
    // A row that does not parse ends the sample; the header is what counts.
    while sample.len() < SAMPLE_ROWS {
        match csv.next_row().await {
            Ok(Some((_, fields))) => sample.push(fields.iter().map(|f| f.to_string()).collect()),
            _ => break,
        }
    }
    Ok(SuggestedMapping {
        columns: csv.header().to_vec(),
        toml: s.to_toml(),
        mapping: s.mapping,
        unmapped: s.unmapped,
        sample,
    })
}

/// The CSV template (header and example row) for a tenant's mapping.
pub async fn template(
    db: &DatabaseConnection,
    caller: &Caller,
    slug: &str,
) -> Result<String, ServiceError> {
    let t = tenant(db, caller, slug).await?;
    let Some(m) = &t.mapping else {
        return Err(ServiceError::Refused(format!(
            "tenant {slug} has no mapping yet; set one first"
        )));
    };
    Ok(crate::map::tools::template(m, &t.profile_fields))
}

/// What the CSV `file` would do for a tenant; nothing changes.
pub async fn preview(
    db: &DatabaseConnection,
    caller: &Caller,
    slug: &str,
    file: &std::path::Path,
    batch_size: usize,
    limits: crate::parse::Limits,
) -> Result<crate::apply::preview::PreviewReport, ServiceError> {
    use crate::apply::preview::{self, PreviewError};
    let t = tenant(db, caller, slug).await?;
    if t.mapping.is_none() {
        return Err(ServiceError::Refused(format!(
            "tenant {slug} has no mapping yet; set one first"
        )));
    }
    preview::preview(db, &t, file, batch_size, limits)
        .await
        .map_err(|e| match e {
            PreviewError::WouldFail(_) => ServiceError::Invalid(e.to_string()),
            PreviewError::Other(m) => ServiceError::Db(DbErr::Custom(m)),
        })
}

/// Delivers a manual upload where the tenant's drops go, so it is queued
/// like one ([`crate::intake::manual`]).
pub async fn deliver_file(
    db: &DatabaseConnection,
    caller: &Caller,
    slug: &str,
    name: Option<&str>,
    file: &std::path::Path,
    bytes: u64,
    to: &crate::intake::manual::ManualUploads,
) -> Result<crate::intake::manual::Delivered, ServiceError> {
    use crate::intake::manual::{ManualError, delivered_name};
    let t = tenant(db, caller, slug).await?;
    let name = delivered_name(name).map_err(|e| ServiceError::Invalid(e.to_string()))?;
    let done = to
        .deliver(&t, &name, file, bytes)
        .await
        .map_err(|e| match e {
            ManualError::BadName(_) => ServiceError::Invalid(e.to_string()),
            ManualError::NoIntake(_) => ServiceError::Refused(e.to_string()),
            ManualError::Delivery(_) => ServiceError::Unavailable(e.to_string()),
        })?;
    tracing::info!(tenant = slug, location = %done.location, bytes, "manual upload delivered");
    Ok(done)
}

/// A tenant's webhook: where it goes and the secret its calls are signed
/// with (for the receiver; see `docs/webhooks.md`).
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Webhook {
    /// The URL; `None` when cleared (the platform default applies).
    pub url: Option<String>,
    /// The signing secret; `None` when cleared.
    pub secret: Option<String>,
}

/// What `PUT /tenants/{slug}/webhook` takes.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// The receiver's URL (`https://`, or `http://` with `notify.allow_http`).
    pub url: String,
    /// Replace the signing secret with a new one.
    #[serde(default)]
    pub rotate_secret: bool,
}

/// Sets a tenant's webhook URL (optionally rotating its secret) and says
/// the secret to verify calls with. Refused without `notify.signing_key`.
pub async fn set_webhook(
    db: &DatabaseConnection,
    caller: &Caller,
    slug: &str,
    req: &WebhookRequest,
    notify: &crate::config::NotifyConfig,
) -> Result<Webhook, ServiceError> {
    tenant(db, caller, slug).await?;
    crate::notify::check_url(&req.url, notify.allow_http)
        .map_err(|e| ServiceError::Invalid(format!("webhook URL: {e}")))?;
    let Some(key) = notify
        .key()
        .map_err(|e| ServiceError::Unavailable(e.to_string()))?
    else {
        return Err(ServiceError::Refused(
            "webhooks cannot be signed: notify.signing_key is not configured".into(),
        ));
    };
    let t = tenants::set_webhook(db, slug, Some(req.url.clone()), req.rotate_secret).await?;
    tracing::info!(tenant = slug, rotated = req.rotate_secret, "webhook set");
    Ok(Webhook {
        url: t.webhook_url,
        secret: Some(crate::notify::tenant_secret(
            &key,
            t.id,
            t.webhook_secret_version,
        )),
    })
}

/// Clears a tenant's webhook URL (the platform default applies again).
pub async fn clear_webhook(
    db: &DatabaseConnection,
    caller: &Caller,
    slug: &str,
) -> Result<(), ServiceError> {
    tenant(db, caller, slug).await?;
    tenants::set_webhook(db, slug, None, false).await?;
    Ok(())
}

/// An upload's notifications and their attempts.
pub async fn notifications(
    db: &DatabaseConnection,
    caller: &Caller,
    id: i64,
) -> Result<Vec<crate::notify::NotificationView>, ServiceError> {
    reachable_upload(db, caller, id).await?;
    Ok(crate::notify::of_upload(db, id).await?)
}

impl From<CredentialsError> for ServiceError {
    fn from(e: CredentialsError) -> Self {
        match e {
            CredentialsError::Db(db) => ServiceError::Db(db),
            CredentialsError::Iam { .. } => ServiceError::Unavailable(e.to_string()),
            other => ServiceError::Refused(other.to_string()),
        }
    }
}

/// The IAM side of credentials, or the refusal that says why there is none.
fn iam(iam: Option<&Iam>) -> Result<&Iam, ServiceError> {
    iam.ok_or_else(|| CredentialsError::NoAws.into())
}

/// A tenant's connection details: bucket, prefix, the upload command and
/// its keys (IDs only).
pub async fn connection(
    db: &DatabaseConnection,
    caller: &Caller,
    slug: &str,
    region: &str,
) -> Result<Connection, ServiceError> {
    let t = tenant(db, caller, slug).await?;
    Ok(credentials::connection(db, &t, region).await?)
}

/// Makes the tenant's upload user and first key; the secret is in the
/// answer and nowhere else.
pub async fn create_credentials(
    db: &DatabaseConnection,
    iam_: Option<&Iam>,
    caller: &Caller,
    slug: &str,
) -> Result<NewKey, ServiceError> {
    let t = tenant(db, caller, slug).await?;
    Ok(iam(iam_)?.create(db, &t).await?)
}

/// Makes a new key; the old one works for `grace`, then is deleted.
pub async fn rotate_credentials(
    db: &DatabaseConnection,
    iam_: Option<&Iam>,
    caller: &Caller,
    slug: &str,
    grace: std::time::Duration,
) -> Result<NewKey, ServiceError> {
    let t = tenant(db, caller, slug).await?;
    Ok(iam(iam_)?.rotate(db, &t, grace).await?)
}

/// The key IDs deleted by revoking a tenant's credentials.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Revoked {
    /// The access key IDs that no longer work.
    pub access_key_ids: Vec<String>,
}

/// Deletes every key of the tenant now.
pub async fn revoke_credentials(
    db: &DatabaseConnection,
    iam_: Option<&Iam>,
    caller: &Caller,
    slug: &str,
) -> Result<Revoked, ServiceError> {
    let t = tenant(db, caller, slug).await?;
    Ok(Revoked {
        access_key_ids: iam(iam_)?.revoke(db, &t).await?,
    })
}

/// A tenant and its newest upload, for the operators' overview.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TenantStatus {
    /// The tenant's slug.
    pub slug: String,
    /// Its newest upload; `None` when it has none yet.
    pub last_upload: Option<upload::Model>,
}

/// What platform operators see first: every tenant's last upload, the
/// backlog, and what needs a person across tenants.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Overview {
    /// Every tenant, by slug.
    pub tenants: Vec<TenantStatus>,
    /// Queued and running uploads, and held ones, across tenants.
    pub queue: crate::jobs::queue::QueueStats,
    /// The newest failed and held uploads across tenants (up to
    /// [`OVERVIEW_ATTENTION`]), newest first.
    pub attention: Vec<TenantUpload>,
}

/// An upload with its tenant's slug.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TenantUpload {
    /// The tenant's slug.
    pub slug: String,
    /// The upload.
    pub upload: upload::Model,
}

/// How many failed or held uploads the overview lists.
pub const OVERVIEW_ATTENTION: u64 = 20;

/// The operators' overview; platform callers only.
pub async fn overview(db: &DatabaseConnection, caller: &Caller) -> Result<Overview, ServiceError> {
    use sea_orm::{ColumnTrait, ConnectionTrait, QueryFilter, QueryOrder, QuerySelect, Statement};
    if *caller != Caller::Platform {
        return Err(ServiceError::Forbidden(
            "the overview of every tenant needs a platform token".into(),
        ));
    }
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_string(
            backend,
            crate::db::queries::of(backend).last_upload_per_tenant,
        ))
        .await?;
    let mut wanted = Vec::with_capacity(rows.len());
    let mut slugs = std::collections::HashMap::new();
    for r in &rows {
        let slug: String = r.try_get("", "slug")?;
        let last: Option<i64> = r.try_get("", "last_upload_id")?;
        slugs.insert(r.try_get::<i64>("", "tenant_id")?, slug.clone());
        wanted.push((slug, last));
    }
    let ids: Vec<i64> = wanted.iter().filter_map(|(_, id)| *id).collect();
    let mut last: std::collections::HashMap<i64, upload::Model> = upload::Entity::find()
        .filter(upload::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    let tenants = wanted
        .into_iter()
        .map(|(slug, id)| TenantStatus {
            slug,
            last_upload: id.and_then(|id| last.remove(&id)),
        })
        .collect();
    let attention = upload::Entity::find()
        .filter(upload::Column::State.is_in(["failed", "held"]))
        .order_by_desc(upload::Column::Id)
        .limit(OVERVIEW_ATTENTION)
        .all(db)
        .await?
        .into_iter()
        .map(|u| TenantUpload {
            slug: slugs.get(&u.tenant_id).cloned().unwrap_or_default(),
            upload: u,
        })
        .collect();
    Ok(Overview {
        tenants,
        queue: crate::jobs::queue::stats(db).await?,
        attention,
    })
}

impl From<crate::xero::connection::XeroOpError> for ServiceError {
    fn from(e: crate::xero::connection::XeroOpError) -> Self {
        use crate::xero::XeroError as X;
        use crate::xero::connection::XeroOpError as E;
        match e {
            E::Db(db) => ServiceError::Db(db),
            E::ChooseOrganisation(_) | E::Xero(X::Authorization(_)) => {
                ServiceError::Invalid(e.to_string())
            }
            E::Xero(
                X::DayLimit
                | X::WaitTooLong(_)
                | X::Unavailable { .. }
                | X::Malformed { .. }
                | X::Refused { .. },
            ) => ServiceError::Unavailable(e.to_string()),
            _ => ServiceError::Refused(e.to_string()),
        }
    }
}

/// The Xero service of this deployment, or the refusal saying what is missing.
fn xero(x: Option<&crate::xero::XeroService>) -> Result<&crate::xero::XeroService, ServiceError> {
    x.ok_or_else(|| {
        ServiceError::Refused(
            "Xero is not configured on this deployment: set xero.client_id, xero.client_secret and xero.token_key (docs/xero.md)"
                .into(),
        )
    })
}

/// A tenant's Xero connection; `None` when it has none.
pub async fn xero_status(
    db: &DatabaseConnection,
    x: Option<&crate::xero::XeroService>,
    caller: &Caller,
    slug: &str,
) -> Result<Option<crate::xero::ConnectionInfo>, ServiceError> {
    let t = tenant(db, caller, slug).await?;
    Ok(xero(x)?.status(db, &t).await?)
}

/// Finishes connecting a tenant to Xero with the code the callback of
/// `pending`'s flow carried (see [`crate::xero::oauth`]).
pub async fn xero_connect(
    db: &DatabaseConnection,
    x: Option<&crate::xero::XeroService>,
    caller: &Caller,
    slug: &str,
    pending: &crate::xero::oauth::Pending,
    code: &str,
    organisation: Option<&str>,
) -> Result<crate::xero::ConnectionInfo, ServiceError> {
    let t = tenant(db, caller, slug).await?;
    Ok(xero(x)?
        .connect(db, &t, pending, code, organisation)
        .await?)
}

/// Revokes the tenant's Xero grant and deletes its connection.
pub async fn xero_disconnect(
    db: &DatabaseConnection,
    x: Option<&crate::xero::XeroService>,
    caller: &Caller,
    slug: &str,
) -> Result<bool, ServiceError> {
    let t = tenant(db, caller, slug).await?;
    Ok(xero(x)?.disconnect(db, &t).await?)
}

/// What a Xero import would do now: the employees it would create, those
/// it cannot (with reasons) and those already present. Changes nothing.
pub async fn xero_preview(
    db: &DatabaseConnection,
    x: Option<&crate::xero::XeroService>,
    caller: &Caller,
    slug: &str,
) -> Result<crate::xero::XeroPreview, ServiceError> {
    let t = tenant(db, caller, slug).await?;
    Ok(xero(x)?.preview(db, &t).await?)
}

/// Records a Xero import as an upload of source `xero`, queued for the
/// daemon or claimed for the caller to run (`start`).
pub async fn xero_import(
    db: &DatabaseConnection,
    x: Option<&crate::xero::XeroService>,
    caller: &Caller,
    slug: &str,
    start: crate::xero::connection::Start,
) -> Result<crate::xero::connection::XeroImport, ServiceError> {
    let t = tenant(db, caller, slug).await?;
    Ok(xero(x)?.import(db, &t, start).await?)
}
