//! Drop-folder intake: files delivered to a local folder (by a person, a
//! script, or an SFTP server whose users are chrooted into it) become
//! uploads exactly as S3 objects do.
//!
//! Layout, for a drop folder `D` and a tenant `acme`:
//!
//! ```text
//! D/acme/hr.csv                              delivered; taken once complete
//! D/acme/processing/20261203T021500.000000Z_hr.csv   taken: its upload is queued, running or held
//! D/acme/processed/…                         its upload succeeded (or was superseded)
//! D/acme/failed/…                            its upload failed (a retry reads it from here)
//! D/_unrouted/<folder>/…                     no tenant owns the folder: set aside, never lost
//! ```
//!
//! A file is *complete* when it was renamed into the folder (the safe way to
//! deliver), or when its size and modification time have not changed for
//! `drop.settle_seconds`. Names a writer uses while writing (`.part`,
//! `.tmp`, `.filepart`, `~`, dot-files) are never taken, and neither are
//! symbolic links (an SFTP user could otherwise point one at any file the
//! daemon can read).
//!
//! Taking a file is a rename into `processing/` followed by recording its
//! upload. A crash between the two leaves a file in `processing/` without an
//! upload; every scan records such files, so nothing is lost. Recording is
//! idempotent (the taken name is the object's identity), so recording twice
//! is harmless too.
//!
//! File-system notifications (`notify`) wake the scanner; a full rescan runs
//! at start and every `drop.rescan_seconds` as the fallback for missed
//! events (network file systems send none).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder};
use tokio_util::sync::CancellationToken;

use crate::config::DropConfig;
use crate::db::entity::upload;
use crate::health::Health;
use crate::jobs::state::UploadState;
use crate::telemetry::events::{self, DropOutcome, IntakeStage};
use crate::tenants::{self, TenantError};

use crate::upload::{ObjectCreated, UploadSource};

/// Taken files whose upload has not ended.
pub const PROCESSING: &str = "processing";
/// Files whose upload succeeded or was superseded.
pub const PROCESSED: &str = "processed";
/// Files whose upload failed.
pub const FAILED: &str = "failed";
/// Files no tenant owns, under the drop folder itself.
pub const UNROUTED: &str = "_unrouted";
/// How often taken files are looked at while an upload is running.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);
/// Where a taken file can be, in the order a reader looks for it.
pub const UPLOAD_DIRS: [&str; 3] = [PROCESSING, FAILED, PROCESSED];

/// A drop-folder step that failed; the next scan tries again.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    /// A file-system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Reading a tenant failed.
    #[error(transparent)]
    Tenant(#[from] TenantError),
    /// Database failure.
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FolderError {
    let path = path.display().to_string();
    move |source| FolderError::Io {
        action,
        path,
        source,
    }
}

/// Whether a file name is one writers use while writing, or hidden: such a
/// file is never taken.
pub fn is_ignored_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || name.ends_with('~')
        || [".part", ".tmp", ".filepart", ".partial", ".crdownload"]
            .iter()
            .any(|s| lower.ends_with(s))
}

/// The drop folder's settings, resolved.
#[derive(Debug, Clone)]
pub struct DropFolder {
    root: PathBuf,
    tenant_folders: BTreeMap<String, PathBuf>,
    settle: Duration,
    rescan: Duration,
    retention: Option<Duration>,
}

/// A delivered file waiting to be taken.
#[derive(Debug, Clone, PartialEq)]
struct Incoming {
    /// The owning tenant's slug; `None` for a file in no tenant's folder.
    slug: Option<String>,
    /// The folder it was delivered to.
    folder: PathBuf,
    /// Where it was set aside under `_unrouted/` if no tenant owns it.
    aside: PathBuf,
    path: PathBuf,
    size: u64,
    mtime: SystemTime,
}

/// A taken file: `folder/dir/name`.
#[derive(Debug, Clone, PartialEq)]
struct Taken {
    slug: String,
    folder: PathBuf,
    dir: &'static str,
    name: String,
}

/// What one look at the folders found.
#[derive(Debug, Default)]
struct Listing {
    incoming: Vec<Incoming>,
    taken: Vec<Taken>,
    expired: Vec<PathBuf>,
}

/// What a scan remembers between scans: files still settling.
#[derive(Debug, Default)]
pub struct ScanState {
    /// Path → (size, mtime, unchanged since).
    settling: HashMap<PathBuf, (u64, SystemTime, Instant)>,
    /// Paths a notification says were renamed into place.
    renamed: HashSet<PathBuf>,
}

impl ScanState {
    /// A notification said `path` was renamed into place: complete now.
    pub fn renamed_in(&mut self, path: PathBuf) {
        self.renamed.insert(path);
    }
}

impl DropFolder {
    /// From `[drop]` (`drop.folder` is already resolved by
    /// [`crate::config`]): creates the drop folder and the configured tenant
    /// folders, and makes their paths absolute, since upload rows name them.
    pub fn open(cfg: &DropConfig) -> Result<Self, FolderError> {
        let absolute = |dir: &str| -> Result<PathBuf, FolderError> {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
            dir.canonicalize().map_err(io("resolving", &dir))
        };
        let mut tenant_folders = BTreeMap::new();
        for (slug, dir) in &cfg.tenant_folders {
            tenant_folders.insert(slug.clone(), absolute(dir)?);
        }
        Ok(DropFolder {
            root: absolute(&cfg.folder)?,
            tenant_folders,
            settle: Duration::from_secs_f64(cfg.settle_seconds),
            rescan: Duration::from_secs(cfg.rescan_seconds),
            retention: (cfg.retention_days > 0)
                .then(|| Duration::from_secs(cfg.retention_days * 86_400)),
        })
    }

    /// The drop folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder a tenant's files are delivered to.
    pub fn tenant_folder(&self, slug: &str) -> PathBuf {
        self.tenant_folders
            .get(slug)
            .cloned()
            .unwrap_or_else(|| self.root.join(slug))
    }

    /// Every (slug, folder) that delivers files, and the files in the drop
    /// folder's own top level or in folders no valid slug names.
    fn list(&self, now: SystemTime) -> Result<Listing, FolderError> {
        let mut out = Listing::default();
        let mut folders: Vec<(String, PathBuf)> = self
            .tenant_folders
            .iter()
            .map(|(s, p)| (s.clone(), p.clone()))
            .collect();
        let unrouted = self.root.join(UNROUTED);
        let mut slug_dirs = Vec::new();
        for entry in read_dir(&self.root)? {
            let (name, path, kind) = entry;
            if name.starts_with('.') || name == UNROUTED {
                continue;
            }
            match kind {
                Kind::Dir if crate::validate::is_valid_slug(&name) => slug_dirs.push((name, path)),
                Kind::Dir => {
                    for (file, fpath, kind) in read_dir(&path)? {
                        if kind == Kind::File && !is_ignored_name(&file) {
                            out.incoming
                                .push(incoming(None, &path, &unrouted.join(&name), fpath)?);
                        }
                    }
                }
                Kind::File if !is_ignored_name(&name) => {
                    out.incoming
                        .push(incoming(None, &self.root, &unrouted, path)?);
                }
                _ => {}
            }
        }
        // A tenant with a configured folder may use `<root>/<slug>/` too.
        for (slug, path) in slug_dirs {
            if !folders.iter().any(|(_, p)| *p == path) {
                folders.push((slug, path));
            }
        }
        for (slug, folder) in folders {
            for (name, path, kind) in read_dir(&folder)? {
                if kind == Kind::File && !is_ignored_name(&name) {
                    let aside = unrouted.join(&slug);
                    out.incoming
                        .push(incoming(Some(slug.clone()), &folder, &aside, path)?);
                }
            }
            for dir in UPLOAD_DIRS {
                for (name, path, kind) in read_dir(&folder.join(dir))? {
                    if kind != Kind::File || is_ignored_name(&name) {
                        continue;
                    }
                    if let Some(keep) = self.retention.filter(|_| dir != PROCESSING) {
                        let stamp = std::fs::metadata(&path)
                            .and_then(|m| m.modified())
                            .unwrap_or(now);
                        if now.duration_since(stamp).unwrap_or_default() > keep {
                            out.expired.push(path);
                            continue;
                        }
                    }
                    // Only files in processing/ can still move: a file in
                    // processed/ or failed/ has an upload that ended, and a
                    // retry takes its file back to processing/ itself. So
                    // the database is asked only about those, however many
                    // files retention keeps.
                    if dir == PROCESSING {
                        out.taken.push(Taken {
                            slug: slug.clone(),
                            folder: folder.clone(),
                            dir,
                            name,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// One pass: takes complete files, records any taken file without an
    /// upload, moves files whose upload ended, applies retention. Returns
    /// when the next file still settling will be complete.
    pub async fn scan(
        self: &Arc<Self>,
        db: &DatabaseConnection,
        state: &mut ScanState,
    ) -> Result<Option<Duration>, FolderError> {
        let me = self.clone();
        let listing = tokio::task::spawn_blocking(move || me.list(SystemTime::now()))
            .await
            .expect("listing the drop folder panicked")?;

        let now = Instant::now();
        let mut ready = Vec::new();
        let mut next: Option<Duration> = None;
        let present: HashSet<&PathBuf> = listing.incoming.iter().map(|f| &f.path).collect();
        state.settling.retain(|p, _| present.contains(p));
        state.renamed.retain(|p| present.contains(p));
        for file in &listing.incoming {
            let renamed = state.renamed.contains(&file.path);
            let since = match state.settling.get(&file.path) {
                Some(&(size, mtime, since)) if size == file.size && mtime == file.mtime => since,
                _ => {
                    state
                        .settling
                        .insert(file.path.clone(), (file.size, file.mtime, now));
                    now
                }
            };
            let waited = now.duration_since(since);
            if renamed || waited >= self.settle {
                ready.push(file.clone());
            } else {
                let left = self.settle - waited;
                next = Some(next.map_or(left, |n| n.min(left)));
            }
        }

        let mut first_error = None;
        for file in ready {
            state.settling.remove(&file.path);
            state.renamed.remove(&file.path);
            if let Err(e) = self.take(db, &file).await {
                first_error.get_or_insert(e);
            }
        }
        let mut waiting = false;
        for taken in &listing.taken {
            match self.follow(db, taken).await {
                Ok(dir) => waiting |= dir == PROCESSING,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        // A file waits in processing/ for its upload to end, which no
        // notification announces: look again soon.
        if waiting {
            next = Some(next.map_or(FOLLOW_EVERY, |n| n.min(FOLLOW_EVERY)));
        }
        for path in listing.expired {
            match std::fs::remove_file(&path) {
                Ok(()) => events::drop_file(DropOutcome::Expired, "", &path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    first_error.get_or_insert(io("removing", &path)(e));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(next),
        }
    }

    /// Moves a complete file into `processing/` and records its upload, or
    /// sets it aside when no tenant owns its folder.
    async fn take(&self, db: &DatabaseConnection, file: &Incoming) -> Result<(), FolderError> {
        let tenant = match &file.slug {
            None => None,
            Some(slug) => match tenants::by_slug(db, slug).await {
                Ok(t) => Some(t),
                Err(TenantError::NotFound(_)) => None,
                Err(e) => return Err(e.into()),
            },
        };
        let Some(tenant) = tenant else {
            if let Some(to) = move_stamped(&file.path, &file.aside)? {
                events::drop_file(DropOutcome::SetAside, "", &to);
            }
            return Ok(());
        };
        let Some(to) = move_stamped(&file.path, &file.folder.join(PROCESSING))? else {
            return Ok(());
        };
        events::drop_file(DropOutcome::Taken, &tenant.slug, &to);
        self.record(
            db,
            tenant.id,
            &tenant.slug,
            &file.folder,
            &to,
            file.size,
            file.mtime,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        db: &DatabaseConnection,
        tenant_id: i64,
        slug: &str,
        folder: &Path,
        taken: &Path,
        size: u64,
        mtime: SystemTime,
    ) -> Result<(), FolderError> {
        let key = file_name(taken);
        let obj = ObjectCreated {
            bucket: folder.display().to_string(),
            key: key.clone(),
            size: i64::try_from(size).ok(),
            etag: None,
            version_id: None,
            // The taken name is unique per delivery: it is the identity.
            sequencer: Some(key.clone()),
            event_time: Some(DateTime::<Utc>::from(mtime)),
        };
        let id = super::record_upload(db, tenant_id, UploadSource::Folder, &obj).await?;
        events::upload_recorded(slug, id, &obj.bucket, &key);
        Ok(())
    }

    /// Puts a taken file where its upload's state says it belongs, and
    /// records the upload of a taken file that has none (a crash came
    /// between taking and recording). Returns the folder it is in now.
    async fn follow(
        &self,
        db: &DatabaseConnection,
        t: &Taken,
    ) -> Result<&'static str, FolderError> {
        let bucket = t.folder.display().to_string();
        // The newest: a retry is a second upload of the same file.
        let found = upload::Entity::find()
            .filter(upload::Column::Source.eq(UploadSource::Folder))
            .filter(upload::Column::Bucket.eq(bucket))
            .filter(upload::Column::ObjectKey.eq(t.name.clone()))
            .order_by_desc(upload::Column::Id)
            .one(db)
            .await?;
        let path = t.folder.join(t.dir).join(&t.name);
        let Some(found) = found else {
            if t.dir == PROCESSING {
                let meta = std::fs::metadata(&path).map_err(io("reading", &path))?;
                let tenant = match tenants::by_slug(db, &t.slug).await {
                    Ok(tenant) => tenant,
                    // The tenant was removed after the file was taken.
                    Err(TenantError::NotFound(_)) => {
                        let aside = self.root.join(UNROUTED).join(&t.slug);
                        if let Some(to) = move_stamped(&path, &aside)? {
                            events::drop_file(DropOutcome::SetAside, "", &to);
                        }
                        return Ok(UNROUTED);
                    }
                    Err(e) => return Err(e.into()),
                };
                let mtime = meta.modified().unwrap_or_else(|_| SystemTime::now());
                self.record(db, tenant.id, &t.slug, &t.folder, &path, meta.len(), mtime)
                    .await?;
            }
            return Ok(t.dir);
        };
        let (dir, outcome) = match found.state {
            UploadState::Succeeded | UploadState::Superseded => (PROCESSED, DropOutcome::Processed),
            UploadState::Failed => (FAILED, DropOutcome::Failed),
            _ => (PROCESSING, DropOutcome::Taken),
        };
        if dir == t.dir {
            return Ok(dir);
        }
        let to_dir = t.folder.join(dir);
        std::fs::create_dir_all(&to_dir).map_err(io("creating", &to_dir))?;
        let to = to_dir.join(&t.name);
        match std::fs::rename(&path, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(t.dir),
            Err(e) => return Err(io("moving", &path)(e)),
        }
        if dir != PROCESSING {
            // Retention counts from here, not from the delivery.
            touch(&to);
            events::drop_file(outcome, &t.slug, &to);
        }
        Ok(dir)
    }

    /// Runs until `cancel` fires: scans at start, on every notification and
    /// every `rescan_seconds`, and when a settling file's time is up.
    pub async fn run(
        self: Arc<Self>,
        db: DatabaseConnection,
        health: Arc<Health>,
        cancel: CancellationToken,
    ) {
        const LOOP: &str = "drop-folder";
        health.register(LOOP, self.rescan * 4 + Duration::from_secs(60));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let _watcher = match self.watch(tx) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, folder = %self.root.display(), "file-system notifications unavailable; relying on rescans");
                None
            }
        };
        tracing::info!(folder = %self.root.display(), "watching the drop folder");
        let mut state = ScanState::default();
        let mut backoff = Duration::ZERO;
        while !cancel.is_cancelled() {
            health.tick(LOOP);
            let wait = match self.scan(&db, &mut state).await {
                Ok(next) => {
                    backoff = Duration::ZERO;
                    next.map_or(self.rescan, |n| n.min(self.rescan))
                }
                Err(e) => {
                    events::intake_error(IntakeStage::Folder, &e);
                    backoff = (backoff * 2).clamp(Duration::from_millis(500), self.rescan);
                    backoff
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
                Some(first) = rx.recv() => {
                    // A burst (a slow write) is one wake-up.
                    let mut paths = vec![first];
                    let quiet = tokio::time::sleep(Duration::from_millis(100));
                    tokio::pin!(quiet);
                    loop {
                        tokio::select! {
                            _ = &mut quiet => break,
                            Some(p) = rx.recv() => paths.push(p),
                        }
                    }
                    for p in paths.into_iter().flatten() {
                        state.renamed_in(p);
                    }
                }
            }
        }
        health.deregister(LOOP);
        tracing::info!("drop folder stopped");
    }

    /// Watches the drop folder and the configured tenant folders. Each
    /// notification sends `Some(path)` for a file renamed into place and
    /// `None` for anything else (a wake-up).
    fn watch(
        &self,
        tx: tokio::sync::mpsc::UnboundedSender<Option<PathBuf>>,
    ) -> notify::Result<notify::RecommendedWatcher> {
        use notify::event::{ModifyKind, RenameMode};
        use notify::{EventKind, RecursiveMode, Watcher};
        let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(ev) = res else {
                let _ = tx.send(None);
                return;
            };
            match ev.kind {
                EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => {
                    // `Both` carries [from, to].
                    let _ = tx.send(ev.paths.last().cloned());
                }
                EventKind::Access(_) => {}
                _ => {
                    let _ = tx.send(None);
                }
            }
        })?;
        w.watch(&self.root, RecursiveMode::Recursive)?;
        for dir in self.tenant_folders.values() {
            w.watch(dir, RecursiveMode::Recursive)?;
        }
        Ok(w)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Other,
}

/// The entries of `dir` as (name, path, kind), without following symbolic
/// links; a missing folder is empty.
fn read_dir(dir: &Path) -> Result<Vec<(String, PathBuf, Kind)>, FolderError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(io("listing", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io("listing", dir))?;
        let kind = match entry.file_type() {
            Ok(t) if t.is_file() => Kind::File,
            Ok(t) if t.is_dir() => Kind::Dir,
            _ => Kind::Other,
        };
        // Names that are not UTF-8 cannot become upload keys; leave them.
        if let Ok(name) = entry.file_name().into_string() {
            out.push((name, entry.path(), kind));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn incoming(
    slug: Option<String>,
    folder: &Path,
    aside: &Path,
    path: PathBuf,
) -> Result<Incoming, FolderError> {
    let meta = std::fs::symlink_metadata(&path).map_err(io("reading", &path))?;
    Ok(Incoming {
        slug,
        folder: folder.to_path_buf(),
        aside: aside.to_path_buf(),
        size: meta.len(),
        mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        path,
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Moves `from` into `dir` under a name stamped with the time (so the same
/// name delivered twice is two files). `None` when `from` is gone (its
/// writer deleted it).
fn move_stamped(from: &Path, dir: &Path) -> Result<Option<PathBuf>, FolderError> {
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let name = file_name(from);
    let stamp = Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
    let mut to = dir.join(format!("{stamp}_{name}"));
    let mut n = 1;
    while to.exists() {
        n += 1;
        to = dir.join(format!("{stamp}-{n}_{name}"));
    }
    match std::fs::rename(from, &to) {
        Ok(()) => Ok(Some(to)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("moving", from)(e)),
    }
}

/// Sets a file's modification time to now; a failure only delays retention.
fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_writers_use_while_writing_are_ignored() {
        for name in [
            ".hr.csv",
            "hr.csv.part",
            "hr.CSV.TMP",
            "hr.csv.filepart",
            "hr.csv~",
            "hr.csv.crdownload",
        ] {
            assert!(is_ignored_name(name), "{name}");
        }
        for name in ["hr.csv", "employees-2026-12-03.csv", "part.csv", "tmp"] {
            assert!(!is_ignored_name(name), "{name}");
        }
    }

    fn folder(root: &Path) -> DropFolder {
        DropFolder {
            root: root.to_path_buf(),
            tenant_folders: BTreeMap::from([("beta".to_string(), root.join("elsewhere/beta"))]),
            settle: Duration::from_secs(1),
            rescan: Duration::from_secs(30),
            retention: Some(Duration::from_secs(86_400)),
        }
    }

    #[test]
    fn listing_sorts_files_into_tenants_taken_files_strays_and_expired_ones() {
        let root = std::env::temp_dir().join(format!("uf-drop-list-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let f = folder(&root);
        for (path, text) in [
            ("acme/hr.csv", "a"),
            ("acme/hr.csv.part", "partial"),
            ("acme/.hidden.csv", "h"),
            ("acme/processing/20261201T000000.000000Z_old.csv", "p"),
            ("acme/processed/20261130T000000.000000Z_done.csv", "d"),
            ("acme/failed/20261101T000000.000000Z_bad.csv", "f"),
            ("Not A Slug/x.csv", "x"),
            ("stray.csv", "s"),
            ("_unrouted/acme/y.csv", "u"),
            ("elsewhere/beta/b.csv", "b"),
        ] {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
        }
        std::os::unix::fs::symlink("/etc/passwd", root.join("acme/link.csv")).unwrap();
        // `failed/` file older than the retention, by its modification time.
        let old = SystemTime::now() - Duration::from_secs(3 * 86_400);
        std::fs::File::options()
            .append(true)
            .open(root.join("acme/failed/20261101T000000.000000Z_bad.csv"))
            .unwrap()
            .set_modified(old)
            .unwrap();

        let l = f.list(SystemTime::now()).unwrap();
        let mut incoming: Vec<(Option<&str>, String)> = l
            .incoming
            .iter()
            .map(|i| {
                (
                    i.slug.as_deref(),
                    i.path.strip_prefix(&root).unwrap().display().to_string(),
                )
            })
            .collect();
        incoming.sort();
        assert_eq!(
            incoming,
            vec![
                (None, "Not A Slug/x.csv".to_string()),
                (None, "stray.csv".to_string()),
                (Some("acme"), "acme/hr.csv".to_string()),
                (Some("beta"), "elsewhere/beta/b.csv".to_string()),
            ]
        );
        let stray = l
            .incoming
            .iter()
            .find(|i| i.slug.is_none() && i.path.ends_with("x.csv"));
        assert_eq!(stray.unwrap().aside, root.join("_unrouted/Not A Slug"));
        // Only processing/ is followed; processed/ and failed/ only expire.
        let taken: Vec<(&str, &str)> = l.taken.iter().map(|t| (t.dir, t.name.as_str())).collect();
        assert_eq!(taken, vec![(PROCESSING, "20261201T000000.000000Z_old.csv")]);
        assert_eq!(
            l.expired,
            vec![root.join("acme/failed/20261101T000000.000000Z_bad.csv")]
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_name_delivered_twice_is_taken_as_two_files() {
        let root = std::env::temp_dir().join(format!("uf-drop-stamp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let mut taken = Vec::new();
        for _ in 0..2 {
            std::fs::write(root.join("hr.csv"), "x").unwrap();
            taken.push(move_stamped(&root.join("hr.csv"), &root.join("processing")).unwrap());
        }
        assert_ne!(taken[0], taken[1]);
        assert!(taken.iter().all(|t| t.as_ref().unwrap().exists()));
        assert_eq!(move_stamped(&root.join("gone.csv"), &root).unwrap(), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
