/*
 * test_qparams: query string splitting and percent-decoding (lib/qparams.c).
 */
#include <stdio.h>
#include <string.h>

#include "qparams.h"
#include "unit.h"

static int
value_is(const struct qparams *qp, const char *name, const char *want)
{
	const char *got = qparams_get(qp, name);

	if (want == NULL)
		return got == NULL;
	return got != NULL && strcmp(got, want) == 0;
}

static void
parses(const char *qs, const char *name, const char *want, const char *label)
{
	struct qparams qp;
	char err[128];
	int ok = qparams_parse(qs, &qp, err, sizeof(err)) == 0 && value_is(&qp, name, want);

	if (!CHECK(ok, "%s", label))
		unit_diag("query '%s': %s", qs, err);
	qparams_release(&qp);
}

static void
refuses(const char *qs, const char *label)
{
	struct qparams qp;
	char err[128] = "";

	CHECK(qparams_parse(qs, &qp, err, sizeof(err)) < 0 && err[0] != '\0', "%s", label);
	/* the handlers answer 400 without releasing: nothing may be left (make fuzz found it) */
	CHECK(qp.owned == NULL && qp.n == 0, "%s: nothing left to release", label);
	qparams_release(&qp);
}

int
main(void)
{
	struct qparams qp;
	char err[128], many[4096] = "";

	parses("", "a", NULL, "empty query has no values");
	parses("a=1&b=2", "b", "2", "second pair");
	parses("a=x%20y+z", "a", "x y z", "percent escapes and '+' decode to spaces");
	parses("a=%41%62", "a", "Ab", "upper and lower case hex");
	parses("flag&a=1", "flag", "", "a name without '=' has an empty value");
	parses("&&a=1&", "a", "1", "empty pairs are skipped");
	parses("a=1=2", "a", "1=2", "only the first '=' separates");
	parses("n%61me=v", "name", "v", "names are decoded too");
	parses("start_date=2024-01-01", "end_date", NULL, "absent name is NULL");

	if (qparams_parse("categories=a&categories=b%2Cc", &qp, err, sizeof(err)) == 0) {
		CHECK(qp.n == 2 && strcmp(qp.p[0].value, "a") == 0 &&
			  strcmp(qp.p[1].value, "b,c") == 0,
		      "repeated names keep every value in order");
		CHECK(value_is(&qp, "categories", "a"), "qparams_get answers the first value");
	} else {
		CHECK(0, "repeated names parse: %s", err);
	}
	qparams_release(&qp);

	refuses("a=%zz", "bad hex escape refused");
	refuses("a=%4", "truncated escape refused");
	refuses("\" butjHc\\\\%\"", "escape cut by the end refused (fuzz_msgquery's leak)");
	refuses("a=x%00y", "decoded NUL refused");
	for (int i = 0; i < QPARAMS_MAX + 1; i++)
		strcat(many, "x=1&");
	refuses(many, "more than QPARAMS_MAX pairs refused");

	qparams_release(&qp);
	CHECK(qp.owned == NULL, "release twice is safe");

	/* qparams_decode, which suppress_decode shares for path segments */
	{
		char out[16];

		CHECK(qparams_decode("a+b%2B", 6, 1, out) == 0 && strcmp(out, "a b+") == 0,
		      "decode: '+' is a space in a query string");
		CHECK(qparams_decode("a+b%2B", 6, 0, out) == 0 && strcmp(out, "a+b+") == 0,
		      "decode: '+' stays in a path segment");
		CHECK(qparams_decode("ab%41cd", 5, 0, out) == 0 && strcmp(out, "abA") == 0,
		      "decode: only len bytes are read");
		CHECK(qparams_decode("a%4", 3, 0, out) < 0, "decode: escape cut by len refused");
	}
	return unit_done();
}
