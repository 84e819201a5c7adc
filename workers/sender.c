/*
 * sender: mail.requests -> SendGrid.  Reads the topic in a consumer group; each record is
 * one mail, worked on by sender_job.c, and its offset is stored only once the outcome
 * (sent, retrying, failed, suppressed, or a cut-off attempt waiting for its check) is
 * durable in PostgreSQL.  Retries come from the Redis schedule (claimed with ZREM), or
 * from PostgreSQL while Redis is away; a reconciler puts back what Redis lost.
 *
 * SIGTERM: the call in flight finishes and its outcome is recorded, the offsets are
 * stored, the consumer leaves the group.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "kcons.h"
#include "kpub.h"
#include "log.h"
#include "metrics.h"
#include "metrics_push.h"
#include "prog.h"
#include "reload.h"
#include "sender.h"
#include "shutdown.h"

#define BATCH_MAX 64       /* records taken from Kafka at a time */
#define POLL_MS 100        /* longest wait for records; retries are looked at in between */
#define DUE_MAX 32         /* retries taken from the schedule at a time */
#define PG_POLL_MS 1000    /* how often retries are looked up in PostgreSQL without Redis */
#define RECONCILE_PAGE 500 /* rows per reconciler query */
#define REPORT_EVERY_S 10

/* A record's fields, checked.  doc owns what nw borrows. */
struct record {
	json_t *doc;
	char *request;
	struct sender_new nw;
};

static void
record_release(struct record *r)
{
	json_decref(r->doc);
	free(r->request);
	memset(r, 0, sizeof(*r));
}

/* Reads one mail.requests record; -1 with why when it can never be a message. */
static int
record_parse(const rd_kafka_message_t *m, struct record *r, char *why, size_t whylen)
{
	json_error_t jerr;
	json_t *id, *req, *args, *v;

	memset(r, 0, sizeof(*r));
	if (m->payload == NULL || m->len == 0) {
		snprintf(why, whylen, "empty record");
		return -1;
	}
	if ((r->doc = json_loadb(m->payload, m->len, 0, &jerr)) == NULL) {
		snprintf(why, whylen, "record is not valid JSON: %s", jerr.text);
		return -1;
	}
	id = json_object_get(r->doc, "message_id");
	if (!json_is_string(id) || !msgid_valid(json_string_value(id))) {
		snprintf(why, whylen, "invalid 'message_id': expected a message id (ULID)");
		goto fail;
	}
	req = json_object_get(r->doc, "request");
	if (!json_is_object(req)) {
		snprintf(why, whylen, "invalid 'request': expected an object");
		goto fail;
	}
	/* Events find their message by this custom arg: make sure it is there and right. */
	args = json_object_get(req, "custom_args");
	if (args == NULL) {
		args = json_object();
		if (json_object_set_new(req, "custom_args", args) < 0)
			goto oom;
	}
	if (!json_is_object(args)) {
		snprintf(why, whylen, "invalid 'request.custom_args': expected an object");
		goto fail;
	}
	if (json_object_set(args, "mailpipe_message_id", id) < 0)
		goto oom;
	r->nw.message_id = json_string_value(id);
	if ((v = json_object_get(r->doc, "api_key_id")) != NULL && json_is_integer(v)) {
		r->nw.api_key_id = json_integer_value(v);
		r->nw.has_api_key = 1;
	}
	if ((v = json_object_get(r->doc, "received_at_ms")) != NULL && json_is_integer(v) &&
	    json_integer_value(v) > 0)
		r->nw.received_ms = json_integer_value(v);
	/* Idempotency-Key and body hash (ingest checked them); anything odd is ignored. */
	if ((v = json_object_get(r->doc, "idempotency_key")) != NULL && json_is_string(v) &&
	    json_string_length(v) > 0 && json_string_length(v) <= 255)
		r->nw.idem_key = json_string_value(v);
	if ((v = json_object_get(r->doc, "body_sha256")) != NULL && json_is_string(v) &&
	    json_string_length(v) == 64)
		r->nw.body_sha256 = json_string_value(v);
	if ((r->request = json_dumps(req, JSON_COMPACT)) == NULL)
		goto oom;
	r->nw.request = r->request;
	return 0;
oom:
	snprintf(why, whylen, "out of memory reading the record");
fail:
	record_release(r);
	return -1;
}

/* The log fields of the lines about one record (m: NULL for a retry off the schedule). */
static void
set_ctx(const char *id, const rd_kafka_message_t *m)
{
	char part[16], off[24];

	if (m == NULL) {
		log_set_fields("message_id", id, "retry", "1", NULL);
		return;
	}
	snprintf(part, sizeof(part), "%d", (int)m->partition);
	snprintf(off, sizeof(off), "%lld", (long long)m->offset);
	log_set_fields("topic", rd_kafka_topic_name(m->rkt), "partition", part, "offset", off,
		       "message_id", id, NULL);
}

/* Pauses before trying again; 1 if shutdown came meanwhile. */
static int
pause_after(struct sender *s, const char *what, const char *err)
{
	long pause = backoff_next(&s->bo);

	log_warnx("%s, retrying in %ld ms: %s", what, pause, err);
	if (shutdown_sleep(pause))
		return 1;
	reload_poll(); /* a mail waiting for PostgreSQL or Redis still takes reloads */
	return 0;
}

/* A record that is no message: DLQ record, then dead_letters row.  -1 on shutdown. */
static int
dead_letter(struct sender *s, const rd_kafka_message_t *m, const char *why)
{
	const char *key = "";
	struct sender_dead d = {
	    .topic = rd_kafka_topic_name(m->rkt),
	    .partition = m->partition,
	    .offset = m->offset,
	    .payload = m->payload,
	    .len = m->len,
	    .error = why,
	};
	char kbuf[64], err[512];
	int dlq_done = 0;

	if (m->key && m->key_len < sizeof(kbuf)) {
		snprintf(kbuf, sizeof(kbuf), "%.*s", (int)m->key_len, (const char *)m->key);
		key = kbuf;
	}
	log_warnx("record dead-lettered: %s", why);
	for (;;) {
		if (!dlq_done &&
		    sender_job_dlq(s, key, m->payload, m->len, why, err, sizeof(err)) == 0)
			dlq_done = 1;
		if (dlq_done && sender_store_dead(s->st, &d, err, sizeof(err)) == 0)
			break;
		if (pause_after(s, "dead letter not recorded yet", err))
			return -1;
	}
	backoff_reset(&s->bo);
	s->total.dead++;
	return 0;
}

/* Works on one record until its outcome is durable; -1 on shutdown (offset not stored). */
static int
handle_record(struct sender *s, rd_kafka_message_t *m)
{
	struct record r;
	char why[640], err[512];
	int rc = -1;

	set_ctx(NULL, m);
	if (record_parse(m, &r, why, sizeof(why)) < 0) {
		if (dead_letter(s, m, why) < 0)
			return -1;
		kcons_store(s->kc, &m, 1);
		return 0;
	}
	struct sender_job j = {
	    .id = r.nw.message_id,
	    .rec = &r.nw,
	    .payload = m->payload,
	    .len = m->len,
	    .partition = m->partition,
	    .offset = m->offset,
	};
	set_ctx(j.id, m);
	for (;;) {
		enum sender_job_result res = sender_job_run(s, &j, err, sizeof(err));

		if (res == JOB_DONE)
			break;
		if (res == JOB_STOP)
			goto out;
		if (res == JOB_POISON) {
			snprintf(why, sizeof(why), "refused by postgresql: %s", err);
			if (dead_letter(s, m, why) < 0)
				goto out;
			break;
		}
		if (pause_after(s, "message not handled yet", err))
			goto out;
	}
	backoff_reset(&s->bo);
	kcons_store(s->kc, &m, 1);
	rc = 0;
out:
	record_release(&r);
	log_set_ctx(NULL);
	return rc;
}

/* Works on one message taken off the schedule. */
static void
handle_retry(struct sender *s, const char *id)
{
	struct sender_job j = {.id = id, .partition = -1, .offset = -1};
	char err[512];

	set_ctx(id, NULL);
	for (;;) {
		enum sender_job_result res = sender_job_run(s, &j, err, sizeof(err));

		if (res == JOB_DONE || res == JOB_POISON)
			break;
		if (res == JOB_STOP || pause_after(s, "retry not handled yet", err)) {
			/* Back on the schedule; PostgreSQL keeps it for the reconciler anyway. */
			if (sender_state_schedule(s->rs, id, sender_now_ms()) < 0)
				log_debug("retry left to the reconciler");
			break;
		}
	}
	backoff_reset(&s->bo);
	log_set_ctx(NULL);
}

/* Runs what is due: from the Redis schedule, or from PostgreSQL while Redis is away. */
static void
run_due(struct sender *s, long long *next_pg_poll)
{
	char ids[DUE_MAX][MSGID_LEN + 1];
	struct sender_pending pend[DUE_MAX], none = {{0}, 0, 0};
	char err[512];
	ssize_t n;

	if (sender_state_up(s->rs)) {
		if ((n = sender_state_due(s->rs, sender_now_ms(), ids, DUE_MAX)) <= 0)
			return;
		for (ssize_t i = 0; i < n && !shutdown_requested; i++)
			if (sender_state_claim(s->rs, ids[i]) == 1)
				handle_retry(s, ids[i]);
		return;
	}
	if (sender_now_ms() < *next_pg_poll)
		return;
	*next_pg_poll = sender_now_ms() + PG_POLL_MS;
	n = sender_store_pending(s->st, 1, s->cf->sender_max_age_seconds * 2, &none, pend, DUE_MAX,
				 err, sizeof(err));
	if (n < 0) {
		log_warnx("cannot look up due retries in postgresql: %s", err);
		return;
	}
	for (ssize_t i = 0; i < n && !shutdown_requested; i++)
		handle_retry(s, pend[i].id);
}

/*
 * Puts back on the Redis schedule every message PostgreSQL says is retrying (or waiting
 * for a cut-off check) that Redis does not have: Redis losing its data costs only time.
 */
static void
reconcile(struct sender *s)
{
	struct sender_pending *page = NULL, after = {{0}, 0, 0};
	char(*ids)[MSGID_LEN + 1] = NULL;
	unsigned char missing[RECONCILE_PAGE];
	char err[512];
	size_t added = 0, seen = 0;
	long window = s->cf->sender_max_age_seconds * 2 + s->grace_ms / 1000;
	ssize_t n;

	if (!sender_state_up(s->rs))
		return;
	page = calloc(RECONCILE_PAGE, sizeof(*page));
	ids = calloc(RECONCILE_PAGE, sizeof(*ids));
	if (page == NULL || ids == NULL) {
		log_warnx("reconciler: out of memory");
		goto out;
	}
	do {
		n = sender_store_pending(s->st, 0, window, &after, page, RECONCILE_PAGE, err,
					 sizeof(err));
		if (n < 0) {
			log_warnx("reconciler: cannot read pending messages: %s", err);
			goto out;
		}
		for (ssize_t i = 0; i < n; i++)
			memcpy(ids[i], page[i].id, sizeof(ids[i]));
		if (sender_state_missing(s->rs, ids, (size_t)n, missing) < 0)
			goto out;
		for (ssize_t i = 0; i < n; i++) {
			if (!missing[i])
				continue;
			long long due =
			    sender_now_ms() + (page[i].due_in_ms > 0 ? page[i].due_in_ms : 0);
			if (sender_state_schedule(s->rs, page[i].id, due) < 0)
				goto out;
			added++;
		}
		seen += (size_t)n;
		if (n > 0)
			after = page[n - 1];
	} while (n == RECONCILE_PAGE && !shutdown_requested);
out:
	if (added)
		log_info("reconciler put %zu of %zu pending messages back on the redis schedule",
			 added, seen);
	free(page);
	free(ids);
}

static void
report(struct sender *s, struct sender_totals *last)
{
	const struct sender_totals *t = &s->total;

	if (memcmp(last, t, sizeof(*last)) != 0)
		log_info("progress sent=%llu retried=%llu failed=%llu suppressed=%llu skipped=%llu "
			 "cut_off=%llu dead_letters=%llu",
			 t->sent, t->retried, t->failed, t->suppressed, t->skipped, t->ambiguous,
			 t->dead);
	*last = *t;
}

/* Adds the outcomes since *counted to the metrics; the retry queue's depth once a second. */
static void
count_outcomes(struct sender *s, struct sender_totals *counted, time_t *next_depth)
{
	const struct sender_totals *t = &s->total;
	struct metric_family *f = metrics_family(M_SENDER_ATTEMPTS);
	const struct {
		unsigned long long now, before;
		const char *outcome;
	} o[] = {
	    {t->sent, counted->sent, "sent"},
	    {t->retried, counted->retried, "retry"},
	    {t->failed, counted->failed, "failed"},
	    {t->suppressed, counted->suppressed, "suppressed"},
	    {t->ambiguous, counted->ambiguous, "ambiguous"},
	};
	long long depth;

	for (size_t i = 0; i < sizeof(o) / sizeof(o[0]); i++)
		if (o[i].now != o[i].before)
			metric_counter_add(f, (double)(o[i].now - o[i].before), o[i].outcome, NULL);
	*counted = *t;
	if (time(NULL) < *next_depth)
		return;
	*next_depth = time(NULL) + 1;
	if ((depth = sender_state_depth(s->rs)) >= 0)
		metric_gauge_set(metrics_family(M_SENDER_RETRY_QUEUE_DEPTH), (double)depth, NULL);
}

/* what SIGHUP applies besides log.level (reload.h); read per use by the main loop */
static const char *const live_keys[] = {
    "sender.rate_per_second",   "sender.max_attempts",
    "sender.max_age_seconds",   "sender.retry_base_ms",
    "sender.retry_max_ms",      "sender.ambiguous_grace_seconds",
    "sender.reconcile_seconds", NULL};

/*
 * A cut-off attempt is resent only after its grace: never while the call could still be
 * running (in another sender, say), so the grace is at least the call's time-out.
 */
static void
set_grace(struct sender *s)
{
	s->grace_ms = s->cf->sender_ambiguous_grace_seconds * 1000;
	if (s->grace_ms < s->cf->sendgrid_timeout_ms + 1000) {
		s->grace_ms = s->cf->sendgrid_timeout_ms + 1000;
		log_warnx("'sender.ambiguous_grace_seconds' is shorter than 'sendgrid.timeout_ms': "
			  "using %ld ms",
			  s->grace_ms);
	}
}

/* After a reload: the settings the sender keeps in a form of its own. */
static void
reloaded(void *arg)
{
	struct sender *s = arg;
	long per_second = s->cf->sender_rate_per_second;

	s->rate.per_ms = per_second > 0 ? (double)per_second / 1000.0 : 0.0;
	set_grace(s);
}

static int
run(struct sender *s)
{
	rd_kafka_message_t *msgs[BATCH_MAX];
	struct sender_totals last = {0}, counted = {0};
	time_t next_report = time(NULL) + REPORT_EVERY_S, next_reconcile = 0, next_depth = 0;
	long long next_pg_poll = 0;
	char err[512];
	int rc = 0;

	while (!shutdown_requested) {
		time_t now = time(NULL);
		ssize_t n;

		reload_poll();
		if (now >= next_report) {
			report(s, &last);
			next_report = now + REPORT_EVERY_S;
		}
		count_outcomes(s, &counted, &next_depth);
		if (sender_state_came_back(s->rs) || now >= next_reconcile) {
			reconcile(s);
			next_reconcile = time(NULL) + s->cf->sender_reconcile_seconds;
		}
		run_due(s, &next_pg_poll);
		if (shutdown_requested)
			break;
		n = kcons_poll(s->kc, msgs, BATCH_MAX, POLL_MS, err, sizeof(err));
		if (n < 0) {
			log_errx("%s", err);
			rc = -1;
			break;
		}
		for (ssize_t i = 0; i < n; i++) {
			/* After shutdown the rest stays unstored: the next owner replays it. */
			if (!shutdown_requested && handle_record(s, msgs[i]) < 0)
				log_info("shutdown: record left for replay");
			rd_kafka_message_destroy(msgs[i]);
		}
		if (kpub_fatal(s->kp)) {
			log_errx("the dead-letter producer failed for good: exiting");
			rc = -1;
			break;
		}
	}
	report(s, &last);
	return rc;
}

int
main(int argc, char **argv)
{
	struct config cf;
	struct sender s = {.cf = &cf};
	char err[512];
	int rc = 1, curl_ok = 0;

	if (!prog_start(argc, argv, &cf, &rc))
		goto out;
	struct reload_conf rl = {.cf = &cf, .live = live_keys, .applied = reloaded, .arg = &s};
	if (prog_install(&cf, &rl, "sender") < 0)
		goto out;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_errx("cannot initialise libcurl");
		goto out;
	}
	curl_ok = 1;
	if ((s.http = sender_http_new(&cf, err, sizeof(err))) == NULL) {
		log_errx("%s", err);
		goto out;
	}
	set_grace(&s);
	sender_rate_init(&s.rate, cf.sender_rate_per_second);
	backoff_init(&s.bo, 200, 10000);
	s.seed = (unsigned int)time(NULL) ^ (unsigned int)getpid();
	if ((s.rs = sender_state_new(cf.redis_url, cf.redis_prefix, cf.redis_marker_ttl_seconds,
				     err, sizeof(err))) == NULL) {
		log_errx("invalid 'redis.url': %s", err);
		goto out;
	}
	if ((s.st = sender_store_new(cf.database_url, cf.mail_idempotency_ttl_seconds)) == NULL) {
		log_errx("out of memory");
		goto out;
	}
	if ((s.kp = kpub_new(&cf, 30000, err, sizeof(err))) == NULL) {
		log_errx("%s", err);
		goto out;
	}
	const char *topics[] = {cf.kafka_mail_topic};
	if ((s.kc = kcons_new(&cf, cf.kafka_sender_group, topics, 1, err, sizeof(err))) == NULL) {
		log_errx("%s", err);
		goto out;
	}
	log_info("consuming %s as group %s, dead letters to %s", topics[0], cf.kafka_sender_group,
		 cf.kafka_mail_dlq_topic);
	rc = run(&s) < 0 ? 1 : 0;
out:
	metrics_push_stop();
	kcons_destroy(s.kc); /* commits the stored offsets, leaves the group */
	kpub_destroy(s.kp, 5000);
	sender_http_destroy(s.http);
	sender_store_destroy(s.st);
	sender_state_destroy(s.rs);
	if (curl_ok)
		curl_global_cleanup();
	config_release(&cf);
	log_info("exiting with status %d", rc);
	return rc;
}
