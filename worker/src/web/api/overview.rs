//! The operators' overview.

use super::*;

#[utoipa::path(
    get,
    path = "/overview",
    tag = "tenants",
    summary = "Every tenant's last upload, the backlog, and failed or held uploads across tenants (platform tokens)",
    responses(
        (status = 200, description = "the overview", body = service::Overview),
        errors::Authenticated,
        (status = 403, description = "a tenant token", body = crate::web::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the database did not answer", body = crate::web::Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_overview(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
) -> ApiResult<service::Overview> {
    Ok(Json(s.service.overview(&t.caller).await?))
}
