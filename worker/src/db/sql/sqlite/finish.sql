-- An upload's finish on SQLite (see postgres/finish.sql).

-- name: queue_absent
-- Lines up the feed-managed users absent from the upload's file (found by
-- the join after staging) for deactivation. `?1` upload.
INSERT INTO upload_deactivations (upload_id, user_id)
SELECT upload_id, user_id FROM upload_pending
WHERE upload_id = ?1 AND line IS NULL
ON CONFLICT DO NOTHING;

-- name: count_pending_deactivations
-- How many deactivations the upload has lined up. `?1` upload.
SELECT count(*) AS n FROM upload_deactivations WHERE upload_id = ?1;

-- name: count_active_managed
-- The cap's denominator: the tenant's active feed-managed users. `?1` tenant.
SELECT count(*) AS n FROM users WHERE tenant_id = ?1 AND feed_managed AND active;

-- name: log_deactivations
-- Logs the deactivations about to be performed. `?1` upload.
INSERT INTO upload_changes (upload_id, user_id, kind)
SELECT d.upload_id, d.user_id, 'deactivated'
FROM upload_deactivations d JOIN users u ON u.id = d.user_id
WHERE d.upload_id = ?1 AND u.active;

-- name: count_logged_changes
-- The creations and updates an upload has made, over all its attempts. `?1` upload.
SELECT (SELECT count(*) FROM users WHERE created_by_upload_id = ?1) AS created,
       (SELECT count(*) FROM upload_changes
        WHERE upload_id = ?1 AND kind IN ('updated', 'reactivated')) AS updated;

-- name: trim_row_problems
-- Keeps an upload's first `?2` row problems by line and deletes the rest.
-- SQLite has no data-modifying CTEs: this deletes, and
-- `record_row_problems_dropped` then adds `changes()` (the rows this
-- deleted) to the count. `?1` upload.
DELETE FROM upload_row_errors
WHERE upload_id = ?1
  AND id NOT IN (SELECT id FROM upload_row_errors WHERE upload_id = ?1
                 ORDER BY line, id LIMIT ?2);

-- name: record_row_problems_dropped
-- Records how many row problems were not kept: `?2` dropped before, plus
-- those `trim_row_problems` just deleted (`changes()`, on this connection,
-- in this transaction). `?1` upload.
UPDATE uploads SET row_problems_dropped = ?2 + changes()
WHERE id = ?1
RETURNING row_problems_dropped AS n;

-- name: apply_deactivations
-- Performs an upload's lined-up deactivations. `?1` upload.
UPDATE users
SET active = 0,
    deactivated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
    updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
    last_changed_upload_id = ?1
WHERE active
  AND id IN (SELECT user_id FROM upload_deactivations WHERE upload_id = ?1);

-- name: delete_pending_deactivations
-- Forgets an upload's lined-up deactivations. `?1` upload.
DELETE FROM upload_deactivations WHERE upload_id = ?1;
