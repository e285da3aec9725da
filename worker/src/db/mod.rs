//! Database access: connection, migrations, entities and named queries.
//!
//! Everything goes through sea-orm's [`DatabaseConnection`]. Statements that
//! only PostgreSQL can run (the claim query's `SKIP LOCKED`, later `COPY`)
//! are named constants in [`queries`], each with the reason it looks the way
//! it does.

use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use userfeed_migrations::MigratorTrait;

use crate::config::DatabaseConfig;

pub mod entity;
#[cfg(unix)]
pub mod nodelay;
pub mod queries;

/// Opens the connection pool. Nothing is logged about the URL beyond its
/// redacted form.
pub async fn connect(cfg: &DatabaseConfig) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(cfg.url.clone());
    opts.max_connections(cfg.max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(cfg.acquire_timeout_seconds))
        .connect_timeout(Duration::from_secs(cfg.acquire_timeout_seconds))
        .sqlx_logging(false);
    #[cfg(unix)]
    if let Some(pg) = cfg
        .url
        .starts_with("postgres")
        .then(|| {
            cfg.url
                .parse::<sea_orm::sqlx::postgres::PgConnectOptions>()
                .ok()
        })
        .flatten()
    {
        // See `nodelay`: a workaround for sqlx 0.9.0, measured on `COPY`.
        let port = pg.get_port();
        opts.map_sqlx_postgres_pool_opts(move |pool| {
            pool.after_connect(move |_conn, _meta| {
                Box::pin(async move {
                    nodelay::set_on_sockets_to(port);
                    Ok(())
                })
            })
        });
    }
    Database::connect(opts).await
}

/// Applies pending migrations; a no-op when the schema is current.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    userfeed_migrations::Migrator::up(db, None).await
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
