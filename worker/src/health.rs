//! Liveness and readiness state shared by the loops and the HTTP endpoints.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What `/healthz` and `/readyz` report.
#[derive(Debug, Default)]
pub struct Health {
    loops: Mutex<BTreeMap<String, (Instant, Duration)>>,
    intake_ok: AtomicBool,
    intake_enabled: AtomicBool,
    starting: Mutex<Option<String>>,
}

impl Health {
    /// A loop registers with the longest silence that still means "alive".
    pub fn register(&self, name: &str, max_silence: Duration) {
        self.loops
            .lock()
            .expect("health lock")
            .insert(name.to_string(), (Instant::now(), max_silence));
    }

    /// A loop reports it is still turning.
    pub fn tick(&self, name: &str) {
        if let Some(e) = self.loops.lock().expect("health lock").get_mut(name) {
            e.0 = Instant::now();
        }
    }

    /// A loop has ended on purpose (shutdown) and no longer counts.
    pub fn deregister(&self, name: &str) {
        self.loops.lock().expect("health lock").remove(name);
    }

    /// Names of loops silent for longer than they promised.
    pub fn stalled(&self) -> Vec<String> {
        self.loops
            .lock()
            .expect("health lock")
            .iter()
            .filter(|(_, (last, max))| last.elapsed() > *max)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// While the daemon is starting: why it cannot serve yet ("database
    /// unreachable", "schema out of date ..."); `None` once it runs.
    pub fn set_starting(&self, reason: Option<String>) {
        *self.starting.lock().expect("health lock") = reason;
    }

    /// Why the daemon is still starting, if it is.
    pub fn starting(&self) -> Option<String> {
        self.starting.lock().expect("health lock").clone()
    }

    /// Intake is configured for this process.
    pub fn set_intake_enabled(&self, on: bool) {
        self.intake_enabled.store(on, Ordering::Relaxed);
    }

    /// Whether the last intake receive succeeded.
    pub fn set_intake_ok(&self, ok: bool) {
        self.intake_ok.store(ok, Ordering::Relaxed);
    }

    /// Intake is running (or not configured, which is not a fault).
    pub fn intake_running(&self) -> bool {
        !self.intake_enabled.load(Ordering::Relaxed) || self.intake_ok.load(Ordering::Relaxed)
    }
}
