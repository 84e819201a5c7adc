-- events_per_type_per_day.sql: how many events of each type arrived per UTC day,
-- over the last 14 days.
--
-- Counts rows of events (duplicates never reach it), one row per (day, event); bounces
-- of type 'blocked' are shown as 'blocked', as SendGrid's dashboard does.
SELECT (event_time AT TIME ZONE 'UTC')::date AS day,
       CASE WHEN event = 'bounce' AND type = 'blocked' THEN 'blocked' ELSE event END AS event,
       count(*) AS events
FROM events
WHERE event_time >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                    - interval '13 days'
GROUP BY 1, 2
ORDER BY day, events DESC, event;
