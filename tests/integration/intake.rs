//! Intake: notifications (as moto sends them) become upload rows.

use sea_orm::DbBackend;
use userfeed::intake::{Delivery, handle_delivery};
use userfeed::map::MatchKey;
use userfeed_tests::*;

each_backend!(
    the_same_notification_delivered_twice_records_one_upload,
    a_second_upload_of_the_same_key_is_a_new_upload,
    objects_route_only_to_the_tenant_owning_the_prefix,
    test_events_non_s3_messages_and_unsafe_keys_are_ignored_without_error,
    sns_wrapped_and_eventbridge_notifications_are_recorded,
    a_multipart_upload_by_the_aws_cli_is_one_upload_though_moto_sends_two_events,
);

fn delivery(body: &str) -> Delivery {
    Delivery {
        message_id: "m".into(),
        body: body.into(),
        receive_count: 1,
        ack_handle: String::new(),
    }
}

async fn the_same_notification_delivered_twice_records_one_upload(backend: DbBackend) {
    let db = TestDb::of(backend).await.unwrap();
    let aws = Aws::new().await.unwrap();
    tenant(&db, "acme", &aws.bucket, MatchKey::Email, MAPPING).await;
    aws.put("acme/users.csv", employees_csv(2, false))
        .await
        .unwrap();
    let bodies = aws.take_object_created().await.unwrap();
    assert_eq!(bodies.len(), 1);

    let first = handle_delivery(&db.db, &delivery(&bodies[0]))
        .await
        .unwrap();
    let second = handle_delivery(&db.db, &delivery(&bodies[0]))
        .await
        .unwrap();
    assert_eq!(first.recorded.len(), 1);
    assert_eq!((second.recorded.len(), second.duplicates), (0, 1));
    assert_eq!(db.scalar("SELECT count(*) FROM uploads").await, 1);
}

async fn a_second_upload_of_the_same_key_is_a_new_upload(backend: DbBackend) {
    let db = TestDb::of(backend).await.unwrap();
    let aws = Aws::new().await.unwrap();
    tenant(&db, "acme", &aws.bucket, MatchKey::Email, MAPPING).await;
    aws.put("acme/users.csv", employees_csv(2, false))
        .await
        .unwrap();
    aws.put("acme/users.csv", employees_csv(3, false))
        .await
        .unwrap();
    assert_eq!(intake_all(&db, &aws).await.len(), 2);
}

async fn objects_route_only_to_the_tenant_owning_the_prefix(backend: DbBackend) {
    let db = TestDb::of(backend).await.unwrap();
    let aws = Aws::new().await.unwrap();
    let acme = tenant(&db, "acme", &aws.bucket, MatchKey::Email, MAPPING).await;
    let corp = tenant(&db, "acme-corp", &aws.bucket, MatchKey::Email, MAPPING).await;
    for key in [
        "acme/a.csv",
        "acme-corp/b.csv",
        "acmex/c.csv",
        "other/d.csv",
        "root.csv",
        "acme/sub/e.csv",
    ] {
        aws.put(key, employees_csv(1, false)).await.unwrap();
    }
    intake_all(&db, &aws).await;
    let rows = db
        .rows(
            "SELECT CAST(tenant_id AS TEXT) || ' ' || object_key FROM uploads ORDER BY object_key",
        )
        .await;
    assert_eq!(
        rows,
        vec![
            format!("{} acme-corp/b.csv", corp.id),
            format!("{} acme/a.csv", acme.id),
            format!("{} acme/sub/e.csv", acme.id),
        ]
    );
}

async fn test_events_non_s3_messages_and_unsafe_keys_are_ignored_without_error(backend: DbBackend) {
    let db = TestDb::of(backend).await.unwrap();
    tenant(&db, "acme", "feeds", MatchKey::Email, MAPPING).await;
    let bodies = [
        r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-01T00:00:00Z","Bucket":"feeds"}"#.to_string(),
        "definitely not json".to_string(),
        r#"{"hello":"world"}"#.to_string(),
        r#"{"Records":[{"eventName":"ObjectCreated:Put","eventTime":"2026-11-01T00:00:00Z","s3":{"bucket":{"name":"feeds"},"object":{"key":"acme/../other/x.csv","sequencer":"1"}}}]}"#.to_string(),
        r#"{"Records":[{"eventName":"ObjectCreated:Put","eventTime":"2026-11-01T00:00:00Z","s3":{"bucket":{"name":"feeds"},"object":{"key":"%2e%2e/acme/x.csv","sequencer":"2"}}}]}"#.to_string(),
        r#"{"Records":[{"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"feeds"},"object":{"key":"acme/x.csv"}}}]}"#.to_string(),
    ];
    for b in &bodies {
        let h = handle_delivery(&db.db, &delivery(b))
            .await
            .expect("ignored, not an error");
        assert!(h.recorded.is_empty(), "{b}");
        assert_eq!(h.ignored, 1, "{b}");
    }
    assert_eq!(db.scalar("SELECT count(*) FROM uploads").await, 0);
}

async fn sns_wrapped_and_eventbridge_notifications_are_recorded(backend: DbBackend) {
    let db = TestDb::of(backend).await.unwrap();
    tenant(&db, "acme", "feeds", MatchKey::Email, MAPPING).await;
    let inner = r#"{"Records":[{"eventName":"ObjectCreated:Put","eventTime":"2026-11-01T00:00:00Z","s3":{"bucket":{"name":"feeds"},"object":{"key":"acme/HR+file.csv","sequencer":"0A"}}}]}"#;
    let sns = serde_json::json!({"Type": "Notification", "Message": inner}).to_string();
    let eb = r#"{"version":"0","detail-type":"Object Created","source":"aws.s3","time":"2026-11-01T00:00:01Z",
        "detail":{"bucket":{"name":"feeds"},"object":{"key":"acme/HR+file.csv","etag":"e","sequencer":"0B"}}}"#;
    assert_eq!(
        handle_delivery(&db.db, &delivery(&sns))
            .await
            .unwrap()
            .recorded
            .len(),
        1
    );
    assert_eq!(
        handle_delivery(&db.db, &delivery(eb))
            .await
            .unwrap()
            .recorded
            .len(),
        1
    );
    let keys = db.rows("SELECT object_key FROM uploads ORDER BY id").await;
    assert_eq!(keys, vec!["acme/HR file.csv", "acme/HR+file.csv"]);
}

async fn a_multipart_upload_by_the_aws_cli_is_one_upload_though_moto_sends_two_events(
    backend: DbBackend,
) {
    let db = TestDb::of(backend).await.unwrap();
    let aws = Aws::new().await.unwrap();
    tenant(&db, "acme", &aws.bucket, MatchKey::Email, MAPPING).await;
    // 6 MB in 5 MB parts: the CLI uploads it in two parts.
    let config = temp_file(
        "aws-config",
        b"[default]\ns3 =\n  multipart_threshold = 5MB\n  multipart_chunksize = 5MB\n",
    );
    let body = employees_csv(125_000, false);
    assert!(body.len() > 6_000_000, "{}", body.len());
    let file = temp_file("users.csv", body.as_bytes());
    aws_cp_with(
        &file,
        &aws.bucket,
        "acme/users.csv",
        &[("AWS_CONFIG_FILE", config.as_os_str())],
    )
    .await
    .unwrap();
    let bodies = aws.take_object_created().await.unwrap();
    assert_eq!(
        bodies.len(),
        2,
        "moto's Put and CompleteMultipartUpload: {bodies:?}"
    );
    let mut recorded = 0;
    for body in &bodies {
        recorded += handle_delivery(&db.db, &delivery(body))
            .await
            .unwrap()
            .recorded
            .len();
    }
    assert_eq!(recorded, 1);
    assert_eq!(db.scalar("SELECT count(*) FROM uploads").await, 1);
}
