//! Applying files: streaming from moto S3 into each backend, real
//! PostgreSQL (the set-based store) and SQLite (the portable store). Tests
//! of a backend's own mechanics (PostgreSQL's staging truncation and unique
//! races) run on PostgreSQL only.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend};
use userfeed::map::MatchKey;
use userfeed_tests::*;

const LEASE: Duration = Duration::from_secs(30);

each_backend!(
    first_file_creates_feed_managed_active_users,
    full_file_deactivates_absent_feed_users_updates_names_and_spares_platform_users,
    an_unchanged_file_rewrites_no_user,
    status_column_decides_status_and_absence_deactivates_nobody,
    rows_with_problems_are_reported_by_line_and_column_and_the_rest_applies,
    a_rejected_row_with_a_known_key_does_not_deactivate_its_user,
    a_non_utf8_file_fails_with_a_clear_reason_and_changes_nothing,
    a_file_missing_a_mapped_column_fails_listing_expected_and_found_headers,
    external_id_matching_follows_an_email_change_and_rejects_a_taken_email,
    profile_fields_are_stored_and_empty_cells_clear_them,
    an_unterminated_quote_fails_the_upload_instead_of_deactivating_everyone_after_it,
    row_problems_over_the_limit_are_counted_not_kept_and_the_upload_still_applies,
);

struct Env {
    db: TestDb,
    aws: Aws,
    w: std::sync::Arc<userfeed::jobs::Workers>,
}

async fn env(key: MatchKey, mapping: &str, batch: usize) -> Env {
    env_on(DbBackend::Postgres, key, mapping, batch).await
}

async fn env_on(backend: DbBackend, key: MatchKey, mapping: &str, batch: usize) -> Env {
    let db = TestDb::of(backend).await.unwrap();
    let aws = Aws::new().await.unwrap();
    tenant(&db, "acme", &aws.bucket, key, mapping).await;
    let w = workers(&db, &aws, LEASE, batch);
    Env { db, aws, w }
}

impl Env {
    /// Another worker pool on this database, with its own reader, batch
    /// size and limits.
    fn workers_with(
        &self,
        reader: std::sync::Arc<dyn userfeed::source::ObjectReader>,
        batch_size: usize,
        limits: userfeed::parse::Limits,
    ) -> std::sync::Arc<userfeed::jobs::Workers> {
        std::sync::Arc::new(userfeed::jobs::Workers::new(
            self.w.db.clone(),
            unique("worker-"),
            userfeed::apply::Pipeline {
                reader,
                store: userfeed::apply::store_for(&self.db.db),
                batch_size,
                limits,
            },
            self.w.settings.clone(),
            Default::default(),
        ))
    }

    /// Uploads `body` as `key`, records it and runs it; returns the upload.
    async fn apply(
        &self,
        key: &str,
        body: impl Into<Vec<u8>>,
    ) -> userfeed::db::entity::upload::Model {
        self.aws.put(key, body).await.unwrap();
        let ids = intake_all(&self.db, &self.aws).await;
        assert_eq!(ids.len(), 1);
        assert_eq!(run_next(&self.w).await, Some(ids[0]));
        upload(&self.db, ids[0]).await
    }
}

async fn first_file_creates_feed_managed_active_users(backend: DbBackend) {
    let e = env_on(backend, MatchKey::Email, MAPPING, 2).await;
    let up = e.apply("acme/a.csv", employees_csv(5, false)).await;
    assert_eq!(up.state, "succeeded", "{:?}", up.failure_reason);
    assert_eq!(
        (
            up.rows_read,
            up.rows_created,
            up.rows_updated,
            up.rows_deactivated
        ),
        (5, 5, 0, 0)
    );
    let users = users_of(&e.db, "acme").await;
    assert_eq!(users.len(), 5);
    assert_eq!(users[0], "user0@example.com|E0|First0|Last0|active|feed");
    assert_eq!(
        e.db.scalar("SELECT count(*) FROM upload_rows").await,
        0,
        "staging is cleaned up"
    );
}

async fn full_file_deactivates_absent_feed_users_updates_names_and_spares_platform_users(
    backend: DbBackend,
) {
    let e = env_on(backend, MatchKey::Email, MAPPING, 2).await;
    e.apply("acme/1.csv", employees_csv(4, false)).await;
    // A user created on the platform, never in any file.
    e.db.db
        .execute_unprepared(
            "INSERT INTO users (tenant_id, email, first_name, last_name, feed_managed) \
             SELECT id, 'admin@example.com', 'Ada', 'Admin', false FROM tenants",
        )
        .await
        .unwrap();
    let second = "Employee ID,Work Email,First Name,Last Name\n\
                  E0,user0@example.com,First0,Last0\n\
                  E1,USER1@example.com,Renamed,Last1\n";
    let up = e.apply("acme/2.csv", second).await;
    assert_eq!(up.state, "succeeded", "{:?}", up.failure_reason);
    assert_eq!(
        (
            up.rows_created,
            up.rows_updated,
            up.rows_unchanged,
            up.rows_deactivated
        ),
        (0, 1, 1, 2)
    );
    assert_eq!(
        users_of(&e.db, "acme").await,
        vec![
            "USER1@example.com|E1|Renamed|Last1|active|feed",
            "admin@example.com||Ada|Admin|active|platform",
            "user0@example.com|E0|First0|Last0|active|feed",
            "user2@example.com|E2|First2|Last2|inactive|feed",
            "user3@example.com|E3|First3|Last3|inactive|feed",
        ]
    );
    // A deactivated user who reappears is active again.
    let up = e.apply("acme/3.csv", employees_csv(3, false)).await;
    assert_eq!(
        (up.rows_updated, up.rows_deactivated),
        (2, 0),
        "user1 renamed back, user2 reactivated"
    );
    assert!(
        users_of(&e.db, "acme")
            .await
            .contains(&"user2@example.com|E2|First2|Last2|active|feed".to_string())
    );
}

async fn an_unchanged_file_rewrites_no_user(backend: DbBackend) {
    let e = env_on(backend, MatchKey::Email, MAPPING, 3).await;
    e.apply("acme/1.csv", employees_csv(7, false)).await;
    let before =
        e.db.rows("SELECT id || ':' || CAST(updated_at AS TEXT) FROM users ORDER BY id")
            .await;
    let up = e.apply("acme/2.csv", employees_csv(7, false)).await;
    assert_eq!(
        (up.rows_unchanged, up.rows_updated, up.rows_created),
        (7, 0, 0)
    );
    let after =
        e.db.rows("SELECT id || ':' || CAST(updated_at AS TEXT) FROM users ORDER BY id")
            .await;
    assert_eq!(before, after);
}

async fn status_column_decides_status_and_absence_deactivates_nobody(backend: DbBackend) {
    let e = env_on(backend, MatchKey::Email, MAPPING_WITH_STATUS, 10).await;
    e.apply("acme/1.csv", employees_csv(3, true)).await;
    let second = "Employee ID,Work Email,First Name,Last Name,Status\n\
                  E0,user0@example.com,First0,Last0,0\n\
                  E1,user1@example.com,First1,Last1,inactive\n";
    let up = e.apply("acme/2.csv", second).await;
    // Both status-0 users are deactivated (counted as deactivations); user2,
    // absent from the file, is not.
    assert_eq!((up.rows_updated, up.rows_deactivated), (0, 2));
    let users = users_of(&e.db, "acme").await;
    assert_eq!(
        users,
        vec![
            "user0@example.com|E0|First0|Last0|inactive|feed",
            "user1@example.com|E1|First1|Last1|inactive|feed",
            "user2@example.com|E2|First2|Last2|active|feed",
        ]
    );
}

async fn rows_with_problems_are_reported_by_line_and_column_and_the_rest_applies(
    backend: DbBackend,
) {
    let e = env_on(backend, MatchKey::Email, MAPPING_WITH_STATUS, 2).await;
    let file = "Employee ID,Work Email,First Name,Last Name,Status\n\
                E1,ok1@example.com,A,B,1\n\
                E2,not-an-email,A,B,1\n\
                E3,,A,B,1\n\
                E4,ok4@example.com,A,B,maybe\n\
                E5,ok1@example.com,Dup,B,1\n\
                E6,ok6@example.com,A\n\
                E7,ok7@example.com,A,B,Active\n";
    let up = e.apply("acme/bad.csv", file).await;
    assert_eq!(up.state, "succeeded");
    assert_eq!((up.rows_read, up.rows_created, up.rows_rejected), (7, 2, 5));
    let errs = row_errors(&e.db, up.id).await;
    assert_eq!(errs.len(), 5, "{errs:?}");
    assert!(
        errs[0].starts_with("3|Work Email|email \"not-an-email\" is not a valid address"),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with("4|Work Email|email is missing"),
        "{errs:?}"
    );
    assert!(errs[2].starts_with("5|Status|status \"maybe\""), "{errs:?}");
    assert!(
        errs[3].starts_with("6|Work Email|duplicate of line 2"),
        "{errs:?}"
    );
    assert!(
        errs[4].starts_with("7||row has 3 fields but the header has 5"),
        "{errs:?}"
    );
    let emails = e.db.rows("SELECT email FROM users ORDER BY email").await;
    assert_eq!(emails, vec!["ok1@example.com", "ok7@example.com"]);
}

async fn a_rejected_row_with_a_known_key_does_not_deactivate_its_user(backend: DbBackend) {
    let e = env_on(backend, MatchKey::Email, MAPPING, 10).await;
    e.apply("acme/1.csv", employees_csv(2, false)).await;
    // user1's row is ragged (rejected) but names user1: they stay active.
    let up = e.apply("acme/2.csv", "Employee ID,Work Email,First Name,Last Name\nE0,user0@example.com,First0,Last0\nE1,user1@example.com\n").await;
    assert_eq!((up.rows_rejected, up.rows_deactivated), (1, 0));
    assert!(
        users_of(&e.db, "acme")
            .await
            .iter()
            .all(|u| u.contains("|active|"))
    );
}

async fn a_non_utf8_file_fails_with_a_clear_reason_and_changes_nothing(backend: DbBackend) {
    let e = env_on(backend, MatchKey::Email, MAPPING, 2).await;
    e.apply("acme/1.csv", employees_csv(4, false)).await;
    let before = users_of(&e.db, "acme").await;
    // Valid rows first (more than a batch), then a Latin-1 "é" on line 5.
    let mut bad = b"Employee ID,Work Email,First Name,Last Name\nE0,user0@example.com,Changed,Last0\nE1,user1@example.com,First1,Last1\nE2,user2@example.com,First2,Last2\n".to_vec();
    bad.extend_from_slice(b"E3,user3@example.com,Ren\xe9,Last3\n");
    let up = e.apply("acme/latin1.csv", bad).await;
    assert_eq!(up.state, "failed");
    let reason = up.failure_reason.unwrap();
    assert!(
        reason.contains("not UTF-8") && reason.contains("line 5"),
        "{reason}"
    );
    assert_eq!(
        users_of(&e.db, "acme").await,
        before,
        "nothing changed, nobody deactivated"
    );
    assert_eq!(e.db.scalar("SELECT count(*) FROM upload_rows").await, 0);
}

async fn a_file_missing_a_mapped_column_fails_listing_expected_and_found_headers(
    backend: DbBackend,
) {
    let e = env_on(backend, MatchKey::Email, MAPPING, 10).await;
    let up = e
        .apply("acme/x.csv", "Work Email,First Name\na@example.com,A\n")
        .await;
    assert_eq!(up.state, "failed");
    let r = up.failure_reason.unwrap();
    assert!(
        r.contains("missing mapped column(s) [\"Employee ID\", \"Last Name\"]")
            && r.contains("found [\"Work Email\", \"First Name\"]"),
        "{r}"
    );
}

#[tokio::test]
async fn a_tenant_without_mapping_fails_with_the_fix() {
    let db = TestDb::new().await.unwrap();
    let aws = Aws::new().await.unwrap();
    userfeed::tenants::add(&db.db, "acme", &aws.bucket, "acme", MatchKey::Email)
        .await
        .unwrap();
    aws.put("acme/x.csv", employees_csv(1, false))
        .await
        .unwrap();
    let ids = intake_all(&db, &aws).await;
    run_next(&workers(&db, &aws, LEASE, 10)).await;
    let up = upload(&db, ids[0]).await;
    assert_eq!(up.state, "failed");
    assert!(up.failure_reason.unwrap().contains("userfeed mapping set"));
}

#[tokio::test]
async fn an_object_overwritten_after_its_notification_fails_as_overwritten_and_the_newer_applies() {
    let e = env(MatchKey::Email, MAPPING, 10).await;
    e.aws
        .put("acme/u.csv", employees_csv(1, false))
        .await
        .unwrap();
    let old = intake_all(&e.db, &e.aws).await;
    // Overwritten before the first notification's upload was read (the
    // second notification has not been recorded yet).
    e.aws
        .put("acme/u.csv", employees_csv(3, false))
        .await
        .unwrap();
    run_next(&e.w).await;
    let up = upload(&e.db, old[0]).await;
    assert_eq!(up.state, "failed");
    assert!(up.failure_reason.unwrap().contains("overwritten"));
    let new = intake_all(&e.db, &e.aws).await;
    run_next(&e.w).await;
    let up = upload(&e.db, new[0]).await;
    assert_eq!((up.state.as_str(), up.rows_created), ("succeeded", 3));
}

#[tokio::test]
async fn an_object_deleted_before_it_was_read_fails_cleanly_without_retries() {
    let e = env(MatchKey::Email, MAPPING, 10).await;
    e.aws
        .put("acme/gone.csv", employees_csv(1, false))
        .await
        .unwrap();
    let ids = intake_all(&e.db, &e.aws).await;
    e.aws
        .s3
        .delete_object()
        .bucket(&e.aws.bucket)
        .key("acme/gone.csv")
        .send()
        .await
        .unwrap();
    run_next(&e.w).await;
    let up = upload(&e.db, ids[0]).await;
    assert_eq!((up.state.as_str(), up.attempts), ("failed", 1));
    assert!(up.failure_reason.unwrap().contains("no longer exists"));
    assert!(run_next(&e.w).await.is_none(), "no retry storm");
}

async fn external_id_matching_follows_an_email_change_and_rejects_a_taken_email(
    backend: DbBackend,
) {
    let e = env_on(backend, MatchKey::ExternalId, MAPPING, 10).await;
    e.apply("acme/1.csv", employees_csv(3, false)).await;
    let file = "Employee ID,Work Email,First Name,Last Name\n\
                E0,new0@example.com,First0,Last0\n\
                E1,user2@example.com,First1,Last1\n\
                E2,user2@example.com,First2,Last2\n";
    let up = e.apply("acme/2.csv", file).await;
    assert_eq!(
        (up.rows_updated, up.rows_unchanged, up.rows_rejected),
        (1, 1, 1)
    );
    let errs = row_errors(&e.db, up.id).await;
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with(
            "3|Work Email|email \"user2@example.com\" already belongs to another user"
        ),
        "{errs:?}"
    );
    let users = users_of(&e.db, "acme").await;
    assert!(
        users.contains(&"new0@example.com|E0|First0|Last0|active|feed".to_string()),
        "{users:?}"
    );
    assert!(
        users.contains(&"user1@example.com|E1|First1|Last1|active|feed".to_string()),
        "{users:?}"
    );
}

/// Every user's profile, as JSON (PostgreSQL keeps `jsonb`, SQLite text).
async fn profiles(db: &TestDb) -> Vec<serde_json::Value> {
    db.rows("SELECT CAST(profile AS TEXT) FROM users ORDER BY id")
        .await
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect()
}

async fn profile_fields_are_stored_and_empty_cells_clear_them(backend: DbBackend) {
    let mapping = format!("{MAPPING}\n[profile]\ndepartment = \"Dept\"\n");
    let e = env_on(backend, MatchKey::Email, &mapping, 10).await;
    e.apply(
        "acme/1.csv",
        "Employee ID,Work Email,First Name,Last Name,Dept\nE0,a@example.com,A,B,Sales\n",
    )
    .await;
    assert_eq!(
        profiles(&e.db).await,
        vec![serde_json::json!({"department": "Sales"})]
    );
    let up = e
        .apply(
            "acme/2.csv",
            "Employee ID,Work Email,First Name,Last Name,Dept\nE0,a@example.com,A,B,\n",
        )
        .await;
    assert_eq!(up.rows_updated, 1);
    assert_eq!(profiles(&e.db).await, vec![serde_json::json!({})]);
}

async fn an_unterminated_quote_fails_the_upload_instead_of_deactivating_everyone_after_it(
    backend: DbBackend,
) {
    let e = env_on(backend, MatchKey::Email, MAPPING, 2).await;
    e.apply("acme/1.csv", employees_csv(5, false)).await;
    let before = users_of(&e.db, "acme").await;
    let broken = "Employee ID,Work Email,First Name,Last Name\n\
                  E0,user0@example.com,\"First0,Last0\n\
                  E1,user1@example.com,First1,Last1\n\
                  E2,user2@example.com,First2,Last2\n";
    let up = e.apply("acme/2.csv", broken).await;
    assert_eq!(up.state, "failed");
    let reason = up.failure_reason.unwrap();
    assert!(
        reason.contains("line 2") && reason.contains("never closed"),
        "{reason}"
    );
    assert_eq!(users_of(&e.db, "acme").await, before);
}

#[tokio::test]
async fn migrations_are_safe_to_run_twice() {
    let db = TestDb::new().await.unwrap(); // already migrated once
    userfeed::db::migrate(&db.db)
        .await
        .expect("second run is a no-op");
    use userfeed_migrations::MigratorTrait;
    let known = userfeed_migrations::Migrator::migrations().len() as i64;
    assert_eq!(
        db.scalar("SELECT count(*) FROM seaql_migrations").await,
        known
    );
}

#[tokio::test]
async fn files_over_the_default_limits_fail_naming_the_limit_and_change_nothing() {
    let e = env(MatchKey::Email, MAPPING, 2).await;
    e.apply("acme/1.csv", employees_csv(5, false)).await;
    let before = users_of(&e.db, "acme").await;
    // A header of 1,001 columns (limits.max_columns is 1,000).
    let wide: Vec<String> = (0..1001).map(|i| format!("c{i}")).collect();
    let wide = format!("{}\n1\n", wide.join(","));
    // A valid start, then 2 MiB without a line end (limits.max_record_bytes
    // is 1 MiB): the reader stops there instead of buffering the rest.
    let mut endless = employees_csv(3, false).into_bytes();
    endless.extend(std::iter::repeat_n(b'x', 2 << 20));
    // A 100 KiB name (limits.max_field_bytes is 64 KiB).
    let long = format!(
        "Employee ID,Work Email,First Name,Last Name\nE0,user0@example.com,{},Last0\n",
        "n".repeat(100 << 10)
    );
    for (i, (body, limit)) in [
        (wide.into_bytes(), "limits.max_columns"),
        (endless, "limits.max_record_bytes"),
        (long.into_bytes(), "limits.max_field_bytes"),
    ]
    .into_iter()
    .enumerate()
    {
        let up = e.apply(&format!("acme/over-{i}.csv"), body).await;
        assert_eq!(up.state, "failed", "{limit}");
        assert_eq!(up.attempts, 1, "a limit is not retried ({limit})");
        let reason = up.failure_reason.unwrap();
        assert!(reason.contains(limit), "{limit}: {reason}");
        assert_eq!(users_of(&e.db, "acme").await, before, "{limit}");
    }
}

/// Reads objects from moto like the daemon, but panics once more than
/// `after` bytes of a body have been read: a bug in the reading code,
/// injected where the parse task runs it.
struct PanicsPartWay {
    inner: userfeed::source::s3::S3Reader,
    after: usize,
}

struct PanickingBody {
    inner: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>,
    left: usize,
}

impl tokio::io::AsyncRead for PanickingBody {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = self.inner.as_mut().poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > self.left {
            panic!("injected fault: the reader panicked part-way");
        }
        self.left -= read;
        polled
    }
}

#[async_trait::async_trait]
impl userfeed::source::ObjectReader for PanicsPartWay {
    async fn open(
        &self,
        object: &userfeed::source::ObjectRef,
    ) -> Result<userfeed::source::ObjectBody, userfeed::source::SourceError> {
        let body = self.inner.open(object).await?;
        Ok(userfeed::source::ObjectBody {
            reader: Box::pin(PanickingBody {
                inner: body.reader,
                left: self.after,
            }),
            size: body.size,
        })
    }
}

#[tokio::test]
async fn a_reader_that_panics_part_way_fails_the_upload_and_deactivates_nobody() {
    let e = env(MatchKey::Email, MAPPING, 100).await;
    let first = e.apply("acme/1.csv", employees_csv(2_000, false)).await;
    assert_eq!(first.state, "succeeded");
    let before = users_of(&e.db, "acme").await;

    // The same people again, through a reader that panics half-way: the
    // header and the first half are read, then the parse task dies.
    let file = employees_csv(2_000, false);
    let reader = PanicsPartWay {
        inner: userfeed::source::s3::S3Reader::new(e.aws.s3.clone()),
        after: file.len() / 2,
    };
    let w = e.workers_with(std::sync::Arc::new(reader), 100, Default::default());
    e.aws.put("acme/2.csv", file).await.unwrap();
    let ids = intake_all(&e.db, &e.aws).await;
    assert_eq!(run_next(&w).await, Some(ids[0]));
    let up = upload(&e.db, ids[0]).await;
    assert_eq!(up.state, "failed");
    let reason = up.failure_reason.unwrap();
    assert!(
        reason.contains("internal error while reading the file")
            && reason.contains("nothing was changed"),
        "{reason}"
    );
    assert!(
        (1..2_000).contains(&up.rows_read),
        "the panic came part-way: {} rows read",
        up.rows_read
    );
    // Had the closed channel read as the end of the file, the second half
    // would have been deactivated as absent.
    assert_eq!(users_of(&e.db, "acme").await, before, "nobody changed");
    assert_eq!(up.rows_deactivated, 0);
}

async fn row_problems_over_the_limit_are_counted_not_kept_and_the_upload_still_applies(
    backend: DbBackend,
) {
    let e = env_on(backend, MatchKey::ExternalId, MAPPING, 3).await;
    e.apply("acme/1.csv", employees_csv(3, false)).await;
    // Lines 2-6: five bad emails, rejected while reading; lines 7-9: three
    // emails of other people, rejected by the merge; line 10 applies.
    let mut file = String::from("Employee ID,Work Email,First Name,Last Name\n");
    for i in 0..5 {
        file.push_str(&format!("N{i},not-an-email-{i},F,L\n"));
    }
    for i in 0..3 {
        file.push_str(&format!("X{i},user{i}@example.com,F,L\n"));
    }
    file.push_str("E0,user0@example.com,First0,Last0\n");
    let limits = userfeed::parse::Limits {
        max_row_problems: 4,
        ..Default::default()
    };
    let reader = userfeed::source::s3::S3Reader::new(e.aws.s3.clone());
    let w = e.workers_with(std::sync::Arc::new(reader), 3, limits);
    e.aws.put("acme/2.csv", file).await.unwrap();
    let ids = intake_all(&e.db, &e.aws).await;
    assert_eq!(run_next(&w).await, Some(ids[0]));
    let up = upload(&e.db, ids[0]).await;
    assert_eq!(up.state, "succeeded", "{:?}", up.failure_reason);
    assert_eq!(
        (up.rows_read, up.rows_rejected, up.rows_unchanged),
        (9, 8, 1)
    );
    let kept = row_errors(&e.db, up.id).await;
    assert_eq!(
        kept.iter()
            .map(|r| r.split('|').next().unwrap())
            .collect::<Vec<_>>(),
        ["2", "3", "4", "5"],
        "the first four by line: {kept:?}"
    );
    assert_eq!(
        up.row_problems_dropped, 4,
        "one from reading, three from the merge"
    );
    let shown = userfeed::cli::render::upload_text(&userfeed::report::UploadDetail {
        tenant: "acme".into(),
        upload: up.clone(),
        errors: vec![],
        notifications: vec![],
    });
    assert!(shown.contains("4 more row problem(s)"), "{shown}");
}

/// The finish drops staging with `TRUNCATE` only when no other upload is
/// running: another running upload's staged rows survive a finish, and a
/// finish alone leaves the table empty, its storage released (deleted rows
/// would stay until a vacuum and slow the next staging down).
#[tokio::test]
async fn the_finish_truncates_staging_only_when_no_other_upload_is_running() {
    let e = env(MatchKey::Email, MAPPING, 2).await;
    let other =
        e.db.scalar(
            "INSERT INTO tenants (slug, bucket, key_prefix) VALUES ('other', 'b', 'other/') \
             RETURNING id",
        )
        .await;
    let running =
        e.db.scalar(&format!(
            "INSERT INTO uploads (tenant_id, bucket, object_key, object_identity, state, \
             lease_token, lease_expires_at) VALUES ({other}, 'b', 'other/x.csv', 'x', \
             'running', 1, now() + interval '1 hour') RETURNING id"
        ))
        .await;
    e.db.scalar(&format!(
        "WITH s AS (INSERT INTO upload_rows (upload_id, line, match_key) \
         VALUES ({running}, 2, 'kept@example.com') RETURNING 1) SELECT count(*) FROM s"
    ))
    .await;

    let up = e.apply("acme/a.csv", employees_csv(5, false)).await;
    assert_eq!(up.state, "succeeded", "{:?}", up.failure_reason);
    assert_eq!(
        e.db.rows("SELECT upload_id || ':' || match_key FROM upload_rows")
            .await,
        vec![format!("{running}:kept@example.com")],
        "the running upload's staged row survives; acme's own are gone"
    );

    e.db.scalar(&format!(
        "WITH f AS (UPDATE uploads SET state = 'failed', finished_at = now() \
         WHERE id = {running} RETURNING 1) SELECT count(*) FROM f"
    ))
    .await;
    let up = e.apply("acme/b.csv", employees_csv(6, false)).await;
    assert_eq!(up.state, "succeeded", "{:?}", up.failure_reason);
    assert_eq!(
        e.db.scalar("SELECT pg_relation_size('upload_rows')").await,
        0,
        "alone, the finish truncates: no rows and no pages left"
    );
}

#[tokio::test]
async fn a_row_another_writer_inserted_first_is_a_transient_error_and_other_violations_fail() {
    use userfeed::apply::{ApplyError, UploadError};
    let db = TestDb::new().await.unwrap();
    tenant(&db, "acme", "no-bucket", MatchKey::Email, MAPPING).await;
    let insert = |email: &str| {
        format!("INSERT INTO users (tenant_id, email) SELECT id, '{email}' FROM tenants")
    };
    db.db.execute_unprepared(&insert("ann@x.io")).await.unwrap();
    // The merge and whole-file link inserts compute exact sets from their
    // snapshot: a row added since is a unique violation, retried later.
    let race = db
        .db
        .execute_unprepared(&insert("ANN@x.io"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            UploadError::from(ApplyError::Db(race)),
            UploadError::Transient(_)
        ),
        "a unique violation is a lost race, worth a retry"
    );
    let bad = db
        .db
        .execute_unprepared("INSERT INTO user_roles SELECT id, 'learner' FROM users")
        .await
        .unwrap_err();
    assert!(
        matches!(UploadError::from(ApplyError::Db(bad)), UploadError::Fail(_)),
        "any other violation still fails the upload"
    );
}
