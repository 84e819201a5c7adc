-- unique_opens_by_category.sql: unique opens per category over the last 30 days.
--
-- From the rollups (category_daily_stats): a recipient counts once per day and category,
-- so unique_opens is the sum over days of each day's distinct openers.  open_rate =
-- unique opens / delivered.
SELECT category,
       sum(delivered) AS delivered,
       sum(opens) AS opens,
       sum(unique_opens) AS unique_opens,
       round(sum(unique_opens)::numeric / nullif(sum(delivered), 0), 4) AS open_rate
FROM category_daily_stats
WHERE day >= (now() AT TIME ZONE 'UTC')::date - 29
GROUP BY category
ORDER BY unique_opens DESC, category;
