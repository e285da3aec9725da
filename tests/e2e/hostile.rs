//! Issue 30 against the real daemon: one tenant hammering whole-file
//! previews does not starve another tenant's reads or drops, every change
//! through the API leaves an audit line, and webhook deliveries are counted
//! in `/metrics`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use userfeed::service::Caller;
use userfeed::web::auth::new_token;
use userfeed_tests::*;

use super::{Stack, WAIT, metric, stack};

/// A daemon on `s` with the admin API on a port of its own choosing and
/// tokens for acme and beta; the API's address and the two tokens.
async fn with_api(s: &Stack, extra: &[(&str, &str)]) -> (Daemon, String, String, String) {
    let (acme, e1) = new_token("acme-admin", &Caller::Tenant("acme".into())).unwrap();
    let (beta, e2) = new_token("beta-admin", &Caller::Tenant("beta".into())).unwrap();
    let tokens = temp_file("tokens.toml", format!("{e1}{e2}").as_bytes());
    let tokens_path = tokens.display().to_string();
    let mut env = s.env(&[
        ("USERFEED_API_BIND", "127.0.0.1:0"),
        ("USERFEED_API_TOKENS_FILE", &tokens_path),
    ]);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let d = Daemon::start(&env).await.unwrap();
    let api = wait_for("the admin API's address", WAIT, || async {
        logged_addr(&d.log_text(), "admin API listening")
    })
    .await;
    (d, api, acme, beta)
}

#[tokio::test]
async fn ten_parallel_previews_of_one_tenant_leave_another_tenants_reads_and_drops_on_time() {
    let s = stack().await;
    s.tenant("acme", "external_id", MAPPING).await;
    s.tenant("beta", "external_id", MAPPING).await;
    let (_d, api, acme, beta) = with_api(&s, &[]).await;
    let big = Arc::new(temp_file(
        "big.csv",
        employees_csv(100_000, false).as_bytes(),
    ));

    // Ten previews at once, with curl streaming the file as the API reads.
    let previews: Vec<_> = (0..10)
        .map(|_| {
            let (api, acme, big) = (api.clone(), acme.clone(), big.clone());
            tokio::spawn(async move {
                let out = tokio::process::Command::new("curl")
                    .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
                    .args(["-H", &format!("Authorization: Bearer {acme}")])
                    .args(["-H", "Content-Type: text/csv", "-T"])
                    .arg(big.as_path())
                    .arg(format!("http://{api}/api/v1/tenants/acme/preview"))
                    .output()
                    .await
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).to_string()
            })
        })
        .collect();

    // Meanwhile beta reads its history every half second, and drops a file.
    let auth = format!("Bearer {beta}");
    let mut reads = Vec::new();
    let dropped = Instant::now();
    s.upload_file("beta/night.csv", employees_csv(50, false))
        .await;
    let mut applied_after = None;
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until
        && (applied_after.is_none() || previews.iter().any(|p| !p.is_finished()))
    {
        let started = Instant::now();
        let (status, _, body) = http_request(
            &api,
            "GET",
            "/api/v1/tenants/beta/uploads",
            &[("Authorization", &auth)],
            b"",
        )
        .await
        .unwrap();
        reads.push((status, started.elapsed()));
        if applied_after.is_none() && body.contains("\"succeeded\"") {
            applied_after = Some(dropped.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(500).saturating_sub(started.elapsed())).await;
    }
    let mut codes = Vec::new();
    for p in previews {
        codes.push(p.await.unwrap());
    }
    codes.sort();
    println!(
        "previews answered {codes:?}; {} reads; beta's drop applied after {applied_after:?}",
        reads.len()
    );
    assert!(
        codes.contains(&"200".to_string()),
        "one preview ran: {codes:?}"
    );
    assert!(
        codes.iter().all(|c| c == "200" || c == "409"),
        "the others were told it is running: {codes:?}"
    );
    let slowest = reads.iter().map(|(_, t)| *t).max().unwrap();
    assert!(
        reads
            .iter()
            .all(|(s, t)| *s == 200 && *t < Duration::from_secs(1)),
        "every read of the other tenant answered 200 within 1 s (slowest {slowest:?}): {reads:?}"
    );
    let applied = applied_after.expect("beta's drop was applied");
    assert!(
        applied < Duration::from_secs(5),
        "beta's drop took {applied:?}"
    );
}

#[tokio::test]
async fn every_change_through_the_api_leaves_an_audit_line_and_deliveries_are_counted() {
    let s = stack().await;
    s.tenant("acme", "external_id", MAPPING).await;
    s.tenant("beta", "external_id", MAPPING).await;
    let receiver = Receiver::start("127.0.0.1:0", &[200]).await;
    let (d, api, acme, _) = with_api(
        &s,
        &[
            (
                "USERFEED_NOTIFY_SIGNING_KEY",
                "e2e-signing-key-0123456789abcdef0123",
            ),
            ("USERFEED_NOTIFY_ALLOW_HTTP", "true"),
            ("USERFEED_NOTIFY_ALLOWED_HOSTS", "[\"127.0.0.1\"]"),
            ("USERFEED_NOTIFY_POLL_SECONDS", "0.2"),
        ],
    )
    .await;
    let auth = format!("Bearer {acme}");
    let hook = format!("{{\"url\":\"http://{}/hook\"}}", receiver.addr);
    for (method, path, body) in [
        ("PUT", "/api/v1/tenants/acme/webhook", hook.as_str()),
        (
            "POST",
            "/api/v1/tenants/acme/groups",
            r#"{"id":"sales","name":"Sales"}"#,
        ),
        ("DELETE", "/api/v1/tenants/acme/groups/sales", ""),
    ] {
        let mut headers = vec![("Authorization", auth.as_str())];
        if !body.is_empty() {
            headers.push(("Content-Type", "application/json"));
        }
        let (status, _, text) = http_request(&api, method, path, &headers, body.as_bytes())
            .await
            .unwrap();
        assert!(status < 300, "{method} {path}: {status} {text}");
    }
    let log = d.log_text();
    for (method, path) in [
        ("PUT", "/api/v1/tenants/acme/webhook"),
        ("POST", "/api/v1/tenants/acme/groups"),
        ("DELETE", "/api/v1/tenants/acme/groups/sales"),
    ] {
        let line = log
            .lines()
            .find(|l| {
                l.contains("\"audit\":true")
                    && l.contains(&format!("\"path\":\"{path}\""))
                    && l.contains(&format!("\"method\":\"{method}\""))
            })
            .unwrap_or_else(|| panic!("no audit line for {method} {path}:\n{log}"));
        assert!(line.contains("\"token\":\"acme-admin\""), "{line}");
        assert!(!line.contains(&acme), "never the token itself: {line}");
    }
    // A GET is not a change: no audit line.
    http_request(
        &api,
        "GET",
        "/api/v1/tenants/acme",
        &[("Authorization", &auth)],
        b"",
    )
    .await
    .unwrap();
    assert!(
        !d.log_text()
            .lines()
            .any(|l| l.contains("\"audit\":true") && l.contains("\"method\":\"GET\"")),
        "reads are not audited"
    );

    // An upload with a rejected row is notified; the delivery is counted.
    let mut file = employees_csv(3, false);
    file.push_str("E9,not-an-email,Bad,Row\n");
    s.upload_file("acme/night.csv", file).await;
    s.finished(1).await;
    wait_for("the webhook delivery", WAIT, || async {
        (!receiver.received().is_empty()).then_some(())
    })
    .await;
    let text = wait_for("the delivery in /metrics", WAIT, || async {
        let (_, text) = d.get("/metrics").await.ok()?;
        (metric(&text, "userfeed_notifications_total{outcome=\"delivered\"}") >= 1.0)
            .then_some(text)
    })
    .await;
    assert_eq!(
        metric(&text, "userfeed_notifications_total{outcome=\"gave_up\"}"),
        0.0
    );
}
