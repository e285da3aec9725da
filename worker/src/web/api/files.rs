//! The API's file endpoints: preview, manual upload, mapping suggestion
//! and the CSV template. Bodies are spooled to disk as they arrive
//! ([`crate::web::spool`]).

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use super::errors;
use super::{ApiResult, Problem, WebState};
use crate::service;
use crate::web::auth::Token;
use crate::web::spool::spool;

/// `POST /tenants/{slug}/preview`: what a CSV would do; nothing changes.
#[utoipa::path(
    post,
    path = "/tenants/{slug}/preview",
    tag = "files",
    summary = "What a CSV would do; nothing changes",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug")),
    request_body(content = String, content_type = "text/csv", description = "the CSV file"),
    responses(
        (status = 200, description = "the preview", body = crate::apply::preview::PreviewReport),
        errors::Authenticated,
        errors::NotFound,
        errors::Refused,
        errors::FileTooLarge,
        errors::Invalid,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn preview(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
    body: Body,
) -> ApiResult<crate::apply::preview::PreviewReport> {
    // The tenant is checked before the body is read.
    s.service.tenant(&t.caller, &slug).await?;
    let f = spool(&s.files, body, s.files.limits.max_object_bytes).await?;
    let r = within(&s, f.bytes, s.service.preview(&t.caller, &slug, &f.path)).await?;
    Ok(Json(r))
}

/// Runs a file route's work on a file of `bytes` under the deadline that
/// grows with it (`api.request_timeout_seconds` plus a second per
/// `api.file_bytes_per_second`); past it, 503 `#timeout`.
async fn within<T>(
    s: &WebState,
    bytes: u64,
    work: impl Future<Output = Result<T, service::ServiceError>>,
) -> Result<T, Problem> {
    let limit = s.guard.file_deadline(s.timeout, bytes);
    match tokio::time::timeout(limit, work).await {
        Ok(done) => Ok(done?),
        Err(_) => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took longer than {} s", limit.as_secs()),
        )),
    }
}

/// The query of a manual upload: `?name=` names the file.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct UploadQuery {
    /// The file's name (letters, digits, `.`, `-`, `_`); `upload.csv` when left out.
    #[param(max_length = 255)]
    name: Option<String>,
}

/// `POST /tenants/{slug}/files`: a CSV delivered where the tenant's drops
/// go, to be queued like one. 202: the upload appears in the history once
/// intake records it.
#[utoipa::path(
    post,
    path = "/tenants/{slug}/files",
    tag = "files",
    summary = "Deliver a CSV where the tenant's drops go, to be queued like one",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug"), UploadQuery),
    request_body(content = String, content_type = "text/csv", description = "the CSV file"),
    responses(
        (status = 202, description = "delivered", body = crate::intake::manual::Delivered),
        errors::Malformed,
        errors::Authenticated,
        errors::NotFound,
        errors::Refused,
        errors::FileTooLarge,
        errors::Invalid,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn upload(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
    q: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<Response, Problem> {
    let Query(q) =
        q.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-request", e.body_text()))?;
    s.service.tenant(&t.caller, &slug).await?;
    // Checked before the body is read, so a bad name costs no upload.
    crate::intake::manual::delivered_name(q.name.as_deref())
        .map_err(|e| Problem::from(service::ServiceError::Invalid(e.to_string())))?;
    let f = spool(&s.files, body, s.files.limits.max_object_bytes).await?;
    let done = within(
        &s,
        f.bytes,
        s.service
            .deliver_file(&t.caller, &slug, q.name.as_deref(), &f.path, f.bytes),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(done)).into_response())
}

/// `POST /tenants/{slug}/mapping/suggest`: a mapping suggested from a
/// sample file (or just its header line).
#[utoipa::path(
    post,
    path = "/tenants/{slug}/mapping/suggest",
    tag = "mapping",
    summary = "A mapping suggested from a sample file or header line",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug")),
    request_body(content = String, content_type = "text/csv", description = "a sample CSV, or just its header line"),
    responses(
        (status = 200, description = "the suggestion", body = service::SuggestedMapping),
        errors::Authenticated,
        errors::NotFound,
        errors::FileTooLarge,
        errors::Invalid,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn suggest(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
    body: Body,
) -> ApiResult<service::SuggestedMapping> {
    s.service.tenant(&t.caller, &slug).await?;
    let f = spool(&s.files, body, s.files.limits.max_object_bytes).await?;
    Ok(Json(
        within(
            &s,
            f.bytes,
            s.service.suggest_mapping_for(&t.caller, &slug, &f.path),
        )
        .await?,
    ))
}

/// `GET /tenants/{slug}/mapping/template`: the CSV header and an example
/// row for the tenant's mapping.
#[utoipa::path(
    get,
    path = "/tenants/{slug}/mapping/template",
    tag = "mapping",
    summary = "The CSV template for the mapping",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug")),
    responses(
        (status = 200, description = "a CSV header and example row", body = String, content_type = "text/csv"),
        errors::Authenticated,
        errors::NotFound,
        errors::Refused,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn template(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> Result<Response, Problem> {
    let csv = s.service.template(&t.caller, &slug).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{slug}-template.csv\""),
            ),
        ],
        csv,
    )
        .into_response())
}
