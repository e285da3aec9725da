//! Issue 30: what a client holding a tenant token (or no token at all)
//! could do to the listener, the database and other tenants, each probe
//! with the answer it now gets. The webhook probes are in `notify.rs` and
//! `api.rs`; the fairness of previews under load is `tests/e2e/hostile.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use userfeed::config::Config;
use userfeed::map::MatchKey;
use userfeed::service::Caller;
use userfeed::web::WebState;
use userfeed::web::auth::{Tokens, new_token};
use userfeed::web::guard::Guard;
use userfeed_tests::*;

/// A listener of the API and screens over `db`, with tokens for the
/// platform, acme and beta, and `tune` applied to its state.
struct Server {
    addr: String,
    ops: String,
    acme: String,
    beta: String,
    _stop: tokio_util::sync::DropGuard,
}

async fn serve(db: &TestDb, tune: impl FnOnce(&mut WebState)) -> Server {
    let cfg = Config::load(None).unwrap();
    let (ops, e1) = new_token("ops", &Caller::Platform).unwrap();
    let (acme, e2) = new_token("acme-admin", &Caller::Tenant("acme".into())).unwrap();
    let (beta, e3) = new_token("beta-admin", &Caller::Tenant("beta".into())).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut state = WebState {
        service: userfeed::service::Service::new(db.db.clone()),
        db: db.db.clone(),
        tokens: Arc::new(Tokens::parse(&format!("{e1}{e2}{e3}")).unwrap()),
        timeout: Duration::from_secs(10),
        limiter: None,
        guard: Guard::default(),
        notify: Arc::new(cfg.notify.clone()),
        files: Arc::new(userfeed::web::spool::Files::new(Default::default(), 500)),
        session: userfeed::web::session::SessionSettings::from_config(&cfg.api),
        credentials: Arc::new(userfeed::web::CredentialsState {
            iam: None,
            region: "us-east-1".into(),
            grace: Duration::from_secs(3600),
        }),
        xero: None,
    };
    tune(&mut state);
    tokio::spawn(userfeed::web::serve(listener, state.wired(), stop.clone()));
    Server {
        addr,
        ops,
        acme,
        beta,
        _stop: stop.drop_guard(),
    }
}

impl Server {
    /// `method path` with a bearer token and a JSON (or empty) body.
    async fn json(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: &str,
    ) -> (u16, Vec<(String, String)>, Value) {
        let auth = format!("Bearer {token}");
        let mut headers = vec![("Authorization", auth.as_str())];
        if !body.is_empty() {
            headers.push(("Content-Type", "application/json"));
        }
        let (status, h, text) = http_request(&self.addr, method, path, &headers, body.as_bytes())
            .await
            .unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, h, v)
    }

    async fn csv(&self, path: &str, token: &str, body: &[u8]) -> (u16, Value) {
        let auth = format!("Bearer {token}");
        let (status, _, text) = http_request(
            &self.addr,
            "POST",
            path,
            &[("Authorization", &auth), ("Content-Type", "text/csv")],
            body,
        )
        .await
        .unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Signs in with `token`: the status and the session cookie pair.
    async fn sign_in(&self, token: &str) -> (u16, Option<String>) {
        let (_, h, _) = http_request(&self.addr, "GET", "/ui/sign-in", &[], b"")
            .await
            .unwrap();
        let pre = set_cookie(&h, "__Host-userfeed_sign_in").unwrap();
        let csrf = pre.split_once('=').unwrap().1.to_string();
        let (status, h, _) = http_request(
            &self.addr,
            "POST",
            "/ui/sign-in",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Cookie", &pre),
            ],
            format!("token={token}&csrf={csrf}").as_bytes(),
        )
        .await
        .unwrap();
        (status, set_cookie(&h, "__Host-userfeed_session"))
    }

    async fn page(&self, path: &str, cookie: &str) -> (u16, Vec<(String, String)>, String) {
        http_request(&self.addr, "GET", path, &[("Cookie", cookie)], b"")
            .await
            .unwrap()
    }
}

/// The form token a screen's page carries.
fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a form with its token")
        .to_string()
}

/// The `name=value` of the `Set-Cookie` for `name`.
fn set_cookie(h: &[(String, String)], name: &str) -> Option<String> {
    h.iter()
        .filter(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.split(';').next().unwrap().to_string())
        .find(|c| c.starts_with(&format!("{name}=")))
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

async fn two_tenants(db: &TestDb) {
    tenant(db, "acme", "", MatchKey::Email, MAPPING).await;
    tenant(db, "beta", "", MatchKey::Email, MAPPING).await;
}

fn limiter(per_second: u32, burst: u32) -> Option<Arc<userfeed::web::guard::AddressLimiter>> {
    userfeed::web::guard::address_limiter(per_second, burst)
}

// ---- Item 4: rate limits ----------------------------------------------

#[tokio::test]
async fn invalid_tokens_are_rate_limited_per_client_address_and_valid_tokens_are_not() {
    let db = TestDb::new().await.unwrap();
    two_tenants(&db).await;
    let s = serve(&db, |st| st.guard.per_address = limiter(1, 5)).await;
    let mut statuses = Vec::new();
    for i in 0..20 {
        let (status, h, _) = s
            .json("GET", "/api/v1/tenants", &format!("uf_guess{i}"), "")
            .await;
        if status == 429 {
            assert!(header(&h, "retry-after").is_some(), "429 says when");
        }
        statuses.push(status);
    }
    assert_eq!(&statuses[..5], [401; 5], "the burst is answered");
    assert!(
        statuses[5..].iter().all(|s| *s == 429),
        "then refused: {statuses:?}"
    );
    // The same address with a valid token is not held back by guessing.
    let (status, _, _) = s.json("GET", "/api/v1/tenants", &s.ops, "").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_client_address() {
    let db = TestDb::new().await.unwrap();
    two_tenants(&db).await;
    let s = serve(&db, |st| {
        st.guard.sign_in = limiter(1, 3);
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(s.sign_in("uf_not-a-token").await.0);
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429]);
    // Even the right token waits its turn from that address.
    assert_eq!(s.sign_in(&s.acme).await.0, 429);
}

#[tokio::test]
async fn screen_sessions_spend_their_tokens_rate_limit() {
    let db = TestDb::new().await.unwrap();
    two_tenants(&db).await;
    let s = serve(&db, |st| {
        st.limiter = userfeed::web::rate_limiter(1, 3);
    })
    .await;
    let (_, cookie) = s.sign_in(&s.acme).await;
    let cookie = cookie.expect("signed in");
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(s.page("/ui/t/acme", &cookie).await.0);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429]);
    // And the API with the same token finds the limit spent too.
    assert_eq!(
        s.json("GET", "/api/v1/tenants/acme", &s.acme, "").await.0,
        429
    );
}

#[tokio::test]
async fn a_token_keeps_at_most_its_session_cap_and_signing_in_past_it_ends_the_oldest() {
    let db = TestDb::new().await.unwrap();
    two_tenants(&db).await;
    let s = serve(&db, |st| st.guard.sessions_per_token = 3).await;
    let mut cookies = Vec::new();
    for _ in 0..5 {
        cookies.push(s.sign_in(&s.acme).await.1.unwrap());
    }
    assert_eq!(db.scalar("SELECT count(*) FROM ui_sessions").await, 3);
    for (i, c) in cookies.iter().enumerate() {
        let status = s.page("/ui/t/acme", c).await.0;
        assert_eq!(status, if i < 2 { 303 } else { 200 }, "session {i}");
    }
}

#[test]
fn refusals_are_logged_once_per_reason_every_ten_seconds_however_many() {
    use std::io::Write;
    #[derive(Clone, Default)]
    struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Lines {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let lines = Lines::default();
    let sink = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..10_000 {
            userfeed::telemetry::events::api_refused(
                userfeed::telemetry::events::ApiRefusal::SignInFailed,
                "192.0.2.7",
            );
        }
    });
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("sign_in_failed"), "{text}");
}

// ---- Items 5 and 6: control characters and lengths ---------------------

#[tokio::test]
async fn nul_and_control_characters_are_refused_with_422_naming_the_field() {
    let db = TestDb::new().await.unwrap();
    two_tenants(&db).await;
    let s = serve(&db, |_| {}).await;
    for (method, path, body, field) in [
        (
            "PUT",
            "/api/v1/tenants/acme/mapping",
            r#"{"columns":{"email":"E\u0000mail"}}"#,
            "columns.email",
        ),
        (
            "POST",
            "/api/v1/tenants/acme/groups",
            r#"{"id":"sales","name":"Sales\u0000"}"#,
            "name",
        ),
        (
            "POST",
            "/api/v1/tenants/acme/groups",
            r#"{"id":"sa\nles","name":"Sales"}"#,
            "id",
        ),
        (
            "POST",
            "/api/v1/tenants",
            r#"{"slug":"gamma","bucket":"b\u0000","match_on":"email"}"#,
            "bucket",
        ),
        (
            "POST",
            "/api/v1/tenants/acme/profile-fields",
            r#"{"key":"te\u0000am","type":"text"}"#,
            "key",
        ),
    ] {
        let token = if path == "/api/v1/tenants" {
            &s.ops
        } else {
            &s.acme
        };
        let (status, _, p) = s.json(method, path, token, body).await;
        assert_eq!(status, 422, "{method} {path}: {p}");
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.starts_with(field) && detail.contains("control character"),
            "{method} {path}: {detail}"
        );
    }
    // In a path, where no slug, key or id has one: nothing there.
    for (method, path) in [
        ("GET", "/api/v1/tenants/ac%00me/uploads"),
        ("DELETE", "/api/v1/tenants/acme/groups/sa%00les"),
    ] {
        let (status, _, p) = s.json(method, path, &s.ops, "").await;
        assert_eq!(
            (status, p["type"].as_str()),
            (404, Some("/docs/api.md#not-found")),
            "{path}: {p}"
        );
    }
    // Nothing reached the database as an error: every answer was a 4xx.
    let (status, _, groups) = s
        .json("GET", "/api/v1/tenants/acme/groups", &s.acme, "")
        .await;
    assert_eq!((status, groups), (200, serde_json::json!([])));
}

#[tokio::test]
async fn the_screens_mapping_form_refuses_a_nul_with_the_field_named() {
    let db = TestDb::new().await.unwrap();
    two_tenants(&db).await;
    let s = serve(&db, |_| {}).await;
    let (_, cookie) = s.sign_in(&s.acme).await;
    let cookie = cookie.unwrap();
    let (_, _, page) = s.page("/ui/t/acme/mapping", &cookie).await;
    let csrf = csrf_of(&page);
    let (status, _, page) = http_request(
        &s.addr,
        "POST",
        "/ui/t/acme/mapping",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &cookie),
        ],
        format!("csrf={csrf}&email=E%00mail&first_name=First").as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(status, 422, "{page}");
    assert!(
        page.contains("columns.email contains a control character"),
        "{page}"
    );
}

#[tokio::test]
async fn every_string_field_has_a_maximum_length_and_a_longer_value_is_refused() {
    let db = TestDb::new().await.unwrap();
    two_tenants(&db).await;
    let s = serve(&db, |_| {}).await;
    let long = |n: usize| "x".repeat(n);
    for (method, path, body, why) in [
        (
            "POST",
            "/api/v1/tenants/acme/groups",
            serde_json::json!({"id": "g", "name": long(1_000_000)}),
            "name is longer than 255",
        ),
        (
            "PUT",
            "/api/v1/tenants/acme/mapping",
            serde_json::json!({"columns": {"email": long(100_000)}}),
            "columns.email is longer than 255",
        ),
        (
            "PUT",
            "/api/v1/tenants/acme/mapping",
            serde_json::json!({"columns": {"email": "Email"}, "profile": {"team": long(256)}}),
            "profile.team is longer than 255",
        ),
        (
            "POST",
            "/api/v1/tenants/acme/profile-fields",
            serde_json::json!({"key": long(65), "type": "text"}),
            "key is longer than 64",
        ),
    ] {
        let (status, _, p) = s.json(method, path, &s.acme, &body.to_string()).await;
        let shown: String = p.to_string().chars().take(300).collect();
        assert_eq!(status, 422, "{method} {path}: {shown}");
        assert!(p["detail"].as_str().unwrap().contains(why), "{p}");
    }
    // Exactly the limit is fine.
    let (status, _, p) = s
        .json(
            "POST",
            "/api/v1/tenants/acme/groups",
            &s.acme,
            &serde_json::json!({"id": "g", "name": long(255)}).to_string(),
        )
        .await;
    assert_eq!(status, 201, "{p}");
}

#[test]
fn the_openapi_schema_gives_every_request_string_a_maximum_length() {
    let doc: Value = serde_json::from_str(&userfeed::web::api::openapi_json()).unwrap();
    let schemas = &doc["components"]["schemas"];
    // Every request body's properties, followed through `$ref`s, and
    // every path and query parameter.
    let mut missing = Vec::new();
    fn walk(v: &Value, schemas: &Value, at: String, missing: &mut Vec<String>, depth: u32) {
        if depth > 8 {
            return;
        }
        if let Some(r) = v["$ref"].as_str() {
            let name = r.rsplit('/').next().unwrap();
            return walk(&schemas[name], schemas, at, missing, depth + 1);
        }
        for key in ["oneOf", "anyOf", "allOf"] {
            for alt in v[key].as_array().into_iter().flatten() {
                walk(alt, schemas, at.clone(), missing, depth + 1);
            }
        }
        let is_string = v["type"] == "string"
            || v["type"]
                .as_array()
                .is_some_and(|t| t.contains(&"string".into()));
        if is_string
            && v.get("enum").is_none()
            && v.get("format").is_none()
            && v.get("maxLength").is_none()
        {
            missing.push(at.clone());
        }
        for (k, p) in v["properties"].as_object().into_iter().flatten() {
            walk(p, schemas, format!("{at}.{k}"), missing, depth + 1);
        }
        if v["additionalProperties"].is_object() {
            walk(
                &v["additionalProperties"],
                schemas,
                format!("{at}.*"),
                missing,
                depth + 1,
            );
        }
    }
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                walk(
                    &p["schema"],
                    schemas,
                    format!("{method} {path} {}", p["name"]),
                    &mut missing,
                    0,
                );
            }
            if let Some(json) = op["requestBody"]["content"].get("application/json") {
                walk(
                    &json["schema"],
                    schemas,
                    format!("{method} {path} body"),
                    &mut missing,
                    0,
                );
            }
        }
    }
    assert!(
        missing.is_empty(),
        "strings without maxLength: {missing:#?}"
    );
}

// ---- Item 7: the smaller points ---------------------------------------

#[tokio::test]
async fn another_tenants_upload_costs_the_same_queries_as_a_missing_one() {
    let db = TestDb::new().await.unwrap();
    two_tenants(&db).await;
    let beta_upload = db
        .scalar(
            "INSERT INTO uploads (tenant_id, bucket, object_key, object_identity, state, source) \
             SELECT id, '', 'x.csv', 'x.csv', 'failed', 'local' FROM tenants WHERE slug = 'beta' RETURNING id",
        )
        .await;
    let mut counted = db.db.clone();
    let queries = Arc::new(AtomicUsize::new(0));
    let seen = queries.clone();
    counted.set_metric_callback(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    let service = userfeed::service::Service::new(counted);
    let acme = Caller::Tenant("acme".into());
    let mut costs = Vec::new();
    for id in [beta_upload, beta_upload + 1000] {
        queries.store(0, Ordering::SeqCst);
        let err = service.upload(&acme, id, 10).await.unwrap_err();
        assert_eq!(err.to_string(), format!("no upload {id}"));
        costs.push(queries.load(Ordering::SeqCst));
    }
    assert_eq!(
        costs[0], costs[1],
        "another tenant's id and a missing one: {costs:?}"
    );
    assert_eq!(costs[0], 1, "one query either way");
}

#[tokio::test]
async fn answers_that_carry_a_secret_are_not_stored_by_caches() {
    let db = TestDb::new().await.unwrap();
    two_tenants(&db).await;
    let mut notify = Config::load(None).unwrap().notify;
    notify.signing_key = "hostile-test-signing-key-0123456789abcdef".into();
    let s = serve(&db, |st| st.notify = Arc::new(notify)).await;
    let (status, h, body) = s
        .json(
            "PUT",
            "/api/v1/tenants/acme/webhook",
            &s.acme,
            r#"{"url":"https://hooks.example.com/userfeed"}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(header(&h, "cache-control"), Some("no-store"));
}

// ---- Screens: sessions end when they should ---------------------------

#[tokio::test]
async fn signing_out_ends_the_session_on_the_server_so_the_old_cookie_no_longer_works() {
    let db = TestDb::new().await.unwrap();
    two_tenants(&db).await;
    let s = serve(&db, |_| {}).await;
    let cookie = s.sign_in(&s.acme).await.1.unwrap();
    let (status, _, page) = s.page("/ui/t/acme", &cookie).await;
    assert_eq!(status, 200);
    let csrf = csrf_of(&page);
    let (status, _, _) = http_request(
        &s.addr,
        "POST",
        "/ui/sign-out",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &cookie),
        ],
        format!("csrf={csrf}").as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(status, 303);
    // A copy of the cookie kept by whoever had it is worth nothing now.
    let (status, h, _) = s.page("/ui/t/acme", &cookie).await;
    assert_eq!((status, header(&h, "location")), (303, Some("/ui/sign-in")));
    assert_eq!(db.scalar("SELECT count(*) FROM ui_sessions").await, 0);
}

#[tokio::test]
async fn a_session_lasts_session_hours_and_not_a_moment_longer() {
    let db = TestDb::new().await.unwrap();
    two_tenants(&db).await;
    let s = serve(&db, |st| {
        st.session.lifetime = chrono::Duration::hours(2);
    })
    .await;
    let cookie = s.sign_in(&s.acme).await.1.unwrap();
    // The row ends two hours after it began.
    let lasts = db
        .scalar(
            "SELECT CAST(EXTRACT(EPOCH FROM expires_at - created_at) AS BIGINT) FROM ui_sessions",
        )
        .await;
    assert_eq!(lasts, 2 * 3600);
    assert_eq!(s.page("/ui/t/acme", &cookie).await.0, 200);
    // Those hours pass (the clock moved by the row, not by waiting).
    db.scalar("WITH x AS (UPDATE ui_sessions SET expires_at = now() - interval '1 second' RETURNING 1) SELECT count(*) FROM x")
        .await;
    let (status, h, _) = s.page("/ui/t/acme", &cookie).await;
    assert_eq!((status, header(&h, "location")), (303, Some("/ui/sign-in")));
}

// ---- Deadlines and outages ---------------------------------------------

#[tokio::test]
async fn a_request_past_the_request_timeout_answers_503_timeout() {
    let db = TestDb::new().await.unwrap();
    two_tenants(&db).await;
    let s = serve(&db, |st| st.timeout = Duration::from_secs(1)).await;
    // Another session holds the tenants table: the request waits on it.
    let blocker = sea_orm::Database::connect(&db.url).await.unwrap();
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let txn = blocker.begin().await.unwrap();
    txn.execute_unprepared("LOCK TABLE tenants IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let started = Instant::now();
    let (status, _, p) = s.json("GET", "/api/v1/tenants", &s.ops, "").await;
    assert_eq!(
        (status, p["type"].as_str()),
        (503, Some("/docs/api.md#timeout")),
        "{p}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    txn.rollback().await.unwrap();
    assert_eq!(s.json("GET", "/api/v1/tenants", &s.ops, "").await.0, 200);
}

#[tokio::test]
async fn while_the_database_is_down_the_api_answers_503_without_detail() {
    let db = TestDb::new().await.unwrap();
    two_tenants(&db).await;
    let s = serve(&db, |st| st.timeout = Duration::from_secs(5)).await;
    let name = db.name().to_string();
    db.admin_exec(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .await;
    db.admin_exec(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .await;
    let (status, h, p) = s.json("GET", "/api/v1/tenants", &s.ops, "").await;
    db.admin_exec(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await;
    assert_eq!(status, 503, "{p}");
    assert_eq!(header(&h, "content-type"), Some("application/problem+json"));
    let detail = p["detail"].as_str().unwrap();
    assert!(
        !detail.contains("SELECT") && !detail.contains("sqlx") && !detail.contains(&name),
        "{detail}"
    );
}

// ---- Item 2: previews take turns --------------------------------------

#[tokio::test]
async fn a_second_preview_of_a_tenant_is_409_and_one_past_the_global_limit_is_429() {
    let db = TestDb::new().await.unwrap();
    two_tenants(&db).await;
    let s = Arc::new(serve(&db, |st| st.guard.previews_at_once = 1).await);
    // The first preview waits on a lock another session holds, so it is
    // certainly running while the others ask.
    let blocker = sea_orm::Database::connect(&db.url).await.unwrap();
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let txn = blocker.begin().await.unwrap();
    txn.execute_unprepared("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let file = employees_csv(50, false);
    let first = {
        let (s, file) = (s.clone(), file.clone());
        tokio::spawn(async move {
            s.csv("/api/v1/tenants/acme/preview", &s.acme, file.as_bytes())
                .await
        })
    };
    wait_for(
        "the first preview to wait on the lock",
        Duration::from_secs(10),
        || async {
            let waiting = db
                .scalar(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                )
                .await;
            (waiting > 0).then_some(())
        },
    )
    .await;
    let (status, p) = s
        .csv("/api/v1/tenants/acme/preview", &s.acme, file.as_bytes())
        .await;
    assert_eq!(status, 409, "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("already running"),
        "{p}"
    );
    let (status, p) = s
        .csv("/api/v1/tenants/beta/preview", &s.beta, file.as_bytes())
        .await;
    assert_eq!(status, 429, "{p}");
    // Reads of either tenant are not held up by the gate.
    assert_eq!(
        s.json("GET", "/api/v1/tenants/beta/uploads", &s.beta, "")
            .await
            .0,
        200
    );
    txn.rollback().await.unwrap();
    let (status, p) = first.await.unwrap();
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["progress"]["created"], 50);
    // Its place is free again.
    let (status, p) = s
        .csv("/api/v1/tenants/beta/preview", &s.beta, file.as_bytes())
        .await;
    assert_eq!(status, 200, "{p}");
}

// ---- Item 3: connection hygiene ---------------------------------------

/// Sends `head` a byte every `gap`; how long until the server closed the
/// connection (or `None` if it outlasted `give_up`).
async fn trickle(addr: &str, head: &[u8], gap: Duration, give_up: Duration) -> Option<Duration> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let mut i = 0;
    let mut buf = [0u8; 1024];
    while started.elapsed() < give_up {
        if i < head.len() && s.write_all(&head[i..=i]).await.is_err() {
            return Some(started.elapsed());
        }
        i += 1;
        // A read that ends (0 bytes or an error) means the server closed.
        match tokio::time::timeout(gap, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => {}
        }
    }
    None
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_disconnected_within_15_s_on_both_listeners() {
    let db = TestDb::new().await.unwrap();
    two_tenants(&db).await;
    let api = serve(&db, |_| {}).await;
    let probes = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let probes_addr = probes.local_addr().unwrap().to_string();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(userfeed::http::serve(
        probes,
        userfeed::http::HttpState {
            db: Default::default(),
            health: Default::default(),
            metrics: None,
        },
        Config::load(None).unwrap().http.hygiene(),
        stop.clone(),
    ));
    let _stop = stop.drop_guard();
    let head = b"GET /api/v1/tenants HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let (a, b) = tokio::join!(
        trickle(
            &api.addr,
            head,
            Duration::from_secs(2),
            Duration::from_secs(30)
        ),
        trickle(
            &probes_addr,
            head,
            Duration::from_secs(2),
            Duration::from_secs(30)
        ),
    );
    for (name, closed) in [("api", a), ("probes", b)] {
        let closed = closed.unwrap_or_else(|| panic!("{name}: still open after 30 s"));
        assert!(
            closed <= Duration::from_secs(15),
            "{name}: closed after {closed:?}"
        );
    }
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_header_timeout() {
    let db = TestDb::new().await.unwrap();
    two_tenants(&db).await;
    let s = serve(&db, |st| {
        st.guard.hygiene.header_timeout = Duration::from_secs(2)
    })
    .await;
    let mut c = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    c.write_all(b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Read the whole answer; the connection stays open after it.
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    let started = Instant::now();
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(20), c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break Some(started.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => break None,
        }
    };
    assert!(got.starts_with(b"HTTP/1.1 200"), "answered first");
    let closed = closed.expect("closed while idle");
    assert!(closed < Duration::from_secs(10), "closed after {closed:?}");
}

#[tokio::test]
async fn a_file_trickled_slower_than_the_minimum_rate_is_cut_with_408() {
    let db = TestDb::new().await.unwrap();
    two_tenants(&db).await;
    let s = serve(&db, |st| {
        let mut files = userfeed::web::spool::Files::new(Default::default(), 500);
        files.pace = userfeed::web::spool::Pace {
            grace: Duration::from_secs(1),
            min_bytes_per_second: 1024,
        };
        st.files = Arc::new(files);
    })
    .await;
    let mut c = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/tenants/acme/preview HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: text/csv\r\nContent-Length: 100000\r\n\r\n",
        s.acme
    );
    c.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // 100 bytes every 0.5 s: 200 bytes a second, under the 1024 asked.
    while started.elapsed() < Duration::from_secs(20) {
        if c.write_all(&[b'x'; 100]).await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(500), c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(_) => {}
        }
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn past_the_connection_cap_a_new_connection_waits_until_one_closes() {
    let db = TestDb::new().await.unwrap();
    two_tenants(&db).await;
    let s = serve(&db, |st| st.guard.hygiene.max_connections = 2).await;
    let hold1 = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    let hold2 = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    let addr = s.addr.clone();
    let third = tokio::spawn(async move {
        http_request(&addr, "GET", "/api/v1/openapi.json", &[], b"")
            .await
            .unwrap()
            .0
    });
    // Both slots are held: the third is not served while they are.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!third.is_finished(), "served past the cap");
    drop(hold1);
    let status = tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .expect("served once a slot was free")
        .unwrap();
    assert_eq!(status, 200);
    drop(hold2);
}

#[tokio::test]
async fn a_tenant_sees_its_uploads_locations_as_it_names_them_never_a_host_folder() {
    let db = TestDb::new().await.unwrap();
    two_tenants(&db).await;
    for (bucket, key, source) in [
        ("/var/lib/userfeed/drop/acme", "staff.csv", "folder"),
        ("/home/ops/exports", "one-off.csv", "local"),
    ] {
        db.scalar(&format!(
            "INSERT INTO uploads (tenant_id, bucket, object_key, object_identity, state, source) \
             SELECT id, '{bucket}', '{key}', '{key}', 'failed', '{source}' \
             FROM tenants WHERE slug = 'acme' RETURNING id"
        ))
        .await;
    }
    let s = serve(&db, |_| {}).await;
    let (status, _, page) = s
        .json("GET", "/api/v1/tenants/acme/uploads", &s.acme, "")
        .await;
    assert_eq!(status, 200);
    let text = page.to_string();
    assert!(
        !text.contains("/var/lib") && !text.contains("/home/ops"),
        "{text}"
    );
    let buckets: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["bucket"].as_str().unwrap())
        .collect();
    assert_eq!(buckets, ["", "drop/acme"], "newest first");
    let id = page["items"][1]["id"].as_i64().unwrap();
    let (_, _, one) = s
        .json("GET", &format!("/api/v1/uploads/{id}"), &s.acme, "")
        .await;
    assert_eq!(one["bucket"], "drop/acme");
    // The operator still sees where the file is on the host.
    let (_, _, ops) = s
        .json("GET", &format!("/api/v1/uploads/{id}"), &s.ops, "")
        .await;
    assert_eq!(ops["bucket"], "/var/lib/userfeed/drop/acme");
}
