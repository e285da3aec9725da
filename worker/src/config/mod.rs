//! Configuration: `config/default.toml` values, overridden by `--config FILE`,
//! overridden by `USERFEED_<SECTION>_<KEY>` environment variables.
//!
//! The doc comments on these structs are the configuration reference
//! (`docs/configuration.md` mirrors them). Each section checks itself
//! (`validate`) with the leaf validators of [`crate::validate`], so this module
//! imports no domain module.

mod api;
mod credentials;
mod database;
mod drop;
mod notify;
mod xero;

pub use api::ApiConfig;
pub use credentials::CredentialsConfig;
pub use database::{DatabaseConfig, SSL_MODES};
pub use drop::{DropConfig, Toggle};
pub use notify::NotifyConfig;
pub use xero::XeroConfig;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

/// The built-in defaults, the same file that ships as `config/default.toml`.
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

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
    /// Seconds a client may take to send a request's head, or leave a
    /// kept-alive connection idle, on both listeners.
    pub header_timeout_seconds: u64,
    /// Connections each listener serves at once; more wait to be accepted.
    pub max_connections: usize,
}

impl HttpConfig {
    /// The connection hygiene of both listeners.
    pub fn hygiene(&self) -> crate::listen::Hygiene {
        crate::listen::Hygiene {
            header_timeout: std::time::Duration::from_secs(self.header_timeout_seconds),
            max_connections: self.max_connections,
        }
    }
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

    /// The built-in defaults alone (`config/default.toml`), read from no file
    /// and no environment.
    pub fn built_in() -> Self {
        Self::load_from(None, Env::prefixed("USERFEED_NOTHING_READ_FROM_HERE_"))
            .expect("the built-in defaults are valid")
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
        self.database.validate()?;
        self.intake.validate()?;
        self.jobs.validate()?;
        self.apply.validate()?;
        validate_limits(&self.limits)?;
        self.drop.validate()?;
        self.notify.validate()?;
        self.xero.validate()?;
        self.api.validate()?;
        self.aws.validate()?;
        self.credentials.validate()?;
        if self.http.header_timeout_seconds == 0 || self.http.max_connections == 0 {
            return bad(
                "http.header_timeout_seconds",
                "header_timeout_seconds and max_connections must be at least 1",
            );
        }
        // A preview holds a connection for its whole file: previews may
        // take at most half the pool, so reads and workers always find one.
        if self.api.previews_at_once > self.database.max_connections / 2 {
            return bad(
                "api.previews_at_once",
                format!(
                    "must be at most half of database.max_connections ({})",
                    self.database.max_connections
                ),
            );
        }
        Ok(())
    }

    /// The lease length.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.jobs.lease_seconds)
    }
}

impl IntakeConfig {
    /// Checks the `[intake]` section; the error names the key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.wait_time_seconds > 20 {
            return bad("intake.wait_time_seconds", "must be between 0 and 20");
        }
        if !(1..=10).contains(&self.max_messages) {
            return bad("intake.max_messages", "must be between 1 and 10");
        }
        Ok(())
    }
}

impl JobsConfig {
    /// Checks the `[jobs]` section; the error names the key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.concurrency == 0 {
            return bad("jobs.concurrency", "must be at least 1");
        }
        if self.lease_seconds < 3 {
            return bad("jobs.lease_seconds", "must be at least 3");
        }
        if self.max_attempts < 1 {
            return bad("jobs.max_attempts", "must be at least 1");
        }
        Ok(())
    }
}

impl ApplyConfig {
    /// Checks the `[apply]` section; the error names the key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=100_000).contains(&self.batch_size) {
            return bad("apply.batch_size", "must be between 1 and 100000");
        }
        Ok(())
    }
}

impl AwsConfig {
    /// Checks the `[aws]` section; the error names the key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.region.trim().is_empty() {
            return bad("aws.region", "must be set");
        }
        Ok(())
    }
}

/// Checks the `[limits]` section; the error names the key.
fn validate_limits(limits: &crate::parse::Limits) -> Result<(), ConfigError> {
    let l = limits;
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
    Ok(())
}

/// A value of `key` that is wrong, and why.
fn bad(key: &'static str, problem: impl Into<String>) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid {
        key,
        problem: problem.into(),
    })
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
