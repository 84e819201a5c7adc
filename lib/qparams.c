/*
 * qparams: query string parsing; see qparams.h.
 */
#include "qparams.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
qparams_decode(const char *s, size_t len, int plus_space, char *out)
{
	const char *end = s + len;
	int hi, lo;

	for (; s < end; s++) {
		if (*s == '+' && plus_space) {
			*out++ = ' ';
		} else if (*s == '%') {
			if (end - s < 3 || (hi = hexval(s[1])) < 0 || (lo = hexval(s[2])) < 0 ||
			    (hi == 0 && lo == 0))
				return -1;
			*out++ = (char)(hi * 16 + lo);
			s += 2;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
	return 0;
}

int
qparams_parse(const char *qs, struct qparams *qp, char *err, size_t errlen)
{
	size_t len = strlen(qs);
	const char *s = qs, *amp, *eq, *val;
	char *out;

	memset(qp, 0, sizeof(*qp));
	/* each decoded name and value fits in its encoded length plus a NUL */
	if ((qp->owned = out = malloc(len * 2 + 2)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	while (*s != '\0') {
		amp = strchr(s, '&');
		if (amp == NULL)
			amp = s + strlen(s);
		if (amp == s) {
			s++;
			continue;
		}
		if (qp->n == QPARAMS_MAX) {
			snprintf(err, errlen, "too many query parameters (at most %d)",
				 QPARAMS_MAX);
			qparams_release(qp);
			return -1;
		}
		eq = memchr(s, '=', (size_t)(amp - s));
		if (eq == NULL)
			eq = amp;
		if (qparams_decode(s, (size_t)(eq - s), 1, out) < 0)
			goto bad;
		qp->p[qp->n].name = out;
		out += strlen(out) + 1;
		val = eq < amp ? eq + 1 : amp;
		if (qparams_decode(val, (size_t)(amp - val), 1, out) < 0)
			goto bad;
		qp->p[qp->n].value = out;
		out += strlen(out) + 1;
		qp->n++;
		s = *amp ? amp + 1 : amp;
	}
	return 0;
bad:
	snprintf(err, errlen, "invalid query string: bad percent-encoding");
	qparams_release(qp);
	return -1;
}

void
qparams_release(struct qparams *qp)
{
	free(qp->owned);
	qp->owned = NULL;
	qp->n = 0;
}

const char *
qparams_get(const struct qparams *qp, const char *name)
{
	for (size_t i = 0; i < qp->n; i++)
		if (strcmp(qp->p[i].name, name) == 0)
			return qp->p[i].value;
	return NULL;
}
