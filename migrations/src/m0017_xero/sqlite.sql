-- 0017 xero (SQLite): see postgres.sql.
CREATE TABLE xero_connections (
    tenant_id          INTEGER PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    xero_tenant_id     TEXT NOT NULL,
    xero_tenant_name   TEXT NOT NULL,
    connection_id      TEXT NOT NULL,
    country            TEXT NOT NULL,
    region             TEXT NOT NULL CHECK (region IN ('au', 'uk', 'nz')),
    refresh_token      BLOB NOT NULL,
    access_token       BLOB,
    access_expires_at  TEXT,
    connected_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    refreshed_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE upload_bodies (
    bucket     TEXT NOT NULL,
    object_key TEXT NOT NULL,
    body       BLOB NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (bucket, object_key)
);
