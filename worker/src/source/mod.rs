//! Where upload bodies come from. [`ObjectReader`] is the seam: S3 today, a
//! local drop folder or another system's export later, each an addition.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};

pub mod local;
pub mod s3;
pub mod stored;

/// Which object an upload refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// Where the upload came from.
    pub source: crate::upload::UploadSource,
    /// Bucket (or, for other sources, their container).
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Exact version, when the bucket is versioned.
    pub version_id: Option<String>,
    /// The ETag the notification announced: reading a different one means
    /// the object was overwritten since.
    pub etag: Option<String>,
}

/// An open object body, streamed.
pub struct ObjectBody {
    /// The bytes, read incrementally.
    pub reader: Pin<Box<dyn AsyncRead + Send>>,
    /// Size in bytes, when known.
    pub size: Option<u64>,
}

/// Why an object could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The object no longer exists (deleted, expired, or a stale event).
    #[error("the object {key:?} no longer exists in the bucket")]
    NotFound {
        /// The key asked for.
        key: String,
    },
    /// The object was overwritten after the notification; the newer version
    /// has its own notification and upload.
    #[error(
        "the object {key:?} was overwritten after this notification; the newer upload applies it"
    )]
    Superseded {
        /// The key asked for.
        key: String,
    },
    /// Permission denied: a configuration problem, not a data problem.
    #[error("access to the object {key:?} was denied: {message}")]
    Denied {
        /// The key asked for.
        key: String,
        /// The service's message.
        message: String,
    },
    /// Anything that may work on retry (network, throttling, 5xx).
    #[error("reading the object failed: {0}")]
    Transient(String),
}

impl SourceError {
    /// Whether a retry could succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, SourceError::Transient(_))
    }
}

/// Opens upload bodies for streaming.
#[async_trait]
pub trait ObjectReader: Send + Sync {
    /// Opens the object for reading from the start.
    async fn open(&self, object: &ObjectRef) -> Result<ObjectBody, SourceError>;
}

/// Opens each upload with the reader of its source (`s3`, `folder`,
/// `local`), so one worker pool runs uploads of every source.
#[derive(Clone, Default)]
pub struct ReaderBySource {
    readers: Vec<(
        crate::upload::UploadSource,
        std::sync::Arc<dyn ObjectReader>,
    )>,
}

impl ReaderBySource {
    /// No readers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads uploads of `source` with `reader`.
    pub fn with(
        mut self,
        source: crate::upload::UploadSource,
        reader: std::sync::Arc<dyn ObjectReader>,
    ) -> Self {
        self.readers.push((source, reader));
        self
    }
}

#[async_trait]
impl ObjectReader for ReaderBySource {
    async fn open(&self, object: &ObjectRef) -> Result<ObjectBody, SourceError> {
        match self.readers.iter().find(|(s, _)| *s == object.source) {
            Some((_, reader)) => reader.open(object).await,
            // Permanent: this process cannot read that source at all.
            None => Err(SourceError::Denied {
                key: object.key.clone(),
                message: format!("this process has no reader for source {:?}", object.source),
            }),
        }
    }
}

/// Fails a read that makes no progress for `limit`.
///
/// A stalled body would otherwise hold its upload forever: the heartbeat
/// keeps renewing the lease, so no other worker would ever take over, and the
/// tenant's later files would wait behind it. A stall becomes an I/O error,
/// which the pipeline treats as transient (the upload is retried).
pub struct IdleTimeout<R> {
    inner: R,
    limit: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<R> IdleTimeout<R> {
    /// Wraps `inner`; each successful read restarts the clock.
    pub fn new(inner: R, limit: Duration) -> Self {
        IdleTimeout {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for IdleTimeout<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                let next = Instant::now() + self.limit;
                self.deadline.as_mut().reset(next);
                Poll::Ready(r)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no data received for {} s", self.limit.as_secs()),
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// An [`ObjectReader`] that counts the bytes read through it, for a
/// progress display (`userfeed import`).
pub struct CountingReader {
    inner: std::sync::Arc<dyn ObjectReader>,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl CountingReader {
    /// Wraps `inner`; the counter returned is the bytes read so far.
    pub fn new(
        inner: std::sync::Arc<dyn ObjectReader>,
    ) -> (Self, std::sync::Arc<std::sync::atomic::AtomicU64>) {
        let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        (
            CountingReader {
                inner,
                read: read.clone(),
            },
            read,
        )
    }
}

#[async_trait]
impl ObjectReader for CountingReader {
    async fn open(&self, object: &ObjectRef) -> Result<ObjectBody, SourceError> {
        let body = self.inner.open(object).await?;
        Ok(ObjectBody {
            reader: Box::pin(Counting {
                inner: body.reader,
                read: self.read.clone(),
            }),
            size: body.size,
        })
    }
}

struct Counting {
    inner: Pin<Box<dyn AsyncRead + Send>>,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = self.inner.as_mut().poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.read.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out_and_a_flowing_one_does_not() {
        // A reader that never produces data.
        let (_keep_open, stalled) = tokio::io::duplex(8);
        let mut r = IdleTimeout::new(stalled, Duration::from_secs(60));
        let err = r.read_u8().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);

        let mut ok = IdleTimeout::new(&b"abc"[..], Duration::from_secs(60));
        let mut s = String::new();
        ok.read_to_string(&mut s).await.unwrap();
        assert_eq!(s, "abc");
    }
}
