-- 014_dead_letters_ops.sql: what `mailpipectl dlq` records about a dead letter.
--
-- discarded_at: an operator looked at it and decided it will never be replayed
-- (`dlq discard`); the row stays as the record of what failed.  replay_count: how many
-- times `dlq replay` re-published it (replayed_at is the last time).  A row is pending
-- while both replayed_at and discarded_at are NULL.

ALTER TABLE dead_letters
    ADD COLUMN discarded_at timestamptz,
    ADD COLUMN replay_count int NOT NULL DEFAULT 0;

-- the replay queue without the discarded rows
DROP INDEX dead_letters_pending_idx;
CREATE INDEX dead_letters_pending_idx ON dead_letters (created_at)
    WHERE replayed_at IS NULL AND discarded_at IS NULL;

CREATE INDEX dead_letters_topic_idx ON dead_letters (topic, created_at);
