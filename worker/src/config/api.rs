//! `[api]`: the admin HTTP API and its screens.

use std::path::Path;

use serde::Deserialize;

use std::net::SocketAddr;

use super::{ConfigError, bad};

/// `[api]`: the admin HTTP API (`docs/api.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address of `/api/v1`, separate from `http.bind` so it can be kept
    /// off the network the metrics are scraped from.
    pub bind: SocketAddr,
    /// File of API tokens (hashes and scopes; `userfeed api token` makes
    /// entries), typically a mounted secret. Empty keeps the API off.
    pub tokens_file: String,
    /// Seconds one request may take before it is answered 503.
    pub request_timeout_seconds: u64,
    /// Requests per second each token may make on average; 0 for no limit.
    pub rate_per_second: u32,
    /// Requests each token may make at once before the average applies.
    pub rate_burst: u32,
    /// Requests per second one client address may make without a valid
    /// token; 0 for no limit.
    pub rate_per_address_per_second: u32,
    /// ... and at once.
    pub rate_per_address_burst: u32,
    /// Sign-in attempts per minute from one client address; 0 for no limit.
    pub sign_ins_per_minute: u32,
    /// ... and at once.
    pub sign_in_burst: u32,
    /// Screen sessions one token may have open; the oldest ends past it.
    pub sessions_per_token: u32,
    /// Previews running at once across tenants (one per tenant always).
    pub previews_at_once: u32,
    /// A file route's deadline: the request timeout plus a second per this
    /// many bytes of the file.
    pub file_bytes_per_second: u64,
    /// The slowest a file body may arrive, after the header timeout's grace.
    pub min_upload_bytes_per_second: u64,
    /// Hours a sign-in to the admin screens (`/ui`) lasts.
    pub session_hours: f64,
    /// Mark the screens' session cookie `Secure` (sent over HTTPS only).
    /// Turn off only to use the screens over plain HTTP away from
    /// localhost, e.g. a port-forward to a pod in a test cluster.
    pub secure_cookies: bool,
}

impl ApiConfig {
    /// Checks the `[api]` section; the error names the key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.rate_per_second > 0 && self.rate_burst == 0 {
            return bad(
                "api.rate_burst",
                "must be at least 1 when api.rate_per_second is set",
            );
        }
        if !(self.session_hours > 0.0 && self.session_hours <= 24.0 * 30.0) {
            return bad(
                "api.session_hours",
                "must be above 0 and at most 720 (30 days)",
            );
        }
        if self.rate_per_address_per_second > 0 && self.rate_per_address_burst == 0 {
            return bad(
                "api.rate_per_address_burst",
                "must be at least 1 when api.rate_per_address_per_second is set",
            );
        }
        if self.sign_ins_per_minute > 0 && self.sign_in_burst == 0 {
            return bad(
                "api.sign_in_burst",
                "must be at least 1 when api.sign_ins_per_minute is set",
            );
        }
        if self.sessions_per_token == 0 {
            return bad("api.sessions_per_token", "must be at least 1");
        }
        if self.previews_at_once == 0 {
            return bad("api.previews_at_once", "must be at least 1");
        }
        if self.file_bytes_per_second == 0 || self.min_upload_bytes_per_second == 0 {
            return bad(
                "api.file_bytes_per_second",
                "file_bytes_per_second and min_upload_bytes_per_second must be at least 1",
            );
        }
        if self.request_timeout_seconds == 0 {
            return bad("api.request_timeout_seconds", "must be at least 1");
        }
        if !self.tokens_file.is_empty() && !Path::new(&self.tokens_file).is_file() {
            return bad(
                "api.tokens_file",
                format!("names no readable file: {}", self.tokens_file),
            );
        }
        Ok(())
    }
}
