/*
 * query_health: GET /healthz (the process serves) and GET /readyz (what it needs
 * answers: PostgreSQL `SELECT 1` on this thread's connection and Redis PING).
 *
 *   200 {"postgres":"ok","redis":"ok"}
 *   503 {"postgres":"unavailable","redis":"ok"}   (the reason is logged)
 */
#include <string.h>

#include "log.h"
#include "query.h"

void
healthz_handle(struct req *r)
{
	reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

static int
redis_ok(const struct query *q)
{
	const char *argv[] = {"PING"};
	redisReply *reply = rconn_command(q->redis, 1, argv, NULL);
	int ok = reply != NULL && reply->type == REDIS_REPLY_STATUS && reply->str != NULL &&
		 strcmp(reply->str, "PONG") == 0;

	if (reply != NULL)
		freeReplyObject(reply);
	return ok;
}

void
readyz_handle(struct req *r)
{
	const struct query *q = r->app;
	PGresult *res;
	char err[512];
	int pg, rd;

	res = query_exec(q, "SELECT 1", 0, NULL, err, sizeof(err));
	pg = res != NULL;
	PQclear(res);
	if (!pg)
		log_warnx("readyz: postgresql: %s", err);
	rd = redis_ok(q);
	if (!rd)
		log_warnx("readyz: redis is unavailable");
	reply_json(r, pg && rd ? 200 : 503,
		   json_pack("{s:s, s:s}", "postgres", pg ? "ok" : "unavailable", "redis",
			     rd ? "ok" : "unavailable"));
}
