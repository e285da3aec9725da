//! The command line, run in-process: each command writes to a buffer
//! through the same `cli::execute` the binary runs. And `userfeed import`'s
//! progress bar, which the binary draws only on a terminal.

use userfeed::cli::execute;
use userfeed::config::Config;
use userfeed_tests::*;

/// Runs `userfeed <args>` against `db` in this process; its output, or the
/// error with what it printed before failing.
async fn run(db: &TestDb, args: &[&str]) -> Result<String, (String, String)> {
    let cli = userfeed::cli::parse_args(std::iter::once("userfeed").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let cfg = Config::load(None).unwrap();
    let mut out = Vec::new();
    let res = execute(&db.db, &cfg, cli.command, &mut out).await;
    let text = String::from_utf8(out).unwrap();
    match res {
        Ok(()) => Ok(text),
        Err(e) => Err((format!("{e:#}"), text)),
    }
}

#[tokio::test]
async fn a_tenant_is_set_up_fed_and_read_back_through_the_commands_in_process() {
    let db = TestDb::new().await.unwrap();
    let out = run(
        &db,
        &[
            "tenant",
            "add",
            "acme",
            "--bucket",
            "b",
            "--prefix",
            "acme",
            "--match-on",
            "external_id",
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        "tenant acme created: s3://b/acme/ (matching on external_id)\n"
    );
    run(&db, &["group", "add", "acme", "G1", "Sales"])
        .await
        .unwrap();
    let mapping = temp_file("mapping.toml", EMPLOYEE_LINK_MAPPING.as_bytes());
    assert_eq!(
        run(&db, &["mapping", "set", "acme", mapping.to_str().unwrap()])
            .await
            .unwrap(),
        "mapping of acme updated\n"
    );
    let file = temp_file(
        "cli.csv",
        b"Employee ID,Work Email,First Name,Last Name,Manager Email,Groups\n\
          E1,boss@x.io,Bo,Ss,,G1\n\
          E2,ann@x.io,Ann,Lee,boss@x.io,G1|G9\n",
    );
    let summary = run(&db, &["import", "--tenant", "acme", file.to_str().unwrap()])
        .await
        .unwrap();
    assert!(summary.contains("succeeded"), "{summary}");

    // Tables for people, JSON for machines, from the same data.
    let table = run(&db, &["users", "list", "--tenant", "acme"])
        .await
        .unwrap();
    assert!(table.lines().next().unwrap().contains("EMAIL"), "{table}");
    assert!(
        table.contains("ann@x.io") && table.contains("boss@x.io"),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_str(
        &run(&db, &["users", "list", "--tenant", "acme", "--json"])
            .await
            .unwrap(),
    )
    .unwrap();
    let ann = json
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "ann@x.io")
        .unwrap();
    assert_eq!(ann["managers"], serde_json::json!(["boss@x.io"]), "{ann}");
    let uploads: serde_json::Value = serde_json::from_str(
        &run(&db, &["uploads", "list", "--tenant", "acme", "--json"])
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(uploads[0]["state"], "succeeded");
    assert_eq!(uploads[0]["rows_created"], 2);

    // The unknown group is a warning the errors command lists as CSV.
    let id = uploads[0]["id"].as_i64().unwrap().to_string();
    let csv = run(&db, &["uploads", "errors", &id, "--csv"])
        .await
        .unwrap();
    assert_eq!(
        csv,
        "line,severity,column,message\n\
         3,warning,Groups,\"group \"\"G9\"\" is not a group of this tenant; membership skipped\"\n"
    );
}

/// Imports 40 people into acme, then a file of 5 of them with `--json`:
/// more leave than the cap allows, so the second upload is held. Its
/// error and what it printed.
async fn held_import(db: &TestDb) -> (String, String) {
    let first = temp_file("day1.csv", employees_csv(40, false).as_bytes());
    run(db, &["import", "--tenant", "acme", first.to_str().unwrap()])
        .await
        .unwrap();
    // Everyone but five left: more than the cap, so the upload is held.
    let second = temp_file("day2.csv", employees_csv(5, false).as_bytes());
    run(
        db,
        &[
            "import",
            "--tenant",
            "acme",
            second.to_str().unwrap(),
            "--json",
        ],
    )
    .await
    .unwrap_err()
}

#[tokio::test]
async fn an_import_that_is_held_or_fails_prints_its_summary_and_exits_with_an_error() {
    let db = TestDb::new().await.unwrap();
    tenant(
        &db,
        "acme",
        "b",
        userfeed::map::MatchKey::ExternalId,
        MAPPING,
    )
    .await;
    let (err, printed) = held_import(&db).await;
    assert!(
        err.contains("is held") && err.contains("uploads approve"),
        "{err}"
    );
    let summary: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(summary["state"], "held", "{summary}");

    let bad = temp_file("bad.csv", b"\xff\xfe not a csv at all\n");
    run(
        &db,
        &[
            "uploads",
            "approve",
            summary["id"].as_i64().unwrap().to_string().as_str(),
        ],
    )
    .await
    .unwrap();
    let (err, printed) = run(&db, &["import", "--tenant", "acme", bad.to_str().unwrap()])
        .await
        .unwrap_err();
    assert!(err.contains("failed"), "{err}");
    assert!(printed.contains("failed"), "{printed}");
}

#[tokio::test]
async fn import_draws_its_progress_bar_on_a_terminal_and_none_when_piped() {
    let db = TestDb::new().await.unwrap();
    tenant(
        &db,
        "acme",
        "b",
        userfeed::map::MatchKey::ExternalId,
        MAPPING,
    )
    .await;
    let file = temp_file("progress.csv", employees_csv(20_000, false).as_bytes());
    let bin = daemon_binary();

    // Piped: stdout has the summary, stderr no bar.
    let piped = tokio::process::Command::new(&bin)
        .args(["import", "--tenant", "acme", file.to_str().unwrap()])
        .env("USERFEED_DATABASE_URL", &db.url)
        .output()
        .await
        .unwrap();
    assert!(piped.status.success(), "{piped:?}");
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(
        !stderr.contains("rows/s"),
        "no bar when stderr is a pipe: {stderr}"
    );
    assert!(String::from_utf8_lossy(&piped.stdout).contains("succeeded"));

    // On a terminal (script(1) gives the command a pseudo-terminal): the bar
    // shows rows, rows/s and bytes of the file's size.
    let size = std::fs::metadata(&file).unwrap().len();
    let command = format!("{} import --tenant acme {}", bin.display(), file.display());
    let tty = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("USERFEED_DATABASE_URL", &db.url)
        .env("TERM", "xterm")
        .output()
        .await
        .unwrap();
    assert!(tty.status.success(), "{tty:?}");
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(screen.contains("rows/s"), "a bar on a terminal: {screen}");
    // indicatif's binary units, two decimals.
    let total = match size {
        s if s >= 1 << 20 => format!("{:.2} MiB", s as f64 / f64::from(1 << 20)),
        s => format!("{:.2} KiB", s as f64 / 1024.0),
    };
    assert!(
        screen.contains(&total),
        "the file's size, {total}: {screen}"
    );
}

/// The binary, run with `args` against `db` and no terminal; its output.
async fn spawn(db: &TestDb, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(daemon_binary())
        .args(args)
        .env("USERFEED_DATABASE_URL", &db.url)
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn commands_that_read_or_change_data_print_json_with_json() {
    let db = TestDb::new().await.unwrap();
    tenant(
        &db,
        "acme",
        "b",
        userfeed::map::MatchKey::ExternalId,
        MAPPING,
    )
    .await;
    let json = |text: String| -> serde_json::Value {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    let (_, printed) = held_import(&db).await;
    let held = json(printed)["id"].as_i64().unwrap().to_string();

    let approved = json(
        run(&db, &["uploads", "approve", &held, "--json"])
            .await
            .unwrap(),
    );
    assert_eq!(approved["deactivations"], 35, "{approved}");
    let mapping = json(
        run(&db, &["mapping", "show", "--tenant", "acme", "--json"])
            .await
            .unwrap(),
    );
    assert!(mapping["columns"].is_object(), "{mapping}");
    let fields = json(
        run(
            &db,
            &["profile-field", "list", "--tenant", "acme", "--json"],
        )
        .await
        .unwrap(),
    );
    assert!(fields.is_array(), "{fields}");
    let problems = json(
        run(&db, &["uploads", "errors", &held, "--json"])
            .await
            .unwrap(),
    );
    assert!(problems.is_array(), "{problems}");
    let token = json(
        run(
            &db,
            &[
                "api", "token", "--label", "ops", "--tenant", "acme", "--json",
            ],
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        (&token["label"], &token["tenant"]),
        (&"ops".into(), &"acme".into())
    );
    assert!(
        token["token"].as_str().unwrap().starts_with("uf_"),
        "{token}"
    );
    // The text forms are unchanged.
    assert_eq!(
        run(&db, &["mapping", "show", "--tenant", "acme"])
            .await
            .unwrap(),
        run(&db, &["mapping", "show", "acme"]).await.unwrap(),
    );
}

#[tokio::test]
async fn a_token_for_a_tenant_that_does_not_exist_is_refused() {
    let db = TestDb::new().await.unwrap();
    let (err, printed) = run(&db, &["api", "token", "--label", "x", "--tenant", "nobody"])
        .await
        .unwrap_err();
    assert!(err.contains("nobody"), "{err}");
    assert!(!printed.contains("uf_"), "no token is shown: {printed}");
    // The binary, which makes a platform token without a database, checks
    // a tenant's as well.
    let out = spawn(&db, &["api", "token", "--label", "x", "--tenant", "nobody"]).await;
    assert!(!out.status.success(), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("uf_"),
        "{out:?}"
    );
}

#[tokio::test]
async fn import_and_preview_of_a_missing_file_record_nothing() {
    let db = TestDb::new().await.unwrap();
    tenant(
        &db,
        "acme",
        "b",
        userfeed::map::MatchKey::ExternalId,
        MAPPING,
    )
    .await;
    let missing = std::env::temp_dir()
        .join(unique("missing-"))
        .join("staff.csv");
    for cmd in ["import", "preview"] {
        let (err, _) = run(&db, &[cmd, "--tenant", "acme", missing.to_str().unwrap()])
            .await
            .unwrap_err();
        assert_eq!(err, format!("no such file: {}", missing.display()), "{cmd}");
    }
    assert_eq!(db.scalar("SELECT count(*) FROM uploads").await, 0);
    assert_eq!(db.scalar("SELECT count(*) FROM notifications").await, 0);
}

#[tokio::test]
async fn a_closed_pipe_ends_a_command_quietly_and_piped_output_has_no_colours() {
    let db = TestDb::new().await.unwrap();
    tenant(
        &db,
        "acme",
        "b",
        userfeed::map::MatchKey::ExternalId,
        MAPPING,
    )
    .await;
    // A reader that has gone: its end of the pipe is closed before the
    // command writes, so every write fails with EPIPE.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = tokio::process::Command::new(daemon_binary())
        .args(["mapping", "show", "--tenant", "acme"])
        .env("USERFEED_DATABASE_URL", &db.url)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    assert_eq!(
        String::from_utf8_lossy(&status.stderr),
        "",
        "nothing on stderr"
    );

    // The warning a failed import logs to a piped stderr has no ANSI escapes.
    let bad = temp_file("utf16.csv", b"\xff\xfe not a csv\n");
    let out = spawn(&db, &["import", "--tenant", "acme", bad.to_str().unwrap()]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("WARN"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no colours in a pipe: {stderr:?}"
    );
}

#[tokio::test]
async fn a_command_that_only_reads_creates_no_database_and_says_where_it_looked() {
    let dir = std::env::temp_dir().join(unique("uf-empty-"));
    let out = tokio::process::Command::new(daemon_binary())
        .args(["uploads", "list", "--tenant", "acme"])
        .env_remove("USERFEED_DATABASE_URL")
        .env_remove("USERFEED_CONFIG")
        .env("USERFEED_DATA_DIR", &dir)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&dir.join("userfeed.db").display().to_string()),
        "says where it looked: {stderr}"
    );
    assert!(!dir.exists(), "created nothing at {}", dir.display());
}
