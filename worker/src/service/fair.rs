//! Fair use of the database by whole-file work (previews): one at a time
//! per tenant, and at most `api.previews_at_once` across tenants, each
//! under a deadline that grows with the file.
//!
//! A preview holds one pooled connection and one transaction for its whole
//! file. Without a gate, ten previews of one tenant took ten connections
//! of a pool of ten, blocked each other on the users' unique index, and
//! another tenant's reads waited for a connection until they timed out.
//! With it, a second preview of the same tenant is refused at once (409,
//! it could only wait behind the first), a preview past the global limit
//! is refused (429), and the pool always has connections for reads and
//! workers (`config` keeps the limit at most half the pool).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ServiceError;

/// The gate every preview passes.
#[derive(Debug)]
pub struct PreviewGate {
    running: Mutex<HashSet<i64>>,
    slots: Arc<Semaphore>,
    /// The deadline's base, and the bytes per second it grows by; `None`:
    /// no deadline (the CLI, whose operator can stop it).
    deadline: Option<(Duration, u64)>,
}

/// A preview's place through the gate; dropping it frees the place.
#[derive(Debug)]
pub struct PreviewPass<'a> {
    gate: &'a PreviewGate,
    tenant_id: i64,
    _slot: OwnedSemaphorePermit,
}

impl Drop for PreviewPass<'_> {
    fn drop(&mut self) {
        self.gate
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.tenant_id);
    }
}

impl PreviewGate {
    /// `at_once` previews across tenants, each within `deadline`.
    pub fn new(at_once: u32, deadline: Option<(Duration, u64)>) -> Self {
        PreviewGate {
            running: Mutex::new(HashSet::new()),
            slots: Arc::new(Semaphore::new(at_once.max(1) as usize)),
            deadline,
        }
    }

    /// A place for a preview of tenant `tenant_id` (`slug` for the
    /// message), or why not: 409 while the tenant has one running, 429
    /// while every place is taken.
    pub fn enter(&self, tenant_id: i64, slug: &str) -> Result<PreviewPass<'_>, ServiceError> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.contains(&tenant_id) {
            crate::telemetry::events::api_refused(
                crate::telemetry::events::ApiRefusal::PreviewBusy,
                slug,
            );
            return Err(ServiceError::Refused(format!(
                "a preview for tenant {slug} is already running; try again when it has finished"
            )));
        }
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            crate::telemetry::events::api_refused(
                crate::telemetry::events::ApiRefusal::PreviewBusy,
                slug,
            );
            return Err(ServiceError::Busy(
                "Userfeed is running as many previews as it takes at once; try again in a minute"
                    .into(),
            ));
        };
        running.insert(tenant_id);
        Ok(PreviewPass {
            gate: self,
            tenant_id,
            _slot: slot,
        })
    }

    /// How long a preview of a file of `bytes` may take.
    pub fn deadline(&self, bytes: u64) -> Option<Duration> {
        self.deadline
            .map(|(base, per_second)| base + Duration::from_secs(bytes / per_second.max(1)))
    }
}

impl Default for PreviewGate {
    /// Two at once, no deadline.
    fn default() -> Self {
        PreviewGate::new(2, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_preview_per_tenant_and_at_most_the_limit_across_tenants() {
        let gate = PreviewGate::new(2, None);
        let a = gate.enter(1, "acme").unwrap();
        assert!(matches!(
            gate.enter(1, "acme"),
            Err(ServiceError::Refused(_))
        ));
        let b = gate.enter(2, "beta").unwrap();
        assert!(matches!(gate.enter(3, "gamma"), Err(ServiceError::Busy(_))));
        drop(a);
        let _c = gate.enter(3, "gamma").unwrap();
        drop(b);
        let _a = gate.enter(1, "acme").unwrap();
    }
}
