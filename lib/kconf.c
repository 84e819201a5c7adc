/*
 * kconf: the librdkafka settings every client shares; see kconf.h.
 */
#include "kconf.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

int
kconf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err, size_t errlen)
{
	char kerr[256];

	if (rd_kafka_conf_set(conf, name, value, kerr, sizeof(kerr)) != RD_KAFKA_CONF_OK) {
		snprintf(err, errlen, "cannot set kafka '%s': %s", name, kerr);
		return -1;
	}
	return 0;
}

/* librdkafka's own log lines, folded into ours. */
static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	if (level <= 3)
		log_errx("kafka %s: %s", fac, buf);
	else if (level <= 5)
		log_warnx("kafka %s: %s", fac, buf);
	else
		log_debug("kafka %s: %s", fac, buf);
}

rd_kafka_conf_t *
kconf_new(const struct config *cf, char *err, size_t errlen)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	const struct {
		const char *name, *value;
	} optional[] = {
	    {"security.protocol", cf->kafka_security_protocol},
	    {"sasl.mechanism", cf->kafka_sasl_mechanism},
	    {"sasl.username", cf->kafka_sasl_username},
	    {"sasl.password", cf->kafka_sasl_password},
	    {"ssl.ca.location", cf->kafka_ssl_ca_location},
	};

	if (kconf_set(conf, "bootstrap.servers", cf->kafka_brokers, err, errlen) < 0)
		goto fail;
	/* librdkafka waits up to 10 s between reconnects by default: after an outage that is
	 * 10 s more of 503s.  A second is gentle enough on a cluster coming back. */
	if (kconf_set(conf, "reconnect.backoff.max.ms", "1000", err, errlen) < 0)
		goto fail;
	/* Requests wait for their answers (a webhook or mail send for its acks): Nagle's
	 * algorithm against the peer's delayed ACK would hold a small request up to 40 ms. */
	if (kconf_set(conf, "socket.nagle.disable", "true", err, errlen) < 0)
		goto fail;
	for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++)
		if (optional[i].value[0] &&
		    kconf_set(conf, optional[i].name, optional[i].value, err, errlen) < 0)
			goto fail;
	rd_kafka_conf_set_log_cb(conf, log_cb);
	return conf;
fail:
	rd_kafka_conf_destroy(conf);
	return NULL;
}
