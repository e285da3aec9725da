//! `userfeed xero`: connect a tenant to a Xero organisation, preview and
//! run imports of its employees, disconnect (`docs/xero.md`).

use std::io::Write;
use std::time::Duration;

use clap::Subcommand;

use super::Output;
use super::render::emit;
use crate::config::Config;
use crate::service::{self, Caller, Service, XeroPreview};

/// `userfeed xero ...`
#[derive(Debug, Subcommand)]
pub enum XeroCmd {
    /// Connect a tenant to a Xero organisation.
    ///
    /// Connect a tenant to a Xero organisation: prints the URL to open,
    /// receives Xero's answer on the port of `xero.redirect_uri`, and
    /// stores the connection (tokens encrypted with `xero.token_key`).
    Connect {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// The organisation, by ID or name, when the grant reaches several.
        #[arg(long)]
        organisation: Option<String>,
        /// Seconds to wait for the admin to answer in Xero.
        #[arg(long, default_value_t = 600)]
        wait: u64,
    },
    /// The tenant's connection.
    Status {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        out: Output,
    },
    /// What a Xero import would do now, changing nothing.
    ///
    /// What an import would do now: employees it would create, those it
    /// cannot (and why), those already users. Changes nothing.
    Preview {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        out: Output,
    },
    /// Import the organisation's employees now.
    ///
    /// Import the organisation's employees now, in this process, as an
    /// upload of source `xero`: creates users only, never changes or
    /// deactivates one. Run it again later to pick up new employees.
    Import {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        out: Output,
    },
    /// Revoke the grant in Xero and delete the tenant's connection.
    Disconnect {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
}

/// Runs `userfeed xero ...`.
pub async fn xero<W: Write>(
    svc: &Service,
    cfg: &Config,
    cmd: XeroCmd,
    out: &mut W,
) -> anyhow::Result<()> {
    // Settings that are set but unusable are said first, in their words.
    service::xero_service(&cfg.xero)?;
    let me = Caller::Platform;
    match cmd {
        XeroCmd::Connect {
            tenant,
            organisation,
            wait,
        } => {
            let info = svc.xero_connect_loopback(&me,
                &tenant,
                organisation.as_deref(),
                Duration::from_secs(wait),
                |url, redirect| {
                    let _ = writeln!(
                        out,
                        "Open this URL, sign in to Xero and allow access to the organisation:\n\n  {url}\n\nWaiting for Xero's answer on {redirect} ..."
                    );
                    let _ = out.flush();
                },
            )
            .await?;
            writeln!(
                out,
                "connected tenant {tenant} to {} ({}, payroll region {})",
                info.organisation,
                info.country,
                info.region.as_str()
            )?;
            Ok(())
        }
        XeroCmd::Status { tenant, out: o } => {
            let info = svc.xero_status(&me, &tenant).await?;
            emit(out, o.json, &info, |i| match i {
                None => format!("tenant {tenant} is not connected to Xero\n"),
                Some(i) => format!(
                    "organisation: {} ({})\ncountry:      {} (payroll region {})\nconnected:    {}\nrefreshed:    {}\n",
                    i.organisation,
                    i.organisation_id,
                    i.country,
                    i.region.as_str(),
                    i.connected_at.to_rfc3339(),
                    i.refreshed_at.to_rfc3339()
                ),
            })
        }
        XeroCmd::Preview { tenant, out: o } => {
            let p = svc.xero_preview(&me, &tenant).await?;
            emit(out, o.json, &p, preview_text)
        }
        XeroCmd::Import { tenant, out: o } => {
            let bar = super::uploads::progress_bar(None);
            let run = svc
                .xero_import_here(cfg, &me, &tenant, super::uploads::watch(&bar))
                .await;
            bar.finish_and_clear();
            let run = run?;
            if !o.json {
                write!(out, "{}", preview_text(&run.preview))?;
            }
            super::uploads::ended(&run.upload, o.json, out)
        }
        XeroCmd::Disconnect { tenant } => {
            if svc.xero_disconnect(&me, &tenant).await? {
                writeln!(
                    out,
                    "disconnected tenant {tenant} from Xero; the grant is revoked"
                )?;
            } else {
                writeln!(out, "tenant {tenant} was not connected to Xero")?;
            }
            Ok(())
        }
    }
}

/// The preview for people: the three groups.
pub fn preview_text(p: &XeroPreview) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Xero organisation {} (payroll region {}): {} to import, {} not importable, {} already users; {} of {} imported users used before this import",
        p.organisation,
        p.region.as_str(),
        p.importable.len(),
        p.not_importable.len(),
        p.present.len(),
        p.imported_before,
        p.cap
    );
    let _ = writeln!(s, "\nWould import:");
    for person in &p.importable {
        let _ = writeln!(s, "  {}", person.label());
    }
    let _ = writeln!(s, "\nCannot import:");
    for skip in &p.not_importable {
        let _ = writeln!(s, "  {}", skip.message);
    }
    let _ = writeln!(s, "\nAlready users (left as they are):");
    for person in &p.present {
        let _ = writeln!(s, "  {}", person.label());
    }
    s
}
