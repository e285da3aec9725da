//! Webhook notifications: the platform is told when an upload needs a
//! person (failed, held, superseded, or succeeded with rejected rows).
//!
//! The notification is written to the `notifications` outbox in the
//! transaction that ends the upload (`jobs::state`), so it exists exactly
//! when the end does. A [`Deliverer`] in every daemon claims due ones with
//! a lease (`SKIP LOCKED` on PostgreSQL), POSTs them signed, records each
//! attempt, and retries failures with exponential backoff and jitter until
//! `notify.retry_for_hours` has passed. Nothing is lost with a pod: a lease
//! that expires hands the notification to the next deliverer, and a
//! restarted daemon picks up where the last one stopped.
//!
//! Signatures follow Stripe's scheme: `Userfeed-Signature: t=<unix
//! seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, keyed with the tenant's
//! secret. That secret is derived from the deployment's
//! `notify.signing_key`, the tenant's id and its secret version, so no
//! secret is stored and rotating one bumps the version. See
//! `docs/webhooks.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    Statement,
};
use serde::Serialize;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::config::NotifyConfig;
use crate::db::entity::{notification, notification_attempt, upload};
use crate::db::queries;
use crate::telemetry::events::{self, NotifyOutcome};
use crate::tenants::{self, Tenant};
use crate::upload::UploadState;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "Userfeed-Signature";
/// The header naming the event (`upload.held`, ...).
pub const EVENT_HEADER: &str = "Userfeed-Event";
/// The header naming the notification, the same on every retry: receivers
/// use it to drop a repeat.
pub const DELIVERY_HEADER: &str = "Userfeed-Delivery";

/// A tenant's signing secret: `whsec_` and the hex HMAC-SHA256 of the
/// tenant and secret version under the deployment's key.
pub fn tenant_secret(key: &[u8], tenant_id: i64, version: i32) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("userfeed webhook secret\0{tenant_id}\0{version}").as_bytes());
    format!("whsec_{}", hex::encode(mac.finalize().into_bytes()))
}

/// The `Userfeed-Signature` value for `body` sent at unix time `t`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature header against `body` with `secret`, accepting
/// timestamps up to `tolerance` away from `now`: what a receiver does
/// (used by the tests, and documented as the reference).
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance: i64) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now - t).abs() > tolerance {
        return false;
    }
    let want = signature(secret, t, body);
    let want = want.rsplit_once("v1=").map(|(_, s)| s).unwrap_or("");
    sigs.iter().any(|s| {
        use subtle::ConstantTimeEq;
        s.as_bytes().ct_eq(want.as_bytes()).into()
    })
}

/// The JSON body of a notification.
#[derive(Debug, Serialize)]
struct Payload<'a> {
    /// The notification (the same on every retry).
    id: i64,
    event: &'a str,
    tenant: &'a str,
    upload: UploadSummary<'a>,
    /// Paths under the admin API.
    links: Links,
}

#[derive(Debug, Serialize)]
struct UploadSummary<'a> {
    id: i64,
    state: &'a str,
    source: &'a str,
    object: String,
    counts: Counts,
    /// Why it failed or is held.
    reason: Option<&'a str>,
    held_deactivations: i64,
    superseded_by: Option<i64>,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Serialize)]
struct Counts {
    read: i64,
    created: i64,
    updated: i64,
    unchanged: i64,
    deactivated: i64,
    rejected: i64,
}

#[derive(Debug, Serialize)]
struct Links {
    upload: String,
    problems: String,
    changes: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    approve: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reject: Option<String>,
}

fn payload(id: i64, event: &str, tenant: &Tenant, up: &upload::Model) -> String {
    let base = format!("/api/v1/uploads/{}", up.id);
    let held = up.state == UploadState::Held;
    let body = Payload {
        id,
        event,
        tenant: &tenant.slug,
        upload: UploadSummary {
            id: up.id,
            state: up.state.as_str(),
            source: up.source.as_str(),
            // As the tenant names it, never a folder of the host.
            object: up.source.location(
                &up.source.shown_bucket(&up.bucket, &tenant.slug),
                &up.object_key,
            ),
            counts: Counts {
                read: up.rows_read,
                created: up.rows_created,
                updated: up.rows_updated,
                unchanged: up.rows_unchanged,
                deactivated: up.rows_deactivated,
                rejected: up.rows_rejected,
            },
            reason: up.failure_reason.as_deref().or(up.hold_reason.as_deref()),
            held_deactivations: up.held_deactivations,
            superseded_by: up.superseded_by,
            finished_at: up.finished_at,
        },
        links: Links {
            problems: format!("{base}/problems"),
            changes: format!("{base}/changes"),
            approve: held.then(|| format!("{base}/approve")),
            reject: held.then(|| format!("{base}/reject")),
            upload: base,
        },
    };
    serde_json::to_string(&body).expect("a payload serializes")
}

/// Delivers due notifications until stopped.
#[derive(Clone)]
pub struct Deliverer {
    db: DatabaseConnection,
    cfg: NotifyConfig,
    key: Option<Arc<Vec<u8>>>,
    client: reqwest::Client,
}

impl Deliverer {
    /// A deliverer with `cfg` (its key already checked by [`NotifyConfig::key`]).
    pub fn new(db: DatabaseConnection, cfg: NotifyConfig, key: Option<Vec<u8>>) -> Self {
        Self::with_hosts(db, cfg, key, Default::default())
    }

    /// Like [`Deliverer::new`], resolving `hosts`' names from it before
    /// the system resolver (tests), still through the guard.
    pub fn with_hosts(
        db: DatabaseConnection,
        cfg: NotifyConfig,
        key: Option<Vec<u8>>,
        hosts: crate::outbound::Hosts,
    ) -> Self {
        crate::install_tls_provider();
        // Tenants choose the URL: only public addresses (or the operator's
        // allow-list), checked where the connection is made, no redirects.
        let resolver = crate::outbound::GuardedResolver::with_hosts(Arc::new(cfg.allowed()), hosts);
        let client = crate::outbound::guarded_client(resolver)
            .timeout(Duration::from_secs(cfg.timeout_seconds))
            .connect_timeout(Duration::from_secs(cfg.timeout_seconds.min(5)))
            .user_agent(concat!("userfeed/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds");
        Deliverer {
            db,
            cfg,
            key: key.map(Arc::new),
            client,
        }
    }

    /// Delivers until `stop` fires: due notifications one after another,
    /// then a look every `notify.poll_seconds`.
    pub async fn run(self, stop: CancellationToken) {
        let idle = Duration::from_secs_f64(self.cfg.poll_seconds);
        loop {
            let wait = match self.deliver_next().await {
                Ok(true) => Duration::ZERO,
                Ok(false) => idle,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook deliverer: database error; trying again");
                    idle
                }
            };
            if stop.is_cancelled() {
                return;
            }
            if !wait.is_zero() {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    fn backoff(&self, attempts: i32) -> f64 {
        let n = attempts.clamp(1, 30) - 1;
        let full = (self.cfg.backoff_base_seconds * 2f64.powi(n)).min(self.cfg.backoff_max_seconds);
        // Equal jitter: half fixed, half random, so retries of many
        // notifications spread out but never come early.
        let r: f64 = {
            let mut b = [0u8; 8];
            getrandom::fill(&mut b).ok();
            (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
        };
        full / 2.0 + full / 2.0 * r
    }

    /// Handles the next due notification, if any; true when there was one.
    pub async fn deliver_next(&self) -> Result<bool, DbErr> {
        let backend = self.db.get_database_backend();
        let q = queries::of(backend);
        let lease = (self.cfg.timeout_seconds + 30) as f64;
        let Some(row) = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                q.claim_notification,
                [lease.into()],
            ))
            .await?
        else {
            return Ok(false);
        };
        let id: i64 = row.try_get("", "id")?;
        let upload_id: i64 = row.try_get("", "upload_id")?;
        let tenant_id: i64 = row.try_get("", "tenant_id")?;
        let event: String = row.try_get("", "event")?;
        let stored: Option<String> = row.try_get("", "payload")?;
        let attempts: i32 = row.try_get("", "attempts")?;

        let finish = |state: &'static str, why: Option<String>| {
            Statement::from_sql_and_values(
                backend,
                q.finish_notification,
                [id.into(), state.into(), why.into(), attempts.into()],
            )
        };
        let tenant = match tenants::by_id(&self.db, tenant_id).await {
            Ok(t) => t,
            Err(tenants::TenantError::Db(e)) => return Err(e),
            Err(e) => {
                self.db
                    .execute_raw(finish("skipped", Some(e.to_string())))
                    .await?;
                return Ok(true);
            }
        };
        let url = tenant
            .webhook_url
            .clone()
            .or_else(|| (!self.cfg.default_url.is_empty()).then(|| self.cfg.default_url.clone()));
        let (Some(url), Some(key)) = (url, &self.key) else {
            let why = if self.key.is_none() {
                "notify.signing_key is not set"
            } else {
                "no webhook URL for the tenant and no notify.default_url"
            };
            self.db
                .execute_raw(finish("skipped", Some(why.into())))
                .await?;
            events::notification(NotifyOutcome::Skipped, id, upload_id, why);
            return Ok(true);
        };
        let body = match stored {
            Some(b) => b,
            None => {
                let Some(up) = upload::Entity::find_by_id(upload_id).one(&self.db).await? else {
                    return Ok(true);
                };
                let b = payload(id, &event, &tenant, &up);
                notification::ActiveModel {
                    id: Set(id),
                    payload: Set(Some(b.clone())),
                    ..Default::default()
                }
                .update(&self.db)
                .await?;
                b
            }
        };

        // A URL set before the guard, or an allow-list since narrowed, is
        // refused here too: the attempt is recorded and the notification
        // given up, as a URL does not change by waiting.
        if let Err(refusal) = self.cfg.check_url(&url) {
            let why = format!("not sent: the webhook URL {refusal}");
            notification_attempt::ActiveModel {
                notification_id: Set(id),
                attempted_at: Set(chrono::Utc::now()),
                url: Set(url),
                status: Set(None),
                error: Set(Some(why.clone())),
                duration_ms: Set(0),
                ..Default::default()
            }
            .insert(&self.db)
            .await?;
            self.db
                .execute_raw(finish("failed", Some(why.clone())))
                .await?;
            events::notification(NotifyOutcome::GaveUp, id, upload_id, &why);
            return Ok(true);
        }
        let secret = tenant_secret(key, tenant.id, tenant.webhook_secret_version);
        let t = chrono::Utc::now().timestamp();
        let started = Instant::now();
        let sent = self
            .client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature(&secret, t, body.as_bytes()))
            .header(EVENT_HEADER, &event)
            .header(DELIVERY_HEADER, id.to_string())
            .body(body)
            .send()
            .await;
        let duration_ms = started.elapsed().as_millis() as i64;
        let (status, error) = match sent {
            Ok(res) if res.status().is_success() => (Some(res.status().as_u16()), None),
            Ok(res) => (
                Some(res.status().as_u16()),
                Some(format!("the receiver answered {}", res.status())),
            ),
            // The error names the URL and the failure, never the body.
            Err(e) => (None, Some(describe(e))),
        };
        notification_attempt::ActiveModel {
            notification_id: Set(id),
            attempted_at: Set(chrono::Utc::now()),
            url: Set(url),
            status: Set(status.map(i32::from)),
            error: Set(error.clone()),
            duration_ms: Set(duration_ms),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;

        let Some(error) = error else {
            self.db.execute_raw(finish("delivered", None)).await?;
            events::notification(NotifyOutcome::Delivered, id, upload_id, "");
            return Ok(true);
        };
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                q.retry_notification,
                [
                    id.into(),
                    self.backoff(attempts).into(),
                    (self.cfg.retry_for_hours * 3600.0).into(),
                    error.clone().into(),
                    attempts.into(),
                ],
            ))
            .await?;
        let state: Option<String> = row.map(|r| r.try_get("", "state")).transpose()?;
        let outcome = match state.as_deref() {
            Some("failed") => NotifyOutcome::GaveUp,
            Some(_) => NotifyOutcome::Retried,
            // Our lease expired during the call and another deliverer has
            // the notification now; it decides.
            None => {
                tracing::info!(
                    notification = id,
                    "webhook attempt ended after its lease; another deliverer has it"
                );
                return Ok(true);
            }
        };
        events::notification(outcome, id, upload_id, &error);
        Ok(true)
    }
}

/// A send error in words: refused by the guard, timeout, connection, or
/// other. Never an address: the tenant reads these.
fn describe(e: reqwest::Error) -> String {
    let refused = std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .find_map(|e| e.downcast_ref::<crate::outbound::Refusal>());
    if let Some(r) = refused {
        format!("not sent: {r}")
    } else if e.is_timeout() {
        "the receiver did not answer in time".into()
    } else if e.is_connect() {
        "could not connect to the receiver".into()
    } else {
        format!("the call failed: {}", e.without_url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_its_secret_only_and_within_the_tolerance() {
        let key = b"0123456789abcdef0123456789abcdef";
        let secret = tenant_secret(key, 7, 1);
        assert!(secret.starts_with("whsec_"));
        assert_ne!(secret, tenant_secret(key, 7, 2), "rotation changes it");
        assert_ne!(secret, tenant_secret(key, 8, 1), "tenants differ");
        let body = br#"{"event":"upload.held"}"#;
        let header = signature(&secret, 1_700_000_000, body);
        assert!(verify(&secret, &header, body, 1_700_000_100, 300));
        assert!(
            !verify(&secret, &header, b"{}", 1_700_000_100, 300),
            "other body"
        );
        assert!(
            !verify(&tenant_secret(key, 8, 1), &header, body, 1_700_000_100, 300),
            "other tenant's secret"
        );
        assert!(
            !verify(&secret, &header, body, 1_700_001_000, 300),
            "too old"
        );
    }
}
