//! The admin screens in a real browser: Debian's Chromium driven by
//! playwright-core (`tests/browser/setup-flow.mjs`) against the real
//! daemon, PostgreSQL and moto. `scripts/test` installs both and says where
//! (`USERFEED_TEST_CHROMIUM`, `USERFEED_TEST_BROWSER_DIR`).

use userfeed::service::Caller;
use userfeed::web::auth::new_token;
use userfeed_tests::*;

use super::{Stack, WAIT, stack};

/// The customer's export: Work Email matches, one row has a broken email.
fn people(ids: impl IntoIterator<Item = usize>) -> String {
    let mut s = String::from(
        "Employee Number,Work Email,Given Name,Preferred Name,Family Name,Manager Email,Department\n",
    );
    for i in ids {
        let email = if i == 30 {
            "not-an-email".to_string()
        } else {
            format!("person{i}@example.com")
        };
        let manager = if i > 1 { "person1@example.com" } else { "" };
        s.push_str(&format!(
            "E{i},{email},Given{i},Pref{i},Family{i},{manager},Dept{}\n",
            i % 3
        ));
    }
    s
}

impl Stack {
    async fn cli(&self, args: &[&str]) -> String {
        cli(&self.db.url, args).await.unwrap()
    }
}

#[tokio::test]
async fn a_customer_admin_sets_up_the_feed_and_reads_its_history_in_a_real_browser() {
    let chromium = std::env::var("USERFEED_TEST_CHROMIUM")
        .expect("USERFEED_TEST_CHROMIUM is not set: run the tests with scripts/test");
    let browser_dir = std::env::var("USERFEED_TEST_BROWSER_DIR")
        .expect("USERFEED_TEST_BROWSER_DIR is not set: run the tests with scripts/test");
    let s = stack().await;
    let bucket = s.aws.bucket.clone();
    for slug in ["acme", "globex"] {
        s.cli(&["tenant", "add", slug, "--bucket", &bucket, "--prefix", slug])
            .await;
    }
    s.cli(&[
        "profile-field",
        "add",
        "acme",
        "department",
        "--type",
        "text",
    ])
    .await;
    // An upload of the other tenant, whose page the admin must not open.
    s.cli(&[
        "mapping",
        "set",
        "globex",
        temp_file("m.toml", b"[columns]\nemail = \"Email\"\n")
            .to_str()
            .unwrap(),
    ])
    .await;

    let (acme, acme_entry) = new_token("acme-admin", &Caller::Tenant("acme".into())).unwrap();
    let (ops, ops_entry) = new_token("ops", &Caller::Platform).unwrap();
    let tokens = temp_file("tokens.toml", format!("{acme_entry}{ops_entry}").as_bytes());
    let api = format!("127.0.0.1:{}", free_port());
    let tokens_path = tokens.display().to_string();
    let d = Daemon::start(&s.env(&[
        ("USERFEED_API_BIND", &api),
        ("USERFEED_API_TOKENS_FILE", &tokens_path),
    ]))
    .await
    .unwrap();
    s.upload_file("globex/theirs.csv", "Email\nx@globex.example\n")
        .await;
    let theirs = s.finished(1).await[0].id;
    // And a failed one, for the operators' overview.
    s.upload_file("globex/broken.csv", "Name\nx\n").await;
    assert_eq!(s.finished(2).await[1].state, "failed");

    // The screenshots are the test's output, kept for people to look at.
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let sample = temp_file("sample.csv", people(1..=5).as_bytes());
    let first = temp_file("first.csv", people(1..=30).as_bytes());
    let shrunk = temp_file("shrunk.csv", people(1..=9).as_bytes());
    let aws_cli = std::env::var("USERFEED_TEST_AWS_CLI").unwrap_or_else(|_| "aws".into());
    let run = tokio::time::timeout(
        WAIT * 3,
        tokio::process::Command::new("node")
            .arg("setup-flow.mjs")
            .current_dir(&browser_dir)
            .env("UF_BASE", format!("http://{api}"))
            .env("UF_TOKEN", &acme)
            .env("UF_OPS_TOKEN", &ops)
            .env("UF_OTHER_UPLOAD", format!("/ui/t/acme/uploads/{theirs}"))
            .env("UF_SAMPLE", &sample)
            .env("UF_FIRST", &first)
            .env("UF_SHRUNK", &shrunk)
            .env("UF_AWS_CLI", &aws_cli)
            .env("UF_AWS_ENDPOINT", moto_endpoint())
            .env("UF_SHOTS", &shots)
            .env("UF_CHROMIUM", &chromium)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser flow finished in time")
    .expect("running node");
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    println!("{out}");
    assert!(
        run.status.success(),
        "the browser flow failed:\n{out}\n{err}\n--- daemon log (tail) ---\n{}",
        d.log_text()
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(out.contains("the whole flow passed"), "{out}");

    // What the screens did is what the database holds.
    let ups = s.finished(6).await;
    let acme_ups: Vec<(&str, &str, Option<&str>)> = ups
        .iter()
        .filter(|u| u.object_key.starts_with("acme/") || u.source == "undo")
        .map(|u| {
            (
                u.object_key.rsplit('/').next().unwrap_or_default(),
                u.state.as_str(),
                u.hold_resolution.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        acme_ups.iter().map(|u| (u.1, u.2)).collect::<Vec<_>>(),
        [
            ("succeeded", None),
            ("succeeded", Some("approved")),
            ("succeeded", None),
            ("succeeded", None)
        ],
        "{acme_ups:?}"
    );
    assert!(
        acme_ups[2].0.starts_with("api-") && acme_ups[2].0.ends_with("-from-the-screens.csv"),
        "the file sent from the screens went where the drops go: {acme_ups:?}"
    );
    // The file sent from the screens reactivated the 20 the approved hold
    // had deactivated; the undo of it made them inactive again.
    assert_eq!(
        s.db
            .scalar("SELECT count(*) FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE t.slug = 'acme' AND u.active")
            .await,
        9
    );
    let mapping = s.cli(&["mapping", "show", "acme"]).await;
    assert!(
        mapping.contains("first_name = \"Preferred Name\"")
            && mapping.contains("department = \"Department\""),
        "{mapping}"
    );
    // Every screen was captured.
    let mut names: Vec<String> = std::fs::read_dir(&shots)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for screen in [
        "sign-in",
        "get-started",
        "mapping",
        "credentials-created",
        "connection",
        "history",
        "upload-detail",
        "held",
        "approved",
        "preview",
        "upload-a-file",
        "undo-confirm",
        "ops-overview",
    ] {
        assert!(
            names.iter().any(|n| n.ends_with(&format!("-{screen}.png"))),
            "no screenshot of {screen}: {names:?}"
        );
    }
    // The session never put a token or secret in the log.
    let log = d.log_text();
    assert!(
        !log.contains(&acme) && !log.contains(&ops),
        "a token reached the log"
    );
}
