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
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "event.h"
#include "unit.h"

/* snprintf that may truncate on purpose (a diagnostic or a path too long to exist). */
static __attribute__((format(printf, 3, 4))) void
fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;

	va_start(ap, f);
	vsnprintf(buf, len, f, ap);
	va_end(ap);
}

/* Reads a whole file; returns a new NUL-terminated buffer or NULL (errno set). */
static char *
slurp(const char *path, size_t *lenp)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL)
		return NULL;
	do {
		if (cap - len < 4096) {
			char *nb = realloc(buf, cap + 65536);

			if (nb == NULL) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
			cap += 65536;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0);
	if (ferror(f)) {
		free(buf);
		fclose(f);
		errno = EIO;
		return NULL;
	}
	fclose(f);
	buf[len] = '\0';
	if (lenp)
		*lenp = len;
	return buf;
}

/* Reads a small text file and trims trailing white space; NULL if absent. */
static char *
slurp_text(const char *path)
{
	size_t len = 0;
	char *s = slurp(path, &len);

	while (
	    s && len > 0 &&
	    (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' || s[len - 1] == '\t'))
		s[--len] = '\0';
	return s;
}

static int
is_case_dir(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* Lists the case folders of dir, sorted; returns the count or -1. */
static int
list_cases(const char *dir, struct dirent ***names)
{
	int n = scandir(dir, names, is_case_dir, alphasort), k = 0;

	if (n < 0)
		return -1;
	/* Keep directories only. */
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;

		fmt(path, sizeof(path), "%s/%s", dir, (*names)[i]->d_name);
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			(*names)[k++] = (*names)[i];
		else
			free((*names)[i]);
	}
	return k;
}

static json_t *
load_event(const char *path, char *why, size_t whylen)
{
	size_t len;
	char *text = slurp(path, &len);
	json_error_t jerr;
	json_t *v;

	if (text == NULL) {
		fmt(why, whylen, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (v == NULL)
		fmt(why, whylen, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
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

	fmt(path, sizeof(path), "%s/%s/event.json", dir, name);
	if ((ev = load_event(path, why, sizeof(why))) == NULL)
		goto out;
	fmt(path, sizeof(path), "%s/%s/expected.json", dir, name);
	if ((want = json_load_file(path, 0, &jerr)) == NULL) {
		fmt(why, sizeof(why), "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
		goto out;
	}
	if (json_unpack_ex(want, &jerr, JSON_STRICT, "{s:s, s:s, s:I, s:s}", "sg_event_id", &wid,
			   "event", &wev, "time_us", &wtime, "key", &wkey) < 0) {
		fmt(why, sizeof(why), "%s: %s", path, jerr.text);
		goto out;
	}
	if (event_check(ev, &info, err, sizeof(err), &field) < 0) {
		fmt(why, sizeof(why), "refused: \"%s\" (field '%s')", err,
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

	fmt(path, sizeof(path), "%s/%s/error.txt", dir, name);
	if ((want_err = slurp_text(path)) == NULL || want_err[0] == '\0') {
		fmt(why, sizeof(why), "%s: missing or empty", path);
		goto out;
	}
	fmt(path, sizeof(path), "%s/%s/field.txt", dir, name);
	want_field = slurp_text(path);
	fmt(path, sizeof(path), "%s/%s/event.json", dir, name);
	if ((ev = load_event(path, why, sizeof(why))) == NULL)
		goto out;
	if (event_check(ev, &info, err, sizeof(err), &field) == 0) {
		fmt(why, sizeof(why), "accepted (time_us %lld, key \"%.*s\")",
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

/* Runs every case folder of root/sub with fn; returns the number of cases. */
static int
run_suite(const char *root, const char *sub, void (*fn)(const char *, const char *))
{
	char dir[4096];
	struct dirent **names = NULL;
	int n;

	fmt(dir, sizeof(dir), "%s/%s", root, sub);
	if ((n = list_cases(dir, &names)) < 0) {
		unit_diag("cannot list %s: %s", dir, strerror(errno));
		return 0;
	}
	for (int i = 0; i < n; i++) {
		fn(dir, names[i]->d_name);
		free(names[i]);
	}
	free(names);
	return n;
}

int
main(void)
{
	const char *root = getenv("MAILPIPE_FIXTURES");
	int nvalid, ninvalid;

	if (root == NULL || *root == '\0')
		root = "tests/fixtures";
	nvalid = run_suite(root, "valid", run_valid);
	ninvalid = run_suite(root, "invalid", run_invalid);
	if (!CHECK(nvalid > 0 && ninvalid > 0, "fixture folders found under %s", root))
		unit_diag("%d valid and %d invalid cases: run from the repository root or set "
			  "MAILPIPE_FIXTURES",
			  nvalid, ninvalid);
	return unit_done();
}
