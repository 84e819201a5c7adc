/*
 * query: the context the read API's handlers share (borrowed by each request), and the
 * helpers they have in common: authentication, the query string, PostgreSQL.
 */
#ifndef MAILPIPE_QUERY_H
#define MAILPIPE_QUERY_H

#include <stddef.h>

#include <libpq-fe.h>

#include "apikey.h"
#include "config.h"
#include "qparams.h"
#include "dispatch.h"
#include "rconn.h"

struct query {
	const struct config *cf;
	struct apikeys *keys; /* API keys, reloaded in the background */
	struct rconn *redis;  /* only for /readyz */
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

void stats_handle(struct req *r);
void category_stats_handle(struct req *r);
void messages_handle(struct req *r);
/*
 * GET /v3/messages/{msg_id}: reads the id after "/v3/messages/" in r->path.  Not routed:
 * lib/dispatch matches exact paths only.
 */
void message_handle(struct req *r);
void healthz_handle(struct req *r);
void readyz_handle(struct req *r);

#endif
