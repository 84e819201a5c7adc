/*
 * msgquery: a recursive-descent parser for the Email Activity query subset (see msgquery.h).
 *
 * The lexer reads one token ahead.  Strings are unescaped straight into q->owned, which is
 * as long as the query, so values never need more room than the text they came from.  The
 * SQL is appended to q->where only from the constant fragments of this file and "$n".
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msgquery.h"

enum tok { T_EOF, T_WORD, T_STRING, T_LPAREN, T_RPAREN, T_EQ, T_NE, T_OTHER };

enum kind {
	K_SCALAR, /* a text column */
	K_LIST,   /* a text[] column: matches when an element does */
	K_TIME,   /* a timestamptz column */
};

enum op_mask { OP_EQ = 1, OP_LIKE = 2, OP_BETWEEN = 4 };

struct field {
	const char *name;   /* as the user writes it */
	const char *column; /* as the SQL reads it */
	enum kind kind;
	unsigned ops;
	int check_status; /* the value must be one of statuses[] */
};

static const struct field fields[] = {
    {"to_email", "to_emails", K_LIST, OP_EQ | OP_LIKE, 0},
    {"from_email", "from_email", K_SCALAR, OP_EQ | OP_LIKE, 0},
    {"subject", "subject", K_SCALAR, OP_EQ | OP_LIKE, 0},
    {"status", "status", K_SCALAR, OP_EQ, 1},
    {"msg_id", "message_id", K_SCALAR, OP_EQ | OP_LIKE, 0},
    /* NULL categories: none, so "!=" and NOT "=" match the message */
    {"categories", "COALESCE(categories, ARRAY[]::text[])", K_LIST, OP_EQ | OP_LIKE, 0},
    {"last_event_time", "last_event_time", K_TIME, OP_BETWEEN, 0},
};

/* The statuses a message can have (mailpipe_status_rank() in sql/006_messages.sql). */
static const char *const statuses[] = {
    "queued",
    "sending",
    "retrying",
    "sent",
    "processed",
    "deferred",
    "delivered",
    "open",
    "click",
    "group_resubscribe",
    "group_unsubscribe",
    "unsubscribe",
    "spamreport",
    "bounce",
    "blocked",
    "dropped",
    "failed",
    "suppressed",
};

/* The messages below spell these numbers out. */
_Static_assert(sizeof(((struct msgquery *)0)->where) == 2048, "where[] is 2048 bytes");
_Static_assert(MSGQUERY_MAX_PARAMS == 31 &&
		   sizeof(((struct msgquery *)0)->params) / sizeof(const char *) >
		       MSGQUERY_MAX_PARAMS,
	       "at most 31 values, params[] has room for them");

struct parser {
	const char *src;
	size_t len;
	size_t pos; /* where the lexer reads next */

	enum tok tok; /* the current token */
	size_t tpos;  /* its offset in src */
	size_t tlen;  /* its length in src */
	char *sval;   /* T_STRING: the unescaped value, NUL-terminated, in q->owned */
	size_t oused; /* bytes of q->owned given to params */

	struct msgquery *q;
	size_t wlen;
	int depth;

	char *err;
	size_t errlen;
	int failed; /* err holds the first failure */
};

/*
 * Records the first failure as "<what> at position N[: <detail>]", N counted from 1.
 * Always returns -1.
 */
static __attribute__((format(printf, 4, 5))) int
fail_detail(struct parser *p, size_t pos, const char *detail, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (p->failed)
		return -1;
	p->failed = 1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->errlen > 0)
		snprintf(p->err, p->errlen, "%s at position %zu%s%s", msg, pos + 1,
			 detail ? ": " : "", detail ? detail : "");
	return -1;
}

#define fail(p, pos, ...) fail_detail(p, pos, NULL, __VA_ARGS__)

/* Reports the current token as unexpected; expected says what would have fitted. */
static int
unexpected(struct parser *p, const char *expected)
{
	char shown[48], detail[96];
	size_t n = 0, i;

	snprintf(detail, sizeof(detail), "expected %s", expected);
	switch (p->tok) {
	case T_EOF: return fail_detail(p, p->tpos, detail, "unexpected end of query");
	case T_STRING: return fail_detail(p, p->tpos, detail, "unexpected string");
	default: break;
	}
	for (i = 0; i < p->tlen && n + 5 < sizeof(shown) - 3; i++) {
		unsigned char c = (unsigned char)p->src[p->tpos + i];

		if (c >= 0x20 && c < 0x7f && c != '\'')
			shown[n++] = (char)c;
		else
			n += (size_t)snprintf(shown + n, sizeof(shown) - n, "\\x%02x", c);
	}
	shown[n] = '\0';
	return fail_detail(p, p->tpos, detail, "unexpected '%s%s'", shown,
			   i < p->tlen ? "..." : "");
}

/* Length of the UTF-8 sequence at s (n bytes available), or 0 if it is not valid. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	size_t need, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		need = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		need = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		need = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((need == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (need == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return need;
}

static int
is_word_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int
is_word_char(char c)
{
	return is_word_start(c) || (c >= '0' && c <= '9');
}

/* Reads a string token starting at the opening quote; its value goes to q->owned. */
static int
lex_string(struct parser *p)
{
	char *out = p->q->owned + p->oused;
	size_t i = p->pos + 1, n = 0;

	p->sval = out;
	for (;;) {
		unsigned char c;
		size_t ulen;

		if (i >= p->len)
			return fail(p, p->pos, "unterminated string");
		c = (unsigned char)p->src[i];
		if (c == '"')
			break;
		if (c == '\\') {
			if (i + 1 >= p->len)
				return fail(p, p->pos, "unterminated string");
			if (p->src[i + 1] != '"' && p->src[i + 1] != '\\')
				return fail_detail(p, i, "only \\\" and \\\\ are allowed",
						   "invalid escape in string");
			out[n++] = p->src[i + 1];
			i += 2;
			continue;
		}
		if ((ulen = utf8_len((const unsigned char *)p->src + i, p->len - i)) == 0)
			return fail(p, i, "invalid UTF-8 in string");
		memcpy(out + n, p->src + i, ulen);
		n += ulen;
		i += ulen;
	}
	out[n] = '\0';
	p->tok = T_STRING;
	p->tlen = i + 1 - p->pos;
	return 0;
}

/* Moves to the next token. */
static int
next(struct parser *p)
{
	const char *s = p->src;

	if (p->failed)
		return -1;
	while (p->pos < p->len &&
	       (s[p->pos] == ' ' || s[p->pos] == '\t' || s[p->pos] == '\n' || s[p->pos] == '\r'))
		p->pos++;
	p->tpos = p->pos;
	p->tlen = 1;
	p->sval = NULL;
	if (p->pos >= p->len) {
		p->tok = T_EOF;
		p->tlen = 0;
		return 0;
	}
	switch (s[p->pos]) {
	case '(': p->tok = T_LPAREN; break;
	case ')': p->tok = T_RPAREN; break;
	case '=': p->tok = T_EQ; break;
	case '"':
		if (lex_string(p) < 0)
			return -1;
		break;
	case '!':
	case '<':
		if (p->pos + 1 < p->len && ((s[p->pos] == '!' && s[p->pos + 1] == '=') ||
					    (s[p->pos] == '<' && s[p->pos + 1] == '>'))) {
			p->tok = T_NE;
			p->tlen = 2;
			break;
		}
		p->tok = T_OTHER;
		break;
	default:
		if (is_word_start(s[p->pos])) {
			while (p->pos + p->tlen < p->len && is_word_char(s[p->pos + p->tlen]))
				p->tlen++;
			p->tok = T_WORD;
		} else {
			size_t ulen = utf8_len((const unsigned char *)s + p->pos, p->len - p->pos);

			p->tok = T_OTHER;
			p->tlen = ulen > 0 ? ulen : 1;
		}
		break;
	}
	p->pos += p->tlen;
	return 0;
}

/* Is the current token the keyword kw (any case)? */
static int
is_kw(const struct parser *p, const char *kw)
{
	return p->tok == T_WORD && p->tlen == strlen(kw) &&
	       strncasecmp(p->src + p->tpos, kw, p->tlen) == 0;
}

static int
emit(struct parser *p, const char *sql)
{
	size_t n = strlen(sql);

	if (p->wlen + n >= sizeof(p->q->where))
		return fail_detail(p, p->tpos, "its SQL would exceed 2047 bytes",
				   "query too complex");
	memcpy(p->q->where + p->wlen, sql, n + 1);
	p->wlen += n;
	return 0;
}

/* Makes the current string token the next parameter and emits its placeholder. */
static int
emit_param(struct parser *p)
{
	char ph[16];

	if (p->q->nparams >= MSGQUERY_MAX_PARAMS)
		return fail_detail(p, p->tpos, "at most 31", "too many values");
	p->q->params[p->q->nparams++] = p->sval;
	p->oused += strlen(p->sval) + 1;
	snprintf(ph, sizeof(ph), "$%d", p->q->nparams);
	return emit(p, ph);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int
digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*v = *v * 10 + (s[i] - '0');
	}
	return 0;
}

/*
 * Checks an RFC 3339 date-time, YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM) ('t', 'z' and
 * a space for 'T' allowed), and sets *secs and *nanos to the UTC instant.  -1 with why.
 */
static int
parse_rfc3339(const char *s, int64_t *secs, long *nanos, const char **why)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0, dim, nd = 0;
	long frac = 0;
	const char *t;

	*why = "expected YYYY-MM-DDTHH:MM:SSZ or an offset such as +02:00";
	if (strlen(s) < 20 || digits(s, 4, &y) < 0 || s[4] != '-' || digits(s + 5, 2, &mo) < 0 ||
	    s[7] != '-' || digits(s + 8, 2, &d) < 0 ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || digits(s + 11, 2, &h) < 0 ||
	    s[13] != ':' || digits(s + 14, 2, &mi) < 0 || s[16] != ':' ||
	    digits(s + 17, 2, &sec) < 0)
		return -1;
	t = s + 19;
	if (*t == '.') {
		for (t++; *t >= '0' && *t <= '9'; t++, nd++)
			if (nd < 9)
				frac = frac * 10 + (*t - '0');
		if (nd == 0 || nd > 9) {
			*why = "expected 1 to 9 digits of fraction";
			return -1;
		}
		for (int i = nd; i < 9; i++)
			frac *= 10;
	}
	if (*t == 'Z' || *t == 'z') {
		t++;
	} else if (*t == '+' || *t == '-') {
		sign = *t == '-' ? -1 : 1;
		if (digits(t + 1, 2, &oh) < 0 || t[3] != ':' || digits(t + 4, 2, &om) < 0)
			return -1;
		t += 6;
	} else {
		return -1;
	}
	if (*t != '\0')
		return -1;
	dim = mo >= 1 && mo <= 12 ? mdays[mo - 1] : 0;
	if (mo == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
		dim = 29;
	*why = "date or time out of range";
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > dim || h > 23 || mi > 59 || sec > 60 ||
	    oh > 23 || om > 59)
		return -1;
	*secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec -
		sign * (oh * 3600 + om * 60);
	*nanos = frac;
	return 0;
}

/* timestamp = "TIMESTAMP" string; emits "$n::timestamptz". */
static int
parse_timestamp(struct parser *p, int64_t *secs, long *nanos)
{
	const char *why;

	if (!is_kw(p, "TIMESTAMP"))
		return unexpected(p, "TIMESTAMP \"...\"");
	if (next(p) < 0)
		return -1;
	if (p->tok != T_STRING)
		return unexpected(p, "a quoted RFC 3339 date-time after TIMESTAMP");
	if (parse_rfc3339(p->sval, secs, nanos, &why) < 0)
		return fail_detail(p, p->tpos, why, "invalid TIMESTAMP");
	if (emit_param(p) < 0 || emit(p, "::timestamptz") < 0)
		return -1;
	return next(p);
}

static int
parse_between(struct parser *p, const struct field *f, int negate, size_t fpos)
{
	int64_t s1, s2;
	long n1, n2;

	if (!(f->ops & OP_BETWEEN))
		return fail(p, p->tpos, "field '%s' does not support BETWEEN", f->name);
	if (next(p) < 0 || emit(p, "(") < 0 || emit(p, f->column) < 0 ||
	    emit(p, negate ? " NOT BETWEEN " : " BETWEEN ") < 0 || parse_timestamp(p, &s1, &n1) < 0)
		return -1;
	if (!is_kw(p, "AND"))
		return unexpected(p, "AND");
	if (next(p) < 0 || emit(p, " AND ") < 0 || parse_timestamp(p, &s2, &n2) < 0 ||
	    emit(p, ")") < 0)
		return -1;
	if (s1 > s2 || (s1 == s2 && n1 > n2))
		return fail(p, fpos, "the start of '%s' BETWEEN is after its end", f->name);
	/* parse_unary and parse_or take it back when a NOT or an OR encloses it */
	if (f->kind == K_TIME && !negate && p->q->time_lo == 0) {
		p->q->time_lo = p->q->nparams - 1;
		p->q->time_hi = p->q->nparams;
	}
	return 0;
}

static int
parse_like(struct parser *p, const struct field *f, int negate)
{
	if (!(f->ops & OP_LIKE))
		return fail(p, p->tpos, "field '%s' does not support LIKE", f->name);
	if (next(p) < 0)
		return -1;
	if (p->tok != T_STRING)
		return unexpected(p, "a quoted pattern");
	if (f->kind == K_LIST) {
		if (emit(p, negate ? "NOT EXISTS (SELECT 1 FROM unnest("
				   : "EXISTS (SELECT 1 "
				     "FROM unnest(") < 0 ||
		    emit(p, f->column) < 0 || emit(p, ") AS e(v) WHERE e.v LIKE ") < 0 ||
		    emit_param(p) < 0 || emit(p, ")") < 0)
			return -1;
	} else if (emit(p, f->column) < 0 || emit(p, negate ? " NOT LIKE " : " LIKE ") < 0 ||
		   emit_param(p) < 0) {
		return -1;
	}
	return next(p);
}

static int
parse_equal(struct parser *p, const struct field *f)
{
	int ne = p->tok == T_NE;
	size_t i;

	if (!(f->ops & OP_EQ))
		return fail(p, p->tpos, "field '%s' does not support '%.*s'", f->name, (int)p->tlen,
			    p->src + p->tpos);
	if (next(p) < 0)
		return -1;
	if (p->tok != T_STRING)
		return unexpected(p, "a quoted value");
	if (f->check_status) {
		/* Errors stay ASCII (callers may cut them anywhere): echo only such values. */
		int ascii = strlen(p->sval) <= 40;

		for (const char *c = p->sval; *c; c++)
			if (*c < 0x20 || *c > 0x7e)
				ascii = 0;
		for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
			if (strcmp(p->sval, statuses[i]) == 0)
				break;
		if (i == sizeof(statuses) / sizeof(statuses[0]))
			return fail_detail(p, p->tpos,
					   "one of queued, sent, processed, "
					   "delivered, open, click, bounce, ...",
					   "unknown %s%s%s%s", f->name, ascii ? " '" : "",
					   ascii ? p->sval : "", ascii ? "'" : "");
	}
	if (f->kind == K_LIST && ne) {
		if (emit_param(p) < 0 || emit(p, " <> ALL(") < 0 || emit(p, f->column) < 0 ||
		    emit(p, ")") < 0)
			return -1;
	} else if (f->kind == K_LIST) {
		/* "@>", not "= ANY(...)": a GIN index on the column serves it (sql/012) */
		if (emit(p, f->column) < 0 || emit(p, " @> ARRAY[") < 0 || emit_param(p) < 0 ||
		    emit(p, "::text]") < 0)
			return -1;
	} else if (emit(p, f->column) < 0 || emit(p, ne ? " <> " : " = ") < 0 ||
		   emit_param(p) < 0) {
		return -1;
	}
	return next(p);
}

/* condition = field operator value(s); the current token is the field. */
static int
parse_condition(struct parser *p)
{
	const struct field *f = NULL;
	size_t fpos = p->tpos;
	int negate = 0;

	if (p->tok != T_WORD)
		return unexpected(p, "a field name, NOT or '('");
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (is_kw(p, fields[i].name))
			f = &fields[i];
	if (f == NULL)
		return fail(p, p->tpos, "unknown field '%.*s'", p->tlen > 40 ? 40 : (int)p->tlen,
			    p->src + p->tpos);
	if (next(p) < 0)
		return -1;
	if (p->tok == T_EQ || p->tok == T_NE)
		return parse_equal(p, f);
	if (is_kw(p, "NOT")) {
		negate = 1;
		if (next(p) < 0)
			return -1;
		if (!is_kw(p, "LIKE") && !is_kw(p, "BETWEEN"))
			return unexpected(p, "LIKE or BETWEEN after NOT");
	}
	if (is_kw(p, "LIKE"))
		return parse_like(p, f, negate);
	if (is_kw(p, "BETWEEN"))
		return parse_between(p, f, negate, fpos);
	return unexpected(p, "an operator (=, !=, LIKE, BETWEEN)");
}

static int parse_or(struct parser *p, int *top_or);

static int
enter(struct parser *p)
{
	if (p->depth >= MSGQUERY_MAX_DEPTH)
		return fail(p, p->tpos, "nesting deeper than %d", MSGQUERY_MAX_DEPTH);
	p->depth++;
	return 0;
}

/* unary = "NOT" unary | "(" or_expr ")" | condition */
static int
parse_unary(struct parser *p)
{
	if (is_kw(p, "NOT")) {
		int wrap, lo = p->q->time_lo, hi = p->q->time_hi;

		/* "NOT (" only around a condition: a '(' or NOT that follows brings its own. */
		if (enter(p) < 0 || next(p) < 0)
			return -1;
		wrap = p->tok != T_LPAREN && !is_kw(p, "NOT");
		if (emit(p, wrap ? "NOT (" : "NOT ") < 0 || parse_unary(p) < 0 ||
		    (wrap && emit(p, ")") < 0))
			return -1;
		/* no time range found under a NOT bounds the matches */
		p->q->time_lo = lo;
		p->q->time_hi = hi;
		p->depth--;
		return 0;
	}
	if (p->tok == T_LPAREN) {
		size_t open = p->tpos;

		if (enter(p) < 0 || next(p) < 0 || emit(p, "(") < 0 || parse_or(p, NULL) < 0)
			return -1;
		if (p->tok != T_RPAREN) {
			if (p->tok == T_EOF)
				return fail(p, open, "unclosed '('");
			return unexpected(p, "AND, OR or ')'");
		}
		if (emit(p, ")") < 0)
			return -1;
		p->depth--;
		return next(p);
	}
	return parse_condition(p);
}

/* and_expr = unary { "AND" unary } */
static int
parse_and(struct parser *p)
{
	if (parse_unary(p) < 0)
		return -1;
	while (is_kw(p, "AND"))
		if (next(p) < 0 || emit(p, " AND ") < 0 || parse_unary(p) < 0)
			return -1;
	return 0;
}

/* or_expr = and_expr { "OR" and_expr }; *top_or (if not NULL) tells whether OR was met. */
static int
parse_or(struct parser *p, int *top_or)
{
	int lo = p->q->time_lo, hi = p->q->time_hi;

	if (parse_and(p) < 0)
		return -1;
	while (is_kw(p, "OR")) {
		if (top_or != NULL)
			*top_or = 1;
		if (next(p) < 0 || emit(p, " OR ") < 0 || parse_and(p) < 0)
			return -1;
		/* a time range of one side of an OR does not bound the matches */
		p->q->time_lo = lo;
		p->q->time_hi = hi;
	}
	return 0;
}

int
msgquery_parse(const char *query, struct msgquery *q, char *err, size_t errlen)
{
	struct parser p;
	size_t len = strlen(query);
	int top_or = 0, rc = -1;

	memset(q, 0, sizeof(*q));
	memset(&p, 0, sizeof(p));
	p.src = query;
	p.len = len;
	p.q = q;
	p.err = err;
	p.errlen = errlen;
	if (errlen > 0)
		err[0] = '\0';
	if (len > MSGQUERY_MAX_LEN) {
		fail(&p, MSGQUERY_MAX_LEN, "query longer than %d bytes", MSGQUERY_MAX_LEN);
		goto out;
	}
	if ((q->owned = malloc(len + 1)) == NULL) {
		if (errlen > 0)
			snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (next(&p) < 0)
		goto out;
	if (p.tok == T_EOF) {
		fail(&p, 0, "empty query");
		goto out;
	}
	if (parse_or(&p, &top_or) < 0)
		goto out;
	if (p.tok != T_EOF) {
		if (p.tok == T_RPAREN)
			fail(&p, p.tpos, "unmatched ')'");
		else
			unexpected(&p, "AND, OR or the end");
		goto out;
	}
	if (top_or) {
		/* "a OR b" becomes "(a OR b)" so the caller can AND it with more. */
		if (p.wlen + 2 >= sizeof(q->where)) {
			fail_detail(&p, p.tpos, "its SQL would exceed 2047 bytes",
				    "query too complex");
			goto out;
		}
		memmove(q->where + 1, q->where, p.wlen);
		q->where[0] = '(';
		q->where[p.wlen + 1] = ')';
		q->where[p.wlen + 2] = '\0';
	}
	rc = 0;
out:
	if (rc < 0)
		msgquery_release(q);
	return rc;
}

void
msgquery_release(struct msgquery *q)
{
	free(q->owned);
	memset(q, 0, sizeof(*q));
}
