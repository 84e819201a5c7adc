/*
 * test_msgquery: the Email Activity query parser (lib/msgquery.c), driven by fixture folders:
 *
 *   $MAILPIPE_FIXTURES/msgquery/valid/<case>/query.txt       the query (trailing white space
 *                                                             trimmed)
 *   $MAILPIPE_FIXTURES/msgquery/valid/<case>/expected.json   {"where": "...", "params": [...]}
 *   $MAILPIPE_FIXTURES/msgquery/invalid/<case>/query.txt
 *   $MAILPIPE_FIXTURES/msgquery/invalid/<case>/error.txt     text the error must contain
 *
 * Queries are handed over in buffers of exactly their size, so ASan catches a read past the
 * end.  The limits (length, values, nesting, SQL size) are also probed here at their edges.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fixture.h"
#include "msgquery.h"
#include "unit.h"

/* Checks what every parsed query must keep: placeholders $1..$n each once, in order. */
static int
check_shape(const struct msgquery *q)
{
	const char *w = q->where;
	int next = 1;

	if (q->nparams < 0 || q->nparams > MSGQUERY_MAX_PARAMS) {
		unit_diag("nparams %d out of range", q->nparams);
		return -1;
	}
	for (const char *d = strchr(w, '$'); d != NULL; d = strchr(d + 1, '$')) {
		int n = atoi(d + 1);

		if (n != next) {
			unit_diag("placeholder $%d where $%d was due", n, next);
			return -1;
		}
		next++;
	}
	if (next - 1 != q->nparams) {
		unit_diag("%d placeholders for %d params", next - 1, q->nparams);
		return -1;
	}
	/* No value may reach the SQL: the clause has no quote of any kind. */
	if (strpbrk(w, "'\";\\") != NULL) {
		unit_diag("the clause holds a quote, ';' or '\\': %s", w);
		return -1;
	}
	return 0;
}

/*
 * <dir>/<name>/query.txt in a new buffer of exactly its size, so that ASan catches a read
 * past the end; NULL with why.  The caller frees it.
 */
static char *
read_query(const char *dir, const char *name, char *why, size_t whylen)
{
	char path[4096], *text, *query;
	size_t len;

	fixture_fmt(path, sizeof(path), "%s/%s/query.txt", dir, name);
	if ((text = fixture_slurp_text(path)) == NULL) {
		fixture_fmt(why, whylen, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	len = strlen(text);
	if ((query = malloc(len + 1)) == NULL)
		fixture_fmt(why, whylen, "out of memory");
	else
		memcpy(query, text, len + 1);
	free(text);
	return query;
}

static void
run_valid(const char *dir, const char *name)
{
	char path[4096], why[1024] = "", err[256] = "";
	char *query = NULL;
	json_t *want = NULL, *wparams;
	const char *wwhere;
	json_error_t jerr;
	struct msgquery q;
	int ok = 0, parsed = 0;

	if ((query = read_query(dir, name, why, sizeof(why))) == NULL)
		goto out;
	fixture_fmt(path, sizeof(path), "%s/%s/expected.json", dir, name);
	if ((want = fixture_load_json(path, why, sizeof(why))) == NULL)
		goto out;
	if (json_unpack_ex(want, &jerr, JSON_STRICT, "{s:s, s:o}", "where", &wwhere, "params",
			   &wparams) < 0 ||
	    !json_is_array(wparams)) {
		fixture_fmt(why, sizeof(why),
			    "%s: expected {\"where\": \"...\", \"params\": [...]}", path);
		goto out;
	}
	if (msgquery_parse(query, &q, err, sizeof(err)) < 0) {
		fixture_fmt(why, sizeof(why), "refused: \"%s\"", err);
		goto out;
	}
	parsed = 1;
	ok = 1;
	if (strcmp(q.where, wwhere) != 0) {
		unit_diag("where:\n  got      %s\n  expected %s", q.where, wwhere);
		ok = 0;
	}
	if ((size_t)q.nparams != json_array_size(wparams)) {
		unit_diag("got %d params, expected %zu", q.nparams, json_array_size(wparams));
		ok = 0;
	} else {
		for (int i = 0; i < q.nparams; i++) {
			const char *wp = json_string_value(json_array_get(wparams, (size_t)i));

			if (wp == NULL || strcmp(q.params[i], wp) != 0) {
				unit_diag("param $%d: got \"%s\", expected \"%s\"", i + 1,
					  q.params[i], wp ? wp : "(not a string)");
				ok = 0;
			}
		}
	}
	if (check_shape(&q) < 0)
		ok = 0;
out:
	if (!CHECK(ok, "valid/%s", name) && why[0])
		unit_diag("%s", why);
	if (parsed)
		msgquery_release(&q);
	json_decref(want);
	free(query);
}

static void
run_invalid(const char *dir, const char *name)
{
	char why[1024] = "", err[256] = "";
	char *query = NULL, *want_err = NULL, *want_field = NULL;
	struct msgquery q;
	int ok = 0;

	if (fixture_read_invalid(dir, name, &want_err, &want_field, why, sizeof(why)) < 0)
		goto out;
	if ((query = read_query(dir, name, why, sizeof(why))) == NULL)
		goto out;
	if (msgquery_parse(query, &q, err, sizeof(err)) == 0) {
		fixture_fmt(why, sizeof(why), "accepted: %s", q.where);
		msgquery_release(&q);
		goto out;
	}
	ok = 1;
	if (strstr(err, want_err) == NULL) {
		unit_diag("error \"%s\" does not contain \"%s\"", err, want_err);
		ok = 0;
	}
	if (q.owned != NULL || q.nparams != 0 || q.where[0] != '\0') {
		unit_diag("a failed msgquery_parse() left the query holding something");
		ok = 0;
	}
out:
	if (!CHECK(ok, "invalid/%s", name) && why[0])
		unit_diag("%s", why);
	free(query);
	free(want_err);
	free(want_field);
}

/* Builds "<head><sep><body>...<tail>" with count copies of body; the caller frees it. */
static char *
repeat(const char *head, const char *body, const char *sep, int count, const char *tail)
{
	size_t n = strlen(head) + (size_t)count * (strlen(body) + strlen(sep)) + strlen(tail) + 1;
	char *s = malloc(n);

	if (s == NULL) {
		printf("not ok - out of memory\n");
		exit(1);
	}
	strcpy(s, head);
	for (int i = 0; i < count; i++) {
		if (i > 0)
			strcat(s, sep);
		strcat(s, body);
	}
	strcat(s, tail);
	return s;
}

/* Parses query; expects success when want is NULL, else an error containing want. */
static void
expect(const char *query, const char *want, const char *name)
{
	char err[256] = "";
	struct msgquery q;
	int rc = msgquery_parse(query, &q, err, sizeof(err));

	if (want == NULL) {
		if (!CHECK(rc == 0 && check_shape(&q) == 0, "%s", name))
			unit_diag("rc %d, err \"%s\"", rc, err);
	} else if (!CHECK(rc < 0 && strstr(err, want) != NULL, "%s", name)) {
		unit_diag("rc %d, err \"%s\", expected an error containing \"%s\"", rc, err, want);
	}
	if (rc == 0)
		msgquery_release(&q);
}

static void
test_limits(void)
{
	char err[256], tiny[8];
	struct msgquery q;
	char *s, *pad;
	int rc;

	/* 31 values pass, 32 do not. */
	s = repeat("", "subject=\"x\"", " OR ", 31, "");
	expect(s, NULL, "31 values accepted");
	free(s);
	s = repeat("", "subject=\"x\"", " OR ", 32, "");
	expect(s, "too many values at position 474: at most 31", "32 values refused");
	free(s);

	/* 32 nested parentheses pass, 33 do not; the same for NOT. */
	{
		char deep[256];
		int i, n = 0;

		for (i = 0; i < 32; i++)
			deep[n++] = '(';
		n += sprintf(deep + n, "status=\"open\"");
		for (i = 0; i < 32; i++)
			deep[n++] = ')';
		deep[n] = '\0';
		expect(deep, NULL, "32 nested '(' accepted");
		memmove(deep + 1, deep, (size_t)n + 1);
		deep[0] = '(';
		strcat(deep, ")");
		expect(deep, "nesting deeper than 32 at position 33", "33 nested '(' refused");
	}
	s = repeat("", "NOT", " ", 32, " status=\"open\"");
	expect(s, NULL, "32 NOTs accepted");
	free(s);
	s = repeat("", "not", " ", 33, " status=\"open\"");
	expect(s, "nesting deeper than 32 at position 129", "33 NOTs refused");
	free(s);

	/* 4096 bytes pass, 4097 do not. */
	pad = malloc(MSGQUERY_MAX_LEN + 2);
	if (pad != NULL) {
		size_t head = strlen("subject=\"");

		memcpy(pad, "subject=\"", head);
		memset(pad + head, 'a', MSGQUERY_MAX_LEN - head - 1);
		pad[MSGQUERY_MAX_LEN - 1] = '"';
		pad[MSGQUERY_MAX_LEN] = '\0';
		expect(pad, NULL, "a 4096-byte query accepted");
		memcpy(pad + MSGQUERY_MAX_LEN - 1, " \"", 3);
		expect(pad, "query longer than 4096 bytes", "a 4097-byte query refused");
		free(pad);
	}

	/* SQL past where[]'s size is refused, not truncated. */
	s = repeat("", "NOT to_email NOT LIKE \"\"", " OR ", 31, "");
	expect(s, "query too complex", "SQL longer than where[] refused");
	free(s);

	/* A small error buffer gets a truncated message; errlen 0 writes nothing. */
	rc = msgquery_parse("foo=\"x\"", &q, tiny, sizeof(tiny));
	CHECK(rc < 0 && strcmp(tiny, "unknown") == 0, "error truncated to errlen");
	rc = msgquery_parse("foo=\"x\"", &q, NULL, 0);
	CHECK(rc < 0, "errlen 0 accepted");

	/* release empties the query and may be called twice. */
	rc = msgquery_parse("status=\"open\"", &q, err, sizeof(err));
	if (rc == 0) {
		msgquery_release(&q);
		msgquery_release(&q);
	}
	CHECK(rc == 0 && q.owned == NULL && q.nparams == 0 && q.where[0] == '\0',
	      "msgquery_release() empties the query and is idempotent");
}

/* time_lo / time_hi: set only for a BETWEEN on last_event_time that bounds every match. */
static void
test_time_range(void)
{
	static const struct {
		const char *query;
		int lo, hi;
	} cases[] = {
	    {"last_event_time BETWEEN TIMESTAMP \"2026-01-01T00:00:00Z\" AND TIMESTAMP "
	     "\"2026-01-02T00:00:00Z\"",
	     1, 2},
	    {"status=\"open\" AND last_event_time BETWEEN TIMESTAMP \"2026-01-01T00:00:00Z\" "
	     "AND TIMESTAMP \"2026-01-02T00:00:00Z\"",
	     2, 3},
	    {"(status=\"open\" AND (last_event_time BETWEEN TIMESTAMP \"2026-01-01T00:00:00Z\" "
	     "AND TIMESTAMP \"2026-01-02T00:00:00Z\")) AND from_email=\"a@b.c\"",
	     2, 3},
	    {"(status=\"open\" OR status=\"click\") AND last_event_time BETWEEN TIMESTAMP "
	     "\"2026-01-01T00:00:00Z\" AND TIMESTAMP \"2026-01-02T00:00:00Z\"",
	     3, 4},
	    {"last_event_time BETWEEN TIMESTAMP \"2026-01-01T00:00:00Z\" AND TIMESTAMP "
	     "\"2026-01-02T00:00:00Z\" AND last_event_time BETWEEN TIMESTAMP "
	     "\"2026-01-01T06:00:00Z\" AND TIMESTAMP \"2026-01-01T07:00:00Z\"",
	     1, 2},
	    {"(last_event_time BETWEEN TIMESTAMP \"2026-01-01T00:00:00Z\" AND TIMESTAMP "
	     "\"2026-01-02T00:00:00Z\" OR status=\"open\") AND last_event_time BETWEEN "
	     "TIMESTAMP \"2026-01-01T06:00:00Z\" AND TIMESTAMP \"2026-01-01T07:00:00Z\"",
	     4, 5},
	    {"status=\"open\"", 0, 0},
	    {"last_event_time NOT BETWEEN TIMESTAMP \"2026-01-01T00:00:00Z\" AND TIMESTAMP "
	     "\"2026-01-02T00:00:00Z\"",
	     0, 0},
	    {"NOT last_event_time BETWEEN TIMESTAMP \"2026-01-01T00:00:00Z\" AND TIMESTAMP "
	     "\"2026-01-02T00:00:00Z\"",
	     0, 0},
	    {"NOT (status=\"open\" AND last_event_time BETWEEN TIMESTAMP "
	     "\"2026-01-01T00:00:00Z\" AND TIMESTAMP \"2026-01-02T00:00:00Z\")",
	     0, 0},
	    {"status=\"open\" OR last_event_time BETWEEN TIMESTAMP \"2026-01-01T00:00:00Z\" "
	     "AND TIMESTAMP \"2026-01-02T00:00:00Z\"",
	     0, 0},
	    {"last_event_time BETWEEN TIMESTAMP \"2026-01-01T00:00:00Z\" AND TIMESTAMP "
	     "\"2026-01-02T00:00:00Z\" OR status=\"open\"",
	     0, 0},
	    {"status=\"open\" OR status=\"click\" AND last_event_time BETWEEN TIMESTAMP "
	     "\"2026-01-01T00:00:00Z\" AND TIMESTAMP \"2026-01-02T00:00:00Z\"",
	     0, 0},
	};
	char err[256];
	struct msgquery q;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = msgquery_parse(cases[i].query, &q, err, sizeof(err));

		if (!CHECK(rc == 0 && q.time_lo == cases[i].lo && q.time_hi == cases[i].hi,
			   "time range of query %zu is $%d..$%d", i + 1, cases[i].lo, cases[i].hi))
			unit_diag("rc %d (%s), got $%d..$%d for %s", rc, rc == 0 ? "" : err,
				  rc == 0 ? q.time_lo : -1, rc == 0 ? q.time_hi : -1,
				  cases[i].query);
		if (rc == 0)
			msgquery_release(&q);
	}
}

int
main(void)
{
	const char *root = fixture_root();
	char dir[4096];
	int nvalid, ninvalid;

	fixture_fmt(dir, sizeof(dir), "%s/msgquery", root);
	nvalid = fixture_run_suite(dir, "valid", run_valid, unit_diag_text);
	ninvalid = fixture_run_suite(dir, "invalid", run_invalid, unit_diag_text);
	if (!CHECK(nvalid >= 25 && ninvalid >= 25, "at least 25 valid and 25 invalid fixtures"))
		unit_diag(FIXTURE_NO_CASES_HINT, nvalid, ninvalid);
	test_limits();
	test_time_range();
	return unit_done();
}
