-- 0008 the claim walks runnable uploads oldest first (see CLAIM in
-- worker/src/db/queries.rs): this index holds only queued and running
-- uploads, in id order, so the walk never reads finished history.
CREATE INDEX uploads_runnable_order_idx ON uploads (id) WHERE state IN ('queued', 'running');
