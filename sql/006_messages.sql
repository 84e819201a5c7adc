-- 006_messages.sql: one row per mail accepted by POST /v3/mail/send.
--
-- The sender writes the row when it first reads the request from Kafka and keeps the
-- send-side status (queued, sending, retrying, sent, failed, suppressed); the sink moves
-- it on with SendGrid's events.  The status never moves backwards: each status has a rank
-- (mailpipe_status_rank) and an update only lands if its rank is at least the current
-- one, so a late 'delivered' never overwrites 'open', whatever order events arrive in.

CREATE FUNCTION mailpipe_status_rank(status text) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE status
        WHEN 'queued' THEN 0
        WHEN 'sending' THEN 10
        WHEN 'retrying' THEN 10
        WHEN 'sent' THEN 20
        WHEN 'processed' THEN 30
        WHEN 'deferred' THEN 35
        WHEN 'delivered' THEN 40
        WHEN 'open' THEN 50
        WHEN 'click' THEN 60
        WHEN 'group_resubscribe' THEN 60
        WHEN 'group_unsubscribe' THEN 70
        WHEN 'unsubscribe' THEN 70
        WHEN 'spamreport' THEN 80
        WHEN 'bounce' THEN 90
        WHEN 'blocked' THEN 90
        WHEN 'dropped' THEN 90
        WHEN 'failed' THEN 100
        WHEN 'suppressed' THEN 100
        ELSE NULL  -- other events (account_status_change, unknown names) leave it alone
    END
$$;

COMMENT ON FUNCTION mailpipe_status_rank(text) IS
    'precedence of a message status: updates only move a message to an equal or higher rank';

CREATE TABLE messages (
    message_id          text PRIMARY KEY,          -- ours (ULID), also in custom_args
    api_key_id          bigint,
    from_email          text,
    to_emails           text[] NOT NULL DEFAULT '{}',
    subject             text,
    categories          text[],
    request             jsonb NOT NULL,            -- the body sent to SendGrid
    status              text NOT NULL DEFAULT 'queued',
    status_rank         int NOT NULL DEFAULT 0,
    attempts            int NOT NULL DEFAULT 0,
    last_error          text,
    sendgrid_message_id text,                      -- X-Message-Id SendGrid answered
    created_at          timestamptz NOT NULL DEFAULT now(),
    sent_at             timestamptz,
    next_attempt_at     timestamptz,
    last_event_time     timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX messages_sendgrid_message_id_idx ON messages (sendgrid_message_id);
CREATE INDEX messages_retrying_idx ON messages (next_attempt_at) WHERE status = 'retrying';
CREATE INDEX messages_created_at_idx ON messages (created_at);

GRANT SELECT, INSERT, UPDATE ON messages TO mailpipe_writer;
GRANT SELECT ON messages TO mailpipe_reader;
GRANT EXECUTE ON FUNCTION mailpipe_status_rank(text) TO mailpipe_writer, mailpipe_reader;
