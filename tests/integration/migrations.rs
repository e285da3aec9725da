//! Migrations: many processes may run them at once (every pod's init
//! container does during a rollout); they take turns and apply each once.

use sea_orm::ConnectionTrait;
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

/// The roles of the test's three users, Learner included, as 0012 stored
/// them and as `user_all_roles` lists them after 0013.
const EVERY_ROLE: [&str; 5] = [
    "100 learner",
    "100 manager",
    "101 learner",
    "102 administrator",
    "102 learner",
];

/// Applies the migrations before `name` (from an empty database), or rolls
/// back to just before it, by position, so later migrations do not move it.
async fn at_migration(db: &sea_orm::DatabaseConnection, name: &str, up: bool) {
    let all = userfeed_migrations::Migrator::migrations();
    let pos = all
        .iter()
        .position(|m| m.name() == name)
        .unwrap_or_else(|| panic!("no migration {name}"));
    if up {
        userfeed_migrations::Migrator::up(db, Some(pos as u32))
            .await
            .unwrap();
    } else {
        userfeed_migrations::Migrator::down(db, Some((all.len() - pos) as u32))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn migration_0013_turns_learner_rows_and_creation_entries_into_the_implicit_forms_and_back() {
    let db = TestDb::empty().await.unwrap();
    at_migration(&db.db, "m0013_lean_first_load", true).await;
    // A tenant's history as 0012 wrote it: every user a Learner row, each
    // creation a change-log entry.
    db.db
        .execute_unprepared(
            "INSERT INTO tenants (id, slug, bucket, key_prefix) VALUES (1, 'acme', 'b', 'acme/');
             INSERT INTO uploads (id, tenant_id, bucket, object_key, object_identity, state)
                 VALUES (10, 1, 'b', 'acme/1.csv', 'v1', 'succeeded'),
                        (11, 1, 'b', 'acme/2.csv', 'v2', 'succeeded');
             INSERT INTO users (id, tenant_id, email, created_by_upload_id)
                 VALUES (100, 1, 'ann@x.io', 10), (101, 1, 'bob@x.io', 10), (102, 1, 'cy@x.io', NULL);
             INSERT INTO user_roles VALUES (100, 'learner'), (100, 'manager'), (101, 'learner'),
                                           (102, 'learner'), (102, 'administrator');
             INSERT INTO upload_changes (upload_id, user_id, kind, changes)
                 VALUES (10, 100, 'created', NULL), (10, 101, 'created', NULL),
                        (11, 102, 'created', NULL),
                        (11, 100, 'updated', '{\"first_name\": [\"A\", \"Ann\"]}');",
        )
        .await
        .unwrap();
    userfeed::db::migrate(&db.db).await.unwrap();
    assert_eq!(
        db.rows("SELECT user_id || ' ' || role FROM user_roles ORDER BY 1")
            .await,
        vec!["100 manager", "102 administrator"],
        "only the roles that are not implicit stay rows"
    );
    assert_eq!(
        db.rows("SELECT user_id || ' ' || role FROM user_all_roles ORDER BY 1")
            .await,
        EVERY_ROLE,
        "readers still see every user as a Learner"
    );
    assert_eq!(
        db.rows("SELECT upload_id || ' ' || kind FROM upload_changes ORDER BY 1")
            .await,
        vec!["11 updated"]
    );
    assert_eq!(
        listed(&db.db).await,
        vec![
            "10 created ann@x.io",
            "10 created bob@x.io",
            "11 created cy@x.io",
            "11 updated ann@x.io"
        ],
        "the creation logged for a user whose column was empty is kept in the column"
    );
    // The users' tenant key is now a delete trigger: a tenant's users go with it.
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_constraint WHERE conname = 'users_tenant_id_fkey'")
            .await,
        0
    );

    at_migration(&db.db, "m0013_lean_first_load", false).await;
    assert_eq!(
        db.rows("SELECT user_id || ' ' || role FROM user_roles ORDER BY 1")
            .await,
        EVERY_ROLE
    );
    assert_eq!(
        db.rows("SELECT upload_id || ' ' || user_id || ' ' || kind FROM upload_changes ORDER BY 1")
            .await,
        vec![
            "10 100 created",
            "10 101 created",
            "11 100 updated",
            "11 102 created"
        ]
    );
    db.db
        .execute_unprepared("DELETE FROM tenants WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(
        db.scalar("SELECT count(*) FROM users").await,
        0,
        "the key's cascade is back"
    );
}

/// Uploads 10 and 11's change logs as `report::changes` lists them.
async fn listed(db: &sea_orm::DatabaseConnection) -> Vec<String> {
    let mut out = Vec::new();
    for id in [10, 11] {
        for c in userfeed::report::changes(db, id).await.unwrap() {
            out.push(format!("{id} {} {}", c.kind, c.email));
        }
    }
    out
}

#[tokio::test]
async fn sqlite_migrates_to_the_current_schema_once_and_down_again() {
    let db = TestDb::sqlite().await.unwrap();
    // TestDb::sqlite migrated it; a second run changes nothing.
    userfeed::db::migrate(&db.db).await.unwrap();
    let known = userfeed_migrations::Migrator::migrations().len() as i64;
    assert_eq!(
        db.scalar("SELECT count(*) FROM seaql_migrations").await,
        known
    );
    assert!(
        userfeed::db::pending_migrations(&db.db)
            .await
            .unwrap()
            .is_empty()
    );
    let tables = db
        .rows("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .await;
    assert_eq!(
        tables,
        [
            "group_memberships",
            "groups",
            "notification_attempts",
            "notifications",
            "profile_fields",
            "seaql_migrations",
            "tenant_credentials",
            "tenants",
            "ui_sessions",
            "upload_bodies",
            "upload_changes",
            "upload_deactivations",
            "upload_link_changes",
            "upload_pending",
            "upload_row_errors",
            "upload_rows",
            "uploads",
            "user_all_roles",
            "user_managers",
            "user_roles",
            "users",
            "xero_connections",
        ]
    );
    userfeed_migrations::Migrator::down(&db.db, None)
        .await
        .unwrap();
    assert_eq!(
        db.rows("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
            .await,
        ["seaql_migrations"]
    );
}
