//! Uploads run in the caller's own process: a local file applied now
//! (`userfeed import`), previewed (`userfeed preview`), or a Xero import
//! run at once (`userfeed xero import`). Each is claimed under a real lease
//! and run by [`crate::jobs::Workers::run_here`], as a daemon's worker runs
//! it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::*;
use crate::apply::Pipeline;
use crate::config::Config;
use crate::jobs::{Claimed, Lease, Workers};
use crate::source::{CountingReader, ObjectReader};

/// How far an upload running here has got, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunProgress {
    /// Bytes of the file read so far.
    pub bytes_read: u64,
    /// Rows read so far (written by every batch transaction).
    pub rows_read: i64,
}

/// Called about four times a second while an upload runs here.
pub type OnProgress = Arc<dyn Fn(RunProgress) + Send + Sync>;

impl From<crate::intake::local::LocalUploadError> for ServiceError {
    fn from(e: crate::intake::local::LocalUploadError) -> Self {
        use crate::intake::local::LocalUploadError as E;
        match e {
            E::NotAFile(_) => ServiceError::Invalid(e.to_string()),
            E::TenantBusy => ServiceError::Refused(e.to_string()),
            E::Db(e) => ServiceError::Db(e),
        }
    }
}

/// How many row problems the detail of an upload run here lists.
const RUN_PROBLEMS: u64 = 20;

/// Refuses a local file that is not there, before anything is recorded.
async fn local_file(file: &Path) -> Result<u64, ServiceError> {
    match tokio::fs::metadata(file).await {
        Ok(m) if m.is_file() => Ok(m.len()),
        Ok(_) => Err(ServiceError::Invalid(format!(
            "not a file: {}",
            file.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ServiceError::Invalid(format!(
            "no such file: {}",
            file.display()
        ))),
        Err(e) => Err(ServiceError::Invalid(format!(
            "{} could not be read: {e}",
            file.display()
        ))),
    }
}

/// What a Xero import run here did: the plan it was made from and the
/// upload's detail.
#[derive(Debug, Serialize)]
pub struct XeroRun {
    /// Who was imported, who could not be, who was there already.
    pub preview: crate::xero::XeroPreview,
    /// The upload that applied it.
    pub upload: UploadDetail,
}

/// Reports the bytes read and the upload's row count until aborted.
async fn tick(db: DatabaseConnection, upload_id: i64, read: Arc<AtomicU64>, f: OnProgress) {
    let mut every = tokio::time::interval(Duration::from_millis(250));
    loop {
        every.tick().await;
        let rows_read = upload::Entity::find_by_id(upload_id)
            .one(&db)
            .await
            .ok()
            .flatten()
            .map_or(0, |u| u.rows_read);
        f(RunProgress {
            bytes_read: read.load(Ordering::Relaxed),
            rows_read,
        });
    }
}

impl Service {
    /// Applies the local CSV `file` to tenant `slug` now, in this process,
    /// exactly as if it had been dropped (an upload of source `local`); returns
    /// its detail once it has ended. A file that is not there is refused before
    /// anything is recorded.
    pub async fn import_file(
        &self,
        cfg: &Config,
        caller: &Caller,
        slug: &str,
        file: &Path,
        on_progress: Option<OnProgress>,
    ) -> Result<UploadDetail, ServiceError> {
        let db = &self.db;
        local_file(file).await?;
        let t = self.tenant(caller, slug).await?;
        let lease = cfg.lease();
        let up =
            crate::intake::local::record(db, t.id, file, UploadState::Running, lease.as_secs_f64())
                .await?;
        let reader: Arc<dyn ObjectReader> = Arc::new(crate::source::local::FolderReader);
        self.run_here(cfg, (t.id, up.id, up.lease_token), reader, on_progress)
            .await
    }

    /// What the local CSV `file` would do to tenant `slug`; nothing changes
    /// and nothing is recorded.
    pub async fn preview_file(
        &self,
        _cfg: &Config,
        caller: &Caller,
        slug: &str,
        file: &Path,
    ) -> Result<PreviewReport, ServiceError> {
        let _db = &self.db;
        local_file(file).await?;
        self.preview(caller, slug, file).await
    }

    /// Runs a Xero import of tenant `slug` now, in this process.
    pub async fn xero_import_here(
        &self,
        cfg: &Config,
        caller: &Caller,
        slug: &str,
        on_progress: Option<OnProgress>,
    ) -> Result<XeroRun, ServiceError> {
        let db = &self.db;
        let _x = self.xero.as_ref();
        let lease = cfg.lease().as_secs_f64();
        let done = self
            .xero_import(caller, slug, crate::xero::connection::Start::Claimed(lease))
            .await?;
        let t = self.tenant(caller, slug).await?;
        let token = upload::Entity::find_by_id(done.upload_id)
            .one(db)
            .await?
            .ok_or_else(|| no_upload(done.upload_id))?
            .lease_token;
        let reader: Arc<dyn ObjectReader> =
            Arc::new(crate::source::stored::StoredReader::new(db.clone()));
        let upload = self
            .run_here(cfg, (t.id, done.upload_id, token), reader, on_progress)
            .await?;
        Ok(XeroRun {
            preview: done.preview,
            upload,
        })
    }

    /// Runs the upload `upload_id` of tenant `tenant_id`, claimed by this
    /// process under lease token `token`, reading it with `reader`.
    async fn run_here(
        &self,
        cfg: &Config,
        (tenant_id, upload_id, token): (i64, i64, i64),
        reader: Arc<dyn ObjectReader>,
        on_progress: Option<OnProgress>,
    ) -> Result<UploadDetail, ServiceError> {
        let db = &self.db;
        let lease = cfg.lease();
        let (reader, read) = CountingReader::new(reader);
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
        // Only a watcher needs the counters: nothing polls otherwise.
        let ticker = on_progress.map(|f| tokio::spawn(tick(db.clone(), upload_id, read, f)));
        Workers::run_here(
            db,
            Pipeline::for_config(Arc::new(reader), db, cfg),
            claimed,
            lease,
        )
        .await;
        if let Some(ticker) = ticker {
            ticker.abort();
        }
        report::upload_detail(db, upload_id, RUN_PROBLEMS)
            .await?
            .ok_or_else(|| no_upload(upload_id))
    }
}
