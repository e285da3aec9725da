//! Managers, groups and roles.

use std::time::Duration;

use sea_orm::ConnectionTrait;
use sea_orm::DbBackend;
use userfeed::map::MatchKey;
use userfeed_tests::*;

const HEADER: &str = LINK_HEADER;

each_backend!(
    a_manager_listed_later_in_the_file_than_their_report_is_linked_and_becomes_a_manager,
    managers_are_replaced_by_the_latest_file_and_an_empty_cell_clears_them,
    an_unknown_manager_or_oneself_is_a_warning_and_the_row_still_applies,
    group_memberships_are_only_added_and_survive_a_file_that_no_longer_lists_them,
    roles_merge_with_roles_granted_on_the_platform,
    a_rejected_row_applies_no_links,
    typed_profile_fields_store_typed_values_and_a_misfit_is_a_warning,
    deleting_a_user_group_or_tenant_removes_their_links_roles_and_change_log,
    a_first_load_stores_no_learner_rows_and_no_creation_entries_yet_lists_both,
);

struct Env {
    db: TestDb,
    aws: Aws,
    w: std::sync::Arc<userfeed::jobs::Workers>,
}

async fn env(backend: DbBackend) -> Env {
    let db = TestDb::of(backend).await.unwrap();
    let aws = Aws::new().await.unwrap();
    tenant(&db, "acme", &aws.bucket, MatchKey::ExternalId, LINK_MAPPING).await;
    // Batches of 2 rows: links must work across batches.
    let w = workers(&db, &aws, Duration::from_secs(30), 2);
    Env { db, aws, w }
}

impl Env {
    async fn apply(&self, rows: &str) -> userfeed::db::entity::upload::Model {
        let key = unique("acme/f-") + ".csv";
        self.aws.put(&key, format!("{HEADER}{rows}")).await.unwrap();
        let ids = intake_all(&self.db, &self.aws).await;
        run_next(&self.w).await;
        let up = upload(&self.db, ids[0]).await;
        assert_eq!(up.state, "succeeded", "{:?}", up.failure_reason);
        up
    }

    /// `user<-manager` pairs by email.
    async fn managers(&self) -> Vec<String> {
        self.db
            .rows(
                "SELECT u.email || '<-' || m.email FROM user_managers l JOIN users u ON u.id = l.user_id \
                 JOIN users m ON m.id = l.manager_id ORDER BY 1",
            )
            .await
    }

    async fn roles_of(&self, email: &str) -> Vec<String> {
        self.db
            .rows(&format!(
                "SELECT r.role FROM user_all_roles r JOIN users u ON u.id = r.user_id WHERE u.email = '{email}' ORDER BY 1"
            ))
            .await
    }

    async fn groups_of(&self, email: &str) -> Vec<String> {
        self.db
            .rows(&format!(
                "SELECT g.group_key FROM group_memberships m JOIN groups g ON g.id = m.group_id \
                 JOIN users u ON u.id = m.user_id WHERE u.email = '{email}' ORDER BY 1"
            ))
            .await
    }
}

async fn a_manager_listed_later_in_the_file_than_their_report_is_linked_and_becomes_a_manager(
    backend: DbBackend,
) {
    let e = env(backend).await;
    let up = e
        .apply(
            "1,ann@example.com,Ann,A,boss@example.com|lead@example.com,,\n\
             2,bob@example.com,Bob,B,,,\n\
             3,lead@example.com,Lee,L,boss@example.com,,\n\
             4,boss@example.com,Bo,S,,,\n",
        )
        .await;
    assert_eq!(up.rows_created, 4);
    assert_eq!(
        e.managers().await,
        vec![
            "ann@example.com<-boss@example.com",
            "ann@example.com<-lead@example.com",
            "lead@example.com<-boss@example.com"
        ]
    );
    assert_eq!(
        e.roles_of("boss@example.com").await,
        vec!["learner", "manager"]
    );
    assert_eq!(
        e.roles_of("lead@example.com").await,
        vec!["learner", "manager"]
    );
    assert_eq!(
        e.roles_of("bob@example.com").await,
        vec!["learner"],
        "every user is a learner"
    );
}

async fn managers_are_replaced_by_the_latest_file_and_an_empty_cell_clears_them(
    backend: DbBackend,
) {
    let e = env(backend).await;
    e.apply("1,ann@example.com,Ann,A,old@example.com,,\n2,old@example.com,O,L,,,\n3,new@example.com,N,W,,,\n").await;
    assert_eq!(e.managers().await, vec!["ann@example.com<-old@example.com"]);
    e.apply("1,ann@example.com,Ann,A,new@example.com,,\n2,old@example.com,O,L,,,\n3,new@example.com,N,W,,,\n").await;
    assert_eq!(
        e.managers().await,
        vec!["ann@example.com<-new@example.com"],
        "the previous manager is removed"
    );
    e.apply("1,ann@example.com,Ann,A,,,\n2,old@example.com,O,L,,,\n3,new@example.com,N,W,,,\n")
        .await;
    assert!(
        e.managers().await.is_empty(),
        "an emptied cell clears the managers"
    );
}

async fn an_unknown_manager_or_oneself_is_a_warning_and_the_row_still_applies(backend: DbBackend) {
    let e = env(backend).await;
    let up = e
        .apply("1,ann@example.com,Ann,A,ghost@example.com|ann@example.com,,\n")
        .await;
    assert_eq!((up.rows_created, up.rows_rejected), (1, 0));
    let problems = e
        .db
        .rows(&format!("SELECT line || '|' || severity || '|' || column_name || '|' || message FROM upload_row_errors WHERE upload_id = {} ORDER BY id", up.id))
        .await;
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with("2|warning|Managers|manager \"ghost@example.com\" is not a user"),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with("2|warning|Managers|a user cannot be their own manager"),
        "{problems:?}"
    );
    assert!(e.managers().await.is_empty());
}

async fn group_memberships_are_only_added_and_survive_a_file_that_no_longer_lists_them(
    backend: DbBackend,
) {
    let e = env(backend).await;
    userfeed::groups::add(&e.db.db, "acme", "G-SALES", "Sales")
        .await
        .unwrap();
    userfeed::groups::add(&e.db.db, "acme", "G-ALL", "Everyone")
        .await
        .unwrap();
    let up = e
        .apply("1,ann@example.com,Ann,A,,G-SALES|G-ALL|G-NOPE,\n")
        .await;
    assert_eq!(
        e.groups_of("ann@example.com").await,
        vec!["G-ALL", "G-SALES"]
    );
    let warn =
        e.db.rows(&format!(
            "SELECT message FROM upload_row_errors WHERE upload_id = {} AND severity = 'warning'",
            up.id
        ))
        .await;
    assert_eq!(
        warn,
        vec!["group \"G-NOPE\" is not a group of this tenant; membership skipped"]
    );
    e.apply("1,ann@example.com,Ann,A,,G-ALL,\n").await;
    assert_eq!(
        e.groups_of("ann@example.com").await,
        vec!["G-ALL", "G-SALES"],
        "G-SALES was not removed"
    );
}

async fn roles_merge_with_roles_granted_on_the_platform(backend: DbBackend) {
    let e = env(backend).await;
    e.apply("1,ann@example.com,Ann,A,,,\n").await;
    // An administrator granted on the platform, outside the feed.
    e.db.db
        .execute_unprepared("INSERT INTO user_roles SELECT id, 'administrator' FROM users WHERE email = 'ann@example.com'")
        .await
        .unwrap();
    let up = e.apply("1,ann@example.com,Ann,A,,,MANAGER|Wizard\n").await;
    assert_eq!(
        e.roles_of("ann@example.com").await,
        vec!["administrator", "learner", "manager"]
    );
    let warn =
        e.db.rows(&format!(
            "SELECT message FROM upload_row_errors WHERE upload_id = {}",
            up.id
        ))
        .await;
    assert_eq!(
        warn,
        vec!["unknown role \"Wizard\"; expected Learner, Manager or Administrator"]
    );
    e.apply("1,ann@example.com,Ann,A,,,\n").await;
    assert_eq!(
        e.roles_of("ann@example.com").await,
        vec!["administrator", "learner", "manager"],
        "roles are never removed"
    );
}

async fn a_rejected_row_applies_no_links(backend: DbBackend) {
    let e = env(backend).await;
    userfeed::groups::add(&e.db.db, "acme", "G1", "One")
        .await
        .unwrap();
    e.apply("1,boss@example.com,B,S,,,\n").await;
    // Line 2 repeats ID 1 (rejected as a duplicate): its manager and group are ignored.
    let up = e.apply("1,boss@example.com,B,S,,,\n1,boss@example.com,B,S,other@example.com,G1,Administrator\n2,other@example.com,O,T,,,\n").await;
    assert_eq!(up.rows_rejected, 1);
    assert!(e.managers().await.is_empty());
    assert!(e.groups_of("boss@example.com").await.is_empty());
    assert_eq!(e.roles_of("boss@example.com").await, vec!["learner"]);
}

async fn typed_profile_fields_store_typed_values_and_a_misfit_is_a_warning(backend: DbBackend) {
    let db = TestDb::of(backend).await.unwrap();
    let aws = Aws::new().await.unwrap();
    userfeed::tenants::add(&db.db, "acme", &aws.bucket, "acme", MatchKey::Email)
        .await
        .unwrap();
    let mapping = "[columns]\nemail = \"Email\"\n[profile]\nhired = \"Hired\"\nlevel = \"Level\"\n";
    let m = userfeed::map::Mapping::from_toml(mapping, MatchKey::Email).unwrap();
    // A mapping naming undefined fields is refused with the fix.
    let err = userfeed::tenants::set_mapping(&db.db, "acme", &m)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("profile-field add acme"), "{err}");
    use userfeed::map::FieldType;
    userfeed::tenants::add_profile_field(&db.db, "acme", "hired", FieldType::Date)
        .await
        .unwrap();
    userfeed::tenants::add_profile_field(&db.db, "acme", "level", FieldType::Number)
        .await
        .unwrap();
    userfeed::tenants::set_mapping(&db.db, "acme", &m)
        .await
        .unwrap();

    let w = workers(&db, &aws, Duration::from_secs(30), 10);
    aws.put(
        "acme/1.csv",
        "Email,Hired,Level\na@example.com,2024-01-31,7\nb@example.com,31/01/2024,8\n",
    )
    .await
    .unwrap();
    let ids = intake_all(&db, &aws).await;
    run_next(&w).await;
    let up = upload(&db, ids[0]).await;
    assert_eq!(
        (up.state.as_str(), up.rows_created, up.rows_rejected),
        ("succeeded", 2, 0)
    );
    // Compared as JSON: PostgreSQL keeps jsonb, SQLite text.
    let profiles: Vec<serde_json::Value> = db
        .rows("SELECT CAST(profile AS TEXT) FROM users ORDER BY email")
        .await
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    assert_eq!(
        profiles,
        [
            serde_json::json!({"hired": "2024-01-31", "level": 7}),
            serde_json::json!({"level": 8})
        ]
    );
    let warn = row_errors(&db, up.id).await;
    assert_eq!(warn.len(), 1);
    assert!(
        warn[0].starts_with("3|Hired|\"31/01/2024\" is not a date"),
        "{warn:?}"
    );
}

async fn deleting_a_user_group_or_tenant_removes_their_links_roles_and_change_log(
    backend: DbBackend,
) {
    let e = env(backend).await;
    e.apply(
        "1,ann@example.com,Ann,A,boss@example.com,G1,Admin\n\
         2,boss@example.com,Bo,S,,G1,\n",
    )
    .await;
    userfeed::groups::add(&e.db.db, "acme", "G1", "Group 1")
        .await
        .unwrap();
    e.apply(
        "1,ann@example.com,Ann,A,boss@example.com,G1,Admin\n\
         2,boss@example.com,Bo,S,,G1,\n",
    )
    .await;
    let db = &e.db;
    let count = |table: &'static str| async move {
        db.scalar(&format!("SELECT count(*) FROM {table}")).await
    };
    assert_eq!(count("user_managers").await, 1);
    assert_eq!(count("group_memberships").await, 2);
    assert!(
        count("user_all_roles").await >= 3,
        "learners, manager, admin"
    );

    // A user: their links both ways, roles, memberships and log entries go.
    e.db.db
        .execute_unprepared("DELETE FROM users WHERE email = 'boss@example.com'")
        .await
        .unwrap();
    assert_eq!(count("user_managers").await, 0, "ann's link to boss");
    assert_eq!(e.groups_of("ann@example.com").await, vec!["G1"]);
    assert_eq!(count("group_memberships").await, 1);
    assert_eq!(
        e.db.scalar(
            "SELECT count(*) FROM upload_changes c WHERE NOT EXISTS \
             (SELECT 1 FROM users u WHERE u.id = c.user_id)"
        )
        .await,
        0
    );
    assert_eq!(
        e.db.scalar(
            "SELECT count(*) FROM user_roles r WHERE NOT EXISTS \
             (SELECT 1 FROM users u WHERE u.id = r.user_id)"
        )
        .await,
        0
    );

    // A group: its memberships go.
    e.db.db
        .execute_unprepared("DELETE FROM groups WHERE group_key = 'G1'")
        .await
        .unwrap();
    assert_eq!(count("group_memberships").await, 0);

    // A tenant: everything of theirs goes, through the cascade to users and uploads.
    e.db.db
        .execute_unprepared("DELETE FROM tenants WHERE slug = 'acme'")
        .await
        .unwrap();
    for table in ["users", "user_roles", "upload_changes", "uploads"] {
        assert_eq!(count(table).await, 0, "{table}");
    }
}

async fn a_first_load_stores_no_learner_rows_and_no_creation_entries_yet_lists_both(
    backend: DbBackend,
) {
    let e = env(backend).await;
    let up = e
        .apply(
            "1,ann@example.com,Ann,A,boss@example.com,,Learner\n\
             2,boss@example.com,Bo,S,,,\n",
        )
        .await;
    assert_eq!(up.rows_created, 2);
    // Stored: the boss's Manager role only; no change-log entry per person.
    assert_eq!(
        e.db.rows("SELECT role FROM user_roles").await,
        vec!["manager"]
    );
    assert_eq!(e.db.scalar("SELECT count(*) FROM upload_changes").await, 0);
    // Read: both creations, in file order, and everyone a Learner.
    let changes = userfeed::report::changes(&e.db.db, up.id).await.unwrap();
    let listed: Vec<String> = changes
        .iter()
        .map(|c| format!("{} {}", c.kind, c.email))
        .collect();
    assert_eq!(
        listed,
        vec!["created ann@example.com", "created boss@example.com"]
    );
    let users = userfeed::report::users(&e.db.db, up.tenant_id)
        .await
        .unwrap();
    let roles: Vec<String> = users
        .iter()
        .map(|u| format!("{} {}", u.user.email, u.roles.join(",")))
        .collect();
    assert_eq!(
        roles,
        vec![
            "ann@example.com Learner",
            "boss@example.com Learner,Manager"
        ]
    );
}
