//! `userfeed uploads retry`: a failed upload's object queued again, and the
//! refusals that keep a tenant from being rolled back to an older file.

use std::time::Duration;

use sea_orm::DbBackend;
use userfeed::jobs::retry::{RetryError, retry};
use userfeed::map::MatchKey;
use userfeed_tests::*;

each_backend!(
    a_failed_upload_retried_after_its_cause_is_fixed_applies_as_a_new_upload,
    retrying_a_file_older_than_one_that_has_since_succeeded_is_refused,
    only_a_failed_upload_can_be_retried_and_only_once_while_its_retry_waits,
    redelivering_a_failed_uploads_notification_is_absorbed_but_a_retry_is_not,
    the_overview_lists_a_failure_only_until_a_later_upload_of_its_tenant_succeeds,
);

const LEASE: Duration = Duration::from_secs(30);

/// A file whose header lacks the mapping's `Work Email` column: it fails
/// as a whole, for a reason an admin fixes in the mapping, not the file.
fn file_with_email_header(n: usize) -> String {
    employees_csv(n, false).replacen("Work Email", "Email", 1)
}

const MAPPING_EMAIL: &str = r#"
[columns]
external_id = "Employee ID"
email = "Email"
first_name = "First Name"
last_name = "Last Name"
"#;

async fn a_failed_upload_retried_after_its_cause_is_fixed_applies_as_a_new_upload(
    backend: DbBackend,
) {
    let db = TestDb::of(backend).await.unwrap();
    let aws = Aws::new().await.unwrap();
    tenant(&db, "acme", &aws.bucket, MatchKey::Email, MAPPING).await;
    let w = workers(&db, &aws, LEASE, 100);
    aws.put("acme/users.csv", file_with_email_header(3))
        .await
        .unwrap();
    let [failed] = intake_all(&db, &aws).await[..] else {
        panic!("one upload")
    };
    run_next(&w).await;
    let up = upload(&db, failed).await;
    assert_eq!(up.state, "failed");
    assert!(
        up.failure_reason
            .as_deref()
            .unwrap_or("")
            .contains("Work Email"),
        "{:?}",
        up.failure_reason
    );

    // The cause is fixed (the mapping names the file's real column), then
    // the same object version is queued again.
    let m = userfeed::map::Mapping::from_toml(MAPPING_EMAIL, MatchKey::Email).unwrap();
    userfeed::tenants::set_mapping(&db.db, "acme", &m)
        .await
        .unwrap();
    let again = retry(&db.db, failed).await.expect("retry");
    assert!(again > failed);
    assert_eq!(run_next(&w).await, Some(again));

    let (old, new) = (upload(&db, failed).await, upload(&db, again).await);
    assert_eq!(old.state, "failed", "the history keeps the failure");
    assert_eq!(new.state, "succeeded");
    assert_eq!(new.retry_of, Some(failed));
    assert_eq!(
        (new.bucket.as_str(), new.object_key.as_str(), &new.etag),
        (old.bucket.as_str(), old.object_key.as_str(), &old.etag)
    );
    assert_eq!(new.rows_created, 3);
    assert_eq!(users_of(&db, "acme").await.len(), 3);
}

async fn retrying_a_file_older_than_one_that_has_since_succeeded_is_refused(backend: DbBackend) {
    let db = TestDb::of(backend).await.unwrap();
    let aws = Aws::new().await.unwrap();
    tenant(&db, "acme", &aws.bucket, MatchKey::Email, MAPPING).await;
    let w = workers(&db, &aws, LEASE, 100);
    aws.put("acme/monday.csv", file_with_email_header(5))
        .await
        .unwrap();
    let [monday] = intake_all(&db, &aws).await[..] else {
        panic!()
    };
    run_next(&w).await;
    aws.put("acme/tuesday.csv", employees_csv(2, false))
        .await
        .unwrap();
    let [tuesday] = intake_all(&db, &aws).await[..] else {
        panic!()
    };
    run_next(&w).await;
    assert_eq!(upload(&db, monday).await.state, "failed");
    assert_eq!(upload(&db, tuesday).await.state, "succeeded");

    let err = retry(&db.db, monday).await.unwrap_err();
    assert!(
        matches!(err, RetryError::NotNewest { newer, .. } if newer == tuesday),
        "{err}"
    );
    assert!(err.to_string().contains("roll the tenant back"), "{err}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM uploads").await,
        2,
        "nothing queued"
    );
}

async fn only_a_failed_upload_can_be_retried_and_only_once_while_its_retry_waits(
    backend: DbBackend,
) {
    let db = TestDb::of(backend).await.unwrap();
    let aws = Aws::new().await.unwrap();
    tenant(&db, "acme", &aws.bucket, MatchKey::Email, MAPPING).await;
    let w = workers(&db, &aws, LEASE, 100);
    aws.put("acme/a.csv", employees_csv(2, false))
        .await
        .unwrap();
    let [ok] = intake_all(&db, &aws).await[..] else {
        panic!()
    };
    run_next(&w).await;
    let err = retry(&db.db, ok).await.unwrap_err();
    assert!(matches!(err, RetryError::NotFailed { .. }), "{err}");
    assert!(matches!(
        retry(&db.db, 999_999).await,
        Err(RetryError::NotFound(999_999))
    ));

    aws.put("acme/b.csv", file_with_email_header(2))
        .await
        .unwrap();
    let [bad] = intake_all(&db, &aws).await[..] else {
        panic!()
    };
    run_next(&w).await;
    let first = retry(&db.db, bad).await.expect("first retry");
    let err = retry(&db.db, bad).await.unwrap_err();
    assert!(
        matches!(&err, RetryError::NotNewest { newer, state, .. } if *newer == first && state == "queued"),
        "{err}"
    );
}

async fn redelivering_a_failed_uploads_notification_is_absorbed_but_a_retry_is_not(
    backend: DbBackend,
) {
    let db = TestDb::of(backend).await.unwrap();
    let aws = Aws::new().await.unwrap();
    tenant(&db, "acme", &aws.bucket, MatchKey::Email, MAPPING).await;
    let w = workers(&db, &aws, LEASE, 100);
    aws.put("acme/users.csv", file_with_email_header(2))
        .await
        .unwrap();
    let bodies = aws.take_object_created().await.unwrap();
    let d = |body: &str| userfeed::intake::Delivery {
        message_id: "m".into(),
        body: body.into(),
        receive_count: 1,
        ack_handle: String::new(),
    };
    let first = userfeed::intake::handle_delivery(&db.db, &d(&bodies[0]))
        .await
        .unwrap();
    run_next(&w).await;
    // What the old runbook advised: send the notification again.
    let replay = userfeed::intake::handle_delivery(&db.db, &d(&bodies[0]))
        .await
        .unwrap();
    assert_eq!((replay.recorded.len(), replay.duplicates), (0, 1));
    let again = retry(&db.db, first.recorded[0]).await.unwrap();
    assert_eq!(upload(&db, again).await.state, "queued");
}

/// Issue 31: a failure that a later successful upload of the same tenant
/// has replaced needs nobody, so the operators' overview stops listing it;
/// another tenant's failure stays.
async fn the_overview_lists_a_failure_only_until_a_later_upload_of_its_tenant_succeeds(
    backend: DbBackend,
) {
    let db = TestDb::of(backend).await.unwrap();
    let aws = Aws::new().await.unwrap();
    tenant(&db, "acme", &aws.bucket, MatchKey::Email, MAPPING).await;
    tenant(&db, "globex", &aws.bucket, MatchKey::Email, MAPPING).await;
    let w = workers(&db, &aws, LEASE, 100);
    let apply = |key: &'static str, body: String| {
        let (db, aws, w) = (&db, &aws, w.clone());
        async move {
            aws.put(key, body).await.unwrap();
            let ids = intake_all(db, aws).await;
            run_next(&w).await;
            upload(db, ids[0]).await
        }
    };
    let broken = || "Nothing,Useful\n1,2\n".to_string();
    let acme_failed = apply("acme/1.csv", broken()).await;
    let globex_failed = apply("globex/1.csv", broken()).await;
    assert_eq!(
        (acme_failed.state.as_str(), globex_failed.state.as_str()),
        ("failed", "failed")
    );
    let service = userfeed::service::Service::new(db.db.clone());
    let listed = |o: userfeed::service::Overview| -> Vec<i64> {
        o.attention.iter().map(|a| a.upload.id).collect()
    };
    let platform = userfeed::service::Caller::Platform;
    assert_eq!(
        listed(service.overview(&platform).await.unwrap()),
        [globex_failed.id, acme_failed.id]
    );
    let fixed = apply("acme/2.csv", employees_csv(3, false)).await;
    assert_eq!(fixed.state, "succeeded");
    assert_eq!(
        listed(service.overview(&platform).await.unwrap()),
        [globex_failed.id],
        "acme's failure was replaced by its later success"
    );
}
