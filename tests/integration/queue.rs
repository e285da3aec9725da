//! Claiming, leases and fencing, on both backends: real PostgreSQL
//! (`FOR UPDATE SKIP LOCKED`) and SQLite (one atomic statement under the
//! single write lock). Each test runs once per backend (`each_backend!`).

use std::collections::HashMap;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use userfeed::intake::{event::ObjectCreated, record_upload};
use userfeed::jobs::Queue;
use userfeed::jobs::lease::{FenceError, fence};
use userfeed::map::MatchKey;
use userfeed_tests::*;

async fn enqueue(db: &TestDb, tenant_id: i64, key: &str) -> i64 {
    let obj = ObjectCreated {
        bucket: "b".into(),
        key: key.into(),
        size: Some(1),
        etag: Some("e".into()),
        version_id: None,
        sequencer: Some(unique("seq")),
        event_time: None,
    };
    record_upload(&db.db, tenant_id, userfeed::upload::UploadSource::S3, &obj)
        .await
        .unwrap()
        .expect("new upload")
}

each_backend!(
    claim_takes_the_oldest_upload_per_tenant_and_blocks_the_tenant_while_it_runs,
    expired_lease_is_reclaimed_with_a_new_token_and_the_old_holder_is_fenced_out,
    concurrent_claimers_never_run_two_uploads_of_one_tenant,
    hand_back_on_shutdown_makes_the_upload_claimable_at_once_without_using_an_attempt,
    transient_hand_back_delays_the_retry,
    a_head_waiting_out_its_backoff_still_holds_back_the_tenants_newer_files_but_not_others,
    the_schema_allows_exactly_the_upload_states_jobs_state_names,
);

async fn tenant_id(db: &TestDb, slug: &str) -> i64 {
    userfeed::tenants::add(&db.db, slug, "b", slug, MatchKey::Email)
        .await
        .unwrap()
        .id
}

async fn claim_takes_the_oldest_upload_per_tenant_and_blocks_the_tenant_while_it_runs(
    backend: DbBackend,
) {
    let db = TestDb::of(backend).await.unwrap();
    let (a, b) = (tenant_id(&db, "a").await, tenant_id(&db, "b").await);
    let a1 = enqueue(&db, a, "a/1.csv").await;
    let a2 = enqueue(&db, a, "a/2.csv").await;
    let b1 = enqueue(&db, b, "b/1.csv").await;
    let q = Queue::new(db.db.clone(), "w1", Duration::from_secs(60));

    let first = q.claim().await.unwrap().expect("a1 claimable");
    assert_eq!(first.lease.upload_id, a1);
    assert_eq!(first.attempts, 1);
    // a2 must wait for a1; b1 is free.
    let second = q.claim().await.unwrap().expect("b1 claimable");
    assert_eq!(second.lease.upload_id, b1);
    assert!(
        q.claim().await.unwrap().is_none(),
        "a2 must not run while a1 runs"
    );

    // Once a1 ends, a2 becomes the tenant's head.
    assert!(
        q.fail(&first.lease, "test", &Default::default())
            .await
            .unwrap()
    );
    let third = q.claim().await.unwrap().expect("a2 claimable after a1");
    assert_eq!(third.lease.upload_id, a2);
}

async fn expired_lease_is_reclaimed_with_a_new_token_and_the_old_holder_is_fenced_out(
    backend: DbBackend,
) {
    let db = TestDb::of(backend).await.unwrap();
    let t = tenant_id(&db, "acme").await;
    let id = enqueue(&db, t, "acme/x.csv").await;
    let old = Queue::new(db.db.clone(), "old", Duration::from_secs(60));
    let new = Queue::new(db.db.clone(), "new", Duration::from_secs(60));

    let held = old.claim().await.unwrap().unwrap();
    assert!(
        new.claim().await.unwrap().is_none(),
        "a live lease blocks re-claiming"
    );
    // Simulate the holder dying: its lease runs out.
    let expired = match backend {
        DbBackend::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 seconds')",
        _ => "now() - interval '1 second'",
    };
    db.db
        .execute_unprepared(&format!(
            "UPDATE uploads SET lease_expires_at = {expired} WHERE id = {id}"
        ))
        .await
        .unwrap();
    let taken = new
        .claim()
        .await
        .unwrap()
        .expect("expired lease is claimable");
    assert_eq!(taken.lease.upload_id, id);
    assert_eq!(taken.lease.token, held.lease.token + 1);
    assert_eq!(taken.attempts, 2);

    // The old holder can neither renew nor write a batch.
    assert!(!old.renew(&held.lease).await.unwrap());
    let txn = db.db.begin().await.unwrap();
    assert!(matches!(
        fence(&txn, &held.lease).await,
        Err(FenceError::LeaseLost)
    ));
    drop(txn);
    assert!(
        !old.fail(&held.lease, "late", &Default::default())
            .await
            .unwrap()
    );
    // The new holder can.
    let txn = db.db.begin().await.unwrap();
    fence(&txn, &taken.lease).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(upload(&db, id).await.lease_owner.as_deref(), Some("new"));
}

async fn concurrent_claimers_never_run_two_uploads_of_one_tenant(backend: DbBackend) {
    let db = TestDb::of(backend).await.unwrap();
    let mut heads = HashMap::new();
    for slug in ["t1", "t2", "t3"] {
        let t = tenant_id(&db, slug).await;
        for i in 0..4 {
            let id = enqueue(&db, t, &format!("{slug}/{i}.csv")).await;
            heads.entry(t).or_insert(id);
        }
    }
    let mut tasks = Vec::new();
    for i in 0..12 {
        let q = Queue::new(db.db.clone(), format!("w{i}"), Duration::from_secs(60));
        tasks.push(tokio::spawn(async move { q.claim().await.unwrap() }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        if let Some(c) = t.await.unwrap() {
            claimed.push(c);
        }
    }
    assert_eq!(
        claimed.len(),
        3,
        "exactly one upload per tenant: {claimed:?}"
    );
    for c in &claimed {
        assert_eq!(
            heads[&c.tenant_id], c.lease.upload_id,
            "each tenant's oldest upload runs first"
        );
    }
    assert_eq!(
        db.scalar("SELECT count(*) FROM uploads WHERE state = 'running'")
            .await,
        3
    );
}

async fn hand_back_on_shutdown_makes_the_upload_claimable_at_once_without_using_an_attempt(
    backend: DbBackend,
) {
    let db = TestDb::of(backend).await.unwrap();
    let t = tenant_id(&db, "acme").await;
    let id = enqueue(&db, t, "acme/x.csv").await;
    let q = Queue::new(db.db.clone(), "w", Duration::from_secs(60));
    let c = q.claim().await.unwrap().unwrap();
    assert!(
        q.hand_back(&c.lease, Duration::ZERO, true, None)
            .await
            .unwrap()
    );
    let again = q.claim().await.unwrap().expect("claimable again at once");
    assert_eq!(again.lease.upload_id, id);
    assert_eq!(
        again.attempts, 1,
        "a shutdown hand-back does not count as an attempt"
    );
}

async fn transient_hand_back_delays_the_retry(backend: DbBackend) {
    let db = TestDb::of(backend).await.unwrap();
    let t = tenant_id(&db, "acme").await;
    enqueue(&db, t, "acme/x.csv").await;
    let q = Queue::new(db.db.clone(), "w", Duration::from_secs(60));
    let c = q.claim().await.unwrap().unwrap();
    assert!(
        q.hand_back(
            &c.lease,
            Duration::from_secs(300),
            false,
            Some("S3 timed out")
        )
        .await
        .unwrap()
    );
    assert!(q.claim().await.unwrap().is_none(), "backoff not yet over");
    let row = db
        .db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT failure_reason FROM uploads",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<String>(0).unwrap(), "S3 timed out");
}

async fn a_head_waiting_out_its_backoff_still_holds_back_the_tenants_newer_files_but_not_others(
    backend: DbBackend,
) {
    let db = TestDb::of(backend).await.unwrap();
    let (a, b) = (tenant_id(&db, "a").await, tenant_id(&db, "b").await);
    enqueue(&db, a, "a/1.csv").await;
    let a2 = enqueue(&db, a, "a/2.csv").await;
    let b1 = enqueue(&db, b, "b/1.csv").await;
    let q = Queue::new(db.db.clone(), "w", Duration::from_secs(60));
    let first = q.claim().await.unwrap().unwrap();
    assert!(
        q.hand_back(&first.lease, Duration::from_secs(300), false, Some("retry"))
            .await
            .unwrap()
    );
    // a/1 waits for its retry; a/2 must not overtake it. b/1 is free.
    let next = q.claim().await.unwrap().expect("b1");
    assert_eq!(next.lease.upload_id, b1);
    assert!(
        q.claim().await.unwrap().is_none(),
        "a2 ({a2}) stays behind a1"
    );
}

async fn the_schema_allows_exactly_the_upload_states_jobs_state_names(backend: DbBackend) {
    let db = TestDb::of(backend).await.unwrap();
    let checks = match backend {
        DbBackend::Sqlite => {
            // The CHECK as written in the table's SQL, up to its closing parenthesis.
            let table = db
                .rows("SELECT sql FROM sqlite_master WHERE name = 'uploads'")
                .await;
            let at = table[0].find("CHECK (state IN").expect("a state CHECK");
            let check = &table[0][at..];
            vec![check[..check.find(')').unwrap()].to_string()]
        }
        _ => {
            db.rows(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint
                 WHERE conrelid = 'uploads'::regclass AND contype = 'c'
                   AND pg_get_constraintdef(oid) LIKE '%(state %'",
            )
            .await
        }
    };
    assert_eq!(checks.len(), 1, "{checks:?}");
    // The quoted names of the CHECK, e.g. (state = ANY (ARRAY['queued'::text, ...])).
    let mut allowed: Vec<&str> = checks[0].split('\'').skip(1).step_by(2).collect();
    allowed.sort_unstable();
    let mut named: Vec<&str> = userfeed::jobs::UploadState::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    named.sort_unstable();
    assert_eq!(allowed, named);
}
