//! [`ObjectReader`] over Amazon S3 (or an S3-compatible endpoint).

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use super::{ObjectBody, ObjectReader, ObjectRef, SourceError};

/// A body that delivers nothing for this long is abandoned (and the upload
/// retried): S3 sends data continuously once a GET has started.
const READ_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Streams objects from S3 with `GetObject`.
#[derive(Clone)]
pub struct S3Reader {
    client: aws_sdk_s3::Client,
}

impl S3Reader {
    /// Wraps a client.
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        S3Reader { client }
    }
}

#[async_trait]
impl ObjectReader for S3Reader {
    async fn open(&self, object: &ObjectRef) -> Result<ObjectBody, SourceError> {
        if object.source != crate::upload::UploadSource::S3 {
            // A `userfeed import` whose process died: its file is on the
            // machine it ran on, not in S3, and a daemon must not guess.
            return Err(SourceError::Denied {
                key: object.key.clone(),
                message: format!(
                    "this is a {:?} upload; only the `userfeed import` that started it can read its file. Run the import again",
                    object.source
                ),
            });
        }
        let mut req = self
            .client
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key);
        if let Some(v) = &object.version_id {
            req = req.version_id(v);
        } else if let Some(etag) = &object.etag {
            // Unversioned bucket: refuse a body other than the one announced,
            // so an old notification never applies a newer file out of order.
            req = req.if_match(format!("\"{etag}\""));
        }
        match req.send().await {
            Ok(out) => Ok(ObjectBody {
                size: out.content_length().and_then(|n| u64::try_from(n).ok()),
                reader: Box::pin(super::IdleTimeout::new(
                    out.body.into_async_read(),
                    READ_IDLE_TIMEOUT,
                )),
            }),
            Err(err) => Err(classify(err, &object.key)),
        }
    }
}

fn classify<E: ProvideErrorMetadata + std::fmt::Debug>(
    err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    key: &str,
) -> SourceError {
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().unwrap_or_default().to_string();
    let key = key.to_string();
    match (status, code.as_str()) {
        (_, "NoSuchKey") | (Some(404), _) => SourceError::NotFound { key },
        (_, "PreconditionFailed") | (Some(412), _) => SourceError::Superseded { key },
        (_, "AccessDenied") | (Some(403), _) => SourceError::Denied {
            key,
            message: err.message().unwrap_or("access denied").to_string(),
        },
        _ => SourceError::Transient(format!(
            "{}{}",
            if code.is_empty() {
                String::new()
            } else {
                format!("{code}: ")
            },
            err.message()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{err:?}"))
        )),
    }
}
