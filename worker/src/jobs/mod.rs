//! Jobs: workers claim uploads from the queue of record and run them.
//!
//! Each worker loop holds at most one upload at a time; `jobs.concurrency`
//! loops run per process, and any number of processes share the database.
//! While an upload runs, a heartbeat renews its lease; if renewal finds the
//! lease gone, the attempt stops at the next batch boundary (and the fence
//! would refuse its writes anyway).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{DatabaseConnection, EntityTrait};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, warn};

use crate::apply::{Finish, Pipeline, Progress, Stops, UploadError};
use crate::db::entity::upload;
use crate::health::Health;
use crate::jobs::lease::retry_delay;
use crate::telemetry::events::{self, Outcome};
use crate::tenants;

pub mod lease;
pub mod queue;
pub mod retry;
pub mod state;

pub use lease::Lease;
pub use queue::Queue;
pub use state::{Claimed, UploadState};

/// Settings of the worker pool.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Worker loops in this process.
    pub concurrency: usize,
    /// Idle poll interval.
    pub poll_interval: Duration,
    /// Lease length.
    pub lease: Duration,
    /// Attempts before giving up.
    pub max_attempts: i32,
}

impl PoolSettings {
    /// The pool `cfg` configures (`[jobs]`).
    pub fn from_config(cfg: &crate::config::Config) -> PoolSettings {
        PoolSettings {
            concurrency: cfg.jobs.concurrency,
            poll_interval: Duration::from_millis(cfg.jobs.poll_interval_ms),
            lease: cfg.lease(),
            max_attempts: cfg.jobs.max_attempts,
        }
    }
}

/// What every worker shares.
pub struct Workers {
    /// Database pool.
    pub db: DatabaseConnection,
    /// Claims and lease operations.
    pub queue: Queue,
    /// Runs an attempt.
    pub pipeline: Pipeline,
    /// Settings.
    pub settings: PoolSettings,
    /// Liveness.
    pub health: Arc<Health>,
}

impl Workers {
    /// The one way to build a pool: its workers claim as `owner`, under
    /// leases of `settings.lease`, and run uploads through `pipeline`.
    pub fn new(
        db: DatabaseConnection,
        owner: impl Into<String>,
        pipeline: Pipeline,
        settings: PoolSettings,
        health: Arc<Health>,
    ) -> Self {
        Workers {
            queue: Queue::new(db.clone(), owner, settings.lease),
            db,
            pipeline,
            settings,
            health,
        }
    }

    /// Runs the pool until `shutdown` fires and every worker has handed back
    /// or finished its upload.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..self.settings.concurrency {
            let me = self.clone();
            let stop = shutdown.clone();
            set.spawn(async move { me.worker_loop(i, stop).await });
        }
        while set.join_next().await.is_some() {}
    }

    async fn worker_loop(&self, index: usize, shutdown: CancellationToken) {
        let name = format!("worker-{index}");
        let name = name.as_str();
        // A worker ticks between uploads and at every heartbeat.
        self.health
            .register(name, self.settings.lease * 3 + self.settings.poll_interval);
        let mut idle_errors = 0u32;
        while !shutdown.is_cancelled() {
            self.health.tick(name);
            match self.queue.claim().await {
                Ok(Some(claimed)) => {
                    idle_errors = 0;
                    self.process(claimed, &shutdown, name).await;
                }
                Ok(None) => {
                    idle_errors = 0;
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(self.settings.poll_interval) => {}
                    }
                }
                Err(e) => {
                    idle_errors += 1;
                    warn!(error = %e, "claim failed; database unavailable?");
                    let delay = self.settings.poll_interval * idle_errors.min(30);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        self.health.deregister(name);
    }

    /// Runs an upload this process recorded already claimed (`userfeed
    /// import`, `userfeed xero import`) to its end, here, with the same
    /// attempt, fence and state changes as a daemon's worker. One attempt
    /// only: a transient failure fails it at once, since the person who
    /// started it is there to run it again and no daemon can read the file.
    pub async fn run_here(
        db: &DatabaseConnection,
        pipeline: Pipeline,
        claimed: Claimed,
        lease: Duration,
    ) {
        let workers = Workers::new(
            db.clone(),
            format!("import:{}", std::process::id()),
            pipeline,
            PoolSettings {
                concurrency: 1,
                poll_interval: Duration::from_secs(1),
                lease,
                max_attempts: 1,
            },
            Default::default(),
        );
        workers
            .process(claimed, &CancellationToken::new(), "import")
            .await;
    }

    /// Runs one claimed upload to an outcome and records it.
    pub async fn process(&self, claimed: Claimed, shutdown: &CancellationToken, loop_name: &str) {
        let span = tracing::info_span!(
            "upload",
            upload_id = claimed.lease.upload_id,
            tenant = tracing::field::Empty,
            attempt = claimed.attempts
        );
        self.process_inner(claimed, shutdown, loop_name)
            .instrument(span)
            .await
    }

    async fn process_inner(&self, claimed: Claimed, shutdown: &CancellationToken, loop_name: &str) {
        let started = Instant::now();
        let lease = claimed.lease;
        let mut progress = Progress::default();

        if claimed.attempts > self.settings.max_attempts {
            let reason = format!(
                "gave up after {} attempts; last problem: {}",
                claimed.attempts - 1,
                claimed
                    .previous_error
                    .as_deref()
                    .unwrap_or("the worker stopped without reporting (crash or kill)")
            );
            self.record(
                Err(UploadError::Fail(reason)),
                &lease,
                &progress,
                claimed.attempts,
                started,
            )
            .await;
            return;
        }

        // Every file is a full list: when a newer one of this tenant is
        // already waiting, this one is redundant.
        match self
            .queue
            .supersede_if_newer(&lease, claimed.tenant_id)
            .await
        {
            Ok(Some(newer)) => {
                info!(
                    superseded_by = newer,
                    "a newer upload of this tenant is queued; skipping this one"
                );
                events::upload_finished(Outcome::Superseded, started.elapsed().as_secs_f64(), None);
                return;
            }
            Ok(None) => {}
            Err(e) => {
                let err = UploadError::Transient(e.to_string());
                self.record(Err(err), &lease, &progress, claimed.attempts, started)
                    .await;
                return;
            }
        }

        let loaded = async {
            let up = upload::Entity::find_by_id(lease.upload_id)
                .one(&self.db)
                .await
                .map_err(|e| UploadError::Transient(e.to_string()))?
                .ok_or_else(|| UploadError::Fail("upload row vanished".into()))?;
            let tenant = tenants::by_id(&self.db, claimed.tenant_id)
                .await
                .map_err(|e| UploadError::Transient(e.to_string()))?;
            Ok::<_, UploadError>((up, tenant))
        }
        .await;
        let (up, tenant) = match loaded {
            Ok(x) => x,
            Err(e) => {
                self.record(Err(e), &lease, &progress, claimed.attempts, started)
                    .await;
                return;
            }
        };
        tracing::Span::current().record("tenant", tenant.slug.as_str());
        info!(key = %up.object_key, "upload started");

        let stops = Stops {
            shutdown: shutdown.clone(),
            lease_lost: CancellationToken::new(),
        };
        let heartbeat = {
            let queue = self.queue.clone();
            let lost = stops.lease_lost.clone();
            let every = self.settings.lease / 3;
            let health = self.health.clone();
            let loop_name = loop_name.to_string();
            tokio::spawn(
                async move {
                    loop {
                        tokio::time::sleep(every).await;
                        health.tick(&loop_name);
                        match queue.renew(&lease).await {
                            Ok(true) => {}
                            Ok(false) => {
                                lost.cancel();
                                break;
                            }
                            // Keep trying: the lease may still be valid when
                            // the database comes back.
                            Err(e) => warn!(error = %e, "lease renewal failed"),
                        }
                    }
                }
                .in_current_span(),
            )
        };
        let result = self
            .pipeline
            .run(&lease, &up, &tenant, &stops, &mut progress)
            .await;
        heartbeat.abort();
        self.record(result, &lease, &progress, claimed.attempts, started)
            .await;
    }

    async fn record(
        &self,
        result: Result<Finish, UploadError>,
        lease: &Lease,
        progress: &Progress,
        attempts: i32,
        started: Instant,
    ) {
        let secs = started.elapsed().as_secs_f64();
        let outcome = match result {
            Ok(finish) => {
                events::rows(
                    progress.created,
                    progress.updated,
                    progress.unchanged,
                    progress.rejected,
                    progress.deactivated,
                );
                info!(
                    rows_read = progress.rows_read,
                    created = progress.created,
                    updated = progress.updated,
                    unchanged = progress.unchanged,
                    deactivated = progress.deactivated,
                    rejected = progress.rejected,
                    "upload applied"
                );
                match finish {
                    Finish::Succeeded => events::upload_finished(Outcome::Succeeded, secs, None),
                    Finish::Held { reason, .. } => {
                        events::upload_finished(Outcome::Held, secs, Some(&reason))
                    }
                }
                return;
            }
            Err(UploadError::Fail(reason)) => self
                .queue
                .fail(lease, &reason, progress)
                .await
                .map(|ok| (ok, Outcome::Failed, Some(reason))),
            Err(UploadError::Transient(reason)) if attempts >= self.settings.max_attempts => {
                let reason = format!("gave up after {attempts} attempts; last problem: {reason}");
                self.queue
                    .fail(lease, &reason, progress)
                    .await
                    .map(|ok| (ok, Outcome::Failed, Some(reason)))
            }
            Err(UploadError::Transient(reason)) => self
                .queue
                .hand_back(lease, retry_delay(attempts), false, Some(&reason))
                .await
                .map(|ok| (ok, Outcome::Retrying, Some(reason))),
            Err(UploadError::Interrupted) => self
                .queue
                .hand_back(lease, Duration::ZERO, true, None)
                .await
                .map(|ok| (ok, Outcome::HandedBack, None)),
            Err(UploadError::LeaseLost) => Ok((true, Outcome::LeaseLost, None)),
        };
        match outcome {
            Ok((true, o, reason)) => events::upload_finished(o, secs, reason.as_deref()),
            Ok((false, ..)) => events::upload_finished(Outcome::LeaseLost, secs, None),
            // The lease will expire and another worker will retry.
            Err(e) => {
                warn!(error = %e, "could not record the upload's outcome; its lease will expire and it will be retried")
            }
        }
    }
}
