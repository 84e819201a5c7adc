/*
 * metrics_push: the snapshot-pushing thread; see metrics_push.h.
 */
#include "metrics_push.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "rconn.h"

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t tid;
	int running, stop;
	long period;
	struct rconn *rc;
	char key[256];
	char field[400];
	char process[32];
	char instance[300];
	double start_time;
} push = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* What each process counts: declared at start, so that counters show 0 before use. */
static const struct {
	const char *process;
	enum metric_id ids[8];
	size_t n;
} declared[] = {
    {"ingest",
     {M_HTTP_REQUESTS, M_HTTP_DURATION, M_EVENTS_RECEIVED, M_EVENTS_PRODUCED,
      M_KAFKA_DELIVERY_FAILURES, M_DEAD_LETTERS},
     6},
    {"sink",
     {M_SINK_BATCHES, M_SINK_ROWS_WRITTEN, M_SINK_DUPLICATES, M_DEAD_LETTERS, M_CONSUMER_LAG,
      M_WEBHOOK_TO_ROW},
     6},
    {"sender", {M_SENDER_ATTEMPTS, M_SENDER_RETRY_QUEUE_DEPTH, M_CONSUMER_LAG}, 3},
    {"query", {M_HTTP_REQUESTS, M_HTTP_DURATION, M_METRICS_STORE_UP}, 3},
};

/* Resident memory from /proc/self/statm (its second field, in pages); -1 if unknown. */
static double
rss_bytes(void)
{
	unsigned long size, resident;
	long page = sysconf(_SC_PAGESIZE);
	FILE *f = fopen("/proc/self/statm", "r");
	int n;

	if (f == NULL)
		return -1;
	n = fscanf(f, "%lu %lu", &size, &resident);
	fclose(f);
	return n == 2 && page > 0 ? (double)resident * (double)page : -1;
}

json_t *
metrics_push_snapshot(void)
{
	double rss = rss_bytes();
	json_t *snap;

	metric_gauge_set(metrics_family(M_PROCESS_START_TIME), push.start_time, NULL);
	if (rss >= 0)
		metric_gauge_set(metrics_family(M_PROCESS_RSS), rss, NULL);
	if ((snap = metric_registry_snapshot(metrics_global())) == NULL)
		return NULL;
	if (json_object_set_new(snap, "time", json_real(metrics_wall_now())) < 0 ||
	    json_object_set_new(snap, "push_seconds", json_integer(push.period)) < 0) {
		json_decref(snap);
		return NULL;
	}
	return snap;
}

static void
push_once(void)
{
	json_t *snap = metrics_push_snapshot();
	char *text = snap ? json_dumps(snap, JSON_COMPACT) : NULL;
	const char *argv[] = {"HSET", push.key, push.field, text};
	redisReply *r;

	json_decref(snap);
	if (text == NULL) {
		log_warnx("metrics: cannot make a snapshot: out of memory");
		return;
	}
	/* rconn logs once when Redis goes away and once when it is back */
	if ((r = rconn_command(push.rc, 4, argv, NULL)) != NULL)
		freeReplyObject(r);
	free(text);
}

static void *
push_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&push.mu);
	while (!push.stop) {
		struct timespec until;

		pthread_mutex_unlock(&push.mu);
		push_once();
		pthread_mutex_lock(&push.mu);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += push.period;
		while (!push.stop && pthread_cond_timedwait(&push.cv, &push.mu, &until) == 0)
			;
	}
	pthread_mutex_unlock(&push.mu);
	return NULL;
}

int
metrics_push_start(const struct config *cf, const char *process, char *err, size_t errlen)
{
	char host[256];
	sigset_t block, old;

	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(push.process, sizeof(push.process), "%s", process);
	snprintf(push.instance, sizeof(push.instance), "%s:%ld", host, (long)getpid());
	snprintf(push.field, sizeof(push.field), "%s@%s", push.process, push.instance);
	snprintf(push.key, sizeof(push.key), "%smetrics", cf->redis_prefix);
	push.start_time = metrics_wall_now();
	push.period = cf->metrics_push_seconds;
	metrics_family(M_PROCESS_START_TIME);
	metrics_family(M_PROCESS_RSS);
	for (size_t i = 0; i < sizeof(declared) / sizeof(declared[0]); i++)
		if (strcmp(declared[i].process, process) == 0)
			for (size_t k = 0; k < declared[i].n; k++)
				metrics_family(declared[i].ids[k]);
	if (push.period <= 0)
		return 0;
	if ((push.rc = rconn_new(cf->redis_url, err, errlen)) == NULL)
		return -1;
	push.stop = 0;
	/* signals go to the main thread only */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	errno = pthread_create(&push.tid, NULL, push_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (errno != 0) {
		snprintf(err, errlen, "cannot start the metrics thread: %s", strerror(errno));
		rconn_destroy(push.rc);
		push.rc = NULL;
		return -1;
	}
	push.running = 1;
	return 0;
}

void
metrics_push_stop(void)
{
	const char *argv[] = {"HDEL", push.key, push.field};
	redisReply *r;

	if (!push.running)
		return;
	pthread_mutex_lock(&push.mu);
	push.stop = 1;
	pthread_cond_signal(&push.cv);
	pthread_mutex_unlock(&push.mu);
	pthread_join(push.tid, NULL);
	push.running = 0;
	if ((r = rconn_command(push.rc, 3, argv, NULL)) != NULL)
		freeReplyObject(r);
	rconn_destroy(push.rc);
	push.rc = NULL;
}

const char *
metrics_push_process(void)
{
	return push.process;
}

const char *
metrics_push_instance(void)
{
	return push.instance;
}
