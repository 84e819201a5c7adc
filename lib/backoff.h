/*
 * backoff: exponential backoff with full jitter, for reconnecting and retrying.
 */
#ifndef MAILPIPE_BACKOFF_H
#define MAILPIPE_BACKOFF_H

struct backoff {
	long base_ms;
	long max_ms;
	long cur_ms;
	unsigned int seed;
};

void backoff_init(struct backoff *b, long base_ms, long max_ms);
/* The next pause: random in [cur/2, cur], cur doubling up to max_ms. */
long backoff_next(struct backoff *b);
void backoff_reset(struct backoff *b);

#endif
