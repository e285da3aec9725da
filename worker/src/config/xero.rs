//! `[xero]`: the Xero app Userfeed connects as.

use serde::Deserialize;

use super::{ConfigError, bad};

/// `[xero]`: the Xero app Userfeed connects as, and how it calls Xero
/// (`docs/xero.md`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XeroConfig {
    /// The Xero app's client ID (developer.xero.com, "My Apps").
    pub client_id: String,
    /// The app's client secret; set it from the environment
    /// (`USERFEED_XERO_CLIENT_SECRET`) or use `client_secret_file`.
    pub client_secret: String,
    /// A file holding the client secret (a mounted secret).
    pub client_secret_file: String,
    /// The key that encrypts stored Xero tokens: 64 hex characters
    /// (`openssl rand -hex 32`), from `USERFEED_XERO_TOKEN_KEY` or
    /// `token_key_file`. Changing it means connecting every tenant again.
    pub token_key: String,
    /// A file holding the token key, instead of `token_key`.
    pub token_key_file: String,
    /// The redirect URI registered for the app. `xero connect` listens on
    /// its port, on the loopback interface.
    pub redirect_uri: String,
    /// Xero's authorization endpoint.
    pub authorize_url: String,
    /// Xero's token endpoint.
    pub token_url: String,
    /// Xero's token revocation endpoint.
    pub revoke_url: String,
    /// Base URL of Xero's APIs (`/connections`, `/payroll.xro/…`,
    /// `/api.xro/2.0/Organisation`). Tests point it at a local server.
    pub api_url: String,
    /// The most users Xero imports may create for one tenant, in all.
    pub max_users: u64,
    /// Seconds one call to Xero may take.
    pub timeout_seconds: u64,
    /// Attempts of one call on a transient failure (network, 5xx, 429).
    pub max_attempts: u32,
    /// Calls in flight to one organisation at once (Xero allows 5).
    pub concurrency: usize,
    /// The longest `Retry-After` waited for; a longer one fails the call.
    pub max_retry_after_seconds: u64,
    /// Accept `http://` for Xero's endpoints: only for tests against a
    /// local server. Otherwise they must be `https://`, since the token
    /// endpoint is sent the client secret.
    pub allow_http: bool,
}

impl std::fmt::Debug for XeroConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach a log line.
        let set = |v: &str| if v.is_empty() { "" } else { "<set>" };
        f.debug_struct("XeroConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &set(&self.client_secret))
            .field("client_secret_file", &self.client_secret_file)
            .field("token_key", &set(&self.token_key))
            .field("token_key_file", &self.token_key_file)
            .field("redirect_uri", &self.redirect_uri)
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

impl XeroConfig {
    /// The client secret from `client_secret` or `client_secret_file`.
    pub fn client_secret(&self) -> Result<String, ConfigError> {
        secret_value(
            "xero.client_secret",
            &self.client_secret,
            &self.client_secret_file,
        )
    }

    /// The token key from `token_key` or `token_key_file`.
    pub fn token_key(&self) -> Result<String, ConfigError> {
        secret_value("xero.token_key", &self.token_key, &self.token_key_file)
    }
}

/// A secret given inline (from the environment) or as a file; empty when
/// neither is set.
fn secret_value(key: &'static str, inline: &str, file: &str) -> Result<String, ConfigError> {
    if !file.is_empty() {
        return std::fs::read_to_string(file)
            .map(|s| s.trim().to_string())
            .map_err(|e| ConfigError::Invalid {
                key,
                problem: format!("{file}: {e}"),
            });
    }
    Ok(inline.trim().to_string())
}

impl XeroConfig {
    /// Checks the `[xero]` section; the error names the key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let x = self;
        if !x.client_secret.is_empty() && !x.client_secret_file.is_empty() {
            return bad(
                "xero.client_secret",
                "set client_secret or client_secret_file, not both",
            );
        }
        if !x.token_key.is_empty() && !x.token_key_file.is_empty() {
            return bad(
                "xero.token_key",
                "set token_key or token_key_file, not both",
            );
        }
        if !x.token_key.is_empty() && crate::validate::key_256(&x.token_key).is_none() {
            return bad(
                "xero.token_key",
                "must be 64 hexadecimal characters (e.g. `openssl rand -hex 32`)",
            );
        }
        // The redirect URI is where the person's browser comes back to
        // `xero connect` on loopback: http is normal there (RFC 8252).
        match url::Url::parse(&x.redirect_uri) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return bad(
                    "xero.redirect_uri",
                    format!("{:?} is not an http(s) URL", x.redirect_uri),
                );
            }
        }
        // Xero's own endpoints receive the client secret and the tokens:
        // https only, unless a test opts in.
        for (key, u) in [
            ("xero.authorize_url", &x.authorize_url),
            ("xero.token_url", &x.token_url),
            ("xero.revoke_url", &x.revoke_url),
            ("xero.api_url", &x.api_url),
        ] {
            match url::Url::parse(u) {
                Ok(p) if p.scheme() == "https" => {}
                Ok(p) if p.scheme() == "http" && x.allow_http => {}
                Ok(p) if p.scheme() == "http" => {
                    return bad(
                        key,
                        format!("{u:?} must be https:// (xero.allow_http is for tests only)"),
                    );
                }
                _ => return bad(key, format!("{u:?} is not an https URL")),
            }
        }
        if x.timeout_seconds == 0 || x.max_attempts == 0 || x.concurrency == 0 {
            return bad(
                "xero.timeout_seconds",
                "timeout_seconds, max_attempts and concurrency must be at least 1",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn xero_endpoints_must_be_https_unless_a_test_opts_in() {
        let mut x = crate::config::Config::built_in().xero;
        assert!(x.validate().is_ok(), "the defaults are Xero's https URLs");
        x.token_url = "http://identity.xero.com/connect/token".into();
        let err = x.validate().unwrap_err().to_string();
        assert!(
            err.contains("xero.token_url") && err.contains("https"),
            "{err}"
        );
        x.allow_http = true;
        assert!(x.validate().is_ok());
        x.allow_http = false;
        x.token_url = "https://identity.xero.com/connect/token".into();
        x.redirect_uri = "http://localhost:8765/callback".into();
        assert!(x.validate().is_ok(), "a loopback redirect stays http");
    }
}
