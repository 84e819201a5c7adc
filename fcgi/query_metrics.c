/*
 * query_metrics: GET /metrics, the Prometheus scrape of every mailpipe process (scope
 * metrics.read).  Reads every snapshot of the Redis hash "<redis.prefix>metrics" (see
 * lib/metrics_push.h), adds this process's own live registry, and renders them with
 * lib/metrics_expo; expired snapshots (a process gone for an hour) are deleted.  Redis
 * away: only this process's numbers, with mailpipe_metrics_store_up 0.  The dead letters
 * waiting in PostgreSQL (count and oldest age per topic) are read at each scrape, through
 * the partial index of pending rows.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "metrics_expo.h"
#include "metrics_push.h"
#include "query.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

static void
delete_field(const struct query *q, const char *key, const char *field, size_t len)
{
	const char *argv[] = {"HDEL", key, field};
	size_t lens[] = {4, strlen(key), len};
	redisReply *r = rconn_command(q->redis, 3, argv, lens);

	log_info("metrics: deleted the expired snapshot '%.*s'", (int)len, field);
	if (r)
		freeReplyObject(r);
}

/* Adds every other process's snapshot; -1 when Redis could not be read. */
static int
add_stored(const struct query *q, struct metrics_expo *e, const char *own)
{
	char key[256];
	const char *argv[] = {"HGETALL", key};
	redisReply *r;

	snprintf(key, sizeof(key), "%smetrics", q->cf->redis_prefix);
	if ((r = rconn_command(q->redis, 2, argv, NULL)) == NULL)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(r);
		return -1;
	}
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		const redisReply *f = r->element[i], *v = r->element[i + 1];
		char field[400];

		if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
		    f->len >= sizeof(field) || memchr(f->str, '\0', f->len) != NULL)
			continue;
		memcpy(field, f->str, f->len);
		field[f->len] = '\0';
		if (strcmp(field, own) == 0) /* the live registry is fresher */
			continue;
		if (metrics_expo_add_text(e, field, v->str, v->len) == EXPO_EXPIRED)
			delete_field(q, key, f->str, f->len);
	}
	freeReplyObject(r);
	return 0;
}

/* Pending dead letters per source topic; the configured topics show 0 when none. */
static void
set_dead_letters(const struct query *q)
{
	static const char sql[] =
	    "SELECT topic, count(*), extract(epoch FROM now() - min(created_at))"
	    " FROM dead_letters WHERE replayed_at IS NULL AND discarded_at IS NULL"
	    " GROUP BY topic";
	struct metric_family *n = metrics_family(M_DEAD_LETTERS_PENDING);
	struct metric_family *age = metrics_family(M_DEAD_LETTERS_OLDEST_AGE);
	const char *topics[] = {q->cf->kafka_events_topic, q->cf->kafka_events_dlq_topic,
				q->cf->kafka_mail_topic};
	PGresult *res;
	char err[512];

	if ((res = query_exec(q, sql, 0, NULL, err, sizeof(err))) == NULL) {
		log_warnx("metrics: cannot count dead letters: %s", err);
		return;
	}
	for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
		metric_gauge_set(n, 0, topics[i], NULL);
		metric_gauge_set(age, 0, topics[i], NULL);
	}
	for (int i = 0; i < PQntuples(res); i++) {
		const char *topic = PQgetisnull(res, i, 0) ? "" : PQgetvalue(res, i, 0);

		metric_gauge_set(n, strtod(PQgetvalue(res, i, 1), NULL), topic, NULL);
		metric_gauge_set(age, strtod(PQgetvalue(res, i, 2), NULL), topic, NULL);
	}
	PQclear(res);
}

void
metrics_handle(struct req *r)
{
	const struct query *q = r->app;
	struct metrics_expo *e = NULL;
	json_t *own = NULL;
	char field[400], *text = NULL;
	size_t len = 0;
	int stored;

	if (query_authenticate(r, q, "metrics.read") < 0)
		return;
	snprintf(field, sizeof(field), "%s@%s", metrics_push_process(), metrics_push_instance());
	if ((e = metrics_expo_new(metrics_wall_now())) == NULL)
		goto oom;
	stored = add_stored(q, e, field);
	metric_gauge_set(metrics_family(M_METRICS_STORE_UP), stored == 0 ? 1 : 0, NULL);
	set_dead_letters(q);
	if ((own = metrics_push_snapshot()) == NULL)
		goto oom;
	metrics_expo_add(e, field, own);
	if ((text = metrics_expo_render(e, &len)) == NULL)
		goto oom;
	reply_text(r, 200, CONTENT_TYPE, text, len);
	goto out;
oom:
	reply_error(r, 503, NULL, "out of memory");
out:
	free(text);
	json_decref(own);
	metrics_expo_free(e);
}
