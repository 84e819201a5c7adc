/*
 * query_suppressions: SendGrid's suppression lists over the tables suppressions (sql/007)
 * and blocks (sql/010).
 *
 *   GET    /v3/suppression/<list>[?start_time=&end_time=&limit=&offset=&email=]
 *   GET    /v3/suppression/<list>/{email}  -> [entry] or []
 *   DELETE /v3/suppression/<list>/{email}  -> 204, or 404 when it is not on that list
 *
 * <list> is bounces [{"created","email","reason","status"}], blocks (the same fields),
 * spam_reports [{"created","email","ip"}] or unsubscribes [{"created","email"}]; created
 * is in unix seconds.  Bounce reason and status and the spam report's ip come from the
 * event that made the entry.  Entries are newest first, then by email; start_time and
 * end_time bound created, both inclusive.  GET needs the scope suppressions.read, DELETE
 * suppressions.write.  DELETE runs mailpipe_suppression_delete() (SECURITY DEFINER: the
 * reader role cannot write) and then removes the address from the Redis set the sink
 * mirrors suppressions into; PostgreSQL is what the sender checks, so a Redis that is away
 * only leaves a warning in the log.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "query.h"
#include "sgerr.h"
#include "suppress.h"

#define PREFIX "/v3/suppression/"
#define LIMIT_DEFAULT 500
#define LIMIT_MAX 500
#define OFFSET_MAX 100000000LL
#define TIME_MAX 253402300799LL /* 9999-12-31T23:59:59Z */

/*
 * $1 the reason, $2 start_time, $3 end_time (unix seconds or NULL), $4 the email or NULL,
 * $5 limit, $6 offset.  The source event is found through event_ids, whose event_time
 * prunes events to one partition, then by events_suppression_source_idx (sql/010).
 */
static const char suppressions_sql[] =
    "SELECT floor(extract(epoch FROM s.created_at))::bigint, s.email,"
    " coalesce(ev.reason, ''), coalesce(ev.status, ''), coalesce(ev.raw->>'ip', '')"
    " FROM suppressions s"
    " LEFT JOIN event_ids ei ON ei.sg_event_id = s.source_event"
    " LEFT JOIN LATERAL (SELECT e.reason, e.status, e.raw FROM events e"
    "  WHERE e.event_time = ei.event_time AND e.sg_event_id = s.source_event"
    "  AND e.event IN ('bounce', 'spamreport') LIMIT 1) ev"
    "  ON true"
    " WHERE s.reason = $1::text"
    " AND ($2::bigint IS NULL OR s.created_at >= to_timestamp($2::bigint))"
    " AND ($3::bigint IS NULL OR s.created_at < to_timestamp($3::bigint + 1))"
    " AND ($4::text IS NULL OR s.email = $4::text)"
    " ORDER BY s.created_at DESC, s.email LIMIT $5::bigint OFFSET $6::bigint";

/* The same parameters; $1 is unused (always 'blocked') so both queries take the same. */
static const char blocks_sql[] =
    "SELECT floor(extract(epoch FROM b.created_at))::bigint, b.email,"
    " coalesce(b.reason, ''), coalesce(b.status, ''), '' FROM blocks b"
    " WHERE $1::text = 'blocked'"
    " AND ($2::bigint IS NULL OR b.created_at >= to_timestamp($2::bigint))"
    " AND ($3::bigint IS NULL OR b.created_at < to_timestamp($3::bigint + 1))"
    " AND ($4::text IS NULL OR b.email = $4::text)"
    " ORDER BY b.created_at DESC, b.email LIMIT $5::bigint OFFSET $6::bigint";

/* What each list answers: its rows and which of reason, status, ip its entries carry. */
struct list {
	const char *name;   /* in the path */
	const char *reason; /* suppressions.reason, or 'blocked' */
	const char *sql;
	int with_reason_status, with_ip;
};

static const struct list lists[] = {
    {"bounces", "bounce", suppressions_sql, 1, 0},
    {"blocks", "blocked", blocks_sql, 1, 0},
    {"spam_reports", "spamreport", suppressions_sql, 0, 1},
    {"unsubscribes", "unsubscribe", suppressions_sql, 0, 0},
};

/* The parameters of one list query, as text for PQexecParams. */
struct filter {
	char start[24], end[24], limit[24], offset[24];
	char email[SUPPRESS_EMAIL_MAX + 1];
	int has_start, has_end, has_email;
};

/* Which list and, after it, which address a request's path names. */
struct target {
	const struct list *list;
	int has_email;
	char email[SUPPRESS_EMAIL_MAX + 1];
};

static const struct list *
list_by_name(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
		if (strlen(lists[i].name) == len && memcmp(lists[i].name, name, len) == 0)
			return &lists[i];
	return NULL;
}

/*
 * The email segment of the path, percent-decoded once.  nginx hands r->path decoded, so the
 * raw REQUEST_URI is preferred (an address may hold an encoded '/' or '%'); r->path's rest
 * is the fallback when REQUEST_URI does not start with the same list.
 */
static int
path_email(struct req *r, const char *list, const char *decoded, char *out, size_t outlen)
{
	const char *raw = req_param(r, "REQUEST_URI");
	size_t plen = strlen(PREFIX), llen = strlen(list);

	if (raw != NULL && strncmp(raw, PREFIX, plen) == 0 &&
	    strncmp(raw + plen, list, llen) == 0 && raw[plen + llen] == '/') {
		const char *s = raw + plen + llen + 1;

		return suppress_decode(s, strcspn(s, "?#"), out, outlen);
	}
	return suppress_normalize(decoded, out, outlen);
}

/*
 * Parses r->path into t; answers 404 (unknown list) or 400 (bad email) itself and returns
 * -1.
 */
static int
parse_target(struct req *r, struct target *t)
{
	const char *rest = r->path + strlen(PREFIX);
	const char *slash = strchr(rest, '/');
	size_t len = slash ? (size_t)(slash - rest) : strlen(rest);

	memset(t, 0, sizeof(*t));
	if (strncmp(r->path, PREFIX, strlen(PREFIX)) != 0 ||
	    (t->list = list_by_name(rest, len)) == NULL) {
		reply_error(r, 404, NULL,
			    "unknown suppression list: expected one of bounces, "
			    "blocks, spam_reports, unsubscribes");
		return -1;
	}
	if (slash == NULL)
		return 0;
	t->has_email = 1;
	if (path_email(r, t->list->name, slash + 1, t->email, sizeof(t->email)) < 0) {
		reply_error(r, 400, "email",
			    "email must be an address of 1 to %d characters holding '@', without "
			    "white space",
			    SUPPRESS_EMAIL_MAX);
		return -1;
	}
	return 0;
}

/* Parses a decimal integer from min to max; -1 if s is not one. */
static int
parse_int(const char *s, long long min, long long max, long long *out)
{
	char *end;

	if (s[0] < '0' || s[0] > '9') /* no sign, no space */
		return -1;
	errno = 0;
	*out = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || *out < min || *out > max)
		return -1;
	return 0;
}

/* Reads one integer parameter into buf (left empty when absent); adds what is wrong. */
static int
int_param(const struct qparams *qp, const char *name, long long min, long long max, char *buf,
	  size_t buflen, json_t *errors, long long *val)
{
	const char *v = qparams_get(qp, name);

	if (v == NULL)
		return 0;
	if (parse_int(v, min, max, val) < 0) {
		sgerr_add(errors, name, "%s must be an integer from %lld to %lld", name, min, max);
		return 0;
	}
	snprintf(buf, buflen, "%lld", *val);
	return 1;
}

/* Reads the query string into f, adding what is wrong to errors. */
static void
parse_filter(const struct qparams *qp, struct filter *f, json_t *errors)
{
	long long start = 0, end = 0, limit = LIMIT_DEFAULT, offset = 0;
	const char *email = qparams_get(qp, "email");

	f->has_start =
	    int_param(qp, "start_time", 0, TIME_MAX, f->start, sizeof(f->start), errors, &start);
	f->has_end = int_param(qp, "end_time", 0, TIME_MAX, f->end, sizeof(f->end), errors, &end);
	if (f->has_start && f->has_end && end < start)
		sgerr_add(errors, "end_time", "end_time must not be before start_time");
	if (!int_param(qp, "limit", 1, LIMIT_MAX, f->limit, sizeof(f->limit), errors, &limit))
		snprintf(f->limit, sizeof(f->limit), "%d", LIMIT_DEFAULT);
	if (!int_param(qp, "offset", 0, OFFSET_MAX, f->offset, sizeof(f->offset), errors, &offset))
		snprintf(f->offset, sizeof(f->offset), "0");
	if (email != NULL) {
		if (suppress_normalize(email, f->email, sizeof(f->email)) < 0)
			sgerr_add(errors, "email",
				  "email must be an address of 1 to %d characters holding '@', "
				  "without white space",
				  SUPPRESS_EMAIL_MAX);
		else
			f->has_email = 1;
	}
}

/* The list's entries in res (l->sql's rows); a new reference, NULL when out of memory. */
static json_t *
entries_json(const struct list *l, const PGresult *res)
{
	json_t *out = json_array(), *e;

	if (out == NULL)
		return NULL;
	for (int i = 0; i < PQntuples(res); i++) {
		json_int_t created = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		const char *email = PQgetvalue(res, i, 1);

		if (l->with_reason_status)
			e = json_pack("{s:I, s:s, s:s, s:s}", "created", created, "email", email,
				      "reason", PQgetvalue(res, i, 2), "status",
				      PQgetvalue(res, i, 3));
		else if (l->with_ip)
			e = json_pack("{s:I, s:s, s:s}", "created", created, "email", email, "ip",
				      PQgetvalue(res, i, 4));
		else
			e = json_pack("{s:I, s:s}", "created", created, "email", email);
		if (e == NULL || json_array_append_new(out, e) < 0) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

/* Runs the list's query with f and answers its entries. */
static void
answer(struct req *r, const struct list *l, const struct filter *f)
{
	const char *params[6] = {
	    l->reason,
	    f->has_start ? f->start : NULL,
	    f->has_end ? f->end : NULL,
	    f->has_email ? f->email : NULL,
	    f->limit,
	    f->offset,
	};
	PGresult *res;
	char tag[64];

	snprintf(tag, sizeof(tag), "suppression %s", l->name);
	if ((res = query_fetch(r, tag, "the suppression list is", l->sql, 6, params)) != NULL)
		query_reply_json(r, entries_json(l, res));
	PQclear(res);
}

void
suppression_get_handle(struct req *r)
{
	struct qparams qp = {0};
	struct target t;
	struct filter f = {0};
	json_t *errors = NULL;

	if (query_authenticate(r, r->app, "suppressions.read") < 0 || parse_target(r, &t) < 0)
		goto out;
	if (t.has_email) {
		/* one address: the query string does not narrow it */
		snprintf(f.limit, sizeof(f.limit), "1");
		snprintf(f.offset, sizeof(f.offset), "0");
		snprintf(f.email, sizeof(f.email), "%s", t.email);
		f.has_email = 1;
		answer(r, t.list, &f);
		goto out;
	}
	if (query_params(r, &qp) < 0)
		goto out;
	if ((errors = json_array()) == NULL) {
		reply_error(r, 503, NULL, "out of memory");
		goto out;
	}
	parse_filter(&qp, &f, errors);
	if (json_array_size(errors) > 0) {
		reply_errors(r, 400, errors);
		errors = NULL;
		goto out;
	}
	answer(r, t.list, &f);
out:
	json_decref(errors);
	qparams_release(&qp);
}

/* Removes the address from the Redis mirror; a failure is only logged (see above). */
static void
unmirror(struct req *r, const PGresult *res, const char *email)
{
	const struct query *q = r->app;
	const char *members[4];
	size_t n = suppress_members(res, email, members, sizeof(members) / sizeof(members[0]));
	long long removed;

	if (suppress_unmirror(q->redis, q->cf->redis_prefix, members, n, &removed) < 0)
		log_warnx("request %s: '%s' removed from suppressions but not from the redis set "
			  "'%ssuppressed' (redis unavailable): the sender checks postgresql, so "
			  "mail to it is sent; `mailpipectl suppression remove` clears the set",
			  r->id, email, q->cf->redis_prefix);
}

void
suppression_delete_handle(struct req *r)
{
	static const char *const allow[] = {"Allow: GET"};
	const struct query *q = r->app;
	const char *params[2];
	PGresult *res = NULL;
	struct target t;
	char err[512];

	if (query_authenticate(r, q, "suppressions.write") < 0 || parse_target(r, &t) < 0)
		return;
	if (!t.has_email) {
		reply_headers(r, 405, allow, 1,
			      json_pack("{s:[o]}", "errors",
					sgerr_entry(NULL, "deleting a whole list is not supported: "
							  "DELETE one address at a time")));
		return;
	}
	params[0] = t.list->name;
	params[1] = t.email;
	if ((res = query_exec_write(q, suppress_delete_sql, 2, params, err, sizeof(err))) == NULL) {
		log_errx("suppression delete %s: %s", t.list->name, err);
		reply_error(r, 503, NULL, "the suppression list is unavailable: retry later");
		return;
	}
	if (PQntuples(res) == 0) {
		reply_error(r, 404, "email", "'%s' is not on the %s list", t.email, t.list->name);
		goto out;
	}
	log_info("request %s: removed '%s' from the %s list", r->id, t.email, t.list->name);
	/* blocks never suppressed the address: only the other lists are mirrored */
	if (strcmp(t.list->name, "blocks") != 0)
		unmirror(r, res, t.email);
	reply_json(r, 204, NULL);
out:
	PQclear(res);
}
