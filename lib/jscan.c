/*
 * jscan: the validating JSON scanner; see jscan.h.  Each rule below is the one jansson's
 * lexer and parser apply (load.c, utf.c), so that what jscan accepts jansson accepts.
 */
#include "jscan.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int scan_value(struct jscan *s, struct jscan_value *v, int depth);

static void
skip_ws(struct jscan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static int
is_digit(const struct jscan *s, const char *p)
{
	return p < s->end && *p >= '0' && *p <= '9';
}

void
jscan_init(struct jscan *s, const char *text, size_t len)
{
	s->p = text;
	s->end = text + len;
}

int
jscan_accept(struct jscan *s, char c)
{
	skip_ws(s);
	if (s->p < s->end && *s->p == c) {
		s->p++;
		return 1;
	}
	return 0;
}

int
jscan_at_end(struct jscan *s)
{
	skip_ws(s);
	return s->p == s->end;
}

static int
hex4(const unsigned char *p, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		unsigned c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	*out = v;
	return 0;
}

/*
 * The length of the UTF-8 sequence at p (first byte >= 0x80), 0 when it is not valid:
 * no stray continuation byte, no overlong form, no surrogate, nothing above U+10FFFF.
 */
static size_t
utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0], v;
	size_t n;

	if (c < 0xC2 || c > 0xF4)
		return 0;
	n = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
	if ((size_t)(end - p) < n)
		return 0;
	v = c & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		v = (v << 6) | (p[i] & 0x3F);
	}
	if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) || v > 0x10FFFF ||
	    (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	return n;
}

/* A string from its opening quote: valid UTF-8, no control character, valid escapes. */
static int
scan_string(struct jscan *s, struct jscan_value *v)
{
	const unsigned char *p = (const unsigned char *)s->p + 1;
	const unsigned char *end = (const unsigned char *)s->end;

	while (p < end) {
		unsigned c = *p, u, lo;
		size_t n;

		if (c == '"') {
			s->p = (const char *)p + 1;
			return 0;
		}
		if (c < 0x20)
			return -1;
		if (c >= 0x80) {
			if ((n = utf8_len(p, end)) == 0)
				return -1;
			p += n;
			continue;
		}
		if (c != '\\') {
			p++;
			continue;
		}
		v->escaped = 1;
		if (end - p < 2)
			return -1;
		if (p[1] != 'u') {
			if (p[1] == '\0' || strchr("\"\\/bfnrt", p[1]) == NULL)
				return -1;
			p += 2;
			continue;
		}
		if (end - p < 6 || hex4(p + 2, &u) < 0)
			return -1;
		p += 6;
		if (u >= 0xD800 && u <= 0xDBFF) {
			/* A high surrogate needs its low half right after it. */
			if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) < 0 ||
			    lo < 0xDC00 || lo > 0xDFFF)
				return -1;
			p += 6;
		} else if (u >= 0xDC00 && u <= 0xDFFF) {
			return -1;
		} else if (u == 0) {
			v->has_nul = 1;
		}
	}
	return -1;
}

/* Whether a number token converts as jansson converts it (strtoll, strtod). */
static int
number_in_range(const char *p, size_t len, int real)
{
	char buf[64], *copy = buf;
	int rc = 0;

	if (len >= sizeof(buf)) {
		if (!real)
			return -1; /* 63 digits: far beyond a long long */
		if ((copy = malloc(len + 1)) == NULL)
			return -1;
	}
	memcpy(copy, p, len);
	copy[len] = '\0';
	errno = 0;
	if (!real) {
		(void)strtoll(copy, NULL, 10);
		rc = errno == ERANGE ? -1 : 0;
	} else {
		double d = strtod(copy, NULL);

		rc = errno == ERANGE && isinf(d) ? -1 : 0; /* an underflow is fine */
	}
	if (copy != buf)
		free(copy);
	return rc;
}

static int
scan_number(struct jscan *s, struct jscan_value *v)
{
	const char *p = s->p;
	int real = 0;

	if (p < s->end && *p == '-')
		p++;
	if (!is_digit(s, p))
		return -1;
	if (*p == '0') {
		if (is_digit(s, ++p))
			return -1; /* no leading zeros */
	} else {
		while (is_digit(s, p))
			p++;
	}
	if (p < s->end && *p == '.') {
		real = 1;
		if (!is_digit(s, ++p))
			return -1;
		while (is_digit(s, p))
			p++;
	}
	if (p < s->end && (*p == 'e' || *p == 'E')) {
		real = 1;
		p++;
		if (p < s->end && (*p == '+' || *p == '-'))
			p++;
		if (!is_digit(s, p))
			return -1;
		while (is_digit(s, p))
			p++;
	}
	if (number_in_range(s->p, (size_t)(p - s->p), real) < 0)
		return -1;
	v->type = real ? JSCAN_REAL : JSCAN_INTEGER;
	s->p = p;
	return 0;
}

static int
scan_word(struct jscan *s, struct jscan_value *v, const char *word, enum jscan_type type)
{
	size_t n = strlen(word);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return -1;
	s->p += n;
	v->type = type;
	return 0;
}

int
jscan_key(struct jscan *s, struct jscan_value *key)
{
	memset(key, 0, sizeof(*key));
	skip_ws(s);
	if (s->p >= s->end || *s->p != '"')
		return -1;
	key->start = s->p;
	key->type = JSCAN_STRING;
	if (scan_string(s, key) < 0 || key->has_nul)
		return -1; /* jansson: "NUL byte in object key not supported" */
	key->len = (size_t)(s->p - key->start);
	return jscan_accept(s, ':') ? 0 : -1;
}

/* The members or elements of a container, after its opening bracket. */
static int
scan_container(struct jscan *s, struct jscan_value *v, int depth)
{
	const char close = v->type == JSCAN_OBJECT ? '}' : ']';

	s->p++;
	if (jscan_accept(s, close))
		return 0;
	do {
		struct jscan_value key, item;

		if (v->type == JSCAN_OBJECT && jscan_key(s, &key) < 0)
			return -1;
		if (scan_value(s, &item, depth + 1) < 0)
			return -1;
		v->has_nul |= item.has_nul;
	} while (jscan_accept(s, ','));
	return jscan_accept(s, close) ? 0 : -1;
}

static int
scan_value(struct jscan *s, struct jscan_value *v, int depth)
{
	int rc;

	memset(v, 0, sizeof(*v));
	skip_ws(s);
	if (s->p >= s->end)
		return -1;
	v->start = s->p;
	switch (*s->p) {
	case '"':
		v->type = JSCAN_STRING;
		rc = scan_string(s, v);
		break;
	case '{':
	case '[':
		if (depth >= JSCAN_MAX_DEPTH)
			return -1;
		v->type = *s->p == '{' ? JSCAN_OBJECT : JSCAN_ARRAY;
		rc = scan_container(s, v, depth);
		break;
	case 't': rc = scan_word(s, v, "true", JSCAN_TRUE); break;
	case 'f': rc = scan_word(s, v, "false", JSCAN_FALSE); break;
	case 'n': rc = scan_word(s, v, "null", JSCAN_NULL); break;
	default: rc = scan_number(s, v); break;
	}
	if (rc == 0)
		v->len = (size_t)(s->p - v->start);
	return rc;
}

int
jscan_value(struct jscan *s, struct jscan_value *v)
{
	return scan_value(s, v, 0);
}
