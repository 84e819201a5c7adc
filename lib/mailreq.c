/*
 * mailreq: SendGrid v3 Mail Send body validation; see mailreq.h.  Here: addresses,
 * personalizations, from, reply_to, custom_args, send_at, headers, subject, and
 * mailreq_validate(); the other parts are in mailreq_parts.c, the helpers in mailreq_ctx.c.
 */
#include "mailreq.h"

#include <stdlib.h>
#include <string.h>

#include "mailreq_ctx.h"

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
		mailreq_type_error(c, path, "object", v);
		return NULL;
	}
	mailreq_pathf(field, "%s.email", path);
	email = json_object_get(v, "email");
	if (email != NULL && !json_is_string(email)) {
		mailreq_type_error(c, field, "string", email);
	} else if (email == NULL || json_string_length(email) == 0) {
		mailreq_add(c, field, "%s", kinds[kind].missing);
	} else if (json_string_length(email) > MAILREQ_MAX_ADDRESS) {
		mailreq_add(c, field, "%s", kinds[kind].too_long);
	} else if (!address_ok(json_string_value(email), json_string_length(email))) {
		mailreq_add(c, field, "%s", kinds[kind].invalid);
	} else if (kinds[kind].ascii_only &&
		   !mailreq_is_ascii(json_string_value(email), json_string_length(email))) {
		mailreq_add(c, field, MSG_FROM_UNICODE);
	} else {
		ok = json_string_value(email);
	}

	if ((name = json_object_get(v, "name")) == NULL)
		return ok;
	mailreq_pathf(field, "%s.name", path);
	if (!json_is_string(name))
		mailreq_type_error(c, field, "string", name);
	else if (mailreq_has_crlf(name))
		mailreq_add(c, field, MSG_NAME_CRLF);
	else if (kinds[kind].recipient && strpbrk(json_string_value(name), ";,") != NULL)
		mailreq_add(c, field, MSG_NAME_SEPARATORS);
	else if (kinds[kind].ascii_only &&
		 !mailreq_is_ascii(json_string_value(name), json_string_length(name)))
		mailreq_add(c, field, MSG_FROM_UNICODE);
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
		mailreq_type_error(c, prefix, "array", list);
		return;
	}
	if (json_array_size(list) == 0 && kinds[kind].empty != NULL)
		mailreq_add(c, prefix, "%s", kinds[kind].empty);
	json_array_foreach(list, i, v)
	{
		const char *email;

		if (c->full)
			return;
		mailreq_pathf(path, "%s.%zu", prefix, i);
		if ((email = check_address(c, path, v, kind)) != NULL && seen != NULL &&
		    seen_before(c, seen, email))
			mailreq_add(c, mailreq_pathf(path, "%s.%zu.email", prefix, i), dup_msg,
				    mailreq_clip(email, quote));
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
			mailreq_add(c,
				    mailreq_pathf(path, "%s.%s", prefix, mailreq_clip(key, quote)),
				    "%s", msg);
			ok = 0;
		}
	}
	return ok;
}

/* custom_args (body or personalization); returns 1 when it is a valid object. */
int
mailreq_check_custom_args(struct ctx *c, const char *path, json_t *v)
{
	if (!json_is_object(v)) {
		mailreq_type_error(c, path, "object", v);
		return 0;
	}
	if (json_object_size(v) == 0) {
		mailreq_add(c, path, "custom_args can't be empty.");
		return 0;
	}
	return check_string_map(c, path, v,
				"All values of custom arguments object must be strings");
}

/* custom_args that mailreq_check_custom_args() would accept, said without a word. */
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

void
mailreq_check_send_at(struct ctx *c, const char *path, json_t *v)
{
	if (!json_is_integer(v))
		mailreq_add(c, path, MSG_SEND_AT_TYPE);
	else if (json_integer_value(v) > (json_int_t)c->now + MAILREQ_MAX_SEND_AHEAD)
		mailreq_add(c, path, MSG_SEND_AT_AHEAD);
}

void
mailreq_check_headers(struct ctx *c, const char *prefix, json_t *v, const char *value_msg)
{
	char path[PATH_LEN], quote[QUOTE_MAX + 4], low[PATH_LEN];
	const char *key;
	json_t *val, *seen;

	if (!json_is_object(v)) {
		mailreq_type_error(c, prefix, "object", v);
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

		mailreq_pathf(path, "%s.%s", prefix, mailreq_clip(key, quote));
		for (i = 0; name_ok && i < len; i++) {
			unsigned char ch = (unsigned char)key[i];

			name_ok = ch > 0x20 && ch < 0x7f && ch != ':';
			if (i < sizeof(low) - 1)
				low[i] = (char)((ch >= 'A' && ch <= 'Z') ? ch + 32 : ch);
		}
		if (!name_ok) {
			mailreq_add(
			    c, path,
			    "Header keys can't contain non-ASCII characters or empty spaces.");
			continue;
		}
		low[len < sizeof(low) ? len : sizeof(low) - 1] = '\0';
		for (i = 0; i < nreserved; i++)
			if (strcmp(low, reserved_headers[i]) == 0)
				break;
		if (i < nreserved)
			mailreq_add(c, path, "Header can not be one of the reserved keys.");
		else if (seen_before(c, seen, low))
			mailreq_add(c, path, "The headers can't contain duplicate keys.");
		if (!json_is_string(val))
			mailreq_add(c, path, "%s", value_msg);
		else if (mailreq_has_crlf(val))
			mailreq_add(c, path, "The header values can't contain CRLF characters.");
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
		mailreq_add(c, path, MSG_SUBJECT_STRING);
	else if (mailreq_has_crlf(v))
		mailreq_add(c, path, MSG_SUBJECT_CRLF);
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
	mailreq_pathf(prefix, "personalizations.%zu", i);
	if (!json_is_object(p)) {
		mailreq_type_error(c, prefix, "object", p);
		return;
	}
	if ((seen = json_object()) == NULL) {
		c->oom = 1;
		return;
	}
	if (json_object_get(p, "to") == NULL)
		mailreq_add(c, mailreq_pathf(path, "%s.to", prefix), MSG_TO_REQUIRED);
	for (size_t k = 0; k < sizeof(lists) / sizeof(lists[0]); k++) {
		const char *key = kinds[lists[k]].key;

		if ((v = json_object_get(p, key)) == NULL)
			continue;
		if (json_is_array(v))
			*recipients += json_array_size(v);
		check_address_list(c, mailreq_pathf(path, "%s.%s", prefix, key), v, lists[k], seen,
				   MSG_DUPLICATE);
	}
	json_decref(seen);

	if ((v = json_object_get(p, "from")) != NULL)
		check_address(c, mailreq_pathf(path, "%s.from", prefix), v, ADDR_FROM);
	*has_subject = check_subject(c, mailreq_pathf(path, "%s.subject", prefix),
				     json_object_get(p, "subject"));
	if ((v = json_object_get(p, "headers")) != NULL)
		mailreq_check_headers(c, mailreq_pathf(path, "%s.headers", prefix), v,
				      "All values of the headers object must be strings.");
	if ((v = json_object_get(p, "substitutions")) != NULL) {
		mailreq_pathf(path, "%s.substitutions", prefix);
		if (!json_is_object(v))
			mailreq_add(c, path, MSG_SUBSTITUTIONS);
		else if (json_object_size(v) > MAILREQ_MAX_SUBSTITUTIONS)
			mailreq_add(c, path,
				    "Substitutions are limited to 150 items per personalization "
				    "block.");
		else
			check_string_map(c, path, v, MSG_SUBSTITUTIONS);
	}
	if ((v = json_object_get(p, "dynamic_template_data")) != NULL && !json_is_object(v))
		mailreq_type_error(c, mailreq_pathf(path, "%s.dynamic_template_data", prefix),
				   "object", v);
	if ((v = json_object_get(p, "custom_args")) != NULL)
		*custom_args_ok =
		    mailreq_check_custom_args(c, mailreq_pathf(path, "%s.custom_args", prefix), v);
	if ((v = json_object_get(p, "send_at")) != NULL)
		mailreq_check_send_at(c, mailreq_pathf(path, "%s.send_at", prefix), v);
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
		mailreq_add(c, "custom_args", MSG_CUSTOM_ARGS_SIZE);
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
			mailreq_add(c, mailreq_pathf(path, "personalizations.%zu.custom_args", i),
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
		mailreq_add(c, "personalizations", MSG_PERSONALIZATIONS_REQUIRED);
		return;
	}
	if (!json_is_array(list)) {
		mailreq_type_error(c, "personalizations", "array", list);
		return;
	}
	n = info->personalizations = json_array_size(list);
	if (n > MAILREQ_MAX_PERSONALIZATIONS)
		mailreq_add(c, "personalizations", MSG_TOO_MANY_PERSONALIZATIONS, n);
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
		mailreq_add(c, "personalizations", MSG_TOO_MANY_RECIPIENTS);
	check_custom_args_size(c, custom_args, list, ok);
	free(ok);
}

static void
check_from(struct ctx *c, json_t *body)
{
	json_t *v = json_object_get(body, "from");

	if (v == NULL)
		mailreq_add(c, "from.email", MSG_FROM_REQUIRED);
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
		mailreq_add(
		    c, "reply_to_list",
		    "You can either choose to use \"reply_to\" field or \"reply_to_list\" but not "
		    "both.");
	if (json_is_array(list) && json_array_size(list) > MAILREQ_MAX_REPLY_TO_LIST)
		mailreq_add(c, "reply_to_list",
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
		mailreq_add(&c, NULL, "Invalid type. Expected: object, given: %s.",
			    body != NULL ? mailreq_jtype(body) : "nothing");
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
		mailreq_add(&c, "subject", MSG_SUBJECT_REQUIRED);
	mailreq_check_content(&c, json_object_get(body, "content"), has_template);
	mailreq_check_others(&c, body);
out:
	if (c.oom) {
		json_decref(c.errors);
		return NULL;
	}
	return c.errors;
}