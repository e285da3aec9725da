-- 0010 retries of failed uploads, and held uploads as a gauge.

-- `userfeed uploads retry ID` queues the same object again as a new upload
-- (its own id, attempts and history), pointing back at the one it retries.
-- The failed upload keeps its state and reason: the history shows both.
ALTER TABLE uploads ADD COLUMN retry_of BIGINT REFERENCES uploads (id);

-- The metrics sampler counts held uploads and the oldest one's age every
-- 10 s on every pod: a partial index keeps that off the history.
CREATE INDEX uploads_held_idx ON uploads (finished_at) WHERE state = 'held';
