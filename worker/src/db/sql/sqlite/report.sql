-- What people read, on SQLite (see postgres/report.sql).

-- name: created_by_upload
-- The users an upload created, in the order it created them. `?1` upload.
SELECT id, email FROM users WHERE created_by_upload_id = ?1 ORDER BY id;

-- name: user_links
-- Each user's roles, managers' emails and group IDs, comma-joined and
-- sorted, for `userfeed users list`. `?1` tenant.
SELECT u.id,
       COALESCE((SELECT group_concat(r.role, ',' ORDER BY r.role)
                 FROM user_all_roles r WHERE r.user_id = u.id), '') AS roles,
       COALESCE((SELECT group_concat(m.email, ',' ORDER BY m.email)
                 FROM user_managers um JOIN users m ON m.id = um.manager_id
                 WHERE um.user_id = u.id), '') AS managers,
       COALESCE((SELECT group_concat(g.group_key, ',' ORDER BY g.group_key)
                 FROM group_memberships gm JOIN groups g ON g.id = gm.group_id
                 WHERE gm.user_id = u.id), '') AS groups
FROM users u
WHERE u.tenant_id = ?1;

-- name: last_upload_per_tenant
-- Every tenant with its newest upload's id (see postgres/report.sql).
SELECT t.id AS tenant_id, t.slug,
       (SELECT u.id FROM uploads u WHERE u.tenant_id = t.id ORDER BY u.id DESC LIMIT 1)
           AS last_upload_id
FROM tenants t
ORDER BY t.slug;

-- name: xero_imported_users
-- The tenant's active users Xero imports created (see postgres/report.sql).
-- `?1` tenant.
SELECT count(*) AS n
FROM users u
JOIN uploads up ON up.id = u.created_by_upload_id
WHERE u.tenant_id = ?1 AND u.active AND up.source = 'xero';

-- name: present_emails
-- Which of the emails in `?2` (a JSON array of lowercased emails) belong
-- to users of tenant `?1`.
SELECT lower(u.email) AS email
FROM users u
WHERE u.tenant_id = ?1
  AND lower(u.email) IN (SELECT value FROM json_each(?2));

-- name: attention_uploads
-- Held uploads and failures no later success of their tenant replaced,
-- newest first (see postgres/report.sql). `?1` how many.
SELECT u.*
FROM uploads u
WHERE u.state = 'held'
   OR (u.state = 'failed'
       AND NOT EXISTS (SELECT 1 FROM uploads l
                       WHERE l.tenant_id = u.tenant_id AND l.id > u.id
                         AND l.state = 'succeeded'))
ORDER BY u.id DESC
LIMIT ?1;
