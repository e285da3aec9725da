-- Staging an upload's rows on SQLite (see postgres/staging.sql).

-- name: delete_staged
-- Drops an upload's staged rows (at the start of every attempt and at the end).
DELETE FROM upload_rows WHERE upload_id = ?1;

-- name: delete_row_errors
-- Drops row errors of an earlier attempt. `?1` upload.
DELETE FROM upload_row_errors WHERE upload_id = ?1;

-- name: delete_pending_lines
-- Drops an upload's pending lines. `?1` upload.
DELETE FROM upload_pending WHERE upload_id = ?1;

-- name: tenant_epoch
-- The tenant's current feed epoch. `?1` tenant.
SELECT feed_epoch AS epoch FROM tenants WHERE id = ?1;

-- name: any_digest
-- Whether any user of the tenant has a digest. On SQLite none has (the
-- embedded backend stores no digests), so every row is handled. `?1` tenant.
SELECT EXISTS (SELECT 1 FROM users WHERE tenant_id = ?1 AND feed_digest IS NOT NULL) AS "any";

-- name: mark_duplicates
-- Marks every row repeating a key seen on an earlier line of the file as
-- rejected, naming that first line; only hinted keys are grouped. `?1`
-- upload, `?2` the key column's header.
UPDATE upload_rows
SET error_column = ?2,
    error_message = {{message DUPLICATE_ROW d.first}}
FROM (SELECT match_key, min(line) AS first
      FROM upload_rows
      WHERE upload_id = ?1
        AND match_key IN (SELECT match_key FROM upload_rows
                          WHERE upload_id = ?1 AND repeat_hint)
      GROUP BY match_key HAVING count(*) > 1) d
WHERE upload_rows.upload_id = ?1 AND upload_rows.match_key = d.match_key
  AND upload_rows.line > d.first AND upload_rows.error_message IS NULL;

-- name: classify
-- Lines up in `upload_pending` the lines the merge and link phases must
-- handle (with `?3`, the tenant has digests: all but those whose digest
-- equals their user's; else every line) and, with `?4` (no status column),
-- the feed-managed active users no staged row names (line NULL). SQLite has
-- no data-modifying CTEs, so `count_pending` then reads the counts.
-- `?1` upload, `?2` tenant.
-- variant: by_email
--   key = lower(u.email)
-- variant: by_external_id
--   key = u.external_id
INSERT INTO upload_pending (upload_id, line, user_id)
SELECT ?1, r.line, CASE WHEN r.line IS NULL THEN u.id END
FROM (SELECT line, match_key, digest, error_message FROM upload_rows
      WHERE upload_id = ?1) r
FULL JOIN (SELECT u.id, {{key}} AS key, u.feed_digest, u.feed_managed, u.active
           FROM users u WHERE u.tenant_id = ?2) u ON u.key = r.match_key
WHERE (r.line IS NOT NULL AND ?3
       AND (r.digest IS NULL OR r.error_message IS NOT NULL
            OR u.feed_digest IS NOT r.digest))
   OR (r.line IS NULL AND ?4 AND u.feed_managed AND u.active);

-- name: count_pending
-- What `classify` lined up: pending lines and absent users. `?1` upload.
SELECT count(line) AS pending, count(*) - count(line) AS absent
FROM upload_pending WHERE upload_id = ?1;
