-- What people read: the change log's creations and each user's links.

-- name: created_by_upload
-- The users an upload created, in the order it created them, for its
-- change log (`report::changes`): creations are not logged as entries
-- (migration 0013). `$1` upload.
SELECT id, email FROM users WHERE created_by_upload_id = $1 ORDER BY id;

-- name: user_links
-- Each user's roles, managers' emails and group IDs, comma-joined and
-- sorted, for `userfeed users list`. Correlated subqueries over the
-- per-user primary keys and indexes. Roles come from `user_all_roles`,
-- which lists the implicit Learner of every user (migration 0013). `$1`
-- tenant.
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
WHERE u.tenant_id = $1;

-- name: last_upload_per_tenant
-- Every tenant with its newest upload's id (NULL when it has none), for
-- the operators' overview. One probe of `uploads_tenant_history_idx`
-- (tenant_id, id DESC) per tenant, never the history itself.
SELECT t.id AS tenant_id, t.slug,
       (SELECT u.id FROM uploads u WHERE u.tenant_id = t.id ORDER BY u.id DESC LIMIT 1)
           AS last_upload_id
FROM tenants t
ORDER BY t.slug;

-- name: xero_imported_users
-- The tenant's active users that Xero imports created: what counts against
-- `xero.max_users` (an undone import gives its users' places back). `$1`
-- tenant.
SELECT count(*) AS n
FROM users u
JOIN uploads up ON up.id = u.created_by_upload_id
WHERE u.tenant_id = $1 AND u.active AND up.source = 'xero';

-- name: present_emails
-- Which of the emails in `$2` (a JSON array of lowercased emails) belong
-- to users of tenant `$1`, by the users' email index.
SELECT lower(u.email) AS email
FROM users u
WHERE u.tenant_id = $1
  AND lower(u.email) IN (SELECT jsonb_array_elements_text($2::jsonb));

-- name: attention_uploads
-- What needs an operator, newest first, for the overview: held uploads,
-- and failed ones that no later successful upload of the same tenant has
-- replaced (a failure followed by a good file needs nobody). The
-- `NOT EXISTS` probes `uploads_tenant_history_idx` (tenant_id, id DESC)
-- from each failure. `$1` how many.
SELECT u.*
FROM uploads u
WHERE u.state = 'held'
   OR (u.state = 'failed'
       AND NOT EXISTS (SELECT 1 FROM uploads l
                       WHERE l.tenant_id = u.tenant_id AND l.id > u.id
                         AND l.state = 'succeeded'))
ORDER BY u.id DESC
LIMIT $1;
