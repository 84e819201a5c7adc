/*
 * config: the settings table and its loaders; see config.h.
 *
 * Each row says what a key is, where it goes in struct config, its default (in text, parsed
 * by the same code as user input, so a bad default fails the unit tests) and the range a
 * number may take.  The README's configuration table is generated from these rows
 * (`mailpipectl config-table`) and a unit test checks the two agree.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

enum cf_type { CF_STR, CF_INT, CF_BOOL, CF_OCTAL, CF_LEVEL, CF_RESET };

struct cf_setting {
	const char *name;
	enum cf_type type;
	size_t off;
	const char *def;
	long min, max;
	int secret;
	const char *desc;
};

#define O(f) offsetof(struct config, f)
#define STR(n, f, d, desc)                                                                         \
	{                                                                                          \
		n, CF_STR, O(f), d, 0, 0, 0, desc                                                  \
	}
#define SECRET(n, f, d, desc)                                                                      \
	{                                                                                          \
		n, CF_STR, O(f), d, 0, 0, 1, desc                                                  \
	}
#define INT(n, f, d, lo, hi, desc)                                                                 \
	{                                                                                          \
		n, CF_INT, O(f), d, lo, hi, 0, desc                                                \
	}

static const struct cf_setting settings[] = {
    {"log.level", CF_LEVEL, O(log_level), "info", 0, 0, 0,
     "Least severe level logged: `debug`, `info`, `warn` or `error`."},

    STR("kafka.brokers", kafka_brokers, "127.0.0.1:9092",
	"Kafka `bootstrap.servers`: comma-separated host:port list."),
    STR("kafka.events_topic", kafka_events_topic, "sendgrid.events",
	"Topic that receives every webhook event."),
    STR("kafka.events_dlq_topic", kafka_events_dlq_topic, "sendgrid.events.dlq",
	"Dead-letter topic for events that can never be stored."),
    STR("kafka.mail_topic", kafka_mail_topic, "mail.requests", "Topic of accepted mail requests."),
    STR("kafka.mail_dlq_topic", kafka_mail_dlq_topic, "mail.requests.dlq",
	"Dead-letter topic for mail requests."),
    STR("kafka.sink_group", kafka_sink_group, "mailpipe-sink", "Consumer group of the sink."),
    STR("kafka.sender_group", kafka_sender_group, "mailpipe-sender",
	"Consumer group of the sender."),
    {"kafka.auto_offset_reset", CF_RESET, O(kafka_auto_offset_reset), "error", 0, 0, 0,
     "What a consumer does when its stored offset is no longer in the log: `error` (stop and "
     "say so; nothing is skipped silently), `earliest` or `latest`. Partitions that have no "
     "stored offset yet always start at the beginning."},
    STR("kafka.security_protocol", kafka_security_protocol, "",
	"Kafka `security.protocol` (`plaintext`, `ssl`, `sasl_ssl`...); empty: librdkafka's "
	"default."),
    STR("kafka.sasl_mechanism", kafka_sasl_mechanism, "", "Kafka `sasl.mechanism`."),
    STR("kafka.sasl_username", kafka_sasl_username, "", "Kafka `sasl.username`."),
    SECRET("kafka.sasl_password", kafka_sasl_password, "", "Kafka `sasl.password`."),
    STR("kafka.ssl_ca_location", kafka_ssl_ca_location, "", "Kafka `ssl.ca.location`."),
    STR("kafka.compression", kafka_compression, "lz4",
	"Producer `compression.codec`: none, gzip, snappy, lz4 or zstd."),
    INT("kafka.linger_ms", kafka_linger_ms, "1", 0, 10000,
	"Producer `linger.ms`: how long to gather a batch (each request waits it out)."),
    INT("kafka.message_max_bytes", kafka_message_max_bytes, "1000000", 10000, 100000000,
	"Largest Kafka message the producer makes (`message.max.bytes`; keep it within the "
	"cluster's limit). A webhook event larger than this is dead-lettered, truncated."),
    INT("kafka.mail_message_max_bytes", kafka_mail_message_max_bytes, "33554432", 10000, 1000000000,
	"Largest mail request record (SendGrid accepts mails up to 30 MB). The "
	"`mail.requests` topic needs a `max.message.bytes` at least this large on a real "
	"cluster."),
    INT("kafka.fetch_wait_max_ms", kafka_fetch_wait_max_ms, "100", 1, 10000,
	"Consumer `fetch.wait.max.ms`; the dev broker wants about 10."),
    INT("kafka.session_timeout_ms", kafka_session_timeout_ms, "10000", 1000, 300000,
	"Consumer `session.timeout.ms`: how long a dead consumer holds its partitions."),
    INT("kafka.max_poll_interval_ms", kafka_max_poll_interval_ms, "600000", 10000, 86400000,
	"Consumer `max.poll.interval.ms`: a sink stuck longer than this (for example while "
	"PostgreSQL is down) gives up its partitions."),

    STR("ingest.socket", ingest_socket, "/run/mailpipe/ingest.sock",
	"Unix socket the ingest FastCGI app listens on (nginx's `fastcgi_pass`)."),
    {"ingest.socket_mode", CF_OCTAL, O(ingest_socket_mode), "0660", 0, 0777, 0,
     "Permissions of the ingest socket (octal)."},
    INT("ingest.threads", ingest_threads, "64", 1, 256,
	"Requests the ingest app serves at once (each waits for Kafka's acknowledgement)."),
    INT("ingest.deadline_ms", ingest_deadline_ms, "5000", 100, 120000,
	"Longest a request waits for Kafka to acknowledge every event before answering 503."),
    INT("ingest.max_body_bytes", ingest_max_body_bytes, "31457280", 1024, 1073741824,
	"Largest request body read (nginx's `client_max_body_size` should match)."),
    INT("ingest.max_inflight_bytes", ingest_max_inflight_bytes, "4194304", 0, 1073741824,
	"Request body bytes all ingest threads hold at once; more waits its turn (0: no "
	"limit).  Bounds ingest's memory (see the README's performance section)."),

    STR("query.socket", query_socket, "/run/mailpipe/query.sock",
	"Unix socket the read API (query FastCGI app) listens on."),
    {"query.socket_mode", CF_OCTAL, O(query_socket_mode), "0660", 0, 0777, 0,
     "Permissions of the query socket (octal)."},
    INT("query.threads", query_threads, "4", 1, 256, "Requests the read API serves at once."),
    INT("query.statement_timeout_ms", query_statement_timeout_ms, "5000", 100, 600000,
	"Longest one read-API query may run in PostgreSQL."),

    {"webhook.verify", CF_BOOL, O(webhook_verify), "on", 0, 0, 0,
     "Verify the Event Webhook's ECDSA signature. `off` must be set explicitly to run without "
     "a public key."},
    STR("webhook.public_key", webhook_public_key, "",
	"The Event Webhook verification key, base64 DER exactly as SendGrid's settings page "
	"shows it."),
    INT("webhook.max_age_seconds", webhook_max_age_seconds, "0", 0, 31536000,
	"Refuse signed timestamps older than this; 0 = no age check. SendGrid retries for 24 "
	"hours, so anything set should exceed 90000."),

    SECRET("database.url", database_url, "postgresql:///mailpipe",
	   "libpq connection string or URI of PostgreSQL."),
    SECRET("redis.url", redis_url, "redis://127.0.0.1:6379/0",
	   "Redis URL: `redis://[:password@]host:port/db` or `unix:/path/to.sock`."),
    STR("redis.prefix", redis_prefix, "mailpipe:", "Prefix of every Redis key mailpipe writes."),
    INT("redis.marker_ttl_seconds", redis_marker_ttl_seconds, "604800", 60, 31536000,
	"How long an 'already written' marker lives in Redis."),
    INT("metrics.push_seconds", metrics_push_seconds, "5", 0, 3600,
	"How often every process pushes its metrics to Redis for `GET /metrics`; 0 = never (a "
	"process not pushing shows as missing)."),

    INT("auth.refresh_seconds", auth_refresh_seconds, "5", 1, 3600,
	"How often ingest reloads the API keys from PostgreSQL (a revoked key stops working "
	"within this time; ingest keeps the last list while PostgreSQL is away)."),
    INT("mail.idempotency_ttl_seconds", mail_idempotency_ttl_seconds, "86400", 60, 2592000,
	"How long an `Idempotency-Key` of `POST /v3/mail/send` is remembered."),

    STR("sendgrid.api_url", sendgrid_api_url, "https://api.sendgrid.com",
	"Base URL of SendGrid's v3 API (the simulator's in the dev stack)."),
    SECRET("sendgrid.api_key", sendgrid_api_key, "", "SendGrid API key the sender uses."),
    STR("sendgrid.ca_file", sendgrid_ca_file, "",
	"CA bundle to trust for `sendgrid.api_url`; empty: the system's."),
    INT("sendgrid.timeout_ms", sendgrid_timeout_ms, "10000", 100, 300000,
	"Longest one call to SendGrid may take."),
    INT("sendgrid.connect_timeout_ms", sendgrid_connect_timeout_ms, "3000", 100, 60000,
	"Longest a connection to SendGrid may take to open."),

    INT("sender.rate_per_second", sender_rate_per_second, "0", 0, 1000000,
	"Most mails the sender sends per second; 0 = no limit."),
    INT("sender.max_attempts", sender_max_attempts, "8", 1, 100,
	"Attempts per mail before it fails for good (dead letter)."),
    INT("sender.max_age_seconds", sender_max_age_seconds, "86400", 60, 2592000,
	"Age after which a mail still failing fails for good."),
    INT("sender.retry_base_ms", sender_retry_base_ms, "1000", 10, 600000,
	"First retry delay; it doubles per attempt, with jitter."),
    INT("sender.retry_max_ms", sender_retry_max_ms, "300000", 100, 86400000,
	"Longest retry delay."),
    INT("sender.ambiguous_grace_seconds", sender_ambiguous_grace_seconds, "60", 1, 86400,
	"A mail whose send was cut off (crash, time-out after SendGrid may have accepted it) is "
	"resent only if no SendGrid event for it arrived within this time."),
    INT("sender.reconcile_seconds", sender_reconcile_seconds, "30", 1, 86400,
	"How often the sender re-schedules `retrying` mails whose Redis entry vanished."),

    STR("sim.socket", sim_socket, "/run/mailpipe/sendgrid-sim.sock",
	"SendGrid simulator: its FastCGI socket."),
    SECRET("sim.api_key", sim_api_key, "SG.mailpipe-simulator",
	   "SendGrid simulator: the Bearer key it accepts."),
    STR("sim.webhook_url", sim_webhook_url, "https://127.0.0.1:8443/webhooks/sendgrid",
	"SendGrid simulator: where it posts signed Event Webhook batches."),
    STR("sim.signing_key_file", sim_signing_key_file, "",
	"SendGrid simulator: PEM EC private key that signs the webhook batches."),
    STR("sim.ca_file", sim_ca_file, "",
	"SendGrid simulator: CA bundle to trust for `sim.webhook_url`; empty: the system's."),
    INT("sim.flush_ms", sim_flush_ms, "200", 1, 60000,
	"SendGrid simulator: how often it posts the events gathered."),
    INT("sim.duplicate_percent", sim_duplicate_percent, "5", 0, 100,
	"SendGrid simulator: share of events posted twice."),
    INT("sim.open_percent", sim_open_percent, "50", 0, 100,
	"SendGrid simulator: share of delivered mails that are opened."),
    INT("sim.click_percent", sim_click_percent, "30", 0, 100,
	"SendGrid simulator: share of opened mails that are clicked."),

    INT("sink.batch_max", sink_batch_max, "1000", 1, 100000,
	"Most events the sink writes in one transaction."),
    INT("sink.batch_ms", sink_batch_ms, "50", 1, 60000, "Longest the sink waits to fill a batch."),
    INT("sink.retry_max_ms", sink_retry_max_ms, "5000", 100, 600000,
	"Longest pause between reconnection attempts to PostgreSQL."),

    INT("retention.days", retention_days, "400", 0, 36500,
	"`mailpipectl retention` archives, then drops, the `events` partitions (and rows of the "
	"default partition) older than this many days; 0 = keep everything. The daily rollups "
	"are kept."),
    STR("archive.dir", archive_dir, "/var/lib/mailpipe/archive",
	"Directory where `mailpipectl retention` writes its archives (gzip JSON lines plus a "
	"manifest each); must be an absolute path."),
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

static const struct cf_setting *
find(const char *key)
{
	for (size_t i = 0; i < NSETTINGS; i++)
		if (strcmp(settings[i].name, key) == 0)
			return &settings[i];
	return NULL;
}

static int
parse_long(const char *s, int base, long *out)
{
	char *end;

	if (*s == '\0' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	*out = strtol(s, &end, base);
	return (errno || *end != '\0') ? -1 : 0;
}

static int
set_value(struct config *cf, const struct cf_setting *s, const char *value, const char *origin,
	  char *err, size_t errlen)
{
	char *base = (char *)cf;
	long n;
	enum log_level lvl;

	switch (s->type) {
	case CF_LEVEL:
		if (log_level_parse(value, &lvl) < 0) {
			snprintf(err, errlen,
				 "%s: invalid value for '%s': expected debug, info, warn or error",
				 origin, s->name);
			return -1;
		}
		break;
	case CF_RESET:
		if (strcmp(value, "error") && strcmp(value, "earliest") &&
		    strcmp(value, "latest")) {
			snprintf(err, errlen,
				 "%s: invalid value for '%s': expected error, earliest or latest",
				 origin, s->name);
			return -1;
		}
		break;
	case CF_STR: break;
	case CF_INT:
	case CF_OCTAL:
		if (parse_long(value, s->type == CF_OCTAL ? 8 : 10, &n) < 0 || n < s->min ||
		    n > s->max) {
			snprintf(err, errlen,
				 "%s: invalid value for '%s': expected %s from %ld to %ld", origin,
				 s->name, s->type == CF_OCTAL ? "octal mode" : "integer", s->min,
				 s->max);
			return -1;
		}
		*(long *)(base + s->off) = n;
		return 0;
	case CF_BOOL:
		if (!strcmp(value, "on") || !strcmp(value, "true") || !strcmp(value, "yes") ||
		    !strcmp(value, "1"))
			*(int *)(base + s->off) = 1;
		else if (!strcmp(value, "off") || !strcmp(value, "false") || !strcmp(value, "no") ||
			 !strcmp(value, "0"))
			*(int *)(base + s->off) = 0;
		else {
			snprintf(err, errlen, "%s: invalid value for '%s': expected on or off",
				 origin, s->name);
			return -1;
		}
		return 0;
	}
	/* String-valued types. */
	char *copy = strdup(value);
	if (copy == NULL) {
		snprintf(err, errlen, "%s: out of memory", origin);
		return -1;
	}
	free(*(char **)(base + s->off));
	*(char **)(base + s->off) = copy;
	return 0;
}

int
config_set(struct config *cf, const char *key, const char *value, const char *origin, char *err,
	   size_t errlen)
{
	const struct cf_setting *s = find(key);

	if (s == NULL) {
		snprintf(err, errlen, "%s: unknown key '%s'", origin, key);
		return -1;
	}
	return set_value(cf, s, value, origin, err, errlen);
}

static char *
trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

static int
load_file(struct config *cf, const char *path, char *err, size_t errlen)
{
	FILE *f = NULL;
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0, rc = -1;

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	while (getline(&line, &cap, f) != -1) {
		char origin[512], *key, *value, *eq;

		lineno++;
		snprintf(origin, sizeof(origin), "%s:%d", path, lineno);
		key = trim(line);
		if (*key == '\0' || *key == '#')
			continue;
		if ((eq = strchr(key, '=')) == NULL) {
			snprintf(err, errlen, "%s: expected 'key = value'", origin);
			goto out;
		}
		*eq = '\0';
		key = trim(key);
		value = trim(eq + 1);
		size_t vlen = strlen(value);
		if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
			value[vlen - 1] = '\0';
			value++;
		}
		if (config_set(cf, key, value, origin, err, errlen) < 0)
			goto out;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(line);
	fclose(f);
	return rc;
}

static void
env_name(const char *key, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "MAILPIPE_");

	for (; *key && n + 1 < len; key++)
		buf[n++] = *key == '.' ? '_' : (char)toupper((unsigned char)*key);
	buf[n] = '\0';
}

int
config_load(struct config *cf, const char *path, char *err, size_t errlen)
{
	char name[128];

	memset(cf, 0, sizeof(*cf));
	for (size_t i = 0; i < NSETTINGS; i++) {
		if (set_value(cf, &settings[i], settings[i].def, "default", err, errlen) < 0)
			return -1;
	}
	if (path == NULL)
		path = getenv("MAILPIPE_CONFIG");
	if (path != NULL && *path != '\0' && load_file(cf, path, err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < NSETTINGS; i++) {
		const char *v;

		env_name(settings[i].name, name, sizeof(name));
		if ((v = getenv(name)) != NULL &&
		    set_value(cf, &settings[i], v, name, err, errlen) < 0)
			return -1;
	}
	return 0;
}

void
config_release(struct config *cf)
{
	for (size_t i = 0; i < NSETTINGS; i++) {
		if (settings[i].type != CF_INT && settings[i].type != CF_OCTAL &&
		    settings[i].type != CF_BOOL) {
			char **p = (char **)((char *)cf + settings[i].off);
			free(*p);
			*p = NULL;
		}
	}
}

void
config_diff(const struct config *a, const struct config *b, void (*fn)(const char *key, void *arg),
	    void *arg)
{
	const char *pa = (const char *)a, *pb = (const char *)b;

	for (size_t i = 0; i < NSETTINGS; i++) {
		const struct cf_setting *s = &settings[i];
		int same;

		if (s->type == CF_INT || s->type == CF_OCTAL)
			same = *(const long *)(pa + s->off) == *(const long *)(pb + s->off);
		else if (s->type == CF_BOOL)
			same = *(const int *)(pa + s->off) == *(const int *)(pb + s->off);
		else
			same = strcmp(*(char *const *)(pa + s->off),
				      *(char *const *)(pb + s->off)) == 0;
		if (!same)
			fn(s->name, arg);
	}
}

int
config_copy_number(struct config *dst, const struct config *src, const char *key)
{
	const struct cf_setting *s = find(key);

	if (s == NULL)
		return -1;
	if (s->type == CF_INT || s->type == CF_OCTAL) {
		__atomic_store_n((long *)((char *)dst + s->off),
				 *(const long *)((const char *)src + s->off), __ATOMIC_RELAXED);
		return 0;
	}
	if (s->type == CF_BOOL) {
		__atomic_store_n((int *)((char *)dst + s->off),
				 *(const int *)((const char *)src + s->off), __ATOMIC_RELAXED);
		return 0;
	}
	return -1;
}

void
config_write_markdown(FILE *out)
{
	char name[128];

	fputs("| key | environment | default | description |\n|---|---|---|---|\n", out);
	for (size_t i = 0; i < NSETTINGS; i++) {
		env_name(settings[i].name, name, sizeof(name));
		fprintf(out, "| `%s` | `%s` | %s%s%s | %s |\n", settings[i].name, name,
			*settings[i].def ? "`" : "", *settings[i].def ? settings[i].def : "(empty)",
			*settings[i].def ? "`" : "", settings[i].desc);
	}
}

void
config_write_effective(const struct config *cf, FILE *out)
{
	const char *base = (const char *)cf;

	for (size_t i = 0; i < NSETTINGS; i++) {
		const struct cf_setting *s = &settings[i];

		switch (s->type) {
		case CF_INT:
			fprintf(out, "%s = %ld\n", s->name, *(const long *)(base + s->off));
			break;
		case CF_OCTAL:
			fprintf(out, "%s = %04lo\n", s->name, *(const long *)(base + s->off));
			break;
		case CF_BOOL:
			fprintf(out, "%s = %s\n", s->name,
				*(const int *)(base + s->off) ? "on" : "off");
			break;
		default: {
			const char *v = *(char *const *)(base + s->off);
			fprintf(out, "%s = %s\n", s->name, s->secret && *v ? "(set, hidden)" : v);
		}
		}
	}
}
