-- The queue of record: claims, leases, fencing and every end of an upload.
--
-- Times are the database's now(), never a pod's clock: leases are compared
-- across pods, and one clock (the server's) makes skew between pods
-- irrelevant.

-- name: claim
-- Claims the next runnable upload, at most one per tenant at a time.
--
-- `$1` lease owner (pod/worker name), `$2` lease length in seconds.
--
-- How it works:
-- 1. Only the head of a tenant may run, i.e. its oldest unfinished upload:
--    a tenant's files are full lists and must apply in arrival order.
-- 2. A head is claimable when it is queued (and past any retry backoff) or
--    when it is running under a lease that has expired (its worker died).
--    A head that is running under a live lease blocks its whole tenant.
-- 3. Runnable uploads are walked oldest first through the partial index
--    `uploads_runnable_order_idx` (finished history is never read), and the
--    first claimable one that is its tenant's head (no older runnable
--    upload of the tenant: one probe of `uploads_runnable_idx`) wins. So the
--    oldest waiting file goes first across tenants, and a claim reads only
--    the uploads ahead of it: normally the few heads currently running.
-- 4. `FOR UPDATE SKIP LOCKED` makes concurrent claimers take different rows
--    instead of queueing behind each other. When a locked row changed under
--    us, PostgreSQL re-checks the conditions on the new version, so a head
--    another worker just claimed or finished is skipped, not re-run.
-- 5. The claim bumps `lease_token`: the fencing token every later write of
--    this attempt must present.
--
-- Alternatives measured or considered:
-- - Computing every tenant's head first (`SELECT DISTINCT ON (tenant_id)`
--   over the runnable uploads) and taking the oldest claimable one: the
--   first version of this query. Correct, but it reads and sorts every
--   runnable upload on every claim: 12 ms per claim with 2,000 tenants ten
--   uploads deep, against 0.4 ms for this walk (`EXPLAIN ANALYZE`; with
--   commits, `scripts/bench` measures about 750 claims a second, each
--   followed by its upload finishing).
-- - A per-tenant advisory lock: works, but the lock lives in a session, so
--   it ties the claim to one pooled connection for the whole upload and
--   cannot express "expired".
-- - `SELECT ... FOR UPDATE SKIP LOCKED` on the tenant row: needs a
--   transaction open for the whole upload, which the design forbids (no
--   transaction spans a streaming file).
-- - Claiming without the head restriction and relying on the unique index
--   `uploads_one_running_per_tenant` alone: correct, but under contention
--   most attempts would end in a unique violation. The index stays as the
--   last line of defence; a violation is treated as "nothing claimed".
WITH candidate AS (
    SELECT u.id
    FROM uploads u
    WHERE u.state IN ('queued', 'running')
      AND ((u.state = 'queued' AND (u.not_before IS NULL OR u.not_before <= now()))
           OR (u.state = 'running' AND u.lease_expires_at < now()))
      AND NOT EXISTS (SELECT 1 FROM uploads o
                      WHERE o.tenant_id = u.tenant_id AND o.id < u.id
                        AND o.state IN ('queued', 'running'))
    ORDER BY u.id
    LIMIT 1
    FOR UPDATE OF u SKIP LOCKED
)
UPDATE uploads u
SET state = 'running',
    attempts = u.attempts + 1,
    lease_owner = $1,
    lease_token = u.lease_token + 1,
    lease_expires_at = now() + make_interval(secs => $2),
    started_at = now(),
    not_before = NULL
FROM candidate c
WHERE u.id = c.id
RETURNING u.id, u.tenant_id, u.lease_token, u.attempts, u.failure_reason;

-- name: renew_lease
-- Renews a lease, and doubles as the fence at the start of every batch
-- transaction: it matches only while the upload is still running under the
-- caller's token, and the row lock it takes is held to commit, so a
-- re-claim cannot interleave with the batch.
--
-- A `preview` upload (see `apply::preview`) passes the fence too: it exists
-- only inside the preview's own transaction, which always rolls back, so
-- this and [`SUCCEED`] / [`HOLD`] accepting it can never affect a real one.
--
-- `$1` upload id, `$2` lease token, `$3` lease seconds.
UPDATE uploads
SET lease_expires_at = now() + make_interval(secs => $3)
WHERE id = $1 AND lease_token = $2 AND state IN ('running', 'preview');

-- name: set_counters
-- Progress counters, written in each batch transaction so the history shows
-- a running upload's progress. `$1` id, `$2..$8` counters.
UPDATE uploads
SET rows_read = $2, rows_created = $3, rows_updated = $4, rows_unchanged = $5,
    rows_deactivated = $6, rows_rejected = $7
WHERE id = $1;

-- name: hand_back
-- Gives an upload back to the queue: on shutdown (`$4` = 1, the attempt
-- does not count) or after a transient error (`$4` = 0, with a backoff of
-- `$3` seconds). `$5` is the reason, kept for the history.
UPDATE uploads
SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL,
    not_before = now() + make_interval(secs => $3),
    attempts = GREATEST(attempts - $4, 0),
    failure_reason = $5
WHERE id = $1 AND lease_token = $2 AND state = 'running';

-- name: fail
-- Ends an upload as failed, with the reason the customer's admin will read.
-- `$1` id, `$2` token, `$3` reason.
UPDATE uploads
SET state = 'failed', lease_owner = NULL, lease_expires_at = NULL,
    finished_at = now(), failure_reason = $3
WHERE id = $1 AND lease_token = $2 AND state = 'running';

-- name: succeed
-- Ends an upload as succeeded. Runs in the same transaction as the
-- deactivation, so either both happen or neither. `$1` id, `$2` token.
UPDATE uploads
SET state = 'succeeded', lease_owner = NULL, lease_expires_at = NULL,
    finished_at = now(), failure_reason = NULL
WHERE id = $1 AND lease_token = $2 AND state IN ('running', 'preview');

-- name: newer_blocking_retry
-- The newest upload of the same tenant after `$1` (by id, the claim's
-- order) that has applied (`succeeded`, `held`) or will run (`queued`,
-- `running`): retrying `$1` is refused while one exists. Newer uploads
-- that `failed` or were `superseded` changed nothing for good, so they do
-- not block it.
SELECT n.id, n.state
FROM uploads o
JOIN uploads n ON n.tenant_id = o.tenant_id AND n.id > o.id
WHERE o.id = $1 AND n.state IN ('succeeded', 'held', 'queued', 'running')
ORDER BY n.id DESC
LIMIT 1;

-- name: insert_retry
-- Queues a failed upload's object again as a new upload, newest of its
-- tenant so the claim takes it next. The identity gets the retried id
-- appended: unique, while a late redelivery of the original notification
-- still meets the original's identity and is absorbed. `$1` the failed
-- upload. Returns the new id.
INSERT INTO uploads (tenant_id, source, bucket, object_key, object_identity,
                     version_id, etag, size_bytes, event_time, retry_of)
SELECT tenant_id, source, bucket, object_key, object_identity || ' retry:' || id,
       version_id, etag, size_bytes, event_time, id
FROM uploads
WHERE id = $1 AND state = 'failed'
RETURNING id;

-- name: queue_stats
-- Queue depth for the metrics: queued and running counts and the age of the
-- oldest queued upload in seconds, then held uploads and how long the
-- oldest has waited for a decision. Each half reads one partial index
-- (`uploads_runnable_order_idx`, `uploads_held_idx`), never the history.
SELECT q.queued, q.running, q.oldest_queued_age_s, h.held, h.oldest_held_age_s
FROM (SELECT count(*) FILTER (WHERE state = 'queued') AS queued,
             count(*) FILTER (WHERE state = 'running') AS running,
             COALESCE(EXTRACT(EPOCH FROM now() - min(queued_at) FILTER (WHERE state = 'queued')), 0)::float8
                 AS oldest_queued_age_s
      FROM uploads
      WHERE state IN ('queued', 'running')) q,
     (SELECT count(*) AS held,
             COALESCE(EXTRACT(EPOCH FROM now() - min(finished_at)), 0)::float8 AS oldest_held_age_s
      FROM uploads
      WHERE state = 'held') h;

-- name: hold
-- Ends an upload as held: creations and updates are applied, deactivations
-- wait for `userfeed uploads approve`. `$1` id, `$2` token, `$3` held
-- deactivations, `$4` reason.
UPDATE uploads
SET state = 'held', lease_owner = NULL, lease_expires_at = NULL, finished_at = now(),
    held_deactivations = $3, hold_reason = $4, failure_reason = NULL
WHERE id = $1 AND lease_token = $2 AND state IN ('running', 'preview');

-- name: resolve_hold
-- Ends a hold: the upload becomes `succeeded`, remembering how the hold
-- was resolved. `$1` id, `$2` `approved` or `rejected`, `$3` users deactivated.
UPDATE uploads
SET state = 'succeeded', hold_resolution = $2, resolved_at = now(), rows_deactivated = $3
WHERE id = $1 AND state = 'held';

-- name: supersede_if_newer
-- Ends a just-claimed upload as superseded when a newer upload of the same
-- tenant is already queued: every file is a full list, so only the newest
-- matters, and applying the older ones first would only churn users (and
-- could briefly deactivate people the newer file keeps).
-- `$1` id, `$2` token, `$3` tenant. Returns the newest upload's id.
UPDATE uploads u
SET state = 'superseded', superseded_by = n.newest, finished_at = now(),
    lease_owner = NULL, lease_expires_at = NULL, failure_reason = NULL
FROM (SELECT max(id) AS newest FROM uploads
      WHERE tenant_id = $3 AND state = 'queued' AND id > $1) n
WHERE u.id = $1 AND u.lease_token = $2 AND u.state = 'running' AND n.newest IS NOT NULL
RETURNING n.newest AS newest;

-- name: insert_undo
-- → succeeded: the upload that undoes `$1` (`uploads.undo_of`, migration
-- 0014). An undo runs in its caller's transaction, which writes its change
-- log and counts and commits them with this row, so it is born finished and
-- never claimable. `uploads_undo_of_key` makes a second undo of `$1` a
-- unique violation. Returns the new id.
INSERT INTO uploads (tenant_id, source, bucket, object_key, object_identity, state, attempts,
                     started_at, finished_at, undo_of)
SELECT tenant_id, 'undo', '', 'undo of upload ' || id, 'undo:' || id, 'succeeded', 1,
       now(), now(), id
FROM uploads
WHERE id = $1
RETURNING id;
