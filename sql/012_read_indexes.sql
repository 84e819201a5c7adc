-- 012_read_indexes.sql: indexes for the Email Activity API (GET /v3/messages) at scale.
--
-- Measured with tests/bench/read_api.py (1,000,000 events, 200,000 messages; results in
-- tests/bench/results/): without these, every query form that matches few messages walks
-- messages newest-first through the created_at index and filters, 50-200 ms.  Each index
-- below serves one form of lib/msgquery's WHERE clause; the answer is always ordered by
-- (created_at DESC, message_id DESC) with a LIMIT, so the btree ones end with those
-- columns and are read backwards, in the answer's order, with no sort.
--
-- Writes pay for them: the sender inserts a message once and the sink updates status and
-- last_event_time (not HOT when last_event_time or status change, since they are
-- indexed).  That is a few index entries per mail, against reads from a dashboard.

-- Trigram indexes for LIKE '%...%' on subject.  pg_trgm ships with Debian's
-- postgresql-15 (contrib) and is a trusted extension: the database owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- to_email="x": lib/msgquery writes to_emails @> ARRAY[$n::text], which GIN serves
-- (the "$n = ANY(to_emails)" it wrote before cannot use any index).
CREATE INDEX messages_to_emails_gin_idx ON messages USING gin (to_emails);

-- categories="x": the same, over the expression msgquery compares.
CREATE INDEX messages_categories_gin_idx ON messages
    USING gin (COALESCE(categories, ARRAY[]::text[]));

-- subject LIKE "%order 123%": trigrams; patterns with fewer than 3 literal characters
-- cannot use it and fall back to the newest-first walk.
CREATE INDEX messages_subject_trgm_idx ON messages USING gin (subject gin_trgm_ops);

-- from_email="x" and status="x", each newest first.
CREATE INDEX messages_from_created_idx ON messages (from_email, created_at, message_id);
CREATE INDEX messages_status_created_idx ON messages (status, created_at, message_id);

-- last_event_time BETWEEN a AND b.
CREATE INDEX messages_last_event_time_idx ON messages (last_event_time);

-- The listing's own order, so the keyset condition of the next page, (created_at,
-- message_id) < (cursor), is an index condition; it replaces 006's created_at index.
CREATE INDEX messages_created_id_idx ON messages (created_at, message_id);
DROP INDEX messages_created_at_idx;
