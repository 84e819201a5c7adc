/*
 * log: logfmt lines on stderr; see log.h.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum log_level log_min_level = LOG_INFO;

static char log_prog[32] = "mailpipe";
static _Thread_local char log_ctx[160];

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void
log_init(const char *prog)
{
	const char *slash = strrchr(prog, '/');

	snprintf(log_prog, sizeof(log_prog), "%s", slash ? slash + 1 : prog);
}

int
log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

void
log_set_level(enum log_level lvl)
{
	log_min_level = lvl;
}

void
log_set_ctx(const char *ctx)
{
	snprintf(log_ctx, sizeof(log_ctx), "%s", ctx ? ctx : "");
}

/* Appends s to buf as a logfmt quoted value, escaping '"', '\\' and control bytes. */
static size_t
quote(char *buf, size_t cap, size_t n, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	if (n < cap)
		buf[n++] = '"';
	for (; *s && n + 6 < cap; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			buf[n++] = '\\';
			buf[n++] = (char)c;
		} else if (c == '\n') {
			buf[n++] = '\\';
			buf[n++] = 'n';
		} else if (c < 0x20 || c == 0x7f) {
			buf[n++] = '\\';
			buf[n++] = 'x';
			buf[n++] = hex[c >> 4];
			buf[n++] = hex[c & 15];
		} else {
			buf[n++] = (char)c;
		}
	}
	if (n < cap)
		buf[n++] = '"';
	return n;
}

void
log_msg(enum log_level lvl, int with_errno, const char *fmt, ...)
{
	int saved_errno = errno;
	char msg[1024], line[2048];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	size_t n;

	if (lvl < log_min_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (with_errno) {
		size_t len = strlen(msg);
		snprintf(msg + len, sizeof(msg) - len, ": %s", strerror(saved_errno));
	}

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "ts=%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n,
			      ".%03dZ level=%s prog=%s pid=%d msg=", (int)(tv.tv_usec / 1000),
			      level_names[lvl], log_prog, (int)getpid());
	n = quote(line, sizeof(line) - 2, n, msg);
	if (log_ctx[0] && n + 8 < sizeof(line)) {
		memcpy(line + n, " ctx=", 5);
		n = quote(line, sizeof(line) - 2, n + 5, log_ctx);
	}
	line[n++] = '\n';
	/* One write(2) per line so concurrent threads never interleave inside a line. */
	if (write(STDERR_FILENO, line, n) < 0)
		errno = saved_errno;
	errno = saved_errno;
}
