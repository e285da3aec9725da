//! `userfeed bucket setup BUCKET`: makes a feed bucket ready, idempotently.
//!
//! Four settings, each from its document in `deploy/aws/` (the one home of
//! what they say; this module only fills in the bucket and the queue):
//! - the intake queue's policy lets the bucket send to it
//!   (`queue-policy.json`); real S3 checks this when the notification is set;
//! - every `ObjectCreated` goes to the intake queue
//!   (`bucket-notification.json`);
//! - drops expire after 90 days and stale multipart uploads are aborted
//!   (`bucket-lifecycle.json`);
//! - nothing can be made public (`bucket-public-access-block.json`).
//!
//! Each step reads what is there first and writes only what differs, so a
//! second run reports "already so" for every step. Settings that are not
//! Userfeed's (other notification targets, other lifecycle rules, other
//! queue policy statements) are kept.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, Event, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, NotificationConfiguration,
    PublicAccessBlockConfiguration, QueueConfiguration,
};
use serde::{Deserialize, Serialize};

const NOTIFICATION: &str = include_str!("../../deploy/aws/bucket-notification.json");
const LIFECYCLE: &str = include_str!("../../deploy/aws/bucket-lifecycle.json");
const PUBLIC_ACCESS: &str = include_str!("../../deploy/aws/bucket-public-access-block.json");
const QUEUE_POLICY: &str = include_str!("../../deploy/aws/queue-policy.json");

/// Why a bucket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    /// No intake queue to notify.
    #[error("bucket setup needs the intake queue: set intake.queue_url (or pass --queue-url)")]
    NoQueue,
    /// An AWS call failed.
    #[error("{call} failed: {message}")]
    Aws {
        /// The operation.
        call: &'static str,
        /// What AWS said.
        message: String,
    },
}

fn aws<E, R>(call: &'static str) -> impl Fn(aws_sdk_s3::error::SdkError<E, R>) -> BucketError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    move |e| BucketError::Aws {
        call,
        message: DisplayErrorContext(e).to_string(),
    }
}

/// What one step found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The setting was missing or different and has been written.
    Applied,
    /// It was already so; nothing was written.
    AlreadySo,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Applied => "applied",
            Step::AlreadySo => "already so",
        })
    }
}

/// What `bucket setup` did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SetupReport {
    /// The bucket.
    pub bucket: String,
    /// The intake queue's ARN.
    pub queue_arn: String,
    /// The queue policy statement letting the bucket send.
    pub queue_policy: Step,
    /// `ObjectCreated` notifications to the queue.
    pub notification: Step,
    /// The 90-day expiry and multipart clean-up rules.
    pub lifecycle: Step,
    /// Blocked public access.
    pub public_access: Step,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NotificationDoc {
    queue_configurations: Vec<QueueDoc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct QueueDoc {
    id: String,
    events: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LifecycleDoc {
    rules: Vec<RuleDoc>,
}

/// The parts of a lifecycle rule Userfeed sets, in a form both the shipped
/// document and S3's answer reduce to, so "already so" compares meaning and
/// not representation.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
struct RuleDoc {
    #[serde(rename = "ID")]
    id: String,
    status: String,
    filter: FilterDoc,
    expiration: Option<DaysDoc>,
    abort_incomplete_multipart_upload: Option<AbortDoc>,
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
struct FilterDoc {
    prefix: String,
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
struct DaysDoc {
    days: i32,
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
struct AbortDoc {
    days_after_initiation: i32,
}

#[derive(Deserialize, Debug, PartialEq)]
#[serde(rename_all = "PascalCase")]
struct PublicAccessDoc {
    block_public_acls: bool,
    ignore_public_acls: bool,
    block_public_policy: bool,
    restrict_public_buckets: bool,
}

impl RuleDoc {
    fn from_s3(r: &LifecycleRule) -> RuleDoc {
        let prefix = r
            .filter()
            .and_then(|f| f.prefix())
            .or({
                #[allow(deprecated)]
                r.prefix()
            })
            .unwrap_or_default();
        RuleDoc {
            id: r.id().unwrap_or_default().to_string(),
            status: r.status().as_str().to_string(),
            filter: FilterDoc {
                prefix: prefix.to_string(),
            },
            expiration: r
                .expiration()
                .and_then(|e| e.days())
                .map(|days| DaysDoc { days }),
            abort_incomplete_multipart_upload: r
                .abort_incomplete_multipart_upload()
                .and_then(|a| a.days_after_initiation())
                .map(|days_after_initiation| AbortDoc {
                    days_after_initiation,
                }),
        }
    }

    fn to_s3(&self) -> Result<LifecycleRule, BucketError> {
        let mut b = LifecycleRule::builder()
            .id(&self.id)
            .status(ExpirationStatus::from(self.status.as_str()))
            .filter(
                LifecycleRuleFilter::builder()
                    .prefix(&self.filter.prefix)
                    .build(),
            );
        if let Some(e) = &self.expiration {
            b = b.expiration(LifecycleExpiration::builder().days(e.days).build());
        }
        if let Some(a) = &self.abort_incomplete_multipart_upload {
            b = b.abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder()
                    .days_after_initiation(a.days_after_initiation)
                    .build(),
            );
        }
        b.build().map_err(|e| BucketError::Aws {
            call: "PutBucketLifecycleConfiguration",
            message: e.to_string(),
        })
    }
}

/// Sets up `bucket` to feed the queue at `queue_url`.
pub async fn setup(
    s3: &aws_sdk_s3::Client,
    sqs: &aws_sdk_sqs::Client,
    bucket: &str,
    queue_url: &str,
) -> Result<SetupReport, BucketError> {
    if queue_url.is_empty() {
        return Err(BucketError::NoQueue);
    }
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::Policy)
        .send()
        .await
        .map_err(|e| BucketError::Aws {
            call: "GetQueueAttributes",
            message: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
        })?;
    let get = |k| {
        attrs
            .attributes()
            .and_then(|a| a.get(&k))
            .cloned()
            .unwrap_or_default()
    };
    let queue_arn = get(aws_sdk_sqs::types::QueueAttributeName::QueueArn);
    let queue_policy = {
        let current = get(aws_sdk_sqs::types::QueueAttributeName::Policy);
        match queue_policy_with(&current, &queue_arn, bucket) {
            None => Step::AlreadySo,
            Some(policy) => {
                sqs.set_queue_attributes()
                    .queue_url(queue_url)
                    .attributes(aws_sdk_sqs::types::QueueAttributeName::Policy, policy)
                    .send()
                    .await
                    .map_err(|e| BucketError::Aws {
                        call: "SetQueueAttributes",
                        message: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
                    })?;
                Step::Applied
            }
        }
    };
    Ok(SetupReport {
        bucket: bucket.to_string(),
        queue_policy,
        notification: notification(s3, bucket, &queue_arn).await?,
        lifecycle: lifecycle(s3, bucket).await?,
        public_access: public_access(s3, bucket).await?,
        queue_arn,
    })
}

/// The queue policy with the bucket allowed to send, or `None` when it
/// already is. The shipped document's first statement is the template; an
/// existing statement of that `Sid` gains the bucket in its `aws:SourceArn`
/// list, so one queue can serve several buckets.
fn queue_policy_with(current: &str, queue_arn: &str, bucket: &str) -> Option<String> {
    let shipped: serde_json::Value = serde_json::from_str(QUEUE_POLICY).expect("shipped JSON");
    let template = shipped["Statement"][0].clone();
    let sid = template["Sid"].clone();
    // arn:<partition>:sqs:<region>:<account>:<name>
    let parts: Vec<&str> = queue_arn.split(':').collect();
    let (partition, account) = (
        parts.get(1).copied().unwrap_or("aws"),
        parts.get(4).copied().unwrap_or_default(),
    );
    let bucket_arn = serde_json::Value::from(format!("arn:{partition}:s3:::{bucket}"));
    let mut policy: serde_json::Value = serde_json::from_str(current)
        .unwrap_or_else(|_| serde_json::json!({ "Version": shipped["Version"], "Statement": [] }));
    if !policy["Statement"].is_array() {
        policy["Statement"] = serde_json::json!([]);
    }
    let statements = policy["Statement"].as_array_mut().expect("array");
    match statements.iter_mut().find(|s| s["Sid"] == sid) {
        Some(st) => {
            let arns = &mut st["Condition"]["ArnLike"]["aws:SourceArn"];
            let mut list: Vec<serde_json::Value> = match arns.take() {
                serde_json::Value::Array(v) => v,
                serde_json::Value::Null => vec![],
                one => vec![one],
            };
            if list.contains(&bucket_arn) {
                *arns = if list.len() == 1 {
                    list.remove(0)
                } else {
                    list.into()
                };
                return None;
            }
            list.push(bucket_arn);
            *arns = list.into();
        }
        None => {
            let mut st = template;
            st["Resource"] = queue_arn.into();
            st["Condition"]["ArnLike"]["aws:SourceArn"] = bucket_arn;
            st["Condition"]["StringEquals"]["aws:SourceAccount"] = account.into();
            statements.push(st);
        }
    }
    Some(policy.to_string())
}

async fn notification(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    queue_arn: &str,
) -> Result<Step, BucketError> {
    let doc: NotificationDoc = serde_json::from_str(NOTIFICATION).expect("shipped JSON");
    let ours = &doc.queue_configurations[0];
    let want = QueueConfiguration::builder()
        .id(&ours.id)
        .queue_arn(queue_arn)
        .set_events(Some(
            ours.events
                .iter()
                .map(|e| Event::from(e.as_str()))
                .collect(),
        ))
        .build()
        .map_err(|e| BucketError::Aws {
            call: "PutBucketNotificationConfiguration",
            message: e.to_string(),
        })?;
    let current = match s3
        .get_bucket_notification_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(c) => c,
        // S3 answers a bucket without notifications with an empty
        // `<NotificationConfiguration/>`; some S3-compatible stores (moto)
        // answer 200 with an empty document of another name, which the SDK
        // cannot parse. A 200 is an answer: there is nothing configured.
        Err(aws_sdk_s3::error::SdkError::ServiceError(e)) if e.raw().status().as_u16() == 200 => {
            aws_sdk_s3::operation::get_bucket_notification_configuration::GetBucketNotificationConfigurationOutput::builder().build()
        }
        Err(e) => return Err(aws("GetBucketNotificationConfiguration")(e)),
    };
    let mut queues: Vec<QueueConfiguration> = current.queue_configurations().to_vec();
    let same = |q: &QueueConfiguration| {
        q.queue_arn() == queue_arn && {
            let mut a: Vec<&str> = q.events().iter().map(|e| e.as_str()).collect();
            let mut b: Vec<&str> = ours.events.iter().map(String::as_str).collect();
            a.sort();
            b.sort();
            a == b
        }
    };
    if queues.iter().any(|q| q.id() == Some(&ours.id) && same(q)) {
        return Ok(Step::AlreadySo);
    }
    queues.retain(|q| q.id() != Some(&ours.id));
    queues.push(want);
    s3.put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .set_queue_configurations(Some(queues))
                .set_topic_configurations(Some(current.topic_configurations().to_vec()))
                .set_lambda_function_configurations(Some(
                    current.lambda_function_configurations().to_vec(),
                ))
                .set_event_bridge_configuration(current.event_bridge_configuration().cloned())
                .build(),
        )
        .send()
        .await
        .map_err(aws("PutBucketNotificationConfiguration"))?;
    Ok(Step::Applied)
}

async fn lifecycle(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Step, BucketError> {
    let doc: LifecycleDoc = serde_json::from_str(LIFECYCLE).expect("shipped JSON");
    let current = match s3
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => out.rules().to_vec(),
        Err(e) if e.code() == Some("NoSuchLifecycleConfiguration") => vec![],
        Err(e) => return Err(aws("GetBucketLifecycleConfiguration")(e)),
    };
    let have: Vec<RuleDoc> = current.iter().map(RuleDoc::from_s3).collect();
    if doc.rules.iter().all(|r| have.contains(r)) {
        return Ok(Step::AlreadySo);
    }
    let ours: Vec<&str> = doc.rules.iter().map(|r| r.id.as_str()).collect();
    let mut rules: Vec<LifecycleRule> = current
        .into_iter()
        .filter(|r| !ours.contains(&r.id().unwrap_or_default()))
        .collect();
    for r in &doc.rules {
        rules.push(r.to_s3()?);
    }
    s3.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .set_rules(Some(rules))
                .build()
                .map_err(|e| BucketError::Aws {
                    call: "PutBucketLifecycleConfiguration",
                    message: e.to_string(),
                })?,
        )
        .send()
        .await
        .map_err(aws("PutBucketLifecycleConfiguration"))?;
    Ok(Step::Applied)
}

async fn public_access(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Step, BucketError> {
    let want: PublicAccessDoc = serde_json::from_str(PUBLIC_ACCESS).expect("shipped JSON");
    let have = match s3.get_public_access_block().bucket(bucket).send().await {
        Ok(out) => out
            .public_access_block_configuration()
            .map(|c| PublicAccessDoc {
                block_public_acls: c.block_public_acls().unwrap_or(false),
                ignore_public_acls: c.ignore_public_acls().unwrap_or(false),
                block_public_policy: c.block_public_policy().unwrap_or(false),
                restrict_public_buckets: c.restrict_public_buckets().unwrap_or(false),
            }),
        Err(e) if e.code() == Some("NoSuchPublicAccessBlockConfiguration") => None,
        Err(e) => return Err(aws("GetPublicAccessBlock")(e)),
    };
    if have.as_ref() == Some(&want) {
        return Ok(Step::AlreadySo);
    }
    s3.put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(want.block_public_acls)
                .ignore_public_acls(want.ignore_public_acls)
                .block_public_policy(want.block_public_policy)
                .restrict_public_buckets(want.restrict_public_buckets)
                .build(),
        )
        .send()
        .await
        .map_err(aws("PutPublicAccessBlock"))?;
    Ok(Step::Applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:intake";

    #[test]
    fn the_queue_policy_gains_each_bucket_once_and_keeps_other_statements() {
        let first = queue_policy_with("", QUEUE, "feeds-a").unwrap();
        let v: serde_json::Value = serde_json::from_str(&first).unwrap();
        let st = &v["Statement"][0];
        assert_eq!(st["Resource"], QUEUE);
        assert_eq!(
            st["Condition"]["ArnLike"]["aws:SourceArn"],
            "arn:aws:s3:::feeds-a"
        );
        assert_eq!(
            st["Condition"]["StringEquals"]["aws:SourceAccount"],
            "123456789012"
        );
        assert_eq!(queue_policy_with(&first, QUEUE, "feeds-a"), None);
        let mut other: serde_json::Value = serde_json::from_str(&first).unwrap();
        other["Statement"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"Sid": "Theirs", "Effect": "Allow"}));
        let second = queue_policy_with(&other.to_string(), QUEUE, "feeds-b").unwrap();
        let v: serde_json::Value = serde_json::from_str(&second).unwrap();
        assert_eq!(
            v["Statement"][0]["Condition"]["ArnLike"]["aws:SourceArn"],
            serde_json::json!(["arn:aws:s3:::feeds-a", "arn:aws:s3:::feeds-b"])
        );
        assert_eq!(v["Statement"][1]["Sid"], "Theirs");
        assert_eq!(queue_policy_with(&second, QUEUE, "feeds-b"), None);
    }

    #[test]
    fn the_shipped_lifecycle_rules_survive_the_round_trip_through_s3_types() {
        let doc: LifecycleDoc = serde_json::from_str(LIFECYCLE).unwrap();
        assert_eq!(doc.rules.len(), 2);
        for r in &doc.rules {
            assert_eq!(&RuleDoc::from_s3(&r.to_s3().unwrap()), r);
        }
        assert_eq!(doc.rules[0].expiration, Some(DaysDoc { days: 90 }));
    }
}
