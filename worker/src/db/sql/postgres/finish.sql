-- An upload's finish: deactivations, the safety cap's counts, row problems.

-- name: queue_absent
-- Lines up the feed-managed users absent from the upload's file for
-- deactivation: [`CLASSIFY_BY_EMAIL`] found them (before the merge, which
-- never changes who is absent: it only touches users the file names).
-- `$1` upload.
INSERT INTO upload_deactivations (upload_id, user_id)
SELECT upload_id, user_id FROM upload_pending
WHERE upload_id = $1 AND line IS NULL
ON CONFLICT DO NOTHING;

-- name: count_pending_deactivations
-- How many deactivations the upload has lined up. `$1` upload.
SELECT count(*) AS n FROM upload_deactivations WHERE upload_id = $1;

-- name: count_active_managed
-- The cap's denominator: the tenant's active feed-managed users. `$1` tenant.
SELECT count(*) AS n FROM users WHERE tenant_id = $1 AND feed_managed AND active;

-- name: log_deactivations
-- Logs the deactivations about to be performed (before they are, while
-- the users are still active). `$1` upload.
INSERT INTO upload_changes (upload_id, user_id, kind)
SELECT d.upload_id, d.user_id, 'deactivated'
FROM upload_deactivations d JOIN users u ON u.id = d.user_id
WHERE d.upload_id = $1 AND u.active;

-- name: count_logged_changes
-- The creations and updates an upload has made, over all its attempts.
-- A retried upload re-merges rows an earlier attempt already committed and
-- finds them unchanged; creations (`users.created_by_upload_id`, migration
-- 0013) and the change log (never cleared between attempts) say what the
-- upload as a whole did, so the final counters come from them. Reads
-- `users_created_by_upload_idx` and `upload_changes_upload_idx`. `$1` upload.
SELECT (SELECT count(*) FROM users WHERE created_by_upload_id = $1) AS created,
       (SELECT count(*) FROM upload_changes
        WHERE upload_id = $1 AND kind IN ('updated', 'reactivated')) AS updated;

-- name: trim_row_problems
-- Keeps an upload's first `$2` row problems by line and deletes the rest
-- (merge-time rejections are written by set-based statements without a
-- running count; the parse-time ones over the limit were never written),
-- recording how many were not kept: `$3` already dropped plus those
-- deleted here. `$1` upload.
WITH kept AS (
    SELECT id FROM upload_row_errors WHERE upload_id = $1 ORDER BY line, id LIMIT $2
),
dropped AS (
    DELETE FROM upload_row_errors e
    WHERE e.upload_id = $1 AND NOT EXISTS (SELECT 1 FROM kept k WHERE k.id = e.id)
    RETURNING 1
)
UPDATE uploads SET row_problems_dropped = $3 + (SELECT count(*) FROM dropped)
WHERE id = $1
RETURNING row_problems_dropped AS n;

-- name: apply_deactivations
-- Performs an upload's lined-up deactivations. `$1` upload. Users already
-- inactive are left alone (and not counted).
UPDATE users u
SET active = FALSE, deactivated_at = now(), updated_at = now(), last_changed_upload_id = $1
FROM upload_deactivations d
WHERE d.upload_id = $1 AND d.user_id = u.id AND u.active;

-- name: delete_pending_deactivations
-- Forgets an upload's lined-up deactivations. `$1` upload.
DELETE FROM upload_deactivations WHERE upload_id = $1;
