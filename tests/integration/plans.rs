//! Plans of the whole-upload statements stay linear whatever the statistics
//! of `upload_rows` say. Its contents churn with every upload, so whenever
//! autovacuum analyzes it, the statistics describe another upload; the
//! statements must not then degrade into nested loops that rescan the
//! upload for every row (measured once: 15 minutes for 1,000,000 rows).

use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use userfeed::db::queries;
use userfeed_tests::TestDb;

/// The plan of `sql` (with `$1` the upload and `$2` a header) after
/// `settings`, as text.
async fn plan(db: &TestDb, settings: Option<&str>, sql: &str) -> String {
    let txn = db.db.begin().await.unwrap();
    if let Some(s) = settings {
        txn.execute_unprepared(s).await.unwrap();
    }
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("EXPLAIN {sql}"),
            [2_i64.into(), "ID".into()],
        ))
        .await
        .unwrap();
    txn.rollback().await.unwrap();
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn marking_repeated_keys_never_nests_loops_even_with_another_uploads_statistics() {
    let db = TestDb::new().await.unwrap();
    // Upload 1 staged and analyzed, as autovacuum would leave it; upload 2
    // is then estimated at about one row.
    db.db
        .execute_unprepared(
            "INSERT INTO upload_rows (upload_id, line, match_key) \
             SELECT 1, g, 'k' || g FROM generate_series(1, 20000) g; \
             ANALYZE upload_rows",
        )
        .await
        .unwrap();
    let unguarded = plan(&db, None, queries::MARK_DUPLICATES).await;
    assert!(
        unguarded.contains("Nested Loop"),
        "the hazard this guards against: the default plan nests loops\n{unguarded}"
    );
    let guarded = plan(
        &db,
        Some(queries::MARK_DUPLICATES_PLANNER),
        queries::MARK_DUPLICATES,
    )
    .await;
    assert!(
        !guarded.contains("Nested Loop"),
        "with its planner settings the statement joins without nested loops\n{guarded}"
    );
}
