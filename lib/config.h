/*
 * config: one declarative table of every setting mailpipe knows (config.c), one optional
 * file of `key = value` lines, and an environment override per key:
 * MAILPIPE_<KEY upper-cased, '.' as '_'>, e.g. MAILPIPE_WEBHOOK_MAX_AGE_SECONDS.
 * Precedence: environment > file > default.  Unknown keys and bad values are errors that
 * name their origin (`path:line:` or the variable).
 */
#ifndef MAILPIPE_CONFIG_H
#define MAILPIPE_CONFIG_H

#include <stddef.h>
#include <stdio.h>

struct config {
	char *log_level;

	char *kafka_brokers;
	char *kafka_events_topic;
	char *kafka_events_dlq_topic;
	char *kafka_mail_topic;
	char *kafka_mail_dlq_topic;
	char *kafka_sink_group;
	char *kafka_sender_group;
	char *kafka_auto_offset_reset;
	char *kafka_security_protocol;
	char *kafka_sasl_mechanism;
	char *kafka_sasl_username;
	char *kafka_sasl_password;
	char *kafka_ssl_ca_location;
	char *kafka_compression;
	long kafka_linger_ms;
	long kafka_message_max_bytes;
	long kafka_mail_message_max_bytes;
	long kafka_fetch_wait_max_ms;
	long kafka_session_timeout_ms;
	long kafka_max_poll_interval_ms;

	char *ingest_socket;
	long ingest_socket_mode;
	long ingest_threads;
	long ingest_deadline_ms;
	long ingest_max_body_bytes;
	long ingest_max_inflight_bytes;

	char *query_socket;
	long query_socket_mode;
	long query_threads;
	long query_statement_timeout_ms;

	int webhook_verify;
	char *webhook_public_key;
	long webhook_max_age_seconds;

	char *database_url;
	char *redis_url;
	char *redis_prefix;
	long redis_marker_ttl_seconds;
	long metrics_push_seconds;

	long auth_refresh_seconds;
	long mail_idempotency_ttl_seconds;

	char *sendgrid_api_url;
	char *sendgrid_api_key;
	char *sendgrid_ca_file;
	long sendgrid_timeout_ms;
	long sendgrid_connect_timeout_ms;

	long sender_rate_per_second;
	long sender_max_attempts;
	long sender_max_age_seconds;
	long sender_retry_base_ms;
	long sender_retry_max_ms;
	long sender_ambiguous_grace_seconds;
	long sender_reconcile_seconds;

	char *sim_socket;
	char *sim_api_key;
	char *sim_webhook_url;
	char *sim_signing_key_file;
	char *sim_ca_file;
	long sim_flush_ms;
	long sim_duplicate_percent;
	long sim_open_percent;
	long sim_click_percent;

	long sink_batch_max;
	long sink_batch_ms;
	long sink_retry_max_ms;

	long retention_days;
	char *archive_dir;
};

/*
 * Fills cf with defaults, then the file at path (NULL: $MAILPIPE_CONFIG if set, else no
 * file), then the environment.  On error returns -1 with a message in err, and cf must
 * still be released.
 */
int config_load(struct config *cf, const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Sets one key from its text form; origin prefixes any error ("file:3", "MAILPIPE_X"). */
int config_set(struct config *cf, const char *key, const char *value, const char *origin, char *err,
	       size_t errlen) __attribute__((warn_unused_result));

/* Frees the strings cf owns. */
void config_release(struct config *cf);

/* Calls fn(key, arg) for every key whose value differs between a and b (reload). */
void config_diff(const struct config *a, const struct config *b,
		 void (*fn)(const char *key, void *arg), void *arg);

/*
 * Copies the number key (integer, mode or on/off) from src to dst with an atomic store, so
 * a thread reading it meanwhile with config_live() sees the old or the new value; -1 if
 * key is unknown or a string (strings are never changed under a running program).
 */
int config_copy_number(struct config *dst, const struct config *src, const char *key);

/* Reads a number field that a reload may change from another thread. */
static inline long
config_live(const long *field)
{
	return __atomic_load_n(field, __ATOMIC_RELAXED);
}

/* Writes the settings table as Markdown (the README's configuration table). */
void config_write_markdown(FILE *out);

/* Writes the effective settings as `key = value` lines, secrets masked. */
void config_write_effective(const struct config *cf, FILE *out);

#endif
