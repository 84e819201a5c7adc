/*
 * idem: "already written" markers in Redis, the sink's fast path past duplicates.
 *
 * A marker is set only after the database committed the row, so a marker always means the
 * row exists; the database's unique key stays the real guard.  Redis being away only
 * costs speed: every call then answers -1 and the caller goes on without it (see rconn).
 */
#ifndef MAILPIPE_IDEM_H
#define MAILPIPE_IDEM_H

#include <stddef.h>

#include "rconn.h"

struct idem;

/* Keys are <prefix><kind>:<id>, on rc (borrowed: it must outlive the idem).  NULL if out of
 * memory. */
struct idem *idem_new(struct rconn *rc, const char *prefix, const char *kind, long ttl_seconds);
void idem_destroy(struct idem *id);

/* Sets seen[i] to 1 for each ids[i] already marked.  -1 if Redis is unavailable. */
int idem_seen(struct idem *id, const char *const *ids, size_t n, unsigned char *seen)
    __attribute__((warn_unused_result));

/* Marks ids (with the configured TTL).  -1 if Redis is unavailable. */
int idem_mark(struct idem *id, const char *const *ids, size_t n)
    __attribute__((warn_unused_result));

#endif
