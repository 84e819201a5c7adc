/*
 * suppress: removing an address from the suppression lists, shared by `mailpipectl
 * suppression remove` and DELETE /v3/suppression/<list>/{email} of the read API.
 *
 * PostgreSQL is authoritative (the sender checks the table suppressions): the row goes
 * first, through mailpipe_suppression_delete() (sql/010_blocks.sql), then the address
 * leaves the Redis set <redis.prefix>suppressed, the mirror the sink keeps.  A Redis that
 * is away does not undo the removal: callers report it and go on.
 */
#ifndef MAILPIPE_SUPPRESS_H
#define MAILPIPE_SUPPRESS_H

#include <stddef.h>

#include <libpq-fe.h>

#include "rconn.h"

#define SUPPRESS_EMAIL_MAX 320 /* 64 + 1 + 255 */

/*
 * $1 the list (bounces, blocks, spam_reports, unsubscribes; NULL = any suppression), $2 the
 * address, normalized: runs mailpipe_suppression_delete(), which needs a read-write
 * transaction.  Rows: (email, reason) removed; none when the address was not on the list.
 */
extern const char suppress_delete_sql[];

/* The read API's list names, in the order of SendGrid's documentation. */
extern const char *const suppress_lists[];
extern const size_t suppress_nlists;

/* Whether name is one of suppress_lists. */
int suppress_list_known(const char *name);

/*
 * Lower-cases the ASCII letters of email into out (outlen bytes); -1 when it cannot be an
 * address: empty, over SUPPRESS_EMAIL_MAX bytes, no '@', or a control or space character.
 */
int suppress_normalize(const char *email, char *out, size_t outlen)
    __attribute__((warn_unused_result));

/*
 * Percent-decodes the first len bytes of s (a URL path segment: '+' stays '+') and
 * normalizes the result into out as suppress_normalize() does; -1 on a bad escape, a
 * decoded NUL, or an address suppress_normalize() refuses.
 */
int suppress_decode(const char *s, size_t len, char *out, size_t outlen)
    __attribute__((warn_unused_result));

/*
 * The Redis members to remove after res (a suppress_delete_sql result, borrowed): email,
 * then each removed row's address that differs from it, at most cap (pointers borrowed
 * from email and res).  Returns how many were stored.
 */
size_t suppress_members(const PGresult *res, const char *email, const char **members, size_t cap);

/*
 * SREMs the n members from <prefix>suppressed; *removed gets how many were in it.  -1 when
 * Redis cannot be reached or refuses (rconn has logged why), or n is over 8.
 */
int suppress_unmirror(struct rconn *rc, const char *prefix, const char *const *members, size_t n,
		      long long *removed) __attribute__((warn_unused_result));

#endif
