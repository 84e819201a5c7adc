/*
 * rconn: a shared, lazily (re)connected Redis connection; see rconn.h.
 */
#include "rconn.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define RETRY_SECONDS 2

struct rconn {
	pthread_mutex_t mu;
	char host[256];
	int port;
	char unix_path[256];
	char user[128];
	char password[256];
	int db;
	redisContext *c;
	time_t next_try;
	int warned;
};

static int
parse_url(struct rconn *rc, const char *url, char *err, size_t errlen)
{
	const char *p, *at, *slash, *colon;

	rc->port = 6379;
	if (strncmp(url, "unix:", 5) == 0) {
		snprintf(rc->unix_path, sizeof(rc->unix_path), "%s", url + 5);
		if (rc->unix_path[0])
			return 0;
		snprintf(err, errlen, "invalid redis url: empty socket path");
		return -1;
	}
	if (strncmp(url, "redis://", 8) != 0) {
		snprintf(err, errlen,
			 "invalid redis url: expected redis://host:port/db or unix:/path");
		return -1;
	}
	p = url + 8;
	if ((at = strrchr(p, '@')) != NULL) {
		/* [user]:password@ -- a user name selects a Redis 6 ACL user */
		const char *pw = memchr(p, ':', (size_t)(at - p));

		if (pw) {
			snprintf(rc->user, sizeof(rc->user), "%.*s", (int)(pw - p), p);
			pw++;
		} else {
			pw = p;
		}
		snprintf(rc->password, sizeof(rc->password), "%.*s", (int)(at - pw), pw);
		p = at + 1;
	}
	slash = strchr(p, '/');
	colon = memchr(p, ':', slash ? (size_t)(slash - p) : strlen(p));
	if (colon) {
		snprintf(rc->host, sizeof(rc->host), "%.*s", (int)(colon - p), p);
		rc->port = atoi(colon + 1);
	} else {
		snprintf(rc->host, sizeof(rc->host), "%.*s",
			 (int)(slash ? (size_t)(slash - p) : strlen(p)), p);
	}
	if (slash && slash[1])
		rc->db = atoi(slash + 1);
	if (rc->host[0] == '\0' || rc->port <= 0 || rc->port > 65535 || rc->db < 0) {
		snprintf(err, errlen, "invalid redis url: bad host, port or database");
		return -1;
	}
	return 0;
}

struct rconn *
rconn_new(const char *url, char *err, size_t errlen)
{
	struct rconn *rc = calloc(1, sizeof(*rc));

	if (rc == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (parse_url(rc, url, err, errlen) < 0) {
		free(rc);
		return NULL;
	}
	pthread_mutex_init(&rc->mu, NULL);
	return rc;
}

void
rconn_destroy(struct rconn *rc)
{
	if (rc == NULL)
		return;
	if (rc->c)
		redisFree(rc->c);
	pthread_mutex_destroy(&rc->mu);
	explicit_bzero(rc->password, sizeof(rc->password));
	free(rc);
}

/* With rc->mu held. */
static void
drop(struct rconn *rc, const char *why)
{
	if (!rc->warned++)
		log_warnx("redis unavailable: %s", why);
	if (rc->c)
		redisFree(rc->c);
	rc->c = NULL;
	rc->next_try = time(NULL) + RETRY_SECONDS;
}

/* With rc->mu held: one command on the current context, errors drop it. */
static redisReply *
run(struct rconn *rc, int argc, const char **argv, const size_t *lens)
{
	redisReply *r = redisCommandArgv(rc->c, argc, argv, lens);

	if (r == NULL) {
		drop(rc, rc->c->errstr);
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		log_warnx("redis refused '%s': %s", argv[0], r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

/* With rc->mu held. */
static int
connect_now(struct rconn *rc)
{
	struct timeval tv = {1, 0};
	redisReply *r;

	if (rc->c)
		return 0;
	if (time(NULL) < rc->next_try)
		return -1;
	rc->c = rc->unix_path[0] ? redisConnectUnixWithTimeout(rc->unix_path, tv)
				 : redisConnectWithTimeout(rc->host, rc->port, tv);
	if (rc->c == NULL || rc->c->err) {
		drop(rc, rc->c ? rc->c->errstr : "cannot allocate context");
		return -1;
	}
	redisSetTimeout(rc->c, tv);
	if (rc->password[0]) {
		const char *argv[] = {"AUTH", rc->user[0] ? rc->user : rc->password, rc->password};
		if ((r = run(rc, rc->user[0] ? 3 : 2, argv, NULL)) == NULL) {
			drop(rc, "authentication failed");
			return -1;
		}
		freeReplyObject(r);
	}
	if (rc->db) {
		char db[16];
		const char *argv[] = {"SELECT", db};

		snprintf(db, sizeof(db), "%d", rc->db);
		if ((r = run(rc, 2, argv, NULL)) == NULL) {
			drop(rc, "cannot select database");
			return -1;
		}
		freeReplyObject(r);
	}
	if (rc->warned)
		log_info("redis reachable again");
	rc->warned = 0;
	return 0;
}

redisReply *
rconn_command(struct rconn *rc, int argc, const char **argv, const size_t *lens)
{
	redisReply *r = NULL;

	pthread_mutex_lock(&rc->mu);
	if (connect_now(rc) == 0)
		r = run(rc, argc, argv, lens);
	pthread_mutex_unlock(&rc->mu);
	return r;
}

redisContext *
rconn_lock(struct rconn *rc)
{
	pthread_mutex_lock(&rc->mu);
	if (connect_now(rc) < 0) {
		pthread_mutex_unlock(&rc->mu);
		return NULL;
	}
	return rc->c;
}

void
rconn_unlock(struct rconn *rc, int failed)
{
	if (failed)
		drop(rc, rc->c && rc->c->errstr[0] ? rc->c->errstr : "pipeline failed");
	pthread_mutex_unlock(&rc->mu);
}
