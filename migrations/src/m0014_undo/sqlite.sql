-- 0014 undo (SQLite): see postgres.sql.
CREATE TABLE upload_link_changes (
    id        INTEGER PRIMARY KEY,
    upload_id INTEGER NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind      TEXT NOT NULL CHECK (kind IN ('manager_added', 'manager_removed', 'role_added',
                                            'role_removed', 'member_added', 'member_removed')),
    target    INTEGER,
    role      TEXT,
    CHECK ((kind LIKE 'role_%') = (role IS NOT NULL AND target IS NULL))
);
CREATE INDEX upload_link_changes_upload_idx ON upload_link_changes (upload_id);
CREATE INDEX upload_link_changes_user_idx ON upload_link_changes (user_id);

ALTER TABLE uploads ADD COLUMN undo_of INTEGER REFERENCES uploads (id) ON DELETE CASCADE;
CREATE UNIQUE INDEX uploads_undo_of_key ON uploads (undo_of) WHERE undo_of IS NOT NULL;
