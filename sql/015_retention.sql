-- 015_retention.sql: one monthly partition of events on demand, for `mailpipectl restore`.
--
-- mailpipe_ensure_partitions() (004) only makes last month onwards; restoring an archived
-- month needs its partition back with exactly the bounds it had.
-- mailpipe_create_partition(month) creates events_yYYYYmMM for the UTC month holding
-- `month` unless it exists, and returns whether it created it. Like 004 it fails with
-- check_violation when events_default already holds rows of that month.
--
-- Only the owner of events (the role that runs the migrations, `mailpipectl retention`
-- and `restore`) may call it.

CREATE FUNCTION mailpipe_create_partition(month date)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    nsp_oid oid;
    nsp     name;
    mon     date := date_trunc('month', month)::date;
    part    text;
BEGIN
    IF month IS NULL THEN
        RAISE EXCEPTION 'month must not be null' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT n.oid, n.nspname INTO nsp_oid, nsp
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = 'events'::regclass;

    -- the same lock as mailpipe_ensure_partitions(): no two sessions create one table
    PERFORM pg_advisory_xact_lock(hashtext('mailpipe_ensure_partitions'));

    part := format('events_y%sm%s', to_char(mon, 'YYYY'), to_char(mon, 'MM'));
    IF EXISTS (SELECT 1 FROM pg_class c WHERE c.relname = part AND c.relnamespace = nsp_oid) THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.events FOR VALUES FROM (%L) TO (%L)',
                   nsp, part, nsp,
                   to_char(mon, 'YYYY-MM-DD') || ' 00:00:00+00',
                   to_char((mon + interval '1 month')::date, 'YYYY-MM-DD') || ' 00:00:00+00');
    RETURN true;
END
$$;

COMMENT ON FUNCTION mailpipe_create_partition(date) IS
    'create the monthly partition events_yYYYYmMM of the UTC month holding month unless it exists; returns whether it was created';

REVOKE ALL ON FUNCTION mailpipe_create_partition(date) FROM PUBLIC;
