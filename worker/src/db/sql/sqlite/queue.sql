-- The queue of record on SQLite: the same changes as postgres/queue.sql,
-- each one statement.
--
-- SQLite has no row locks and no SKIP LOCKED: a statement that writes takes
-- the database's single write lock before it reads (its first opcode opens
-- a write transaction), so a claim's choice and its update are one atomic
-- step and two claimers simply take turns (the busy timeout makes the
-- second wait). Leases and the fencing token stay: a killed process's
-- upload is claimed again once its lease expires, and its late writes are
-- refused by the fence.
--
-- Times are the database's clock, as RFC 3339 text with milliseconds
-- (`{{> now}}`), which compares as text in time order. Parameters are
-- numbered (`?1`), as SQLite binds them by position.

-- fragment: now
strftime('%Y-%m-%dT%H:%M:%fZ', 'now')

-- name: claim
-- Claims the next runnable upload, at most one per tenant at a time: the
-- oldest upload that is its tenant's head (no older unfinished upload of
-- the tenant) and is queued past its backoff, or running under an expired
-- lease. Bumps the fencing token. `?1` lease owner, `?2` lease seconds.
UPDATE uploads
SET state = 'running',
    attempts = attempts + 1,
    lease_owner = ?1,
    lease_token = lease_token + 1,
    lease_expires_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || ?2 || ' seconds'),
    started_at = {{> now}},
    not_before = NULL
WHERE id = (
    SELECT u.id
    FROM uploads u
    WHERE u.state IN ('queued', 'running')
      AND ((u.state = 'queued' AND (u.not_before IS NULL OR u.not_before <= {{> now}}))
           OR (u.state = 'running' AND u.lease_expires_at < {{> now}}))
      AND NOT EXISTS (SELECT 1 FROM uploads o
                      WHERE o.tenant_id = u.tenant_id AND o.id < u.id
                        AND o.state IN ('queued', 'running'))
    ORDER BY u.id
    LIMIT 1
)
RETURNING id, tenant_id, lease_token, attempts, failure_reason;

-- name: renew_lease
-- Renews a lease; the fence at the start of every write transaction.
-- `?1` upload id, `?2` lease token, `?3` lease seconds.
UPDATE uploads
SET lease_expires_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || ?3 || ' seconds')
WHERE id = ?1 AND lease_token = ?2 AND state IN ('running', 'preview');

-- name: set_counters
-- Progress counters. `?1` id, `?2..?7` counters.
UPDATE uploads
SET rows_read = ?2, rows_created = ?3, rows_updated = ?4, rows_unchanged = ?5,
    rows_deactivated = ?6, rows_rejected = ?7
WHERE id = ?1;

-- name: hand_back
-- Gives an upload back to the queue (`?4` = 1: the attempt does not count),
-- runnable after `?3` seconds, with the reason `?5`. `?1` id, `?2` token.
UPDATE uploads
SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL,
    not_before = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || ?3 || ' seconds'),
    attempts = max(attempts - ?4, 0),
    failure_reason = ?5
WHERE id = ?1 AND lease_token = ?2 AND state = 'running';

-- name: fail
-- Ends an upload as failed. `?1` id, `?2` token, `?3` reason.
UPDATE uploads
SET state = 'failed', lease_owner = NULL, lease_expires_at = NULL,
    finished_at = {{> now}}, failure_reason = ?3
WHERE id = ?1 AND lease_token = ?2 AND state = 'running';

-- name: succeed
-- Ends an upload as succeeded. `?1` id, `?2` token.
UPDATE uploads
SET state = 'succeeded', lease_owner = NULL, lease_expires_at = NULL,
    finished_at = {{> now}}, failure_reason = NULL
WHERE id = ?1 AND lease_token = ?2 AND state IN ('running', 'preview');

-- name: hold
-- Ends an upload as held. `?1` id, `?2` token, `?3` held deactivations,
-- `?4` reason.
UPDATE uploads
SET state = 'held', lease_owner = NULL, lease_expires_at = NULL, finished_at = {{> now}},
    held_deactivations = ?3, hold_reason = ?4, failure_reason = NULL
WHERE id = ?1 AND lease_token = ?2 AND state IN ('running', 'preview');

-- name: resolve_hold
-- Ends a hold. `?1` id, `?2` `approved` or `rejected`, `?3` users deactivated.
UPDATE uploads
SET state = 'succeeded', hold_resolution = ?2, resolved_at = {{> now}}, rows_deactivated = ?3
WHERE id = ?1 AND state = 'held';

-- name: supersede_if_newer
-- Ends a just-claimed upload as superseded when a newer upload of the same
-- tenant is queued. (SQLite's RETURNING cannot name an UPDATE's FROM
-- tables, so the newest id is set by a subquery and returned from the row.)
-- `?1` id, `?2` token, `?3` tenant. Returns the newest upload's id.
UPDATE uploads
SET state = 'superseded',
    superseded_by = (SELECT max(n.id) FROM uploads n
                     WHERE n.tenant_id = ?3 AND n.state = 'queued' AND n.id > ?1),
    finished_at = {{> now}},
    lease_owner = NULL, lease_expires_at = NULL, failure_reason = NULL
WHERE id = ?1 AND lease_token = ?2 AND state = 'running'
  AND EXISTS (SELECT 1 FROM uploads n
              WHERE n.tenant_id = ?3 AND n.state = 'queued' AND n.id > ?1)
RETURNING superseded_by AS newest;

-- name: queue_stats
-- Queue depth for the metrics (see postgres/queue.sql).
SELECT q.queued, q.running, q.oldest_queued_age_s, h.held, h.oldest_held_age_s
FROM (SELECT count(*) FILTER (WHERE state = 'queued') AS queued,
             count(*) FILTER (WHERE state = 'running') AS running,
             COALESCE((julianday('now') - julianday(min(queued_at) FILTER (WHERE state = 'queued')))
                      * 86400.0, 0.0) AS oldest_queued_age_s
      FROM uploads
      WHERE state IN ('queued', 'running')) q,
     (SELECT count(*) AS held,
             COALESCE((julianday('now') - julianday(min(finished_at))) * 86400.0, 0.0)
                 AS oldest_held_age_s
      FROM uploads
      WHERE state = 'held') h;

-- name: newer_blocking_retry
-- The newest upload of the same tenant after `?1` that has applied or will
-- run: retrying `?1` is refused while one exists.
SELECT n.id, n.state
FROM uploads o
JOIN uploads n ON n.tenant_id = o.tenant_id AND n.id > o.id
WHERE o.id = ?1 AND n.state IN ('succeeded', 'held', 'queued', 'running')
ORDER BY n.id DESC
LIMIT 1;

-- name: insert_retry
-- Queues a failed upload's object again as a new upload. `?1` the failed
-- upload. Returns the new id.
INSERT INTO uploads (tenant_id, source, bucket, object_key, object_identity,
                     version_id, etag, size_bytes, event_time, retry_of)
SELECT tenant_id, source, bucket, object_key, object_identity || ' retry:' || id,
       version_id, etag, size_bytes, event_time, id
FROM uploads
WHERE id = ?1 AND state = 'failed'
RETURNING id;

-- name: insert_undo
-- → succeeded: the upload that undoes `?1` (see postgres/queue.sql).
INSERT INTO uploads (tenant_id, source, bucket, object_key, object_identity, state, attempts,
                     started_at, finished_at, undo_of)
SELECT tenant_id, 'undo', '', 'undo of upload ' || id, 'undo:' || id, 'succeeded', 1,
       strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), id
FROM uploads
WHERE id = ?1
RETURNING id;
