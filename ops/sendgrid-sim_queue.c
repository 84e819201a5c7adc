/*
 * sendgrid-sim_queue: the events waiting for their due time, a binary min-heap on due_ms
 * under one mutex, bounded by a count; see sendgrid-sim.h.
 *
 * Events are held as the compact JSON text jansson made of them, not as json_t trees: a
 * tree of a dozen keys costs several times the memory of its text, and the queue may
 * hold a million events while the webhook is down.
 */
#include "sendgrid-sim.h"

#include <stdlib.h>

struct sim_queue {
	pthread_mutex_t mu;
	struct sim_qev *heap;
	size_t len, cap, max;
};

struct sim_queue *
sim_queue_new(size_t max)
{
	struct sim_queue *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	pthread_mutex_init(&q->mu, NULL);
	q->max = max;
	return q;
}

void
sim_queue_destroy(struct sim_queue *q)
{
	if (q == NULL)
		return;
	for (size_t i = 0; i < q->len; i++)
		free(q->heap[i].json);
	free(q->heap);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

static void
sift_up(struct sim_qev *h, size_t i)
{
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		struct sim_qev tmp;

		if (h[parent].due_ms <= h[i].due_ms)
			break;
		tmp = h[parent];
		h[parent] = h[i];
		h[i] = tmp;
		i = parent;
	}
}

static void
sift_down(struct sim_qev *h, size_t len, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, min = i;
		struct sim_qev tmp;

		if (l < len && h[l].due_ms < h[min].due_ms)
			min = l;
		if (r < len && h[r].due_ms < h[min].due_ms)
			min = r;
		if (min == i)
			break;
		tmp = h[min];
		h[min] = h[i];
		h[i] = tmp;
		i = min;
	}
}

int
sim_queue_push(struct sim_queue *q, int64_t due_ms, char *json, size_t len, int dup)
{
	int rc = -1;

	pthread_mutex_lock(&q->mu);
	if (q->len >= q->max)
		goto out;
	if (q->len == q->cap) {
		size_t ncap = q->cap ? q->cap * 2 : 1024;
		struct sim_qev *nh;

		if (ncap > q->max)
			ncap = q->max;
		if ((nh = realloc(q->heap, ncap * sizeof(*nh))) == NULL)
			goto out;
		q->heap = nh;
		q->cap = ncap;
	}
	q->heap[q->len] = (struct sim_qev){.due_ms = due_ms, .json = json, .len = len, .dup = dup};
	sift_up(q->heap, q->len++);
	json = NULL;
	rc = 0;
out:
	pthread_mutex_unlock(&q->mu);
	free(json);
	return rc;
}

size_t
sim_queue_take(struct sim_queue *q, int64_t now_ms, struct sim_qev *out, size_t max,
	       size_t max_bytes)
{
	size_t n = 0, bytes = 0;

	pthread_mutex_lock(&q->mu);
	while (n < max && q->len > 0 && q->heap[0].due_ms <= now_ms) {
		if (n > 0 && bytes + q->heap[0].len + 1 > max_bytes)
			break;
		bytes += q->heap[0].len + 1;
		out[n++] = q->heap[0];
		q->heap[0] = q->heap[--q->len];
		sift_down(q->heap, q->len, 0);
	}
	/* Give memory back once a backlog has drained. */
	if (q->len == 0 && q->cap > 4096) {
		free(q->heap);
		q->heap = NULL;
		q->cap = 0;
	}
	pthread_mutex_unlock(&q->mu);
	return n;
}

size_t
sim_queue_len(struct sim_queue *q)
{
	size_t n;

	pthread_mutex_lock(&q->mu);
	n = q->len;
	pthread_mutex_unlock(&q->mu);
	return n;
}
