/*
 * jscan: a validating JSON scanner that builds no values (it allocates only to convert a
 * real number longer than 63 characters).
 *
 * It accepts what jansson's json_loadb(JSON_ALLOW_NUL) accepts (RFC 8259 syntax, UTF-8
 * without overlong forms or surrogates, escapes with paired surrogates, integers that fit
 * a long long, finite reals) and refuses the rest, but builds no values: it reports where
 * each value starts and ends so that a caller decodes only the few it needs.  It is also
 * more cautious than jansson in two ways, never more lenient: nesting deeper than
 * JSCAN_MAX_DEPTH and object keys holding \u0000 are refused.  A caller that must answer
 * exactly as jansson does falls back to jansson when jscan refuses (the error message is
 * jansson's then).  tests/fuzz/fuzz_batch.c checks the agreement.
 */
#ifndef MAILPIPE_JSCAN_H
#define MAILPIPE_JSCAN_H

#include <stddef.h>

/* jansson refuses deeper than 2048; jscan stops before. */
#define JSCAN_MAX_DEPTH 1024

enum jscan_type {
	JSCAN_STRING,
	JSCAN_INTEGER,
	JSCAN_REAL,
	JSCAN_TRUE,
	JSCAN_FALSE,
	JSCAN_NULL,
	JSCAN_OBJECT,
	JSCAN_ARRAY,
};

/* One scanned value: bytes [start, start + len) of the text, quotes included. */
struct jscan_value {
	const char *start;
	size_t len;
	enum jscan_type type;
	int escaped; /* a string holding at least one backslash escape */
	int has_nul; /* a \u0000 escape inside (anywhere in a container) */
};

struct jscan {
	const char *p, *end;
};

/* Starts scanning len bytes of text. */
void jscan_init(struct jscan *s, const char *text, size_t len);

/* Skips whitespace; 1 when the next byte is c (then consumed), else 0. */
int jscan_accept(struct jscan *s, char c);

/* 1 when only whitespace is left. */
int jscan_at_end(struct jscan *s);

/*
 * Scans (validates and skips) one value after optional whitespace into *v.  0 on
 * success; -1 when the text there is not a valid value.
 */
int jscan_value(struct jscan *s, struct jscan_value *v) __attribute__((warn_unused_result));

/*
 * Inside an object, after its '{' or a ',': scans `"key" :` into *key (type
 * JSCAN_STRING).  -1 when that is not what follows (or the key holds \u0000).
 */
int jscan_key(struct jscan *s, struct jscan_value *key) __attribute__((warn_unused_result));

#endif
