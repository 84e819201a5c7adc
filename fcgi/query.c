/*
 * query: the read API, a FastCGI app behind nginx.  Routes: GET /v3/stats and
 * GET /v3/categories/stats (query_stats.c), GET /v3/messages (query_messages.c), GET /healthz and
 * GET /readyz (query_health.c), GET /mailpipe/v1/events/per_minute (query_minutes.c), GET and
 * DELETE /v3/suppression/... (query_suppressions.c).  Each dispatch thread has its own
 * PostgreSQL connection, opened on first use with the reader role, read-only and with
 * query.statement_timeout_ms; query_exec_write() opens a READ WRITE transaction for the
 * SECURITY DEFINER functions the reader may call.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics_push.h"
#include "pgconn.h"
#include "prog.h"
#include "reload.h"
#include "query.h"

#define INVALID_GRANT "The provided authorization grant is invalid, expired, or revoked"

static const struct route routes[] = {
    {"GET", "/v3/stats", stats_handle},
    {"GET", "/v3/categories/stats", category_stats_handle},
    {"GET", "/v3/messages", messages_handle},
    {"GET", "/v3/messages/", message_handle},
    {"GET", "/v3/suppression/", suppression_get_handle},
    {"DELETE", "/v3/suppression/", suppression_delete_handle},
    {"GET", "/mailpipe/v1/events/per_minute", minutes_handle},
    {"GET", "/healthz", healthz_handle},
    {"GET", "/readyz", readyz_handle},
    {"GET", "/metrics", metrics_handle},
};

/* This thread's connection; closed when the thread exits (conn_key's destructor). */
static __thread PGconn *tl_conn;
static pthread_key_t conn_key;
static pthread_once_t conn_once = PTHREAD_ONCE_INIT;
static int conn_key_ok;

static void
conn_destroy(void *c)
{
	PQfinish(c);
}

static void
conn_key_init(void)
{
	conn_key_ok = pthread_key_create(&conn_key, conn_destroy) == 0;
}

int
query_authenticate(struct req *r, const struct query *q, const char *scope)
{
	switch (apikeys_check(q->keys, req_param(r, "HTTP_AUTHORIZATION"), scope, NULL)) {
	case APIKEY_OK: return 0;
	case APIKEY_MISSING: reply_error(r, 401, NULL, "authorization required"); return -1;
	case APIKEY_INVALID: reply_error(r, 401, NULL, INVALID_GRANT); return -1;
	case APIKEY_FORBIDDEN:
		reply_error(r, 403, NULL, "access forbidden: the API key lacks the scope '%s'",
			    scope);
		return -1;
	case APIKEY_UNAVAILABLE:
	default: reply_error(r, 503, NULL, "API keys not loaded yet: retry later"); return -1;
	}
}

/* Opens this thread's connection when it has none; -1 with err. */
static int
connect_thread(const struct query *q, char *err, size_t errlen)
{
	const char *sql = "SELECT set_config('statement_timeout', $1, false)";
	enum pg_failure why;
	PGresult *res = NULL;
	PGconn *c = NULL;
	char timeout[32];
	const char *params[] = {timeout};
	int rc = -1;

	if (tl_conn != NULL)
		return 0;
	if ((c = pgconn_open(q->cf->database_url, "mailpipe-query", err, errlen)) == NULL)
		goto out;
	snprintf(timeout, sizeof(timeout), "%ld", q->cf->query_statement_timeout_ms);
	res = PQexecParams(c, sql, 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		pgconn_error(err, errlen, "cannot set 'statement_timeout'", c, res);
		goto out;
	}
	if (pgconn_exec(c, "SET default_transaction_read_only = on", &why, err, errlen) < 0)
		goto out;
	pthread_once(&conn_once, conn_key_init);
	if (conn_key_ok)
		pthread_setspecific(conn_key, c);
	tl_conn = c;
	c = NULL;
	rc = 0;
out:
	PQclear(res);
	if (c != NULL)
		PQfinish(c);
	return rc;
}

static void
drop_thread_conn(void)
{
	if (tl_conn != NULL) {
		if (conn_key_ok)
			pthread_setspecific(conn_key, NULL);
		PQfinish(tl_conn);
	}
	tl_conn = NULL;
}

PGresult *
query_exec(const struct query *q, const char *sql, int nparams, const char *const *params,
	   char *err, size_t errlen)
{
	PGresult *res = NULL;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (connect_thread(q, err, errlen) < 0)
			return NULL;
		res = PQexecParams(tl_conn, sql, nparams, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			return res;
		pgconn_error(err, errlen, "query failed", tl_conn, res);
		if (pgconn_classify(tl_conn, res) != PG_FAIL_CONNECTION) {
			PQclear(res);
			return NULL;
		}
		/* a server restart or a dropped link: one fresh connection, one more try */
		PQclear(res);
		res = NULL;
		drop_thread_conn();
	}
	return NULL;
}

/* Ends this thread's failed transaction, or drops the connection when that cannot be done. */
static void
rollback_thread(void)
{
	enum pg_failure why;
	char err[256];

	if (PQstatus(tl_conn) != CONNECTION_OK ||
	    pgconn_exec(tl_conn, "ROLLBACK", &why, err, sizeof(err)) < 0)
		drop_thread_conn();
}

PGresult *
query_exec_write(const struct query *q, const char *sql, int nparams, const char *const *params,
		 char *err, size_t errlen)
{
	enum pg_failure why;
	PGresult *res = NULL;

	for (int attempt = 0;; attempt++) {
		if (connect_thread(q, err, errlen) < 0)
			return NULL;
		if (pgconn_exec(tl_conn, "BEGIN READ WRITE", &why, err, errlen) == 0)
			break;
		if (why != PG_FAIL_CONNECTION || attempt > 0)
			return NULL;
		/* nothing was sent yet: one fresh connection, one more try */
		drop_thread_conn();
	}
	res = PQexecParams(tl_conn, sql, nparams, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		pgconn_error(err, errlen, "query failed", tl_conn, res);
		PQclear(res);
		rollback_thread();
		return NULL;
	}
	if (pgconn_exec(tl_conn, "COMMIT", &why, err, errlen) < 0) {
		PQclear(res);
		rollback_thread();
		return NULL;
	}
	return res;
}

int
query_params(struct req *r, struct qparams *qp)
{
	char err[256];

	if (qparams_parse(r->query, qp, err, sizeof(err)) < 0) {
		reply_error(r, 400, NULL, "%s", err);
		return -1;
	}
	return 0;
}

PGresult *
query_fetch(struct req *r, const char *tag, const char *what, const char *sql, int nparams,
	    const char *const *params)
{
	PGresult *res;
	char err[512];

	if ((res = query_exec(r->app, sql, nparams, params, err, sizeof(err))) == NULL) {
		log_errx("%s: %s", tag, err);
		reply_error(r, 503, NULL, "%s unavailable: retry later", what);
	}
	return res;
}

void
query_reply_json(struct req *r, json_t *body)
{
	if (body == NULL)
		reply_error(r, 503, NULL, "out of memory");
	else
		reply_json(r, 200, body);
}

int
query_count_param(const char *s, long def, long max, long *out)
{
	char digits[24];
	long v = 0;

	if (s == NULL) {
		*out = def;
		return 0;
	}
	/* plain digits, no more of them than max has: no sign, no space, no overflow */
	if (*s == '\0' || strlen(s) > (size_t)snprintf(digits, sizeof(digits), "%ld", max))
		return -1;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
	}
	if (v < 1 || v > max)
		return -1;
	*out = v;
	return 0;
}

/* what SIGHUP applies besides log.level (reload.h) */
static const char *const live_keys[] = {"auth.refresh_seconds", NULL};

static void
reloaded(void *arg)
{
	const struct query *q = arg;

	apikeys_set_refresh(q->keys, config_live(&q->cf->auth_refresh_seconds));
}

int
main(int argc, char **argv)
{
	struct config cf;
	struct query q = {.cf = &cf};
	char err[512];
	int rc = 1;

	if (!prog_start(argc, argv, &cf, &rc))
		goto out;
	if ((q.redis = rconn_new(cf.redis_url, err, sizeof(err))) == NULL) {
		log_errx("invalid redis.url: %s", err);
		goto out;
	}
	if ((q.kafka = query_kafka_new(&cf, err, sizeof(err))) == NULL) {
		log_errx("%s", err);
		goto out;
	}
	/* Loads now if it can; a database that is away only delays requests (503). */
	if ((q.keys = apikeys_new(cf.database_url, cf.auth_refresh_seconds, err, sizeof(err))) ==
	    NULL) {
		log_errx("%s", err);
		goto out;
	}
	struct reload_conf rl = {.cf = &cf, .live = live_keys, .applied = reloaded, .arg = &q};
	if (prog_install(&cf, &rl, "query") < 0)
		goto out;
	struct dispatch_conf dc = {
	    .socket_path = cf.query_socket,
	    .socket_mode = (int)cf.query_socket_mode,
	    .threads = (int)cf.query_threads,
	    .max_body = 65536,
	    .routes = routes,
	    .nroutes = sizeof(routes) / sizeof(routes[0]),
	    .app = &q,
	};
	if (prog_serve(&dc) < 0)
		goto out;
	rc = 0;
out:
	metrics_push_stop();
	apikeys_destroy(q.keys);
	rconn_destroy(q.redis);
	if (q.kafka != NULL)
		rd_kafka_destroy(q.kafka);
	config_release(&cf);
	log_info("exiting with status %d", rc);
	return rc;
}
