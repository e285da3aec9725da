//! Tenants' upload credentials and `bucket setup`, against moto with IAM
//! policy enforcement on: what a created key may and may not do is checked
//! by the emulator's policy engine, with the real AWS CLI as the customer
//! uses it.

use std::time::Duration;

use sea_orm::DbBackend;
use userfeed::credentials::Iam;
use userfeed::map::MatchKey;
use userfeed::service::{self, Caller, ServiceError};
use userfeed_tests::*;

each_backend!(
    a_created_key_writes_under_its_prefix_only_and_cannot_list_read_or_write_elsewhere,
    rotation_keeps_the_old_key_for_its_grace_and_the_sweep_then_deletes_it,
);

/// An enforced moto with a bucket holding two tenants' prefixes, a
/// database with both tenants, and the IAM side of credentials as the
/// daemon builds it.
struct Env {
    aws: EnforcedAws,
    db: TestDb,
    iam: Iam,
    bucket: String,
    file: std::path::PathBuf,
}

async fn env(backend: DbBackend) -> Env {
    let aws = EnforcedAws::start().await.unwrap();
    let sdk = aws.admin_sdk().await;
    let bucket = unique("uf-creds-").replace('_', "-");
    userfeed::aws::s3_client(&sdk, &s3_config())
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let db = TestDb::of(backend).await.unwrap();
    tenant(&db, "acme", &bucket, MatchKey::Email, MAPPING).await;
    tenant(&db, "globex", &bucket, MatchKey::Email, MAPPING).await;
    let cfg = userfeed::config::Config::load(None).unwrap();
    let iam = Iam::new(
        userfeed::aws::iam_client(&sdk),
        &cfg.credentials,
        "us-east-1",
    );
    let file = temp_file("staff.csv", b"Email,First\nann@example.com,Ann\n");
    Env {
        aws,
        db,
        iam,
        bucket,
        file,
    }
}

fn s3_config() -> userfeed::config::AwsConfig {
    let mut c = userfeed::config::Config::load(None).unwrap().aws;
    c.s3_force_path_style = true;
    c
}

impl Env {
    /// `aws s3 cp` of the sample file to `key` with the given credentials.
    async fn put(&self, (id, secret): (&str, &str), key: &str) -> CliOutcome {
        let file = self.file.display().to_string();
        let target = format!("s3://{}/{key}", self.bucket);
        self.aws
            .cli(
                id,
                secret,
                &["s3", "cp", "--only-show-errors", &file, &target],
            )
            .await
    }

    /// Every value stored for the tenant's credentials, as text.
    async fn stored(&self) -> String {
        let rows = userfeed::db::entity::tenant_credential::Entity::find()
            .all(&self.db.db)
            .await
            .unwrap();
        format!("{rows:?}")
    }
}

use sea_orm::EntityTrait;

async fn a_created_key_writes_under_its_prefix_only_and_cannot_list_read_or_write_elsewhere(
    backend: DbBackend,
) {
    let e = env(backend).await;
    let key = service::Service {
        iam: Some(e.iam.clone()),
        ..service::Service::new(e.db.db.clone())
    }
    .create_credentials(&Caller::Platform, "acme")
    .await
    .unwrap();
    assert_eq!(key.iam_user, "userfeed-acme");
    assert_eq!(
        (key.bucket.as_str(), key.prefix.as_str()),
        (e.bucket.as_str(), "acme/")
    );
    assert_eq!(
        key.upload_command,
        format!(
            "aws s3 cp employees.csv s3://{}/acme/employees.csv",
            e.bucket
        )
    );
    let creds = (key.access_key_id.as_str(), key.secret_access_key.expose());

    let put = e.put(creds, "acme/staff.csv").await;
    assert!(put.ok, "upload into the tenant's prefix: {put:?}");

    let list = e
        .aws
        .cli(
            creds.0,
            creds.1,
            &["s3", "ls", &format!("s3://{}/acme/", e.bucket)],
        )
        .await;
    assert!(!list.ok && list.stderr.contains("AccessDenied"), "{list:?}");
    let read = e
        .aws
        .cli(
            creds.0,
            creds.1,
            &[
                "s3",
                "cp",
                &format!("s3://{}/acme/staff.csv", e.bucket),
                "-",
            ],
        )
        .await;
    assert!(
        !read.ok && (read.stderr.contains("403") || read.stderr.contains("AccessDenied")),
        "{read:?}"
    );
    let other = e.put(creds, "globex/staff.csv").await;
    assert!(
        !other.ok && other.stderr.contains("AccessDenied"),
        "{other:?}"
    );

    // Only the key ID is kept; the secret is nowhere in the database.
    let stored = e.stored().await;
    assert!(stored.contains(&key.access_key_id), "{stored}");
    assert!(!stored.contains(creds.1), "the secret was stored: {stored}");

    // A second create is refused with the way forward; another tenant's
    // admin cannot reach this tenant at all.
    let again = service::Service {
        iam: Some(e.iam.clone()),
        ..service::Service::new(e.db.db.clone())
    }
    .create_credentials(&Caller::Platform, "acme")
    .await
    .unwrap_err();
    assert!(
        matches!(&again, ServiceError::Refused(m) if m.contains(&key.access_key_id) && m.contains("rotate")),
        "{again:?}"
    );
    let foreign = service::Service {
        iam: Some(e.iam.clone()),
        ..service::Service::new(e.db.db.clone())
    }
    .create_credentials(&Caller::Tenant("globex".into()), "acme")
    .await
    .unwrap_err();
    assert!(matches!(foreign, ServiceError::NotFound(_)), "{foreign:?}");

    // Revoked: the same upload is refused from now on.
    let revoked = service::Service {
        iam: Some(e.iam.clone()),
        ..service::Service::new(e.db.db.clone())
    }
    .revoke_credentials(&Caller::Platform, "acme")
    .await
    .unwrap();
    assert_eq!(
        revoked.access_key_ids,
        std::slice::from_ref(&key.access_key_id)
    );
    let after = e.put(creds, "acme/staff.csv").await;
    assert!(
        !after.ok && after.stderr.contains("InvalidAccessKeyId"),
        "an upload after revoke is refused for its deleted key: {after:?}"
    );
    let shown = service::Service::new(e.db.db.clone())
        .connection(&Caller::Platform, "acme")
        .await
        .unwrap();
    assert_eq!(
        shown
            .keys
            .iter()
            .map(|k| (k.access_key_id.as_str(), k.state.as_str()))
            .collect::<Vec<_>>(),
        [(key.access_key_id.as_str(), "deleted")]
    );
}

async fn rotation_keeps_the_old_key_for_its_grace_and_the_sweep_then_deletes_it(
    backend: DbBackend,
) {
    let e = env(backend).await;
    let p = &Caller::Platform;
    let first = service::Service {
        iam: Some(e.iam.clone()),
        ..service::Service::new(e.db.db.clone())
    }
    .create_credentials(p, "acme")
    .await
    .unwrap();
    let one = (
        first.access_key_id.as_str(),
        first.secret_access_key.expose(),
    );
    let hour = Duration::from_secs(3600);
    let second = service::Service {
        iam: Some(e.iam.clone()),
        ..service::Service::new(e.db.db.clone())
    }
    .rotate_credentials(p, "acme", hour)
    .await
    .unwrap();
    let two = (
        second.access_key_id.as_str(),
        second.secret_access_key.expose(),
    );
    assert_eq!(
        second.retiring.as_ref().map(|r| r.access_key_id.as_str()),
        Some(one.0)
    );
    // Both work during the grace period, and the sweep leaves the old one.
    assert!(e.put(one, "acme/a.csv").await.ok);
    assert!(e.put(two, "acme/b.csv").await.ok);
    assert_eq!(e.iam.sweep(&e.db.db).await.unwrap(), 0);
    assert!(
        e.put(one, "acme/a.csv").await.ok,
        "deleted before its grace ended"
    );

    // Rotating again during a grace period ends it now (IAM holds two keys
    // per user); with no grace the key just rotated out goes at the sweep.
    let third = service::Service {
        iam: Some(e.iam.clone()),
        ..service::Service::new(e.db.db.clone())
    }
    .rotate_credentials(p, "acme", Duration::ZERO)
    .await
    .unwrap();
    let three = (
        third.access_key_id.as_str(),
        third.secret_access_key.expose(),
    );
    let first = e.put(one, "acme/a.csv").await;
    assert!(
        !first.ok && first.stderr.contains("InvalidAccessKeyId"),
        "the first key outlived a second rotation: {first:?}"
    );
    assert!(
        e.put(two, "acme/b.csv").await.ok,
        "the second key is in its (zero) grace"
    );
    assert_eq!(e.iam.sweep(&e.db.db).await.unwrap(), 1);
    let swept = e.put(two, "acme/b.csv").await;
    assert!(
        !swept.ok && swept.stderr.contains("InvalidAccessKeyId"),
        "swept key still works: {swept:?}"
    );
    assert!(e.put(three, "acme/c.csv").await.ok);

    let shown = service::Service::new(e.db.db.clone())
        .connection(p, "acme")
        .await
        .unwrap();
    let states: Vec<(&str, &str)> = shown
        .keys
        .iter()
        .map(|k| (k.access_key_id.as_str(), k.state.as_str()))
        .collect();
    assert_eq!(
        states,
        [(three.0, "active"), (two.0, "deleted"), (one.0, "deleted")]
    );
    // The other tenant was never touched.
    let globex = service::Service::new(e.db.db.clone())
        .connection(p, "globex")
        .await
        .unwrap();
    assert!(globex.keys.is_empty());
}

#[tokio::test]
async fn without_aws_or_a_bucket_credentials_are_refused_with_the_reason() {
    let db = TestDb::sqlite().await.unwrap();
    tenant(&db, "acme", "", MatchKey::Email, MAPPING).await;
    let err = service::Service::new(db.db.clone())
        .create_credentials(&Caller::Platform, "acme")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ServiceError::Refused(m) if m.contains("intake.queue_url")),
        "{err:?}"
    );
    let aws = EnforcedAws::start().await.unwrap();
    let cfg = userfeed::config::Config::load(None).unwrap();
    let iam = Iam::new(
        userfeed::aws::iam_client(&aws.admin_sdk().await),
        &cfg.credentials,
        "us-east-1",
    );
    let err = service::Service {
        iam: Some(iam.clone()),
        ..service::Service::new(db.db.clone())
    }
    .create_credentials(&Caller::Platform, "acme")
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ServiceError::Refused(m) if m.contains("no S3 bucket")),
        "{err:?}"
    );
}

#[tokio::test]
async fn bucket_setup_applies_notification_lifecycle_and_public_access_once_and_keeps_others() {
    let aws = EnforcedAws::start().await.unwrap();
    let sdk = aws.admin_sdk().await;
    let s3 = userfeed::aws::s3_client(&sdk, &s3_config());
    let sqs = userfeed::aws::sqs_client(&sdk);
    let bucket = unique("uf-setup-").replace('_', "-");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let queue_url = sqs
        .create_queue()
        .queue_name(unique("uf-setup-q-"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    // A lifecycle rule of the customer's own, which setup must keep.
    use aws_sdk_s3::types::{
        BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
        LifecycleRuleFilter,
    };
    s3.put_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(
                    LifecycleRule::builder()
                        .id("theirs")
                        .status(ExpirationStatus::Enabled)
                        .filter(LifecycleRuleFilter::builder().prefix("archive/").build())
                        .expiration(LifecycleExpiration::builder().days(400).build())
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // And a notification of their own, to another queue.
    let theirs_url = sqs
        .create_queue()
        .queue_name(unique("uf-theirs-q-"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let theirs_arn = queue_arn(&sqs, &theirs_url).await;
    use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
    s3.put_bucket_notification_configuration()
        .bucket(&bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(
                    QueueConfiguration::builder()
                        .id("theirs")
                        .queue_arn(&theirs_arn)
                        .events(Event::from("s3:ObjectRemoved:*"))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();

    let first = userfeed::bucket::setup(&s3, &sqs, &bucket, &queue_url)
        .await
        .unwrap();
    use userfeed::bucket::Step::{AlreadySo, Applied};
    assert_eq!(
        (
            first.queue_policy,
            first.notification,
            first.lifecycle,
            first.public_access
        ),
        (Applied, Applied, Applied, Applied)
    );
    let second = userfeed::bucket::setup(&s3, &sqs, &bucket, &queue_url)
        .await
        .unwrap();
    assert_eq!(
        (
            second.queue_policy,
            second.notification,
            second.lifecycle,
            second.public_access
        ),
        (AlreadySo, AlreadySo, AlreadySo, AlreadySo)
    );

    let rules = s3
        .get_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let mut ids: Vec<(&str, Option<i32>)> = rules
        .rules()
        .iter()
        .map(|r| (r.id().unwrap(), r.expiration().and_then(|e| e.days())))
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            ("abort-incomplete-multipart-uploads-after-7-days", None),
            ("drops-expire-after-90-days", Some(90)),
            ("theirs", Some(400)),
        ]
    );
    let notes = s3
        .get_bucket_notification_configuration()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let mut targets: Vec<(&str, &str)> = notes
        .queue_configurations()
        .iter()
        .map(|q| (q.id().unwrap_or_default(), q.queue_arn()))
        .collect();
    targets.sort();
    let ours = queue_arn(&sqs, &queue_url).await;
    assert_eq!(
        targets,
        [
            ("theirs", theirs_arn.as_str()),
            ("userfeed-intake", ours.as_str())
        ]
    );
    let policy = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::Policy)
        .send()
        .await
        .unwrap();
    let policy = policy
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::Policy))
        .cloned()
        .unwrap_or_default();
    assert!(
        policy.contains(&format!("arn:aws:s3:::{bucket}")) && policy.contains("sqs:SendMessage"),
        "{policy}"
    );
    let block = s3
        .get_public_access_block()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let b = block.public_access_block_configuration().unwrap();
    assert_eq!(
        (
            b.block_public_acls(),
            b.ignore_public_acls(),
            b.block_public_policy(),
            b.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );

    // The notification works: a drop reaches the queue as an ObjectCreated.
    let file = temp_file("x.csv", b"Email\na@example.com\n");
    let put = aws
        .cli(
            &aws.admin.0,
            &aws.admin.1,
            &[
                "s3",
                "cp",
                "--only-show-errors",
                &file.display().to_string(),
                &format!("s3://{bucket}/acme/x.csv"),
            ],
        )
        .await;
    assert!(put.ok, "{put:?}");
    // The first message is S3's test event from setting the notification.
    let mut bodies = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline
        && !bodies.iter().any(|b: &String| {
            b.contains("ObjectCreated") && b.contains("userfeed-intake") && b.contains("x.csv")
        })
    {
        let got = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(2)
            .send()
            .await
            .unwrap();
        bodies.extend(
            got.messages()
                .iter()
                .filter_map(|m| m.body().map(String::from)),
        );
    }
    assert!(
        bodies.iter().any(|b| b.contains("ObjectCreated")
            && b.contains("userfeed-intake")
            && b.contains("x.csv")),
        "{bodies:?}"
    );
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .cloned()
        .unwrap()
}

#[tokio::test]
async fn the_shipped_credentials_policy_grants_every_call_that_credentials_make() {
    let aws = EnforcedAws::start().await.unwrap();
    let admin = aws.admin_sdk().await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // Compact: moto checks signatures over a re-encoded body, where the
    // files' spaces and line breaks would not survive.
    let read = |name: &str| {
        let text = std::fs::read_to_string(root.join("deploy/aws").join(name)).unwrap();
        serde_json::from_str::<serde_json::Value>(&text)
            .unwrap()
            .to_string()
    };
    let bucket = unique("uf-boundary-").replace('_', "-");
    userfeed::aws::s3_client(&admin, &s3_config())
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    // The boundary and the deployment's identity, from deploy/aws as shipped.
    let iam_admin = userfeed::aws::iam_client(&admin);
    let boundary = iam_admin
        .create_policy()
        .policy_name("userfeed-upload-boundary")
        .policy_document(read("upload-boundary-policy.json").replace("example-hr-feeds", &bucket))
        .send()
        .await
        .unwrap()
        .policy
        .unwrap()
        .arn
        .unwrap();
    iam_admin
        .create_user()
        .user_name("userfeed-daemon")
        .send()
        .await
        .unwrap();
    iam_admin
        .put_user_policy()
        .user_name("userfeed-daemon")
        .policy_name("credentials")
        .policy_document(actions_only(&read("credentials-policy.json")))
        .send()
        .await
        .unwrap();
    let key = iam_admin
        .create_access_key()
        .user_name("userfeed-daemon")
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap();
    let daemon = aws.sdk_as(&key.access_key_id, &key.secret_access_key).await;

    let db = TestDb::sqlite().await.unwrap();
    tenant(&db, "acme", &bucket, MatchKey::Email, MAPPING).await;
    let mut cfg = userfeed::config::Config::load(None).unwrap().credentials;
    cfg.permissions_boundary = boundary.clone();
    let iam = Iam::new(userfeed::aws::iam_client(&daemon), &cfg, "us-east-1");
    let made = service::Service {
        iam: Some(iam.clone()),
        ..service::Service::new(db.db.clone())
    }
    .create_credentials(&Caller::Platform, "acme")
    .await
    .unwrap();
    let user = iam_admin
        .get_user()
        .user_name(&made.iam_user)
        .send()
        .await
        .unwrap()
        .user
        .unwrap();
    // moto 5.2 keeps no permissions boundary for users (only for roles), so
    // that it is sent is all this run can see; AWS enforces it.
    assert_eq!(user.path(), "/userfeed/");
    let put = aws
        .cli(
            &made.access_key_id,
            made.secret_access_key.expose(),
            &[
                "s3",
                "cp",
                "--only-show-errors",
                temp_file("x.csv", b"Email\n").to_str().unwrap(),
                &format!("s3://{bucket}/acme/x.csv"),
            ],
        )
        .await;
    assert!(put.ok, "{put:?}");
    service::Service {
        iam: Some(iam.clone()),
        ..service::Service::new(db.db.clone())
    }
    .revoke_credentials(&Caller::Platform, "acme")
    .await
    .unwrap();
}

/// The policy's actions alone (`Resource` `*`, no `Condition`): moto 5.2
/// checks IAM calls against the resource `*` only and evaluates no
/// condition but `sts:ExternalId`, so against moto this proves the shipped
/// action list is enough. The path scoping and the boundary condition are
/// AWS's to enforce; the test checks the user is made under the path.
fn actions_only(policy: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(policy).unwrap();
    for st in v["Statement"].as_array_mut().unwrap() {
        let st = st.as_object_mut().unwrap();
        st.remove("Condition");
        st.insert("Resource".into(), "*".into());
    }
    v.to_string()
}
