/*
 * backoff: see backoff.h.
 */
#include "backoff.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

void
backoff_init(struct backoff *b, long base_ms, long max_ms)
{
	b->base_ms = base_ms;
	b->max_ms = max_ms;
	b->cur_ms = base_ms;
	b->seed = (unsigned int)time(NULL) ^ (unsigned int)getpid();
}

long
backoff_next(struct backoff *b)
{
	long cur = b->cur_ms, pause = cur / 2 + (long)(rand_r(&b->seed) % (cur / 2 + 1));

	b->cur_ms = cur * 2 > b->max_ms ? b->max_ms : cur * 2;
	return pause;
}

void
backoff_reset(struct backoff *b)
{
	b->cur_ms = b->base_ms;
}
