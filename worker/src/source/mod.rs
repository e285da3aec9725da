//! Where upload bodies come from. [`ObjectReader`] is the seam: S3 today, a
//! local drop folder or another system's export later, each an addition.

use std::pin::Pin;

use async_trait::async_trait;
use tokio::io::AsyncRead;

pub mod s3;

/// Which object an upload refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
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
