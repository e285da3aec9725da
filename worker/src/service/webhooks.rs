//! A tenant's webhook and its notifications.

use super::*;

/// A tenant's webhook: where it goes and the secret its calls are signed
/// with (for the receiver; see `docs/webhooks.md`).
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Webhook {
    /// The URL; `None` when cleared (the platform default applies).
    pub url: Option<String>,
    /// The signing secret; `None` when cleared.
    pub secret: Option<String>,
}

/// What `PUT /tenants/{slug}/webhook` takes.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// The receiver's URL: `https://` (or `http://` where the deployment
    /// allows it) to a public host, at most 2048 characters.
    #[schema(max_length = 2048)]
    pub url: String,
    /// Replace the signing secret with a new one.
    #[serde(default)]
    pub rotate_secret: bool,
}

impl Service {
    /// Sets a tenant's webhook URL (optionally rotating its secret) and says
    /// the secret to verify calls with. Refused without `notify.signing_key`.
    pub async fn set_webhook(
        &self,
        caller: &Caller,
        slug: &str,
        req: &WebhookRequest,
    ) -> Result<Webhook, ServiceError> {
        let db = &self.db;
        let notify = &*self.notify;
        self.tenant(caller, slug).await?;
        text("url", &req.url, crate::validate::max::URL)?;
        notify
            .check_url(&req.url)
            .map_err(|e| ServiceError::Invalid(format!("the webhook URL {e}")))?;
        let Some(key) = notify
            .key()
            .map_err(|e| ServiceError::Unavailable(e.to_string()))?
        else {
            return Err(ServiceError::Refused(
                "webhooks cannot be signed: notify.signing_key is not configured".into(),
            ));
        };
        let t =
            crate::tenants::set_webhook(db, slug, Some(req.url.clone()), req.rotate_secret).await?;
        tracing::info!(tenant = slug, rotated = req.rotate_secret, "webhook set");
        Ok(Webhook {
            url: t.webhook_url,
            secret: Some(crate::notify::tenant_secret(
                &key,
                t.id,
                t.webhook_secret_version,
            )),
        })
    }

    /// Clears a tenant's webhook URL (the platform default applies again).
    pub async fn clear_webhook(&self, caller: &Caller, slug: &str) -> Result<(), ServiceError> {
        let db = &self.db;
        self.tenant(caller, slug).await?;
        crate::tenants::set_webhook(db, slug, None, false).await?;
        Ok(())
    }

    /// An upload's notifications and their attempts.
    pub async fn notifications(
        &self,
        caller: &Caller,
        id: i64,
    ) -> Result<Vec<crate::report::NotificationView>, ServiceError> {
        let db = &self.db;
        self.reachable_upload(caller, id).await?;
        Ok(crate::report::notifications_of(db, id).await?)
    }
}
