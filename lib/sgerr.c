/*
 * sgerr: see sgerr.h.
 */
#include "sgerr.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A copy of s with every byte outside ASCII as '?' (caller frees); NULL if s is. */
static char *
ascii_copy(const char *s)
{
	char *copy = s ? strdup(s) : NULL;

	for (char *p = copy; p && *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	return copy;
}

json_t *
sgerr_entry(const char *field, const char *message)
{
	json_t *e = json_pack("{s:s, s:s?, s:n}", "message", message, "field", field, "help");
	char *m, *f;

	if (e != NULL)
		return e;
	/* Not UTF-8 (text quoted from a request, cut inside a character): keep the entry,
	 * with '?' for every byte outside ASCII, rather than answer with no body at all. */
	m = ascii_copy(message);
	f = ascii_copy(field);
	if (m != NULL && (field == NULL || f != NULL))
		e = json_pack("{s:s, s:s?, s:n}", "message", m, "field", f, "help");
	free(m);
	free(f);
	return e;
}

void
sgerr_add(json_t *errors, const char *field, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_array_append_new(errors, sgerr_entry(field, msg));
}
