//! The admin HTTP API, `/api/v1`, on its own listener (`api.bind`), off
//! until a token file is configured. Handlers only authenticate, parse,
//! call [`crate::service`] and render: JSON throughout, errors as RFC 9457
//! `application/problem+json`, never with a stack trace, SQL or secret.
//! See `docs/api.md`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json};
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::service::{self, ServiceError};

pub mod auth;
pub mod files;

use auth::{Token, Tokens};

/// Shared state of the API's handlers.
#[derive(Clone)]
pub struct ApiState {
    /// The database.
    pub db: DatabaseConnection,
    /// Who may call.
    pub tokens: Arc<Tokens>,
    /// How long one request may take (file endpoints excepted: they take
    /// as long as the file takes to arrive and be read).
    pub timeout: Duration,
    /// What the file endpoints need.
    pub files: Arc<files::Files>,
    /// Webhook settings (`[notify]`), for setting tenants' webhooks.
    pub notify: Arc<crate::config::NotifyConfig>,
    /// Requests per token (by label); `None` for no limit.
    pub limiter: Option<Arc<RateLimiter>>,
}

/// The per-token request limiter (`api.rate_per_second`, `api.rate_burst`).
pub type RateLimiter = governor::DefaultKeyedRateLimiter<String>;

/// A limiter allowing `per_second` requests a second per token on average
/// and `burst` at once; `None` when `per_second` is 0.
pub fn rate_limiter(per_second: u32, burst: u32) -> Option<Arc<RateLimiter>> {
    let per_second = std::num::NonZeroU32::new(per_second)?;
    let burst = std::num::NonZeroU32::new(burst).unwrap_or(per_second);
    let quota = governor::Quota::per_second(per_second).allow_burst(burst);
    Some(Arc::new(governor::RateLimiter::keyed(quota)))
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Problem {
    /// A URI naming the kind of problem (relative to the API's docs).
    #[serde(rename = "type")]
    pub kind: String,
    /// The kind, in words.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// This occurrence, in words.
    pub detail: String,
}

impl Problem {
    pub(crate) fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("/docs/api.md#{kind}"),
            title: status.canonical_reason().unwrap_or("error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = (status, Json(&self)).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"userfeed\""),
            );
        }
        res
    }
}

impl From<ServiceError> for Problem {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(m) => Problem::new(StatusCode::NOT_FOUND, "not-found", m),
            ServiceError::Refused(m) => Problem::new(StatusCode::CONFLICT, "refused", m),
            ServiceError::Invalid(m) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m)
            }
            ServiceError::Forbidden(m) => Problem::new(StatusCode::FORBIDDEN, "forbidden", m),
            ServiceError::Unavailable(m) => {
                tracing::warn!(detail = %m, "admin API request failed on a dependency");
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m)
            }
            ServiceError::Db(e) => {
                // The detail stays in the log: it may name tables or values.
                tracing::error!(error = %e, "admin API request failed on the database");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database did not answer; try again",
                )
            }
        }
    }
}

type ApiResult<T> = Result<Json<T>, Problem>;

/// The API's routes, under `/api/v1`.
pub fn router(state: ApiState) -> Router {
    let timeout = state.timeout;
    let v1 = Router::new()
        .route("/tenants", get(list_tenants).post(add_tenant))
        .route("/tenants/{slug}/users", get(list_users))
        .route("/tenants/{slug}", get(get_tenant).patch(set_tenant))
        .route("/tenants/{slug}/mapping", get(get_mapping).put(put_mapping))
        .route("/tenants/{slug}/groups", get(list_groups).post(add_group))
        .route("/tenants/{slug}/groups/{key}", delete(remove_group))
        .route(
            "/tenants/{slug}/webhook",
            axum::routing::put(put_webhook).delete(delete_webhook),
        )
        .route("/uploads/{id}/notifications", get(get_notifications))
        .route(
            "/tenants/{slug}/profile-fields/{key}",
            delete(remove_profile_field),
        )
        .route(
            "/tenants/{slug}/profile-fields",
            get(list_profile_fields).post(add_profile_field),
        )
        .route("/tenants/{slug}/uploads", get(list_uploads))
        .route("/uploads/{id}", get(get_upload))
        .route("/uploads/{id}/problems", get(get_problems))
        .route("/uploads/{id}/changes", get(get_changes))
        .route("/uploads/{id}/approve", post(approve))
        .route("/uploads/{id}/reject", post(reject))
        .route("/uploads/{id}/retry", post(retry))
        .route("/uploads/{id}/undo", post(undo))
        .route("/tenants/{slug}/mapping/template", get(files::template))
        .route_layer(middleware::from_fn(move |req: Request, next: Next| {
            deadline(timeout, req, next)
        }));
    // File bodies stream to disk under `limits.max_object_bytes`, not the
    // 1 MiB JSON limit, and take as long as they take to arrive.
    let file_routes = Router::new()
        .route("/tenants/{slug}/preview", post(files::preview))
        .route("/tenants/{slug}/files", post(files::upload))
        .route("/tenants/{slug}/mapping/suggest", post(files::suggest));
    let v1 = v1
        .merge(file_routes)
        .fallback(|| async {
            Problem::new(StatusCode::NOT_FOUND, "not-found", "no such API resource")
        })
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state);
    Router::new()
        .nest("/api/v1", v1)
        .layer(axum::extract::DefaultBodyLimit::max(1 << 20))
}

/// Serves the API on `listener` until `stop` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    stop: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}

async fn deadline(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took longer than {} s", limit.as_secs()),
        )
        .into_response(),
    }
}

/// Admits a request with a known bearer token; the handlers see its
/// [`Token`]. Changes are logged with the token's label (the audit trail).
async fn authenticate(State(s): State<ApiState>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = presented.and_then(|p| s.tokens.verify(p)).cloned() else {
        let why = if presented.is_some() {
            "the bearer token is not valid"
        } else {
            "an Authorization: Bearer token is required"
        };
        return Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", why).into_response();
    };
    if let Some(limiter) = &s.limiter
        && let Err(wait) = limiter.check_key(&token.label)
    {
        use governor::clock::{Clock, DefaultClock};
        let secs = wait
            .wait_time_from(DefaultClock::default().now())
            .as_secs_f64()
            .ceil()
            .max(1.0) as u64;
        tracing::warn!(token = %token.label, retry_after_s = secs, "admin API rate limit reached");
        let mut res = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            format!("too many requests with this token; try again in {secs} s"),
        )
        .into_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return res;
    }
    let changes = req.method() != axum::http::Method::GET;
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    req.extensions_mut().insert(token.clone());
    let res = next.run(req).await;
    if changes {
        tracing::info!(
            audit = true,
            token = %token.label,
            %method,
            path,
            status = res.status().as_u16(),
            "admin API change"
        );
    }
    res
}

/// The query of the upload history: `?limit=&before=&state=&since=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadsQuery {
    limit: Option<u64>,
    before: Option<i64>,
    state: Option<String>,
    since: Option<chrono::DateTime<chrono::Utc>>,
}

/// A page of a list, with the link to the next one when there may be more.
#[derive(Debug, Serialize)]
struct Page<T> {
    items: Vec<T>,
    /// The next page's path and query, or `null` after the last page.
    next: Option<String>,
}

async fn list_tenants(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
) -> ApiResult<Vec<crate::tenants::Tenant>> {
    Ok(Json(service::tenants(&s.db, &t.caller).await?))
}

async fn add_tenant(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
    b: JsonBody<service::NewTenant>,
) -> Result<(StatusCode, Json<crate::tenants::Tenant>), Problem> {
    let new = body(b)?;
    let created = service::add_tenant(&s.db, &t.caller, &new).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// A JSON body, or a 400 problem saying what is wrong with it.
fn body<T>(b: Result<Json<T>, axum::extract::rejection::JsonRejection>) -> Result<T, Problem> {
    b.map(|Json(v)| v)
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-request", e.body_text()))
}

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

async fn set_tenant(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
    b: JsonBody<service::TenantSettings>,
) -> ApiResult<crate::tenants::Tenant> {
    let settings = body(b)?;
    Ok(Json(
        service::set_tenant(&s.db, &t.caller, &slug, &settings).await?,
    ))
}

async fn get_mapping(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<crate::map::Mapping> {
    Ok(Json(service::mapping(&s.db, &t.caller, &slug).await?))
}

async fn put_mapping(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
    b: JsonBody<crate::map::Mapping>,
) -> ApiResult<crate::map::Mapping> {
    let mapping = body(b)?;
    service::set_mapping(&s.db, &t.caller, &slug, &mapping).await?;
    Ok(Json(mapping))
}

async fn list_groups(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<Vec<crate::db::entity::group::Model>> {
    Ok(Json(service::groups(&s.db, &t.caller, &slug).await?))
}

async fn add_group(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
    b: JsonBody<service::NewGroup>,
) -> Result<(StatusCode, Json<crate::db::entity::group::Model>), Problem> {
    let new = body(b)?;
    let g = service::add_group(&s.db, &t.caller, &slug, &new).await?;
    Ok((StatusCode::CREATED, Json(g)))
}

async fn list_profile_fields(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<Vec<service::ProfileField>> {
    Ok(Json(
        service::profile_fields(&s.db, &t.caller, &slug).await?,
    ))
}

async fn add_profile_field(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
    b: JsonBody<service::ProfileField>,
) -> Result<(StatusCode, Json<service::ProfileField>), Problem> {
    let field = body(b)?;
    service::add_profile_field(&s.db, &t.caller, &slug, &field).await?;
    Ok((StatusCode::CREATED, Json(field)))
}

async fn list_users(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<Vec<crate::report::UserListing>> {
    Ok(Json(service::users(&s.db, &t.caller, &slug).await?))
}

async fn get_tenant(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<crate::tenants::Tenant> {
    Ok(Json(service::tenant(&s.db, &t.caller, &slug).await?))
}

async fn list_uploads(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
    q: Result<Query<UploadsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Page<crate::db::entity::upload::Model>> {
    let Query(q) =
        q.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-request", e.body_text()))?;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let filter = crate::report::UploadFilter {
        before: q.before,
        state: q.state.clone(),
        since: q.since,
    };
    let items = service::uploads_page(&s.db, &t.caller, &slug, &filter, limit).await?;
    // A full page may have a successor: its cursor is the last id shown.
    let next = match items.last() {
        Some(last) if items.len() as u64 == limit => {
            let mut query = format!("limit={limit}&before={}", last.id);
            if let Some(state) = &q.state {
                query.push_str(&format!("&state={state}"));
            }
            if let Some(since) = q.since {
                let since = since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                query.push_str(&format!("&since={since}"));
            }
            Some(format!("/api/v1/tenants/{slug}/uploads?{query}"))
        }
        _ => None,
    };
    Ok(Json(Page { items, next }))
}

/// An upload id in a path; anything else is a 404 like an unknown id.
fn upload_id(raw: &str) -> Result<i64, Problem> {
    raw.parse().map_err(|_| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no upload {raw:?}"),
        )
    })
}

async fn get_upload(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
) -> ApiResult<crate::report::UploadDetail> {
    let id = upload_id(&id)?;
    Ok(Json(service::upload(&s.db, &t.caller, id, 200).await?))
}

/// The query of a paged list of an upload: `?limit=&after=` (the cursor a
/// page's `next` gives), and for problems `format=csv`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    limit: Option<u64>,
    after: Option<String>,
    format: Option<String>,
}

fn page_query(
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<PageQuery, Problem> {
    let Query(q) =
        q.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-request", e.body_text()))?;
    Ok(q)
}

fn cursor<T: std::str::FromStr<Err = String>>(raw: Option<&str>) -> Result<Option<T>, Problem> {
    raw.map(|r| r.parse())
        .transpose()
        .map_err(|e: String| Problem::new(StatusCode::BAD_REQUEST, "bad-request", e))
}

/// Row problems, by line: a page of JSON, or with `format=csv` all of them
/// as a CSV download (line, severity, column, message).
async fn get_problems(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let id = upload_id(&id)?;
    let q = page_query(q)?;
    let after = cursor::<crate::report::ProblemCursor>(q.after.as_deref())?;
    match q.format.as_deref() {
        Some("csv") => {
            let all = service::problems_page(&s.db, &t.caller, id, after, u64::MAX).await?;
            let csv = crate::report::problems_csv(&all);
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"upload-{id}-problems.csv\""),
                    ),
                ],
                csv,
            )
                .into_response())
        }
        Some("json") | None => {
            let limit = q.limit.unwrap_or(100).clamp(1, 1000);
            let items = service::problems_page(&s.db, &t.caller, id, after, limit).await?;
            let next = match items.last() {
                Some(l) if items.len() as u64 == limit => {
                    let c = crate::report::ProblemCursor {
                        line: l.line,
                        id: l.id,
                    };
                    Some(format!(
                        "/api/v1/uploads/{id}/problems?limit={limit}&after={c}"
                    ))
                }
                _ => None,
            };
            Ok(Json(Page { items, next }).into_response())
        }
        Some(other) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            format!("format {other:?} is not json or csv"),
        )),
    }
}

/// What an upload changed, a page at a time.
async fn get_changes(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Page<crate::report::Change>> {
    let id = upload_id(&id)?;
    let q = page_query(q)?;
    if q.format.is_some() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "the change log is JSON only",
        ));
    }
    let after = cursor::<crate::report::ChangeCursor>(q.after.as_deref())?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let (items, last) = service::changes_page(&s.db, &t.caller, id, after, limit).await?;
    let next = last.map(|c| format!("/api/v1/uploads/{id}/changes?limit={limit}&after={c}"));
    Ok(Json(Page { items, next }))
}

async fn approve(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
) -> ApiResult<service::Resolved> {
    let id = upload_id(&id)?;
    Ok(Json(service::approve(&s.db, &t.caller, id).await?))
}

async fn reject(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
) -> ApiResult<service::Resolved> {
    let id = upload_id(&id)?;
    Ok(Json(service::reject(&s.db, &t.caller, id).await?))
}

async fn retry(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
) -> ApiResult<service::Retried> {
    let id = upload_id(&id)?;
    Ok(Json(service::retry(&s.db, &t.caller, id).await?))
}

async fn put_webhook(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
    req: JsonBody<service::WebhookRequest>,
) -> ApiResult<service::Webhook> {
    let req = body(req)?;
    Ok(Json(
        service::set_webhook(&s.db, &t.caller, &slug, &req, &s.notify).await?,
    ))
}

async fn delete_webhook(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> Result<StatusCode, Problem> {
    service::clear_webhook(&s.db, &t.caller, &slug).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_notifications(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
) -> ApiResult<Vec<crate::notify::NotificationView>> {
    let id = upload_id(&id)?;
    Ok(Json(service::notifications(&s.db, &t.caller, id).await?))
}

async fn remove_group(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
    Path((slug, key)): Path<(String, String)>,
) -> ApiResult<service::RemovedGroup> {
    Ok(Json(
        service::remove_group(&s.db, &t.caller, &slug, &key).await?,
    ))
}

async fn remove_profile_field(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
    Path((slug, key)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    service::remove_profile_field(&s.db, &t.caller, &slug, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The query of an undo: `?preview=true` changes nothing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UndoQuery {
    #[serde(default)]
    preview: bool,
}

async fn undo(
    State(s): State<ApiState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
    q: Result<Query<UndoQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<crate::apply::undo::UndoReport> {
    let id = upload_id(&id)?;
    let Query(q) =
        q.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-request", e.body_text()))?;
    Ok(Json(service::undo(&s.db, &t.caller, id, q.preview).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_error_becomes_a_problem_without_its_detail() {
        let p = Problem::from(ServiceError::Db(sea_orm::DbErr::Custom(
            "relation \"users\" password=hunter2".into(),
        )));
        assert_eq!(p.status, 503);
        assert!(
            !p.detail.contains("users") && !p.detail.contains("hunter2"),
            "{p:?}"
        );
        let p = Problem::from(ServiceError::Refused(
            "upload 3 is succeeded, not held".into(),
        ));
        assert_eq!(
            (p.status, p.detail.as_str()),
            (409, "upload 3 is succeeded, not held")
        );
    }
}
