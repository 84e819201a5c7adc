/*
 * mailpipectl_checkconfig.c: `mailpipectl check-config [--config FILE] [--allow KEY]...`.
 *
 * Loads the settings exactly as the daemons do (file, then MAILPIPE_* variables; see
 * lib/config.h) and refuses those unsafe in production: webhook verification off or
 * without a key, PostgreSQL without TLS or with a well-known password, Redis across the
 * network (mailpipe speaks no TLS to Redis) or without a password, Kafka in plaintext to
 * other hosts, SendGrid not over https or the simulator's URL or key, world-writable
 * sockets, dropping events without an archive. Each problem is one line naming the key
 * and the fix: errors (exit 1) first, then warnings (reported, exit 0). --allow KEY
 * waives the checks of one key.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "mailpipectl.h"
#include "sig.h"

#define MAX_ALLOW 32
#define SIM_DEFAULT_KEY "SG.mailpipe-simulator"

enum severity { SEV_ERROR, SEV_WARNING };

/* every key some check looks at: what --allow accepts */
static const char *const checked_keys[] = {
    "webhook.verify",       "webhook.public_key", "webhook.max_age_seconds",
    "database.url",         "redis.url",          "kafka.security_protocol",
    "kafka.sasl_password",  "sendgrid.api_url",   "sendgrid.api_key",
    "ingest.socket_mode",   "query.socket_mode",  "retention.days",
    "archive.dir",          "log.level",          "kafka.auto_offset_reset",
    "metrics.push_seconds",
};

/* passwords nobody should run with */
static const char *const weak_passwords[] = {
    "postgres", "password", "mailpipe", "changeme", "change-me", "secret",  "admin", "redis",
    "foobared", "123456",   "test",     "dev",      "root",      "default", "pass",  "letmein",
};

struct problem {
	enum severity sev;
	char line[512];
};

struct checker {
	const char *allow[MAX_ALLOW];
	size_t nallow;
	struct problem *list;
	size_t n, cap;
	int waived;
};

static void
checkconfig_usage(FILE *out)
{
	fputs("usage: mailpipectl check-config [--config FILE] [--allow KEY]...\n"
	      "  load the settings as the daemons do (FILE or $MAILPIPE_CONFIG, then the\n"
	      "  MAILPIPE_* variables) and report what is unsafe in production, one line per\n"
	      "  problem naming the key and the fix: errors (exit 1), then warnings. Prints\n"
	      "  'config OK' when there is no error. --allow KEY waives the checks of KEY.\n",
	      out);
}

static int
allowed(const struct checker *c, const char *key)
{
	for (size_t i = 0; i < c->nallow; i++)
		if (strcmp(c->allow[i], key) == 0)
			return 1;
	return 0;
}

static void report(struct checker *c, enum severity sev, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Records "KEY: message" unless KEY is waived. */
static void
report(struct checker *c, enum severity sev, const char *key, const char *fmt, ...)
{
	va_list ap;
	struct problem *p;

	if (allowed(c, key)) {
		c->waived++;
		return;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct problem *nl = realloc(c->list, cap * sizeof(*nl));
		if (nl == NULL) {
			mailpipectl_errx("check-config: out of memory");
			exit(MAILPIPECTL_EXIT_FAIL);
		}
		c->list = nl;
		c->cap = cap;
	}
	p = &c->list[c->n++];
	p->sev = sev;
	int w = snprintf(p->line, sizeof(p->line), "%s: ", key);
	va_start(ap, fmt);
	vsnprintf(p->line + w, sizeof(p->line) - (size_t)w, fmt, ap);
	va_end(ap);
}

static int
is_loopback(const char *host)
{
	return strcasecmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
	       strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0;
}

static int
is_weak(const char *password, const char *user)
{
	if (user != NULL && *user != '\0' && strcmp(password, user) == 0)
		return 1;
	for (size_t i = 0; i < sizeof(weak_passwords) / sizeof(weak_passwords[0]); i++)
		if (strcasecmp(password, weak_passwords[i]) == 0)
			return 1;
	return 0;
}

static void
check_webhook(struct checker *c, const struct config *cf)
{
	char err[256];
	struct sig_key *key;

	if (!cf->webhook_verify)
		report(c, SEV_ERROR, "webhook.verify",
		       "signature verification is off, anyone can post events: set "
		       "webhook.verify = on");
	if (cf->webhook_public_key[0] == '\0') {
		report(c, SEV_ERROR, "webhook.public_key",
		       "empty: set it to the verification key of SendGrid's Event Webhook "
		       "settings (base64)");
	} else if ((key = sig_key_new(cf->webhook_public_key, err, sizeof(err))) == NULL) {
		report(c, SEV_ERROR, "webhook.public_key",
		       "not a usable key (%s): paste the key exactly as SendGrid shows it", err);
	} else {
		sig_key_destroy(key);
	}
	if (cf->webhook_max_age_seconds == 0)
		report(c, SEV_WARNING, "webhook.max_age_seconds",
		       "0 accepts signed requests of any age (replays): set it above 90000");
	else if (cf->webhook_max_age_seconds < 90000)
		report(c, SEV_WARNING, "webhook.max_age_seconds",
		       "%ld is shorter than SendGrid's 24-hour retries: set it above 90000",
		       cf->webhook_max_age_seconds);
}

static void
check_database(struct checker *c, const struct config *cf)
{
	PQconninfoOption *opts = NULL, *o;
	char *perr = NULL;
	const char *host = "", *sslmode = "", *password = "", *user = "";

	if ((opts = PQconninfoParse(cf->database_url, &perr)) == NULL) {
		report(c, SEV_ERROR, "database.url", "cannot parse it (%s): fix its syntax",
		       perr ? strtok(perr, "\n") : "out of memory");
		PQfreemem(perr);
		return;
	}
	for (o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;
		if (strcmp(o->keyword, "host") == 0 ||
		    (strcmp(o->keyword, "hostaddr") == 0 && !*host))
			host = o->val;
		else if (strcmp(o->keyword, "sslmode") == 0)
			sslmode = o->val;
		else if (strcmp(o->keyword, "password") == 0)
			password = o->val;
		else if (strcmp(o->keyword, "user") == 0)
			user = o->val;
	}
	/* no host or a directory: a Unix socket, no network to protect */
	int local = host[0] == '\0' || host[0] == '/' || is_loopback(host);
	if (!local && strcmp(sslmode, "verify-full") != 0 && strcmp(sslmode, "verify-ca") != 0) {
		if (strcmp(sslmode, "require") == 0)
			report(c, SEV_WARNING, "database.url",
			       "sslmode=require does not check the server's certificate: use "
			       "sslmode=verify-full with sslrootcert");
		else
			report(c, SEV_ERROR, "database.url",
			       "connects to '%s' without TLS%s%s: add sslmode=verify-full (and "
			       "sslrootcert=...)",
			       host, *sslmode ? " (sslmode=" : "", *sslmode ? sslmode : "");
	}
	if (*password != '\0' && is_weak(password, user))
		report(
		    c, SEV_ERROR, "database.url",
		    "uses a well-known password: set a long random one (ALTER ROLE ... PASSWORD)");
	PQconninfoFree(opts);
}

static void
check_redis(struct checker *c, const struct config *cf)
{
	const char *url = cf->redis_url, *p, *at, *end;
	char host[256] = "", password[256] = "", user[128] = "";

	if (strncmp(url, "unix:", 5) == 0)
		return;
	if (strncmp(url, "rediss://", 9) == 0) {
		report(c, SEV_ERROR, "redis.url",
		       "rediss:// (TLS) is not supported by mailpipe: use a unix: socket or a "
		       "loopback redis:// (a TLS tunnel such as stunnel to a remote Redis)");
		return;
	}
	if (strncmp(url, "redis://", 8) != 0)
		return; /* config_load() has refused it already */
	p = url + 8;
	if ((at = strrchr(p, '@')) != NULL) {
		const char *pw = memchr(p, ':', (size_t)(at - p));
		if (pw != NULL) {
			snprintf(user, sizeof(user), "%.*s", (int)(pw - p), p);
			pw++;
		} else {
			pw = p;
		}
		snprintf(password, sizeof(password), "%.*s", (int)(at - pw), pw);
		p = at + 1;
	}
	end = p + strcspn(p, ":/");
	snprintf(host, sizeof(host), "%.*s", (int)(end - p), p);
	if (!is_loopback(host))
		report(c, SEV_ERROR, "redis.url",
		       "'%s' is another host, and mailpipe speaks no TLS to Redis: use a unix: "
		       "socket or loopback, through a TLS tunnel for a remote Redis",
		       host);
	if (password[0] == '\0')
		report(c, is_loopback(host) ? SEV_WARNING : SEV_ERROR, "redis.url",
		       "no password: set requirepass (or an ACL user) and "
		       "redis://:PASSWORD@host:port/db");
	else if (is_weak(password, user))
		report(c, SEV_ERROR, "redis.url",
		       "uses a well-known password: set a long random requirepass");
}

/* 1 when every broker of the comma-separated list is on this host. */
static int
brokers_local(const char *list)
{
	const char *p = list;

	while (*p != '\0') {
		size_t n = strcspn(p, ",");
		char b[256], *colon;

		snprintf(b, sizeof(b), "%.*s", (int)n, p);
		char *s = b;
		while (isspace((unsigned char)*s))
			s++;
		/* [::1]:9092, host:9092 */
		if (s[0] == '[') {
			char *close = strchr(s, ']');
			if (close)
				close[1] = '\0';
		} else if ((colon = strrchr(s, ':')) != NULL) {
			*colon = '\0';
		}
		if (*s != '\0' && !is_loopback(s))
			return 0;
		p += n;
		if (*p == ',')
			p++;
	}
	return 1;
}

static void
check_kafka(struct checker *c, const struct config *cf)
{
	const char *proto = cf->kafka_security_protocol;
	int tls = strcasecmp(proto, "ssl") == 0 || strcasecmp(proto, "sasl_ssl") == 0;

	if (!tls && !brokers_local(cf->kafka_brokers))
		report(c, SEV_ERROR, "kafka.security_protocol",
		       "'%s' sends events in clear to the brokers '%s': set ssl or sasl_ssl "
		       "(and kafka.ssl_ca_location)",
		       *proto ? proto : "plaintext (the default)", cf->kafka_brokers);
	if (cf->kafka_sasl_password[0] != '\0' &&
	    is_weak(cf->kafka_sasl_password, cf->kafka_sasl_username))
		report(c, SEV_ERROR, "kafka.sasl_password",
		       "a well-known password: set a long random one");
	if (strcmp(cf->kafka_auto_offset_reset, "latest") == 0)
		report(c, SEV_WARNING, "kafka.auto_offset_reset",
		       "'latest' skips the events of an expired offset silently: use error");
}

static void
check_sendgrid(struct checker *c, const struct config *cf)
{
	const char *url = cf->sendgrid_api_url;
	char host[256];

	if (strncmp(url, "https://", 8) != 0) {
		report(c, SEV_ERROR, "sendgrid.api_url",
		       "'%s' is not https: set https://api.sendgrid.com", url);
	} else {
		const char *h = url + 8, *end = h + strcspn(h, ":/");
		snprintf(host, sizeof(host), "%.*s", (int)(end - h), h);
		if (is_loopback(host))
			report(
			    c, SEV_ERROR, "sendgrid.api_url",
			    "'%s' is on this host (the simulator?): set https://api.sendgrid.com",
			    url);
	}
	if (cf->sendgrid_api_key[0] == '\0')
		report(c, SEV_ERROR, "sendgrid.api_key",
		       "empty: the sender cannot send; set a SendGrid API key with Mail Send "
		       "access (MAILPIPE_SENDGRID_API_KEY in the environment file)");
	else if (strcmp(cf->sendgrid_api_key, SIM_DEFAULT_KEY) == 0 ||
		 strcmp(cf->sendgrid_api_key, cf->sim_api_key) == 0)
		report(c, SEV_ERROR, "sendgrid.api_key",
		       "the simulator's development key: set a real SendGrid API key");
	else if (strncmp(cf->sendgrid_api_key, "SG.", 3) != 0)
		report(c, SEV_WARNING, "sendgrid.api_key",
		       "does not look like a SendGrid key (SG....): check it");
}

static void
check_local(struct checker *c, const struct config *cf)
{
	if (cf->ingest_socket_mode & 0002)
		report(c, SEV_ERROR, "ingest.socket_mode",
		       "%04lo lets every local user write to the ingest socket: set 0660 and add "
		       "nginx's user to the mailpipe group",
		       cf->ingest_socket_mode);
	if (cf->query_socket_mode & 0002)
		report(c, SEV_ERROR, "query.socket_mode",
		       "%04lo lets every local user write to the query socket: set 0660 and add "
		       "nginx's user to the mailpipe group",
		       cf->query_socket_mode);
	if (cf->retention_days == 0)
		report(c, SEV_WARNING, "retention.days",
		       "0 keeps every event forever and storage grows without bound: set the days "
		       "to keep (default 400)");
	else if (cf->archive_dir[0] != '/')
		report(c, SEV_ERROR, "archive.dir",
		       "'%s' is not an absolute path, and retention drops nothing without an "
		       "archive: set a directory such as /var/lib/mailpipe/archive",
		       cf->archive_dir);
	if (strcmp(cf->log_level, "debug") == 0)
		report(c, SEV_WARNING, "log.level",
		       "debug logs in volume and may log addresses: use info");
	if (cf->metrics_push_seconds == 0)
		report(c, SEV_WARNING, "metrics.push_seconds",
		       "0: no process shows in GET /metrics; set 5");
}

static int
known_key(const char *key)
{
	for (size_t i = 0; i < sizeof(checked_keys) / sizeof(checked_keys[0]); i++)
		if (strcmp(checked_keys[i], key) == 0)
			return 1;
	return 0;
}

int
mailpipectl_check_config_cmd(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"allow", required_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct config cf;
	struct checker c;
	const char *path = NULL;
	char err[512];
	size_t errors = 0, warnings = 0;
	int opt, status = MAILPIPECTL_EXIT_FAIL;

	memset(&cf, 0, sizeof(cf));
	memset(&c, 0, sizeof(c));
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":hc:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 'a':
			if (!known_key(optarg)) {
				mailpipectl_errx("check-config: '--allow %s': no check looks at "
						 "that key",
						 optarg);
				return MAILPIPECTL_EXIT_USAGE;
			}
			if (c.nallow == MAX_ALLOW) {
				mailpipectl_errx("check-config: too many '--allow'");
				return MAILPIPECTL_EXIT_USAGE;
			}
			c.allow[c.nallow++] = optarg;
			break;
		default:
			mailpipectl_help_or_bad_option("check-config", NULL, opt, argv[optind - 1],
						       checkconfig_usage);
			return MAILPIPECTL_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		mailpipectl_errx("check-config: unexpected argument '%s'", argv[optind]);
		checkconfig_usage(stderr);
		return MAILPIPECTL_EXIT_USAGE;
	}
	if (config_load(&cf, path, err, sizeof(err)) < 0) {
		printf("error: %s\n", err);
		goto out;
	}
	check_webhook(&c, &cf);
	check_database(&c, &cf);
	check_redis(&c, &cf);
	check_kafka(&c, &cf);
	check_sendgrid(&c, &cf);
	check_local(&c, &cf);

	for (size_t i = 0; i < c.n; i++)
		if (c.list[i].sev == SEV_ERROR) {
			printf("error: %s\n", c.list[i].line);
			errors++;
		}
	for (size_t i = 0; i < c.n; i++)
		if (c.list[i].sev == SEV_WARNING) {
			printf("warning: %s\n", c.list[i].line);
			warnings++;
		}
	if (errors > 0) {
		printf("config refused: %zu error%s, %zu warning%s\n", errors,
		       errors == 1 ? "" : "s", warnings, warnings == 1 ? "" : "s");
		goto out;
	}
	printf("config OK (%zu warning%s, %d check%s waived)\n", warnings, warnings == 1 ? "" : "s",
	       c.waived, c.waived == 1 ? "" : "s");
	status = MAILPIPECTL_EXIT_OK;
out:
	free(c.list);
	config_release(&cf);
	return status;
}
