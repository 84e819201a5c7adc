/*
 * test_config: the settings table, file and environment loaders (lib/config.c), and the
 * README's configuration table, which must be config_write_markdown()'s output verbatim
 * between `<!-- config-table:begin -->` and `<!-- config-table:end -->` lines.
 *
 * Runs from the repository root (README.md is read from the current directory).  Every
 * MAILPIPE_* variable is removed first so the caller's environment cannot leak in.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "unit.h"

extern char **environ;

#define README "README.md"
#define BEGIN_MARK "<!-- config-table:begin -->"
#define END_MARK "<!-- config-table:end -->"

/* Every key of struct config, in the order of config.h. */
static const char *const keys[] = {
    "log.level",
    "kafka.brokers",
    "kafka.events_topic",
    "kafka.events_dlq_topic",
    "kafka.mail_topic",
    "kafka.mail_dlq_topic",
    "kafka.sink_group",
    "kafka.sender_group",
    "kafka.auto_offset_reset",
    "kafka.security_protocol",
    "kafka.sasl_mechanism",
    "kafka.sasl_username",
    "kafka.sasl_password",
    "kafka.ssl_ca_location",
    "kafka.compression",
    "kafka.linger_ms",
    "kafka.message_max_bytes",
    "kafka.mail_message_max_bytes",
    "kafka.fetch_wait_max_ms",
    "kafka.session_timeout_ms",
    "kafka.max_poll_interval_ms",
    "ingest.socket",
    "ingest.socket_mode",
    "ingest.threads",
    "ingest.deadline_ms",
    "ingest.max_body_bytes",
    "ingest.max_inflight_bytes",
    "query.socket",
    "query.socket_mode",
    "query.threads",
    "query.statement_timeout_ms",
    "webhook.verify",
    "webhook.public_key",
    "webhook.max_age_seconds",
    "database.url",
    "redis.url",
    "redis.prefix",
    "redis.marker_ttl_seconds",
    "metrics.push_seconds",
    "auth.refresh_seconds",
    "mail.idempotency_ttl_seconds",
    "sendgrid.api_url",
    "sendgrid.api_key",
    "sendgrid.ca_file",
    "sendgrid.timeout_ms",
    "sendgrid.connect_timeout_ms",
    "sender.rate_per_second",
    "sender.max_attempts",
    "sender.max_age_seconds",
    "sender.retry_base_ms",
    "sender.retry_max_ms",
    "sender.ambiguous_grace_seconds",
    "sender.reconcile_seconds",
    "sim.socket",
    "sim.api_key",
    "sim.webhook_url",
    "sim.signing_key_file",
    "sim.ca_file",
    "sim.flush_ms",
    "sim.duplicate_percent",
    "sim.open_percent",
    "sim.click_percent",
    "sink.batch_max",
    "sink.batch_ms",
    "sink.retry_max_ms",
    "retention.days",
    "archive.dir",
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static char tmpdir[512];
static int nfiles;

static __attribute__((noreturn)) void
die(const char *what)
{
	printf("not ok - setup: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void
clear_env(void)
{
	char *names[256];
	size_t n = 0;

	for (char **e = environ; *e && n < 256; e++) {
		if (strncmp(*e, "MAILPIPE_", 9) == 0) {
			size_t len = strcspn(*e, "=");

			if ((names[n] = strndup(*e, len)) == NULL)
				die("strndup");
			n++;
		}
	}
	for (size_t i = 0; i < n; i++) {
		unsetenv(names[i]);
		free(names[i]);
	}
}

/* Writes text to a new file in tmpdir and its name into path. */
static void
write_file(char *path, size_t pathlen, const char *text)
{
	FILE *f;

	snprintf(path, pathlen, "%s/mailpipe-%d.conf", tmpdir, ++nfiles);
	if ((f = fopen(path, "w")) == NULL || fputs(text, f) < 0 || fclose(f) != 0)
		die("write config file");
}

/* Returns what fn writes, as a new string. */
static char *
capture(void (*fn)(FILE *))
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		die("open_memstream");
	fn(f);
	if (fclose(f) != 0)
		die("fclose");
	return buf;
}

/* Returns config_write_effective()'s output, as a new string. */
static char *
capture_effective(const struct config *cf)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		die("open_memstream");
	config_write_effective(cf, f);
	if (fclose(f) != 0)
		die("fclose");
	return buf;
}

static size_t
count(const char *hay, const char *needle)
{
	size_t n = 0, len = strlen(needle);

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += len)
		n++;
	return n;
}

static int
str_is(const char *got, const char *want, const char *what)
{
	if (got != NULL && strcmp(got, want) == 0)
		return 1;
	unit_diag("%s: got \"%s\", expected \"%s\"", what, got ? got : "(null)", want);
	return 0;
}

static int
long_is(long got, long want, const char *what)
{
	if (got == want)
		return 1;
	unit_diag("%s: got %ld, expected %ld", what, got, want);
	return 0;
}

static void
test_defaults(void)
{
	struct config cf;
	char err[512] = "";
	int rc = config_load(&cf, NULL, err, sizeof(err)), ok;

	if (!CHECK(rc == 0, "defaults load without a file or environment")) {
		unit_diag("err \"%s\"", err);
		config_release(&cf);
		return;
	}
	ok = str_is(cf.log_level, "info", "log.level");
	ok &= str_is(cf.kafka_brokers, "127.0.0.1:9092", "kafka.brokers");
	ok &= str_is(cf.kafka_events_topic, "sendgrid.events", "kafka.events_topic");
	ok &= str_is(cf.kafka_events_dlq_topic, "sendgrid.events.dlq", "kafka.events_dlq_topic");
	ok &= str_is(cf.kafka_mail_topic, "mail.requests", "kafka.mail_topic");
	ok &= str_is(cf.kafka_mail_dlq_topic, "mail.requests.dlq", "kafka.mail_dlq_topic");
	ok &= str_is(cf.kafka_sink_group, "mailpipe-sink", "kafka.sink_group");
	ok &= long_is(cf.kafka_linger_ms, 1, "kafka.linger_ms");
	ok &= long_is(cf.kafka_fetch_wait_max_ms, 100, "kafka.fetch_wait_max_ms");
	ok &= long_is(cf.kafka_session_timeout_ms, 10000, "kafka.session_timeout_ms");
	ok &= long_is(cf.ingest_socket_mode, 0660, "ingest.socket_mode");
	ok &= long_is(cf.ingest_threads, 64, "ingest.threads");
	ok &= long_is(cf.ingest_deadline_ms, 5000, "ingest.deadline_ms");
	ok &= long_is(cf.webhook_verify, 1, "webhook.verify");
	ok &= str_is(cf.webhook_public_key, "", "webhook.public_key");
	ok &= long_is(cf.webhook_max_age_seconds, 0, "webhook.max_age_seconds");
	ok &= str_is(cf.redis_url, "redis://127.0.0.1:6379/0", "redis.url");
	ok &= long_is(cf.sink_batch_max, 1000, "sink.batch_max");
	ok &= long_is(cf.sink_batch_ms, 50, "sink.batch_ms");
	CHECK(ok, "defaults match the interface spec");

	ok = 1;
	for (size_t i = 0; i < NKEYS; i++) {
		char e2[512] = "";

		if (config_set(&cf, keys[i], "", "test", e2, sizeof(e2)) < 0 &&
		    strstr(e2, "unknown key") != NULL) {
			unit_diag("config_set does not know '%s'", keys[i]);
			ok = 0;
		}
	}
	CHECK(ok, "config_set knows all %zu keys of struct config", NKEYS);
	config_release(&cf);
}

static void
test_file(void)
{
	char path[1024], err[512] = "";
	struct config cf;
	int rc, ok;

	write_file(path, sizeof(path),
		   "# mailpipe configuration\n"
		   "   # an indented comment\n"
		   "\n"
		   "  \t \n"
		   "kafka.brokers = \"k1:9092,k2:9092\"\n"
		   "kafka.linger_ms=7\n"
		   "\tlog.level\t=\tdebug   \n"
		   "webhook.verify = off\n"
		   "ingest.socket_mode = 0600\n"
		   "database.url = host=db.example port=5432 dbname=mailpipe\n"
		   "redis.prefix = \"  spaced  \"\n"
		   "kafka.events_topic = first\n"
		   "kafka.events_topic = events.v2\n"
		   "ingest.socket = \"\"\n"
		   "kafka.sink_group = grp\r\n"
		   "webhook.max_age_seconds = 90000");
	rc = config_load(&cf, path, err, sizeof(err));
	if (CHECK(rc == 0, "file with comments, blanks, quotes and `key = value` loads")) {
		ok = str_is(cf.kafka_brokers, "k1:9092,k2:9092", "quoted value");
		ok &= long_is(cf.kafka_linger_ms, 7, "key=value without spaces");
		ok &= str_is(cf.log_level, "debug", "tabs around '='");
		ok &= long_is(cf.webhook_verify, 0, "bool off");
		ok &= long_is(cf.ingest_socket_mode, 0600, "octal 0600");
		ok &= str_is(cf.database_url, "host=db.example port=5432 dbname=mailpipe",
			     "value containing '='");
		ok &= str_is(cf.redis_prefix, "  spaced  ", "quotes keep inner spaces");
		ok &= str_is(cf.kafka_events_topic, "events.v2", "a later line wins");
		ok &= str_is(cf.ingest_socket, "", "\"\" is the empty string");
		ok &= str_is(cf.kafka_sink_group, "grp", "CRLF line");
		ok &= long_is(cf.webhook_max_age_seconds, 90000, "last line without newline");
		ok &=
		    str_is(cf.kafka_mail_topic, "mail.requests", "untouched key keeps its default");
		CHECK(ok, "file values parsed as written");
	} else {
		unit_diag("err \"%s\"", err);
	}
	config_release(&cf);

	/* Every boolean spelling. */
	{
		static const char *const yes[] = {"on", "true", "yes", "1"};
		static const char *const no[] = {"off", "false", "no", "0"};

		ok = 1;
		for (size_t i = 0; i < 4; i++) {
			char text[64];

			snprintf(text, sizeof(text), "webhook.verify = %s\n", no[i]);
			write_file(path, sizeof(path), text);
			if (config_load(&cf, path, err, sizeof(err)) < 0 ||
			    cf.webhook_verify != 0) {
				unit_diag("'%s' is not off: %s", no[i], err);
				ok = 0;
			}
			config_release(&cf);
			snprintf(text, sizeof(text), "webhook.verify = off\nwebhook.verify = %s\n",
				 yes[i]);
			write_file(path, sizeof(path), text);
			if (config_load(&cf, path, err, sizeof(err)) < 0 ||
			    cf.webhook_verify != 1) {
				unit_diag("'%s' is not on: %s", yes[i], err);
				ok = 0;
			}
			config_release(&cf);
		}
		CHECK(ok, "booleans: on/true/yes/1 and off/false/no/0");
	}
}

/* Loads text as a config file and expects an error containing "<path>:<line>: <want>". */
static void
file_error(const char *text, int line, const char *want, const char *name)
{
	char path[1024], err[512] = "", expect[1400];
	struct config cf;
	int rc;

	write_file(path, sizeof(path), text);
	snprintf(expect, sizeof(expect), "%s:%d: %s", path, line, want);
	rc = config_load(&cf, path, err, sizeof(err));
	if (!CHECK(rc < 0 && strstr(err, expect) != NULL, "%s", name))
		unit_diag("rc %d, err \"%s\", expected it to contain \"%s\"", rc, err, expect);
	config_release(&cf);
}

static void
test_file_errors(void)
{
	char err[512] = "", path[1024];
	struct config cf;
	int rc;

	file_error("# comment\n\nkafka.linger = 5\n", 3, "unknown key 'kafka.linger'",
		   "unknown key names path:line");
	file_error("kafka.linger_ms = 5\nKAFKA.LINGER_MS = 5\n", 2, "unknown key",
		   "keys are case-sensitive");
	file_error("log.level = info\njust some words\n", 2, "expected 'key = value'",
		   "line without '=' names path:line");
	file_error("\nkafka.linger_ms = abc\n", 2, "invalid value for 'kafka.linger_ms'",
		   "int 'abc'");
	file_error("kafka.linger_ms = 5ms\n", 1, "invalid value for 'kafka.linger_ms'",
		   "int with a unit '5ms'");
	file_error("kafka.linger_ms = 1.5\n", 1, "invalid value for 'kafka.linger_ms'",
		   "int '1.5'");
	file_error("kafka.linger_ms =\n", 1, "invalid value for 'kafka.linger_ms'", "int empty");
	file_error("kafka.linger_ms = -1\n", 1, "invalid value for 'kafka.linger_ms'",
		   "int below its range");
	file_error("kafka.linger_ms = 10001\n", 1, "invalid value for 'kafka.linger_ms'",
		   "int above its range");
	file_error("ingest.threads = 0\n", 1, "invalid value for 'ingest.threads'",
		   "threads 0 refused");
	file_error("sink.batch_max = 99999999999999999999999\n", 1,
		   "invalid value for 'sink.batch_max'", "int overflowing long");
	file_error("webhook.verify = maybe\n", 1, "invalid value for 'webhook.verify'",
		   "bool 'maybe'");
	file_error("webhook.verify =\n", 1, "invalid value for 'webhook.verify'", "bool empty");
	file_error("ingest.socket_mode = 0999\n", 1, "invalid value for 'ingest.socket_mode'",
		   "octal '0999'");
	file_error("ingest.socket_mode = 8\n", 1, "invalid value for 'ingest.socket_mode'",
		   "octal '8'");
	file_error("ingest.socket_mode = 01000\n", 1, "invalid value for 'ingest.socket_mode'",
		   "octal above 0777");
	file_error("ingest.socket_mode = rw-rw----\n", 1, "invalid value for 'ingest.socket_mode'",
		   "octal 'rw-rw----'");
	file_error("log.level = verbose\n", 1, "invalid value for 'log.level'", "level 'verbose'");
	file_error("log.level =\n", 1, "invalid value for 'log.level'", "level empty");
	file_error("kafka.auto_offset_reset = smallest\n", 1,
		   "invalid value for 'kafka.auto_offset_reset'", "offset reset 'smallest'");

	snprintf(path, sizeof(path), "%s/does-not-exist.conf", tmpdir);
	rc = config_load(&cf, path, err, sizeof(err));
	if (!CHECK(rc < 0 && strstr(err, path) != NULL && strstr(err, "cannot open") != NULL,
		   "missing file: error names it"))
		unit_diag("rc %d, err \"%s\"", rc, err);
	config_release(&cf);

	rc = config_load(&cf, NULL, err, sizeof(err));
	if (rc == 0)
		rc = config_set(&cf, "no.such_key", "1", "MAILPIPE_TEST", err, sizeof(err));
	if (!CHECK(rc < 0 && strstr(err, "MAILPIPE_TEST: unknown key 'no.such_key'") != NULL,
		   "config_set prefixes errors with its origin"))
		unit_diag("rc %d, err \"%s\"", rc, err);
	config_release(&cf);
}

static void
test_env(void)
{
	char path[1024], other[1024], err[512] = "";
	struct config cf;
	int rc;

	write_file(path, sizeof(path), "kafka.linger_ms = 7\nkafka.brokers = file:9092\n");

	setenv("MAILPIPE_KAFKA_LINGER_MS", "42", 1);
	rc = config_load(&cf, path, err, sizeof(err));
	if (!CHECK(rc == 0 && cf.kafka_linger_ms == 42 &&
		       strcmp(cf.kafka_brokers, "file:9092") == 0,
		   "MAILPIPE_KAFKA_LINGER_MS wins over the file; other file keys stay"))
		unit_diag("rc %d, err \"%s\", linger %ld", rc, err,
			  rc == 0 ? cf.kafka_linger_ms : -1);
	config_release(&cf);

	setenv("MAILPIPE_KAFKA_BROKERS", "env1:9092,env2:9092", 1);
	setenv("MAILPIPE_WEBHOOK_VERIFY", "off", 1);
	setenv("MAILPIPE_INGEST_SOCKET_MODE", "0600", 1);
	setenv("MAILPIPE_WEBHOOK_MAX_AGE_SECONDS", "90000", 1);
	rc = config_load(&cf, path, err, sizeof(err));
	if (!CHECK(rc == 0 && strcmp(cf.kafka_brokers, "env1:9092,env2:9092") == 0 &&
		       cf.webhook_verify == 0 && cf.ingest_socket_mode == 0600 &&
		       cf.webhook_max_age_seconds == 90000,
		   "string, bool, octal and int keys all take MAILPIPE_<KEY>"))
		unit_diag("rc %d, err \"%s\"", rc, err);
	config_release(&cf);
	clear_env();

	/* MAILPIPE_CONFIG names the file when no path is given; a given path wins. */
	write_file(other, sizeof(other), "kafka.linger_ms = 11\n");
	setenv("MAILPIPE_CONFIG", other, 1);
	rc = config_load(&cf, NULL, err, sizeof(err));
	if (!CHECK(rc == 0 && cf.kafka_linger_ms == 11, "MAILPIPE_CONFIG names the file"))
		unit_diag("rc %d, err \"%s\"", rc, err);
	config_release(&cf);
	rc = config_load(&cf, path, err, sizeof(err));
	if (!CHECK(rc == 0 && cf.kafka_linger_ms == 7,
		   "an explicit path wins over MAILPIPE_CONFIG"))
		unit_diag("rc %d, err \"%s\"", rc, err);
	config_release(&cf);
	clear_env();

	setenv("MAILPIPE_KAFKA_LINGER_MS", "fast", 1);
	rc = config_load(&cf, path, err, sizeof(err));
	if (!CHECK(rc < 0 && strstr(err, "MAILPIPE_KAFKA_LINGER_MS") != NULL &&
		       strstr(err, "invalid value for 'kafka.linger_ms'") != NULL,
		   "bad env value: error names the variable and the key"))
		unit_diag("rc %d, err \"%s\"", rc, err);
	config_release(&cf);
	clear_env();

	setenv("MAILPIPE_WEBHOOK_VERIFY", "sometimes", 1);
	rc = config_load(&cf, NULL, err, sizeof(err));
	if (!CHECK(rc < 0 && strstr(err, "MAILPIPE_WEBHOOK_VERIFY") != NULL,
		   "bad env bool: error names MAILPIPE_WEBHOOK_VERIFY"))
		unit_diag("rc %d, err \"%s\"", rc, err);
	config_release(&cf);
	clear_env();
}

static void
test_markdown(void)
{
	char *md = capture(config_write_markdown), *eff;
	struct config cf;
	char err[512] = "", cell[160];
	int ok = 1;
	size_t rows = 0;

	for (size_t i = 0; i < NKEYS; i++) {
		snprintf(cell, sizeof(cell), "| `%s` |", keys[i]);
		if (count(md, cell) != 1) {
			unit_diag("'%s' appears %zu times", keys[i], count(md, cell));
			ok = 0;
		}
	}
	for (const char *p = md; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		rows += strncmp(p, "| `", 3) == 0;
	if (rows != NKEYS) {
		unit_diag("%zu rows for %zu keys", rows, NKEYS);
		ok = 0;
	}
	CHECK(ok, "config_write_markdown lists every key exactly once");
#define MD_HEAD "| key | environment | default | description |\n|---|"
	CHECK(strncmp(md, MD_HEAD, strlen(MD_HEAD)) == 0 &&
		  strstr(md, "| `kafka.linger_ms` | `MAILPIPE_KAFKA_LINGER_MS` | `1` |") != NULL,
	      "markdown table has its header and environment names");
	free(md);

	if (config_load(&cf, NULL, err, sizeof(err)) < 0 ||
	    config_set(&cf, "kafka.sasl_password", "hunter2-secret", "test", err, sizeof(err)) <
		0 ||
	    config_set(&cf, "database.url", "postgresql://u:pw-secret@db/m", "test", err,
		       sizeof(err)) < 0) {
		CHECK(0, "config_write_effective setup");
		unit_diag("err \"%s\"", err);
		config_release(&cf);
		return;
	}
	eff = capture_effective(&cf);
	ok = 1;
	for (size_t i = 0; i < NKEYS; i++) {
		char line[160];
		size_t at_start, found;

		/* "\nkey = ": a line that starts with the key (or the first line). */
		snprintf(line, sizeof(line), "\n%s = ", keys[i]);
		at_start = strncmp(eff, line + 1, strlen(line + 1)) == 0;
		found = count(eff, line) + at_start;
		if (found != 1) {
			unit_diag("'%s' starts %zu lines", keys[i], found);
			ok = 0;
		}
	}
	CHECK(ok, "config_write_effective writes every key once");
	if (!CHECK(strstr(eff, "hunter2") == NULL && strstr(eff, "pw-secret") == NULL &&
		       strstr(eff, "kafka.sasl_password = (set, hidden)") != NULL &&
		       strstr(eff, "ingest.socket_mode = 0660\n") != NULL,
		   "config_write_effective hides secrets, shows the mode in octal"))
		unit_diag("%s", eff);
	free(eff);
	config_release(&cf);
}

static void
test_readme(void)
{
	FILE *f = fopen(README, "r");
	char *text = NULL, *md = capture(config_write_markdown), *begin, *end;
	size_t cap = 0;
	ssize_t len;

	if (f == NULL) {
		CHECK(0, "README.md configuration table matches config_write_markdown()");
		unit_diag(
		    "cannot open %s in the current directory: %s (run from the repository root)",
		    README, strerror(errno));
		goto out;
	}
	len = getdelim(&text, &cap, '\0', f);
	fclose(f);
	if (len < 0 || (begin = strstr(text, BEGIN_MARK)) == NULL ||
	    (end = strstr(begin, END_MARK)) == NULL) {
		CHECK(0, "README.md configuration table matches config_write_markdown()");
		unit_diag("%s has no '%s' ... '%s' markers, in that order: add them around the "
			  "output of `mailpipectl config-table`",
			  README, BEGIN_MARK, END_MARK);
		goto out;
	}
	/* The table starts on the line after the begin marker and ends before the end marker. */
	begin += strlen(BEGIN_MARK);
	if (*begin == '\n')
		begin++;
	*end = '\0';
	if (!CHECK(strcmp(begin, md) == 0,
		   "README.md configuration table matches config_write_markdown()")) {
		const char *a = begin, *b = md, *la = begin, *lb = md;
		int line = 1;

		while (*a && *a == *b) {
			if (*a == '\n') {
				line++;
				la = a + 1;
				lb = b + 1;
			}
			a++;
			b++;
		}
		unit_diag("first difference on table line %d:\n  README: %.*s\n  code:   %.*s",
			  line, (int)strcspn(la, "\n"), la, (int)strcspn(lb, "\n"), lb);
		unit_diag("regenerate it with `mailpipectl config-table` between the markers, "
			  "each marker on its own line");
	}
out:
	free(text);
	free(md);
}

int
main(void)
{
	const char *base = getenv("TMPDIR");

	clear_env();
	snprintf(tmpdir, sizeof(tmpdir), "%s/mailpipe-test-config.XXXXXX",
		 base && *base ? base : P_tmpdir);
	if (mkdtemp(tmpdir) == NULL)
		die("mkdtemp");

	test_defaults();
	test_file();
	test_file_errors();
	test_env();
	test_markdown();
	test_readme();

	for (int i = 1; i <= nfiles; i++) {
		char path[1024];

		snprintf(path, sizeof(path), "%s/mailpipe-%d.conf", tmpdir, i);
		unlink(path);
	}
	rmdir(tmpdir);
	return unit_done();
}
