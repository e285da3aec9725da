-- 0002 deactivation safety: held uploads, superseded uploads, per-tenant caps.

-- An upload may deactivate at most this share of the tenant's active
-- feed-managed users AND this many users before it is held for approval.
ALTER TABLE tenants
    ADD COLUMN hold_over_percent INTEGER NOT NULL DEFAULT 20
        CHECK (hold_over_percent BETWEEN 0 AND 100),
    ADD COLUMN hold_over_count INTEGER NOT NULL DEFAULT 10
        CHECK (hold_over_count >= 0);

ALTER TABLE uploads DROP CONSTRAINT uploads_state_check;
ALTER TABLE uploads ADD CONSTRAINT uploads_state_check
    CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'held', 'superseded'));
ALTER TABLE uploads
    -- Deactivations waiting for approval, and why they wait.
    ADD COLUMN held_deactivations BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN hold_reason TEXT,
    -- How a hold ended, and when.
    ADD COLUMN hold_resolution TEXT CHECK (hold_resolution IN ('approved', 'rejected')),
    ADD COLUMN resolved_at TIMESTAMPTZ,
    -- The newer upload of the same tenant that made this one redundant.
    ADD COLUMN superseded_by BIGINT REFERENCES uploads (id);

-- Users an upload will deactivate. Merge batches add status-0 rows here
-- instead of deactivating at once; the finish transaction adds the absent,
-- then either applies the whole list (and empties it) or holds the upload
-- with the list kept for `userfeed uploads approve`. Durable (logged): a
-- held list must survive a server restart.
CREATE TABLE upload_deactivations (
    upload_id BIGINT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    user_id   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (upload_id, user_id)
);
