/*
 * mailreq_ctx: the helpers the mailreq checks share (the error list being built, quoting,
 * field paths, string tests); see mailreq_ctx.h.
 */
#include "mailreq_ctx.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailreq.h"
#include "sgerr.h"

void
mailreq_add(struct ctx *c, const char *field, const char *fmt, ...)
{
	size_t before = json_array_size(c->errors);
	char msg[512];
	va_list ap;

	if (c->full)
		return;
	if (c->count >= MAILREQ_MAX_ERRORS) {
		sgerr_add(c->errors, NULL,
			  "There are more than %d errors in this request; only the first %d are "
			  "listed.",
			  MAILREQ_MAX_ERRORS, MAILREQ_MAX_ERRORS);
		c->full = 1;
	} else {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		sgerr_add(c->errors, field, "%s", msg);
		c->count++;
	}
	if (json_array_size(c->errors) == before)
		c->oom = 1;
}

const char *
mailreq_jtype(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER: return "integer";
	case JSON_REAL: return "number";
	case JSON_TRUE:
	case JSON_FALSE: return "boolean";
	case JSON_NULL: return "null";
	}
	return "unknown";
}

void
mailreq_type_error(struct ctx *c, const char *field, const char *expected, const json_t *v)
{
	mailreq_add(c, field, "Invalid type. Expected: %s, given: %s.", expected, mailreq_jtype(v));
}

/*
 * Copies at most QUOTE_MAX bytes of s into buf (QUOTE_MAX + 4 bytes), cut on a UTF-8
 * character boundary and marked with "..." when cut, so a quote never breaks the UTF-8 that
 * sgerr_entry() needs.  Returns buf.
 */
const char *
mailreq_clip(const char *s, char buf[QUOTE_MAX + 4])
{
	size_t n = strlen(s);

	if (n <= QUOTE_MAX) {
		memcpy(buf, s, n + 1);
		return buf;
	}
	n = QUOTE_MAX;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	memcpy(buf, s, n);
	memcpy(buf + n, "...", 4);
	return buf;
}

/* Quotes any JSON value (compact JSON, clipped) for "You provided ..." messages. */
const char *
mailreq_clip_json(const json_t *v, char buf[QUOTE_MAX + 4])
{
	char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

	mailreq_clip(s ? s : "?", buf);
	free(s);
	return buf;
}

const char *
mailreq_pathf(char buf[PATH_LEN], const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, PATH_LEN, fmt, ap);
	va_end(ap);
	return buf;
}

/* CR, LF or NUL anywhere in the string v (its whole length, not up to a NUL). */
int
mailreq_has_crlf(const json_t *v)
{
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);

	for (size_t i = 0; i < len; i++)
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
			return 1;
	return 0;
}

int
mailreq_has_any(const json_t *v, const char *set)
{
	return strpbrk(json_string_value(v), set) != NULL || mailreq_has_crlf(v);
}

int
mailreq_is_ascii(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 0;
	return 1;
}
