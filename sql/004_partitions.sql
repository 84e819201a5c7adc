-- 004_partitions.sql: monthly partitions of events.
--
-- mailpipe_ensure_partitions(months_ahead) creates events_yYYYYmMM for every
-- UTC month from last month through months_ahead months after the current
-- one, skipping those that exist, and returns how many it created. It is safe
-- to call at any time and from several sessions at once; run it at least
-- monthly (mailpipectl partitions, or mailpipectl migrate, which calls it).
--
-- Creating a partition scans events_default under an ACCESS EXCLUSIVE lock
-- for rows that belong in the new range. If there are any, PostgreSQL refuses
-- to create the partition; that month is reported with a NOTICE and skipped,
-- the rest go on, and its rows stay in events_default until an operator moves
-- them (detach the default, create the partition, move the rows, re-attach).

CREATE FUNCTION mailpipe_ensure_partitions(months_ahead int DEFAULT 3)
RETURNS int
LANGUAGE plpgsql
-- runs with its owner's rights so the sink (mailpipe_writer) can keep partitions ahead
-- without owning events; the search_path is pinned as SECURITY DEFINER requires
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    parent     regclass := 'events'::regclass;
    nsp_oid    oid;
    nsp        name;
    this_month date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    mon        date;
    part       text;
    created    int := 0;
BEGIN
    IF months_ahead IS NULL OR months_ahead < 0 OR months_ahead > 120 THEN
        RAISE EXCEPTION 'invalid months_ahead %: expected 0 to 120', months_ahead
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT n.oid, n.nspname INTO nsp_oid, nsp
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = parent;

    -- serialise concurrent callers: two sessions creating the same table
    -- would otherwise fail on the catalog's unique indexes
    PERFORM pg_advisory_xact_lock(hashtext('mailpipe_ensure_partitions'));

    FOR i IN -1 .. months_ahead LOOP
        mon := (this_month + make_interval(months => i))::date;
        part := format('events_y%sm%s', to_char(mon, 'YYYY'), to_char(mon, 'MM'));

        CONTINUE WHEN EXISTS (
            SELECT 1 FROM pg_class c
             WHERE c.relname = part AND c.relnamespace = nsp_oid);

        BEGIN
            EXECUTE format(
                'CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                nsp, part, parent,
                to_char(mon, 'YYYY-MM-DD') || ' 00:00:00+00',
                to_char((mon + interval '1 month')::date, 'YYYY-MM-DD') || ' 00:00:00+00');
            created := created + 1;
        EXCEPTION WHEN check_violation THEN
            RAISE NOTICE 'cannot create partition "%": % (its rows stay in the default partition)',
                part, SQLERRM;
        END;
    END LOOP;

    RETURN created;
END
$$;

COMMENT ON FUNCTION mailpipe_ensure_partitions(int) IS
    'create the missing monthly partitions events_yYYYYmMM from last month through months_ahead months ahead (UTC); returns how many were created';

-- creating partitions needs ownership of events: the function runs as its owner, and
-- only the owner and the sink's role may call it
REVOKE ALL ON FUNCTION mailpipe_ensure_partitions(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mailpipe_ensure_partitions(int) TO mailpipe_writer;

SELECT mailpipe_ensure_partitions();
