-- top_clicked_urls.sql: the 20 most clicked links of the last 30 days.
--
-- clicks: every click event; recipients: distinct addresses that clicked (lower-cased);
-- messages: distinct mails the link was clicked in.  Reads events (click rows only, by
-- event_time); change the interval for another window.
SELECT url,
       count(*) AS clicks,
       count(DISTINCT lower(email)) AS recipients,
       count(DISTINCT coalesce(message_id, split_part(sg_message_id, '.', 1))) AS messages,
       min(event_time) AS first_click,
       max(event_time) AS last_click
FROM events
WHERE event = 'click'
  AND url IS NOT NULL
  AND event_time >= now() - interval '30 days'
GROUP BY url
ORDER BY clicks DESC, url
LIMIT 20;
