/*
 * sgerr: see sgerr.h.
 */
#include "sgerr.h"

#include <stdarg.h>
#include <stdio.h>

json_t *
sgerr_entry(const char *field, const char *message)
{
	return json_pack("{s:s, s:s?, s:n}", "message", message, "field", field, "help");
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
