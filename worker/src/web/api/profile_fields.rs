//! A tenant's custom profile fields.

use super::*;

#[utoipa::path(
    get,
    path = "/tenants/{slug}/profile-fields",
    tag = "profile fields",
    summary = "Custom profile fields",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug")),
    responses(
        (status = 200, description = "the fields", body = Vec<service::ProfileField>),
        errors::Authenticated,
        errors::NotFound,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn list_profile_fields(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> ApiResult<Vec<service::ProfileField>> {
    Ok(Json(s.service.profile_fields(&t.caller, &slug).await?))
}

#[utoipa::path(
    post,
    path = "/tenants/{slug}/profile-fields",
    tag = "profile fields",
    summary = "Add a profile field",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug")),
    request_body = service::ProfileField,
    responses(
        (status = 201, description = "created", body = service::ProfileField),
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
pub(super) async fn add_profile_field(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
    b: JsonBody<service::ProfileField>,
) -> Result<(StatusCode, Json<service::ProfileField>), Problem> {
    let field = body(b)?;
    s.service
        .add_profile_field(&t.caller, &slug, &field)
        .await?;
    Ok((StatusCode::CREATED, Json(field)))
}

#[utoipa::path(
    delete,
    path = "/tenants/{slug}/profile-fields/{key}",
    tag = "profile fields",
    summary = "Remove a profile field (refused while the mapping fills it)",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug"), ("key" = String, Path, max_length = 64, description = "the field")),
    responses(
        (status = 204, description = "removed"),
        errors::Authenticated,
        errors::NotFound,
        errors::Refused,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn remove_profile_field(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path((slug, key)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    s.service
        .remove_profile_field(&t.caller, &slug, &key)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
