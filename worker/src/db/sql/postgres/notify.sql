-- The webhook outbox (`crate::notify`, migration 0015).

-- name: enqueue_notification
-- An upload's end as a notification, when it needs a person: failed, held,
-- superseded, or succeeded with rejected rows. Runs in the transaction
-- that ends the upload (`jobs::state`), so the notification exists exactly
-- when the end does, and a rolled-back preview leaves none. `$1` upload.
INSERT INTO notifications (upload_id, tenant_id, event)
SELECT id, tenant_id,
       CASE state WHEN 'failed' THEN 'upload.failed'
                  WHEN 'held' THEN 'upload.held'
                  WHEN 'superseded' THEN 'upload.superseded'
                  ELSE 'upload.rejected_rows' END
FROM uploads
WHERE id = $1
  AND (state IN ('failed', 'held', 'superseded') OR (state = 'succeeded' AND rows_rejected > 0));

-- name: claim_notification
-- The oldest due notification, leased for `$1` seconds and counted as an
-- attempt. `SKIP LOCKED`: deliverers in several pods pass each other; a
-- pod that dies mid-call leaves the lease to expire and the next one
-- retries (the receiver may see a delivery twice; `Userfeed-Delivery`
-- names it). Reads `notifications_due_idx`.
UPDATE notifications n
SET lease_expires_at = now() + make_interval(secs => $1), attempts = n.attempts + 1
WHERE n.id = (
    SELECT id FROM notifications
    WHERE state = 'pending' AND next_attempt_at <= now()
      AND (lease_expires_at IS NULL OR lease_expires_at <= now())
    ORDER BY next_attempt_at, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING n.id, n.upload_id, n.tenant_id, n.event, n.payload, n.attempts;

-- name: retry_notification
-- After a failed attempt: due again in `$2` seconds, or `failed` when that
-- would be past `$3` seconds after the notification was made (the bounded
-- time retries may take). `$1` id, `$4` the error. Returns the new state.
--
-- `$5` fences: the attempt count the deliverer claimed with. A deliverer
-- whose lease expired mid-call (its call outlived `timeout_seconds + 30`)
-- may end only after another has claimed the notification again; its
-- late answer then matches no row and changes nothing, instead of
-- undoing the other's `delivered`.
UPDATE notifications
SET state = CASE WHEN created_at + make_interval(secs => $3) < now() + make_interval(secs => $2)
                 THEN 'failed' ELSE 'pending' END,
    finished_at = CASE WHEN created_at + make_interval(secs => $3) < now() + make_interval(secs => $2)
                       THEN now() END,
    next_attempt_at = now() + make_interval(secs => $2),
    lease_expires_at = NULL,
    last_error = $4
WHERE id = $1 AND state = 'pending' AND attempts = $5
RETURNING state;

-- name: finish_notification
-- Ends a notification: `$2` `delivered`, `skipped` or `failed`, `$3` why.
-- `$1` id, `$4` the attempt count claimed with (fencing, as for
-- [`RETRY_NOTIFICATION`]).
UPDATE notifications
SET state = $2, finished_at = now(), lease_expires_at = NULL, last_error = $3
WHERE id = $1 AND state = 'pending' AND attempts = $4;
