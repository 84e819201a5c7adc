/*
 * unit: a tiny TAP (Test Anything Protocol) harness for mailpipe's C unit tests.
 *
 *   CHECK(cond, "name %d", i)   records one test point and prints `ok N - name` or
 *                               `not ok N - name` followed by `# file:line: cond` lines;
 *                               evaluates to cond's truth so a caller can add detail:
 *                               if (!CHECK(a == b, "sum")) unit_diag("got %d", a);
 *   unit_diag("fmt", ...)        prints a `# ` diagnostic line (multi-line text is split)
 *   unit_done()                 prints the plan `1..N` and returns the exit status:
 *                               0 if every point passed, 1 if any failed or none ran
 *
 * Output goes to stdout, line-buffered, so a crash loses nothing already reported.  Names
 * have '#' and newlines replaced: a '#' in a name would read as a TAP directive.
 */
#ifndef MAILPIPE_UNIT_H
#define MAILPIPE_UNIT_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define UNIT_UNUSED __attribute__((unused))

struct unit_state {
	int started;
	int count;
	int failed;
};

static UNIT_UNUSED struct unit_state unit_state;

static UNIT_UNUSED void
unit_start(void)
{
	if (unit_state.started)
		return;
	unit_state.started = 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
}

/* Prints text as `# ` lines, one per line of text. */
static UNIT_UNUSED void
unit_diag_text(const char *text)
{
	const char *p = text, *nl;

	unit_start();
	do {
		nl = strchr(p, '\n');
		printf("# %.*s\n", nl ? (int)(nl - p) : (int)strlen(p), p);
		p = nl ? nl + 1 : NULL;
	} while (p != NULL && *p != '\0');
}

static UNIT_UNUSED __attribute__((format(printf, 1, 2))) void
unit_diag(const char *fmt, ...)
{
	char buf[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	unit_diag_text(buf);
}

static UNIT_UNUSED __attribute__((format(printf, 5, 6))) int
unit_check(int ok, const char *file, int line, const char *expr, const char *fmt, ...)
{
	char name[512];
	va_list ap;

	unit_start();
	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	for (char *c = name; *c; c++)
		if (*c == '#' || *c == '\n' || *c == '\r')
			*c = ' ';
	unit_state.count++;
	printf("%sok %d - %s\n", ok ? "" : "not ", unit_state.count, name);
	if (!ok) {
		unit_state.failed++;
		unit_diag("failed at %s:%d: %s", file, line, expr);
	}
	return ok;
}

#define CHECK(cond, ...) unit_check(!!(cond), __FILE__, __LINE__, #cond, __VA_ARGS__)

static UNIT_UNUSED int
unit_done(void)
{
	unit_start();
	printf("1..%d\n", unit_state.count);
	if (unit_state.count == 0) {
		unit_diag("no test point ran");
		return 1;
	}
	if (unit_state.failed > 0) {
		unit_diag("%d of %d test points failed", unit_state.failed, unit_state.count);
		return 1;
	}
	return 0;
}

#endif
