//! The admin HTTP API, `/api/v1`, on its own listener (`api.bind`), off
//! until a token file is configured. Handlers only authenticate, parse,
//! call [`crate::service`] and render: JSON throughout, errors as RFC 9457
//! `application/problem+json`, never with a stack trace, SQL or secret.
//! See `docs/api.md`.

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use crate::web::auth::Token;

use super::problem::Problem;
use super::state::WebState;
use crate::service;

pub mod files;
pub mod xero;

type ApiResult<T> = Result<Json<T>, Problem>;

/// The API's OpenAPI 3.1 document, generated from the handlers and types
/// (served at `/api/v1/openapi.json`, checked in as `docs/openapi.json`).
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Userfeed admin API",
        description = "Tenants, mappings, upload history, holds, undo, files and webhooks of \
                       Userfeed. Every operation takes `Authorization: Bearer <token>`; a tenant \
                       token reaches only its tenant. Errors are RFC 9457 problem documents. \
                       See docs/api.md."
    ),
    servers((url = "/api/v1")),
    paths(
        list_tenants, add_tenant, get_tenant, set_tenant,
        get_mapping, put_mapping, files::suggest, files::template,
        list_groups, add_group, remove_group,
        list_profile_fields, add_profile_field, remove_profile_field,
        list_users, list_uploads, files::preview, files::upload,
        put_webhook, delete_webhook,
        get_credentials, create_credentials, rotate_credentials, revoke_credentials,
        get_overview,
        get_upload, get_problems, get_changes, get_notifications,
        approve, reject, retry, undo,
        xero::get_xero, xero::preview_xero, xero::import_xero, xero::disconnect_xero,
    ),
    components(schemas(crate::jobs::UploadState, Format)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

/// Adds the bearer-token security scheme.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token from `userfeed api token`."))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document as pretty JSON with a final newline.
pub fn openapi_json() -> String {
    use utoipa::OpenApi;
    let mut s = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    s.push('\n');
    s
}

/// The API's routes, under `/api/v1`, with their 1 MiB JSON body limit.
pub fn router(state: WebState) -> Router {
    let timeout = state.timeout;
    let v1 = Router::new()
        .route("/tenants", get(list_tenants).post(add_tenant))
        .route("/overview", get(get_overview))
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
            "/tenants/{slug}/credentials",
            get(get_credentials)
                .post(create_credentials)
                .delete(revoke_credentials),
        )
        .route(
            "/tenants/{slug}/credentials/rotate",
            post(rotate_credentials),
        )
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
        .route_layer(axum::middleware::from_fn(
            move |req: Request, next: Next| crate::web::middleware::deadline(timeout, req, next),
        ));
    // File bodies stream to disk under `limits.max_object_bytes`, not the
    // 1 MiB JSON limit, and take as long as they take to arrive.
    let file_routes = Router::new()
        .route("/tenants/{slug}/preview", post(files::preview))
        .route("/tenants/{slug}/files", post(files::upload))
        .route("/tenants/{slug}/mapping/suggest", post(files::suggest))
        .merge(xero::routes());
    let v1 = v1
        .merge(file_routes)
        .fallback(|| async {
            Problem::new(StatusCode::NOT_FOUND, "not-found", "no such API resource")
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::web::middleware::authenticate,
        ))
        .with_state(state);
    // The contract is public: it holds no data.
    let doc = Router::new().route(
        "/openapi.json",
        get(|| async { ([(header::CONTENT_TYPE, "application/json")], openapi_json()) }),
    );
    Router::new()
        .nest("/api/v1", doc.merge(v1))
        .layer(axum::extract::DefaultBodyLimit::max(1 << 20))
}

/// The query of the upload history: `?limit=&before=&state=&since=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct UploadsQuery {
    /// Uploads per page, 1 to 1000 (default 50).
    limit: Option<u64>,
    /// The cursor: only uploads older than this id (a page's `next` sets it).
    before: Option<i64>,
    /// Only uploads in this state (another is a 422).
    #[param(value_type = Option<crate::jobs::UploadState>)]
    state: Option<String>,
    /// Only uploads queued at or after this time (RFC 3339).
    since: Option<chrono::DateTime<chrono::Utc>>,
}

/// A page of a list, with the link to the next one when there may be more.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// The entries of this page.
    items: Vec<T>,
    /// The next page's path and query, or `null` after the last page.
    next: Option<String>,
}

#[utoipa::path(
    get,
    path = "/tenants",
    tag = "tenants",
    summary = "The tenants the token reaches",
    responses(
        (status = 200, description = "the tenants", body = Vec<crate::tenants::Tenant>),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn list_tenants(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
) -> ApiResult<Vec<crate::tenants::Tenant>> {
    Ok(Json(service::tenants(&s.db, &t.caller).await?))
}

#[utoipa::path(
    post,
    path = "/tenants",
    tag = "tenants",
    summary = "Create a tenant (platform tokens only)",
    request_body = service::NewTenant,
    responses(
        (status = 201, description = "created", body = crate::tenants::Tenant),
        (status = 400, description = "the request is malformed", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 403, description = "the token may not do this", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 409, description = "refused in the object's current state", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 413, description = "the body is over 1 MiB", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 415, description = "the body is not sent as application/json", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 422, description = "a value is wrong", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn add_tenant(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    b: JsonBody<service::NewTenant>,
) -> Result<(StatusCode, Json<crate::tenants::Tenant>), Problem> {
    let new = body(b)?;
    let created = service::add_tenant(&s.db, &t.caller, &new).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// A JSON body, or a 400 problem saying what is wrong with it.
fn body<T>(b: JsonBody<T>) -> Result<T, Problem> {
    b.0
}

/// A request body that must be a JSON object of `T`. Unlike `Json<T>`, an
/// array is refused: serde would otherwise read a struct from `[…]`
/// (schemathesis found `PATCH /tenants/{slug}` accepting `[null, null]`).
struct JsonBody<T>(Result<T, Problem>);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bad = |detail: String| Problem::new(StatusCode::BAD_REQUEST, "bad-request", detail);
        let v = match Json::<serde_json::Value>::from_request(req, state).await {
            Ok(Json(v)) => v,
            // 413 past the 1 MiB limit, 415 without a JSON content type,
            // 400 for JSON that does not parse.
            Err(e) => {
                let kind = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    "too-large"
                } else {
                    "bad-request"
                };
                return Ok(JsonBody(Err(Problem::new(e.status(), kind, e.body_text()))));
            }
        };
        if !v.is_object() {
            return Ok(JsonBody(Err(bad("the body must be a JSON object".into()))));
        }
        Ok(JsonBody(serde_json::from_value(v).map_err(|e| {
            bad(format!(
                "Failed to deserialize the JSON body into the target type: {e}"
            ))
        })))
    }
}

#[utoipa::path(
    patch,
    path = "/tenants/{slug}",
    tag = "tenants",
    summary = "Change the safety cap",
    params(("slug" = String, Path, description = "the tenant's slug")),
    request_body = service::TenantSettings,
    responses(
        (status = 200, description = "the tenant", body = crate::tenants::Tenant),
        (status = 400, description = "the request is malformed", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 413, description = "the body is over 1 MiB", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 415, description = "the body is not sent as application/json", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 422, description = "a value is wrong", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn set_tenant(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
    b: JsonBody<service::TenantSettings>,
) -> ApiResult<crate::tenants::Tenant> {
    let settings = body(b)?;
    Ok(Json(
        service::set_tenant(&s.db, &t.caller, &slug, &settings).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/tenants/{slug}/mapping",
    tag = "mapping",
    summary = "The mapping",
    params(("slug" = String, Path, description = "the tenant's slug")),
    responses(
        (status = 200, description = "the mapping", body = crate::map::Mapping),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 409, description = "refused in the object's current state", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn get_mapping(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<crate::map::Mapping> {
    Ok(Json(service::mapping(&s.db, &t.caller, &slug).await?))
}

#[utoipa::path(
    put,
    path = "/tenants/{slug}/mapping",
    tag = "mapping",
    summary = "Replace the mapping",
    params(("slug" = String, Path, description = "the tenant's slug")),
    request_body = crate::map::Mapping,
    responses(
        (status = 200, description = "the mapping", body = crate::map::Mapping),
        (status = 400, description = "the request is malformed", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 413, description = "the body is over 1 MiB", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 415, description = "the body is not sent as application/json", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 422, description = "a value is wrong", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn put_mapping(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
    b: JsonBody<crate::map::Mapping>,
) -> ApiResult<crate::map::Mapping> {
    let mapping = body(b)?;
    service::set_mapping(&s.db, &t.caller, &slug, &mapping).await?;
    Ok(Json(mapping))
}

#[utoipa::path(
    get,
    path = "/tenants/{slug}/groups",
    tag = "groups",
    summary = "Groups files can add people to",
    params(("slug" = String, Path, description = "the tenant's slug")),
    responses(
        (status = 200, description = "the groups", body = Vec<crate::db::entity::group::Model>),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn list_groups(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<Vec<crate::db::entity::group::Model>> {
    Ok(Json(service::groups(&s.db, &t.caller, &slug).await?))
}

#[utoipa::path(
    post,
    path = "/tenants/{slug}/groups",
    tag = "groups",
    summary = "Add a group",
    params(("slug" = String, Path, description = "the tenant's slug")),
    request_body = service::NewGroup,
    responses(
        (status = 201, description = "created", body = crate::db::entity::group::Model),
        (status = 400, description = "the request is malformed", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 413, description = "the body is over 1 MiB", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 415, description = "the body is not sent as application/json", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 422, description = "a value is wrong", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn add_group(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
    b: JsonBody<service::NewGroup>,
) -> Result<(StatusCode, Json<crate::db::entity::group::Model>), Problem> {
    let new = body(b)?;
    let g = service::add_group(&s.db, &t.caller, &slug, &new).await?;
    Ok((StatusCode::CREATED, Json(g)))
}

#[utoipa::path(
    get,
    path = "/tenants/{slug}/profile-fields",
    tag = "profile fields",
    summary = "Custom profile fields",
    params(("slug" = String, Path, description = "the tenant's slug")),
    responses(
        (status = 200, description = "the fields", body = Vec<service::ProfileField>),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn list_profile_fields(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<Vec<service::ProfileField>> {
    Ok(Json(
        service::profile_fields(&s.db, &t.caller, &slug).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/tenants/{slug}/profile-fields",
    tag = "profile fields",
    summary = "Add a profile field",
    params(("slug" = String, Path, description = "the tenant's slug")),
    request_body = service::ProfileField,
    responses(
        (status = 201, description = "created", body = service::ProfileField),
        (status = 400, description = "the request is malformed", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 413, description = "the body is over 1 MiB", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 415, description = "the body is not sent as application/json", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 422, description = "a value is wrong", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn add_profile_field(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
    b: JsonBody<service::ProfileField>,
) -> Result<(StatusCode, Json<service::ProfileField>), Problem> {
    let field = body(b)?;
    service::add_profile_field(&s.db, &t.caller, &slug, &field).await?;
    Ok((StatusCode::CREATED, Json(field)))
}

#[utoipa::path(
    get,
    path = "/tenants/{slug}/users",
    tag = "users",
    summary = "Users with roles, managers and groups",
    params(("slug" = String, Path, description = "the tenant's slug")),
    responses(
        (status = 200, description = "the users", body = Vec<crate::report::UserListing>),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn list_users(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<Vec<crate::report::UserListing>> {
    Ok(Json(service::users(&s.db, &t.caller, &slug).await?))
}

#[utoipa::path(
    get,
    path = "/tenants/{slug}",
    tag = "tenants",
    summary = "One tenant",
    params(("slug" = String, Path, description = "the tenant's slug")),
    responses(
        (status = 200, description = "the tenant", body = crate::tenants::Tenant),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn get_tenant(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<crate::tenants::Tenant> {
    Ok(Json(service::tenant(&s.db, &t.caller, &slug).await?))
}

#[utoipa::path(
    get,
    path = "/tenants/{slug}/uploads",
    tag = "uploads",
    summary = "Upload history, newest first, a page at a time",
    params(("slug" = String, Path, description = "the tenant's slug"), UploadsQuery),
    responses(
        (status = 200, description = "a page of uploads", body = Page<crate::db::entity::upload::Model>),
        (status = 400, description = "the request is malformed", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 422, description = "a value is wrong", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn list_uploads(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
    q: Result<Query<UploadsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Page<crate::db::entity::upload::Model>> {
    let Query(q) =
        q.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-request", e.body_text()))?;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let filter = crate::report::UploadFilter {
        before: q.before,
        state: q.state.as_deref().map(service::upload_state).transpose()?,
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

#[utoipa::path(
    get,
    path = "/uploads/{id}",
    tag = "uploads",
    summary = "One upload with its counts, first row problems and notifications",
    params(("id" = i64, Path, description = "the upload's id")),
    responses(
        (status = 200, description = "the upload", body = crate::report::UploadDetail),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn get_upload(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
) -> ApiResult<crate::report::UploadDetail> {
    let id = upload_id(&id)?;
    Ok(Json(service::upload(&s.db, &t.caller, id, 200).await?))
}

/// The query of a paged list of an upload: `?limit=&after=` (the cursor a
/// page's `next` gives), and for problems `format=csv`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// Entries per page, 1 to 1000 (default 100).
    limit: Option<u64>,
    /// The cursor a page's `next` carries.
    after: Option<String>,
    /// `json` (default) or, for problems, `csv`.
    format: Option<Format>,
}

/// How a list is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum Format {
    /// A page of JSON.
    Json,
    /// All of it as CSV (row problems only).
    Csv,
}

fn page_query(
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<PageQuery, Problem> {
    let Query(q) =
        q.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-request", e.body_text()))?;
    Ok(q)
}

fn cursor<T: std::str::FromStr<Err = String>>(raw: Option<&str>) -> Result<Option<T>, Problem> {
    // An empty cursor is the first page, as no cursor is.
    raw.filter(|r| !r.is_empty())
        .map(|r| r.parse())
        .transpose()
        .map_err(|e: String| Problem::new(StatusCode::BAD_REQUEST, "bad-request", e))
}

/// Row problems, by line: a page of JSON, or with `format=csv` all of them
/// as a CSV download (line, severity, column, message).
#[utoipa::path(
    get,
    path = "/uploads/{id}/problems",
    tag = "uploads",
    summary = "Row problems by line, a page at a time, or all as CSV",
    params(("id" = i64, Path, description = "the upload's id"), PageQuery),
    responses(
        (status = 200, description = "a page of problems, or with format=csv all of them as CSV", content(
            (Page<crate::db::entity::upload_row_error::Model> = "application/json"),
            (String = "text/csv")
        )),
        (status = 400, description = "the request is malformed", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn get_problems(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let id = upload_id(&id)?;
    let q = page_query(q)?;
    let after = cursor::<crate::report::ProblemCursor>(q.after.as_deref())?;
    match q.format {
        Some(Format::Csv) => {
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
        Some(Format::Json) | None => {
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
    }
}

/// What an upload changed, a page at a time.
#[utoipa::path(
    get,
    path = "/uploads/{id}/changes",
    tag = "uploads",
    summary = "What the upload changed, a page at a time",
    params(("id" = i64, Path, description = "the upload's id"), PageQuery),
    responses(
        (status = 200, description = "a page of changes", body = Page<crate::report::Change>),
        (status = 400, description = "the request is malformed", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn get_changes(
    State(s): State<WebState>,
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

#[utoipa::path(
    post,
    path = "/uploads/{id}/approve",
    tag = "holds",
    summary = "Perform a held upload's deactivations",
    params(("id" = i64, Path, description = "the upload's id")),
    responses(
        (status = 200, description = "approved", body = service::Resolved),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 409, description = "refused in the object's current state", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn approve(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
) -> ApiResult<service::Resolved> {
    let id = upload_id(&id)?;
    Ok(Json(service::approve(&s.db, &t.caller, id).await?))
}

#[utoipa::path(
    post,
    path = "/uploads/{id}/reject",
    tag = "holds",
    summary = "Drop a held upload's deactivations",
    params(("id" = i64, Path, description = "the upload's id")),
    responses(
        (status = 200, description = "rejected", body = service::Resolved),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 409, description = "refused in the object's current state", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn reject(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
) -> ApiResult<service::Resolved> {
    let id = upload_id(&id)?;
    Ok(Json(service::reject(&s.db, &t.caller, id).await?))
}

#[utoipa::path(
    post,
    path = "/uploads/{id}/retry",
    tag = "uploads",
    summary = "Queue a failed upload's file again",
    params(("id" = i64, Path, description = "the upload's id")),
    responses(
        (status = 200, description = "queued", body = service::Retried),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 409, description = "refused in the object's current state", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn retry(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
) -> ApiResult<service::Retried> {
    let id = upload_id(&id)?;
    Ok(Json(service::retry(&s.db, &t.caller, id).await?))
}

#[utoipa::path(
    put,
    path = "/tenants/{slug}/webhook",
    tag = "webhooks",
    summary = "Set where the tenant's notifications go",
    params(("slug" = String, Path, description = "the tenant's slug")),
    request_body = service::WebhookRequest,
    responses(
        (status = 200, description = "the URL and the signing secret", body = service::Webhook),
        (status = 400, description = "the request is malformed", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 409, description = "refused in the object's current state", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 413, description = "the body is over 1 MiB", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 415, description = "the body is not sent as application/json", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 422, description = "a value is wrong", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn put_webhook(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
    req: JsonBody<service::WebhookRequest>,
) -> ApiResult<service::Webhook> {
    let req = body(req)?;
    Ok(Json(
        service::set_webhook(&s.db, &t.caller, &slug, &req, &s.notify).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/tenants/{slug}/webhook",
    tag = "webhooks",
    summary = "Remove the tenant's webhook URL",
    params(("slug" = String, Path, description = "the tenant's slug")),
    responses(
        (status = 204, description = "removed"),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn delete_webhook(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> Result<StatusCode, Problem> {
    service::clear_webhook(&s.db, &t.caller, &slug).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/overview",
    tag = "tenants",
    summary = "Every tenant's last upload, the backlog, and failed or held uploads across tenants (platform tokens)",
    responses(
        (status = 200, description = "the overview", body = service::Overview),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 403, description = "a tenant token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn get_overview(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
) -> ApiResult<service::Overview> {
    Ok(Json(service::overview(&s.db, &t.caller).await?))
}

#[utoipa::path(
    get,
    path = "/tenants/{slug}/credentials",
    tag = "credentials",
    summary = "Connection details: bucket, prefix, upload command and the tenant's key IDs",
    params(("slug" = String, Path, description = "the tenant's slug")),
    responses(
        (status = 200, description = "the connection details", body = crate::credentials::Connection),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn get_credentials(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<crate::credentials::Connection> {
    Ok(Json(
        service::connection(&s.db, &t.caller, &slug, &s.credentials.region).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/tenants/{slug}/credentials",
    tag = "credentials",
    summary = "Make the tenant's write-only upload user and key; the secret is in this answer only",
    params(("slug" = String, Path, description = "the tenant's slug")),
    responses(
        (status = 201, description = "the new key, with its secret (shown once)", body = crate::credentials::NewKey),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 409, description = "refused: a key is already active, the tenant has no bucket, or this deployment has no AWS", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or IAM did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn create_credentials(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> Result<(StatusCode, Json<crate::credentials::NewKey>), Problem> {
    let key =
        service::create_credentials(&s.db, s.credentials.iam.as_ref(), &t.caller, &slug).await?;
    Ok((StatusCode::CREATED, Json(key)))
}

#[utoipa::path(
    post,
    path = "/tenants/{slug}/credentials/rotate",
    tag = "credentials",
    summary = "Make a new key; the old one works for the grace period (credentials.rotation_grace_hours)",
    params(("slug" = String, Path, description = "the tenant's slug")),
    responses(
        (status = 200, description = "the new key, with its secret (shown once), and the retiring one", body = crate::credentials::NewKey),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 409, description = "refused: no active key, no bucket, or no AWS", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or IAM did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn rotate_credentials(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<crate::credentials::NewKey> {
    let c = &s.credentials;
    Ok(Json(
        service::rotate_credentials(&s.db, c.iam.as_ref(), &t.caller, &slug, c.grace).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/tenants/{slug}/credentials",
    tag = "credentials",
    summary = "Delete every key of the tenant now",
    params(("slug" = String, Path, description = "the tenant's slug")),
    responses(
        (status = 200, description = "the key IDs that no longer work", body = service::Revoked),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 409, description = "refused: this deployment has no AWS", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or IAM did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn revoke_credentials(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<service::Revoked> {
    Ok(Json(
        service::revoke_credentials(&s.db, s.credentials.iam.as_ref(), &t.caller, &slug).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/uploads/{id}/notifications",
    tag = "uploads",
    summary = "Webhook notifications of the upload, with every attempt",
    params(("id" = i64, Path, description = "the upload's id")),
    responses(
        (status = 200, description = "the notifications", body = Vec<crate::report::NotificationView>),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn get_notifications(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
) -> ApiResult<Vec<crate::report::NotificationView>> {
    let id = upload_id(&id)?;
    Ok(Json(service::notifications(&s.db, &t.caller, id).await?))
}

#[utoipa::path(
    delete,
    path = "/tenants/{slug}/groups/{key}",
    tag = "groups",
    summary = "Remove a group and its memberships",
    params(("slug" = String, Path, description = "the tenant's slug"), ("key" = String, Path, description = "the group's ID")),
    responses(
        (status = 200, description = "removed", body = service::RemovedGroup),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn remove_group(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path((slug, key)): Path<(String, String)>,
) -> ApiResult<service::RemovedGroup> {
    Ok(Json(
        service::remove_group(&s.db, &t.caller, &slug, &key).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/tenants/{slug}/profile-fields/{key}",
    tag = "profile fields",
    summary = "Remove a profile field (refused while the mapping fills it)",
    params(("slug" = String, Path, description = "the tenant's slug"), ("key" = String, Path, description = "the field")),
    responses(
        (status = 204, description = "removed"),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 409, description = "refused in the object's current state", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn remove_profile_field(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path((slug, key)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    service::remove_profile_field(&s.db, &t.caller, &slug, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The query of an undo: `?preview=true` changes nothing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct UndoQuery {
    /// Say what the undo would do; change nothing.
    #[serde(default)]
    preview: bool,
}

#[utoipa::path(
    post,
    path = "/uploads/{id}/undo",
    tag = "uploads",
    summary = "Undo the tenant's newest applied upload (or preview that)",
    params(("id" = i64, Path, description = "the upload's id"), UndoQuery),
    responses(
        (status = 200, description = "what the undo did or would do", body = crate::apply::undo::UndoReport),
        (status = 400, description = "the request is malformed", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 401, description = "no or a wrong bearer token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such object, or not one the token reaches", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 409, description = "refused in the object's current state", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 429, description = "over the token's rate", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database or a dependency did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
async fn undo(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
    q: Result<Query<UndoQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<crate::apply::undo::UndoReport> {
    let id = upload_id(&id)?;
    let Query(q) =
        q.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-request", e.body_text()))?;
    Ok(Json(service::undo(&s.db, &t.caller, id, q.preview).await?))
}
