/*
 * batch: Event Webhook body parsing; see batch.h.
 *
 * jansson validates the whole body first (UTF-8, nesting depth, syntax).  Only then does a
 * small scanner walk the same bytes to find where each top-level element starts and ends;
 * on text jansson accepted, tracking strings and bracket depth is enough.
 */
#include "batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * From p (the first byte of a value), returns the byte after the value and notes whether
 * a string inside it holds \u0000.
 */
static const char *
skip_value(const char *p, const char *end, int *has_nul)
{
	int depth = 0;

	do {
		if (*p == '"') {
			for (p++; p < end && *p != '"'; p++) {
				if (*p != '\\')
					continue;
				p++;
				if (p + 4 < end && *p == 'u' && memcmp(p + 1, "0000", 4) == 0)
					*has_nul = 1;
			}
			p++;
		} else if (*p == '{' || *p == '[') {
			depth++;
			p++;
		} else if (*p == '}' || *p == ']') {
			depth--;
			p++;
		} else if (depth == 0) {
			/* A bare scalar at the top: runs to the next delimiter. */
			while (p < end && *p != ',' && *p != ']' && !is_ws(*p))
				p++;
		} else {
			p++;
		}
	} while (depth > 0 && p < end);
	return p;
}

/*
 * jansson's error text may quote the body near the error, cut inside a UTF-8 character:
 * keeps its printable ASCII, '?' for any other byte, so the 400 answer can hold it.
 */
static const char *
ascii_only(char *s)
{
	for (char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	return s;
}

int
batch_parse(struct batch *b, const char *body, size_t len, char *err, size_t errlen, char *field,
	    size_t fieldlen)
{
	json_error_t jerr;
	const char *p, *end = body + len;
	size_t i;

	memset(b, 0, sizeof(*b));
	field[0] = '\0';
	if (len == 0) {
		snprintf(err, errlen, "request body is empty: expected a JSON array of events");
		return -1;
	}
	/* NUL bytes in the body itself are never valid JSON; \u0000 escapes are handled below. */
	if (memchr(body, '\0', len) != NULL) {
		snprintf(err, errlen, "request body contains a NUL byte");
		return -1;
	}
	b->root = json_loadb(body, len, JSON_ALLOW_NUL, &jerr);
	if (b->root == NULL) {
		if (json_error_code(&jerr) == json_error_invalid_utf8)
			snprintf(err, errlen, "request body is not valid UTF-8 (at byte %d)",
				 jerr.position);
		else
			snprintf(err, errlen,
				 "request body is not valid JSON: %s at line %d column %d",
				 ascii_only(jerr.text), jerr.line, jerr.column);
		return -1;
	}
	if (!json_is_array(b->root)) {
		snprintf(err, errlen, "request body must be a JSON array of event objects");
		goto fail;
	}
	b->n = json_array_size(b->root);
	if (b->n == 0)
		return 0;
	if ((b->items = calloc(b->n, sizeof(*b->items))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	p = body;
	while (p < end && *p != '[')
		p++;
	p++;
	for (i = 0; i < b->n; i++) {
		struct batch_item *it = &b->items[i];

		it->obj = json_array_get(b->root, i);
		if (!json_is_object(it->obj)) {
			snprintf(field, fieldlen, "%zu", i);
			snprintf(err, errlen, "event %zu is not a JSON object", i);
			goto fail;
		}
		while (p < end && (is_ws(*p) || *p == ','))
			p++;
		it->raw = p;
		p = skip_value(p, end, &it->has_nul);
		it->raw_len = (size_t)(p - it->raw);
	}
	return 0;
fail:
	batch_release(b);
	return -1;
}

void
batch_release(struct batch *b)
{
	json_decref(b->root);
	free(b->items);
	memset(b, 0, sizeof(*b));
}
