//! End-to-end tests: the real `userfeed` binary as a separate process,
//! PostgreSQL, moto's S3 and SQS, and customer uploads with the real
//! `aws s3 cp`. Each test has its own database, bucket and queue.

use std::time::Duration;

use sea_orm::{ConnectionTrait, TransactionTrait};
use userfeed_tests::*;

mod drop_folder;
mod faults;
mod hostile;
mod production;
mod ui;

const WAIT: Duration = Duration::from_secs(90);

/// The smallest mapping: people matched and named by email alone.
const MAPPING_EMAIL_ONLY: &str = "[columns]\nemail = \"Email\"\n";

struct Stack {
    db: TestDb,
    aws: Aws,
}

async fn stack() -> Stack {
    Stack {
        db: TestDb::new().await.unwrap(),
        aws: Aws::new().await.unwrap(),
    }
}

impl Stack {
    /// Creates a tenant and its mapping through the CLI, as an operator would.
    async fn tenant(&self, slug: &str, match_on: &str, mapping: &str) {
        cli(
            &self.db.url,
            &[
                "tenant",
                "add",
                slug,
                "--bucket",
                &self.aws.bucket,
                "--prefix",
                slug,
                "--match-on",
                match_on,
            ],
        )
        .await
        .unwrap();
        let f = temp_file("mapping.toml", mapping.as_bytes());
        cli(&self.db.url, &["mapping", "set", slug, f.to_str().unwrap()])
            .await
            .unwrap();
    }

    fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = daemon_env(&self.db, &self.aws);
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }

    async fn upload_file(&self, key: &str, body: impl AsRef<[u8]>) {
        let name = key.rsplit('/').next().unwrap();
        aws_cp(&temp_file(name, body.as_ref()), &self.aws.bucket, key)
            .await
            .unwrap();
    }

    /// Waits until the (single) upload is running and has read 1,000 rows.
    async fn wait_part_way(&self) {
        let db = &self.db;
        wait_for("the upload to be part-way", WAIT, || async move {
            let sql = "SELECT count(*) FROM uploads WHERE state = 'running' AND rows_read >= 1000";
            (db.scalar(sql).await == 1).then_some(())
        })
        .await;
    }

    /// Waits until `n` uploads exist and all are finished; returns them by id.
    async fn finished(&self, n: usize) -> Vec<userfeed::db::entity::upload::Model> {
        let db = &self.db;
        wait_for(&format!("{n} finished uploads"), WAIT, || async move {
            let done = db
                .scalar("SELECT count(*) FROM uploads WHERE state IN ('succeeded','failed')")
                .await;
            let all = db.scalar("SELECT count(*) FROM uploads").await;
            (done == n as i64 && all == n as i64).then_some(())
        })
        .await;
        let ids = db.rows("SELECT id::text FROM uploads ORDER BY id").await;
        let mut out = Vec::new();
        for id in ids {
            out.push(upload(db, id.parse().unwrap()).await);
        }
        out
    }
}

fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_dropped_file_creates_users_and_the_next_full_file_deactivates_the_absent_and_renames() {
    let s = stack().await;
    s.tenant("acme", "external_id", MAPPING).await;
    // A password in the URL (the test server's trust auth ignores it) that
    // must never reach a log line or a metric.
    let secret_url = s.db.url.replacen(
        "postgres://postgres@",
        "postgres://postgres:s3cret-pw-4711@",
        1,
    );
    assert_ne!(secret_url, s.db.url);
    let d = Daemon::start(&s.env(&[("USERFEED_DATABASE_URL", &secret_url)]))
        .await
        .unwrap();

    s.upload_file("acme/2026-11-01.csv", employees_csv(4, false))
        .await;
    let ups = s.finished(1).await;
    assert_eq!(
        (ups[0].state.as_str(), ups[0].rows_created),
        ("succeeded", 4),
        "{:?}",
        ups[0].failure_reason
    );

    let second = "Employee ID,Work Email,First Name,Last Name\n\
                  E0,user0@example.com,First0,Last0\n\
                  E1,user1@example.com,Renamed,Last1\n";
    s.upload_file("acme/2026-11-02.csv", second).await;
    let ups = s.finished(2).await;
    assert_eq!(ups[1].state, "succeeded");
    assert_eq!(
        (
            ups[1].rows_updated,
            ups[1].rows_unchanged,
            ups[1].rows_deactivated
        ),
        (1, 1, 2)
    );
    assert_eq!(
        users_of(&s.db, "acme").await,
        vec![
            "user0@example.com|E0|First0|Last0|active|feed",
            "user1@example.com|E1|Renamed|Last1|active|feed",
            "user2@example.com|E2|First2|Last2|inactive|feed",
            "user3@example.com|E3|First3|Last3|inactive|feed",
        ]
    );

    // The history, as the CLI shows it to an operator.
    let list: serde_json::Value = serde_json::from_str(
        &cli(
            &s.db.url,
            &["uploads", "list", "--tenant", "acme", "--json"],
        )
        .await
        .unwrap(),
    )
    .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["rows_deactivated"], 2);
    let users: serde_json::Value = serde_json::from_str(
        &cli(&s.db.url, &["users", "list", "--tenant", "acme", "--json"])
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(users.as_array().unwrap().len(), 4);

    // Probes and metrics.
    assert_eq!(d.get("/readyz").await.unwrap().0, 200);
    let (status, m) = d.get("/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        metric(
            &m,
            r#"userfeed_uploads_finished_total{outcome="succeeded"}"#
        ),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, r#"userfeed_rows_total{result="deactivated"}"#),
        2.0
    );
    assert!(metric(&m, "userfeed_sqs_messages_deleted_total") >= 2.0);
    assert!(
        m.contains("userfeed_upload_duration_seconds_bucket"),
        "histogram exported"
    );

    // Every log line of an upload's work carries its tenant and upload id.
    let log = d.log_text();
    let applied: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "upload applied")
        .collect();
    assert_eq!(applied.len(), 2, "{log}");
    for v in &applied {
        assert_eq!(v["span"]["tenant"], "acme", "{v}");
        assert!(v["span"]["upload_id"].is_i64(), "{v}");
    }
    assert!(
        log.contains("postgres://postgres:***@"),
        "the URL is logged redacted: {log}"
    );
    assert!(
        !log.contains("s3cret-pw-4711") && !m.contains("s3cret-pw-4711"),
        "the password never leaks"
    );
}

#[tokio::test]
async fn a_status_column_in_the_file_sets_each_users_status() {
    let s = stack().await;
    s.tenant("acme", "email", MAPPING_WITH_STATUS).await;
    let _d = Daemon::start(&s.env(&[])).await.unwrap();
    let file = "Employee ID,Work Email,First Name,Last Name,Status\n\
                E0,a@example.com,A,A,Active\n\
                E1,b@example.com,B,B,0\n\
                E2,c@example.com,C,C,INACTIVE\n\
                E3,d@example.com,D,D,1\n";
    s.upload_file("acme/users.csv", file).await;
    let ups = s.finished(1).await;
    assert_eq!((ups[0].rows_created, ups[0].rows_deactivated), (4, 0));
    let status =
        s.db.rows("SELECT email || '=' || active::text FROM users ORDER BY email")
            .await;
    assert_eq!(
        status,
        vec![
            "a@example.com=true",
            "b@example.com=false",
            "c@example.com=false",
            "d@example.com=true"
        ]
    );
}

#[tokio::test]
async fn a_duplicate_sqs_delivery_yields_one_upload() {
    let s = stack().await;
    s.tenant("acme", "email", MAPPING).await;
    s.upload_file("acme/users.csv", employees_csv(3, false))
        .await;
    // Take the real notification off the queue and deliver it twice.
    let bodies = s.aws.take_object_created().await.unwrap();
    assert_eq!(bodies.len(), 1);
    s.aws.send(&bodies[0]).await.unwrap();
    s.aws.send(&bodies[0]).await.unwrap();

    let d = Daemon::start(&s.env(&[])).await.unwrap();
    let ups = s.finished(1).await;
    assert_eq!(ups[0].rows_created, 3);
    s.aws.wait_drained(WAIT).await;
    let m = d.get("/metrics").await.unwrap().1;
    assert_eq!(
        metric(&m, r#"userfeed_uploads_recorded_total{result="duplicate"}"#),
        1.0,
        "{m}"
    );
    assert_eq!(s.db.scalar("SELECT count(*) FROM uploads").await, 1);
}

#[tokio::test]
async fn test_events_foreign_prefixes_and_junk_messages_are_removed_without_harm() {
    let s = stack().await;
    s.tenant("acme", "email", MAPPING).await;
    // Already queued: the s3:TestEvent S3 sent when the notification was set up.
    s.upload_file("stranger/users.csv", employees_csv(2, false))
        .await;
    s.aws.send("this is not an S3 event").await.unwrap();
    let d = Daemon::start(&s.env(&[])).await.unwrap();
    s.upload_file("acme/users.csv", employees_csv(2, false))
        .await;

    let ups = s.finished(1).await;
    assert_eq!(
        (ups[0].object_key.as_str(), ups[0].state.as_str()),
        ("acme/users.csv", "succeeded")
    );
    s.aws.wait_drained(WAIT).await;
    let m = d.get("/metrics").await.unwrap().1;
    assert_eq!(
        metric(&m, r#"userfeed_intake_ignored_total{reason="test_event"}"#),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, r#"userfeed_intake_ignored_total{reason="no_tenant"}"#),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            r#"userfeed_intake_ignored_total{reason="not_s3_event"}"#
        ),
        1.0,
        "{m}"
    );
    assert_eq!(d.get("/healthz").await.unwrap().0, 200);
    assert_eq!(
        s.db.scalar("SELECT count(*) FROM users").await,
        2,
        "only acme's file was applied"
    );
}

#[tokio::test]
async fn two_tenants_run_in_parallel_while_one_tenants_files_apply_in_order() {
    let s = stack().await;
    s.tenant("alpha", "external_id", MAPPING).await;
    s.tenant("beta", "external_id", MAPPING).await;
    let named = |n: usize, first: &str| {
        let mut f = String::from("Employee ID,Work Email,First Name,Last Name\n");
        for i in 0..n {
            f.push_str(&format!("E{i},user{i}@example.com,{first}{i},Last{i}\n"));
        }
        f
    };
    // Both tenants' first files wait before the daemon starts, so both
    // workers find work at once.
    s.upload_file("alpha/1.csv", named(8_000, "One")).await;
    s.upload_file("beta/1.csv", named(8_000, "Beta")).await;
    // alpha's first file stops part-way through staging until the test lets
    // it go (a trigger waits for a lock the test holds), so its second file
    // certainly arrives while it runs, whatever the machine's speed.
    s.db.db
        .execute_unprepared(
            "CREATE FUNCTION hold_alpha() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.line = 100 AND NEW.upload_id = \
               (SELECT id FROM uploads WHERE object_key = 'alpha/1.csv') \
             THEN PERFORM pg_advisory_xact_lock_shared(4343); END IF; RETURN NEW; END $$; \
             CREATE TRIGGER hold_alpha BEFORE INSERT ON upload_rows \
             FOR EACH ROW EXECUTE FUNCTION hold_alpha()",
        )
        .await
        .unwrap();
    let hold = s.db.db.begin().await.unwrap();
    hold.execute_unprepared("SELECT pg_advisory_xact_lock(4343)")
        .await
        .unwrap();
    let _d = Daemon::start(&s.env(&[
        ("USERFEED_JOBS_CONCURRENCY", "2"),
        ("USERFEED_APPLY_BATCH_SIZE", "250"),
    ]))
    .await
    .unwrap();
    // alpha's second file arrives while its first is running: it must wait.
    let db = &s.db;
    wait_for("alpha/1.csv running", WAIT, || async move {
        (db.scalar(
            "SELECT count(*) FROM uploads WHERE object_key = 'alpha/1.csv' AND state = 'running'",
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    s.upload_file("alpha/2.csv", named(8_000, "Two")).await;
    wait_for("alpha/2.csv queued", WAIT, || async move {
        (db.scalar("SELECT count(*) FROM uploads WHERE object_key = 'alpha/2.csv'")
            .await
            == 1)
            .then_some(())
    })
    .await;
    hold.commit().await.unwrap();
    let ups = s.finished(3).await;
    assert!(ups.iter().all(|u| u.state == "succeeded"), "{ups:?}");

    let by_key = |k: &str| ups.iter().find(|u| u.object_key == k).unwrap();
    let (a1, a2, b1) = (
        by_key("alpha/1.csv"),
        by_key("alpha/2.csv"),
        by_key("beta/1.csv"),
    );
    // The situation: alpha's second file was queued while its first ran...
    assert!(
        a2.queued_at < a1.finished_at.unwrap(),
        "alpha/2.csv was queued only after alpha/1.csv finished: {a1:?} {a2:?}"
    );
    // ...and waited: one tenant's files run strictly one after the other,
    // in arrival order.
    assert!(
        a1.finished_at.unwrap() <= a2.started_at.unwrap(),
        "{a1:?} {a2:?}"
    );
    // Two tenants: their runs overlapped in time.
    assert!(
        a1.started_at.unwrap() < b1.finished_at.unwrap()
            && b1.started_at.unwrap() < a1.finished_at.unwrap(),
        "alpha {:?}..{:?} and beta {:?}..{:?} did not overlap",
        a1.started_at,
        a1.finished_at,
        b1.started_at,
        b1.finished_at
    );
    // The later file of alpha is the one that stands.
    let names = s
        .db
        .rows("SELECT u.first_name FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE t.slug = 'alpha' AND u.external_id = 'E1'")
        .await;
    assert_eq!(names, vec!["Two1"]);
}

#[tokio::test]
async fn an_upload_that_would_deactivate_most_people_is_held_until_approved() {
    let s = stack().await;
    s.tenant("acme", "external_id", MAPPING).await;
    let _d = Daemon::start(&s.env(&[])).await.unwrap();
    s.upload_file("acme/1.csv", employees_csv(30, false)).await;
    s.finished(1).await;
    // A truncated export: 5 of 30 people.
    s.upload_file("acme/2.csv", employees_csv(5, false)).await;
    let db = &s.db;
    wait_for("the upload to be held", WAIT, || async move {
        (db.scalar("SELECT count(*) FROM uploads WHERE state = 'held'")
            .await
            == 1)
            .then_some(())
    })
    .await;
    assert_eq!(
        s.db.scalar("SELECT count(*) FROM users WHERE active").await,
        30
    );
    let shown = cli(&s.db.url, &["uploads", "show", "2"]).await.unwrap();
    assert!(
        shown.contains("25 of 30") && shown.contains("userfeed uploads approve 2"),
        "{shown}"
    );
    let out = cli(&s.db.url, &["uploads", "approve", "2"]).await.unwrap();
    assert!(out.contains("25 user(s) deactivated"), "{out}");
    assert_eq!(
        s.db.scalar("SELECT count(*) FROM users WHERE active").await,
        5
    );
}

#[tokio::test]
async fn a_file_with_bad_rows_succeeds_and_reports_each_by_line() {
    let s = stack().await;
    s.tenant("acme", "email", MAPPING_WITH_STATUS).await;
    let _d = Daemon::start(&s.env(&[])).await.unwrap();
    let file = "Employee ID,Work Email,First Name,Last Name,Status\r\n\
                E1,good@example.com,Good,Row,1\r\n\
                E2,bad-email,Bad,Email,1\r\n\
                E3,odd@example.com,Odd,Status,sometimes\r\n\
                E4,late@example.com,Late,Row,0\r\n";
    s.upload_file("acme/users.csv", file).await;
    let ups = s.finished(1).await;
    assert_eq!(
        (
            ups[0].state.as_str(),
            ups[0].rows_created,
            ups[0].rows_rejected
        ),
        ("succeeded", 2, 2)
    );
    let detail: serde_json::Value = serde_json::from_str(
        &cli(
            &s.db.url,
            &["uploads", "show", &ups[0].id.to_string(), "--json"],
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let errors = detail["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(
        (
            errors[0]["line"].as_i64(),
            errors[0]["column_name"].as_str()
        ),
        (Some(3), Some("Work Email"))
    );
    assert_eq!(
        (
            errors[1]["line"].as_i64(),
            errors[1]["column_name"].as_str()
        ),
        (Some(4), Some("Status"))
    );
    let text = cli(&s.db.url, &["uploads", "show", &ups[0].id.to_string()])
        .await
        .unwrap();
    assert!(
        text.contains("row problems:") && text.contains("bad-email"),
        "{text}"
    );
    // The same problems as a spreadsheet-safe CSV report.
    let csv = cli(
        &s.db.url,
        &["uploads", "errors", &ups[0].id.to_string(), "--csv"],
    )
    .await
    .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "line,severity,column,message");
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[1].starts_with("3,error,Work Email,"), "{csv}");
    assert!(lines[2].starts_with("4,error,Status,"), "{csv}");
    // A template for the tenant's mapping.
    let template = cli(&s.db.url, &["template", "acme"]).await.unwrap();
    assert_eq!(
        template.lines().next(),
        Some("Employee ID,Work Email,First Name,Last Name,Status")
    );
}

#[tokio::test]
async fn a_non_utf8_file_fails_with_a_clear_reason_and_changes_nothing() {
    let s = stack().await;
    s.tenant("acme", "email", MAPPING).await;
    let _d = Daemon::start(&s.env(&[])).await.unwrap();
    s.upload_file("acme/1.csv", employees_csv(3, false)).await;
    s.finished(1).await;
    let before = users_of(&s.db, "acme").await;
    // Latin-1, as a spreadsheet "CSV" export might be; user0 renamed, others absent.
    s.upload_file(
        "acme/2.csv",
        b"Employee ID,Work Email,First Name,Last Name\nE0,user0@example.com,Ren\xe9e,Last0\n",
    )
    .await;
    let ups = s.finished(2).await;
    assert_eq!(ups[1].state, "failed");
    let reason = ups[1].failure_reason.clone().unwrap();
    assert!(
        reason.contains("not UTF-8") && reason.contains("line 2") && reason.contains("CSV UTF-8"),
        "{reason}"
    );
    assert_eq!(users_of(&s.db, "acme").await, before);
}

#[tokio::test]
async fn a_worker_killed_mid_upload_leaves_it_to_be_reclaimed_after_the_lease_and_completed_by_another()
 {
    let s = stack().await;
    s.tenant("acme", "external_id", MAPPING).await;
    let env = s.env(&[
        ("USERFEED_JOBS_LEASE_SECONDS", "3"),
        ("USERFEED_APPLY_BATCH_SIZE", "100"),
    ]);
    s.upload_file("acme/big.csv", employees_csv(20_000, false))
        .await;
    let mut first = Daemon::start(&env).await.unwrap();
    s.wait_part_way().await;
    first.child.start_kill().unwrap(); // SIGKILL: no hand-back, the lease is simply abandoned
    first.child.wait().await.unwrap();
    let abandoned = upload(&s.db, 1).await;
    assert_eq!(
        (abandoned.state.as_str(), abandoned.attempts),
        ("running", 1)
    );
    let expired_at = abandoned.lease_expires_at.unwrap();

    let _second = Daemon::start(&env).await.unwrap();
    let ups = s.finished(1).await;
    let done = &ups[0];
    assert_eq!(done.state, "succeeded", "{:?}", done.failure_reason);
    assert_eq!(done.attempts, 2);
    assert!(
        done.started_at.unwrap() >= expired_at,
        "re-claimed only after the lease ran out"
    );
    assert_eq!(
        (done.rows_read, done.rows_created + done.rows_unchanged),
        (20_000, 20_000)
    );
    assert_eq!(
        s.db.scalar("SELECT count(*) FROM users WHERE active").await,
        20_000
    );
    assert_eq!(s.db.scalar("SELECT count(*) FROM upload_rows").await, 0);
}

#[tokio::test]
async fn sigterm_hands_back_the_running_upload_and_another_worker_resumes_it_at_once() {
    let s = stack().await;
    s.tenant("acme", "external_id", MAPPING).await;
    // A long lease: resuming must not depend on it running out.
    let env = s.env(&[
        ("USERFEED_JOBS_LEASE_SECONDS", "300"),
        ("USERFEED_APPLY_BATCH_SIZE", "100"),
    ]);
    s.upload_file("acme/big.csv", employees_csv(20_000, false))
        .await;
    let mut first = Daemon::start(&env).await.unwrap();
    s.wait_part_way().await;
    let asked = std::time::Instant::now();
    first.signal("TERM");
    let status = tokio::time::timeout(Duration::from_secs(15), first.child.wait())
        .await
        .expect("exits")
        .unwrap();
    let took = asked.elapsed();
    println!("SIGTERM to exit, handing back at a batch boundary: {took:?} (grace 10 s)");
    assert!(status.success(), "{status:?}\n{}", first.log_text());
    assert!(
        took < Duration::from_secs(10),
        "hands back well within the grace period (jobs.shutdown_grace_seconds = 10 in daemon_env): {took:?}"
    );
    let back = upload(&s.db, 1).await;
    assert_eq!(
        (
            back.state.as_str(),
            back.lease_owner.as_deref(),
            back.attempts
        ),
        ("queued", None, 0)
    );

    let _second = Daemon::start(&env).await.unwrap();
    let ups = s.finished(1).await;
    assert_eq!(
        (ups[0].state.as_str(), ups[0].attempts, ups[0].rows_read),
        ("succeeded", 1, 20_000)
    );
}

#[tokio::test]
async fn a_400k_row_file_streams_with_flat_memory() {
    let s = stack().await;
    s.tenant("acme", "external_id", MAPPING).await;
    // Two malloc arenas, as in production (deploy/kubernetes): per-thread
    // arenas otherwise add megabytes of noise to peak RSS.
    let d = Daemon::start(&s.env(&[
        ("USERFEED_APPLY_BATCH_SIZE", "2000"),
        ("MALLOC_ARENA_MAX", "2"),
    ]))
    .await
    .unwrap();
    s.upload_file("acme/small.csv", employees_csv(20_000, false))
        .await;
    s.finished(1).await;
    let small_peak = d.peak_rss_kib();
    let big = employees_csv(400_000, false);
    let big_mib = big.len() as f64 / 1048576.0;
    s.upload_file("acme/big.csv", big).await;
    let ups = s.finished(2).await;
    assert_eq!(
        (ups[1].state.as_str(), ups[1].rows_read),
        ("succeeded", 400_000)
    );
    let big_peak = d.peak_rss_kib();
    let growth_mib = (big_peak.saturating_sub(small_peak)) as f64 / 1024.0;
    println!(
        "peak RSS after 20k rows: {:.1} MiB; after 400k rows ({big_mib:.1} MiB file): {:.1} MiB; growth {growth_mib:.1} MiB",
        small_peak as f64 / 1024.0,
        big_peak as f64 / 1024.0
    );
    // Twenty times the rows must not mean more memory than the file itself:
    // a reader that held the file (let alone its parsed rows) could not stay
    // under that; streaming stays flat. What does grow is bounded (pool and
    // allocator warm-up, the repeated-key filter sized by the file, batches
    // merged up to 1 MiB while the database is behind): measured 8-12 MiB
    // from 20k rows to 200k rows and to 400k alike, so the file is 400k rows
    // (20 MiB), where the bound leaves room; at 200k (10 MiB) it did not
    // (CI once measured 10.4 MiB).
    assert!(
        growth_mib < big_mib,
        "memory grew {growth_mib:.1} MiB for a {big_mib:.1} MiB file"
    );
}

#[tokio::test]
async fn a_400k_row_manual_upload_through_the_api_streams_with_flat_memory() {
    use userfeed::service::Caller;
    use userfeed::web::auth::new_token;
    let s = stack().await;
    s.tenant("acme", "external_id", MAPPING).await;
    let (token, entry) = new_token("acme-admin", &Caller::Tenant("acme".into())).unwrap();
    let tokens = temp_file("tokens.toml", entry.as_bytes());
    let api = format!("127.0.0.1:{}", free_port());
    let tokens_path = tokens.display().to_string();
    let d = Daemon::start(&s.env(&[
        ("USERFEED_APPLY_BATCH_SIZE", "2000"),
        ("MALLOC_ARENA_MAX", "2"),
        ("USERFEED_API_BIND", &api),
        ("USERFEED_API_TOKENS_FILE", &tokens_path),
    ]))
    .await
    .unwrap();
    // curl streams the file from disk as the API reads it.
    let post = |name: &str, body: String| {
        let file = temp_file(name, body.as_bytes());
        let url = format!("http://{api}/api/v1/tenants/acme/files?name={name}");
        let auth = format!("Authorization: Bearer {token}");
        async move {
            let out = tokio::process::Command::new("curl")
                .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
                .args(["-H", &auth, "-H", "Content-Type: text/csv", "-T"])
                .arg(&file)
                .arg(&url)
                .output()
                .await
                .unwrap();
            String::from_utf8_lossy(&out.stdout).to_string()
        }
    };
    assert_eq!(post("small.csv", employees_csv(20_000, false)).await, "202");
    s.finished(1).await;
    let small_peak = d.peak_rss_kib();
    let big = employees_csv(400_000, false);
    let big_mib = big.len() as f64 / 1048576.0;
    assert_eq!(post("big.csv", big).await, "202");
    let ups = s.finished(2).await;
    assert_eq!(
        (
            ups[1].state.as_str(),
            ups[1].rows_read,
            ups[1].source.as_str()
        ),
        ("succeeded", 400_000, "s3")
    );
    assert!(
        ups[1].object_key.starts_with("acme/api-"),
        "{}",
        ups[1].object_key
    );
    let big_peak = d.peak_rss_kib();
    let growth_mib = (big_peak.saturating_sub(small_peak)) as f64 / 1024.0;
    println!(
        "manual upload: peak RSS after 20k rows: {:.1} MiB; after 400k rows ({big_mib:.1} MiB file): {:.1} MiB; growth {growth_mib:.1} MiB",
        small_peak as f64 / 1024.0,
        big_peak as f64 / 1024.0
    );
    // Received, spooled, put to S3 and applied: none of it may hold the
    // file, so twenty times the rows stays under the file's own size (see
    // the test above for why 400k rows).
    assert!(
        growth_mib < big_mib,
        "memory grew {growth_mib:.1} MiB for a {big_mib:.1} MiB file"
    );
}

#[tokio::test]
async fn a_notification_that_cannot_be_recorded_is_deleted_after_max_receives_and_counted() {
    let s = stack().await;
    s.tenant("acme", "email", MAPPING).await;
    // Fault injection in the real database: recording this one object fails
    // on every attempt, as a notification that poisons intake would.
    s.db.db
        .execute_unprepared(
            "CREATE FUNCTION inject_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.object_key LIKE '%poison%' THEN \
               RAISE EXCEPTION 'injected fault: cannot record %', NEW.object_key; \
             END IF; RETURN NEW; END $$; \
             CREATE TRIGGER inject_poison BEFORE INSERT ON uploads \
             FOR EACH ROW EXECUTE FUNCTION inject_poison()",
        )
        .await
        .unwrap();
    let d = Daemon::start(&s.env(&[
        ("USERFEED_INTAKE_MAX_RECEIVES", "2"),
        ("USERFEED_INTAKE_VISIBILITY_TIMEOUT_SECONDS", "1"),
        ("USERFEED_INTAKE_WAIT_TIME_SECONDS", "1"),
    ]))
    .await
    .unwrap();
    s.upload_file("acme/poison.csv", employees_csv(2, false))
        .await;
    s.upload_file("acme/users.csv", employees_csv(3, false))
        .await;

    let ups = s.finished(1).await;
    assert_eq!(
        ups[0].object_key, "acme/users.csv",
        "the good file is applied"
    );
    s.aws.wait_drained(WAIT).await;
    let m = d.get("/metrics").await.unwrap().1;
    assert_eq!(
        metric(&m, r#"userfeed_intake_ignored_total{reason="poison"}"#),
        1.0,
        "{m}"
    );
    assert!(
        metric(&m, r#"userfeed_intake_errors_total{stage="record"}"#) >= 1.0,
        "{m}"
    );
    let log = d.log_text();
    assert!(
        log.contains("intake.max_receives") && log.contains("acme/poison.csv"),
        "the deletion is logged with its reason and message:\n{log}"
    );
    assert_eq!(
        d.get("/healthz").await.unwrap().0,
        200,
        "the daemon lives on"
    );
    assert_eq!(s.db.scalar("SELECT count(*) FROM users").await, 3);
}
