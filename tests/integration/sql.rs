//! The named queries (`worker/src/db/sql/postgres/*.sql`): PostgreSQL
//! accepts every one against the migrated schema, so a statement broken by
//! an edit of its file, a fragment or a message fails here, not in the
//! middle of a customer's upload.

use sea_orm::sqlx::{self, Executor, SqlSafeStr};
use userfeed::db::queries;
use userfeed_tests::*;

/// Asks PostgreSQL to accept `sql`: ordinary statements are parsed, planned
/// and described (as sqlx prepares them at run time); `COPY ... FROM STDIN`
/// is started and aborted; settings and other utility statements are run in
/// a transaction that is rolled back.
async fn accept(pool: &sqlx::PgPool, sql: &str) -> Result<(), String> {
    let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
    let head = sql
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let res = match head.as_str() {
        "COPY" => match tx.copy_in_raw(sql).await {
            Ok(copy) => copy.abort("checked").await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        "SET" | "LOCK" | "TRUNCATE" | "ANALYZE" => tx
            .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())))
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
        _ => (&mut *tx)
            .prepare(sqlx::AssertSqlSafe(sql).into_sql_str())
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
    };
    tx.rollback().await.ok();
    res
}

#[tokio::test]
async fn postgresql_accepts_every_named_statement_against_the_migrated_schema() {
    let db = TestDb::new().await.unwrap();
    let pool = db.db.get_postgres_connection_pool();
    assert!(queries::ALL.len() >= 50, "the generated list is complete");
    let mut refused = Vec::new();
    for (name, sql) in queries::ALL {
        if let Err(e) = accept(pool, sql).await {
            refused.push(format!("{name}: {e}"));
        }
    }
    assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
}

#[tokio::test]
async fn a_statement_postgresql_refuses_is_reported_with_the_reason() {
    // The check itself can fail: a misspelt column is refused by name.
    let db = TestDb::new().await.unwrap();
    let pool = db.db.get_postgres_connection_pool();
    let broken = queries::RENEW_LEASE.replace("lease_expires_at", "lease_expires");
    let err = accept(pool, &broken).await.unwrap_err();
    assert!(err.contains("lease_expires"), "{err}");
    let err = accept(pool, "COPY upload_rows (no_such_column) FROM STDIN")
        .await
        .unwrap_err();
    assert!(err.contains("no_such_column"), "{err}");
}

#[tokio::test]
async fn sqlite_accepts_every_named_statement_of_its_own_against_its_migrated_schema() {
    let db = TestDb::sqlite().await.unwrap();
    let pool = db.db.get_sqlite_connection_pool();
    assert!(!queries::sqlite::ALL.is_empty());
    let mut refused = Vec::new();
    for (name, sql) in queries::sqlite::ALL {
        let mut conn = pool.acquire().await.unwrap();
        if let Err(e) = (&mut *conn)
            .prepare(sqlx::AssertSqlSafe(*sql).into_sql_str())
            .await
        {
            refused.push(format!("{name}: {e}"));
        }
    }
    assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
    // And the check can fail: SQLite names what it does not know.
    let mut conn = pool.acquire().await.unwrap();
    let err = (&mut *conn)
        .prepare(sqlx::AssertSqlSafe("UPDATE uploads SET no_such_column = 1").into_sql_str())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no_such_column"), "{err}");
}

#[tokio::test]
async fn each_backend_has_its_own_version_of_every_shared_statement() {
    // The statements code picks by backend (queries::of) differ where the
    // dialects do: the SQLite claim has no SKIP LOCKED, PostgreSQL's has.
    let pg = queries::of(sea_orm::DbBackend::Postgres);
    let lite = queries::of(sea_orm::DbBackend::Sqlite);
    assert!(pg.claim.contains("SKIP LOCKED"));
    assert!(!lite.claim.contains("SKIP LOCKED") && lite.claim.contains("?1"));
    assert_eq!(pg.claim, queries::CLAIM);
    assert_eq!(lite.claim, queries::sqlite::CLAIM);
}
