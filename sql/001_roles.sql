-- 001_roles.sql: the application roles and their default privileges.
--
-- mailpipe_writer: the sink (INSERT/SELECT/UPDATE, sequences).
-- mailpipe_reader: the query side and analysts (SELECT only).
--
-- Roles are cluster-wide, so they are created only when missing and never
-- altered afterwards: production creates them beforehand or sets a password
-- (ALTER ROLE ... PASSWORD) out of band. Creating them needs CREATEROLE; when a
-- DBA has already made them, this migration needs no such privilege.
--
-- Runs inside the transaction mailpipectl opens: no BEGIN/COMMIT here.

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['mailpipe_writer', 'mailpipe_reader'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I LOGIN', r);
            EXCEPTION WHEN duplicate_object THEN
                -- another database of this cluster created it meanwhile
                RAISE NOTICE 'role "%" already exists, skipping', r;
            END;
        END IF;
    END LOOP;

    -- PUBLIC has CONNECT by default; say it explicitly in case a DBA revoked it
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO mailpipe_writer, mailpipe_reader',
                   current_database());
END
$$;

GRANT USAGE ON SCHEMA public TO mailpipe_writer, mailpipe_reader;

-- Tables and sequences created from now on by the role running the migrations
-- (including the monthly partitions made by mailpipe_ensure_partitions()) get
-- these grants without each migration repeating them. A later table that the
-- writer must not modify needs an explicit REVOKE in its migration.
ALTER DEFAULT PRIVILEGES GRANT SELECT, INSERT, UPDATE ON TABLES TO mailpipe_writer;
ALTER DEFAULT PRIVILEGES GRANT USAGE, SELECT ON SEQUENCES TO mailpipe_writer;
ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO mailpipe_reader;
