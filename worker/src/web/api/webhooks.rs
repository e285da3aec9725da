//! A tenant's webhook, and an upload's notifications.

use super::*;

#[utoipa::path(
    put,
    path = "/tenants/{slug}/webhook",
    tag = "webhooks",
    summary = "Set where the tenant's notifications go",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug")),
    request_body = service::WebhookRequest,
    responses(
        (status = 200, description = "the URL and the signing secret", body = service::Webhook),
        errors::Malformed,
        errors::Authenticated,
        errors::NotFound,
        errors::Refused,
        errors::BodyTooLarge,
        errors::NotJson,
        errors::Invalid,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn put_webhook(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
    req: JsonBody<service::WebhookRequest>,
) -> ApiResult<service::Webhook> {
    let req = body(req)?;
    Ok(Json(s.service.set_webhook(&t.caller, &slug, &req).await?))
}

#[utoipa::path(
    delete,
    path = "/tenants/{slug}/webhook",
    tag = "webhooks",
    summary = "Remove the tenant's webhook URL",
    params(("slug" = String, Path, max_length = 63, description = "the tenant's slug")),
    responses(
        (status = 204, description = "removed"),
        errors::Authenticated,
        errors::NotFound,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn delete_webhook(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(slug): Path<String>,
) -> Result<StatusCode, Problem> {
    s.service.clear_webhook(&t.caller, &slug).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/uploads/{id}/notifications",
    tag = "uploads",
    summary = "Webhook notifications of the upload, with every attempt",
    params(("id" = i64, Path, description = "the upload's id")),
    responses(
        (status = 200, description = "the notifications", body = Vec<crate::report::NotificationView>),
        errors::Authenticated,
        errors::NotFound,
        errors::Unavailable,
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_notifications(
    State(s): State<WebState>,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
) -> ApiResult<Vec<crate::report::NotificationView>> {
    let id = upload_id(&id)?;
    Ok(Json(s.service.notifications(&t.caller, id).await?))
}
