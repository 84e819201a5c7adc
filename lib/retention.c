/*
 * retention: partition names, month bounds and cut-offs; see retention.h.
 */
#include "retention.h"

#include <stdio.h>
#include <string.h>

static int
digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int
retention_parse_name(const char *name, int *year, int *month)
{
	int y, m;

	/* events_y + 4 digits + m + 2 digits, nothing after */
	if (strncmp(name, "events_y", 8) != 0 || strlen(name) != 15 || name[12] != 'm')
		return -1;
	if (digits(name + 8, 4, &y) < 0 || digits(name + 13, 2, &m) < 0)
		return -1;
	if (y < 1000 || m < 1 || m > 12)
		return -1;
	*year = y;
	*month = m;
	return 0;
}

void
retention_format_name(int year, int month, char *buf, size_t len)
{
	snprintf(buf, len, "events_y%04dm%02d", year, month);
}

static time_t
month_start(int year, int month)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = month - 1;
	tm.tm_mday = 1;
	return timegm(&tm);
}

int
retention_month_bounds(int year, int month, time_t *from, time_t *to)
{
	if (month < 1 || month > 12)
		return -1;
	*from = month_start(year, month);
	*to = month == 12 ? month_start(year + 1, 1) : month_start(year, month + 1);
	return 0;
}

time_t
retention_cutoff(time_t now, long days)
{
	if (days <= 0)
		return 0;
	return now - (time_t)days * 86400;
}

int
retention_expired(time_t to, time_t cutoff)
{
	return cutoff > 0 && to <= cutoff;
}

void
retention_format_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "?");
}

int
retention_parse_time(const char *s, time_t *out)
{
	struct tm tm;
	const char *rest;

	memset(&tm, 0, sizeof(tm));
	if (strlen(s) < 19 || (s[10] != 'T' && s[10] != ' '))
		return -1;
	rest = strptime(s, s[10] == 'T' ? "%Y-%m-%dT%H:%M:%S" : "%Y-%m-%d %H:%M:%S", &tm);
	if (rest == NULL)
		return -1;
	if (strcmp(rest, "Z") != 0 && strcmp(rest, "+00") != 0 && strcmp(rest, "+00:00") != 0)
		return -1;
	*out = timegm(&tm);
	return 0;
}

int
retention_bound_expr(int year, int month, char *buf, size_t len)
{
	time_t from, to;
	struct tm a, b;
	char fa[32], fb[32];
	int n;

	if (retention_month_bounds(year, month, &from, &to) < 0 || gmtime_r(&from, &a) == NULL ||
	    gmtime_r(&to, &b) == NULL ||
	    strftime(fa, sizeof(fa), "%Y-%m-%d %H:%M:%S+00", &a) == 0 ||
	    strftime(fb, sizeof(fb), "%Y-%m-%d %H:%M:%S+00", &b) == 0)
		return -1;
	n = snprintf(buf, len, "FOR VALUES FROM ('%s') TO ('%s')", fa, fb);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int
retention_default_name(time_t cutoff, char *buf, size_t len)
{
	struct tm tm;
	char t[32];
	int n;

	if (gmtime_r(&cutoff, &tm) == NULL || strftime(t, sizeof(t), "%Y%m%dT%H%M%SZ", &tm) == 0)
		return -1;
	n = snprintf(buf, len, "events_default_before_%s", t);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}
