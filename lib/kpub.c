/*
 * kpub: idempotent producer with per-caller delivery waits; see kpub.h.
 */
#include "kpub.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "kconf.h"
#include "log.h"
#include "metrics.h"

struct kpub {
	rd_kafka_t *rk;
	pthread_t poller;
	atomic_int stop;
	atomic_int fatal;
};

struct kpub_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs;
	long pending;
	long failed;
	char first_err[200];
	char *buf; /* adopted: values inside it are sent without a copy */
	size_t buflen;
};

static void
wait_unref_locked(struct kpub_wait *w)
{
	/* Called with w->mu held; frees w when this was the last reference. */
	if (--w->refs == 0) {
		pthread_mutex_unlock(&w->mu);
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cv);
		free(w->buf);
		free(w);
		return;
	}
	pthread_mutex_unlock(&w->mu);
}

static void
dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct kpub_wait *w = m->_private;

	(void)rk;
	(void)opaque;
	metric_counter_add(metrics_family(m->err ? M_KAFKA_DELIVERY_FAILURES : M_EVENTS_PRODUCED),
			   1, rd_kafka_topic_name(m->rkt), NULL);
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	w->pending--;
	if (m->err && w->failed++ == 0) {
		snprintf(w->first_err, sizeof(w->first_err), "kafka delivery to '%s' failed: %s",
			 rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
		pthread_cond_broadcast(&w->cv);
	} else if (w->pending == 0) {
		/* Only what ends the wait wakes the waiter: not once per record of a batch. */
		pthread_cond_broadcast(&w->cv);
	}
	wait_unref_locked(w);
}

static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct kpub *kp = opaque;
	char buf[512];

	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		rd_kafka_fatal_error(rk, buf, sizeof(buf));
		log_errx("kafka producer fatal error: %s", buf);
		atomic_store(&kp->fatal, 1);
		return;
	}
	log_warnx("kafka producer: %s: %s", rd_kafka_err2name(err), reason);
}

static void *
poll_main(void *arg)
{
	struct kpub *kp = arg;

	while (!atomic_load(&kp->stop))
		rd_kafka_poll(kp->rk, 100);
	return NULL;
}

struct kpub *
kpub_new(const struct config *cf, long message_timeout_ms, char *err, size_t errlen)
{
	struct kpub *kp = NULL;
	rd_kafka_conf_t *conf = NULL;
	char num[32], kerr[512];

	if ((kp = calloc(1, sizeof(*kp))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if ((conf = kconf_new(cf, err, errlen)) == NULL)
		goto fail;
	snprintf(num, sizeof(num), "%ld", cf->kafka_linger_ms);
	if (kconf_set(conf, "enable.idempotence", "true", err, errlen) < 0 ||
	    kconf_set(conf, "acks", "all", err, errlen) < 0 ||
	    kconf_set(conf, "linger.ms", num, err, errlen) < 0 ||
	    kconf_set(conf, "compression.codec", cf->kafka_compression, err, errlen) < 0)
		goto fail;
	/* The larger limit: the webhook checks its smaller per-event limit itself. */
	snprintf(num, sizeof(num), "%ld",
		 cf->kafka_message_max_bytes > cf->kafka_mail_message_max_bytes
		     ? cf->kafka_message_max_bytes
		     : cf->kafka_mail_message_max_bytes);
	if (kconf_set(conf, "message.max.bytes", num, err, errlen) < 0)
		goto fail;
	snprintf(num, sizeof(num), "%ld", message_timeout_ms);
	if (kconf_set(conf, "message.timeout.ms", num, err, errlen) < 0)
		goto fail;
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	rd_kafka_conf_set_opaque(conf, kp);
	if ((kp->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof(kerr))) == NULL) {
		snprintf(err, errlen, "cannot create kafka producer: %s", kerr);
		goto fail;
	}
	conf = NULL; /* owned by rk now */
	if ((errno = pthread_create(&kp->poller, NULL, poll_main, kp)) != 0) {
		snprintf(err, errlen, "cannot start kafka poll thread: %s", strerror(errno));
		rd_kafka_destroy(kp->rk);
		goto fail;
	}
	return kp;
fail:
	if (conf)
		rd_kafka_conf_destroy(conf);
	free(kp);
	return NULL;
}

void
kpub_destroy(struct kpub *kp, int timeout_ms)
{
	int left;

	if (kp == NULL)
		return;
	rd_kafka_flush(kp->rk, timeout_ms);
	if ((left = rd_kafka_outq_len(kp->rk)) > 0)
		log_warnx("kafka producer closing with %d messages undelivered", left);
	atomic_store(&kp->stop, 1);
	pthread_join(kp->poller, NULL);
	rd_kafka_destroy(kp->rk);
	free(kp);
}

int
kpub_fatal(struct kpub *kp)
{
	return atomic_load(&kp->fatal);
}

struct kpub_wait *
kpub_wait_new(void)
{
	struct kpub_wait *w = calloc(1, sizeof(*w));
	pthread_condattr_t ca;

	if (w == NULL)
		return NULL;
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);
	w->refs = 1;
	return w;
}

void
kpub_wait_adopt(struct kpub_wait *w, void *buf, size_t len)
{
	w->buf = buf; /* before any send: no report can be reading it yet */
	w->buflen = len;
}

int
kpub_send(struct kpub *kp, struct kpub_wait *w, const char *topic, const void *key, size_t keylen,
	  const void *value, size_t len, const struct kpub_header *hdrs, size_t nhdrs, char *err,
	  size_t errlen)
{
	rd_kafka_headers_t *h = NULL;
	rd_kafka_resp_err_t e;
	uintptr_t at = (uintptr_t)value, buf = (uintptr_t)w->buf;
	/* A value in the adopted buffer outlives its message: w (and buf) lives until the
	 * last report, so librdkafka may point at it. */
	int borrowed = w->buf && at >= buf && len <= w->buflen && at - buf <= w->buflen - len;

	if (atomic_load(&kp->fatal)) {
		snprintf(err, errlen, "kafka producer is in a fatal state");
		return -1;
	}
	if (nhdrs > 0) {
		h = rd_kafka_headers_new(nhdrs);
		for (size_t i = 0; i < nhdrs; i++)
			rd_kafka_header_add(h, hdrs[i].name, -1, hdrs[i].value, -1);
	}
	/* Count the message before it exists: its report may arrive on another thread. */
	pthread_mutex_lock(&w->mu);
	w->pending++;
	w->refs++;
	pthread_mutex_unlock(&w->mu);
	e = rd_kafka_producev(kp->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, keylen),
			      RD_KAFKA_V_VALUE((void *)value, len),
			      RD_KAFKA_V_MSGFLAGS(borrowed ? 0 : RD_KAFKA_MSG_F_COPY),
			      RD_KAFKA_V_OPAQUE(w), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		if (h)
			rd_kafka_headers_destroy(h);
		snprintf(err, errlen, "cannot queue message for '%s': %s", topic,
			 rd_kafka_err2str(e));
		pthread_mutex_lock(&w->mu);
		w->pending--;
		if (w->failed++ == 0)
			snprintf(w->first_err, sizeof(w->first_err), "%s", err);
		w->refs--; /* the caller still holds one: never the last */
		pthread_mutex_unlock(&w->mu);
		return -1;
	}
	return 0;
}

int
kpub_wait_done(struct kpub_wait *w, long timeout_ms, char *err, size_t errlen)
{
	struct timespec until;
	int rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->mu);
	while (w->pending > 0 && w->failed == 0) {
		if (pthread_cond_timedwait(&w->cv, &w->mu, &until) == ETIMEDOUT)
			break;
	}
	if (w->failed > 0) {
		snprintf(err, errlen, "%s (%ld of the batch failed)", w->first_err, w->failed);
		rc = -1;
	} else if (w->pending > 0) {
		snprintf(err, errlen, "kafka did not acknowledge %ld messages within %ld ms",
			 w->pending, timeout_ms);
		rc = -1;
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

void
kpub_wait_release(struct kpub_wait *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	wait_unref_locked(w);
}
