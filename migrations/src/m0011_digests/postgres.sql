-- 0011 digests: a re-fed row that is exactly what it was last night skips
-- the merge and the links (issue 13, docs/performance.md "The digest").
--
-- users.feed_digest is 128 bits of SHA-256 over the tenant's feed epoch and
-- the normalised values the user's row last applied (every mapped column,
-- the manager, group and role cells, the status), computed in Rust while
-- parsing. It is stored only for a row that applied without a warning, and
-- trusted only while nothing outside the file has changed what that row
-- would do. Two mechanisms keep it exact:
--   * per user: the digest is cleared when something changes that only that
--     user's row decides (their fields, managers, memberships, roles);
--   * per tenant: tenants.feed_epoch is folded into every digest, so bumping
--     it invalidates all of a tenant's digests at once, for changes that
--     could alter what any row does (a group created or deleted, an email
--     changed, the mapping, match key or a profile field's type changed, an
--     upload held, resolved, or ended part-way).
-- A cleared or stale digest costs one full apply of that row, never a
-- wrong result.

ALTER TABLE tenants ADD COLUMN feed_epoch BIGINT NOT NULL DEFAULT 0;

ALTER TABLE users ADD COLUMN feed_digest BYTEA CHECK (octet_length(feed_digest) = 16);

ALTER TABLE upload_rows ADD COLUMN digest BYTEA;

-- The lines of a running upload that the merge and link phases must handle:
-- every staged row except those whose digest matched their user's. Written
-- once after staging, only when the tenant has digests at all (a first load
-- handles every row without it). UNLOGGED for the reason upload_rows is.
CREATE UNLOGGED TABLE upload_pending (
    upload_id BIGINT NOT NULL,
    line      BIGINT NOT NULL,
    PRIMARY KEY (upload_id, line)
);

CREATE FUNCTION userfeed_bump_epoch(tenant BIGINT) RETURNS void LANGUAGE sql AS $$
    UPDATE tenants SET feed_epoch = feed_epoch + 1 WHERE id = tenant
$$;

-- Users: an update that does not itself write the digest (an admin's edit,
-- the finish's deactivation) clears it. The feed's merge writes a user only
-- with the row's new digest, never the one stored (an equal digest means an
-- unchanged row, which is not written), which is how it is told apart.
CREATE FUNCTION userfeed_users_touched() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.feed_digest := NULL;
    RETURN NEW;
END $$;
CREATE TRIGGER users_touched BEFORE UPDATE ON users FOR EACH ROW
    WHEN (OLD.feed_digest IS NOT NULL AND NEW.feed_digest IS NOT DISTINCT FROM OLD.feed_digest)
    EXECUTE FUNCTION userfeed_users_touched();

-- Manager cells resolve by email: any email change (by an upload or not)
-- may change what other users' rows link to.
CREATE FUNCTION userfeed_email_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM userfeed_bump_epoch(NEW.tenant_id);
    RETURN NULL;
END $$;
CREATE TRIGGER users_email_changed AFTER UPDATE OF email ON users FOR EACH ROW
    WHEN (lower(OLD.email) IS DISTINCT FROM lower(NEW.email))
    EXECUTE FUNCTION userfeed_email_changed();

-- Links changed outside the feed. The feed's link transactions set
-- `userfeed.feed_writer`; it only ever adds memberships and roles, and
-- replaces a user's managers from that user's own row, so none of its
-- writes changes what another row does. Outside it: a removed membership,
-- a removed role, or any change to a user's managers clears that user's
-- digest; a removed Manager role also clears the digests of the user's
-- reports, whose rows grant it. Adding a membership or role outside the
-- feed changes nothing a row does (the feed never removes them).
CREATE FUNCTION userfeed_clear_digest(uid BIGINT) RETURNS void LANGUAGE sql AS $$
    UPDATE users SET feed_digest = NULL WHERE id = uid AND feed_digest IS NOT NULL
$$;

CREATE FUNCTION userfeed_membership_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM userfeed_clear_digest(OLD.user_id);
    RETURN NULL;
END $$;
CREATE TRIGGER group_memberships_changed AFTER DELETE OR UPDATE ON group_memberships
    FOR EACH ROW WHEN (current_setting('userfeed.feed_writer', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION userfeed_membership_changed();

CREATE FUNCTION userfeed_role_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM userfeed_clear_digest(OLD.user_id);
    IF OLD.role = 'manager' THEN
        UPDATE users SET feed_digest = NULL
        WHERE feed_digest IS NOT NULL
          AND id IN (SELECT user_id FROM user_managers WHERE manager_id = OLD.user_id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER user_roles_changed AFTER DELETE OR UPDATE ON user_roles
    FOR EACH ROW WHEN (current_setting('userfeed.feed_writer', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION userfeed_role_changed();

CREATE FUNCTION userfeed_managers_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM userfeed_clear_digest(OLD.user_id);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM userfeed_clear_digest(NEW.user_id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER user_managers_changed AFTER INSERT OR DELETE OR UPDATE ON user_managers
    FOR EACH ROW WHEN (current_setting('userfeed.feed_writer', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION userfeed_managers_changed();

-- A group created, deleted or renamed changes what any groups cell does; a
-- profile field added, removed or retyped changes how cells convert. One
-- function for both: each row names its tenant.
CREATE FUNCTION userfeed_tenant_row_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.tenant_id <> NEW.tenant_id) THEN
        PERFORM userfeed_bump_epoch(OLD.tenant_id);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM userfeed_bump_epoch(NEW.tenant_id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER groups_changed AFTER INSERT OR DELETE OR UPDATE ON groups
    FOR EACH ROW EXECUTE FUNCTION userfeed_tenant_row_changed();
CREATE TRIGGER profile_fields_changed AFTER INSERT OR DELETE OR UPDATE ON profile_fields
    FOR EACH ROW EXECUTE FUNCTION userfeed_tenant_row_changed();

-- The mapping or the match key changed: every row means something else.
CREATE FUNCTION userfeed_rules_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.feed_epoch := OLD.feed_epoch + 1;
    RETURN NEW;
END $$;
CREATE TRIGGER tenants_rules_changed BEFORE UPDATE ON tenants FOR EACH ROW
    WHEN (OLD.mapping IS DISTINCT FROM NEW.mapping OR OLD.match_key IS DISTINCT FROM NEW.match_key)
    EXECUTE FUNCTION userfeed_rules_changed();

-- Uploads: digests an attempt wrote are trusted only when it ran to a plain
-- success. Held (its status-0 deactivations may be rejected), a hold
-- approved or rejected, or an attempt that ended part-way (handed back,
-- failed, superseded after a crash, or re-claimed when its lease expired)
-- bumps the epoch. `rows_read > 0` says the attempt may have got past
-- staging; one that had not wrote no digest.
CREATE FUNCTION userfeed_upload_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM userfeed_bump_epoch(NEW.tenant_id);
    RETURN NULL;
END $$;
CREATE TRIGGER uploads_ended AFTER UPDATE OF state, lease_token ON uploads FOR EACH ROW
    WHEN ((OLD.state = 'held' AND NEW.state <> 'held')
          OR (OLD.state = 'running' AND NEW.state = 'held')
          OR (OLD.state = 'running' AND OLD.rows_read > 0
              AND (NEW.state NOT IN ('running', 'succeeded')
                   OR NEW.lease_token <> OLD.lease_token)))
    EXECUTE FUNCTION userfeed_upload_ended();
