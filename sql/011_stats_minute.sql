-- 011_stats_minute.sql: events per minute and event type, for the dashboard's live chart
-- (GET /mailpipe/v1/events/per_minute).
--
-- The sink keeps it like stats_daily (008): in the same transaction as the events, from
-- the events it newly inserted only, so a replayed sg_event_id never counts twice and the
-- chart never scans events.  minute = event_time truncated to the minute, in UTC.  event =
-- SendGrid's event name; names SendGrid does not document count as 'other', which keeps
-- the table at most 12 rows a minute whatever the webhook posts.
--
-- Nothing prunes it yet: about 17,000 rows a day at full use of every name.

CREATE TABLE stats_minute (
    minute timestamptz NOT NULL,
    event  text        NOT NULL,
    count  bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, event)
);

-- Only the sink writes it, and never deletes from it.
GRANT SELECT, INSERT, UPDATE ON stats_minute TO mailpipe_writer;
GRANT SELECT ON stats_minute TO mailpipe_reader;
