-- 005_api_keys.sql: mailpipe's own API keys (Authorization: Bearer mp_...).
--
-- A key is "mp_" + key_prefix (8 of [a-z0-9], shown in lists) + "_" + 43 characters of
-- base64url (32 random bytes).  `mailpipectl apikey create` shows it once; the table holds
-- only key_prefix and key_hash = SHA-256 of the whole key string.  The secret is 256
-- random bits, so a plain SHA-256 is enough: a slow KDF (bcrypt, argon2) protects
-- guessable passwords and adds nothing for such keys, while it would cost every request.
--
-- ingest loads the keys not revoked into memory (as mailpipe_reader) and reloads them
-- every auth.refresh_seconds: a revoked key stops working within that time.  Only the
-- role running mailpipectl (the owner) creates and revokes keys; the application roles
-- read.

CREATE TABLE api_keys (
    id          bigserial   PRIMARY KEY,
    name        text        NOT NULL,
    key_prefix  text        NOT NULL UNIQUE,   -- the lookup key of a check
    key_hash    bytea       NOT NULL,          -- SHA-256 of the key string
    scopes      text[]      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,                   -- NULL: active
    CONSTRAINT api_keys_name_nonempty CHECK (name <> ''),
    CONSTRAINT api_keys_prefix_shape CHECK (key_prefix ~ '^[a-z0-9]{8}$'),
    CONSTRAINT api_keys_hash_sha256 CHECK (octet_length(key_hash) = 32),
    -- a new scope needs a migration that replaces this constraint (and lib/apikey.c)
    CONSTRAINT api_keys_scopes_known CHECK (
        cardinality(scopes) > 0
        AND scopes <@ ARRAY['mail.send', 'stats.read', 'suppressions.read',
                            'suppressions.write', 'all']::text[])
);

COMMENT ON TABLE api_keys IS
    'API keys: key_hash is SHA-256 of a 256-bit random secret; the key itself is never stored';

-- 001_roles.sql's default privileges gave the writer INSERT and UPDATE: keys are read-only
-- to the application roles.
REVOKE ALL ON api_keys FROM mailpipe_writer, mailpipe_reader;
REVOKE ALL ON SEQUENCE api_keys_id_seq FROM mailpipe_writer, mailpipe_reader;
GRANT SELECT ON api_keys TO mailpipe_reader, mailpipe_writer;
