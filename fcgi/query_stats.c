/*
 * query_stats: SendGrid's Stats API over the daily rollups (stats_daily, sql/008).
 *
 *   GET /v3/stats?start_date=YYYY-MM-DD[&end_date=YYYY-MM-DD][&aggregated_by=day|week|month]
 *     -> [{"date":"2015-11-03","stats":[{"metrics":{"blocks":0,...}}]}]
 *   GET /v3/categories/stats?categories=a[&categories=b...]&start_date=...
 *     -> [{"date":"2015-11-03","stats":[{"type":"category","name":"a","metrics":{...}}]}]
 *
 * Days are UTC dates; end_date defaults to today.  Every period of the range is answered,
 * zero-filled.  aggregated_by=week groups ISO weeks (Monday to Sunday) and month calendar
 * months; the date of a period is its first day (Monday, or the 1st), even when start_date
 * falls later in it: only the days from start_date to end_date are counted.  Validation
 * problems are all listed, in SendGrid's error shape, with 400.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "query.h"
#include "sgerr.h"

#define MAX_DAYS 3660     /* the longest range, in days, end_date - start_date */
#define MAX_CATEGORIES 10 /* SendGrid's limit */
#define MAX_CATEGORY_LEN 255

/* SendGrid's counters, in the order it answers them; the SQL selects them in this order. */
static const char *const metrics[] = {
    "blocks",        "bounce_drops", "bounces",           "clicks",
    "deferred",      "delivered",    "invalid_emails",    "opens",
    "processed",     "requests",     "spam_report_drops", "spam_reports",
    "unique_clicks", "unique_opens", "unsubscribe_drops", "unsubscribes",
};
#define NMETRICS (sizeof(metrics) / sizeof(metrics[0]))

/*
 * $1 start_date, $2 end_date, $3 the period (day, week or month), $4 a JSON array of the
 * categories ("" = all mail).  One row per period and category, in order.
 */
static const char stats_sql[] =
    "WITH cats AS ("
    " SELECT c.name, c.ord"
    " FROM json_array_elements_text($4::json) WITH ORDINALITY AS c(name, ord)"
    "), periods AS ("
    " SELECT p::date AS first_day, (p + ('1 ' || $3::text)::interval)::date AS next_day"
    " FROM generate_series(date_trunc($3::text, $1::date::timestamp), $2::date::timestamp,"
    "  ('1 ' || $3::text)::interval) AS p"
    ") "
    "SELECT to_char(p.first_day, 'YYYY-MM-DD'), c.name,"
    " coalesce(sum(s.blocks), 0), coalesce(sum(s.bounce_drops), 0),"
    " coalesce(sum(s.bounces), 0), coalesce(sum(s.clicks), 0),"
    " coalesce(sum(s.deferred), 0), coalesce(sum(s.delivered), 0),"
    " coalesce(sum(s.invalid_emails), 0), coalesce(sum(s.opens), 0),"
    " coalesce(sum(s.processed), 0), coalesce(sum(s.requests), 0),"
    " coalesce(sum(s.spam_report_drops), 0), coalesce(sum(s.spam_reports), 0),"
    " coalesce(sum(s.unique_clicks), 0), coalesce(sum(s.unique_opens), 0),"
    " coalesce(sum(s.unsubscribe_drops), 0), coalesce(sum(s.unsubscribes), 0) "
    "FROM periods p CROSS JOIN cats c "
    "LEFT JOIN stats_daily s ON s.category = c.name"
    " AND s.day >= greatest(p.first_day, $1::date) AND s.day < p.next_day"
    " AND s.day <= $2::date "
    "GROUP BY p.first_day, c.name, c.ord "
    "ORDER BY p.first_day, c.ord";

struct range {
	char start[11], end[11];
	const char *period;
};

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static long
days_from_civil(long y, long m, long d)
{
	y -= m <= 2;
	long era = (y >= 0 ? y : y - 399) / 400;
	long yoe = y - era * 400;
	long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* Parses a strict YYYY-MM-DD (year 0001 to 9999, a real date) into days; -1 if not one. */
static int
parse_date(const char *s, long *days)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	long y, m, d;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return -1;
	y = strtol(s, NULL, 10);
	m = (s[5] - '0') * 10 + (s[6] - '0');
	d = (s[8] - '0') * 10 + (s[9] - '0');
	if (y < 1 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return -1;
	if (m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return -1;
	*days = days_from_civil(y, m, d);
	return 0;
}

/* Reads start_date, end_date and aggregated_by into rg, adding what is wrong to errors. */
static void
parse_range(const struct qparams *qp, struct range *rg, json_t *errors)
{
	const char *start = qparams_get(qp, "start_date");
	const char *end = qparams_get(qp, "end_date");
	const char *agg = qparams_get(qp, "aggregated_by");
	long sdays = 0, edays = 0;
	int sok = 0, eok = 0;

	if (start == NULL || start[0] == '\0') {
		sgerr_add(errors, "start_date", "start_date is required");
	} else if (parse_date(start, &sdays) < 0) {
		sgerr_add(errors, "start_date",
			  "start_date must be a date in the format YYYY-MM-DD");
	} else {
		snprintf(rg->start, sizeof(rg->start), "%s", start);
		sok = 1;
	}
	if (end == NULL || end[0] == '\0') {
		time_t now = time(NULL);
		struct tm tm;

		gmtime_r(&now, &tm);
		strftime(rg->end, sizeof(rg->end), "%Y-%m-%d", &tm);
		eok = parse_date(rg->end, &edays) == 0;
	} else if (parse_date(end, &edays) < 0) {
		sgerr_add(errors, "end_date", "end_date must be a date in the format YYYY-MM-DD");
	} else {
		snprintf(rg->end, sizeof(rg->end), "%s", end);
		eok = 1;
	}
	if (sok && eok && edays < sdays)
		sgerr_add(errors, "end_date", "end_date must not be before start_date");
	else if (sok && eok && edays - sdays > MAX_DAYS)
		sgerr_add(errors, "end_date",
			  "the range from start_date to end_date must not be over %d days",
			  MAX_DAYS);
	if (agg == NULL || agg[0] == '\0' || strcmp(agg, "day") == 0)
		rg->period = "day";
	else if (strcmp(agg, "week") == 0)
		rg->period = "week";
	else if (strcmp(agg, "month") == 0)
		rg->period = "month";
	else
		sgerr_add(errors, "aggregated_by", "aggregated_by must be one of day, week, month");
}

/*
 * The answer for res (stats_sql's rows): [{"date", "stats":[...]}]; with_names adds
 * "type":"category","name" to each element.  A new reference, NULL when out of memory.
 */
static json_t *
days_json(const PGresult *res, int with_names)
{
	json_t *out = json_array(), *day = NULL, *stats = NULL, *elem, *m;
	const char *last = "";

	if (out == NULL)
		return NULL;
	for (int i = 0; i < PQntuples(res); i++) {
		const char *date = PQgetvalue(res, i, 0);

		if (strcmp(date, last) != 0) {
			stats = json_array();
			day = json_pack("{s:s, s:o}", "date", date, "stats", stats);
			if (stats == NULL || day == NULL || json_array_append_new(out, day) < 0)
				goto oom;
			last = date;
		}
		if ((m = json_object()) == NULL)
			goto oom;
		for (size_t k = 0; k < NMETRICS; k++)
			json_object_set_new(
			    m, metrics[k],
			    json_integer(strtoll(PQgetvalue(res, i, 2 + (int)k), NULL, 10)));
		if (with_names)
			elem = json_pack("{s:s, s:s, s:o}", "type", "category", "name",
					 PQgetvalue(res, i, 1), "metrics", m);
		else
			elem = json_pack("{s:o}", "metrics", m);
		if (elem == NULL || json_array_append_new(stats, elem) < 0)
			goto oom;
	}
	return out;
oom:
	json_decref(out);
	return NULL;
}

/* Runs the query for the categories (a JSON array of strings) and answers its days. */
static void
answer(struct req *r, const struct range *rg, const json_t *categories, int with_names)
{
	const char *params[4] = {rg->start, rg->end, rg->period, NULL};
	char *cats = json_dumps(categories, JSON_COMPACT);
	PGresult *res;

	if (cats == NULL) {
		reply_error(r, 503, NULL, "out of memory");
		return;
	}
	params[3] = cats;
	if ((res = query_fetch(r, "stats", "the statistics are", stats_sql, 4, params)) != NULL)
		query_reply_json(r, days_json(res, with_names));
	PQclear(res);
	free(cats);
}

/* Parses the query string and the range; answers 400 itself and returns -1 on errors. */
static int
begin(struct req *r, struct qparams *qp, struct range *rg, json_t **errors)
{
	if (query_authenticate(r, r->app, "stats.read") < 0 || query_params(r, qp) < 0)
		return -1;
	if ((*errors = json_array()) == NULL) {
		reply_error(r, 503, NULL, "out of memory");
		return -1;
	}
	parse_range(qp, rg, *errors);
	return 0;
}

void
stats_handle(struct req *r)
{
	struct qparams qp = {0};
	struct range rg = {0};
	json_t *errors = NULL, *all = NULL;

	if (begin(r, &qp, &rg, &errors) < 0)
		goto out;
	if (json_array_size(errors) > 0) {
		reply_errors(r, 400, errors);
		errors = NULL;
		goto out;
	}
	if ((all = json_pack("[s]", "")) == NULL) {
		reply_error(r, 503, NULL, "out of memory");
		goto out;
	}
	answer(r, &rg, all, 0);
out:
	json_decref(all);
	json_decref(errors);
	qparams_release(&qp);
}

void
category_stats_handle(struct req *r)
{
	struct qparams qp = {0};
	struct range rg = {0};
	json_t *errors = NULL, *cats = NULL;
	size_t n = 0, bad = 0;

	if (begin(r, &qp, &rg, &errors) < 0)
		goto out;
	if ((cats = json_array()) == NULL) {
		reply_error(r, 503, NULL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < qp.n; i++) {
		const char *v = qp.p[i].value;
		int seen = 0;

		if (strcmp(qp.p[i].name, "categories") != 0)
			continue;
		n++;
		if (v[0] == '\0' || strlen(v) > MAX_CATEGORY_LEN) {
			bad++;
			continue;
		}
		for (size_t k = 0; k < json_array_size(cats) && !seen; k++)
			seen = strcmp(json_string_value(json_array_get(cats, k)), v) == 0;
		/* a repeated category is answered once */
		if (!seen && json_array_append_new(cats, json_string(v)) < 0) {
			reply_error(r, 503, NULL, "out of memory");
			goto out;
		}
	}
	if (n == 0)
		sgerr_add(errors, "categories", "categories is required: give 1 to %d",
			  MAX_CATEGORIES);
	else if (bad > 0)
		sgerr_add(errors, "categories", "a category must be 1 to %d characters",
			  MAX_CATEGORY_LEN);
	else if (json_array_size(cats) > MAX_CATEGORIES)
		sgerr_add(errors, "categories", "at most %d categories may be given",
			  MAX_CATEGORIES);
	else if (json_array_size(cats) == 0)
		sgerr_add(errors, "categories", "categories is required: give 1 to %d",
			  MAX_CATEGORIES);
	if (json_array_size(errors) > 0) {
		reply_errors(r, 400, errors);
		errors = NULL;
		goto out;
	}
	answer(r, &rg, cats, 1);
out:
	json_decref(cats);
	json_decref(errors);
	qparams_release(&qp);
}
