/*
 * event: what mailpipe requires of one SendGrid event, and the values it derives.
 *
 * Almost every field is optional (SENDGRID.md): an event needs a non-empty string
 * `sg_event_id`, a non-empty string `event` (any name: unknown names are stored) and a
 * usable `timestamp`: integer unix seconds, a numeric string, a fractional number, or
 * milliseconds (13 digits, as Single Send events carry).
 */
#ifndef MAILPIPE_EVENT_H
#define MAILPIPE_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* The custom arg mailpipe puts into every mail it sends; it comes back as a top-level key. */
#define EVENT_MESSAGE_ID_ARG "mailpipe_message_id"

/*
 * The top-level members event_check() reads, NULL-terminated: batch_parse() decodes only
 * these (the rest of an event stays in its raw bytes).
 */
extern const char *const event_fields[];

struct event_info {
	const char *sg_event_id; /* borrowed from the object */
	const char *event;       /* borrowed */
	int64_t time_us;         /* event time, microseconds since the epoch */
	const char *key;         /* borrowed: the Kafka key, see event_check() */
	size_t key_len;
};

/*
 * Checks obj and fills info.  The Kafka key groups a message's events on one partition:
 * our message id when present, else the X-Message-Id part of sg_message_id (before the
 * first '.'), else sg_event_id.  Returns -1 with the reason in err and the offending
 * field's name in *field.
 */
int event_check(json_t *obj, struct event_info *info, char *err, size_t errlen, const char **field)
    __attribute__((warn_unused_result));

/* Parses a timestamp value as event_check() does; -1 if unusable. */
int event_parse_time(json_t *v, int64_t *time_us) __attribute__((warn_unused_result));

#endif
