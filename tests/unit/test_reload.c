/*
 * test_reload: the pure parts of run-time reloads and structured log fields: logfmt value
 * quoting (lib/log.c), level steps, config_diff() and config_copy_number() (lib/config.c),
 * and reload_poll() end to end on a real file with real signals, its log lines captured
 * from stderr.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "prog.h"
#include "reload.h"
#include "unit.h"

static void
test_values(void)
{
	static const char *const cases[][2] = {
	    {"sendgrid.events", "sendgrid.events"},
	    {"01J5ZK-ab_c", "01J5ZK-ab_c"},
	    {"a b", "\"a b\""},
	    {"", "\"\""},
	    {"x=1", "\"x=1\""},
	    {"say \"hi\"\\", "\"say \\\"hi\\\"\\\\\""},
	    {"l1\nl2\x01", "\"l1\\nl2\\x01\""},
	    {"host:9092/a@b+c", "host:9092/a@b+c"},
	};
	char buf[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		log_format_value(buf, sizeof(buf), cases[i][0]);
		if (!CHECK(strcmp(buf, cases[i][1]) == 0, "log value %zu", i))
			unit_diag("got [%s], want [%s]", buf, cases[i][1]);
	}
	CHECK(log_format_value(buf, 4, "abcdef") == 3 && strcmp(buf, "abc") == 0,
	      "a bare value is cut to the buffer");
	CHECK(log_format_value(buf, 5, "a b c d") <= 4 && strlen(buf) <= 4,
	      "a quoted value stays in the buffer");
}

static void
test_steps(void)
{
	CHECK(reload_level_step(LOG_INFO, -1) == LOG_DEBUG, "SIGUSR1: info -> debug");
	CHECK(reload_level_step(LOG_DEBUG, -1) == LOG_DEBUG, "SIGUSR1: debug stays");
	CHECK(reload_level_step(LOG_INFO, +1) == LOG_WARN, "SIGUSR2: info -> warn");
	CHECK(reload_level_step(LOG_ERROR, +1) == LOG_ERROR, "SIGUSR2: error stays");
}

static void
count_key(const char *key, void *arg)
{
	char *seen = arg;

	strcat(seen, key);
	strcat(seen, ";");
}

static void
test_diff(void)
{
	struct config a, b;
	char err[256], seen[512] = "";

	CHECK(config_load(&a, NULL, err, sizeof(err)) == 0, "defaults load");
	CHECK(config_load(&b, NULL, err, sizeof(err)) == 0, "defaults load again");
	config_diff(&a, &b, count_key, seen);
	CHECK(seen[0] == '\0', "no difference between equal settings");
	CHECK(config_set(&b, "query.threads", "9", "t", err, sizeof(err)) == 0 &&
		  config_set(&b, "redis.url", "redis://x:1/0", "t", err, sizeof(err)) == 0 &&
		  config_set(&b, "webhook.verify", "off", "t", err, sizeof(err)) == 0 &&
		  config_set(&b, "ingest.socket_mode", "0600", "t", err, sizeof(err)) == 0,
	      "changes set");
	config_diff(&a, &b, count_key, seen);
	if (!CHECK(strcmp(seen, "ingest.socket_mode;query.threads;webhook.verify;redis.url;") == 0,
		   "every changed key named once, in table order"))
		unit_diag("got %s", seen);
	CHECK(config_copy_number(&a, &b, "query.threads") == 0 && a.query_threads == 9,
	      "a number copies");
	CHECK(config_copy_number(&a, &b, "webhook.verify") == 0 && a.webhook_verify == 0,
	      "a switch copies");
	CHECK(config_copy_number(&a, &b, "redis.url") == -1, "a string does not copy");
	CHECK(config_copy_number(&a, &b, "no.such") == -1, "an unknown key does not copy");
	CHECK(config_live(&a.query_threads) == 9, "config_live reads the field");
	config_release(&a);
	config_release(&b);
}

static int applied_calls;

static void
on_applied(void *arg)
{
	(void)arg;
	applied_calls++;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
		unit_diag("cannot write %s", path);
}

/* Reads what stderr got since the last call (stderr is redirected to path). */
static void
read_log(const char *path, long *from, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;

	buf[0] = '\0';
	if (f == NULL)
		return;
	if (fseek(f, *from, SEEK_SET) == 0)
		n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	*from += (long)n;
	fclose(f);
}

static void
test_poll(void)
{
	static const char *const live[] = {"sink.batch_ms", NULL};
	char dir[] = "/tmp/test_reload.XXXXXX", conf[300], logp[300], out[8192];
	char *argv[] = {"sink", "-c", conf, NULL};
	struct config cf;
	struct reload_conf rc = {.cf = &cf, .live = live, .applied = on_applied};
	int status, saved, fd;
	long from = 0;

	if (mkdtemp(dir) == NULL) {
		CHECK(0, "mkdtemp");
		return;
	}
	snprintf(conf, sizeof(conf), "%s/mailpipe.conf", dir);
	snprintf(logp, sizeof(logp), "%s/stderr", dir);
	unsetenv("MAILPIPE_LOG_LEVEL");
	unsetenv("MAILPIPE_SINK_BATCH_MS");
	unsetenv("MAILPIPE_QUERY_THREADS");
	write_file(conf, "log.level = info\nsink.batch_ms = 50\nquery.threads = 4\n");
	saved = dup(STDERR_FILENO);
	fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, STDERR_FILENO);
	close(fd);

	CHECK(reload_poll() == 0, "nothing to do before reload_install()");
	CHECK(prog_start(3, argv, &cf, &status) == 1, "prog_start with -c");
	reload_install(&rc);
	CHECK(reload_poll() == 0, "nothing to do without a signal");

	write_file(conf, "log.level = debug\nsink.batch_ms = 70\nquery.threads = 6\n");
	raise(SIGHUP);
	CHECK(reload_poll() == 1, "SIGHUP reloads");
	read_log(logp, &from, out, sizeof(out));
	CHECK(log_get_level() == LOG_DEBUG, "log.level applied");
	CHECK(cf.sink_batch_ms == 70 && applied_calls == 1, "live key applied");
	CHECK(cf.query_threads == 4, "restart-only key kept");
	CHECK(strstr(out, "level=warn prog=sink") && strstr(out, "log level now debug"),
	      "level change logged at warn");
	if (!CHECK(strstr(out, "msg=\"'query.threads' changed: restart to apply\"") != NULL,
		   "restart-only key warned"))
		unit_diag_text(out);
	CHECK(strstr(out, "'sink.batch_ms' changed: applied") != NULL, "live key logged");

	write_file(conf, "log.level = debug\nsink.batch_ms = 70\nbogus line\n");
	raise(SIGHUP);
	CHECK(reload_poll() == 0, "an invalid file is not applied");
	read_log(logp, &from, out, sizeof(out));
	if (!CHECK(strstr(out, "level=error") && strstr(out, "mailpipe.conf:3: expected") &&
		       strstr(out, "keeping the running settings"),
		   "the file:line error is logged"))
		unit_diag_text(out);

	raise(SIGUSR2);
	reload_poll();
	CHECK(log_get_level() == LOG_INFO, "SIGUSR2: debug -> info");
	raise(SIGUSR2);
	reload_poll();
	CHECK(log_get_level() == LOG_WARN, "SIGUSR2: info -> warn");
	raise(SIGUSR1);
	reload_poll();
	read_log(logp, &from, out, sizeof(out));
	CHECK(log_get_level() == LOG_INFO && strstr(out, "log level now info (SIGUSR1)"),
	      "SIGUSR1: warn -> info, logged");

	/* a reload that leaves log.level alone keeps the level the signals set */
	write_file(conf, "log.level = debug\nsink.batch_ms = 90\n");
	raise(SIGHUP);
	reload_poll();
	CHECK(log_get_level() == LOG_INFO && cf.sink_batch_ms == 90,
	      "unchanged log.level keeps the signalled level");

	log_set_fields("topic", "sendgrid.events", "partition", "3", "offset", "42", "sg_event_id",
		       NULL, "why", "a \"b\"", NULL);
	log_warnx("fields");
	log_set_ctx(NULL);
	log_warnx("plain");
	read_log(logp, &from, out, sizeof(out));
	if (!CHECK(strstr(out, "msg=\"fields\" topic=sendgrid.events partition=3 offset=42 "
			       "why=\"a \\\"b\\\"\"\n") != NULL,
		   "fields written as logfmt keys, NULL values skipped"))
		unit_diag_text(out);
	CHECK(strstr(out, "msg=\"plain\"\n") != NULL, "cleared fields");

	dup2(saved, STDERR_FILENO);
	close(saved);
	config_release(&cf);
	unlink(conf);
	unlink(logp);
	rmdir(dir);
}

int
main(void)
{
	test_values();
	test_steps();
	test_diff();
	test_poll();
	return unit_done();
}
