//! Faults injected into the real daemon and the real services around it:
//! workers killed at chosen points, PostgreSQL refusing connections, S3 and
//! SQS cut off, shutdown with a stuck statement, and daemons racing. Each
//! test compares the final database with what an uninterrupted run makes.
//!
//! How a worker is stopped at a chosen point: a trigger on the table that
//! point writes waits for an advisory lock the test holds, so the worker's
//! statement hangs exactly there, inside its transaction; the test sees the
//! waiter in `pg_locks`, injects the fault, then lets go of the lock. A
//! killed worker's transaction can never commit (its client is gone), which
//! is the property under test, not an artefact of the harness.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};
use userfeed_tests::*;

use super::{Stack, WAIT, metric, stack};

/// People in the first nightly file; the second has 100 more, 5% fewer.
const PEOPLE: usize = 3_000;

/// The advisory lock the fault triggers wait for.
const FAULT_LOCK: i64 = 4242;

/// A tenant's nightly file (managers, groups and roles included). The
/// second night renames every 7th person, gives every 11th a new manager,
/// puts every 13th in a second group, drops every 20th (deactivated) and
/// hires 100.
fn nightly(night: u8) -> String {
    let mut s = String::from(LINK_HEADER);
    let n = if night == 1 { PEOPLE } else { PEOPLE + 100 };
    for i in 0..n {
        let second = night == 2;
        if second && i % 20 == 19 {
            continue;
        }
        let first = if second && i % 7 == 0 {
            format!("First{i}b")
        } else {
            format!("First{i}")
        };
        let boss = match i {
            0..10 => String::new(),
            _ if second && i % 11 == 0 => format!("p{}@example.com", i / 10 + 1),
            _ => format!("p{}@example.com", i / 10),
        };
        let groups = if second && i % 13 == 0 {
            format!("G{}|G4", i % 3 + 1)
        } else {
            format!("G{}", i % 3 + 1)
        };
        let roles = if i % 50 == 0 { "Administrator" } else { "" };
        s.push_str(&format!(
            "P{i},p{i}@example.com,{first},Last{i},{boss},{groups},{roles}\n"
        ));
    }
    s
}

/// Where a fault stops a worker: the first row written to `table` by
/// `event` for which `when` holds.
#[derive(Clone, Copy, Debug)]
enum Point {
    /// Staging (`COPY`) the rows read so far, at line 1,500 of 3,101.
    Streaming,
    /// Merging the batch holding line 1,507; the batches before it are
    /// committed.
    Merging,
    /// Linking managers, at a person whose manager changed.
    Linking,
    /// The finish transaction, deactivating the first absent person.
    Deactivating,
}

impl Point {
    fn trigger(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Point::Streaming => ("upload_rows", "INSERT", "NEW.line = 1500"),
            Point::Merging => (
                "users",
                "UPDATE",
                "NEW.external_id = 'P1505' AND NEW.first_name <> OLD.first_name",
            ),
            Point::Linking => (
                "user_managers",
                "INSERT",
                "(SELECT external_id FROM users WHERE id = NEW.user_id) = 'P1507'",
            ),
            Point::Deactivating => ("users", "UPDATE", "OLD.active AND NOT NEW.active"),
        }
    }

    async fn install(self, db: &TestDb) {
        let (table, event, when) = self.trigger();
        db.db
            .execute_unprepared(&format!(
                "CREATE FUNCTION fault_point() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN IF {when} THEN PERFORM pg_advisory_xact_lock_shared({FAULT_LOCK}); END IF; \
                 RETURN NEW; END $$; \
                 CREATE TRIGGER fault_point BEFORE {event} ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION fault_point()"
            ))
            .await
            .unwrap();
    }
}

/// Takes the lock fault points wait for; committing the transaction lets
/// them pass.
async fn hold_fault_lock(db: &TestDb) -> DatabaseTransaction {
    let t = db.db.begin().await.unwrap();
    t.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({FAULT_LOCK})"))
        .await
        .unwrap();
    t
}

/// Waits until a worker's statement waits at the fault point.
async fn wait_at_fault_point(db: &TestDb) {
    wait_for("a worker to reach the fault point", WAIT, || async move {
        // pg_locks shows every database's locks; parallel tests have their own.
        let sql = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
        (db.scalar(sql).await > 0).then_some(())
    })
    .await;
}

/// Tenants `acme` (faults) and `ctrl` (none), the same groups; night 1 for
/// both and night 2 for `ctrl` applied by a daemon nothing disturbs.
async fn prepared() -> Stack {
    let s = stack().await;
    for slug in ["acme", "ctrl"] {
        s.tenant(slug, "external_id", LINK_MAPPING).await;
        for g in 1..=4 {
            let (id, name) = (format!("G{g}"), format!("Group {g}"));
            cli(&s.db.url, &["group", "add", slug, &id, &name])
                .await
                .unwrap();
        }
    }
    let plain = Daemon::start(&s.env(&[])).await.unwrap();
    s.upload_file("ctrl/night1.csv", nightly(1)).await;
    s.upload_file("acme/night1.csv", nightly(1)).await;
    s.finished(2).await;
    s.upload_file("ctrl/night2.csv", nightly(2)).await;
    let ups = s.finished(3).await;
    assert!(
        ups.iter().all(|u| u.state == "succeeded"),
        "{:?}",
        ups.iter().map(|u| &u.failure_reason).collect::<Vec<_>>()
    );
    stop(plain).await;
    // A receive abandoned at shutdown lives on in moto until its wait time
    // (1 s here) is up, and a message arriving meanwhile is handed to it and
    // hidden for the visibility timeout: not lost, but late. Let it lapse.
    tokio::time::sleep(Duration::from_secs(2)).await;
    s
}

async fn stop(mut d: Daemon) {
    d.signal("TERM");
    let status = tokio::time::timeout(Duration::from_secs(30), d.child.wait())
        .await
        .expect("stops")
        .unwrap();
    assert!(status.success(), "{status:?}\n{}", d.log_text());
}

/// Upload `key`'s row.
async fn by_key(s: &Stack, key: &str) -> userfeed::db::entity::upload::Model {
    let id =
        s.db.scalar(&format!(
            "SELECT id FROM uploads WHERE object_key = '{key}'"
        ))
        .await;
    upload(&s.db, id).await
}

/// Night 2 of `acme`, interrupted, ends exactly as `ctrl`'s uninterrupted
/// night 2: the same users, managers, memberships and roles, the same
/// counters, change log and row problems, nobody lost or doubled.
async fn assert_same_as_uninterrupted(s: &Stack) -> userfeed::db::entity::upload::Model {
    s.finished(4).await;
    let (acme, ctrl) = (
        by_key(s, "acme/night2.csv").await,
        by_key(s, "ctrl/night2.csv").await,
    );
    assert_eq!(acme.state, "succeeded", "{:?}", acme.failure_reason);
    let acme_state = tenant_state(&s.db, "acme").await;
    assert!(
        acme_state.len() > PEOPLE * 2,
        "the comparison saw the links"
    );
    assert!(
        acme_state == tenant_state(&s.db, "ctrl").await,
        "acme's users, managers, memberships or roles differ from the uninterrupted run's"
    );
    assert_eq!(upload_counts(&acme), upload_counts(&ctrl), "counters");
    let log = |id: i64| {
        format!(
            "SELECT kind || ' ' || count(*) || ' ' || count(DISTINCT user_id) FROM ( \
                 SELECT 'created' AS kind, id AS user_id FROM users WHERE created_by_upload_id = {id} \
                 UNION ALL SELECT kind, user_id FROM upload_changes WHERE upload_id = {id}) c \
             GROUP BY kind ORDER BY kind"
        )
    };
    assert_eq!(
        s.db.rows(&log(acme.id)).await,
        s.db.rows(&log(ctrl.id)).await,
        "change log (each change once)"
    );
    let problems = |id: i64| {
        format!(
            "SELECT line || ' ' || message FROM upload_row_errors WHERE upload_id = {id} ORDER BY line, message"
        )
    };
    assert_eq!(
        s.db.rows(&problems(acme.id)).await,
        s.db.rows(&problems(ctrl.id)).await
    );
    for slug in ["acme", "ctrl"] {
        assert_eq!(
            s.db.scalar(&format!(
                "SELECT count(*) FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE t.slug = '{slug}'"
            ))
            .await,
            (PEOPLE + 100 - 5) as i64,
            "{slug}: night 1's 3,000 and night 2's 95 new (every 20th of them absent)"
        );
    }
    assert_eq!(s.db.scalar("SELECT count(*) FROM upload_rows").await, 0);
    acme
}

/// What had been committed of `acme`'s night 2 when the worker stopped.
async fn committed_so_far(s: &Stack) -> (i64, i64, i64) {
    let id = by_key(s, "acme/night2.csv").await.id;
    let read =
        s.db.scalar(&format!("SELECT rows_read FROM uploads WHERE id = {id}"))
            .await;
    let changes =
        s.db.scalar(&format!(
            "SELECT (SELECT count(*) FROM upload_changes WHERE upload_id = {id}) \
                 + (SELECT count(*) FROM users WHERE created_by_upload_id = {id})"
        ))
        .await;
    let inactive =
        s.db.scalar(
            "SELECT count(*) FROM users u JOIN tenants t ON t.id = u.tenant_id \
             WHERE t.slug = 'acme' AND NOT u.active",
        )
        .await;
    (read, changes, inactive)
}

async fn killed_at(point: Point) {
    let s = prepared().await;
    point.install(&s.db).await;
    let env = s.env(&[
        ("USERFEED_JOBS_LEASE_SECONDS", "3"),
        ("USERFEED_APPLY_BATCH_SIZE", "100"),
    ]);
    let lock = hold_fault_lock(&s.db).await;
    let mut first = Daemon::start(&env).await.unwrap();
    s.upload_file("acme/night2.csv", nightly(2)).await;
    wait_at_fault_point(&s.db).await;
    let (read, changes, inactive) = committed_so_far(&s).await;
    // What each point means, checked: the kill lands where it says.
    match point {
        Point::Streaming => assert!(
            (1..3_000).contains(&read) && changes == 0,
            "part-way through staging: {read} rows read, {changes} changes"
        ),
        Point::Merging => assert!(
            changes > 0 && inactive == 0,
            "earlier batches committed: {changes} changes"
        ),
        Point::Linking | Point::Deactivating => assert!(
            changes >= 400 && inactive == 0,
            "every row merged ({changes} changes), nobody deactivated yet"
        ),
    }
    first.child.start_kill().unwrap(); // SIGKILL
    first.child.wait().await.unwrap();
    // The dead worker's statement may now run on, but its transaction can
    // never commit: its client is gone.
    lock.commit().await.unwrap();

    let _second = Daemon::start(&env).await.unwrap();
    let done = assert_same_as_uninterrupted(&s).await;
    assert_eq!(
        done.attempts, 2,
        "the killed attempt, then the one that completed"
    );
}

#[tokio::test]
async fn killed_while_streaming_the_file_another_worker_ends_as_an_uninterrupted_run() {
    killed_at(Point::Streaming).await;
}

#[tokio::test]
async fn killed_between_merge_batches_another_worker_ends_as_an_uninterrupted_run() {
    killed_at(Point::Merging).await;
}

#[tokio::test]
async fn killed_while_linking_managers_another_worker_ends_as_an_uninterrupted_run() {
    killed_at(Point::Linking).await;
}

#[tokio::test]
async fn killed_during_deactivation_nobody_is_deactivated_until_another_worker_completes_it() {
    killed_at(Point::Deactivating).await;
}

#[tokio::test]
async fn database_unreachable_mid_upload_the_daemon_waits_not_ready_and_completes_it() {
    let s = prepared().await;
    Point::Merging.install(&s.db).await;
    let env = s.env(&[
        ("USERFEED_JOBS_LEASE_SECONDS", "3"),
        ("USERFEED_APPLY_BATCH_SIZE", "100"),
    ]);
    let lock = hold_fault_lock(&s.db).await;
    let mut d = Daemon::start(&env).await.unwrap();
    s.upload_file("acme/night2.csv", nightly(2)).await;
    wait_at_fault_point(&s.db).await;
    assert_eq!(d.get("/readyz").await.unwrap().0, 200);

    // The outage: the database refuses new connections and every open one
    // is cut, as a failover or a restart looks to the daemon (without
    // stopping the server other tests share).
    let name = s.db.name().to_string();
    s.db.admin_exec(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .await;
    s.db.admin_exec(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .await;
    drop(lock); // its connection is gone with the others
    let outage = Instant::now();
    let body = wait_for("/readyz to report the outage", WAIT, || async {
        d.get("/readyz").await.ok().filter(|(c, _)| *c == 503)
    })
    .await
    .1;
    assert!(body.contains("database unreachable"), "{body}");
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(outage.elapsed())).await;
    assert_eq!(d.get("/healthz").await.unwrap().0, 200, "alive throughout");
    assert!(d.child.try_wait().unwrap().is_none(), "still running");
    let claim_failures = d.log_text().matches("claim failed").count();
    s.db.admin_exec(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await;
    println!("{claim_failures} failed claims in a 6 s outage (4 worker loops)");
    assert!(
        (1..=80).contains(&claim_failures),
        "workers back off while the database is down: {claim_failures} failed claims"
    );

    wait_for("/readyz to recover", WAIT, || async {
        d.get("/readyz").await.ok().filter(|(c, _)| *c == 200)
    })
    .await;
    let done = assert_same_as_uninterrupted(&s).await;
    assert!(done.attempts >= 2, "the cut attempt was retried");
}

#[tokio::test]
async fn s3_and_sqs_unreachable_intake_backs_off_and_nothing_is_lost() {
    let s = stack().await;
    s.tenant("acme", "external_id", MAPPING).await;
    s.tenant("beta", "external_id", MAPPING).await;
    // Responses at 256 KiB/s: the 20,000-row file takes seconds to arrive,
    // so the cut lands part-way through reading it.
    let moto = moto_endpoint();
    let proxy = Proxy::start(moto.trim_start_matches("http://"), 256 * 1024)
        .await
        .unwrap();
    // The cut abandons a receive that moto goes on serving: a message
    // arriving then is handed to it and stays hidden for the visibility
    // timeout (as with SQS). A short one keeps the test short.
    let d = Daemon::start(&s.env(&[
        ("USERFEED_AWS_ENDPOINT_URL", &proxy.url),
        ("USERFEED_APPLY_BATCH_SIZE", "500"),
        ("USERFEED_INTAKE_VISIBILITY_TIMEOUT_SECONDS", "5"),
    ]))
    .await
    .unwrap();
    s.upload_file("acme/big.csv", employees_csv(20_000, false))
        .await;
    s.wait_part_way().await;

    proxy.down();
    let cut = Instant::now();
    // A customer's drop during the outage: its notification waits in SQS.
    s.upload_file("beta/during.csv", employees_csv(5, false))
        .await;
    let body = wait_for("/readyz to report the outage", WAIT, || async {
        d.get("/readyz").await.ok().filter(|(c, _)| *c == 503)
    })
    .await
    .1;
    assert!(body.contains("intake queue unreachable"), "{body}");
    tokio::time::sleep(Duration::from_secs(8).saturating_sub(cut.elapsed())).await;
    let m = d.get("/metrics").await.unwrap().1;
    let receive_errors = metric(&m, r#"userfeed_intake_errors_total{stage="receive"}"#);
    println!("{receive_errors} failed receives in an 8 s outage");
    assert!(
        (1.0..=10.0).contains(&receive_errors),
        "intake backs off instead of spinning: {receive_errors} failed receives"
    );
    assert_eq!(d.get("/healthz").await.unwrap().0, 200, "alive throughout");
    proxy.up();

    let ups = s.finished(2).await;
    let big = ups.iter().find(|u| u.object_key == "acme/big.csv").unwrap();
    let during = ups
        .iter()
        .find(|u| u.object_key == "beta/during.csv")
        .expect("the notification sent during the outage was not lost");
    assert_eq!(
        (big.state.as_str(), big.rows_read, big.rows_created),
        ("succeeded", 20_000, 20_000),
        "{:?}",
        big.failure_reason
    );
    assert!(big.attempts >= 2, "the cut read was retried");
    assert_eq!(during.state, "succeeded");
    assert_eq!(s.db.scalar("SELECT count(*) FROM users").await, 20_005);
    s.aws.wait_drained(WAIT).await;
    assert_eq!(d.get("/readyz").await.unwrap().0, 200);
}

#[tokio::test]
async fn sigterm_with_a_statement_that_cannot_finish_exits_at_the_grace_period_and_the_work_resumes()
 {
    let s = prepared().await;
    Point::Merging.install(&s.db).await;
    let grace = 3;
    let env = s.env(&[
        ("USERFEED_JOBS_LEASE_SECONDS", "3"),
        ("USERFEED_APPLY_BATCH_SIZE", "100"),
        ("USERFEED_JOBS_SHUTDOWN_GRACE_SECONDS", "3"),
    ]);
    let lock = hold_fault_lock(&s.db).await;
    let mut first = Daemon::start(&env).await.unwrap();
    s.upload_file("acme/night2.csv", nightly(2)).await;
    wait_at_fault_point(&s.db).await;

    let asked = Instant::now();
    first.signal("TERM");
    let status = tokio::time::timeout(Duration::from_secs(grace + 5), first.child.wait())
        .await
        .expect("exits although its statement never returns")
        .unwrap();
    let took = asked.elapsed();
    println!("SIGTERM to exit with a stuck statement: {took:?} (grace {grace} s)");
    assert!(status.success(), "{status:?}");
    // The statement never returns, so a daemon that waited for it would not
    // exit at all: anything under a second grace period shows it stopped
    // waiting when its own grace ended, whatever the machine's load.
    assert!(
        took >= Duration::from_secs(grace) && took < Duration::from_secs(2 * grace),
        "waits the grace period for the upload, then exits: {took:?}"
    );
    assert!(
        first.log_text().contains("grace period over"),
        "{}",
        first.log_text()
    );
    lock.commit().await.unwrap();

    let _second = Daemon::start(&env).await.unwrap();
    let done = assert_same_as_uninterrupted(&s).await;
    assert_eq!(done.attempts, 2);
}

/// People in a racing tenant's file.
const RACERS: usize = 1_000;

/// The `g`-th file of a racing tenant: [`RACERS`] people, a different tenth
/// absent each time, names marked with the generation.
fn generation(g: usize) -> String {
    let mut s = String::from("Employee ID,Work Email,First Name,Last Name\n");
    for i in 0..RACERS {
        if !(i + g).is_multiple_of(10) {
            s.push_str(&format!("E{i},user{i}@example.com,First{i}-g{g},Last{i}\n"));
        }
    }
    s
}

async fn racing(daemons: usize) {
    const TENANTS: usize = 4;
    const FILES: usize = 3;
    let s = stack().await;
    // Every change of an upload's state, with its owner and the time, for
    // checking what ran when.
    s.db.db
        .execute_unprepared(
            "CREATE TABLE upload_audit (upload_id bigint, tenant_id bigint, state text, \
               owner text, at timestamptz NOT NULL DEFAULT clock_timestamp()); \
             CREATE FUNCTION audit_upload() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN INSERT INTO upload_audit (upload_id, tenant_id, state, owner) \
               VALUES (NEW.id, NEW.tenant_id, NEW.state, NEW.lease_owner); RETURN NEW; END $$; \
             CREATE TRIGGER audit_upload AFTER UPDATE OF state ON uploads FOR EACH ROW \
             WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION audit_upload()",
        )
        .await
        .unwrap();
    for t in 0..TENANTS {
        s.tenant(&format!("t{t}"), "external_id", MAPPING).await;
    }
    let env = s.env(&[("USERFEED_JOBS_CONCURRENCY", "2")]);
    let mut running = Vec::new();
    for _ in 0..daemons {
        running.push(Daemon::start(&env).await.unwrap());
    }
    // Each tenant drops its three files one after the other, the tenants in
    // parallel. Every upload is slowed to over 2 s (a trigger sleeps while
    // its first row is staged), longer than the next drop takes to arrive,
    // so a tenant's next file is queued while its previous one runs: the
    // moment a wrong claim would run two at once.
    s.db.db
        .execute_unprepared(
            "CREATE FUNCTION slow_upload() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN PERFORM pg_sleep(2); RETURN NEW; END $$; \
             CREATE TRIGGER slow_upload BEFORE INSERT ON upload_rows FOR EACH ROW \
             WHEN (NEW.line = 2) EXECUTE FUNCTION slow_upload()",
        )
        .await
        .unwrap();
    let mut drops = tokio::task::JoinSet::new();
    for t in 0..TENANTS {
        let bucket = s.aws.bucket.clone();
        drops.spawn(async move {
            for g in 1..=FILES {
                let f = temp_file(&format!("gen{g}.csv"), generation(g).as_bytes());
                aws_cp(&f, &bucket, &format!("t{t}/gen{g}.csv"))
                    .await
                    .unwrap();
            }
        });
    }
    drops.join_all().await;
    let all = (TENANTS * FILES) as i64;
    let db = &s.db;
    wait_for("every upload to end", WAIT, || async move {
        let done = db
            .scalar("SELECT count(*) FROM uploads WHERE state IN ('succeeded','superseded','failed','held')")
            .await;
        (done == all).then_some(())
    })
    .await;
    s.aws.wait_drained(WAIT).await;

    assert_eq!(
        db.scalar("SELECT count(*) FROM uploads").await,
        all,
        "one upload per file: none lost, none doubled"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM uploads WHERE state NOT IN ('succeeded','superseded')")
            .await,
        0
    );
    // Each upload was claimed once and ended once.
    assert_eq!(
        db.rows(
            "SELECT upload_id || ' ran ' || count(*) FILTER (WHERE state = 'running') || ', ended ' \
             || count(*) FILTER (WHERE state IN ('succeeded','superseded')) FROM upload_audit \
             GROUP BY upload_id HAVING count(*) FILTER (WHERE state = 'running') <> 1 \
             OR count(*) FILTER (WHERE state IN ('succeeded','superseded')) <> 1"
        )
        .await,
        Vec::<String>::new()
    );
    // Per tenant, in time order, a claim is always followed by the end of
    // that same upload before anything else of the tenant happens (never
    // two at once), and uploads start in the order they were recorded.
    let events = db
        .rows(
            "SELECT tenant_id || ' ' || upload_id || ' ' || state FROM upload_audit \
             ORDER BY tenant_id, at, upload_id",
        )
        .await;
    let mut last: Option<(String, String, String)> = None;
    let mut started: Vec<(String, i64)> = Vec::new();
    for e in &events {
        let mut p = e.split(' ');
        let (t, u, st) = (
            p.next().unwrap().to_string(),
            p.next().unwrap().to_string(),
            p.next().unwrap().to_string(),
        );
        if let Some((lt, lu, ls)) = &last
            && *lt == t
            && ls == "running"
        {
            assert!(
                *lu == u && st != "running",
                "tenant {t}: upload {u} {st} while {lu} was running"
            );
        }
        if st == "running" {
            if let Some((pt, pu)) = started.last()
                && *pt == t
            {
                assert!(
                    *pu < u.parse::<i64>().unwrap(),
                    "tenant {t}: {u} started after {pu}"
                );
            }
            started.push((t.clone(), u.parse().unwrap()));
        }
        last = Some((t, u, st));
    }
    let owners = db
        .scalar("SELECT count(DISTINCT owner) FROM upload_audit WHERE state = 'running'")
        .await;
    println!(
        "{daemons} daemons: {owners} of them claimed uploads; {} state changes",
        events.len()
    );
    assert!(owners >= 2, "the daemons really raced");
    for t in 0..TENANTS {
        let slug = format!("t{t}");
        let last = db
            .rows(&format!(
                "SELECT u.object_key || ' ' || u.state FROM uploads u JOIN tenants t ON t.id = u.tenant_id \
                 WHERE t.slug = '{slug}' ORDER BY u.id DESC LIMIT 1"
            ))
            .await;
        // The newest recorded file is applied and is what the tenant's
        // users say, whatever order of claims the race produced.
        let [last] = &last[..] else {
            panic!("{last:?}")
        };
        let g: usize = last
            .strip_prefix(&format!("{slug}/gen"))
            .and_then(|r| r.strip_suffix(".csv succeeded"))
            .unwrap_or_else(|| panic!("{slug}: the newest upload did not succeed: {last}"))
            .parse()
            .unwrap();
        let users = users_of(db, &slug).await;
        let active: Vec<_> = users.iter().filter(|u| u.contains("|active|")).collect();
        assert_eq!(active.len(), RACERS * 9 / 10, "{slug}");
        let mark = format!("-g{g}|");
        assert!(
            active.iter().all(|u| u.contains(&mark)),
            "{slug}: {active:?}"
        );
        for u in users.iter().filter(|u| !u.contains("|active|")) {
            let i: usize = u.split('|').nth(1).unwrap()[1..].parse().unwrap();
            assert!(
                (i + g).is_multiple_of(10),
                "{slug}: {u} is inactive but in gen {g}"
            );
        }
    }
}

#[tokio::test]
async fn two_daemons_racing_apply_every_upload_once_in_each_tenants_order() {
    racing(2).await;
}

#[tokio::test]
async fn four_daemons_racing_apply_every_upload_once_in_each_tenants_order() {
    racing(4).await;
}

/// The object's size in an S3 notification body.
fn notified_size(body: &str) -> i64 {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["Records"][0]["s3"]["object"]["size"].as_i64().unwrap()
}

#[tokio::test]
async fn a_vanished_object_and_an_overwritten_one_fail_once_with_a_clear_reason_and_the_newer_applies()
 {
    let s = stack().await;
    s.tenant("acme", "email", MAPPING).await;
    s.tenant("beta", "email", MAPPING).await;
    // Before any daemon runs: acme drops a file and deletes it again; beta
    // drops a file and overwrites it, and the newer notification is late
    // (held back here, sent again below).
    s.upload_file("acme/gone.csv", employees_csv(3, false))
        .await;
    s.aws
        .s3
        .delete_object()
        .bucket(&s.aws.bucket)
        .key("acme/gone.csv")
        .send()
        .await
        .unwrap();
    let (older, newer) = (employees_csv(3, false), employees_csv(5, false));
    s.upload_file("beta/hr.csv", &older).await;
    s.upload_file("beta/hr.csv", &newer).await;
    let notes = s.aws.take_object_created().await.unwrap();
    assert_eq!(notes.len(), 3, "{notes:?}");
    let (late, now): (Vec<_>, Vec<_>) = notes
        .into_iter()
        .partition(|b| notified_size(b) == newer.len() as i64);
    for body in &now {
        s.aws.send(body).await.unwrap();
    }

    let d = Daemon::start(&s.env(&[])).await.unwrap();
    let ups = s.finished(2).await;
    let gone = ups
        .iter()
        .find(|u| u.object_key == "acme/gone.csv")
        .unwrap();
    let old = ups.iter().find(|u| u.object_key == "beta/hr.csv").unwrap();
    assert_eq!((gone.state.as_str(), gone.attempts), ("failed", 1));
    assert!(
        gone.failure_reason
            .as_deref()
            .unwrap()
            .contains("no longer exists"),
        "{:?}",
        gone.failure_reason
    );
    assert_eq!((old.state.as_str(), old.attempts), ("failed", 1));
    assert!(
        old.failure_reason
            .as_deref()
            .unwrap()
            .contains("overwritten"),
        "{:?}",
        old.failure_reason
    );

    // The late notification of the newer version applies it.
    s.aws.send(&late[0]).await.unwrap();
    let ups = s.finished(3).await;
    assert_eq!(
        (
            ups[2].object_key.as_str(),
            ups[2].state.as_str(),
            ups[2].rows_created
        ),
        ("beta/hr.csv", "succeeded", 5)
    );
    // No retry storm: a failed upload is terminal (claims take only queued
    // or expired running ones), both stayed at one attempt, and the daemon
    // counted exactly two failed uploads.
    assert_eq!(
        s.db.scalar("SELECT sum(attempts) FROM uploads WHERE state = 'failed'")
            .await,
        2
    );
    let m = d.get("/metrics").await.unwrap().1;
    assert_eq!(
        metric(&m, r#"userfeed_uploads_finished_total{outcome="failed"}"#),
        2.0,
        "{m}"
    );
    assert_eq!(users_of(&s.db, "acme").await.len(), 0);
    assert_eq!(users_of(&s.db, "beta").await.len(), 5);
}
