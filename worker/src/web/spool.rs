//! File bodies of the API and the screens: a request body is streamed to a
//! spool file (in the system's temporary directory) as it arrives, with
//! `limits.max_object_bytes` enforced chunk by chunk, so no file is ever
//! held in memory whole; the spool file is deleted when the request ends.

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
    while let Some(chunk) = stream.next().await {
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
