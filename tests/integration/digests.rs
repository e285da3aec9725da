//! Digests: a re-fed row that is exactly what it was last time skips the
//! merge and the links, and every change outside the file that could alter
//! what such a row does makes it apply again (migration 0011's triggers, the
//! feed epoch). Each test runs through the set-based store in batch and in
//! whole-file mode and through the portable one.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::ConnectionTrait;
use userfeed::apply::ApplyStore;
use userfeed::map::MatchKey;
use userfeed_tests::*;

const HEADER: &str = LINK_HEADER;

/// The store a test applies files through.
#[derive(Clone, Copy)]
enum Kind {
    Batch,
    WholeFile,
    Portable,
}

struct Env {
    db: TestDb,
    aws: Aws,
    w: Arc<userfeed::jobs::Workers>,
}

fn store(db: &TestDb, kind: Kind) -> Arc<dyn ApplyStore> {
    use userfeed::apply::{portable::PortableStore, postgres::PgStore};
    match kind {
        Kind::Batch => Arc::new(PgStore::new(db.db.clone())),
        // Every file in whole-file mode, two rows per statement.
        Kind::WholeFile => Arc::new(PgStore::new(db.db.clone()).with_whole_file(1, 2)),
        Kind::Portable => Arc::new(PortableStore::new(db.db.clone())),
    }
}

async fn env(kind: Kind) -> Env {
    env_with(kind, LINK_MAPPING).await
}

async fn env_with(kind: Kind, mapping: &str) -> Env {
    let db = TestDb::new().await.unwrap();
    let aws = Aws::new().await.unwrap();
    tenant(&db, "acme", &aws.bucket, MatchKey::ExternalId, mapping).await;
    let w = workers_with(&db, &aws, Duration::from_secs(30), 2, store(&db, kind));
    Env { db, aws, w }
}

/// Night one of most tests: a boss, two reports, groups and a role.
const NIGHT: &str = "1,boss@example.com,Bo,S,,G1,Administrator\n\
                     2,ann@example.com,Ann,A,boss@example.com,G1|G2,\n\
                     3,bob@example.com,Bob,B,boss@example.com,G2,\n";

impl Env {
    async fn put(&self, body: &str) -> i64 {
        let key = unique("acme/f-") + ".csv";
        self.aws.put(&key, body.to_string()).await.unwrap();
        intake_all(&self.db, &self.aws).await[0]
    }

    /// Applies one file to the end; returns its upload.
    async fn apply(&self, rows: &str) -> userfeed::db::entity::upload::Model {
        let id = self.put(&format!("{HEADER}{rows}")).await;
        run_next(&self.w).await;
        let up = upload(&self.db, id).await;
        assert_eq!(up.state, "succeeded", "{:?}", up.failure_reason);
        up
    }

    async fn groups(&self) {
        for g in ["G1", "G2"] {
            userfeed::groups::add(&self.db.db, "acme", g, g)
                .await
                .unwrap();
        }
    }

    async fn sql(&self, sql: &str) {
        self.db.db.execute_unprepared(sql).await.unwrap();
    }

    async fn links(&self) -> Vec<String> {
        let mut out = self
            .db
            .rows(
                "SELECT 'mgr ' || u.email || '<-' || m.email FROM user_managers l \
                 JOIN users u ON u.id = l.user_id JOIN users m ON m.id = l.manager_id",
            )
            .await;
        out.extend(
            self.db
                .rows(
                    "SELECT 'grp ' || g.group_key || ' ' || u.email FROM group_memberships m \
                     JOIN groups g ON g.id = m.group_id JOIN users u ON u.id = m.user_id",
                )
                .await,
        );
        out.extend(
            self.db
                .rows(
                    "SELECT 'role ' || u.email || ' ' || r.role FROM user_all_roles r \
                     JOIN users u ON u.id = r.user_id",
                )
                .await,
        );
        out.sort();
        out
    }

    async fn digests(&self) -> i64 {
        self.db
            .scalar("SELECT count(*) FROM users WHERE feed_digest IS NOT NULL")
            .await
    }
}

/// Night one, then the same file again: everything unchanged, by digest.
async fn settled(e: &Env) -> Vec<String> {
    e.groups().await;
    e.apply(NIGHT).await;
    let links = e.links().await;
    let up = e.apply(NIGHT).await;
    assert_eq!(up.rows_unchanged, 3);
    assert_eq!(e.digests().await, 3, "every clean row stores its digest");
    assert_eq!(e.links().await, links);
    links
}

macro_rules! each_store {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            use super::*;
            #[tokio::test]
            async fn batch() { super::$name(Kind::Batch).await }
            #[tokio::test]
            async fn whole_file() { super::$name(Kind::WholeFile).await }
            #[tokio::test]
            async fn portable() { super::$name(Kind::Portable).await }
        })*
    };
}

each_store!(
    an_unchanged_row_is_skipped_while_its_digest_holds,
    a_membership_an_admin_removed_comes_back_with_the_next_unchanged_file,
    a_role_an_admin_removed_comes_back_and_a_removed_manager_role_too,
    a_manager_link_changed_outside_the_feed_is_set_back_by_the_unchanged_file,
    a_name_edited_on_the_platform_is_set_back_by_the_unchanged_file,
    a_user_deactivated_for_absence_who_returns_with_the_same_row_is_reactivated,
    a_group_created_since_last_night_picks_up_the_members_the_unchanged_file_lists,
    after_a_groups_id_changes_the_unchanged_rows_naming_the_old_id_warn,
    after_a_managers_email_changes_outside_the_feed_the_unchanged_rows_naming_it_lose_the_link_and_warn,
    after_a_managers_email_changes_in_the_same_file_the_unchanged_rows_naming_the_old_one_lose_the_link_and_warn,
    a_row_with_a_warning_stores_no_digest_and_warns_on_every_upload,
    a_held_upload_that_was_rejected_is_held_again_by_the_same_file,
    the_mapping_or_a_profile_fields_type_changing_bumps_the_epoch,
    an_attempt_that_ended_after_its_merge_leaves_no_digest_trusted,
);

/// Shows the skip itself: with the membership trigger switched off, a
/// removed membership stays removed (the unchanged row was not linked).
async fn an_unchanged_row_is_skipped_while_its_digest_holds(kind: Kind) {
    let e = env(kind).await;
    settled(&e).await;
    e.sql("ALTER TABLE group_memberships DISABLE TRIGGER group_memberships_changed")
        .await;
    e.sql(
        "DELETE FROM group_memberships WHERE user_id = \
         (SELECT id FROM users WHERE email = 'bob@example.com')",
    )
    .await;
    let up = e.apply(NIGHT).await;
    assert_eq!(up.rows_unchanged, 3);
    assert!(
        !e.links()
            .await
            .contains(&"grp G2 bob@example.com".to_string()),
        "skipped: nothing re-added it"
    );
    assert_eq!(
        e.db.scalar("SELECT count(*) FROM upload_pending").await,
        0,
        "pending lines are dropped at the end"
    );
}

async fn a_membership_an_admin_removed_comes_back_with_the_next_unchanged_file(kind: Kind) {
    let e = env(kind).await;
    let links = settled(&e).await;
    e.sql(
        "DELETE FROM group_memberships WHERE user_id = \
         (SELECT id FROM users WHERE email = 'bob@example.com')",
    )
    .await;
    assert_eq!(e.digests().await, 2, "bob's digest was cleared");
    let up = e.apply(NIGHT).await;
    assert_eq!(up.rows_unchanged, 3);
    assert_eq!(e.links().await, links);
    assert_eq!(e.digests().await, 3);
}

async fn a_role_an_admin_removed_comes_back_and_a_removed_manager_role_too(kind: Kind) {
    let e = env(kind).await;
    let links = settled(&e).await;
    // The boss's Administrator comes from their own row, Manager from the
    // rows of their reports.
    e.sql(
        "DELETE FROM user_roles WHERE user_id = \
         (SELECT id FROM users WHERE email = 'boss@example.com') \
         AND role IN ('administrator', 'manager')",
    )
    .await;
    assert_eq!(e.digests().await, 0, "the boss's and both reports' digests");
    e.apply(NIGHT).await;
    assert_eq!(e.links().await, links);
}

async fn a_manager_link_changed_outside_the_feed_is_set_back_by_the_unchanged_file(kind: Kind) {
    let e = env(kind).await;
    let links = settled(&e).await;
    e.sql(
        "UPDATE user_managers SET manager_id = (SELECT id FROM users WHERE email = 'bob@example.com') \
         WHERE user_id = (SELECT id FROM users WHERE email = 'ann@example.com')",
    )
    .await;
    e.sql(
        "DELETE FROM user_managers WHERE user_id = \
         (SELECT id FROM users WHERE email = 'bob@example.com')",
    )
    .await;
    e.apply(NIGHT).await;
    assert_eq!(e.links().await, links);
}

async fn a_name_edited_on_the_platform_is_set_back_by_the_unchanged_file(kind: Kind) {
    let e = env(kind).await;
    settled(&e).await;
    e.sql("UPDATE users SET first_name = 'Annie' WHERE email = 'ann@example.com'")
        .await;
    let up = e.apply(NIGHT).await;
    assert_eq!((up.rows_updated, up.rows_unchanged), (1, 2));
    assert_eq!(
        e.db.rows("SELECT first_name FROM users WHERE email = 'ann@example.com'")
            .await,
        vec!["Ann"]
    );
}

async fn a_user_deactivated_for_absence_who_returns_with_the_same_row_is_reactivated(kind: Kind) {
    let e = env(kind).await;
    settled(&e).await;
    let without_bob = NIGHT.lines().take(2).collect::<Vec<_>>().join("\n") + "\n";
    let up = e.apply(&without_bob).await;
    assert_eq!(up.rows_deactivated, 1);
    let up = e.apply(NIGHT).await;
    assert_eq!(up.rows_updated, 1, "bob reactivated");
    assert_eq!(
        e.db.rows("SELECT active::text FROM users WHERE email = 'bob@example.com'")
            .await,
        vec!["true"]
    );
}

async fn a_group_created_since_last_night_picks_up_the_members_the_unchanged_file_lists(
    kind: Kind,
) {
    let e = env(kind).await;
    e.groups().await;
    let night = NIGHT.replace("G1|G2", "G1|G2|G3");
    e.apply(&night).await;
    e.apply(&night).await;
    userfeed::groups::add(&e.db.db, "acme", "G3", "Three")
        .await
        .unwrap();
    let up = e.apply(&night).await;
    assert!(row_errors(&e.db, up.id).await.is_empty());
    assert!(
        e.links()
            .await
            .contains(&"grp G3 ann@example.com".to_string())
    );
}

async fn after_a_groups_id_changes_the_unchanged_rows_naming_the_old_id_warn(kind: Kind) {
    let e = env(kind).await;
    settled(&e).await;
    e.sql("UPDATE groups SET group_key = 'G2-new' WHERE group_key = 'G2'")
        .await;
    let up = e.apply(NIGHT).await;
    let errors = row_errors(&e.db, up.id).await;
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|w| w.contains("group \"G2\" is not a group of this tenant")),
        "{errors:?}"
    );
}

async fn after_a_managers_email_changes_outside_the_feed_the_unchanged_rows_naming_it_lose_the_link_and_warn(
    kind: Kind,
) {
    let e = env(kind).await;
    e.groups().await;
    // A manager who is not in the file: a platform user.
    e.sql(
        "INSERT INTO users (tenant_id, email) \
         SELECT id, 'chief@example.com' FROM tenants WHERE slug = 'acme'",
    )
    .await;
    let night = NIGHT.replace(
        "3,bob@example.com,Bob,B,boss@example.com",
        "3,bob@example.com,Bob,B,chief@example.com",
    );
    e.apply(&night).await;
    e.apply(&night).await;
    assert!(
        e.links()
            .await
            .contains(&"mgr bob@example.com<-chief@example.com".to_string())
    );
    e.sql("UPDATE users SET email = 'head@example.com' WHERE email = 'chief@example.com'")
        .await;
    let up = e.apply(&night).await;
    assert!(
        !e.links().await.iter().any(|l| l.starts_with("mgr bob@")),
        "{:?}",
        e.links().await
    );
    let errors = row_errors(&e.db, up.id).await;
    assert!(
        errors.len() == 1 && errors[0].contains("chief@example.com"),
        "{errors:?}"
    );
}

async fn after_a_managers_email_changes_in_the_same_file_the_unchanged_rows_naming_the_old_one_lose_the_link_and_warn(
    kind: Kind,
) {
    let e = env(kind).await;
    settled(&e).await;
    // The boss's own row changes their email; the reports still name the old one.
    let night = NIGHT.replacen("1,boss@example.com", "1,chief@example.com", 1);
    let up = e.apply(&night).await;
    assert_eq!(up.rows_updated, 1);
    assert!(
        !e.links().await.iter().any(|l| l.starts_with("mgr ")),
        "{:?}",
        e.links().await
    );
    let errors = row_errors(&e.db, up.id).await;
    assert_eq!(errors.len(), 2, "{errors:?}");
}

async fn a_row_with_a_warning_stores_no_digest_and_warns_on_every_upload(kind: Kind) {
    let e = env(kind).await;
    e.groups().await;
    let night = NIGHT.replace("boss@example.com,G2,\n", "boss@example.com,G2,Wizard\n");
    for _ in 0..3 {
        let up = e.apply(&night).await;
        let errors = row_errors(&e.db, up.id).await;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("unknown role \"Wizard\""), "{errors:?}");
    }
    assert_eq!(e.digests().await, 2, "bob's row warns: no digest");
}

async fn a_held_upload_that_was_rejected_is_held_again_by_the_same_file(kind: Kind) {
    let e = env_with(kind, MAPPING_WITH_STATUS).await;
    userfeed::tenants::set_hold_limits(&e.db.db, "acme", Some(10), Some(1))
        .await
        .unwrap();
    let header = "Employee ID,Work Email,First Name,Last Name,Status\n";
    let active: String = (1..=10)
        .map(|i| format!("{i},p{i}@example.com,P,{i},1\n"))
        .collect();
    for _ in 0..2 {
        let id = e.put(&format!("{header}{active}")).await;
        run_next(&e.w).await;
        assert_eq!(upload(&e.db, id).await.state, "succeeded");
    }
    // Three leave at once: over the cap of 10% and 1 user.
    let leaving = active.replacen(",1\n", ",0\n", 3);
    for round in 0..2 {
        let id = e.put(&format!("{header}{leaving}")).await;
        run_next(&e.w).await;
        let up = upload(&e.db, id).await;
        assert_eq!(up.state, "held", "round {round}");
        assert_eq!(up.held_deactivations, 3);
        userfeed::apply::holds::reject(&e.db.db, id).await.unwrap();
    }
}

async fn the_mapping_or_a_profile_fields_type_changing_bumps_the_epoch(kind: Kind) {
    let e = env(kind).await;
    let epoch = || {
        e.db.scalar("SELECT feed_epoch FROM tenants WHERE slug = 'acme'")
    };
    let start = epoch().await;
    let m = userfeed::map::Mapping::from_toml(LINK_MAPPING, MatchKey::ExternalId).unwrap();
    userfeed::tenants::set_mapping(&e.db.db, "acme", &m)
        .await
        .unwrap();
    assert_eq!(
        epoch().await,
        start,
        "the same mapping again changes nothing"
    );
    let m = userfeed::map::Mapping::from_toml(
        &LINK_MAPPING.replace("roles = \"Roles\"\n", ""),
        MatchKey::ExternalId,
    )
    .unwrap();
    userfeed::tenants::set_mapping(&e.db.db, "acme", &m)
        .await
        .unwrap();
    assert_eq!(epoch().await, start + 1);
    userfeed::tenants::add_profile_field(
        &e.db.db,
        "acme",
        "level",
        userfeed::map::FieldType::Number,
    )
    .await
    .unwrap();
    assert_eq!(epoch().await, start + 2);
    e.sql("UPDATE profile_fields SET field_type = 'text' WHERE field_key = 'level'")
        .await;
    assert_eq!(epoch().await, start + 3);
}

/// A store whose first link call fails as a dropped connection would: the
/// attempt has merged (and stored digests) but linked nothing.
struct LinkFailsOnce {
    inner: Arc<dyn ApplyStore>,
    failed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl ApplyStore for LinkFailsOnce {
    async fn begin(&self, l: &userfeed::jobs::Lease) -> Result<(), userfeed::apply::ApplyError> {
        self.inner.begin(l).await
    }
    fn prepare(
        &self,
        upload_id: i64,
        staged: Vec<userfeed::map::StagedRow>,
        rejected: Vec<userfeed::map::RowError>,
    ) -> userfeed::apply::Prepared {
        self.inner.prepare(upload_id, staged, rejected)
    }
    async fn stage(
        &self,
        l: &userfeed::jobs::Lease,
        batch: &userfeed::apply::Prepared,
        p: &userfeed::apply::Progress,
    ) -> Result<(), userfeed::apply::ApplyError> {
        self.inner.stage(l, batch, p).await
    }
    async fn staged(
        &self,
        l: &userfeed::jobs::Lease,
        r: &userfeed::apply::TenantRules,
        h: &userfeed::map::FileHeaders,
        s: &userfeed::apply::Staged,
    ) -> Result<userfeed::apply::Plan, userfeed::apply::ApplyError> {
        self.inner.staged(l, r, h, s).await
    }
    async fn epoch(&self, t: i64) -> Result<i64, userfeed::apply::ApplyError> {
        self.inner.epoch(t).await
    }
    async fn merge(
        &self,
        l: &userfeed::jobs::Lease,
        r: &userfeed::apply::TenantRules,
        h: &userfeed::map::FileHeaders,
        s: bool,
        at: (i64, usize),
        plan: &userfeed::apply::Plan,
        p: &mut userfeed::apply::Progress,
    ) -> Result<Option<i64>, userfeed::apply::ApplyError> {
        self.inner.merge(l, r, h, s, at, plan, p).await
    }
    async fn link(
        &self,
        l: &userfeed::jobs::Lease,
        r: &userfeed::apply::TenantRules,
        h: &userfeed::map::FileHeaders,
        at: (i64, usize),
        plan: &userfeed::apply::Plan,
    ) -> Result<Option<i64>, userfeed::apply::ApplyError> {
        if !self.failed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(sea_orm::DbErr::Conn(sea_orm::RuntimeErr::Internal(
                "injected: connection lost".into(),
            ))
            .into());
        }
        self.inner.link(l, r, h, at, plan).await
    }
    async fn finish(
        &self,
        l: &userfeed::jobs::Lease,
        r: &userfeed::apply::TenantRules,
        d: bool,
        p: &mut userfeed::apply::Progress,
    ) -> Result<userfeed::apply::Finish, userfeed::apply::ApplyError> {
        self.inner.finish(l, r, d, p).await
    }
}

async fn an_attempt_that_ended_after_its_merge_leaves_no_digest_trusted(kind: Kind) {
    let e = env(kind).await;
    let links = settled(&e).await;
    // Bob joins G1 tonight; the first attempt merges, then fails to link.
    let tonight = NIGHT.replace("boss@example.com,G2,", "boss@example.com,G1|G2,");
    let flaky = workers_with(
        &e.db,
        &e.aws,
        Duration::from_secs(30),
        2,
        Arc::new(LinkFailsOnce {
            inner: store(&e.db, kind),
            failed: Default::default(),
        }),
    );
    let id = e.put(&format!("{HEADER}{tonight}")).await;
    run_next(&flaky).await;
    assert_eq!(
        upload(&e.db, id).await.state,
        "queued",
        "handed back to retry"
    );
    assert_eq!(e.links().await, links, "nothing linked yet");
    e.sql("UPDATE uploads SET not_before = NULL").await;
    run_next(&flaky).await;
    assert_eq!(upload(&e.db, id).await.state, "succeeded");
    assert!(
        e.links()
            .await
            .contains(&"grp G1 bob@example.com".to_string()),
        "the retry linked the row its first attempt had merged"
    );
}
