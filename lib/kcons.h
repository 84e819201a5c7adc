/*
 * kcons: a consumer-group member that hands out batches and stores offsets only when told
 * the batch is safely written (enable.auto.offset.store=false; stored offsets are
 * committed in the background and on close).
 *
 * Partitions that have no committed offset start at the beginning; a committed offset
 * that fell out of the log obeys kafka.auto_offset_reset (default `error`: the consumer
 * stops and says so instead of skipping data).
 */
#ifndef MAILPIPE_KCONS_H
#define MAILPIPE_KCONS_H

#include <stddef.h>
#include <sys/types.h>

#include <librdkafka/rdkafka.h>

#include "config.h"

struct kcons;

/* Joins group and subscribes to ntopics topics.  NULL with err on failure. */
struct kcons *kcons_new(const struct config *cf, const char *group, const char *const *topics,
			size_t ntopics, char *err, size_t errlen);

/*
 * Collects up to max messages, waiting at most max_ms for the batch to fill.  Each message
 * returned is a new reference the caller destroys with rd_kafka_message_destroy().
 * Returns the count, or -1 with err when consuming cannot go on (offset reset error,
 * fatal error): the process should exit.
 */
ssize_t kcons_poll(struct kcons *kc, rd_kafka_message_t **msgs, size_t max, int max_ms, char *err,
		   size_t errlen);

/* Marks msgs (borrowed) as processed: stores offset+1 of the highest per partition. */
void kcons_store(struct kcons *kc, rd_kafka_message_t *const *msgs, size_t n);

/* Leaves the group (committing stored offsets) and frees kc. */
void kcons_destroy(struct kcons *kc);

#endif
