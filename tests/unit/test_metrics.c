/*
 * Unit tests of lib/metrics (the registry and its snapshot) and lib/metrics_expo (merging
 * snapshots, the Prometheus text format, stale and malformed snapshots).
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "metrics_expo.h"
#include "unit.h"

#define NOW 1700000000.0

static const char *const route_labels[] = {"route", "method", "status"};
static const char *const no_labels[] = {NULL};

/* The sample of family name whose label values are a, b, c (NULL: fewer); NULL if none. */
static json_t *
sample_of(json_t *snap, const char *name, const char *a, const char *b)
{
	json_t *fams = json_object_get(snap, "families");

	for (size_t i = 0; i < json_array_size(fams); i++) {
		json_t *f = json_array_get(fams, i), *samples = json_object_get(f, "samples");

		if (strcmp(json_string_value(json_object_get(f, "name")), name) != 0)
			continue;
		for (size_t k = 0; k < json_array_size(samples); k++) {
			json_t *s = json_array_get(samples, k), *l = json_object_get(s, "l");

			if ((a == NULL ||
			     strcmp(json_string_value(json_array_get(l, 0)), a) == 0) &&
			    (b == NULL || strcmp(json_string_value(json_array_get(l, 1)), b) == 0))
				return s;
		}
	}
	return NULL;
}

static double
value_of(json_t *snap, const char *name, const char *a, const char *b)
{
	json_t *s = sample_of(snap, name, a, b);

	return s ? json_number_value(json_object_get(s, "v")) : NAN;
}

static void
test_registry(void)
{
	struct metric_registry *reg = metric_registry_new();
	struct metric_family *req, *up, *again, *bad;
	json_t *snap;

	req = metric_family_new(reg, "t_requests_total", METRIC_COUNTER, "Requests.", 3,
				route_labels);
	up = metric_family_new(reg, "t_up", METRIC_GAUGE, "Up.", 0, no_labels);
	again = metric_family_new(reg, "t_requests_total", METRIC_COUNTER, "x", 3, route_labels);
	bad = metric_family_new(reg, "t-bad", METRIC_COUNTER, "x", 0, no_labels);
	CHECK(req && up && again == req, "families declared; a second declaration is the first");
	CHECK(bad == NULL, "a bad metric name is refused");
	metric_counter_add(req, 1, "/a", "GET", "200", NULL);
	metric_counter_add(req, 2, "/a", "GET", "200", NULL);
	metric_counter_add(req, 1, "/b", "GET", "404", NULL);
	metric_counter_add(req, 5, "/a", "GET", NULL);             /* too few: ignored */
	metric_counter_add(req, 5, "/a", "GET", "200", "x", NULL); /* too many: ignored */
	metric_counter_add(req, -1, "/a", "GET", "200", NULL);     /* counters only go up */
	metric_gauge_set(req, 7, "/a", "GET", "200", NULL);        /* wrong type: ignored */
	metric_gauge_set(up, 3, NULL);
	metric_gauge_set(up, 1, NULL);
	snap = metric_registry_snapshot(reg);
	CHECK(snap != NULL, "snapshot made");
	CHECK(value_of(snap, "t_requests_total", "/a", "GET") == 3, "a child adds up");
	CHECK(value_of(snap, "t_requests_total", "/b", "GET") == 1, "another child of its own");
	CHECK(json_array_size(json_object_get(json_array_get(json_object_get(snap, "families"), 0),
					      "samples")) == 2,
	      "wrong label counts and types made no child");
	CHECK(value_of(snap, "t_up", NULL, NULL) == 1, "a gauge keeps the last value");
	json_decref(snap);
	metric_registry_free(reg);
}

static void
test_overflow(void)
{
	struct metric_registry *reg = metric_registry_new();
	const char *const labels[] = {"id"};
	struct metric_family *f =
	    metric_family_new(reg, "t_ids_total", METRIC_COUNTER, "Ids.", 1, labels);
	char id[32];
	json_t *snap, *samples;

	for (int i = 0; i < METRIC_MAX_CHILDREN + 50; i++) {
		snprintf(id, sizeof(id), "id%d", i);
		metric_counter_add(f, 1, id, NULL);
	}
	metric_counter_add(f, 1, "id0", NULL);
	snap = metric_registry_snapshot(reg);
	samples = json_object_get(json_array_get(json_object_get(snap, "families"), 0), "samples");
	CHECK(json_array_size(samples) == METRIC_MAX_CHILDREN + 1,
	      "children are bounded, plus one 'other'");
	CHECK(value_of(snap, "t_ids_total", "other", NULL) == 50,
	      "the overflow is counted as other");
	CHECK(value_of(snap, "t_ids_total", "id0", NULL) == 2, "existing children still count");
	json_decref(snap);
	metric_registry_free(reg);
}

struct hammer {
	struct metric_family *f;
	int n;
};

static void *
hammer_main(void *arg)
{
	struct hammer *h = arg;

	for (int i = 0; i < h->n; i++) {
		metric_counter_add(h->f, 1, i % 2 ? "odd" : "even", NULL);
	}
	return NULL;
}

static void
test_threads(void)
{
	struct metric_registry *reg = metric_registry_new();
	const char *const labels[] = {"kind"};
	struct hammer h = {
	    metric_family_new(reg, "t_hits_total", METRIC_COUNTER, "Hits.", 1, labels), 20000};
	pthread_t t[4];
	json_t *snap;

	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, hammer_main, &h);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	snap = metric_registry_snapshot(reg);
	CHECK(value_of(snap, "t_hits_total", "even", NULL) == 40000 &&
		  value_of(snap, "t_hits_total", "odd", NULL) == 40000,
	      "four threads counting at once lose nothing");
	json_decref(snap);
	metric_registry_free(reg);
}

static void
test_histogram_snapshot(void)
{
	struct metric_registry *reg = metric_registry_new();
	struct metric_family *h =
	    metric_family_new(reg, "t_seconds", METRIC_HISTOGRAM, "Seconds.", 0, no_labels);
	json_t *snap, *s, *b;

	metric_histogram_observe(h, 0.001, NULL); /* first bucket */
	metric_histogram_observe(h, 0.3, NULL);   /* le 0.5 */
	metric_histogram_observe(h, 0.5, NULL);   /* le 0.5: bounds are inclusive */
	metric_histogram_observe(h, 100, NULL);   /* only +Inf */
	snap = metric_registry_snapshot(reg);
	s = sample_of(snap, "t_seconds", NULL, NULL);
	b = json_object_get(s, "b");
	CHECK(json_array_size(b) == metric_nbuckets, "one count per bucket bound");
	CHECK(json_integer_value(json_array_get(b, 0)) == 1 &&
		  json_integer_value(json_array_get(b, 6)) == 2,
	      "observations land in their bucket");
	CHECK(json_integer_value(json_object_get(s, "count")) == 4, "count");
	CHECK(fabs(json_number_value(json_object_get(s, "sum")) - 100.801) < 1e-9, "sum");
	json_decref(snap);
	metric_registry_free(reg);
}

/* A snapshot as a process pushes it, taken at time t, with one counter and a histogram. */
static json_t *
pushed(double t, double requests, const char *route)
{
	struct metric_registry *reg = metric_registry_new();
	struct metric_family *req = metric_family_new(reg, "mailpipe_http_requests_total",
						      METRIC_COUNTER, "Requests.", 3, route_labels);
	const char *const rl[] = {"route"};
	struct metric_family *dur = metric_family_new(reg, "mailpipe_http_request_duration_seconds",
						      METRIC_HISTOGRAM, "Durations.", 1, rl);
	json_t *snap;

	metric_counter_add(req, requests, route, "GET", "200", NULL);
	metric_histogram_observe(dur, 0.02, route, NULL);
	metric_histogram_observe(dur, 0.2, route, NULL);
	snap = metric_registry_snapshot(reg);
	json_object_set_new(snap, "time", json_real(t));
	json_object_set_new(snap, "push_seconds", json_integer(5));
	metric_registry_free(reg);
	return snap;
}

static int
count_lines(const char *text, const char *prefix)
{
	int n = 0;
	size_t len = strlen(prefix);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, prefix, len) == 0)
			n++;
	return n;
}

static void
test_merge_and_render(void)
{
	struct metrics_expo *e = metrics_expo_new(NOW);
	json_t *a = pushed(NOW - 1, 3, "/v3/stats"), *b = pushed(NOW - 2, 4, "/metrics");
	char *text;
	size_t len;
	const char *first, *second, *other;

	CHECK(metrics_expo_add(e, "query@h1:10", a) == EXPO_FRESH, "first snapshot fresh");
	CHECK(metrics_expo_add(e, "ingest@h2:20", b) == EXPO_FRESH, "second snapshot fresh");
	text = metrics_expo_render(e, &len);
	CHECK(text != NULL && strlen(text) == len, "rendered");
	if (text == NULL)
		return;
	CHECK(count_lines(text, "# TYPE mailpipe_http_requests_total counter") == 1 &&
		  count_lines(text, "# HELP mailpipe_http_requests_total ") == 1,
	      "one HELP and one TYPE per merged family");
	CHECK(count_lines(text, "# TYPE mailpipe_http_request_duration_seconds histogram") == 1,
	      "histogram TYPE once");
	CHECK(strstr(text, "mailpipe_up{process=\"query\",instance=\"h1:10\"} 1\n") &&
		  strstr(text, "mailpipe_up{process=\"ingest\",instance=\"h2:20\"} 1\n"),
	      "mailpipe_up 1 for each fresh snapshot");
	first = strstr(text, "mailpipe_http_requests_total{process=\"query\",instance=\"h1:10\","
			     "route=\"/v3/stats\",method=\"GET\",status=\"200\"} 3\n");
	second = strstr(text, "mailpipe_http_requests_total{process=\"ingest\",instance=\"h2:20\","
			      "route=\"/metrics\",method=\"GET\",status=\"200\"} 4\n");
	other = strstr(text, "# TYPE mailpipe_http_request_duration_seconds");
	CHECK(first && second && other && first < second && second < other,
	      "samples of both snapshots, contiguous under their family");
	CHECK(strstr(text, "mailpipe_http_request_duration_seconds_bucket{process=\"query\","
			   "instance=\"h1:10\",route=\"/v3/stats\",le=\"0.01\"} 0\n") &&
		  strstr(text, "mailpipe_http_request_duration_seconds_bucket{process=\"query\","
			       "instance=\"h1:10\",route=\"/v3/stats\",le=\"0.025\"} 1\n") &&
		  strstr(text, "mailpipe_http_request_duration_seconds_bucket{process=\"query\","
			       "instance=\"h1:10\",route=\"/v3/stats\",le=\"0.25\"} 2\n") &&
		  strstr(text, "mailpipe_http_request_duration_seconds_bucket{process=\"query\","
			       "instance=\"h1:10\",route=\"/v3/stats\",le=\"60\"} 2\n"),
	      "buckets are cumulative");
	CHECK(strstr(text, "mailpipe_http_request_duration_seconds_bucket{process=\"query\","
			   "instance=\"h1:10\",route=\"/v3/stats\",le=\"+Inf\"} 2\n") &&
		  strstr(text, "mailpipe_http_request_duration_seconds_sum{process=\"query\","
			       "instance=\"h1:10\",route=\"/v3/stats\"} 0.22\n") &&
		  strstr(text, "mailpipe_http_request_duration_seconds_count{process=\"query\","
			       "instance=\"h1:10\",route=\"/v3/stats\"} 2\n"),
	      "+Inf bucket, _sum and _count");
	CHECK(count_lines(text, "mailpipe_http_request_duration_seconds_bucket{") ==
		  2 * ((int)metric_nbuckets + 1),
	      "every bucket of both snapshots");
	CHECK(text[len - 1] == '\n', "ends with a newline");
	free(text);
	json_decref(a);
	json_decref(b);
	metrics_expo_free(e);
}

static void
test_escaping(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	struct metrics_expo *e = metrics_expo_new(NOW);
	json_t *a = pushed(NOW, 1, "/a\"b\\c\nd");
	char *text;

	metrics_expo_escape(m, "plain \\ \" \n end");
	fclose(m);
	CHECK(buf && strcmp(buf, "plain \\\\ \\\" \\n end") == 0, "backslash, quote and newline");
	free(buf);
	metrics_expo_add(e, "query@h\"1:1", a);
	text = metrics_expo_render(e, &len);
	CHECK(text && strstr(text, "instance=\"h\\\"1:1\",route=\"/a\\\"b\\\\c\\nd\""),
	      "label values are escaped in the exposition");
	free(text);
	json_decref(a);
	metrics_expo_free(e);
}

static void
test_stale(void)
{
	struct metrics_expo *e = metrics_expo_new(NOW);
	json_t *fresh = pushed(NOW - 14, 1, "/fresh"), *stale = pushed(NOW - 16, 1, "/stale");
	json_t *old = pushed(NOW - 3601, 1, "/old");
	char *text;
	size_t len;

	CHECK(metrics_expo_add(e, "sink@h:1", fresh) == EXPO_FRESH, "14 s old with 5 s pushes");
	CHECK(metrics_expo_add(e, "sink@h:2", stale) == EXPO_STALE, "16 s old is stale");
	CHECK(metrics_expo_add(e, "sink@h:3", old) == EXPO_EXPIRED, "over an hour: expired");
	text = metrics_expo_render(e, &len);
	CHECK(text && strstr(text, "mailpipe_up{process=\"sink\",instance=\"h:2\"} 0\n"),
	      "stale snapshot: mailpipe_up 0");
	CHECK(text && strstr(text, "/stale") == NULL, "stale snapshot: no other sample");
	CHECK(text && strstr(text, "/fresh") != NULL, "fresh snapshot: its samples");
	CHECK(text && strstr(text, "h:3") == NULL, "expired snapshot: nothing");
	free(text);
	json_decref(fresh);
	json_decref(stale);
	json_decref(old);
	metrics_expo_free(e);
}

static void
test_malformed(void)
{
	static const char *const bad[] = {
	    "not json",
	    "[]",
	    "{\"families\":[]}",
	    "{\"time\":1700000000,\"families\":{}}",
	    "{\"time\":1700000000,\"families\":[{\"name\":\"x y\",\"type\":\"gauge\","
	    "\"help\":\"\",\"labels\":[],\"samples\":[]}]}",
	    "{\"time\":1700000000,\"families\":[{\"name\":\"x\",\"type\":\"summary\","
	    "\"help\":\"\",\"labels\":[],\"samples\":[]}]}",
	    "{\"time\":1700000000,\"families\":[{\"name\":\"x\",\"type\":\"gauge\","
	    "\"help\":\"\",\"labels\":[\"a\"],\"samples\":[{\"l\":[],\"v\":1}]}]}",
	    "{\"time\":1700000000,\"families\":[{\"name\":\"x\",\"type\":\"gauge\","
	    "\"help\":\"\",\"labels\":[\"process\"],\"samples\":[]}]}",
	    "{\"time\":1700000000,\"families\":[{\"name\":\"x\",\"type\":\"gauge\","
	    "\"help\":\"\",\"labels\":[],\"samples\":[{\"l\":[],\"v\":\"1\"}]}]}",
	    "{\"time\":1700000000,\"families\":[{\"name\":\"h\",\"type\":\"histogram\","
	    "\"help\":\"\",\"labels\":[],\"buckets\":[1,2],\"samples\":[{\"l\":[],\"b\":[1],"
	    "\"sum\":1,\"count\":1}]}]}",
	    "{\"time\":1700000000,\"families\":[{\"name\":\"h\",\"type\":\"histogram\","
	    "\"help\":\"\",\"labels\":[],\"buckets\":[2,1],\"samples\":[]}]}",
	};
	struct metrics_expo *e = metrics_expo_new(NOW);
	json_t *good = pushed(NOW, 2, "/good");
	char *text, *js;
	size_t len;
	int all = 1;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (metrics_expo_add_text(e, "sink@h:9", bad[i], strlen(bad[i])) !=
		    EXPO_MALFORMED) {
			unit_diag("accepted: %s", bad[i]);
			all = 0;
		}
	}
	CHECK(all, "every malformed snapshot is refused");
	js = json_dumps(good, JSON_COMPACT);
	CHECK(metrics_expo_add_text(e, "nofieldsep", js, strlen(js)) == EXPO_MALFORMED,
	      "a field without process@instance is refused");
	CHECK(metrics_expo_add_text(e, "ingest@h:8", js, strlen(js)) == EXPO_FRESH,
	      "a good snapshot from text");
	free(js);
	text = metrics_expo_render(e, &len);
	CHECK(text && strstr(text, "route=\"/good\"") && strstr(text, "h:9") == NULL,
	      "the scrape goes on without the malformed ones");
	free(text);
	json_decref(good);
	metrics_expo_free(e);
}

static void
test_type_conflict(void)
{
	struct metrics_expo *e = metrics_expo_new(NOW);
	json_t *a = pushed(NOW, 1, "/a");
	const char *g =
	    "{\"time\":1700000000,\"families\":[{\"name\":\"mailpipe_http_requests_total\","
	    "\"type\":\"gauge\",\"help\":\"\",\"labels\":[],\"samples\":[{\"l\":[],"
	    "\"v\":9}]}]}";
	char *text;
	size_t len;

	metrics_expo_add(e, "query@h:1", a);
	metrics_expo_add_text(e, "sink@h:2", g, strlen(g));
	text = metrics_expo_render(e, &len);
	CHECK(text && strstr(text, "instance=\"h:2\"} 9") == NULL &&
		  strstr(text, "mailpipe_up{process=\"sink\",instance=\"h:2\"} 1"),
	      "a family of another type is left out, its process still up");
	free(text);
	json_decref(a);
	metrics_expo_free(e);
}

static void
test_contract(void)
{
	struct metric_family *f = metrics_family(M_HTTP_REQUESTS);
	json_t *snap;

	CHECK(f != NULL && metrics_family(M_HTTP_REQUESTS) == f, "contract family, declared once");
	metric_counter_add(f, 1, "/healthz", "GET", "200", NULL);
	metric_counter_add(metrics_family(M_EVENTS_RECEIVED), 5, NULL);
	snap = metric_registry_snapshot(metrics_global());
	CHECK(value_of(snap, "mailpipe_http_requests_total", "/healthz", "GET") == 1 &&
		  value_of(snap, "mailpipe_events_received_total", NULL, NULL) == 5,
	      "the process-wide registry counts");
	CHECK(sample_of(snap, "mailpipe_sink_duplicates_total", NULL, NULL) == NULL,
	      "families not used are not declared");
	json_decref(snap);
}

int
main(void)
{
	test_registry();
	test_overflow();
	test_threads();
	test_histogram_snapshot();
	test_merge_and_render();
	test_escaping();
	test_stale();
	test_malformed();
	test_type_conflict();
	test_contract();
	return unit_done();
}
