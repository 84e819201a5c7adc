/*
 * test_mailreq: mailreq_validate() driven by fixture folders, plus generated bodies too big
 * or too exact for a fixture:
 *
 *   $MAILPIPE_FIXTURES/mailreq/valid/<case>/body.json        a body SendGrid would accept
 *   $MAILPIPE_FIXTURES/mailreq/valid/<case>/expected.json    optional: {"personalizations": N,
 *                                                             "recipients": N, "sandbox": 0|1}
 *   $MAILPIPE_FIXTURES/mailreq/invalid/<case>/body.json      a body it must refuse
 *   $MAILPIPE_FIXTURES/mailreq/invalid/<case>/errors.json    [{"field": "..." | null,
 *                                                             "message_contains": "..."}, ...]
 *
 * An invalid case passes when every expected error is reported (same field, message
 * containing the text; order does not matter) and no error names a field the case does not
 * expect.  "now" is NOW below for every case, so send_at fixtures are absolute.  Every error
 * entry must have SendGrid's shape: a non-empty message, a string or null field, help null.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fixture.h"
#include "mailreq.h"
#include "unit.h"

#define NOW 1700000000L

static json_t *
load_body(const char *path, char *why, size_t whylen)
{
	json_error_t jerr;
	json_t *v = json_load_file(path, JSON_DECODE_ANY, &jerr);

	if (v == NULL)
		fixture_fmt(why, whylen, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
	return v;
}

/* 0 when every entry of errors has SendGrid's shape, else -1 with why set. */
static int
check_shape(json_t *errors, char *why, size_t whylen)
{
	size_t i;
	json_t *e;

	if (!json_is_array(errors)) {
		fixture_fmt(why, whylen, "mailreq_validate() did not return an array");
		return -1;
	}
	json_array_foreach(errors, i, e)
	{
		json_t *msg = json_object_get(e, "message"), *field = json_object_get(e, "field");

		if (json_object_size(e) != 3 || !json_is_string(msg) ||
		    json_string_length(msg) == 0 ||
		    !(json_is_string(field) || json_is_null(field)) ||
		    !json_is_null(json_object_get(e, "help"))) {
			char *s = json_dumps(e, JSON_COMPACT);

			fixture_fmt(why, whylen, "error %zu has not SendGrid's shape: %s", i,
				    s ? s : "?");
			free(s);
			return -1;
		}
	}
	return 0;
}

static void
diag_errors(json_t *errors)
{
	char *s = json_dumps(errors, JSON_INDENT(2));

	unit_diag("reported: %s", s ? s : "?");
	free(s);
}

static int
same_field(json_t *a, json_t *b)
{
	if (json_is_null(a) || json_is_null(b))
		return json_is_null(a) && json_is_null(b);
	return json_is_string(a) && json_is_string(b) && json_equal(a, b);
}

static void
run_valid(const char *dir, const char *name)
{
	char path[4096], why[4096] = "";
	json_t *body = NULL, *want = NULL, *errors = NULL;
	struct mailreq_info info;
	json_int_t np, nr, sb;
	json_error_t jerr;
	int ok = 0;

	fixture_fmt(path, sizeof(path), "%s/%s/body.json", dir, name);
	if ((body = load_body(path, why, sizeof(why))) == NULL)
		goto out;
	if ((errors = mailreq_validate(body, NOW, &info)) == NULL) {
		fixture_fmt(why, sizeof(why), "mailreq_validate() returned NULL");
		goto out;
	}
	if (check_shape(errors, why, sizeof(why)) < 0)
		goto out;
	if (json_array_size(errors) != 0) {
		fixture_fmt(why, sizeof(why), "refused with %zu errors", json_array_size(errors));
		diag_errors(errors);
		goto out;
	}
	fixture_fmt(path, sizeof(path), "%s/%s/expected.json", dir, name);
	if ((want = json_load_file(path, 0, &jerr)) == NULL) {
		ok = errno == ENOENT || strstr(jerr.text, "No such file") != NULL;
		if (!ok)
			fixture_fmt(why, sizeof(why), "%s: %s", path, jerr.text);
		goto out;
	}
	if (json_unpack_ex(want, &jerr, JSON_STRICT, "{s:I, s:I, s:I}", "personalizations", &np,
			   "recipients", &nr, "sandbox", &sb) < 0) {
		fixture_fmt(why, sizeof(why), "%s: %s", path, jerr.text);
		goto out;
	}
	ok = 1;
	if (info.personalizations != (size_t)np || info.recipients != (size_t)nr ||
	    info.sandbox != (int)sb) {
		unit_diag("info: got %zu personalizations, %zu recipients, sandbox %d; expected "
			  "%lld, %lld, %lld",
			  info.personalizations, info.recipients, info.sandbox, (long long)np,
			  (long long)nr, (long long)sb);
		ok = 0;
	}
out:
	if (!CHECK(ok, "valid/%s", name) && why[0])
		unit_diag("%s", why);
	json_decref(body);
	json_decref(want);
	json_decref(errors);
}

/* 1 when errors holds an entry for field whose message contains text. */
static int
has_error(json_t *errors, json_t *field, const char *text)
{
	size_t i;
	json_t *e;

	json_array_foreach(errors, i, e)
	{
		if (same_field(json_object_get(e, "field"), field) &&
		    strstr(json_string_value(json_object_get(e, "message")), text) != NULL)
			return 1;
	}
	return 0;
}

static void
run_invalid(const char *dir, const char *name)
{
	char path[4096], why[4096] = "";
	json_t *body = NULL, *want = NULL, *errors = NULL, *w, *e;
	size_t i, j;
	int ok = 0;

	fixture_fmt(path, sizeof(path), "%s/%s/errors.json", dir, name);
	if ((want = fixture_load_json(path, why, sizeof(why))) == NULL)
		goto out;
	if (!json_is_array(want) || json_array_size(want) == 0) {
		fixture_fmt(why, sizeof(why), "%s: expected a non-empty array", path);
		goto out;
	}
	json_array_foreach(want, i, w)
	{
		json_t *f = json_object_get(w, "field"),
		       *m = json_object_get(w, "message_contains");

		if (json_object_size(w) != 2 || !(json_is_string(f) || json_is_null(f)) ||
		    !json_is_string(m) || json_string_length(m) == 0) {
			fixture_fmt(why, sizeof(why),
				    "%s: entry %zu: expected {\"field\": string|null, "
				    "\"message_contains\": non-empty string}",
				    path, i);
			goto out;
		}
	}
	fixture_fmt(path, sizeof(path), "%s/%s/body.json", dir, name);
	if ((body = load_body(path, why, sizeof(why))) == NULL)
		goto out;
	if ((errors = mailreq_validate(body, NOW, NULL)) == NULL) {
		fixture_fmt(why, sizeof(why), "mailreq_validate() returned NULL");
		goto out;
	}
	if (check_shape(errors, why, sizeof(why)) < 0)
		goto out;
	ok = 1;
	json_array_foreach(want, i, w)
	{
		json_t *f = json_object_get(w, "field");
		const char *m = json_string_value(json_object_get(w, "message_contains"));

		if (!has_error(errors, f, m)) {
			unit_diag("missing: field %s, message containing \"%s\"",
				  json_is_null(f) ? "null" : json_string_value(f), m);
			ok = 0;
		}
	}
	json_array_foreach(errors, i, e)
	{
		json_t *f = json_object_get(e, "field");
		int expected = 0;

		json_array_foreach(want, j, w) expected |=
		    same_field(f, json_object_get(w, "field"));
		if (!expected) {
			unit_diag("unexpected: field %s: \"%s\"",
				  json_is_null(f) ? "null" : json_string_value(f),
				  json_string_value(json_object_get(e, "message")));
			ok = 0;
		}
	}
	if (!ok)
		diag_errors(errors);
out:
	if (!CHECK(ok, "invalid/%s", name) && why[0])
		unit_diag("%s", why);
	json_decref(body);
	json_decref(want);
	json_decref(errors);
}

/* A valid body: n personalizations of per recipients each (to only). */
static json_t *
make_body(size_t n, size_t per)
{
	json_t *body = json_pack("{s:[], s:{s:s}, s:s, s:[{s:s, s:s}]}", "personalizations", "from",
				 "email", "sender@example.com", "subject", "Hi", "content", "type",
				 "text/plain", "value", "Hello");
	json_t *list = json_object_get(body, "personalizations");

	for (size_t i = 0; i < n; i++) {
		json_t *to = json_array();

		for (size_t k = 0; k < per; k++) {
			char email[64];

			snprintf(email, sizeof(email), "user%zu.%zu@example.com", i, k);
			json_array_append_new(to, json_pack("{s:s}", "email", email));
		}
		json_array_append_new(list, json_pack("{s:o}", "to", to));
	}
	return body;
}

/*
 * Validates body (takes it) and records one test point, name: exactly nerrors errors and,
 * when field is set, one naming it with text in its message.
 */
static void
expect(json_t *body, size_t nerrors, const char *field, const char *text, struct mailreq_info *info,
       const char *name)
{
	json_t *errors = mailreq_validate(body, NOW, info), *f = NULL;
	char why[256] = "";
	int ok = errors != NULL && check_shape(errors, why, sizeof(why)) == 0 &&
		 json_array_size(errors) == nerrors;

	if (ok && field != NULL) {
		f = json_string(field);
		ok = has_error(errors, f, text);
		json_decref(f);
	}
	if (!CHECK(ok, "%s", name)) {
		if (why[0])
			unit_diag("%s", why);
		if (errors != NULL)
			diag_errors(errors);
	}
	json_decref(errors);
	json_decref(body);
}

static void
test_generated(void)
{
	struct mailreq_info info;
	json_t *body, *errors, *last, *to;
	char big[10001];
	size_t i;

	expect(make_body(1, 1000), 0, NULL, NULL, &info, "1000 recipients in one personalization");
	CHECK(info.personalizations == 1 && info.recipients == 1000 && info.sandbox == 0,
	      "info counts 1 personalization, 1000 recipients");
	expect(make_body(1000, 1), 0, NULL, NULL, &info, "1000 personalizations of 1 recipient");
	CHECK(info.personalizations == 1000 && info.recipients == 1000,
	      "info counts 1000 personalizations, 1000 recipients");
	expect(make_body(1, 1001), 1, "personalizations",
	       "There is a limit of 1000 total recipients (to + cc + bcc) per request.", &info,
	       "1001 recipients refused");
	CHECK(info.recipients == 1001, "info counts the 1001 recipients of a refused body");
	expect(make_body(1001, 1), 2, "personalizations",
	       "The personalization block is limited to 1000 personalizations per API request. "
	       "You have provided 1001 personalizations.",
	       NULL, "1001 personalizations refused (and their 1001 recipients)");

	/* custom_args: compact JSON {"k":"..."} is 8 bytes plus the value. */
	memset(big, 'x', sizeof(big) - 1);
	big[9999 - 8] = '\0';
	body = make_body(1, 1);
	json_object_set_new(body, "custom_args", json_pack("{s:s}", "k", big));
	expect(body, 0, NULL, NULL, NULL, "custom_args of 9,999 bytes accepted");
	big[9999 - 8] = 'x';
	big[10000 - 8] = '\0';
	body = make_body(1, 1);
	json_object_set_new(body, "custom_args", json_pack("{s:s}", "k", big));
	expect(body, 1, "custom_args", "may not exceed 10,000 bytes", NULL,
	       "custom_args of 10,000 bytes refused");

	/* Too many problems: the list stops at MAILREQ_MAX_ERRORS plus one entry saying so. */
	body = make_body(1, 3000);
	to = json_object_get(json_array_get(json_object_get(body, "personalizations"), 0), "to");
	json_array_foreach(to, i, last) json_object_set_new(last, "email", json_string("bad"));
	errors = mailreq_validate(body, NOW, &info);
	last = json_array_get(errors, json_array_size(errors) - 1);
	CHECK(json_array_size(errors) == MAILREQ_MAX_ERRORS + 1 &&
		  json_is_null(json_object_get(last, "field")) &&
		  strstr(json_string_value(json_object_get(last, "message")), "only the first") !=
		      NULL,
	      "3000 bad recipients: %d errors listed, then one saying so", MAILREQ_MAX_ERRORS);
	CHECK(info.recipients == 3000, "info counts every recipient past the error cap");
	json_decref(errors);
	json_decref(body);

	/* NULL body; info NULL. */
	expect(NULL, 1, NULL, NULL, NULL, "NULL body refused");
}

/* Address syntax, one recipient at a time. */
static void
test_addresses(void)
{
	static const char *const good[] = {
	    "a@example.com",      "first.last@example.com",       "x+tag@sub.example.co.uk",
	    "o'brien@example.ie", "a_b-c@ex-ample.com",           "user@xn--bcher-kva.example",
	    "用户@例子.广告",     "a!#$%&*/=?^`{|}~@example.com",
	};
	static const char *const bad[] = {
	    "",
	    "plain",
	    "@example.com",
	    "a@",
	    "a@.com",
	    "a@example.",
	    "a@example..com",
	    ".a@example.com",
	    "a.@example.com",
	    "a..b@example.com",
	    "a b@example.com",
	    "a@exa mple.com",
	    "a@-example.com",
	    "a@example-.com",
	    "a@localhost",
	    "a@@example.com",
	    "a@b@example.com",
	    "<a@example.com>",
	    "a@example.com>",
	    "\"a\"@example.com",
	    "a,b@example.com",
	    "a;b@example.com",
	    "a@example.com\r\n",
	    "a@ex_ample.com",
	    "a\tb@example.com",
	    "a@[127.0.0.1]",
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		json_t *body = make_body(1, 0);

		json_array_append_new(
		    json_object_get(json_array_get(json_object_get(body, "personalizations"), 0),
				    "to"),
		    json_pack("{s:s}", "email", good[i]));
		expect(body, 0, NULL, NULL, NULL, good[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *body = make_body(1, 0);
		char name[128];

		json_array_append_new(
		    json_object_get(json_array_get(json_object_get(body, "personalizations"), 0),
				    "to"),
		    json_pack("{s:s}", "email", bad[i]));
		fixture_fmt(name, sizeof(name), "refused: \"%s\"", bad[i]);
		expect(body, 1, "personalizations.0.to.0.email",
		       bad[i][0] ? "valid address" : "Each to", NULL, name);
	}
}

/* User text quoted in messages is clipped on a character boundary: entries stay UTF-8. */
static void
test_quotes(void)
{
	char *s = malloc(3 * 400 + 1), key[300];
	json_t *body = make_body(1, 1);
	json_t *errors, *f;

	for (int i = 0; i < 400; i++)
		memcpy(s + 3 * i, "\xe2\x82\xac", 3); /* U+20AC, 3 bytes */
	s[3 * 400] = '\0';
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	json_object_set_new(body, "attachments",
			    json_pack("[{s:s, s:s, s:s}]", "content", "YQ==", "filename", "a.txt",
				      "disposition", s));
	json_object_set_new(body, "custom_args", json_pack("{s:i}", key, 1));
	errors = mailreq_validate(body, NOW, NULL);
	CHECK(json_array_size(errors) == 2, "long quoted values: both errors kept");
	f = json_string("attachments.0.disposition");
	CHECK(has_error(errors, f, "You provided \"\xe2\x82\xac") && has_error(errors, f, "..."),
	      "long disposition quoted, clipped");
	json_decref(f);
	f = json_object_get(json_array_get(errors, 0), "field");
	if (strncmp(json_string_value(f) ? json_string_value(f) : "", "custom_args", 11) != 0)
		f = json_object_get(json_array_get(errors, 1), "field");
	CHECK(json_array_size(errors) == 2 && json_is_string(f) &&
		  strncmp(json_string_value(f), "custom_args.kkk", 15) == 0 &&
		  strstr(json_string_value(f), "k...") != NULL && json_string_length(f) < 200,
	      "long custom_args key: error kept, its field clipped");
	json_decref(errors);
	json_decref(body);
	free(s);
}

int
main(void)
{
	const char *root = fixture_root();
	int nvalid, ninvalid;

	nvalid = fixture_run_suite(root, "mailreq/valid", run_valid, unit_diag_text);
	ninvalid = fixture_run_suite(root, "mailreq/invalid", run_invalid, unit_diag_text);
	if (!CHECK(nvalid >= 20 && ninvalid >= 40, "fixture folders found under %s/mailreq", root))
		unit_diag(FIXTURE_NO_CASES_HINT, nvalid, ninvalid);
	test_generated();
	test_addresses();
	test_quotes();
	return unit_done();
}
