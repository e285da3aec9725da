//! An object version that becomes an upload.

use chrono::{DateTime, Utc};

/// An `ObjectCreated` event, keys decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectCreated {
    /// Bucket name.
    pub bucket: String,
    /// Object key, decoded to the exact key S3 stores.
    pub key: String,
    /// Object size in bytes, when given.
    pub size: Option<i64>,
    /// ETag without quotes, when given.
    pub etag: Option<String>,
    /// Version ID, for versioned buckets.
    pub version_id: Option<String>,
    /// S3's per-key ordering token, when given.
    pub sequencer: Option<String>,
    /// When S3 says the event happened.
    pub event_time: Option<DateTime<Utc>>,
}

impl ObjectCreated {
    /// The identity of this object version, used to make recording idempotent:
    /// redeliveries of one event share it; a new upload of the same key does
    /// not. Real S3 always sends a sequencer (unique per write of a key) and,
    /// for versioned buckets, a version ID. Without either (S3-compatible
    /// stores and emulators) the ETag *and the event time* stand in: a
    /// redelivery repeats both, while the same bytes uploaded again under the
    /// same key are a new write with a new time, and must apply again (day 1
    /// file A, day 2 file B, day 3 file A again must end at A). The second
    /// event such stores send for one multipart upload is dropped as a
    /// `EventRecord::Shadow` (`intake::event`) before it gets here.
    pub fn identity(&self) -> String {
        if let Some(v) = self
            .version_id
            .as_deref()
            .filter(|v| !v.is_empty() && *v != "null")
        {
            return format!("v:{v}");
        }
        if let Some(s) = self.sequencer.as_deref().filter(|s| !s.is_empty()) {
            return format!("s:{s}");
        }
        let time = self
            .event_time
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            .unwrap_or_default();
        match self.etag.as_deref().filter(|e| !e.is_empty()) {
            Some(etag) => format!("e:{etag}@{time}"),
            // Nothing identifies the bytes: the event time alone.
            None => format!("t:{time}"),
        }
    }
}
