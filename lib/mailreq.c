/*
 * mailreq: SendGrid v3 Mail Send body validation; see mailreq.h.
 *
 * Wording: SendGrid's error documentation (api-reference/mail-send/errors) and the answers
 * its API gives, where known; otherwise a sentence in the same style.  Type mismatches use
 * the API's JSON-schema wording, "Invalid type. Expected: string, given: integer.".
 */
#include "mailreq.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sgerr.h"

/* Longest user text quoted in a message or a field path, in bytes. */
#define QUOTE_MAX 100
#define PATH_LEN 256

#define EG                                                                                         \
	" e.g. {\"email\": \"example@example.com\"} or {\"email\": \"example@example.com\", "      \
	"\"name\": \"Example Recipient\"}"

#define MSG_FROM_REQUIRED                                                                          \
	"The from object must be provided for every email send. It is an object that requires "    \
	"the email parameter, but may also contain a name parameter.  e.g. {\"email\" : "          \
	"\"example@example.com\"}  or {\"email\" : \"example@example.com\", \"name\" : "           \
	"\"Example Recipient\"}."
#define MSG_PERSONALIZATIONS_REQUIRED                                                              \
	"The personalizations field is required and must have at least one personalization."
#define MSG_TOO_MANY_PERSONALIZATIONS                                                              \
	"The personalization block is limited to 1000 personalizations per API request. You "      \
	"have provided %zu personalizations. Please consider splitting this into multiple "        \
	"requests and resending your request."
#define MSG_TOO_MANY_RECIPIENTS                                                                    \
	"There is a limit of 1000 total recipients (to + cc + bcc) per request."
#define MSG_TO_REQUIRED "The to parameter is required for all personalization objects."
#define MSG_DUPLICATE                                                                              \
	"Each unique email address in the personalization block should only be included once. "    \
	"You have included %s more than once."
#define MSG_NAME_SEPARATORS                                                                        \
	"The to.name, cc.name, and bcc.name personalizations cannot include either the ; or , "    \
	"characters."
#define MSG_NAME_CRLF "The name can't contain CRLF characters."
#define MSG_FROM_UNICODE "Unicode encoding is not supported for the from field."
#define MSG_INVALID_ADDRESS "Does not contain a valid address."
#define MSG_SUBJECT_STRING                                                                         \
	"The subject of your email must be a string at least one character in length."
#define MSG_SUBJECT_REQUIRED                                                                       \
	"The subject is required. You can get around this requirement if you use a template with " \
	"a subject defined or if every personalization has a subject defined."
#define MSG_SUBJECT_CRLF "The subject of your email can't contain CRLF characters."
#define MSG_CONTENT_REQUIRED                                                                       \
	"Unless a valid template_id is provided, the content parameter is required. There must "   \
	"be at least one defined content block. We typically suggest both text/plain and "         \
	"text/html blocks are included, but only one block is required."
#define MSG_CONTENT_ORDER                                                                          \
	"Following RFC 1341, section 7.2, if either text/html or text/plain are to be sent in "    \
	"your email: text/plain needs to be first, followed by text/html, followed by any other "  \
	"content."
#define MSG_SEND_AT_TYPE                                                                           \
	"The send_at parameter is expecting a UNIX timestamp as an integer. We will send "         \
	"immediately if you include a send_at timestamp that is in the past."
#define MSG_SEND_AT_AHEAD "Scheduling more than 72 hours in advance is forbidden."
#define MSG_CUSTOM_ARGS_SIZE                                                                       \
	"The combined size of both global and personalization custom arguments may not exceed "    \
	"10,000 bytes per personalization."
#define MSG_SUBSTITUTIONS                                                                          \
	"The substitution values must be an object of key/value pairs, where the values are all "  \
	"strings."

enum addr_kind { ADDR_TO, ADDR_CC, ADDR_BCC, ADDR_FROM, ADDR_REPLY_TO, ADDR_REPLY_TO_LIST };

static const struct {
	const char *key;      /* the array's name in a personalization */
	const char *missing;  /* no email, or an empty one */
	const char *empty;    /* an empty array */
	const char *invalid;  /* not an address */
	const char *too_long; /* over MAILREQ_MAX_ADDRESS */
	int recipient;        /* a personalization's to/cc/bcc: no ';' or ',' in the name */
	int ascii_only;       /* the from address: no Unicode */
} kinds[] = {
    [ADDR_TO] = {"to",
		 "Each to object must at least have an email address and may also contain a "
		 "name." EG,
		 "The to array must at least have an email parameter with a valid email address "
		 "and it may also contain a name parameter." EG,
		 MSG_INVALID_ADDRESS,
		 "The To email exceeds the maximum total length of 320 characters", 1, 0},
    [ADDR_CC] =
	{"cc",
	 "Each recipient object must at least have an email address and may also contain "
	 "a name." EG,
	 "The cc array, when used, must at least have an email parameter with a valid email "
	 "address and it may also contain a name parameter." EG,
	 MSG_INVALID_ADDRESS, "The CC email exceeds the maximum total length of 320 characters", 1,
	 0},
    [ADDR_BCC] = {"bcc",
		  "Each recipient object must at least have an email address and may also "
		  "contain a name." EG,
		  "The bcc array, when used, must at least have an email parameter with a valid "
		  "email address and it may also contain a name parameter." EG,
		  MSG_INVALID_ADDRESS,
		  "The BCC email exceeds the maximum total length of 320 characters", 1, 0},
    [ADDR_FROM] = {"from", MSG_FROM_REQUIRED, NULL,
		   "The from email does not contain a valid address.",
		   "The from email exceeds the maximum total length of 320 characters", 0, 1},
    [ADDR_REPLY_TO] = {"reply_to",
		       "The reply_to object, when used, must at least have an email parameter "
		       "with a valid email address and it may also contain a name parameter." EG,
		       NULL, "The reply_to email does not contain a valid address.",
		       "The reply_to email exceeds the maximum total length of 320 characters", 0,
		       0},
    [ADDR_REPLY_TO_LIST] = {"reply_to_list",
			    "Each reply_to_list object must at least have an email address and "
			    "may also contain a name." EG,
			    NULL, MSG_INVALID_ADDRESS,
			    "The reply_to_list email exceeds the maximum total length of 320 "
			    "characters",
			    0, 0},
};

/* Header names SendGrid reserves for itself (compared without regard to case). */
static const char *const reserved_headers[] = {
    "x-sg-id",      "x-sg-eid",
    "received",     "dkim-signature",
    "content-type", "content-transfer-encoding",
    "to",           "from",
    "subject",      "reply-to",
    "cc",           "bcc",
};

struct ctx {
	json_t *errors; /* the answer being built */
	size_t count;   /* entries added */
	long now;
	int full; /* MAILREQ_MAX_ERRORS reached: nothing more is added */
	int oom;  /* an entry could not be added */
};

static void add(struct ctx *c, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
add(struct ctx *c, const char *field, const char *fmt, ...)
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

static const char *
jtype(const json_t *v)
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

static void
type_error(struct ctx *c, const char *field, const char *expected, const json_t *v)
{
	add(c, field, "Invalid type. Expected: %s, given: %s.", expected, jtype(v));
}

/*
 * Copies at most QUOTE_MAX bytes of s into buf (QUOTE_MAX + 4 bytes), cut on a UTF-8
 * character boundary and marked with "..." when cut, so a quote never breaks the UTF-8 that
 * sgerr_entry() needs.  Returns buf.
 */
static const char *
clip(const char *s, char buf[QUOTE_MAX + 4])
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
static const char *
clip_json(const json_t *v, char buf[QUOTE_MAX + 4])
{
	char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

	clip(s ? s : "?", buf);
	free(s);
	return buf;
}

static const char *pathf(char buf[PATH_LEN], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static const char *
pathf(char buf[PATH_LEN], const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, PATH_LEN, fmt, ap);
	va_end(ap);
	return buf;
}

/* CR, LF or NUL anywhere in the string v (its whole length, not up to a NUL). */
static int
has_crlf(const json_t *v)
{
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);

	for (size_t i = 0; i < len; i++)
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
			return 1;
	return 0;
}

static int
has_any(const json_t *v, const char *set)
{
	return strpbrk(json_string_value(v), set) != NULL || has_crlf(v);
}

static int
is_ascii(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 0;
	return 1;
}

/*
 * A sane address: local@domain, no white space or control characters, none of the
 * characters that need quoting (no quoted local parts), local part 1..64 bytes without a
 * leading, trailing or doubled dot, a domain of at least two dot-separated labels of 1..63
 * letters, digits, hyphens (not at either end) or UTF-8 bytes.
 */
static int
address_ok(const char *s, size_t len)
{
	const char *at = NULL, *d, *end = s + len;
	size_t labels = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch <= 0x20 || ch == 0x7f || strchr("<>()[]\\,;:\"", ch) != NULL)
			return 0;
		if (ch == '@') {
			if (at != NULL)
				return 0;
			at = s + i;
		}
	}
	if (at == NULL || at == s || at - s > 64 || end - (at + 1) > 255)
		return 0;
	if (s[0] == '.' || at[-1] == '.' || memmem(s, (size_t)(at - s), "..", 2) != NULL)
		return 0;
	d = at + 1;
	for (size_t start = 0, dlen = (size_t)(end - d);; start++) {
		const char *e = memchr(d + start, '.', dlen - start);
		size_t stop = e != NULL ? (size_t)(e - d) : dlen, n = stop - start;

		if (n == 0 || n > 63 || d[start] == '-' || d[stop - 1] == '-')
			return 0;
		for (; start < stop; start++) {
			unsigned char ch = (unsigned char)d[start];

			if (!(ch >= 0x80 || ch == '-' || (ch >= '0' && ch <= '9') ||
			      (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')))
				return 0;
		}
		labels++;
		if (stop == dlen)
			break;
	}
	return labels >= 2;
}

/*
 * Checks the address object v at path (a recipient, from, reply_to...).  Returns its email
 * when that is valid (borrowed from v), else NULL.
 */
static const char *
check_address(struct ctx *c, const char *path, json_t *v, enum addr_kind kind)
{
	char field[PATH_LEN];
	const char *ok = NULL;
	json_t *email, *name;

	if (!json_is_object(v)) {
		type_error(c, path, "object", v);
		return NULL;
	}
	pathf(field, "%s.email", path);
	email = json_object_get(v, "email");
	if (email != NULL && !json_is_string(email)) {
		type_error(c, field, "string", email);
	} else if (email == NULL || json_string_length(email) == 0) {
		add(c, field, "%s", kinds[kind].missing);
	} else if (json_string_length(email) > MAILREQ_MAX_ADDRESS) {
		add(c, field, "%s", kinds[kind].too_long);
	} else if (!address_ok(json_string_value(email), json_string_length(email))) {
		add(c, field, "%s", kinds[kind].invalid);
	} else if (kinds[kind].ascii_only &&
		   !is_ascii(json_string_value(email), json_string_length(email))) {
		add(c, field, MSG_FROM_UNICODE);
	} else {
		ok = json_string_value(email);
	}

	if ((name = json_object_get(v, "name")) == NULL)
		return ok;
	pathf(field, "%s.name", path);
	if (!json_is_string(name))
		type_error(c, field, "string", name);
	else if (has_crlf(name))
		add(c, field, MSG_NAME_CRLF);
	else if (kinds[kind].recipient && strpbrk(json_string_value(name), ";,") != NULL)
		add(c, field, MSG_NAME_SEPARATORS);
	else if (kinds[kind].ascii_only &&
		 !is_ascii(json_string_value(name), json_string_length(name)))
		add(c, field, MSG_FROM_UNICODE);
	return ok;
}

/*
 * Adds email to seen (an object used as a set, keys lower-cased); returns 1 when it was
 * there already.  email is at most MAILREQ_MAX_ADDRESS bytes (check_address() said so).
 */
static int
seen_before(struct ctx *c, json_t *seen, const char *email)
{
	char low[MAILREQ_MAX_ADDRESS + 1];
	size_t i;

	for (i = 0; email[i] != '\0' && i < MAILREQ_MAX_ADDRESS; i++)
		low[i] = (email[i] >= 'A' && email[i] <= 'Z') ? (char)(email[i] + 32) : email[i];
	low[i] = '\0';
	if (json_object_get(seen, low) != NULL)
		return 1;
	if (json_object_set_new(seen, low, json_true()) < 0)
		c->oom = 1;
	return 0;
}

/* A personalization's to, cc or bcc (or the body's reply_to_list): an array of addresses. */
static void
check_address_list(struct ctx *c, const char *prefix, json_t *list, enum addr_kind kind,
		   json_t *seen, const char *dup_msg)
{
	char path[PATH_LEN], quote[QUOTE_MAX + 4];
	size_t i;
	json_t *v;

	if (!json_is_array(list)) {
		type_error(c, prefix, "array", list);
		return;
	}
	if (json_array_size(list) == 0 && kinds[kind].empty != NULL)
		add(c, prefix, "%s", kinds[kind].empty);
	json_array_foreach(list, i, v)
	{
		const char *email;

		if (c->full)
			return;
		pathf(path, "%s.%zu", prefix, i);
		if ((email = check_address(c, path, v, kind)) != NULL && seen != NULL &&
		    seen_before(c, seen, email))
			add(c, pathf(path, "%s.%zu.email", prefix, i), dup_msg, clip(email, quote));
	}
}

/* An object whose values must all be strings (custom_args, substitutions); 1 when it is. */
static int
check_string_map(struct ctx *c, const char *prefix, json_t *v, const char *msg)
{
	char path[PATH_LEN], quote[QUOTE_MAX + 4];
	const char *key;
	json_t *val;
	int ok = 1;

	json_object_foreach(v, key, val)
	{
		if (!json_is_string(val)) {
			add(c, pathf(path, "%s.%s", prefix, clip(key, quote)), "%s", msg);
			ok = 0;
		}
	}
	return ok;
}

/* custom_args (body or personalization); returns 1 when it is a valid object. */
static int
check_custom_args(struct ctx *c, const char *path, json_t *v)
{
	if (!json_is_object(v)) {
		type_error(c, path, "object", v);
		return 0;
	}
	if (json_object_size(v) == 0) {
		add(c, path, "custom_args can't be empty.");
		return 0;
	}
	return check_string_map(c, path, v,
				"All values of custom arguments object must be strings");
}

/* custom_args that check_custom_args() would accept, said without a word. */
static int
custom_args_valid(json_t *v)
{
	const char *key;
	json_t *val;

	if (!json_is_object(v) || json_object_size(v) == 0)
		return 0;
	json_object_foreach(v, key, val)
	{
		if (!json_is_string(val))
			return 0;
	}
	return 1;
}

/* Bytes of v as compact JSON. */
static size_t
json_size(const json_t *v)
{
	return json_dumpb(v, NULL, 0, JSON_COMPACT);
}

static void
check_send_at(struct ctx *c, const char *path, json_t *v)
{
	if (!json_is_integer(v))
		add(c, path, MSG_SEND_AT_TYPE);
	else if (json_integer_value(v) > (json_int_t)c->now + MAILREQ_MAX_SEND_AHEAD)
		add(c, path, MSG_SEND_AT_AHEAD);
}

static void
check_headers(struct ctx *c, const char *prefix, json_t *v, const char *value_msg)
{
	char path[PATH_LEN], quote[QUOTE_MAX + 4], low[PATH_LEN];
	const char *key;
	json_t *val, *seen;

	if (!json_is_object(v)) {
		type_error(c, prefix, "object", v);
		return;
	}
	if ((seen = json_object()) == NULL) {
		c->oom = 1;
		return;
	}
	json_object_foreach(v, key, val)
	{
		size_t len = strlen(key), i,
		       nreserved = sizeof(reserved_headers) / sizeof(*reserved_headers);
		int name_ok = len > 0;

		pathf(path, "%s.%s", prefix, clip(key, quote));
		for (i = 0; name_ok && i < len; i++) {
			unsigned char ch = (unsigned char)key[i];

			name_ok = ch > 0x20 && ch < 0x7f && ch != ':';
			if (i < sizeof(low) - 1)
				low[i] = (char)((ch >= 'A' && ch <= 'Z') ? ch + 32 : ch);
		}
		if (!name_ok) {
			add(c, path,
			    "Header keys can't contain non-ASCII characters or empty spaces.");
			continue;
		}
		low[len < sizeof(low) ? len : sizeof(low) - 1] = '\0';
		for (i = 0; i < nreserved; i++)
			if (strcmp(low, reserved_headers[i]) == 0)
				break;
		if (i < nreserved)
			add(c, path, "Header can not be one of the reserved keys.");
		else if (seen_before(c, seen, low))
			add(c, path, "The headers can't contain duplicate keys.");
		if (!json_is_string(val))
			add(c, path, "%s", value_msg);
		else if (has_crlf(val))
			add(c, path, "The header values can't contain CRLF characters.");
	}
	json_decref(seen);
}

/*
 * A subject (body or personalization).  Returns 0 when it is absent or empty, else 1, an
 * invalid subject included: its own error says enough, "required" would be noise.
 */
static int
check_subject(struct ctx *c, const char *path, json_t *v)
{
	if (v == NULL)
		return 0;
	if (!json_is_string(v))
		add(c, path, MSG_SUBJECT_STRING);
	else if (has_crlf(v))
		add(c, path, MSG_SUBJECT_CRLF);
	else
		return json_string_length(v) > 0;
	return 1;
}

/*
 * One personalization at index i.  Adds its recipients to *recipients; sets *has_subject;
 * custom_args_ok tells whether its custom_args may be measured.
 */
static void
check_personalization(struct ctx *c, size_t i, json_t *p, size_t *recipients, int *has_subject,
		      int *custom_args_ok)
{
	static const enum addr_kind lists[] = {ADDR_TO, ADDR_CC, ADDR_BCC};
	char prefix[PATH_LEN], path[PATH_LEN];
	json_t *v, *seen;

	*has_subject = 0;
	*custom_args_ok = 0;
	pathf(prefix, "personalizations.%zu", i);
	if (!json_is_object(p)) {
		type_error(c, prefix, "object", p);
		return;
	}
	if ((seen = json_object()) == NULL) {
		c->oom = 1;
		return;
	}
	if (json_object_get(p, "to") == NULL)
		add(c, pathf(path, "%s.to", prefix), MSG_TO_REQUIRED);
	for (size_t k = 0; k < sizeof(lists) / sizeof(lists[0]); k++) {
		const char *key = kinds[lists[k]].key;

		if ((v = json_object_get(p, key)) == NULL)
			continue;
		if (json_is_array(v))
			*recipients += json_array_size(v);
		check_address_list(c, pathf(path, "%s.%s", prefix, key), v, lists[k], seen,
				   MSG_DUPLICATE);
	}
	json_decref(seen);

	if ((v = json_object_get(p, "from")) != NULL)
		check_address(c, pathf(path, "%s.from", prefix), v, ADDR_FROM);
	*has_subject =
	    check_subject(c, pathf(path, "%s.subject", prefix), json_object_get(p, "subject"));
	if ((v = json_object_get(p, "headers")) != NULL)
		check_headers(c, pathf(path, "%s.headers", prefix), v,
			      "All values of the headers object must be strings.");
	if ((v = json_object_get(p, "substitutions")) != NULL) {
		pathf(path, "%s.substitutions", prefix);
		if (!json_is_object(v))
			add(c, path, MSG_SUBSTITUTIONS);
		else if (json_object_size(v) > MAILREQ_MAX_SUBSTITUTIONS)
			add(c, path,
			    "Substitutions are limited to 150 items per personalization "
			    "block.");
		else
			check_string_map(c, path, v, MSG_SUBSTITUTIONS);
	}
	if ((v = json_object_get(p, "dynamic_template_data")) != NULL && !json_is_object(v))
		type_error(c, pathf(path, "%s.dynamic_template_data", prefix), "object", v);
	if ((v = json_object_get(p, "custom_args")) != NULL)
		*custom_args_ok = check_custom_args(c, pathf(path, "%s.custom_args", prefix), v);
	if ((v = json_object_get(p, "send_at")) != NULL)
		check_send_at(c, pathf(path, "%s.send_at", prefix), v);
}

/*
 * The custom_args size limit, applied like SendGrid: global (a valid object, or NULL) merged
 * into each personalization whose own custom_args are valid (ok[i]).
 */
static void
check_custom_args_size(struct ctx *c, json_t *global, json_t *personalizations, const int *ok)
{
	char path[PATH_LEN];
	size_t i;
	json_t *p;

	if (global != NULL && json_size(global) >= MAILREQ_MAX_CUSTOM_ARGS) {
		add(c, "custom_args", MSG_CUSTOM_ARGS_SIZE);
		return;
	}
	json_array_foreach(personalizations, i, p)
	{
		json_t *merged;

		if (!ok[i])
			continue;
		merged = global != NULL ? json_copy(global) : json_object();
		if (merged == NULL ||
		    json_object_update(merged, json_object_get(p, "custom_args"))) {
			c->oom = 1;
		} else if (json_size(merged) >= MAILREQ_MAX_CUSTOM_ARGS) {
			add(c, pathf(path, "personalizations.%zu.custom_args", i),
			    MSG_CUSTOM_ARGS_SIZE);
		}
		json_decref(merged);
	}
}

static void
check_personalizations(struct ctx *c, json_t *body, json_t *custom_args, int *all_subjects,
		       struct mailreq_info *info)
{
	json_t *list = json_object_get(body, "personalizations"), *p;
	int *ok = NULL, has_subject;
	size_t i, n;

	*all_subjects = 0;
	if (list == NULL || (json_is_array(list) && json_array_size(list) == 0)) {
		add(c, "personalizations", MSG_PERSONALIZATIONS_REQUIRED);
		return;
	}
	if (!json_is_array(list)) {
		type_error(c, "personalizations", "array", list);
		return;
	}
	n = info->personalizations = json_array_size(list);
	if (n > MAILREQ_MAX_PERSONALIZATIONS)
		add(c, "personalizations", MSG_TOO_MANY_PERSONALIZATIONS, n);
	if ((ok = calloc(n, sizeof(*ok))) == NULL) {
		c->oom = 1;
		return;
	}
	*all_subjects = 1;
	json_array_foreach(list, i, p)
	{
		check_personalization(c, i, p, &info->recipients, &has_subject, &ok[i]);
		*all_subjects &= has_subject;
	}
	if (info->recipients > MAILREQ_MAX_RECIPIENTS)
		add(c, "personalizations", MSG_TOO_MANY_RECIPIENTS);
	check_custom_args_size(c, custom_args, list, ok);
	free(ok);
}

static void
check_from(struct ctx *c, json_t *body)
{
	json_t *v = json_object_get(body, "from");

	if (v == NULL)
		add(c, "from.email", MSG_FROM_REQUIRED);
	else
		check_address(c, "from", v, ADDR_FROM);
}

static void
check_reply_to(struct ctx *c, json_t *body)
{
	json_t *one = json_object_get(body, "reply_to"),
	       *list = json_object_get(body, "reply_to_list");
	json_t *seen;

	if (one != NULL)
		check_address(c, "reply_to", one, ADDR_REPLY_TO);
	if (list == NULL)
		return;
	if (one != NULL)
		add(c, "reply_to_list",
		    "You can either choose to use \"reply_to\" field or \"reply_to_list\" but not "
		    "both.");
	if (json_is_array(list) && json_array_size(list) > MAILREQ_MAX_REPLY_TO_LIST)
		add(c, "reply_to_list",
		    "The reply_to_list may not contain more than 1000 addresses.");
	if ((seen = json_object()) == NULL) {
		c->oom = 1;
		return;
	}
	check_address_list(c, "reply_to_list", list, ADDR_REPLY_TO_LIST, seen,
			   "Each unique email address in the reply_to_list should only be included "
			   "once. You have included %s more than once.");
	json_decref(seen);
}

/* Position of the first content entry of type t (case-insensitive), or -1. */
static long
content_index(json_t *content, const char *t)
{
	size_t i;
	json_t *v;

	json_array_foreach(content, i, v)
	{
		json_t *type = json_object_get(v, "type");

		if (json_is_string(type) && strcasecmp(json_string_value(type), t) == 0)
			return (long)i;
	}
	return -1;
}

static void
check_content(struct ctx *c, json_t *content, int has_template)
{
	char path[PATH_LEN];
	long plain, html;
	size_t i;
	json_t *v;

	if (content == NULL || (json_is_array(content) && json_array_size(content) == 0)) {
		if (!has_template)
			add(c, "content", MSG_CONTENT_REQUIRED);
		return;
	}
	if (!json_is_array(content)) {
		type_error(c, "content", "array", content);
		return;
	}
	json_array_foreach(content, i, v)
	{
		json_t *type, *value;

		if (!json_is_object(v)) {
			type_error(c, pathf(path, "content.%zu", i), "object", v);
			continue;
		}
		pathf(path, "content.%zu.type", i);
		if ((type = json_object_get(v, "type")) == NULL)
			add(c, path,
			    "A content type is required, this tells email clients how to display "
			    "the "
			    "email.");
		else if (!json_is_string(type) || json_string_length(type) == 0)
			add(c, path,
			    "Your content type must be a string with length of at least one "
			    "character.");
		else if (has_any(type, ";"))
			add(c, path, "Cannot contain ';', or CRLF characters.");
		pathf(path, "content.%zu.value", i);
		if ((value = json_object_get(v, "value")) == NULL)
			add(c, path,
			    "A content value is required, this is the content of the email you are "
			    "sending.");
		else if (!json_is_string(value) || json_string_length(value) == 0)
			add(c, path,
			    "The content value must be a string at least one character in length.");
	}
	plain = content_index(content, "text/plain");
	html = content_index(content, "text/html");
	if (plain > 0)
		add(c, pathf(path, "content.%ld.type", plain), MSG_CONTENT_ORDER);
	else if (html >= 0 && html != plain + 1)
		add(c, pathf(path, "content.%ld.type", html), MSG_CONTENT_ORDER);
}

/* Standard base64 (RFC 4648 section 4): no white space, padding optional but correct. */
static int
base64_ok(const char *s, size_t len)
{
	size_t pad = 0;

	while (len > 0 && s[len - 1] == '=' && pad < 2) {
		len--;
		pad++;
	}
	if ((pad && (len + pad) % 4 != 0) || len % 4 == 1)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= '0' && ch <= '9') || ch == '+' || ch == '/'))
			return 0;
	}
	return 1;
}

static void
check_attachment(struct ctx *c, size_t i, json_t *a)
{
	char path[PATH_LEN], quote[QUOTE_MAX + 4];
	json_t *v, *disposition;
	int inline_ = 0;

	if (!json_is_object(a)) {
		type_error(c, pathf(path, "attachments.%zu", i), "object", a);
		return;
	}
	pathf(path, "attachments.%zu.content", i);
	v = json_object_get(a, "content");
	if (!json_is_string(v) || json_string_length(v) == 0)
		add(c, path,
		    "The attachment content must be a string at least one character in "
		    "length.");
	else if (!base64_ok(json_string_value(v), json_string_length(v)))
		add(c, path, "The attachment content must be base64 encoded.");

	pathf(path, "attachments.%zu.filename", i);
	v = json_object_get(a, "filename");
	if (v != NULL && !json_is_string(v))
		add(c, path, "The filename of your attachment must be a string.");
	else if (v == NULL || json_string_length(v) == 0)
		add(c, path, "filename is required.");
	else if (has_crlf(v))
		add(c, path, "The filename of your attachment can't contain CRLF characters.");

	pathf(path, "attachments.%zu.type", i);
	if ((v = json_object_get(a, "type")) != NULL) {
		if (!json_is_string(v) || json_string_length(v) == 0)
			add(c, path,
			    "The attachment type must be a string and at least one "
			    "character in length.");
		else if (has_any(v, ";"))
			add(c, path, "The type can't contain ';', or CRLF characters.");
	}

	pathf(path, "attachments.%zu.disposition", i);
	if ((disposition = json_object_get(a, "disposition")) != NULL) {
		const char *d = json_string_value(disposition);

		if (d != NULL && strcmp(d, "inline") == 0)
			inline_ = 1;
		else if (d == NULL || strcmp(d, "attachment") != 0)
			add(c, path,
			    "The disposition of your attachment can be either \"inline\" or "
			    "\"attachment\". You provided %s.",
			    clip_json(disposition, quote));
	}

	pathf(path, "attachments.%zu.content_id", i);
	if ((v = json_object_get(a, "content_id")) != NULL && !json_is_string(v)) {
		add(c, path, "The content ID of your attachment must be a string. You provided %s.",
		    clip_json(v, quote));
	} else if (v != NULL && has_any(v, ";,")) {
		add(c, path, "The content ID of your attachment can't contain CRLF characters.");
	} else if (inline_ && (v == NULL || json_string_length(v) == 0)) {
		add(c, path,
		    "The content_id parameter is required if the disposition is set to "
		    "\"inline\".");
	}
}

static void
check_attachments(struct ctx *c, json_t *list)
{
	size_t i;
	json_t *a;

	if (!json_is_array(list)) {
		type_error(c, "attachments", "array", list);
		return;
	}
	json_array_foreach(list, i, a)
	{
		if (c->full)
			return;
		check_attachment(c, i, a);
	}
}

static void
check_categories(struct ctx *c, json_t *list)
{
	char path[PATH_LEN], quote[QUOTE_MAX + 4];
	json_t *v, *seen;
	size_t i;

	if (!json_is_array(list)) {
		add(c, "categories", "Categories must be an array of strings.");
		return;
	}
	if (json_array_size(list) > MAILREQ_MAX_CATEGORIES)
		add(c, "categories",
		    "There is a limit of 10 categories for each email that is sent. You provided "
		    "%zu "
		    "categories.",
		    json_array_size(list));
	if ((seen = json_object()) == NULL) {
		c->oom = 1;
		return;
	}
	json_array_foreach(list, i, v)
	{
		const char *s = json_string_value(v);

		pathf(path, "categories.%zu", i);
		if (s == NULL)
			add(c, path, "Categories must be an array of strings.");
		else if (!is_ascii(s, json_string_length(v)) || has_crlf(v))
			add(c, path, "Categories can not contain non-ASCII characters.");
		else if (json_string_length(v) > MAILREQ_MAX_CATEGORY_LEN)
			add(c, path,
			    "Each category must not be longer than 255 characters. %s exceeds this "
			    "limit.",
			    clip(s, quote));
		else if (json_object_get(seen, s) != NULL)
			add(c, path,
			    "The categories must be a unique list, and you have included %s more "
			    "than "
			    "once.",
			    clip(s, quote));
		else if (json_object_set_new(seen, s, json_true()) < 0)
			c->oom = 1;
	}
	json_decref(seen);
}

static void
check_asm(struct ctx *c, json_t *v)
{
	char path[PATH_LEN];
	json_t *groups, *g;
	size_t i;

	if (!json_is_object(v)) {
		type_error(c, "asm", "object", v);
		return;
	}
	if (!json_is_integer(json_object_get(v, "group_id")))
		add(c, "asm.group_id", "The ASM group ID must be an integer.");
	if ((groups = json_object_get(v, "groups_to_display")) == NULL)
		return;
	if (!json_is_array(groups)) {
		add(c, "asm.groups_to_display",
		    "The ASM Group IDs to display must be an array of integers.");
		return;
	}
	if (json_array_size(groups) > MAILREQ_MAX_GROUPS_TO_DISPLAY)
		add(c, "asm.groups_to_display",
		    "There is a limit of 25 unsubscribe groups that can be displayed to a user at "
		    "a "
		    "time.");
	json_array_foreach(groups, i, g)
	{
		if (!json_is_integer(g))
			add(c, pathf(path, "asm.groups_to_display.%zu", i),
			    "The ASM Group IDs to display must be an array of integers.");
	}
}

enum setting_type { SET_BOOL, SET_STRING, SET_THRESHOLD, SET_URL };

/* mail_settings and tracking_settings: what each known parameter must be. */
static const struct setting {
	const char *section, *name, *key;
	enum setting_type type;
	const char *msg;
} settings[] = {
    {"mail_settings", "bcc", "enable", SET_BOOL, "The bcc enable param should be a Boolean value."},
    {"mail_settings", "bcc", "email", SET_STRING, "The bcc email must be a string."},
    {"mail_settings", "bypass_list_management", "enable", SET_BOOL,
     "The bypass list management enable param should be a Boolean value."},
    {"mail_settings", "bypass_spam_management", "enable", SET_BOOL,
     "The bypass spam management enable param should be a Boolean value."},
    {"mail_settings", "bypass_bounce_management", "enable", SET_BOOL,
     "The bypass bounce management enable param should be a Boolean value."},
    {"mail_settings", "bypass_unsubscribe_management", "enable", SET_BOOL,
     "The bypass unsubscribe management enable param should be a Boolean value."},
    {"mail_settings", "footer", "enable", SET_BOOL,
     "The footer enable param should be a Boolean value."},
    {"mail_settings", "footer", "text", SET_STRING,
     "The text/plain version of your footer should be a string."},
    {"mail_settings", "footer", "html", SET_STRING,
     "The text/html version of your footer should be a string."},
    {"mail_settings", "sandbox_mode", "enable", SET_BOOL,
     "The sandbox mode enable param should be a boolean value."},
    {"mail_settings", "spam_check", "enable", SET_BOOL,
     "The spam check enable param should be a boolean value."},
    {"mail_settings", "spam_check", "threshold", SET_THRESHOLD,
     "The spam check threshold is between 1 and 10, with the lower numbers being the most "
     "strict filtering."},
    {"mail_settings", "spam_check", "post_to_url", SET_URL,
     "The post_to_url parameter must start with http:// or https://."},
    {"tracking_settings", "click_tracking", "enable", SET_BOOL,
     "The click tracking enable param should be a boolean value."},
    {"tracking_settings", "click_tracking", "enable_text", SET_BOOL,
     "The click tracking enable text must be a boolean value."},
    {"tracking_settings", "open_tracking", "enable", SET_BOOL,
     "The open tracking enable param should be a boolean value."},
    {"tracking_settings", "open_tracking", "substitution_tag", SET_STRING,
     "The open tracking substitution tag must be a string."},
    {"tracking_settings", "subscription_tracking", "enable", SET_BOOL,
     "The subscription tracking enable param should be a boolean value."},
    {"tracking_settings", "subscription_tracking", "text", SET_STRING,
     "The subscription tracking unsubscribe content for text/plain messages must be a "
     "string."},
    {"tracking_settings", "subscription_tracking", "html", SET_STRING,
     "The subscription tracking unsubscribe content for text/html messages must be a "
     "string."},
    {"tracking_settings", "subscription_tracking", "substitution_tag", SET_STRING,
     "The subscription tracking substitution tag must be a string value."},
    {"tracking_settings", "ganalytics", "enable", SET_BOOL,
     "The Google Analytics enable param must be a boolean value."},
    {"tracking_settings", "ganalytics", "utm_source", SET_STRING,
     "The Google Analytics utm_source must be a string value."},
    {"tracking_settings", "ganalytics", "utm_medium", SET_STRING,
     "The Google Analytics utm_medium must be a string value."},
    {"tracking_settings", "ganalytics", "utm_term", SET_STRING,
     "The Google Analytics utm_term must be a string value."},
    {"tracking_settings", "ganalytics", "utm_content", SET_STRING,
     "The Google Analytics utm_content must be a string value."},
    {"tracking_settings", "ganalytics", "utm_campaign", SET_STRING,
     "The Google Analytics utm_campaign must be a string value."},
};

static int
setting_ok(const struct setting *s, json_t *v)
{
	switch (s->type) {
	case SET_BOOL: return json_is_boolean(v);
	case SET_STRING: return json_is_string(v);
	case SET_THRESHOLD:
		return json_is_integer(v) && json_integer_value(v) >= 1 &&
		       json_integer_value(v) <= 10;
	case SET_URL:
		return json_is_string(v) && (strncmp(json_string_value(v), "http://", 7) == 0 ||
					     strncmp(json_string_value(v), "https://", 8) == 0);
	}
	return 0;
}

/* Checks section (mail_settings or tracking_settings) of body against the table. */
static void
check_settings(struct ctx *c, json_t *body, const char *section)
{
	json_t *sec = json_object_get(body, section);
	char path[PATH_LEN];

	if (sec == NULL)
		return;
	if (!json_is_object(sec)) {
		type_error(c, section, "object", sec);
		return;
	}
	for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
		const struct setting *s = &settings[i];
		json_t *obj, *v;

		if (strcmp(s->section, section) != 0 ||
		    (obj = json_object_get(sec, s->name)) == NULL)
			continue;
		if (!json_is_object(obj)) {
			/* Report a setting that is not an object once, at its first key. */
			if (i == 0 || strcmp(settings[i - 1].name, s->name) != 0)
				type_error(c, pathf(path, "%s.%s", section, s->name), "object",
					   obj);
			continue;
		}
		if ((v = json_object_get(obj, s->key)) != NULL && !setting_ok(s, v))
			add(c, pathf(path, "%s.%s.%s", section, s->name, s->key), "%s", s->msg);
	}
}

/* The body's other parameters, in the order SendGrid documents them. */
static void
check_others(struct ctx *c, json_t *body)
{
	char quote[QUOTE_MAX + 4];
	json_t *v;

	if ((v = json_object_get(body, "template_id")) != NULL && !json_is_string(v))
		add(c, "template_id", "The template ID must be a string, you provided %s.",
		    clip_json(v, quote));
	if ((v = json_object_get(body, "attachments")) != NULL)
		check_attachments(c, v);
	if ((v = json_object_get(body, "headers")) != NULL)
		check_headers(c, "headers", v, "The header values must be strings.");
	if ((v = json_object_get(body, "categories")) != NULL)
		check_categories(c, v);
	if ((v = json_object_get(body, "custom_args")) != NULL)
		check_custom_args(c, "custom_args", v);
	if ((v = json_object_get(body, "send_at")) != NULL)
		check_send_at(c, "send_at", v);
	if ((v = json_object_get(body, "batch_id")) != NULL && !json_is_string(v))
		add(c, "batch_id", "The batch_id must be a string.");
	if ((v = json_object_get(body, "asm")) != NULL)
		check_asm(c, v);
	if ((v = json_object_get(body, "ip_pool_name")) != NULL) {
		if (!json_is_string(v))
			add(c, "ip_pool_name", "The name of your IP pool must be a string.");
		else if (json_string_length(v) < 2 || json_string_length(v) > 64)
			add(c, "ip_pool_name",
			    "The name of your IP pool must be between 2 and 64 characters. You "
			    "provided %s.",
			    clip(json_string_value(v), quote));
	}
	check_settings(c, body, "mail_settings");
	check_settings(c, body, "tracking_settings");
}

json_t *
mailreq_validate(json_t *body, long now, struct mailreq_info *info)
{
	struct ctx c = {.now = now};
	struct mailreq_info local;
	json_t *v, *custom_args, *sandbox;
	int has_template = 0, all_subjects = 0, top_subject;

	if (info == NULL)
		info = &local;
	memset(info, 0, sizeof(*info));
	if ((c.errors = json_array()) == NULL)
		return NULL;
	if (!json_is_object(body)) {
		add(&c, NULL, "Invalid type. Expected: object, given: %s.",
		    body != NULL ? jtype(body) : "nothing");
		goto out;
	}

	sandbox = json_object_get(
	    json_object_get(json_object_get(body, "mail_settings"), "sandbox_mode"), "enable");
	info->sandbox = json_is_true(sandbox);

	v = json_object_get(body, "template_id");
	has_template = json_is_string(v) && json_string_length(v) > 0;
	custom_args = json_object_get(body, "custom_args");

	check_personalizations(&c, body, custom_args_valid(custom_args) ? custom_args : NULL,
			       &all_subjects, info);
	check_from(&c, body);
	check_reply_to(&c, body);
	top_subject = check_subject(&c, "subject", json_object_get(body, "subject"));
	if (!top_subject && !all_subjects && !has_template)
		add(&c, "subject", MSG_SUBJECT_REQUIRED);
	check_content(&c, json_object_get(body, "content"), has_template);
	check_others(&c, body);
out:
	if (c.oom) {
		json_decref(c.errors);
		return NULL;
	}
	return c.errors;
}
