//! The `userfeed` command line.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use sea_orm::DatabaseConnection;

use crate::config::{Config, LogConfig, LogFormat};
use crate::map::{Mapping, MatchKey};
use crate::{report, tenants};

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
    /// `local`). For re-imports by operators and for benchmarks.
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
}

/// `--json` for listing commands.
#[derive(Debug, Args)]
pub struct Output {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `userfeed tenant ...`
#[derive(Debug, Subcommand)]
pub enum TenantCmd {
    /// Create a tenant with its S3 drop location.
    Add {
        /// Short unique name (lowercase letters, digits, dashes).
        slug: String,
        /// Bucket the tenant's files are dropped in.
        #[arg(long)]
        bucket: String,
        /// Key prefix owned by the tenant (a trailing `/` is added).
        #[arg(long)]
        prefix: String,
        /// How people are matched across files.
        #[arg(long = "match-on", value_enum, default_value = "email")]
        match_on: MatchKey,
    },
    /// List tenants.
    List(Output),
    /// Change a tenant's settings.
    Set {
        /// Tenant slug.
        slug: String,
        /// Hold an upload that would deactivate more than this percentage of
        /// the tenant's active feed-managed users (default 20)...
        #[arg(long)]
        hold_over_percent: Option<i32>,
        /// ...and more than this many users (default 10).
        #[arg(long)]
        hold_over_count: Option<i32>,
    },
}

/// `userfeed mapping ...`
#[derive(Debug, Subcommand)]
pub enum MappingCmd {
    /// Set a tenant's mapping from a TOML file (see docs/csv-format.md).
    Set {
        /// Tenant slug.
        slug: String,
        /// Mapping TOML file.
        file: PathBuf,
    },
    /// Print a tenant's mapping as TOML.
    Show {
        /// Tenant slug.
        slug: String,
    },
    /// Read a sample file's header and print a suggested mapping (needs no database).
    Suggest {
        /// A sample CSV file (only its header is read).
        file: PathBuf,
    },
}

/// `userfeed group ...`
#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// Create a group files can add people to.
    Add {
        /// Tenant slug.
        slug: String,
        /// The group ID used in files' groups column.
        id: String,
        /// Display name.
        name: String,
    },
    /// List a tenant's groups.
    List {
        /// Tenant slug.
        slug: String,
        #[command(flatten)]
        out: Output,
    },
}

/// `userfeed profile-field ...`
#[derive(Debug, Subcommand)]
pub enum ProfileFieldCmd {
    /// Define a custom profile field that mappings can fill.
    Add {
        /// Tenant slug.
        slug: String,
        /// Field name (letters, digits, underscores).
        key: String,
        /// Value type; a cell that does not fit is a warning and is skipped.
        #[arg(long = "type", value_enum)]
        field_type: crate::map::FieldType,
    },
    /// List a tenant's profile fields.
    List {
        /// Tenant slug.
        slug: String,
    },
}

/// `userfeed uploads ...`
#[derive(Debug, Subcommand)]
pub enum UploadsCmd {
    /// A tenant's uploads, newest first.
    List {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// How many to show.
        #[arg(long, default_value_t = 50)]
        limit: u64,
        #[command(flatten)]
        out: Output,
    },
    /// Perform the deactivations a held upload is waiting for.
    Approve {
        /// Upload id.
        id: i64,
    },
    /// Drop the deactivations a held upload is waiting for.
    Reject {
        /// Upload id.
        id: i64,
    },
    /// Queue a failed upload's object again as a new upload (once its cause
    /// is fixed). Refused unless it is the tenant's newest file.
    Retry {
        /// Upload id.
        id: i64,
    },
    /// What an upload changed: users created, updated (old and new values),
    /// reactivated and deactivated.
    Changes {
        /// Upload id.
        id: i64,
        #[command(flatten)]
        out: Output,
    },
    /// All row errors and warnings of an upload.
    Errors {
        /// Upload id.
        id: i64,
        /// Print CSV (line, severity, column, message) for a spreadsheet.
        #[arg(long)]
        csv: bool,
    },
    /// One upload with its row errors.
    Show {
        /// Upload id.
        id: i64,
        /// Row errors to show at most.
        #[arg(long, default_value_t = 200)]
        errors: u64,
        #[command(flatten)]
        out: Output,
    },
}

/// `userfeed users ...`
#[derive(Debug, Subcommand)]
pub enum UsersCmd {
    /// A tenant's users.
    List {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        out: Output,
    },
}

/// Parses arguments and runs the command.
pub async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cfg = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve { migrate } => {
            crate::telemetry::init_logging(&cfg.log);
            crate::daemon::serve(cfg, migrate).await
        }
        Command::Mapping(MappingCmd::Suggest { file }) => {
            let f = tokio::fs::File::open(&file)
                .await
                .with_context(|| format!("opening {}", file.display()))?;
            let csv = crate::parse::CsvStream::open(f)
                .await
                .with_context(|| format!("reading the header of {}", file.display()))?;
            print!("{}", crate::map::tools::suggest(csv.header()).to_toml());
            Ok(())
        }
        Command::Migrate { wait: true } => {
            crate::telemetry::init_logging(&cfg.log);
            crate::daemon::migrate_when_reachable(&cfg).await?;
            println!("migrations applied");
            Ok(())
        }
        other => {
            // Admin commands log only warnings, as text, to stderr.
            crate::telemetry::init_logging(&LogConfig {
                format: LogFormat::Text,
                level: "warn".into(),
            });
            let db = crate::db::connect(&cfg.database).await.with_context(|| {
                format!(
                    "connecting to {}",
                    crate::config::redact_url(&cfg.database.url)
                )
            })?;
            if !matches!(other, Command::Migrate { .. }) {
                let pending = crate::db::pending_migrations(&db)
                    .await
                    .context("reading the schema version")?;
                if !pending.is_empty() {
                    bail!(
                        "the database schema is not up to date (pending: {}); run `userfeed migrate` first",
                        pending.join(", ")
                    );
                }
            }
            admin(&db, other, &cfg).await
        }
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Runs `file` as an upload of `t` in this process; returns the upload id.
async fn import(
    db: &DatabaseConnection,
    cfg: &Config,
    t: &tenants::Tenant,
    file: &std::path::Path,
) -> anyhow::Result<i64> {
    use std::sync::Arc;

    use crate::apply::Pipeline;
    use crate::jobs::{Claimed, Lease, PoolSettings, Queue, UploadState, Workers};

    let lease = cfg.lease();
    let up =
        crate::intake::local::record(db, t.id, file, UploadState::Running, lease.as_secs_f64())
            .await?;
    let owner = format!("import:{}", std::process::id());
    let workers = Workers {
        db: db.clone(),
        queue: Queue::new(db.clone(), owner, lease),
        pipeline: Pipeline {
            reader: Arc::new(crate::source::local::FolderReader),
            store: crate::apply::store_for(db),
            batch_size: cfg.apply.batch_size,
            limits: cfg.limits,
        },
        settings: PoolSettings {
            concurrency: 1,
            poll_interval: std::time::Duration::from_secs(1),
            lease,
            // A transient failure fails the import at once: the operator
            // is there to run it again, and no daemon can read the file.
            max_attempts: 1,
        },
        health: Default::default(),
    };
    let claimed = Claimed {
        lease: Lease {
            upload_id: up.id,
            token: up.lease_token,
            seconds: lease.as_secs_f64(),
        },
        tenant_id: t.id,
        attempts: 1,
        previous_error: None,
    };
    workers
        .process(
            claimed,
            &tokio_util::sync::CancellationToken::new(),
            "import",
        )
        .await;
    Ok(up.id)
}

async fn admin(db: &DatabaseConnection, cmd: Command, cfg: &Config) -> anyhow::Result<()> {
    let batch_size = cfg.apply.batch_size;
    let limits = cfg.limits;
    match cmd {
        Command::Serve { .. } => unreachable!("handled by run"),
        Command::Migrate { .. } => {
            crate::db::migrate(db)
                .await
                .context("applying migrations")?;
            println!("migrations applied");
        }
        Command::Tenant(TenantCmd::Add {
            slug,
            bucket,
            prefix,
            match_on,
        }) => {
            let t = tenants::add(db, &slug, &bucket, &prefix, match_on).await?;
            println!(
                "tenant {} created: s3://{}/{} (matching on {})",
                t.slug,
                t.bucket,
                t.key_prefix,
                t.match_key.as_str()
            );
        }
        Command::Tenant(TenantCmd::List(out)) => {
            let list = tenants::list(db).await?;
            if out.json {
                print_json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|t| {
                        vec![
                            t.slug.clone(),
                            format!("s3://{}/{}", t.bucket, t.key_prefix),
                            t.match_key.as_str().into(),
                            if t.mapping.is_some() {
                                "set".into()
                            } else {
                                "none".into()
                            },
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    report::table(&["TENANT", "DROP LOCATION", "MATCH ON", "MAPPING"], &rows)
                );
            }
        }
        Command::Tenant(TenantCmd::Set {
            slug,
            hold_over_percent,
            hold_over_count,
        }) => {
            let t = tenants::set_hold_limits(db, &slug, hold_over_percent, hold_over_count).await?;
            println!(
                "tenant {}: uploads deactivating more than {}% and more than {} users are held",
                t.slug, t.hold_over_percent, t.hold_over_count
            );
        }
        Command::Group(GroupCmd::Add { slug, id, name }) => {
            let g = crate::groups::add(db, &slug, &id, &name).await?;
            println!("group {} ({}) added to {slug}", g.group_key, g.name);
        }
        Command::Group(GroupCmd::List { slug, out }) => {
            let list = crate::groups::list(db, &slug).await?;
            if out.json {
                print_json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|g| vec![g.group_key.clone(), g.name.clone()])
                    .collect();
                print!("{}", report::table(&["GROUP ID", "NAME"], &rows));
            }
        }
        Command::ProfileField(ProfileFieldCmd::Add {
            slug,
            key,
            field_type,
        }) => {
            tenants::add_profile_field(db, &slug, &key, field_type).await?;
            println!(
                "profile field {key} ({}) added to {slug}",
                field_type.as_str()
            );
        }
        Command::ProfileField(ProfileFieldCmd::List { slug }) => {
            let t = tenants::by_slug(db, &slug).await?;
            let rows: Vec<Vec<String>> = t
                .profile_fields
                .iter()
                .map(|(k, ty)| vec![k.clone(), ty.as_str().to_string()])
                .collect();
            print!("{}", report::table(&["FIELD", "TYPE"], &rows));
        }
        Command::Uploads(UploadsCmd::Approve { id }) => {
            let n = crate::apply::holds::approve(db, id).await?;
            println!("upload {id} approved: {n} user(s) deactivated");
        }
        Command::Uploads(UploadsCmd::Reject { id }) => {
            let n = crate::apply::holds::reject(db, id).await?;
            println!("upload {id} rejected: {n} deactivation(s) dropped");
        }
        Command::Uploads(UploadsCmd::Retry { id }) => {
            let new_id = crate::jobs::retry::retry(db, id).await?;
            println!("upload {id} queued again as upload {new_id}");
        }
        Command::Mapping(MappingCmd::Set { slug, file }) => {
            let tenant = tenants::by_slug(db, &slug).await?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading mapping file {}", file.display()))?;
            let mapping = Mapping::from_toml(&text, tenant.match_key)
                .with_context(|| format!("in {}", file.display()))?;
            tenants::set_mapping(db, &slug, &mapping).await?;
            println!("mapping of {slug} updated");
        }
        Command::Mapping(MappingCmd::Suggest { .. }) => unreachable!("handled by run"),
        Command::Import { tenant, file, out } => {
            let t = tenants::by_slug(db, &tenant).await?;
            let id = import(db, cfg, &t, &file).await?;
            let Some(d) = report::upload_detail(db, id, 20).await? else {
                bail!("upload {id} vanished")
            };
            if out.json {
                print_json(&d)?
            } else {
                print!("{}", report::upload_text(&d))
            }
            if d.upload.state == crate::jobs::UploadState::Failed.as_str() {
                bail!("upload {id} failed");
            }
        }
        Command::Preview { tenant, file, out } => {
            let t = tenants::by_slug(db, &tenant).await?;
            let r = crate::apply::preview::preview(db, &t, &file, batch_size, limits).await?;
            if out.json {
                print_json(&r)?
            } else {
                print!("{}", crate::apply::preview::text(&file, &t.slug, &r))
            }
        }
        Command::Template { slug } => {
            let t = tenants::by_slug(db, &slug).await?;
            let Some(m) = &t.mapping else {
                bail!("tenant {slug:?} has no mapping yet")
            };
            print!("{}", crate::map::tools::template(m, &t.profile_fields));
        }
        Command::Uploads(UploadsCmd::Changes { id, out }) => {
            let list = report::changes(db, id).await?;
            if out.json {
                print_json(&list)?
            } else {
                print!("{}", report::changes_table(&list))
            }
        }
        Command::Uploads(UploadsCmd::Errors { id, csv }) => {
            let Some(d) = report::upload_detail(db, id, u64::MAX).await? else {
                bail!("no upload {id}")
            };
            if csv {
                use crate::map::tools::csv_cell;
                println!("line,severity,column,message");
                for e in &d.errors {
                    println!(
                        "{},{},{},{}",
                        e.line,
                        e.severity,
                        csv_cell(e.column_name.as_deref().unwrap_or("")),
                        csv_cell(&e.message)
                    );
                }
            } else {
                print!("{}", report::errors_table(&d.errors));
            }
        }
        Command::Mapping(MappingCmd::Show { slug }) => {
            match tenants::by_slug(db, &slug).await?.mapping {
                Some(m) => print!("{}", m.to_toml()),
                None => bail!("tenant {slug:?} has no mapping yet"),
            }
        }
        Command::Uploads(UploadsCmd::List { tenant, limit, out }) => {
            let t = tenants::by_slug(db, &tenant).await?;
            let list = report::uploads(db, t.id, limit).await?;
            if out.json {
                print_json(&list)?
            } else {
                print!("{}", report::uploads_table(&list))
            }
        }
        Command::Uploads(UploadsCmd::Show { id, errors, out }) => {
            let Some(d) = report::upload_detail(db, id, errors).await? else {
                bail!("no upload {id}")
            };
            if out.json {
                print_json(&d)?
            } else {
                print!("{}", report::upload_text(&d))
            }
        }
        Command::Users(UsersCmd::List { tenant, out }) => {
            let t = tenants::by_slug(db, &tenant).await?;
            let list = report::users(db, t.id).await?;
            if out.json {
                print_json(&list)?
            } else {
                print!("{}", report::users_table(&list))
            }
        }
    }
    Ok(())
}
