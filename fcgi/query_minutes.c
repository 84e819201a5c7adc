/*
 * query_minutes: events per minute and event type, for the dashboard's live chart, over the
 * per-minute rollup stats_minute (sql/011).
 *
 *   GET /mailpipe/v1/events/per_minute[?minutes=N]      (scope stats.read)
 *     -> {"minutes":[{"minute":"2026-11-22T17:01:00Z","counts":{"delivered":3,"open":1}},
 *                    ...]}
 *
 * The last N minutes (1 to MAX_MINUTES, default 60) by the database's clock, the current
 * minute included, oldest first.  Every minute is answered; a minute without events has
 * "counts":{}.  The event names are SendGrid's, and 'other' for names it does not
 * document.  The minute is the UTC minute of the event's timestamp.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "query.h"

#define MINUTES_DEFAULT 60
#define MAX_MINUTES 1440 /* one day */

/* $1 the number of minutes.  One row per minute and event name; event NULL: none. */
static const char minutes_sql[] =
    "WITH now_m AS ("
    " SELECT date_trunc('minute', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS m"
    "), span AS ("
    " SELECT generate_series(now_m.m - ($1::int - 1) * interval '1 minute', now_m.m,"
    "  interval '1 minute') AS minute"
    " FROM now_m"
    ") "
    "SELECT to_char(p.minute AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), s.event,"
    " s.count "
    "FROM span p LEFT JOIN stats_minute s ON s.minute = p.minute "
    "ORDER BY p.minute, s.event";

/* The answer for res (minutes_sql's rows); a new reference, NULL when out of memory. */
static json_t *
minutes_json(const PGresult *res)
{
	json_t *list = NULL, *out = NULL, *counts = NULL, *elem;
	const char *last = "";

	if ((list = json_array()) == NULL || (out = json_pack("{s:O}", "minutes", list)) == NULL)
		goto fail;
	for (int i = 0; i < PQntuples(res); i++) {
		const char *minute = PQgetvalue(res, i, 0);

		if (strcmp(minute, last) != 0) {
			counts = json_object();
			elem = json_pack("{s:s, s:o}", "minute", minute, "counts", counts);
			if (counts == NULL || elem == NULL || json_array_append_new(list, elem) < 0)
				goto fail;
			last = minute;
		}
		if (PQgetisnull(res, i, 1))
			continue;
		if (json_object_set_new(counts, PQgetvalue(res, i, 1),
					json_integer(strtoll(PQgetvalue(res, i, 2), NULL, 10))) < 0)
			goto fail;
	}
	json_decref(list);
	return out;
fail:
	json_decref(list);
	json_decref(out);
	return NULL;
}

void
minutes_handle(struct req *r)
{
	const struct query *q = r->app;
	struct qparams qp = {0};
	PGresult *res = NULL;
	char nbuf[24];
	const char *params[1] = {nbuf};
	long n;

	if (query_authenticate(r, q, "stats.read") < 0 || query_params(r, &qp) < 0)
		return;
	if (query_count_param(qparams_get(&qp, "minutes"), MINUTES_DEFAULT, MAX_MINUTES, &n) < 0) {
		reply_error(r, 400, "minutes", "minutes must be an integer from 1 to %d",
			    MAX_MINUTES);
		goto out;
	}
	snprintf(nbuf, sizeof(nbuf), "%ld", n);
	if ((res = query_fetch(r, "per_minute", "the statistics are", minutes_sql, 1, params)) !=
	    NULL)
		query_reply_json(r, minutes_json(res));
out:
	PQclear(res);
	qparams_release(&qp);
}
