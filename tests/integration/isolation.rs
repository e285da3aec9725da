//! Tenant isolation: a file under one tenant's prefix reads and writes only
//! that tenant's rows, even when its emails, manager emails, group IDs and
//! external IDs are those of another tenant's users and groups. Every
//! store's statements are exercised: the PostgreSQL store in batch mode
//! (small files) and whole-file mode, and the portable store on SQLite.

use std::sync::Arc;
use std::time::Duration;

use userfeed::apply::postgres::PgStore;
use userfeed::map::MatchKey;
use userfeed_tests::*;

const MAPPING: &str = LINK_MAPPING;
const HEADER: &str = LINK_HEADER;

/// Which store applies the files.
enum Store {
    PgBatches,
    PgWholeFile,
    PortableOnSqlite,
}

async fn isolation(key: MatchKey, store: Store) {
    let db = match store {
        Store::PortableOnSqlite => TestDb::sqlite().await.unwrap(),
        _ => TestDb::new().await.unwrap(),
    };
    let aws = Aws::new().await.unwrap();
    let w = match store {
        Store::PgBatches => {
            let s = PgStore::new(db.db.clone()).with_whole_file(u64::MAX, 1);
            workers_with(&db, &aws, Duration::from_secs(30), 2, Arc::new(s))
        }
        Store::PgWholeFile => {
            let s = PgStore::new(db.db.clone()).with_whole_file(0, 2);
            workers_with(&db, &aws, Duration::from_secs(30), 2, Arc::new(s))
        }
        Store::PortableOnSqlite => workers(&db, &aws, Duration::from_secs(30), 2),
    };
    for slug in ["alpha", "beta"] {
        tenant(&db, slug, &aws.bucket, key, MAPPING).await;
    }
    // Beta has group G1; alpha has only G2.
    userfeed::groups::add(&db.db, "beta", "G1", "Beta's group")
        .await
        .unwrap();
    userfeed::groups::add(&db.db, "alpha", "G2", "Alpha's group")
        .await
        .unwrap();
    let run = |slug: &'static str, rows: &'static str| {
        let (db, aws, w) = (&db, &aws, &w);
        async move {
            aws.put(&unique(&format!("{slug}/f-")), format!("{HEADER}{rows}"))
                .await
                .unwrap();
            let ids = intake_all(db, aws).await;
            assert_eq!(ids.len(), 1);
            run_next(w).await;
            let up = upload(db, ids[0]).await;
            assert_eq!(up.state, "succeeded", "{:?}", up.failure_reason);
            up
        }
    };
    run(
        "beta",
        "E1,boss@x.io,Beta,Boss,,G1,Admin\nE2,ann@x.io,Beta,Ann,boss@x.io,G1,\n",
    )
    .await;
    let beta = tenant_state(&db, "beta").await;
    assert!(beta.len() >= 6, "{beta:?}");

    // Alpha's file names beta's people, emails, IDs, manager and group.
    let up = run(
        "alpha",
        "E1,ann@x.io,Alpha,Ann,boss@x.io,G1|G2,Manager\nE9,zed@x.io,Alpha,Zed,ann@x.io,,\n",
    )
    .await;
    assert_eq!(up.rows_created, 2, "alpha's own users, whatever beta has");
    assert_eq!(up.rows_updated, 0);
    let warnings = db
        .rows(&format!(
            "SELECT message FROM upload_row_errors WHERE upload_id = {} ORDER BY line, message",
            up.id
        ))
        .await;
    assert_eq!(
        warnings,
        vec![
            "group \"G1\" is not a group of this tenant; membership skipped".to_string(),
            "manager \"boss@x.io\" is not a user of this tenant; that link was skipped".to_string(),
        ]
    );
    assert_eq!(
        tenant_state(&db, "alpha").await,
        vec![
            "manager zed@x.io<-ann@x.io",
            "member ann@x.io of G2",
            "role ann@x.io learner",
            "role ann@x.io manager",
            "role zed@x.io learner",
            "user ann@x.io E1 Alpha active=true",
            "user zed@x.io E9 Alpha active=true",
        ]
    );
    assert_eq!(tenant_state(&db, "beta").await, beta, "beta untouched");

    // Alpha's next file leaves everyone out but one: only alpha's absent
    // are deactivated.
    run("alpha", "E9,zed@x.io,Alpha,Zed,,,\n").await;
    assert_eq!(tenant_state(&db, "beta").await, beta, "beta untouched");
    assert!(
        tenant_state(&db, "alpha")
            .await
            .contains(&"user ann@x.io E1 Alpha active=false".to_string())
    );
}

#[tokio::test]
async fn a_file_naming_another_tenants_people_ids_managers_and_groups_touches_only_its_own_by_email()
 {
    isolation(MatchKey::Email, Store::PgBatches).await;
}

#[tokio::test]
async fn a_file_naming_another_tenants_people_ids_managers_and_groups_touches_only_its_own_by_external_id_whole_file()
 {
    isolation(MatchKey::ExternalId, Store::PgWholeFile).await;
}

#[tokio::test]
async fn on_sqlite_a_file_naming_another_tenants_people_touches_only_its_own_by_email() {
    isolation(MatchKey::Email, Store::PortableOnSqlite).await;
}

#[tokio::test]
async fn on_sqlite_a_file_naming_another_tenants_people_touches_only_its_own_by_external_id() {
    isolation(MatchKey::ExternalId, Store::PortableOnSqlite).await;
}
