/*
 * metrics_push: a thread that every metrics.push_seconds writes this process's metric
 * snapshot into Redis, hash "<redis.prefix>metrics", field "<process>@<host>:<pid>", so
 * that the query process can render every process's numbers in one scrape.  The thread
 * also keeps the process gauges (start time, resident memory) up to date.  A clean stop
 * deletes the field.  While Redis is away a push is skipped (logged once per outage).
 *
 * The pushed value is metric_registry_snapshot()'s object plus
 *   "time": seconds since the epoch when it was taken, "push_seconds": the period.
 */
#ifndef MAILPIPE_METRICS_PUSH_H
#define MAILPIPE_METRICS_PUSH_H

#include <stddef.h>

#include <jansson.h>

#include "config.h"

/*
 * Names this process (ingest, sink, sender, query) and, unless metrics.push_seconds is
 * 0, starts the pushing thread.  -1 with err on a bad redis.url or when the thread cannot
 * start.
 */
int metrics_push_start(const struct config *cf, const char *process, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Stops the thread (if any) and deletes this process's field. */
void metrics_push_stop(void);

/* This process's name and "<host>:<pid>" ("" before metrics_push_start()). */
const char *metrics_push_process(void);
const char *metrics_push_instance(void);

/* The snapshot as pushed, taken now; NULL when out of memory. */
json_t *metrics_push_snapshot(void);

#endif
