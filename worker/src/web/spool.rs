//! File bodies of the API and the screens: a request body is streamed to a
//! spool file (in the system's temporary directory) as it arrives, with
//! `limits.max_object_bytes` enforced chunk by chunk, so no file is ever
//! held in memory whole; the spool file is deleted when the request ends.
//!
//! A body must also keep a minimum pace ([`Pace`]): after a grace period,
//! the bytes received must keep up with `api.min_upload_bytes_per_second`,
//! so a client trickling a file (or stalling mid-way) is cut with a 408
//! instead of holding a task, a spool file and a connection for ever.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::http::StatusCode;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::problem::Problem;
use crate::intake::manual::ManualUploads;
use crate::parse::Limits;

/// What the file endpoints need beyond the database.
#[derive(Clone)]
pub struct Files {
    /// The limits a file is read with (`[limits]`).
    pub limits: Limits,
    /// Rows per batch for previews (`jobs.batch_size`).
    pub batch_size: usize,
    /// Where request bodies are spooled.
    pub spool: PathBuf,
    /// Where manual uploads go.
    pub deliver: ManualUploads,
    /// The slowest a body may arrive.
    pub pace: Pace,
}

/// The slowest a file body may arrive: `grace` plus a second per
/// `min_bytes_per_second` of what has arrived so far.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Time allowed before the first byte counts.
    pub grace: std::time::Duration,
    /// The minimum average rate after it.
    pub min_bytes_per_second: u64,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            grace: std::time::Duration::from_secs(10),
            min_bytes_per_second: 8192,
        }
    }
}

impl Pace {
    /// How long, from the start, a body that has sent `bytes` may take to
    /// send its next chunk.
    fn allowed(&self, bytes: u64) -> std::time::Duration {
        self.grace
            + std::time::Duration::from_secs_f64(
                bytes as f64 / self.min_bytes_per_second.max(1) as f64,
            )
    }
}

impl Files {
    /// Default limits, spooling to the system's temporary directory, and
    /// no intake for manual uploads.
    pub fn new(limits: Limits, batch_size: usize) -> Self {
        Files {
            limits,
            batch_size,
            spool: std::env::temp_dir(),
            deliver: ManualUploads::default(),
            pace: Pace::default(),
        }
    }
}

/// A request body on disk, deleted when dropped.
pub struct Spooled {
    pub path: PathBuf,
    pub bytes: u64,
}

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Streams `body` to a spool file, refusing it (413) once it passes
/// `limit` bytes.
pub async fn spool(files: &Files, body: Body, limit: u64) -> Result<Spooled, Problem> {
    spool_stream(files, body.into_data_stream(), limit).await
}

/// [`spool`] for any stream of chunks (a multipart form's file field).
pub async fn spool_stream<S, E>(
    files: &Files,
    mut stream: S,
    limit: u64,
) -> Result<Spooled, Problem>
where
    S: futures::Stream<Item = Result<axum::body::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = files.spool.join(format!(
        "userfeed-api-{}-{}.csv",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let unavailable = |e: std::io::Error| {
        tracing::warn!(error = %e, "spooling a request body failed");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the file could not be stored for reading; try again",
        )
    };
    let mut file = tokio::fs::File::create(&path).await.map_err(unavailable)?;
    let mut spooled = Spooled { path, bytes: 0 };
    let started = tokio::time::Instant::now();
    loop {
        let until = started + files.pace.allowed(spooled.bytes);
        let Ok(next) = tokio::time::timeout_at(until, stream.next()).await else {
            return Err(Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "too-slow",
                format!(
                    "the file arrived too slowly (slower than {} bytes a second); send it again",
                    files.pace.min_bytes_per_second
                ),
            ));
        };
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-request",
                format!("the request body could not be read: {e}"),
            )
        })?;
        spooled.bytes += chunk.len() as u64;
        if spooled.bytes > limit {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!(
                    "the file is larger than the limit of {limit} bytes (limits.max_object_bytes)"
                ),
            ));
        }
        file.write_all(&chunk).await.map_err(unavailable)?;
    }
    file.flush().await.map_err(unavailable)?;
    Ok(spooled)
}
