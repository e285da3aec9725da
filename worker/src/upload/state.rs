//! Where an upload is in its life (`uploads.state`). The changes between
//! states are `jobs::state`'s.

vocabulary! {
    /// Where an upload is in its life (`uploads.state`).
    pub enum UploadState / UnknownState {
        /// Waiting to be claimed.
        Queued = "queued",
        /// Claimed by a worker (or `userfeed import`) under a lease.
        Running = "running",
        /// A preview's upload: exists only inside its rolled-back transaction.
        Preview = "preview",
        /// Applied; a held upload ends here too once resolved.
        Succeeded = "succeeded",
        /// Gave up; `userfeed uploads retry` queues its object again.
        Failed = "failed",
        /// Applied except its deactivations, which wait for approval.
        Held = "held",
        /// Skipped: a newer file of the tenant was already queued.
        Superseded = "superseded",
    }
}

impl UploadState {
    /// Whether the upload will not run again (`held` waits for a person,
    /// not for a worker).
    pub const fn is_finished(self) -> bool {
        !matches!(
            self,
            UploadState::Queued | UploadState::Running | UploadState::Preview
        )
    }
}

vocabulary! {
    /// How a hold was resolved (`uploads.hold_resolution`).
    pub enum Resolution / UnknownResolution {
        /// The deactivations were performed.
        Approved = "approved",
        /// The deactivations were dropped.
        Rejected = "rejected",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_from_its_stored_name() {
        for st in UploadState::ALL {
            assert_eq!(st.as_str().parse::<UploadState>(), Ok(st));
            assert_eq!(
                serde_json::to_value(st).unwrap(),
                serde_json::json!(st.as_str())
            );
        }
        assert_eq!(
            "paused".parse::<UploadState>(),
            Err(UnknownState("paused".into()))
        );
    }

    #[test]
    fn only_queued_running_and_preview_uploads_are_unfinished() {
        let unfinished: Vec<_> = UploadState::ALL
            .into_iter()
            .filter(|s| !s.is_finished())
            .collect();
        assert_eq!(
            unfinished,
            [
                UploadState::Queued,
                UploadState::Running,
                UploadState::Preview
            ]
        );
    }
}
