-- 009_timeline_order.sql: message_timeline orders events of the same second by status.
--
-- SendGrid's timestamps are whole seconds, so processed, delivered and open often share
-- one; 008 broke such ties by sg_event_id, which is random.  SENDGRID.md: order by the
-- event timestamp and then a status precedence, never by arrival.  Events without a rank
-- (unknown names) come after ranked ones of the same second.  Same columns as 008, so
-- CREATE OR REPLACE keeps every grant.

CREATE OR REPLACE VIEW message_timeline AS
SELECT m.message_id, m.from_email, m.to_emails, m.subject, m.categories,
       m.status AS message_status, m.created_at, m.sent_at, m.sendgrid_message_id,
       row_number() OVER (PARTITION BY m.message_id
                          ORDER BY e.event_time, e.rank NULLS LAST, e.sg_event_id) AS seq,
       e.event_time, e.event, e.email, e.sg_event_id, e.sg_message_id, e.reason,
       e.status, e.type, e.url, e.category
FROM messages m
CROSS JOIN LATERAL (
    SELECT ev.event_time, ev.event, ev.email, ev.sg_event_id, ev.sg_message_id, ev.reason,
           ev.status, ev.type, ev.url, ev.category, mailpipe_status_rank(ev.event) AS rank
    FROM events ev
    WHERE ev.message_id = m.message_id
    UNION ALL
    SELECT ev.event_time, ev.event, ev.email, ev.sg_event_id, ev.sg_message_id, ev.reason,
           ev.status, ev.type, ev.url, ev.category, mailpipe_status_rank(ev.event) AS rank
    FROM events ev
    WHERE ev.message_id IS NULL AND m.sendgrid_message_id IS NOT NULL
      AND split_part(ev.sg_message_id, '.', 1) = m.sendgrid_message_id
) e
ORDER BY m.message_id, e.event_time, e.rank NULLS LAST, e.sg_event_id;
