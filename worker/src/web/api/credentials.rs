//! A tenant's upload credentials.

use super::*;

#[utoipa::path(
    get,
    path = "/tenants/{slug}/credentials",
    tag = "credentials",
    summary = "Connection details: bucket, prefix, upload command and the tenant's key IDs",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug")),
    responses(
        (status = 200, description = "the connection details", body = crate::credentials::Connection),
        errors::Authenticated,
        errors::NotFound,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_credentials(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<crate::credentials::Connection> {
    Ok(Json(s.service.connection(&t.caller, &slug).await?))
}

#[utoipa::path(
    post,
    path = "/tenants/{slug}/credentials",
    tag = "credentials",
    summary = "Make the tenant's write-only upload user and key; the secret is in this answer only",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug")),
    responses(
        (status = 201, description = "the new key, with its secret (shown once)", body = crate::credentials::NewKey),
        errors::Authenticated,
        errors::NotFound,
        (status = 409, description = "refused: a key is already active, the tenant has no bucket, or this deployment has no AWS", body = crate::web::Problem, content_type = "application/problem+json"),
        errors::IamUnavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn create_credentials(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> Result<(StatusCode, Json<crate::credentials::NewKey>), Problem> {
    let key = s.service.create_credentials(&t.caller, &slug).await?;
    Ok((StatusCode::CREATED, Json(key)))
}

#[utoipa::path(
    post,
    path = "/tenants/{slug}/credentials/rotate",
    tag = "credentials",
    summary = "Make a new key; the old one works for the grace period (credentials.rotation_grace_hours)",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug")),
    responses(
        (status = 200, description = "the new key, with its secret (shown once), and the retiring one", body = crate::credentials::NewKey),
        errors::Authenticated,
        errors::NotFound,
        (status = 409, description = "refused: no active key, no bucket, or no AWS", body = crate::web::Problem, content_type = "application/problem+json"),
        errors::IamUnavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn rotate_credentials(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<crate::credentials::NewKey> {
    let c = &s.credentials;
    Ok(Json(
        s.service
            .rotate_credentials(&t.caller, &slug, c.grace)
            .await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/tenants/{slug}/credentials",
    tag = "credentials",
    summary = "Delete every key of the tenant now",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug")),
    responses(
        (status = 200, description = "the key IDs that no longer work", body = service::Revoked),
        errors::Authenticated,
        errors::NotFound,
        (status = 409, description = "refused: this deployment has no AWS", body = crate::web::Problem, content_type = "application/problem+json"),
        errors::IamUnavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn revoke_credentials(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<service::Revoked> {
    Ok(Json(s.service.revoke_credentials(&t.caller, &slug).await?))
}
