/*
 * kcons: batch consumer with explicit offset storage; see kcons.h.
 */
#include "kcons.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kconf.h"
#include "log.h"

struct kcons {
	rd_kafka_t *rk;
};

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
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
	char num[3][32], kerr[512];

	if ((kc = calloc(1, sizeof(*kc))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
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
	    kconf_set(conf, "max.poll.interval.ms", num[2], err, errlen) < 0)
		goto fail;
	rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
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
