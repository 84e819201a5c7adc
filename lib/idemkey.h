/*
 * idemkey: the `Idempotency-Key` header of POST /v3/mail/send, remembered in Redis.
 *
 * The first request with a key claims it (SET NX) with the SHA-256 of its body and
 * "pending"; once answered, the record holds the answer.  Later requests with the same key:
 * same body -> the first answer again (nothing sent twice); another body -> 422; the first
 * still running -> 409.  A first request that failed releases the key so a retry can go on.
 * Keys are scoped by API key: two tenants never see each other's.
 *
 * Redis may lose records (FLUSHALL, a crash losing the last second of its AOF): the sender
 * stores the key and the body hash with the message in PostgreSQL (messages, 017), and a
 * key claimed anew in Redis is looked up there (idemkey_recall) before anything is sent.
 */
#ifndef MAILPIPE_IDEMKEY_H
#define MAILPIPE_IDEMKEY_H

#include <stddef.h>

#include "msgid.h"
#include "rconn.h"

enum idemkey_state {
	IDEMKEY_NEW,         /* claimed: go on, then idemkey_finish() or idemkey_release() */
	IDEMKEY_REPLAY,      /* answered before: *status and msgid hold the answer */
	IDEMKEY_CONFLICT,    /* used before with another body: 422 */
	IDEMKEY_IN_PROGRESS, /* the first request is still running: 409 */
	IDEMKEY_UNAVAILABLE, /* Redis is away: 503 */
};

struct idemkey {
	struct rconn *rc; /* borrowed */
	const char *prefix;
	long ttl_seconds;
	char key[160];      /* <prefix>idk:<api key id>:<sha256 of the header> */
	char body_hash[65]; /* hex SHA-256 of the request body */
};

/* 1 if the header value is acceptable: 1..255 printable ASCII characters. */
int idemkey_valid(const char *value);

/* Claims or looks up (api_key_id, value) for body; fills ik for the calls below. */
enum idemkey_state idemkey_begin(struct idemkey *ik, struct rconn *rc, const char *prefix,
				 long ttl_seconds, long api_key_id, const char *value,
				 const void *body, size_t len, int *status,
				 char msgid[MSGID_LEN + 1]) __attribute__((warn_unused_result));

struct idemdb;

/*
 * The PostgreSQL side: one connection (url: database.url, the reader role suffices) shared
 * by the threads, opened on first use and re-opened at most every second while the
 * database is away (meanwhile idemkey_recall answers IDEMKEY_UNAVAILABLE at once).  NULL
 * when out of memory.
 */
struct idemdb *idemdb_new(const char *url);
void idemdb_destroy(struct idemdb *db);

/*
 * After IDEMKEY_NEW: looks (api_key_id, value) up in messages, bound less than ttl_seconds
 * ago.  Not there -> IDEMKEY_NEW, the claim kept.  There -> the Redis record is seeded
 * again from it (for the rest of the TTL) and IDEMKEY_REPLAY with *status 202 and its
 * msgid, or IDEMKEY_CONFLICT for another body.  PostgreSQL away -> IDEMKEY_UNAVAILABLE
 * (the claim released: nothing may be sent that could be a second time).
 */
enum idemkey_state idemkey_recall(struct idemkey *ik, struct idemdb *db, long api_key_id,
				  const char *value, int *status, char msgid[MSGID_LEN + 1])
    __attribute__((warn_unused_result));

/*
 * 1 if a record (body hash, message id) found for a key answers a request whose body hash
 * is body_hash; 0 if it is another body; -1 if the record is unusable.  Pure.
 */
int idemkey_same_body(const char *stored_hash, const char *stored_msgid, const char *body_hash);

/* Stores the answer of a claimed key; -1 if Redis failed (the key then expires). */
int idemkey_finish(struct idemkey *ik, int status, const char *msgid);

/* Releases a claimed key after a failure, so that a retry is not refused. */
void idemkey_release(struct idemkey *ik);

#endif
