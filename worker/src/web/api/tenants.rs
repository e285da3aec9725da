//! Tenants: list, create, read and change their settings.

use super::*;

#[utoipa::path(
    get,
    path = "/tenants",
    tag = "tenants",
    summary = "The tenants the token reaches",
    responses(
        (status = 200, description = "the tenants", body = Vec<crate::tenants::Tenant>),
        errors::Authenticated,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn list_tenants(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
) -> ApiResult<Vec<crate::tenants::Tenant>> {
    Ok(Json(s.service.tenants(&t.caller).await?))
}

#[utoipa::path(
    post,
    path = "/tenants",
    tag = "tenants",
    summary = "Create a tenant (platform tokens only)",
    request_body = service::NewTenant,
    responses(
        (status = 201, description = "created", body = crate::tenants::Tenant),
        errors::Malformed,
        errors::Authenticated,
        (status = 403, description = "the token may not do this", body = crate::web::Problem, content_type = "application/problem+json"),
        errors::Refused,
        errors::BodyTooLarge,
        errors::NotJson,
        errors::Invalid,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn add_tenant(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    b: JsonBody<service::NewTenant>,
) -> Result<(StatusCode, Json<crate::tenants::Tenant>), Problem> {
    let new = body(b)?;
    let created = s.service.add_tenant(&t.caller, &new).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(
    get,
    path = "/tenants/{slug}",
    tag = "tenants",
    summary = "One tenant",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug")),
    responses(
        (status = 200, description = "the tenant", body = crate::tenants::Tenant),
        errors::Authenticated,
        errors::NotFound,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_tenant(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<crate::tenants::Tenant> {
    Ok(Json(s.service.tenant(&t.caller, &slug).await?))
}

#[utoipa::path(
    patch,
    path = "/tenants/{slug}",
    tag = "tenants",
    summary = "Change the safety cap",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug")),
    request_body = service::TenantSettings,
    responses(
        (status = 200, description = "the tenant", body = crate::tenants::Tenant),
        errors::Malformed,
        errors::Authenticated,
        errors::NotFound,
        errors::BodyTooLarge,
        errors::NotJson,
        errors::Invalid,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn set_tenant(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
    b: JsonBody<service::TenantSettings>,
) -> ApiResult<crate::tenants::Tenant> {
    let settings = body(b)?;
    Ok(Json(
        s.service.set_tenant(&t.caller, &slug, &settings).await?,
    ))
}
