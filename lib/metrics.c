/*
 * metrics: the in-process registry and its JSON snapshot; see metrics.h.
 *
 * A family keeps its children in an array searched by a hash of the label values (a few
 * dozen children per family at most in practice); the family's mutex guards them.
 */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

const double metric_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
const size_t metric_nbuckets = sizeof(metric_buckets) / sizeof(metric_buckets[0]);

struct metric_child {
	uint64_t hash;
	char *values[METRIC_MAX_LABELS]; /* into one allocation, values[0] */
	double value;                    /* counter, gauge; histogram: sum */
	uint64_t count;                  /* histogram */
	uint64_t *buckets;               /* histogram: per bucket, metric_nbuckets */
};

struct metric_family {
	struct metric_family *next;
	char *name;
	char *help;
	enum metric_type type;
	size_t nlabels;
	char *labels[METRIC_MAX_LABELS];
	pthread_mutex_t mu;
	struct metric_child **children;
	size_t nchildren, cap;
	int overflow_warned;
};

struct metric_registry {
	pthread_mutex_t mu;
	struct metric_family *head, *tail;
};

static const char *const type_names[] = {"counter", "gauge", "histogram"};

static int
name_ok(const char *s)
{
	if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9'))
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_'))
			return 0;
	return 1;
}

struct metric_registry *
metric_registry_new(void)
{
	struct metric_registry *reg = calloc(1, sizeof(*reg));

	if (reg)
		pthread_mutex_init(&reg->mu, NULL);
	return reg;
}

static void
child_free(struct metric_child *c)
{
	if (c == NULL)
		return;
	free(c->values[0]);
	free(c->buckets);
	free(c);
}

static void
family_free(struct metric_family *f)
{
	for (size_t i = 0; i < f->nchildren; i++)
		child_free(f->children[i]);
	free(f->children);
	for (size_t i = 0; i < f->nlabels; i++)
		free(f->labels[i]);
	free(f->name);
	free(f->help);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

void
metric_registry_free(struct metric_registry *reg)
{
	struct metric_family *f, *next;

	if (reg == NULL)
		return;
	for (f = reg->head; f; f = next) {
		next = f->next;
		family_free(f);
	}
	pthread_mutex_destroy(&reg->mu);
	free(reg);
}

/* FNV-1a over the values, each followed by a 0 byte. */
static uint64_t
hash_values(const char *const *values, size_t n)
{
	uint64_t h = 14695981039346656037ULL;

	for (size_t i = 0; i < n; i++) {
		for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++)
			h = (h ^ *p) * 1099511628211ULL;
		h *= 1099511628211ULL;
	}
	return h;
}

/* With f->mu held: a new child for values; NULL when out of memory. */
static struct metric_child *
child_new(struct metric_family *f, const char *const *values, uint64_t hash)
{
	struct metric_child *c = calloc(1, sizeof(*c));
	size_t len = 0, off = 0;
	char *buf;

	if (c == NULL)
		return NULL;
	for (size_t i = 0; i < f->nlabels; i++)
		len += strlen(values[i]) + 1;
	if ((buf = malloc(len + 1)) == NULL)
		goto fail;
	c->values[0] = buf;
	for (size_t i = 0; i < f->nlabels; i++) {
		size_t l = strlen(values[i]) + 1;

		memcpy(buf + off, values[i], l);
		c->values[i] = buf + off;
		off += l;
	}
	if (f->type == METRIC_HISTOGRAM &&
	    (c->buckets = calloc(metric_nbuckets, sizeof(*c->buckets))) == NULL)
		goto fail;
	c->hash = hash;
	if (f->nchildren == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 8;
		struct metric_child **a = realloc(f->children, cap * sizeof(*a));

		if (a == NULL)
			goto fail;
		f->children = a;
		f->cap = cap;
	}
	f->children[f->nchildren++] = c;
	return c;
fail:
	child_free(c);
	return NULL;
}

/* With f->mu held: the child of values, made if need be; NULL when out of memory. */
static struct metric_child *
child_get(struct metric_family *f, const char *const *values)
{
	static const char *const other[METRIC_MAX_LABELS] = {"other", "other", "other", "other"};
	uint64_t h = hash_values(values, f->nlabels);

	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < f->nchildren; i++) {
			struct metric_child *c = f->children[i];
			size_t k = 0;

			if (c->hash != h)
				continue;
			while (k < f->nlabels && strcmp(c->values[k], values[k]) == 0)
				k++;
			if (k == f->nlabels)
				return c;
		}
		if (f->nchildren < METRIC_MAX_CHILDREN || pass == 1)
			return child_new(f, values, h);
		if (!f->overflow_warned++)
			log_warnx("metric %s: over %d label sets, the rest counted as \"other\"",
				  f->name, METRIC_MAX_CHILDREN);
		values = other;
		h = hash_values(values, f->nlabels);
	}
	return NULL;
}

struct metric_family *
metric_family_new(struct metric_registry *reg, const char *name, enum metric_type type,
		  const char *help, size_t nlabels, const char *const *labels)
{
	struct metric_family *f;

	if (reg == NULL || !name_ok(name) || nlabels > METRIC_MAX_LABELS)
		return NULL;
	for (size_t i = 0; i < nlabels; i++)
		if (!name_ok(labels[i]))
			return NULL;
	pthread_mutex_lock(&reg->mu);
	for (f = reg->head; f; f = f->next)
		if (strcmp(f->name, name) == 0)
			goto out;
	if ((f = calloc(1, sizeof(*f))) == NULL)
		goto out;
	f->type = type;
	f->nlabels = nlabels;
	pthread_mutex_init(&f->mu, NULL);
	f->name = strdup(name);
	f->help = strdup(help ? help : "");
	for (size_t i = 0; i < nlabels; i++)
		if (f->name && (f->labels[i] = strdup(labels[i])) == NULL)
			break;
	if (f->name == NULL || f->help == NULL || (nlabels && f->labels[nlabels - 1] == NULL)) {
		family_free(f);
		f = NULL;
		goto out;
	}
	/* A family without labels has its one child from the start: it shows as 0. */
	if (nlabels == 0 && child_get(f, NULL) == NULL) {
		family_free(f);
		f = NULL;
		goto out;
	}
	if (reg->tail)
		reg->tail->next = f;
	else
		reg->head = f;
	reg->tail = f;
out:
	pthread_mutex_unlock(&reg->mu);
	return f;
}

enum op { OP_ADD, OP_SET, OP_OBSERVE };

static void
update(struct metric_family *f, enum op op, double v, va_list ap)
{
	const char *values[METRIC_MAX_LABELS];
	struct metric_child *c;
	size_t n = 0;
	const char *s;

	while ((s = va_arg(ap, const char *)) != NULL) {
		if (n == f->nlabels) {
			n++;
			break;
		}
		values[n++] = s;
	}
	if (n != f->nlabels) {
		log_debug("metric %s: %zu label values given, %zu expected", f->name, n,
			  f->nlabels);
		return;
	}
	pthread_mutex_lock(&f->mu);
	if ((c = child_get(f, values)) != NULL) {
		switch (op) {
		case OP_ADD: c->value += v; break;
		case OP_SET: c->value = v; break;
		case OP_OBSERVE:
			c->value += v;
			c->count++;
			for (size_t i = 0; i < metric_nbuckets; i++) {
				if (v <= metric_buckets[i]) {
					c->buckets[i]++;
					break;
				}
			}
			break;
		}
	}
	pthread_mutex_unlock(&f->mu);
}

void
metric_counter_add(struct metric_family *f, double v, ...)
{
	va_list ap;

	if (f == NULL || f->type != METRIC_COUNTER || !(v >= 0))
		return;
	va_start(ap, v);
	update(f, OP_ADD, v, ap);
	va_end(ap);
}

void
metric_gauge_set(struct metric_family *f, double v, ...)
{
	va_list ap;

	if (f == NULL || f->type != METRIC_GAUGE)
		return;
	va_start(ap, v);
	update(f, OP_SET, v, ap);
	va_end(ap);
}

void
metric_histogram_observe(struct metric_family *f, double v, ...)
{
	va_list ap;

	if (f == NULL || f->type != METRIC_HISTOGRAM || isnan(v))
		return;
	va_start(ap, v);
	update(f, OP_OBSERVE, v, ap);
	va_end(ap);
}

/* With f->mu held. */
static json_t *
child_json(const struct metric_family *f, const struct metric_child *c)
{
	json_t *o = json_object(), *l = json_array(), *b;

	if (o == NULL || l == NULL)
		goto fail;
	for (size_t i = 0; i < f->nlabels; i++)
		if (json_array_append_new(l, json_string(c->values[i])) < 0)
			goto fail;
	if (json_object_set_new(o, "l", l) < 0) {
		l = NULL;
		goto fail;
	}
	l = NULL;
	if (f->type != METRIC_HISTOGRAM) {
		if (json_object_set_new(o, "v", json_real(c->value)) < 0)
			goto fail;
		return o;
	}
	if ((b = json_array()) == NULL || json_object_set_new(o, "b", b) < 0)
		goto fail;
	for (size_t i = 0; i < metric_nbuckets; i++)
		if (json_array_append_new(b, json_integer((json_int_t)c->buckets[i])) < 0)
			goto fail;
	if (json_object_set_new(o, "sum", json_real(c->value)) < 0 ||
	    json_object_set_new(o, "count", json_integer((json_int_t)c->count)) < 0)
		goto fail;
	return o;
fail:
	json_decref(l);
	json_decref(o);
	return NULL;
}

static json_t *
family_json(struct metric_family *f)
{
	json_t *o, *labels = json_array(), *samples = json_array();

	o = json_pack("{s:s, s:s, s:s, s:o, s:o}", "name", f->name, "type", type_names[f->type],
		      "help", f->help, "labels", labels, "samples", samples);
	if (o == NULL)
		return NULL;
	for (size_t i = 0; i < f->nlabels; i++)
		if (json_array_append_new(labels, json_string(f->labels[i])) < 0)
			goto fail;
	if (f->type == METRIC_HISTOGRAM) {
		json_t *b = json_array();

		if (json_object_set_new(o, "buckets", b) < 0)
			goto fail;
		for (size_t i = 0; i < metric_nbuckets; i++)
			if (json_array_append_new(b, json_real(metric_buckets[i])) < 0)
				goto fail;
	}
	pthread_mutex_lock(&f->mu);
	for (size_t i = 0; i < f->nchildren; i++) {
		if (json_array_append_new(samples, child_json(f, f->children[i])) < 0) {
			pthread_mutex_unlock(&f->mu);
			goto fail;
		}
	}
	pthread_mutex_unlock(&f->mu);
	return o;
fail:
	json_decref(o);
	return NULL;
}

json_t *
metric_registry_snapshot(struct metric_registry *reg)
{
	json_t *fams = json_array(), *o = json_pack("{s:o}", "families", fams);
	struct metric_family *f;

	if (o == NULL)
		return NULL;
	pthread_mutex_lock(&reg->mu);
	for (f = reg->head; f; f = f->next) {
		if (json_array_append_new(fams, family_json(f)) < 0) {
			json_decref(o);
			o = NULL;
			break;
		}
	}
	pthread_mutex_unlock(&reg->mu);
	return o;
}

/* The contract (metrics.md). */
static const struct {
	const char *name;
	enum metric_type type;
	const char *help;
	const char *labels[METRIC_MAX_LABELS];
	size_t nlabels;
} contract[M_NFAMILIES] = {
    [M_PROCESS_START_TIME] = {"mailpipe_process_start_time_seconds",
			      METRIC_GAUGE,
			      "Start time of the process since the Unix epoch in seconds.",
			      {NULL},
			      0},
    [M_PROCESS_RSS] = {"mailpipe_process_resident_memory_bytes",
		       METRIC_GAUGE,
		       "Resident memory size of the process in bytes.",
		       {NULL},
		       0},
    [M_HTTP_REQUESTS] = {"mailpipe_http_requests_total",
			 METRIC_COUNTER,
			 "HTTP requests answered, by route pattern, method and status.",
			 {"route", "method", "status"},
			 3},
    [M_HTTP_DURATION] = {"mailpipe_http_request_duration_seconds",
			 METRIC_HISTOGRAM,
			 "Time to answer an HTTP request, by route pattern.",
			 {"route"},
			 1},
    [M_EVENTS_RECEIVED] = {"mailpipe_events_received_total",
			   METRIC_COUNTER,
			   "Events received in verified Event Webhook batches.",
			   {NULL},
			   0},
    [M_EVENTS_PRODUCED] = {"mailpipe_events_produced_total",
			   METRIC_COUNTER,
			   "Kafka records acknowledged by Kafka, by topic.",
			   {"topic"},
			   1},
    [M_KAFKA_DELIVERY_FAILURES] = {"mailpipe_kafka_delivery_failures_total",
				   METRIC_COUNTER,
				   "Kafka records that could not be delivered, by topic.",
				   {"topic"},
				   1},
    [M_SINK_BATCHES] = {"mailpipe_sink_batches_total",
			METRIC_COUNTER,
			"Batches the sink wrote to PostgreSQL, by outcome.",
			{"outcome"},
			1},
    [M_SINK_ROWS_WRITTEN] = {"mailpipe_sink_rows_written_total",
			     METRIC_COUNTER,
			     "Event rows the sink inserted, by SendGrid event name.",
			     {"event"},
			     1},
    [M_SINK_DUPLICATES] =
	{"mailpipe_sink_duplicates_total",
	 METRIC_COUNTER,
	 "Events the sink did not write again: already written (Redis marker or the row's "
	 "unique key).",
	 {NULL},
	 0},
    [M_DEAD_LETTERS] = {"mailpipe_dead_letters_total",
			METRIC_COUNTER,
			"Events dead-lettered, by topic they went to.",
			{"topic"},
			1},
    [M_CONSUMER_LAG] =
	{"mailpipe_consumer_lag",
	 METRIC_GAUGE,
	 "Records of a partition the consumer group has not yet processed (end offset "
	 "minus the stored, else committed, offset).",
	 {"group", "topic", "partition"},
	 3},
    [M_WEBHOOK_TO_ROW] = {"mailpipe_webhook_to_row_seconds",
			  METRIC_HISTOGRAM,
			  "Time from the Kafka record's timestamp to the commit of its row.",
			  {NULL},
			  0},
    [M_SENDER_ATTEMPTS] = {"mailpipe_sender_attempts_total",
			   METRIC_COUNTER,
			   "Attempts to send a mail to SendGrid, by outcome.",
			   {"outcome"},
			   1},
    [M_SENDER_RETRY_QUEUE_DEPTH] = {"mailpipe_sender_retry_queue_depth",
				    METRIC_GAUGE,
				    "Mails waiting in the retry schedule.",
				    {NULL},
				    0},
    [M_METRICS_STORE_UP] = {"mailpipe_metrics_store_up",
			    METRIC_GAUGE,
			    "1 if the metric snapshots of other processes were read from Redis.",
			    {NULL},
			    0},
    [M_DEAD_LETTERS_PENDING] = {"mailpipe_dead_letters_pending",
				METRIC_GAUGE,
				"Rows of dead_letters neither replayed nor discarded, by the topic "
				"their record came from.",
				{"topic"},
				1},
    [M_DEAD_LETTERS_OLDEST_AGE] = {"mailpipe_dead_letters_oldest_pending_age_seconds",
				   METRIC_GAUGE,
				   "Age of the oldest pending dead letter, by topic (0: none).",
				   {"topic"},
				   1},
};

static struct metric_registry *global;
static struct metric_family *global_fams[M_NFAMILIES];
static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void
global_init(void)
{
	global = metric_registry_new();
}

struct metric_registry *
metrics_global(void)
{
	pthread_once(&global_once, global_init);
	return global;
}

struct metric_family *
metrics_family(enum metric_id id)
{
	struct metric_family *f;

	if ((unsigned)id >= M_NFAMILIES)
		return NULL;
	if ((f = __atomic_load_n(&global_fams[id], __ATOMIC_ACQUIRE)) != NULL)
		return f;
	/* declaring is idempotent by name: two threads racing here get the same family */
	f = metric_family_new(metrics_global(), contract[id].name, contract[id].type,
			      contract[id].help, contract[id].nlabels, contract[id].labels);
	__atomic_store_n(&global_fams[id], f, __ATOMIC_RELEASE);
	return f;
}

double
metrics_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double
metrics_wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
