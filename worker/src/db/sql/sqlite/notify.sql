-- The webhook outbox on SQLite (see postgres/notify.sql).

-- name: enqueue_notification
-- An upload's end as a notification, when it needs a person. `?1` upload.
INSERT INTO notifications (upload_id, tenant_id, event)
SELECT id, tenant_id,
       CASE state WHEN 'failed' THEN 'upload.failed'
                  WHEN 'held' THEN 'upload.held'
                  WHEN 'superseded' THEN 'upload.superseded'
                  ELSE 'upload.rejected_rows' END
FROM uploads
WHERE id = ?1
  AND (state IN ('failed', 'held', 'superseded') OR (state = 'succeeded' AND rows_rejected > 0));

-- name: claim_notification
-- The oldest due notification, leased for `?1` seconds and counted as an
-- attempt (one statement: SQLite has one writer at a time).
UPDATE notifications
SET lease_expires_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || ?1 || ' seconds'),
    attempts = attempts + 1
WHERE id = (
    SELECT id FROM notifications
    WHERE state = 'pending' AND next_attempt_at <= {{> now}}
      AND (lease_expires_at IS NULL OR lease_expires_at <= {{> now}})
    ORDER BY next_attempt_at, id
    LIMIT 1
)
RETURNING id, upload_id, tenant_id, event, payload, attempts;

-- name: retry_notification
-- After a failed attempt: due again in `?2` seconds, or `failed` past `?3`
-- seconds after it was made. `?1` id, `?4` the error. Returns the state.
-- `?5` fences: the attempt count claimed with (see PostgreSQL's).
UPDATE notifications
SET state = CASE WHEN strftime('%Y-%m-%dT%H:%M:%fZ', created_at, '+' || ?3 || ' seconds')
                      < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || ?2 || ' seconds')
                 THEN 'failed' ELSE 'pending' END,
    finished_at = CASE WHEN strftime('%Y-%m-%dT%H:%M:%fZ', created_at, '+' || ?3 || ' seconds')
                            < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || ?2 || ' seconds')
                       THEN {{> now}} END,
    next_attempt_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || ?2 || ' seconds'),
    lease_expires_at = NULL,
    last_error = ?4
WHERE id = ?1 AND state = 'pending' AND attempts = ?5
RETURNING state;

-- name: finish_notification
-- Ends a notification: `?2` `delivered`, `skipped` or `failed`, `?3` why.
-- `?1` id, `?4` the attempt count claimed with (fencing).
UPDATE notifications
SET state = ?2, finished_at = {{> now}}, lease_expires_at = NULL, last_error = ?3
WHERE id = ?1 AND state = 'pending' AND attempts = ?4;
