-- Recording uploads on SQLite (see postgres/intake.sql).

-- name: insert_local_upload
-- Creates the upload row of a local file, already claimed (lease token 1,
-- one attempt), in state `?4` (`running` or `preview`). `?1` tenant, `?2`
-- folder, `?3` file name, `?5` lease seconds, `?6` source. Returns the new id.
INSERT INTO uploads (tenant_id, source, bucket, object_key, object_identity, state,
                     lease_token, lease_expires_at, attempts, started_at)
VALUES (?1, ?6, ?2, ?3, ?4 || '-' || lower(hex(randomblob(16))), ?4, 1,
        strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || ?5 || ' seconds'), 1,
        strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
RETURNING id;

-- name: record_upload
-- Records an upload for an object version; does nothing when that version
-- was recorded before. Returns the new id, or no row for a duplicate.
INSERT INTO uploads (tenant_id, source, bucket, object_key, object_identity,
                     version_id, etag, size_bytes, event_time)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
ON CONFLICT (bucket, object_key, object_identity) DO NOTHING
RETURNING id;
