//! Configuration: `config/default.toml` values, overridden by `--config FILE`,
//! overridden by `USERFEED_<SECTION>_<KEY>` environment variables.
//!
//! The doc comments on these structs are the configuration reference
//! (`docs/configuration.md` mirrors them).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

/// The built-in defaults, the same file that ships as `config/default.toml`.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// The configuration sections, i.e. the `<SECTION>` of `USERFEED_<SECTION>_<KEY>`.
const SECTIONS: [&str; 14] = [
    "data",
    "database",
    "aws",
    "intake",
    "drop",
    "jobs",
    "apply",
    "limits",
    "http",
    "api",
    "notify",
    "credentials",
    "xero",
    "log",
];

/// Everything the daemon and the CLI read at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the embedded default keeps its files.
    pub data: DataConfig,
    /// Where users, uploads and the queue of record live.
    pub database: DatabaseConfig,
    /// AWS region, endpoint override and S3 addressing.
    pub aws: AwsConfig,
    /// The SQS queue that receives S3 `ObjectCreated` notifications.
    pub intake: IntakeConfig,
    /// The drop folder: files delivered to a local folder (or by SFTP).
    pub drop: DropConfig,
    /// Claiming and running uploads.
    pub jobs: JobsConfig,
    /// Parsing and applying files.
    pub apply: ApplyConfig,
    /// What one file may hold (`[limits]`).
    pub limits: crate::parse::Limits,
    /// The health, readiness and metrics endpoint.
    pub http: HttpConfig,
    /// The admin HTTP API.
    pub api: ApiConfig,
    /// Webhooks telling the platform when an upload needs a person.
    pub notify: NotifyConfig,
    /// Tenants' write-only upload credentials (IAM users).
    pub credentials: CredentialsConfig,
    /// Importing a Xero organisation's employees (`docs/xero.md`).
    pub xero: XeroConfig,
    /// Log output.
    pub log: LogConfig,
}

/// `[data]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Folder of the embedded default: its SQLite database (`userfeed.db`)
    /// and its drop folder (`drop/`). Empty means `$XDG_DATA_HOME/userfeed`,
    /// else `~/.local/share/userfeed`, else `./userfeed-data`.
    pub dir: String,
}

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

/// `[aws]`. Credentials are never configured here: the AWS SDK's default
/// chain reads them (environment, web identity / IRSA, instance profile).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// AWS region of the bucket and the queue.
    pub region: String,
    /// Endpoint override for S3-compatible emulators (moto, LocalStack).
    /// Empty means the real AWS endpoints.
    pub endpoint_url: String,
    /// Path-style S3 addressing (`http://host/bucket/key`); needed by emulators.
    pub s3_force_path_style: bool,
}

/// `[intake]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeConfig {
    /// URL of the SQS queue S3 notifications are sent to. Empty disables intake
    /// (the daemon then only runs uploads already recorded).
    pub queue_url: String,
    /// SQS long-poll wait, 0 to 20 seconds.
    pub wait_time_seconds: u32,
    /// Messages per receive, 1 to 10.
    pub max_messages: u32,
    /// Visibility timeout asked for on receive, in seconds: how long a message
    /// stays hidden while it is being recorded before SQS redelivers it.
    pub visibility_timeout_seconds: u32,
    /// Receives after which a message that still cannot be recorded is
    /// deleted as poison, logged and counted; 0 never deletes one (the
    /// queue's redrive policy then moves it to a dead-letter queue).
    pub max_receives: u32,
}

/// `[drop]`: the drop folder (`docs/drop-folder.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropConfig {
    /// `auto` watches the drop folder when the database is SQLite (the
    /// embedded default); `on` and `off` force it either way.
    pub enabled: Toggle,
    /// The drop folder: a tenant's files go in `<folder>/<tenant slug>/`.
    /// Empty means `<data.dir>/drop`.
    pub folder: String,
    /// Folders of tenants whose files arrive elsewhere (an SFTP user's home,
    /// say): tenant slug = folder. They take precedence over
    /// `<folder>/<slug>/`.
    pub tenant_folders: std::collections::BTreeMap<String, String>,
    /// Seconds a file's size and modification time must stay unchanged
    /// before it is taken (a file renamed into the folder is taken at once).
    pub settle_seconds: f64,
    /// Seconds between full rescans, the fallback for missed notifications
    /// (network file systems send none).
    pub rescan_seconds: u64,
    /// Days files are kept in `processed/` and `failed/` (0 keeps them).
    pub retention_days: u64,
}

/// A switch with an automatic default.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Toggle {
    /// Decided by the rest of the configuration.
    Auto,
    /// Always.
    On,
    /// Never.
    Off,
}

/// `[jobs]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// How many uploads this process runs at once (each of a different tenant).
    pub concurrency: usize,
    /// Lease length in seconds. A worker renews its lease every third of this;
    /// an upload whose lease ran out (its worker died) is claimed again.
    pub lease_seconds: u64,
    /// How often an idle worker looks for a claimable upload, in milliseconds.
    pub poll_interval_ms: u64,
    /// Attempts before an upload that keeps failing transiently (or keeps
    /// losing its worker) is marked failed.
    pub max_attempts: i32,
    /// Seconds a stopping daemon waits for running uploads to hand back or
    /// finish after SIGTERM. Keep it below the pod's
    /// `terminationGracePeriodSeconds`.
    pub shutdown_grace_seconds: u64,
}

/// `[apply]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyConfig {
    /// Rows per batch transaction, 1 to 100000. Memory grows with it: about
    /// 1 KiB per row for each of the three batches in flight.
    pub batch_size: usize,
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    pub bind: SocketAddr,
}

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
    /// Hours a sign-in to the admin screens (`/ui`) lasts.
    pub session_hours: f64,
    /// Mark the screens' session cookie `Secure` (sent over HTTPS only).
    /// Turn off only to use the screens over plain HTTP away from
    /// localhost, e.g. a port-forward to a pod in a test cluster.
    pub secure_cookies: bool,
}

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

/// `[credentials]`: the IAM users that let tenants upload
/// (`docs/operations.md`, "Onboarding a tenant").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsConfig {
    /// IAM path of every tenant's upload user; the deployment's IAM policy
    /// (`deploy/aws/credentials-policy.json`) allows user management under
    /// this path only.
    pub iam_path: String,
    /// Prefix of the IAM user names: `<prefix><tenant slug>`.
    pub user_prefix: String,
    /// ARN of a managed policy set as every upload user's permissions
    /// boundary (e.g. `s3:PutObject` on the feed bucket only). With one,
    /// the deployment's own IAM policy can require it, so even a
    /// compromised daemon cannot make a user that may do more. Empty: none.
    pub permissions_boundary: String,
    /// Hours a rotated-out access key keeps working, so the customer can
    /// switch their export to the new one; then it is deleted.
    pub rotation_grace_hours: f64,
    /// Seconds between the daemon's looks for rotated-out keys whose grace
    /// has ended.
    pub sweep_seconds: u64,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `json` (one object per line, for log pipelines) or `text` (for people).
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `userfeed=debug,info`.
    /// `RUST_LOG`, when set, wins.
    pub level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// A configuration that could not be loaded; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value has the wrong type, a key is unknown, or a file is unreadable.
    #[error("configuration error: {0}")]
    Load(String),
    /// A value parsed but is out of range.
    #[error("configuration error: `{key}` {problem}")]
    Invalid {
        /// The dotted key, e.g. `jobs.concurrency`.
        key: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

impl Config {
    /// Loads defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, Env::prefixed("USERFEED_"))
    }

    fn load_from(file: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Invalid {
                    key: "--config",
                    problem: format!("file {} does not exist", path.display()),
                });
            }
            fig = fig.merge(Toml::file(path));
        }
        // USERFEED_JOBS_LEASE_SECONDS -> jobs.lease_seconds: sections are one
        // word, so the first underscore separates section from key. Only
        // variables naming a known section are read: Kubernetes injects
        // USERFEED_PORT, USERFEED_SERVICE_HOST, ... for a Service named
        // "userfeed", and those must not stop the daemon. Within a known
        // section an unknown key is still an error, so typos are caught.
        let env = env
            .filter(|k| {
                let section = k.as_str().split('_').next().unwrap_or("").to_lowercase();
                SECTIONS.contains(&section.as_str())
            })
            .map(|k| k.as_str().to_lowercase().replacen('_', ".", 1).into());
        let mut cfg: Config = fig.merge(env).extract().map_err(describe)?;
        cfg.resolve_embedded_default();
        cfg.validate()?;
        Ok(cfg)
    }

    /// Fills in what "empty" means for `data.dir`, `database.url` and
    /// `drop.folder`, so the rest of the program sees concrete values.
    fn resolve_embedded_default(&mut self) {
        if self.data.dir.trim().is_empty() {
            self.data.dir = default_data_dir().display().to_string();
        }
        let dir = std::path::PathBuf::from(&self.data.dir);
        if self.database.url.trim().is_empty() {
            self.database.embedded_default = true;
            self.database.url = format!("sqlite:{}", dir.join("userfeed.db").display());
        }
        if self.drop.folder.trim().is_empty() {
            self.drop.folder = dir.join("drop").display().to_string();
        }
    }

    /// Whether the drop folder is watched.
    pub fn drop_enabled(&self) -> bool {
        match self.drop.enabled {
            Toggle::On => true,
            Toggle::Off => false,
            Toggle::Auto => self.database.url.starts_with("sqlite:"),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        fn bad(key: &'static str, problem: impl Into<String>) -> Result<(), ConfigError> {
            Err(ConfigError::Invalid {
                key,
                problem: problem.into(),
            })
        }
        if !(self.database.url.starts_with("postgres://")
            || self.database.url.starts_with("postgresql://")
            || self.database.url.starts_with("sqlite:"))
        {
            return bad(
                "database.url",
                "must be a postgres:// URL, or sqlite:<file> for the embedded backend",
            );
        }
        if !self.database.sslmode.is_empty() && !SSL_MODES.contains(&self.database.sslmode.as_str())
        {
            return bad(
                "database.sslmode",
                format!(
                    "must be one of {} (or empty to use the URL's), not {:?}",
                    SSL_MODES.join(", "),
                    self.database.sslmode
                ),
            );
        }
        if !self.database.sslrootcert.is_empty() && !Path::new(&self.database.sslrootcert).is_file()
        {
            return bad(
                "database.sslrootcert",
                format!("names no readable file: {}", self.database.sslrootcert),
            );
        }
        if self.database.max_connections < 2 {
            return bad("database.max_connections", "must be at least 2");
        }
        if self.intake.wait_time_seconds > 20 {
            return bad("intake.wait_time_seconds", "must be between 0 and 20");
        }
        if !(1..=10).contains(&self.intake.max_messages) {
            return bad("intake.max_messages", "must be between 1 and 10");
        }
        if self.jobs.concurrency == 0 {
            return bad("jobs.concurrency", "must be at least 1");
        }
        if self.jobs.lease_seconds < 3 {
            return bad("jobs.lease_seconds", "must be at least 3");
        }
        if self.jobs.max_attempts < 1 {
            return bad("jobs.max_attempts", "must be at least 1");
        }
        if !(1..=100_000).contains(&self.apply.batch_size) {
            return bad("apply.batch_size", "must be between 1 and 100000");
        }
        let l = &self.limits;
        for (key, value) in [
            ("limits.max_object_bytes", l.max_object_bytes),
            ("limits.max_rows", l.max_rows),
            ("limits.max_record_bytes", l.max_record_bytes),
            ("limits.max_field_bytes", l.max_field_bytes as u64),
            ("limits.max_columns", l.max_columns as u64),
            ("limits.max_row_problems", l.max_row_problems),
        ] {
            if value == 0 {
                return bad(key, "must be at least 1");
            }
        }
        if l.max_field_bytes as u64 > l.max_record_bytes {
            return bad(
                "limits.max_field_bytes",
                "must not be larger than limits.max_record_bytes",
            );
        }
        if !(self.drop.settle_seconds.is_finite() && self.drop.settle_seconds >= 0.0) {
            return bad("drop.settle_seconds", "must be 0 or more");
        }
        if self.drop.rescan_seconds == 0 {
            return bad("drop.rescan_seconds", "must be at least 1");
        }
        for slug in self.drop.tenant_folders.keys() {
            if !crate::validate::is_valid_slug(slug) {
                return bad(
                    "drop.tenant_folders",
                    format!("{slug:?} is not a tenant slug (lowercase letters, digits, dashes)"),
                );
            }
        }
        let n = &self.notify;
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
        if !n.default_url.is_empty()
            && let Err(e) = crate::validate::webhook_url(&n.default_url, n.allow_http)
        {
            return bad("notify.default_url", e);
        }
        let x = &self.xero;
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
        for (key, u) in [
            ("xero.redirect_uri", &x.redirect_uri),
            ("xero.authorize_url", &x.authorize_url),
            ("xero.token_url", &x.token_url),
            ("xero.revoke_url", &x.revoke_url),
            ("xero.api_url", &x.api_url),
        ] {
            match url::Url::parse(u) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => return bad(key, format!("{u:?} is not an http(s) URL")),
            }
        }
        if x.timeout_seconds == 0 || x.max_attempts == 0 || x.concurrency == 0 {
            return bad(
                "xero.timeout_seconds",
                "timeout_seconds, max_attempts and concurrency must be at least 1",
            );
        }
        if self.api.rate_per_second > 0 && self.api.rate_burst == 0 {
            return bad(
                "api.rate_burst",
                "must be at least 1 when api.rate_per_second is set",
            );
        }
        if !(self.api.session_hours > 0.0 && self.api.session_hours <= 24.0 * 30.0) {
            return bad(
                "api.session_hours",
                "must be above 0 and at most 720 (30 days)",
            );
        }
        if self.api.request_timeout_seconds == 0 {
            return bad("api.request_timeout_seconds", "must be at least 1");
        }
        if !self.api.tokens_file.is_empty() && !Path::new(&self.api.tokens_file).is_file() {
            return bad(
                "api.tokens_file",
                format!("names no readable file: {}", self.api.tokens_file),
            );
        }
        if self.aws.region.trim().is_empty() {
            return bad("aws.region", "must be set");
        }
        let c = &self.credentials;
        // IAM's own rule for paths: `/`, or `/` segments `/`.
        let path_ok = c.iam_path.starts_with('/')
            && c.iam_path.ends_with('/')
            && c.iam_path.len() <= 512
            && c.iam_path.bytes().all(|b| b.is_ascii_graphic());
        if !path_ok {
            return bad(
                "credentials.iam_path",
                "must begin and end with `/`, e.g. \"/userfeed/\"",
            );
        }
        if c.user_prefix.len() > 32
            || !c
                .user_prefix
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "+=,.@_-".contains(ch))
        {
            return bad(
                "credentials.user_prefix",
                "at most 32 of the characters IAM allows in user names (letters, digits, +=,.@_-)",
            );
        }
        if !(c.rotation_grace_hours >= 0.0 && c.rotation_grace_hours.is_finite()) {
            return bad("credentials.rotation_grace_hours", "must be 0 or more");
        }
        if c.sweep_seconds == 0 {
            return bad("credentials.sweep_seconds", "must be at least 1");
        }
        Ok(())
    }

    /// The lease length.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.jobs.lease_seconds)
    }
}

/// The embedded default's folder when `data.dir` is empty, following the
/// XDG base directory convention.
fn default_data_dir() -> std::path::PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(xdg) = env("XDG_DATA_HOME") {
        return std::path::PathBuf::from(xdg).join("userfeed");
    }
    if let Some(home) = env("HOME") {
        return std::path::PathBuf::from(home).join(".local/share/userfeed");
    }
    std::path::PathBuf::from("userfeed-data")
}

/// figment's own message names environment keys in a form our key mapping
/// garbles; build one from the error's real key path and source instead.
fn describe(err: figment::Error) -> ConfigError {
    let msgs: Vec<String> = err
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let from = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            if key.is_empty() {
                format!("{}{from}", e.kind)
            } else {
                format!("`{key}`: {}{from}", e.kind)
            }
        })
        .collect();
    ConfigError::Load(msgs.join("; "))
}

/// The URL with any password replaced, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
                }
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // figment::Jail's API fixes the closure's (large) error type.
    #[allow(clippy::result_large_err)]
    fn env_with(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        // figment's Jail isolates the process environment per test.
        let mut out = None;
        figment::Jail::expect_with(|jail| {
            for (k, v) in vars {
                jail.set_env(k, v);
            }
            out = Some(Config::load_from(None, Env::prefixed("USERFEED_")));
            Ok(())
        });
        out.expect("jail ran")
    }

    #[test]
    fn defaults_load_and_validate() {
        let cfg = env_with(&[]).expect("defaults are valid");
        assert_eq!(cfg.intake.wait_time_seconds, 20);
        assert_eq!(cfg.intake.max_messages, 10);
        assert_eq!(cfg.log.format, LogFormat::Json);
    }

    #[test]
    fn no_configuration_means_sqlite_and_a_drop_folder_under_the_data_dir() {
        let cfg = env_with(&[("XDG_DATA_HOME", "/srv/xdg")]).unwrap();
        assert_eq!(cfg.data.dir, "/srv/xdg/userfeed");
        assert_eq!(cfg.database.url, "sqlite:/srv/xdg/userfeed/userfeed.db");
        assert_eq!(cfg.drop.folder, "/srv/xdg/userfeed/drop");
        assert!(cfg.drop_enabled());

        let cfg = env_with(&[("USERFEED_DATA_DIR", "/var/lib/uf")]).unwrap();
        assert_eq!(cfg.database.url, "sqlite:/var/lib/uf/userfeed.db");
        assert_eq!(cfg.drop.folder, "/var/lib/uf/drop");

        // PostgreSQL turns the drop folder off unless asked for.
        let cfg = env_with(&[("USERFEED_DATABASE_URL", "postgres://h/db")]).unwrap();
        assert!(!cfg.drop_enabled());
        let cfg = env_with(&[
            ("USERFEED_DATABASE_URL", "postgres://h/db"),
            ("USERFEED_DROP_ENABLED", "on"),
        ])
        .unwrap();
        assert!(cfg.drop_enabled());
    }

    #[test]
    // figment::Jail's API fixes the closure's (large) error type.
    #[allow(clippy::result_large_err)]
    fn inside_kubernetes_an_empty_database_url_is_an_error_not_sqlite() {
        let mut out = None;
        figment::Jail::expect_with(|jail| {
            jail.set_env("KUBERNETES_SERVICE_HOST", "10.0.0.1");
            let embedded = Config::load_from(None, Env::prefixed("USERFEED_")).unwrap();
            jail.set_env("USERFEED_DATABASE_URL", "postgres://h/db");
            let pg = Config::load_from(None, Env::prefixed("USERFEED_")).unwrap();
            out = Some((
                embedded.database.check_not_embedded_in_kubernetes(),
                pg.database.check_not_embedded_in_kubernetes(),
            ));
            Ok(())
        });
        let (embedded, pg) = out.unwrap();
        let err = embedded.unwrap_err();
        assert!(err.to_string().contains("database.url"), "{err}");
        assert!(pg.is_ok());
    }

    #[test]
    fn drop_settings_are_checked_and_name_their_key() {
        let err = env_with(&[("USERFEED_DROP_RESCAN_SECONDS", "0")]).unwrap_err();
        assert!(err.to_string().contains("drop.rescan_seconds"), "{err}");
        let err = env_with(&[("USERFEED_DROP_ENABLED", "maybe")]).unwrap_err();
        assert!(err.to_string().contains("drop.enabled"), "{err}");
    }

    #[test]
    fn environment_overrides_nested_keys() {
        let cfg = env_with(&[
            ("USERFEED_JOBS_LEASE_SECONDS", "7"),
            ("USERFEED_DATABASE_URL", "postgres://u:pw@h/db"),
        ])
        .unwrap();
        assert_eq!(cfg.jobs.lease_seconds, 7);
        assert_eq!(cfg.database.url, "postgres://u:pw@h/db");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = env_with(&[("USERFEED_JOBS_CONCURRENCY", "lots")]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`jobs.concurrency`"), "{msg}");
    }

    #[test]
    fn unrelated_variables_sharing_the_prefix_are_ignored() {
        // Kubernetes service links for a Service named "userfeed".
        let cfg = env_with(&[
            ("USERFEED_PORT", "tcp://10.0.0.1:80"),
            ("USERFEED_SERVICE_HOST", "10.0.0.1"),
        ]);
        assert!(cfg.is_ok(), "{:?}", cfg.err());
    }

    #[test]
    fn out_of_range_names_the_key() {
        let err = env_with(&[("USERFEED_APPLY_BATCH_SIZE", "0")]).unwrap_err();
        assert!(err.to_string().contains("apply.batch_size"), "{err}");
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let err = env_with(&[("USERFEED_JOBS_CONCURENCY", "3")]).unwrap_err();
        assert!(err.to_string().contains("concurency"), "{err}");
    }

    #[test]
    fn database_password_is_redacted_in_debug_output() {
        let cfg =
            env_with(&[("USERFEED_DATABASE_URL", "postgres://app:s3cret@db:5432/uf")]).unwrap();
        let shown = format!("{:?}", cfg.database);
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("postgres://app:***@db:5432/uf"), "{shown}");
        assert_eq!(redact_url("postgres://app@db/uf"), "postgres://app@db/uf");
    }

    #[test]
    fn tls_settings_are_checked_and_name_their_key() {
        let cfg = env_with(&[("USERFEED_DATABASE_SSLMODE", "verify-full")]).unwrap();
        assert_eq!(cfg.database.sslmode, "verify-full");
        let err = env_with(&[("USERFEED_DATABASE_SSLMODE", "strict")]).unwrap_err();
        assert!(err.to_string().contains("database.sslmode"), "{err}");
        let err =
            env_with(&[("USERFEED_DATABASE_SSLROOTCERT", "/nonexistent/ca.pem")]).unwrap_err();
        assert!(err.to_string().contains("database.sslrootcert"), "{err}");
    }

    #[test]
    fn the_documented_limits_are_the_built_in_ones_and_the_environment_sets_them() {
        let cfg = env_with(&[]).unwrap();
        assert_eq!(cfg.limits, crate::parse::Limits::default());
        let cfg = env_with(&[("USERFEED_LIMITS_MAX_ROWS", "5")]).unwrap();
        assert_eq!(cfg.limits.max_rows, 5);
        let err = env_with(&[("USERFEED_LIMITS_MAX_COLUMNS", "0")]).unwrap_err();
        assert!(err.to_string().contains("limits.max_columns"), "{err}");
        let err = env_with(&[("USERFEED_LIMITS_MAX_FIELD_BYTES", "2000000")]).unwrap_err();
        assert!(err.to_string().contains("limits.max_field_bytes"), "{err}");
    }
}
