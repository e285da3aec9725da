//! What every handler of the admin API and the screens shares.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;

use super::auth::Tokens;
use super::spool as files;

/// Shared state of the admin API's and the screens' handlers.
#[derive(Clone)]
pub struct WebState {
    /// Every operation of the API and the screens.
    pub service: crate::service::Service,
    /// The database (sessions).
    pub db: DatabaseConnection,
    /// Who may call.
    pub tokens: Arc<Tokens>,
    /// How long one request may take (file endpoints excepted: they take
    /// as long as the file takes to arrive and be read).
    pub timeout: Duration,
    /// What the file endpoints need.
    pub files: Arc<files::Files>,
    /// Webhook settings (`[notify]`), for setting tenants' webhooks.
    pub notify: Arc<crate::config::NotifyConfig>,
    /// Requests per token (by label); `None` for no limit.
    pub limiter: Option<Arc<RateLimiter>>,
    /// Per-address and sign-in limits, the session cap, connection
    /// hygiene and the file routes' pace.
    pub guard: super::guard::Guard,
    /// Tenants' upload credentials.
    pub credentials: Arc<CredentialsState>,
    /// How the admin screens' sessions behave.
    pub session: super::session::SessionSettings,
    /// Xero imports; `None` when `[xero]` is not configured.
    pub xero: Option<crate::xero::XeroService>,
}

/// What the credential endpoints need.
#[derive(Debug, Clone)]
pub struct CredentialsState {
    /// IAM, when the deployment talks to AWS.
    pub iam: Option<crate::credentials::Iam>,
    /// The buckets' region, for connection details.
    pub region: String,
    /// How long a rotated-out key keeps working.
    pub grace: Duration,
}

/// The per-token request limiter (`api.rate_per_second`, `api.rate_burst`).
pub type RateLimiter = governor::DefaultKeyedRateLimiter<String>;

/// A limiter allowing `per_second` requests a second per token on average
/// and `burst` at once; `None` when `per_second` is 0.
pub fn rate_limiter(per_second: u32, burst: u32) -> Option<Arc<RateLimiter>> {
    let per_second = std::num::NonZeroU32::new(per_second)?;
    let burst = std::num::NonZeroU32::new(burst).unwrap_or(per_second);
    let quota = governor::Quota::per_second(per_second).allow_burst(burst);
    Some(Arc::new(governor::RateLimiter::keyed(quota)))
}

impl WebState {
    /// Makes [`WebState::service`] the one the other fields describe (the
    /// database, `[notify]`, IAM and region, file limits and delivery,
    /// Xero); call it once they are set.
    pub fn wired(mut self) -> Self {
        self.service = crate::service::Service {
            db: self.db.clone(),
            notify: self.notify.clone(),
            iam: self.credentials.iam.clone(),
            region: self.credentials.region.clone(),
            xero: self.xero.clone(),
            limits: self.files.limits,
            batch_size: self.files.batch_size,
            deliver: self.files.deliver.clone(),
            previews: Arc::new(crate::service::PreviewGate::new(
                self.guard.previews_at_once,
                Some((self.timeout, self.guard.file_bytes_per_second)),
            )),
        };
        self
    }
}
