/*
 * test_event: event_check() driven by fixture folders (Jansson's test/suites layout), so a
 * new case is one new folder and no code:
 *
 *   $MAILPIPE_FIXTURES/valid/<case>/event.json     one event as SendGrid sends it
 *   $MAILPIPE_FIXTURES/valid/<case>/expected.json  {"sg_event_id": "...", "event": "...",
 *                                                   "time_us": <int>, "key": "..."}
 *   $MAILPIPE_FIXTURES/invalid/<case>/event.json   an event event_check() must refuse
 *   $MAILPIPE_FIXTURES/invalid/<case>/error.txt    text the error message must contain
 *   $MAILPIPE_FIXTURES/invalid/<case>/field.txt    optional: the field reported at fault;
 *                                                   an empty file means none (NULL)
 *
 * MAILPIPE_FIXTURES defaults to tests/fixtures (run from the repository root).  event.json
 * is read like a webhook body element: any JSON value, \u0000 allowed.  Text files have
 * trailing white space trimmed.  One TAP point per case, named after its folder.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "event.h"
#include "fixture.h"
#include "unit.h"

static json_t *
load_event(const char *path, char *why, size_t whylen)
{
	size_t len;
	char *text = fixture_slurp(path, &len, 1);
	json_error_t jerr;
	json_t *v;

	if (text == NULL) {
		fixture_fmt(why, whylen, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (v == NULL)
		fixture_fmt(why, whylen, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
	free(text);
	return v;
}

static void
run_valid(const char *dir, const char *name)
{
	char path[4096], why[512] = "", err[256] = "";
	json_t *ev = NULL, *want = NULL;
	json_error_t jerr;
	struct event_info info;
	const char *field = NULL, *wid, *wev, *wkey;
	json_int_t wtime;
	int ok = 0;

	fixture_fmt(path, sizeof(path), "%s/%s/event.json", dir, name);
	if ((ev = load_event(path, why, sizeof(why))) == NULL)
		goto out;
	fixture_fmt(path, sizeof(path), "%s/%s/expected.json", dir, name);
	if ((want = fixture_load_json(path, why, sizeof(why))) == NULL)
		goto out;
	if (json_unpack_ex(want, &jerr, JSON_STRICT, "{s:s, s:s, s:I, s:s}", "sg_event_id", &wid,
			   "event", &wev, "time_us", &wtime, "key", &wkey) < 0) {
		fixture_fmt(why, sizeof(why), "%s: %s", path, jerr.text);
		goto out;
	}
	if (event_check(ev, &info, err, sizeof(err), &field) < 0) {
		fixture_fmt(why, sizeof(why), "refused: \"%s\" (field '%s')", err,
			    field ? field : "(null)");
		goto out;
	}
	ok = 1;
	if (info.sg_event_id == NULL || strcmp(info.sg_event_id, wid) != 0) {
		unit_diag("sg_event_id: got \"%s\", expected \"%s\"",
			  info.sg_event_id ? info.sg_event_id : "(null)", wid);
		ok = 0;
	}
	if (info.event == NULL || strcmp(info.event, wev) != 0) {
		unit_diag("event: got \"%s\", expected \"%s\"", info.event ? info.event : "(null)",
			  wev);
		ok = 0;
	}
	if (info.time_us != (int64_t)wtime) {
		unit_diag("time_us: got %lld, expected %lld", (long long)info.time_us,
			  (long long)wtime);
		ok = 0;
	}
	if (info.key == NULL || info.key_len != strlen(wkey) ||
	    memcmp(info.key, wkey, info.key_len) != 0) {
		unit_diag("key: got \"%.*s\" (%zu bytes), expected \"%s\"",
			  info.key ? (int)info.key_len : 6, info.key ? info.key : "(null)",
			  info.key_len, wkey);
		ok = 0;
	}
out:
	if (!CHECK(ok, "valid/%s", name) && why[0])
		unit_diag("%s", why);
	json_decref(ev);
	json_decref(want);
}

static void
run_invalid(const char *dir, const char *name)
{
	char path[4096], why[512] = "", err[256] = "";
	char *want_err = NULL, *want_field = NULL;
	json_t *ev = NULL;
	struct event_info info;
	const char *field = "(not set)";
	int ok = 0;

	if (fixture_read_invalid(dir, name, &want_err, &want_field, why, sizeof(why)) < 0)
		goto out;
	fixture_fmt(path, sizeof(path), "%s/%s/event.json", dir, name);
	if ((ev = load_event(path, why, sizeof(why))) == NULL)
		goto out;
	if (event_check(ev, &info, err, sizeof(err), &field) == 0) {
		fixture_fmt(why, sizeof(why), "accepted (time_us %lld, key \"%.*s\")",
			    (long long)info.time_us, (int)info.key_len, info.key ? info.key : "");
		goto out;
	}
	ok = 1;
	if (strstr(err, want_err) == NULL) {
		unit_diag("error \"%s\" does not contain \"%s\"", err, want_err);
		ok = 0;
	}
	if (want_field != NULL && want_field[0] == '\0' && field != NULL) {
		unit_diag("field: got '%s', expected none (NULL)", field);
		ok = 0;
	} else if (want_field != NULL && want_field[0] != '\0' &&
		   (field == NULL || strcmp(field, want_field) != 0)) {
		unit_diag("field: got '%s', expected '%s'", field ? field : "(null)", want_field);
		ok = 0;
	}
out:
	if (!CHECK(ok, "invalid/%s", name) && why[0])
		unit_diag("%s", why);
	json_decref(ev);
	free(want_err);
	free(want_field);
}

int
main(void)
{
	const char *root = fixture_root();
	int nvalid, ninvalid;

	nvalid = fixture_run_suite(root, "valid", run_valid, unit_diag_text);
	ninvalid = fixture_run_suite(root, "invalid", run_invalid, unit_diag_text);
	if (!CHECK(nvalid > 0 && ninvalid > 0, "fixture folders found under %s", root))
		unit_diag(FIXTURE_NO_CASES_HINT, nvalid, ninvalid);
	return unit_done();
}
