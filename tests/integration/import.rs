//! `userfeed import`: a local file applied for real, recorded in the history.

use std::time::Duration;

use userfeed::jobs::UploadState;
use userfeed::map::MatchKey;
use userfeed_tests::*;

#[tokio::test]
async fn import_applies_a_local_file_as_an_upload_with_source_local() {
    let db = TestDb::new().await.unwrap();
    tenant(&db, "acme", "bucket", MatchKey::ExternalId, MAPPING).await;
    let file = temp_file("import.csv", employees_csv(25, false).as_bytes());
    let out = cli(
        &db.url,
        &["import", "--tenant", "acme", file.to_str().unwrap()],
    )
    .await
    .unwrap();
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM users WHERE active").await,
        25
    );
    assert_eq!(
        db.rows("SELECT source || '|' || state || '|' || rows_created FROM uploads")
            .await,
        vec!["local|succeeded|25"]
    );
}

#[tokio::test]
async fn import_is_refused_while_an_upload_of_the_tenant_runs() {
    let db = TestDb::new().await.unwrap();
    let t = tenant(&db, "acme", "bucket", MatchKey::ExternalId, MAPPING).await;
    mark_tenant_busy(&db, t.id).await;
    let file = temp_file("busy.csv", employees_csv(2, false).as_bytes());
    let err = cli(
        &db.url,
        &["import", "--tenant", "acme", file.to_str().unwrap()],
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("upload of this tenant is running"), "{err}");
    assert_eq!(db.scalar("SELECT count(*) FROM users").await, 0);
}

#[tokio::test]
async fn a_daemon_that_reclaims_an_abandoned_import_fails_it_with_the_reason_instead_of_guessing() {
    let db = TestDb::new().await.unwrap();
    let aws = Aws::new().await.unwrap();
    let t = tenant(&db, "acme", &aws.bucket, MatchKey::ExternalId, MAPPING).await;
    let file = temp_file("abandoned.csv", employees_csv(2, false).as_bytes());
    // The import's process died: its row is running with an expired lease.
    let up = userfeed::intake::local::record(&db.db, t.id, &file, UploadState::Running, 0.0)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let w = workers(&db, &aws, Duration::from_secs(30), 10);
    assert_eq!(run_next(&w).await, Some(up.id));
    let u = upload(&db, up.id).await;
    assert_eq!(u.state, "failed");
    assert!(
        u.failure_reason
            .as_deref()
            .unwrap_or_default()
            .contains("only the `userfeed import` that started it can read its file"),
        "{:?}",
        u.failure_reason
    );
    assert_eq!(db.scalar("SELECT count(*) FROM users").await, 0);
}
