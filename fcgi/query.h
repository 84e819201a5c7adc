/*
 * query: the context the read API's handlers share (borrowed by each request), and the
 * helpers they have in common: authentication, the query string, PostgreSQL.
 */
#ifndef MAILPIPE_QUERY_H
#define MAILPIPE_QUERY_H

#include <stddef.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "apikey.h"
#include "config.h"
#include "qparams.h"
#include "dispatch.h"
#include "rconn.h"

struct query {
	const struct config *cf;
	struct apikeys *keys; /* API keys, reloaded in the background */
	struct rconn *redis;  /* /readyz; the suppression set on DELETE */
	rd_kafka_t *kafka;    /* only for /readyz's metadata request */
};

/*
 * Checks the request's API key for scope; on failure answers 401, 403 or 503 as
 * /v3/mail/send does and returns -1.
 */
int query_authenticate(struct req *r, const struct query *q, const char *scope);

/*
 * Runs sql with text parameters on this thread's connection (opened lazily, read-only,
 * with query.statement_timeout_ms), reconnecting and retrying once when the connection
 * was lost.  Returns a PGRES_TUPLES_OK result for the caller to PQclear, or NULL with err.
 */
PGresult *query_exec(const struct query *q, const char *sql, int nparams, const char *const *params,
		     char *err, size_t errlen);

/*
 * Runs sql as query_exec() does, but inside BEGIN READ WRITE ... COMMIT: for the SECURITY
 * DEFINER functions the reader role may call to change data.  Returns the PGRES_TUPLES_OK
 * result once committed (the caller PQclears it), or NULL with err (rolled back; after a
 * lost connection at COMMIT the outcome is unknown).  Not retried once sql was sent.
 */
PGresult *query_exec_write(const struct query *q, const char *sql, int nparams,
			   const char *const *params, char *err, size_t errlen);

/* Splits r->query into qp (qparams_release() it); answers 400 and returns -1 if it is bad. */
int query_params(struct req *r, struct qparams *qp);

/*
 * query_exec() for a handler (r->app is the query): when it fails, logs err under tag and
 * answers 503 "<what> unavailable: retry later".  Returns the result for the caller to
 * PQclear, or NULL once answered.
 */
PGresult *query_fetch(struct req *r, const char *tag, const char *what, const char *sql,
		      int nparams, const char *const *params);

/* Answers 200 with body (stolen), or 503 "out of memory" when body is NULL (building it failed). */
void query_reply_json(struct req *r, json_t *body);

/*
 * Parses an optional count parameter: absent (NULL) is def, else decimal digits only,
 * 1 to max.  -1 if s is not one.
 */
int query_count_param(const char *s, long def, long max, long *out);

void stats_handle(struct req *r);
void category_stats_handle(struct req *r);
void messages_handle(struct req *r);
/*
 * GET /v3/messages/{msg_id}: reads the id after "/v3/messages/" in r->path.  Not routed:
 * lib/dispatch matches exact paths only.
 */
void message_handle(struct req *r);
/*
 * GET and DELETE /v3/suppression/<list>[/{email}] (query_suppressions.c): the path after
 * "/v3/suppression/" is parsed by the handler.
 */
void suppression_get_handle(struct req *r);
void suppression_delete_handle(struct req *r);
/* GET /mailpipe/v1/events/per_minute (query_minutes.c) */
void minutes_handle(struct req *r);
/* GET /metrics (query_metrics.c): every process's metrics, Prometheus text format */
void metrics_handle(struct req *r);
void healthz_handle(struct req *r);
void readyz_handle(struct req *r);

/* The client handle /readyz asks Kafka's metadata with; NULL with err. */
rd_kafka_t *query_kafka_new(const struct config *cf, char *err, size_t errlen);

#endif
