/*
 * kcons: batch consumer with explicit offset storage; see kcons.h.
 */
#include "kcons.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "kconf.h"
#include "log.h"
#include "metrics.h"

struct kcons {
	rd_kafka_t *rk;
	char group[256]; /* the consumer lag's label */
};

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/*
 * The lag of one partition of librdkafka's statistics: the end offset minus the stored
 * offset (what is safely written), else minus the committed one; with neither, everything
 * from the log's start is pending (a partition never consumed starts there).  -1 for a
 * partition not assigned here, or when the offsets are not known yet.
 */
/* An integer field of librdkafka's statistics; -1 when absent. */
static long long
stat_int(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

static long long
partition_lag(json_t *p)
{
	const char *state = json_string_value(json_object_get(p, "fetch_state"));
	long long lag, hi = stat_int(p, "hi_offset"), lo = stat_int(p, "lo_offset");

	if (stat_int(p, "partition") < 0 || state == NULL || strcmp(state, "none") == 0 ||
	    strcmp(state, "stopping") == 0 || strcmp(state, "stopped") == 0)
		return -1;
	if ((lag = stat_int(p, "consumer_lag_stored")) >= 0 ||
	    (lag = stat_int(p, "consumer_lag")) >= 0)
		return lag;
	if (stat_int(p, "committed_offset") < 0 && stat_int(p, "stored_offset") < 0 && hi >= 0 &&
	    lo >= 0)
		return hi - lo;
	return -1;
}

/* librdkafka's statistics (served by kcons_poll()): the consumer lag per partition. */
static int
stats_cb(rd_kafka_t *rk, char *text, size_t len, void *opaque)
{
	struct kcons *kc = opaque;
	json_t *doc = json_loadb(text, len, 0, NULL);
	void *ti, *pi;

	(void)rk;
	for (ti = json_object_iter(json_object_get(doc, "topics")); ti;
	     ti = json_object_iter_next(json_object_get(doc, "topics"), ti)) {
		json_t *parts = json_object_get(json_object_iter_value(ti), "partitions");

		for (pi = json_object_iter(parts); pi; pi = json_object_iter_next(parts, pi)) {
			long long lag = partition_lag(json_object_iter_value(pi));

			if (lag >= 0)
				metric_gauge_set(metrics_family(M_CONSUMER_LAG), (double)lag,
						 kc->group, json_object_iter_key(ti),
						 json_object_iter_key(pi), NULL);
		}
	}
	json_decref(doc);
	return 0; /* librdkafka frees text */
}

/*
 * On assignment, look up committed offsets ourselves so that a partition never consumed
 * starts at the beginning, while auto.offset.reset keeps governing offsets that vanished.
 */
static void
rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
	     void *opaque)
{
	(void)opaque;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;

		for (int attempt = 0; attempt < 5; attempt++) {
			if ((e = rd_kafka_committed(rk, parts, 5000)) == RD_KAFKA_RESP_ERR_NO_ERROR)
				break;
			log_warnx("cannot fetch committed offsets: %s", rd_kafka_err2str(e));
		}
		for (int i = 0; i < parts->cnt; i++) {
			rd_kafka_topic_partition_t *p = &parts->elems[i];

			if (p->offset == RD_KAFKA_OFFSET_INVALID && e == RD_KAFKA_RESP_ERR_NO_ERROR)
				p->offset = RD_KAFKA_OFFSET_BEGINNING;
			log_info("assigned topic=%s partition=%d offset=%lld", p->topic,
				 (int)p->partition, (long long)p->offset);
		}
		rd_kafka_assign(rk, parts);
	} else {
		for (int i = 0; i < parts->cnt; i++)
			log_info("revoked topic=%s partition=%d", parts->elems[i].topic,
				 (int)parts->elems[i].partition);
		rd_kafka_assign(rk, NULL);
	}
}

struct kcons *
kcons_new(const struct config *cf, const char *group, const char *const *topics, size_t ntopics,
	  char *err, size_t errlen)
{
	struct kcons *kc = NULL;
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_topic_partition_list_t *subs = NULL;
	rd_kafka_resp_err_t e;
	char num[4][32], kerr[512];

	if ((kc = calloc(1, sizeof(*kc))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(kc->group, sizeof(kc->group), "%s", group);
	if ((conf = kconf_new(cf, err, errlen)) == NULL)
		goto fail;
	snprintf(num[0], sizeof(num[0]), "%ld", cf->kafka_fetch_wait_max_ms);
	snprintf(num[1], sizeof(num[1]), "%ld", cf->kafka_session_timeout_ms);
	snprintf(num[2], sizeof(num[2]), "%ld", cf->kafka_max_poll_interval_ms);
	if (kconf_set(conf, "group.id", group, err, errlen) < 0 ||
	    kconf_set(conf, "enable.auto.commit", "true", err, errlen) < 0 ||
	    kconf_set(conf, "auto.commit.interval.ms", "1000", err, errlen) < 0 ||
	    kconf_set(conf, "enable.auto.offset.store", "false", err, errlen) < 0 ||
	    kconf_set(conf, "auto.offset.reset", cf->kafka_auto_offset_reset, err, errlen) < 0 ||
	    kconf_set(conf, "fetch.wait.max.ms", num[0], err, errlen) < 0 ||
	    kconf_set(conf, "session.timeout.ms", num[1], err, errlen) < 0 ||
	    kconf_set(conf, "max.poll.interval.ms", num[2], err, errlen) < 0 ||
	    /*
	     * Prefetch at most 8 MB (librdkafka's default is 64 MB): with a backlog the
	     * default alone took the sink's peak RSS to ~90 MB (make bench).  librdkafka
	     * keeps fetch.max.bytes >= message.max.bytes, so a large mail still fits.
	     */
	    kconf_set(conf, "queued.max.messages.kbytes", "8192", err, errlen) < 0)
		goto fail;
	rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	if (cf->metrics_push_seconds > 0) {
		/* the lag is looked at as often as it is pushed */
		snprintf(num[3], sizeof(num[3]), "%ld", cf->metrics_push_seconds * 1000);
		if (kconf_set(conf, "statistics.interval.ms", num[3], err, errlen) < 0)
			goto fail;
		rd_kafka_conf_set_stats_cb(conf, stats_cb);
		rd_kafka_conf_set_opaque(conf, kc);
	}
	if ((kc->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, kerr, sizeof(kerr))) == NULL) {
		snprintf(err, errlen, "cannot create kafka consumer: %s", kerr);
		goto fail;
	}
	conf = NULL;
	rd_kafka_poll_set_consumer(kc->rk);
	subs = rd_kafka_topic_partition_list_new((int)ntopics);
	for (size_t i = 0; i < ntopics; i++)
		rd_kafka_topic_partition_list_add(subs, topics[i], RD_KAFKA_PARTITION_UA);
	e = rd_kafka_subscribe(kc->rk, subs);
	rd_kafka_topic_partition_list_destroy(subs);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, errlen, "cannot subscribe: %s", rd_kafka_err2str(e));
		rd_kafka_destroy(kc->rk);
		goto fail;
	}
	return kc;
fail:
	if (conf)
		rd_kafka_conf_destroy(conf);
	free(kc);
	return NULL;
}

ssize_t
kcons_poll(struct kcons *kc, rd_kafka_message_t **msgs, size_t max, int max_ms, char *err,
	   size_t errlen)
{
	long deadline = now_ms() + max_ms;
	size_t n = 0;

	while (n < max) {
		long left = deadline - now_ms();
		rd_kafka_message_t *m;

		/* Wait for the first message of a batch for up to max_ms, then fill greedily. */
		m = rd_kafka_consumer_poll(kc->rk, left > 0 ? (int)left : 0);
		if (m == NULL) {
			if (left <= 0)
				break;
			continue;
		}
		if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			msgs[n++] = m;
			continue;
		}
		if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
		    m->err == RD_KAFKA_RESP_ERR__FATAL) {
			snprintf(err, errlen, "cannot go on consuming topic=%s partition=%d: %s",
				 m->rkt ? rd_kafka_topic_name(m->rkt) : "-", (int)m->partition,
				 rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
			for (size_t i = 0; i < n; i++)
				rd_kafka_message_destroy(msgs[i]);
			return -1;
		}
		if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			log_warnx("kafka consumer: %s", rd_kafka_message_errstr(m));
		rd_kafka_message_destroy(m);
		if (left <= 0)
			break;
	}
	return (ssize_t)n;
}

void
kcons_store(struct kcons *kc, rd_kafka_message_t *const *msgs, size_t n)
{
	rd_kafka_topic_partition_list_t *offs;
	rd_kafka_resp_err_t e;

	if (n == 0)
		return;
	offs = rd_kafka_topic_partition_list_new((int)n);
	for (size_t i = 0; i < n; i++) {
		const char *topic = rd_kafka_topic_name(msgs[i]->rkt);
		rd_kafka_topic_partition_t *p =
		    rd_kafka_topic_partition_list_find(offs, topic, msgs[i]->partition);

		if (p == NULL)
			p = rd_kafka_topic_partition_list_add(offs, topic, msgs[i]->partition);
		else if (p->offset > msgs[i]->offset + 1)
			continue;
		p->offset = msgs[i]->offset + 1;
	}
	/* Fails for partitions revoked meanwhile: their next owner replays, harmlessly. */
	if ((e = rd_kafka_offsets_store(kc->rk, offs)) != RD_KAFKA_RESP_ERR_NO_ERROR)
		log_warnx("cannot store offsets: %s", rd_kafka_err2str(e));
	rd_kafka_topic_partition_list_destroy(offs);
}

void
kcons_destroy(struct kcons *kc)
{
	rd_kafka_resp_err_t e;

	if (kc == NULL)
		return;
	if ((e = rd_kafka_consumer_close(kc->rk)) != RD_KAFKA_RESP_ERR_NO_ERROR)
		log_warnx("kafka consumer close: %s", rd_kafka_err2str(e));
	rd_kafka_destroy(kc->rk);
	free(kc);
}
