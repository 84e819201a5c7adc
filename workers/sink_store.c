/*
 * sink_store: the sink's PostgreSQL writer; see sink.h.
 *
 * A batch goes in with one COPY into a temporary staging table and one INSERT ... SELECT:
 * the guard table event_ids (primary key sg_event_id) takes each id once, ON CONFLICT DO
 * NOTHING, and only the ids it took go on into the partitioned events table.  Exactly once
 * therefore rests on the database's unique key, whatever Redis or Kafka replays.
 *
 * If the database refuses the batch for its data (a value jsonb or timestamptz cannot
 * hold), the batch is written again one event per savepoint and each refused event becomes
 * a dead letter with PostgreSQL's reason: the partition keeps moving.
 *
 * The INSERT also copies the rows it wrote into the temporary table sink_fresh, and the
 * rollups (stats_daily, stats_unique, stats_minute) are counted from there once per batch, so a
 * replayed event never counts twice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgconn.h"
#include "sink.h"

struct store {
	char *url;
	PGconn *conn;
	PGresult *suppressed; /* emails the last committed batch suppressed */
	PGresult *fresh;      /* event, rows: what the last committed batch inserted */
};

static const char stage_sql[] =
    "CREATE TEMP TABLE IF NOT EXISTS sink_stage ("
    " sg_event_id text NOT NULL, event_us bigint NOT NULL, raw jsonb NOT NULL,"
    " received_ms bigint NOT NULL, kafka_partition int, kafka_offset bigint"
    ") ON COMMIT DELETE ROWS";

/* The events the current transaction newly inserted: what the rollups count. */
static const char fresh_sql[] =
    "CREATE TEMP TABLE IF NOT EXISTS sink_fresh ("
    " sg_event_id text NOT NULL, event text NOT NULL, type text, reason text, email text,"
    " event_time timestamptz NOT NULL, category text[]"
    ") ON COMMIT DELETE ROWS";

static const char copy_sql[] = "COPY sink_stage FROM STDIN";

static const char insert_sql[] =
    "WITH fresh AS ("
    "  INSERT INTO event_ids (sg_event_id, event_time)"
    "  SELECT DISTINCT ON (sg_event_id) sg_event_id,"
    "         timestamptz 'epoch' + event_us * interval '1 microsecond'"
    "  FROM sink_stage ORDER BY sg_event_id, kafka_offset"
    "  ON CONFLICT (sg_event_id) DO NOTHING"
    "  RETURNING sg_event_id),"
    " ins AS ("
    " INSERT INTO events (sg_event_id, event, email, event_time, sg_message_id, message_id,"
    "   category, reason, status, type, url, raw, received_at, kafka_partition, kafka_offset)"
    " SELECT DISTINCT ON (s.sg_event_id) s.sg_event_id, s.raw->>'event', s.raw->>'email',"
    "   timestamptz 'epoch' + s.event_us * interval '1 microsecond',"
    "   s.raw->>'sg_message_id', s.raw->>'mailpipe_message_id',"
    "   CASE jsonb_typeof(s.raw->'category')"
    "     WHEN 'array' THEN ARRAY(SELECT jsonb_array_elements_text(s.raw->'category'))"
    "     WHEN 'string' THEN ARRAY[s.raw->>'category'] END,"
    "   s.raw->>'reason', s.raw->>'status', s.raw->>'type', s.raw->>'url', s.raw,"
    "   timestamptz 'epoch' + s.received_ms * interval '1 millisecond',"
    "   s.kafka_partition, s.kafka_offset"
    " FROM sink_stage s JOIN fresh USING (sg_event_id)"
    " ORDER BY s.sg_event_id, s.kafka_offset"
    " RETURNING sg_event_id, event, type, reason, email, event_time, category)"
    " INSERT INTO sink_fresh (sg_event_id, event, type, reason, email, event_time, category)"
    " SELECT sg_event_id, event, type, reason, email, event_time, category FROM ins";

/*
 * Adds the events in sink_fresh to the daily rollups (sql/008_stats.sql), under category ''
 * and under each distinct category of the event.  Opens and clicks whose (day, kind,
 * category, recipient) is new in stats_unique also count as unique.  Each (day, category)
 * row is aggregated first, so the upsert touches it once; rows go in key order so that
 * concurrent sinks lock them in the same order.
 */
static const char rollup_sql[] =
    "WITH ev AS ("
    "  SELECT (f.event_time AT TIME ZONE 'UTC')::date AS day, c.category, f.event, f.type,"
    "         f.reason, lower(f.email) AS email"
    "  FROM sink_fresh f"
    "  CROSS JOIN LATERAL (SELECT ''::text UNION"
    "       SELECT x FROM unnest(f.category) x WHERE x <> '') c (category)"
    "  WHERE f.event IN ('processed', 'dropped', 'delivered', 'deferred', 'bounce', 'open',"
    "       'click', 'spamreport', 'unsubscribe', 'group_unsubscribe')),"
    " uniq AS ("
    "  INSERT INTO stats_unique (day, kind, category, email)"
    "  SELECT DISTINCT day, event, category, email FROM ev"
    "  WHERE event IN ('open', 'click') AND email <> ''"
    "  ORDER BY 1, 2, 3, 4"
    "  ON CONFLICT DO NOTHING"
    "  RETURNING day, kind, category),"
    " counted AS ("
    "  SELECT day, category, event, type, reason, NULL::text AS uniq FROM ev"
    "  UNION ALL"
    "  SELECT day, category, NULL, NULL, NULL, kind FROM uniq)"
    " INSERT INTO stats_daily AS d (day, category, requests, processed, delivered, deferred,"
    "   bounces, blocks, bounce_drops, spam_report_drops, unsubscribe_drops, invalid_emails,"
    "   opens, unique_opens, clicks, unique_clicks, spam_reports, unsubscribes)"
    " SELECT day, category,"
    "   count(*) FILTER (WHERE event IN ('processed', 'dropped')),"
    "   count(*) FILTER (WHERE event = 'processed'),"
    "   count(*) FILTER (WHERE event = 'delivered'),"
    "   count(*) FILTER (WHERE event = 'deferred'),"
    "   count(*) FILTER (WHERE event = 'bounce' AND coalesce(type, 'bounce') = 'bounce'),"
    "   count(*) FILTER (WHERE event = 'bounce' AND type = 'blocked'),"
    "   count(*) FILTER (WHERE event = 'dropped' AND reason = 'Bounced Address'),"
    "   count(*) FILTER (WHERE event = 'dropped' AND reason = 'Spam Reporting Address'),"
    "   count(*) FILTER (WHERE event = 'dropped' AND reason = 'Unsubscribed Address'),"
    "   count(*) FILTER (WHERE event = 'dropped' AND lower(reason) LIKE 'invalid%'),"
    "   count(*) FILTER (WHERE event = 'open'),"
    "   count(*) FILTER (WHERE uniq = 'open'),"
    "   count(*) FILTER (WHERE event = 'click'),"
    "   count(*) FILTER (WHERE uniq = 'click'),"
    "   count(*) FILTER (WHERE event = 'spamreport'),"
    "   count(*) FILTER (WHERE event IN ('unsubscribe', 'group_unsubscribe'))"
    " FROM counted GROUP BY day, category ORDER BY day, category"
    " ON CONFLICT (day, category) DO UPDATE SET"
    "   requests = d.requests + EXCLUDED.requests,"
    "   processed = d.processed + EXCLUDED.processed,"
    "   delivered = d.delivered + EXCLUDED.delivered,"
    "   deferred = d.deferred + EXCLUDED.deferred,"
    "   bounces = d.bounces + EXCLUDED.bounces,"
    "   blocks = d.blocks + EXCLUDED.blocks,"
    "   bounce_drops = d.bounce_drops + EXCLUDED.bounce_drops,"
    "   spam_report_drops = d.spam_report_drops + EXCLUDED.spam_report_drops,"
    "   unsubscribe_drops = d.unsubscribe_drops + EXCLUDED.unsubscribe_drops,"
    "   invalid_emails = d.invalid_emails + EXCLUDED.invalid_emails,"
    "   opens = d.opens + EXCLUDED.opens,"
    "   unique_opens = d.unique_opens + EXCLUDED.unique_opens,"
    "   clicks = d.clicks + EXCLUDED.clicks,"
    "   unique_clicks = d.unique_clicks + EXCLUDED.unique_clicks,"
    "   spam_reports = d.spam_reports + EXCLUDED.spam_reports,"
    "   unsubscribes = d.unsubscribes + EXCLUDED.unsubscribes";

/*
 * Adds the events in sink_fresh to the per-minute counts (sql/011_stats_minute.sql): UTC
 * minute of event_time, SendGrid's event name or 'other'.  Key order, as rollup_sql.
 */
static const char minute_sql[] =
    "INSERT INTO stats_minute AS s (minute, event, count)"
    " SELECT date_trunc('minute', f.event_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',"
    "   CASE WHEN f.event IN ('processed', 'dropped', 'delivered', 'deferred', 'bounce',"
    "       'open', 'click', 'spamreport', 'unsubscribe', 'group_unsubscribe',"
    "       'group_resubscribe') THEN f.event ELSE 'other' END,"
    "   count(*)"
    " FROM sink_fresh f GROUP BY 1, 2 ORDER BY 1, 2"
    " ON CONFLICT (minute, event) DO UPDATE SET count = s.count + EXCLUDED.count";

/*
 * Moves each message the staged events belong to (by our message id, else by SendGrid's
 * X-Message-Id) to the highest-ranked status among them, never backwards.  Replaying
 * events changes nothing: the result only depends on the set of events.
 */
static const char status_sql[] =
    "UPDATE messages m SET status = x.status, status_rank = x.rank,"
    "  last_event_time = greatest(m.last_event_time, x.event_time), updated_at = now()"
    " FROM (SELECT DISTINCT ON (mid) mid, status, rank, event_time FROM ("
    "   SELECT coalesce(s.raw->>'mailpipe_message_id', byid.message_id) AS mid, e.status,"
    "          mailpipe_status_rank(e.status) AS rank,"
    "          timestamptz 'epoch' + s.event_us * interval '1 microsecond' AS event_time"
    "   FROM sink_stage s"
    "   CROSS JOIN LATERAL (SELECT CASE WHEN s.raw->>'event' = 'bounce'"
    "       AND s.raw->>'type' = 'blocked' THEN 'blocked' ELSE s.raw->>'event' END"
    "       AS status) e"
    "   LEFT JOIN messages byid ON s.raw->>'mailpipe_message_id' IS NULL"
    "       AND byid.sendgrid_message_id = split_part(s.raw->>'sg_message_id', '.', 1)"
    " ) ev WHERE mid IS NOT NULL AND rank IS NOT NULL"
    " ORDER BY mid, rank DESC, event_time DESC) x"
    " WHERE m.message_id = x.mid AND m.status_rank <= x.rank";

/*
 * Hard bounces, spam reports and unsubscribes suppress the address (lower-cased); the
 * first cause is kept.  Returns the addresses newly suppressed.
 */
static const char suppress_sql[] =
    "INSERT INTO suppressions (email, reason, source_event)"
    " SELECT DISTINCT ON (lower(s.raw->>'email')) lower(s.raw->>'email'), s.raw->>'event',"
    "        s.sg_event_id"
    " FROM sink_stage s"
    " WHERE s.raw->>'email' <> '' AND (s.raw->>'event' IN"
    "       ('spamreport', 'unsubscribe', 'group_unsubscribe')"
    "   OR (s.raw->>'event' = 'bounce' AND coalesce(s.raw->>'type', 'bounce') = 'bounce'))"
    " ORDER BY lower(s.raw->>'email'), s.event_us"
    " ON CONFLICT (email) DO NOTHING RETURNING email";

/*
 * Blocks (bounce events of type 'blocked', sql/010_blocks.sql) do not suppress: the latest
 * block of each address (lower-cased) is kept for GET /v3/suppression/blocks, by event
 * time, so a late or replayed older block never replaces a newer one.  Only events new in
 * this batch (sink_fresh) count: replays change nothing, even after a DELETE.
 */
static const char blocks_sql[] =
    "INSERT INTO blocks AS b (email, reason, status, source_event, created_at)"
    " SELECT DISTINCT ON (lower(f.email)) lower(f.email), f.reason, s.raw->>'status',"
    "        f.sg_event_id, f.event_time"
    " FROM sink_fresh f JOIN sink_stage s USING (sg_event_id)"
    " WHERE f.event = 'bounce' AND f.type = 'blocked' AND f.email <> ''"
    " ORDER BY lower(f.email), f.event_time DESC, f.sg_event_id DESC"
    " ON CONFLICT (email) DO UPDATE SET reason = EXCLUDED.reason, status = EXCLUDED.status,"
    "   source_event = EXCLUDED.source_event, created_at = EXCLUDED.created_at"
    " WHERE (b.created_at, b.source_event) < (EXCLUDED.created_at, EXCLUDED.source_event)";

static const char dead_sql[] =
    "INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, payload, error)"
    " VALUES ($1, $2, $3, $4, $5)"
    " ON CONFLICT (topic, kafka_partition, kafka_offset) DO NOTHING";

struct buf {
	char *p;
	size_t len, cap;
};

static int
buf_reserve(struct buf *b, size_t more)
{
	if (b->len + more <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 65536;
	while (cap < b->len + more)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (p == NULL)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

/* Appends s as a COPY text-format field: backslash, tab, newline and CR escaped. */
static int
buf_field(struct buf *b, const char *s, size_t len)
{
	if (buf_reserve(b, len * 2 + 1) < 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = s[i], e = 0;

		switch (c) {
		case '\\': e = '\\'; break;
		case '\t': e = 't'; break;
		case '\n': e = 'n'; break;
		case '\r': e = 'r'; break;
		}
		if (e) {
			b->p[b->len++] = '\\';
			b->p[b->len++] = e;
		} else {
			b->p[b->len++] = c;
		}
	}
	return 0;
}

static int
buf_printf_row_tail(struct buf *b, const struct sink_event *e)
{
	if (buf_reserve(b, 96) < 0)
		return -1;
	b->len +=
	    (size_t)snprintf(b->p + b->len, 96, "\t%lld\t%d\t%lld\n", (long long)e->received_ms,
			     (int)e->partition, (long long)e->offset);
	return 0;
}

struct store *
store_new(const char *url)
{
	struct store *st = calloc(1, sizeof(*st));

	if (st == NULL || (st->url = strdup(url)) == NULL) {
		free(st);
		return NULL;
	}
	return st;
}

void
store_destroy(struct store *st)
{
	if (st == NULL)
		return;
	if (st->conn)
		PQfinish(st->conn);
	PQclear(st->suppressed);
	PQclear(st->fresh);
	free(st->url);
	free(st);
}

static void
disconnect(struct store *st)
{
	if (st->conn)
		PQfinish(st->conn);
	st->conn = NULL;
}

static int
ensure_conn(struct store *st, char *err, size_t errlen)
{
	enum pg_failure why;

	if (st->conn && PQstatus(st->conn) == CONNECTION_OK)
		return 0;
	disconnect(st);
	if ((st->conn = pgconn_open(st->url, "mailpipe-sink", err, errlen)) == NULL)
		return -1;
	if (pgconn_exec(st->conn, stage_sql, &why, err, errlen) < 0 ||
	    pgconn_exec(st->conn, fresh_sql, &why, err, errlen) < 0) {
		disconnect(st);
		return -1;
	}
	log_info("connected to postgresql");
	return 0;
}

/* COPYs events into the stage and moves the new ones on.  Returns the result or NULL. */
static PGresult *
write_events(PGconn *conn, const struct sink_event *ev, size_t nev, char *err, size_t errlen)
{
	struct buf b = {0};
	PGresult *res = NULL;
	for (size_t i = 0; i < nev; i++) {
		if (buf_field(&b, ev[i].sg_event_id, strlen(ev[i].sg_event_id)) < 0 ||
		    buf_reserve(&b, 32) < 0)
			goto oom;
		b.len += (size_t)snprintf(b.p + b.len, 32, "\t%lld\t", (long long)ev[i].time_us);
		if (buf_field(&b, ev[i].raw, ev[i].raw_len) < 0 ||
		    buf_printf_row_tail(&b, &ev[i]) < 0)
			goto oom;
	}
	res = PQexec(conn, copy_sql);
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		pgconn_error(err, errlen, "cannot start COPY", conn, res);
		goto out;
	}
	PQclear(res);
	if (PQputCopyData(conn, b.p, (int)b.len) != 1 || PQputCopyEnd(conn, NULL) != 1) {
		res = NULL;
		pgconn_error(err, errlen, "cannot send COPY data", conn, NULL);
		goto out;
	}
	res = PQgetResult(conn);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		pgconn_error(err, errlen, "COPY into stage failed", conn, res);
		/* Drain the rest of the COPY's results. */
		PGresult *more;
		while ((more = PQgetResult(conn)) != NULL)
			PQclear(more);
		goto out;
	}
	PQclear(res);
	res = PQexec(conn, insert_sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		pgconn_error(err, errlen, "cannot insert events", conn, res);
	goto out;
oom:
	snprintf(err, errlen, "out of memory building COPY data");
out:
	free(b.p);
	return res;
}

static int
write_dead(PGconn *conn, const struct sink_dead *d, char *err, size_t errlen)
{
	char part[16], off[24];
	const char *vals[5] = {d->topic, part, off, d->payload ? d->payload : "", d->error};
	int lens[5] = {0, 0, 0, (int)d->len, 0};
	int fmts[5] = {0, 0, 0, 1, 0};
	PGresult *res;
	int rc = 0;

	snprintf(part, sizeof(part), "%d", (int)d->partition);
	snprintf(off, sizeof(off), "%lld", (long long)d->offset);
	res = PQexecParams(conn, dead_sql, 5, NULL, vals, lens, fmts, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		pgconn_error(err, errlen, "cannot insert dead letter", conn, res);
		rc = -1;
	}
	PQclear(res);
	return rc;
}

static int
exec_ok(PGconn *conn, const char *sql, char *err, size_t errlen)
{
	enum pg_failure why;

	return pgconn_exec(conn, sql, &why, err, errlen);
}

/* Second pass after a data error: one savepoint per event. */
static int
write_isolated(struct store *st, const struct sink_event *ev, size_t nev, struct sink_dead *dead,
	       size_t *ndead, size_t dead_cap, struct store_result *res, char *err, size_t errlen)
{
	PGconn *conn = st->conn;

	for (size_t i = 0; i < nev; i++) {
		char why[200];
		PGresult *r;

		if (exec_ok(conn, "SAVEPOINT one", err, errlen) < 0)
			return -1;
		r = write_events(conn, &ev[i], 1, why, sizeof(why));
		if (PQresultStatus(r) == PGRES_COMMAND_OK) {
			size_t n = (size_t)atol(PQcmdTuples(r));
			res->inserted += n;
			res->duplicates += 1 - n;
			PQclear(r);
			if (exec_ok(conn, "RELEASE SAVEPOINT one", err, errlen) < 0)
				return -1;
			continue;
		}
		if (pgconn_classify(conn, r) != PG_FAIL_DATA || *ndead >= dead_cap) {
			snprintf(err, errlen, "%s", why);
			PQclear(r);
			return -1;
		}
		PQclear(r);
		if (exec_ok(conn, "ROLLBACK TO SAVEPOINT one", err, errlen) < 0)
			return -1;
		struct sink_dead *d = &dead[(*ndead)++];
		d->topic = ev[i].topic;
		d->partition = ev[i].partition;
		d->offset = ev[i].offset;
		d->payload = ev[i].raw;
		d->len = ev[i].raw_len;
		snprintf(d->error, sizeof(d->error), "refused by postgresql: %s", why);
		res->poisoned++;
		log_warnx("event dead-lettered partition=%d offset=%lld: %s", (int)ev[i].partition,
			  (long long)ev[i].offset, why);
	}
	return 0;
}

/*
 * What the staged events mean for the rollups, messages and suppressions, in the same
 * transaction.  Runs once per batch, after the events are in, whichever path wrote them.
 */
static int
follow_events(struct store *st, char *err, size_t errlen)
{
	PGresult *res;

	if (exec_ok(st->conn, rollup_sql, err, errlen) < 0 ||
	    exec_ok(st->conn, minute_sql, err, errlen) < 0 ||
	    exec_ok(st->conn, status_sql, err, errlen) < 0)
		return -1;
	if (exec_ok(st->conn, blocks_sql, err, errlen) < 0)
		return -1;
	res = PQexec(st->conn, suppress_sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		pgconn_error(err, errlen, "cannot update suppressions", st->conn, res);
		PQclear(res);
		return -1;
	}
	PQclear(st->suppressed);
	st->suppressed = res;
	return 0;
}

/* The rows this transaction inserted per event name (for the metrics), before COMMIT. */
static int
count_fresh(struct store *st, char *err, size_t errlen)
{
	PGresult *res = PQexec(st->conn, "SELECT event, count(*) FROM sink_fresh GROUP BY 1");

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		pgconn_error(err, errlen, "cannot count the new rows", st->conn, res);
		PQclear(res);
		return -1;
	}
	PQclear(st->fresh);
	st->fresh = res;
	return 0;
}

size_t
store_fresh_count(const struct store *st)
{
	return st->fresh ? (size_t)PQntuples(st->fresh) : 0;
}

const char *
store_fresh_event(const struct store *st, size_t i, long *rows)
{
	*rows = atol(PQgetvalue(st->fresh, (int)i, 1));
	return PQgetvalue(st->fresh, (int)i, 0);
}

size_t
store_suppressed_count(const struct store *st)
{
	return st->suppressed ? (size_t)PQntuples(st->suppressed) : 0;
}

const char *
store_suppressed_email(const struct store *st, size_t i)
{
	return PQgetvalue(st->suppressed, (int)i, 0);
}

int
store_write(struct store *st, const struct sink_event *ev, size_t nev, struct sink_dead *dead,
	    size_t *ndead, size_t dead_cap, struct store_result *res, char *err, size_t errlen)
{
	PGresult *r = NULL;
	size_t first_new_dead = *ndead;

	memset(res, 0, sizeof(*res));
	PQclear(st->suppressed);
	st->suppressed = NULL;
	PQclear(st->fresh);
	st->fresh = NULL;
	if (ensure_conn(st, err, errlen) < 0)
		return -1;
	if (exec_ok(st->conn, "BEGIN", err, errlen) < 0)
		goto fail;
	if (nev > 0) {
		r = write_events(st->conn, ev, nev, err, errlen);
		if (PQresultStatus(r) == PGRES_COMMAND_OK) {
			res->inserted = (size_t)atol(PQcmdTuples(r));
			res->duplicates = nev - res->inserted;
		} else if (pgconn_classify(st->conn, r) == PG_FAIL_DATA) {
			log_warnx("batch refused (%s): writing its events one by one", err);
			if (exec_ok(st->conn, "ROLLBACK", err, errlen) < 0 ||
			    exec_ok(st->conn, "BEGIN", err, errlen) < 0 ||
			    write_isolated(st, ev, nev, dead, ndead, dead_cap, res, err, errlen) <
				0)
				goto fail;
		} else {
			goto fail;
		}
		PQclear(r);
		r = NULL;
	}
	if (nev > 0 && (follow_events(st, err, errlen) < 0 || count_fresh(st, err, errlen) < 0))
		goto fail;
	for (size_t i = 0; i < *ndead; i++)
		if (write_dead(st->conn, &dead[i], err, errlen) < 0)
			goto fail;
	if (exec_ok(st->conn, "COMMIT", err, errlen) < 0)
		goto fail;
	return 0;
fail:
	PQclear(r);
	PQclear(st->suppressed);
	st->suppressed = NULL;
	PQclear(st->fresh);
	st->fresh = NULL;
	*ndead = first_new_dead;
	if (PQstatus(st->conn) == CONNECTION_OK) {
		char ignored[128];
		if (exec_ok(st->conn, "ROLLBACK", ignored, sizeof(ignored)) < 0)
			disconnect(st);
	} else {
		disconnect(st);
	}
	return -1;
}

int
store_maintain(struct store *st, char *err, size_t errlen)
{
	if (ensure_conn(st, err, errlen) < 0)
		return -1;
	if (exec_ok(st->conn, "SELECT mailpipe_ensure_partitions()", err, errlen) < 0) {
		if (PQstatus(st->conn) != CONNECTION_OK)
			disconnect(st);
		return -1;
	}
	return 0;
}
