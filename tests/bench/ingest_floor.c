/*
 * ingest_floor: the least CPU one webhook event costs, measured with mailpipe's own code,
 * for make bench's ingest ceiling (tests/bench/bench.py).
 *
 *   ingest_floor REQFILE PUBLIC_KEY BROKERS SECONDS [BROKER_PID]
 *
 * REQFILE is a bench request file (one request a line: path, headers and body separated
 * by tabs); the first line's body, timestamp and signature are used.  Three steps, each
 * about SECONDS / 3, on one thread:
 *   verify   sig_verify() of the batch (what every request needs before anything else);
 *   parse    batch_parse(), then batch_event() and event_check() of every event;
 *   produce  every event of the batch to the broker, idempotent, acks=all, as ingest's
 *            producer does (lib/kpub.c), 64 batches in flight; the CPU of this process
 *            (librdkafka's threads included) and, given BROKER_PID, of the broker.
 * Prints one JSON line with the CPU microseconds of each step per event.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "config.h"
#include "event.h"
#include "kpub.h"
#include "sig.h"

#define IN_FLIGHT 64
#define TOPIC "bench.kafka-ref"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of pid in seconds, -1 when unknown. */
static double
proc_cpu_s(long pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	FILE *f;
	size_t n;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* after "(comm)": state is field 3; utime and stime are fields 14 and 15 */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Splits the first line of path into body, timestamp and signature (all malloc'ed). */
static int
read_request(const char *path, char **body, char **ts, char **sig)
{
	char *line = NULL, *field, *save = NULL;
	size_t cap = 0;
	FILE *f = fopen(path, "r");

	*body = *ts = *sig = NULL;
	if (f == NULL || getline(&line, &cap, f) < 0) {
		if (f)
			fclose(f);
		free(line);
		return -1;
	}
	fclose(f);
	line[strcspn(line, "\n")] = '\0';
	for (field = strtok_r(line, "\t", &save); field; field = strtok_r(NULL, "\t", &save)) {
		const char *colon = strchr(field, ':');

		if (strncmp(field, "X-Twilio-Email-Event-Webhook-Timestamp:", 39) == 0)
			*ts = strdup(colon + 2);
		else if (strncmp(field, "X-Twilio-Email-Event-Webhook-Signature:", 39) == 0)
			*sig = strdup(colon + 2);
		else if (field[0] == '[')
			*body = strdup(field);
	}
	free(line);
	return *body && *ts && *sig ? 0 : -1;
}

static size_t
parse_once(const char *body, size_t len)
{
	char err[256], field[32], why[256];
	struct batch b;
	size_t n;

	if (batch_parse(&b, body, len, err, sizeof(err), field, sizeof(field)) < 0) {
		fprintf(stderr, "ingest_floor: the body does not parse: %s\n", err);
		exit(1);
	}
	for (size_t i = 0; i < b.n; i++) {
		json_t *obj = batch_event(&b, i);
		struct event_info ev;
		const char *bad;

		if (obj == NULL || event_check(obj, &ev, why, sizeof(why), &bad) < 0) {
			fprintf(stderr, "ingest_floor: event %zu is not valid\n", i);
			exit(1);
		}
		json_decref(obj);
	}
	n = b.n;
	batch_release(&b);
	return n;
}

static double
produce(struct kpub *kp, const char *body, size_t len, double seconds, long *msgs)
{
	char err[512], field[32], why[256];
	double t0, c0;
	struct batch b;
	char **keys;

	if (batch_parse(&b, body, len, err, sizeof(err), field, sizeof(field)) < 0 ||
	    (keys = calloc(b.n, sizeof(*keys))) == NULL)
		exit(1);
	for (size_t i = 0; i < b.n; i++) { /* the keys first: parsing is measured apart */
		json_t *obj = batch_event(&b, i);
		struct event_info ev;
		const char *bad;

		if (obj == NULL || event_check(obj, &ev, why, sizeof(why), &bad) < 0 ||
		    (keys[i] = strndup(ev.key, ev.key_len)) == NULL)
			exit(1);
		json_decref(obj);
	}
	t0 = now_s();
	c0 = cpu_s();
	*msgs = 0;
	while (now_s() - t0 < seconds) {
		struct kpub_wait *w = kpub_wait_new();

		for (int k = 0; k < IN_FLIGHT; k++) {
			for (size_t i = 0; i < b.n; i++) {
				if (kpub_send(kp, w, TOPIC, keys[i], strlen(keys[i]),
					      b.items[i].raw, b.items[i].raw_len, NULL, 0, err,
					      sizeof(err)) < 0) {
					fprintf(stderr, "ingest_floor: %s\n", err);
					exit(1);
				}
				(*msgs)++;
			}
		}
		if (kpub_wait_done(w, 30000, err, sizeof(err)) < 0) {
			fprintf(stderr, "ingest_floor: %s\n", err);
			exit(1);
		}
		kpub_wait_release(w);
	}
	c0 = cpu_s() - c0;
	for (size_t i = 0; i < b.n; i++)
		free(keys[i]);
	free(keys);
	batch_release(&b);
	return c0;
}

int
main(int argc, char **argv)
{
	char *body, *ts, *sig, err[512];
	struct config cf;
	struct sig_key *key;
	struct kpub *kp;
	double third, t0, c0, verify_cpu, parse_cpu, produce_cpu, b0, b1;
	long verifies = 0, parses = 0, msgs = 0, broker = argc > 5 ? atol(argv[5]) : 0;
	size_t len, n = 0;

	if (argc < 5) {
		fprintf(stderr,
			"usage: ingest_floor REQFILE PUBLIC_KEY BROKERS SECONDS [BROKER_PID]\n");
		return 2;
	}
	third = atof(argv[4]) / 3;
	if (read_request(argv[1], &body, &ts, &sig) < 0) {
		fprintf(stderr, "ingest_floor: no signed request in %s\n", argv[1]);
		return 1;
	}
	len = strlen(body);
	if ((key = sig_key_new(argv[2], err, sizeof(err))) == NULL) {
		fprintf(stderr, "ingest_floor: %s\n", err);
		return 1;
	}
	if (config_load(&cf, NULL, err, sizeof(err)) < 0 ||
	    config_set(&cf, "kafka.brokers", argv[3], "argv", err, sizeof(err)) < 0 ||
	    (kp = kpub_new(&cf, 30000, err, sizeof(err))) == NULL) {
		fprintf(stderr, "ingest_floor: %s\n", err);
		return 1;
	}

	t0 = now_s();
	c0 = cpu_s();
	while (now_s() - t0 < third) {
		if (sig_verify(key, sig, ts, body, len, 0, 0, err, sizeof(err)) != SIG_OK) {
			fprintf(stderr, "ingest_floor: signature: %s\n", err);
			return 1;
		}
		verifies++;
	}
	verify_cpu = cpu_s() - c0;

	t0 = now_s();
	c0 = cpu_s();
	while (now_s() - t0 < third) {
		n = parse_once(body, len);
		parses++;
	}
	parse_cpu = cpu_s() - c0;

	b0 = proc_cpu_s(broker);
	produce_cpu = produce(kp, body, len, third, &msgs);
	b1 = proc_cpu_s(broker);

	printf("{\"events_per_batch\": %zu, \"verify_us_per_batch\": %.3f,"
	       " \"parse_us_per_event\": %.4f, \"produce_client_us_per_msg\": %.4f,"
	       " \"broker_us_per_msg\": %.4f, \"msgs\": %ld}\n",
	       n, verify_cpu / verifies * 1e6, parse_cpu / ((double)parses * n) * 1e6,
	       produce_cpu / msgs * 1e6, b0 >= 0 && b1 >= 0 ? (b1 - b0) / msgs * 1e6 : -1.0, msgs);
	kpub_destroy(kp, 5000);
	sig_key_destroy(key);
	config_release(&cf);
	free(body);
	free(ts);
	free(sig);
	return 0;
}
