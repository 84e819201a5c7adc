/*
 * mailsend: POST /v3/mail/send, SendGrid's v3 Mail Send, so that an existing SendGrid
 * client works by changing only its base URL.
 *
 * 1. Authenticate one of mailpipe's API keys with scope mail.send (401 / 403).
 * 2. Parse and validate the body as SendGrid does, every problem listed (415 for invalid
 *    UTF-8, 400 otherwise).  Sandbox mode: validated, answered 200, nothing sent.
 * 3. Honour Idempotency-Key: the same key and body get the first answer again.  Redis
 *    holds the records; a key Redis does not know is looked up in PostgreSQL (where the
 *    sender stored it with the message) before anything is queued, and travels in the
 *    mail.requests record with the body's hash.
 * 4. Give the mail a time-ordered message id, put it in custom_args (every SendGrid event
 *    carries it back as `mailpipe_message_id`), publish the request to mail.requests keyed
 *    by it, and answer 202 with X-Message-Id once Kafka acknowledged it (503 otherwise).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "apikey.h"
#include "event.h"
#include "idemkey.h"
#include "ingest.h"
#include "log.h"
#include "mailreq.h"
#include "msgid.h"

#define INVALID_GRANT "The provided authorization grant is invalid, expired, or revoked"

static int
authenticate(struct req *r, const struct ingest *in, long *key_id)
{
	switch (apikeys_check(in->keys, req_param(r, "HTTP_AUTHORIZATION"), "mail.send", key_id)) {
	case APIKEY_OK: return 0;
	case APIKEY_MISSING: reply_error(r, 401, NULL, "authorization required"); return -1;
	case APIKEY_INVALID: reply_error(r, 401, NULL, INVALID_GRANT); return -1;
	case APIKEY_FORBIDDEN:
		reply_error(r, 403, NULL,
			    "access forbidden: the API key lacks the scope 'mail.send'");
		return -1;
	case APIKEY_UNAVAILABLE:
	default: reply_error(r, 503, NULL, "API keys not loaded yet: retry later"); return -1;
	}
}

static json_t *
parse_body(struct req *r)
{
	json_error_t jerr;
	json_t *root = json_loadb(r->body, r->body_len, 0, &jerr);

	if (root == NULL) {
		if (json_error_code(&jerr) == json_error_invalid_utf8)
			reply_error(r, 415, NULL, "request body is not valid UTF-8");
		else
			reply_error(r, 400, NULL, "Bad Request: %s at line %d column %d", jerr.text,
				    jerr.line, jerr.column);
	}
	return root;
}

/*
 * Adds our message id to the request's top-level custom_args.  A body that is not an
 * object, or whose custom_args are there but not an object, is left alone: the validator
 * refuses it (tagging would have answered 503, or hidden SendGrid's 400).
 */
static int
tag_request(json_t *root, const char *msgid)
{
	json_t *args = json_object_get(root, "custom_args");

	if (!json_is_object(root) || (args != NULL && !json_is_object(args)))
		return 0;
	if (args == NULL) {
		args = json_object();
		if (args == NULL || json_object_set_new(root, "custom_args", args) < 0)
			return -1;
	}
	return json_object_set_new(args, EVENT_MESSAGE_ID_ARG, json_string(msgid));
}

static void
accepted(struct req *r, int status, const char *msgid)
{
	char header[64];
	const char *headers[] = {header};

	snprintf(header, sizeof(header), "X-Message-Id: %s", msgid);
	reply_headers(r, status, headers, 1, NULL);
}

/* Publishes the request; 0 once Kafka acknowledged it.  ik: NULL without Idempotency-Key. */
static int
publish(const struct ingest *in, json_t *root, const char *msgid, long key_id,
	const char *idem_value, const struct idemkey *ik, char *err, size_t errlen)
{
	struct kpub_wait *w = NULL;
	struct timeval tv;
	json_t *record = NULL;
	char *text = NULL;
	int rc = -1;

	gettimeofday(&tv, NULL);
	record = json_pack("{s:s, s:I, s:I, s:O}", "message_id", msgid, "api_key_id",
			   (json_int_t)key_id, "received_at_ms",
			   (json_int_t)tv.tv_sec * 1000 + tv.tv_usec / 1000, "request", root);
	/* The sender stores these with the message: the key's durable record. */
	if (record && ik &&
	    (json_object_set_new(record, "idempotency_key", json_string(idem_value)) < 0 ||
	     json_object_set_new(record, "body_sha256", json_string(ik->body_hash)) < 0)) {
		json_decref(record);
		record = NULL;
	}
	if (record == NULL || (text = json_dumps(record, JSON_COMPACT)) == NULL ||
	    (w = kpub_wait_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (kpub_send(in->kp, w, in->cf->kafka_mail_topic, msgid, strlen(msgid), text, strlen(text),
		      NULL, 0, err, errlen) < 0)
		goto out;
	rc = kpub_wait_done(w, in->cf->ingest_deadline_ms + 500, err, errlen);
out:
	kpub_wait_release(w);
	free(text);
	json_decref(record);
	return rc;
}

void
mailsend_handle(struct req *r)
{
	const struct ingest *in = r->app;
	const char *idem_value = req_param(r, "HTTP_IDEMPOTENCY_KEY");
	struct mailreq_info info;
	struct idemkey ik;
	json_t *root = NULL, *errors = NULL;
	char msgid[MSGID_LEN + 1], err[512];
	int claimed = 0, status = 0;
	long key_id = 0;

	if (authenticate(r, in, &key_id) < 0)
		return;
	if (idem_value && !idemkey_valid(idem_value)) {
		reply_error(r, 400, "Idempotency-Key",
			    "Idempotency-Key must be 1 to 255 printable ASCII characters");
		return;
	}
	if ((root = parse_body(r)) == NULL)
		return;
	/* Tag before validating: our id counts against SendGrid's custom_args limit too, so
	 * what passes here is what SendGrid accepts. */
	if (msgid_new(msgid) < 0 || tag_request(root, msgid) < 0) {
		reply_error(r, 503, NULL, "cannot assign a message id");
		goto out;
	}
	errors = mailreq_validate(root, (long)time(NULL), &info);
	if (errors == NULL) {
		reply_error(r, 503, NULL, "out of memory");
		goto out;
	}
	if (json_array_size(errors) > 0) {
		reply_errors(r, 400, errors);
		errors = NULL;
		goto out;
	}
	if (info.sandbox) {
		/* SendGrid's sandbox: validated, never sent, no events. */
		reply_headers(r, 200, NULL, 0, NULL);
		goto out;
	}
	if (idem_value) {
		enum idemkey_state is = idemkey_begin(
		    &ik, in->redis, in->cf->redis_prefix, in->cf->mail_idempotency_ttl_seconds,
		    key_id, idem_value, r->body, r->body_len, &status, msgid);
		/* New to Redis: maybe only because Redis lost it.  PostgreSQL knows. */
		if (is == IDEMKEY_NEW)
			is = idemkey_recall(&ik, in->idemdb, key_id, idem_value, &status, msgid);
		switch (is) {
		case IDEMKEY_NEW: claimed = 1; break;
		case IDEMKEY_REPLAY: accepted(r, status, msgid); goto out;
		case IDEMKEY_CONFLICT:
			reply_error(
			    r, 422, "Idempotency-Key",
			    "Idempotency-Key was already used with a different request body");
			goto out;
		case IDEMKEY_IN_PROGRESS:
			reply_error(r, 409, "Idempotency-Key",
				    "a request with this Idempotency-Key is still being processed");
			goto out;
		case IDEMKEY_UNAVAILABLE:
		default:
			reply_error(r, 503, NULL,
				    "cannot check the Idempotency-Key now (redis or postgresql "
				    "unavailable): retry later");
			goto out;
		}
	}
	if (publish(in, root, msgid, key_id, idem_value, claimed ? &ik : NULL, err, sizeof(err)) <
	    0) {
		log_warnx("mail not queued: %s", err);
		reply_error(r, 503, NULL, "mail not queued, retry later: %s", err);
		goto release;
	}
	if (claimed && idemkey_finish(&ik, 202, msgid) < 0)
		log_warnx("Idempotency-Key answer not stored for message %s", msgid);
	log_debug("mail %s queued: %zu recipients", msgid, info.recipients);
	accepted(r, 202, msgid);
	goto out;
release:
	if (claimed)
		idemkey_release(&ik);
out:
	json_decref(errors);
	json_decref(root);
}
