/*
 * test_batch: Event Webhook body parsing (lib/batch.c), driven by fixture folders:
 *
 *   $MAILPIPE_FIXTURES/batch/valid/<case>/body           the raw request body, byte for byte
 *   $MAILPIPE_FIXTURES/batch/valid/<case>/expected.json  {"raw": ["<exact bytes of element
 *                                                          0>", ...], "has_nul": [0, 1, ...]}
 *   $MAILPIPE_FIXTURES/batch/invalid/<case>/body
 *   $MAILPIPE_FIXTURES/batch/invalid/<case>/error.txt    text the error message must contain
 *   $MAILPIPE_FIXTURES/batch/invalid/<case>/field.txt    optional: the element index at fault;
 *                                                         absent or empty: the body as a whole
 *
 * MAILPIPE_FIXTURES defaults to tests/fixtures (run from the repository root).  Bodies are
 * handed over in buffers of exactly their size, so ASan catches a read past the end.  A few
 * bodies too big for a fixture (deep nesting, many events, 1 MiB) are generated here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "batch.h"
#include "event.h"
#include "fixture.h"
#include "unit.h"

/*
 * Checks the invariants every parsed item must keep: raw lies inside the body, parses on
 * its own to an object whose event_fields (event.h) equal those batch_event() decodes.  Returns 0
 * or -1 with a diagnostic printed.
 */
static int
check_items(const struct batch *b, const char *body, size_t len)
{
	for (size_t i = 0; i < b->n; i++) {
		const struct batch_item *it = &b->items[i];
		json_error_t jerr;
		json_t *again, *obj;
		int equal;

		if (it->raw < body || it->raw + it->raw_len > body + len || it->raw_len == 0) {
			unit_diag("item %zu: raw is not inside the body", i);
			return -1;
		}
		if ((obj = batch_event(b, i)) == NULL || !json_is_object(obj)) {
			unit_diag("item %zu: batch_event() gave no object", i);
			json_decref(obj);
			return -1;
		}
		if ((again = json_loadb(it->raw, it->raw_len, JSON_ALLOW_NUL, &jerr)) == NULL) {
			unit_diag("item %zu: raw does not parse on its own: %s", i, jerr.text);
			json_decref(obj);
			return -1;
		}
		equal = 1;
		for (const char *const *f = event_fields; *f; f++) {
			json_t *want = json_object_get(again, *f), *got = json_object_get(obj, *f);

			if (!(want == NULL ? got == NULL : got != NULL && json_equal(want, got)))
				equal = 0;
		}
		json_decref(again);
		json_decref(obj);
		if (!equal) {
			unit_diag("item %zu: obj's event_fields differ from what raw parses to", i);
			return -1;
		}
	}
	return 0;
}

static void
run_valid(const char *dir, const char *name)
{
	char path[4096], why[1024] = "", err[256] = "", field[32] = "";
	char *body = NULL;
	size_t len = 0;
	json_t *want = NULL, *raws, *nuls;
	json_error_t jerr;
	struct batch b;
	int ok = 0, parsed = 0;

	memset(&b, 0, sizeof(b));
	fixture_fmt(path, sizeof(path), "%s/%s/body", dir, name);
	if ((body = fixture_slurp(path, &len, 0)) == NULL) {
		fixture_fmt(why, sizeof(why), "cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	fixture_fmt(path, sizeof(path), "%s/%s/expected.json", dir, name);
	if ((want = fixture_load_json(path, why, sizeof(why))) == NULL)
		goto out;
	if (json_unpack_ex(want, &jerr, JSON_STRICT, "{s:o, s:o}", "raw", &raws, "has_nul", &nuls) <
		0 ||
	    !json_is_array(raws) || !json_is_array(nuls) ||
	    json_array_size(raws) != json_array_size(nuls)) {
		fixture_fmt(why, sizeof(why),
			    "%s: expected {\"raw\": [...], \"has_nul\": [...]} of equal size",
			    path);
		goto out;
	}
	if (batch_parse(&b, body, len, err, sizeof(err), field, sizeof(field)) < 0) {
		fixture_fmt(why, sizeof(why), "refused: \"%s\" (field \"%s\")", err, field);
		goto out;
	}
	parsed = 1;
	ok = 1;
	if (b.n != json_array_size(raws)) {
		unit_diag("got %zu events, expected %zu", b.n, json_array_size(raws));
		ok = 0;
		goto out;
	}
	for (size_t i = 0; i < b.n; i++) {
		const struct batch_item *it = &b.items[i];
		json_t *r = json_array_get(raws, i);
		const char *wraw = json_string_value(r);
		size_t wlen = json_string_length(r);
		json_int_t wnul = json_integer_value(json_array_get(nuls, i));

		if (wraw == NULL) {
			unit_diag("expected.json raw[%zu] is not a string", i);
			ok = 0;
			continue;
		}
		if (it->raw_len != wlen || memcmp(it->raw, wraw, wlen) != 0) {
			unit_diag("event %zu raw:\n  got      %.*s\n  expected %s", i,
				  (int)it->raw_len, it->raw, wraw);
			ok = 0;
		}
		if (it->has_nul != (int)wnul) {
			unit_diag("event %zu has_nul: got %d, expected %d", i, it->has_nul,
				  (int)wnul);
			ok = 0;
		}
	}
	if (check_items(&b, body, len) < 0)
		ok = 0;
out:
	if (!CHECK(ok, "valid/%s", name) && why[0])
		unit_diag("%s", why);
	if (parsed)
		batch_release(&b);
	json_decref(want);
	free(body);
}

static void
run_invalid(const char *dir, const char *name)
{
	char path[4096], why[1024] = "", err[256] = "", field[32] = "x";
	char *body = NULL, *want_err = NULL, *want_field = NULL;
	size_t len = 0;
	struct batch b;
	int ok = 0;

	memset(&b, 0, sizeof(b));
	if (fixture_read_invalid(dir, name, &want_err, &want_field, why, sizeof(why)) < 0)
		goto out;
	fixture_fmt(path, sizeof(path), "%s/%s/body", dir, name);
	if ((body = fixture_slurp(path, &len, 0)) == NULL) {
		fixture_fmt(why, sizeof(why), "cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	if (batch_parse(&b, body, len, err, sizeof(err), field, sizeof(field)) == 0) {
		fixture_fmt(why, sizeof(why), "accepted (%zu events)", b.n);
		batch_release(&b);
		goto out;
	}
	ok = 1;
	if (strstr(err, want_err) == NULL) {
		unit_diag("error \"%s\" does not contain \"%s\"", err, want_err);
		ok = 0;
	}
	if (strcmp(field, want_field ? want_field : "") != 0) {
		unit_diag("field: got \"%s\", expected \"%s\"", field,
			  want_field ? want_field : "");
		ok = 0;
	}
	/* the error goes into a JSON answer: it must be UTF-8 (make fuzz found one that was not) */
	json_t *text = json_string(err);
	if (text == NULL) {
		unit_diag("error \"%s\" is not valid UTF-8", err);
		ok = 0;
	}
	json_decref(text);
	if (b.root != NULL || b.items != NULL || b.n != 0) {
		unit_diag("a failed batch_parse() left the batch holding memory");
		ok = 0;
	}
out:
	if (!CHECK(ok, "invalid/%s", name) && why[0])
		unit_diag("%s", why);
	free(body);
	free(want_err);
	free(want_field);
}

/* Expects batch_parse() to refuse body with an error containing want. */
static void
refuse_generated(const char *body, size_t len, const char *want, const char *name)
{
	char err[256] = "", field[32] = "x";
	struct batch b;
	int rc = batch_parse(&b, body, len, err, sizeof(err), field, sizeof(field));

	if (!CHECK(rc < 0 && strstr(err, want) != NULL && field[0] == '\0', "%s", name))
		unit_diag("rc %d, err \"%s\", field \"%s\", expected err containing \"%s\"", rc,
			  err, field, want);
	if (rc == 0)
		batch_release(&b);
}

static char *
xmalloc(size_t n)
{
	char *p = malloc(n);

	if (p == NULL) {
		printf("not ok - out of memory\n");
		exit(1);
	}
	return p;
}

static void
test_generated(void)
{
	const size_t deep = 100000;
	char err[256] = "", field[32] = "";
	char *body;
	size_t len, i, n;
	struct batch b;
	int rc;

	/* 100000 '[': refused without exhausting the stack. */
	body = xmalloc(deep);
	memset(body, '[', deep);
	refuse_generated(body, deep, "not valid JSON", "100000 nested '[' refused");
	free(body);

	/* The same nesting, closed: well formed but too deep. */
	body = xmalloc(2 * deep);
	memset(body, '[', deep);
	memset(body + deep, ']', deep);
	refuse_generated(body, 2 * deep, "not valid JSON", "100000 nested '[' and ']' refused");
	free(body);

	/* 100000 '{"a":' deep objects inside one event. */
	{
		const char *open = "{\"a\":";
		size_t olen = strlen(open);

		len = 1 + deep * olen + 1 + deep + 1;
		body = xmalloc(len);
		body[0] = '[';
		for (i = 0; i < deep; i++)
			memcpy(body + 1 + i * olen, open, olen);
		body[1 + deep * olen] = '1';
		memset(body + 2 + deep * olen, '}', deep);
		body[len - 1] = ']';
		refuse_generated(body, len, "not valid JSON", "100000 nested objects refused");
		free(body);
	}

	/* Nesting well inside the parser's limit: one event spanning all of it. */
	{
		const size_t d = 500;

		len = 1 + 5 + d + 1 + d + 1 + 1;
		body = xmalloc(len);
		n = 0;
		body[n++] = '[';
		memcpy(body + n, "{\"a\":", 5);
		n += 5;
		memset(body + n, '[', d);
		n += d;
		body[n++] = '0';
		memset(body + n, ']', d);
		n += d;
		body[n++] = '}';
		body[n++] = ']';
		rc = batch_parse(&b, body, n, err, sizeof(err), field, sizeof(field));
		if (!CHECK(rc == 0 && b.n == 1 && b.items[0].raw == body + 1 &&
			       b.items[0].raw_len == n - 2,
			   "500 nested arrays inside one event: raw spans them all"))
			unit_diag("rc %d, err \"%s\"", rc, err);
		if (rc == 0)
			batch_release(&b);
		free(body);
	}

	/* A 1 MiB body of 5000-odd events (SendGrid posts up to 768 KB). */
	{
		const char *fmt_ev = "{\"email\":\"user%zu@example.com\",\"timestamp\":%zu,"
				     "\"event\":\"delivered\",\"sg_event_id\":\"ev-%zu\","
				     "\"reason\":\"[%zu]{\\\"x\\\"}\",\"pad\":\"%s\"}";
		char pad[121];
		size_t cap = (size_t)1 << 20, count = 0, bad = (size_t)-1;
		size_t *starts, *lens;

		memset(pad, 'p', sizeof(pad) - 1);
		pad[sizeof(pad) - 1] = '\0';
		body = xmalloc(cap + 512);
		starts = (size_t *)xmalloc(sizeof(size_t) * 10000);
		lens = (size_t *)xmalloc(sizeof(size_t) * 10000);
		n = 0;
		body[n++] = '[';
		while (n < cap - 400 && count < 10000) {
			if (count > 0)
				n += (size_t)sprintf(body + n, count % 3 ? ",\r\n" : ", ");
			starts[count] = n;
			lens[count] = (size_t)sprintf(body + n, fmt_ev, count, 1700000000 + count,
						      count, count, pad);
			n += lens[count];
			count++;
		}
		body[n++] = ']';
		rc = batch_parse(&b, body, n, err, sizeof(err), field, sizeof(field));
		if (rc == 0 && b.n == count) {
			for (i = 0; i < count && bad == (size_t)-1; i++)
				if (b.items[i].raw != body + starts[i] ||
				    b.items[i].raw_len != lens[i] || b.items[i].has_nul)
					bad = i;
		}
		if (!CHECK(rc == 0 && b.n == count && bad == (size_t)-1,
			   "%zu-byte body of %zu events: every raw exact", n, count))
			unit_diag("rc %d, err \"%s\", n %zu, first bad item %zu", rc, err,
				  rc == 0 ? b.n : 0, bad);
		if (rc == 0)
			batch_release(&b);
		free(starts);
		free(lens);
		free(body);
	}

	/* Only len bytes count: what follows them is not part of the body. */
	{
		static const char text[] = "[{\"a\":1}]garbage";

		body = xmalloc(sizeof(text));
		memcpy(body, text, sizeof(text));
		rc = batch_parse(&b, body, 9, err, sizeof(err), field, sizeof(field));
		if (!CHECK(rc == 0 && b.n == 1 && b.items[0].raw_len == 7,
			   "bytes after len are ignored"))
			unit_diag("rc %d, err \"%s\"", rc, err);
		if (rc == 0)
			batch_release(&b);
		free(body);
	}

	/* batch_release() leaves an empty batch that can be released again. */
	rc = batch_parse(&b, "[{}]", 4, err, sizeof(err), field, sizeof(field));
	if (rc == 0) {
		batch_release(&b);
		batch_release(&b);
	}
	CHECK(rc == 0 && b.root == NULL && b.items == NULL && b.n == 0,
	      "batch_release() empties the batch and is idempotent");
}

int
main(void)
{
	const char *root = fixture_root();
	char dir[4096];
	int nvalid, ninvalid;

	fixture_fmt(dir, sizeof(dir), "%s/batch", root);
	nvalid = fixture_run_suite(dir, "valid", run_valid, unit_diag_text);
	ninvalid = fixture_run_suite(dir, "invalid", run_invalid, unit_diag_text);
	if (!CHECK(nvalid > 0 && ninvalid > 0, "fixture folders found under %s", dir))
		unit_diag(FIXTURE_NO_CASES_HINT, nvalid, ninvalid);
	test_generated();
	return unit_done();
}
