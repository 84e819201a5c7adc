/*
 * sender_job: what the sender does with one message; see sender.h.
 *
 *   load     step 1: the messages row (inserted from the Kafka record on first sight)
 *   done?    step 2: sent (or beyond), failed or suppressed -> skip.  Redis may know of a
 *            send PostgreSQL missed (a crash between the two writes): PostgreSQL is fixed.
 *   due?     retrying but not due yet -> back onto the schedule, skip
 *   cut off  step 3: still `sending` from an attempt that never finished (crash, time-out
 *            after the body went out): an event for it in `events` -> sent, no call; the
 *            grace since the attempt began not over -> check again when it is; else resend
 *   limits   sender.max_attempts / sender.max_age_seconds reached -> failed
 *   suppress step 4: recipients in `suppressions` dropped; none left -> suppressed
 *   call     step 5: rate limit, claim the attempt (compare and swap on attempts), state
 *            sending, POST, then record the outcome until it is durable (never call again
 *            for the same attempt): sent / retrying (+ schedule) / sending (ambiguous,
 *            + check) / failed (+ DLQ record + dead_letters row)
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kpub.h"
#include "log.h"
#include "sender.h"
#include "shutdown.h"

#define DUE_SLOP_MS 250   /* a schedule entry this early is close enough */
#define DLQ_WAIT_MS 10000 /* longest wait for the DLQ record's delivery */
#define ERROR_MAX 8192    /* longest last_error kept for a retry */

enum outcome_kind { OUT_SENT, OUT_RETRY, OUT_AMBIGUOUS, OUT_FAILED };

struct outcome {
	enum outcome_kind kind;
	char sg_id[SENDER_SGID_MAX];
	long long delay_ms; /* OUT_RETRY */
	char *error;        /* owned; last_error / dead letter reason */
	int dlq_done;
};

static int
is_done(const struct sender_row *row)
{
	return row->rank >= 20 || strcmp(row->status, "failed") == 0 ||
	       strcmp(row->status, "suppressed") == 0;
}

/* A new string from printf, or NULL when out of memory. */
static char *__attribute__((format(printf, 1, 2))) xprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/* Puts id on the Redis schedule due_in_ms from now; PostgreSQL already holds the time. */
static void
schedule(struct sender *s, const char *id, int64_t due_in_ms)
{
	long long due = sender_now_ms() + (due_in_ms > 0 ? due_in_ms : 0);

	if (sender_state_schedule(s->rs, id, due) < 0)
		log_debug("message '%s' not on the redis schedule: the reconciler will add it", id);
}

static void
set_state(struct sender *s, const char *id, const char *state, long attempts, const char *sg_id)
{
	if (sender_state_set(s->rs, id, state, attempts, sender_now_ms(), sg_id) < 0)
		log_debug("state of message '%s' not written to redis", id);
}

/*
 * Step 3's evidence: when events of the message arrived, SendGrid took it.  Records it as
 * sent with SendGrid's id and the first event's time taken from them; *seen says if so.
 */
static int
settle_from_events(struct sender *s, const struct sender_job *j, const struct sender_row *row,
		   int *seen, char *err, size_t errlen)
{
	char sg_id[SENDER_SGID_MAX];
	int64_t first_ms = 0;

	if (sender_store_event_seen(s->st, j->id, row->created_ms, seen, sg_id, sizeof(sg_id),
				    &first_ms, err, errlen) < 0)
		return -1;
	if (!*seen)
		return 0;
	if (sender_store_sent(s->st, j->id, sg_id, first_ms, err, errlen) < 0)
		return -1;
	set_state(s, j->id, "sent", row->attempts, sg_id);
	return 0;
}

/* Exponential backoff with jitter: about base * 2^(attempts-1), in [d/2, d], at most max. */
static long long
retry_delay(struct sender *s, long attempts)
{
	long long d = s->cf->sender_retry_base_ms, max = s->cf->sender_retry_max_ms;

	for (long i = 1; i < attempts && d < max; i++)
		d *= 2;
	if (d > max)
		d = max;
	return d / 2 + (long long)(rand_r(&s->seed) % (unsigned)(d / 2 + 1));
}

int
sender_job_dlq(struct sender *s, const char *key, const void *value, size_t len, const char *error,
	       char *err, size_t errlen)
{
	struct kpub_header hdrs[] = {{"error", error}, {"source_topic", s->cf->kafka_mail_topic}};
	struct kpub_wait *w = kpub_wait_new();
	int rc = -1;

	if (w == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (kpub_send(s->kp, w, s->cf->kafka_mail_dlq_topic, key, strlen(key), value, len, hdrs, 2,
		      err, errlen) < 0)
		goto out;
	if (kpub_wait_done(w, DLQ_WAIT_MS, err, errlen) < 0)
		goto out;
	rc = 0;
out:
	kpub_wait_release(w);
	return rc;
}

/* The DLQ record's value: the Kafka record itself, or the same shape rebuilt from the row. */
static char *
dlq_value(const struct sender_job *j, const struct sender_row *row, size_t *len)
{
	json_t *doc, *req;
	char *v;

	if (j->payload) {
		if ((v = malloc(j->len + 1)) == NULL)
			return NULL;
		memcpy(v, j->payload, j->len);
		*len = j->len;
		return v;
	}
	req = json_loads(row->request, 0, NULL);
	doc = json_pack("{s:s, s:o, s:I, s:o}", "message_id", j->id, "api_key_id",
			row->has_api_key ? json_integer(row->api_key_id) : json_null(),
			"received_at_ms", (json_int_t)row->created_ms, "request",
			req ? req : json_null());
	v = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	*len = v ? strlen(v) : 0;
	return v;
}

/* Makes o durable once; 0 when it is (counted), -1 with err. */
static int
persist_once(struct sender *s, const struct sender_job *j, const struct sender_row *row,
	     struct outcome *o, long attempts, char *err, size_t errlen)
{
	int changed = 1;
	int64_t due;

	switch (o->kind) {
	case OUT_SENT:
		if (sender_store_sent(s->st, j->id, o->sg_id, 0, err, errlen) < 0)
			return -1;
		s->total.sent++;
		log_debug("sent x_message_id=%s attempts=%ld", o->sg_id, attempts);
		return 0;
	case OUT_RETRY:
		if (sender_store_retry(s->st, j->id, o->delay_ms, o->error, &changed, err, errlen) <
		    0)
			return -1;
		if (changed) {
			schedule(s, j->id, o->delay_ms);
			set_state(s, j->id, "retrying", attempts, NULL);
			s->total.retried++;
			log_info("retry in %lld ms attempts=%ld: %.300s", o->delay_ms, attempts,
				 o->error);
		}
		return 0;
	case OUT_AMBIGUOUS:
		if (sender_store_ambiguous(s->st, j->id, o->error, &due, err, errlen) < 0)
			return -1;
		if (due == SENDER_NO_DUE) {
			/* No longer sending: its events arrived meanwhile, so SendGrid took it. */
			int seen = 0;

			if (settle_from_events(s, j, row, &seen, err, errlen) < 0)
				return -1;
			if (seen) {
				s->total.sent++;
				log_info("no answer after the request was sent, but its events "
					 "arrived: sent");
			}
			return 0;
		}
		schedule(s, j->id, due);
		s->total.ambiguous++;
		log_warnx("%s; checking events in %lld ms", o->error, (long long)due);
		return 0;
	case OUT_FAILED:
		if (!o->dlq_done) {
			size_t len = 0;
			char *v = dlq_value(j, row, &len);

			if (v == NULL) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			int rc = sender_job_dlq(s, j->id, v, len, o->error, err, errlen);
			free(v);
			if (rc < 0)
				return -1;
			o->dlq_done = 1;
		}
		struct sender_dead d = {
		    .topic = s->cf->kafka_mail_topic,
		    .partition = j->rec ? j->partition : -1,
		    .offset = j->rec ? j->offset : -1,
		    .error = o->error,
		};
		char *v = dlq_value(j, row, &d.len);
		if (v == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		d.payload = v;
		int rc = sender_store_failed(s->st, j->id, &d, &changed, err, errlen);
		free(v);
		if (rc < 0)
			return -1;
		if (changed) {
			set_state(s, j->id, "failed", attempts, NULL);
			s->total.failed++;
			log_warnx("failed for good attempts=%ld: %.500s", attempts, o->error);
		}
		return 0;
	}
	return -1;
}

/*
 * Records o, retrying with backoff while PostgreSQL or Kafka are away: the call is never
 * made again for this attempt.  After shutdown was requested, one more try only.
 */
static enum sender_job_result
persist(struct sender *s, const struct sender_job *j, const struct sender_row *row,
	struct outcome *o, long attempts, char *err, size_t errlen)
{
	int tries_after_stop = 0;

	for (;;) {
		if (persist_once(s, j, row, o, attempts, err, errlen) == 0) {
			backoff_reset(&s->bo);
			return JOB_DONE;
		}
		if (shutdown_requested && tries_after_stop++ > 0) {
			log_warnx("shutdown before the outcome was recorded (left for the "
				  "cut-off check after restart): %s",
				  err);
			return JOB_STOP;
		}
		long pause = backoff_next(&s->bo);
		log_warnx("outcome not recorded yet, retrying in %ld ms: %s", pause, err);
		shutdown_sleep(pause);
	}
}

/* A new outcome failing the message now (without a call). */
static enum sender_job_result
fail_now(struct sender *s, const struct sender_job *j, const struct sender_row *row, char *why,
	 char *err, size_t errlen)
{
	struct outcome o = {.kind = OUT_FAILED, .error = why};
	enum sender_job_result rc;

	if (why == NULL) {
		snprintf(err, errlen, "out of memory");
		return JOB_AGAIN;
	}
	rc = persist(s, j, row, &o, row->attempts, err, errlen);
	free(why);
	return rc;
}

/* SendGrid's answer (or the transport failure) as text for last_error. */
static char *
reply_text(const struct sender_reply *rep)
{
	if (rep->status == 0)
		return xprintf("transport failure: %s", rep->error);
	if (rep->body_len == 0)
		return xprintf("HTTP %ld with an empty body", rep->status);
	if (rep->cls == SEND_PERMANENT)
		return strdup(rep->body); /* SendGrid's error body, as it came */
	return xprintf("HTTP %ld: %.*s", rep->status, ERROR_MAX, rep->body);
}

/* Turns SendGrid's answer to attempt number `attempts` into an outcome. */
static int
outcome_of(struct sender *s, const struct sender_row *row, const struct sender_reply *rep,
	   long attempts, long long took_ms, struct outcome *o)
{
	const struct config *cf = s->cf;
	char *text;

	memset(o, 0, sizeof(*o));
	if (rep->cls == SEND_OK) {
		o->kind = OUT_SENT;
		snprintf(o->sg_id, sizeof(o->sg_id), "%s", rep->sg_id);
		return 0;
	}
	if ((text = reply_text(rep)) == NULL)
		return -1;
	switch (rep->cls) {
	case SEND_OK: break;
	case SEND_PERMANENT:
		o->kind = OUT_FAILED;
		o->error = text;
		return 0;
	case SEND_AMBIGUOUS:
		o->kind = OUT_AMBIGUOUS;
		o->error = xprintf("no answer after the request was sent, it may have been "
				   "accepted (%s)",
				   rep->error);
		free(text);
		return o->error ? 0 : -1;
	case SEND_RATE:
	case SEND_RETRY:
		o->kind = OUT_RETRY;
		o->delay_ms = retry_delay(s, attempts);
		if (rep->cls == SEND_RATE && rep->reset_ms > 0) {
			long long wait = rep->reset_ms - sender_now_ms();
			o->delay_ms = wait > 0 ? wait : 0;
		}
		if (rep->cls == SEND_RATE)
			sender_rate_hold(&s->rate, sender_now_ms() + o->delay_ms,
					 cf->sender_retry_max_ms);
		if (attempts >= cf->sender_max_attempts) {
			o->kind = OUT_FAILED;
			o->error = xprintf("gave up after %ld attempts: %s", attempts, text);
		} else if (row->age_ms + took_ms + o->delay_ms >=
			   cf->sender_max_age_seconds * 1000) {
			o->kind = OUT_FAILED;
			o->error =
			    xprintf("gave up: older than sender.max_age_seconds (%ld) at its "
				    "next attempt: %s",
				    cf->sender_max_age_seconds, text);
		} else {
			o->error = text;
			text = NULL;
		}
		free(text);
		return o->error ? 0 : -1;
	}
	free(text);
	return -1;
}

/* Steps 4 and 5 for a message that is due. */
static enum sender_job_result
attempt(struct sender *s, const struct sender_job *j, const struct sender_row *row, char *err,
	size_t errlen)
{
	const struct config *cf = s->cf;
	const char *last = row->last_error ? row->last_error : "no error recorded";
	struct sender_reply rep;
	struct outcome o;
	char *body = NULL;
	size_t dropped, lost;
	int won = 0, b;
	enum sender_job_result rc;

	if (row->attempts >= cf->sender_max_attempts)
		return fail_now(s, j, row,
				xprintf("gave up after %ld attempts: %s", row->attempts, last), err,
				errlen);
	if (row->age_ms >= cf->sender_max_age_seconds * 1000)
		return fail_now(s, j, row,
				xprintf("gave up: older than sender.max_age_seconds (%ld): %s",
					cf->sender_max_age_seconds, last),
				err, errlen);
	if ((b = sender_rcpt_filter(s->st, row->request, &body, &dropped, &lost, err, errlen)) ==
	    -2)
		return fail_now(s, j, row, strdup(err), err, errlen);
	if (b < 0)
		return JOB_AGAIN;
	if (body == NULL) {
		const char *why =
		    lost ? "every `to` recipient is suppressed" : "every recipient is suppressed";
		if (sender_store_suppressed(s->st, j->id, why, err, errlen) < 0)
			return JOB_AGAIN;
		set_state(s, j->id, "suppressed", row->attempts, NULL);
		s->total.suppressed++;
		log_info("suppressed: %s", why);
		return JOB_DONE;
	}
	if (dropped > 0)
		log_info("dropped %zu suppressed recipients (and %zu cc/bcc of personalizations "
			 "left without a `to`)",
			 dropped, lost);
	if (sender_rate_wait(&s->rate) < 0) {
		free(body);
		return JOB_STOP;
	}
	if (sender_store_begin(s->st, j->id, row->attempts, s->grace_ms, &won, err, errlen) < 0) {
		free(body);
		return JOB_AGAIN;
	}
	if (!won) {
		/* Another sender claimed this attempt meanwhile: it owns the outcome. */
		free(body);
		s->total.skipped++;
		log_info("attempt %ld taken by another sender", row->attempts + 1);
		return JOB_DONE;
	}
	long attempts = row->attempts + 1;
	set_state(s, j->id, "sending", attempts, NULL);

	long long t0 = sender_now_ms();
	sender_http_send(s->http, body, strlen(body), &rep);
	free(body);
	if (outcome_of(s, row, &rep, attempts, sender_now_ms() - t0, &o) < 0) {
		/* Out of memory: say the least, and let the cut-off check decide later. */
		o = (struct outcome){.kind = OUT_AMBIGUOUS};
		if ((o.error = strdup("out of memory recording the answer")) == NULL)
			return JOB_STOP;
	}
	if (o.kind == OUT_SENT) /* the fastest record of the send, before PostgreSQL's */
		set_state(s, j->id, "sent", attempts, o.sg_id);
	rc = persist(s, j, row, &o, attempts, err, errlen);
	free(o.error);
	return rc;
}

/* Step 3's cut-off check; JOB_DONE when settled for now, -1 to resend, JOB_AGAIN. */
static int
cut_off(struct sender *s, const struct sender_job *j, const struct sender_row *row, char *err,
	size_t errlen)
{
	int seen = 0;
	int64_t due;

	if (settle_from_events(s, j, row, &seen, err, errlen) < 0)
		return JOB_AGAIN;
	if (seen) {
		s->total.sent++;
		log_info("a cut-off attempt reached SendGrid (its events arrived): sent, not "
			 "resending");
		return JOB_DONE;
	}
	/* next_attempt_at = when the attempt began + the grace (sender_store_begin). */
	due = row->due_in_ms != SENDER_NO_DUE ? row->due_in_ms : s->grace_ms - row->age_ms;
	if (due > 0) {
		schedule(s, j->id, due);
		s->total.ambiguous++;
		log_info("attempt %ld was cut off: checking its events in %lld ms", row->attempts,
			 (long long)due);
		return JOB_DONE;
	}
	log_warnx("attempt %ld was cut off and no event arrived within the grace period: "
		  "resending",
		  row->attempts);
	return -1;
}

enum sender_job_result
sender_job_run(struct sender *s, const struct sender_job *j, char *err, size_t errlen)
{
	struct sender_row row;
	struct sender_mstate ms;
	enum sender_job_result rc = JOB_DONE;

	switch (sender_store_load(s->st, j->rec, j->id, &row, err, errlen)) {
	case LOAD_OK: break;
	case LOAD_NONE:
		log_warnx("no message '%s' in postgresql: dropped from the schedule", j->id);
		return JOB_DONE;
	case LOAD_POISON: return JOB_POISON;
	case LOAD_FAIL: return JOB_AGAIN;
	}
	if (!is_done(&row) && sender_state_get(s->rs, j->id, &ms) == 1 &&
	    strcmp(ms.state, "sent") == 0) {
		/* Redis took the send, then PostgreSQL missed it (crash or outage). */
		if (sender_store_sent(s->st, j->id, ms.sg_id, 0, err, errlen) < 0)
			rc = JOB_AGAIN;
		else
			s->total.skipped++;
		goto out;
	}
	if (is_done(&row)) {
		int seen = 0;

		/*
		 * Events moved it on before the sender settled it (a cut-off attempt, or a
		 * crash before the outcome was recorded): take SendGrid's id and the time
		 * from them.
		 */
		if (!row.has_sent_at && row.attempts > 0 && row.rank >= 20 &&
		    strcmp(row.status, "failed") != 0 && strcmp(row.status, "suppressed") != 0 &&
		    settle_from_events(s, j, &row, &seen, err, errlen) < 0) {
			rc = JOB_AGAIN;
			goto out;
		}
		s->total.skipped++;
		log_debug("already %s: skipped", row.status);
		goto out;
	}
	if (strcmp(row.status, "retrying") == 0 && row.due_in_ms != SENDER_NO_DUE &&
	    row.due_in_ms > DUE_SLOP_MS) {
		schedule(s, j->id, row.due_in_ms);
		s->total.skipped++;
		log_debug("retry not due for %lld ms: left on the schedule",
			  (long long)row.due_in_ms);
		goto out;
	}
	if (strcmp(row.status, "sending") == 0) {
		int c = cut_off(s, j, &row, err, errlen);
		if (c >= 0) {
			rc = (enum sender_job_result)c;
			goto out;
		}
	}
	rc = attempt(s, j, &row, err, errlen);
out:
	sender_row_release(&row);
	return rc;
}
