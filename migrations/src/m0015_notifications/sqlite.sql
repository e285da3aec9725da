-- 0015 notifications (SQLite): see postgres.sql.
ALTER TABLE tenants ADD COLUMN webhook_url TEXT;
ALTER TABLE tenants ADD COLUMN webhook_secret_version INTEGER NOT NULL DEFAULT 1;

CREATE TABLE notifications (
    id               INTEGER PRIMARY KEY,
    upload_id        INTEGER NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    tenant_id        INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    event            TEXT NOT NULL CHECK (event IN ('upload.failed', 'upload.held',
                                                    'upload.superseded', 'upload.rejected_rows')),
    state            TEXT NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'delivered', 'failed', 'skipped')),
    payload          TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    lease_expires_at TEXT,
    last_error       TEXT,
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at      TEXT
);
CREATE INDEX notifications_due_idx ON notifications (next_attempt_at) WHERE state = 'pending';
CREATE INDEX notifications_upload_idx ON notifications (upload_id);

CREATE TABLE notification_attempts (
    id              INTEGER PRIMARY KEY,
    notification_id INTEGER NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    attempted_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    url             TEXT NOT NULL,
    status          INTEGER,
    error           TEXT,
    duration_ms     INTEGER NOT NULL
);
CREATE INDEX notification_attempts_notification_idx ON notification_attempts (notification_id);
