-- Staging an upload's rows on SQLite (see postgres/staging.sql).

-- name: delete_staged
-- Drops an upload's staged rows (at the start of every attempt and at the end).
DELETE FROM upload_rows WHERE upload_id = ?1;
