//! What running in production needs of the daemon: it starts (live, not
//! ready, with the reason) before its database answers or its schema is
//! current; object identity without a sequencer; truthful metrics.

use std::time::{Duration, Instant};

use userfeed_migrations::MigratorTrait;
use userfeed_tests::*;

use super::{MAPPING_EMAIL_ONLY, WAIT, stack};

/// `host:port` of a `postgres://user@host:port/db` URL.
fn host_port(url: &str) -> String {
    let after_at = url.rsplit_once('@').map(|(_, r)| r).unwrap_or(url);
    after_at.split('/').next().unwrap().to_string()
}

/// Starts the daemon and measures how long until `/healthz` answers 200.
async fn start_timed(env: &[(String, String)]) -> (Daemon, Duration) {
    let t = Instant::now();
    let d = Daemon::start(env).await.unwrap();
    (d, t.elapsed())
}

async fn wait_ready(d: &Daemon, timeout: Duration) {
    wait_for("/readyz 200", timeout, || async move {
        d.get("/readyz").await.ok().filter(|(s, _)| *s == 200)
    })
    .await;
}

#[tokio::test]
async fn a_daemon_started_while_its_database_is_unreachable_is_live_at_once_and_ready_once_it_answers()
 {
    let s = stack().await;
    let proxy = Proxy::start(&host_port(&s.db.url), 1 << 30).await.unwrap();
    proxy.down();
    let via_proxy = s.db.url.replace(
        &host_port(&s.db.url),
        proxy.url.trim_start_matches("http://"),
    );
    let mut env = s.env(&[]);
    env.retain(|(k, _)| k != "USERFEED_DATABASE_URL");
    env.push(("USERFEED_DATABASE_URL".into(), via_proxy));

    // How long the same daemon takes to be live when its database answers:
    // liveness must not wait for the database, so an unreachable one may
    // not make it much slower (a daemon that waited would never be live
    // while the database is down).
    let (reference, with_database) = start_timed(&s.env(&[])).await;
    drop(reference);
    let (mut d, live_after) = start_timed(&env).await;
    assert!(
        live_after < with_database * 3 + Duration::from_secs(1),
        "/healthz took {live_after:?}, against {with_database:?} with the database up"
    );
    let (status, body) = d.get("/readyz").await.unwrap();
    assert_eq!(
        (status, body.trim()),
        (503, "not ready: database unreachable")
    );
    // It keeps trying, logging each attempt, and stays the same process.
    let log = &d.log;
    wait_for("two logged attempts", WAIT, || async move {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        (text.matches("not ready yet").count() >= 2).then_some(())
    })
    .await;
    assert_eq!(d.get("/healthz").await.unwrap().0, 200);

    proxy.up();
    wait_ready(&d, Duration::from_secs(40)).await;
    assert!(
        d.child.try_wait().unwrap().is_none(),
        "the daemon restarted or exited"
    );
    // And it works: a drop is applied.
    s.tenant("acme", "email", MAPPING_EMAIL_ONLY).await;
    s.upload_file("acme/users.csv", "Email\na@example.com\n")
        .await;
    let ups = s.finished(1).await;
    assert_eq!(ups[0].rows_created, 1);
    assert!(
        d.log_text().contains("\"attempt\":1"),
        "attempts are logged"
    );
}

#[tokio::test]
async fn a_daemon_on_an_out_of_date_schema_is_not_ready_until_it_is_migrated() {
    let s = stack().await;
    userfeed_migrations::Migrator::down(&s.db.db, Some(1))
        .await
        .unwrap();
    let (d, live_after) = start_timed(&s.env(&[])).await;
    assert!(live_after < Duration::from_secs(1), "{live_after:?}");
    let d = &d;
    wait_for("/readyz to name the schema", WAIT, || async move {
        let (status, body) = d.get("/readyz").await.ok()?;
        (status == 503 && body.trim() == "not ready: schema out of date").then_some(())
    })
    .await;
    assert!(d.log_text().contains("run `userfeed migrate`"));

    cli(&s.db.url, &["migrate"]).await.unwrap();
    wait_ready(d, Duration::from_secs(40)).await;
}

#[tokio::test]
async fn the_same_bytes_uploaded_again_under_one_key_apply_again() {
    // moto sends no sequencer: the identity is the ETag and the event time.
    let s = stack().await;
    s.tenant("acme", "email", MAPPING_EMAIL_ONLY).await;
    let _d = Daemon::start(&s.env(&[])).await.unwrap();
    let a = "Email\nann@example.com\nbob@example.com\n";
    let b = "Email\nann@example.com\ncat@example.com\n";
    for (day, body) in [a, b, a].into_iter().enumerate() {
        s.upload_file("acme/users.csv", body).await;
        s.finished(day + 1).await;
    }
    let ups = s.finished(3).await;
    assert!(ups.iter().all(|u| u.state == "succeeded"), "{ups:?}");
    assert_eq!(ups[0].etag, ups[2].etag, "the same bytes");
    let active =
        s.db.rows("SELECT email FROM users WHERE active ORDER BY email")
            .await;
    assert_eq!(active, ["ann@example.com", "bob@example.com"], "ends as A");
}

/// Metric names in a PromQL expression (recording rules' `a:b:c` excluded).
fn names_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("userfeed_") {
        let start = i + at;
        let prev_ok =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b':');
        let end = expr[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map(|e| start + e)
            .unwrap_or(expr.len());
        if prev_ok && !expr[end..].starts_with(':') {
            out.push(expr[start..end].to_string());
        }
        i = end;
    }
    out
}

/// The names a scrape exposes: every series' (histograms' `_bucket`,
/// `_sum` and `_count` included) and every `# TYPE` line's (a histogram's
/// own name).
fn exposed(scrape: &str) -> std::collections::BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|l| match l.strip_prefix("# TYPE ") {
            Some(typed) => typed.split(' ').next(),
            None if !l.starts_with('#') && !l.is_empty() => l.split(['{', ' ']).next(),
            None => None,
        })
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn the_metrics_are_preset_valid_and_the_only_ones_dashboards_docs_and_alerts_name() {
    let s = stack().await;
    s.tenant("acme", "email", MAPPING_EMAIL_ONLY).await;
    let d = Daemon::start(&s.env(&[])).await.unwrap();
    wait_ready(&d, WAIT).await;

    // Before anything happened, every labelled counter is there at zero, so
    // a pod's first failure is an increase that alerts can see.
    let fresh = d.get("/metrics").await.unwrap().1;
    for series in [
        r#"userfeed_uploads_finished_total{outcome="failed"} 0"#,
        r#"userfeed_uploads_finished_total{outcome="held"} 0"#,
        r#"userfeed_intake_ignored_total{reason="poison"} 0"#,
        r#"userfeed_intake_errors_total{stage="receive"} 0"#,
        r#"userfeed_rows_total{result="deactivated"} 0"#,
        "userfeed_leases_lost_total 0",
    ] {
        assert!(
            fresh.lines().any(|l| l == series),
            "{series} missing:\n{fresh}"
        );
    }
    let build = fresh
        .lines()
        .find(|l| l.starts_with("userfeed_build_info{"))
        .unwrap_or_else(|| panic!("no build info:\n{fresh}"));
    assert!(
        build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
        "{build}"
    );
    assert!(!build.contains("commit=\"\""), "{build}");
    // Stamped by intake's first successful receive, which may follow
    // readiness by a moment.
    let d1 = &d;
    wait_for("intake's first success stamp", WAIT, || async move {
        let m = d1.get("/metrics").await.ok()?.1;
        m.contains("userfeed_intake_last_success_timestamp_seconds ")
            .then_some(())
    })
    .await;

    // One upload, so that histograms and sampled gauges exist too.
    s.upload_file("acme/users.csv", "Email\na@example.com\n")
        .await;
    s.finished(1).await;
    let d2 = &d;
    let scrape = wait_for("sampled gauges", WAIT, || async move {
        let m = d2.get("/metrics").await.ok()?.1;
        (m.contains("userfeed_uploads_held ")
            && m.contains("userfeed_upload_duration_seconds_bucket"))
        .then_some(m)
    })
    .await;

    // promtool's own linter accepts the exposition.
    let promtool = std::env::var("USERFEED_TEST_PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let mut child = tokio::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {promtool} (scripts/test installs it): {e}"));
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(scrape.as_bytes()).await.unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Everything the dashboard, the alerts and the catalogue name is real.
    let names = exposed(&scrape);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for file in [
        "deploy/monitoring/dashboard.json",
        "deploy/monitoring/rules.yaml",
        "docs/metrics.md",
        "docs/operations.md",
        "deploy/kubernetes/base/scaledobject.yaml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let named = names_in(&text);
        assert!(!named.is_empty(), "{file} names no metric");
        for n in named {
            assert!(
                names.contains(&n),
                "{file} names {n}, which the daemon does not expose"
            );
        }
    }
    // And the catalogue lists every metric the daemon exposes.
    let catalogue = std::fs::read_to_string(root.join("docs/metrics.md")).unwrap();
    for n in userfeed::telemetry::ALL_METRICS {
        assert!(
            catalogue.contains(&format!("`{n}`")),
            "docs/metrics.md lacks {n}"
        );
    }
}
