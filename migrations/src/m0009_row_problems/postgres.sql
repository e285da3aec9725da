-- 0009 row problems beyond limits.max_row_problems are counted, not kept:
-- a file of millions of bad rows must not write millions of error rows.
ALTER TABLE uploads ADD COLUMN row_problems_dropped BIGINT NOT NULL DEFAULT 0;
