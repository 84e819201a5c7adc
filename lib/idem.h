/*
 * idem: "already written" markers in Redis, the sink's fast path past duplicates.
 *
 * A marker is set only after the database committed the row, so a marker always means the
 * row exists; the database's unique key stays the real guard.  Redis being away only
 * costs speed: every call then answers -1 and the caller goes on without it.  The
 * connection is made lazily and retried at most every few seconds.
 */
#ifndef MAILPIPE_IDEM_H
#define MAILPIPE_IDEM_H

#include <stddef.h>

struct idem;

/*
 * url: redis://[:password@]host[:port][/db] or unix:/path/to.sock.  Keys are
 * <prefix><kind>:<id>.  NULL with err if the URL cannot be parsed.
 */
struct idem *idem_new(const char *url, const char *prefix, const char *kind, long ttl_seconds,
		      char *err, size_t errlen);
void idem_destroy(struct idem *id);

/* Sets seen[i] to 1 for each ids[i] already marked.  -1 if Redis is unavailable. */
int idem_seen(struct idem *id, const char *const *ids, size_t n, unsigned char *seen)
    __attribute__((warn_unused_result));

/* Marks ids (with the configured TTL).  -1 if Redis is unavailable. */
int idem_mark(struct idem *id, const char *const *ids, size_t n)
    __attribute__((warn_unused_result));

#endif
