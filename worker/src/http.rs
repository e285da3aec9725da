//! `/healthz`, `/readyz` and `/metrics`.
//!
//! - `/healthz` (liveness): every registered loop has ticked recently. It does
//!   not look at the database, so a database outage never makes Kubernetes
//!   restart otherwise healthy pods.
//! - `/readyz` (readiness): the daemon has started (connected, schema
//!   current), the database answers within 2 s and intake is running (its
//!   last receive succeeded, or intake is off). The listener binds before the
//!   database is reached, so a pod started during an outage answers its
//!   probes: live, and not ready with the reason.
//! - `/metrics`: Prometheus text format.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::health::Health;
use crate::telemetry::events;

/// Shared state of the endpoints.
#[derive(Clone)]
pub struct HttpState {
    /// For the readiness ping; set once the daemon has connected and found
    /// the schema current.
    pub db: Arc<OnceLock<DatabaseConnection>>,
    /// Loop liveness and intake status.
    pub health: Arc<Health>,
    /// Renders metrics; `None` when no recorder is installed.
    pub metrics: Option<PrometheusHandle>,
}

/// The router.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz(State(s): State<HttpState>) -> (StatusCode, String) {
    let stalled = s.health.stalled();
    if stalled.is_empty() {
        (StatusCode::OK, "ok\n".into())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("stalled: {}\n", stalled.join(", ")),
        )
    }
}

async fn readyz(State(s): State<HttpState>) -> (StatusCode, String) {
    let Some(db) = s.db.get() else {
        events::ready(false);
        let why = s.health.starting().unwrap_or_else(|| "starting".into());
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        );
    };
    let db_ok = matches!(
        tokio::time::timeout(Duration::from_secs(2), db.ping()).await,
        Ok(Ok(()))
    );
    let intake_ok = s.health.intake_running();
    events::ready(db_ok && intake_ok);
    match (db_ok, intake_ok) {
        (true, true) => (StatusCode::OK, "ready\n".into()),
        (false, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: database unreachable\n".into(),
        ),
        (true, false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: intake queue unreachable\n".into(),
        ),
    }
}

async fn metrics(State(s): State<HttpState>) -> (StatusCode, String) {
    match &s.metrics {
        Some(h) => (StatusCode::OK, h.render()),
        None => (
            StatusCode::NOT_FOUND,
            "metrics recorder not installed\n".into(),
        ),
    }
}

/// Serves until `stop` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: HttpState,
    hygiene: crate::listen::Hygiene,
    stop: CancellationToken,
) -> std::io::Result<()> {
    crate::listen::serve(listener, router(state), hygiene, stop).await
}
