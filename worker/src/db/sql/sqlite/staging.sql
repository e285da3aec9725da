-- Staging an upload's rows on SQLite (see postgres/staging.sql).

-- name: delete_staged
-- Drops an upload's staged rows (at the start of every attempt and at the end).
DELETE FROM upload_rows WHERE upload_id = ?1;

-- name: delete_row_errors
-- Drops row errors of an earlier attempt. `?1` upload.
-- Line 0 holds what was noted when the upload was recorded, before any
-- attempt (the employees a Xero import skipped), and stays.
DELETE FROM upload_row_errors WHERE upload_id = ?1 AND line > 0;

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
-- equals their user's) and, with `?4` (no status column), the feed-managed
-- active users no staged row names (line NULL). `?1` upload, `?2` tenant.
--
-- Not PostgreSQL's one FULL JOIN: SQLite joins by nested loops, and a full
-- join of two derived tables has no index to probe (measured: a 100,000-row
-- re-feed did not finish in 8 minutes). Each half here probes an index
-- instead: the users' key index for the lines, `upload_rows_key_idx` for
-- the absent. SQLite has no data-modifying CTEs either, so `count_pending`
-- then reads the counts.
-- variant: by_email
--   key = lower(u.email)
-- variant: by_external_id
--   key = u.external_id
INSERT INTO upload_pending (upload_id, line, user_id)
SELECT ?1, r.line, NULL
FROM upload_rows r
LEFT JOIN users u ON u.tenant_id = ?2 AND {{key}} = r.match_key
WHERE ?3 AND r.upload_id = ?1
  AND (r.digest IS NULL OR r.error_message IS NOT NULL OR u.feed_digest IS NOT r.digest)
UNION ALL
SELECT ?1, NULL, u.id
FROM users u
WHERE ?4 AND u.tenant_id = ?2 AND u.feed_managed AND u.active
  AND NOT EXISTS (SELECT 1 FROM upload_rows r
                  WHERE r.upload_id = ?1 AND r.match_key = {{key}});

-- name: count_pending
-- What `classify` lined up: pending lines and absent users. `?1` upload.
SELECT count(line) AS pending, count(*) - count(line) AS absent
FROM upload_pending WHERE upload_id = ?1;

-- name: warn_present
-- An additive upload's rows naming an existing user get a warning (see
-- postgres/staging.sql). `?1` upload, `?2` tenant, `?3` the email header.
INSERT INTO upload_row_errors (upload_id, line, column_name, severity, message)
SELECT ?1, r.line, ?3, 'warning', {{message ALREADY_PRESENT r.match_key}}
FROM upload_rows r
WHERE r.upload_id = ?1 AND r.error_message IS NULL
  AND EXISTS (SELECT 1 FROM users u
              WHERE u.tenant_id = ?2 AND lower(u.email) = r.match_key);

-- name: drop_present
-- Removes the rows `warn_present` warned about. `?1` upload, `?2` tenant.
DELETE FROM upload_rows
WHERE upload_id = ?1 AND error_message IS NULL
  AND EXISTS (SELECT 1 FROM users u
              WHERE u.tenant_id = ?2 AND lower(u.email) = upload_rows.match_key);
