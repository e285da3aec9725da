//! Parsing the bodies of queue messages into S3 object events.
//!
//! AWS delivers the same fact in several envelopes, and a queue may receive
//! any of them depending on how the bucket was wired:
//! - S3's own notification format (`{"Records": [...]}`), possibly several
//!   records per message, with keys URL-encoded the way HTML forms are
//!   (`+` is a space);
//! - the same, wrapped by SNS (`{"Type": "Notification", "Message": "<json>"}`);
//! - EventBridge (`{"detail-type": "Object Created", "source": "aws.s3"}`),
//!   whose keys are *not* URL-encoded;
//! - `s3:TestEvent`, sent once when a notification is configured.

use chrono::{DateTime, Utc};
use percent_encoding::percent_decode_str;
use serde::Deserialize;

pub use crate::upload::ObjectCreated;

/// What one queue message says.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// S3's configuration test message: acknowledge and ignore.
    TestEvent,
    /// One or more object events (any kind; only creations are uploads).
    Records(Vec<EventRecord>),
}

/// One record of a notification.
#[derive(Debug, Clone, PartialEq)]
pub enum EventRecord {
    /// An object was created or overwritten.
    Created(ObjectCreated),
    /// Some other S3 event (removal, restore, ...): not ours to act on.
    Other {
        /// The event name as given, e.g. `ObjectRemoved:Delete`.
        event_name: String,
    },
    /// An `ObjectCreated:Put` that only shadows another event for the same
    /// write: some S3-compatible stores (moto among them) send it beside the
    /// `ObjectCreated:CompleteMultipartUpload` of a multipart upload, a
    /// moment apart and without a sequencer. Real S3 never sends `Put` for
    /// an object with a multipart ETag (`<md5>-<parts>`).
    Shadow {
        /// The object's bucket and key, for the log.
        object: String,
    },
    /// A record we cannot use, with the reason.
    Invalid {
        /// Why it is unusable.
        reason: String,
    },
}

/// The message is not an S3 notification at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("not an S3 event notification: {0}")]
pub struct NotAnS3Event(pub String);

/// Parses a queue message body.
pub fn parse_message(body: &str) -> Result<Notification, NotAnS3Event> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| NotAnS3Event(format!("body is not JSON ({e})")))?;
    parse_value(&value, 0)
}

fn parse_value(value: &serde_json::Value, depth: u8) -> Result<Notification, NotAnS3Event> {
    let obj = value
        .as_object()
        .ok_or_else(|| NotAnS3Event("body is not a JSON object".into()))?;

    if obj.get("Event").and_then(|e| e.as_str()) == Some("s3:TestEvent") {
        return Ok(Notification::TestEvent);
    }
    if let Some(records) = obj.get("Records") {
        let records = records
            .as_array()
            .ok_or_else(|| NotAnS3Event("\"Records\" is not an array".into()))?;
        return Ok(Notification::Records(
            records.iter().map(parse_s3_record).collect(),
        ));
    }
    if obj.get("Type").and_then(|t| t.as_str()) == Some("Notification") {
        // SNS envelope: the S3 notification is a JSON string inside. One
        // level only; SNS does not nest.
        if depth > 0 {
            return Err(NotAnS3Event("nested SNS envelope".into()));
        }
        let inner = obj
            .get("Message")
            .and_then(|m| m.as_str())
            .ok_or_else(|| NotAnS3Event("SNS notification without a Message".into()))?;
        let inner: serde_json::Value = serde_json::from_str(inner)
            .map_err(|e| NotAnS3Event(format!("SNS Message is not JSON ({e})")))?;
        return parse_value(&inner, depth + 1);
    }
    if obj.get("source").and_then(|s| s.as_str()) == Some("aws.s3") && obj.contains_key("detail") {
        return Ok(Notification::Records(vec![parse_eventbridge(value)]));
    }
    Err(NotAnS3Event(
        "no Records, SNS envelope, EventBridge detail or test event".into(),
    ))
}

#[derive(Deserialize)]
struct S3Record {
    #[serde(rename = "eventName", default)]
    event_name: String,
    #[serde(rename = "eventTime", default)]
    event_time: Option<String>,
    s3: Option<S3Entity>,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: S3Bucket,
    object: S3Object,
}

#[derive(Deserialize)]
struct S3Bucket {
    name: String,
}

#[derive(Deserialize)]
struct S3Object {
    key: String,
    size: Option<i64>,
    #[serde(rename = "eTag")]
    etag: Option<String>,
    #[serde(rename = "versionId")]
    version_id: Option<String>,
    sequencer: Option<String>,
}

fn parse_s3_record(value: &serde_json::Value) -> EventRecord {
    let record: S3Record = match serde_json::from_value(value.clone()) {
        Ok(r) => r,
        Err(e) => {
            return EventRecord::Invalid {
                reason: format!("malformed S3 record: {e}"),
            };
        }
    };
    // "ObjectCreated:Put", or with the "s3:" prefix some tools add.
    let name = record.event_name.trim_start_matches("s3:");
    if !name.starts_with("ObjectCreated:") {
        return EventRecord::Other {
            event_name: record.event_name,
        };
    }
    let Some(s3) = record.s3 else {
        return EventRecord::Invalid {
            reason: "ObjectCreated record without \"s3\"".into(),
        };
    };
    let key = match decode_form_key(&s3.object.key) {
        Ok(k) => k,
        Err(reason) => return EventRecord::Invalid { reason },
    };
    let unordered = s3.object.sequencer.as_deref().unwrap_or("").is_empty()
        && s3.object.version_id.as_deref().unwrap_or("").is_empty();
    if unordered && name == "ObjectCreated:Put" && is_multipart_etag(s3.object.etag.as_deref()) {
        return EventRecord::Shadow {
            object: format!("{}/{key}", s3.bucket.name),
        };
    }
    EventRecord::Created(ObjectCreated {
        bucket: s3.bucket.name,
        key,
        size: s3.object.size,
        etag: s3.object.etag.map(|e| e.trim_matches('"').to_string()),
        version_id: s3.object.version_id,
        sequencer: s3.object.sequencer,
        event_time: record.event_time.as_deref().and_then(parse_time),
    })
}

#[derive(Deserialize)]
struct EbEvent {
    #[serde(rename = "detail-type", default)]
    detail_type: String,
    time: Option<serde_json::Value>,
    detail: EbDetail,
}

#[derive(Deserialize)]
struct EbDetail {
    bucket: S3Bucket,
    object: EbObject,
}

#[derive(Deserialize)]
struct EbObject {
    key: String,
    size: Option<i64>,
    etag: Option<String>,
    #[serde(rename = "version-id")]
    version_id: Option<String>,
    sequencer: Option<String>,
}

fn parse_eventbridge(value: &serde_json::Value) -> EventRecord {
    let ev: EbEvent = match serde_json::from_value(value.clone()) {
        Ok(e) => e,
        Err(e) => {
            return EventRecord::Invalid {
                reason: format!("malformed EventBridge event: {e}"),
            };
        }
    };
    if ev.detail_type != "Object Created" {
        return EventRecord::Other {
            event_name: ev.detail_type,
        };
    }
    let event_time = match ev.time {
        Some(serde_json::Value::String(s)) => parse_time(&s),
        Some(serde_json::Value::Number(n)) => n
            .as_f64()
            .and_then(|secs| DateTime::from_timestamp_millis((secs * 1000.0) as i64)),
        _ => None,
    };
    EventRecord::Created(ObjectCreated {
        bucket: ev.detail.bucket.name,
        // EventBridge carries the key as stored, not URL-encoded.
        key: ev.detail.object.key,
        size: ev.detail.object.size,
        etag: ev
            .detail
            .object
            .etag
            .map(|e| e.trim_matches('"').to_string()),
        version_id: ev.detail.object.version_id,
        sequencer: ev.detail.object.sequencer,
        event_time,
    })
}

/// A multipart upload's ETag: the hex MD5 of the parts' MD5s, a dash and
/// the number of parts.
fn is_multipart_etag(etag: Option<&str>) -> bool {
    let Some((md5, parts)) = etag
        .map(|e| e.trim_matches('"'))
        .and_then(|e| e.split_once('-'))
    else {
        return false;
    };
    md5.len() == 32
        && md5.bytes().all(|b| b.is_ascii_hexdigit())
        && !parts.is_empty()
        && parts.bytes().all(|b| b.is_ascii_digit())
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Decodes an S3-notification key: `application/x-www-form-urlencoded`, so
/// `+` is a space and `%2B` a plus.
pub fn decode_form_key(raw: &str) -> Result<String, String> {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| format!("object key {raw:?} does not decode to UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3_body(key: &str) -> String {
        format!(
            r#"{{"Records":[{{"eventVersion":"2.1","eventSource":"aws:s3","eventTime":"2026-11-01T02:00:00.000Z",
            "eventName":"ObjectCreated:Put","s3":{{"bucket":{{"name":"feeds"}},
            "object":{{"key":"{key}","size":42,"eTag":"abc","sequencer":"0A1B"}}}}}}]}}"#
        )
    }

    fn only_created(n: Notification) -> ObjectCreated {
        match n {
            Notification::Records(mut r) if r.len() == 1 => match r.remove(0) {
                EventRecord::Created(c) => c,
                other => panic!("not a creation: {other:?}"),
            },
            other => panic!("unexpected: {other:?}"),
        }
    }

    #[test]
    fn plain_s3_event_decodes_plus_as_space_and_percent_escapes() {
        let c = only_created(parse_message(&s3_body("acme/HR+export%2B2026%2F11.csv")).unwrap());
        assert_eq!(c.bucket, "feeds");
        assert_eq!(c.key, "acme/HR export+2026/11.csv");
        assert_eq!(c.size, Some(42));
        assert_eq!(c.identity(), "s:0A1B");
    }

    #[test]
    fn several_records_in_one_message_are_all_returned() {
        let body = r#"{"Records":[
            {"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"a/1.csv"}}},
            {"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"b"},"object":{"key":"a/2.csv"}}},
            {"eventName":"ObjectCreated:CompleteMultipartUpload","s3":{"bucket":{"name":"b"},"object":{"key":"a/3.csv"}}}
        ]}"#;
        let Notification::Records(r) = parse_message(body).unwrap() else {
            panic!()
        };
        assert_eq!(r.len(), 3);
        assert!(matches!(&r[0], EventRecord::Created(c) if c.key == "a/1.csv"));
        assert!(
            matches!(&r[1], EventRecord::Other { event_name } if event_name == "ObjectRemoved:Delete")
        );
        assert!(matches!(&r[2], EventRecord::Created(c) if c.key == "a/3.csv"));
    }

    #[test]
    fn sns_wrapped_event_is_unwrapped() {
        let inner = s3_body("acme/users.csv");
        let body =
            serde_json::json!({"Type":"Notification","MessageId":"m","Message":inner}).to_string();
        let c = only_created(parse_message(&body).unwrap());
        assert_eq!(c.key, "acme/users.csv");
    }

    #[test]
    fn eventbridge_event_keeps_key_verbatim() {
        let body = r#"{"version":"0","id":"x","detail-type":"Object Created","source":"aws.s3",
            "time":"2026-11-01T02:00:00Z","detail":{"bucket":{"name":"feeds"},
            "object":{"key":"acme/a+b c.csv","size":9,"etag":"e1","version-id":"v7","sequencer":"00F"}}}"#;
        let c = only_created(parse_message(body).unwrap());
        assert_eq!(c.key, "acme/a+b c.csv");
        assert_eq!(c.identity(), "v:v7");
    }

    #[test]
    fn test_event_is_recognised_directly_and_through_sns() {
        let t = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-01T00:00:00.000Z","Bucket":"feeds"}"#;
        assert_eq!(parse_message(t).unwrap(), Notification::TestEvent);
        let wrapped = serde_json::json!({"Type":"Notification","Message":t}).to_string();
        assert_eq!(parse_message(&wrapped).unwrap(), Notification::TestEvent);
    }

    #[test]
    fn non_s3_messages_are_errors_not_panics() {
        for body in [
            "",
            "null",
            "[]",
            "hello",
            r#"{"foo":1}"#,
            r#"{"Records":5}"#,
            r#"{"Type":"Notification","Message":"not json"}"#,
        ] {
            assert!(parse_message(body).is_err(), "{body:?} should be rejected");
        }
    }

    fn put_at(time: &str, etag: &str) -> String {
        format!(
            r#"{{"Records":[{{"eventName":"ObjectCreated:Put","eventTime":"{time}",
            "s3":{{"bucket":{{"name":"b"}},"object":{{"key":"a/x.csv","eTag":"\"{etag}\""}}}}}}]}}"#
        )
    }

    #[test]
    fn identity_without_sequencer_or_version_is_the_etag_at_the_event_time() {
        let c = only_created(parse_message(&put_at("2026-11-01T02:00:00.123Z", "e1")).unwrap());
        assert_eq!(c.etag.as_deref(), Some("e1"));
        assert_eq!(c.identity(), "e:e1@2026-11-01T02:00:00.123Z");
    }

    #[test]
    fn the_same_bytes_uploaded_again_are_a_new_identity_and_a_redelivery_is_not() {
        let day1 = only_created(parse_message(&put_at("2026-11-01T02:00:00.123Z", "e1")).unwrap());
        let again = only_created(parse_message(&put_at("2026-11-01T02:00:00.123Z", "e1")).unwrap());
        let day3 = only_created(parse_message(&put_at("2026-11-03T02:00:00.456Z", "e1")).unwrap());
        assert_eq!(day1.identity(), again.identity());
        assert_ne!(day1.identity(), day3.identity());
    }

    #[test]
    fn a_put_with_a_multipart_etag_and_no_sequencer_shadows_the_complete_event() {
        let etag = "3c553fcdf6a3964f0213d3a8dc3793d1-3";
        let Notification::Records(r) =
            parse_message(&put_at("2026-11-01T02:00:00.123Z", etag)).unwrap()
        else {
            panic!()
        };
        assert!(matches!(&r[0], EventRecord::Shadow { .. }), "{r:?}");
        let complete = put_at("2026-11-01T02:00:00.124Z", etag)
            .replace("ObjectCreated:Put", "ObjectCreated:CompleteMultipartUpload");
        assert!(
            only_created(parse_message(&complete).unwrap())
                .identity()
                .starts_with("e:")
        );
        // With a sequencer (real S3), a Put is always a real write.
        let sequenced = put_at("2026-11-01T02:00:00.123Z", etag)
            .replace(r#""eTag""#, r#""sequencer":"0A","eTag""#);
        assert_eq!(
            only_created(parse_message(&sequenced).unwrap()).identity(),
            "s:0A"
        );
        assert!(!is_multipart_etag(Some("60b725f10c9c85c70d97880dfe8191b3")));
        assert!(!is_multipart_etag(Some("abc-3")));
    }

    #[test]
    fn key_that_decodes_to_invalid_utf8_is_an_invalid_record() {
        let Notification::Records(r) = parse_message(&s3_body("acme/%FF.csv")).unwrap() else {
            panic!()
        };
        assert!(matches!(&r[0], EventRecord::Invalid { .. }));
    }

    // Property tests (issue 5's fuzzing): whatever arrives on the queue, the
    // parser answers with a notification or a refusal, never a panic. 256
    // cases each in the test suite; longer on demand with, for example,
    // `PROPTEST_CASES=100000 cargo test -p userfeed never_panics`.
    mod fuzz {
        use proptest::prelude::*;

        use super::super::{decode_form_key, parse_message};

        fn record(name: &str, bucket: &str, key: &str, seq: &str, size: i64) -> serde_json::Value {
            serde_json::json!({
                "eventName": name, "eventTime": "2026-11-01T00:00:00Z",
                "s3": {"bucket": {"name": bucket},
                       "object": {"key": key, "sequencer": seq, "size": size}}
            })
        }

        proptest! {
            #[test]
            fn any_message_body_never_panics(body in any::<String>()) {
                let _ = parse_message(&body);
            }

            #[test]
            fn s3_shaped_events_with_arbitrary_fields_never_panic(
                name in prop_oneof![Just("ObjectCreated:Put".to_string()), ".{0,30}"],
                bucket in ".{0,40}",
                key in "(%[0-9a-fA-F]{0,2}|\\+|/|\\.|[a-z]|.){0,60}",
                seq in ".{0,20}",
                size in any::<i64>(),
                wrap in 0..3u8,
            ) {
                let inner = serde_json::json!({
                    "Records": [record(&name, &bucket, &key, &seq, size)]
                })
                .to_string();
                let body = match wrap {
                    // Directly from S3, through SNS, or as a bare string.
                    0 => inner,
                    1 => serde_json::json!({"Type": "Notification", "Message": inner}).to_string(),
                    _ => serde_json::Value::String(inner).to_string(),
                };
                let _ = parse_message(&body);
            }

            #[test]
            fn form_encoded_keys_decode_or_are_refused_and_never_panic(
                raw in "(%[0-9a-fA-F]{0,2}|\\+|.){0,80}"
            ) {
                if let Ok(key) = decode_form_key(&raw) {
                    // Decoding never makes a key longer.
                    prop_assert!(key.len() <= raw.len());
                }
            }
        }
    }
}
