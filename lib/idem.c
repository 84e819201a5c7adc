/*
 * idem: Redis markers; see idem.h.  Commands are built with redisCommandArgv and explicit
 * lengths, never from format strings.
 */
#include "idem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis.h>

#include "log.h"

#define RETRY_SECONDS 2

struct idem {
	char host[256];
	int port;
	char unix_path[256];
	char password[256];
	int db;
	char *prefix; /* "<prefix><kind>:" */
	char ttl[24];
	redisContext *c;
	time_t next_try;
	int warned;
};

static int
parse_url(struct idem *id, const char *url, char *err, size_t errlen)
{
	const char *p, *at, *slash, *colon;

	id->port = 6379;
	if (strncmp(url, "unix:", 5) == 0) {
		snprintf(id->unix_path, sizeof(id->unix_path), "%s", url + 5);
		return id->unix_path[0] ? 0 : -1;
	}
	if (strncmp(url, "redis://", 8) != 0) {
		snprintf(err, errlen,
			 "invalid redis url: expected redis://host:port/db or unix:/path");
		return -1;
	}
	p = url + 8;
	if ((at = strrchr(p, '@')) != NULL) {
		const char *pw = memchr(p, ':', (size_t)(at - p));

		pw = pw ? pw + 1 : p;
		snprintf(id->password, sizeof(id->password), "%.*s", (int)(at - pw), pw);
		p = at + 1;
	}
	slash = strchr(p, '/');
	colon = memchr(p, ':', slash ? (size_t)(slash - p) : strlen(p));
	if (colon) {
		snprintf(id->host, sizeof(id->host), "%.*s", (int)(colon - p), p);
		id->port = atoi(colon + 1);
	} else {
		snprintf(id->host, sizeof(id->host), "%.*s",
			 (int)(slash ? (size_t)(slash - p) : strlen(p)), p);
	}
	if (slash && slash[1])
		id->db = atoi(slash + 1);
	if (id->host[0] == '\0' || id->port <= 0 || id->port > 65535 || id->db < 0) {
		snprintf(err, errlen, "invalid redis url: bad host, port or database");
		return -1;
	}
	return 0;
}

struct idem *
idem_new(const char *url, const char *prefix, const char *kind, long ttl_seconds, char *err,
	 size_t errlen)
{
	struct idem *id = calloc(1, sizeof(*id));
	size_t len;

	if (id == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (parse_url(id, url, err, errlen) < 0) {
		free(id);
		return NULL;
	}
	len = strlen(prefix) + strlen(kind) + 2;
	if ((id->prefix = malloc(len)) == NULL) {
		free(id);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(id->prefix, len, "%s%s:", prefix, kind);
	snprintf(id->ttl, sizeof(id->ttl), "%ld", ttl_seconds);
	return id;
}

void
idem_destroy(struct idem *id)
{
	if (id == NULL)
		return;
	if (id->c)
		redisFree(id->c);
	free(id->prefix);
	free(id);
}

static void
drop(struct idem *id, const char *why)
{
	if (!id->warned++)
		log_warnx("redis unavailable, going on without markers: %s", why);
	if (id->c)
		redisFree(id->c);
	id->c = NULL;
	id->next_try = time(NULL) + RETRY_SECONDS;
}

/* Runs one argv command; returns its reply or NULL (and drops the connection). */
static redisReply *
run(struct idem *id, int argc, const char **argv, const size_t *lens)
{
	redisReply *r = redisCommandArgv(id->c, argc, argv, lens);

	if (r == NULL) {
		drop(id, id->c->errstr);
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		log_warnx("redis error: %s", r->str);
		freeReplyObject(r);
		drop(id, "command refused");
		return NULL;
	}
	return r;
}

static int
connect_now(struct idem *id)
{
	struct timeval tv = {1, 0};
	redisReply *r;

	if (id->c)
		return 0;
	if (time(NULL) < id->next_try)
		return -1;
	id->c = id->unix_path[0] ? redisConnectUnixWithTimeout(id->unix_path, tv)
				 : redisConnectWithTimeout(id->host, id->port, tv);
	if (id->c == NULL || id->c->err) {
		drop(id, id->c ? id->c->errstr : "cannot allocate context");
		return -1;
	}
	redisSetTimeout(id->c, tv);
	if (id->password[0]) {
		const char *argv[] = {"AUTH", id->password};
		if ((r = run(id, 2, argv, NULL)) == NULL)
			return -1;
		freeReplyObject(r);
	}
	if (id->db) {
		char db[16];
		const char *argv[] = {"SELECT", db};

		snprintf(db, sizeof(db), "%d", id->db);
		if ((r = run(id, 2, argv, NULL)) == NULL)
			return -1;
		freeReplyObject(r);
	}
	if (id->warned)
		log_info("redis reachable again");
	id->warned = 0;
	return 0;
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
	if (connect_now(id) < 0)
		return -1;
	argv = malloc((n + 1) * sizeof(*argv));
	lens = malloc((n + 1) * sizeof(*lens));
	if (argv == NULL || lens == NULL ||
	    (keys = make_keys(id, ids, n, argv + 1, lens + 1)) == NULL)
		goto out;
	argv[0] = "MGET";
	lens[0] = 4;
	if ((r = run(id, (int)n + 1, argv, lens)) == NULL)
		goto out;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
		drop(id, "unexpected MGET reply");
		goto out;
	}
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
	int rc = -1;

	if (n == 0)
		return 0;
	if (connect_now(id) < 0)
		return -1;
	keys = malloc(n * sizeof(*keys));
	lens = malloc(n * sizeof(*lens));
	if (keys == NULL || lens == NULL || (buf = make_keys(id, ids, n, keys, lens)) == NULL)
		goto out;
	/* Pipelined: n SETs written at once, then n replies read. */
	for (size_t i = 0; i < n; i++) {
		const char *argv[] = {"SET", keys[i], "1", "EX", id->ttl};
		size_t alen[] = {3, lens[i], 1, 2, strlen(id->ttl)};

		if (redisAppendCommandArgv(id->c, 5, argv, alen) != REDIS_OK) {
			drop(id, id->c->errstr);
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		void *reply = NULL;

		if (redisGetReply(id->c, &reply) != REDIS_OK) {
			drop(id, id->c->errstr);
			goto out;
		}
		freeReplyObject(reply);
	}
	rc = 0;
out:
	free(buf);
	free(lens);
	free(keys);
	return rc;
}
