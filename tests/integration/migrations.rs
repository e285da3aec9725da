//! Migrations: many processes may run them at once (every pod's init
//! container does during a rollout); they take turns and apply each once.

use userfeed_migrations::MigratorTrait;
use userfeed_tests::*;

#[tokio::test]
async fn migrations_run_by_many_processes_at_once_take_turns_and_apply_each_once() {
    let db = TestDb::empty().await.unwrap();
    let mut runs = Vec::new();
    for _ in 0..4 {
        // Separate pools, as separate pods would have.
        let pool = sea_orm::Database::connect(db.url.clone()).await.unwrap();
        runs.push(tokio::spawn(async move {
            userfeed::db::migrate(&pool)
                .await
                .map_err(|e| e.to_string())
        }));
    }
    for run in runs {
        run.await.unwrap().expect("every concurrent run succeeds");
    }
    let applied = db.scalar("SELECT count(*) FROM seaql_migrations").await;
    let known = userfeed_migrations::Migrator::migrations().len() as i64;
    assert_eq!(applied, known);
    assert!(
        userfeed::db::pending_migrations(&db.db)
            .await
            .unwrap()
            .is_empty()
    );
}
