/*
 * apikey: mailpipe's own API keys, and the in-memory snapshot ingest checks them against.
 *
 * A key reads "mp_" + 8 characters [a-z0-9] (its prefix, shown in lists) + "_" + 43
 * characters of base64url (32 random bytes), 55 characters in all:
 *
 *   mp_k3v9x0ab_0Jz4S4oX2pD1wq7n5bHc9mT3ZkVYyR8uLsEfGaQdNi6
 *
 * PostgreSQL (table api_keys) holds the prefix and the SHA-256 of the whole key string,
 * never the key.  The request path needs no database: apikeys_new() loads the keys not
 * revoked into a snapshot and a thread reloads it every refresh_seconds, keeping the last
 * snapshot while PostgreSQL is away.  Keys and hashes are never logged.
 */
#ifndef MAILPIPE_APIKEY_H
#define MAILPIPE_APIKEY_H

#include <stddef.h>

#define APIKEY_PREFIX_LEN 8  /* the [a-z0-9] part after "mp_" */
#define APIKEY_SECRET_LEN 43 /* base64url of 32 bytes, no padding */
#define APIKEY_LEN (3 + APIKEY_PREFIX_LEN + 1 + APIKEY_SECRET_LEN) /* 55 */
#define APIKEY_HASH_LEN 32                                         /* SHA-256 */

struct apikeys;

enum apikey_result {
	APIKEY_OK,
	APIKEY_MISSING,     /* no Authorization header, or an empty one */
	APIKEY_INVALID,     /* not "Bearer <key>", unknown or revoked key */
	APIKEY_FORBIDDEN,   /* a valid key without the scope asked for */
	APIKEY_UNAVAILABLE, /* the keys were never loaded (PostgreSQL away since start) */
};

/*
 * Loads `SELECT ... FROM api_keys WHERE revoked_at IS NULL` from database_url now (a
 * failure is logged, not fatal: checks answer APIKEY_UNAVAILABLE until a load succeeds)
 * and then every refresh_seconds (at least 1) in a thread of its own.  NULL with err only
 * when the module itself cannot start (memory, thread).  database_url is copied.
 */
struct apikeys *apikeys_new(const char *database_url, long refresh_seconds, char *err,
			    size_t errlen);

/*
 * Checks authorization, the raw value of the Authorization header (NULL when absent):
 * "Bearer <key>", the scheme in any case, one space, no other white space.  scope is one
 * of the scope names below (NULL: any valid key will do); a key with scope "all" has every
 * scope.  On APIKEY_OK and APIKEY_FORBIDDEN sets *key_id (when key_id is not NULL).
 * The hash is compared in constant time.  Thread-safe.
 */
enum apikey_result apikeys_check(struct apikeys *k, const char *authorization, const char *scope,
				 long *key_id);

/* Changes the refresh period (at least 1 s) from the next wait on (reload). */
void apikeys_set_refresh(struct apikeys *k, long refresh_seconds);

/* Stops the refresh thread (promptly: it waits on a condition variable) and frees k. */
void apikeys_destroy(struct apikeys *k);

/*
 * Writes a new key and its NUL into key (keylen at least APIKEY_LEN + 1), its prefix (the
 * 8 characters after "mp_") and NUL into prefix, and the SHA-256 of the key string into
 * hash.  -1 if keylen is too small or no randomness was had (getrandom).
 */
int apikey_generate(char *key, size_t keylen, char prefix[APIKEY_PREFIX_LEN + 1],
		    unsigned char hash[APIKEY_HASH_LEN]) __attribute__((warn_unused_result));

/*
 * 1 if name is a scope: mail.send, stats.read, suppressions.read, suppressions.write,
 * metrics.read, all.
 */
int apikey_scope_known(const char *name);

/* The scope names, NULL-terminated, "all" last. */
extern const char *const apikey_scope_names[];

/*
 * For tests and tools: one key of a snapshot built without a database.  prefix is the 8
 * characters after "mp_"; scopes are comma-separated names, as array_to_string() gives.
 */
struct apikey_row {
	long id;
	const char *prefix;
	unsigned char hash[APIKEY_HASH_LEN];
	const char *scopes;
};

/*
 * For tests and tools: a snapshot of rows (copied) that is never refreshed; free it with
 * apikeys_destroy().  NULL if out of memory or a row's prefix is not 8 of [a-z0-9].
 */
struct apikeys *apikeys_new_static(const struct apikey_row *rows, size_t n);

#endif
