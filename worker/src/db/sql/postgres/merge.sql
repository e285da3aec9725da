-- The set-based merge of the PostgreSQL store (`apply::postgres::PgStore`).
--
-- Each batch is one statement: data-modifying CTEs share one snapshot, so
-- the batch is classified once and every write (users, change log, pending
-- deactivations, row errors) reads that one classification. The rules are
-- those of `apply::portable`, which stays the reference: a test applies the
-- same files through both and compares every table.
--
-- Variants: `by_email` for tenants matching on email (the other identity,
-- which may be taken by another user, is the external ID); `by_external_id`
-- for tenants matching on external ID (the other identity is the email,
-- compared case-insensitively as the unique index does).

-- name: merge_batch
-- One merge statement, for a key expression over users `u` and the other
-- identity (the one that may collide with another user's).
--
-- Parameters: `$1` upload, `$2` after line, `$3` batch rows, `$4` tenant,
-- `$5` the file has a status column, `$6` the collision column's header,
-- `$7` the email column's header, `$8` only the pending lines (see
-- [`CLASSIFY_BY_EMAIL`]).
--
-- 1. `looked`: each row of the batch with the user its key names, and the
--    owner of the other identity it asks for, looked up only when that
--    differs from the matched user's own (so an unchanged re-feed does no
--    second lookup).
--    A row whose user already has every value it carries is `same`: it is
--    counted and goes no further, so an unchanged file costs one lookup a
--    row. (Leaving it out of step 2 changes nothing: a later row asking for
--    its identity is either the same person, a duplicate, or finds that
--    identity taken by its user already.)
-- 2. `ranked`: among rows not yet rejected, the first line asking for an
--    identity wins it; later lines of the batch asking for it are
--    rejected (the portable store's "claimed" map).
-- 3. `final`: reject, create, update or same, with what changed.
-- 4. The writes, each from `final`: a row that changes nothing writes
--    nothing, which makes an unchanged nightly file almost free of WAL.
-- 5. The counts, and the last line, for the progress of the upload.
-- variant: by_email
--   key = lower(u.email)
--   other_row = k.external_id
--   other_user = k.u_external_id
--   owner = o.external_id = k.external_id
--   taken = {{message EXTERNAL_ID_TAKEN r.external_id}}
-- variant: by_external_id
--   key = u.external_id
--   other_row = lower(k.email)
--   other_user = lower(k.u_email)
--   owner = lower(o.email) = lower(k.email)
--   taken = {{message EMAIL_TAKEN r.email}}
{{> merge_head}}
keyed AS MATERIALIZED (
    SELECT b.*,
           (SELECT u FROM users u WHERE u.tenant_id = $4 AND {{key}} = b.match_key) AS u
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
    SELECT k.*, {{other_row}} AS other,
           CASE WHEN k.error_message IS NULL AND {{other_row}} IS NOT NULL
                     AND (k.uid IS NULL OR {{other_row}} IS DISTINCT FROM {{other_user}})
                THEN (SELECT o.id FROM users o WHERE o.tenant_id = $4 AND {{owner}})
           END AS other_owner,
           {{> merge_same}}
    FROM unpacked k
),
{{> merge_tail}};

-- name: merge_file
-- `merge_batch` with joins instead of per-row lookups, for large files
-- (see `PgStore`'s whole-file mode): each side is read once and hashed.
--
-- The owner of the other identity is looked up only for the rows that ask
-- (`asking`): in an unchanged file none does, and a hash join with an empty
-- side does not read the other, so the re-feed reads `users` once.
-- variant: by_email
--   key = lower(u.email)
--   other_row = k.external_id
--   other_user = k.u_external_id
--   owner = o.external_id = k.external_id
--   taken = {{message EXTERNAL_ID_TAKEN r.external_id}}
-- variant: by_external_id
--   key = u.external_id
--   other_row = lower(k.email)
--   other_user = lower(k.u_email)
--   owner = lower(o.email) = lower(k.email)
--   taken = {{message EMAIL_TAKEN r.email}}
{{> merge_head}}
keyed AS MATERIALIZED (
    SELECT b.*, u.id AS uid, u.email AS u_email, u.external_id AS u_external_id,
           u.first_name AS u_first_name, u.last_name AS u_last_name,
           u.active AS u_active, u.profile AS u_profile, u.feed_digest AS u_digest
    FROM batch b
    LEFT JOIN users u ON u.tenant_id = $4 AND {{key}} = b.match_key
),
asking AS MATERIALIZED (
    SELECT k.line, k.email, k.external_id FROM keyed k
    WHERE k.error_message IS NULL AND {{other_row}} IS NOT NULL
      AND (k.uid IS NULL OR {{other_row}} IS DISTINCT FROM {{other_user}})
),
owners AS MATERIALIZED (
    -- The guard is a one-time filter: a tenant with no users yet (a first
    -- load) owns nothing, and then `asking` is not even read (1.1 s to
    -- materialize and 0.6 s to hash at 1,000,000 new people).
    SELECT k.line, o.id FROM asking k
    JOIN users o ON o.tenant_id = $4 AND {{owner}}
    WHERE EXISTS (SELECT FROM users t WHERE t.tenant_id = $4)
),
looked AS MATERIALIZED (
    SELECT k.*, {{other_row}} AS other, w.id AS other_owner,
           {{> merge_same}}
    FROM keyed k
    LEFT JOIN owners w ON w.line = k.line
),
{{> merge_tail}};

-- fragment: merge_head
-- The rows of one merge statement: `$3` staged rows after line `$2`; with
-- `$8`, only the pending ones. Of the two branches, the one whose constant
-- condition is false is never run (a custom plan folds `$8`).
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
),

-- fragment: merge_same
-- Whether a looked-up row `k` (its values, and its user's as `u_*`) would
-- change nothing.
COALESCE(k.uid IS NOT NULL AND k.error_message IS NULL
                    AND (k.email IS NULL OR k.email = k.u_email)
                    AND (k.external_id IS NULL OR k.external_id = k.u_external_id)
                    AND (k.first_name IS NULL OR k.first_name = k.u_first_name)
                    AND (k.last_name IS NULL OR k.last_name = k.u_last_name)
                    AND (NOT $5 OR COALESCE(k.active, TRUE)) = k.u_active
                    AND (k.profile IS NULL
                         OR jsonb_strip_nulls(k.u_profile || k.profile) = k.u_profile),
                    FALSE) AS same

-- fragment: merge_tail
-- Steps 2 to 5 of `merge_batch`, from `looked`.
ranked AS (
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
                WHEN r.early = 'taken' OR (r.other IS NOT NULL AND r.claim > 1) THEN {{taken}}
                WHEN r.uid IS NULL AND r.email IS NULL THEN {{message EMAIL_REQUIRED}}
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
