//! `userfeed tenant`, `mapping`, `group`, `profile-field` and `template`:
//! a tenant's settings.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;

use super::Output;
use super::render::{self, emit};
use crate::map::{Mapping, MatchKey};
use crate::service::{self, Caller, Service};

/// `userfeed tenant ...`
#[derive(Debug, Subcommand)]
pub enum TenantCmd {
    /// Create a tenant.
    ///
    /// Create a tenant. Its files can always be dropped in the drop folder's
    /// `<slug>/` (when the drop folder is on); `--bucket` adds an S3 location.
    Add {
        /// The new tenant's short unique name (lowercase letters, digits,
        /// dashes).
        #[arg(long = "tenant", value_name = "SLUG")]
        slug: String,
        /// Bucket the tenant's files are dropped in; none for a tenant that
        /// delivers only to the drop folder.
        #[arg(long, default_value = "", hide_default_value = true)]
        bucket: String,
        /// Key prefix owned by the tenant in the bucket (a trailing `/` is
        /// added); the slug when not given.
        #[arg(long)]
        prefix: Option<String>,
        /// How people are matched across files.
        #[arg(long = "match-on", value_enum, default_value = "email")]
        match_on: MatchKey,
    },
    /// List tenants.
    List(Output),
    /// Change a tenant's settings.
    Set {
        /// The tenant.
        #[arg(long = "tenant", value_name = "SLUG")]
        slug: String,
        /// Hold an upload that would deactivate more than this percentage of
        /// the tenant's active feed-managed users (default 20)...
        #[arg(long)]
        hold_over_percent: Option<i32>,
        /// ...and more than this many users (default 10).
        #[arg(long)]
        hold_over_count: Option<i32>,
    },
    /// Set the tenant's webhook and print its signing secret.
    ///
    /// Set where the tenant's notifications go (docs/webhooks.md) and print
    /// the secret their signatures verify with.
    Webhook {
        /// The tenant.
        #[arg(long = "tenant", value_name = "SLUG")]
        slug: String,
        /// The receiver's URL (https://).
        #[arg(long, required_unless_present = "clear", conflicts_with = "clear")]
        url: Option<String>,
        /// Replace the signing secret with a new one.
        #[arg(long, requires = "url")]
        rotate_secret: bool,
        /// Remove the tenant's URL (the platform's notify.default_url applies).
        #[arg(long)]
        clear: bool,
    },
    /// The tenant's write-only upload credentials.
    ///
    /// The tenant's write-only upload credentials: an IAM user allowed to
    /// put objects under the tenant's prefix and nothing else.
    #[command(subcommand)]
    Credentials(CredentialsCmd),
}

/// `userfeed tenant credentials ...`
#[derive(Debug, Subcommand)]
pub enum CredentialsCmd {
    /// Make the tenant's upload user and its first key.
    ///
    /// Make the tenant's upload user and its first access key. Prints the
    /// secret once; only the key ID is stored.
    Create {
        /// The tenant.
        #[arg(long = "tenant", value_name = "SLUG")]
        slug: String,
        #[command(flatten)]
        out: Output,
    },
    /// Make a new key; the old one works for a grace period.
    ///
    /// Make a new key. The old one keeps working for
    /// `credentials.rotation_grace_hours` (or `--grace-hours`), then the
    /// daemon deletes it.
    Rotate {
        /// The tenant.
        #[arg(long = "tenant", value_name = "SLUG")]
        slug: String,
        /// Hours the old key keeps working (0: deleted at the daemon's next
        /// sweep).
        #[arg(long)]
        grace_hours: Option<f64>,
        #[command(flatten)]
        out: Output,
    },
    /// Delete every key of the tenant now: uploads with them are refused.
    Revoke {
        /// The tenant.
        #[arg(long = "tenant", value_name = "SLUG")]
        slug: String,
    },
    /// Show the connection details: bucket, prefix, upload command, keys.
    Show {
        /// The tenant.
        #[arg(long = "tenant", value_name = "SLUG")]
        slug: String,
        #[command(flatten)]
        out: Output,
    },
    /// Delete rotated-out keys whose grace period has ended.
    ///
    /// Delete the rotated-out keys whose grace period has ended now
    /// (the daemon does this every `credentials.sweep_seconds`).
    Sweep,
}

/// `userfeed mapping ...`
#[derive(Debug, Subcommand)]
pub enum MappingCmd {
    /// Set a tenant's mapping from a TOML file (see docs/csv-format.md).
    Set {
        /// The tenant.
        #[arg(long = "tenant", value_name = "SLUG")]
        slug: String,
        /// Mapping TOML file.
        file: PathBuf,
    },
    /// Print a tenant's mapping as TOML.
    Show {
        /// The tenant.
        #[arg(long = "tenant", value_name = "SLUG")]
        slug: String,
        #[command(flatten)]
        out: Output,
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
        /// The tenant.
        #[arg(long = "tenant", value_name = "SLUG")]
        slug: String,
        /// The group ID used in files' groups column.
        id: String,
        /// Display name.
        name: String,
    },
    /// List a tenant's groups.
    List {
        /// The tenant.
        #[arg(long = "tenant", value_name = "SLUG")]
        slug: String,
        #[command(flatten)]
        out: Output,
    },
    /// Remove a group and its memberships.
    Remove {
        /// The tenant.
        #[arg(long = "tenant", value_name = "SLUG")]
        slug: String,
        /// The group ID.
        id: String,
    },
}

/// `userfeed profile-field ...`
#[derive(Debug, Subcommand)]
pub enum ProfileFieldCmd {
    /// Define a custom profile field that mappings can fill.
    Add {
        /// The tenant.
        #[arg(long = "tenant", value_name = "SLUG")]
        slug: String,
        /// Field name (letters, digits, underscores).
        key: String,
        /// Value type; a cell that does not fit is a warning and is skipped.
        #[arg(long = "type", value_enum)]
        field_type: crate::map::FieldType,
    },
    /// List a tenant's profile fields.
    List {
        /// The tenant.
        #[arg(long = "tenant", value_name = "SLUG")]
        slug: String,
        #[command(flatten)]
        out: Output,
    },
    /// Remove a profile field (refused while the mapping fills it).
    Remove {
        /// The tenant.
        #[arg(long = "tenant", value_name = "SLUG")]
        slug: String,
        /// Field name.
        key: String,
    },
}

/// Runs `userfeed tenant ...`.
pub async fn tenant<W: Write>(
    svc: &Service,
    cfg: &crate::config::Config,
    cmd: TenantCmd,
    out: &mut W,
) -> anyhow::Result<()> {
    match cmd {
        TenantCmd::Add {
            slug,
            bucket,
            prefix,
            match_on,
        } => {
            let new = service::NewTenant {
                slug,
                bucket,
                prefix,
                match_on,
            };
            let t = svc.add_tenant(&Caller::Platform, &new).await?;
            writeln!(
                out,
                "tenant {} created: {} (matching on {})",
                t.slug,
                t.s3_location().as_deref().unwrap_or("drop folder only"),
                t.match_key.as_str()
            )?;
        }
        TenantCmd::List(o) => {
            let list = svc.tenants(&Caller::Platform).await?;
            emit(out, o.json, &list, |list| {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|t| {
                        vec![
                            t.slug.clone(),
                            t.s3_location().unwrap_or_else(|| "-".into()),
                            t.match_key.as_str().into(),
                            if t.mapping.is_some() { "set" } else { "none" }.into(),
                        ]
                    })
                    .collect();
                render::table(&["TENANT", "S3 LOCATION", "MATCH ON", "MAPPING"], &rows)
            })?;
        }
        TenantCmd::Set {
            slug,
            hold_over_percent,
            hold_over_count,
        } => {
            let settings = service::TenantSettings {
                hold_over_percent,
                hold_over_count,
            };
            let t = svc.set_tenant(&Caller::Platform, &slug, &settings).await?;
            writeln!(
                out,
                "tenant {}: uploads deactivating more than {}% and more than {} users are held",
                t.slug, t.hold_over_percent, t.hold_over_count
            )?;
        }
        TenantCmd::Webhook {
            slug,
            url,
            rotate_secret,
            clear,
        } => match url {
            Some(url) if !clear => {
                let req = service::WebhookRequest { url, rotate_secret };
                let w = svc.set_webhook(&Caller::Platform, &slug, &req).await?;
                writeln!(
                    out,
                    "webhook of {slug}: {}\nsigning secret (give it to the receiver; see docs/webhooks.md): {}",
                    w.url.unwrap_or_default(),
                    w.secret.unwrap_or_default()
                )?;
            }
            _ => {
                svc.clear_webhook(&Caller::Platform, &slug).await?;
                writeln!(out, "webhook of {slug} removed")?;
            }
        },
        TenantCmd::Credentials(cmd) => {
            credentials(svc, cfg, cmd, out).await?;
        }
    }
    Ok(())
}

/// Runs `userfeed tenant credentials ...` with `iam` (none on the
/// embedded default, where every change is refused with the reason).
pub async fn credentials<W: Write>(
    svc: &Service,
    cfg: &crate::config::Config,
    cmd: CredentialsCmd,
    out: &mut W,
) -> anyhow::Result<()> {
    let platform = &Caller::Platform;
    let grace = |hours: Option<f64>| {
        let h = hours.unwrap_or(cfg.credentials.rotation_grace_hours);
        anyhow::ensure!(h >= 0.0 && h.is_finite(), "--grace-hours must be 0 or more");
        Ok(std::time::Duration::from_secs_f64(h * 3600.0))
    };
    match cmd {
        CredentialsCmd::Create { slug, out: o } => {
            let key = svc.create_credentials(platform, &slug).await?;
            print_key(&key, o.json, out)?;
        }
        CredentialsCmd::Rotate {
            slug,
            grace_hours,
            out: o,
        } => {
            let grace = grace(grace_hours)?;
            let key = svc.rotate_credentials(platform, &slug, grace).await?;
            print_key(&key, o.json, out)?;
        }
        CredentialsCmd::Revoke { slug } => {
            let r = svc.revoke_credentials(platform, &slug).await?;
            if r.access_key_ids.is_empty() {
                writeln!(out, "{slug} had no upload keys")?;
            } else {
                writeln!(
                    out,
                    "deleted upload keys of {slug}: {}",
                    r.access_key_ids.join(", ")
                )?;
            }
        }
        CredentialsCmd::Show { slug, out: o } => {
            let c = svc.connection(platform, &slug).await?;
            if o.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&c)?)?;
                return Ok(());
            }
            writeln!(
                out,
                "bucket:  {}\nprefix:  {}\nregion:  {}",
                c.bucket, c.prefix, c.region
            )?;
            writeln!(out, "upload:  {}", c.upload_command)?;
            for k in &c.keys {
                let when = match (&k.retire_at, &k.deleted_at) {
                    (Some(r), _) => format!("works until {}", r.format("%Y-%m-%d %H:%M UTC")),
                    (_, Some(d)) => format!("deleted {}", d.format("%Y-%m-%d %H:%M UTC")),
                    _ => String::new(),
                };
                writeln!(
                    out,
                    "key:     {}  {}  created {}  {when}",
                    k.access_key_id,
                    k.state,
                    k.created_at.format("%Y-%m-%d %H:%M UTC")
                )?;
            }
            if c.keys.is_empty() {
                writeln!(
                    out,
                    "key:     none (userfeed tenant credentials create --tenant {slug})"
                )?;
            }
        }
        CredentialsCmd::Sweep => {
            let n = svc.sweep_credentials().await?;
            writeln!(
                out,
                "deleted {n} rotated-out key(s) whose grace period had ended"
            )?;
        }
    }
    Ok(())
}

fn print_key<W: Write>(key: &service::NewKey, json: bool, out: &mut W) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(key)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "upload credentials of IAM user {} (the secret is shown once and not stored):",
        key.iam_user
    )?;
    writeln!(out, "  access key ID:      {}", key.access_key_id)?;
    writeln!(
        out,
        "  secret access key:  {}",
        key.secret_access_key.expose()
    )?;
    writeln!(
        out,
        "  bucket and prefix:  s3://{}/{}",
        key.bucket, key.prefix
    )?;
    writeln!(out, "  region:             {}", key.region)?;
    writeln!(out, "  upload with:        {}", key.upload_command)?;
    if let Some(r) = &key.retiring {
        writeln!(
            out,
            "the previous key {} keeps working until {}",
            r.access_key_id,
            r.retire_at.format("%Y-%m-%d %H:%M UTC")
        )?;
    }
    Ok(())
}

/// Prints the mapping suggested by the header of the CSV file `file`
/// (needs no database).
pub async fn suggest<W: Write>(file: &Path, out: &mut W) -> anyhow::Result<()> {
    write!(out, "{}", service::suggest_mapping(file).await?.toml)?;
    Ok(())
}

/// Runs `userfeed mapping ...`.
pub async fn mapping<W: Write>(svc: &Service, cmd: MappingCmd, out: &mut W) -> anyhow::Result<()> {
    match cmd {
        MappingCmd::Set { slug, file } => {
            let tenant = svc.tenant(&Caller::Platform, &slug).await?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading mapping file {}", file.display()))?;
            let mapping = Mapping::from_toml(&text, tenant.match_key)
                .with_context(|| format!("in {}", file.display()))?;
            svc.set_mapping(&Caller::Platform, &slug, &mapping).await?;
            writeln!(out, "mapping of {slug} updated")?;
        }
        MappingCmd::Show { slug, out: o } => {
            let m = svc.mapping(&Caller::Platform, &slug).await?;
            emit(out, o.json, &m, |m| m.to_toml())?;
        }
        MappingCmd::Suggest { file } => suggest(&file, out).await?,
    }
    Ok(())
}

/// Runs `userfeed group ...`.
pub async fn group<W: Write>(svc: &Service, cmd: GroupCmd, out: &mut W) -> anyhow::Result<()> {
    match cmd {
        GroupCmd::Add { slug, id, name } => {
            let new = service::NewGroup { id, name };
            let g = svc.add_group(&Caller::Platform, &slug, &new).await?;
            writeln!(out, "group {} ({}) added to {slug}", g.group_key, g.name)?;
        }
        GroupCmd::List { slug, out: o } => {
            let list = svc.groups(&Caller::Platform, &slug).await?;
            emit(out, o.json, &list, |list| {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|g| vec![g.group_key.clone(), g.name.clone()])
                    .collect();
                render::table(&["GROUP ID", "NAME"], &rows)
            })?;
        }
        GroupCmd::Remove { slug, id } => {
            let r = svc.remove_group(&Caller::Platform, &slug, &id).await?;
            writeln!(
                out,
                "group {id} removed from {slug} with {} membership(s)",
                r.memberships
            )?;
        }
    }
    Ok(())
}

/// Runs `userfeed profile-field ...`.
pub async fn profile_field<W: Write>(
    svc: &Service,
    cmd: ProfileFieldCmd,
    out: &mut W,
) -> anyhow::Result<()> {
    match cmd {
        ProfileFieldCmd::Add {
            slug,
            key,
            field_type,
        } => {
            let field = service::ProfileField {
                key: key.clone(),
                field_type,
            };
            svc.add_profile_field(&Caller::Platform, &slug, &field)
                .await?;
            writeln!(
                out,
                "profile field {key} ({}) added to {slug}",
                field_type.as_str()
            )?;
        }
        ProfileFieldCmd::Remove { slug, key } => {
            svc.remove_profile_field(&Caller::Platform, &slug, &key)
                .await?;
            writeln!(out, "profile field {key} removed from {slug}")?;
        }
        ProfileFieldCmd::List { slug, out: o } => {
            let list = svc.profile_fields(&Caller::Platform, &slug).await?;
            emit(out, o.json, &list, |list| {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|f| vec![f.key.clone(), f.field_type.as_str().to_string()])
                    .collect();
                render::table(&["FIELD", "TYPE"], &rows)
            })?;
        }
    }
    Ok(())
}

/// Runs `userfeed template`: a CSV header and example row for the mapping.
pub async fn template<W: Write>(svc: &Service, slug: &str, out: &mut W) -> anyhow::Result<()> {
    write!(out, "{}", svc.template(&Caller::Platform, slug).await?)?;
    Ok(())
}
