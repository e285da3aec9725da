-- 0004 typed custom profile fields, defined per tenant.
CREATE TABLE profile_fields (
    tenant_id  BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    field_key  TEXT NOT NULL CHECK (field_key ~ '^[A-Za-z0-9_]{1,64}$'),
    field_type TEXT NOT NULL CHECK (field_type IN ('text', 'number', 'date', 'boolean')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, field_key)
);
