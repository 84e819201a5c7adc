/*
 * budget: a number of bytes that threads share, such as the request bodies a process
 * holds at once.  budget_take() waits until the bytes are free; a request larger than the
 * whole budget takes all of it, so it runs alone rather than never.
 */
#ifndef MAILPIPE_BUDGET_H
#define MAILPIPE_BUDGET_H

#include <pthread.h>
#include <stddef.h>

struct budget {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t cap; /* 0: no limit */
	size_t used;
};

void budget_init(struct budget *b, size_t cap);
void budget_destroy(struct budget *b);

/* Waits for n bytes (at most cap) and takes them; returns what was taken, for give. */
size_t budget_take(struct budget *b, size_t n);

/* Gives back what budget_take() returned. */
void budget_give(struct budget *b, size_t taken);

#endif
