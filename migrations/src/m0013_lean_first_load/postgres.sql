-- 0013 lean first load (issue 13): a first file writes only what must be
-- stored, with no per-row probe beyond the unique indexes themselves.

-- 1. Creations are read from users.created_by_upload_id, which the merge
--    writes anyway; the 'created' change-log entry only repeated it (one row
--    and two index entries per new user). The history and `uploads changes`
--    list an upload's creations through this index. Entries logged before
--    this migration are folded into the column first (they agree with it;
--    the UPDATE only guards against a user whose column was cleared).
CREATE INDEX users_created_by_upload_idx ON users (created_by_upload_id)
    WHERE created_by_upload_id IS NOT NULL;
UPDATE users u SET created_by_upload_id = c.upload_id
FROM upload_changes c
WHERE c.kind = 'created' AND c.user_id = u.id
  AND u.created_by_upload_id IS DISTINCT FROM c.upload_id;
DELETE FROM upload_changes WHERE kind = 'created';
ALTER TABLE upload_changes DROP CONSTRAINT upload_changes_kind_check;
ALTER TABLE upload_changes ADD CONSTRAINT upload_changes_kind_check
    CHECK (kind IN ('updated', 'reactivated', 'deactivated'));

-- 2. Every user is a Learner: the role is implicit, so only Manager and
--    Administrator are rows (a first file wrote one Learner row and two
--    index entries per person). Listings still show Learner.
DELETE FROM user_roles WHERE role = 'learner';
ALTER TABLE user_roles DROP CONSTRAINT user_roles_role_check;
ALTER TABLE user_roles ADD CONSTRAINT user_roles_role_check
    CHECK (role IN ('manager', 'administrator'));
-- Every role a user has, Learner included: what readers list. A filter on
-- user_id reaches both branches (a users primary-key probe and a
-- user_roles one).
CREATE VIEW user_all_roles AS
    SELECT id AS user_id, 'learner'::text AS role FROM users
    UNION ALL
    SELECT user_id, role FROM user_roles;

-- 3. users.tenant_id keeps its integrity with a delete trigger instead of a
--    foreign key, as the link tables do since 0007: the key checked every
--    inserted user with a query that also locked the tenant row, measured
--    at 3.3 us a user (1.0 s of 2.7 s inserting 300,000 users). Users are
--    inserted only by the apply path and the CLI, for a tenant they have
--    just read; deleting a tenant still deletes its users (and, through
--    users_deleted, their links), in one statement per delete.
ALTER TABLE users DROP CONSTRAINT users_tenant_id_fkey;
CREATE FUNCTION userfeed_tenants_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM users WHERE tenant_id IN (SELECT id FROM gone);
    RETURN NULL;
END $$;
CREATE TRIGGER tenants_deleted AFTER DELETE ON tenants
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION userfeed_tenants_deleted();
