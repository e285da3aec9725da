//! Undo of an applied upload (`userfeed uploads undo`): every table back as
//! it was, fields changed since left alone, only the newest upload, and the
//! undo of an undo.

use std::time::Duration;

use sea_orm::DbBackend;
use userfeed::apply::undo::{self, UndoError};
use userfeed::map::MatchKey;
use userfeed_tests::*;

each_backend!(
    undoing_a_bad_upload_that_renamed_and_deactivated_hundreds_gives_back_every_table,
    a_field_changed_since_the_upload_is_left_alone_and_reported,
    only_the_newest_applied_upload_can_be_undone_and_a_preview_changes_nothing,
    an_undo_is_an_upload_that_can_itself_be_undone,
);

const PEOPLE: usize = 300;

fn mapping() -> String {
    format!("{LINK_MAPPING}\n[profile]\ndepartment = \"Dept\"\n")
}

/// `LINK_HEADER` + Dept: person i is managed by person i / 10 (the first
/// ten by nobody), in group G1, department D{i % 3}; person 1 is an
/// Administrator. `ids` picks the people; `first` names them.
fn people(ids: impl IntoIterator<Item = usize>, first: &str, extra: &str) -> String {
    let mut s = String::from("ID,Email,First,Last,Managers,Groups,Roles,Dept\n");
    for i in ids {
        let manager = if i < 10 {
            String::new()
        } else {
            format!("user{}@example.com", i / 10)
        };
        let role = if i == 1 { "Administrator" } else { "" };
        s.push_str(&format!(
            "E{i},user{i}@example.com,{first}{i},Last{i},{manager},G1{extra},{role},D{}\n",
            i % 3
        ));
    }
    s
}

/// Runs a statement on the test's own database.
async fn exec(db: &TestDb, sql: &str) {
    use sea_orm::ConnectionTrait;
    db.db
        .execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

struct Env {
    db: TestDb,
    aws: Aws,
    w: std::sync::Arc<userfeed::jobs::Workers>,
}

async fn env(backend: DbBackend) -> Env {
    let db = TestDb::of(backend).await.unwrap();
    let aws = Aws::new().await.unwrap();
    tenant(&db, "acme", &aws.bucket, MatchKey::ExternalId, &mapping()).await;
    for (key, name) in [("G1", "One"), ("G2", "Two")] {
        userfeed::groups::add(&db.db, "acme", key, name)
            .await
            .unwrap();
    }
    // No safety hold: the bad upload is meant to go through.
    exec(
        &db,
        "UPDATE tenants SET hold_over_percent = 100, hold_over_count = 1000000",
    )
    .await;
    let w = workers(&db, &aws, Duration::from_secs(30), 50);
    Env { db, aws, w }
}

impl Env {
    async fn apply(&self, key: &str, body: String) -> userfeed::db::entity::upload::Model {
        self.aws.put(key, body).await.unwrap();
        let ids = intake_all(&self.db, &self.aws).await;
        run_next(&self.w).await;
        let up = upload(&self.db, ids[0]).await;
        assert_eq!(up.state, "succeeded", "{up:?}");
        up
    }

    /// Every table an upload or an undo changes, table by table, as text,
    /// ids replaced by emails and group keys. Bookkeeping columns
    /// (`updated_at`, `last_changed_upload_id`, digests, when a user was
    /// deactivated) are left out: they say an undo happened.
    async fn tables(&self) -> Vec<(&'static str, Vec<String>)> {
        let b = |c: &str| format!("CASE WHEN {c} THEN 'true' ELSE 'false' END");
        let users = format!(
            "SELECT email || '|' || coalesce(external_id, '-') || '|' || first_name || '|' || \
             last_name || '|' || {} || '|' || {} || '|' || {} || '|' || CAST(profile AS TEXT) \
             FROM users ORDER BY 1",
            b("active"),
            b("deactivated_at IS NOT NULL"),
            b("feed_managed")
        );
        vec![
            ("users", self.db.rows(&users).await),
            (
                "user_managers",
                self.db
                    .rows(
                        "SELECT u.email || '<-' || m.email FROM user_managers l \
                         JOIN users u ON u.id = l.user_id JOIN users m ON m.id = l.manager_id \
                         ORDER BY 1",
                    )
                    .await,
            ),
            (
                "group_memberships",
                self.db
                    .rows(
                        "SELECT g.group_key || '|' || u.email || '|' || \
                         coalesce(CAST(m.created_by_upload_id AS TEXT), '-') \
                         FROM group_memberships m JOIN groups g ON g.id = m.group_id \
                         JOIN users u ON u.id = m.user_id ORDER BY 1",
                    )
                    .await,
            ),
            (
                "user_roles",
                self.db
                    .rows(
                        "SELECT u.email || '|' || r.role FROM user_roles r \
                         JOIN users u ON u.id = r.user_id ORDER BY 1",
                    )
                    .await,
            ),
            (
                "groups",
                self.db
                    .rows("SELECT group_key || '|' || name FROM groups ORDER BY 1")
                    .await,
            ),
        ]
    }

    /// Day 1 (300 people) and day 2 (person 299 left), then the bad file:
    /// only people 0..100 and 299, renamed, in G2 as well, people 10..20
    /// moved to manager 0, plus 5 new people. Returns the bad upload and
    /// the tables as they were before it.
    async fn bad_upload(
        &self,
    ) -> (
        userfeed::db::entity::upload::Model,
        Vec<(&'static str, Vec<String>)>,
    ) {
        self.apply("acme/1.csv", people(0..PEOPLE, "First", ""))
            .await;
        let day2 = self
            .apply("acme/2.csv", people(0..PEOPLE - 1, "First", ""))
            .await;
        assert_eq!(day2.rows_deactivated, 1);
        let before = self.tables().await;
        let mut bad = people((0..100).chain([PEOPLE - 1]), "Oops", "|G2");
        bad = bad.replace(",user1@example.com,G1|G2", ",user0@example.com,G1|G2");
        for i in 0..5 {
            bad.push_str(&format!(
                "N{i},new{i}@example.com,New{i},Person,user2@example.com,G2,Manager,D9\n"
            ));
        }
        let up = self.apply("acme/3.csv", bad).await;
        assert_eq!(
            (up.rows_created, up.rows_deactivated),
            (5, (PEOPLE - 101) as i64),
            "{up:?}"
        );
        (up, before)
    }
}

async fn undoing_a_bad_upload_that_renamed_and_deactivated_hundreds_gives_back_every_table(
    backend: DbBackend,
) {
    let e = env(backend).await;
    let (bad, before) = e.bad_upload().await;
    assert_ne!(e.tables().await, before, "the bad upload changed things");

    let r = undo::undo(&e.db.db, bad.id, false).await.unwrap();
    assert_eq!(r.upload_id, bad.id);
    assert_eq!(
        (r.deactivated.len(), r.reactivated.len(), r.updated.len()),
        // 5 created + person 299 (reactivated by the bad file) made
        // inactive; 199 made active again; 101 renamed back.
        (6, PEOPLE - 101, 101)
    );
    assert!(r.left_alone.is_empty(), "{:?}", r.left_alone);
    assert!(r.links_restored > 0);

    // Every table as before, except the people the bad upload created:
    // they stay, inactive, with no links at all.
    let after = e.tables().await;
    for ((name, want), (_, got)) in before.iter().zip(&after) {
        let got: Vec<&String> = got.iter().filter(|r| !r.contains("new")).collect();
        let want: Vec<&String> = want.iter().collect();
        assert_eq!(got, want, "table {name} differs after the undo");
    }
    let created = e
        .db
        .rows("SELECT email || '|' || CASE WHEN active THEN 'active' ELSE 'inactive' END FROM users WHERE email LIKE 'new%' ORDER BY 1")
        .await;
    assert_eq!(created.len(), 5);
    assert!(
        created.iter().all(|r| r.ends_with("|inactive")),
        "{created:?}"
    );
    for (name, rows) in &after[1..] {
        assert!(
            !rows.iter().any(|r| r.contains("new")),
            "{name} still links a created user: {rows:?}"
        );
    }

    // The undo is in the history, with its counts and its own change log.
    let u = upload(&e.db, r.undo_id.unwrap()).await;
    assert_eq!(
        (u.source.as_str(), u.state.as_str(), u.undo_of),
        ("undo", "succeeded", Some(bad.id))
    );
    assert_eq!(
        (u.rows_updated, u.rows_deactivated),
        ((101 + PEOPLE - 101) as i64, 6)
    );
    let log = userfeed::report::changes(&e.db.db, u.id).await.unwrap();
    assert!(log.iter().any(|c| c.kind == "reactivated"));
    assert!(log.iter().any(|c| c.kind == "member_removed"));
    assert!(
        log.iter()
            .any(|c| c.kind == "manager_added" && c.email == "user10@example.com")
    );

    // The next nightly file applies normally on top of the undo.
    let next = e
        .apply("acme/4.csv", people(0..PEOPLE - 1, "First", ""))
        .await;
    assert_eq!(next.rows_created, 0);
    let (_, users) = &e.tables().await[0];
    assert_eq!(
        users.iter().filter(|r| r.contains("|true|false|")).count(),
        PEOPLE - 1,
        "everyone but person 299 and the 5 new people active"
    );
}

async fn a_field_changed_since_the_upload_is_left_alone_and_reported(backend: DbBackend) {
    let e = env(backend).await;
    let (bad, _) = e.bad_upload().await;
    // An admin fixes person 5's first name and department by hand.
    exec(
        &e.db,
        "UPDATE users SET first_name = 'Fixed' WHERE email = 'user5@example.com'",
    )
    .await;

    let r = undo::undo(&e.db.db, bad.id, false).await.unwrap();
    let left: Vec<(&str, &str)> = r
        .left_alone
        .iter()
        .map(|l| (l.email.as_str(), l.field.as_str()))
        .collect();
    assert_eq!(left, [("user5@example.com", "first_name")]);
    assert!(
        r.left_alone[0].reason.contains("changed after upload"),
        "{}",
        r.left_alone[0].reason
    );
    // The admin's value stays; the rest of the user went back.
    assert_eq!(
        e.db.rows("SELECT first_name || '|' || CASE WHEN active THEN 'active' ELSE 'inactive' END FROM users WHERE email = 'user5@example.com'")
            .await,
        ["Fixed|active"]
    );
    assert_eq!(
        e.db.rows("SELECT first_name FROM users WHERE email = 'user6@example.com'")
            .await,
        ["First6"]
    );
    // Reported beside the undo, as a warning its admin can read.
    let undo_id = r.undo_id.unwrap();
    assert_eq!(
        row_errors(&e.db, undo_id).await,
        [format!(
            "0|first_name|\"user5@example.com\": first_name was changed after upload {}; left as it is",
            bad.id
        )]
    );
}

async fn only_the_newest_applied_upload_can_be_undone_and_a_preview_changes_nothing(
    backend: DbBackend,
) {
    let e = env(backend).await;
    let first = e.apply("acme/1.csv", people(0..20, "First", "")).await;
    let second = e.apply("acme/2.csv", people(0..15, "Second", "")).await;

    match undo::undo(&e.db.db, first.id, false).await {
        Err(UndoError::NotNewest { newer, state, .. }) => {
            assert_eq!((newer, state.as_str()), (second.id, "succeeded"))
        }
        other => panic!("an older upload was not refused: {other:?}"),
    }
    assert!(matches!(
        undo::undo(&e.db.db, 999_999, false).await,
        Err(UndoError::NotFound(999_999))
    ));

    // A preview says what would happen and changes nothing.
    let before = e.tables().await;
    let uploads = e.db.scalar("SELECT count(*) FROM uploads").await;
    let p = undo::undo(&e.db.db, second.id, true).await.unwrap();
    assert!(p.preview);
    assert_eq!(p.undo_id, None);
    assert_eq!((p.reactivated.len(), p.updated.len()), (5, 15));
    assert_eq!(e.tables().await, before);
    assert_eq!(e.db.scalar("SELECT count(*) FROM uploads").await, uploads);

    // The real undo does what the preview said.
    let r = undo::undo(&e.db.db, second.id, false).await.unwrap();
    assert_eq!(
        (r.deactivated, r.reactivated, r.updated),
        (p.deactivated, p.reactivated, p.updated)
    );
    // The undone upload cannot be undone twice: its undo is newer.
    assert!(matches!(
        undo::undo(&e.db.db, second.id, false).await,
        Err(UndoError::NotNewest { .. })
    ));
    // Nor can a held upload.
    exec(
        &e.db,
        "UPDATE tenants SET hold_over_percent = 0, hold_over_count = 0",
    )
    .await;
    e.aws
        .put("acme/3.csv", people(0..10, "First", ""))
        .await
        .unwrap();
    let ids = intake_all(&e.db, &e.aws).await;
    run_next(&e.w).await;
    assert_eq!(upload(&e.db, ids[0]).await.state, "held");
    assert!(matches!(
        undo::undo(&e.db.db, ids[0], false).await,
        Err(UndoError::NotApplied { .. })
    ));
}

async fn an_undo_is_an_upload_that_can_itself_be_undone(backend: DbBackend) {
    let e = env(backend).await;
    let (bad, before) = e.bad_upload().await;
    let with_bad = e.tables().await;

    let first = undo::undo(&e.db.db, bad.id, false).await.unwrap();
    let undo_id = first.undo_id.unwrap();
    let again = undo::undo(&e.db.db, undo_id, false).await.unwrap();
    assert_eq!(
        upload(&e.db, again.undo_id.unwrap()).await.undo_of,
        Some(undo_id)
    );
    // Back to what the bad upload had made, table by table (created
    // people active again, with their links). A membership put back names
    // the undo that restored it as its creator: compared without that.
    let provenance = |name: &str, rows: &[String]| -> Vec<String> {
        rows.iter()
            .map(|r| match name {
                "group_memberships" => r.rsplit_once('|').unwrap().0.to_string(),
                _ => r.clone(),
            })
            .collect()
    };
    let now = e.tables().await;
    for ((name, want), (_, got)) in with_bad.iter().zip(&now) {
        assert_eq!(
            provenance(name, got),
            provenance(name, want),
            "table {name} after undoing the undo"
        );
    }
    // And undoing that gives the state before the bad upload once more.
    undo::undo(&e.db.db, again.undo_id.unwrap(), false)
        .await
        .unwrap();
    for ((name, want), (_, got)) in before.iter().zip(&e.tables().await) {
        let got: Vec<String> = provenance(name, got)
            .into_iter()
            .filter(|r| !r.contains("new"))
            .collect();
        assert_eq!(
            got,
            provenance(name, want),
            "table {name} after the third undo"
        );
    }
}
