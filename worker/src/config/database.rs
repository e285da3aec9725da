//! `[database]`: where users, uploads and the queue of record live.

use std::path::Path;

use serde::Deserialize;

use super::{ConfigError, bad, redact_url};

/// `[database]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://…` for PostgreSQL, or `sqlite:<file>` for the embedded
    /// backend. Empty (the default) is the embedded default:
    /// `sqlite:<data.dir>/userfeed.db`. Usually set through
    /// `USERFEED_DATABASE_URL` because it may hold a password; it is never
    /// logged.
    pub url: String,
    /// Largest number of pooled connections this process opens.
    pub max_connections: u32,
    /// How long to wait for a connection from the pool, in seconds.
    pub acquire_timeout_seconds: u64,
    /// TLS to the database: `disable`, `prefer`, `require`, `verify-ca` or
    /// `verify-full`, as libpq means them. Empty takes `sslmode` from the
    /// URL (or `PGSSLMODE`), else `prefer`. Managed databases (RDS, Aurora,
    /// Cloud SQL) want `verify-full` with their CA bundle as `sslrootcert`.
    pub sslmode: String,
    /// PEM file of the certificate authorities trusted for `verify-ca` and
    /// `verify-full` (for RDS and Aurora, AWS's regional bundle). Empty takes
    /// `sslrootcert` from the URL (or `PGSSLROOTCERT`), else the built-in
    /// public roots (Mozilla's list).
    pub sslrootcert: String,
    /// Whether `url` was empty and so is the embedded default's.
    #[serde(skip)]
    pub embedded_default: bool,
}

impl DatabaseConfig {
    /// Refuses the embedded default inside Kubernetes (`KUBERNETES_SERVICE_HOST`
    /// set): a pod whose database secret is missing or empty must fail at
    /// start, not keep users in a SQLite file that dies with the pod.
    pub fn check_not_embedded_in_kubernetes(&self) -> Result<(), ConfigError> {
        if self.embedded_default && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
            return Err(ConfigError::Invalid {
                key: "database.url",
                problem: "is empty inside Kubernetes; the embedded SQLite default is for one \
                          host: set USERFEED_DATABASE_URL to the PostgreSQL URL"
                    .into(),
            });
        }
        Ok(())
    }
}

/// The `sslmode` values, as libpq spells them.
pub const SSL_MODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout_seconds", &self.acquire_timeout_seconds)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .finish()
    }
}

impl DatabaseConfig {
    /// Checks the `[database]` section; the error names the key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(self.url.starts_with("postgres://")
            || self.url.starts_with("postgresql://")
            || self.url.starts_with("sqlite:"))
        {
            return bad(
                "database.url",
                "must be a postgres:// URL, or sqlite:<file> for the embedded backend",
            );
        }
        if !self.sslmode.is_empty() && !SSL_MODES.contains(&self.sslmode.as_str()) {
            return bad(
                "database.sslmode",
                format!(
                    "must be one of {} (or empty to use the URL's), not {:?}",
                    SSL_MODES.join(", "),
                    self.sslmode
                ),
            );
        }
        if !self.sslrootcert.is_empty() && !Path::new(&self.sslrootcert).is_file() {
            return bad(
                "database.sslrootcert",
                format!("names no readable file: {}", self.sslrootcert),
            );
        }
        if self.max_connections < 2 {
            return bad("database.max_connections", "must be at least 2");
        }
        Ok(())
    }
}
