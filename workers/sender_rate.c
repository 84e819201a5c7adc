/*
 * sender_rate: the send rate limit; see sender.h.
 *
 * A token bucket holding at most one token, filled at sender.rate_per_second: sends are
 * spaced evenly and never exceed the rate in any second, even after an idle spell.  A 429
 * from SendGrid holds every send until its X-RateLimit-Reset: the next mails would only be
 * refused too.  The limit is per process; run N senders with 1/N of the account's rate.
 */
#include <time.h>

#include "sender.h"
#include "shutdown.h"

static long long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000L;
}

long long
sender_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000L;
}

void
sender_rate_init(struct sender_rate *r, long per_second)
{
	r->per_ms = per_second > 0 ? (double)per_second / 1000.0 : 0.0;
	r->tokens = 1.0;
	r->last_ms = mono_ms();
	r->hold_until = 0;
}

void
sender_rate_hold(struct sender_rate *r, long long until_ms, long max_ms)
{
	long long cap = sender_now_ms() + max_ms;

	if (until_ms > cap)
		until_ms = cap;
	if (until_ms > r->hold_until)
		r->hold_until = until_ms;
}

int
sender_rate_wait(struct sender_rate *r)
{
	long long now, wait;

	if (r->hold_until > 0) {
		wait = r->hold_until - sender_now_ms();
		if (wait > 0 && shutdown_sleep((long)wait))
			return -1;
		r->hold_until = 0;
	}
	if (r->per_ms <= 0.0)
		return shutdown_requested ? -1 : 0;
	for (;;) {
		now = mono_ms();
		r->tokens += (double)(now - r->last_ms) * r->per_ms;
		r->last_ms = now;
		if (r->tokens > 1.0)
			r->tokens = 1.0;
		if (r->tokens >= 1.0 - 1e-9) {
			r->tokens -= 1.0;
			return shutdown_requested ? -1 : 0;
		}
		wait = (long long)((1.0 - r->tokens) / r->per_ms) + 1;
		if (shutdown_sleep((long)wait))
			return -1;
	}
}
