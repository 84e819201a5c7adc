/*
 * sender_state: the sender's Redis keys; see sender.h.
 *
 *   <prefix>msg:<id>  HASH state, attempts, since_ms[, sg_id]   (TTL redis.marker_ttl_seconds)
 *   <prefix>retry     ZSET score = due time (epoch ms), member = message id
 *
 * Redis only saves work: every caller goes on with PostgreSQL when a call answers -1.  The
 * connection is an rconn (lib/rconn.h): made lazily, re-made after a failure at most every
 * few seconds, commands always argv arrays with explicit lengths.  What rconn does not say
 * is when Redis came back; sender_state keeps that itself (see note()), so that the sender
 * can run its reconciler then.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis.h>

#include "log.h"
#include "rconn.h"
#include "sender.h"

#define KEY_MAX 512

struct sender_state {
	struct rconn *rc;
	char prefix[128];
	char retry_key[160];
	char ttl[24];
	int down;      /* the last call failed (or none was made yet) */
	int came_back; /* a call worked after one failed, since came_back was last read */
};

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
	if ((rs->rc = rconn_new(url, err, errlen)) == NULL) {
		free(rs);
		return NULL;
	}
	snprintf(rs->prefix, sizeof(rs->prefix), "%s", prefix);
	snprintf(rs->retry_key, sizeof(rs->retry_key), "%sretry", prefix);
	snprintf(rs->ttl, sizeof(rs->ttl), "%ld", ttl_seconds);
	rs->down = 1; /* the first connect counts as coming back */
	return rs;
}

void
sender_state_destroy(struct sender_state *rs)
{
	if (rs == NULL)
		return;
	rconn_destroy(rs->rc);
	free(rs);
}

/* Records how a call went: ok after a failure means Redis came back. */
static void
note(struct sender_state *rs, int ok)
{
	if (ok && rs->down)
		rs->came_back = 1;
	rs->down = !ok;
}

/* One command through the rconn; its reply, or NULL when Redis is unavailable or refused. */
static redisReply *
command(struct sender_state *rs, int argc, const char **argv, const size_t *lens)
{
	redisReply *r = rconn_command(rs->rc, argc, argv, lens);

	note(rs, r != NULL);
	return r;
}

/* A reply that is not of the shape asked for counts as a failed call. */
static void
unexpected(struct sender_state *rs, redisReply *r, const char *cmd)
{
	log_warnx("unexpected redis reply to '%s'", cmd);
	freeReplyObject(r);
	note(rs, 0);
}

/* 1 (logged) when a pipelined reply is an error, else 0. */
static int
refused(const redisReply *r, const char *cmd)
{
	if (r->type != REDIS_REPLY_ERROR)
		return 0;
	log_warnx("redis refused '%s': %s", cmd, r->str);
	return 1;
}

/* Ends a pipeline begun with rconn_lock(): failed drops the connection.  0, or -1. */
static int
pipeline_end(struct sender_state *rs, int failed, int bad)
{
	rconn_unlock(rs->rc, failed);
	note(rs, !failed && !bad);
	return failed || bad ? -1 : 0;
}

int
sender_state_up(struct sender_state *rs)
{
	redisContext *c = rconn_lock(rs->rc);

	if (c)
		rconn_unlock(rs->rc, 0);
	note(rs, c != NULL);
	return c != NULL;
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
	if ((r = command(rs, 6, argv, lens)) == NULL)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
		unexpected(rs, r, "HMGET");
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
	redisContext *c;
	int failed, bad = 0;

	hlen[5] = (size_t)snprintf(att, sizeof(att), "%ld", attempts);
	hlen[7] = (size_t)snprintf(since, sizeof(since), "%lld", since_ms);
	if ((c = rconn_lock(rs->rc)) == NULL) {
		note(rs, 0);
		return -1;
	}
	/* Pipelined: both written at once, then both replies read. */
	failed = redisAppendCommandArgv(c, argc, hset, hlen) != REDIS_OK ||
		 redisAppendCommandArgv(c, 3, expire, elen) != REDIS_OK;
	for (int i = 0; i < 2 && !failed; i++) {
		void *reply = NULL;

		failed = redisGetReply(c, &reply) != REDIS_OK;
		if (!failed && refused(reply, i == 0 ? "HSET" : "EXPIRE"))
			bad = 1;
		freeReplyObject(reply);
	}
	return pipeline_end(rs, failed, bad);
}

long long
sender_state_depth(struct sender_state *rs)
{
	const char *argv[] = {"ZCARD", rs->retry_key};
	redisReply *r;
	long long n;

	if ((r = command(rs, 2, argv, NULL)) == NULL)
		return -1;
	if (r->type != REDIS_REPLY_INTEGER) {
		unexpected(rs, r, "ZCARD");
		return -1;
	}
	n = r->integer;
	freeReplyObject(r);
	return n;
}

int
sender_state_schedule(struct sender_state *rs, const char *id, long long due_ms)
{
	char score[24];
	const char *argv[] = {"ZADD", rs->retry_key, score, id};
	size_t lens[] = {4, strlen(rs->retry_key), 0, strlen(id)};
	redisReply *r;

	lens[2] = (size_t)snprintf(score, sizeof(score), "%lld", due_ms);
	if ((r = command(rs, 4, argv, lens)) == NULL)
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
	int ok = 1;

	lens[3] = (size_t)snprintf(until, sizeof(until), "%lld", now_ms);
	lens[6] = (size_t)snprintf(count, sizeof(count), "%zu", max);
	if ((r = command(rs, 7, argv, lens)) == NULL)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY) {
		unexpected(rs, r, "ZRANGEBYSCORE");
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
			if (e->type != REDIS_REPLY_STRING)
				continue;
			if ((z = command(rs, 3, zrem, zlen)) == NULL) {
				ok = 0;
				break;
			}
			freeReplyObject(z);
			continue;
		}
		memcpy(ids[n], e->str, MSGID_LEN);
		ids[n++][MSGID_LEN] = '\0';
	}
	freeReplyObject(r);
	return ok ? (ssize_t)n : -1;
}

int
sender_state_claim(struct sender_state *rs, const char *id)
{
	const char *argv[] = {"ZREM", rs->retry_key, id};
	size_t lens[] = {4, strlen(rs->retry_key), strlen(id)};
	redisReply *r;
	int rc;

	if ((r = command(rs, 3, argv, lens)) == NULL)
		return -1;
	rc = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	freeReplyObject(r);
	return rc;
}

int
sender_state_missing(struct sender_state *rs, char (*ids)[MSGID_LEN + 1], size_t n,
		     unsigned char *missing)
{
	redisContext *c;
	int failed = 0, bad = 0;

	if (n == 0)
		return 0;
	if ((c = rconn_lock(rs->rc)) == NULL) {
		note(rs, 0);
		return -1;
	}
	/* Pipelined: n ZSCOREs written at once, then n replies read. */
	for (size_t i = 0; i < n && !failed; i++) {
		const char *argv[] = {"ZSCORE", rs->retry_key, ids[i]};
		size_t lens[] = {6, strlen(rs->retry_key), strlen(ids[i])};

		failed = redisAppendCommandArgv(c, 3, argv, lens) != REDIS_OK;
	}
	for (size_t i = 0; i < n && !failed; i++) {
		void *reply = NULL;

		failed = redisGetReply(c, &reply) != REDIS_OK;
		if (!failed) {
			bad |= refused(reply, "ZSCORE");
			missing[i] = ((redisReply *)reply)->type == REDIS_REPLY_NIL;
		}
		freeReplyObject(reply);
	}
	return pipeline_end(rs, failed, bad);
}
