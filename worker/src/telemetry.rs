//! Logs and metrics.
//!
//! Each observable point is one typed event in [`events`]: emitting it writes
//! the log line and updates the metric together, so the two never drift
//! apart. Metric names are constants here and catalogued in
//! `docs/metrics.md`. No metric carries a tenant label: with thousands of
//! tenants that would explode series cardinality; per-tenant detail lives in
//! the upload history.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogConfig, LogFormat};

/// Messages received from the intake queue.
pub const SQS_MESSAGES_RECEIVED: &str = "userfeed_sqs_messages_received_total";
/// Messages deleted from the intake queue (recorded or deliberately dropped).
pub const SQS_MESSAGES_DELETED: &str = "userfeed_sqs_messages_deleted_total";
/// Intake records or messages ignored, by `reason`.
pub const INTAKE_IGNORED: &str = "userfeed_intake_ignored_total";
/// Intake failures, by `stage` (`receive`, `record`, `delete`).
pub const INTAKE_ERRORS: &str = "userfeed_intake_errors_total";
/// Uploads recorded from notifications, by `result` (`new`, `duplicate`).
pub const UPLOADS_RECORDED: &str = "userfeed_uploads_recorded_total";
/// Upload attempts ended, by `outcome`.
pub const UPLOADS_FINISHED: &str = "userfeed_uploads_finished_total";
/// Rows processed, by `result`.
pub const ROWS: &str = "userfeed_rows_total";
/// Wall time of an upload attempt, by `outcome`.
pub const UPLOAD_DURATION: &str = "userfeed_upload_duration_seconds";
/// Wall time of each phase of an upload attempt, by `phase` (`stage`,
/// `merge`, `link`, `finish`): where the time of slow uploads goes.
pub const APPLY_PHASE_DURATION: &str = "userfeed_apply_phase_seconds";
/// Uploads waiting to run (all pods; sampled from the database).
pub const UPLOADS_QUEUED: &str = "userfeed_uploads_queued";
/// Uploads running (all pods; sampled from the database).
pub const UPLOADS_RUNNING: &str = "userfeed_uploads_running";
/// Age of the oldest queued upload in seconds (0 when none).
pub const OLDEST_QUEUED_AGE: &str = "userfeed_oldest_queued_upload_age_seconds";
/// Leases this process lost to another worker (it was too slow or paused).
pub const LEASES_LOST: &str = "userfeed_leases_lost_total";
/// 1 while this process is ready (database reachable, intake running).
pub const READY: &str = "userfeed_ready";

/// Starts logging. JSON or text per configuration; `RUST_LOG` overrides the level.
pub fn init_logging(cfg: &LogConfig) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(cfg.level.clone()));
    let registry = tracing_subscriber::registry().with(filter);
    let res = match cfg.format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = res;
}

/// Installs the Prometheus recorder and describes every metric.
pub fn init_metrics() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(UPLOAD_DURATION.to_string()),
            &[
                0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
            ],
        )?
        .set_buckets_for_metric(
            Matcher::Full(APPLY_PHASE_DURATION.to_string()),
            &[
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
            ],
        )?
        .install_recorder()?;
    describe();
    Ok(handle)
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        SQS_MESSAGES_RECEIVED,
        "Messages received from the intake queue."
    );
    describe_counter!(
        SQS_MESSAGES_DELETED,
        "Messages deleted from the intake queue."
    );
    describe_counter!(
        INTAKE_IGNORED,
        "Notifications or records ignored, by reason."
    );
    describe_counter!(INTAKE_ERRORS, "Intake failures, by stage.");
    describe_counter!(
        UPLOADS_RECORDED,
        "Uploads recorded, by result (new or duplicate)."
    );
    describe_counter!(UPLOADS_FINISHED, "Upload attempts ended, by outcome.");
    describe_counter!(ROWS, "CSV rows processed, by result.");
    describe_histogram!(
        UPLOAD_DURATION,
        Unit::Seconds,
        "Wall time of an upload attempt."
    );
    describe_histogram!(
        APPLY_PHASE_DURATION,
        Unit::Seconds,
        "Wall time of each phase of an upload attempt."
    );
    describe_gauge!(UPLOADS_QUEUED, "Uploads waiting to run.");
    describe_gauge!(UPLOADS_RUNNING, "Uploads running.");
    describe_gauge!(
        OLDEST_QUEUED_AGE,
        Unit::Seconds,
        "Age of the oldest queued upload."
    );
    describe_counter!(LEASES_LOST, "Leases this process lost to another worker.");
    describe_gauge!(READY, "1 while this process is ready.");
}

/// Typed events: each logs and counts in one call.
pub mod events {
    use metrics::{counter, gauge, histogram};
    use tracing::{debug, error, info, warn};

    use super::*;

    /// A receive call returned messages.
    pub fn messages_received(count: usize) {
        if count > 0 {
            debug!(count, "received messages");
        }
        counter!(SQS_MESSAGES_RECEIVED).increment(count as u64);
    }

    /// Messages were deleted from the queue.
    pub fn messages_deleted(count: usize) {
        counter!(SQS_MESSAGES_DELETED).increment(count as u64);
    }

    /// A message or record was dropped on purpose.
    pub fn intake_ignored(reason: &'static str, detail: &str) {
        match reason {
            "test_event" => info!(reason, "ignored S3 test event"),
            _ => warn!(reason, detail, "ignored notification"),
        }
        counter!(INTAKE_IGNORED, "reason" => reason).increment(1);
    }

    /// A message that still could not be recorded after `receives`
    /// receives is deleted (`intake.max_receives`).
    pub fn intake_poison(receives: u32, error: &dyn std::fmt::Display, body: &str) {
        let body: String = body.chars().take(512).collect();
        error!(
            reason = "poison",
            receives,
            %error,
            body,
            "deleting a notification that could not be recorded after intake.max_receives receives"
        );
        counter!(INTAKE_IGNORED, "reason" => "poison").increment(1);
    }

    /// An intake step failed; it will be retried.
    pub fn intake_error(stage: &'static str, error: &dyn std::fmt::Display) {
        warn!(stage, %error, "intake step failed; will retry");
        counter!(INTAKE_ERRORS, "stage" => stage).increment(1);
    }

    /// An upload row was recorded (or was already there).
    pub fn upload_recorded(tenant: &str, upload_id: Option<i64>, bucket: &str, key: &str) {
        match upload_id {
            Some(id) => {
                info!(tenant, upload_id = id, bucket, key, "recorded upload");
                counter!(UPLOADS_RECORDED, "result" => "new").increment(1);
            }
            None => {
                info!(
                    tenant,
                    bucket, key, "duplicate notification; upload already recorded"
                );
                counter!(UPLOADS_RECORDED, "result" => "duplicate").increment(1);
            }
        }
    }

    /// How an upload attempt ended.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Outcome {
        /// Applied completely.
        Succeeded,
        /// Ended for good with a reason.
        Failed,
        /// Given back to the queue (shutdown).
        HandedBack,
        /// Given back to retry after a transient error.
        Retrying,
        /// Another worker holds it now; this attempt wrote nothing more.
        LeaseLost,
        /// Applied, but its deactivations wait for approval.
        Held,
        /// Skipped: a newer full list of the same tenant was queued.
        Superseded,
    }

    impl Outcome {
        fn as_str(self) -> &'static str {
            match self {
                Outcome::Succeeded => "succeeded",
                Outcome::Failed => "failed",
                Outcome::HandedBack => "handed_back",
                Outcome::Retrying => "retrying",
                Outcome::LeaseLost => "lease_lost",
                Outcome::Held => "held",
                Outcome::Superseded => "superseded",
            }
        }
    }

    /// An upload attempt ended.
    pub fn upload_finished(outcome: Outcome, seconds: f64, reason: Option<&str>) {
        let o = outcome.as_str();
        match outcome {
            Outcome::Succeeded => info!(outcome = o, seconds, "upload finished"),
            Outcome::Failed => warn!(outcome = o, seconds, reason, "upload failed"),
            Outcome::Held => warn!(
                outcome = o,
                seconds, reason, "upload held: deactivations wait for approval"
            ),
            Outcome::Superseded => info!(outcome = o, "upload superseded"),
            Outcome::LeaseLost => {
                error!(
                    outcome = o,
                    seconds, "lease lost to another worker; stopped writing"
                );
                counter!(LEASES_LOST).increment(1);
            }
            _ => info!(outcome = o, seconds, reason, "upload handed back"),
        }
        counter!(UPLOADS_FINISHED, "outcome" => o).increment(1);
        histogram!(UPLOAD_DURATION, "outcome" => o).record(seconds);
    }

    /// A phase of an upload attempt ended (`stage` includes reading and
    /// parsing the file, which overlap it).
    pub fn phase_finished(phase: &'static str, seconds: f64) {
        debug!(phase, seconds, "apply phase finished");
        histogram!(APPLY_PHASE_DURATION, "phase" => phase).record(seconds);
    }

    /// Row counts of a finished upload.
    pub fn rows(created: u64, updated: u64, unchanged: u64, rejected: u64, deactivated: u64) {
        for (result, n) in [
            ("created", created),
            ("updated", updated),
            ("unchanged", unchanged),
            ("rejected", rejected),
            ("deactivated", deactivated),
        ] {
            counter!(ROWS, "result" => result).increment(n);
        }
    }

    /// Queue depth sampled from the database.
    pub fn queue_depth(queued: i64, running: i64, oldest_age_s: f64) {
        gauge!(UPLOADS_QUEUED).set(queued as f64);
        gauge!(UPLOADS_RUNNING).set(running as f64);
        gauge!(OLDEST_QUEUED_AGE).set(oldest_age_s);
    }

    /// Readiness changed or was re-evaluated.
    pub fn ready(is_ready: bool) {
        gauge!(READY).set(if is_ready { 1.0 } else { 0.0 });
    }
}
