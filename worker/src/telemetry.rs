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
/// Uploads held for approval (all pods; sampled from the database): each
/// needs a person to approve or reject it.
pub const UPLOADS_HELD: &str = "userfeed_uploads_held";
/// How long the oldest held upload has waited for a decision, in seconds.
pub const OLDEST_HELD_AGE: &str = "userfeed_oldest_held_upload_age_seconds";
/// Unix time of intake's last fully successful cycle (receive, record,
/// delete); set to the start time when intake starts. A persistent intake
/// fault shows as this falling behind `time()`, whatever the backoff.
pub const INTAKE_LAST_SUCCESS: &str = "userfeed_intake_last_success_timestamp_seconds";
/// Files of the drop folder, by `outcome`: `taken` (recorded as an upload),
/// `set_aside` (no tenant), `processed`, `failed` (moved there once their
/// upload ended), `expired` (removed by retention).
pub const DROP_FILES: &str = "userfeed_drop_files_total";
/// Webhook delivery attempts and their outcome.
pub const NOTIFICATIONS: &str = "userfeed_notifications_total";
/// Admin API and screen requests refused to protect the service, by reason.
pub const API_REFUSED: &str = "userfeed_api_refused_total";
/// Always 1; its labels say which build runs (`version`, `commit`).
pub const BUILD_INFO: &str = "userfeed_build_info";

/// The commit this binary was built from (`build.rs`), `unknown` outside git.
pub const COMMIT: &str = env!("USERFEED_BUILD_COMMIT");

/// Every metric this process exposes, for the check that `docs/metrics.md`
/// catalogues each one.
pub const ALL_METRICS: [&str; 20] = [
    SQS_MESSAGES_RECEIVED,
    SQS_MESSAGES_DELETED,
    INTAKE_IGNORED,
    INTAKE_ERRORS,
    UPLOADS_RECORDED,
    UPLOADS_FINISHED,
    ROWS,
    UPLOAD_DURATION,
    APPLY_PHASE_DURATION,
    UPLOADS_QUEUED,
    UPLOADS_RUNNING,
    OLDEST_QUEUED_AGE,
    LEASES_LOST,
    READY,
    UPLOADS_HELD,
    OLDEST_HELD_AGE,
    INTAKE_LAST_SUCCESS,
    DROP_FILES,
    NOTIFICATIONS,
    BUILD_INFO,
];

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
        // Colours only for a person at a terminal, never into a file or pipe.
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(std::io::stderr),
            )
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
    preset_zero();
    Ok(handle)
}

/// Registers every labelled counter at zero for each of its known label
/// values. A series that first appears at 1 is invisible to `increase()`
/// and `rate()` (there is no earlier sample to compare with), so without
/// this a pod's first failure, poison message or lease loss would never
/// fire an alert.
fn preset_zero() {
    use metrics::counter;
    for reason in events::IgnoreReason::ALL {
        counter!(INTAKE_IGNORED, "reason" => reason.as_str()).increment(0);
    }
    for stage in events::IntakeStage::ALL {
        counter!(INTAKE_ERRORS, "stage" => stage.as_str()).increment(0);
    }
    for result in events::RECORD_RESULTS {
        counter!(UPLOADS_RECORDED, "result" => result).increment(0);
    }
    for outcome in events::Outcome::ALL {
        counter!(UPLOADS_FINISHED, "outcome" => outcome.as_str()).increment(0);
    }
    for result in events::ROW_RESULTS {
        counter!(ROWS, "result" => result).increment(0);
    }
    for outcome in events::DropOutcome::ALL {
        counter!(DROP_FILES, "outcome" => outcome.as_str()).increment(0);
    }
    for outcome in events::NotifyOutcome::ALL {
        counter!(NOTIFICATIONS, "outcome" => outcome.as_str()).increment(0);
    }
    for reason in events::ApiRefusal::ALL {
        counter!(API_REFUSED, "reason" => reason.as_str()).increment(0);
    }
    counter!(SQS_MESSAGES_RECEIVED).increment(0);
    counter!(SQS_MESSAGES_DELETED).increment(0);
    counter!(LEASES_LOST).increment(0);
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
    describe_gauge!(UPLOADS_HELD, "Uploads held for approval.");
    describe_gauge!(
        OLDEST_HELD_AGE,
        Unit::Seconds,
        "How long the oldest held upload has waited."
    );
    describe_gauge!(
        INTAKE_LAST_SUCCESS,
        Unit::Seconds,
        "Unix time of intake's last successful receive, record and delete."
    );
    describe_counter!(DROP_FILES, "Drop-folder files, by outcome.");
    describe_counter!(
        NOTIFICATIONS,
        "Webhook notifications handled, by outcome of the attempt."
    );
    describe_gauge!(BUILD_INFO, "Always 1; the labels name the build.");
    describe_counter!(
        API_REFUSED,
        "Admin API and screen requests refused to protect the service (rate limits, failed sign-ins, busy previews), by reason."
    );
}

/// Typed events: each logs and counts in one call.
pub mod events {
    use metrics::{counter, gauge, histogram};
    use tracing::{debug, error, info, warn};

    use super::*;
    use crate::upload::UploadState;

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

    /// Why a message or record was dropped on purpose.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum IgnoreReason {
        /// S3's `s3:TestEvent`, sent when notifications are configured.
        TestEvent,
        /// The body is not an S3 notification at all.
        NotS3Event,
        /// An S3 event other than `ObjectCreated:*` (e.g. a removal).
        NotObjectCreated,
        /// A malformed record inside an S3 notification.
        InvalidRecord,
        /// No tenant owns the bucket and key prefix.
        NoTenant,
        /// A key with control characters or `.`/`..` segments.
        UnsafeKey,
        /// A "folder" (a key ending in `/`), as consoles create them.
        FolderMarker,
        /// Could not be recorded after `intake.max_receives` receives.
        Poison,
        /// A second event for a write another event stands for
        /// ([`crate::intake::event::EventRecord::Shadow`]).
        ShadowEvent,
    }

    impl IgnoreReason {
        /// Every reason, for pre-set counters.
        pub const ALL: [IgnoreReason; 9] = [
            IgnoreReason::TestEvent,
            IgnoreReason::NotS3Event,
            IgnoreReason::NotObjectCreated,
            IgnoreReason::InvalidRecord,
            IgnoreReason::NoTenant,
            IgnoreReason::UnsafeKey,
            IgnoreReason::FolderMarker,
            IgnoreReason::Poison,
            IgnoreReason::ShadowEvent,
        ];

        /// The `reason` label.
        pub fn as_str(self) -> &'static str {
            match self {
                IgnoreReason::TestEvent => "test_event",
                IgnoreReason::NotS3Event => "not_s3_event",
                IgnoreReason::NotObjectCreated => "not_object_created",
                IgnoreReason::InvalidRecord => "invalid_record",
                IgnoreReason::NoTenant => "no_tenant",
                IgnoreReason::UnsafeKey => "unsafe_key",
                IgnoreReason::FolderMarker => "folder_marker",
                IgnoreReason::Poison => "poison",
                IgnoreReason::ShadowEvent => "shadow_event",
            }
        }
    }

    /// The intake step that failed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum IntakeStage {
        /// Receiving from the queue.
        Receive,
        /// Recording uploads in the database.
        Record,
        /// Deleting handled messages.
        Delete,
        /// Scanning, taking or moving drop-folder files.
        Folder,
    }

    impl IntakeStage {
        /// Every stage, for pre-set counters.
        pub const ALL: [IntakeStage; 4] = [
            IntakeStage::Receive,
            IntakeStage::Record,
            IntakeStage::Delete,
            IntakeStage::Folder,
        ];

        /// The `stage` label.
        pub fn as_str(self) -> &'static str {
            match self {
                IntakeStage::Receive => "receive",
                IntakeStage::Record => "record",
                IntakeStage::Delete => "delete",
                IntakeStage::Folder => "folder",
            }
        }
    }

    /// What became of a drop-folder file.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum DropOutcome {
        /// Complete, moved to `processing/` and recorded as an upload.
        Taken,
        /// No tenant owns its folder: moved to `_unrouted/`.
        SetAside,
        /// Its upload ended applied (or superseded): moved to `processed/`.
        Processed,
        /// Its upload failed: moved to `failed/`.
        Failed,
        /// Removed from `processed/` or `failed/` by retention.
        Expired,
    }

    impl DropOutcome {
        /// Every outcome, for pre-set counters.
        pub const ALL: [DropOutcome; 5] = [
            DropOutcome::Taken,
            DropOutcome::SetAside,
            DropOutcome::Processed,
            DropOutcome::Failed,
            DropOutcome::Expired,
        ];

        /// The `outcome` label.
        pub fn as_str(self) -> &'static str {
            match self {
                DropOutcome::Taken => "taken",
                DropOutcome::SetAside => "set_aside",
                DropOutcome::Processed => "processed",
                DropOutcome::Failed => "failed",
                DropOutcome::Expired => "expired",
            }
        }
    }

    /// A drop-folder file moved on (see [`DropOutcome`]); `tenant` is empty
    /// for a file set aside.
    pub fn drop_file(outcome: DropOutcome, tenant: &str, path: &std::path::Path) {
        let outcome = outcome.as_str();
        let path = path.display().to_string();
        match outcome {
            "set_aside" => warn!(
                outcome,
                path, "drop-folder file has no tenant; set aside in _unrouted/"
            ),
            "expired" => debug!(outcome, path, "drop-folder file removed by retention"),
            _ => info!(outcome, tenant, path, "drop-folder file"),
        }
        counter!(DROP_FILES, "outcome" => outcome).increment(1);
    }

    /// What one turn of the webhook deliverer did with a notification.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum NotifyOutcome {
        /// The receiver answered 2xx.
        Delivered,
        /// The attempt failed; it will be tried again later.
        Retried,
        /// The attempt failed and the notification is too old to retry.
        GaveUp,
        /// No webhook URL (or no signing key) for it: nothing sent.
        Skipped,
    }

    impl NotifyOutcome {
        /// Every outcome, for pre-set counters.
        pub const ALL: [NotifyOutcome; 4] = [
            NotifyOutcome::Delivered,
            NotifyOutcome::Retried,
            NotifyOutcome::GaveUp,
            NotifyOutcome::Skipped,
        ];

        /// The `outcome` label.
        pub fn as_str(self) -> &'static str {
            match self {
                NotifyOutcome::Delivered => "delivered",
                NotifyOutcome::Retried => "retried",
                NotifyOutcome::GaveUp => "gave_up",
                NotifyOutcome::Skipped => "skipped",
            }
        }
    }

    /// A webhook notification was handled (see [`NotifyOutcome`]). The
    /// detail names a status or error, never a secret or the body.
    pub fn notification(outcome: NotifyOutcome, id: i64, upload_id: i64, detail: &str) {
        let outcome = outcome.as_str();
        match outcome {
            "delivered" => info!(outcome, notification = id, upload_id, "webhook delivered"),
            "gave_up" => warn!(
                outcome,
                notification = id,
                upload_id,
                detail,
                "webhook not delivered in time; gave up"
            ),
            _ => info!(outcome, notification = id, upload_id, detail, "webhook"),
        }
        counter!(NOTIFICATIONS, "outcome" => outcome).increment(1);
    }

    /// Why the API or the screens refused a request to protect the service.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum ApiRefusal {
        /// A token went past its rate limit.
        TokenRate,
        /// A client address without a valid token went past its limit.
        AddressRate,
        /// A client address tried to sign in too often.
        SignInRate,
        /// A sign-in with a token that is not valid.
        SignInFailed,
        /// A preview while the tenant's or every preview slot was taken.
        PreviewBusy,
    }

    impl ApiRefusal {
        /// Every reason, for pre-set counters.
        pub const ALL: [ApiRefusal; 5] = [
            ApiRefusal::TokenRate,
            ApiRefusal::AddressRate,
            ApiRefusal::SignInRate,
            ApiRefusal::SignInFailed,
            ApiRefusal::PreviewBusy,
        ];

        /// The `reason` label.
        pub fn as_str(self) -> &'static str {
            match self {
                ApiRefusal::TokenRate => "token_rate",
                ApiRefusal::AddressRate => "address_rate",
                ApiRefusal::SignInRate => "sign_in_rate",
                ApiRefusal::SignInFailed => "sign_in_failed",
                ApiRefusal::PreviewBusy => "preview_busy",
            }
        }
    }

    /// A request was refused (see [`ApiRefusal`]); `who` is a token's label
    /// or a client address. Counted every time; logged at most once per
    /// reason every 10 s, with how many were refused since the last line,
    /// so a flood of refusals cannot flood the log.
    pub fn api_refused(reason: ApiRefusal, who: &str) {
        use std::sync::Mutex;
        use std::time::{Duration, Instant};
        static LAST: Mutex<Vec<(ApiRefusal, Instant, u64)>> = Mutex::new(Vec::new());
        counter!(API_REFUSED, "reason" => reason.as_str()).increment(1);
        let now = Instant::now();
        let due = {
            let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
            match last.iter_mut().find(|(r, ..)| *r == reason) {
                Some((_, at, n)) if now.duration_since(*at) < Duration::from_secs(10) => {
                    *n += 1;
                    None
                }
                Some((_, at, n)) => {
                    let since = std::mem::take(n) + 1;
                    *at = now;
                    Some(since)
                }
                None => {
                    last.push((reason, now, 0));
                    Some(1)
                }
            }
        };
        if let Some(refused) = due {
            warn!(
                reason = reason.as_str(),
                who, refused, "admin API refusing requests (one line per reason every 10 s)"
            );
        }
    }

    /// The `result` labels of the recorded-uploads counter: a new upload, or
    /// a redelivery of one already recorded.
    pub const RECORD_RESULTS: [&str; 2] = ["new", "duplicate"];

    /// The `result` labels of the row counter.
    pub const ROW_RESULTS: [&str; 5] =
        ["created", "updated", "unchanged", "rejected", "deactivated"];

    /// The process started: says which build it is.
    pub fn build_info() {
        let version = env!("CARGO_PKG_VERSION");
        info!(version, commit = COMMIT, "userfeed build");
        gauge!(BUILD_INFO, "version" => version, "commit" => COMMIT).set(1.0);
    }

    /// A message or record was dropped on purpose.
    pub fn intake_ignored(reason: IgnoreReason, detail: &str) {
        let reason = reason.as_str();
        match reason {
            "test_event" => info!(reason, "ignored S3 test event"),
            "shadow_event" => info!(reason, detail, "ignored a second event for one write"),
            _ => warn!(reason, detail, "ignored notification"),
        }
        counter!(INTAKE_IGNORED, "reason" => reason).increment(1);
    }

    /// Intake finished a cycle with nothing failing (an empty receive
    /// counts), or has just started.
    pub fn intake_cycle_ok() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        gauge!(INTAKE_LAST_SUCCESS).set(now);
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
        counter!(INTAKE_IGNORED, "reason" => IgnoreReason::Poison.as_str()).increment(1);
    }

    /// An intake step failed; it will be retried.
    pub fn intake_error(stage: IntakeStage, error: &dyn std::fmt::Display) {
        let stage = stage.as_str();
        warn!(stage, %error, "intake step failed; will retry");
        counter!(INTAKE_ERRORS, "stage" => stage).increment(1);
    }

    /// An upload row was recorded (or was already there).
    pub fn upload_recorded(tenant: &str, upload_id: Option<i64>, bucket: &str, key: &str) {
        match upload_id {
            Some(id) => {
                info!(tenant, upload_id = id, bucket, key, "recorded upload");
                counter!(UPLOADS_RECORDED, "result" => RECORD_RESULTS[0]).increment(1);
            }
            None => {
                info!(
                    tenant,
                    bucket, key, "duplicate notification; upload already recorded"
                );
                counter!(UPLOADS_RECORDED, "result" => RECORD_RESULTS[1]).increment(1);
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
        /// Every outcome, for pre-set counters.
        pub const ALL: [Outcome; 7] = [
            Outcome::Succeeded,
            Outcome::Failed,
            Outcome::HandedBack,
            Outcome::Retrying,
            Outcome::LeaseLost,
            Outcome::Held,
            Outcome::Superseded,
        ];

        /// The `outcome` label.
        pub fn as_str(self) -> &'static str {
            match self {
                Outcome::Succeeded => UploadState::Succeeded.as_str(),
                Outcome::Failed => UploadState::Failed.as_str(),
                Outcome::HandedBack => "handed_back",
                Outcome::Retrying => "retrying",
                Outcome::LeaseLost => "lease_lost",
                Outcome::Held => UploadState::Held.as_str(),
                Outcome::Superseded => UploadState::Superseded.as_str(),
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
        let counts = [created, updated, unchanged, rejected, deactivated];
        for (result, n) in ROW_RESULTS.into_iter().zip(counts) {
            counter!(ROWS, "result" => result).increment(n);
        }
    }

    /// Queue depth sampled from the database.
    pub fn queue_depth(q: &crate::upload::QueueStats) {
        gauge!(UPLOADS_QUEUED).set(q.queued as f64);
        gauge!(UPLOADS_RUNNING).set(q.running as f64);
        gauge!(OLDEST_QUEUED_AGE).set(q.oldest_queued_age_s);
        gauge!(UPLOADS_HELD).set(q.held as f64);
        gauge!(OLDEST_HELD_AGE).set(q.oldest_held_age_s);
    }

    /// Readiness changed or was re-evaluated.
    pub fn ready(is_ready: bool) {
        gauge!(READY).set(if is_ready { 1.0 } else { 0.0 });
    }
}
