-- Staging an upload's rows, and the one join after staging that decides
-- which lines the merge must handle.

-- name: delete_staged
-- Drops an upload's staged rows (at the start of every attempt and at the end).
DELETE FROM upload_rows WHERE upload_id = $1;

-- name: lock_staging_nowait
-- Takes the staging table for a `TRUNCATE`, or fails at once when anyone
-- else has it open (see `apply::postgres::drop_staged`).
LOCK TABLE upload_rows IN ACCESS EXCLUSIVE MODE NOWAIT;

-- name: others_running
-- Whether an upload other than `$1` is running (and so may have rows
-- staged). Reads the partial index of runnable uploads.
SELECT EXISTS (SELECT 1 FROM uploads WHERE state = 'running' AND id <> $1) AS others;

-- name: truncate_staging
-- Empties the staging table, under [`LOCK_STAGING_NOWAIT`] with no other
-- upload running.
TRUNCATE upload_rows;

-- name: delete_row_errors
-- Drops row errors of an earlier attempt, so a retried upload reports each
-- problem once.
-- Line 0 holds what was noted when the upload was recorded, before any
-- attempt (the employees a Xero import skipped), and stays.
DELETE FROM upload_row_errors WHERE upload_id = $1 AND line > 0;

-- name: copy_staged_rows
-- Copies a batch of parsed rows into the staging table (text format; the
-- store escapes the values). `profile` holds the values to set, with JSON
-- `null` for a cleared field, so the merge is `jsonb_strip_nulls(old || new)`.
COPY upload_rows (upload_id, line, match_key, email, external_id, first_name, last_name, active, profile, error_column, error_message, managers, groups, roles, digest, repeat_hint) FROM STDIN;

-- name: tenant_epoch
-- The tenant's current feed epoch (see migration 0011). `$1` tenant.
SELECT feed_epoch AS epoch FROM tenants WHERE id = $1;

-- name: any_digest
-- Whether any user of the tenant has a digest: when none has (a first
-- load, or right after the migration), every row is handled and the
-- pending lines are not written. `$1` tenant.
SELECT EXISTS (SELECT 1 FROM users WHERE tenant_id = $1 AND feed_digest IS NOT NULL) AS any;

-- name: delete_pending_lines
-- Drops an upload's pending lines (at the start of every attempt and at the end).
DELETE FROM upload_pending WHERE upload_id = $1;

-- name: copy_row_errors
-- Copies row problems found while parsing (text format).
COPY upload_row_errors (upload_id, line, column_name, severity, message) FROM STDIN;

-- name: mark_duplicates
-- Marks every row repeating a key seen on an earlier line of the file as
-- rejected, naming that first line. A row that already has an error keeps
-- it (as in the portable store). `$1` upload, `$2` the key column's header.
--
-- Only the keys of rows the parser hinted as possible repeats
-- (`repeat_hint`, from a Bloom filter that is never wrong about a real
-- repeat) are grouped, and the pipeline skips this statement when it
-- hinted none: grouping every key of a 1,000,000-row file cost 1.2 to
-- 1.3 s whatever `work_mem` (measured with 4 MB to 256 MB), against 0.2 to
-- 0.4 s to scan for the hints.
UPDATE upload_rows r
SET error_column = $2,
    error_message = {{message DUPLICATE_ROW d.first}}
FROM (SELECT match_key, min(line) AS first
      FROM upload_rows
      WHERE upload_id = $1
        AND match_key IN (SELECT match_key FROM upload_rows
                          WHERE upload_id = $1 AND repeat_hint)
      GROUP BY match_key HAVING count(*) > 1) d
WHERE r.upload_id = $1 AND r.match_key = d.match_key AND r.line > d.first
  AND r.error_message IS NULL;

-- name: classify
-- One join of the upload's staged rows to the tenant's users (a hash
-- `FULL JOIN`, each side read once) lines up in `upload_pending`:
-- - with `$3` (the tenant has digests), the lines the merge and link
--   phases must handle: every staged row except those whose digest equals
--   their user's (unchanged since the last upload, and nothing outside the
--   file has changed what they do; see `map::StagedRow::digest_for`);
-- - with `$4` (the file has no status column), the feed-managed active
--   users no staged row names (line NULL), which the finish deactivates.
--
-- Returns how many of each. `$1` upload, `$2` tenant.
--
-- Measured at 1,000,000 rows against the two statements it replaces (a
-- `LEFT JOIN` for the lines, an anti-join for the absent at the finish):
-- 1.47 to 1.74 s (statement log, two runs) against 1.43 s plus 1.25 s.
-- A `MATERIALIZED` join feeding two inserts (lines here, absent users
-- straight into `upload_deactivations`) cost as
-- much as the two statements: the tuplestore of a million rows spills.
-- variant: by_email
--   key = lower(u.email)
-- variant: by_external_id
--   key = u.external_id
WITH lined AS (
    INSERT INTO upload_pending (upload_id, line, user_id)
    SELECT $1, r.line, CASE WHEN r.line IS NULL THEN u.id END
    FROM (SELECT line, match_key, digest, error_message FROM upload_rows
          WHERE upload_id = $1) r
    FULL JOIN (SELECT u.id, {{key}} AS key, u.feed_digest, u.feed_managed, u.active
               FROM users u WHERE u.tenant_id = $2) u ON u.key = r.match_key
    WHERE (r.line IS NOT NULL AND $3
           AND (r.digest IS NULL OR r.error_message IS NOT NULL
                OR u.feed_digest IS DISTINCT FROM r.digest))
       OR (r.line IS NULL AND $4 AND u.feed_managed AND u.active)
    RETURNING line
)
SELECT count(line) AS pending, count(*) - count(line) AS absent FROM lined;

-- name: warn_present
-- An additive upload (a Xero import) only creates users: each staged row
-- whose email names a user of the tenant gets a warning here, and
-- `drop_present` then removes it, so the merge never sees it and that user
-- is left exactly as it is (never updated, reactivated or relinked). Rows
-- already rejected keep their error. `$1` upload, `$2` tenant, `$3` the
-- email column's header.
INSERT INTO upload_row_errors (upload_id, line, column_name, severity, message)
SELECT $1, r.line, $3, 'warning', {{message ALREADY_PRESENT r.match_key}}
FROM upload_rows r
WHERE r.upload_id = $1 AND r.error_message IS NULL
  AND EXISTS (SELECT 1 FROM users u
              WHERE u.tenant_id = $2 AND lower(u.email) = r.match_key);

-- name: drop_present
-- Removes the rows `warn_present` warned about. `$1` upload, `$2` tenant.
DELETE FROM upload_rows r
WHERE r.upload_id = $1 AND r.error_message IS NULL
  AND EXISTS (SELECT 1 FROM users u
              WHERE u.tenant_id = $2 AND lower(u.email) = r.match_key);
