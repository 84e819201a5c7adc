/*
 * budget: a shared byte budget; see budget.h.
 */
#include "budget.h"

void
budget_init(struct budget *b, size_t cap)
{
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	b->cap = cap;
	b->used = 0;
}

void
budget_destroy(struct budget *b)
{
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
}

size_t
budget_take(struct budget *b, size_t n)
{
	if (b->cap == 0 || n == 0)
		return 0;
	if (n > b->cap)
		n = b->cap;
	pthread_mutex_lock(&b->mu);
	while (b->cap - b->used < n)
		pthread_cond_wait(&b->cv, &b->mu);
	b->used += n;
	pthread_mutex_unlock(&b->mu);
	return n;
}

void
budget_give(struct budget *b, size_t taken)
{
	if (taken == 0)
		return;
	pthread_mutex_lock(&b->mu);
	b->used -= taken;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
}
