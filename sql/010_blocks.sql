-- 010_blocks.sql: blocked addresses, and removing entries through the read API.
--
-- A block (event 'bounce' with type 'blocked') is a temporary refusal by the receiving
-- server (reputation, content, rate), not a bad address: unlike a hard bounce it does not
-- suppress, and mail to the address is still sent.  SendGrid lists blocks in their own
-- suppression list, GET /v3/suppression/blocks, so the sink keeps the latest block of each
-- address (lower-cased) here, in the same transaction as the events.  created_at is the
-- time of the event, so replayed or late events never replace a newer block.
--
-- The read API (build/query) connects as mailpipe_reader in read-only transactions; its
-- DELETE /v3/suppression/<list>/{email} calls mailpipe_suppression_delete(), which runs
-- with its owner's rights, as mailpipe_ensure_partitions() does in 004.  `mailpipectl
-- suppression remove` calls it too (list NULL: whatever the reason).

CREATE TABLE blocks (
    email        text PRIMARY KEY,             -- lower-cased
    reason       text,                         -- the event's reason (the server's answer)
    status       text,                         -- the event's status, e.g. 4.7.1
    source_event text NOT NULL,                -- the sg_event_id of the latest block
    created_at   timestamptz NOT NULL          -- that event's time
);

-- GET /v3/suppression/blocks: newest first, email as the tie-break
CREATE INDEX blocks_created_idx ON blocks (created_at DESC, email);

-- GET /v3/suppression/{bounces,spam_reports,unsubscribes}: one reason, newest first, email
-- as the tie-break; start_time/end_time are ranges on created_at.  Supersedes 007's
-- (reason, created_at) for these queries, which stays for `mailpipectl suppression list`.
CREATE INDEX suppressions_reason_created_email_idx
    ON suppressions (reason, created_at DESC, email);

-- The entries' details (bounce reason and status, spam report ip) come from the event that
-- caused them, suppressions.source_event = events.sg_event_id.  events had no index on
-- sg_event_id (it is partitioned by event_time): the read API looks the event's time up in
-- event_ids (primary key sg_event_id), which prunes events to one partition at run time,
-- and finds the row there with this index.  events_event_time_idx alone would read every
-- event of the same second (SendGrid's timestamps are whole seconds).  Partial: only the
-- events the lists read details from, a small share of all events, pay for it.
CREATE INDEX events_suppression_source_idx ON events (sg_event_id)
    WHERE event IN ('bounce', 'spamreport');

GRANT SELECT, INSERT, UPDATE ON blocks TO mailpipe_writer;
GRANT SELECT ON blocks TO mailpipe_reader;

-- Removes address from a list: 'bounces', 'spam_reports', 'unsubscribes' (suppressions of
-- reason bounce, spamreport, unsubscribe), 'blocks' (table blocks), or NULL (suppressions,
-- whatever the reason).  address is matched as given and as lower() makes it (the sink
-- stores lower(email)).  Returns the rows removed: none when it was not on that list.
CREATE FUNCTION mailpipe_suppression_delete(list text, address text)
RETURNS TABLE (removed_email text, removed_reason text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    want text;
BEGIN
    IF address IS NULL OR address = '' THEN
        RAISE EXCEPTION 'an address is required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF list = 'blocks' THEN
        RETURN QUERY
            DELETE FROM blocks b WHERE b.email IN (address, lower(address))
            RETURNING b.email, 'blocked'::text;
        RETURN;
    END IF;
    want := CASE list
        WHEN 'bounces' THEN 'bounce'
        WHEN 'spam_reports' THEN 'spamreport'
        WHEN 'unsubscribes' THEN 'unsubscribe'
    END;
    IF list IS NOT NULL AND want IS NULL THEN
        RAISE EXCEPTION 'unknown suppression list "%"', list
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
        DELETE FROM suppressions s
         WHERE s.email IN (address, lower(address)) AND (want IS NULL OR s.reason = want)
        RETURNING s.email, s.reason;
END
$$;

COMMENT ON FUNCTION mailpipe_suppression_delete(text, text) IS
    'remove an address from a suppression list (bounces, spam_reports, unsubscribes, blocks; NULL = any suppression); returns the rows removed';

REVOKE ALL ON FUNCTION mailpipe_suppression_delete(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mailpipe_suppression_delete(text, text) TO mailpipe_reader;
