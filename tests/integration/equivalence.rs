//! The set-based PostgreSQL store gives exactly the results of the portable
//! store, the reference: the same files, applied in the same order through
//! each into its own database, leave every table equal. And the portable
//! store on SQLite (the embedded backend, which keeps no digests) gives the
//! same results as on PostgreSQL, compared through a projection both
//! backends render alike ([`neutral_snapshot`]).
//!
//! Two kinds of input: hand-written files that exercise each rule and its
//! edge cases (collisions inside a batch, duplicates, a manager later in
//! the file, cleared profile fields, a hold), and seeded random sequences of
//! nightly files (renames, email changes, swaps, people leaving and coming
//! back, managers and groups changing, bad values), for both match keys.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use userfeed::apply::ApplyStore;
use userfeed::apply::portable::PortableStore;
use userfeed::apply::postgres::PgStore;
use userfeed::map::{FieldType, MatchKey};
use userfeed_tests::*;

/// The link mapping plus two profile fields, for [`HEADER`].
fn mapping() -> String {
    format!("{LINK_MAPPING}\n[profile]\ndepartment = \"Dept\"\nlevel = \"Level\"\n")
}

const MAPPING_WITH_STATUS: &str = r#"
[columns]
external_id = "ID"
email = "Email"
first_name = "First"
last_name = "Last"
status = "Status"
managers = "Managers"
groups = "Groups"

[profile]
department = "Dept"
"#;

const HEADER: &str = "ID,Email,First,Last,Managers,Groups,Roles,Dept,Level\n";
const HEADER_WITH_STATUS: &str = "ID,Email,First,Last,Status,Managers,Groups,Dept\n";

/// Makes the store a side applies files through, over its database.
type StoreFor = Box<dyn Fn(&TestDb) -> Arc<dyn ApplyStore>>;

/// One database applying files through one store.
struct Side {
    db: TestDb,
    w: Arc<userfeed::jobs::Workers>,
}

/// The same tenant in two databases, one per store, sharing one bucket.
struct Pair {
    aws: Aws,
    portable: Side,
    /// `PgStore` in batch mode (per-row lookups, `batch`-row statements).
    fast: Side,
    /// `PgStore` in whole-file mode (joins), `batch`-row chunks.
    file: Side,
    /// The portable store on SQLite.
    lite: Side,
    files: usize,
}

impl Pair {
    async fn new(key: MatchKey, mapping: &str, batch: usize) -> Pair {
        let aws = Aws::new().await.unwrap();
        let side = |backend: DbBackend, store: StoreFor| {
            let aws = &aws;
            async move {
                let db = TestDb::of(backend).await.unwrap();
                userfeed::tenants::add(&db.db, "acme", &aws.bucket, "acme", key)
                    .await
                    .unwrap();
                for (field, ty) in [
                    ("department", FieldType::Text),
                    ("level", FieldType::Number),
                ] {
                    userfeed::tenants::add_profile_field(&db.db, "acme", field, ty)
                        .await
                        .unwrap();
                }
                let m = userfeed::map::Mapping::from_toml(mapping, key).unwrap();
                userfeed::tenants::set_mapping(&db.db, "acme", &m)
                    .await
                    .unwrap();
                for g in ["G1", "G2", "G3"] {
                    userfeed::groups::add(&db.db, "acme", g, g).await.unwrap();
                }
                let w = workers_with(&db, aws, Duration::from_secs(30), batch, store(&db));
                Side { db, w }
            }
        };
        let pg = DbBackend::Postgres;
        let portable = side(
            pg,
            Box::new(|db| Arc::new(PortableStore::new(db.db.clone()))),
        )
        .await;
        let lite = side(
            DbBackend::Sqlite,
            Box::new(|db| Arc::new(PortableStore::new(db.db.clone()))),
        )
        .await;
        let fast = side(
            pg,
            Box::new(|db| Arc::new(PgStore::new(db.db.clone()).with_whole_file(u64::MAX, 1))),
        )
        .await;
        let file = side(
            pg,
            Box::new(move |db| Arc::new(PgStore::new(db.db.clone()).with_whole_file(0, batch))),
        )
        .await;
        Pair {
            aws,
            portable,
            fast,
            file,
            lite,
            files: 0,
        }
    }

    /// Applies `body` on both sides, then asserts every table is equal.
    async fn apply(&mut self, body: &str) {
        self.files += 1;
        let key = format!("acme/file-{}.csv", self.files);
        self.aws.put(&key, body.to_string()).await.unwrap();
        let notes = self.aws.take_object_created().await.unwrap();
        assert_eq!(notes.len(), 1);
        for side in [&self.portable, &self.fast, &self.file, &self.lite] {
            let d = userfeed::intake::Delivery {
                message_id: key.clone(),
                body: notes[0].clone(),
                receive_count: 1,
                ack_handle: String::new(),
            };
            userfeed::intake::handle_delivery(&side.db.db, &d)
                .await
                .unwrap();
            assert!(run_next(&side.w).await.is_some());
        }
        let a = snapshot(&self.portable.db).await;
        for (mode, side) in [("batch", &self.fast), ("whole-file", &self.file)] {
            let b = snapshot(&side.db).await;
            for ((name, left), (_, right)) in a.iter().zip(b.iter()) {
                assert_eq!(
                    left, right,
                    "file {} ({key}): table {name} differs (left: portable, right: PostgreSQL \
                     in {mode} mode)\n{body}",
                    self.files
                );
            }
        }
        assert!(
            a.iter().any(|(n, rows)| *n == "users" && !rows.is_empty()),
            "the comparison saw users"
        );
        let a = neutral_snapshot(&self.portable.db).await;
        let b = neutral_snapshot(&self.lite.db).await;
        for ((name, left), (_, right)) in a.iter().zip(b.iter()) {
            assert_eq!(
                left, right,
                "file {} ({key}): table {name} differs (left: portable on PostgreSQL, \
                 right: portable on SQLite)\n{body}",
                self.files
            );
        }
    }
}

/// [`snapshot`] in a form both backends render alike: every column read as
/// text (booleans spelled out), JSON columns parsed and written back in one
/// form, and what SQLite does not keep (digests, the feed epoch) left out.
async fn neutral_snapshot(db: &TestDb) -> Vec<(&'static str, Vec<String>)> {
    let b = |col: &str| format!("CASE WHEN {col} THEN 'true' ELSE 'false' END");
    let q: [(&str, String, &[usize], usize); 10] = [
        ("tenants", "SELECT slug FROM tenants".into(), &[], 1),
        (
            "users",
            format!(
                "SELECT email, external_id, first_name, last_name, {}, {}, CAST(profile AS TEXT), \
                 {}, CAST(created_by_upload_id AS TEXT), CAST(last_changed_upload_id AS TEXT) \
                 FROM users",
                b("active"),
                b("deactivated_at IS NOT NULL"),
                b("feed_managed")
            ),
            &[6],
            10,
        ),
        (
            "uploads",
            "SELECT CAST(id AS TEXT), state, CAST(rows_read AS TEXT), CAST(rows_created AS TEXT), \
             CAST(rows_updated AS TEXT), CAST(rows_unchanged AS TEXT), \
             CAST(rows_deactivated AS TEXT), CAST(rows_rejected AS TEXT), \
             CAST(held_deactivations AS TEXT), hold_reason, failure_reason FROM uploads"
                .into(),
            &[],
            11,
        ),
        (
            "upload_row_errors",
            "SELECT CAST(upload_id AS TEXT), CAST(line AS TEXT), column_name, severity, message \
             FROM upload_row_errors"
                .into(),
            &[],
            5,
        ),
        (
            "upload_changes",
            "SELECT CAST(c.upload_id AS TEXT), u.email, c.kind, CAST(c.changes AS TEXT) \
             FROM upload_changes c JOIN users u ON u.id = c.user_id"
                .into(),
            &[3],
            4,
        ),
        (
            "upload_deactivations",
            "SELECT CAST(d.upload_id AS TEXT), u.email FROM upload_deactivations d \
             JOIN users u ON u.id = d.user_id"
                .into(),
            &[],
            2,
        ),
        (
            "user_managers",
            "SELECT u.email, m.email FROM user_managers l JOIN users u ON u.id = l.user_id \
             JOIN users m ON m.id = l.manager_id"
                .into(),
            &[],
            2,
        ),
        (
            "group_memberships",
            "SELECT g.group_key, u.email, CAST(m.created_by_upload_id AS TEXT) \
             FROM group_memberships m JOIN groups g ON g.id = m.group_id \
             JOIN users u ON u.id = m.user_id"
                .into(),
            &[],
            3,
        ),
        (
            "user_roles",
            "SELECT u.email, r.role FROM user_roles r JOIN users u ON u.id = r.user_id".into(),
            &[],
            2,
        ),
        (
            "upload_link_changes",
            "SELECT CAST(l.upload_id AS TEXT), u.email, l.kind, m.email, g.group_key, l.role \
             FROM upload_link_changes l JOIN users u ON u.id = l.user_id \
             LEFT JOIN users m ON m.id = l.target AND l.kind LIKE 'manager_%' \
             LEFT JOIN groups g ON g.id = l.target AND l.kind LIKE 'member_%'"
                .into(),
            &[],
            6,
        ),
    ];
    let mut out = Vec::new();
    for (name, sql, json, columns) in q {
        let rows = db
            .db
            .query_all_raw(Statement::from_string(
                db.db.get_database_backend(),
                sql.clone(),
            ))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let mut text: Vec<String> = rows
            .iter()
            .map(|r| {
                let mut cells = Vec::new();
                for i in 0.. {
                    let Ok(cell) = r.try_get_by_index::<Option<String>>(i) else {
                        break;
                    };
                    let cell = match (cell, json.contains(&i)) {
                        (Some(c), true) => serde_json::from_str::<serde_json::Value>(&c)
                            .unwrap_or_else(|e| panic!("{name} column {i}: {e}: {c}"))
                            .to_string(),
                        (c, _) => c.unwrap_or_else(|| "NULL".into()),
                    };
                    cells.push(cell);
                }
                assert_eq!(cells.len(), columns, "{name}: every column read as text");
                cells.join("|")
            })
            .collect();
        text.sort();
        out.push((name, text));
    }
    out
}

/// Every table a file changes, as sorted text rows, ids replaced by what
/// they stand for (emails, group keys) where ids could legitimately differ.
async fn snapshot(db: &TestDb) -> Vec<(&'static str, Vec<String>)> {
    let q: [(&str, &str); 10] = [
        (
            "tenants",
            "SELECT slug || '|' || feed_epoch FROM tenants ORDER BY 1",
        ),
        (
            "users",
            "SELECT concat_ws('|', email, external_id, first_name, last_name, active, \
             deactivated_at IS NOT NULL, profile::text, feed_managed, created_by_upload_id, \
             last_changed_upload_id, encode(feed_digest, 'hex')) FROM users ORDER BY 1",
        ),
        (
            "uploads",
            "SELECT concat_ws('|', id, state, rows_read, rows_created, rows_updated, rows_unchanged, \
             rows_deactivated, rows_rejected, held_deactivations, hold_reason, failure_reason) \
             FROM uploads ORDER BY id",
        ),
        (
            "upload_row_errors",
            "SELECT concat_ws('|', upload_id, line, column_name, severity, message) \
             FROM upload_row_errors ORDER BY 1",
        ),
        (
            "upload_changes",
            "SELECT concat_ws('|', c.upload_id, u.email, c.kind, c.changes::text) \
             FROM upload_changes c JOIN users u ON u.id = c.user_id ORDER BY 1",
        ),
        (
            "upload_deactivations",
            "SELECT d.upload_id || '|' || u.email FROM upload_deactivations d \
             JOIN users u ON u.id = d.user_id ORDER BY 1",
        ),
        (
            "user_managers",
            "SELECT u.email || '<-' || m.email FROM user_managers l JOIN users u ON u.id = l.user_id \
             JOIN users m ON m.id = l.manager_id ORDER BY 1",
        ),
        (
            "group_memberships",
            "SELECT g.group_key || '|' || u.email || '|' || coalesce(m.created_by_upload_id, 0) \
             FROM group_memberships m JOIN groups g ON g.id = m.group_id \
             JOIN users u ON u.id = m.user_id ORDER BY 1",
        ),
        (
            "user_roles",
            "SELECT u.email || '|' || r.role FROM user_roles r JOIN users u ON u.id = r.user_id \
             ORDER BY 1",
        ),
        (
            "upload_link_changes",
            "SELECT concat_ws('|', l.upload_id, u.email, l.kind, m.email, l.role) \
             FROM upload_link_changes l JOIN users u ON u.id = l.user_id \
             LEFT JOIN users m ON m.id = l.target ORDER BY 1",
        ),
    ];
    let mut out = Vec::new();
    for (name, sql) in q {
        out.push((name, db.rows(sql).await));
    }
    out.push((
        "staging left over",
        vec![
            db.scalar("SELECT count(*) FROM upload_rows")
                .await
                .to_string(),
        ],
    ));
    out
}

fn rows(header: &str, body: &str) -> String {
    format!("{header}{body}")
}

#[tokio::test]
async fn both_stores_agree_on_every_rule_by_external_id() {
    // Batches of 3 rows: collisions, duplicates and links cross batches.
    let mut p = Pair::new(MatchKey::ExternalId, &mapping(), 3).await;
    p.apply(&rows(
        HEADER,
        "1,ann@x.io,Ann,A,boss@x.io |\u{a0}lead@x.io,G1| \tG9,,Eng,3\n\
         2,bob@x.io,Bob,B,,G2,Admin,Ops,\n\
         3,lead@x.io,Lee,L,boss@x.io,,manager|wizard,Eng,2.5\n\
         4,boss@x.io,Bo,S,,G1|G2|G3,,,ten\n\
         5,bob@x.io,Bobby,Dup,,,,,\n\
         2,dup@x.io,Dup,Key,,,,,\n\
         6,not-an-email,Bad,Email,,,,,\n\
         7,self@x.io,Self,S,self@x.io|nobody@x.io,,,,\n\
         8,josé+hr@x.io,José,Ü,,,,,\n\
         9,ragged@x.io,Too,Few\n\
         ,noid@x.io,No,Id,,,,,\n",
    ))
    .await;
    // Renames, an email change, a taken email, cleared and changed profile
    // fields, managers replaced and cleared, people left out.
    p.apply(&rows(
        HEADER,
        "1,ann@x.io,Anna,A,lead@x.io,G3,,,4\n\
         2,robert@x.io,Bob,B,,,,Ops,\n\
         3,lead@x.io,Lee,L,,,,Eng,2.5\n\
         4,boss@x.io,Bo,S,,,,Legal,\n\
         7,ann@x.io,Taken,Email,,,,,\n\
         8,JOSÉ+hr@x.io,José,Ü,boss@x.io,,,,\n",
    ))
    .await;
    // Two new people ask for the same email; a swap of two emails; a
    // person who left comes back.
    p.apply(&rows(
        HEADER,
        "1,lead@x.io,Anna,A,,,,,\n\
         3,ann@x.io,Lee,L,,,,,\n\
         4,boss@x.io,Bo,S,,,,,\n\
         10,same@x.io,New,One,,,,,\n\
         11,same@x.io,New,Two,,,,,\n\
         2,robert@x.io,Bob,B,,,,,\n\
         7,self@x.io,Back,Again,,,,,\n",
    ))
    .await;
    // Everyone but two leave: over the cap, held.
    p.apply(&rows(
        HEADER,
        "1,ann@x.io,Anna,A,,,,,\n4,boss@x.io,Bo,S,,,,,\n",
    ))
    .await;
    // A header and no rows: always held.
    p.apply(HEADER).await;
}

#[tokio::test]
async fn both_stores_agree_when_a_cell_repeats_its_group_role_or_manager() {
    // Whole-file mode inserts exact sets with no `ON CONFLICT`: an item
    // repeated in one cell (in any case, for managers and roles) must
    // still become one link, and the learner named in a cell no row.
    let mut p = Pair::new(MatchKey::ExternalId, &mapping(), 3).await;
    p.apply(&rows(
        HEADER,
        "1,ann@x.io,Ann,A,boss@x.io|BOSS@x.io|boss@x.io,G1|G1| G1,Manager|manager|Learner|learner,,\n\
         2,boss@x.io,Bo,S,,G2|G1|G2,Admin|Administrator|Manager,,\n\
         3,cy@x.io,Cy,C,ann@x.io|boss@x.io,G1,Manager,,\n",
    ))
    .await;
    // The same file again changes nothing; a repeat added to a kept cell
    // adds nothing either.
    p.apply(&rows(
        HEADER,
        "1,ann@x.io,Ann,A,boss@x.io|BOSS@x.io|boss@x.io,G1|G1| G1,Manager|manager|Learner|learner,,\n\
         2,boss@x.io,Bo,S,,G2|G1|G2|G3|G3,Admin|Administrator|Manager,,\n\
         3,cy@x.io,Cy,C,ann@x.io|boss@x.io|ann@x.io,G1|G1,Manager|Manager,,\n",
    ))
    .await;
}

#[tokio::test]
async fn both_stores_agree_on_every_rule_by_email_with_a_status_column() {
    let mut p = Pair::new(MatchKey::Email, MAPPING_WITH_STATUS, 2).await;
    p.apply(&rows(
        HEADER_WITH_STATUS,
        "E1,ann@x.io,Ann,A,Active,boss@x.io,G1,Eng\n\
         E2,bob@x.io,Bob,B,1,,G2,\n\
         E3,cat@x.io,Cat,C,Inactive,,,Ops\n\
         E4,boss@x.io,Bo,S,active,,,\n\
         E1,dan@x.io,Dan,D,Active,,,\n\
         E5,ANN@x.io,Ann,Dup,Active,,,\n\
         E6,eve@x.io,Eve,E,maybe,,,\n\
         ,fay@x.io,Fay,F,Active,,,\n",
    ))
    .await;
    p.apply(&rows(
        HEADER_WITH_STATUS,
        "E1,ann@x.io,Ann,A,0,,G1,Eng\n\
         E9,bob@x.io,Bob,B,1,,,\n\
         E3,cat@x.io,Cat,C,Active,boss@x.io,,\n\
         E4,boss@x.io,Bo,S,Active,,,Legal\n\
         E4,fay@x.io,Fay,F,Active,,,\n",
    ))
    .await;
}

/// A tiny deterministic generator (no dependency, same files every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next(100) < percent
    }
}

/// Nightly files for a population of `people`: each night some leave, some
/// come back, names and emails change (sometimes to one another's), and a
/// few rows are broken.
fn nightly_files(seed: u64, people: usize, nights: usize) -> Vec<String> {
    let mut rng = Lcg(seed);
    let mut email: Vec<String> = (0..people).map(|i| format!("p{i}@x.io")).collect();
    let mut first: Vec<String> = (0..people).map(|i| format!("F{i}")).collect();
    let mut files = Vec::new();
    for night in 0..nights {
        let mut body = String::from(HEADER);
        for i in 0..people {
            if night > 0 && rng.chance(8) {
                continue; // absent tonight
            }
            if rng.chance(5) {
                first[i] = format!("F{i}n{night}");
            }
            if rng.chance(3) {
                email[i] = format!("p{i}.n{night}@x.io");
            }
            let mut e = email[i].clone();
            if rng.chance(2) {
                // Someone else's current address: a collision.
                e = email[rng.next(people as u64) as usize].clone();
            }
            if rng.chance(1) {
                e = "broken".into();
            }
            let managers: Vec<String> = (0..rng.next(3))
                .map(|_| email[rng.next(people as u64) as usize].clone())
                .collect();
            let groups: Vec<&str> = (0..rng.next(3))
                .map(|_| ["G1", "G2", "G3", "G4"][rng.next(4) as usize])
                .collect();
            let role = ["", "", "", "Admin", "bogus"][rng.next(5) as usize];
            let dept = ["", "Eng", "Ops"][rng.next(3) as usize];
            let level = ["", "1", "2.5", "x"][rng.next(4) as usize];
            let id = if rng.chance(1) {
                // A repeated ID: a duplicate row.
                format!("{}", rng.next(people as u64))
            } else {
                format!("{i}")
            };
            body.push_str(&format!(
                "{id},{e},{},L{i},{},{},{role},{dept},{level}\n",
                first[i],
                managers.join("|"),
                groups.join("|"),
            ));
        }
        files.push(body);
    }
    files
}

/// Six seeded random nights of 60 people through both stores, without the
/// deactivation cap (a random night may leave out more than 20%).
async fn random_nights(key: MatchKey, batch: usize, seed: u64) {
    let mut p = Pair::new(key, &mapping(), batch).await;
    for side in [&p.portable, &p.fast, &p.file, &p.lite] {
        userfeed::tenants::set_hold_limits(&side.db.db, "acme", Some(100), Some(1000))
            .await
            .unwrap();
    }
    for file in nightly_files(seed, 60, 6) {
        p.apply(&file).await;
    }
}

#[tokio::test]
async fn both_stores_agree_on_seeded_random_nights_by_external_id() {
    random_nights(MatchKey::ExternalId, 7, 7).await;
}

#[tokio::test]
async fn both_stores_agree_on_seeded_random_nights_by_email() {
    random_nights(MatchKey::Email, 5, 11).await;
}
