/*
 * fuzz_mailreq: the POST /v3/mail/send body, along the path ingest's handler
 * (fcgi/mailsend.c) takes: json_loadb() with its flags, our message id added to the
 * top-level custom_args, then mailreq_validate().  Input: the request body (libFuzzer's
 * -max_len keeps it far below ingest.max_body_bytes; size limits are probed by the unit tests).
 *
 * Checked besides memory safety and leaks: a body that is not JSON gets an error entry
 * whatever jansson's message quotes; the validator always answers (NULL would mean
 * out of memory, and ingest would answer 503); the answer is an array of at most
 * MAILREQ_MAX_ERRORS + 1 entries of SendGrid's shape ({"message": non-empty, "field":
 * string or null, "help": null}) that serialises; a body found valid has 1 to 1000
 * personalizations and at most 1000 recipients.
 */
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "event.h"
#include "fuzz.h"
#include "mailreq.h"
#include "sgerr.h"

#define NOW 1700000000L
/* A message id as msgid_new() makes them (a fixed one: runs must be reproducible). */
#define MSGID "01JD3K5Q7X9V2M4N6P8R0T2W4Y"

/*
 * What ingest's tag_request() does to a body that is an object: adds our id to its
 * custom_args, creating them if absent.  Custom args that are there but not an object are
 * left for the validator to refuse.
 */
static void
tag(json_t *root)
{
	json_t *args;

	if (!json_is_object(root))
		return;
	args = json_object_get(root, "custom_args");
	if (args == NULL) {
		args = json_object();
		FUZZ_CHECK(args != NULL && json_object_set_new(root, "custom_args", args) == 0,
			   "out of memory");
	} else if (!json_is_object(args)) {
		return;
	}
	FUZZ_CHECK(json_object_set_new(args, EVENT_MESSAGE_ID_ARG, json_string(MSGID)) == 0,
		   "out of memory");
}

static void
check_entry(json_t *e, size_t i)
{
	json_t *msg = json_object_get(e, "message"), *field = json_object_get(e, "field");

	FUZZ_CHECK(json_is_object(e) && json_object_size(e) == 3, "entry %zu: not the shape", i);
	FUZZ_CHECK(json_is_string(msg) && json_string_length(msg) > 0, "entry %zu: message", i);
	FUZZ_CHECK(json_is_string(field) || json_is_null(field), "entry %zu: field", i);
	FUZZ_CHECK(json_is_null(json_object_get(e, "help")), "entry %zu: help", i);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mailreq_info info;
	json_error_t jerr;
	json_t *root, *errors, *e;
	char *text;
	size_t i;

	if ((root = json_loadb((const char *)data, size, 0, &jerr)) == NULL) {
		/* ingest answers 400 quoting jansson's error, or 415: either has a body */
		char msg[512];

		snprintf(msg, sizeof(msg), "Bad Request: %s at line %d column %d", jerr.text,
			 jerr.line, jerr.column);
		e = sgerr_entry(NULL, msg);
		FUZZ_CHECK(e != NULL, "no error entry for \"%s\"", msg);
		json_decref(e);
		return 0;
	}
	tag(root);
	errors = mailreq_validate(root, NOW, &info);
	FUZZ_CHECK(errors != NULL, "mailreq_validate() answered NULL (out of memory)");
	FUZZ_CHECK(json_is_array(errors), "the answer is not an array");
	FUZZ_CHECK(json_array_size(errors) <= MAILREQ_MAX_ERRORS + 1, "%zu errors",
		   json_array_size(errors));
	json_array_foreach(errors, i, e)
	{
		check_entry(e, i);
	}
	if (json_array_size(errors) == 0)
		FUZZ_CHECK(info.personalizations >= 1 &&
			       info.personalizations <= MAILREQ_MAX_PERSONALIZATIONS &&
			       info.recipients <= MAILREQ_MAX_RECIPIENTS,
			   "valid with %zu personalizations and %zu recipients",
			   info.personalizations, info.recipients);
	text = json_dumps(errors, JSON_COMPACT);
	FUZZ_CHECK(text != NULL, "the answer does not serialise");
	free(text);
	json_decref(errors);
	json_decref(root);
	return 0;
}
