/*
 * log: one structured (logfmt) line per event on stderr.
 *
 *   ts=2026-11-22T15:00:00.123Z level=info prog=sink msg="batch written" ctx="topic=x"
 *
 * The only global state besides the shutdown flag: the program name, the level and the
 * format.  Each thread may set context fields (a request id, Kafka coordinates) that every
 * line it writes carries as more logfmt keys:
 *
 *   ... msg="record dead-lettered: ..." topic=sendgrid.events partition=0 offset=17
 *
 * A value is written bare when it is made of letters, digits and "._:/@+-" only, else
 * quoted with '"', '\\' and control bytes escaped.  The level may change at any time from
 * any thread (SIGHUP, SIGUSR1/2: see reload.h); it is an atomic.  log_warn() appends
 * strerror(errno); log_warnx() does not.  log_debug() does not evaluate its arguments
 * unless debug logging is on.
 */
#ifndef MAILPIPE_LOG_H
#define MAILPIPE_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

extern _Atomic int log_min_level;

void log_init(const char *prog);
/* Parses "debug", "info", "warn", "error"; returns -1 on anything else. */
int log_level_parse(const char *s, enum log_level *out);
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* "debug", "info", "warn" or "error". */
const char *log_level_name(enum log_level lvl);
/* Sets this thread's context to the single field ctx=... (copied; NULL or "" clears). */
void log_set_ctx(const char *ctx);
/*
 * Sets this thread's context fields: key, value, key, value, ..., NULL (copied; keys are
 * plain words; a NULL value skips its key).  log_set_ctx(NULL) clears.  Fields beyond
 * 320 bytes are dropped.
 */
void log_set_fields(const char *key, ...) __attribute__((sentinel));
/*
 * Writes value into buf (cap bytes, NUL-terminated) as a logfmt value, bare or quoted as
 * above; returns its length.  What the fields use; exposed for the unit tests.
 */
size_t log_format_value(char *buf, size_t cap, const char *value);

void log_msg(enum log_level lvl, int with_errno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_min_level <= LOG_DEBUG)                                                    \
			log_msg(LOG_DEBUG, 0, __VA_ARGS__);                                        \
	} while (0)
#define log_info(...) log_msg(LOG_INFO, 0, __VA_ARGS__)
#define log_warnx(...) log_msg(LOG_WARN, 0, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, 1, __VA_ARGS__)
#define log_errx(...) log_msg(LOG_ERROR, 0, __VA_ARGS__)
#define log_err(...) log_msg(LOG_ERROR, 1, __VA_ARGS__)

#endif
