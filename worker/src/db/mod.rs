//! Database access: connection, migrations, entities and named queries.
//!
//! Everything goes through sea-orm's [`DatabaseConnection`]. Statements that
//! only PostgreSQL can run (the claim query's `SKIP LOCKED`, later `COPY`)
//! are named constants in [`queries`], each with the reason it looks the way
//! it does.

use std::time::Duration;

use sea_orm::sqlx;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgSslMode};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use userfeed_migrations::MigratorTrait;

use crate::config::DatabaseConfig;

pub mod entity;
#[cfg(unix)]
pub mod nodelay;
pub mod queries;

/// Why the pool could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The TLS handshake failed or TLS was required and refused: a wrong or
    /// missing CA (`verify-ca`, `verify-full`), a host name that the
    /// certificate does not name (`verify-full`), or a server without TLS.
    #[error(
        "TLS to the database failed (sslmode={mode}): {detail}; check database.sslmode and database.sslrootcert"
    )]
    Tls {
        /// The effective `sslmode`.
        mode: String,
        /// What rustls or the server said.
        detail: String,
    },
    /// Anything else: unreachable, refused, authentication, ...
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// The PostgreSQL connect options: the URL, then `database.sslmode` and
/// `database.sslrootcert` when set (they win over the URL's).
fn pg_options(cfg: &DatabaseConfig) -> Result<PgConnectOptions, DbErr> {
    let mut pg: PgConnectOptions = cfg
        .url
        .parse()
        .map_err(|e: sqlx::Error| DbErr::Custom(format!("database.url: {e}")))?;
    if !cfg.sslmode.is_empty() {
        let mode = cfg
            .sslmode
            .parse::<PgSslMode>()
            .map_err(|e| DbErr::Custom(format!("database.sslmode: {e}")))?;
        pg = pg.ssl_mode(mode);
    }
    if !cfg.sslrootcert.is_empty() {
        pg = pg.ssl_root_cert(&cfg.sslrootcert);
    }
    Ok(pg)
}

fn mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// Opens a SQLite database file (the embedded backend), creating it and its
/// folder when missing, and migrating it: WAL mode, so readers (the CLI) never block the
/// daemon's writer and the other way round; a busy timeout, so a writer
/// waits its turn for the single write lock instead of failing; foreign
/// keys on, which the schema's cascades rely on.
async fn connect_sqlite(cfg: &DatabaseConfig) -> Result<DatabaseConnection, ConnectError> {
    use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    let sqlite: SqliteConnectOptions = cfg
        .url
        .parse()
        .map_err(|e: sqlx::Error| DbErr::Custom(format!("database.url: {e}")))?;
    let file = sqlite.get_filename().to_path_buf();
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            DbErr::Custom(format!(
                "creating the database folder {}: {e}",
                dir.display()
            ))
        })?;
    }
    let sqlite = sqlite
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // WAL with NORMAL loses at most the last commits on power loss, never
        // consistency; an upload interrupted that way is run again.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(cfg.acquire_timeout_seconds.max(5)))
        .foreign_keys(true);
    // The schema is brought up to date over one connection of its own
    // before the pool opens. A pooled connection that had read the schema
    // before a migration altered a table prepares statements against the
    // old columns (SQLite re-prepares on the next step, but sqlx keeps the
    // columns of the first prepare): an insert returning its row then
    // missed the new column ("Missing value for column"), in about one
    // test run in fifty. Later `migrate` calls find nothing to do.
    let pool_sqlite = sqlite.clone();
    let mut one = ConnectOptions::new(cfg.url.clone());
    one.max_connections(1)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(cfg.acquire_timeout_seconds))
        .sqlx_logging(false);
    one.map_sqlx_sqlite_opts(move |_| sqlite.clone());
    let single = Database::connect(one).await?;
    userfeed_migrations::Migrator::up(&single, None).await?;
    single.close().await?;

    let mut opts = ConnectOptions::new(cfg.url.clone());
    opts.max_connections(cfg.max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(cfg.acquire_timeout_seconds))
        .sqlx_logging(false);
    opts.map_sqlx_sqlite_opts(move |_| pool_sqlite.clone());
    Ok(Database::connect(opts).await?)
}

/// The file of an embedded (SQLite) database URL; `None` for PostgreSQL.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    use sea_orm::sqlx::sqlite::SqliteConnectOptions;
    if !url.starts_with("sqlite:") {
        return None;
    }
    let opts: SqliteConnectOptions = url.parse().ok()?;
    Some(opts.get_filename().to_path_buf())
}

/// Opens the connection pool (over TLS as `sslmode` says). Nothing is
/// logged about the URL beyond its redacted form.
pub async fn connect(cfg: &DatabaseConfig) -> Result<DatabaseConnection, ConnectError> {
    if cfg.url.starts_with("sqlite:") {
        return connect_sqlite(cfg).await;
    }
    let pg = pg_options(cfg)?;
    let mode = mode_name(pg.get_ssl_mode());
    let port = pg.get_port();
    let mut opts = ConnectOptions::new(cfg.url.clone());
    opts.max_connections(cfg.max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(cfg.acquire_timeout_seconds))
        .connect_timeout(Duration::from_secs(cfg.acquire_timeout_seconds))
        .sqlx_logging(false);
    // The options parsed above, overrides included, replace what sea-orm
    // parses from the URL.
    opts.map_sqlx_postgres_opts(move |_| pg.clone());
    #[cfg(unix)]
    {
        // See `nodelay`: a workaround for sqlx 0.9.0, measured on `COPY`.
        opts.map_sqlx_postgres_pool_opts(move |pool| {
            pool.after_connect(move |_conn, _meta| {
                Box::pin(async move {
                    nodelay::set_on_sockets_to(port);
                    Ok(())
                })
            })
        });
    }
    #[cfg(not(unix))]
    let _ = port;
    Database::connect(opts).await.map_err(|e| classify(e, mode))
}

/// Names TLS failures as such. sqlx reports a certificate that does not
/// verify as an I/O error wrapping rustls' error, and a failed handshake or
/// a server refusing the TLS that `require` asked for as its own TLS error.
fn classify(err: DbErr, mode: &str) -> ConnectError {
    use sea_orm::RuntimeErr;
    let tls_detail = match &err {
        DbErr::Conn(RuntimeErr::SqlxError(e)) => match e.as_ref() {
            sqlx::Error::Tls(e) => Some(e.to_string()),
            sqlx::Error::Io(io) => io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .map(|e| e.to_string()),
            _ => None,
        },
        _ => None,
    };
    match tls_detail {
        Some(detail) => ConnectError::Tls {
            mode: mode.to_string(),
            detail,
        },
        None => ConnectError::Db(err),
    }
}

/// Key of the PostgreSQL advisory lock that migrations run under: "ufmigrat"
/// in ASCII, so it cannot collide with a small number another tool picks.
pub const MIGRATION_LOCK_KEY: i64 = 0x7566_6d69_6772_6174;

/// Applies pending migrations; a no-op when the schema is current.
///
/// sea-orm-migration takes no lock of its own, and every pod's init
/// container runs `userfeed migrate` at once during a rollout
/// (deploy/kubernetes), so the migrations run under a session-level
/// advisory lock: the first process applies them, the others wait, then
/// find nothing pending. The lock is held on a connection of its own, and
/// PostgreSQL releases it if the process dies.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    use sea_orm::sqlx::Executor;
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        // Advisory locks are PostgreSQL's; other backends run them unlocked.
        return userfeed_migrations::Migrator::up(db, None).await;
    }
    let pool = db.get_postgres_connection_pool();
    let mut lock = pool.acquire().await.map_err(sqlx_conn_err)?;
    lock.execute(sqlx::query("SELECT pg_advisory_lock($1)").bind(MIGRATION_LOCK_KEY))
        .await
        .map_err(sqlx_conn_err)?;
    let applied = userfeed_migrations::Migrator::up(db, None).await;
    let unlocked = lock
        .execute(sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATION_LOCK_KEY))
        .await;
    if unlocked.is_err() {
        // The session ends with the connection, and the lock with it.
        lock.detach();
    }
    applied
}

fn sqlx_conn_err(e: sqlx::Error) -> DbErr {
    DbErr::Conn(sea_orm::RuntimeErr::SqlxError(std::sync::Arc::new(e)))
}

/// Names of migrations not yet applied (reads only; creates nothing).
pub async fn pending_migrations(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    Ok(
        userfeed_migrations::Migrator::get_pending_migrations_read_only(db)
            .await?
            .iter()
            .map(|m| m.name().to_string())
            .collect(),
    )
}

/// True when a statement lost a race to another writer of the same unique
/// row (SQLSTATE 23505). The apply statements insert exact sets computed
/// from their snapshot (users, and in whole-file mode links, without `ON
/// CONFLICT`), so a row someone else added in between is a unique
/// violation; retrying the upload later re-reads and finds it there.
/// (Retries stop at `jobs.max_attempts`, so a violation that is not a race
/// still fails the upload in the end.)
pub fn is_unique_race(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// True when the error means "the database could not be reached or the
/// connection broke", i.e. worth retrying later rather than failing an upload.
pub fn is_transient(err: &DbErr) -> bool {
    use sea_orm::{RuntimeErr, sqlx};
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match e.as_ref() {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Protocol(_) => true,
                sqlx::Error::Database(db) => {
                    // 57P01 admin_shutdown (pg_terminate_backend, restart),
                    // 08xxx connection exceptions, 40001/40P01 serialization
                    // failure and deadlock, 53300 too many connections.
                    let code = db.code().unwrap_or_default();
                    code.starts_with("08")
                        || code.starts_with("57P")
                        || code == "40001"
                        || code == "40P01"
                        || code == "53300"
                }
                _ => false,
            }
        }
        _ => false,
    }
}
