/*
 * batch: Event Webhook body parsing; see batch.h.
 *
 * The fast path (scan_batch) validates the body with jscan, which builds no values, and
 * keeps where each event's bytes are; batch_event() decodes, one event at a time, only
 * the members event_check() reads (event_fields).  So a batch costs its body and a few
 * words per event, never a tree of jansson values for the whole body.  Whenever
 * jscan refuses, the body goes to the path jansson decides (parse_dom): jansson parses
 * the whole body, so a bad body is refused with jansson's own message, and the rare text
 * jscan is more cautious about than jansson is still accepted.
 */
#include "batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "jscan.h"

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

/*
 * The path jansson decides: parses the whole body into b->root; each item's obj is the
 * whole event, borrowed from it.  Only after jansson accepted does skip_value() walk the
 * same bytes to find where each element starts and ends.
 */
static int
parse_dom(struct batch *b, const char *body, size_t len, char *err, size_t errlen, char *field,
	  size_t fieldlen)
{
	json_error_t jerr;
	const char *p, *end = body + len;
	size_t i;

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

/* 1 when the n bytes at name are one of event_fields. */
static int
wanted(const char *name, size_t n)
{
	for (const char *const *f = event_fields; *f; f++)
		if (strlen(*f) == n && memcmp(*f, name, n) == 0)
			return 1;
	return 0;
}

/* The jansson value of a scanned one, decoded as jansson would. */
static json_t *
decode(const struct jscan_value *v)
{
	char num[32];

	switch (v->type) {
	case JSCAN_STRING:
		if (!v->escaped) /* checked UTF-8 without escapes: its bytes are its value */
			return json_stringn_nocheck(v->start + 1, v->len - 2);
		break;
	case JSCAN_INTEGER:
		if (v->len < sizeof(num)) { /* jscan checked it fits */
			memcpy(num, v->start, v->len);
			num[v->len] = '\0';
			return json_integer(strtoll(num, NULL, 10));
		}
		break;
	case JSCAN_TRUE: return json_true();
	case JSCAN_FALSE: return json_false();
	case JSCAN_NULL: return json_null();
	default: break;
	}
	return json_loadb(v->start, v->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
}

/* Adds the member key: v to obj when event_check() reads it.  -1 out of memory. */
static int
keep_member(json_t *obj, const struct jscan_value *k, const struct jscan_value *v)
{
	json_t *value;
	char name[64];

	if (!k->escaped) {
		if (!wanted(k->start + 1, k->len - 2))
			return 0;
		memcpy(name, k->start + 1, k->len - 2);
		name[k->len - 2] = '\0';
	} else {
		/* A key spelt with escapes ("sg\u005fevent_id") is rare: jansson decodes it. */
		json_t *decoded = decode(k);

		if (decoded == NULL)
			return -1;
		if (!wanted(json_string_value(decoded), json_string_length(decoded))) {
			json_decref(decoded);
			return 0;
		}
		snprintf(name, sizeof(name), "%s", json_string_value(decoded));
		json_decref(decoded);
	}
	if ((value = decode(v)) == NULL)
		return -1;
	/* A repeated key: the last one wins, as in jansson. */
	return json_object_set_new(obj, name, value);
}

/*
 * One event from its '{': checks it and notes its bytes in *it; with obj, also puts the
 * members event_check() reads into obj.  -1 when jscan refuses (or out of memory).
 */
static int
scan_event(struct jscan *s, struct batch_item *it, json_t *obj)
{
	if (!jscan_accept(s, '{'))
		return -1; /* not an object: parse_dom says so, or what else is wrong */
	it->raw = s->p - 1;
	if (!jscan_accept(s, '}')) {
		do {
			struct jscan_value k, v;

			if (jscan_key(s, &k) < 0 || jscan_value(s, &v) < 0 ||
			    (obj && keep_member(obj, &k, &v) < 0))
				return -1;
			it->has_nul |= v.has_nul;
		} while (jscan_accept(s, ','));
		if (!jscan_accept(s, '}'))
			return -1;
	}
	it->raw_len = (size_t)(s->p - it->raw);
	return 0;
}

/* The fast path: checks the body, notes each event's bytes; -1 when jscan refuses. */
static int
scan_batch(struct batch *b, const char *body, size_t len)
{
	struct jscan s;
	size_t cap = 0;

	jscan_init(&s, body, len);
	if (!jscan_accept(&s, '['))
		return -1;
	if (jscan_accept(&s, ']'))
		return jscan_at_end(&s) ? 0 : -1;
	do {
		if (b->n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct batch_item *items = realloc(b->items, ncap * sizeof(*items));

			if (items == NULL)
				return -1;
			b->items = items;
			cap = ncap;
		}
		memset(&b->items[b->n], 0, sizeof(b->items[b->n]));
		if (scan_event(&s, &b->items[b->n], NULL) < 0)
			return -1;
		b->n++;
	} while (jscan_accept(&s, ','));
	return jscan_accept(&s, ']') && jscan_at_end(&s) ? 0 : -1;
}

json_t *
batch_event(const struct batch *b, size_t i)
{
	struct batch_item it = {0};
	struct jscan s;
	json_t *obj;

	if (b->items[i].obj) /* parse_dom's: the whole event */
		return json_incref(b->items[i].obj);
	if ((obj = json_object()) == NULL)
		return NULL;
	jscan_init(&s, b->items[i].raw, b->items[i].raw_len);
	if (scan_event(&s, &it, obj) < 0) { /* checked already: only out of memory */
		json_decref(obj);
		return NULL;
	}
	return obj;
}

int
batch_parse(struct batch *b, const char *body, size_t len, char *err, size_t errlen, char *field,
	    size_t fieldlen)
{
	memset(b, 0, sizeof(*b));
	field[0] = '\0';
	if (len == 0) {
		snprintf(err, errlen, "request body is empty: expected a JSON array of events");
		return -1;
	}
	/* NUL bytes in the body itself are never valid JSON; \u0000 escapes are noted. */
	if (memchr(body, '\0', len) != NULL) {
		snprintf(err, errlen, "request body contains a NUL byte");
		return -1;
	}
	if (scan_batch(b, body, len) == 0)
		return 0;
	batch_release(b);
	return parse_dom(b, body, len, err, errlen, field, fieldlen);
}

void
batch_release(struct batch *b)
{
	json_decref(b->root);
	free(b->items);
	memset(b, 0, sizeof(*b));
}
