//! The Xero endpoints (`docs/xero.md`): a tenant's connection, preview,
//! import and disconnect. Connecting runs the OAuth flow on the admin's own
//! machine (`userfeed xero connect`), where the browser is.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Router, routing::post};
use serde::Serialize;

use super::errors;
use super::{ApiResult, Problem, WebState};
use crate::web::auth::Token;
use crate::xero::ConnectionInfo;
use crate::xero::connection::{Start, XeroImport};

/// A tenant's Xero connection.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct XeroStatus {
    /// The connection; `null` when the tenant is not connected.
    pub connection: Option<ConnectionInfo>,
}

/// What a disconnect did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Disconnected {
    /// `false` when the tenant was not connected.
    pub disconnected: bool,
}

/// The routes, without the request deadline: a call to Xero is bounded by
/// the client's own timeouts, attempts and `Retry-After` waits.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route(
            "/tenants/{slug}/xero",
            axum::routing::get(get_xero).delete(disconnect_xero),
        )
        .route("/tenants/{slug}/xero/preview", post(preview_xero))
        .route("/tenants/{slug}/xero/import", post(import_xero))
}

#[utoipa::path(
    get,
    path = "/tenants/{slug}/xero",
    tag = "xero",
    summary = "The tenant's Xero connection (never its tokens)",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug")),
    responses(
        (status = 200, description = "the connection, or null", body = XeroStatus),
        errors::Authenticated,
        errors::NotFound,
        (status = 409, description = "refused: Xero is not configured on this deployment", body = crate::web::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_xero(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<XeroStatus> {
    let connection = s.service.xero_status(&t.caller, &slug).await?;
    Ok(Json(XeroStatus { connection }))
}

#[utoipa::path(
    post,
    path = "/tenants/{slug}/xero/preview",
    tag = "xero",
    summary = "What an import would do now: employees to import, those that cannot be (with reasons), those already users",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug")),
    responses(
        (status = 200, description = "the three groups", body = crate::xero::XeroPreview),
        errors::Authenticated,
        errors::NotFound,
        (status = 409, description = "refused: not connected, the grant expired or was revoked (connect again), or Xero is not configured", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Xero did not answer, or its limits are used up", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
pub(super) async fn preview_xero(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<crate::xero::XeroPreview> {
    Ok(Json(s.service.xero_preview(&t.caller, &slug).await?))
}

#[utoipa::path(
    post,
    path = "/tenants/{slug}/xero/import",
    tag = "xero",
    summary = "Queue an import of the organisation's employees (an upload of source xero: creates users only)",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug")),
    responses(
        (status = 202, description = "the queued upload and what it was built from", body = XeroImport),
        errors::Authenticated,
        errors::NotFound,
        (status = 409, description = "refused: not connected, the grant expired or was revoked (connect again), or Xero is not configured", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Xero did not answer, or its limits are used up", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
pub(super) async fn import_xero(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> Result<(StatusCode, Json<XeroImport>), Problem> {
    let done = s
        .service
        .xero_import(&t.caller, &slug, Start::Queued)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(done)))
}

#[utoipa::path(
    delete,
    path = "/tenants/{slug}/xero",
    tag = "xero",
    summary = "Revoke the grant in Xero and delete the tenant's connection",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug")),
    responses(
        (status = 200, description = "whether there was a connection", body = Disconnected),
        errors::Authenticated,
        errors::NotFound,
        (status = 409, description = "refused: Xero is not configured on this deployment", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Xero did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
pub(super) async fn disconnect_xero(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<Disconnected> {
    let disconnected = s.service.xero_disconnect(&t.caller, &slug).await?;
    Ok(Json(Disconnected { disconnected }))
}
