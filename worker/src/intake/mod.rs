//! Intake: queue notifications become durable upload rows.
//!
//! A message is deleted from the queue only after what it says has been
//! committed to the database (or deliberately ignored), so a crash between
//! the two means a redelivery, which recording absorbs idempotently.
//! [`IntakeSource`] is the seam for other message-queue intakes; the drop
//! folder ([`folder`]) records uploads through the same [`record_upload`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backon::BackoffBuilder;
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use tokio_util::sync::CancellationToken;

use crate::health::Health;
use crate::telemetry::events::{self, IgnoreReason, IntakeStage};
use crate::tenants::{self, TenantError};
use crate::upload::UploadSource;

pub mod event;
pub mod folder;
pub mod local;
pub mod manual;
pub mod sqs;

use crate::upload::ObjectCreated;
use event::{EventRecord, Notification};

/// One message taken from an intake source.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The source's message id (for logs).
    pub message_id: String,
    /// The message body.
    pub body: String,
    /// How many times the source has handed this message out.
    pub receive_count: u32,
    /// What to give back to [`IntakeSource::ack`].
    pub ack_handle: String,
}

/// An intake step that failed and will be retried.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// Receiving failed.
    #[error("receiving from {source_name} failed: {message}")]
    Receive {
        /// Which source.
        source_name: &'static str,
        /// The service's message.
        message: String,
    },
    /// Acknowledging (deleting) failed.
    #[error("acknowledging messages on {source_name} failed: {message}")]
    Ack {
        /// Which source.
        source_name: &'static str,
        /// The service's message.
        message: String,
    },
}

/// Somewhere notifications come from.
#[async_trait]
pub trait IntakeSource: Send + Sync {
    /// A short name for logs.
    fn name(&self) -> &'static str;
    /// Waits for and returns the next messages (possibly none).
    async fn receive(&self) -> Result<Vec<Delivery>, IntakeError>;
    /// Removes handled messages for good; returns how many were removed.
    async fn ack(&self, handles: &[String]) -> Result<usize, IntakeError>;
}

/// What happened to one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    /// Uploads newly recorded.
    pub recorded: Vec<i64>,
    /// Records that were already recorded earlier.
    pub duplicates: usize,
    /// Records or messages ignored on purpose.
    pub ignored: usize,
}

/// Records what one message says. Returns `Err` only for failures that a
/// redelivery could fix (the database); anything wrong with the message
/// itself is ignored with a reason, so it can never block the queue.
pub async fn handle_delivery(
    db: &DatabaseConnection,
    delivery: &Delivery,
) -> Result<Handled, TenantError> {
    let mut out = Handled {
        recorded: vec![],
        duplicates: 0,
        ignored: 0,
    };
    let records = match event::parse_message(&delivery.body) {
        Err(e) => {
            events::intake_ignored(IgnoreReason::NotS3Event, &e.to_string());
            out.ignored += 1;
            return Ok(out);
        }
        Ok(Notification::TestEvent) => {
            events::intake_ignored(IgnoreReason::TestEvent, "");
            out.ignored += 1;
            return Ok(out);
        }
        Ok(Notification::Records(r)) => r,
    };
    // All records of one message commit together, so the message is either
    // fully recorded (and deleted) or not at all (and redelivered).
    let txn = db.begin().await?;
    for record in records {
        match record {
            EventRecord::Other { event_name } => {
                events::intake_ignored(IgnoreReason::NotObjectCreated, &event_name);
                out.ignored += 1;
            }
            EventRecord::Shadow { object } => {
                events::intake_ignored(IgnoreReason::ShadowEvent, &object);
                out.ignored += 1;
            }
            EventRecord::Invalid { reason } => {
                events::intake_ignored(IgnoreReason::InvalidRecord, &reason);
                out.ignored += 1;
            }
            EventRecord::Created(obj) => {
                if let Some(reason) = tenants::unsafe_key_reason(&obj.key) {
                    events::intake_ignored(reason, &format!("{}/{}", obj.bucket, obj.key));
                    out.ignored += 1;
                    continue;
                }
                let Some(tenant) = tenants::route(&txn, &obj.bucket, &obj.key).await? else {
                    events::intake_ignored(
                        IgnoreReason::NoTenant,
                        &format!("{}/{}", obj.bucket, obj.key),
                    );
                    out.ignored += 1;
                    continue;
                };
                let id = record_upload(&txn, tenant.id, UploadSource::S3, &obj).await?;
                events::upload_recorded(&tenant.slug, id, &obj.bucket, &obj.key);
                match id {
                    Some(id) => out.recorded.push(id),
                    None => out.duplicates += 1,
                }
            }
        }
    }
    txn.commit().await?;
    Ok(out)
}

/// Inserts the upload row unless this object version is already recorded
/// (see [`crate::jobs::state::record`]).
pub async fn record_upload<C: ConnectionTrait>(
    db: &C,
    tenant_id: i64,
    source: UploadSource,
    obj: &ObjectCreated,
) -> Result<Option<i64>, sea_orm::DbErr> {
    crate::jobs::state::record(db, tenant_id, source, obj).await
}

/// Runs intake until `cancel` fires: receive, record, delete, with
/// exponential backoff (capped at a minute, with jitter) while the queue or
/// the database is failing, so an outage never becomes a hot loop.
///
/// A message that cannot be recorded is left on the queue to be received
/// again; after `max_receives` receives (when not 0) it is deleted as
/// poison instead, logged and counted.
pub async fn run(
    db: DatabaseConnection,
    source: Arc<dyn IntakeSource>,
    health: Arc<Health>,
    cancel: CancellationToken,
    max_receives: u32,
) {
    const LOOP: &str = "intake";
    // A receive waits up to 20 s; anything much longer means it is stuck.
    health.register(LOOP, Duration::from_secs(120));
    health.set_intake_enabled(true);
    events::intake_cycle_ok();
    let new_backoff = || {
        backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(60))
            .with_jitter()
            .without_max_times()
            .build()
    };
    let mut backoff = new_backoff();
    while !cancel.is_cancelled() {
        health.tick(LOOP);
        let received = tokio::select! {
            _ = cancel.cancelled() => break,
            r = source.receive() => r,
        };
        let deliveries = match received {
            Ok(d) => {
                health.set_intake_ok(true);
                d
            }
            Err(e) => {
                health.set_intake_ok(false);
                events::intake_error(IntakeStage::Receive, &e);
                let delay = backoff.next().unwrap_or(Duration::from_secs(60));
                tokio::select! { _ = cancel.cancelled() => break, _ = tokio::time::sleep(delay) => {} }
                continue;
            }
        };
        events::messages_received(deliveries.len());
        let mut acks = Vec::with_capacity(deliveries.len());
        let mut failed = false;
        for d in &deliveries {
            let span = tracing::info_span!("message", message_id = %d.message_id, receive_count = d.receive_count);
            let _g = span.enter();
            match handle_delivery(&db, d).await {
                Ok(_) => acks.push(d.ack_handle.clone()),
                Err(e) if max_receives > 0 && d.receive_count >= max_receives => {
                    events::intake_poison(d.receive_count, &e, &d.body);
                    acks.push(d.ack_handle.clone());
                }
                // Not acknowledged: the queue redelivers it after the
                // visibility timeout, and recording is idempotent.
                Err(e) => {
                    failed = true;
                    events::intake_error(IntakeStage::Record, &e);
                }
            }
        }
        if !acks.is_empty() {
            match source.ack(&acks).await {
                Ok(n) => events::messages_deleted(n),
                Err(e) => {
                    failed = true;
                    events::intake_error(IntakeStage::Delete, &e);
                }
            }
        }
        if failed {
            let delay = backoff.next().unwrap_or(Duration::from_secs(60));
            tokio::select! { _ = cancel.cancelled() => break, _ = tokio::time::sleep(delay) => {} }
        } else {
            events::intake_cycle_ok();
            backoff = new_backoff();
        }
    }
    health.deregister(LOOP);
    tracing::info!("intake stopped");
}
