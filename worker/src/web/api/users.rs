//! A tenant's users.

use super::*;

#[utoipa::path(
    get,
    path = "/tenants/{slug}/users",
    tag = "users",
    summary = "Users with roles, managers and groups",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug")),
    responses(
        (status = 200, description = "the users", body = Vec<crate::report::UserListing>),
        errors::Authenticated,
        errors::NotFound,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn list_users(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<Vec<crate::report::UserListing>> {
    Ok(Json(s.service.users(&t.caller, &slug).await?))
}
