//! The admin screens' sessions and headers over a real listener and a real
//! PostgreSQL (the whole flow in a browser is `tests/e2e/ui.rs`).

use std::sync::Arc;
use std::time::Duration;

use userfeed::config::Config;
use userfeed::map::MatchKey;
use userfeed::service::Caller;
use userfeed::web::auth::{Tokens, new_token};
use userfeed::web::{WebState as ApiState, serve};
use userfeed_tests::*;

/// Serves the API and screens over `db` admitting exactly `entries`.
async fn start(db: &TestDb, entries: &str) -> (String, tokio_util::sync::DropGuard) {
    let cfg = Config::load(None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stop = tokio_util::sync::CancellationToken::new();
    let state = ApiState {
        service: userfeed::service::Service::new(db.db.clone()),
        db: db.db.clone(),
        tokens: Arc::new(Tokens::parse(entries).unwrap()),
        timeout: Duration::from_secs(10),
        limiter: None,
        guard: Default::default(),
        notify: Arc::new(cfg.notify.clone()),
        files: Arc::new(userfeed::web::spool::Files::new(
            userfeed::parse::Limits::default(),
            500,
        )),
        session: userfeed::web::session::SessionSettings::from_config(&cfg.api),
        credentials: Arc::new(userfeed::web::CredentialsState {
            iam: None,
            region: "us-east-1".into(),
            grace: Duration::from_secs(3600),
        }),
        xero: None,
    }
    .wired();
    tokio::spawn(serve(listener, state, stop.clone()));
    (addr, stop.drop_guard())
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    h.iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The `name=value` of a `Set-Cookie` header for `name`.
fn cookie<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    header(h, "set-cookie")
        .into_iter()
        .find(|c| c.starts_with(&format!("{name}=")))
}

/// Signs in with `token`; the session cookie header (`name=value`).
async fn sign_in(addr: &str, token: &str) -> (u16, Option<String>, String) {
    let (_, h, form) = http_request(addr, "GET", "/ui/sign-in", &[], b"")
        .await
        .unwrap();
    let pre = cookie(&h, "__Host-userfeed_sign_in").unwrap();
    let pre = pre.split(';').next().unwrap().to_string();
    let csrf = pre.split_once('=').unwrap().1.to_string();
    assert!(form.contains(&csrf), "the form carries the cookie's token");
    let body = format!("token={token}&csrf={csrf}");
    let (status, h, text) = http_request(
        addr,
        "POST",
        "/ui/sign-in",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &pre),
        ],
        body.as_bytes(),
    )
    .await
    .unwrap();
    let session = cookie(&h, "__Host-userfeed_session").map(|c| c.to_string());
    (status, session, text)
}

#[tokio::test]
async fn a_session_is_an_http_only_strict_cookie_whose_secret_is_stored_only_hashed() {
    let db = TestDb::new().await.unwrap();
    tenant(&db, "acme", "", MatchKey::Email, MAPPING).await;
    let (token, entry) = new_token("acme-admin", &Caller::Tenant("acme".into())).unwrap();
    let (addr, _stop) = start(&db, &entry).await;

    let (status, _, page) = sign_in(&addr, "uf_not-a-token").await;
    assert_eq!(status, 401);
    assert!(page.contains("That token is not valid."), "{page}");

    let (status, session, _) = sign_in(&addr, &token).await;
    assert_eq!(status, 303);
    let session = session.expect("a session cookie");
    // `__Host-`: only this host may set it, over HTTPS, for path `/`, so
    // a sibling subdomain cannot plant a session (issue 30, item 7).
    let attrs: Vec<&str> = session.split(';').map(str::trim).collect();
    for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(attrs.contains(&attr), "{attr} missing: {session}");
    }
    assert!(
        !attrs
            .iter()
            .any(|a| a.to_ascii_lowercase().starts_with("domain=")),
        "{session}"
    );
    let pair = session.split(';').next().unwrap();
    let secret = pair.split_once('=').unwrap().1;
    let stored = db
        .rows("SELECT secret_sha256 || ' ' || token_sha256 || ' ' || label FROM ui_sessions")
        .await;
    assert_eq!(stored.len(), 1);
    assert!(
        !stored[0].contains(secret) && !stored[0].contains(&token),
        "{stored:?}"
    );
    // What is stored is exactly the SHA-256 of the cookie's secret and of
    // the token, so the cookie alone finds the row and the row alone
    // gives neither.
    let sha = |v: &str| -> String {
        use sha2::{Digest, Sha256};
        Sha256::digest(v.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!(
        stored[0],
        format!("{} {} acme-admin", sha(secret), sha(&token)),
        "the session row"
    );

    let (status, h, page) = http_request(&addr, "GET", "/ui/t/acme", &[("Cookie", pair)], b"")
        .await
        .unwrap();
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Upload history of acme"), "{page}");
    let csp = header(&h, "content-security-policy").join("");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(header(&h, "x-content-type-options"), ["nosniff"]);
    assert_eq!(header(&h, "cache-control"), ["no-store"]);
    assert_eq!(header(&h, "referrer-policy"), ["same-origin"]);
    // Not found, for a page of another tenant, with the same headers.
    let (status, h, _) = http_request(&addr, "GET", "/ui/t/globex", &[("Cookie", pair)], b"")
        .await
        .unwrap();
    assert_eq!(status, 404);
    assert_eq!(header(&h, "x-frame-options"), ["DENY"]);
}

#[tokio::test]
async fn a_sign_in_without_its_form_token_is_refused_and_a_removed_token_ends_its_sessions() {
    let db = TestDb::new().await.unwrap();
    tenant(&db, "acme", "", MatchKey::Email, MAPPING).await;
    let (token, entry) = new_token("acme-admin", &Caller::Tenant("acme".into())).unwrap();
    let (addr, _stop) = start(&db, &entry).await;

    // Login CSRF: a form posted from elsewhere has no matching cookie.
    let (status, h, _) = http_request(
        &addr,
        "POST",
        "/ui/sign-in",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!("token={token}&csrf=0000").as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(status, 403);
    assert!(cookie(&h, "__Host-userfeed_session").is_none());

    let (_, session, _) = sign_in(&addr, &token).await;
    let session = session.unwrap();
    let pair = session.split(';').next().unwrap().to_string();
    // The same database served by a daemon whose tokens file no longer has
    // the token: the session is gone with it.
    let (_, other) = new_token("someone-else", &Caller::Platform).unwrap();
    let (addr2, _stop2) = start(&db, &other).await;
    let (status, h, _) = http_request(&addr2, "GET", "/ui/t/acme", &[("Cookie", &pair)], b"")
        .await
        .unwrap();
    assert_eq!((status, header(&h, "location")), (303, vec!["/ui/sign-in"]));
    // The row went with it: a daemon that lists the same token again (the
    // first one here) does not bring the session back (issue 30, item 7).
    assert!(db.rows("SELECT label FROM ui_sessions").await.is_empty());
    let (status, h, _) = http_request(&addr, "GET", "/ui/t/acme", &[("Cookie", &pair)], b"")
        .await
        .unwrap();
    assert_eq!((status, header(&h, "location")), (303, vec!["/ui/sign-in"]));
}
