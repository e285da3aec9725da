//! The `userfeed` command line.
//!
//! Commands are grouped by what they manage ([`tenants`], [`uploads`],
//! [`users`]); each writes to any [`Write`] through one rendering path
//! ([`render`]), so [`execute`] runs in-process in tests exactly as the
//! binary runs it, and the admin API will call the same service functions.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, LogConfig, LogFormat};
use crate::service::Access;

pub mod demo;
pub mod render;
pub mod tenants;
pub mod uploads;
pub mod users;
pub mod xero;

pub use tenants::{CredentialsCmd, GroupCmd, MappingCmd, ProfileFieldCmd, TenantCmd};
pub use uploads::UploadsCmd;
pub use users::UsersCmd;
pub use xero::XeroCmd;

/// Userfeed turns HRIS CSV drops in S3 into platform users.
#[derive(Debug, Parser)]
#[command(name = "userfeed", version, about)]
pub struct Cli {
    /// Configuration file layered over the defaults (environment variables
    /// `USERFEED_<SECTION>_<KEY>` override both).
    #[arg(long, global = true, env = "USERFEED_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: intake, workers, health and metrics endpoints.
    Serve {
        /// Apply pending migrations first (convenient in development; in
        /// production run `userfeed migrate` as a separate step).
        #[arg(long)]
        migrate: bool,
    },
    /// Apply database migrations (safe to run repeatedly, and from many
    /// processes at once: they take turns under an advisory lock).
    Migrate {
        /// Keep retrying, with backoff, while the database is unreachable
        /// (for an init container started during an outage) instead of
        /// failing at once.
        #[arg(long)]
        wait: bool,
    },
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Manage a tenant's column mapping.
    #[command(subcommand)]
    Mapping(MappingCmd),
    /// Manage a tenant's platform groups.
    #[command(subcommand)]
    Group(GroupCmd),
    /// Manage a tenant's custom profile fields.
    #[command(subcommand, name = "profile-field")]
    ProfileField(ProfileFieldCmd),
    /// Upload history.
    #[command(subcommand)]
    Uploads(UploadsCmd),
    /// Users.
    #[command(subcommand)]
    Users(UsersCmd),
    /// Apply a local CSV file to a tenant now, in this process, exactly as if
    /// it had been dropped in S3 (recorded in the upload history with source
    /// `local`). Shows progress on a terminal; exits non-zero when the
    /// upload failed or was held.
    Import {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// The CSV file.
        file: PathBuf,
        #[command(flatten)]
        out: Output,
    },
    /// Show what a file would do to a tenant (counts, changes, row errors and
    /// warnings, whether it would be held) without changing anything.
    Preview {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// The CSV file, as it would be dropped in S3.
        file: PathBuf,
        #[command(flatten)]
        out: Output,
    },
    /// Print a CSV header and one example row for a tenant's mapping.
    Template {
        /// Tenant slug.
        slug: String,
    },
    /// Import a Xero organisation's employees as users (docs/xero.md).
    #[command(subcommand)]
    Xero(XeroCmd),
    /// Admin API tokens.
    #[command(subcommand)]
    Api(ApiCmd),
    /// Feed buckets.
    #[command(subcommand)]
    Bucket(BucketCmd),
    /// Run a demonstration on the embedded default (SQLite and the drop
    /// folder, in `<data.dir>/demo`, wiped first): a tenant, two days of a
    /// generated HR export, what they did; then keep serving until Ctrl-C.
    /// Needs no server and no network.
    Demo {
        /// Stop after the sample instead of serving.
        #[arg(long)]
        exit: bool,
        /// Folder of the demo's database and drop folder.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// `userfeed api ...`
#[derive(Debug, Subcommand)]
pub enum ApiCmd {
    /// Make a new API token: prints the token (once; it is not stored) and
    /// the entry to add to `api.tokens_file`, which holds only its hash.
    Token {
        /// Who will hold it, for the audit log.
        #[arg(long)]
        label: String,
        /// Scope it to one tenant; without it the token reaches every tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// `userfeed bucket ...`
#[derive(Debug, Subcommand)]
pub enum BucketCmd {
    /// Make a bucket ready for feeds, idempotently: the intake queue's
    /// policy lets it send, every `ObjectCreated` goes to the queue, drops
    /// expire after 90 days, and public access is blocked.
    Setup {
        /// The bucket.
        bucket: String,
        /// The intake queue (default: intake.queue_url).
        #[arg(long)]
        queue_url: Option<String>,
        #[command(flatten)]
        out: Output,
    },
}

/// `--json` for commands that print what they read.
#[derive(Debug, Args)]
pub struct Output {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Parses arguments and runs the command, printing to stdout.
pub async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cfg = Config::load(cli.config.as_deref())?;
    let mut out = std::io::stdout();
    match cli.command {
        Command::Serve { migrate } => {
            crate::telemetry::init_logging(&cfg.log);
            crate::daemon::serve(cfg, migrate).await
        }
        Command::Mapping(MappingCmd::Suggest { file }) => tenants::suggest(&file, &mut out).await,
        Command::Api(ApiCmd::Token { label, tenant }) => api_token(&label, tenant, &mut out),
        // Needs AWS, not the database.
        Command::Bucket(BucketCmd::Setup {
            bucket,
            queue_url,
            out: o,
        }) => bucket_setup(&cfg, &bucket, queue_url, o.json, &mut out).await,
        Command::Demo { exit, dir } => {
            // The daemon's own log would bury the demo's output: warnings only.
            crate::telemetry::init_logging(&LogConfig {
                format: LogFormat::Text,
                level: "warn".into(),
            });
            let dir = dir.unwrap_or_else(|| PathBuf::from(&cfg.data.dir).join("demo"));
            let stop = CancellationToken::new();
            tokio::spawn({
                let stop = stop.clone();
                async move {
                    let _ = tokio::signal::ctrl_c().await;
                    stop.cancel();
                }
            });
            demo::run(&cfg, &dir, exit, stop, &mut out).await
        }
        Command::Migrate { wait: true } => {
            crate::telemetry::init_logging(&cfg.log);
            crate::daemon::migrate_when_reachable(&cfg).await?;
            writeln!(out, "migrations applied")?;
            Ok(())
        }
        other => {
            // Admin commands log only warnings, as text, to stderr.
            crate::telemetry::init_logging(&LogConfig {
                format: LogFormat::Text,
                level: "warn".into(),
            });
            let db = crate::service::open_database(&cfg, access(&other)).await?;
            execute(&db, &cfg, other, &mut out).await
        }
    }
}

/// What `cmd` does with the database: a command that only reads never
/// creates one.
fn access(cmd: &Command) -> Access {
    match cmd {
        Command::Migrate { .. } => Access::Migrate,
        Command::Uploads(
            UploadsCmd::List { .. }
            | UploadsCmd::Show { .. }
            | UploadsCmd::Errors { .. }
            | UploadsCmd::Changes { .. },
        )
        | Command::Users(_)
        | Command::Tenant(
            TenantCmd::List(_) | TenantCmd::Credentials(CredentialsCmd::Show { .. }),
        )
        | Command::Mapping(MappingCmd::Show { .. })
        | Command::Group(GroupCmd::List { .. })
        | Command::ProfileField(ProfileFieldCmd::List { .. })
        | Command::Template { .. }
        | Command::Preview { .. }
        | Command::Xero(XeroCmd::Status { .. } | XeroCmd::Preview { .. }) => Access::Read,
        _ => Access::Write,
    }
}

/// `userfeed api token`: needs no database.
fn api_token<W: Write>(label: &str, tenant: Option<String>, out: &mut W) -> anyhow::Result<()> {
    let caller = match tenant {
        Some(slug) if crate::validate::is_valid_slug(&slug) => crate::service::Caller::Tenant(slug),
        Some(slug) => bail!("{slug:?} is not a tenant slug (lowercase letters, digits, dashes)"),
        None => crate::service::Caller::Platform,
    };
    let (token, entry) = crate::web::auth::new_token(label, &caller)
        .map_err(|e| anyhow::anyhow!("no randomness from the system: {e}"))?;
    writeln!(
        out,
        "token (shown once; give it to {label}, never store it):\n  {token}\n"
    )?;
    writeln!(out, "add to api.tokens_file:\n{entry}")?;
    Ok(())
}

/// `userfeed bucket setup`: prints each step and whether it changed
/// anything.
async fn bucket_setup<W: Write>(
    cfg: &Config,
    bucket: &str,
    queue_url: Option<String>,
    json: bool,
    out: &mut W,
) -> anyhow::Result<()> {
    let sdk = crate::aws::sdk_config(&cfg.aws).await;
    let queue_url = queue_url.unwrap_or_else(|| cfg.intake.queue_url.clone());
    let r = crate::bucket::setup(
        &crate::aws::s3_client(&sdk, &cfg.aws),
        &crate::aws::sqs_client(&sdk),
        bucket,
        &queue_url,
    )
    .await?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&r)?)?;
        return Ok(());
    }
    writeln!(out, "bucket {} -> queue {}", r.bucket, r.queue_arn)?;
    writeln!(
        out,
        "  queue policy (bucket may send):   {}",
        r.queue_policy
    )?;
    writeln!(
        out,
        "  ObjectCreated notifications:      {}",
        r.notification
    )?;
    writeln!(out, "  lifecycle (90-day expiry):        {}", r.lifecycle)?;
    writeln!(
        out,
        "  public access blocked:            {}",
        r.public_access
    )?;
    Ok(())
}

/// Runs one command against `db`, writing what it prints to `out`.
/// `serve` and `migrate --wait` run only from [`run`].
pub async fn execute<W: Write>(
    db: &DatabaseConnection,
    cfg: &Config,
    cmd: Command,
    out: &mut W,
) -> anyhow::Result<()> {
    match cmd {
        Command::Api(ApiCmd::Token { label, tenant }) => api_token(&label, tenant, out),
        Command::Serve { .. } | Command::Migrate { wait: true } | Command::Demo { .. } => {
            bail!(
                "`serve`, `demo` and `migrate --wait` manage their own connection; run them from the binary"
            )
        }
        Command::Migrate { wait: false } => {
            crate::service::migrate(db)
                .await
                .context("applying migrations")?;
            writeln!(out, "migrations applied")?;
            Ok(())
        }
        Command::Tenant(c) => tenants::tenant(db, cfg, c, out).await,
        Command::Mapping(c) => tenants::mapping(db, c, out).await,
        Command::Group(c) => tenants::group(db, c, out).await,
        Command::ProfileField(c) => tenants::profile_field(db, c, out).await,
        Command::Template { slug } => tenants::template(db, &slug, out).await,
        Command::Bucket(BucketCmd::Setup {
            bucket,
            queue_url,
            out: o,
        }) => bucket_setup(cfg, &bucket, queue_url, o.json, out).await,
        Command::Uploads(c) => uploads::uploads(db, c, out).await,
        Command::Users(c) => users::users(db, c, out).await,
        Command::Xero(c) => xero::xero(db, cfg, c, out).await,
        Command::Import {
            tenant,
            file,
            out: o,
        } => uploads::import(db, cfg, &tenant, &file, o.json, out).await,
        Command::Preview {
            tenant,
            file,
            out: o,
        } => uploads::preview(db, cfg, &tenant, &file, o.json, out).await,
    }
}
