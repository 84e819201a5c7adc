/*
 * qparams: a URL query string ("a=1&b=x%20y") split into name/value pairs and
 * percent-decoded ('+' is a space).  Repeated names keep every value, in order
 * (GET /v3/categories/stats?categories=a&categories=b).
 */
#ifndef MAILPIPE_QPARAMS_H
#define MAILPIPE_QPARAMS_H

#include <stddef.h>

/* One decoded name=value pair of a query string. */
struct qparam {
	const char *name;
	const char *value;
};

#define QPARAMS_MAX 64

/* A query string split and percent-decoded ('+' is a space); release with qparams_release. */
struct qparams {
	struct qparam p[QPARAMS_MAX];
	size_t n;
	char *owned;
};

/*
 * Splits and decodes qs.  -1 with err when it holds more than QPARAMS_MAX pairs, a bad
 * percent escape or a decoded NUL; qp then holds nothing (releasing it is harmless).
 */
int qparams_parse(const char *qs, struct qparams *qp, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void qparams_release(struct qparams *qp);

/*
 * Percent-decodes the len bytes at s into out (room for len + 1 bytes, NUL-terminated),
 * '+' as a space when plus_space (a query string; a path segment keeps it).  -1 on a bad
 * escape or an encoded NUL.
 */
int qparams_decode(const char *s, size_t len, int plus_space, char *out)
    __attribute__((warn_unused_result));

/* The first value of name, or NULL. */
const char *qparams_get(const struct qparams *qp, const char *name);

#endif
