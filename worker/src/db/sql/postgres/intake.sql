-- Recording uploads: from an object notification, or a local file.

-- name: insert_local_upload
-- Creates the upload row of a local file, already claimed (lease token 1,
-- one attempt): `$4` = `running` for `userfeed import`, or `preview` for a
-- preview, whose row lives only inside its own rolled-back transaction.
-- `$1` tenant, `$2` folder, `$3` file name, `$5` lease seconds, `$6` the
-- source (`local`; `xero` for a Xero import run by the CLI). The
-- one-running-upload-per-tenant index refuses an import while the tenant
-- has an upload running. Returns the new id.
INSERT INTO uploads (tenant_id, source, bucket, object_key, object_identity, state,
                     lease_token, lease_expires_at, attempts, started_at)
VALUES ($1, $6, $2, $3, $4 || '-' || gen_random_uuid(), $4, 1,
        now() + make_interval(secs => $5), 1, now())
RETURNING id;

-- name: record_upload
-- Records an upload for an object version; does nothing when that version
-- was recorded before (SQS delivers at least once).
-- Returns the new id, or no row for a duplicate.
INSERT INTO uploads (tenant_id, source, bucket, object_key, object_identity,
                     version_id, etag, size_bytes, event_time)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (bucket, object_key, object_identity) DO NOTHING
RETURNING id;
