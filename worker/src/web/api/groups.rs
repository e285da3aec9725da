//! A tenant's platform groups.

use super::*;

#[utoipa::path(
    get,
    path = "/tenants/{slug}/groups",
    tag = "groups",
    summary = "Groups files can add people to",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug")),
    responses(
        (status = 200, description = "the groups", body = Vec<crate::db::entity::group::Model>),
        errors::Authenticated,
        errors::NotFound,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn list_groups(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<Vec<crate::db::entity::group::Model>> {
    Ok(Json(s.service.groups(&t.caller, &slug).await?))
}

#[utoipa::path(
    post,
    path = "/tenants/{slug}/groups",
    tag = "groups",
    summary = "Add a group",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug")),
    request_body = service::NewGroup,
    responses(
        (status = 201, description = "created", body = crate::db::entity::group::Model),
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
pub(super) async fn add_group(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
    b: JsonBody<service::NewGroup>,
) -> Result<(StatusCode, Json<crate::db::entity::group::Model>), Problem> {
    let new = body(b)?;
    let g = s.service.add_group(&t.caller, &slug, &new).await?;
    Ok((StatusCode::CREATED, Json(g)))
}

#[utoipa::path(
    delete,
    path = "/tenants/{slug}/groups/{key}",
    tag = "groups",
    summary = "Remove a group and its memberships",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug"), ("key" = String, Path, max_length = 255, description = "the group's ID")),
    responses(
        (status = 200, description = "removed", body = service::RemovedGroup),
        errors::Authenticated,
        errors::NotFound,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn remove_group(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path((slug, key)): Path<(String, String)>,
) -> ApiResult<service::RemovedGroup> {
    Ok(Json(s.service.remove_group(&t.caller, &slug, &key).await?))
}
