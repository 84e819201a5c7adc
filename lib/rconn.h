/*
 * rconn: one Redis connection, shared safely by threads, made lazily and re-made after a
 * failure at most every RETRY seconds.  While Redis is away every call answers "unavailable"
 * at once instead of waiting: callers decide what that means (the sink goes on without
 * markers; an Idempotency-Key request answers 503).
 *
 * Commands are always argv arrays with explicit lengths: never built from strings.
 */
#ifndef MAILPIPE_RCONN_H
#define MAILPIPE_RCONN_H

#include <stddef.h>

#include <hiredis.h>

struct rconn;

/* url: redis://[[user]:password@]host[:port][/db] or unix:/path.  NULL with err if unparsable. */
struct rconn *rconn_new(const char *url, char *err, size_t errlen);
void rconn_destroy(struct rconn *rc);

/*
 * Runs one command.  Returns its reply (the caller frees it with freeReplyObject()), or
 * NULL when Redis is unavailable or answered an error (logged).  lens may be NULL for
 * NUL-terminated arguments.
 */
redisReply *rconn_command(struct rconn *rc, int argc, const char **argv, const size_t *lens);

/*
 * For pipelines: locks rc and returns its connected context, or NULL (not locked) when
 * Redis is unavailable.  Every rconn_lock() that returned a context is followed by
 * rconn_unlock(); failed != 0 drops the connection.
 */
redisContext *rconn_lock(struct rconn *rc);
void rconn_unlock(struct rconn *rc, int failed);

#endif
