/*
 * mailreq_parts: the checks of a Mail Send body's parts other than its addresses and
 * personalizations: content, attachments, categories, asm, mail_settings, tracking_settings
 * and the remaining top-level parameters; see mailreq.h.
 */
#include <string.h>
#include <strings.h>

#include "mailreq.h"
#include "mailreq_ctx.h"

#define MSG_CONTENT_REQUIRED                                                                       \
	"Unless a valid template_id is provided, the content parameter is required. There must "   \
	"be at least one defined content block. We typically suggest both text/plain and "         \
	"text/html blocks are included, but only one block is required."
#define MSG_CONTENT_ORDER                                                                          \
	"Following RFC 1341, section 7.2, if either text/html or text/plain are to be sent in "    \
	"your email: text/plain needs to be first, followed by text/html, followed by any other "  \
	"content."

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

void
mailreq_check_content(struct ctx *c, json_t *content, int has_template)
{
	char path[PATH_LEN];
	long plain, html;
	size_t i;
	json_t *v;

	if (content == NULL || (json_is_array(content) && json_array_size(content) == 0)) {
		if (!has_template)
			mailreq_add(c, "content", MSG_CONTENT_REQUIRED);
		return;
	}
	if (!json_is_array(content)) {
		mailreq_type_error(c, "content", "array", content);
		return;
	}
	json_array_foreach(content, i, v)
	{
		json_t *type, *value;

		if (!json_is_object(v)) {
			mailreq_type_error(c, mailreq_pathf(path, "content.%zu", i), "object", v);
			continue;
		}
		mailreq_pathf(path, "content.%zu.type", i);
		if ((type = json_object_get(v, "type")) == NULL)
			mailreq_add(
			    c, path,
			    "A content type is required, this tells email clients how to display "
			    "the "
			    "email.");
		else if (!json_is_string(type) || json_string_length(type) == 0)
			mailreq_add(
			    c, path,
			    "Your content type must be a string with length of at least one "
			    "character.");
		else if (mailreq_has_any(type, ";"))
			mailreq_add(c, path, "Cannot contain ';', or CRLF characters.");
		mailreq_pathf(path, "content.%zu.value", i);
		if ((value = json_object_get(v, "value")) == NULL)
			mailreq_add(
			    c, path,
			    "A content value is required, this is the content of the email you are "
			    "sending.");
		else if (!json_is_string(value) || json_string_length(value) == 0)
			mailreq_add(
			    c, path,
			    "The content value must be a string at least one character in length.");
	}
	plain = content_index(content, "text/plain");
	html = content_index(content, "text/html");
	if (plain > 0)
		mailreq_add(c, mailreq_pathf(path, "content.%ld.type", plain), MSG_CONTENT_ORDER);
	else if (html >= 0 && html != plain + 1)
		mailreq_add(c, mailreq_pathf(path, "content.%ld.type", html), MSG_CONTENT_ORDER);
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
		mailreq_type_error(c, mailreq_pathf(path, "attachments.%zu", i), "object", a);
		return;
	}
	mailreq_pathf(path, "attachments.%zu.content", i);
	v = json_object_get(a, "content");
	if (!json_is_string(v) || json_string_length(v) == 0)
		mailreq_add(c, path,
			    "The attachment content must be a string at least one character in "
			    "length.");
	else if (!base64_ok(json_string_value(v), json_string_length(v)))
		mailreq_add(c, path, "The attachment content must be base64 encoded.");

	mailreq_pathf(path, "attachments.%zu.filename", i);
	v = json_object_get(a, "filename");
	if (v != NULL && !json_is_string(v))
		mailreq_add(c, path, "The filename of your attachment must be a string.");
	else if (v == NULL || json_string_length(v) == 0)
		mailreq_add(c, path, "filename is required.");
	else if (mailreq_has_crlf(v))
		mailreq_add(c, path,
			    "The filename of your attachment can't contain CRLF characters.");

	mailreq_pathf(path, "attachments.%zu.type", i);
	if ((v = json_object_get(a, "type")) != NULL) {
		if (!json_is_string(v) || json_string_length(v) == 0)
			mailreq_add(c, path,
				    "The attachment type must be a string and at least one "
				    "character in length.");
		else if (mailreq_has_any(v, ";"))
			mailreq_add(c, path, "The type can't contain ';', or CRLF characters.");
	}

	mailreq_pathf(path, "attachments.%zu.disposition", i);
	if ((disposition = json_object_get(a, "disposition")) != NULL) {
		const char *d = json_string_value(disposition);

		if (d != NULL && strcmp(d, "inline") == 0)
			inline_ = 1;
		else if (d == NULL || strcmp(d, "attachment") != 0)
			mailreq_add(
			    c, path,
			    "The disposition of your attachment can be either \"inline\" or "
			    "\"attachment\". You provided %s.",
			    mailreq_clip_json(disposition, quote));
	}

	mailreq_pathf(path, "attachments.%zu.content_id", i);
	if ((v = json_object_get(a, "content_id")) != NULL && !json_is_string(v)) {
		mailreq_add(c, path,
			    "The content ID of your attachment must be a string. You provided %s.",
			    mailreq_clip_json(v, quote));
	} else if (v != NULL && mailreq_has_any(v, ";,")) {
		mailreq_add(c, path,
			    "The content ID of your attachment can't contain CRLF characters.");
	} else if (inline_ && (v == NULL || json_string_length(v) == 0)) {
		mailreq_add(c, path,
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
		mailreq_type_error(c, "attachments", "array", list);
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
		mailreq_add(c, "categories", "Categories must be an array of strings.");
		return;
	}
	if (json_array_size(list) > MAILREQ_MAX_CATEGORIES)
		mailreq_add(
		    c, "categories",
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

		mailreq_pathf(path, "categories.%zu", i);
		if (s == NULL)
			mailreq_add(c, path, "Categories must be an array of strings.");
		else if (!mailreq_is_ascii(s, json_string_length(v)) || mailreq_has_crlf(v))
			mailreq_add(c, path, "Categories can not contain non-ASCII characters.");
		else if (json_string_length(v) > MAILREQ_MAX_CATEGORY_LEN)
			mailreq_add(
			    c, path,
			    "Each category must not be longer than 255 characters. %s exceeds this "
			    "limit.",
			    mailreq_clip(s, quote));
		else if (json_object_get(seen, s) != NULL)
			mailreq_add(
			    c, path,
			    "The categories must be a unique list, and you have included %s more "
			    "than "
			    "once.",
			    mailreq_clip(s, quote));
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
		mailreq_type_error(c, "asm", "object", v);
		return;
	}
	if (!json_is_integer(json_object_get(v, "group_id")))
		mailreq_add(c, "asm.group_id", "The ASM group ID must be an integer.");
	if ((groups = json_object_get(v, "groups_to_display")) == NULL)
		return;
	if (!json_is_array(groups)) {
		mailreq_add(c, "asm.groups_to_display",
			    "The ASM Group IDs to display must be an array of integers.");
		return;
	}
	if (json_array_size(groups) > MAILREQ_MAX_GROUPS_TO_DISPLAY)
		mailreq_add(
		    c, "asm.groups_to_display",
		    "There is a limit of 25 unsubscribe groups that can be displayed to a user at "
		    "a "
		    "time.");
	json_array_foreach(groups, i, g)
	{
		if (!json_is_integer(g))
			mailreq_add(c, mailreq_pathf(path, "asm.groups_to_display.%zu", i),
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
		mailreq_type_error(c, section, "object", sec);
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
				mailreq_type_error(c,
						   mailreq_pathf(path, "%s.%s", section, s->name),
						   "object", obj);
			continue;
		}
		if ((v = json_object_get(obj, s->key)) != NULL && !setting_ok(s, v))
			mailreq_add(c, mailreq_pathf(path, "%s.%s.%s", section, s->name, s->key),
				    "%s", s->msg);
	}
}

/* The body's other parameters, in the order SendGrid documents them. */
void
mailreq_check_others(struct ctx *c, json_t *body)
{
	char quote[QUOTE_MAX + 4];
	json_t *v;

	if ((v = json_object_get(body, "template_id")) != NULL && !json_is_string(v))
		mailreq_add(c, "template_id", "The template ID must be a string, you provided %s.",
			    mailreq_clip_json(v, quote));
	if ((v = json_object_get(body, "attachments")) != NULL)
		check_attachments(c, v);
	if ((v = json_object_get(body, "headers")) != NULL)
		mailreq_check_headers(c, "headers", v, "The header values must be strings.");
	if ((v = json_object_get(body, "categories")) != NULL)
		check_categories(c, v);
	if ((v = json_object_get(body, "custom_args")) != NULL)
		mailreq_check_custom_args(c, "custom_args", v);
	if ((v = json_object_get(body, "send_at")) != NULL)
		mailreq_check_send_at(c, "send_at", v);
	if ((v = json_object_get(body, "batch_id")) != NULL && !json_is_string(v))
		mailreq_add(c, "batch_id", "The batch_id must be a string.");
	if ((v = json_object_get(body, "asm")) != NULL)
		check_asm(c, v);
	if ((v = json_object_get(body, "ip_pool_name")) != NULL) {
		if (!json_is_string(v))
			mailreq_add(c, "ip_pool_name",
				    "The name of your IP pool must be a string.");
		else if (json_string_length(v) < 2 || json_string_length(v) > 64)
			mailreq_add(
			    c, "ip_pool_name",
			    "The name of your IP pool must be between 2 and 64 characters. You "
			    "provided %s.",
			    mailreq_clip(json_string_value(v), quote));
	}
	check_settings(c, body, "mail_settings");
	check_settings(c, body, "tracking_settings");
}
