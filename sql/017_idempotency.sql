-- 017_idempotency.sql: Idempotency-Key of POST /v3/mail/send, durable in PostgreSQL.
--
-- Ingest remembers a key in Redis (lib/idemkey.c); Redis may lose it (FLUSHALL, a crash
-- losing the last second of its AOF, a failover).  The key now travels in the
-- mail.requests record and the sender stores it with the message, so that:
--
--   * ingest, finding no Redis record for a key, looks it up here (as mailpipe_reader,
--     which can SELECT messages) and answers as the first time, or 422 for another body;
--   * the unique index below makes a key bind to one message only: a second message with
--     a key already bound (accepted by ingest in the window between Redis losing the key
--     and the sender writing the first row) is stored with status 'failed',
--     last_error 'duplicate of <message id>: ...', idempotency_key NULL, and never sent.
--
-- idempotency_key is the header's value as the client sent it (1..255 printable ASCII);
-- idempotency_body_sha256 the hex SHA-256 of the request body as received, the hash
-- ingest compares to tell "the same request" from "another body".  Both stay NULL for
-- mails sent without the header.  A key is bound for mail.idempotency_ttl_seconds: a
-- message reusing it later takes it over (the sender clears it on the old row first).

ALTER TABLE messages
    ADD COLUMN idempotency_key text,
    ADD COLUMN idempotency_body_sha256 text;

CREATE UNIQUE INDEX messages_idempotency_key_idx ON messages (api_key_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
