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

mod credentials;
mod errors;
pub mod files;
mod groups;
mod mapping;
mod overview;
mod profile_fields;
mod tenants;
mod uploads;
mod users;
mod webhooks;
pub mod xero;

use credentials::*;
use groups::*;
use mapping::*;
use overview::*;
use profile_fields::*;
use tenants::*;
use uploads::*;
use users::*;
use webhooks::*;

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
        get_upload, get_problems, get_held_people, get_changes, get_notifications,
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
        .route("/uploads/{id}/held-deactivations", get(get_held_people))
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

/// A page of a list, with the link to the next one when there may be more.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// The entries of this page.
    items: Vec<T>,
    /// The next page's path and query, or `null` after the last page.
    next: Option<String>,
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
