-- send_to_open_time.sql: how long after sending mail is first opened, per sending day.
--
-- For each message sent in the last 30 days and opened at least once: the time from
-- messages.sent_at to its first open event (message_timeline joins events to the request
-- that sent them).  Per UTC day of sending: opened messages, then the median, 90th
-- percentile and maximum delay.
WITH first_open AS (
    SELECT message_id, min(sent_at) AS sent_at, min(event_time) AS opened_at
    FROM message_timeline
    WHERE event = 'open'
      AND sent_at IS NOT NULL
      AND sent_at >= now() - interval '30 days'
    GROUP BY message_id
)
SELECT (sent_at AT TIME ZONE 'UTC')::date AS sent_day,
       count(*) AS opened_messages,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY opened_at - sent_at) AS median_delay,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY opened_at - sent_at) AS p90_delay,
       max(opened_at - sent_at) AS max_delay
FROM first_open
WHERE opened_at >= sent_at
GROUP BY sent_day
ORDER BY sent_day;
