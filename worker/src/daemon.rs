//! `userfeed serve`: wires intake, workers, metrics sampling and HTTP
//! together, and shuts them down in order on SIGTERM.
//!
//! Shutdown order: stop intake (an in-flight receive is abandoned; its
//! messages reappear after the visibility timeout) and stop claiming; running
//! uploads hand their lease back at the next batch boundary; after
//! `jobs.shutdown_grace_seconds` the process exits regardless (any upload
//! still held is re-claimed when its lease runs out). HTTP stops last, so
//! probes answer throughout.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::apply::Pipeline;
use crate::config::{Config, redact_url};
use crate::health::Health;
use crate::http::{self, HttpState};
use crate::intake::{self, IntakeSource, sqs::SqsSource};
use crate::jobs::{self, PoolSettings, Queue, Workers};
use crate::source::s3::S3Reader;
use crate::telemetry::{self, events};

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn serve(cfg: Config, migrate: bool) -> anyhow::Result<()> {
    let metrics = telemetry::init_metrics().context("installing the metrics recorder")?;
    info!(database = %redact_url(&cfg.database.url), queue = %cfg.intake.queue_url, "starting");

    let db = connect_with_retry(&cfg).await?;
    if migrate {
        crate::db::migrate(&db)
            .await
            .context("applying migrations")?;
    } else {
        // Refuse to run against an old schema rather than fail every query.
        let pending = crate::db::pending_migrations(&db)
            .await
            .context("reading the schema version")?;
        anyhow::ensure!(
            pending.is_empty(),
            "the database schema is not up to date (pending: {}); run `userfeed migrate` first",
            pending.join(", ")
        );
    }

    let health = Arc::new(Health::default());
    let shutdown = CancellationToken::new();
    let http_stop = CancellationToken::new();

    let listener = tokio::net::TcpListener::bind(cfg.http.bind)
        .await
        .with_context(|| format!("binding http.bind {}", cfg.http.bind))?;
    info!(addr = %listener.local_addr()?, "http listening");
    let http_task = tokio::spawn(http::serve(
        listener,
        HttpState {
            db: db.clone(),
            health: health.clone(),
            metrics: Some(metrics),
        },
        http_stop.clone(),
    ));

    let sdk = crate::aws::sdk_config(&cfg.aws).await;
    let reader = Arc::new(S3Reader::new(crate::aws::s3_client(&sdk, &cfg.aws)));

    let intake_task = if cfg.intake.queue_url.is_empty() {
        warn!("intake.queue_url is empty: intake disabled, only recorded uploads will run");
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
    let workers = Arc::new(Workers {
        db: db.clone(),
        queue: Queue::new(db.clone(), owner, cfg.lease()),
        pipeline: Pipeline {
            reader,
            store: crate::apply::store_for(&db),
            batch_size: cfg.apply.batch_size,
            limits: cfg.limits,
        },
        settings: PoolSettings {
            concurrency: cfg.jobs.concurrency,
            poll_interval: Duration::from_millis(cfg.jobs.poll_interval_ms),
            lease: cfg.lease(),
            max_attempts: cfg.jobs.max_attempts,
        },
        health: health.clone(),
    });
    let workers_task = tokio::spawn(workers.run(shutdown.clone()));
    let sampler = tokio::spawn(sample_queue(db.clone(), shutdown.clone()));

    wait_for_signal().await;
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
        let _ = workers_task.await;
    })
    .await;
    if drained.is_err() {
        warn!(
            "grace period over with work still running; its leases will expire and another worker will resume it"
        );
    }
    sampler.abort();
    http_stop.cancel();
    let _ = http_task.await;
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

async fn connect_with_retry(cfg: &Config) -> anyhow::Result<DatabaseConnection> {
    let mut delay = Duration::from_millis(500);
    loop {
        match crate::db::connect(&cfg.database).await {
            Ok(db) => return Ok(db),
            Err(e) => {
                warn!(error = %e, retry_in_s = delay.as_secs_f64(), "database not reachable yet");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = wait_for_signal() => anyhow::bail!("stopped before the database became reachable"),
                }
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Samples queue depth into gauges every 10 s.
async fn sample_queue(db: DatabaseConnection, stop: CancellationToken) {
    loop {
        match jobs::queue::stats(&db).await {
            Ok((queued, running, age)) => events::queue_depth(queued, running, age),
            Err(e) => warn!(error = %e, "sampling queue depth failed"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
    }
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
