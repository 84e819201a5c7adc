/*
 * webhook: POST /webhooks/sendgrid, SendGrid's Event Webhook.
 *
 * 1. Verify the signature over timestamp + raw body (401, nothing kept, if it fails).
 * 2. Parse the body: a JSON array of objects (400 otherwise).
 * 3. Publish each valid event, exactly as received, to the events topic keyed by message;
 *    each invalid one to the dead-letter topic with the reason in an `error` header (a
 *    SendGrid retry could never fix it, so the batch is still acknowledged).  An event
 *    larger than one Kafka message is invalid in that sense too: its dead letter keeps
 *    its first DEAD_HEAD_BYTES.
 * 4. Answer 200 only when Kafka acknowledged every record; otherwise 503 so SendGrid
 *    retries the whole batch (duplicates are removed downstream by sg_event_id).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "event.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "shutdown.h"

#define SIG_HEADER "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE"
#define TS_HEADER "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP"
/* How much of an event too large for Kafka its dead letter keeps. */
#define DEAD_HEAD_BYTES 65536

static int
verify(struct req *r, const struct ingest *in)
{
	char err[256];
	enum sig_status st;

	if (in->key == NULL)
		return 0;
	st = sig_verify(in->key, req_param(r, SIG_HEADER), req_param(r, TS_HEADER), r->body,
			r->body_len, config_live(&in->cf->webhook_max_age_seconds),
			(long)time(NULL), err, sizeof(err));
	if (st == SIG_OK)
		return 0;
	log_warnx("webhook refused: %s", err);
	reply_error(r, 401,
		    st == SIG_EXPIRED || (st == SIG_MISSING && strstr(err, "Timestamp"))
			? "X-Twilio-Email-Event-Webhook-Timestamp"
			: "X-Twilio-Email-Event-Webhook-Signature",
		    "%s", err);
	return -1;
}

void
webhook_handle(struct req *r)
{
	const struct ingest *in = r->app;
	const struct config *cf = in->cf;
	struct kpub_wait *w = NULL;
	struct batch b;
	char err[512], field[32];
	size_t published = 0, dead = 0;
	/* Room for the record's key, headers and framing inside message.max.bytes. */
	size_t max_event = (size_t)cf->kafka_message_max_bytes - 1024;

	if (verify(r, in) < 0)
		return;
	if (batch_parse(&b, r->body, r->body_len, err, sizeof(err), field, sizeof(field)) < 0) {
		reply_error(r, 400, field[0] ? field : NULL, "%s", err);
		return;
	}
	metric_counter_add(metrics_family(M_EVENTS_RECEIVED), (double)b.n, NULL);
	if ((w = kpub_wait_new()) == NULL) {
		reply_error(r, 503, NULL, "out of memory");
		goto out;
	}
	/* The records point into the body, which lives until their last delivery report. */
	kpub_wait_adopt(w, r->body, r->body_len);
	r->body = NULL;
	for (size_t i = 0; i < b.n; i++) {
		const struct batch_item *it = &b.items[i];
		struct event_info ev;
		const char *bad_field = NULL;
		char why[256];
		int rc;

		size_t dead_len = it->raw_len;

		if (it->raw_len > max_event) {
			/* Kafka cannot carry it whole: keep its head and say so. */
			dead_len = DEAD_HEAD_BYTES;
			snprintf(
			    why, sizeof(why),
			    "event is %zu bytes, over the %zu-byte limit of one Kafka message: "
			    "dead-lettered truncated to its first %d bytes",
			    it->raw_len, max_event, DEAD_HEAD_BYTES);
		} else if (it->has_nul) {
			snprintf(why, sizeof(why),
				 "event holds \\u0000, which PostgreSQL text cannot store");
		} else {
			json_t *obj = batch_event(&b, i);

			if (obj == NULL) {
				snprintf(err, sizeof(err), "out of memory");
				goto unavailable;
			}
			if (event_check(obj, &ev, why, sizeof(why), &bad_field) == 0) {
				rc =
				    kpub_send(in->kp, w, cf->kafka_events_topic, ev.key, ev.key_len,
					      it->raw, it->raw_len, NULL, 0, err, sizeof(err));
				json_decref(obj); /* ev borrowed from it; the key is copied */
				if (rc < 0)
					goto unavailable;
				published++;
				continue;
			}
			json_decref(obj);
		}
		const struct kpub_header hdrs[] = {
		    {"error", why},
		    {"source_topic", cf->kafka_events_topic},
		};
		log_warnx("event %zu dead-lettered: %s", i, why);
		if (kpub_send(in->kp, w, cf->kafka_events_dlq_topic, NULL, 0, it->raw, dead_len,
			      hdrs, 2, err, sizeof(err)) < 0)
			goto unavailable;
		dead++;
	}
	if (kpub_wait_done(w, cf->ingest_deadline_ms + 500, err, sizeof(err)) < 0)
		goto unavailable;
	log_debug("webhook batch of %zu: published=%zu dead_lettered=%zu", b.n, published, dead);
	if (dead > 0)
		metric_counter_add(metrics_family(M_DEAD_LETTERS), (double)dead,
				   cf->kafka_events_dlq_topic, NULL);
	reply_json(r, 200,
		   json_pack("{s:I, s:I, s:I}", "received", (json_int_t)b.n, "published",
			     (json_int_t)published, "dead_lettered", (json_int_t)dead));
	goto out;
unavailable:
	log_warnx("webhook batch not acknowledged: %s", err);
	reply_error(r, 503, NULL, "events not stored, retry later: %s", err);
	if (kpub_fatal(in->kp))
		shutdown_requested = 1;
out:
	kpub_wait_release(w);
	batch_release(&b);
}
