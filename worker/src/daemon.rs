//! `userfeed serve`: wires intake, workers, metrics sampling and HTTP
//! together, and shuts them down in order on SIGTERM.
//!
//! Shutdown order: stop intake (an in-flight receive is abandoned; its
//! messages reappear after the visibility timeout) and stop claiming; running
//! uploads hand their lease back at the next batch boundary; after
//! `jobs.shutdown_grace_seconds` the process exits regardless (any upload
//! still held is re-claimed when its lease runs out). HTTP stops last, so
//! probes answer throughout.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use backon::BackoffBuilder;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::apply::Pipeline;
use crate::config::{Config, redact_url};
use crate::health::Health;
use crate::http::{self, HttpState};
use crate::intake::folder::DropFolder;
use crate::intake::{self, IntakeSource, sqs::SqsSource};
use crate::jobs::{self, PoolSettings, Workers};
use crate::source::ReaderBySource;
use crate::source::local::{DropFolderReader, FolderReader};
use crate::source::s3::S3Reader;
use crate::telemetry::{self, events};
use crate::upload::UploadSource;

/// Runs the daemon until SIGTERM or SIGINT.
///
/// The HTTP listener binds first: `/healthz` answers as soon as the process
/// runs, and `/readyz` says why the daemon is not ready while it waits for
/// the database and a current schema, retrying with backoff. A pod started
/// during a database outage (or before its release's migration ran) is
/// therefore live and unready, never restarted into a crash loop.
pub async fn serve(cfg: Config, migrate: bool) -> anyhow::Result<()> {
    run(cfg, migrate, cancelled_on_signal(), None).await
}

/// Where a running daemon can be found, sent once it is ready.
#[derive(Debug, Clone)]
pub struct Started {
    /// The address `/healthz`, `/readyz` and `/metrics` answer on.
    pub http: std::net::SocketAddr,
    /// The drop folder, when it is watched.
    pub drop_folder: Option<std::path::PathBuf>,
}

/// [`serve`], stopping when `signalled` is cancelled instead of on a
/// signal, and telling `started` where it runs once intake and workers are
/// up (`userfeed demo` runs the daemon this way).
pub async fn run(
    cfg: Config,
    migrate: bool,
    signalled: CancellationToken,
    started: Option<tokio::sync::oneshot::Sender<Started>>,
) -> anyhow::Result<()> {
    cfg.database.check_not_embedded_in_kubernetes()?;
    // A signing key that cannot be read stops the start, naming the key.
    let notify_key = cfg.notify.key()?;
    let metrics = telemetry::init_metrics().context("installing the metrics recorder")?;
    events::build_info();
    info!(database = %redact_url(&cfg.database.url), queue = %cfg.intake.queue_url, "starting");

    let health = Arc::new(Health::default());
    health.set_starting(Some("database unreachable".into()));
    let drop_folder = if cfg.drop_enabled() {
        Some(Arc::new(
            DropFolder::open(&cfg.drop).context("opening the drop folder (drop.folder)")?,
        ))
    } else {
        None
    };
    let shutdown = CancellationToken::new();
    let http_stop = CancellationToken::new();
    let ready_db = Arc::new(OnceLock::new());

    let api = if cfg.api.tokens_file.is_empty() {
        None
    } else {
        let tokens =
            crate::web::auth::Tokens::from_file(std::path::Path::new(&cfg.api.tokens_file))?;
        if tokens.is_empty() {
            warn!("api.tokens_file lists no token: the admin API stays off");
            None
        } else {
            let listener = tokio::net::TcpListener::bind(cfg.api.bind)
                .await
                .with_context(|| format!("binding api.bind {}", cfg.api.bind))?;
            info!(addr = %listener.local_addr()?, "admin API listening");
            Some((listener, Arc::new(tokens)))
        }
    };
    let listener = tokio::net::TcpListener::bind(cfg.http.bind)
        .await
        .with_context(|| format!("binding http.bind {}", cfg.http.bind))?;
    let http_addr = listener.local_addr()?;
    info!(addr = %http_addr, "http listening");
    let http_task = tokio::spawn(http::serve(
        listener,
        HttpState {
            db: ready_db.clone(),
            health: health.clone(),
            metrics: Some(metrics),
        },
        cfg.http.hygiene(),
        http_stop.clone(),
    ));

    let Some(db) = start_database(&cfg, migrate, &health, &signalled).await else {
        info!("stopped before the database was ready");
        http_stop.cancel();
        let _ = http_task.await;
        return Ok(());
    };
    let _ = ready_db.set(db.clone());
    let sdk = crate::aws::sdk_config(&cfg.aws).await;
    let iam = crate::aws::credentials(&sdk, &cfg);
    let xero = match crate::xero::XeroService::new(&cfg.xero) {
        Ok(x) => Some(x),
        Err(e) => {
            info!(reason = %e, "Xero imports are off");
            None
        }
    };
    if let Some((_, tokens)) = &api {
        // Sessions of tokens taken out of the file end for good.
        match crate::web::session::end_removed(&db, tokens).await {
            Ok(0) => {}
            Ok(n) => info!(
                sessions = n,
                "ended the screen sessions of removed API tokens"
            ),
            Err(e) => warn!(error = %e, "could not end the sessions of removed API tokens"),
        }
    }
    let api_task = api.map(|(listener, tokens)| {
        tokio::spawn(crate::web::serve(
            listener,
            crate::web::WebState {
                service: crate::service::Service::new(db.clone()),
                db: db.clone(),
                tokens,
                timeout: Duration::from_secs(cfg.api.request_timeout_seconds),
                limiter: crate::web::rate_limiter(cfg.api.rate_per_second, cfg.api.rate_burst),
                guard: crate::web::guard::Guard::from_config(&cfg.api, &cfg.http),
                notify: Arc::new(cfg.notify.clone()),
                session: crate::web::session::SessionSettings::from_config(&cfg.api),
                xero: xero.clone(),
                credentials: Arc::new(crate::web::CredentialsState {
                    iam: iam.clone(),
                    region: cfg.aws.region.clone(),
                    grace: Duration::from_secs_f64(cfg.credentials.rotation_grace_hours * 3600.0),
                }),
                files: Arc::new(crate::web::spool::Files {
                    pace: crate::web::spool::Pace {
                        grace: Duration::from_secs(cfg.http.header_timeout_seconds),
                        min_bytes_per_second: cfg.api.min_upload_bytes_per_second,
                    },
                    deliver: crate::intake::manual::ManualUploads {
                        s3: (!cfg.intake.queue_url.is_empty())
                            .then(|| crate::aws::s3_client(&sdk, &cfg.aws)),
                        drop: drop_folder.clone(),
                    },
                    ..crate::web::spool::Files::new(cfg.limits, cfg.apply.batch_size)
                }),
            }
            .wired(),
            http_stop.clone(),
        ))
    });
    health.set_starting(None);
    info!("database ready; starting intake and workers");

    let reader = Arc::new(
        ReaderBySource::new()
            .with(
                UploadSource::S3,
                Arc::new(S3Reader::new(crate::aws::s3_client(&sdk, &cfg.aws))),
            )
            .with(UploadSource::Folder, Arc::new(DropFolderReader))
            // A failed `userfeed import` retried with `uploads retry`.
            .with(UploadSource::Local, Arc::new(FolderReader))
            // Xero imports: their files are kept in the database.
            .with(
                UploadSource::Xero,
                Arc::new(crate::source::stored::StoredReader::new(db.clone())),
            ),
    );

    let folder_task = drop_folder
        .clone()
        .map(|folder| tokio::spawn(folder.run(db.clone(), health.clone(), shutdown.clone())));
    let intake_task = if cfg.intake.queue_url.is_empty() {
        if folder_task.is_none() {
            warn!(
                "intake.queue_url is empty and the drop folder is off: only recorded uploads will run"
            );
        }
        None
    } else {
        let source: Arc<dyn IntakeSource> =
            Arc::new(SqsSource::new(crate::aws::sqs_client(&sdk), &cfg.intake));
        Some(tokio::spawn(intake::run(
            db.clone(),
            source,
            health.clone(),
            shutdown.clone(),
            cfg.intake.max_receives,
        )))
    };

    let owner = format!(
        "{}:{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "userfeed".into()),
        std::process::id()
    );
    let workers = Arc::new(Workers::new(
        db.clone(),
        owner,
        Pipeline::for_config(reader, &db, &cfg),
        PoolSettings::from_config(&cfg),
        health.clone(),
    ));
    let workers_task = tokio::spawn(workers.run(shutdown.clone()));
    let sampler = tokio::spawn(sample_queue(db.clone(), shutdown.clone()));
    let deliverer = tokio::spawn(
        crate::notify::Deliverer::new(db.clone(), cfg.notify.clone(), notify_key)
            .run(shutdown.clone()),
    );
    // Rotated-out upload keys are deleted when their grace ends, by any pod.
    let sweeper = iam.map(|iam| tokio::spawn(iam.run_sweeper(db.clone(), shutdown.clone())));
    if let Some(tx) = started {
        let _ = tx.send(Started {
            http: http_addr,
            drop_folder: drop_folder.as_ref().map(|f| f.root().to_path_buf()),
        });
    }

    signalled.cancelled().await;
    info!(
        grace_s = cfg.jobs.shutdown_grace_seconds,
        "shutdown requested; stopping intake and claims"
    );
    shutdown.cancel();

    let grace = Duration::from_secs(cfg.jobs.shutdown_grace_seconds);
    let deadline = tokio::time::Instant::now() + grace;
    let drained = tokio::time::timeout_at(deadline, async {
        if let Some(t) = intake_task {
            let _ = t.await;
        }
        if let Some(t) = folder_task {
            let _ = t.await;
        }
        let _ = workers_task.await;
        // A call in flight finishes (bounded by notify.timeout_seconds) and
        // is recorded; one cut off is retried by the next daemon.
        let _ = deliverer.await;
    })
    .await;
    if drained.is_err() {
        warn!(
            "grace period over with work still running; its leases will expire and another worker will resume it"
        );
    }
    sampler.abort();
    if let Some(s) = sweeper {
        s.abort();
    }
    http_stop.cancel();
    let _ = http_task.await;
    if let Some(t) = api_task {
        let _ = t.await;
    }
    // Closing the pool waits for every checked-out connection; one held by
    // a statement still running when the grace period ran out would hold
    // the exit past it. So the close gets what is left of the grace period
    // (at least a moment, for the idle connections); a statement still
    // running then has its transaction rolled back when the process ends.
    let left = deadline.max(tokio::time::Instant::now() + Duration::from_millis(50));
    if tokio::time::timeout_at(left, db.close()).await.is_err() {
        warn!("a database statement was still running at exit; its transaction is rolled back");
    }
    info!("stopped");
    Ok(())
}

/// Connects and brings the schema to where this binary needs it (applying
/// migrations with `--migrate`, else waiting for `userfeed migrate`),
/// retrying with capped exponential backoff and logging every attempt.
/// `None` when a signal arrived first.
async fn start_database(
    cfg: &Config,
    migrate: bool,
    health: &Health,
    signalled: &CancellationToken,
) -> Option<DatabaseConnection> {
    let mut backoff = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build();
    let mut db: Option<DatabaseConnection> = None;
    for attempt in 1u64.. {
        let problem = match &db {
            None => match crate::db::connect(&cfg.database).await {
                Ok(pool) => {
                    db = Some(pool);
                    continue;
                }
                Err(e) => {
                    let reason = match e {
                        crate::db::ConnectError::Tls { .. } => "database unreachable (TLS failed)",
                        crate::db::ConnectError::Db(_) => "database unreachable",
                    };
                    (reason.to_string(), e.to_string())
                }
            },
            Some(pool) => match schema_ready(pool, migrate).await {
                Ok(()) => return db,
                Err(p) => p,
            },
        };
        let delay = backoff.next().unwrap_or(Duration::from_secs(30));
        warn!(
            attempt,
            reason = %problem.0,
            error = %problem.1,
            retry_in_s = delay.as_secs_f64(),
            "not ready yet"
        );
        health.set_starting(Some(problem.0));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = signalled.cancelled() => return None,
        }
    }
    unreachable!("the attempt counter does not run out")
}

/// `userfeed migrate --wait`: connects and migrates with the daemon's
/// start-up backoff, logging each attempt, until it succeeds or a signal
/// arrives.
pub async fn migrate_when_reachable(cfg: &Config) -> anyhow::Result<()> {
    let signalled = cancelled_on_signal();
    let db = start_database(cfg, true, &Health::default(), &signalled)
        .await
        .context("stopped before the migrations could run")?;
    db.close().await.ok();
    Ok(())
}

/// `Ok` when the schema is current. The error is (the reason `/readyz`
/// gives, the detail for the log).
async fn schema_ready(db: &DatabaseConnection, migrate: bool) -> Result<(), (String, String)> {
    let unreachable = |e: sea_orm::DbErr| ("database unreachable".to_string(), e.to_string());
    // The embedded backend serves one host: nothing else would migrate it.
    let migrate = migrate || db.get_database_backend() == sea_orm::DbBackend::Sqlite;
    if migrate {
        return crate::db::migrate(db).await.map_err(|e| {
            if crate::db::is_transient(&e) {
                unreachable(e)
            } else {
                ("migration failed".to_string(), e.to_string())
            }
        });
    }
    // Refuse to run against an old schema rather than fail every query; the
    // release's migration (deploy/kubernetes) may still be running.
    let pending = crate::db::pending_migrations(db)
        .await
        .map_err(unreachable)?;
    if pending.is_empty() {
        return Ok(());
    }
    Err((
        "schema out of date".to_string(),
        format!(
            "pending migrations: {}; run `userfeed migrate`",
            pending.join(", ")
        ),
    ))
}

/// Samples queue depth and held uploads into gauges every 10 s.
async fn sample_queue(db: DatabaseConnection, stop: CancellationToken) {
    loop {
        match jobs::queue::stats(&db).await {
            Ok(stats) => events::queue_depth(&stats),
            Err(e) => warn!(error = %e, "sampling queue depth failed"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
    }
}

/// A token cancelled at the first SIGTERM or SIGINT.
fn cancelled_on_signal() -> CancellationToken {
    let signalled = CancellationToken::new();
    tokio::spawn({
        let signalled = signalled.clone();
        async move {
            wait_for_signal().await;
            signalled.cancel();
        }
    });
    signalled
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
