/*
 * fuzz_msgquery: the `query` parameter of GET /v3/messages.  Each input is parsed twice:
 * as the query text itself by msgquery_parse() (a NUL ends it, as it would the C string the
 * handler has), and as the whole URL query string the way fcgi/query_messages.c reads it,
 * qparams_parse() then msgquery_parse() of its `query` value.
 *
 * Checked besides memory safety and leaks: a refused query string leaves nothing to free
 * (the handlers answer 400 without releasing it); a refused query leaves nothing in q and
 * an error in printable ASCII naming a position (the handler quotes it in its JSON answer);
 * an accepted one gives a WHERE clause under 2048 bytes made only of the parser's own
 * fragments (no quote, semicolon, comment or other character a value could have brought
 * in), placeholders $1..$n each once and in order, and n values that lie in q->owned and
 * are valid UTF-8 (PostgreSQL refuses anything else).
 */
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "msgquery.h"
#include "qparams.h"

/* Every character the fixed SQL fragments of msgquery.c use. */
static const char sql_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				"0123456789_ $():,@<>=[].";

/* 1 when s is valid UTF-8, as jansson (another implementation than the parser's) sees it. */
static int
utf8_valid(const char *s)
{
	json_t *j = json_string(s);
	int ok = j != NULL;

	json_decref(j);
	return ok;
}

static void
check_accepted(const struct msgquery *q, size_t len)
{
	const char *w = q->where;
	int next = 1;

	FUZZ_CHECK(strlen(w) < sizeof(q->where), "where is not terminated");
	FUZZ_CHECK(strspn(w, sql_chars) == strlen(w), "where holds '%c': %s",
		   w[strspn(w, sql_chars)], w);
	FUZZ_CHECK(q->nparams >= 1 && q->nparams <= MSGQUERY_MAX_PARAMS, "%d values", q->nparams);
	while ((w = strchr(w, '$')) != NULL) {
		char *end;
		long n = strtol(w + 1, &end, 10);

		FUZZ_CHECK(n == next, "placeholder $%ld where $%d was due: %s", n, next, q->where);
		next++;
		w = end;
	}
	FUZZ_CHECK(next - 1 == q->nparams, "%d placeholders for %d values", next - 1, q->nparams);
	for (int i = 0; i < q->nparams; i++) {
		const char *v = q->params[i];

		FUZZ_CHECK(v >= q->owned && v <= q->owned + len &&
			       strlen(v) <= len - (size_t)(v - q->owned),
			   "value %d is not inside owned", i + 1);
		FUZZ_CHECK(utf8_valid(v), "value %d is not UTF-8", i + 1);
	}
}

/* msgquery_parse() of text, with every check above. */
static void
parse_query(const char *text)
{
	char err[256] = "";
	struct msgquery q;

	if (msgquery_parse(text, &q, err, sizeof(err)) < 0) {
		FUZZ_CHECK(strstr(err, " at position ") != NULL, "error without a position: %s",
			   err);
		for (const char *c = err; *c; c++)
			FUZZ_CHECK(*c >= 0x20 && *c < 0x7f, "error not printable ASCII: %s", err);
		FUZZ_CHECK(q.owned == NULL && q.nparams == 0 && q.where[0] == '\0',
			   "a refused query left something in q");
	} else {
		check_accepted(&q, strlen(text));
	}
	msgquery_release(&q);
	msgquery_release(&q); /* documented as harmless */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), err[256] = "";
	struct qparams qp;
	const char *query;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	/* the query language itself */
	parse_query(text);
	/* the same bytes as the whole query string, the way GET /v3/messages reads it: a
	 * refused one is answered 400 with nothing released */
	if (qparams_parse(text, &qp, err, sizeof(err)) == 0) {
		if ((query = qparams_get(&qp, "query")) != NULL)
			parse_query(query);
		qparams_release(&qp);
	} else {
		FUZZ_CHECK(err[0] != '\0', "query string refused without a reason");
	}
	free(text);
	return 0;
}
