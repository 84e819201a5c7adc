/*
 * idem: Redis "already written" markers over rconn; see idem.h.
 */
#include "idem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct idem {
	struct rconn *rc;
	char *prefix; /* "<prefix><kind>:" */
	char ttl[24];
};

struct idem *
idem_new(struct rconn *rc, const char *prefix, const char *kind, long ttl_seconds)
{
	struct idem *id = calloc(1, sizeof(*id));
	size_t len = strlen(prefix) + strlen(kind) + 2;

	if (id == NULL || (id->prefix = malloc(len)) == NULL) {
		free(id);
		return NULL;
	}
	id->rc = rc;
	snprintf(id->prefix, len, "%s%s:", prefix, kind);
	snprintf(id->ttl, sizeof(id->ttl), "%ld", ttl_seconds);
	return id;
}

void
idem_destroy(struct idem *id)
{
	if (id == NULL)
		return;
	free(id->prefix);
	free(id);
}

/* keys[i] = prefix + ids[i]; one allocation holds them all.  Returns it, or NULL. */
static char *
make_keys(const struct idem *id, const char *const *ids, size_t n, const char **keys, size_t *lens)
{
	size_t plen = strlen(id->prefix), total = 0;
	char *buf, *p;

	for (size_t i = 0; i < n; i++)
		total += plen + strlen(ids[i]);
	if ((buf = malloc(total + 1)) == NULL)
		return NULL;
	p = buf;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(ids[i]);

		memcpy(p, id->prefix, plen);
		memcpy(p + plen, ids[i], l);
		keys[i] = p;
		lens[i] = plen + l;
		p += plen + l;
	}
	return buf;
}

int
idem_seen(struct idem *id, const char *const *ids, size_t n, unsigned char *seen)
{
	const char **argv = NULL;
	size_t *lens = NULL;
	char *keys = NULL;
	redisReply *r = NULL;
	int rc = -1;

	if (n == 0)
		return 0;
	argv = malloc((n + 1) * sizeof(*argv));
	lens = malloc((n + 1) * sizeof(*lens));
	if (argv == NULL || lens == NULL ||
	    (keys = make_keys(id, ids, n, argv + 1, lens + 1)) == NULL)
		goto out;
	argv[0] = "MGET";
	lens[0] = 4;
	if ((r = rconn_command(id->rc, (int)n + 1, argv, lens)) == NULL)
		goto out;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != n)
		goto out;
	for (size_t i = 0; i < n; i++)
		seen[i] = r->element[i]->type != REDIS_REPLY_NIL;
	rc = 0;
out:
	if (r)
		freeReplyObject(r);
	free(keys);
	free(lens);
	free(argv);
	return rc;
}

int
idem_mark(struct idem *id, const char *const *ids, size_t n)
{
	const char **keys = NULL;
	size_t *lens = NULL;
	char *buf = NULL;
	redisContext *c = NULL;
	int rc = -1, failed = 0;

	if (n == 0)
		return 0;
	keys = malloc(n * sizeof(*keys));
	lens = malloc(n * sizeof(*lens));
	if (keys == NULL || lens == NULL || (buf = make_keys(id, ids, n, keys, lens)) == NULL)
		goto out;
	if ((c = rconn_lock(id->rc)) == NULL)
		goto out;
	/* Pipelined: n SETs written at once, then n replies read. */
	for (size_t i = 0; i < n && !failed; i++) {
		const char *argv[] = {"SET", keys[i], "1", "EX", id->ttl};
		size_t alen[] = {3, lens[i], 1, 2, strlen(id->ttl)};

		failed = redisAppendCommandArgv(c, 5, argv, alen) != REDIS_OK;
	}
	for (size_t i = 0; i < n && !failed; i++) {
		void *reply = NULL;

		failed = redisGetReply(c, &reply) != REDIS_OK;
		freeReplyObject(reply);
	}
	rconn_unlock(id->rc, failed);
	rc = failed ? -1 : 0;
out:
	free(buf);
	free(lens);
	free(keys);
	return rc;
}
