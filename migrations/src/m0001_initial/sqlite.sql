-- 0001 initial schema (SQLite): the embedded backend.
--
-- SQLite was added when PostgreSQL's schema was at migration 0013, so this
-- file creates that schema at once, and migrations 0002 to 0013 have nothing
-- to do on SQLite (their sqlite.sql files say so). Migrations after 0013 add
-- a real sqlite.sql beside their postgres.sql.
--
-- What differs from PostgreSQL, and why:
-- - Times are TEXT in RFC 3339 with milliseconds and `Z`
--   (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), so they compare as text in
--   time order, which leases rely on.
-- - JSON is TEXT, booleans INTEGER 0/1, digests BLOB.
-- - Link and change-log tables cascade through foreign keys (the
--   connection turns them on); PostgreSQL uses statement-level delete
--   triggers there only to avoid per-row foreign-key checks at volume.
-- - No digest invalidation triggers: the embedded backend stores no
--   digests (the unchanged-row fast path is the PostgreSQL store's), so
--   there is nothing to invalidate.
-- - Staged rows are indexed by key (no hash joins in SQLite).
-- - Upload ids are AUTOINCREMENT: never reused, so "oldest first by id"
--   holds even after the newest upload is deleted.

CREATE TABLE tenants (
    id                INTEGER PRIMARY KEY,
    slug              TEXT NOT NULL UNIQUE
                      CHECK (length(slug) BETWEEN 1 AND 63
                             AND slug NOT GLOB '*[^a-z0-9-]*'
                             AND substr(slug, 1, 1) GLOB '[a-z0-9]'),
    bucket            TEXT NOT NULL,
    key_prefix        TEXT NOT NULL CHECK (key_prefix LIKE '%/' AND key_prefix NOT LIKE '/%'),
    match_key         TEXT NOT NULL DEFAULT 'email' CHECK (match_key IN ('email', 'external_id')),
    mapping           TEXT,
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    hold_over_percent INTEGER NOT NULL DEFAULT 20 CHECK (hold_over_percent BETWEEN 0 AND 100),
    hold_over_count   INTEGER NOT NULL DEFAULT 10 CHECK (hold_over_count >= 0),
    feed_epoch        INTEGER NOT NULL DEFAULT 0,
    UNIQUE (bucket, key_prefix)
);

CREATE TABLE users (
    id                     INTEGER PRIMARY KEY,
    tenant_id              INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email                  TEXT NOT NULL,
    external_id            TEXT,
    first_name             TEXT NOT NULL DEFAULT '',
    last_name              TEXT NOT NULL DEFAULT '',
    active                 INTEGER NOT NULL DEFAULT 1,
    profile                TEXT NOT NULL DEFAULT '{}',
    feed_managed           INTEGER NOT NULL DEFAULT 0,
    created_by_upload_id   INTEGER,
    last_changed_upload_id INTEGER,
    created_at             TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at             TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    deactivated_at         TEXT,
    feed_digest            BLOB CHECK (length(feed_digest) = 16)
);
CREATE UNIQUE INDEX users_tenant_email_key ON users (tenant_id, lower(email));
CREATE UNIQUE INDEX users_tenant_external_id_key ON users (tenant_id, external_id)
    WHERE external_id IS NOT NULL;
CREATE INDEX users_created_by_upload_idx ON users (created_by_upload_id)
    WHERE created_by_upload_id IS NOT NULL;

CREATE TABLE uploads (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id            INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    source               TEXT NOT NULL DEFAULT 's3',
    bucket               TEXT NOT NULL,
    object_key           TEXT NOT NULL,
    object_identity      TEXT NOT NULL,
    version_id           TEXT,
    etag                 TEXT,
    size_bytes           INTEGER,
    event_time           TEXT,
    state                TEXT NOT NULL DEFAULT 'queued'
                         CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'held',
                                          'superseded', 'preview')),
    attempts             INTEGER NOT NULL DEFAULT 0,
    not_before           TEXT,
    lease_owner          TEXT,
    lease_token          INTEGER NOT NULL DEFAULT 0,
    lease_expires_at     TEXT,
    queued_at            TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    started_at           TEXT,
    finished_at          TEXT,
    rows_read            INTEGER NOT NULL DEFAULT 0,
    rows_created         INTEGER NOT NULL DEFAULT 0,
    rows_updated         INTEGER NOT NULL DEFAULT 0,
    rows_unchanged       INTEGER NOT NULL DEFAULT 0,
    rows_deactivated     INTEGER NOT NULL DEFAULT 0,
    rows_rejected        INTEGER NOT NULL DEFAULT 0,
    failure_reason       TEXT,
    held_deactivations   INTEGER NOT NULL DEFAULT 0,
    hold_reason          TEXT,
    hold_resolution      TEXT CHECK (hold_resolution IN ('approved', 'rejected')),
    resolved_at          TEXT,
    superseded_by        INTEGER REFERENCES uploads (id),
    row_problems_dropped INTEGER NOT NULL DEFAULT 0,
    retry_of             INTEGER REFERENCES uploads (id),
    UNIQUE (bucket, object_key, object_identity)
);
CREATE UNIQUE INDEX uploads_one_running_per_tenant ON uploads (tenant_id) WHERE state = 'running';
CREATE INDEX uploads_runnable_idx ON uploads (tenant_id, id) WHERE state IN ('queued', 'running');
CREATE INDEX uploads_runnable_order_idx ON uploads (id) WHERE state IN ('queued', 'running');
CREATE INDEX uploads_held_idx ON uploads (finished_at) WHERE state = 'held';
CREATE INDEX uploads_tenant_history_idx ON uploads (tenant_id, id DESC);

CREATE TABLE upload_row_errors (
    id          INTEGER PRIMARY KEY,
    upload_id   INTEGER NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    line        INTEGER NOT NULL,
    column_name TEXT,
    severity    TEXT NOT NULL CHECK (severity IN ('error', 'warning')),
    message     TEXT NOT NULL
);
CREATE INDEX upload_row_errors_upload_idx ON upload_row_errors (upload_id, line);

CREATE TABLE upload_rows (
    upload_id     INTEGER NOT NULL,
    line          INTEGER NOT NULL,
    match_key     TEXT NOT NULL,
    email         TEXT,
    external_id   TEXT,
    first_name    TEXT,
    last_name     TEXT,
    active        INTEGER,
    profile       TEXT,
    error_column  TEXT,
    error_message TEXT,
    managers      TEXT,
    groups        TEXT,
    roles         TEXT,
    rejected      INTEGER NOT NULL DEFAULT 0,
    digest        BLOB,
    repeat_hint   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (upload_id, line)
);
-- The staged rows by key: SQLite joins by nested loops, so finding the
-- users a file leaves out (the classify statement) and repeated keys
-- probe this (PostgreSQL hashes instead and keeps no such index).
CREATE INDEX upload_rows_key_idx ON upload_rows (upload_id, match_key);

CREATE TABLE upload_pending (
    upload_id INTEGER NOT NULL,
    line      INTEGER,
    user_id   INTEGER,
    CHECK ((line IS NULL) <> (user_id IS NULL))
);
CREATE UNIQUE INDEX upload_pending_line_key ON upload_pending (upload_id, line);

CREATE TABLE upload_deactivations (
    upload_id INTEGER NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (upload_id, user_id)
);

CREATE TABLE groups (
    id         INTEGER PRIMARY KEY,
    tenant_id  INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    group_key  TEXT NOT NULL CHECK (group_key <> ''),
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (tenant_id, group_key)
);

CREATE TABLE group_memberships (
    group_id             INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id              INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_by_upload_id INTEGER,
    created_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_memberships_user_idx ON group_memberships (user_id);

-- Learner is implicit: every user is one (see user_all_roles).
CREATE TABLE user_roles (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role    TEXT NOT NULL CHECK (role IN ('manager', 'administrator')),
    PRIMARY KEY (user_id, role)
);

CREATE TABLE user_managers (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    manager_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, manager_id),
    CHECK (user_id <> manager_id)
);
CREATE INDEX user_managers_manager_idx ON user_managers (manager_id);

CREATE VIEW user_all_roles AS
    SELECT id AS user_id, 'learner' AS role FROM users
    UNION ALL
    SELECT user_id, role FROM user_roles;

CREATE TABLE profile_fields (
    tenant_id  INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    field_key  TEXT NOT NULL
               CHECK (length(field_key) BETWEEN 1 AND 64 AND field_key NOT GLOB '*[^A-Za-z0-9_]*'),
    field_type TEXT NOT NULL CHECK (field_type IN ('text', 'number', 'date', 'boolean')),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (tenant_id, field_key)
);

CREATE TABLE upload_changes (
    id        INTEGER PRIMARY KEY,
    upload_id INTEGER NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind      TEXT NOT NULL CHECK (kind IN ('updated', 'reactivated', 'deactivated')),
    changes   TEXT
);
CREATE INDEX upload_changes_upload_idx ON upload_changes (upload_id, kind, user_id);
