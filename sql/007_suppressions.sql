-- 007_suppressions.sql: addresses mail is no longer sent to.
--
-- The sink adds an address (lower-cased) from a hard bounce (event 'bounce', type
-- 'bounce'), a spam report, an unsubscribe or a group unsubscribe, in the same transaction
-- as the event, and mirrors it into the Redis set <prefix>suppressed after COMMIT.  The
-- sender drops suppressed recipients before sending.  `mailpipectl suppression remove`
-- deletes an address from both.

CREATE TABLE suppressions (
    email        text PRIMARY KEY,        -- lower-cased
    reason       text NOT NULL,           -- bounce, spamreport, unsubscribe, group_unsubscribe
    source_event text,                    -- the sg_event_id that caused it
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX suppressions_reason_idx ON suppressions (reason, created_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON suppressions TO mailpipe_writer;
GRANT SELECT ON suppressions TO mailpipe_reader;
