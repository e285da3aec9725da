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
/// 1. Only the head of a tenant may run, i.e. its oldest unfinished upload:
///    a tenant's files are full lists and must apply in arrival order.
/// 2. A head is claimable when it is queued (and past any retry backoff) or
///    when it is running under a lease that has expired (its worker died).
///    A head that is running under a live lease blocks its whole tenant.
/// 3. Runnable uploads are walked oldest first through the partial index
///    `uploads_runnable_order_idx` (finished history is never read), and the
///    first claimable one that is its tenant's head (no older runnable
///    upload of the tenant: one probe of `uploads_runnable_idx`) wins. So the
///    oldest waiting file goes first across tenants, and a claim reads only
///    the uploads ahead of it: normally the few heads currently running.
/// 4. `FOR UPDATE SKIP LOCKED` makes concurrent claimers take different rows
///    instead of queueing behind each other. When a locked row changed under
///    us, PostgreSQL re-checks the conditions on the new version, so a head
///    another worker just claimed or finished is skipped, not re-run.
/// 5. The claim bumps `lease_token`: the fencing token every later write of
///    this attempt must present.
///
/// Alternatives measured or considered:
/// - Computing every tenant's head first (`SELECT DISTINCT ON (tenant_id)`
///   over the runnable uploads) and taking the oldest claimable one: the
///   first version of this query. Correct, but it reads and sorts every
///   runnable upload on every claim: 12 ms per claim with 2,000 tenants ten
///   uploads deep, against 0.4 ms for this walk (`EXPLAIN ANALYZE`; with
///   commits, `scripts/bench` measures about 750 claims a second, each
///   followed by its upload finishing).
/// - A per-tenant advisory lock: works, but the lock lives in a session, so
///   it ties the claim to one pooled connection for the whole upload and
///   cannot express "expired".
/// - `SELECT ... FOR UPDATE SKIP LOCKED` on the tenant row: needs a
///   transaction open for the whole upload, which the design forbids (no
///   transaction spans a streaming file).
/// - Claiming without the head restriction and relying on the unique index
///   `uploads_one_running_per_tenant` alone: correct, but under contention
///   most attempts would end in a unique violation. The index stays as the
///   last line of defence; a violation is treated as "nothing claimed".
pub const CLAIM: &str = r#"
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

/// The newest upload of the same tenant after `$1` (by id, the claim's
/// order) that has applied (`succeeded`, `held`) or will run (`queued`,
/// `running`): retrying `$1` is refused while one exists. Newer uploads
/// that `failed` or were `superseded` changed nothing for good, so they do
/// not block it.
pub const NEWER_BLOCKING_RETRY: &str = r#"
SELECT n.id, n.state
FROM uploads o
JOIN uploads n ON n.tenant_id = o.tenant_id AND n.id > o.id
WHERE o.id = $1 AND n.state IN ('succeeded', 'held', 'queued', 'running')
ORDER BY n.id DESC
LIMIT 1
"#;

/// Queues a failed upload's object again as a new upload, newest of its
/// tenant so the claim takes it next. The identity gets the retried id
/// appended: unique, while a late redelivery of the original notification
/// still meets the original's identity and is absorbed. `$1` the failed
/// upload. Returns the new id.
pub const INSERT_RETRY: &str = r#"
INSERT INTO uploads (tenant_id, source, bucket, object_key, object_identity,
                     version_id, etag, size_bytes, event_time, retry_of)
SELECT tenant_id, source, bucket, object_key, object_identity || ' retry:' || id,
       version_id, etag, size_bytes, event_time, id
FROM uploads
WHERE id = $1 AND state = 'failed'
RETURNING id
"#;

/// Queue depth for the metrics: queued and running counts and the age of the
/// oldest queued upload in seconds, then held uploads and how long the
/// oldest has waited for a decision. Each half reads one partial index
/// (`uploads_runnable_order_idx`, `uploads_held_idx`), never the history.
pub const QUEUE_STATS: &str = r#"
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
      WHERE state = 'held') h
"#;

/// Lines up the feed-managed users absent from the upload's file for
/// deactivation: [`CLASSIFY_BY_EMAIL`] found them (before the merge, which
/// never changes who is absent: it only touches users the file names).
/// `$1` upload.
pub const QUEUE_ABSENT: &str = r#"
INSERT INTO upload_deactivations (upload_id, user_id)
SELECT upload_id, user_id FROM upload_pending
WHERE upload_id = $1 AND line IS NULL
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

/// The creations and updates an upload has made, over all its attempts.
/// A retried upload re-merges rows an earlier attempt already committed and
/// finds them unchanged; creations (`users.created_by_upload_id`, migration
/// 0013) and the change log (never cleared between attempts) say what the
/// upload as a whole did, so the final counters come from them. Reads
/// `users_created_by_upload_idx` and `upload_changes_upload_idx`. `$1` upload.
pub const COUNT_LOGGED_CHANGES: &str = r#"
SELECT (SELECT count(*) FROM users WHERE created_by_upload_id = $1) AS created,
       (SELECT count(*) FROM upload_changes
        WHERE upload_id = $1 AND kind IN ('updated', 'reactivated')) AS updated
"#;

/// The users an upload created, in the order it created them, for its
/// change log (`report::changes`): creations are not logged as entries
/// (migration 0013). `$1` upload.
pub const CREATED_BY_UPLOAD: &str = r#"
SELECT id, email FROM users WHERE created_by_upload_id = $1 ORDER BY id
"#;

/// Keeps an upload's first `$2` row problems by line and deletes the rest
/// (merge-time rejections are written by set-based statements without a
/// running count; the parse-time ones over the limit were never written),
/// recording how many were not kept: `$3` already dropped plus those
/// deleted here. `$1` upload.
pub const TRIM_ROW_PROBLEMS: &str = r#"
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
RETURNING row_problems_dropped AS n
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

/// Planner settings for the set-based merge and link statements: a fresh
/// plan each time (see [`FORCE_CUSTOM_PLANS`]), and no sequential or bitmap
/// scans, so that every read of a large table is an index probe.
///
/// A batch is small next to the tables it reads (thousands of rows against
/// a tenant's whole users, managers, memberships and roles), and right after
/// a tenant's first large file those tables have no statistics yet. The
/// planner then chose hash and merge joins that read all of a tenant's users
/// and sorted whole link tables for every batch: measured at 100,000 users,
/// 40 ms per 1,000-row merge batch and 1 s per link chunk, growing with the
/// tenant. So the statements read large tables only through per-row scalar
/// subqueries (index probes whatever the statistics), join only their own
/// CTEs to one another (hash joins stay allowed there), and these settings
/// rule out the full scans that would remain possible, such as for a user's
/// current managers. Each batch then costs in proportion to the batch, not
/// to the tenant.
///
/// JIT off: the statements' estimated cost (set-returning functions over
/// every row, scans ruled out) is far past `jit_above_cost`, and compiling
/// them took 0.3 to 1 s per batch (measured), far more than running them.
pub const SET_BATCH_PLANNER: &str = "SET LOCAL plan_cache_mode = force_custom_plan; \
    SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL jit = off";

/// [`SET_BATCH_PLANNER`] for the digest check after staging
/// ([`CLASSIFY_BY_EMAIL`]), which follows [`MARK_DUPLICATES_PLANNER`] in the
/// same transaction: nested loops back on, so each staged row probes the
/// users index.
pub const CLASSIFY_BATCH_PLANNER: &str = "SET LOCAL enable_nestloop = on; \
    SET LOCAL plan_cache_mode = force_custom_plan; \
    SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL jit = off";

/// Planner settings for the whole-file statements (`merge_file!`,
/// `link_file!`), which join large sets: hash joins only. Measured at
/// 1,000,000 rows with the planner left to choose: merge joins sorting a
/// million users to disk for every chunk, and the chunk's rows read by a
/// bitmap scan of the whole upload and sorted (140 MB on disk) instead of
/// in index order up to the chunk's end. More memory for the hash tables
/// (times `hash_mem_multiplier`), so that a chunk's hashes stay in memory;
/// JIT off as for the batch statements.
pub const SET_FILE_PLANNER: &str = "SET LOCAL plan_cache_mode = force_custom_plan; \
    SET LOCAL work_mem = '64MB'; SET LOCAL enable_nestloop = off; \
    SET LOCAL enable_mergejoin = off; SET LOCAL enable_bitmapscan = off; SET LOCAL jit = off";

/// Fresh statistics before whole-file links: the merge may just have
/// created a large share of the users, and the link tables grow with them.
/// With estimates of a few thousand users where there were a million, the
/// planner hashed the million users instead of the file's rows (measured:
/// 0.6 s per statement). Sampling costs well under a second for any size.
/// (Not `upload_rows`: its contents churn with every upload, so statistics
/// taken of one upload mislead the plans of the next; see
/// [`MARK_DUPLICATES_PLANNER`].)
pub const ANALYZE_LINKED: &str = "ANALYZE users, user_managers, group_memberships, user_roles";

/// Commits a batch transaction without waiting for its WAL to reach disk
/// (also an attempt's start and its classification after staging).
///
/// Safe here because no batch is the last word: if the server crashes and
/// loses the last batches committed this way, the upload is still `running`
/// (its lease then expires) and the retry starts from the file again, as
/// after any crash. The finish transaction, which decides deactivations and
/// marks the upload done, commits synchronously. Measured: with 1,000-row
/// batches, the flush per commit was about a third of staging time.
pub const ASYNC_COMMIT: &str = "SET LOCAL synchronous_commit = off";

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

/// Takes the staging table for a `TRUNCATE`, or fails at once when anyone
/// else has it open (see `apply::postgres::drop_staged`).
pub const LOCK_STAGING_NOWAIT: &str = "LOCK TABLE upload_rows IN ACCESS EXCLUSIVE MODE NOWAIT";

/// Whether an upload other than `$1` is running (and so may have rows
/// staged). Reads the partial index of runnable uploads.
pub const OTHERS_RUNNING: &str =
    "SELECT EXISTS (SELECT 1 FROM uploads WHERE state = 'running' AND id <> $1) AS others";

/// Empties the staging table, under [`LOCK_STAGING_NOWAIT`] with no other
/// upload running.
pub const TRUNCATE_STAGING: &str = "TRUNCATE upload_rows";

/// Drops row errors of an earlier attempt, so a retried upload reports each
/// problem once.
pub const DELETE_ROW_ERRORS: &str = "DELETE FROM upload_row_errors WHERE upload_id = $1";

/// Each user's roles, managers' emails and group IDs, comma-joined and
/// sorted, for `userfeed users list`. Correlated subqueries over the
/// per-user primary keys and indexes. Roles come from `user_all_roles`,
/// which lists the implicit Learner of every user (migration 0013). `$1`
/// tenant.
pub const USER_LINKS: &str = r#"
SELECT u.id,
       COALESCE((SELECT string_agg(r.role, ',' ORDER BY r.role)
                 FROM user_all_roles r WHERE r.user_id = u.id), '') AS roles,
       COALESCE((SELECT string_agg(m.email, ',' ORDER BY m.email)
                 FROM user_managers um JOIN users m ON m.id = um.manager_id
                 WHERE um.user_id = u.id), '') AS managers,
       COALESCE((SELECT string_agg(g.group_key, ',' ORDER BY g.group_key)
                 FROM group_memberships gm JOIN groups g ON g.id = gm.group_id
                 WHERE gm.user_id = u.id), '') AS groups
FROM users u
WHERE u.tenant_id = $1
"#;

// ---------------------------------------------------------------------------
// The set-based PostgreSQL apply path (`apply::postgres::PgStore`).
//
// Each batch is one statement: data-modifying CTEs share one snapshot, so
// the batch is classified once and every write (users, change log, pending
// deactivations, row errors) reads that one classification. The rules are
// those of `apply::portable`, which stays the reference: a test applies the
// same files through both and compares every table.
// ---------------------------------------------------------------------------

/// Copies a batch of parsed rows into the staging table (text format; the
/// store escapes the values). `profile` holds the values to set, with JSON
/// `null` for a cleared field, so the merge is `jsonb_strip_nulls(old || new)`.
pub const COPY_STAGED_ROWS: &str = "COPY upload_rows (upload_id, line, match_key, email, \
    external_id, first_name, last_name, active, profile, error_column, error_message, \
    managers, groups, roles, digest, repeat_hint) FROM STDIN";

/// The tenant's current feed epoch (see migration 0011). `$1` tenant.
pub const TENANT_EPOCH: &str = "SELECT feed_epoch AS epoch FROM tenants WHERE id = $1";

/// Whether any user of the tenant has a digest: when none has (a first
/// load, or right after the migration), every row is handled and the
/// pending lines are not written. `$1` tenant.
pub const ANY_DIGEST: &str =
    "SELECT EXISTS (SELECT 1 FROM users WHERE tenant_id = $1 AND feed_digest IS NOT NULL) AS any";

/// One join of the upload's staged rows to the tenant's users (a hash
/// `FULL JOIN`, each side read once) lines up in `upload_pending`:
/// - with `$3` (the tenant has digests), the lines the merge and link
///   phases must handle: every staged row except those whose digest equals
///   their user's (unchanged since the last upload, and nothing outside the
///   file has changed what they do; see `map::StagedRow::digest_for`);
/// - with `$4` (the file has no status column), the feed-managed active
///   users no staged row names (line NULL), which the finish deactivates.
///
/// Returns how many of each. `$1` upload, `$2` tenant.
///
/// Measured at 1,000,000 rows against the two statements it replaces (a
/// `LEFT JOIN` for the lines, an anti-join for the absent at the finish):
/// 1.47 to 1.74 s (statement log, two runs) against 1.43 s plus 1.25 s.
/// A `MATERIALIZED` join feeding two inserts (lines here, absent users
/// straight into `upload_deactivations`) cost as
/// much as the two statements: the tuplestore of a million rows spills.
macro_rules! classify {
    (key = $key:literal) => {
        concat!(
            r#"
WITH lined AS (
    INSERT INTO upload_pending (upload_id, line, user_id)
    SELECT $1, r.line, CASE WHEN r.line IS NULL THEN u.id END
    FROM (SELECT line, match_key, digest, error_message FROM upload_rows
          WHERE upload_id = $1) r
    FULL JOIN (SELECT u.id, "#,
            $key,
            r#" AS key, u.feed_digest, u.feed_managed, u.active
               FROM users u WHERE u.tenant_id = $2) u ON u.key = r.match_key
    WHERE (r.line IS NOT NULL AND $3
           AND (r.digest IS NULL OR r.error_message IS NOT NULL
                OR u.feed_digest IS DISTINCT FROM r.digest))
       OR (r.line IS NULL AND $4 AND u.feed_managed AND u.active)
    RETURNING line
)
SELECT count(line) AS pending, count(*) - count(line) AS absent FROM lined
"#
        )
    };
}

/// [`classify!`] for tenants matching on email.
pub const CLASSIFY_BY_EMAIL: &str = classify!(key = "lower(u.email)");

/// [`classify!`] for tenants matching on external ID.
pub const CLASSIFY_BY_EXTERNAL_ID: &str = classify!(key = "u.external_id");

/// Drops an upload's pending lines (at the start of every attempt and at the end).
pub const DELETE_PENDING_LINES: &str = "DELETE FROM upload_pending WHERE upload_id = $1";

/// Marks the transaction as the feed's own link writes, which the link
/// tables' triggers (migration 0011) do not treat as changes from outside.
pub const FEED_WRITER: &str = "SET LOCAL userfeed.feed_writer = 'on'";

/// Copies row problems found while parsing (text format).
pub const COPY_ROW_ERRORS: &str =
    "COPY upload_row_errors (upload_id, line, column_name, severity, message) FROM STDIN";

/// Planner settings for [`MARK_DUPLICATES`]: no nested loops. Found when
/// `upload_rows` had statistics from an earlier upload (as autovacuum's
/// analyze leaves them, whenever it runs): the planner then estimated one
/// row for the new upload and joined the grouped keys to the rows in a
/// nested loop that regrouped the whole upload for every row. A 1,000,000-row
/// file ran for 15 minutes before it was cancelled; with hash joins the
/// statement takes well under a second whatever the statistics.
///
/// And fresh plans: this transaction also asks whether the tenant has any
/// digest (`ANY_DIGEST`), whose generic plan, once sqlx's prepared
/// statement switches to it, is a sequential scan of every tenant's users
/// hoping to meet the tenant early (measured: 1.4 s an upload with 3,000,000
/// users in 2,001 tenants, where the tenant index answers at once).
pub const MARK_DUPLICATES_PLANNER: &str =
    "SET LOCAL enable_nestloop = off; SET LOCAL plan_cache_mode = force_custom_plan";

/// Marks every row repeating a key seen on an earlier line of the file as
/// rejected, naming that first line. A row that already has an error keeps
/// it (as in the portable store). `$1` upload, `$2` the key column's header.
///
/// Only the keys of rows the parser hinted as possible repeats
/// (`repeat_hint`, from a Bloom filter that is never wrong about a real
/// repeat) are grouped, and the pipeline skips this statement when it
/// hinted none: grouping every key of a 1,000,000-row file cost 1.2 to
/// 1.3 s whatever `work_mem` (measured with 4 MB to 256 MB), against 0.2 to
/// 0.4 s to scan for the hints.
pub const MARK_DUPLICATES: &str = r#"
UPDATE upload_rows r
SET error_column = $2,
    error_message = 'duplicate of line ' || d.first
                    || ': the same person appears twice; this row was skipped'
FROM (SELECT match_key, min(line) AS first
      FROM upload_rows
      WHERE upload_id = $1
        AND match_key IN (SELECT match_key FROM upload_rows
                          WHERE upload_id = $1 AND repeat_hint)
      GROUP BY match_key HAVING count(*) > 1) d
WHERE r.upload_id = $1 AND r.match_key = d.match_key AND r.line > d.first
  AND r.error_message IS NULL
"#;

/// One merge statement, for a key expression over users `u` and the other
/// identity (the one that may collide with another user's).
///
/// Parameters: `$1` upload, `$2` after line, `$3` batch rows, `$4` tenant,
/// `$5` the file has a status column, `$6` the collision column's header,
/// `$7` the email column's header, `$8` only the pending lines (see
/// [`CLASSIFY_BY_EMAIL`]).
///
/// 1. `looked`: each row of the batch with the user its key names, and the
///    owner of the other identity it asks for, looked up only when that
///    differs from the matched user's own (so an unchanged re-feed does no
///    second lookup).
///    A row whose user already has every value it carries is `same`: it is
///    counted and goes no further, so an unchanged file costs one lookup a
///    row. (Leaving it out of step 2 changes nothing: a later row asking for
///    its identity is either the same person, a duplicate, or finds that
///    identity taken by its user already.)
/// 2. `ranked`: among rows not yet rejected, the first line asking for an
///    identity wins it; later lines of the batch asking for it are
///    rejected (the portable store's "claimed" map).
/// 3. `final`: reject, create, update or same, with what changed.
/// 4. The writes, each from `final`: a row that changes nothing writes
///    nothing, which makes an unchanged nightly file almost free of WAL.
/// 5. The counts, and the last line, for the progress of the upload.
macro_rules! merge_batch {
    (key = $key:literal, other_row = $orow:literal, other_user = $ouser:literal,
     owner = $owner:literal, taken = $taken:literal) => {
        concat!(
            merge_head!(),
            r#"
keyed AS MATERIALIZED (
    SELECT b.*,
           (SELECT u FROM users u WHERE u.tenant_id = $4 AND "#,
            $key,
            r#" = b.match_key) AS u
    FROM batch b
),
unpacked AS (
    SELECT k.line, k.match_key, k.email, k.external_id, k.first_name, k.last_name,
           k.active, k.profile, k.error_column, k.error_message,
           (k.u).id AS uid, (k.u).email AS u_email, (k.u).external_id AS u_external_id,
           (k.u).first_name AS u_first_name, (k.u).last_name AS u_last_name,
           (k.u).active AS u_active, (k.u).profile AS u_profile,
           k.digest, (k.u).feed_digest AS u_digest
    FROM keyed k
),
looked AS MATERIALIZED (
    SELECT k.*, "#,
            $orow,
            r#" AS other,
           CASE WHEN k.error_message IS NULL AND "#,
            $orow,
            r#" IS NOT NULL
                     AND (k.uid IS NULL OR "#,
            $orow,
            r#" IS DISTINCT FROM "#,
            $ouser,
            r#")
                THEN (SELECT o.id FROM users o WHERE o.tenant_id = $4 AND "#,
            $owner,
            r#")
           END AS other_owner,
           "#,
            merge_same!(),
            r#"
    FROM unpacked k
),
"#,
            merge_tail!($taken)
        )
    };
}

/// [`merge_batch!`] with joins instead of per-row lookups, for large files
/// (see `PgStore`'s whole-file mode): each side is read once and hashed.
///
/// The owner of the other identity is looked up only for the rows that ask
/// (`asking`): in an unchanged file none does, and a hash join with an empty
/// side does not read the other, so the re-feed reads `users` once.
macro_rules! merge_file {
    (key = $key:literal, other_row = $orow:literal, other_user = $ouser:literal,
     owner = $owner:literal, taken = $taken:literal) => {
        concat!(
            merge_head!(),
            r#"
keyed AS MATERIALIZED (
    SELECT b.*, u.id AS uid, u.email AS u_email, u.external_id AS u_external_id,
           u.first_name AS u_first_name, u.last_name AS u_last_name,
           u.active AS u_active, u.profile AS u_profile, u.feed_digest AS u_digest
    FROM batch b
    LEFT JOIN users u ON u.tenant_id = $4 AND "#,
            $key,
            r#" = b.match_key
),
asking AS MATERIALIZED (
    SELECT k.line, k.email, k.external_id FROM keyed k
    WHERE k.error_message IS NULL AND "#,
            $orow,
            r#" IS NOT NULL
      AND (k.uid IS NULL OR "#,
            $orow,
            r#" IS DISTINCT FROM "#,
            $ouser,
            r#")
),
owners AS MATERIALIZED (
    -- The guard is a one-time filter: a tenant with no users yet (a first
    -- load) owns nothing, and then `asking` is not even read (1.1 s to
    -- materialize and 0.6 s to hash at 1,000,000 new people).
    SELECT k.line, o.id FROM asking k
    JOIN users o ON o.tenant_id = $4 AND "#,
            $owner,
            r#"
    WHERE EXISTS (SELECT FROM users t WHERE t.tenant_id = $4)
),
looked AS MATERIALIZED (
    SELECT k.*, "#,
            $orow,
            r#" AS other, w.id AS other_owner,
           "#,
            merge_same!(),
            r#"
    FROM keyed k
    LEFT JOIN owners w ON w.line = k.line
),
"#,
            merge_tail!($taken)
        )
    };
}

/// The rows of one merge statement: `$3` staged rows after line `$2`; with
/// `$8`, only the pending ones. Of the two branches, the one whose constant
/// condition is false is never run (a custom plan folds `$8`).
macro_rules! merge_head {
    () => {
        r#"
WITH batch AS (
    SELECT * FROM (
        SELECT r.line, r.match_key, r.email, r.external_id, r.first_name, r.last_name,
               r.active, r.profile, r.error_column, r.error_message, r.digest
        FROM upload_rows r
        WHERE NOT $8::boolean AND r.upload_id = $1 AND r.line > $2
        UNION ALL
        SELECT r.line, r.match_key, r.email, r.external_id, r.first_name, r.last_name,
               r.active, r.profile, r.error_column, r.error_message, r.digest
        FROM upload_pending p
        JOIN upload_rows r ON r.upload_id = p.upload_id AND r.line = p.line
        WHERE $8::boolean AND p.upload_id = $1 AND p.line > $2
    ) b
    ORDER BY b.line
    LIMIT $3
),"#
    };
}

/// Whether a looked-up row `k` (its values, and its user's as `u_*`) would
/// change nothing.
macro_rules! merge_same {
    () => {
        r#"COALESCE(k.uid IS NOT NULL AND k.error_message IS NULL
                    AND (k.email IS NULL OR k.email = k.u_email)
                    AND (k.external_id IS NULL OR k.external_id = k.u_external_id)
                    AND (k.first_name IS NULL OR k.first_name = k.u_first_name)
                    AND (k.last_name IS NULL OR k.last_name = k.u_last_name)
                    AND (NOT $5 OR COALESCE(k.active, TRUE)) = k.u_active
                    AND (k.profile IS NULL
                         OR jsonb_strip_nulls(k.u_profile || k.profile) = k.u_profile),
                    FALSE) AS same"#
    };
}

/// Steps 2 to 5 of [`merge_batch!`], from `looked`.
macro_rules! merge_tail {
    ($taken:literal) => {
        concat!(
            r#"ranked AS (
    SELECT l.*,
           CASE WHEN l.error_message IS NOT NULL THEN 'error'
                WHEN l.other_owner IS NOT NULL AND l.other_owner IS DISTINCT FROM l.uid THEN 'taken'
           END AS early,
           row_number() OVER (
               PARTITION BY (l.error_message IS NULL
                             AND (l.other_owner IS NULL OR l.other_owner = l.uid)),
                            l.other
               ORDER BY l.line) AS claim
    FROM looked l
    WHERE NOT l.same
),
decided AS (
    SELECT r.*,
           CASE WHEN r.early = 'error' THEN r.error_column
                WHEN r.early = 'taken' OR (r.other IS NOT NULL AND r.claim > 1) THEN $6
                WHEN r.uid IS NULL AND r.email IS NULL THEN $7
           END AS err_column,
           CASE WHEN r.early = 'error' THEN r.error_message
                WHEN r.early = 'taken' OR (r.other IS NOT NULL AND r.claim > 1) THEN "#, $taken, r#"
                WHEN r.uid IS NULL AND r.email IS NULL THEN 'email is required to create a user'
           END AS err_message,
           (NOT $5 OR COALESCE(r.active, TRUE)) AS want_active,
           (r.email IS NOT NULL AND r.email <> r.u_email) AS email_changed,
           (r.external_id IS NOT NULL AND r.external_id IS DISTINCT FROM r.u_external_id) AS ext_changed,
           (r.first_name IS NOT NULL AND r.first_name <> r.u_first_name) AS first_changed,
           (r.last_name IS NOT NULL AND r.last_name <> r.u_last_name) AS last_changed,
           CASE WHEN r.profile IS NULL THEN COALESCE(r.u_profile, '{}'::jsonb)
                ELSE jsonb_strip_nulls(COALESCE(r.u_profile, '{}'::jsonb) || r.profile)
           END AS n_profile
    FROM ranked r
),
final AS MATERIALIZED (
    SELECT d.*,
           CASE WHEN d.err_message IS NOT NULL THEN 'reject'
                WHEN d.uid IS NULL THEN 'create'
                WHEN d.email_changed OR d.ext_changed OR d.first_changed OR d.last_changed
                     OR (d.want_active AND NOT d.u_active)
                     OR d.n_profile IS DISTINCT FROM d.u_profile THEN 'update'
                ELSE 'same'
           END AS outcome,
           (d.err_message IS NULL AND d.uid IS NOT NULL AND d.want_active AND NOT d.u_active)
               AS reactivated,
           (d.err_message IS NULL AND d.uid IS NOT NULL AND NOT d.want_active AND d.u_active)
               AS deactivate
    FROM decided d
),
created AS (
    INSERT INTO users (tenant_id, email, external_id, first_name, last_name, active, profile,
                       feed_managed, created_by_upload_id, last_changed_upload_id, deactivated_at,
                       feed_digest)
    SELECT $4, f.email, f.external_id, COALESCE(f.first_name, ''), COALESCE(f.last_name, ''),
           f.want_active, f.n_profile, TRUE, $1, $1,
           CASE WHEN f.want_active THEN NULL ELSE now() END, f.digest
    FROM final f WHERE f.outcome = 'create'
    ORDER BY f.line
),
updated AS (
    UPDATE users u
    SET email = COALESCE(f.email, u.email),
        external_id = COALESCE(f.external_id, u.external_id),
        first_name = COALESCE(f.first_name, u.first_name),
        last_name = COALESCE(f.last_name, u.last_name),
        active = u.active OR f.reactivated,
        deactivated_at = CASE WHEN f.reactivated THEN NULL ELSE u.deactivated_at END,
        profile = f.n_profile,
        updated_at = now(),
        last_changed_upload_id = $1,
        feed_digest = f.digest
    FROM final f
    WHERE f.outcome = 'update' AND u.id = f.uid
),
restamped AS (
    -- Rows that change no field still store their digest (their links may
    -- be what changed, or the digest was cleared or outdated).
    UPDATE users u
    SET feed_digest = x.digest
    FROM (SELECT l.uid, l.digest FROM looked l WHERE l.same
          UNION ALL
          SELECT f.uid, f.digest FROM final f WHERE f.outcome = 'same') x
    WHERE u.id = x.uid AND u.feed_digest IS DISTINCT FROM x.digest
),
updated_log AS (
    INSERT INTO upload_changes (upload_id, user_id, kind, changes)
    SELECT $1, f.uid, CASE WHEN f.reactivated THEN 'reactivated' ELSE 'updated' END,
           jsonb_strip_nulls(jsonb_build_object(
               'email', CASE WHEN f.email_changed THEN jsonb_build_array(f.u_email, f.email) END,
               'external_id', CASE WHEN f.ext_changed
                                   THEN jsonb_build_array(f.u_external_id, f.external_id) END,
               'first_name', CASE WHEN f.first_changed
                                  THEN jsonb_build_array(f.u_first_name, f.first_name) END,
               'last_name', CASE WHEN f.last_changed
                                 THEN jsonb_build_array(f.u_last_name, f.last_name) END,
               'active', CASE WHEN f.reactivated THEN '[false, true]'::jsonb END))
           || CASE WHEN f.n_profile IS DISTINCT FROM f.u_profile THEN
                  (SELECT COALESCE(jsonb_object_agg('profile.' || k,
                              jsonb_build_array(COALESCE(f.u_profile -> k, 'null'::jsonb),
                                                COALESCE(f.n_profile -> k, 'null'::jsonb))),
                              '{}'::jsonb)
                   FROM (SELECT jsonb_object_keys(f.u_profile)
                         UNION SELECT jsonb_object_keys(f.n_profile)) AS keys (k)
                   WHERE f.u_profile -> k IS DISTINCT FROM f.n_profile -> k)
              ELSE '{}'::jsonb END
    FROM final f WHERE f.outcome = 'update'
),
deactivations AS (
    INSERT INTO upload_deactivations (upload_id, user_id)
    SELECT $1, f.uid FROM final f WHERE f.deactivate
    ON CONFLICT DO NOTHING
),
rejected AS (
    UPDATE upload_rows r SET rejected = TRUE
    FROM final f
    WHERE f.outcome = 'reject' AND r.upload_id = $1 AND r.line = f.line
),
errors AS (
    INSERT INTO upload_row_errors (upload_id, line, column_name, severity, message)
    SELECT $1, f.line, f.err_column, 'error', f.err_message
    FROM final f WHERE f.outcome = 'reject'
    ORDER BY f.line
)
SELECT (SELECT max(line) FROM looked) AS last,
       count(*) FILTER (WHERE outcome = 'create') AS created,
       count(*) FILTER (WHERE outcome = 'update') AS updated,
       (SELECT count(*) FROM looked WHERE same)
           + count(*) FILTER (WHERE outcome = 'same' AND NOT deactivate) AS unchanged,
       count(*) FILTER (WHERE outcome = 'reject') AS rejected
FROM final
"#
        )
    };
}

/// Invokes a merge macro (`merge_batch!` or `merge_file!`) for tenants that
/// match on email; the other identity, which may be taken by another user,
/// is the external ID.
macro_rules! merge_by_email {
    ($merge:ident) => {
        $merge!(
            key = "lower(u.email)",
            other_row = "k.external_id",
            other_user = "k.u_external_id",
            owner = "o.external_id = k.external_id",
            taken = "'external ID ' || to_json(r.external_id)::text || ' already belongs to another user'"
        )
    };
}

/// Invokes a merge macro for tenants that match on external ID; the other
/// identity is the email, compared case-insensitively as the unique index
/// does.
macro_rules! merge_by_external_id {
    ($merge:ident) => {
        $merge!(
            key = "u.external_id",
            other_row = "lower(k.email)",
            other_user = "lower(k.u_email)",
            owner = "lower(o.email) = lower(k.email)",
            taken = "'email ' || to_json(r.email)::text || ' already belongs to another user'"
        )
    };
}

/// Merges one batch when the tenant matches on email. See [`merge_batch!`].
/// `$7` is the email column's header.
pub const MERGE_BATCH_BY_EMAIL: &str = merge_by_email!(merge_batch);

/// Merges one batch when the tenant matches on external ID. See
/// [`merge_batch!`]. `$7` is the email column's header.
pub const MERGE_BATCH_BY_EXTERNAL_ID: &str = merge_by_external_id!(merge_batch);

/// [`MERGE_BATCH_BY_EMAIL`] for large files ([`merge_file!`]).
pub const MERGE_FILE_BY_EMAIL: &str = merge_by_email!(merge_file);

/// [`MERGE_BATCH_BY_EXTERNAL_ID`] for large files ([`merge_file!`]).
pub const MERGE_FILE_BY_EXTERNAL_ID: &str = merge_by_external_id!(merge_file);

/// One link statement: managers, group memberships and roles for a chunk
/// of accepted rows, once every row of the file has been merged (a manager
/// may appear later in the file than their report).
///
/// Parameters: `$1` upload, `$2` after line, `$3` rows, `$4` tenant, `$5`
/// `$6` `$7` the managers, groups and roles headers (for warnings), `$8`
/// only the pending lines.
///
/// Cells arrive trimmed from staging (`PgStore` writes each list as its
/// items, trimmed as `map::split_list` trims, joined by `|`), so they are
/// only split, with `string_to_array` (measured against a regular
/// expression: 0.12 s against 0.37 s for 100,000 two-item cells; the trim
/// in SQL added a fifth to the splitting). Managers are replaced by the row's list, but as a
/// difference: only links that are gone are deleted and only new ones are
/// inserted, so an unchanged file writes nothing (the delete and the insert
/// never touch the same row, which one statement requires). Memberships and
/// roles are only ever added, again only those missing. Warnings name the
/// line and column of each unknown manager, group or role.
macro_rules! link_chunk {
    (key = $key:literal) => {
        concat!(
            link_head!(),
            r#"
keyed AS MATERIALIZED (
    SELECT s.line, s.managers, s.groups, s.roles,
           (SELECT u.id FROM users u WHERE u.tenant_id = $4 AND "#,
            $key,
            r#" = s.match_key) AS uid
    FROM staged s
),
listed AS MATERIALIZED (
    SELECT * FROM keyed WHERE uid IS NOT NULL
),
mgr AS MATERIALIZED (
    SELECT l.line, l.uid, c.item, c.pos,
           (SELECT m.id FROM users m
            WHERE m.tenant_id = $4 AND lower(m.email) = lower(c.item)) AS mid
    FROM listed l
    CROSS JOIN LATERAL unnest(string_to_array(l.managers, '|')) WITH ORDINALITY AS c (item, pos)
    WHERE l.managers IS NOT NULL AND c.item <> ''
),
wanted AS MATERIALIZED (
    SELECT DISTINCT uid, mid FROM mgr WHERE mid IS NOT NULL AND mid <> uid
),
had AS MATERIALIZED (
    SELECT l.uid, unnest(ARRAY(SELECT um.manager_id FROM user_managers um
                               WHERE um.user_id = l.uid)) AS mid
    FROM listed l
    WHERE l.managers IS NOT NULL
),
gone AS (
    DELETE FROM user_managers um
    USING (SELECT h.uid, h.mid FROM had h
           WHERE NOT EXISTS (SELECT 1 FROM wanted w WHERE w.uid = h.uid AND w.mid = h.mid)) x
    WHERE um.user_id = x.uid AND um.manager_id = x.mid
),
linked AS (
    INSERT INTO user_managers (user_id, manager_id)
    SELECT w.uid, w.mid FROM wanted w
    WHERE NOT EXISTS (SELECT 1 FROM had h WHERE h.uid = w.uid AND h.mid = w.mid)
    ON CONFLICT DO NOTHING
),
grp AS MATERIALIZED (
    SELECT l.line, l.uid, c.item, c.pos,
           (SELECT g.id FROM groups g WHERE g.tenant_id = $4 AND g.group_key = c.item) AS gid
    FROM listed l
    CROSS JOIN LATERAL unnest(string_to_array(l.groups, '|')) WITH ORDINALITY AS c (item, pos)
    WHERE l.groups IS NOT NULL AND c.item <> ''
),
joined AS (
    INSERT INTO group_memberships (group_id, user_id, created_by_upload_id)
    SELECT DISTINCT g.gid, g.uid, $1::bigint FROM grp g
    WHERE g.gid IS NOT NULL
      AND (SELECT TRUE FROM group_memberships gm
           WHERE gm.group_id = g.gid AND gm.user_id = g.uid) IS NULL
    ON CONFLICT DO NOTHING
),
named_roles AS MATERIALIZED (
    SELECT l.line, l.uid, c.item, c.pos,
           CASE lower(c.item)
               WHEN 'learner' THEN 'learner'
               WHEN 'manager' THEN 'manager'
               WHEN 'administrator' THEN 'administrator'
               WHEN 'admin' THEN 'administrator'
           END AS role
    FROM listed l
    CROSS JOIN LATERAL unnest(string_to_array(l.roles, '|')) WITH ORDINALITY AS c (item, pos)
    WHERE l.roles IS NOT NULL AND c.item <> ''
),
roles_wanted AS (
    -- Learner is implicit (every user is one; migration 0013): never a row.
    SELECT mid AS uid, 'manager' AS role FROM wanted
    UNION SELECT uid, role FROM named_roles WHERE role IN ('manager', 'administrator')
),
granted AS (
    INSERT INTO user_roles (user_id, role)
    SELECT w.uid, w.role FROM roles_wanted w
    WHERE (SELECT TRUE FROM user_roles ur WHERE ur.user_id = w.uid AND ur.role = w.role) IS NULL
    ON CONFLICT DO NOTHING
),
"#,
            link_warnings!()
        )
    };
}

/// [`link_chunk!`] with joins instead of per-row lookups, for large files
/// (see `PgStore`'s whole-file mode): each table is read once and hashed,
/// and what is already there is subtracted as a set (a hash anti-join
/// against the link table itself: cheaper, measured, than first collecting
/// the listed users' links). Cells arrive trimmed from staging (`PgStore`
/// writes each list as its items joined by `|`), so they are only split.
///
/// The inserts are exact sets (an item repeated in one cell counts at its
/// first position only; then minus what is there) with no `ON CONFLICT`:
/// its speculative insertion probes the unique index once more per row,
/// measured at about twice a plain insert (500,000 pairs: 1.2 s against
/// 0.6 s), which a first load pays for every link it writes. A link added by
/// someone else between this statement's snapshot and its insert is a
/// unique violation, which is transient (`db::is_unique_race`): the retry
/// finds the link there.
///
/// Each insert arrives in key order, because order decides the cost of
/// the primary-key insertions: 1,500,000 memberships took 4.5 s in line
/// order and 12.9 s in a hash aggregate's order (psql, one run each). So
/// repeats are dropped by position instead of by `DISTINCT`, which keeps
/// the join's order (users, hence lines), and roles, which need a
/// `DISTINCT` over managers, are sorted before they are inserted.
macro_rules! link_file {
    (key = $key:literal) => {
        concat!(
            link_head!(),
            r#"
listed AS MATERIALIZED (
    SELECT s.line, s.managers, s.groups, s.roles, u.id AS uid
    FROM staged s
    JOIN users u ON u.tenant_id = $4 AND "#,
            $key,
            r#" = s.match_key
),
mgr AS MATERIALIZED (
    SELECT c.line, c.uid, c.item, c.pos, m.id AS mid, c.first
    FROM (SELECT l.line, l.uid, x.item, x.low, x.pos,
                 x.pos = 1 OR NOT (x.low = ANY (a.low[1:x.pos - 1])) AS first
          FROM listed l
          CROSS JOIN LATERAL (SELECT string_to_array(l.managers, '|') AS items,
                                     string_to_array(lower(l.managers), '|') AS low) a
          CROSS JOIN LATERAL unnest(a.items, a.low) WITH ORDINALITY AS x (item, low, pos)
          WHERE l.managers IS NOT NULL) c
    LEFT JOIN users m ON m.tenant_id = $4 AND lower(m.email) = c.low
    WHERE c.item <> ''
),
wanted AS MATERIALIZED (
    -- One row per line names a person once (unique emails, any case), so
    -- the first naming in each cell is already the distinct set.
    SELECT uid, mid FROM mgr WHERE mid IS NOT NULL AND mid <> uid AND first
),
had AS MATERIALIZED (
    SELECT um.user_id AS uid, um.manager_id AS mid
    FROM listed l
    JOIN user_managers um ON um.user_id = l.uid
    WHERE l.managers IS NOT NULL
),
gone AS (
    DELETE FROM user_managers um
    USING (SELECT h.uid, h.mid FROM had h
           LEFT JOIN wanted w ON w.uid = h.uid AND w.mid = h.mid
           WHERE w.uid IS NULL) x
    WHERE um.user_id = x.uid AND um.manager_id = x.mid
),
linked AS (
    INSERT INTO user_managers (user_id, manager_id)
    SELECT w.uid, w.mid FROM wanted w
    LEFT JOIN had h ON h.uid = w.uid AND h.mid = w.mid
    WHERE h.uid IS NULL
),
grp AS MATERIALIZED (
    SELECT c.line, c.uid, c.item, c.pos, g.id AS gid, c.first
    FROM (SELECT l.line, l.uid, x.item, x.pos,
                 x.pos = 1 OR NOT (x.item = ANY (a.items[1:x.pos - 1])) AS first
          FROM listed l
          CROSS JOIN LATERAL (SELECT string_to_array(l.groups, '|') AS items) a
          CROSS JOIN LATERAL unnest(a.items) WITH ORDINALITY AS x (item, pos)
          WHERE l.groups IS NOT NULL) c
    LEFT JOIN groups g ON g.tenant_id = $4 AND g.group_key = c.item
    WHERE c.item <> ''
),
joined AS (
    INSERT INTO group_memberships (group_id, user_id, created_by_upload_id)
    SELECT g.gid, g.uid, $1::bigint FROM grp g
    WHERE g.gid IS NOT NULL AND g.first
      AND NOT EXISTS (SELECT FROM group_memberships gm
                      WHERE gm.group_id = g.gid AND gm.user_id = g.uid)
),
named_roles AS MATERIALIZED (
    SELECT l.line, l.uid, c.item, c.pos,
           CASE lower(c.item)
               WHEN 'learner' THEN 'learner'
               WHEN 'manager' THEN 'manager'
               WHEN 'administrator' THEN 'administrator'
               WHEN 'admin' THEN 'administrator'
           END AS role
    FROM listed l
    CROSS JOIN LATERAL unnest(string_to_array(l.roles, '|')) WITH ORDINALITY AS c (item, pos)
    WHERE l.roles IS NOT NULL AND c.item <> ''
),
roles_wanted AS (
    -- Learner is implicit (every user is one; migration 0013): never a row.
    SELECT mid AS uid, 'manager' AS role FROM wanted
    UNION SELECT uid, role FROM named_roles WHERE role IN ('manager', 'administrator')
),
granted AS (
    INSERT INTO user_roles (user_id, role)
    SELECT w.uid, w.role FROM roles_wanted w
    WHERE NOT EXISTS (SELECT FROM user_roles ur WHERE ur.user_id = w.uid AND ur.role = w.role)
    ORDER BY w.uid, w.role
),
"#,
            link_warnings!()
        )
    };
}

/// The rows of one link statement: `$3` accepted staged rows after line
/// `$2`; with `$8`, only the pending ones (as in `merge_head!`).
macro_rules! link_head {
    () => {
        r#"
WITH staged AS (
    SELECT * FROM (
        SELECT r.line, r.match_key, r.managers, r.groups, r.roles
        FROM upload_rows r
        WHERE NOT $8::boolean AND r.upload_id = $1 AND r.line > $2
          AND NOT r.rejected AND r.error_message IS NULL
        UNION ALL
        SELECT r.line, r.match_key, r.managers, r.groups, r.roles
        FROM upload_pending p
        JOIN upload_rows r ON r.upload_id = p.upload_id AND r.line = p.line
        WHERE $8::boolean AND p.upload_id = $1 AND p.line > $2
          AND NOT r.rejected AND r.error_message IS NULL
    ) s
    ORDER BY s.line
    LIMIT $3
),"#
    };
}

/// The warnings of a link statement (unknown managers, groups and roles,
/// and self-management), then its result row: the last line handled.
macro_rules! link_warnings {
    () => {
        r#"warned AS (
    INSERT INTO upload_row_errors (upload_id, line, column_name, severity, message)
    SELECT $1, w.line, w.col, 'warning', w.msg
    FROM (
        SELECT line, pos, 1 AS k, $5::text AS col,
               'manager ' || to_json(item)::text
               || ' is not a user of this tenant; that link was skipped' AS msg
        FROM mgr WHERE mid IS NULL
        UNION ALL
        SELECT line, pos, 1, $5::text,
               'a user cannot be their own manager; that link was skipped'
        FROM mgr WHERE mid = uid
        UNION ALL
        SELECT line, pos, 2, $6::text,
               'group ' || to_json(item)::text || ' is not a group of this tenant; membership skipped'
        FROM grp WHERE gid IS NULL
        UNION ALL
        SELECT line, pos, 3, $7::text,
               'unknown role ' || to_json(item)::text
               || '; expected Learner, Manager or Administrator'
        FROM named_roles WHERE role IS NULL
    ) w
    ORDER BY w.line, w.k, w.pos
),
unclean AS (
    -- A row with a warning reports it again on every upload: no digest.
    UPDATE users u SET feed_digest = NULL
    FROM (SELECT uid FROM mgr WHERE mid IS NULL OR mid = uid
          UNION SELECT uid FROM grp WHERE gid IS NULL
          UNION SELECT uid FROM named_roles WHERE role IS NULL) w
    WHERE u.id = w.uid AND u.feed_digest IS NOT NULL
)
SELECT max(line) AS last FROM staged
"#
    };
}

/// Links a chunk when the tenant matches on email. See [`link_chunk!`].
pub const LINK_CHUNK_BY_EMAIL: &str = link_chunk!(key = "lower(u.email)");

/// Links a chunk when the tenant matches on external ID. See [`link_chunk!`].
pub const LINK_CHUNK_BY_EXTERNAL_ID: &str = link_chunk!(key = "u.external_id");

/// [`LINK_CHUNK_BY_EMAIL`] for large files ([`link_file!`]).
pub const LINK_FILE_BY_EMAIL: &str = link_file!(key = "lower(u.email)");

/// [`LINK_CHUNK_BY_EXTERNAL_ID`] for large files ([`link_file!`]).
pub const LINK_FILE_BY_EXTERNAL_ID: &str = link_file!(key = "u.external_id");
