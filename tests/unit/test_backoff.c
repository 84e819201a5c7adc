/*
 * test_backoff: exponential backoff with jitter (lib/backoff.c).  Each pause must lie in
 * [cur/2, cur] (integer halves), cur doubling from base up to max; reset goes back to base.
 */
#include <stdio.h>

#include "backoff.h"
#include "unit.h"

#define ROUNDS 2000

/*
 * Runs n steps from a fresh or current state, tracking the expected cur alongside; returns
 * 0 or -1 with a diagnostic for the first pause out of bounds or cur that went astray.
 */
static int
walk(struct backoff *b, long base, long max, int n, long *lo_seen, long *hi_seen)
{
	long cur = b->cur_ms;

	for (int i = 0; i < n; i++) {
		long p = backoff_next(b);

		if (p < cur / 2 || p > cur) {
			unit_diag("base %ld max %ld step %d: pause %ld outside [%ld, %ld]", base,
				  max, i, p, cur / 2, cur);
			return -1;
		}
		if (lo_seen && p < *lo_seen)
			*lo_seen = p;
		if (hi_seen && p > *hi_seen)
			*hi_seen = p;
		cur = cur * 2 > max ? max : cur * 2;
		if (b->cur_ms != cur) {
			unit_diag("base %ld max %ld step %d: cur %ld, expected %ld", base, max, i,
				  b->cur_ms, cur);
			return -1;
		}
	}
	return 0;
}

static void
bounds(long base, long max)
{
	struct backoff b;
	int ok = 1;

	for (int r = 0; r < ROUNDS && ok; r++) {
		backoff_init(&b, base, max);
		b.seed = (unsigned int)r * 2654435761u;
		ok = b.cur_ms == base && walk(&b, base, max, 40, NULL, NULL) == 0;
	}
	CHECK(ok, "base %ld max %ld: every pause in [cur/2, cur], cur doubles to max", base, max);
}

int
main(void)
{
	struct backoff b;
	long lo, hi, p;
	int ok, distinct;

	bounds(100, 5000);
	bounds(1, 7);
	bounds(3, 1000);
	bounds(250, 250);
	bounds(1, 86400000);

	/* The sequence of ceilings: 100 200 400 800 1600 3200 5000 5000 ... */
	backoff_init(&b, 100, 5000);
	ok = 1;
	{
		static const long want[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};

		for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
			if (b.cur_ms != want[i]) {
				unit_diag("step %zu: cur %ld, expected %ld", i, b.cur_ms, want[i]);
				ok = 0;
			}
			p = backoff_next(&b);
			if (p < want[i] / 2 || p > want[i]) {
				unit_diag("step %zu: pause %ld outside [%ld, %ld]", i, p,
					  want[i] / 2, want[i]);
				ok = 0;
			}
		}
	}
	CHECK(ok, "grows 100, 200, 400 ... and stays at max 5000");

	/* Once at max, pauses never exceed it, however long it runs. */
	lo = 1L << 40;
	hi = 0;
	ok = walk(&b, 100, 5000, 10000, &lo, &hi) == 0;
	CHECK(ok && hi <= 5000 && lo >= 2500, "10000 pauses at max stay in [2500, 5000]");

	/* Jitter: the pauses at max actually spread over the range. */
	if (!CHECK(lo < 2600 && hi > 4900, "jitter covers [cur/2, cur]: min %ld, max %ld", lo, hi))
		unit_diag("expected the lowest pause under 2600 and the highest over 4900");
	distinct = 0;
	{
		long seen[64];
		int n = 0;

		for (int i = 0; i < 200 && n < 64; i++) {
			int dup = 0;

			p = backoff_next(&b);
			for (int j = 0; j < n; j++)
				dup |= seen[j] == p;
			if (!dup)
				seen[n++] = p;
		}
		distinct = n;
	}
	CHECK(distinct >= 20, "200 pauses at max take at least 20 distinct values (%d)", distinct);

	/* Reset: back to base, then growing again. */
	backoff_reset(&b);
	ok = b.cur_ms == 100;
	p = backoff_next(&b);
	ok = ok && p >= 50 && p <= 100 && b.cur_ms == 200;
	if (!CHECK(ok, "reset returns to base: next pause in [50, 100], then cur 200"))
		unit_diag("pause %ld, cur %ld", p, b.cur_ms);
	ok = walk(&b, 100, 5000, 20, NULL, NULL) == 0;
	CHECK(ok, "after reset the pauses grow to max again");

	backoff_reset(&b);
	backoff_reset(&b);
	CHECK(b.cur_ms == 100 && b.base_ms == 100 && b.max_ms == 5000,
	      "reset twice keeps base and max");

	return unit_done();
}
