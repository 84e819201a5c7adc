-- daily_delivery_funnel.sql: requests -> delivered -> opened -> clicked, per day,
-- for all mail, over the last 30 days.
--
-- From the rollups (category_funnel, category '' = all mail), so it never scans events.
-- Rates are fractions of the step named: delivered_rate = delivered / requests,
-- open_rate and click_rate = unique opens / clicks over delivered.
SELECT day, requests, processed, delivered, unique_opens, unique_clicks,
       delivered_rate, open_rate, click_rate, click_to_open_rate
FROM category_funnel
WHERE category = ''
  AND day >= (now() AT TIME ZONE 'UTC')::date - 29
ORDER BY day;
