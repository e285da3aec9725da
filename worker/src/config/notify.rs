//! `[notify]`: webhooks.

use serde::Deserialize;

use super::{ConfigError, bad};

/// `[notify]`: webhooks (`docs/webhooks.md`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Where notifications of tenants without a webhook URL of their own
    /// go. Empty: nowhere.
    pub default_url: String,
    /// The deployment's secret from which every tenant's signing secret is
    /// derived (at least 32 characters); set it from the environment
    /// (`USERFEED_NOTIFY_SIGNING_KEY`) or use `signing_key_file`. Without
    /// one, nothing is sent.
    pub signing_key: String,
    /// A file holding the signing key (a mounted secret), instead of
    /// `signing_key`.
    pub signing_key_file: String,
    /// Seconds one call may take.
    pub timeout_seconds: u64,
    /// Hours a notification is retried before it is given up.
    pub retry_for_hours: f64,
    /// First wait between attempts, doubled after each (with jitter).
    pub backoff_base_seconds: f64,
    /// Longest wait between attempts.
    pub backoff_max_seconds: f64,
    /// Seconds between looks for due notifications when there are none.
    pub poll_seconds: f64,
    /// Allow `http://` webhook URLs (for a receiver inside the cluster or
    /// tests); otherwise only `https://`.
    pub allow_http: bool,
    /// Non-public networks (CIDRs, addresses) and host names webhooks may
    /// reach anyway: a receiver inside the cluster, on purpose
    /// (`outbound::Allowed`).
    pub allowed_hosts: Vec<String>,
}

impl std::fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never reaches a log line.
        f.debug_struct("NotifyConfig")
            .field("default_url", &self.default_url)
            .field(
                "signing_key",
                &if self.signing_key.is_empty() {
                    ""
                } else {
                    "<set>"
                },
            )
            .field("signing_key_file", &self.signing_key_file)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("retry_for_hours", &self.retry_for_hours)
            .field("allow_http", &self.allow_http)
            .field("allowed_hosts", &self.allowed_hosts)
            .finish_non_exhaustive()
    }
}

impl NotifyConfig {
    /// The signing key from `signing_key` or `signing_key_file`; `None`
    /// when neither is set.
    pub fn key(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        let key = if !self.signing_key_file.is_empty() {
            std::fs::read_to_string(&self.signing_key_file)
                .map_err(|e| ConfigError::Invalid {
                    key: "notify.signing_key_file",
                    problem: format!("{}: {e}", self.signing_key_file),
                })?
                .trim()
                .to_string()
        } else {
            self.signing_key.trim().to_string()
        };
        if key.is_empty() {
            return Ok(None);
        }
        if key.len() < 32 {
            return Err(ConfigError::Invalid {
                key: "notify.signing_key",
                problem: "must be at least 32 characters (e.g. `openssl rand -hex 32`)".into(),
            });
        }
        Ok(Some(key.into_bytes()))
    }
}

impl NotifyConfig {
    /// The allow-list of `allowed_hosts` (checked by [`Self::validate`]).
    pub fn allowed(&self) -> crate::outbound::Allowed {
        crate::outbound::Allowed::parse(&self.allowed_hosts).unwrap_or_default()
    }

    /// Checks a webhook URL a tenant or the operator sets against the
    /// scheme rule and the allow-list.
    pub fn check_url(&self, url: &str) -> Result<url::Url, crate::outbound::Refusal> {
        crate::outbound::check_url(url, self.allow_http, &self.allowed())
    }

    /// Checks the `[notify]` section; the error names the key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let n = self;
        if !n.signing_key.is_empty() && !n.signing_key_file.is_empty() {
            return bad(
                "notify.signing_key",
                "set signing_key or signing_key_file, not both",
            );
        }
        if n.timeout_seconds == 0 {
            return bad("notify.timeout_seconds", "must be at least 1");
        }
        if !(n.backoff_base_seconds > 0.0 && n.backoff_max_seconds >= n.backoff_base_seconds) {
            return bad(
                "notify.backoff_base_seconds",
                "must be above 0 and at most notify.backoff_max_seconds",
            );
        }
        if !(n.retry_for_hours > 0.0 && n.poll_seconds > 0.0) {
            return bad(
                "notify.retry_for_hours",
                "retry_for_hours and poll_seconds must be above 0",
            );
        }
        if let Err(e) = crate::outbound::Allowed::parse(&n.allowed_hosts) {
            return bad("notify.allowed_hosts", e);
        }
        if !n.default_url.is_empty()
            && let Err(e) = n.check_url(&n.default_url)
        {
            return bad("notify.default_url", format!("the URL {e}"));
        }
        Ok(())
    }
}
