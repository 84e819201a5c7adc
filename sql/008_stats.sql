-- 008_stats.sql: daily rollups of SendGrid's counters and the analysts' views over them.
--
-- The sink keeps stats_daily and stats_unique in the same transaction as the events it
-- writes, from the events it newly inserted only (a replayed sg_event_id never reaches
-- them), so the stats never scan events and duplicates never count twice.
--
-- Day = UTC date of event_time.  Each event counts once under category '' (all mail) and
-- once under each distinct category of its `category` array.  The counters:
--   requests           processed + dropped events
--   processed, delivered, deferred
--   bounces            bounce with type 'bounce' or no type
--   blocks             bounce with type 'blocked'
--   bounce_drops       dropped, reason 'Bounced Address'
--   spam_report_drops  dropped, reason 'Spam Reporting Address'
--   unsubscribe_drops  dropped, reason 'Unsubscribed Address'
--   invalid_emails     dropped, reason starting with 'invalid' (any case)
--   opens, clicks      every open / click
--   unique_opens       opens whose (day, 'open', category, lower(email)) is new in stats_unique
--   unique_clicks      likewise for clicks
--   spam_reports       spamreport
--   unsubscribes       unsubscribe and group_unsubscribe

CREATE TABLE stats_daily (
    day               date   NOT NULL,
    category          text   NOT NULL DEFAULT '',   -- '' = all mail
    requests          bigint NOT NULL DEFAULT 0,
    processed         bigint NOT NULL DEFAULT 0,
    delivered         bigint NOT NULL DEFAULT 0,
    deferred          bigint NOT NULL DEFAULT 0,
    bounces           bigint NOT NULL DEFAULT 0,
    blocks            bigint NOT NULL DEFAULT 0,
    bounce_drops      bigint NOT NULL DEFAULT 0,
    spam_report_drops bigint NOT NULL DEFAULT 0,
    unsubscribe_drops bigint NOT NULL DEFAULT 0,
    invalid_emails    bigint NOT NULL DEFAULT 0,
    opens             bigint NOT NULL DEFAULT 0,
    unique_opens      bigint NOT NULL DEFAULT 0,
    clicks            bigint NOT NULL DEFAULT 0,
    unique_clicks     bigint NOT NULL DEFAULT 0,
    spam_reports      bigint NOT NULL DEFAULT 0,
    unsubscribes      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, category)
);

-- /v3/categories/stats reads one category over a range of days
CREATE INDEX stats_daily_category_day_idx ON stats_daily (category, day);

-- Who opened or clicked on a day: a recipient counts once a day per category.
CREATE TABLE stats_unique (
    day      date NOT NULL,
    kind     text NOT NULL CHECK (kind IN ('open', 'click')),
    category text NOT NULL DEFAULT '',              -- '' = all mail
    email    text NOT NULL,                         -- lower-cased
    PRIMARY KEY (day, kind, category, email)
);

-- message_timeline finds a message's events by SendGrid's X-Message-Id, the part of
-- sg_message_id before the first dot, when the event does not carry our message id.
CREATE INDEX events_sg_message_base_idx ON events (split_part(sg_message_id, '.', 1));

-- SendGrid's global stats: one row per day.
CREATE VIEW daily_stats AS
SELECT day, requests, processed, delivered, deferred, bounces, blocks, bounce_drops,
       spam_report_drops, unsubscribe_drops, invalid_emails, opens, unique_opens, clicks,
       unique_clicks, spam_reports, unsubscribes
FROM stats_daily
WHERE category = '';

-- SendGrid's category stats: one row per day and category.
CREATE VIEW category_daily_stats AS
SELECT day, category, requests, processed, delivered, deferred, bounces, blocks,
       bounce_drops, spam_report_drops, unsubscribe_drops, invalid_emails, opens,
       unique_opens, clicks, unique_clicks, spam_reports, unsubscribes
FROM stats_daily
WHERE category <> '';

-- Bounce and complaint rates per day and category ('' = all mail), as fractions
-- (0.0123 = 1.23 %); NULL when the denominator is zero.
--   bounce_rate      bounces / requests        block_rate     blocks / requests
--   drop_rate        all drops / requests      complaint_rate spam_reports / delivered
--   unsubscribe_rate unsubscribes / delivered
CREATE VIEW daily_rates AS
SELECT day, category, requests, delivered, bounces, blocks, spam_reports, unsubscribes,
       round(bounces::numeric / nullif(requests, 0), 4) AS bounce_rate,
       round(blocks::numeric / nullif(requests, 0), 4) AS block_rate,
       round((requests - processed)::numeric / nullif(requests, 0), 4) AS drop_rate,
       round(spam_reports::numeric / nullif(delivered, 0), 4) AS complaint_rate,
       round(unsubscribes::numeric / nullif(delivered, 0), 4) AS unsubscribe_rate
FROM stats_daily;

-- The delivery funnel per day and category ('' = all mail): requests -> processed ->
-- delivered -> opened (unique) -> clicked (unique), with each step's share of delivered.
CREATE VIEW category_funnel AS
SELECT day, category, requests, processed, delivered, unique_opens, unique_clicks,
       round(delivered::numeric / nullif(requests, 0), 4) AS delivered_rate,
       round(unique_opens::numeric / nullif(delivered, 0), 4) AS open_rate,
       round(unique_clicks::numeric / nullif(delivered, 0), 4) AS click_rate,
       round(unique_clicks::numeric / nullif(unique_opens, 0), 4) AS click_to_open_rate
FROM stats_daily;

-- One row per event of a message, joined to the request that sent it, numbered in
-- event-time order (seq).  An event belongs to a message by our message id
-- (custom_args, events.message_id) or, when it has none, by SendGrid's X-Message-Id.
CREATE VIEW message_timeline AS
SELECT m.message_id, m.from_email, m.to_emails, m.subject, m.categories,
       m.status AS message_status, m.created_at, m.sent_at, m.sendgrid_message_id,
       row_number() OVER (PARTITION BY m.message_id
                          ORDER BY e.event_time, e.sg_event_id) AS seq,
       e.event_time, e.event, e.email, e.sg_event_id, e.sg_message_id, e.reason,
       e.status, e.type, e.url, e.category
FROM messages m
CROSS JOIN LATERAL (
    SELECT ev.event_time, ev.event, ev.email, ev.sg_event_id, ev.sg_message_id, ev.reason,
           ev.status, ev.type, ev.url, ev.category
    FROM events ev
    WHERE ev.message_id = m.message_id
    UNION ALL
    SELECT ev.event_time, ev.event, ev.email, ev.sg_event_id, ev.sg_message_id, ev.reason,
           ev.status, ev.type, ev.url, ev.category
    FROM events ev
    WHERE ev.message_id IS NULL AND m.sendgrid_message_id IS NOT NULL
      AND split_part(ev.sg_message_id, '.', 1) = m.sendgrid_message_id
) e
ORDER BY m.message_id, e.event_time, e.sg_event_id;

-- Only the sink writes the rollups, and never deletes from them.
GRANT SELECT, INSERT, UPDATE ON stats_daily, stats_unique TO mailpipe_writer;
GRANT SELECT ON stats_daily, stats_unique TO mailpipe_reader;
GRANT SELECT ON daily_stats, category_daily_stats, daily_rates, category_funnel,
                message_timeline TO mailpipe_reader;
