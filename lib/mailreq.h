/*
 * mailreq: validation of a SendGrid v3 Mail Send body (POST /v3/mail/send) the way SendGrid
 * does it, shared by ingest's handler and the SendGrid simulator.
 *
 * Every problem found is listed, each as one sgerr entry
 * {"message": "...", "field": "personalizations.0.to.0.email" | null, "help": null}, with
 * SendGrid's own wording where its documentation gives one.  Unknown keys are ignored, as
 * SendGrid ignores them.
 */
#ifndef MAILPIPE_MAILREQ_H
#define MAILPIPE_MAILREQ_H

#include <stddef.h>

#include <jansson.h>

/* SendGrid's documented limits. */
#define MAILREQ_MAX_PERSONALIZATIONS 1000
#define MAILREQ_MAX_RECIPIENTS 1000 /* to + cc + bcc over all personalizations */
#define MAILREQ_MAX_ADDRESS 320
#define MAILREQ_MAX_CATEGORIES 10
#define MAILREQ_MAX_CATEGORY_LEN 255
#define MAILREQ_MAX_CUSTOM_ARGS 10000        /* bytes of compact JSON; the size must stay below */
#define MAILREQ_MAX_SEND_AHEAD (72L * 3600L) /* seconds after now */
#define MAILREQ_MAX_GROUPS_TO_DISPLAY 25
#define MAILREQ_MAX_SUBSTITUTIONS 150 /* per personalization */
#define MAILREQ_MAX_REPLY_TO_LIST 1000
/* More problems than this end the list with one entry saying so (field null). */
#define MAILREQ_MAX_ERRORS 1000

/* What a body holds, as far as it could be read (filled in for invalid bodies too). */
struct mailreq_info {
	size_t personalizations; /* entries of the personalizations array */
	size_t recipients;       /* entries of every to, cc and bcc array together */
	int sandbox;             /* mail_settings.sandbox_mode.enable is true */
};

/*
 * Validates body (borrowed; any JSON value, NULL taken as absent) against SendGrid's Mail Send
 * rules; now is the current time in unix seconds (the send_at window is measured from it).
 * Returns a new reference the caller releases with json_decref(): an array of sgerr entries,
 * empty when the body is valid; NULL only when out of memory.  When info is not NULL it is
 * filled in, whether the body is valid or not.
 */
json_t *mailreq_validate(json_t *body, long now, struct mailreq_info *info)
    __attribute__((warn_unused_result));

#endif
