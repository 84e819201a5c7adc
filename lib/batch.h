/*
 * batch: parses an Event Webhook body, a JSON array of event objects, and keeps for each
 * event the exact bytes it had in the body.  Those bytes, not a re-serialisation, are what
 * mailpipe publishes and stores as `raw`: numbers keep their digits and keys their order.
 */
#ifndef MAILPIPE_BATCH_H
#define MAILPIPE_BATCH_H

#include <stddef.h>

#include <jansson.h>

struct batch_item {
	const char *raw; /* borrowed: points into the body given to batch_parse() */
	size_t raw_len;
	json_t *obj; /* NULL, or (a body only jansson took) the whole event, owned by the batch */
	int has_nul; /* a string holds \u0000, which PostgreSQL text cannot store */
};

struct batch {
	json_t *root;
	struct batch_item *items;
	size_t n;
};

/*
 * Parses len bytes of body.  On success the batch borrows body (keep it alive) and must
 * be released.  On failure returns -1 with a message naming the problem in err; *field is
 * set to the JSON path at fault ("0", "12") or NULL for the body as a whole.
 */
int batch_parse(struct batch *b, const char *body, size_t len, char *err, size_t errlen,
		char *field, size_t fieldlen) __attribute__((warn_unused_result));

/*
 * Event i of a parsed batch as an object holding at least its event_fields (event.h),
 * decoded now: a new reference.  NULL when out of memory.
 */
json_t *batch_event(const struct batch *b, size_t i) __attribute__((warn_unused_result));

void batch_release(struct batch *b);

#endif
