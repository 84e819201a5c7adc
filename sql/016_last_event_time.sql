-- 016_last_event_time.sql: the messages whose last event is older than the message itself.
--
-- GET /v3/messages?query=last_event_time BETWEEN a AND b answers newest first, by
-- (created_at DESC, message_id DESC).  For a window that ended long ago, walking the
-- messages from the newest one skips everything sent after b (most of the table), since a
-- message's events come after it was created.  fcgi/query_messages.c starts that walk at
-- created_at <= b instead, which is exact only together with the messages that break the
-- rule: created after b yet with their last event at or before b.  Those have
-- last_event_time < created_at (SendGrid's whole-second timestamps, clock skew between
-- SendGrid and us), are few, and this partial index finds the ones in a window directly.
--
-- The sink updates last_event_time (already indexed by 012, so no HOT update is lost);
-- the index holds only the rows where last_event_time < created_at.

CREATE INDEX messages_event_before_created_idx ON messages (last_event_time)
    WHERE last_event_time < created_at;
