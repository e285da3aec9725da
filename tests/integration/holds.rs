//! Deactivation safety: the per-tenant cap, held uploads, approve/reject,
//! header-only files, and superseded uploads.

use std::time::Duration;

use sea_orm::DbBackend;
use userfeed::apply::holds::{self, HoldError};
use userfeed::map::MatchKey;
use userfeed_tests::*;

each_backend!(
    an_upload_over_the_cap_applies_changes_but_holds_deactivations_until_approved,
    a_rejected_hold_drops_its_deactivations,
    approving_is_refused_once_a_newer_upload_of_the_tenant_has_run,
    a_file_with_a_header_and_no_rows_is_always_held,
    status_zero_deactivations_count_toward_the_cap_and_wait_too,
    deactivations_within_the_cap_are_applied_with_the_upload,
    of_three_queued_uploads_only_the_newest_runs_and_the_others_are_superseded,
    the_change_log_lists_created_updated_with_old_and_new_deactivated_and_reactivated,
);

struct Env {
    db: TestDb,
    aws: Aws,
    w: std::sync::Arc<userfeed::jobs::Workers>,
}

async fn env(backend: DbBackend, mapping: &str) -> Env {
    let db = TestDb::of(backend).await.unwrap();
    let aws = Aws::new().await.unwrap();
    tenant(&db, "acme", &aws.bucket, MatchKey::ExternalId, mapping).await;
    let w = workers(&db, &aws, Duration::from_secs(30), 7);
    Env { db, aws, w }
}

impl Env {
    async fn apply(
        &self,
        key: &str,
        body: impl Into<Vec<u8>>,
    ) -> userfeed::db::entity::upload::Model {
        self.aws.put(key, body).await.unwrap();
        let ids = intake_all(&self.db, &self.aws).await;
        run_next(&self.w).await;
        upload(&self.db, ids[0]).await
    }
    async fn active(&self) -> i64 {
        self.db
            .scalar("SELECT count(*) FROM users WHERE active")
            .await
    }
}

/// The first `keep` employees of 20, with employee 0 renamed.
fn shrunk(keep: usize) -> String {
    employees_csv(keep, false).replace(
        "E0,user0@example.com,First0",
        "E0,user0@example.com,Renamed",
    )
}

async fn an_upload_over_the_cap_applies_changes_but_holds_deactivations_until_approved(
    backend: DbBackend,
) {
    let e = env(backend, MAPPING).await;
    e.apply("acme/1.csv", employees_csv(20, false)).await;
    let up = e.apply("acme/2.csv", shrunk(5)).await;
    assert_eq!(up.state, "held");
    assert_eq!(
        (up.held_deactivations, up.rows_deactivated, up.rows_updated),
        (15, 0, 1)
    );
    assert!(
        up.hold_reason.as_deref().unwrap().contains("15 of 20"),
        "{:?}",
        up.hold_reason
    );
    assert_eq!(e.active().await, 20, "nobody deactivated yet");
    assert_eq!(
        e.db.rows("SELECT first_name FROM users WHERE external_id = 'E0'")
            .await,
        vec!["Renamed"]
    );

    assert_eq!(holds::approve(&e.db.db, up.id).await.unwrap(), 15);
    assert_eq!(e.active().await, 5);
    let up = upload(&e.db, up.id).await;
    assert_eq!(
        (
            up.state.as_str(),
            up.hold_resolution.as_deref(),
            up.rows_deactivated
        ),
        ("succeeded", Some("approved"), 15)
    );
    assert!(
        matches!(
            holds::approve(&e.db.db, up.id).await,
            Err(HoldError::NotHeld { .. })
        ),
        "approving twice is refused"
    );
}

async fn a_rejected_hold_drops_its_deactivations(backend: DbBackend) {
    let e = env(backend, MAPPING).await;
    e.apply("acme/1.csv", employees_csv(20, false)).await;
    let up = e.apply("acme/2.csv", shrunk(5)).await;
    assert_eq!(holds::reject(&e.db.db, up.id).await.unwrap(), 15);
    assert_eq!(e.active().await, 20);
    let up = upload(&e.db, up.id).await;
    assert_eq!(
        (
            up.state.as_str(),
            up.hold_resolution.as_deref(),
            up.rows_deactivated
        ),
        ("succeeded", Some("rejected"), 0)
    );
    assert_eq!(
        e.db.scalar("SELECT count(*) FROM upload_deactivations")
            .await,
        0
    );
}

async fn approving_is_refused_once_a_newer_upload_of_the_tenant_has_run(backend: DbBackend) {
    let e = env(backend, MAPPING).await;
    e.apply("acme/1.csv", employees_csv(20, false)).await;
    let held = e.apply("acme/2.csv", shrunk(5)).await;
    let newer = e.apply("acme/3.csv", employees_csv(20, false)).await;
    assert_eq!(newer.state, "succeeded");
    match holds::approve(&e.db.db, held.id).await {
        Err(HoldError::NewerRan { newer: n, .. }) => assert_eq!(n, newer.id),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.active().await, 20);
    assert_eq!(
        upload(&e.db, held.id).await.state,
        "held",
        "still waiting for a reject"
    );
}

async fn a_file_with_a_header_and_no_rows_is_always_held(backend: DbBackend) {
    let e = env(backend, MAPPING).await;
    e.apply("acme/1.csv", employees_csv(3, false)).await;
    let up = e
        .apply(
            "acme/empty.csv",
            "Employee ID,Work Email,First Name,Last Name\n",
        )
        .await;
    assert_eq!((up.state.as_str(), up.held_deactivations), ("held", 3));
    assert!(up.hold_reason.unwrap().contains("no rows"));
    assert_eq!(e.active().await, 3);
}

async fn status_zero_deactivations_count_toward_the_cap_and_wait_too(backend: DbBackend) {
    let e = env(backend, MAPPING_WITH_STATUS).await;
    e.apply("acme/1.csv", employees_csv(20, true)).await;
    let mut file = String::from("Employee ID,Work Email,First Name,Last Name,Status\n");
    for i in 0..20 {
        file.push_str(&format!(
            "E{i},user{i}@example.com,First{i},Last{i},{}\n",
            if i < 15 { "0" } else { "1" }
        ));
    }
    let up = e.apply("acme/2.csv", file).await;
    assert_eq!(
        (up.state.as_str(), up.held_deactivations, up.rows_unchanged),
        ("held", 15, 5)
    );
    assert_eq!(e.active().await, 20);
    holds::approve(&e.db.db, up.id).await.unwrap();
    assert_eq!(e.active().await, 5);
}

async fn deactivations_within_the_cap_are_applied_with_the_upload(backend: DbBackend) {
    let e = env(backend, MAPPING).await;
    e.apply("acme/1.csv", employees_csv(20, false)).await;
    userfeed::tenants::set_hold_limits(&e.db.db, "acme", Some(80), Some(10))
        .await
        .unwrap();
    let up = e.apply("acme/2.csv", shrunk(5)).await;
    assert_eq!(
        (up.state.as_str(), up.rows_deactivated),
        ("succeeded", 15),
        "75% is within an 80% cap"
    );
    assert_eq!(e.active().await, 5);
}

async fn of_three_queued_uploads_only_the_newest_runs_and_the_others_are_superseded(
    backend: DbBackend,
) {
    let e = env(backend, MAPPING).await;
    for (i, n) in [(1, 3), (2, 4), (3, 5)] {
        e.aws
            .put(&format!("acme/{i}.csv"), employees_csv(n, false))
            .await
            .unwrap();
    }
    let ids = intake_all(&e.db, &e.aws).await;
    assert_eq!(ids.len(), 3);
    for _ in 0..3 {
        run_next(&e.w).await;
    }
    assert!(run_next(&e.w).await.is_none());
    let ups = [
        upload(&e.db, ids[0]).await,
        upload(&e.db, ids[1]).await,
        upload(&e.db, ids[2]).await,
    ];
    assert_eq!(
        ups.iter().map(|u| u.state.as_str()).collect::<Vec<_>>(),
        ["superseded", "superseded", "succeeded"]
    );
    assert_eq!(
        (ups[0].superseded_by, ups[1].superseded_by),
        (Some(ids[2]), Some(ids[2]))
    );
    assert_eq!(
        (ups[0].rows_read, ups[2].rows_created),
        (0, 5),
        "superseded files are never read"
    );
}

async fn the_change_log_lists_created_updated_with_old_and_new_deactivated_and_reactivated(
    backend: DbBackend,
) {
    use userfeed::report::changes;
    let mapping = format!("{MAPPING}\n[profile]\ndepartment = \"Dept\"\n");
    let e = env(backend, &mapping).await;
    let header = "Employee ID,Work Email,First Name,Last Name,Dept\n";
    let first = e.apply("acme/1.csv", format!("{header}E0,a@example.com,Ann,A,Sales\nE1,b@example.com,Bob,B,Ops\nE2,c@example.com,Cy,C,Ops\n")).await;
    assert_eq!(
        changes(&e.db.db, first.id)
            .await
            .unwrap()
            .iter()
            .filter(|c| c.kind == "created")
            .count(),
        3
    );

    let second = e.apply("acme/2.csv", format!("{header}E0,a@example.com,Ann,A,Sales\nE1,b@example.com,Robert,B,Finance\nE3,d@example.com,Di,D,Ops\n")).await;
    let log = changes(&e.db.db, second.id).await.unwrap();
    let kinds: Vec<(&str, &str)> = log
        .iter()
        .map(|c| (c.kind.as_str(), c.email.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("created", "d@example.com"),
            ("deactivated", "c@example.com"),
            ("updated", "b@example.com")
        ]
    );
    let diff = log[2].changes.as_ref().unwrap();
    assert_eq!(diff["first_name"], serde_json::json!(["Bob", "Robert"]));
    assert_eq!(
        diff["profile.department"],
        serde_json::json!(["Ops", "Finance"])
    );
    assert_eq!(
        diff.as_object().unwrap().len(),
        2,
        "only what changed: {diff}"
    );

    let third = e.apply("acme/3.csv", format!("{header}E0,a@example.com,Ann,A,Sales\nE1,b@example.com,Robert,B,Finance\nE2,c@example.com,Cy,C,Ops\nE3,d@example.com,Di,D,Ops\n")).await;
    let log = changes(&e.db.db, third.id).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].kind.as_str(), log[0].email.as_str()),
        ("reactivated", "c@example.com")
    );
    assert!(userfeed::cli::render::changes_table(&log).contains("active: false -> true"));
}
