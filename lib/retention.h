/*
 * retention: the pure date and name arithmetic of `mailpipectl retention` and `restore`:
 * which monthly partition of events (events_yYYYYmMM, UTC months) a name stands for, its
 * bounds, whether it lies wholly before the cut-off, and the names of the archive files.
 * No I/O, no database: the unit tests call these directly.
 */
#ifndef MAILPIPE_RETENTION_H
#define MAILPIPE_RETENTION_H

#include <stddef.h>
#include <time.h>

#define RETENTION_DAYS_MAX 36500L
/* "events_y2026m07" */
#define RETENTION_PART_NAME_LEN 16
/* "2026-07-01T00:00:00Z" */
#define RETENTION_TIME_LEN 21

/*
 * Parses a monthly partition name events_yYYYYmMM (year 1000 to 9999, month 01 to 12)
 * into *year and *month.  Returns 0, or -1 for any other name (events_default included).
 */
int retention_parse_name(const char *name, int *year, int *month)
    __attribute__((warn_unused_result));

/* Writes events_yYYYYmMM into buf (at least RETENTION_PART_NAME_LEN bytes). */
void retention_format_name(int year, int month, char *buf, size_t len);

/*
 * The bounds [*from, *to) of the UTC month year-month: midnight of its first day and of
 * the next month's first day.  Returns -1 for a month outside 1..12.
 */
int retention_month_bounds(int year, int month, time_t *from, time_t *to)
    __attribute__((warn_unused_result));

/* now minus days whole days (86400 s each); days 0 means "keep everything": returns 0. */
time_t retention_cutoff(time_t now, long days);

/* 1 when a partition whose upper bound is to holds only rows older than cutoff. */
int retention_expired(time_t to, time_t cutoff);

/* t as 2026-07-01T00:00:00Z into buf (at least RETENTION_TIME_LEN bytes). */
void retention_format_time(time_t t, char *buf, size_t len);

/*
 * Parses what retention_format_time() writes, and PostgreSQL's UTC forms
 * "2026-07-01 00:00:00+00" and "2026-07-01T00:00:00+00:00".  Returns -1 otherwise.
 */
int retention_parse_time(const char *s, time_t *out) __attribute__((warn_unused_result));

/*
 * The partition bound PostgreSQL prints for the month (pg_get_expr(relpartbound) with
 * TimeZone UTC), e.g. FOR VALUES FROM ('2026-07-01 00:00:00+00') TO ('2026-08-01 00:00:00+00').
 * Returns -1 for a bad month or a short buffer.
 */
int retention_bound_expr(int year, int month, char *buf, size_t len)
    __attribute__((warn_unused_result));

/*
 * The archive name of the default partition's rows older than cutoff:
 * events_default_before_20260701T000000Z.  Returns -1 for a short buffer.
 */
int retention_default_name(time_t cutoff, char *buf, size_t len)
    __attribute__((warn_unused_result));

#endif
