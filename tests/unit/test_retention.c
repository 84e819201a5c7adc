/*
 * test_retention: the date and name arithmetic of `mailpipectl retention` and `restore`
 * (lib/retention.c): partition names, UTC month bounds across year ends and leap years,
 * which partitions a cut-off expires, the bound text PostgreSQL prints, archive names.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "retention.h"
#include "unit.h"

static void
test_names(void)
{
	static const char *const bad[] = {
	    "events_default",
	    "events_y2026m13",
	    "events_y2026m00",
	    "events_y2026m7",
	    "events_y26m07",
	    "events_y2026m07x",
	    "events_y2026-07",
	    "events_y0999m01",
	    "Events_y2026m07",
	    "events_yabcdm07",
	    "",
	};
	char buf[RETENTION_PART_NAME_LEN];
	int y = 0, m = 0;

	CHECK(retention_parse_name("events_y2026m07", &y, &m) == 0 && y == 2026 && m == 7,
	      "parse events_y2026m07");
	CHECK(retention_parse_name("events_y1999m12", &y, &m) == 0 && y == 1999 && m == 12,
	      "parse events_y1999m12");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(retention_parse_name(bad[i], &y, &m) < 0, "refuse '%s'", bad[i]);
	retention_format_name(2026, 1, buf, sizeof(buf));
	CHECK(strcmp(buf, "events_y2026m01") == 0, "format events_y2026m01 (got %s)", buf);
	for (int mon = 1; mon <= 12; mon++) {
		retention_format_name(2030, mon, buf, sizeof(buf));
		CHECK(retention_parse_name(buf, &y, &m) == 0 && y == 2030 && m == mon,
		      "round trip %s", buf);
	}
}

static void
test_bounds(void)
{
	time_t from, to;
	char a[RETENTION_TIME_LEN], b[RETENTION_TIME_LEN];

	CHECK(retention_month_bounds(2026, 12, &from, &to) == 0, "bounds of December");
	retention_format_time(from, a, sizeof(a));
	retention_format_time(to, b, sizeof(b));
	CHECK(strcmp(a, "2026-12-01T00:00:00Z") == 0 && strcmp(b, "2027-01-01T00:00:00Z") == 0,
	      "December ends at the next year (%s .. %s)", a, b);
	CHECK(retention_month_bounds(2024, 2, &from, &to) == 0 && to - from == 29 * 86400,
	      "February 2024 has 29 days");
	CHECK(retention_month_bounds(2026, 2, &from, &to) == 0 && to - from == 28 * 86400,
	      "February 2026 has 28 days");
	CHECK(retention_month_bounds(2026, 0, &from, &to) < 0, "month 0 refused");
	CHECK(retention_month_bounds(2026, 13, &from, &to) < 0, "month 13 refused");
	CHECK(retention_month_bounds(1970, 1, &from, &to) == 0 && from == 0,
	      "January 1970 starts at the epoch");
}

static void
test_cutoff(void)
{
	time_t now, from, to, cut;

	/* 2026-11-22T12:00:00Z */
	CHECK(retention_parse_time("2026-11-22T12:00:00Z", &now) == 0, "parse now");
	CHECK(retention_cutoff(now, 0) == 0, "0 days: no cut-off");
	cut = retention_cutoff(now, 400);
	CHECK(now - cut == 400L * 86400, "400 days back");
	/* cut-off 2025-10-18T12:00Z: September 2025 is gone, October 2025 stays */
	CHECK(retention_month_bounds(2025, 9, &from, &to) == 0 && retention_expired(to, cut),
	      "September 2025 expired");
	CHECK(retention_month_bounds(2025, 10, &from, &to) == 0 && !retention_expired(to, cut),
	      "October 2025 (holding the cut-off) kept");
	CHECK(retention_month_bounds(2026, 11, &from, &to) == 0 && !retention_expired(to, cut),
	      "the current month kept");
	/* a bound equal to the cut-off: every row is older */
	CHECK(retention_parse_time("2026-11-01 00:00:00+00", &cut) == 0 &&
		  retention_month_bounds(2026, 10, &from, &to) == 0 && retention_expired(to, cut),
	      "upper bound == cut-off expires");
	CHECK(!retention_expired(to, 0), "no cut-off expires nothing");
}

static void
test_times(void)
{
	time_t t;
	char buf[RETENTION_TIME_LEN];

	CHECK(retention_parse_time("2026-07-01T00:00:00Z", &t) == 0, "parse Z form");
	retention_format_time(t, buf, sizeof(buf));
	CHECK(strcmp(buf, "2026-07-01T00:00:00Z") == 0, "round trip (%s)", buf);
	CHECK(retention_parse_time("2026-07-01 00:00:00+00", &t) == 0, "parse PostgreSQL form");
	CHECK(retention_parse_time("2026-07-01T00:00:00+00:00", &t) == 0, "parse +00:00 form");
	CHECK(retention_parse_time("2026-07-01T00:00:00+02:00", &t) < 0, "refuse other zones");
	CHECK(retention_parse_time("2026-07-01", &t) < 0, "refuse a date alone");
	CHECK(retention_parse_time("garbage", &t) < 0, "refuse garbage");
}

static void
test_exprs(void)
{
	char buf[128], small[16];
	time_t cut;

	CHECK(retention_bound_expr(2026, 12, buf, sizeof(buf)) == 0 &&
		  strcmp(buf, "FOR VALUES FROM ('2026-12-01 00:00:00+00') TO ('2027-01-01 "
			      "00:00:00+00')") == 0,
	      "bound text of December 2026 (%s)", buf);
	CHECK(retention_bound_expr(2026, 13, buf, sizeof(buf)) < 0, "no bound for month 13");
	CHECK(retention_bound_expr(2026, 1, small, sizeof(small)) < 0, "short buffer refused");
	CHECK(retention_parse_time("2026-07-03T10:20:30Z", &cut) == 0 &&
		  retention_default_name(cut, buf, sizeof(buf)) == 0 &&
		  strcmp(buf, "events_default_before_20260703T102030Z") == 0,
	      "default archive name (%s)", buf);
}

int
main(void)
{
	test_names();
	test_bounds();
	test_cutoff();
	test_times();
	test_exprs();
	return unit_done();
}
