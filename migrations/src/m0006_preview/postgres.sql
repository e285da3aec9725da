-- 0006 previews: `userfeed preview` runs the real apply pipeline inside one
-- transaction that always rolls back. Its upload row is in state 'preview',
-- which no other session can ever see (it is never committed). It is not
-- 'running', so a preview never collides with the tenant's real running
-- upload on uploads_one_running_per_tenant, and the claim query (which only
-- looks at queued and running rows) can never pick it up.
ALTER TABLE uploads DROP CONSTRAINT uploads_state_check;
ALTER TABLE uploads ADD CONSTRAINT uploads_state_check
    CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'held', 'superseded', 'preview'));
