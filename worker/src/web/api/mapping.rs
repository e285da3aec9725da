//! A tenant's column mapping.

use super::*;

#[utoipa::path(
    get,
    path = "/tenants/{slug}/mapping",
    tag = "mapping",
    summary = "The mapping",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug")),
    responses(
        (status = 200, description = "the mapping", body = crate::map::Mapping),
        errors::Authenticated,
        errors::NotFound,
        errors::Refused,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_mapping(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<crate::map::Mapping> {
    Ok(Json(s.service.mapping(&t.caller, &slug).await?))
}

#[utoipa::path(
    put,
    path = "/tenants/{slug}/mapping",
    tag = "mapping",
    summary = "Replace the mapping",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug")),
    request_body = crate::map::Mapping,
    responses(
        (status = 200, description = "the mapping", body = crate::map::Mapping),
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
pub(super) async fn put_mapping(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
    b: JsonBody<crate::map::Mapping>,
) -> ApiResult<crate::map::Mapping> {
    let mapping = body(b)?;
    s.service.set_mapping(&t.caller, &slug, &mapping).await?;
    Ok(Json(mapping))
}
