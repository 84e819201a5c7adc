/*
 * sink: shared types between the sink's loop (sink.c), its database writer
 * (sink_store.c) and its record handling (sink_record.c), which `mailpipectl replay`
 * links in too.
 */
#ifndef MAILPIPE_SINK_H
#define MAILPIPE_SINK_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "rconn.h"

/* One valid event to store; every pointer is borrowed from the Kafka message or its JSON. */
struct sink_event {
	const char *topic;
	const char *sg_event_id;
	int64_t time_us;
	const char *raw;
	size_t raw_len;
	int64_t received_ms;
	int32_t partition;
	int64_t offset;
};

/* One record for the dead_letters table. */
struct sink_dead {
	const char *topic;
	int32_t partition;
	int64_t offset;
	const void *payload;
	size_t len;
	char error[256];
};

struct store_result {
	size_t inserted;   /* new rows in events */
	size_t duplicates; /* events the database already had */
	size_t poisoned;   /* events the database refused, moved to dead letters */
};

struct store;

/* Remembers url; connects on first use.  NULL only when out of memory. */
struct store *store_new(const char *url);
void store_destroy(struct store *st);

/*
 * Writes nev events and *ndead dead letters in one transaction.  Events the database
 * refuses one by one are appended to dead (room for dead_cap) and *ndead grows.  Returns
 * 0 once committed; -1 with err when nothing was committed and the caller should retry
 * later (the connection is reset on the next call).
 */
int store_write(struct store *st, const struct sink_event *ev, size_t nev, struct sink_dead *dead,
		size_t *ndead, size_t dead_cap, struct store_result *res, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Rows the last committed batch inserted, per event name: store_fresh_count() names, each
 * with its rows (the name is borrowed until the next write).
 */
size_t store_fresh_count(const struct store *st);
const char *store_fresh_event(const struct store *st, size_t i, long *rows);

/* Addresses the last committed batch added to suppressions (borrowed until the next write). */
size_t store_suppressed_count(const struct store *st);
const char *store_suppressed_email(const struct store *st, size_t i);

/*
 * Sorts one record (sink_record.c): a valid event fills *ev and its parsed JSON is returned
 * (ev's strings are borrowed from it and from m: json_decref() it after the batch); anything
 * else fills *dead (its reason in dead->error) and NULL is returned.  A record of dlq_topic
 * (NULL: none) is a dead letter as it is, with the reason of its "error" header.
 */
json_t *sink_classify(const rd_kafka_message_t *m, const char *dlq_topic, struct sink_event *ev,
		      struct sink_dead *dead);

/*
 * Adds the addresses the last committed batch suppressed to the Redis set
 * <prefix>suppressed, the mirror of the table (which is the authority).  Returns how many,
 * or -1 when Redis is unavailable.
 */
int sink_mirror_suppressions(const struct store *st, struct rconn *redis, const char *prefix);

/* Creates the coming months' events partitions; -1 with err. */
int store_maintain(struct store *st, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
