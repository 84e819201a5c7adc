/*
 * query_messages: SendGrid's Email Activity API over the messages table (sql/006).
 *
 *   GET /v3/messages?query=<query>[&limit=N][&after=<cursor>]
 *     -> {"messages":[{"msg_id","from_email","to_email","subject","status","opens_count",
 *         "clicks_count","last_event_time"}], "next":"<cursor>"}
 *   GET /v3/messages/{msg_id}
 *     -> the message's fields plus "events":[{"event_name","processed","reason","email",
 *        "url","sg_event_id"}] in event-time order (message_timeline, sql/008).
 *
 * query is parsed by lib/msgquery into a WHERE clause of placeholders.  Messages come
 * newest first, by (created_at, message_id) descending; "next" is present when there are
 * more, and passing it as `after` gives the next page (keyset pagination).  The cursor is
 * the lowercase hex of "<created_at in microseconds since the epoch>:<message_id>".
 *
 * A query whose matches all lie in a "last_event_time BETWEEN lo AND hi" window (msgquery's
 * time_lo / time_hi) is not left to the planner's newest-first walk, which for a window
 * long past skips most of the table (it takes created_at and last_event_time for
 * independent).  A probe first counts the window, up to WINDOW_SORT_MAX, through
 * messages_last_event_time_idx (index only) and finds the walk's start: hi, or later if a
 * message in the window has its last event before its creation (the partial index of
 * sql/016).  A window of at most WINDOW_SORT_MAX messages is read whole and sorted
 * (PLAN_SORT); a larger one is walked newest first from that start (PLAN_BOUNDED), where
 * its messages are dense.  Both give the same rows in the same order as the plain walk.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "msgquery.h"
#include "query.h"

#define LIMIT_DEFAULT 10
#define LIMIT_MAX 1000
#define MSG_ID_MAX 128
#define CURSOR_MAX (2 * (20 + 1 + MSG_ID_MAX))
#define MESSAGES_PREFIX "/v3/messages/"
/* Largest last_event_time window read whole and sorted; at least 2 pages of LIMIT_MAX. */
#define WINDOW_SORT_MAX 2048
_Static_assert(WINDOW_SORT_MAX >= 2 * (LIMIT_MAX + 1), "a window to sort holds 2 pages");

/*
 * An answer is MESSAGE_SELECT, a query of MESSAGE_FIELDS aliased m (the messages to show,
 * already limited), then MESSAGE_COUNTS: their opens and clicks are counted afterwards,
 * one lateral look-up of events per message shown (not per message read), in one pass over
 * its events for both counts.  Columns, in this order: message_id, from_email, the first
 * recipient, subject, status, opens, clicks, last_event_time as RFC 3339, created_at in
 * microseconds since the epoch.
 */
#define MESSAGE_FIELDS                                                                             \
	"m.message_id, m.from_email, m.to_emails, m.subject, m.status, m.last_event_time,"         \
	" m.created_at"

#define MESSAGE_SELECT                                                                             \
	"SELECT m.message_id, m.from_email, m.to_emails[1], m.subject, m.status, k.opens,"         \
	" k.clicks,"                                                                               \
	" to_char(m.last_event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"        \
	" (extract(epoch FROM m.created_at) * 1000000)::bigint "                                   \
	"FROM ("

#define MESSAGE_COUNTS                                                                             \
	") m CROSS JOIN LATERAL (SELECT count(*) FILTER (WHERE e.event = 'open') AS opens,"        \
	" count(*) FILTER (WHERE e.event = 'click') AS clicks"                                     \
	" FROM events e WHERE e.message_id = m.message_id) k "

#define NEWEST_FIRST "ORDER BY m.created_at DESC, m.message_id DESC"

/* $n, a count of microseconds since the epoch (the cursor's and the probe's unit), as time. */
#define MICROS_TS "('epoch'::timestamptz + $%d::bigint * interval '1 microsecond')"

/*
 * $1..$2: a last_event_time window; $3: WINDOW_SORT_MAX + 1.  Answers how many messages it
 * holds (up to $3) and, in microseconds, the latest created_at a message in it can have:
 * $2, or the created_at of a message whose last event came before it (sql/016's index).
 * OFFSET 0 keeps max() from being planned as a newest-first walk of all messages.
 */
static const char window_probe_sql[] =
    "SELECT (SELECT count(*) FROM (SELECT 1 FROM messages"
    "   WHERE last_event_time BETWEEN $1::timestamptz AND $2::timestamptz"
    "   LIMIT $3::bigint) s),"
    " (SELECT (extract(epoch FROM greatest($2::timestamptz, max(l.created_at)))"
    "   * 1000000)::bigint"
    "  FROM (SELECT created_at FROM messages"
    "   WHERE last_event_time BETWEEN $1::timestamptz AND $2::timestamptz"
    "   AND last_event_time < created_at OFFSET 0) l)";

static const char timeline_sql[] =
    "SELECT event, to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
    " reason, email, url, sg_event_id "
    "FROM message_timeline WHERE message_id = $1 ORDER BY seq";

static json_t *
text_or_null(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return json_null();
	return json_string(PQgetvalue(res, row, col));
}

/* One message of a MESSAGE_SELECT row; NULL when out of memory. */
static json_t *
message_json(const PGresult *res, int i)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:o}", "msg_id",
			 text_or_null(res, i, 0), "from_email", text_or_null(res, i, 1), "to_email",
			 text_or_null(res, i, 2), "subject", text_or_null(res, i, 3), "status",
			 text_or_null(res, i, 4), "opens_count",
			 (json_int_t)strtoll(PQgetvalue(res, i, 5), NULL, 10), "clicks_count",
			 (json_int_t)strtoll(PQgetvalue(res, i, 6), NULL, 10), "last_event_time",
			 text_or_null(res, i, 7));
}

/* A message id we accept: 1..MSG_ID_MAX printable ASCII bytes. */
static int
valid_msg_id(const char *s, size_t n)
{
	if (n == 0 || n > MSG_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Encodes "us:id" as lowercase hex into out (CURSOR_MAX + 1 bytes); -1 if too long. */
static int
cursor_encode(const char *us, const char *id, char *out, size_t outlen)
{
	static const char digits[] = "0123456789abcdef";
	char raw[CURSOR_MAX / 2 + 1];
	int n = snprintf(raw, sizeof(raw), "%s:%s", us, id);
	size_t k = 0;

	if (n < 0 || (size_t)n >= sizeof(raw) || (size_t)n * 2 + 1 > outlen)
		return -1;
	for (int i = 0; i < n; i++) {
		out[k++] = digits[(unsigned char)raw[i] >> 4];
		out[k++] = digits[(unsigned char)raw[i] & 15];
	}
	out[k] = '\0';
	return 0;
}

/*
 * Decodes and validates a cursor strictly: lowercase hex of "<digits>:<message id>" with
 * 1..19 digits without a leading zero (unless "0").  Fills us and id; -1 if bad.
 */
static int
cursor_decode(const char *s, char *us, size_t uslen, char *id, size_t idlen)
{
	char raw[CURSOR_MAX / 2 + 1];
	size_t n = strlen(s), rn, d;
	char *colon;

	if (n == 0 || n % 2 != 0 || n > CURSOR_MAX)
		return -1;
	rn = n / 2;
	for (size_t i = 0; i < rn; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		raw[i] = (char)(hi << 4 | lo);
		if (raw[i] == '\0')
			return -1;
	}
	raw[rn] = '\0';
	if ((colon = strchr(raw, ':')) == NULL)
		return -1;
	d = (size_t)(colon - raw);
	if (d == 0 || d > 19 || d >= uslen || (d > 1 && raw[0] == '0'))
		return -1;
	for (size_t i = 0; i < d; i++)
		if (raw[i] < '0' || raw[i] > '9')
			return -1;
	if (!valid_msg_id(colon + 1, strlen(colon + 1)) || strlen(colon + 1) >= idlen)
		return -1;
	memcpy(us, raw, d);
	us[d] = '\0';
	snprintf(id, idlen, "%s", colon + 1);
	return 0;
}

enum plan {
	PLAN_WALK,    /* newest first through messages_created_id_idx (or what the planner likes) */
	PLAN_SORT,    /* the whole (small) window in a CTE, then sorted */
	PLAN_BOUNDED, /* newest first from the probe's bound down */
};

/*
 * Runs window_probe_sql for the window $lo..$hi of mq: PLAN_SORT when it holds at most
 * WINDOW_SORT_MAX messages, else PLAN_BOUNDED with the walk's start (microseconds) in
 * bound.  -1 with err set when the database fails.
 */
static int
probe_window(const struct query *q, const struct msgquery *mq, enum plan *plan, char *bound,
	     size_t boundlen, char *err, size_t errlen)
{
	char cap[16];
	const char *params[3] = {mq->params[mq->time_lo - 1], mq->params[mq->time_hi - 1], cap};
	PGresult *res;

	snprintf(cap, sizeof(cap), "%d", WINDOW_SORT_MAX + 1);
	if ((res = query_exec(q, window_probe_sql, 3, params, err, errlen)) == NULL)
		return -1;
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0) || PQgetisnull(res, 0, 1)) {
		snprintf(err, errlen, "window probe: unexpected answer");
		PQclear(res);
		return -1;
	}
	*plan =
	    strtol(PQgetvalue(res, 0, 0), NULL, 10) <= WINDOW_SORT_MAX ? PLAN_SORT : PLAN_BOUNDED;
	snprintf(bound, boundlen, "%s", PQgetvalue(res, 0, 1));
	PQclear(res);
	return 0;
}

/*
 * Writes the listing's SQL for plan into sql: the WHERE of mq, then the keyset condition
 * when cursor_p (its microseconds are $cursor_p, its id $cursor_p+1), then for PLAN_BOUNDED
 * created_at <= $bound_p; LIMIT $limit_p.  -1 if it does not fit.
 */
static int
build_sql(char *sql, size_t len, enum plan plan, const struct msgquery *mq, int cursor_p,
	  int bound_p, int limit_p)
{
	char keyset[160] = "", bound[96] = "";
	int n;

	if (cursor_p > 0)
		snprintf(keyset, sizeof(keyset),
			 " AND (m.created_at, m.message_id) < (" MICROS_TS ", $%d::text)", cursor_p,
			 cursor_p + 1);
	if (plan == PLAN_BOUNDED)
		snprintf(bound, sizeof(bound), " AND m.created_at <= " MICROS_TS, bound_p);
	if (plan == PLAN_SORT)
		n = snprintf(sql, len,
			     "WITH c AS MATERIALIZED (SELECT " MESSAGE_FIELDS " FROM messages m"
			     " WHERE (%s)%s) " MESSAGE_SELECT "SELECT * FROM c m " NEWEST_FIRST
			     " LIMIT $%d::bigint" MESSAGE_COUNTS NEWEST_FIRST,
			     mq->where, keyset, limit_p);
	else
		n = snprintf(sql, len,
			     MESSAGE_SELECT "SELECT " MESSAGE_FIELDS
					    " FROM messages m WHERE (%s)%s%s " NEWEST_FIRST
					    " LIMIT $%d::bigint" MESSAGE_COUNTS NEWEST_FIRST,
			     mq->where, keyset, bound, limit_p);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/*
 * The answer for res (up to limit + 1 rows of a list): {"messages": [...]} and, when there
 * is a row more, the cursor "next" of the last one answered.  NULL when out of memory.
 */
static json_t *
list_json(const PGresult *res, long limit)
{
	json_t *out = NULL, *list = NULL, *m;
	char cursor[CURSOR_MAX + 1];
	int n = PQntuples(res);

	if ((list = json_array()) == NULL || (out = json_pack("{s:O}", "messages", list)) == NULL)
		goto oom;
	for (int i = 0; i < n && i < limit; i++)
		if ((m = message_json(res, i)) == NULL || json_array_append_new(list, m) < 0)
			goto oom;
	if (n > limit) {
		int last = (int)limit - 1;

		if (cursor_encode(PQgetvalue(res, last, 8), PQgetvalue(res, last, 0), cursor,
				  sizeof(cursor)) == 0 &&
		    json_object_set_new(out, "next", json_string(cursor)) < 0)
			goto oom;
	}
	json_decref(list);
	return out;
oom:
	json_decref(list);
	json_decref(out);
	return NULL;
}

static void
list_messages(struct req *r, const struct qparams *qp)
{
	const struct query *q = r->app;
	const char *query = qparams_get(qp, "query");
	const char *after = qparams_get(qp, "after");
	struct msgquery mq = {0};
	char sql[4096], err[512], limit_s[24], us[24], id[MSG_ID_MAX + 1], bound[24];
	const char *params[36];
	PGresult *res = NULL;
	enum plan plan = PLAN_WALK;
	long limit;
	int np, cursor_p = 0, bound_p = 0;

	if (query_count_param(qparams_get(qp, "limit"), LIMIT_DEFAULT, LIMIT_MAX, &limit) < 0) {
		reply_error(r, 400, "limit", "limit must be an integer from 1 to %d", LIMIT_MAX);
		goto out;
	}
	if (query == NULL || query[0] == '\0') {
		reply_error(r, 400, "query", "query is required");
		goto out;
	}
	if (msgquery_parse(query, &mq, err, sizeof(err)) < 0) {
		reply_error(r, 400, "query", "%s", err);
		goto out;
	}
	if (after != NULL && cursor_decode(after, us, sizeof(us), id, sizeof(id)) < 0) {
		reply_error(r, 400, "after", "after is not a cursor this API answered");
		goto out;
	}
	if (mq.time_lo > 0 &&
	    probe_window(q, &mq, &plan, bound, sizeof(bound), err, sizeof(err)) < 0) {
		log_errx("messages: %s", err);
		reply_error(r, 503, NULL, "the email activity is unavailable: retry later");
		goto out;
	}
	np = mq.nparams;
	for (int i = 0; i < np; i++)
		params[i] = mq.params[i];
	if (after != NULL) {
		params[np] = us;
		params[np + 1] = id;
		cursor_p = np + 1;
		np += 2;
	}
	if (plan == PLAN_BOUNDED) {
		params[np++] = bound;
		bound_p = np;
	}
	snprintf(limit_s, sizeof(limit_s), "%ld", limit + 1);
	params[np++] = limit_s;
	if (build_sql(sql, sizeof(sql), plan, &mq, cursor_p, bound_p, np) < 0) {
		reply_error(r, 400, "query", "query is too complex");
		goto out;
	}
	if ((res = query_fetch(r, "messages", "the email activity is", sql, np, params)) != NULL)
		query_reply_json(r, list_json(res, limit));
out:
	PQclear(res);
	msgquery_release(&mq);
}

void
messages_handle(struct req *r)
{
	struct qparams qp = {0};

	if (query_authenticate(r, r->app, "stats.read") < 0 || query_params(r, &qp) < 0)
		return;
	list_messages(r, &qp);
	qparams_release(&qp);
}

/* The answer for one message: its row (res) with its events (tl); NULL when out of memory. */
static json_t *
detail_json(const PGresult *res, const PGresult *tl)
{
	json_t *out = NULL, *events = NULL, *ev;

	if ((out = message_json(res, 0)) == NULL || (events = json_array()) == NULL ||
	    json_object_set(out, "events", events) < 0)
		goto oom;
	for (int i = 0; i < PQntuples(tl); i++) {
		ev =
		    json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "event_name",
			      text_or_null(tl, i, 0), "processed", text_or_null(tl, i, 1), "reason",
			      text_or_null(tl, i, 2), "email", text_or_null(tl, i, 3), "url",
			      text_or_null(tl, i, 4), "sg_event_id", text_or_null(tl, i, 5));
		if (ev == NULL || json_array_append_new(events, ev) < 0)
			goto oom;
	}
	json_decref(events);
	return out;
oom:
	json_decref(events);
	json_decref(out);
	return NULL;
}

void
message_handle(struct req *r)
{
	const struct query *q = r->app;
	const char *id = r->path + strlen(MESSAGES_PREFIX);
	const char *params[1] = {id};
	PGresult *res = NULL, *tl = NULL;

	if (query_authenticate(r, q, "stats.read") < 0)
		return;
	if (strncmp(r->path, MESSAGES_PREFIX, strlen(MESSAGES_PREFIX)) != 0 ||
	    !valid_msg_id(id, strlen(id))) {
		reply_error(r, 404, NULL, "message not found");
		return;
	}
	if ((res = query_fetch(r, "message", "the email activity is",
			       MESSAGE_SELECT
			       "SELECT " MESSAGE_FIELDS
			       " FROM messages m WHERE m.message_id = $1" MESSAGE_COUNTS,
			       1, params)) == NULL)
		goto out;
	if (PQntuples(res) != 1) {
		reply_error(r, 404, NULL, "message not found");
		goto out;
	}
	if ((tl = query_fetch(r, "message", "the email activity is", timeline_sql, 1, params)) !=
	    NULL)
		query_reply_json(r, detail_json(res, tl));
out:
	PQclear(res);
	PQclear(tl);
}
