/*
 * metrics: a thread-safe in-process registry of counters, gauges and histograms with
 * labels, and its snapshot as JSON (pushed to Redis by metrics_push, rendered in the
 * Prometheus text format by metrics_expo).
 *
 * A family is declared once with its label names; a child (one set of label values) is
 * made on first use and lives as long as its registry.  A family holds at most
 * METRIC_MAX_CHILDREN children; label values beyond that are counted in one child whose
 * every label value is "other".  Updating an existing child takes the family's mutex and
 * allocates nothing.
 *
 * Label values are passed after the value, in declared order, ending with NULL:
 *
 *   metric_counter_add(metrics_family(M_HTTP_REQUESTS), 1, "/v3/stats", "GET", "200", NULL);
 *
 * The contract's families (metrics.md) live in one process-wide registry; metrics_family(M_...)
 * declares one on first use, so a process shows only the families it touched.
 */
#ifndef MAILPIPE_METRICS_H
#define MAILPIPE_METRICS_H

#include <stddef.h>

#include <jansson.h>

#define METRIC_MAX_CHILDREN 1000
#define METRIC_MAX_LABELS 4

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

/* Histogram bucket upper bounds in seconds (the +Inf bucket is implied). */
extern const double metric_buckets[];
extern const size_t metric_nbuckets;

struct metric_registry;
struct metric_family;

struct metric_registry *metric_registry_new(void);
void metric_registry_free(struct metric_registry *reg);

/*
 * Declares a family (its name, type, help text and label names are copied); declaring a
 * name again returns the first declaration.  NULL on a bad name, too many labels or out
 * of memory.
 */
struct metric_family *metric_family_new(struct metric_registry *reg, const char *name,
					enum metric_type type, const char *help, size_t nlabels,
					const char *const *labels);

/*
 * Updates the child of the label values given (NULL-terminated, as many as the family
 * declared).  A NULL family, a wrong count of values or a wrong family type is ignored.
 */
void metric_counter_add(struct metric_family *f, double v, ...) __attribute__((sentinel));
void metric_gauge_set(struct metric_family *f, double v, ...) __attribute__((sentinel));
void metric_histogram_observe(struct metric_family *f, double v, ...) __attribute__((sentinel));

/*
 * The registry as JSON:
 *   {"families":[{"name":..,"type":"counter"|"gauge"|"histogram","help":..,
 *     "labels":[names],"buckets":[bounds] (histograms),
 *     "samples":[{"l":[values],"v":value} | {"l":[values],"b":[count per bucket],
 *                 "sum":s,"count":n}]}]}
 * Bucket counts are per bucket (not cumulative), one per bound; +Inf is "count".
 * NULL when out of memory.
 */
json_t *metric_registry_snapshot(struct metric_registry *reg);

/* The contract's families (see metrics.md), in the process-wide registry. */
enum metric_id {
	M_PROCESS_START_TIME,
	M_PROCESS_RSS,
	M_HTTP_REQUESTS,
	M_HTTP_DURATION,
	M_EVENTS_RECEIVED,
	M_EVENTS_PRODUCED,
	M_KAFKA_DELIVERY_FAILURES,
	M_SINK_BATCHES,
	M_SINK_ROWS_WRITTEN,
	M_SINK_DUPLICATES,
	M_DEAD_LETTERS,
	M_CONSUMER_LAG,
	M_WEBHOOK_TO_ROW,
	M_SENDER_ATTEMPTS,
	M_SENDER_RETRY_QUEUE_DEPTH,
	M_METRICS_STORE_UP,
	M_DEAD_LETTERS_PENDING,
	M_DEAD_LETTERS_OLDEST_AGE,
	M_NFAMILIES
};

/* The process-wide registry (made on first use). */
struct metric_registry *metrics_global(void);

/* A contract family of the process-wide registry, declared on first use; NULL only when
 * out of memory. */
struct metric_family *metrics_family(enum metric_id id);

/* Seconds on the monotonic clock, for durations. */
double metrics_now(void);

/* Seconds since the epoch on the wall clock, for timestamps. */
double metrics_wall_now(void);

#endif
