//! Xero imports against a fake Xero (support/xero.rs) shaped like Xero's
//! published specifications, and a real database: the OAuth flow, both
//! payroll APIs, the rules of the seed document, the client's manners, and
//! the apply engine running the import additively on both backends.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use sea_orm::{DbBackend, EntityTrait};
use userfeed::cli::{Cli, execute};
use userfeed::config::Config;
use userfeed::db::entity::xero_connection;
use userfeed::service::{self, Caller, ServiceError};
use userfeed::xero::oauth::Pending;
use userfeed::xero::vault::{TokenKind, Vault};
use userfeed::xero::{Skip, XeroService};
use userfeed_tests::xero::{FakeEmployee, FakeOrg, FakeXero, TOKEN_KEY};
use userfeed_tests::*;

/// A configuration whose `[xero]` points at `fake`.
fn config(fake: &FakeXero) -> Config {
    let mut cfg = Config::load(None).unwrap();
    cfg.xero = fake.config(free_port());
    cfg
}

/// The service with the deployment's Xero, as the daemon and the CLI build it.
fn with_xero(db: &TestDb, x: &userfeed::xero::XeroService) -> service::Service {
    service::Service {
        xero: Some(x.clone()),
        ..service::Service::new(db.db.clone())
    }
}

/// Runs `userfeed <args>` in-process.
async fn run(db: &TestDb, cfg: &Config, args: &[&str]) -> Result<String, String> {
    let cli = userfeed::cli::parse_args(std::iter::once("userfeed").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let mut out = Vec::new();
    let res = execute(&db.db, cfg, cli.command, &mut out).await;
    let text = String::from_utf8(out).unwrap();
    res.map(|()| text.clone())
        .map_err(|e| format!("{e:#}\n{text}"))
}

/// `employees` numbered 1..=n at `domain`.
fn staff(n: usize, domain: &str) -> Vec<FakeEmployee> {
    (1..=n).map(|i| FakeEmployee::numbered(i, domain)).collect()
}

/// Connects tenant `slug` (made here, matching on email) to the fake's
/// only organisation as the admin would: the authorize URL opened in a
/// "browser" that follows Xero's redirect to the callback.
async fn connect(db: &TestDb, fake: &FakeXero, cfg: &Config, slug: &str) -> XeroService {
    userfeed::tenants::add(&db.db, slug, "b", slug, userfeed::map::MatchKey::Email)
        .await
        .unwrap();
    let x = XeroService::new(&cfg.xero).unwrap();
    let pending = Pending::new();
    let code = browser_code(&pending.authorize_url(&cfg.xero), &pending).await;
    with_xero(db, &x)
        .xero_connect(&Caller::Platform, slug, &pending, &code, None)
        .await
        .unwrap();
    let _ = fake;
    x
}

/// Opens `authorize` without following the redirect; the code it carries.
async fn browser_code(authorize: &str, pending: &Pending) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = http.get(authorize).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 302, "{:?}", res.text().await);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let query = location.split_once('?').unwrap().1;
    pending.code_from(query).unwrap()
}

/// The stored connection row.
async fn stored(db: &TestDb, slug: &str) -> xero_connection::Model {
    let t = userfeed::tenants::by_slug(&db.db, slug).await.unwrap();
    xero_connection::Entity::find_by_id(t.id)
        .one(&db.db)
        .await
        .unwrap()
        .expect("a connection")
}

/// A writer the test can read while a command still runs.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn connect_runs_the_pkce_flow_through_the_cli_and_stores_the_tokens_encrypted() {
    let db = TestDb::new().await.unwrap();
    let fake = FakeXero::start(vec![FakeOrg::new(
        "Koala Pty",
        "AU",
        staff(3, "koala.example"),
    )])
    .await;
    let cfg = config(&fake);
    userfeed::tenants::add(&db.db, "acme", "b", "acme", userfeed::map::MatchKey::Email)
        .await
        .unwrap();

    let out = Shared::default();
    let cli = Cli::try_parse_from([
        "userfeed", "xero", "connect", "--tenant", "acme", "--wait", "30",
    ])
    .unwrap();
    let command = {
        let (db, cfg, mut out) = (db.db.clone(), cfg.clone(), out.clone());
        tokio::spawn(async move {
            execute(&db, &cfg, cli.command, &mut out)
                .await
                .map_err(|e| format!("{e:#}"))
        })
    };
    // The admin's browser: open the printed URL; Xero redirects to the
    // CLI's callback, which the browser follows.
    let url = wait_for("the authorize URL", Duration::from_secs(20), || {
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        async move {
            text.lines()
                .map(str::trim)
                .find(|l| l.starts_with("http"))
                .map(str::to_string)
        }
    })
    .await;
    assert!(
        url.contains("code_challenge_method=S256") && url.contains("offline_access"),
        "{url}"
    );
    let page = reqwest::get(&url).await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("You can close this window")
    );
    command.await.unwrap().unwrap();
    let printed = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert!(
        printed.contains("connected tenant acme to Koala Pty (AU, payroll region au)"),
        "{printed}"
    );

    // The refresh token Xero issued is in the row only as ciphertext: not
    // readable without the key, and bound to the tenant.
    let row = stored(&db, "acme").await;
    let issued = fake
        .state
        .lock()
        .unwrap()
        .issued_refresh
        .last()
        .unwrap()
        .clone();
    assert!(
        !row.refresh_token
            .windows(issued.len())
            .any(|w| w == issued.as_bytes())
    );
    let as_text = db
        .rows("SELECT encode(refresh_token, 'escape') FROM xero_connections")
        .await;
    assert!(
        !as_text[0].contains(&issued),
        "the token is readable in the database"
    );
    let other_key = Vault::new(&"ab".repeat(32)).unwrap();
    assert!(
        other_key
            .open(row.tenant_id, TokenKind::Refresh, &row.refresh_token)
            .is_err()
    );
    let key = Vault::new(TOKEN_KEY).unwrap();
    assert!(
        key.open(row.tenant_id + 1, TokenKind::Refresh, &row.refresh_token)
            .is_err()
    );
    assert_eq!(
        key.open(row.tenant_id, TokenKind::Refresh, &row.refresh_token)
            .unwrap(),
        issued
    );

    let status = run(&db, &cfg, &["xero", "status", "--tenant", "acme"])
        .await
        .unwrap();
    assert!(
        status.contains("Koala Pty") && status.contains("payroll region au"),
        "{status}"
    );
}

#[tokio::test]
async fn au_employees_are_read_across_pages_and_each_unimportable_one_has_its_reason() {
    let db = TestDb::new().await.unwrap();
    let mut people = staff(230, "koala.example");
    people[2].email = None; // e3
    people[4].end = chrono::NaiveDate::from_ymd_opt(2025, 1, 31); // e5
    people[6].email = Some("not-an-email".into()); // e7
    people[8].email = Some("E8@koala.example".into()); // e9 repeats e8
    let fake = FakeXero::start(vec![FakeOrg::new("Koala Pty", "AU", people)]).await;
    let cfg = config(&fake);
    let x = connect(&db, &fake, &cfg, "acme").await;

    let p = with_xero(&db, &x)
        .xero_preview(&Caller::Platform, "acme")
        .await
        .unwrap();
    let pages: Vec<String> = fake
        .calls()
        .into_iter()
        .filter(|c| c.contains("/payroll.xro/1.0/Employees"))
        .collect();
    assert_eq!(
        pages,
        [1, 2, 3].map(|n| format!("GET /payroll.xro/1.0/Employees?page={n}"))
    );
    let reasons: Vec<(String, Skip)> = p
        .not_importable
        .iter()
        .filter(|s| s.reason != Skip::OverCap)
        .map(|s| (s.person.first_name.clone(), s.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            ("First3".into(), Skip::NoEmail),
            ("First5".into(), Skip::Left),
            ("First7".into(), Skip::InvalidEmail),
            ("First9".into(), Skip::DuplicateEmail),
        ]
    );
    assert!(
        p.not_importable[1]
            .message
            .contains("has left on 2025-01-31"),
        "{}",
        p.not_importable[1].message
    );
    assert!(
        p.not_importable[0]
            .message
            .contains("has no email address in Xero")
    );
    assert_eq!(p.importable.len(), 200, "the cap");
    assert_eq!(p.not_importable.len() - 4, 26, "over the cap");
    // A preview changes nothing.
    assert_eq!(db.scalar("SELECT count(*) FROM users").await, 0);
    assert_eq!(db.scalar("SELECT count(*) FROM uploads").await, 0);
}

#[tokio::test]
async fn uk_leavers_by_a_past_end_date_are_skipped_and_v2_pagination_is_followed() {
    let db = TestDb::new().await.unwrap();
    let mut people = staff(120, "uk.example");
    people[0].end = chrono::NaiveDate::from_ymd_opt(2024, 6, 30);
    people[1].end = Some(chrono::Utc::now().date_naive() + chrono::Duration::days(60));
    people[3].email = None;
    let fake = FakeXero::start(vec![FakeOrg::new("Corgi Ltd", "GB", people)]).await;
    let cfg = config(&fake);
    let x = connect(&db, &fake, &cfg, "acme").await;
    let p = with_xero(&db, &x)
        .xero_preview(&Caller::Platform, "acme")
        .await
        .unwrap();
    assert_eq!(
        fake.calls()
            .into_iter()
            .filter(|c| c.contains("/payroll.xro/2.0/Employees"))
            .count(),
        2
    );
    assert_eq!(
        p.importable.len(),
        118,
        "a future end date still works there"
    );
    assert_eq!(
        p.not_importable
            .iter()
            .map(|s| s.reason)
            .collect::<Vec<_>>(),
        [Skip::Left, Skip::NoEmail]
    );
    assert!(p.importable.iter().any(|e| e.first_name == "First2"));
}

#[tokio::test]
async fn a_us_organisation_is_refused_because_xero_has_no_us_payroll_api() {
    let db = TestDb::new().await.unwrap();
    let fake = FakeXero::start(vec![FakeOrg::new(
        "Eagle Inc",
        "US",
        staff(2, "us.example"),
    )])
    .await;
    let cfg = config(&fake);
    userfeed::tenants::add(&db.db, "acme", "b", "acme", userfeed::map::MatchKey::Email)
        .await
        .unwrap();
    let x = XeroService::new(&cfg.xero).unwrap();
    let pending = Pending::new();
    let code = browser_code(&pending.authorize_url(&cfg.xero), &pending).await;
    let err = with_xero(&db, &x)
        .xero_connect(&Caller::Platform, "acme", &pending, &code, None)
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Refused(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("no payroll API for the United States"),
        "{err}"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM xero_connections").await, 0);
}

#[tokio::test]
async fn a_429_is_waited_for_as_long_as_retry_after_says_and_then_succeeds() {
    let db = TestDb::new().await.unwrap();
    let fake = FakeXero::start(vec![FakeOrg::new(
        "Koala Pty",
        "AU",
        staff(5, "koala.example"),
    )])
    .await;
    let cfg = config(&fake);
    let x = connect(&db, &fake, &cfg, "acme").await;
    fake.throttle_next(&[2]);
    let started = std::time::Instant::now();
    let p = with_xero(&db, &x)
        .xero_preview(&Caller::Platform, "acme")
        .await
        .unwrap();
    assert_eq!(p.importable.len(), 5);
    let st = fake.state.lock().unwrap();
    let tries: Vec<usize> = st
        .calls
        .iter()
        .enumerate()
        .filter(|(_, c)| c.contains("Employees?page=1"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(tries.len(), 2, "one 429, one success: {:?}", st.calls);
    let gap = st.call_times[tries[1]] - st.call_times[tries[0]];
    assert!(
        gap >= Duration::from_secs(2),
        "retried after {gap:?}, before Retry-After"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_and_the_rotated_refresh_token_is_kept() {
    let db = TestDb::new().await.unwrap();
    let fake = FakeXero::start(vec![FakeOrg::new(
        "Koala Pty",
        "AU",
        staff(5, "koala.example"),
    )])
    .await;
    let cfg = config(&fake);
    let x = connect(&db, &fake, &cfg, "acme").await;
    let before = stored(&db, "acme").await;
    let first_refresh = fake.state.lock().unwrap().issued_refresh[0].clone();
    fake.expire_access_tokens();

    let p = with_xero(&db, &x)
        .xero_preview(&Caller::Platform, "acme")
        .await
        .unwrap();
    assert_eq!(p.importable.len(), 5);
    let calls = fake.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.ends_with("refresh_token"))
            .count(),
        1,
        "{calls:?}"
    );
    let after = stored(&db, "acme").await;
    assert_ne!(after.refresh_token, before.refresh_token);
    let newest = fake
        .state
        .lock()
        .unwrap()
        .issued_refresh
        .last()
        .unwrap()
        .clone();
    let key = Vault::new(TOKEN_KEY).unwrap();
    assert_eq!(
        key.open(after.tenant_id, TokenKind::Refresh, &after.refresh_token)
            .unwrap(),
        newest
    );
    assert!(
        !fake
            .state
            .lock()
            .unwrap()
            .refresh_tokens
            .contains(&first_refresh),
        "used once"
    );
    assert!(after.refreshed_at > before.refreshed_at);
}

#[tokio::test]
async fn a_revoked_grant_fails_clearly_and_asks_the_admin_to_connect_again() {
    let db = TestDb::new().await.unwrap();
    let fake = FakeXero::start(vec![FakeOrg::new(
        "Koala Pty",
        "AU",
        staff(5, "koala.example"),
    )])
    .await;
    let cfg = config(&fake);
    connect(&db, &fake, &cfg, "acme").await;
    fake.revoke_grant();
    let err = run(&db, &cfg, &["xero", "preview", "--tenant", "acme"])
        .await
        .unwrap_err();
    assert!(
        err.contains("expired or was revoked") && err.contains("xero connect"),
        "{err}"
    );
    let err = run(&db, &cfg, &["xero", "import", "--tenant", "acme"])
        .await
        .unwrap_err();
    assert!(err.contains("connect the tenant again"), "{err}");
    assert_eq!(db.scalar("SELECT count(*) FROM uploads").await, 0);
}

#[tokio::test]
async fn the_cap_counts_the_tenants_xero_imported_users_across_runs() {
    let db = TestDb::new().await.unwrap();
    let fake = FakeXero::start(vec![FakeOrg::new(
        "Koala Pty",
        "AU",
        staff(205, "koala.example"),
    )])
    .await;
    let cfg = config(&fake);
    connect(&db, &fake, &cfg, "acme").await;
    run(&db, &cfg, &["xero", "import", "--tenant", "acme"])
        .await
        .unwrap();
    assert_eq!(db.scalar("SELECT count(*) FROM users").await, 200);
    let upload = db.scalar("SELECT max(id) FROM uploads").await;
    let warnings = row_errors(&db, upload).await;
    assert_eq!(
        warnings
            .iter()
            .filter(|w| w.contains("limit of 200 users imported from Xero"))
            .count(),
        5,
        "{warnings:?}"
    );
    fake.hire(
        0,
        (206..=208)
            .map(|i| FakeEmployee::numbered(i, "koala.example"))
            .collect(),
    );
    let x = XeroService::new(&cfg.xero).unwrap();
    let p = with_xero(&db, &x)
        .xero_preview(&Caller::Platform, "acme")
        .await
        .unwrap();
    assert_eq!(
        (p.importable.len(), p.present.len(), p.imported_before),
        (0, 200, 200)
    );
    assert!(p.not_importable.iter().all(|s| s.reason == Skip::OverCap));
    assert_eq!(p.not_importable.len(), 8);
}

#[tokio::test]
async fn a_rerun_imports_only_the_new_employees() {
    let db = TestDb::new().await.unwrap();
    let fake = FakeXero::start(vec![FakeOrg::new(
        "Koala Pty",
        "AU",
        staff(10, "koala.example"),
    )])
    .await;
    let cfg = config(&fake);
    connect(&db, &fake, &cfg, "acme").await;
    let first = run(&db, &cfg, &["xero", "import", "--tenant", "acme"])
        .await
        .unwrap();
    assert!(first.contains("10 to import"), "{first}");
    fake.hire(
        0,
        vec![
            FakeEmployee::numbered(11, "koala.example"),
            FakeEmployee::numbered(12, "koala.example"),
        ],
    );
    let second = run(&db, &cfg, &["xero", "import", "--tenant", "acme"])
        .await
        .unwrap();
    assert!(
        second.contains("2 to import") && second.contains("10 already users"),
        "{second}"
    );
    let id = db.scalar("SELECT max(id) FROM uploads").await;
    let u = upload(&db, id).await;
    assert_eq!((u.source.as_str(), u.state.as_str()), ("xero", "succeeded"));
    assert_eq!(
        (
            u.rows_read,
            u.rows_created,
            u.rows_updated,
            u.rows_deactivated
        ),
        (12, 2, 0, 0)
    );
    assert_eq!(db.scalar("SELECT count(*) FROM users").await, 12);
    let warnings = row_errors(&db, id).await;
    assert_eq!(
        warnings
            .iter()
            .filter(|w| w.contains("already a user"))
            .count(),
        10,
        "{warnings:?}"
    );
}

/// The feed's file for [`xero_import_is_additive`]: managed users A, B, C.
const FEED_MAPPING: &str =
    "[columns]\nemail = \"Email\"\nfirst_name = \"First\"\nlast_name = \"Last\"\n";

async fn xero_import_is_additive(backend: DbBackend) {
    let db = TestDb::of(backend).await.unwrap();
    let fake = FakeXero::start(vec![FakeOrg::new(
        "Koala Pty",
        "AU",
        staff(4, "koala.example"),
    )])
    .await;
    let cfg = config(&fake);
    connect(&db, &fake, &cfg, "acme").await;
    let mapping = temp_file("feed.toml", FEED_MAPPING.as_bytes());
    run(
        &db,
        &cfg,
        &["mapping", "set", "acme", mapping.to_str().unwrap()],
    )
    .await
    .unwrap();
    // The feed manages e1 (with its own spelling of the name), e2 and a
    // person Xero does not know; then e2 leaves the feed and is deactivated.
    for (day, csv) in [
        (
            "day1.csv",
            "e1@koala.example,Feedfirst,Feedlast\ne2@koala.example,Two,Feed\nonly@feed.example,Only,Feed\n",
        ),
        (
            "day2.csv",
            "e1@koala.example,Feedfirst,Feedlast\nonly@feed.example,Only,Feed\n",
        ),
    ] {
        let file = temp_file(day, format!("Email,First,Last\n{csv}").as_bytes());
        run(
            &db,
            &cfg,
            &["import", "--tenant", "acme", file.to_str().unwrap()],
        )
        .await
        .unwrap();
    }
    let before = tenant_state(&db, "acme").await;

    // Xero has e1..e4 with other names; e2 is inactive here; e3, e4 are new.
    let out = run(&db, &cfg, &["xero", "import", "--tenant", "acme"])
        .await
        .unwrap();
    assert!(
        out.contains("2 to import") && out.contains("2 already users"),
        "{out}"
    );
    let after = tenant_state(&db, "acme").await;
    let unchanged: Vec<&String> = before.iter().collect();
    for row in &unchanged {
        assert!(
            after.contains(row),
            "{row} changed by the Xero import:\n{after:#?}"
        );
    }
    let users = |state: &[String]| state.iter().filter(|r| r.starts_with("user ")).count();
    assert_eq!(users(&after), users(&before) + 2, "{after:#?}");
    let id = db.scalar("SELECT max(id) FROM uploads").await;
    let u = upload(&db, id).await;
    assert_eq!(
        (u.rows_created, u.rows_updated, u.rows_deactivated),
        (2, 0, 0)
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM users WHERE active").await,
        4,
        "e1, only@, e3, e4 active; e2 stays inactive"
    );
    assert_eq!(
        db.rows(
            "SELECT first_name || ' ' || last_name FROM users WHERE email = 'e1@koala.example'"
        )
        .await,
        ["Feedfirst Feedlast"]
    );
}

each_backend!(xero_import_is_additive);

#[tokio::test]
async fn disconnect_revokes_the_grant_in_xero_and_deletes_the_connection() {
    let db = TestDb::new().await.unwrap();
    let fake = FakeXero::start(vec![FakeOrg::new(
        "Koala Pty",
        "AU",
        staff(1, "koala.example"),
    )])
    .await;
    let cfg = config(&fake);
    connect(&db, &fake, &cfg, "acme").await;
    let row = stored(&db, "acme").await;
    let refresh = fake
        .state
        .lock()
        .unwrap()
        .issued_refresh
        .last()
        .unwrap()
        .clone();
    let out = run(&db, &cfg, &["xero", "disconnect", "--tenant", "acme"])
        .await
        .unwrap();
    assert!(out.contains("grant is revoked"), "{out}");
    {
        let st = fake.state.lock().unwrap();
        assert_eq!(st.revoked, [refresh]);
        assert_eq!(st.deleted_connections, [row.connection_id]);
    }
    assert_eq!(db.scalar("SELECT count(*) FROM xero_connections").await, 0);
    let out = run(&db, &cfg, &["xero", "disconnect", "--tenant", "acme"])
        .await
        .unwrap();
    assert!(out.contains("was not connected"), "{out}");
}

#[tokio::test]
async fn without_xero_settings_every_xero_command_says_what_to_configure() {
    let db = TestDb::new().await.unwrap();
    userfeed::tenants::add(&db.db, "acme", "b", "acme", userfeed::map::MatchKey::Email)
        .await
        .unwrap();
    let cfg = Config::load(None).unwrap();
    for cmd in ["status", "preview", "import", "disconnect"] {
        let err = run(&db, &cfg, &["xero", cmd, "--tenant", "acme"])
            .await
            .unwrap_err();
        assert!(
            err.contains("Xero is not configured") && err.contains("xero.token_key"),
            "{cmd}: {err}"
        );
    }
}
