-- 0007 bulk links: the link and change-log tables keep their integrity with
-- delete triggers instead of foreign keys.
--
-- Why: a foreign key checks every inserted row with a query that also locks
-- the referenced user (FOR KEY SHARE), which rewrites that user's tuple
-- header. A first file of N people inserts about 5N link and log rows
-- (a Learner role, managers, memberships, a 'created' entry), and measured
-- on 100,000 rows those checks were 11 of 17 seconds of the whole upload.
--
-- What is kept: every row here is written by the apply path from ids it
-- resolved in the same transaction, and deleting a user, group or upload
-- still removes its rows here (ON DELETE CASCADE before, a statement-level
-- trigger with a transition table now: one set-based DELETE per statement,
-- also when a tenant is removed and its users cascade).
-- What is given up: a user deleted concurrently with an upload that links
-- them can leave a dangling row, which every reader's join ignores. Users
-- are deactivated, not deleted, by the feed and in normal operation.
ALTER TABLE user_managers
    DROP CONSTRAINT user_managers_user_id_fkey,
    DROP CONSTRAINT user_managers_manager_id_fkey;
ALTER TABLE group_memberships
    DROP CONSTRAINT group_memberships_user_id_fkey,
    DROP CONSTRAINT group_memberships_group_id_fkey;
ALTER TABLE user_roles
    DROP CONSTRAINT user_roles_user_id_fkey;
ALTER TABLE upload_changes
    DROP CONSTRAINT upload_changes_user_id_fkey,
    DROP CONSTRAINT upload_changes_upload_id_fkey;

-- No index on upload_changes (user_id) for the cascade from users: it would
-- cost every logged change an index entry, for a delete that is rare and,
-- being one statement per delete, scans the log once.

CREATE FUNCTION userfeed_users_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM user_managers WHERE user_id IN (SELECT id FROM gone);
    DELETE FROM user_managers WHERE manager_id IN (SELECT id FROM gone);
    DELETE FROM group_memberships WHERE user_id IN (SELECT id FROM gone);
    DELETE FROM user_roles WHERE user_id IN (SELECT id FROM gone);
    DELETE FROM upload_changes WHERE user_id IN (SELECT id FROM gone);
    RETURN NULL;
END $$;
CREATE TRIGGER users_deleted AFTER DELETE ON users
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION userfeed_users_deleted();

CREATE FUNCTION userfeed_groups_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM group_memberships WHERE group_id IN (SELECT id FROM gone);
    RETURN NULL;
END $$;
CREATE TRIGGER groups_deleted AFTER DELETE ON groups
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION userfeed_groups_deleted();

CREATE FUNCTION userfeed_uploads_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM upload_changes WHERE upload_id IN (SELECT id FROM gone);
    RETURN NULL;
END $$;
CREATE TRIGGER uploads_deleted AFTER DELETE ON uploads
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION userfeed_uploads_deleted();
