-- bounce_reasons_by_domain.sql: why mail to each recipient domain bounced, last 30 days.
--
-- One row per (domain, kind, reason): kind is 'bounce' (hard bounce), 'blocked' (refused by
-- the receiving server, usually reputation or content) or 'dropped' (SendGrid did not send,
-- e.g. 'Bounced Address'), with how many events and distinct recipients.  The busiest
-- domains and reasons come first.
SELECT lower(split_part(email, '@', 2)) AS domain,
       CASE
           WHEN event = 'dropped' THEN 'dropped'
           WHEN type = 'blocked' THEN 'blocked'
           ELSE 'bounce'
       END AS kind,
       coalesce(reason, '(none)') AS reason,
       count(*) AS events,
       count(DISTINCT lower(email)) AS recipients
FROM events
WHERE event IN ('bounce', 'dropped')
  AND event_time >= now() - interval '30 days'
GROUP BY 1, 2, 3
ORDER BY sum(count(*)) OVER (PARTITION BY lower(split_part(email, '@', 2))) DESC,
         domain, events DESC, kind, reason
LIMIT 100;
