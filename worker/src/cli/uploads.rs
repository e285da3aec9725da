//! `userfeed uploads`, `import` and `preview`: upload history, holds,
//! retries, and applying or previewing a local file.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::bail;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Output;
use super::render::{self, emit};
use crate::config::Config;
use crate::service::{self, Caller, OnProgress, RunProgress, Service, UploadDetail, UploadState};

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
        #[command(flatten)]
        out: Output,
    },
    /// Drop the deactivations a held upload is waiting for.
    Reject {
        /// Upload id.
        id: i64,
        #[command(flatten)]
        out: Output,
    },
    /// Queue a failed upload's file again.
    ///
    /// Queue a failed upload's object again as a new upload (once its cause
    /// is fixed). Refused unless it is the tenant's newest file.
    Retry {
        /// Upload id.
        id: i64,
        #[command(flatten)]
        out: Output,
    },
    /// Undo the tenant's newest applied upload.
    ///
    /// Revert what the tenant's newest applied upload changed: users it
    /// created become inactive, users it deactivated active again, fields
    /// it updated go back (unless changed since), links restored. The undo
    /// is itself an upload, which can be undone in turn.
    Undo {
        /// Upload id.
        id: i64,
        /// Show what the undo would do; change nothing.
        #[arg(long)]
        preview: bool,
        #[command(flatten)]
        out: Output,
    },
    /// What an upload changed, user by user.
    ///
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
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        #[command(flatten)]
        out: Output,
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

/// Runs `userfeed uploads ...`.
pub async fn uploads<W: Write>(svc: &Service, cmd: UploadsCmd, out: &mut W) -> anyhow::Result<()> {
    let me = Caller::Platform;
    match cmd {
        UploadsCmd::List {
            tenant,
            limit,
            out: o,
        } => {
            let list = svc.uploads(&me, &tenant, limit).await?;
            emit(out, o.json, &list, |l| render::uploads_table(l))?;
        }
        UploadsCmd::Approve { id, out: o } => {
            let r = svc.approve(&me, id).await?;
            emit(out, o.json, &r, |r| {
                format!(
                    "upload {id} approved: {} user(s) deactivated\n",
                    r.deactivations
                )
            })?;
        }
        UploadsCmd::Reject { id, out: o } => {
            let r = svc.reject(&me, id).await?;
            emit(out, o.json, &r, |r| {
                format!(
                    "upload {id} rejected: {} deactivation(s) dropped\n",
                    r.deactivations
                )
            })?;
        }
        UploadsCmd::Retry { id, out: o } => {
            let r = svc.retry(&me, id).await?;
            emit(out, o.json, &r, |r| {
                format!("upload {id} queued again as upload {}\n", r.retry_id)
            })?;
        }
        UploadsCmd::Undo {
            id,
            preview,
            out: o,
        } => {
            let r = svc.undo(&me, id, preview).await?;
            emit(out, o.json, &r, render::undo_text)?;
        }
        UploadsCmd::Changes { id, out: o } => {
            let list = svc.changes(&me, id).await?;
            emit(out, o.json, &list, |l| render::changes_table(l))?;
        }
        UploadsCmd::Errors { id, csv, out: o } => {
            let d = svc.upload(&me, id, u64::MAX).await?;
            if csv {
                write!(out, "{}", service::problems_csv(&d.errors))?;
            } else {
                emit(out, o.json, &d.errors, |e| render::errors_table(e))?;
            }
        }
        UploadsCmd::Show { id, errors, out: o } => {
            let d = svc.upload(&me, id, errors).await?;
            emit(out, o.json, &d, render::upload_text)?;
        }
    }
    Ok(())
}

/// Runs `userfeed import`: applies `file` to the tenant now, in this
/// process, then prints the upload's summary. Fails (a non-zero exit) when
/// the upload failed or was held. On a terminal, a progress bar on stderr
/// shows rows, rows per second, bytes read of the file's size and the time
/// left; when stderr is not a terminal there is no bar.
pub async fn import<W: Write>(
    svc: &Service,
    cfg: &Config,
    tenant: &str,
    file: &Path,
    json: bool,
    out: &mut W,
) -> anyhow::Result<()> {
    let size = tokio::fs::metadata(file).await.map(|m| m.len()).ok();
    let bar = progress_bar(size);
    let d = svc
        .import_file(cfg, &Caller::Platform, tenant, file, watch(&bar))
        .await;
    bar.finish_and_clear();
    ended(&d?, json, out)
}

/// Prints an upload that ran here, and fails when it failed or was held.
pub(super) fn ended<W: Write>(d: &UploadDetail, json: bool, out: &mut W) -> anyhow::Result<()> {
    emit(out, json, d, render::upload_text)?;
    let id = d.upload.id;
    match d.upload.state {
        UploadState::Failed => bail!("upload {id} failed"),
        UploadState::Held => {
            bail!("upload {id} is held: its deactivations wait for `userfeed uploads approve {id}`")
        }
        _ => Ok(()),
    }
}

/// A bar on stderr, drawn only when stderr is a terminal (indicatif hides
/// it otherwise), of `size` bytes when known.
pub(super) fn progress_bar(size: Option<u64>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(size, ProgressDrawTarget::stderr_with_hz(4));
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg} ETA {eta}",
    )
    .expect("a valid template");
    bar.set_style(style);
    bar
}

/// What updates `bar` as the upload runs; `None` when the bar is hidden,
/// so nothing polls when stderr is a pipe.
pub(super) fn watch(bar: &ProgressBar) -> Option<OnProgress> {
    if bar.is_hidden() {
        return None;
    }
    let bar = bar.clone();
    let started = std::time::Instant::now();
    Some(Arc::new(move |p: RunProgress| {
        bar.set_position(p.bytes_read);
        let secs = started.elapsed().as_secs_f64().max(0.001);
        bar.set_message(format!(
            "{} rows, {:.0} rows/s",
            p.rows_read,
            p.rows_read as f64 / secs
        ));
    }))
}

/// Runs `userfeed preview`: what `file` would do, changing nothing.
pub async fn preview<W: Write>(
    svc: &Service,
    cfg: &Config,
    tenant: &str,
    file: &Path,
    json: bool,
    out: &mut W,
) -> anyhow::Result<()> {
    let r = svc
        .preview_file(cfg, &Caller::Platform, tenant, file)
        .await?;
    emit(out, json, &r, |r| render::preview_text(file, tenant, r))
}
