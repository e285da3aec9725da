//! `userfeed uploads`, `import` and `preview`: upload history, holds,
//! retries, and applying or previewing a local file.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::bail;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sea_orm::{DatabaseConnection, EntityTrait};

use super::Output;
use super::render::emit;
use crate::apply::Pipeline;
use crate::config::Config;
use crate::db::entity::upload;
use crate::jobs::{Claimed, Lease, PoolSettings, UploadState, Workers};
use crate::service::{self, Caller};
use crate::source::CountingReader;
use crate::{report, tenants};

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

/// Runs `userfeed uploads ...`.
pub async fn uploads<W: Write>(
    db: &DatabaseConnection,
    cmd: UploadsCmd,
    out: &mut W,
) -> anyhow::Result<()> {
    match cmd {
        UploadsCmd::List {
            tenant,
            limit,
            out: o,
        } => {
            let t = tenants::by_slug(db, &tenant).await?;
            let list = report::uploads(db, t.id, limit).await?;
            emit(out, o.json, &list, |l| report::uploads_table(l))?;
        }
        UploadsCmd::Approve { id } => {
            let r = service::approve(db, &Caller::Platform, id).await?;
            writeln!(
                out,
                "upload {id} approved: {} user(s) deactivated",
                r.deactivations
            )?;
        }
        UploadsCmd::Reject { id } => {
            let r = service::reject(db, &Caller::Platform, id).await?;
            writeln!(
                out,
                "upload {id} rejected: {} deactivation(s) dropped",
                r.deactivations
            )?;
        }
        UploadsCmd::Retry { id } => {
            let r = service::retry(db, &Caller::Platform, id).await?;
            writeln!(out, "upload {id} queued again as upload {}", r.retry_id)?;
        }
        UploadsCmd::Undo {
            id,
            preview,
            out: o,
        } => {
            let r = service::undo(db, &Caller::Platform, id, preview).await?;
            emit(out, o.json, &r, report::undo_text)?;
        }
        UploadsCmd::Changes { id, out: o } => {
            let list = report::changes(db, id).await?;
            emit(out, o.json, &list, |l| report::changes_table(l))?;
        }
        UploadsCmd::Errors { id, csv } => {
            let Some(d) = report::upload_detail(db, id, u64::MAX).await? else {
                bail!("no upload {id}")
            };
            if csv {
                write!(out, "{}", report::problems_csv(&d.errors))?;
            } else {
                write!(out, "{}", report::errors_table(&d.errors))?;
            }
        }
        UploadsCmd::Show { id, errors, out: o } => {
            let Some(d) = report::upload_detail(db, id, errors).await? else {
                bail!("no upload {id}")
            };
            emit(out, o.json, &d, report::upload_text)?;
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
    db: &DatabaseConnection,
    cfg: &Config,
    tenant: &str,
    file: &Path,
    json: bool,
    out: &mut W,
) -> anyhow::Result<()> {
    let t = tenants::by_slug(db, tenant).await?;
    let lease = cfg.lease();
    let up =
        crate::intake::local::record(db, t.id, file, UploadState::Running, lease.as_secs_f64())
            .await?;
    let size = tokio::fs::metadata(file).await.map(|m| m.len()).ok();
    run_claimed(
        db,
        cfg,
        (t.id, up.id, up.lease_token),
        Arc::new(crate::source::local::FolderReader),
        size,
        json,
        out,
    )
    .await
}

/// Runs an upload this process recorded already claimed (lease token
/// `token`) to its end, reading it with `reader`, then prints its summary.
/// Fails when the upload failed or was held.
pub(super) async fn run_claimed<W: Write>(
    db: &DatabaseConnection,
    cfg: &Config,
    (tenant_id, upload_id, token): (i64, i64, i64),
    reader: Arc<dyn crate::source::ObjectReader>,
    size: Option<u64>,
    json: bool,
    out: &mut W,
) -> anyhow::Result<()> {
    let lease = cfg.lease();
    let (reader, read) = CountingReader::new(reader);
    let workers = Workers::new(
        db.clone(),
        format!("import:{}", std::process::id()),
        Pipeline::for_config(Arc::new(reader), db, cfg),
        PoolSettings {
            concurrency: 1,
            poll_interval: Duration::from_secs(1),
            lease,
            // A transient failure fails the import at once: the operator
            // is there to run it again, and no daemon can read the file.
            max_attempts: 1,
        },
        Default::default(),
    );
    let claimed = Claimed {
        lease: Lease {
            upload_id,
            token,
            seconds: lease.as_secs_f64(),
        },
        tenant_id,
        attempts: 1,
        previous_error: None,
    };
    let bar = progress_bar(size);
    // Only a drawn bar needs the counters: no polling when stderr is a pipe.
    let ticker =
        (!bar.is_hidden()).then(|| tokio::spawn(tick(db.clone(), upload_id, bar.clone(), read)));
    workers
        .process(
            claimed,
            &tokio_util::sync::CancellationToken::new(),
            "import",
        )
        .await;
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    bar.finish_and_clear();

    let Some(d) = report::upload_detail(db, upload_id, 20).await? else {
        bail!("upload {} vanished", upload_id)
    };
    emit(out, json, &d, report::upload_text)?;
    match d.upload.state.parse::<UploadState>() {
        Ok(UploadState::Failed) => bail!("upload {} failed", upload_id),
        Ok(UploadState::Held) => bail!(
            "upload {} is held: its deactivations wait for `userfeed uploads approve {}`",
            upload_id,
            upload_id
        ),
        _ => Ok(()),
    }
}

/// A bar on stderr, drawn only when stderr is a terminal (indicatif hides
/// it otherwise), of `size` bytes when known.
fn progress_bar(size: Option<u64>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(size, ProgressDrawTarget::stderr_with_hz(4));
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg} ETA {eta}",
    )
    .expect("a valid template");
    bar.set_style(style);
    bar
}

/// Updates `bar` from the bytes read and the upload's counters (written by
/// every batch transaction) until aborted.
async fn tick(db: DatabaseConnection, upload_id: i64, bar: ProgressBar, read: Arc<AtomicU64>) {
    let started = std::time::Instant::now();
    let mut every = tokio::time::interval(Duration::from_millis(250));
    loop {
        every.tick().await;
        bar.set_position(read.load(Ordering::Relaxed));
        if let Ok(Some(u)) = upload::Entity::find_by_id(upload_id).one(&db).await {
            let secs = started.elapsed().as_secs_f64().max(0.001);
            bar.set_message(format!(
                "{} rows, {:.0} rows/s",
                u.rows_read,
                u.rows_read as f64 / secs
            ));
        }
    }
}

/// Runs `userfeed preview`: what `file` would do, changing nothing.
pub async fn preview<W: Write>(
    db: &DatabaseConnection,
    cfg: &Config,
    tenant: &str,
    file: &Path,
    json: bool,
    out: &mut W,
) -> anyhow::Result<()> {
    let t = tenants::by_slug(db, tenant).await?;
    let r = crate::apply::preview::preview(db, &t, file, cfg.apply.batch_size, cfg.limits).await?;
    emit(out, json, &r, |r| {
        crate::apply::preview::text(file, &t.slug, r)
    })
}
