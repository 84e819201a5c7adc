/*
 * idemkey: the `Idempotency-Key` header of POST /v3/mail/send, remembered in Redis.
 *
 * The first request with a key claims it (SET NX) with the SHA-256 of its body and
 * "pending"; once answered, the record holds the answer.  Later requests with the same key:
 * same body -> the first answer again (nothing sent twice); another body -> 422; the first
 * still running -> 409.  A first request that failed releases the key so a retry can go on.
 * Keys are scoped by API key: two tenants never see each other's.
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

/* Stores the answer of a claimed key; -1 if Redis failed (the key then expires). */
int idemkey_finish(struct idemkey *ik, int status, const char *msgid);

/* Releases a claimed key after a failure, so that a retry is not refused. */
void idemkey_release(struct idemkey *ik);

#endif
