/*
 * kafka-dev: an embedded Kafka broker for development and tests.
 *
 * Debian ships no Apache Kafka broker, so this program hosts librdkafka's
 * own mock cluster (rdkafka_mock.h, librdkafka 2.0.2) as a standalone
 * process. It speaks the real Kafka protocol on 127.0.0.1, so every mailpipe
 * program reaches it through an ordinary bootstrap.servers list, and it
 * supports consumer groups, idempotent producers and fault injection.
 *
 * DEV ONLY: it keeps nothing on disk and the mock trims each partition's log
 * at a few MB, silently. Never point anything that matters at it.
 *
 *   kafka-dev --bootstrap-file PATH --control PATH [--brokers N]
 *             [--topics NAME:PARTITIONS,...]
 *
 * Start-up: listen on the control socket (a live one means another instance:
 * refuse), create the cluster and the topics (replication factor
 * min(3, brokers)), then write the bootstrap list atomically (tmp + rename)
 * to --bootstrap-file: the file's existence means "ready". SIGTERM/SIGINT
 * remove both files and exit 0. Bad arguments exit 2, failures exit 1.
 *
 * The control socket (unix stream, mode 0600) takes one command per line and
 * answers one line per command, starting with "ok" or "error":
 *
 *   ping | status | down [ID] | up [ID] | produce-errors N [CODE] | rtt MS
 *   | clear
 *
 * Fault injection only works inside this process, hence the socket.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MUSTCHECK __attribute__((warn_unused_result))

#define DEFAULT_TOPICS "sendgrid.events:4,sendgrid.events.dlq:1,mail.requests:4,mail.requests.dlq:1"
#define MAX_BROKERS 32
#define MAX_CLIENTS 32
#define LINE_MAX_LEN 512
#define POLL_MS 200
#define API_KEY_PRODUCE 0 /* RD_KAFKAP_Produce, not in the public headers */
#define MAX_PUSHED_ERRORS 100000
#define MAX_RTT_MS 60000
#define TOPIC_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"

struct client {
	int fd; /* -1 when the slot is free */
	size_t len;
	char buf[LINE_MAX_LEN];
};

struct kdev {
	const char *bootstrap_file; /* borrowed from argv */
	const char *control_path;   /* borrowed from argv */
	int nbrokers;
	rd_kafka_t *rk;              /* only hosts the mock cluster */
	rd_kafka_mock_cluster_t *mc; /* broker ids are 1..nbrokers */
	const char *bootstraps;      /* owned by mc */
	bool down[MAX_BROKERS + 1];
	int rtt_ms;
	int lfd;
	struct client clients[MAX_CLIENTS];
};

static volatile sig_atomic_t stop_requested;

static void
on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* Logs one logfmt line to stderr; a single fprintf keeps threads' lines whole. */
__attribute__((format(printf, 2, 3))) static void
klog(const char *level, const char *fmt, ...)
{
	char msg[1024], esc[2 * sizeof msg], ts[32];
	struct timespec now;
	struct tm tm;
	size_t j = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	for (size_t i = 0; msg[i] && j + 2 < sizeof esc; i++) {
		char c = msg[i];
		if (c == '"' || c == '\\')
			esc[j++] = '\\';
		esc[j++] = (c == '\n' || c == '\r') ? ' ' : c;
	}
	esc[j] = '\0';
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "ts=%s.%03ldZ level=%s prog=kafka-dev msg=\"%s\"\n", ts,
		now.tv_nsec / 1000000, level, esc);
}

/* librdkafka log callback (called from its threads): syslog levels. */
static void
on_rdkafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	static const char *const names[] = {"error", "error", "error", "error",
					    "warn",  "info",  "info",  "debug"};

	(void)rk;
	if (strcmp(fac, "CONFWARN") == 0)
		return; /* "no bootstrap.servers": this handle never connects */
	klog(names[level < 0 ? 0 : level > 7 ? 7 : level], "rdkafka %s: %s", fac, buf);
}

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: kafka-dev --bootstrap-file PATH --control PATH [--brokers N]\n"
		"                 [--topics NAME:PARTITIONS,...]\n"
		"  --brokers  number of brokers, 1..%d (default 3)\n"
		"  --topics   default %s\n",
		MAX_BROKERS, DEFAULT_TOPICS);
}

/* Parses a whole decimal integer in [lo, hi]. */
static MUSTCHECK int
parse_int(const char *s, long lo, long hi, long *out)
{
	char *end = NULL;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/*
 * Resolves a Kafka error name (REQUEST_TIMED_OUT, _TRANSPORT, with or without
 * the RD_KAFKA_RESP_ERR_ prefix, any case) or number to a known non-zero code.
 */
static MUSTCHECK int
parse_err_code(const char *s, rd_kafka_resp_err_t *out)
{
	const struct rd_kafka_err_desc *descs = NULL;
	size_t cnt = 0;
	long num = 0;
	bool by_num;

	if (strncasecmp(s, "RD_KAFKA_RESP_ERR_", 18) == 0)
		s += 18;
	if (strcasecmp(s, "NOT_LEADER_OR_FOLLOWER") == 0) /* newer name */
		s = "NOT_LEADER_FOR_PARTITION";
	by_num = parse_int(s, INT_MIN, INT_MAX, &num) == 0;
	rd_kafka_get_err_descs(&descs, &cnt);
	for (size_t i = 0; i < cnt; i++) {
		if (!descs[i].name || descs[i].code == RD_KAFKA_RESP_ERR_NO_ERROR)
			continue;
		if (by_num ? descs[i].code == num : strcasecmp(descs[i].name, s) == 0) {
			*out = descs[i].code;
			return 0;
		}
	}
	return -1;
}

/* Writes the bootstrap list to a temporary file and renames it into place. */
static MUSTCHECK int
write_bootstrap(const struct kdev *k, char *err, size_t errsz)
{
	char tmp[PATH_MAX];
	FILE *f = NULL;
	int rc = -1;

	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", k->bootstrap_file, (long)getpid()) >=
	    sizeof tmp) {
		snprintf(err, errsz, "path too long '%s'", k->bootstrap_file);
		return -1;
	}
	/* fflush() reports write errors; the fclose() at out: then cannot lose data. */
	if (!(f = fopen(tmp, "we")) || fprintf(f, "%s\n", k->bootstraps) < 0 || fflush(f) != 0) {
		snprintf(err, errsz, "cannot write '%s': %s", tmp, strerror(errno));
		goto out;
	}
	if (rename(tmp, k->bootstrap_file) != 0) {
		snprintf(err, errsz, "cannot rename '%s': %s", tmp, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (f)
		fclose(f);
	if (rc != 0)
		unlink(tmp);
	return rc;
}

/*
 * Walks the comma-separated NAME:PARTITIONS list `spec`: only checks it when
 * `mc` is NULL, else creates each topic with replication factor `rf`.
 */
static MUSTCHECK int
topics_apply(rd_kafka_mock_cluster_t *mc, int rf, const char *spec, char *err, size_t errsz)
{
	char *copy = NULL, *rest, *t;
	int rc = -1;

	if (!(rest = copy = strdup(spec))) {
		snprintf(err, errsz, "out of memory");
		goto out;
	}
	while ((t = strsep(&rest, ","))) {
		char *colon = strrchr(t, ':');
		rd_kafka_resp_err_t e;
		long parts = 0;

		if (!colon || colon == t || colon - t > 249 ||
		    strspn(t, TOPIC_CHARS) != (size_t)(colon - t) ||
		    parse_int(colon + 1, 1, 10000, &parts) != 0) {
			snprintf(err, errsz, "cannot parse topic '%s': expected NAME:PARTITIONS",
				 t);
			goto out;
		}
		*colon = '\0';
		if (!mc)
			continue;
		if ((e = rd_kafka_mock_topic_create(mc, t, (int)parts, rf))) {
			snprintf(err, errsz, "cannot create topic '%s': %s", t,
				 rd_kafka_err2str(e));
			goto out;
		}
		klog("info", "created topic '%s' partitions=%ld replication=%d", t, parts, rf);
	}
	rc = 0;
out:
	free(copy);
	return rc;
}

/*
 * Listens on the unix socket at `path` with mode 0600. A stale socket left by
 * a killed instance is replaced; a live one (it accepts) is an error.
 */
static MUSTCHECK int
listen_control(const char *path, int *out, char *err, size_t errsz)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = -1, probe = -1, rc = -1;
	mode_t old;

	if (strlen(path) >= sizeof sa.sun_path) {
		snprintf(err, errsz, "socket path too long '%s'", path);
		goto out;
	}
	strcpy(sa.sun_path, path);
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
		snprintf(err, errsz, "control socket '%s' is in use", path);
		goto out;
	}
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errsz, "cannot create socket: %s", strerror(errno));
		goto out;
	}
	old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (rc != 0 || listen(fd, 16) != 0) {
		rc = -1;
		snprintf(err, errsz, "cannot listen on '%s': %s", path, strerror(errno));
		goto out;
	}
	*out = fd;
	fd = -1;
	rc = 0;
out:
	if (probe >= 0)
		close(probe);
	if (fd >= 0)
		close(fd);
	return rc;
}

static int
count_down(const struct kdev *k)
{
	int ndown = 0;

	for (int b = 1; b <= k->nbrokers; b++)
		ndown += k->down[b];
	return ndown;
}

/* Sets broker `id` (or all brokers when id is 0) up or down. */
static void
set_updown(struct kdev *k, int id, bool up, char *reply, size_t sz)
{
	for (int b = 1; b <= k->nbrokers; b++) {
		rd_kafka_resp_err_t e;

		if (id && b != id)
			continue;
		e = up ? rd_kafka_mock_broker_set_up(k->mc, b)
		       : rd_kafka_mock_broker_set_down(k->mc, b);
		if (e) {
			snprintf(reply, sz, "error cannot set broker '%d' %s: %s", b,
				 up ? "up" : "down", rd_kafka_err2str(e));
			return;
		}
		k->down[b] = !up;
	}
	snprintf(reply, sz, "ok down=%d", count_down(k));
}

static void
set_rtt(struct kdev *k, int ms, char *reply, size_t sz)
{
	for (int b = 1; b <= k->nbrokers; b++) {
		rd_kafka_resp_err_t e = rd_kafka_mock_broker_set_rtt(k->mc, b, ms);
		if (e) {
			snprintf(reply, sz, "error cannot set rtt on broker '%d': %s", b,
				 rd_kafka_err2str(e));
			return;
		}
	}
	k->rtt_ms = ms;
	snprintf(reply, sz, "ok rtt_ms=%d", ms);
}

/*
 * Control command handlers: argv[0] is the command name, the argument count is
 * checked by the table; each writes one reply line starting "ok" or "error".
 */
static void
cmd_ping(struct kdev *k, int argc, char **argv, char *reply, size_t sz)
{
	(void)k, (void)argc, (void)argv;
	snprintf(reply, sz, "ok pong");
}

static void
cmd_status(struct kdev *k, int argc, char **argv, char *reply, size_t sz)
{
	(void)argc, (void)argv;
	snprintf(reply, sz, "ok brokers=%d down=%d rtt_ms=%d bootstrap=%s", k->nbrokers,
		 count_down(k), k->rtt_ms, k->bootstraps);
}

/* down [ID], up [ID] */
static void
cmd_updown(struct kdev *k, int argc, char **argv, char *reply, size_t sz)
{
	long id = 0;

	if (argc == 2 && parse_int(argv[1], 1, k->nbrokers, &id) != 0) {
		snprintf(reply, sz, "error unknown broker '%s': expected 1..%d", argv[1],
			 k->nbrokers);
		return;
	}
	set_updown(k, (int)id, strcmp(argv[0], "up") == 0, reply, sz);
}

/* produce-errors N [CODE] */
static void
cmd_produce_errors(struct kdev *k, int argc, char **argv, char *reply, size_t sz)
{
	rd_kafka_resp_err_t code = RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT;
	rd_kafka_resp_err_t *errs = NULL;
	long n = 0;

	if (parse_int(argv[1], 1, MAX_PUSHED_ERRORS, &n) != 0) {
		snprintf(reply, sz, "error cannot parse count '%s': expected 1..%d", argv[1],
			 MAX_PUSHED_ERRORS);
		goto out;
	}
	if (argc == 3 && parse_err_code(argv[2], &code) != 0) {
		snprintf(reply, sz, "error unknown error code '%s'", argv[2]);
		goto out;
	}
	if (!(errs = calloc((size_t)n, sizeof *errs))) {
		snprintf(reply, sz, "error out of memory");
		goto out;
	}
	for (long i = 0; i < n; i++)
		errs[i] = code;
	/* The _array variant takes a runtime count; the varargs
	 * rd_kafka_mock_push_request_errors() needs cnt literal arguments. */
	rd_kafka_mock_push_request_errors_array(k->mc, API_KEY_PRODUCE, (size_t)n, errs);
	snprintf(reply, sz, "ok produce_errors=%ld code=%d name=%s", n, (int)code,
		 rd_kafka_err2name(code));
out:
	free(errs);
}

/* rtt MS */
static void
cmd_rtt(struct kdev *k, int argc, char **argv, char *reply, size_t sz)
{
	long ms = 0;

	(void)argc;
	if (parse_int(argv[1], 0, MAX_RTT_MS, &ms) != 0)
		snprintf(reply, sz, "error cannot parse rtt '%s': expected 0..%d ms", argv[1],
			 MAX_RTT_MS);
	else
		set_rtt(k, (int)ms, reply, sz);
}

static void
cmd_clear(struct kdev *k, int argc, char **argv, char *reply, size_t sz)
{
	(void)argc, (void)argv;
	rd_kafka_mock_clear_request_errors(k->mc, API_KEY_PRODUCE);
	set_updown(k, 0, true, reply, sz);
	if (strncmp(reply, "ok", 2) == 0)
		set_rtt(k, 0, reply, sz);
	if (strncmp(reply, "ok", 2) == 0)
		snprintf(reply, sz, "ok cleared");
}

static const struct command {
	const char *name;
	int min_args, max_args; /* not counting the name */
	void (*run)(struct kdev *k, int argc, char **argv, char *reply, size_t sz);
} commands[] = {
    {"ping", 0, 0, cmd_ping},
    {"status", 0, 0, cmd_status},
    {"down", 0, 1, cmd_updown},
    {"up", 0, 1, cmd_updown},
    {"produce-errors", 1, 2, cmd_produce_errors},
    {"rtt", 1, 1, cmd_rtt},
    {"clear", 0, 0, cmd_clear},
};

/* Splits `line` (modified in place) and runs it; writes the reply line. */
static void
run_command(struct kdev *k, char *line, char *reply, size_t sz)
{
	char *argv[4], *save = NULL;
	int argc = 0;

	for (char *t = strtok_r(line, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (argc == 4) {
			snprintf(reply, sz, "error too many arguments");
			return;
		}
		argv[argc++] = t;
	}
	if (argc == 0) {
		snprintf(reply, sz, "error empty command");
		return;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		const struct command *c = &commands[i];

		if (strcmp(argv[0], c->name) != 0)
			continue;
		if (argc - 1 < c->min_args || argc - 1 > c->max_args)
			snprintf(reply, sz, "error wrong number of arguments for '%s'", c->name);
		else
			c->run(k, argc, argv, reply, sz);
		return;
	}
	snprintf(reply, sz, "error unknown command '%s'", argv[0]);
}

static void
client_close(struct client *c)
{
	close(c->fd);
	c->fd = -1;
	c->len = 0;
}

/* Sends one reply line; a client that does not read its replies is dropped. */
static void
client_reply(struct client *c, const char *reply)
{
	char out[LINE_MAX_LEN + 8];
	int n = snprintf(out, sizeof out, "%s\n", reply);

	if (n >= (int)sizeof out)
		n = (int)sizeof out - 1, out[n - 1] = '\n';
	if (send(c->fd, out, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n)
		client_close(c);
}

/* Runs the command `line` (modified in place) for client `c`. */
static void
client_command(struct kdev *k, struct client *c, char *line)
{
	char reply[LINE_MAX_LEN], shown[LINE_MAX_LEN];
	size_t l = strlen(line);

	if (l && line[l - 1] == '\r')
		line[--l] = '\0';
	snprintf(shown, sizeof shown, "%s", line);
	run_command(k, line, reply, sizeof reply);
	if (strcmp(shown, "ping") != 0 && strcmp(shown, "status") != 0)
		klog(strncmp(reply, "ok", 2) == 0 ? "info" : "warn", "control '%s' -> %s", shown,
		     reply);
	client_reply(c, reply);
}

/* Reads what client `c` sent and answers every complete line. */
static void
client_read(struct kdev *k, struct client *c)
{
	ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
	char *nl;

	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) { /* EOF: an unterminated last line still counts */
		c->buf[c->len] = '\0';
		if (c->len)
			client_command(k, c, c->buf);
		if (c->fd >= 0)
			client_close(c);
		return;
	}
	c->len += (size_t)r;
	c->buf[c->len] = '\0';
	while (c->fd >= 0 && (nl = memchr(c->buf, '\n', c->len))) {
		size_t used = (size_t)(nl - c->buf) + 1;

		*nl = '\0';
		client_command(k, c, c->buf);
		if (c->fd < 0)
			return;
		memmove(c->buf, c->buf + used, c->len - used);
		c->len -= used;
	}
	if (c->len == sizeof c->buf - 1) {
		client_reply(c, "error line too long");
		if (c->fd >= 0)
			client_close(c);
	}
}

static void
accept_clients(struct kdev *k)
{
	int fd;

	while ((fd = accept4(k->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct client *slot = NULL;

		for (int i = 0; i < MAX_CLIENTS && !slot; i++)
			if (k->clients[i].fd < 0)
				slot = &k->clients[i];
		if (!slot) {
			struct client tmp = {.fd = fd};
			client_reply(&tmp, "error too many clients");
			if (tmp.fd >= 0)
				close(fd);
			continue;
		}
		slot->fd = fd;
		slot->len = 0;
	}
}

/* Serves the control socket until SIGTERM/SIGINT. */
static MUSTCHECK int
serve(struct kdev *k, char *err, size_t errsz)
{
	struct pollfd pfd[1 + MAX_CLIENTS];
	int who[1 + MAX_CLIENTS];

	while (!stop_requested) {
		nfds_t n = 1;

		pfd[0] = (struct pollfd){.fd = k->lfd, .events = POLLIN};
		for (int i = 0; i < MAX_CLIENTS; i++) {
			if (k->clients[i].fd < 0)
				continue;
			pfd[n] = (struct pollfd){.fd = k->clients[i].fd, .events = POLLIN};
			who[n++] = i;
		}
		if (poll(pfd, n, POLL_MS) < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errsz, "cannot poll: %s", strerror(errno));
			return -1;
		}
		rd_kafka_poll(k->rk, 0);
		for (nfds_t i = 1; i < n; i++)
			if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
				client_read(k, &k->clients[who[i]]);
		if (pfd[0].revents & POLLIN)
			accept_clients(k);
	}
	return 0;
}

/* Creates the handle that hosts the mock cluster, then the cluster. */
static MUSTCHECK int
cluster_new(struct kdev *k, char *err, size_t errsz)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	rd_kafka_conf_set_log_cb(conf, on_rdkafka_log);
	if (rd_kafka_conf_set(conf, "client.id", "kafka-dev", err, errsz) != RD_KAFKA_CONF_OK) {
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	/* rd_kafka_new() takes ownership of conf only on success. */
	if (!(k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errsz))) {
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	if (!(k->mc = rd_kafka_mock_cluster_new(k->rk, k->nbrokers))) {
		snprintf(err, errsz, "cannot create mock cluster of %d brokers", k->nbrokers);
		return -1;
	}
	k->bootstraps = rd_kafka_mock_cluster_bootstraps(k->mc);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {{"bootstrap-file", required_argument, NULL, 'b'},
					     {"control", required_argument, NULL, 'c'},
					     {"brokers", required_argument, NULL, 'n'},
					     {"topics", required_argument, NULL, 't'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	struct kdev k = {.nbrokers = 3, .lfd = -1};
	const char *topics = DEFAULT_TOPICS;
	struct sigaction sa = {.sa_handler = on_signal};
	char err[PATH_MAX + 256] = "";
	bool ready = false;
	long n = 0;
	int opt, rc = 1;

	for (int i = 0; i < MAX_CLIENTS; i++)
		k.clients[i].fd = -1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'b': k.bootstrap_file = optarg; break;
		case 'c': k.control_path = optarg; break;
		case 't': topics = optarg; break;
		case 'h': usage(stdout); return 0;
		case 'n':
			if (parse_int(optarg, 1, MAX_BROKERS, &n) == 0) {
				k.nbrokers = (int)n;
				break;
			}
			fprintf(stderr, "kafka-dev: cannot parse '--brokers': expected 1..%d\n",
				MAX_BROKERS);
			/* fall through */
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || !k.bootstrap_file || !k.control_path || !*k.bootstrap_file ||
	    !*k.control_path) {
		usage(stderr);
		return 2;
	}
	if (topics_apply(NULL, 0, topics, err, sizeof err) != 0) {
		fprintf(stderr, "kafka-dev: %s\n", err);
		usage(stderr);
		return 2;
	}

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* The socket first: it refuses to start a second instance. */
	if (listen_control(k.control_path, &k.lfd, err, sizeof err) != 0)
		goto out;
	unlink(k.bootstrap_file); /* a stale file would claim "ready" */
	if (cluster_new(&k, err, sizeof err) != 0 ||
	    topics_apply(k.mc, k.nbrokers < 3 ? k.nbrokers : 3, topics, err, sizeof err) != 0 ||
	    write_bootstrap(&k, err, sizeof err) != 0)
		goto out;
	ready = true;
	klog("info", "ready brokers=%d bootstrap=%s control=%s", k.nbrokers, k.bootstraps,
	     k.control_path);
	if (serve(&k, err, sizeof err) != 0)
		goto out;
	klog("info", "shutting down");
	rc = 0;
out:
	if (rc != 0)
		klog("error", "%s", err);
	if (ready)
		unlink(k.bootstrap_file);
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (k.clients[i].fd >= 0)
			close(k.clients[i].fd);
	if (k.lfd >= 0) {
		close(k.lfd);
		unlink(k.control_path);
	}
	if (k.mc)
		rd_kafka_mock_cluster_destroy(k.mc);
	if (k.rk)
		rd_kafka_destroy(k.rk);
	return rc;
}
