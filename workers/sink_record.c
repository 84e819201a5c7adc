/*
 * sink_record: what the sink (sink.c) and `mailpipectl replay` (ops/mailpipectl_replay.c)
 * do alike with the records of sendgrid.events around store_write(): sorting each record
 * into an event to store or a dead letter, and mirroring the addresses a committed batch
 * suppressed into Redis.
 */
#include <stdio.h>
#include <string.h>

#include <hiredis.h>

#include "event.h"
#include "rconn.h"
#include "sink.h"

/* The last value of header name of m, copied into buf; NULL when absent. */
static const char *
header_value(const rd_kafka_message_t *m, const char *name, char *buf, size_t len)
{
	rd_kafka_headers_t *h = NULL;
	const void *v;
	size_t vlen;

	if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    rd_kafka_header_get_last(h, name, &v, &vlen) != RD_KAFKA_RESP_ERR_NO_ERROR || v == NULL)
		return NULL;
	snprintf(buf, len, "%.*s", (int)vlen, (const char *)v);
	return buf;
}

static void
add_dead(struct sink_dead *d, const rd_kafka_message_t *m, const char *error)
{
	d->topic = rd_kafka_topic_name(m->rkt);
	d->partition = m->partition;
	d->offset = m->offset;
	d->payload = m->payload;
	d->len = m->len;
	snprintf(d->error, sizeof(d->error), "%s", error);
}

json_t *
sink_classify(const rd_kafka_message_t *m, const char *dlq_topic, struct sink_event *ev,
	      struct sink_dead *dead)
{
	const char *topic = rd_kafka_topic_name(m->rkt), *field;
	char why[256], hdr[200];
	struct event_info info;
	json_error_t jerr;
	json_t *doc;

	if (dlq_topic != NULL && strcmp(topic, dlq_topic) == 0) {
		const char *e = header_value(m, "error", hdr, sizeof(hdr));

		add_dead(dead, m, e ? e : "dead-lettered by its producer");
		return NULL;
	}
	if (m->payload == NULL || m->len == 0) {
		add_dead(dead, m, "empty record");
		return NULL;
	}
	if ((doc = json_loadb(m->payload, m->len, 0, &jerr)) == NULL) {
		snprintf(why, sizeof(why), "record is not valid JSON: %s", jerr.text);
		add_dead(dead, m, why);
		return NULL;
	}
	if (event_check(doc, &info, why, sizeof(why), &field) < 0) {
		add_dead(dead, m, why);
		json_decref(doc);
		return NULL;
	}
	*ev = (struct sink_event){
	    .topic = topic,
	    .sg_event_id = info.sg_event_id,
	    .time_us = info.time_us,
	    .raw = m->payload,
	    .raw_len = m->len,
	    .received_ms = rd_kafka_message_timestamp(m, NULL),
	    .partition = m->partition,
	    .offset = m->offset,
	};
	return doc;
}

int
sink_mirror_suppressions(const struct store *st, struct rconn *redis, const char *prefix)
{
	size_t n = store_suppressed_count(st);
	char key[256];
	redisReply *r;

	snprintf(key, sizeof(key), "%ssuppressed", prefix);
	for (size_t i = 0; i < n; i++) {
		const char *argv[] = {"SADD", key, store_suppressed_email(st, i)};

		if ((r = rconn_command(redis, 3, argv, NULL)) == NULL)
			return -1;
		freeReplyObject(r);
	}
	return (int)n;
}
