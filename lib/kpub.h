/*
 * kpub: an idempotent Kafka producer (acks=all) whose callers wait for the delivery
 * reports of exactly the messages they produced.
 *
 *   struct kpub_wait *w = kpub_wait_new();
 *   kpub_send(kp, w, topic, key, keylen, value, len, hdrs, nhdrs, err, errlen);  // n times
 *   if (kpub_wait_done(w, deadline_ms, err, errlen) == 0) ... every one is durable ...
 *   kpub_wait_release(w);
 *
 * A wait is reference counted: a request that gives up at its deadline releases it, and the
 * last delivery report frees it.  Thread-safe: many threads share one kpub.
 */
#ifndef MAILPIPE_KPUB_H
#define MAILPIPE_KPUB_H

#include <stddef.h>

#include "config.h"

struct kpub;
struct kpub_wait;

struct kpub_header {
	const char *name;
	const char *value;
};

/*
 * Creates a producer; message_timeout_ms bounds how long librdkafka tries to deliver one
 * message.  Starts a thread that serves delivery reports.  NULL with err on failure.
 */
struct kpub *kpub_new(const struct config *cf, long message_timeout_ms, char *err, size_t errlen);

/* Flushes for at most timeout_ms, logs what could not be delivered, frees everything. */
void kpub_destroy(struct kpub *kp, int timeout_ms);

/* 1 once librdkafka reported a fatal error: the process should exit and be restarted. */
int kpub_fatal(struct kpub *kp);

struct kpub_wait *kpub_wait_new(void);

/*
 * Hands buf (malloc'ed, len bytes) to w: it is freed with w, after the caller released w
 * and the last delivery report arrived.  Values sent with w that lie inside buf are then
 * not copied.  At most one buffer per wait.
 */
void kpub_wait_adopt(struct kpub_wait *w, void *buf, size_t len);

/*
 * Enqueues one message (key copied; value copied unless it lies in w's adopted buffer).
 * -1 with err if it could not even be queued (queue full, fatal producer): count it as
 * failed.
 */
int kpub_send(struct kpub *kp, struct kpub_wait *w, const char *topic, const void *key,
	      size_t keylen, const void *value, size_t len, const struct kpub_header *hdrs,
	      size_t nhdrs, char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * Waits at most timeout_ms for every message sent with w.  0 if all were delivered;
 * -1 with the first failure (or the time-out) in err.
 */
int kpub_wait_done(struct kpub_wait *w, long timeout_ms, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Drops the caller's reference. */
void kpub_wait_release(struct kpub_wait *w);

#endif
