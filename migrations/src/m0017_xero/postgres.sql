-- 0017 xero (issue 17): a tenant's connection to one Xero organisation, and
-- the stored bodies of uploads that no bucket or folder holds.
--
-- The OAuth tokens are stored only encrypted (AES-256-GCM under
-- `xero.token_key`, bound to the tenant): a copy of the table, a backup or
-- a log of its rows opens nothing without the key. Xero rotates the
-- refresh token on every use, so `refresh_token` is rewritten each time.
CREATE TABLE xero_connections (
    tenant_id          BIGINT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    xero_tenant_id     TEXT NOT NULL,
    xero_tenant_name   TEXT NOT NULL,
    connection_id      TEXT NOT NULL,
    country            TEXT NOT NULL,
    region             TEXT NOT NULL CHECK (region IN ('au', 'uk', 'nz')),
    refresh_token      BYTEA NOT NULL,
    access_token       BYTEA,
    access_expires_at  TIMESTAMPTZ,
    connected_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    refreshed_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The file an upload applies, when it has no bucket or folder of its own:
-- a Xero import's employees as CSV, by the upload's bucket and key (a
-- retry is a new upload of the same object). Any worker of any pod can
-- then run or retry it.
CREATE TABLE upload_bodies (
    bucket     TEXT NOT NULL,
    object_key TEXT NOT NULL,
    body       BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (bucket, object_key)
);
