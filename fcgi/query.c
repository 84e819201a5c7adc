/*
 * query: the read API, a FastCGI app behind nginx.  Routes: GET /v3/stats and
 * GET /v3/categories/stats (query_stats.c), GET /healthz and GET /readyz
 * (query_health.c).  Each dispatch thread has its own PostgreSQL connection, opened on
 * first use with the reader role, read-only and with query.statement_timeout_ms.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgconn.h"
#include "prog.h"
#include "query.h"
#include "shutdown.h"

#define INVALID_GRANT "The provided authorization grant is invalid, expired, or revoked"

static const struct route routes[] = {
    {"GET", "/v3/stats", stats_handle},
    {"GET", "/v3/categories/stats", category_stats_handle},
    {"GET", "/healthz", healthz_handle},
    {"GET", "/readyz", readyz_handle},
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

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes [s, end) into out (room for end - s + 1 bytes); -1 on a bad escape or a NUL. */
static int
decode(const char *s, const char *end, char *out)
{
	int hi, lo;

	for (; s < end; s++) {
		if (*s == '+') {
			*out++ = ' ';
		} else if (*s == '%') {
			if (end - s < 3 || (hi = hexval(s[1])) < 0 || (lo = hexval(s[2])) < 0 ||
			    (hi == 0 && lo == 0))
				return -1;
			*out++ = (char)(hi * 16 + lo);
			s += 2;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
	return 0;
}

int
qparams_parse(const char *qs, struct qparams *qp, char *err, size_t errlen)
{
	size_t len = strlen(qs);
	const char *s = qs, *amp, *eq;
	char *out;

	memset(qp, 0, sizeof(*qp));
	/* each decoded name and value fits in its encoded length plus a NUL */
	if ((qp->owned = out = malloc(len * 2 + 2)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	while (*s != '\0') {
		amp = strchr(s, '&');
		if (amp == NULL)
			amp = s + strlen(s);
		if (amp == s) {
			s++;
			continue;
		}
		if (qp->n == QPARAMS_MAX) {
			snprintf(err, errlen, "too many query parameters (at most %d)",
				 QPARAMS_MAX);
			return -1;
		}
		eq = memchr(s, '=', (size_t)(amp - s));
		if (eq == NULL)
			eq = amp;
		if (decode(s, eq, out) < 0)
			goto bad;
		qp->p[qp->n].name = out;
		out += strlen(out) + 1;
		if (decode(eq < amp ? eq + 1 : amp, amp, out) < 0)
			goto bad;
		qp->p[qp->n].value = out;
		out += strlen(out) + 1;
		qp->n++;
		s = *amp ? amp + 1 : amp;
	}
	return 0;
bad:
	snprintf(err, errlen, "invalid query string: bad percent-encoding");
	return -1;
}

void
qparams_release(struct qparams *qp)
{
	free(qp->owned);
	qp->owned = NULL;
	qp->n = 0;
}

const char *
qparams_get(const struct qparams *qp, const char *name)
{
	for (size_t i = 0; i < qp->n; i++)
		if (strcmp(qp->p[i].name, name) == 0)
			return qp->p[i].value;
	return NULL;
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
	/* Loads now if it can; a database that is away only delays requests (503). */
	if ((q.keys = apikeys_new(cf.database_url, cf.auth_refresh_seconds, err, sizeof(err))) ==
	    NULL) {
		log_errx("%s", err);
		goto out;
	}
	shutdown_install();
	/* no query.socket_mode setting: the socket shares ingest's mode (0660 by default) */
	struct dispatch_conf dc = {
	    .socket_path = cf.query_socket,
	    .socket_mode = (int)cf.ingest_socket_mode,
	    .threads = (int)cf.query_threads,
	    .max_body = 65536,
	    .routes = routes,
	    .nroutes = sizeof(routes) / sizeof(routes[0]),
	    .app = &q,
	};
	if (dispatch_run(&dc, err, sizeof(err)) < 0) {
		log_errx("%s", err);
		goto out;
	}
	rc = 0;
out:
	apikeys_destroy(q.keys);
	rconn_destroy(q.redis);
	config_release(&cf);
	log_info("exiting with status %d", rc);
	return rc;
}
