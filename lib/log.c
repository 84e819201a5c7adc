/*
 * log: logfmt lines on stderr; see log.h.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

_Atomic int log_min_level = LOG_INFO;

static char log_prog[32] = "mailpipe";
/* this thread's context fields, ready to append: " key=value key=value" */
static _Thread_local char log_ctx[320];

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
	atomic_store(&log_min_level, (int)lvl);
}

enum log_level
log_get_level(void)
{
	return (enum log_level)atomic_load(&log_min_level);
}

const char *
log_level_name(enum log_level lvl)
{
	return lvl <= LOG_ERROR ? level_names[lvl] : "?";
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

/* A value logfmt readers take without quotes. */
static int
is_bare(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("._:/@+-", *s) != NULL))
			return 0;
	return 1;
}

size_t
log_format_value(char *buf, size_t cap, const char *value)
{
	size_t n;

	if (cap == 0)
		return 0;
	if (is_bare(value)) {
		n = strlen(value);
		if (n >= cap)
			n = cap - 1;
		memcpy(buf, value, n);
	} else {
		n = quote(buf, cap - 1, 0, value);
	}
	buf[n] = '\0';
	return n;
}

void
log_set_fields(const char *key, ...)
{
	char val[256];
	size_t n = 0;
	va_list ap;

	log_ctx[0] = '\0';
	va_start(ap, key);
	for (; key != NULL; key = va_arg(ap, const char *)) {
		const char *v = va_arg(ap, const char *);
		size_t klen = strlen(key), vlen;

		if (v == NULL)
			continue;
		vlen = log_format_value(val, sizeof(val), v);
		if (n + klen + vlen + 3 > sizeof(log_ctx))
			break;
		log_ctx[n++] = ' ';
		memcpy(log_ctx + n, key, klen);
		n += klen;
		log_ctx[n++] = '=';
		memcpy(log_ctx + n, val, vlen + 1);
		n += vlen;
	}
	va_end(ap);
}

void
log_set_ctx(const char *ctx)
{
	log_set_fields("ctx", ctx && *ctx ? ctx : NULL, NULL);
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

	if ((int)lvl < atomic_load(&log_min_level))
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
	if (log_ctx[0]) {
		size_t clen = strlen(log_ctx);

		/* whole fields or none: a cut value would not parse */
		if (n + clen + 1 < sizeof(line)) {
			memcpy(line + n, log_ctx, clen);
			n += clen;
		}
	}
	line[n++] = '\n';
	/* One write(2) per line so concurrent threads never interleave inside a line. */
	if (write(STDERR_FILENO, line, n) < 0)
		errno = saved_errno;
	errno = saved_errno;
}
