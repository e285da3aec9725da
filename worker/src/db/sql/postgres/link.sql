-- The set-based links of the PostgreSQL store: managers, group memberships
-- and roles, once every row of the file has been merged. Variants by the
-- tenant's match key, as in merge.sql.

-- name: link_chunk
-- One link statement: managers, group memberships and roles for a chunk
-- of accepted rows, once every row of the file has been merged (a manager
-- may appear later in the file than their report).
--
-- Parameters: `$1` upload, `$2` after line, `$3` rows, `$4` tenant, `$5`
-- `$6` `$7` the managers, groups and roles headers (for warnings), `$8`
-- only the pending lines.
--
-- Cells arrive trimmed from staging (`PgStore` writes each list as its
-- items, trimmed as `map::split_list` trims, joined by `|`), so they are
-- only split, with `string_to_array` (measured against a regular
-- expression: 0.12 s against 0.37 s for 100,000 two-item cells; the trim
-- in SQL added a fifth to the splitting). Managers are replaced by the row's list, but as a
-- difference: only links that are gone are deleted and only new ones are
-- inserted, so an unchanged file writes nothing (the delete and the insert
-- never touch the same row, which one statement requires). Memberships and
-- roles are only ever added, again only those missing. Warnings name the
-- line and column of each unknown manager, group or role.
-- variant: by_email
--   key = lower(u.email)
-- variant: by_external_id
--   key = u.external_id
{{> link_head}}
keyed AS MATERIALIZED (
    SELECT s.line, s.managers, s.groups, s.roles,
           (SELECT u.id FROM users u WHERE u.tenant_id = $4 AND {{key}} = s.match_key) AS uid
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
    RETURNING um.user_id, um.manager_id
),
linked AS (
    INSERT INTO user_managers (user_id, manager_id)
    SELECT w.uid, w.mid FROM wanted w
    WHERE NOT EXISTS (SELECT 1 FROM had h WHERE h.uid = w.uid AND h.mid = w.mid)
    ON CONFLICT DO NOTHING
    RETURNING user_id, manager_id
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
{{> link_roles}}
granted AS (
    INSERT INTO user_roles (user_id, role)
    SELECT w.uid, w.role FROM roles_wanted w
    WHERE (SELECT TRUE FROM user_roles ur WHERE ur.user_id = w.uid AND ur.role = w.role) IS NULL
    ON CONFLICT DO NOTHING
    RETURNING user_id, role
),
{{> link_log}}
{{> link_warnings}};

-- name: link_file
-- `link_chunk` with joins instead of per-row lookups, for large files
-- (see `PgStore`'s whole-file mode): each table is read once and hashed,
-- and what is already there is subtracted as a set (a hash anti-join
-- against the link table itself: cheaper, measured, than first collecting
-- the listed users' links). Cells arrive trimmed from staging (`PgStore`
-- writes each list as its items joined by `|`), so they are only split.
--
-- The inserts are exact sets (an item repeated in one cell counts at its
-- first position only; then minus what is there) with no `ON CONFLICT`:
-- its speculative insertion probes the unique index once more per row,
-- measured at about twice a plain insert (500,000 pairs: 1.2 s against
-- 0.6 s), which a first load pays for every link it writes. A link added by
-- someone else between this statement's snapshot and its insert is a
-- unique violation, which is transient (`db::is_unique_race`): the retry
-- finds the link there.
--
-- Each insert arrives in key order, because order decides the cost of
-- the primary-key insertions: 1,500,000 memberships took 4.5 s in line
-- order and 12.9 s in a hash aggregate's order (psql, one run each). So
-- repeats are dropped by position instead of by `DISTINCT`, which keeps
-- the join's order (users, hence lines), and roles, which need a
-- `DISTINCT` over managers, are sorted before they are inserted.
-- variant: by_email
--   key = lower(u.email)
-- variant: by_external_id
--   key = u.external_id
{{> link_head}}
listed AS MATERIALIZED (
    SELECT s.line, s.managers, s.groups, s.roles, u.id AS uid
    FROM staged s
    JOIN users u ON u.tenant_id = $4 AND {{key}} = s.match_key
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
    RETURNING um.user_id, um.manager_id
),
linked AS (
    INSERT INTO user_managers (user_id, manager_id)
    SELECT w.uid, w.mid FROM wanted w
    LEFT JOIN had h ON h.uid = w.uid AND h.mid = w.mid
    WHERE h.uid IS NULL
    RETURNING user_id, manager_id
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
{{> link_roles}}
granted AS (
    INSERT INTO user_roles (user_id, role)
    SELECT w.uid, w.role FROM roles_wanted w
    WHERE NOT EXISTS (SELECT FROM user_roles ur WHERE ur.user_id = w.uid AND ur.role = w.role)
    ORDER BY w.uid, w.role
    RETURNING user_id, role
),
{{> link_log}}
{{> link_warnings}};

-- fragment: link_head
-- The rows of one link statement: `$3` accepted staged rows after line
-- `$2`; with `$8`, only the pending ones (as in `merge_head`).
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
),

-- fragment: link_log
-- The link log (migration 0014): the manager links removed and added and
-- the roles added, for users this upload did not create (undo removes
-- those users' links wholesale, so a first load logs nothing). A
-- `users` primary-key probe per logged link; none when nothing changed.
link_log AS (
    INSERT INTO upload_link_changes (upload_id, user_id, kind, target, role)
    SELECT $1, x.user_id, x.kind, x.target, x.role
    FROM (SELECT user_id, 'manager_removed' AS kind, manager_id AS target, NULL::text AS role
          FROM gone
          UNION ALL
          SELECT user_id, 'manager_added', manager_id, NULL FROM linked
          UNION ALL
          SELECT user_id, 'role_added', NULL, role FROM granted) x
    WHERE NOT EXISTS (SELECT FROM users f WHERE f.id = x.user_id AND f.created_by_upload_id = $1)
),

-- fragment: link_warnings
-- The warnings of a link statement (unknown managers, groups and roles,
-- and self-management), then its result row: the last line handled.
warned AS (
    INSERT INTO upload_row_errors (upload_id, line, column_name, severity, message)
    SELECT $1, w.line, w.col, 'warning', w.msg
    FROM (
        SELECT line, pos, 1 AS k, $5::text AS col,
               {{message UNKNOWN_MANAGER item}} AS msg
        FROM mgr WHERE mid IS NULL
        UNION ALL
        SELECT line, pos, 1, $5::text,
               {{message SELF_MANAGER}}
        FROM mgr WHERE mid = uid
        UNION ALL
        SELECT line, pos, 2, $6::text,
               {{message UNKNOWN_GROUP item}}
        FROM grp WHERE gid IS NULL
        UNION ALL
        SELECT line, pos, 3, $7::text,
               {{message UNKNOWN_ROLE item}}
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

-- fragment: link_roles
-- The roles a chunk's rows name (NULL for an unknown name, which warns), and
-- the role rows they want: Manager for everyone listed as a manager, and
-- the named roles that are rows.
named_roles AS MATERIALIZED (
    SELECT l.line, l.uid, c.item, c.pos,
           {{role_case c.item}} AS role
    FROM listed l
    CROSS JOIN LATERAL unnest(string_to_array(l.roles, '|')) WITH ORDINALITY AS c (item, pos)
    WHERE l.roles IS NOT NULL AND c.item <> ''
),
roles_wanted AS (
    -- Learner is implicit (every user is one; migration 0013): never a row.
    SELECT mid AS uid, {{role manager}} AS role FROM wanted
    UNION SELECT uid, role FROM named_roles WHERE role IN ({{row_roles}})
),
