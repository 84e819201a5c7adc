/*
 * sender_state: the sender's Redis keys; see sender.h.
 *
 *   <prefix>msg:<id>  HASH state, attempts, since_ms[, sg_id]   (TTL redis.marker_ttl_seconds)
 *   <prefix>retry     ZSET score = due time (epoch ms), member = message id
 *
 * Redis only saves work: every caller goes on with PostgreSQL when a call answers -1.  The
 * connection is made lazily and, after a failure, retried with backoff.  Commands are
 * built with redisCommandArgv and explicit lengths, never from format strings.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis.h>

#include "backoff.h"
#include "log.h"
#include "sender.h"

#define KEY_MAX 512

struct sender_state {
	char host[256];
	int port;
	char unix_path[256];
	char password[256];
	int db;
	char prefix[128];
	char retry_key[160];
	char ttl[24];
	redisContext *c;
	long long next_try; /* epoch ms */
	struct backoff bo;
	int down;      /* the last attempt failed (logged once) */
	int came_back; /* connected since came_back was last read */
};

static int
parse_url(struct sender_state *rs, const char *url, char *err, size_t errlen)
{
	const char *p, *at, *slash, *colon;

	rs->port = 6379;
	if (strncmp(url, "unix:", 5) == 0) {
		snprintf(rs->unix_path, sizeof(rs->unix_path), "%s", url + 5);
		if (rs->unix_path[0])
			return 0;
		snprintf(err, errlen, "invalid redis url: empty unix socket path");
		return -1;
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
		snprintf(rs->password, sizeof(rs->password), "%.*s", (int)(at - pw), pw);
		p = at + 1;
	}
	slash = strchr(p, '/');
	colon = memchr(p, ':', slash ? (size_t)(slash - p) : strlen(p));
	if (colon) {
		snprintf(rs->host, sizeof(rs->host), "%.*s", (int)(colon - p), p);
		rs->port = atoi(colon + 1);
	} else {
		snprintf(rs->host, sizeof(rs->host), "%.*s",
			 (int)(slash ? (size_t)(slash - p) : strlen(p)), p);
	}
	if (slash && slash[1])
		rs->db = atoi(slash + 1);
	if (rs->host[0] == '\0' || rs->port <= 0 || rs->port > 65535 || rs->db < 0) {
		snprintf(err, errlen, "invalid redis url: bad host, port or database");
		return -1;
	}
	return 0;
}

struct sender_state *
sender_state_new(const char *url, const char *prefix, long ttl_seconds, char *err, size_t errlen)
{
	struct sender_state *rs = calloc(1, sizeof(*rs));

	if (rs == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (strlen(prefix) >= sizeof(rs->prefix)) {
		snprintf(err, errlen, "invalid 'redis.prefix': longer than %zu bytes",
			 sizeof(rs->prefix) - 1);
		free(rs);
		return NULL;
	}
	if (parse_url(rs, url, err, errlen) < 0) {
		free(rs);
		return NULL;
	}
	snprintf(rs->prefix, sizeof(rs->prefix), "%s", prefix);
	snprintf(rs->retry_key, sizeof(rs->retry_key), "%sretry", prefix);
	snprintf(rs->ttl, sizeof(rs->ttl), "%ld", ttl_seconds);
	backoff_init(&rs->bo, 250, 5000);
	return rs;
}

void
sender_state_destroy(struct sender_state *rs)
{
	if (rs == NULL)
		return;
	if (rs->c)
		redisFree(rs->c);
	explicit_bzero(rs->password, sizeof(rs->password));
	free(rs);
}

static void
drop(struct sender_state *rs, const char *why)
{
	if (!rs->down)
		log_warnx("redis unavailable, going on with postgresql only: %s", why);
	rs->down = 1;
	if (rs->c)
		redisFree(rs->c);
	rs->c = NULL;
	rs->next_try = sender_now_ms() + backoff_next(&rs->bo);
}

/* Runs one command; returns its reply or NULL (and drops the connection). */
static redisReply *
run(struct sender_state *rs, int argc, const char **argv, const size_t *lens)
{
	redisReply *r = redisCommandArgv(rs->c, argc, argv, lens);

	if (r == NULL) {
		drop(rs, rs->c->errstr);
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		char why[200];

		snprintf(why, sizeof(why), "'%s' refused: %s", argv[0], r->str);
		freeReplyObject(r);
		drop(rs, why);
		return NULL;
	}
	return r;
}

static int
connect_now(struct sender_state *rs)
{
	struct timeval tv = {1, 0};
	redisReply *r;

	if (rs->c)
		return 0;
	if (sender_now_ms() < rs->next_try)
		return -1;
	rs->c = rs->unix_path[0] ? redisConnectUnixWithTimeout(rs->unix_path, tv)
				 : redisConnectWithTimeout(rs->host, rs->port, tv);
	if (rs->c == NULL || rs->c->err) {
		drop(rs, rs->c ? rs->c->errstr : "cannot allocate context");
		return -1;
	}
	redisSetTimeout(rs->c, tv);
	if (rs->password[0]) {
		const char *argv[] = {"AUTH", rs->password};
		if ((r = run(rs, 2, argv, NULL)) == NULL)
			return -1;
		freeReplyObject(r);
	}
	if (rs->db) {
		char db[16];
		const char *argv[] = {"SELECT", db};

		snprintf(db, sizeof(db), "%d", rs->db);
		if ((r = run(rs, 2, argv, NULL)) == NULL)
			return -1;
		freeReplyObject(r);
	}
	if (rs->down)
		log_info("redis reachable again");
	rs->down = 0;
	rs->came_back = 1;
	backoff_reset(&rs->bo);
	return 0;
}

int
sender_state_up(struct sender_state *rs)
{
	return connect_now(rs) == 0;
}

int
sender_state_came_back(struct sender_state *rs)
{
	int v = rs->came_back;

	rs->came_back = 0;
	return v;
}

/* <prefix>msg:<id> into key; returns its length. */
static size_t
msg_key(const struct sender_state *rs, const char *id, char key[KEY_MAX])
{
	int n = snprintf(key, KEY_MAX, "%smsg:%s", rs->prefix, id);

	return n < 0 ? 0 : (size_t)n >= KEY_MAX ? KEY_MAX - 1 : (size_t)n;
}

int
sender_state_get(struct sender_state *rs, const char *id, struct sender_mstate *out)
{
	char key[KEY_MAX];
	size_t klen = msg_key(rs, id, key);
	const char *argv[] = {"HMGET", key, "state", "attempts", "since_ms", "sg_id"};
	size_t lens[] = {5, klen, 5, 8, 8, 5};
	redisReply *r;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (connect_now(rs) < 0 || (r = run(rs, 6, argv, lens)) == NULL)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
		freeReplyObject(r);
		drop(rs, "unexpected HMGET reply");
		return -1;
	}
	redisReply **e = r->element;
	if (e[0]->type == REDIS_REPLY_STRING) {
		snprintf(out->state, sizeof(out->state), "%.*s", (int)e[0]->len, e[0]->str);
		if (e[1]->type == REDIS_REPLY_STRING)
			out->attempts = strtol(e[1]->str, NULL, 10);
		if (e[2]->type == REDIS_REPLY_STRING)
			out->since_ms = strtoll(e[2]->str, NULL, 10);
		if (e[3]->type == REDIS_REPLY_STRING)
			snprintf(out->sg_id, sizeof(out->sg_id), "%.*s", (int)e[3]->len, e[3]->str);
		rc = 1;
	}
	freeReplyObject(r);
	return rc;
}

int
sender_state_set(struct sender_state *rs, const char *id, const char *state, long attempts,
		 long long since_ms, const char *sg_id)
{
	char key[KEY_MAX], att[24], since[24];
	size_t klen = msg_key(rs, id, key);
	int argc = sg_id && sg_id[0] ? 10 : 8;
	const char *hset[] = {"HSET", key,        "state", state,   "attempts",
			      att,    "since_ms", since,   "sg_id", sg_id};
	size_t hlen[] = {4, klen, 5, strlen(state), 8, 0, 8, 0, 5, sg_id ? strlen(sg_id) : 0};
	const char *expire[] = {"EXPIRE", key, rs->ttl};
	size_t elen[] = {6, klen, strlen(rs->ttl)};
	void *reply = NULL;

	if (connect_now(rs) < 0)
		return -1;
	hlen[5] = (size_t)snprintf(att, sizeof(att), "%ld", attempts);
	hlen[7] = (size_t)snprintf(since, sizeof(since), "%lld", since_ms);
	/* Pipelined: both written at once, then both replies read. */
	if (redisAppendCommandArgv(rs->c, argc, hset, hlen) != REDIS_OK ||
	    redisAppendCommandArgv(rs->c, 3, expire, elen) != REDIS_OK) {
		drop(rs, rs->c->errstr);
		return -1;
	}
	for (int i = 0; i < 2; i++) {
		if (redisGetReply(rs->c, &reply) != REDIS_OK) {
			drop(rs, rs->c->errstr);
			return -1;
		}
		int bad = ((redisReply *)reply)->type == REDIS_REPLY_ERROR;
		freeReplyObject(reply);
		if (bad) {
			drop(rs, "HSET/EXPIRE refused");
			return -1;
		}
	}
	return 0;
}

int
sender_state_schedule(struct sender_state *rs, const char *id, long long due_ms)
{
	char score[24];
	const char *argv[] = {"ZADD", rs->retry_key, score, id};
	size_t lens[] = {4, strlen(rs->retry_key), 0, strlen(id)};
	redisReply *r;

	lens[2] = (size_t)snprintf(score, sizeof(score), "%lld", due_ms);
	if (connect_now(rs) < 0 || (r = run(rs, 4, argv, lens)) == NULL)
		return -1;
	freeReplyObject(r);
	return 0;
}

ssize_t
sender_state_due(struct sender_state *rs, long long now_ms, char (*ids)[MSGID_LEN + 1], size_t max)
{
	char until[24], count[24];
	const char *argv[] = {"ZRANGEBYSCORE", rs->retry_key, "-inf", until, "LIMIT", "0", count};
	size_t lens[] = {13, strlen(rs->retry_key), 4, 0, 5, 1, 0};
	redisReply *r;
	size_t n = 0;

	lens[3] = (size_t)snprintf(until, sizeof(until), "%lld", now_ms);
	lens[6] = (size_t)snprintf(count, sizeof(count), "%zu", max);
	if (connect_now(rs) < 0 || (r = run(rs, 7, argv, lens)) == NULL)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(r);
		drop(rs, "unexpected ZRANGEBYSCORE reply");
		return -1;
	}
	for (size_t i = 0; i < r->elements && n < max; i++) {
		redisReply *e = r->element[i];

		if (e->type != REDIS_REPLY_STRING || e->len != MSGID_LEN) {
			/* Not ours: take it off so it does not block the head of the queue. */
			const char *zrem[] = {"ZREM", rs->retry_key, e->str};
			size_t zlen[] = {4, strlen(rs->retry_key), e->len};
			redisReply *z;

			log_warnx("dropping a retry entry that is no message id");
			if (e->type == REDIS_REPLY_STRING && (z = run(rs, 3, zrem, zlen)) != NULL)
				freeReplyObject(z);
			if (rs->c == NULL)
				break;
			continue;
		}
		memcpy(ids[n], e->str, MSGID_LEN);
		ids[n++][MSGID_LEN] = '\0';
	}
	freeReplyObject(r);
	return rs->c ? (ssize_t)n : -1;
}

int
sender_state_claim(struct sender_state *rs, const char *id)
{
	const char *argv[] = {"ZREM", rs->retry_key, id};
	size_t lens[] = {4, strlen(rs->retry_key), strlen(id)};
	redisReply *r;
	int rc;

	if (connect_now(rs) < 0 || (r = run(rs, 3, argv, lens)) == NULL)
		return -1;
	rc = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	freeReplyObject(r);
	return rc;
}

int
sender_state_missing(struct sender_state *rs, char (*ids)[MSGID_LEN + 1], size_t n,
		     unsigned char *missing)
{
	void *reply = NULL;

	if (n == 0)
		return 0;
	if (connect_now(rs) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const char *argv[] = {"ZSCORE", rs->retry_key, ids[i]};
		size_t lens[] = {6, strlen(rs->retry_key), strlen(ids[i])};

		if (redisAppendCommandArgv(rs->c, 3, argv, lens) != REDIS_OK) {
			drop(rs, rs->c->errstr);
			return -1;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (redisGetReply(rs->c, &reply) != REDIS_OK) {
			drop(rs, rs->c->errstr);
			return -1;
		}
		int type = ((redisReply *)reply)->type;
		freeReplyObject(reply);
		if (type == REDIS_REPLY_ERROR) {
			drop(rs, "ZSCORE refused");
			return -1;
		}
		missing[i] = type == REDIS_REPLY_NIL;
	}
	return 0;
}
