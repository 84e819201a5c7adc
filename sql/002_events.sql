-- 002_events.sql: webhook events and the exactly-once guard.
--
-- events is partitioned by RANGE (event_time) into monthly partitions
-- events_yYYYYmMM (UTC months, made by mailpipe_ensure_partitions() in 004);
-- rows outside every monthly partition land in events_default.
--
-- A unique constraint on a partitioned table must include the partition key,
-- so events cannot be unique on sg_event_id alone: event_ids is the guard.
-- The sink inserts into event_ids with ON CONFLICT (sg_event_id) DO NOTHING
-- and writes the event row only when that insert returned a row, in the same
-- transaction.

CREATE TABLE events (
    sg_event_id     text        NOT NULL,
    event           text        NOT NULL,
    email           text,
    event_time      timestamptz NOT NULL,
    sg_message_id   text,
    message_id      text,
    category        text[],
    reason          text,
    status          text,
    type            text,
    url             text,
    raw             jsonb       NOT NULL,
    received_at     timestamptz NOT NULL,
    kafka_partition int,
    kafka_offset    bigint
) PARTITION BY RANGE (event_time);

CREATE TABLE events_default PARTITION OF events DEFAULT;

-- Indexes on the partitioned parent are created on every partition, present
-- and future.
CREATE INDEX events_message_id_idx    ON events (message_id);
CREATE INDEX events_sg_message_id_idx ON events (sg_message_id);
CREATE INDEX events_email_idx         ON events (email);
CREATE INDEX events_event_time_idx    ON events (event_time);

CREATE TABLE event_ids (
    sg_event_id text        PRIMARY KEY,
    event_time  timestamptz NOT NULL
);

-- lets a retention job delete guards of dropped partitions by time
CREATE INDEX event_ids_event_time_idx ON event_ids (event_time);

-- Already covered by the default privileges of 001 when the same role runs
-- both; explicit so that running them as different roles still works.
GRANT SELECT, INSERT, UPDATE ON events, events_default, event_ids TO mailpipe_writer;
GRANT SELECT ON events, events_default, event_ids TO mailpipe_reader;
