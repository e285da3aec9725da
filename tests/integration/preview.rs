//! `userfeed preview`: the real pipeline inside a transaction that is rolled
//! back. It must change nothing, and predict exactly what the real import of
//! the same file then does.

use std::time::Duration;

use sea_orm::ConnectionTrait;

use sea_orm::DbBackend;
use userfeed::apply::preview::{PreviewError, PreviewReport, preview};
use userfeed::map::MatchKey;
use userfeed_tests::*;

each_backend!(
    a_preview_changes_nothing_and_the_real_import_then_does_exactly_what_it_showed,
    a_preview_says_the_file_would_be_held_and_lists_who_would_wait_for_approval,
);

/// Everything a preview must leave as it was: users, their links, and the
/// upload history with its logs.
async fn snapshot(db: &TestDb) -> Vec<String> {
    let mut all = users_of(db, "acme").await;
    for sql in [
        "SELECT CAST(count(*) AS TEXT) FROM uploads",
        "SELECT CAST(count(*) AS TEXT) FROM upload_changes",
        "SELECT CAST(count(*) AS TEXT) FROM upload_row_errors",
        "SELECT CAST(count(*) AS TEXT) FROM upload_rows",
        "SELECT CAST(count(*) AS TEXT) FROM user_managers",
        "SELECT CAST(count(*) AS TEXT) FROM group_memberships",
        "SELECT CAST(count(*) AS TEXT) FROM user_roles",
    ] {
        all.extend(
            db.rows(sql)
                .await
                .into_iter()
                .map(|n| format!("{sql}: {n}")),
        );
    }
    all
}

fn counts(r: &PreviewReport) -> [i64; 6] {
    let p = &r.progress;
    [
        p.rows_read,
        p.created,
        p.updated,
        p.unchanged,
        p.rejected,
        p.deactivated,
    ]
    .map(|n| n as i64)
}

async fn a_preview_changes_nothing_and_the_real_import_then_does_exactly_what_it_showed(
    backend: DbBackend,
) {
    let db = TestDb::of(backend).await.unwrap();
    let aws = Aws::new().await.unwrap();
    let t = tenant(
        &db,
        "acme",
        &aws.bucket,
        MatchKey::ExternalId,
        EMPLOYEE_LINK_MAPPING,
    )
    .await;
    userfeed::groups::add(&db.db, "acme", "G1", "Sales")
        .await
        .unwrap();
    let w = workers(&db, &aws, Duration::from_secs(30), 4);

    let mut night1 =
        String::from("Employee ID,Work Email,First Name,Last Name,Manager Email,Groups\n");
    for i in 0..12 {
        night1.push_str(&format!("E{i},user{i}@example.com,F{i},L{i},,G1\n"));
    }
    aws.put("acme/1.csv", night1).await.unwrap();
    intake_all(&db, &aws).await;
    run_next(&w).await;

    // Night 2: one rename, one new person managed by someone later in the
    // file, one removed, a bad email, a duplicate key, an unknown manager
    // and an unknown group.
    let mut night2 =
        String::from("Employee ID,Work Email,First Name,Last Name,Manager Email,Groups\n");
    night2.push_str("E0,user0@example.com,Renamed,L0,,G1\n");
    night2.push_str("E99,new@example.com,New,Person,user5@example.com,G1|G404\n");
    for i in 1..11 {
        let manager = if i == 7 { "ghost@example.com" } else { "" };
        night2.push_str(&format!(
            "E{i},user{i}@example.com,F{i},L{i},{manager},G1\n"
        ));
    }
    night2.push_str("E50,not-an-email,Bad,Email,,\n");
    night2.push_str("E3,user3@example.com,F3,L3,,\n");
    let file = temp_file("night2.csv", night2.as_bytes());

    // A real upload of the tenant is running meanwhile: a preview must not
    // collide with it.
    mark_tenant_busy(&db, t.id).await;
    let before = snapshot(&db).await;
    let t = userfeed::tenants::by_slug(&db.db, "acme").await.unwrap();
    let shown = preview(&db.db, &t, &file, 4, Default::default(), None)
        .await
        .unwrap();
    assert_eq!(
        snapshot(&db).await,
        before,
        "a preview changed the database"
    );
    assert_eq!(
        counts(&shown),
        [14, 1, 1, 10, 2, 1],
        "read, created, updated, unchanged, rejected, deactivated"
    );
    assert!(shown.held.is_none());
    db.db
        .execute_unprepared("DELETE FROM uploads WHERE object_key = 'busy/x.csv'")
        .await
        .unwrap();

    aws.put("acme/2.csv", std::fs::read(&file).unwrap())
        .await
        .unwrap();
    let ids = intake_all(&db, &aws).await;
    run_next(&w).await;
    let real = upload(&db, ids[0]).await;
    assert_eq!(real.state, "succeeded", "{:?}", real.failure_reason);
    assert_eq!(upload_counts(&real), counts(&shown));
    assert_eq!(
        userfeed::report::changes(&db.db, real.id).await.unwrap(),
        shown.changes,
        "the change log"
    );
    let problems = |list: &[userfeed::db::entity::upload_row_error::Model]| -> Vec<String> {
        list.iter()
            .map(|e| format!("{}|{}|{}", e.line, e.severity, e.message))
            .collect()
    };
    let real_detail = userfeed::report::upload_detail(&db.db, real.id, u64::MAX)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(problems(&real_detail.errors), problems(&shown.problems));
    assert_eq!(shown.problems.len(), 4, "{:?}", problems(&shown.problems));
}

async fn a_preview_says_the_file_would_be_held_and_lists_who_would_wait_for_approval(
    backend: DbBackend,
) {
    let db = TestDb::of(backend).await.unwrap();
    let aws = Aws::new().await.unwrap();
    tenant(&db, "acme", &aws.bucket, MatchKey::ExternalId, MAPPING).await;
    let w = workers(&db, &aws, Duration::from_secs(30), 7);
    aws.put("acme/1.csv", employees_csv(20, false))
        .await
        .unwrap();
    intake_all(&db, &aws).await;
    run_next(&w).await;

    let file = temp_file("short.csv", employees_csv(5, false).as_bytes());
    let t = userfeed::tenants::by_slug(&db.db, "acme").await.unwrap();
    let before = snapshot(&db).await;
    let shown = preview(&db.db, &t, &file, 7, Default::default(), None)
        .await
        .unwrap();
    assert_eq!(snapshot(&db).await, before);
    let held = shown.held.as_ref().expect("would be held");
    assert_eq!(held.deactivations, 15);
    assert!(held.reason.contains("15 of 20"), "{}", held.reason);
    let waiting = shown
        .changes
        .iter()
        .filter(|c| c.kind == "deactivated")
        .count();
    assert_eq!(waiting, 15, "the people who would wait are listed");

    aws.put("acme/2.csv", employees_csv(5, false))
        .await
        .unwrap();
    let ids = intake_all(&db, &aws).await;
    run_next(&w).await;
    let real = upload(&db, ids[0]).await;
    assert_eq!((real.state.as_str(), real.held_deactivations), ("held", 15));
    assert_eq!(upload_counts(&real), counts(&shown));
}

#[tokio::test]
async fn preview_on_the_command_line_prints_the_outcome_and_names_a_failing_files_reason() {
    let db = TestDb::new().await.unwrap();
    tenant(&db, "acme", "bucket", MatchKey::ExternalId, MAPPING).await;
    let good = temp_file("good.csv", employees_csv(3, false).as_bytes());
    let out = cli(
        &db.url,
        &["preview", "--tenant", "acme", good.to_str().unwrap()],
    )
    .await
    .unwrap();
    assert!(out.contains("nothing was changed"), "{out}");
    assert!(
        out.contains("read 3, created 3, updated 0, unchanged 0, rejected 0, deactivated 0"),
        "{out}"
    );
    assert!(out.contains("user2@example.com"), "changes listed: {out}");
    assert_eq!(db.scalar("SELECT count(*) FROM users").await, 0);

    let broken = temp_file("broken.csv", b"Employee ID,Email\nE1,a@example.com\n");
    let t = userfeed::tenants::by_slug(&db.db, "acme").await.unwrap();
    match preview(&db.db, &t, &broken, 100, Default::default(), None).await {
        Err(PreviewError::WouldFail(reason)) => {
            assert!(reason.contains("missing mapped column"), "{reason}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    let err = cli(
        &db.url,
        &["preview", "--tenant", "acme", broken.to_str().unwrap()],
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("the file would fail"), "{err}");
    assert_eq!(db.scalar("SELECT count(*) FROM uploads").await, 0);
}
