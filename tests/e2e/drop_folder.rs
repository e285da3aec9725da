//! The embedded default: the real `userfeed serve` as a process, with no
//! database URL (SQLite under its data directory). Files are delivered to
//! the drop folder the ways customers and SFTP servers deliver them, and
//! the admin API is switched on by a token file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use userfeed_tests::*;

const WAIT: Duration = Duration::from_secs(60);

/// A data directory and the environment of every process using it.
struct Embedded {
    dir: PathBuf,
}

impl Embedded {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(unique("uf-embedded-"));
        std::fs::create_dir_all(&dir).unwrap();
        Embedded { dir }
    }

    fn env(&self) -> Vec<(String, String)> {
        [
            // Unset on purpose: the embedded default.
            ("USERFEED_DATABASE_URL", ""),
            ("USERFEED_DATA_DIR", self.dir.to_str().unwrap()),
            // Four times the pause of the slow writer below, so a loaded
            // machine does not make its pauses look like the end.
            ("USERFEED_DROP_SETTLE_SECONDS", "2"),
            // Long, so the notifications (not the rescan) must do the work
            // once the daemon runs.
            ("USERFEED_DROP_RESCAN_SECONDS", "300"),
            ("USERFEED_JOBS_POLL_INTERVAL_MS", "100"),
            ("USERFEED_JOBS_LEASE_SECONDS", "3"),
            ("USERFEED_LOG_FORMAT", "json"),
            ("USERFEED_LOG_LEVEL", "info"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn tenant_dir(&self, slug: &str) -> PathBuf {
        self.dir.join("drop").join(slug)
    }

    /// Runs the CLI on the same database (while the daemon runs, too).
    async fn cli(&self, args: &[&str]) -> String {
        let out = tokio::process::Command::new(daemon_binary())
            .args(args)
            .envs(self.env())
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "userfeed {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    async fn uploads(&self) -> Vec<Value> {
        let text = self
            .cli(&["uploads", "list", "--tenant", "acme", "--json"])
            .await;
        let mut list: Vec<Value> = serde_json::from_str(&text).unwrap();
        list.reverse();
        list
    }

    /// Waits until there are `n` uploads and all have ended; returns them, oldest first.
    async fn ended(&self, n: usize) -> Vec<Value> {
        wait_for(&format!("{n} ended uploads"), WAIT, || async {
            let list = self.uploads().await;
            let ended = list.len() == n
                && list
                    .iter()
                    .all(|u| matches!(u["state"].as_str(), Some("succeeded" | "failed")));
            ended.then_some(list)
        })
        .await
    }

    /// Waits until the files in `rel` satisfy `ok`; returns them.
    async fn files_when(&self, rel: &str, ok: impl Fn(&[String]) -> bool) -> Vec<String> {
        wait_for(&format!("the files in {rel}"), WAIT, || async {
            let f = self.files(rel);
            ok(&f).then_some(f)
        })
        .await
    }

    fn files(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.join("drop").join(rel))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

fn rows(from: usize, to: usize) -> String {
    (from..to)
        .map(|i| format!("E{i},user{i}@example.com,First{i},Last{i}\n"))
        .collect()
}

const HEADER: &str = "Employee ID,Work Email,First Name,Last Name\n";

/// Delivers `text` the safe way: written under a `.part` name, then renamed.
fn deliver(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let part = dir.join(format!("{name}.part"));
    std::fs::write(&part, text).unwrap();
    std::fs::rename(&part, dir.join(name)).unwrap();
}

fn counts(u: &Value) -> (String, i64, i64, i64) {
    (
        u["state"].as_str().unwrap().to_string(),
        u["rows_read"].as_i64().unwrap(),
        u["rows_created"].as_i64().unwrap(),
        u["rows_unchanged"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn drop_folder_takes_complete_files_once_and_never_loses_one() {
    let e = Embedded::new();
    // The CLI creates the SQLite file and its schema on first use.
    e.cli(&["tenant", "add", "acme", "--match-on", "external_id"])
        .await;
    let mapping = temp_file("mapping.toml", MAPPING.as_bytes());
    e.cli(&["mapping", "set", "acme", mapping.to_str().unwrap()])
        .await;
    let acme = e.tenant_dir("acme");

    // 1. Dropped while the daemon was down: taken at start.
    std::fs::create_dir_all(&acme).unwrap();
    std::fs::write(acme.join("early.csv"), format!("{HEADER}{}", rows(0, 3))).unwrap();
    let mut daemon = Daemon::start(&e.env()).await.unwrap();
    let list = e.ended(1).await;
    assert_eq!(counts(&list[0]), ("succeeded".into(), 3, 3, 0));
    assert_eq!(list[0]["source"], "folder");
    assert!(e.files("acme").iter().all(|f| !f.ends_with("early.csv")));
    // Moved on once its upload ended.
    let processed = e.files_when("acme/processed", |f| !f.is_empty()).await;
    assert_eq!(processed.len(), 1, "{processed:?}");
    assert!(processed[0].ends_with("_early.csv"), "{processed:?}");

    // 2. Written slowly, in pieces over more than one settle period: taken once,
    // whole.
    {
        let mut f = std::fs::File::create(acme.join("slow.csv")).unwrap();
        f.write_all(HEADER.as_bytes()).unwrap();
        for i in 0..6 {
            f.write_all(rows(i, i + 1).as_bytes()).unwrap();
            f.flush().unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(e.uploads().await.len(), 1, "taken before it was complete");
        }
    }
    let list = e.ended(2).await;
    assert_eq!(counts(&list[1]), ("succeeded".into(), 6, 3, 3));

    // 3. Renamed in, with the temporary name never taken.
    deliver(&acme, "renamed.csv", &format!("{HEADER}{}", rows(0, 7)));
    let list = e.ended(3).await;
    assert_eq!(counts(&list[2]), ("succeeded".into(), 7, 1, 6));

    // 4. The same file dropped twice: two deliveries, two uploads, the
    // second changing nothing.
    let same = format!("{HEADER}{}", rows(0, 7));
    deliver(&acme, "same.csv", &same);
    e.ended(4).await;
    deliver(&acme, "same.csv", &same);
    let list = e.ended(5).await;
    assert_eq!(counts(&list[4]), ("succeeded".into(), 7, 0, 7));
    assert_ne!(list[3]["object_key"], list[4]["object_key"]);
    e.files_when("acme/processed", |f| {
        f.iter().filter(|f| f.ends_with("_same.csv")).count() == 2
    })
    .await;

    // 5. A folder no tenant owns: set aside, reported, no upload.
    deliver(&e.dir.join("drop/ghost"), "x.csv", &same);
    let aside = e.files_when("_unrouted/ghost", |f| !f.is_empty()).await;
    assert!(aside[0].ends_with("_x.csv"), "{aside:?}");
    assert!(e.files("ghost").is_empty());
    assert_eq!(e.uploads().await.len(), 5);
    let (_, metrics) = daemon.get("/metrics").await.unwrap();
    assert!(
        metrics.contains("userfeed_drop_files_total{outcome=\"set_aside\"} 1"),
        "{metrics}"
    );
    assert!(daemon.log_text().contains("set aside"));

    // 6. A file that fails goes to failed/; retried once the mapping is
    // fixed, it is read from there and ends in processed/.
    let other_header = format!("{}{}", HEADER.replace("Work Email", "Email"), rows(0, 7));
    deliver(&acme, "broken.csv", &other_header);
    let list = e.ended(6).await;
    assert_eq!(list[5]["state"], "failed");
    e.files_when("acme/failed", |f| {
        f.iter().any(|f| f.ends_with("_broken.csv"))
    })
    .await;
    let fixed = temp_file(
        "fixed.toml",
        MAPPING.replace("\"Work Email\"", "\"Email\"").as_bytes(),
    );
    e.cli(&["mapping", "set", "acme", fixed.to_str().unwrap()])
        .await;
    let failed_id = list[5]["id"].to_string();
    e.cli(&["uploads", "retry", &failed_id]).await;
    let list = e.ended(7).await;
    assert_eq!(counts(&list[6]), ("succeeded".into(), 7, 0, 7));
    assert_eq!(list[6]["retry_of"], list[5]["id"]);
    e.files_when("acme/processed", |f| {
        f.iter().any(|f| f.ends_with("_broken.csv"))
    })
    .await;
    assert!(e.files("acme/failed").is_empty());
    e.cli(&["mapping", "set", "acme", mapping.to_str().unwrap()])
        .await;

    // 7. Killed mid-write: the daemon restarts while the file is still
    // being written; the half-written file is not taken, and once complete
    // it is taken whole.
    let mut half = std::fs::File::create(acme.join("interrupted.csv")).unwrap();
    half.write_all(format!("{HEADER}{}", rows(0, 4)).as_bytes())
        .unwrap();
    half.flush().unwrap();
    daemon.signal("KILL");
    daemon.child.wait().await.unwrap();
    half.write_all(rows(4, 6).as_bytes()).unwrap();
    half.flush().unwrap();

    // 8. Killed mid-apply: the upload is re-claimed once its lease runs
    // out, and completes from the file in processing/.
    let mut daemon = Daemon::start(&e.env()).await.unwrap();
    // Restarted, with the writer still at work: the file stays where it is.
    half.write_all(rows(6, 7).as_bytes()).unwrap();
    half.flush().unwrap();
    assert!(
        e.files("acme").iter().any(|f| f == "interrupted.csv"),
        "a file still being written was taken: {:?}",
        e.files("acme")
    );
    half.write_all(rows(7, 9).as_bytes()).unwrap();
    drop(half);
    let list = e.ended(8).await;
    assert_eq!(counts(&list[7]), ("succeeded".into(), 9, 2, 7));
    deliver(&acme, "large.csv", &format!("{HEADER}{}", rows(0, 30_000)));
    wait_for("the large upload running", WAIT, || async {
        let list = e.uploads().await;
        (list.len() == 9
            && list[8]["state"] == "running"
            && list[8]["rows_read"].as_i64() > Some(0))
        .then_some(())
    })
    .await;
    daemon.signal("KILL");
    daemon.child.wait().await.unwrap();
    let daemon = Daemon::start(&e.env()).await.unwrap();
    let list = e.ended(9).await;
    assert_eq!(counts(&list[8]).0, "succeeded");
    assert_eq!(list[8]["rows_read"], 30_000);
    let users = e
        .cli(&["users", "list", "--tenant", "acme", "--json"])
        .await;
    let users: Vec<Value> = serde_json::from_str(&users).unwrap();
    assert_eq!(users.len(), 30_000);
    e.files_when("acme/processing", |f| f.is_empty()).await;
    assert!(e.files("acme").iter().all(|f| !f.ends_with(".csv")));
    drop(daemon);
    std::fs::remove_dir_all(&e.dir).ok();
}

#[tokio::test]
async fn the_daemon_serves_the_admin_api_only_when_a_token_file_is_configured() {
    use userfeed::service::Caller;
    use userfeed::web::auth::new_token;
    let e = Embedded::new();
    e.cli(&["tenant", "add", "acme"]).await;
    let api = format!("127.0.0.1:{}", free_port());
    let mut env = e.env();
    env.push(("USERFEED_API_BIND".into(), api.clone()));

    // Without a token file nothing listens on the API's address.
    let daemon = Daemon::start(&env).await.unwrap();
    assert!(tokio::net::TcpStream::connect(&api).await.is_err());
    drop(daemon);

    let (token, entry) = new_token("ops", &Caller::Platform).unwrap();
    let file = temp_file("tokens.toml", entry.as_bytes());
    env.push((
        "USERFEED_API_TOKENS_FILE".into(),
        file.display().to_string(),
    ));
    let daemon = Daemon::start(&env).await.unwrap();
    let auth = format!("Bearer {token}");
    let (status, _, body) = wait_for("the admin API", WAIT, || async {
        http_request(
            &api,
            "GET",
            "/api/v1/tenants",
            &[("Authorization", &auth)],
            b"",
        )
        .await
        .ok()
    })
    .await;
    assert_eq!(status, 200, "{body}");
    let tenants: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(tenants[0]["slug"], "acme");
    let (status, _, _) = http_request(&api, "GET", "/api/v1/tenants", &[], b"")
        .await
        .unwrap();
    assert_eq!(status, 401);
    assert!(
        !daemon.log_text().contains(&token),
        "the token is never logged"
    );
    drop(daemon);
    std::fs::remove_dir_all(&e.dir).ok();
}
