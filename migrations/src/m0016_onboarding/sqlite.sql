-- 0016 onboarding (SQLite): see postgres.sql.
CREATE TABLE tenant_credentials (
    id            INTEGER PRIMARY KEY,
    tenant_id     INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    iam_user      TEXT NOT NULL,
    access_key_id TEXT NOT NULL UNIQUE,
    state         TEXT NOT NULL DEFAULT 'active'
                  CHECK (state IN ('active', 'retiring', 'deleted')),
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    retire_at     TEXT,
    deleted_at    TEXT,
    CHECK ((state = 'retiring') = (retire_at IS NOT NULL AND deleted_at IS NULL))
);
CREATE UNIQUE INDEX tenant_credentials_one_active ON tenant_credentials (tenant_id)
    WHERE state = 'active';
CREATE INDEX tenant_credentials_retiring ON tenant_credentials (retire_at)
    WHERE state = 'retiring';

CREATE TABLE ui_sessions (
    id            INTEGER PRIMARY KEY,
    secret_sha256 TEXT NOT NULL UNIQUE,
    token_sha256  TEXT NOT NULL,
    label         TEXT NOT NULL,
    csrf          TEXT NOT NULL,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    expires_at    TEXT NOT NULL
);
CREATE INDEX ui_sessions_expires ON ui_sessions (expires_at);
