/*
 * kconf: librdkafka configuration shared by producers and consumers, from struct config.
 */
#ifndef MAILPIPE_KCONF_H
#define MAILPIPE_KCONF_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "config.h"

/* Returns a new conf with brokers, security and logging set, or NULL with err filled. */
rd_kafka_conf_t *kconf_new(const struct config *cf, char *err, size_t errlen);

/* Sets one property; -1 with err filled ("cannot set kafka 'x': ..."). */
int kconf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
