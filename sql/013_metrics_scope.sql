-- 013_metrics_scope.sql: the API key scope metrics.read (GET /metrics, the Prometheus
-- scrape of every mailpipe process); lib/apikey.c knows it as well.

ALTER TABLE api_keys DROP CONSTRAINT api_keys_scopes_known;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_known CHECK (
    cardinality(scopes) > 0
    AND scopes <@ ARRAY['mail.send', 'stats.read', 'suppressions.read',
                        'suppressions.write', 'metrics.read', 'all']::text[]);
