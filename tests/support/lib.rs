//! Test support: an isolated PostgreSQL database per test, moto-backed S3
//! and SQS resources with unique names, the real AWS CLI for uploads, and
//! the real daemon binary as a child process.
//!
//! Nothing here mocks anything: every test talks to a real PostgreSQL and to
//! moto over HTTP. `scripts/test` provides:
//! - `USERFEED_TEST_DATABASE_URL`: a maintenance database to create test
//!   databases from (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! - `USERFEED_TEST_AWS_ENDPOINT`: the moto server;
//! - `USERFEED_TEST_AWS_CLI`: the pinned `aws` executable.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};

pub mod xero;

/// A name unique across parallel tests and processes.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}{}x{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos % 100_000
    )
}

fn admin_url() -> String {
    std::env::var("USERFEED_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Runs each named test once per backend, as `name::postgres` and
/// `name::sqlite`: `async fn name(backend: DbBackend)` gets a fresh
/// database of that backend from [`TestDb::of`].
#[macro_export]
macro_rules! each_backend {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[tokio::test]
            async fn postgres() { super::$name(::sea_orm::DbBackend::Postgres).await }
            #[tokio::test]
            async fn sqlite() { super::$name(::sea_orm::DbBackend::Sqlite).await }
        })*
    };
}

/// A fresh, migrated database, dropped when the value is dropped.
pub struct TestDb {
    /// Connection pool to it.
    pub db: DatabaseConnection,
    /// Its URL (for the daemon).
    pub url: String,
    name: String,
}

/// A fingerprint of the schema the migrations build: their sources. A
/// changed migration makes new templates, so no test runs on a stale one.
fn schema_fingerprint() -> String {
    use sha2::{Digest, Sha256};
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("the migrations' sources") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/src");
    let mut files = Vec::new();
    walk(&dir, &mut files);
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        h.update(f.strip_prefix(&dir).unwrap().as_os_str().as_encoded_bytes());
        h.update(std::fs::read(&f).expect("a migration source"));
    }
    h.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The migrated PostgreSQL template every test database is cloned from
/// (`CREATE DATABASE … TEMPLATE`), made once per schema by whichever test
/// process comes first, under an advisory lock; the others wait for it.
/// Cloning takes a fraction of running every migration on each database.
async fn pg_template(admin: &DatabaseConnection) -> anyhow::Result<String> {
    let name = format!("uf_template_{}", schema_fingerprint());
    let exists = |admin: &DatabaseConnection, name: String| {
        let admin = admin.clone();
        async move {
            let sql = format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'");
            let row = admin
                .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
                .await?
                .context("a count")?;
            anyhow::Ok(row.try_get_by_index::<i64>(0)? == 1)
        }
    };
    if exists(admin, name.clone()).await? {
        return Ok(name);
    }
    // One session makes it; the lock is released with the session.
    let lock = Database::connect(admin_url()).await?;
    lock.execute_unprepared("SELECT pg_advisory_lock(727210001)")
        .await?;
    if !exists(&lock, name.clone()).await? {
        let building = format!("{name}_building");
        lock.execute_unprepared(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
            .await?;
        lock.execute_unprepared(&format!("CREATE DATABASE {building}"))
            .await?;
        let url = database_url(&building)?;
        let db = Database::connect(url).await?;
        userfeed::db::migrate(&db).await?;
        db.close().await?;
        // Templates of older schemas go; the rename makes the new one
        // visible whole.
        let old = lock
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT datname FROM pg_database WHERE datname LIKE 'uf\\_template\\_%' \
                 AND datname NOT LIKE '%\\_building'",
            ))
            .await?;
        for row in old {
            let old: String = row.try_get_by_index(0)?;
            let _ = lock
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {old}"))
                .await;
        }
        lock.execute_unprepared(&format!("ALTER DATABASE {building} RENAME TO {name}"))
            .await?;
    }
    lock.close().await.ok();
    Ok(name)
}

/// The URL of database `name` on the test server.
fn database_url(name: &str) -> anyhow::Result<String> {
    let base = admin_url();
    match base.rfind('/') {
        Some(i) => Ok(format!("{}/{}", &base[..i], name)),
        None => bail!("USERFEED_TEST_DATABASE_URL has no database part"),
    }
}

/// A migrated SQLite file every SQLite test database is copied from, made
/// once per schema (written under a temporary name, then renamed).
async fn sqlite_template() -> anyhow::Result<PathBuf> {
    let file = std::env::temp_dir().join(format!("uf_template_{}.db", schema_fingerprint()));
    if file.exists() {
        return Ok(file);
    }
    let dir = std::env::temp_dir().join(unique("uf_template_building_"));
    let db = userfeed::db::connect(&sqlite_config(&dir)).await?;
    userfeed::db::migrate(&db).await?;
    // Everything into the main file, so copying it alone copies it all.
    db.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
        .await?;
    db.close().await?;
    std::fs::rename(dir.join("userfeed.db"), &file)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(file)
}

fn sqlite_config(dir: &std::path::Path) -> userfeed::config::DatabaseConfig {
    userfeed::config::DatabaseConfig {
        url: format!("sqlite:{}", dir.join("userfeed.db").display()),
        max_connections: 4,
        acquire_timeout_seconds: 10,
        sslmode: String::new(),
        sslrootcert: String::new(),
        embedded_default: false,
    }
}

impl TestDb {
    /// Creates a new migrated database, cloned from the migrated template.
    pub async fn new() -> anyhow::Result<Self> {
        let admin = Database::connect(admin_url())
            .await
            .context("connecting to the test PostgreSQL")?;
        let template = pg_template(&admin).await.context("the template database")?;
        let name = unique("uf_test_");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
            .context("creating the test database")?;
        admin.close().await.ok();
        let url = database_url(&name)?;
        let db = Database::connect(url.clone()).await?;
        Ok(TestDb { db, url, name })
    }

    /// Creates and migrates a new database of `backend`: PostgreSQL next to
    /// the maintenance database, or SQLite in a file of its own (the
    /// embedded backend), opened as the daemon opens it.
    pub async fn of(backend: DbBackend) -> anyhow::Result<Self> {
        match backend {
            DbBackend::Sqlite => Self::sqlite().await,
            _ => Self::new().await,
        }
    }

    /// Creates a new migrated SQLite database file, copied from the
    /// migrated template and opened as the daemon opens it.
    pub async fn sqlite() -> anyhow::Result<Self> {
        let template = sqlite_template().await.context("the SQLite template")?;
        let name = unique("uf_test_");
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir)?;
        std::fs::copy(&template, dir.join("userfeed.db"))?;
        let cfg = sqlite_config(&dir);
        let url = cfg.url.clone();
        let db = userfeed::db::connect(&cfg)
            .await
            .context("opening the test SQLite database")?;
        Ok(TestDb { db, url, name })
    }

    /// Creates a new database with no schema at all.
    pub async fn empty() -> anyhow::Result<Self> {
        let name = unique("uf_test_");
        let admin = Database::connect(admin_url())
            .await
            .context("connecting to the test PostgreSQL")?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .context("creating the test database")?;
        admin.close().await.ok();
        let url = database_url(&name)?;
        let db = Database::connect(url.clone()).await?;
        Ok(TestDb { db, url, name })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `sql` on the maintenance database (for statements about this
    /// database as a whole, such as refusing its connections).
    pub async fn admin_exec(&self, sql: &str) {
        let admin = Database::connect(admin_url()).await.expect("admin connect");
        admin
            .execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        admin.close().await.ok();
    }

    /// Runs one scalar query returning an i64.
    pub async fn scalar(&self, sql: &str) -> i64 {
        let row = self
            .db
            .query_one_raw(Statement::from_string(self.db.get_database_backend(), sql))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .expect("a row");
        row.try_get_by_index::<i64>(0)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Runs a query returning text rows (first column joined per row by `|`).
    pub async fn rows(&self, sql: &str) -> Vec<String> {
        let rows = self
            .db
            .query_all_raw(Statement::from_string(self.db.get_database_backend(), sql))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.into_iter()
            .map(|r| {
                r.try_get_by_index::<String>(0)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            })
            .collect()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        if self.url.starts_with("sqlite:") {
            let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&name));
            return;
        }
        // Drop runs outside any async context we can rely on; use a small
        // runtime on a plain thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let admin = Database::connect(admin_url()).await.ok()?;
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()?;
                admin.close().await.ok()
            })
        })
        .join();
    }
}

/// The moto endpoint.
pub fn moto_endpoint() -> String {
    std::env::var("USERFEED_TEST_AWS_ENDPOINT")
        .expect("USERFEED_TEST_AWS_ENDPOINT is not set: run the tests with scripts/test")
}

/// SDK configuration pointed at moto.
pub async fn sdk() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(moto_endpoint())
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await
}

/// A bucket and a queue of its own, wired with an S3 → SQS notification.
pub struct Aws {
    /// S3 client (path style).
    pub s3: aws_sdk_s3::Client,
    /// SQS client.
    pub sqs: aws_sdk_sqs::Client,
    /// Bucket name.
    pub bucket: String,
    /// Queue URL.
    pub queue_url: String,
}

impl Aws {
    /// Creates the bucket, the queue and the notification.
    pub async fn new() -> anyhow::Result<Self> {
        let sdk = sdk().await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let bucket = unique("uf-b-").replace('_', "-");
        let queue_name = unique("uf-q-");
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .context("create bucket")?;
        let queue_url = sqs
            .create_queue()
            .queue_name(&queue_name)
            .send()
            .await
            .context("create queue")?
            .queue_url
            .context("queue url")?;
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await?
            .attributes
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
            .context("queue arn")?;
        use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
        s3.put_bucket_notification_configuration()
            .bucket(&bucket)
            .notification_configuration(
                NotificationConfiguration::builder()
                    .queue_configurations(
                        QueueConfiguration::builder()
                            .queue_arn(arn)
                            .events(Event::S3ObjectCreated)
                            .build()?,
                    )
                    .build(),
            )
            .send()
            .await
            .context("put notification")?;
        Ok(Aws {
            s3,
            sqs,
            bucket,
            queue_url,
        })
    }

    /// Puts an object with the SDK (for integration tests; end-to-end tests
    /// use [`aws_cp`]).
    pub async fn put(&self, key: &str, body: impl Into<Vec<u8>>) -> anyhow::Result<()> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from(body.into()))
            .send()
            .await?;
        Ok(())
    }

    /// Takes every message currently visible on the queue.
    pub async fn drain(&self) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        loop {
            let got = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await?;
            let msgs = got.messages.unwrap_or_default();
            if msgs.is_empty() {
                return Ok(out);
            }
            for m in msgs {
                if let Some(h) = m.receipt_handle {
                    self.sqs
                        .delete_message()
                        .queue_url(&self.queue_url)
                        .receipt_handle(h)
                        .send()
                        .await?;
                }
                out.push(m.body.unwrap_or_default());
            }
        }
    }

    /// Takes every queued message off the queue and returns the bodies of
    /// real `ObjectCreated` notifications (setting up the notification also
    /// queued an `s3:TestEvent`, which this leaves out).
    pub async fn take_object_created(&self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .drain()
            .await?
            .into_iter()
            .filter(|b| b.contains("ObjectCreated"))
            .collect())
    }

    /// Waits until SQS reports no visible or in-flight messages.
    pub async fn wait_drained(&self, timeout: Duration) {
        wait_for("queue drained", timeout, || async move {
            (self.queue_depth().await.ok()? == 0).then_some(())
        })
        .await;
    }

    /// Sends a raw message body to the queue.
    pub async fn send(&self, body: &str) -> anyhow::Result<()> {
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await?;
        Ok(())
    }

    /// Messages visible plus in flight, per SQS's approximate counters.
    pub async fn queue_depth(&self) -> anyhow::Result<i64> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await?
            .attributes
            .unwrap_or_default();
        let n = |k: A| {
            attrs
                .get(&k)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        Ok(n(A::ApproximateNumberOfMessages) + n(A::ApproximateNumberOfMessagesNotVisible))
    }
}

/// Uploads a local file with the real AWS CLI, as a customer would.
pub async fn aws_cp(file: &std::path::Path, bucket: &str, key: &str) -> anyhow::Result<()> {
    aws_cp_with(file, bucket, key, &[]).await
}

/// [`aws_cp`] with more environment for the CLI (e.g. `AWS_CONFIG_FILE`).
pub async fn aws_cp_with(
    file: &std::path::Path,
    bucket: &str,
    key: &str,
    env: &[(&str, &std::ffi::OsStr)],
) -> anyhow::Result<()> {
    let cli = std::env::var("USERFEED_TEST_AWS_CLI").unwrap_or_else(|_| "aws".into());
    let out = tokio::process::Command::new(cli)
        .envs(env.iter().copied())
        .args([
            "--endpoint-url",
            &moto_endpoint(),
            "s3",
            "cp",
            "--only-show-errors",
        ])
        .arg(file)
        .arg(format!("s3://{bucket}/{key}"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .await
        .context("running the aws CLI")?;
    if !out.status.success() {
        bail!("aws s3 cp failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Writes `contents` to a fresh temporary file and returns its path.
pub fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(unique("uf-files-"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// Polls `check` until it returns `Some` or `timeout` passes. This waits for
/// an outcome; it does not assert on timing.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The daemon binary built by `cargo build -p userfeed`.
pub fn daemon_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("debug/userfeed");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p userfeed` (scripts/test does)",
        bin.display()
    );
    bin
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `addr` of the first log line saying `message`, in the JSON
/// (`"addr":"127.0.0.1:4000"`) or the text format (`addr=127.0.0.1:4000`).
pub fn logged_addr(log: &str, message: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains(message))?;
    let after = &line[line.find("addr")? + "addr".len()..];
    let start = after.find(|c: char| c.is_ascii_digit())?;
    let addr: String = after[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    addr.contains(':').then_some(addr)
}

/// A running `userfeed serve` child process; killed when dropped.
pub struct Daemon {
    /// The child.
    pub child: tokio::process::Child,
    /// Its HTTP address.
    pub http: String,
    /// Its log file.
    pub log: PathBuf,
}

/// Environment for a daemon against `db` and `aws`, fast polling for tests.
pub fn daemon_env(db: &TestDb, aws: &Aws) -> Vec<(String, String)> {
    [
        ("USERFEED_DATABASE_URL", db.url.as_str()),
        ("USERFEED_INTAKE_QUEUE_URL", aws.queue_url.as_str()),
        ("USERFEED_INTAKE_WAIT_TIME_SECONDS", "1"),
        ("USERFEED_AWS_ENDPOINT_URL", &moto_endpoint()),
        ("USERFEED_AWS_S3_FORCE_PATH_STYLE", "true"),
        ("USERFEED_JOBS_POLL_INTERVAL_MS", "100"),
        ("USERFEED_JOBS_SHUTDOWN_GRACE_SECONDS", "10"),
        ("USERFEED_LOG_FORMAT", "json"),
        ("USERFEED_LOG_LEVEL", "info"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl Daemon {
    /// Starts `userfeed serve` with `env` (plus a free HTTP port).
    pub async fn start(env: &[(String, String)]) -> anyhow::Result<Self> {
        let log = std::env::temp_dir().join(format!("{}.log", unique("userfeed-daemon-")));
        let log_file = std::fs::File::create(&log)?;
        let child = tokio::process::Command::new(daemon_binary())
            .arg("serve")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            // The system picks the port as the daemon binds it, and the log
            // says which: no other process can take it in between.
            .env("USERFEED_HTTP_BIND", "127.0.0.1:0")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .context("spawning userfeed serve")?;
        let logged = log.clone();
        let http = wait_for(
            "the daemon's HTTP address in its log",
            Duration::from_secs(20),
            || {
                let text = std::fs::read_to_string(&logged).unwrap_or_default();
                async move { logged_addr(&text, "http listening") }
            },
        )
        .await;
        let d = Daemon { child, http, log };
        let addr = d.http.clone();
        wait_for("the daemon's /healthz", Duration::from_secs(20), || {
            let addr = addr.clone();
            async move {
                http_get(&addr, "/healthz")
                    .await
                    .ok()
                    .filter(|(s, _)| *s == 200)
            }
        })
        .await;
        Ok(d)
    }

    /// GET `path` on the daemon's HTTP port.
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        http_get(&self.http, path).await
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("daemon running");
        let ok = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{sig} {pid} failed");
    }

    /// Peak resident memory (VmHWM) in KiB, from /proc.
    pub fn peak_rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("daemon running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }
}

/// A minimal HTTP/1.0 GET over loopback (status, body).
pub async fn http_get(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status")?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// An HTTP/1.0 request over loopback: (status, headers lower-cased, body).
pub async fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<(u16, Vec<(String, String)>, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    s.write_all(body).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").context("no header end")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .context("no status")?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers, body.to_string()))
}

/// Runs the `userfeed` binary with `args` against `db_url`; returns stdout.
pub async fn cli(db_url: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new(daemon_binary())
        .args(args)
        .env("USERFEED_DATABASE_URL", db_url)
        .output()
        .await?;
    if !out.status.success() {
        bail!(
            "userfeed {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// A CSV with a header and `n` generated employees `E{i}` / `user{i}@example.com`.
pub fn employees_csv(n: usize, with_status: bool) -> String {
    let mut s = String::from(if with_status {
        "Employee ID,Work Email,First Name,Last Name,Status\n"
    } else {
        "Employee ID,Work Email,First Name,Last Name\n"
    });
    for i in 0..n {
        if with_status {
            s.push_str(&format!(
                "E{i},user{i}@example.com,First{i},Last{i},Active\n"
            ));
        } else {
            s.push_str(&format!("E{i},user{i}@example.com,First{i},Last{i}\n"));
        }
    }
    s
}

/// The standard mapping for [`employees_csv`] files.
pub const MAPPING: &str = r#"
[columns]
external_id = "Employee ID"
email = "Work Email"
first_name = "First Name"
last_name = "Last Name"
"#;

/// [`MAPPING`] plus managers and groups, under the names HR exports use.
pub const EMPLOYEE_LINK_MAPPING: &str = r#"
[columns]
external_id = "Employee ID"
email = "Work Email"
first_name = "First Name"
last_name = "Last Name"
managers = "Manager Email"
groups = "Groups"
"#;

/// A mapping with managers, groups and roles, matching [`LINK_HEADER`].
pub const LINK_MAPPING: &str = r#"
[columns]
external_id = "ID"
email = "Email"
first_name = "First"
last_name = "Last"
managers = "Managers"
groups = "Groups"
roles = "Roles"
"#;

/// The header of files for [`LINK_MAPPING`].
pub const LINK_HEADER: &str = "ID,Email,First,Last,Managers,Groups,Roles\n";

/// [`MAPPING`] plus the status column.
pub const MAPPING_WITH_STATUS: &str = r#"
[columns]
external_id = "Employee ID"
email = "Work Email"
first_name = "First Name"
last_name = "Last Name"
status = "Status"
"#;

/// A worker pool over `db` reading from moto, for in-process tests.
/// The store is the one the daemon uses on this database.
pub fn workers(
    db: &TestDb,
    aws: &Aws,
    lease: Duration,
    batch_size: usize,
) -> std::sync::Arc<userfeed::jobs::Workers> {
    workers_with(
        db,
        aws,
        lease,
        batch_size,
        userfeed::apply::store_for(&db.db),
    )
}

/// [`workers`] with a given apply store.
pub fn workers_with(
    db: &TestDb,
    aws: &Aws,
    lease: Duration,
    batch_size: usize,
    store: std::sync::Arc<dyn userfeed::apply::ApplyStore>,
) -> std::sync::Arc<userfeed::jobs::Workers> {
    use userfeed::apply::Pipeline;
    std::sync::Arc::new(userfeed::jobs::Workers::new(
        db.db.clone(),
        unique("test-worker-"),
        Pipeline {
            reader: std::sync::Arc::new(userfeed::source::s3::S3Reader::new(aws.s3.clone())),
            store,
            batch_size,
            limits: Default::default(),
        },
        userfeed::jobs::PoolSettings {
            concurrency: 1,
            poll_interval: Duration::from_millis(50),
            lease,
            max_attempts: 3,
        },
        Default::default(),
    ))
}

/// Claims and runs the next upload; returns its id (None when nothing is runnable).
pub async fn run_next(w: &userfeed::jobs::Workers) -> Option<i64> {
    let claimed = w.queue.claim().await.expect("claim")?;
    let id = claimed.lease.upload_id;
    w.process(claimed, &tokio_util::sync::CancellationToken::new(), "test")
        .await;
    Some(id)
}

/// Records every notification waiting on the queue, as intake would.
pub async fn intake_all(db: &TestDb, aws: &Aws) -> Vec<i64> {
    let mut ids = Vec::new();
    for (i, body) in aws.drain().await.expect("drain").into_iter().enumerate() {
        let d = userfeed::intake::Delivery {
            message_id: format!("m{i}"),
            body,
            receive_count: 1,
            ack_handle: String::new(),
        };
        ids.extend(
            userfeed::intake::handle_delivery(&db.db, &d)
                .await
                .expect("record")
                .recorded,
        );
    }
    ids
}

/// Creates a tenant with `mapping` (TOML). Profile fields the mapping names
/// are defined as text fields first (tests of typed fields define their own).
pub async fn tenant(
    db: &TestDb,
    slug: &str,
    bucket: &str,
    key: userfeed::map::MatchKey,
    mapping: &str,
) -> userfeed::tenants::Tenant {
    userfeed::tenants::add(&db.db, slug, bucket, slug, key)
        .await
        .expect("tenant add");
    let m = userfeed::map::Mapping::from_toml(mapping, key).expect("mapping");
    for field in m.profile.keys() {
        userfeed::tenants::add_profile_field(&db.db, slug, field, userfeed::map::FieldType::Text)
            .await
            .expect("profile field");
    }
    userfeed::tenants::set_mapping(&db.db, slug, &m)
        .await
        .expect("mapping set")
}

/// An upload row.
pub async fn upload(db: &TestDb, id: i64) -> userfeed::db::entity::upload::Model {
    use sea_orm::EntityTrait;
    userfeed::db::entity::upload::Entity::find_by_id(id)
        .one(&db.db)
        .await
        .unwrap()
        .expect("upload exists")
}

/// `email|first|last|active|feed_managed` for every user of a tenant, sorted.
pub async fn users_of(db: &TestDb, slug: &str) -> Vec<String> {
    db.rows(&format!(
        "SELECT u.email || '|' || coalesce(u.external_id,'') || '|' || u.first_name || '|' || u.last_name || '|' || \
         CASE WHEN u.active THEN 'active' ELSE 'inactive' END || '|' || CASE WHEN u.feed_managed THEN 'feed' ELSE 'platform' END \
         FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE t.slug = '{slug}' ORDER BY u.email"
    ))
    .await
}

/// Everything of tenant `slug` a file can change, one sorted text row each:
/// its users, their managers, group memberships and roles, by email and
/// group key (ids may differ between databases and tenants).
pub async fn tenant_state(db: &TestDb, slug: &str) -> Vec<String> {
    db.rows(&format!(
        "SELECT 'user ' || u.email || ' ' || coalesce(u.external_id, '-') || ' ' || u.first_name
                || ' active=' || CASE WHEN u.active THEN 'true' ELSE 'false' END
         FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE t.slug = '{slug}'
         UNION ALL
         SELECT 'manager ' || u.email || '<-' || m.email
         FROM user_managers l JOIN users u ON u.id = l.user_id JOIN users m ON m.id = l.manager_id
         JOIN tenants t ON t.id = u.tenant_id WHERE t.slug = '{slug}'
         UNION ALL
         SELECT 'member ' || u.email || ' of ' || g.group_key
         FROM group_memberships gm JOIN users u ON u.id = gm.user_id JOIN groups g ON g.id = gm.group_id
         JOIN tenants t ON t.id = g.tenant_id WHERE t.slug = '{slug}'
         UNION ALL
         SELECT 'role ' || u.email || ' ' || r.role
         FROM user_all_roles r JOIN users u ON u.id = r.user_id
         JOIN tenants t ON t.id = u.tenant_id WHERE t.slug = '{slug}'
         ORDER BY 1"
    ))
    .await
}

/// Row problems of an upload as `line|column|message`.
pub async fn row_errors(db: &TestDb, upload_id: i64) -> Vec<String> {
    db.rows(&format!(
        "SELECT line || '|' || coalesce(column_name,'') || '|' || message FROM upload_row_errors \
         WHERE upload_id = {upload_id} ORDER BY line, id"
    ))
    .await
}

/// An upload's counters: read, created, updated, unchanged, rejected, deactivated.
pub fn upload_counts(u: &userfeed::db::entity::upload::Model) -> [i64; 6] {
    [
        u.rows_read,
        u.rows_created,
        u.rows_updated,
        u.rows_unchanged,
        u.rows_rejected,
        u.rows_deactivated,
    ]
}

/// Gives tenant `tenant_id` a running upload (with a live lease), as if a
/// worker were applying a file of theirs right now.
pub async fn mark_tenant_busy(db: &TestDb, tenant_id: i64) {
    use sea_orm::ConnectionTrait;
    let in_an_hour = match db.db.get_database_backend() {
        DbBackend::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+1 hours')",
        _ => "now() + interval '1 hour'",
    };
    db.db
        .execute_unprepared(&format!(
            "INSERT INTO uploads (tenant_id, bucket, object_key, object_identity, state, \
             lease_token, lease_expires_at) VALUES ({tenant_id}, 'b', 'busy/x.csv', 'x', 'running', 1, \
             {in_an_hour})"
        ))
        .await
        .unwrap();
}

/// A TCP proxy in front of a real service (moto), which a test takes down
/// and brings back. Down closes every open connection and refuses new ones
/// (accepted and closed at once), as a partition or a restarting service
/// looks to a client; the service behind keeps its state, which moto cannot
/// across a restart. Responses flow back at most `bytes_per_s`, so a test
/// can catch a download part-way.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: std::sync::Arc<std::sync::Mutex<(bool, tokio_util::sync::CancellationToken)>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `target` (`host:port`).
    pub async fn start(target: &str, bytes_per_s: usize) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = std::sync::Arc::new(std::sync::Mutex::new((
            true,
            tokio_util::sync::CancellationToken::new(),
        )));
        let (target, shared) = (target.to_string(), state.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (up, cut) = shared.lock().unwrap().clone();
                if !up {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = cut.cancelled() => {}
                        _ = pipe(client, server, bytes_per_s) => {}
                    }
                });
            }
        });
        Ok(Proxy { url, state, task })
    }

    /// Cuts every connection and refuses new ones until [`Proxy::up`].
    pub fn down(&self) {
        let mut s = self.state.lock().unwrap();
        s.0 = false;
        s.1.cancel();
    }

    /// Accepts connections again.
    pub fn up(&self) {
        *self.state.lock().unwrap() = (true, tokio_util::sync::CancellationToken::new());
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.down();
    }
}

async fn pipe(client: tokio::net::TcpStream, server: tokio::net::TcpStream, bytes_per_s: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async move {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
        let _ = sw.shutdown().await;
    };
    let down = async move {
        const CHUNK: usize = 16 * 1024;
        let mut buf = vec![0u8; CHUNK];
        loop {
            match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    let pause = Duration::from_secs_f64(n as f64 / bytes_per_s as f64);
                    tokio::time::sleep(pause).await;
                }
            }
        }
        let _ = cw.shutdown().await;
    };
    tokio::join!(up, down);
}

/// One request a [`Receiver`] got: its headers (lower-case names) and body.
#[derive(Debug, Clone)]
pub struct Received {
    /// Header name (lower case) and value.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl Received {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A local HTTP receiver for webhooks: answers each request with the next
/// status of its script (the last one repeated), and keeps what it got.
pub struct Receiver {
    /// Its address, `127.0.0.1:port`.
    pub addr: String,
    /// What it received, in order.
    pub got: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
    _stop: tokio_util::sync::DropGuard,
}

impl Receiver {
    /// Listens on `addr` (e.g. `127.0.0.1:0`), answering with `statuses`;
    /// a status of 0 never answers (a receiver that hangs).
    pub async fn start(addr: &str, statuses: &[u16]) -> Receiver {
        Self::start_with(addr, statuses, &[]).await
    }

    /// Like [`Receiver::start`], adding `headers` to every answer (a
    /// redirect's `Location`).
    pub async fn start_with(addr: &str, statuses: &[u16], headers: &[(&str, &str)]) -> Receiver {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let extra: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = tokio_util::sync::CancellationToken::new();
        let (seen, statuses, halt) = (got.clone(), statuses.to_vec(), stop.clone());
        tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let (mut s, _) = tokio::select! {
                    () = halt.cancelled() => return,
                    r = listener.accept() => r.unwrap(),
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let (head_end, length) = loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break (None, 0);
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        break (Some(i + 4), len);
                    }
                };
                let Some(start) = head_end else { continue };
                while buf.len() < start + length {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..start]).to_string();
                let headers = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
                    .collect();
                let body = String::from_utf8_lossy(&buf[start..]).to_string();
                let n = {
                    let mut g = seen.lock().unwrap();
                    g.push(Received { headers, body });
                    g.len()
                };
                let status = statuses[(n - 1).min(statuses.len() - 1)];
                if status == 0 {
                    // Never answers: the connection is held open until the
                    // receiver stops.
                    held.push(s);
                    continue;
                }
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 {status} X\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        Receiver {
            addr,
            got,
            _stop: stop.drop_guard(),
        }
    }

    /// What it received so far.
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// A moto server of the test's own with IAM policy enforcement on, as real
/// AWS checks every call. moto lets the first `INITIAL_NO_AUTH_ACTION_COUNT`
/// calls through unauthenticated: exactly the three that make an admin
/// user, its policy and its key; every later call is checked against the
/// caller's IAM policies. A server of its own because enforcement is global
/// to a server and the other tests use moto's accept-anything default.
pub struct EnforcedAws {
    /// The server's endpoint.
    pub endpoint: String,
    /// The admin's access key ID and secret.
    pub admin: (String, String),
    child: std::process::Child,
}

impl Drop for EnforcedAws {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the real AWS CLI answered.
#[derive(Debug)]
pub struct CliOutcome {
    /// Whether it exited 0.
    pub ok: bool,
    /// Its standard error (AWS's refusal, when there is one).
    pub stderr: String,
    /// Its standard output.
    pub stdout: String,
}

impl EnforcedAws {
    /// Starts the server and makes the admin identity.
    pub async fn start() -> anyhow::Result<Self> {
        let venv = std::env::var("USERFEED_TEST_VENV")
            .context("USERFEED_TEST_VENV is not set: run the tests with scripts/test")?;
        let port = free_port();
        let log = std::fs::File::create(std::env::temp_dir().join(format!("moto-iam-{port}.log")))?;
        let child = std::process::Command::new(format!("{venv}/bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting moto_server")?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut aws = EnforcedAws {
            endpoint,
            admin: (String::new(), String::new()),
            child,
        };
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(http_get(&addr, "/moto-api/").await, Ok((200, _))) {
            if Instant::now() > deadline {
                bail!("moto_server with IAM enforcement did not start on {addr}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The three unauthenticated calls.
        let iam = aws_sdk_iam::Client::new(&aws.sdk_as("bootstrap", "bootstrap").await);
        iam.create_user().user_name("userfeed-admin").send().await?;
        iam.put_user_policy()
            .user_name("userfeed-admin")
            .policy_name("everything")
            .policy_document(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
            )
            .send()
            .await?;
        let key = iam
            .create_access_key()
            .user_name("userfeed-admin")
            .send()
            .await?
            .access_key
            .context("admin key")?;
        aws.admin = (key.access_key_id, key.secret_access_key);
        Ok(aws)
    }

    /// SDK configuration for this server as the given key.
    pub async fn sdk_as(&self, key_id: &str, secret: &str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                key_id, secret, None, None, "test",
            ))
            .load()
            .await
    }

    /// SDK configuration as the admin.
    pub async fn admin_sdk(&self) -> aws_config::SdkConfig {
        self.sdk_as(&self.admin.0, &self.admin.1).await
    }

    /// Runs the real AWS CLI against this server as the given key.
    pub async fn cli(&self, key_id: &str, secret: &str, args: &[&str]) -> CliOutcome {
        let cli = std::env::var("USERFEED_TEST_AWS_CLI").unwrap_or_else(|_| "aws".into());
        let out = tokio::process::Command::new(cli)
            .args(["--endpoint-url", &self.endpoint])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", key_id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            // The suite's own (fake) session token would be signed with
            // the tenant's key and make every call fail for the wrong reason.
            .env_remove("AWS_SESSION_TOKEN")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .await
            .expect("running the aws CLI");
        CliOutcome {
            ok: out.status.success(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        }
    }
}
