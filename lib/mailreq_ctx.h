/*
 * mailreq_ctx: internal to the mailreq module (mailreq.c, mailreq_ctx.c, mailreq_parts.c);
 * nothing else includes it.  The public API is mailreq.h.
 *
 * struct ctx is the validation under way.  The helpers of mailreq_ctx.c add errors to it,
 * quote user text, build field paths and test strings; the checks declared at the end are
 * the ones mailreq.c and mailreq_parts.c call across each other.
 *
 * Wording: SendGrid's error documentation (api-reference/mail-send/errors) and the answers
 * its API gives, where known; otherwise a sentence in the same style.  Type mismatches use
 * the API's JSON-schema wording, "Invalid type. Expected: string, given: integer.".
 */
#ifndef MAILPIPE_MAILREQ_CTX_H
#define MAILPIPE_MAILREQ_CTX_H

#include <stddef.h>

#include <jansson.h>

/* Longest user text quoted in a message or a field path, in bytes. */
#define QUOTE_MAX 100
#define PATH_LEN 256

struct ctx {
	json_t *errors; /* the answer being built */
	size_t count;   /* entries added */
	long now;
	int full; /* MAILREQ_MAX_ERRORS reached: nothing more is added */
	int oom;  /* an entry could not be added */
};

/* Adds one sgerr entry (field may be NULL) unless MAILREQ_MAX_ERRORS are listed already. */
void mailreq_add(struct ctx *c, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* v's JSON-schema type name: "object", "string", "integer", "number", "boolean"... */
const char *mailreq_jtype(const json_t *v);
/* "Invalid type. Expected: <expected>, given: <v's type>." at field. */
void mailreq_type_error(struct ctx *c, const char *field, const char *expected, const json_t *v);
/* s, or its first QUOTE_MAX bytes (cut on a UTF-8 boundary) and "...", in buf; returns buf. */
const char *mailreq_clip(const char *s, char buf[QUOTE_MAX + 4]);
/* Any JSON value as compact JSON, clipped like mailreq_clip(); returns buf. */
const char *mailreq_clip_json(const json_t *v, char buf[QUOTE_MAX + 4]);
/* Formats a field path into buf (cut at PATH_LEN); returns buf. */
const char *mailreq_pathf(char buf[PATH_LEN], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The string v holds CR, LF or NUL (over its whole length). */
int mailreq_has_crlf(const json_t *v);
/* The string v holds one of the characters of set, CR, LF or NUL. */
int mailreq_has_any(const json_t *v, const char *set);
/* s[0..len) is plain ASCII. */
int mailreq_is_ascii(const char *s, size_t len);

/* Checks of mailreq.c that mailreq_parts.c uses too. */
int mailreq_check_custom_args(struct ctx *c, const char *path, json_t *v);
void mailreq_check_send_at(struct ctx *c, const char *path, json_t *v);
void mailreq_check_headers(struct ctx *c, const char *prefix, json_t *v, const char *value_msg);

/* Checks of mailreq_parts.c that mailreq_validate() calls. */
void mailreq_check_content(struct ctx *c, json_t *content, int has_template);
void mailreq_check_others(struct ctx *c, json_t *body);

#endif
