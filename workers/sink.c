/*
 * sink: Kafka -> PostgreSQL.  Reads sendgrid.events (and its dead-letter topic) in a
 * consumer group, writes each batch in one transaction (sink_store.c), and only after
 * COMMIT sets the Redis markers and stores the Kafka offsets.  A crash anywhere replays
 * from the last stored offset and changes nothing: the database's unique key decides.
 *
 * While PostgreSQL is away the batch is kept and retried with backoff; the partitions stay
 * ours (max.poll.interval.ms is long) and nothing moves until the batch is in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "backoff.h"
#include "config.h"
#include "idem.h"
#include "kcons.h"
#include "log.h"
#include "metrics.h"
#include "metrics_push.h"
#include "prog.h"
#include "rconn.h"
#include "reload.h"
#include "shutdown.h"
#include "sink.h"

#define MAINTAIN_EVERY_S 3600
#define REPORT_EVERY_S 10

struct totals {
	unsigned long long batches, inserted, duplicates, skipped, dead, suppressed;
};

struct sink {
	const struct config *cf;
	struct kcons *kc;
	struct store *st;
	struct idem *idem;
	struct rconn *redis;
	struct backoff bo;
	/* per-batch scratch, sized for sink.batch_max */
	rd_kafka_message_t **msgs;
	json_t **docs;
	struct sink_event *ev;
	struct sink_dead *dead;
	const char **ids;
	unsigned char *seen;
	struct totals total;
};

/*
 * Sorts n messages into events to write and dead letters; returns the number of events.
 * docs[i] keeps each parsed event alive until the batch is done.
 */
static size_t
classify(struct sink *s, size_t n, size_t *ndead)
{
	size_t nev = 0;

	*ndead = 0;
	for (size_t i = 0; i < n; i++) {
		s->docs[i] = sink_classify(s->msgs[i], s->cf->kafka_events_dlq_topic, &s->ev[nev],
					   &s->dead[*ndead]);
		if (s->docs[i] == NULL) {
			(*ndead)++;
			continue;
		}
		s->ids[nev] = s->ev[nev].sg_event_id;
		nev++;
	}
	return nev;
}

/* Drops events Redis says are already written; returns how many are left. */
static size_t
skip_known(struct sink *s, size_t nev)
{
	size_t kept = 0;

	if (idem_seen(s->idem, s->ids, nev, s->seen) < 0)
		return nev;
	for (size_t i = 0; i < nev; i++) {
		if (s->seen[i])
			continue;
		s->ev[kept] = s->ev[i];
		s->ids[kept++] = s->ids[i];
	}
	s->total.skipped += nev - kept;
	return kept;
}

/*
 * Copies the addresses this batch suppressed into the Redis set <prefix>suppressed.  The
 * table is the authority (the sender reads it); the set is a fast mirror, so a failure
 * here is only logged.
 */
static void
mirror_suppressions(struct sink *s)
{
	int n = sink_mirror_suppressions(s->st, s->redis, s->cf->redis_prefix);

	if (n < 0)
		log_warnx("suppressions not mirrored to redis: redis unavailable");
	else
		s->total.suppressed += (unsigned long long)n;
}

/* The metrics of a committed batch: nev events written (or found), known skipped by marker. */
static void
count_batch(struct sink *s, size_t nev, size_t ndead, size_t known, const struct store_result *res)
{
	static const char *const names[] = {"processed",
					    "dropped",
					    "delivered",
					    "deferred",
					    "bounce",
					    "open",
					    "click",
					    "spamreport",
					    "unsubscribe",
					    "group_unsubscribe",
					    "group_resubscribe"};
	double now_ms = metrics_wall_now() * 1000;

	metric_counter_add(metrics_family(M_SINK_BATCHES), 1, "committed", NULL);
	for (size_t i = 0; i < store_fresh_count(s->st); i++) {
		long rows;
		const char *ev = store_fresh_event(s->st, i, &rows), *label = "other";

		for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
			if (strcmp(ev, names[k]) == 0)
				label = names[k];
		metric_counter_add(metrics_family(M_SINK_ROWS_WRITTEN), (double)rows, label, NULL);
	}
	metric_counter_add(metrics_family(M_SINK_DUPLICATES), (double)(res->duplicates + known),
			   NULL);
	for (size_t i = 0; i < ndead; i++)
		metric_counter_add(metrics_family(M_DEAD_LETTERS), 1, s->dead[i].topic, NULL);
	for (size_t i = 0; i < nev; i++)
		if (s->ev[i].received_ms > 0)
			metric_histogram_observe(metrics_family(M_WEBHOOK_TO_ROW),
						 (now_ms - (double)s->ev[i].received_ms) / 1000,
						 NULL);
}

/*
 * Keeps in s->ids only the events the database took: store_write() appended the ones it
 * refused to s->dead[from..to).  A marker means "the row exists"; one on a refused event
 * would make the sink skip it when it is replayed after a fix.  Returns how many are left.
 */
static size_t
drop_refused(struct sink *s, size_t nev, size_t from, size_t to)
{
	size_t kept = 0;

	for (size_t i = 0; i < nev; i++) {
		int refused = 0;

		for (size_t d = from; d < to && !refused; d++)
			refused = s->dead[d].partition == s->ev[i].partition &&
				  s->dead[d].offset == s->ev[i].offset;
		if (!refused)
			s->ids[kept++] = s->ids[i];
	}
	return kept;
}

/*
 * Logs each dead letter of the committed batch with its Kafka coordinates (and the event
 * id of an event the database refused) as log fields.
 */
static void
log_dead(const struct sink *s, size_t nev, size_t ndead)
{
	for (size_t d = 0; d < ndead; d++) {
		const struct sink_dead *dl = &s->dead[d];
		const char *id = NULL;
		char part[16], off[24];

		for (size_t i = 0; i < nev && id == NULL; i++)
			if (s->ev[i].partition == dl->partition && s->ev[i].offset == dl->offset &&
			    strcmp(s->ev[i].topic, dl->topic) == 0)
				id = s->ev[i].sg_event_id;
		snprintf(part, sizeof(part), "%d", (int)dl->partition);
		snprintf(off, sizeof(off), "%lld", (long long)dl->offset);
		log_set_fields("topic", dl->topic, "partition", part, "offset", off, "sg_event_id",
			       id, NULL);
		log_warnx("record dead-lettered: %s", dl->error);
	}
	log_set_ctx(NULL);
}

/* Writes one batch, retrying until it is in or shutdown is requested; -1 on shutdown. */
static int
write_batch(struct sink *s, size_t n)
{
	size_t ndead, nev = classify(s, n, &ndead), ndead_before = ndead;
	struct store_result res;
	char err[512];
	int rc = -1;

	size_t known = nev;

	nev = skip_known(s, nev);
	known -= nev;
	for (;;) {
		ndead = ndead_before;
		if (store_write(s->st, s->ev, nev, s->dead, &ndead, n, &res, err, sizeof(err)) == 0)
			break;
		metric_counter_add(metrics_family(M_SINK_BATCHES), 1, "failed", NULL);
		long pause = backoff_next(&s->bo);
		log_warnx("batch of %zu not written, retrying in %ld ms: %s", n, pause, err);
		if (shutdown_sleep(pause))
			goto out;
		reload_poll();
	}
	backoff_reset(&s->bo);
	/* Committed: now the fast path and the offsets may move. */
	if (idem_mark(s->idem, s->ids, drop_refused(s, nev, ndead_before, ndead)) < 0)
		log_debug("markers not set: redis unavailable");
	mirror_suppressions(s);
	kcons_store(s->kc, s->msgs, n);
	count_batch(s, nev, ndead, known, &res);
	s->total.batches++;
	s->total.inserted += res.inserted;
	s->total.duplicates += res.duplicates;
	s->total.dead += ndead;
	log_dead(s, nev, ndead);
	log_debug("batch written records=%zu inserted=%zu duplicates=%zu dead=%zu", n, res.inserted,
		  res.duplicates, ndead);
	rc = 0;
out:
	for (size_t i = 0; i < n; i++)
		json_decref(s->docs[i]);
	return rc;
}

static void
maintain(struct sink *s)
{
	char err[512];

	if (store_maintain(s->st, err, sizeof(err)) < 0)
		log_warnx("partition maintenance failed (will retry): %s", err);
}

/* what SIGHUP applies besides log.level (reload.h); read per use by the loop */
static const char *const live_keys[] = {"sink.batch_ms", NULL};

static int
run(struct sink *s)
{
	const struct config *cf = s->cf;
	time_t next_maintain = 0, next_report = time(NULL) + REPORT_EVERY_S;
	struct totals last = {0};
	char err[512];

	while (!shutdown_requested) {
		ssize_t n;
		time_t now = time(NULL);

		reload_poll();
		if (now >= next_maintain) {
			maintain(s);
			next_maintain = now + MAINTAIN_EVERY_S;
		}
		if (now >= next_report) {
			if (memcmp(&last, &s->total, sizeof(last)) != 0)
				log_info("progress batches=%llu inserted=%llu duplicates=%llu "
					 "skipped_by_marker=%llu dead_letters=%llu suppressed=%llu",
					 s->total.batches, s->total.inserted, s->total.duplicates,
					 s->total.skipped, s->total.dead, s->total.suppressed);
			last = s->total;
			next_report = now + REPORT_EVERY_S;
		}
		n = kcons_poll(s->kc, s->msgs, (size_t)cf->sink_batch_max, (int)cf->sink_batch_ms,
			       err, sizeof(err));
		if (n < 0) {
			log_errx("%s", err);
			return -1;
		}
		if (n == 0)
			continue;
		int stopped = write_batch(s, (size_t)n) < 0;
		for (ssize_t i = 0; i < n; i++)
			rd_kafka_message_destroy(s->msgs[i]);
		if (stopped)
			log_info("shutdown during retry: batch left for replay");
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct config cf;
	struct sink s = {.cf = &cf};
	char err[512];
	int rc = 1;

	if (!prog_start(argc, argv, &cf, &rc))
		goto out;
	struct reload_conf rl = {.cf = &cf, .live = live_keys};
	if (prog_install(&cf, &rl, "sink") < 0)
		goto out;
	size_t max = (size_t)cf.sink_batch_max;
	s.msgs = calloc(max, sizeof(*s.msgs));
	s.docs = calloc(max, sizeof(*s.docs));
	s.ev = calloc(max, sizeof(*s.ev));
	s.dead = calloc(max, sizeof(*s.dead));
	s.ids = calloc(max, sizeof(*s.ids));
	s.seen = calloc(max, sizeof(*s.seen));
	if (!s.msgs || !s.docs || !s.ev || !s.dead || !s.ids || !s.seen) {
		log_errx("out of memory");
		goto out;
	}
	backoff_init(&s.bo, 200, cf.sink_retry_max_ms);
	if ((s.redis = rconn_new(cf.redis_url, err, sizeof(err))) == NULL) {
		log_errx("invalid redis.url: %s", err);
		goto out;
	}
	if ((s.idem = idem_new(s.redis, cf.redis_prefix, "ev", cf.redis_marker_ttl_seconds)) ==
	    NULL) {
		log_errx("out of memory");
		goto out;
	}
	if ((s.st = store_new(cf.database_url)) == NULL) {
		log_errx("out of memory");
		goto out;
	}
	const char *topics[] = {cf.kafka_events_topic, cf.kafka_events_dlq_topic};
	if ((s.kc = kcons_new(&cf, cf.kafka_sink_group, topics, 2, err, sizeof(err))) == NULL) {
		log_errx("%s", err);
		goto out;
	}
	log_info("consuming %s and %s as group %s", topics[0], topics[1], cf.kafka_sink_group);
	rc = run(&s) < 0 ? 1 : 0;
out:
	metrics_push_stop();
	kcons_destroy(s.kc);
	store_destroy(s.st);
	idem_destroy(s.idem);
	rconn_destroy(s.redis);
	free(s.msgs);
	free(s.docs);
	free(s.ev);
	free(s.dead);
	free(s.ids);
	free(s.seen);
	config_release(&cf);
	log_info("exiting with status %d", rc);
	return rc;
}
