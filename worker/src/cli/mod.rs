//! The `userfeed` command line.
//!
//! Commands are grouped by what they manage ([`tenants`], [`uploads`],
//! [`users`]); each writes to any [`Write`] through one rendering path
//! ([`render`]), so [`execute`] runs in-process in tests exactly as the
//! binary runs it, and the admin API will call the same service functions.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, LogConfig, LogFormat};
use crate::service::{Access, Service};

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
    /// Apply database migrations.
    ///
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
    /// Apply a local CSV file to a tenant now.
    ///
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
    /// Show what a file would do, changing nothing.
    ///
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
        /// The tenant.
        #[arg(long = "tenant", value_name = "SLUG")]
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
    /// Run a demonstration on the embedded default.
    ///
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
    /// Make a new admin API token.
    ///
    /// Make a new API token: prints the token (once; it is not stored) and
    /// the entry to add to `api.tokens_file`, which holds only its hash.
    Token {
        /// Who will hold it, for the audit log.
        #[arg(long)]
        label: String,
        /// Scope it to one tenant (which must exist); without it the token
        /// reaches every tenant.
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        out: Output,
    },
}

/// `userfeed bucket ...`
#[derive(Debug, Subcommand)]
pub enum BucketCmd {
    /// Make a bucket ready for feeds (idempotent).
    ///
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

/// Commands that named their tenant by a leading positional argument
/// before `--tenant SLUG` became the rule. The old form still works, and is
/// not shown in `--help`: [`tenant_flag_for_positional`] rewrites it.
const TENANT_POSITIONAL: &[&[&str]] = &[
    &["tenant", "add"],
    &["tenant", "set"],
    &["tenant", "webhook"],
    &["tenant", "credentials", "create"],
    &["tenant", "credentials", "rotate"],
    &["tenant", "credentials", "revoke"],
    &["tenant", "credentials", "show"],
    &["mapping", "set"],
    &["mapping", "show"],
    &["group", "add"],
    &["group", "list"],
    &["group", "remove"],
    &["profile-field", "add"],
    &["profile-field", "list"],
    &["profile-field", "remove"],
    &["template"],
];

/// Rewrites the old positional tenant (`mapping set acme file.toml`) as
/// `--tenant acme`, for the commands of [`TENANT_POSITIONAL`] given no
/// `--tenant`; every other argument list is returned as it is.
pub fn tenant_flag_for_positional(args: Vec<OsString>) -> Vec<OsString> {
    let words: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // The command's words start after the program and any global option.
    let mut i = 1;
    while i < words.len() && words[i].starts_with('-') {
        i += if words[i] == "--config" { 2 } else { 1 };
    }
    let Some(path) = TENANT_POSITIONAL
        .iter()
        .find(|p| words.len() > i + p.len() && words[i..i + p.len()] == p[..])
    else {
        return args;
    };
    let at = i + path.len();
    let has_flag = words[at..]
        .iter()
        .any(|w| w == "--tenant" || w.starts_with("--tenant="));
    if has_flag || words[at].starts_with('-') {
        return args;
    }
    let mut out = args;
    out.insert(at, OsString::from("--tenant"));
    out
}

/// Parses a command line (the program's name first), accepting the old
/// positional tenant.
pub fn parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    Cli::try_parse_from(tenant_flag_for_positional(
        args.into_iter().map(Into::into).collect(),
    ))
}

/// Whether `e` is a write to a reader that went away (a closed pipe).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let io = c.downcast_ref::<std::io::Error>().map(std::io::Error::kind);
        let json = c
            .downcast_ref::<serde_json::Error>()
            .and_then(serde_json::Error::io_error_kind);
        io.or(json) == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// Parses arguments and runs the command, printing to stdout.
pub async fn run() -> anyhow::Result<()> {
    let cli = parse_args(std::env::args_os()).unwrap_or_else(|e| e.exit());
    let cfg = Config::load(cli.config.as_deref())?;
    let mut out = std::io::stdout();
    match cli.command {
        Command::Serve { migrate } => {
            crate::telemetry::init_logging(&cfg.log);
            crate::daemon::serve(cfg, migrate).await
        }
        Command::Mapping(MappingCmd::Suggest { file }) => tenants::suggest(&file, &mut out).await,
        Command::Api(ApiCmd::Token {
            label,
            tenant,
            out: o,
        }) => {
            // A tenant's token needs the tenant; a platform token, nothing.
            if let Some(slug) = &tenant {
                let db = crate::service::open_database(&cfg, Access::Read).await?;
                let svc = Service::for_command(db, &cfg).await;
                svc.tenant(&crate::service::Caller::Platform, slug).await?;
            }
            api_token(&label, tenant, o.json, &mut out)
        }
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
fn api_token<W: Write>(
    label: &str,
    tenant: Option<String>,
    json: bool,
    out: &mut W,
) -> anyhow::Result<()> {
    let caller = match tenant.clone() {
        Some(slug) if crate::validate::is_valid_slug(&slug) => crate::service::Caller::Tenant(slug),
        Some(slug) => bail!("{slug:?} is not a tenant slug (lowercase letters, digits, dashes)"),
        None => crate::service::Caller::Platform,
    };
    let (token, entry) = crate::web::auth::new_token(label, &caller)
        .map_err(|e| anyhow::anyhow!("no randomness from the system: {e}"))?;
    if json {
        let shown = serde_json::json!({
            "label": label,
            "tenant": tenant,
            "token": token,
            "tokens_file_entry": entry,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&shown)?)?;
        return Ok(());
    }
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
    let svc = &Service::for_command(db.clone(), cfg).await;
    match cmd {
        Command::Api(ApiCmd::Token {
            label,
            tenant,
            out: o,
        }) => {
            if let Some(slug) = &tenant {
                svc.tenant(&crate::service::Caller::Platform, slug).await?;
            }
            api_token(&label, tenant, o.json, out)
        }
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
        Command::Tenant(c) => tenants::tenant(svc, cfg, c, out).await,
        Command::Mapping(c) => tenants::mapping(svc, c, out).await,
        Command::Group(c) => tenants::group(svc, c, out).await,
        Command::ProfileField(c) => tenants::profile_field(svc, c, out).await,
        Command::Template { slug } => tenants::template(svc, &slug, out).await,
        Command::Bucket(BucketCmd::Setup {
            bucket,
            queue_url,
            out: o,
        }) => bucket_setup(cfg, &bucket, queue_url, o.json, out).await,
        Command::Uploads(c) => uploads::uploads(svc, c, out).await,
        Command::Users(c) => users::users(svc, c, out).await,
        Command::Xero(c) => xero::xero(svc, cfg, c, out).await,
        Command::Import {
            tenant,
            file,
            out: o,
        } => uploads::import(svc, cfg, &tenant, &file, o.json, out).await,
        Command::Preview {
            tenant,
            file,
            out: o,
        } => uploads::preview(svc, cfg, &tenant, &file, o.json, out).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command and subcommand, with its path.
    fn commands() -> Vec<(String, clap::Command)> {
        fn walk(path: String, c: &clap::Command, out: &mut Vec<(String, clap::Command)>) {
            for sub in c.get_subcommands() {
                let p = format!("{path} {}", sub.get_name());
                out.push((p.clone(), sub.clone()));
                walk(p, sub, out);
            }
        }
        let mut out = Vec::new();
        walk("userfeed".into(), &Cli::command(), &mut out);
        out
    }

    #[test]
    fn every_command_has_a_one_line_summary_and_no_empty_default_in_its_help() {
        let mut wrong = Vec::new();
        for (path, mut c) in commands() {
            let about = c.get_about().map(|a| a.to_string()).unwrap_or_default();
            if about.is_empty() || about.contains('\n') || about.chars().count() > 80 {
                wrong.push(format!(
                    "{path}: the summary is not one short line: {about:?}"
                ));
            }
            let help = c.render_long_help().to_string();
            if help.contains("[default: ]") {
                wrong.push(format!("{path}: an empty default is shown"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn every_tenant_command_takes_the_tenant_as_a_flag() {
        for (path, c) in commands() {
            for arg in c.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "slug" || id == "tenant" {
                    assert_eq!(
                        (arg.get_long(), arg.is_positional()),
                        (Some("tenant"), false),
                        "{path}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_old_positional_tenant_is_read_as_the_flag() {
        let parse = |args: &[&str]| {
            let args: Vec<OsString> = args.iter().map(OsString::from).collect();
            tenant_flag_for_positional(args)
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            parse(&["userfeed", "mapping", "set", "acme", "m.toml"]),
            ["userfeed", "mapping", "set", "--tenant", "acme", "m.toml"]
        );
        assert_eq!(
            parse(&[
                "userfeed", "--config", "c.toml", "group", "add", "acme", "G", "Sales"
            ]),
            [
                "userfeed", "--config", "c.toml", "group", "add", "--tenant", "acme", "G", "Sales"
            ]
        );
        // The flag form, and commands without a tenant, are left alone.
        for args in [
            &["userfeed", "mapping", "set", "--tenant", "acme", "m.toml"][..],
            &["userfeed", "mapping", "suggest", "sample.csv"],
            &["userfeed", "uploads", "show", "42"],
        ] {
            assert_eq!(parse(args), args);
        }
        let cli = parse_args(["userfeed", "template", "acme"]).unwrap();
        assert!(matches!(cli.command, Command::Template { slug } if slug == "acme"));
    }
}
