//! Every hand-written SQL statement, named, with why it looks the way it does.
//!
//! Times are the database's `now()`, never a pod's clock: leases are compared
//! across pods, and one clock (the server's) makes skew between pods
//! irrelevant.

/// Claims the next runnable upload, at most one per tenant at a time.
///
/// `$1` lease owner (pod/worker name), `$2` lease length in seconds.
///
/// How it works:
/// 1. `heads` is the oldest unfinished upload of every tenant. Only that one
///    may run: a tenant's files are full lists and must apply in arrival
///    order. It reads only the partial index `uploads_runnable_idx`, so the
///    (ever-growing) history of finished uploads is never scanned.
/// 2. A head is claimable when it is queued (and past any retry backoff) or
///    when it is running under a lease that has expired (its worker died).
///    A head that is running under a live lease blocks its whole tenant.
/// 3. `FOR UPDATE SKIP LOCKED` makes concurrent claimers take different rows
///    instead of queueing behind each other. When a locked row changed under
///    us, PostgreSQL re-checks the `u.` conditions on the new version, so a
///    head another worker just claimed or finished is skipped, not re-run.
/// 4. The claim bumps `lease_token`: the fencing token every later write of
///    this attempt must present.
///
/// Alternatives measured or considered:
/// - A per-tenant advisory lock: works, but the lock lives in a session, so
///   it ties the claim to one pooled connection for the whole upload and
///   cannot express "expired".
/// - `SELECT ... FOR UPDATE SKIP LOCKED` on the tenant row: needs a
///   transaction open for the whole upload, which the design forbids (no
///   transaction spans a streaming file).
/// - Claiming without the `heads` restriction and relying on the unique index
///   `uploads_one_running_per_tenant` alone: correct, but under contention
///   most attempts would end in a unique violation. The index stays as the
///   last line of defence; a violation is treated as "nothing claimed".
pub const CLAIM: &str = r#"
WITH heads AS (
    SELECT DISTINCT ON (tenant_id) id
    FROM uploads
    WHERE state IN ('queued', 'running')
    ORDER BY tenant_id, id
),
candidate AS (
    SELECT u.id
    FROM uploads u
    JOIN heads h ON h.id = u.id
    WHERE (u.state = 'queued' AND (u.not_before IS NULL OR u.not_before <= now()))
       OR (u.state = 'running' AND u.lease_expires_at < now())
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
RETURNING u.id, u.tenant_id, u.lease_token, u.attempts, u.failure_reason
"#;

/// Renews a lease, and doubles as the fence at the start of every batch
/// transaction: it matches only while the upload is still running under the
/// caller's token, and the row lock it takes is held to commit, so a
/// re-claim cannot interleave with the batch.
///
/// A `preview` upload (see `apply::preview`) passes the fence too: it exists
/// only inside the preview's own transaction, which always rolls back, so
/// this and [`SUCCEED`] / [`HOLD`] accepting it can never affect a real one.
///
/// `$1` upload id, `$2` lease token, `$3` lease seconds.
pub const RENEW_LEASE: &str = r#"
UPDATE uploads
SET lease_expires_at = now() + make_interval(secs => $3)
WHERE id = $1 AND lease_token = $2 AND state IN ('running', 'preview')
"#;

/// Progress counters, written in each batch transaction so the history shows
/// a running upload's progress. `$1` id, `$2..$8` counters.
pub const SET_COUNTERS: &str = r#"
UPDATE uploads
SET rows_read = $2, rows_created = $3, rows_updated = $4, rows_unchanged = $5,
    rows_deactivated = $6, rows_rejected = $7
WHERE id = $1
"#;

/// Gives an upload back to the queue: on shutdown (`$4` = 1, the attempt
/// does not count) or after a transient error (`$4` = 0, with a backoff of
/// `$3` seconds). `$5` is the reason, kept for the history.
pub const HAND_BACK: &str = r#"
UPDATE uploads
SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL,
    not_before = now() + make_interval(secs => $3),
    attempts = GREATEST(attempts - $4, 0),
    failure_reason = $5
WHERE id = $1 AND lease_token = $2 AND state = 'running'
"#;

/// Ends an upload as failed, with the reason the customer's admin will read.
/// `$1` id, `$2` token, `$3` reason.
pub const FAIL: &str = r#"
UPDATE uploads
SET state = 'failed', lease_owner = NULL, lease_expires_at = NULL,
    finished_at = now(), failure_reason = $3
WHERE id = $1 AND lease_token = $2 AND state = 'running'
"#;

/// Ends an upload as succeeded. Runs in the same transaction as the
/// deactivation, so either both happen or neither. `$1` id, `$2` token.
pub const SUCCEED: &str = r#"
UPDATE uploads
SET state = 'succeeded', lease_owner = NULL, lease_expires_at = NULL,
    finished_at = now(), failure_reason = NULL
WHERE id = $1 AND lease_token = $2 AND state IN ('running', 'preview')
"#;

/// Creates the upload row of a local file, already claimed (lease token 1,
/// one attempt): `$4` = `running` for `userfeed import`, or `preview` for a
/// preview, whose row lives only inside its own rolled-back transaction.
/// `$1` tenant, `$2` folder, `$3` file name, `$5` lease seconds. The
/// one-running-upload-per-tenant index refuses an import while the tenant
/// has an upload running. Returns the new id.
pub const INSERT_LOCAL_UPLOAD: &str = r#"
INSERT INTO uploads (tenant_id, source, bucket, object_key, object_identity, state,
                     lease_token, lease_expires_at, attempts, started_at)
VALUES ($1, 'local', $2, $3, $4 || '-' || gen_random_uuid(), $4, 1,
        now() + make_interval(secs => $5), 1, now())
RETURNING id
"#;

/// Records an upload for an object version; does nothing when that version
/// was recorded before (SQS delivers at least once).
/// Returns the new id, or no row for a duplicate.
pub const RECORD_UPLOAD: &str = r#"
INSERT INTO uploads (tenant_id, source, bucket, object_key, object_identity,
                     version_id, etag, size_bytes, event_time)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (bucket, object_key, object_identity) DO NOTHING
RETURNING id
"#;

/// Queue depth for the metrics: queued and running counts and the age of the
/// oldest queued upload in seconds. Reads the partial index only.
pub const QUEUE_STATS: &str = r#"
SELECT count(*) FILTER (WHERE state = 'queued') AS queued,
       count(*) FILTER (WHERE state = 'running') AS running,
       COALESCE(EXTRACT(EPOCH FROM now() - min(queued_at) FILTER (WHERE state = 'queued')), 0)::float8
           AS oldest_queued_age_s
FROM uploads
WHERE state IN ('queued', 'running')
"#;

/// Lists the tenant's feed-managed active users missing from the upload's
/// file as to be deactivated, when matching on email: one set-based
/// anti-join on the staged keys instead of a per-user loop.
/// `$1` tenant, `$2` upload.
pub const QUEUE_ABSENT_BY_EMAIL: &str = r#"
INSERT INTO upload_deactivations (upload_id, user_id)
SELECT $2, u.id FROM users u
WHERE u.tenant_id = $1 AND u.feed_managed AND u.active
  AND NOT EXISTS (SELECT 1 FROM upload_rows r
                  WHERE r.upload_id = $2 AND r.match_key = lower(u.email))
ON CONFLICT DO NOTHING
"#;

/// As [`QUEUE_ABSENT_BY_EMAIL`], matching on external ID.
pub const QUEUE_ABSENT_BY_EXTERNAL_ID: &str = r#"
INSERT INTO upload_deactivations (upload_id, user_id)
SELECT $2, u.id FROM users u
WHERE u.tenant_id = $1 AND u.feed_managed AND u.active
  AND NOT EXISTS (SELECT 1 FROM upload_rows r
                  WHERE r.upload_id = $2 AND r.match_key = u.external_id)
ON CONFLICT DO NOTHING
"#;

/// How many deactivations the upload has lined up. `$1` upload.
pub const COUNT_PENDING_DEACTIVATIONS: &str =
    "SELECT count(*) AS n FROM upload_deactivations WHERE upload_id = $1";

/// The cap's denominator: the tenant's active feed-managed users. `$1` tenant.
pub const COUNT_ACTIVE_MANAGED: &str =
    "SELECT count(*) AS n FROM users WHERE tenant_id = $1 AND feed_managed AND active";

/// Logs the deactivations about to be performed (before they are, while
/// the users are still active). `$1` upload.
pub const LOG_DEACTIVATIONS: &str = r#"
INSERT INTO upload_changes (upload_id, user_id, kind)
SELECT d.upload_id, d.user_id, 'deactivated'
FROM upload_deactivations d JOIN users u ON u.id = d.user_id
WHERE d.upload_id = $1 AND u.active
"#;

/// Logs the users an upload created, in one statement at the end (the
/// merge inserts users without returning their ids). It runs in the finish
/// transaction, which commits together with the upload's success, so no
/// earlier attempt can have logged them already. `$1` upload.
pub const LOG_CREATED: &str = r#"
INSERT INTO upload_changes (upload_id, user_id, kind)
SELECT created_by_upload_id, id, 'created' FROM users
WHERE created_by_upload_id = $1
"#;

/// Performs an upload's lined-up deactivations. `$1` upload. Users already
/// inactive are left alone (and not counted).
pub const APPLY_DEACTIVATIONS: &str = r#"
UPDATE users u
SET active = FALSE, deactivated_at = now(), updated_at = now(), last_changed_upload_id = $1
FROM upload_deactivations d
WHERE d.upload_id = $1 AND d.user_id = u.id AND u.active
"#;

/// Forgets an upload's lined-up deactivations. `$1` upload.
pub const DELETE_PENDING_DEACTIVATIONS: &str =
    "DELETE FROM upload_deactivations WHERE upload_id = $1";

/// Ends an upload as held: creations and updates are applied, deactivations
/// wait for `userfeed uploads approve`. `$1` id, `$2` token, `$3` held
/// deactivations, `$4` reason.
pub const HOLD: &str = r#"
UPDATE uploads
SET state = 'held', lease_owner = NULL, lease_expires_at = NULL, finished_at = now(),
    held_deactivations = $3, hold_reason = $4, failure_reason = NULL
WHERE id = $1 AND lease_token = $2 AND state IN ('running', 'preview')
"#;

/// Ends a hold: the upload becomes `succeeded`, remembering how the hold
/// was resolved. `$1` id, `$2` `approved` or `rejected`, `$3` users deactivated.
pub const RESOLVE_HOLD: &str = r#"
UPDATE uploads
SET state = 'succeeded', hold_resolution = $2, resolved_at = now(), rows_deactivated = $3
WHERE id = $1 AND state = 'held'
"#;

/// Ends a just-claimed upload as superseded when a newer upload of the same
/// tenant is already queued: every file is a full list, so only the newest
/// matters, and applying the older ones first would only churn users (and
/// could briefly deactivate people the newer file keeps).
/// `$1` id, `$2` token, `$3` tenant. Returns the newest upload's id.
pub const SUPERSEDE_IF_NEWER: &str = r#"
UPDATE uploads u
SET state = 'superseded', superseded_by = n.newest, finished_at = now(),
    lease_owner = NULL, lease_expires_at = NULL, failure_reason = NULL
FROM (SELECT max(id) AS newest FROM uploads
      WHERE tenant_id = $3 AND state = 'queued' AND id > $1) n
WHERE u.id = $1 AND u.lease_token = $2 AND u.state = 'running' AND n.newest IS NOT NULL
RETURNING n.newest AS newest
"#;

/// For each staged row in `($2, $3]`, the first earlier line of the same file
/// with the same key: such a row is a duplicate and is rejected.
pub const EARLIER_DUPLICATES: &str = r#"
SELECT r.line, min(e.line) AS earlier
FROM upload_rows r
JOIN upload_rows e ON e.upload_id = r.upload_id AND e.match_key = r.match_key AND e.line < r.line
WHERE r.upload_id = $1 AND r.line > $2 AND r.line <= $3
GROUP BY r.line
"#;

/// Forces a fresh plan for every statement of the transaction.
///
/// sqlx prepares statements, and after five executions PostgreSQL may switch
/// a prepared statement to a cached generic plan. The first executions of an
/// upload's lookups run while `users` and `upload_rows` are still small (a new
/// tenant's first file), so the generic plan is a sequential scan, and it
/// stays cached while the tables grow: measured, a 20,000-row first file took
/// 20 s instead of under 2 s. Planning each lookup costs well under a
/// millisecond per batch.
pub const FORCE_CUSTOM_PLANS: &str = "SET LOCAL plan_cache_mode = force_custom_plan";

/// Drops an upload's staged rows (at the start of every attempt and at the end).
pub const DELETE_STAGED: &str = "DELETE FROM upload_rows WHERE upload_id = $1";

/// Drops row errors of an earlier attempt, so a retried upload reports each
/// problem once.
pub const DELETE_ROW_ERRORS: &str = "DELETE FROM upload_row_errors WHERE upload_id = $1";

/// Each user's roles, managers' emails and group IDs, comma-joined and
/// sorted, for `userfeed users list`. Correlated subqueries over the
/// per-user primary keys and indexes. `$1` tenant.
pub const USER_LINKS: &str = r#"
SELECT u.id,
       COALESCE((SELECT string_agg(r.role, ',' ORDER BY r.role)
                 FROM user_roles r WHERE r.user_id = u.id), '') AS roles,
       COALESCE((SELECT string_agg(m.email, ',' ORDER BY m.email)
                 FROM user_managers um JOIN users m ON m.id = um.manager_id
                 WHERE um.user_id = u.id), '') AS managers,
       COALESCE((SELECT string_agg(g.group_key, ',' ORDER BY g.group_key)
                 FROM group_memberships gm JOIN groups g ON g.id = gm.group_id
                 WHERE gm.user_id = u.id), '') AS groups
FROM users u
WHERE u.tenant_id = $1
"#;
