-- Transaction settings: planner choices and commit durability, each
-- with the measurement that made it necessary.

-- name: set_batch_planner
-- Planner settings for the set-based merge and link statements: a fresh
-- plan each time (see [`FORCE_CUSTOM_PLANS`]), and no sequential or bitmap
-- scans, so that every read of a large table is an index probe.
--
-- A batch is small next to the tables it reads (thousands of rows against
-- a tenant's whole users, managers, memberships and roles), and right after
-- a tenant's first large file those tables have no statistics yet. The
-- planner then chose hash and merge joins that read all of a tenant's users
-- and sorted whole link tables for every batch: measured at 100,000 users,
-- 40 ms per 1,000-row merge batch and 1 s per link chunk, growing with the
-- tenant. So the statements read large tables only through per-row scalar
-- subqueries (index probes whatever the statistics), join only their own
-- CTEs to one another (hash joins stay allowed there), and these settings
-- rule out the full scans that would remain possible, such as for a user's
-- current managers. Each batch then costs in proportion to the batch, not
-- to the tenant.
--
-- JIT off: the statements' estimated cost (set-returning functions over
-- every row, scans ruled out) is far past `jit_above_cost`, and compiling
-- them took 0.3 to 1 s per batch (measured), far more than running them.
SET LOCAL plan_cache_mode = force_custom_plan;
SET LOCAL enable_seqscan = off;
SET LOCAL enable_bitmapscan = off;
SET LOCAL jit = off;

-- name: classify_batch_planner
-- [`SET_BATCH_PLANNER`] for the digest check after staging
-- ([`CLASSIFY_BY_EMAIL`]), which follows [`MARK_DUPLICATES_PLANNER`] in the
-- same transaction: nested loops back on, so each staged row probes the
-- users index.
SET LOCAL enable_nestloop = on;
SET LOCAL plan_cache_mode = force_custom_plan;
SET LOCAL enable_seqscan = off;
SET LOCAL enable_bitmapscan = off;
SET LOCAL jit = off;

-- name: set_file_planner
-- Planner settings for the whole-file statements (`merge_file`,
-- `link_file`), which join large sets: hash joins only. Measured at
-- 1,000,000 rows with the planner left to choose: merge joins sorting a
-- million users to disk for every chunk, and the chunk's rows read by a
-- bitmap scan of the whole upload and sorted (140 MB on disk) instead of
-- in index order up to the chunk's end. More memory for the hash tables
-- (times `hash_mem_multiplier`), so that a chunk's hashes stay in memory;
-- JIT off as for the batch statements.
SET LOCAL plan_cache_mode = force_custom_plan;
SET LOCAL work_mem = '64MB';
SET LOCAL enable_nestloop = off;
SET LOCAL enable_mergejoin = off;
SET LOCAL enable_bitmapscan = off;
SET LOCAL jit = off;

-- name: analyze_linked
-- Fresh statistics before whole-file links: the merge may just have
-- created a large share of the users, and the link tables grow with them.
-- With estimates of a few thousand users where there were a million, the
-- planner hashed the million users instead of the file's rows (measured:
-- 0.6 s per statement). Sampling costs well under a second for any size.
-- (Not `upload_rows`: its contents churn with every upload, so statistics
-- taken of one upload mislead the plans of the next; see
-- [`MARK_DUPLICATES_PLANNER`].)
ANALYZE users, user_managers, group_memberships, user_roles;

-- name: async_commit
-- Commits a batch transaction without waiting for its WAL to reach disk
-- (also an attempt's start and its classification after staging).
--
-- Safe here because no batch is the last word: if the server crashes and
-- loses the last batches committed this way, the upload is still `running`
-- (its lease then expires) and the retry starts from the file again, as
-- after any crash. The finish transaction, which decides deactivations and
-- marks the upload done, commits synchronously. Measured: with 1,000-row
-- batches, the flush per commit was about a third of staging time.
SET LOCAL synchronous_commit = off;

-- name: force_custom_plans
-- Forces a fresh plan for every statement of the transaction.
--
-- sqlx prepares statements, and after five executions PostgreSQL may switch
-- a prepared statement to a cached generic plan. The first executions of an
-- upload's lookups run while `users` and `upload_rows` are still small (a new
-- tenant's first file), so the generic plan is a sequential scan, and it
-- stays cached while the tables grow: measured, a 20,000-row first file took
-- 20 s instead of under 2 s. Planning each lookup costs well under a
-- millisecond per batch.
SET LOCAL plan_cache_mode = force_custom_plan;

-- name: feed_writer
-- Marks the transaction as the feed's own link writes, which the link
-- tables' triggers (migration 0011) do not treat as changes from outside.
SET LOCAL userfeed.feed_writer = 'on';

-- name: mark_duplicates_planner
-- Planner settings for [`MARK_DUPLICATES`]: no nested loops. Found when
-- `upload_rows` had statistics from an earlier upload (as autovacuum's
-- analyze leaves them, whenever it runs): the planner then estimated one
-- row for the new upload and joined the grouped keys to the rows in a
-- nested loop that regrouped the whole upload for every row. A 1,000,000-row
-- file ran for 15 minutes before it was cancelled; with hash joins the
-- statement takes well under a second whatever the statistics.
--
-- And fresh plans: this transaction also asks whether the tenant has any
-- digest (`ANY_DIGEST`), whose generic plan, once sqlx's prepared
-- statement switches to it, is a sequential scan of every tenant's users
-- hoping to meet the tenant early (measured: 1.4 s an upload with 3,000,000
-- users in 2,001 tenants, where the tenant index answers at once).
SET LOCAL enable_nestloop = off;
SET LOCAL plan_cache_mode = force_custom_plan;

-- name: preview_deadline
-- A preview's transaction may take at most `$1` milliseconds in any one
-- statement, or in waiting idle between statements (text, as
-- `set_config` takes it). A preview holds a pooled connection and row
-- locks for its whole file; the deadline makes sure it gives both back
-- even if its caller has gone (`service::fair`). `SET LOCAL` cannot take
-- a parameter; `set_config(..., true)` is its form that can.
SELECT set_config('statement_timeout', $1, true),
       set_config('idle_in_transaction_session_timeout', $1, true);
