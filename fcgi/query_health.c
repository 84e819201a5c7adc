/*
 * query_health: GET /healthz (the process serves) and GET /readyz (what the pipeline
 * needs answers: PostgreSQL `SELECT 1` on this thread's connection, Redis PING, and
 * Kafka: a metadata request through a client handle of our own that finds every topic
 * mailpipe uses with a leader for each partition).
 *
 *   200 {"postgres":"ok","redis":"ok","kafka":"ok"}
 *   503 {"postgres":"unavailable","redis":"ok","kafka":"ok"}   (the reason is logged)
 */
#include <string.h>

#include "kconf.h"
#include "log.h"
#include "query.h"

/* How long /readyz waits for Kafka's metadata; nginx's read timeout is far longer. */
#define KAFKA_TIMEOUT_MS 2000

void
healthz_handle(struct req *r)
{
	reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

/* The readiness handle reports its own trouble through /readyz: keep librdkafka quiet. */
static void
quiet_error_cb(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
	(void)rk;
	(void)opaque;
	log_debug("readyz kafka: %s: %s", rd_kafka_err2name(code), reason);
}

rd_kafka_t *
query_kafka_new(const struct config *cf, char *err, size_t errlen)
{
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	char kerr[512];

	if ((conf = kconf_new(cf, err, errlen)) == NULL)
		return NULL;
	if (kconf_set(conf, "log_level", "2", err, errlen) < 0 ||
	    kconf_set(conf, "client.id", "mailpipe-query-readyz", err, errlen) < 0) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_conf_set_error_cb(conf, quiet_error_cb);
	/* a producer that never produces: the cheapest handle that can ask for metadata */
	if ((rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof(kerr))) == NULL) {
		rd_kafka_conf_destroy(conf);
		snprintf(err, errlen, "cannot create the kafka client: %s", kerr);
		return NULL;
	}
	return rk;
}

static int
redis_ok(const struct query *q)
{
	const char *argv[] = {"PING"};
	redisReply *reply = rconn_command(q->redis, 1, argv, NULL);
	int ok = reply != NULL && reply->type == REDIS_REPLY_STATUS && reply->str != NULL &&
		 strcmp(reply->str, "PONG") == 0;

	if (reply != NULL)
		freeReplyObject(reply);
	return ok;
}

/* 1 if md holds topic with a leader for every partition; else 0 with err. */
static int
topic_ready(const struct rd_kafka_metadata *md, const char *topic, char *err, size_t errlen)
{
	for (int i = 0; i < md->topic_cnt; i++) {
		const rd_kafka_metadata_topic_t *t = &md->topics[i];

		if (strcmp(t->topic, topic) != 0)
			continue;
		if (t->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			snprintf(err, errlen, "topic '%s': %s", topic, rd_kafka_err2str(t->err));
			return 0;
		}
		if (t->partition_cnt == 0) {
			snprintf(err, errlen, "topic '%s' has no partitions", topic);
			return 0;
		}
		for (int p = 0; p < t->partition_cnt; p++) {
			if (t->partitions[p].leader < 0) {
				snprintf(err, errlen, "topic '%s' partition %d has no leader",
					 topic, (int)t->partitions[p].id);
				return 0;
			}
		}
		return 1;
	}
	snprintf(err, errlen, "topic '%s' does not exist", topic);
	return 0;
}

/*
 * Asks for every topic's metadata (naming topics could make a broker with
 * auto.create.topics.enable create them) and checks the four mailpipe uses.
 */
static int
kafka_ok(const struct query *q, char *err, size_t errlen)
{
	const struct config *cf = q->cf;
	const char *topics[] = {cf->kafka_events_topic, cf->kafka_events_dlq_topic,
				cf->kafka_mail_topic, cf->kafka_mail_dlq_topic};
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t kerr;
	int ok = 1;

	kerr = rd_kafka_metadata(q->kafka, 1, NULL, &md, KAFKA_TIMEOUT_MS);
	if (kerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, errlen, "metadata request failed: %s", rd_kafka_err2str(kerr));
		return 0;
	}
	for (size_t i = 0; ok && i < sizeof(topics) / sizeof(topics[0]); i++)
		ok = topic_ready(md, topics[i], err, errlen);
	rd_kafka_metadata_destroy(md);
	return ok;
}

void
readyz_handle(struct req *r)
{
	const struct query *q = r->app;
	PGresult *res;
	char err[512];
	int pg, rd, kf;

	res = query_exec(q, "SELECT 1", 0, NULL, err, sizeof(err));
	pg = res != NULL;
	PQclear(res);
	if (!pg)
		log_warnx("readyz: postgresql: %s", err);
	rd = redis_ok(q);
	if (!rd)
		log_warnx("readyz: redis is unavailable");
	kf = kafka_ok(q, err, sizeof(err));
	if (!kf)
		log_warnx("readyz: kafka: %s", err);
	reply_json(r, pg && rd && kf ? 200 : 503,
		   json_pack("{s:s, s:s, s:s}", "postgres", pg ? "ok" : "unavailable", "redis",
			     rd ? "ok" : "unavailable", "kafka", kf ? "ok" : "unavailable"));
}
