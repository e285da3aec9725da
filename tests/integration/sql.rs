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
