/*
 * idemkey: Idempotency-Key records in Redis; see idemkey.h.
 *
 * Record value: "<body sha256 hex> pending" while the first request runs, then
 * "<body sha256 hex> <status> <message id>".
 */
#include "idemkey.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

static void
sha256_hex(const void *data, size_t len, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int mdlen = 0;

	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	for (unsigned int i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

int
idemkey_valid(const char *value)
{
	size_t len = value ? strlen(value) : 0;

	if (len == 0 || len > 255)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)value[i] < 0x21 || (unsigned char)value[i] > 0x7e)
			return 0;
	return 1;
}

/* Parses a stored record into its parts; -1 if malformed. */
static int
parse_record(const char *v, char hash[65], int *status, char msgid[MSGID_LEN + 1])
{
	char st[16] = "", id[MSGID_LEN + 2] = "";
	int n = sscanf(v, "%64s %15s %27s", hash, st, id);

	if (n < 2)
		return -1;
	if (strcmp(st, "pending") == 0) {
		*status = 0;
		return 0;
	}
	*status = atoi(st);
	if (n != 3 || *status < 100 || !msgid_valid(id))
		return -1;
	memcpy(msgid, id, MSGID_LEN + 1);
	return 0;
}

enum idemkey_state
idemkey_begin(struct idemkey *ik, struct rconn *rc, const char *prefix, long ttl_seconds,
	      long api_key_id, const char *value, const void *body, size_t len, int *status,
	      char msgid[MSGID_LEN + 1])
{
	char value_hash[65], record[80], ttl[24], stored_hash[65];
	redisReply *r;

	memset(ik, 0, sizeof(*ik));
	ik->rc = rc;
	ik->prefix = prefix;
	ik->ttl_seconds = ttl_seconds;
	/* The header is hashed: any byte a client sends becomes a fixed-length safe key. */
	sha256_hex(value, strlen(value), value_hash);
	sha256_hex(body, len, ik->body_hash);
	snprintf(ik->key, sizeof(ik->key), "%sidk:%ld:%s", prefix, api_key_id, value_hash);
	snprintf(record, sizeof(record), "%s pending", ik->body_hash);
	snprintf(ttl, sizeof(ttl), "%ld", ttl_seconds);

	const char *set[] = {"SET", ik->key, record, "NX", "EX", ttl};
	if ((r = rconn_command(rc, 6, set, NULL)) == NULL)
		return IDEMKEY_UNAVAILABLE;
	int claimed = r->type == REDIS_REPLY_STATUS;
	freeReplyObject(r);
	if (claimed)
		return IDEMKEY_NEW;

	const char *get[] = {"GET", ik->key};
	if ((r = rconn_command(rc, 2, get, NULL)) == NULL)
		return IDEMKEY_UNAVAILABLE;
	if (r->type != REDIS_REPLY_STRING) {
		/* Expired or released between SET and GET: let the client retry. */
		freeReplyObject(r);
		return IDEMKEY_IN_PROGRESS;
	}
	int bad = parse_record(r->str, stored_hash, status, msgid) < 0;
	freeReplyObject(r);
	if (bad)
		return IDEMKEY_UNAVAILABLE;
	if (strcmp(stored_hash, ik->body_hash) != 0)
		return IDEMKEY_CONFLICT;
	return *status == 0 ? IDEMKEY_IN_PROGRESS : IDEMKEY_REPLAY;
}

int
idemkey_finish(struct idemkey *ik, int status, const char *msgid)
{
	char record[128], ttl[24];
	redisReply *r;

	snprintf(record, sizeof(record), "%s %d %s", ik->body_hash, status, msgid);
	snprintf(ttl, sizeof(ttl), "%ld", ik->ttl_seconds);
	const char *set[] = {"SET", ik->key, record, "EX", ttl};
	if ((r = rconn_command(ik->rc, 5, set, NULL)) == NULL)
		return -1;
	freeReplyObject(r);
	return 0;
}

void
idemkey_release(struct idemkey *ik)
{
	const char *del[] = {"DEL", ik->key};
	redisReply *r = rconn_command(ik->rc, 2, del, NULL);

	if (r)
		freeReplyObject(r);
}
