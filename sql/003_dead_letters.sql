-- 003_dead_letters.sql: Kafka records that can never be written.
--
-- One row per (topic, partition, offset): the sink inserts with
-- ON CONFLICT (topic, kafka_partition, kafka_offset) DO NOTHING, so replaying
-- a partition does not duplicate its dead letters. mailpipectl sets
-- replayed_at when it replays a row.

CREATE TABLE dead_letters (
    id              bigserial   PRIMARY KEY,
    topic           text,
    kafka_partition int,
    kafka_offset    bigint,
    payload         bytea,
    error           text,
    created_at      timestamptz DEFAULT now(),
    replayed_at     timestamptz,
    UNIQUE (topic, kafka_partition, kafka_offset)
);

-- the replay queue: dead letters not yet replayed, oldest first
CREATE INDEX dead_letters_pending_idx ON dead_letters (created_at)
    WHERE replayed_at IS NULL;

GRANT SELECT, INSERT, UPDATE ON dead_letters TO mailpipe_writer;
GRANT USAGE, SELECT ON SEQUENCE dead_letters_id_seq TO mailpipe_writer;
GRANT SELECT ON dead_letters TO mailpipe_reader;
