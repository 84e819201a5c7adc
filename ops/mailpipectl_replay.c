/*
 * mailpipectl_replay.c: `mailpipectl replay --from ... [--to ...] [--group NAME]`, rebuild
 * PostgreSQL from Kafka: re-consumes kafka.events_topic and writes it through the sink's
 * own store (workers/sink_store.c, linked in), so each event goes in at most once whatever
 * is stored already: the guard table event_ids decides, and the rollups, message statuses,
 * blocks and suppressions follow only what is new.
 *
 * The range of each partition is fixed at start: from the earliest offset, the first
 * offset at or after a time (rd_kafka_offsets_for_times; a broker that cannot look up
 * times is scanned from the earliest offset, records older than the time skipped), or
 * explicit partition:offset pairs; up to the end offset captured at start, or the first
 * record at or after --to.  Records produced meanwhile are left to the sink.  Partitions
 * are assigned, not subscribed: the group (default mailpipe-replay-<unix time>) only
 * receives the offsets reached, committed at the end; the sink's group is not touched.
 *
 * Records that are no valid event become dead letters under their own coordinates, as in
 * the sink (ON CONFLICT DO NOTHING: a dead letter is recorded once).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "../workers/sink.h"
#include "config.h"
#include "kconf.h"
#include "log.h"
#include "mailpipectl.h"
#include "rconn.h"

#define BATCH 500
#define BATCH_MS 200
#define KAFKA_TIMEOUT_MS 10000
#define STALL_S 30    /* no record for this long while some are missing: give up */
#define WRITE_TRIES 5 /* store_write attempts per batch */
#define MAX_PARTS 1024

enum from_kind { FROM_EARLIEST, FROM_TIME, FROM_OFFSETS };

struct replay_opts {
	const char *db_url, *redis_url, *group, *from_s, *to_s;
	enum from_kind from;
	int64_t from_ms, to_ms; /* to_ms < 0: latest */
	char group_buf[64];
};

struct part {
	int32_t id;
	int64_t start, end, pos; /* [start, end); pos = next offset to read */
	int64_t skip_before_ms;  /* > 0: scanning for the first record at or after it */
	int64_t stop_at_ms;      /* > 0: the first record at or after it ends the range */
	int listed;              /* FROM_OFFSETS: the partition was named */
	int done;
	unsigned long long read, written, dups, dead;
};

struct run {
	const struct config *cf;
	const struct replay_opts *o;
	rd_kafka_t *rk;
	struct store *st;
	struct rconn *redis;
	struct part *parts;
	int nparts;
	/* one batch */
	rd_kafka_message_t *msgs[BATCH];
	json_t *docs[BATCH];
	struct sink_event ev[BATCH];
	struct sink_dead dead[BATCH];
	time_t next_progress;
};

static void
replay_usage(FILE *out)
{
	fputs(
	    "usage: mailpipectl replay --from FROM [--to TO] [--group NAME] [--database-url URL]\n"
	    "  re-consumes the events topic (kafka.events_topic) into PostgreSQL through the\n"
	    "  sink's own writer: events already stored count as duplicates and change nothing\n"
	    "  FROM: earliest | an ISO 8601 time (2026-11-22T10:00:00Z) or a time ago (2h, 7d)\n"
	    "        | PARTITION:OFFSET,... (only the partitions named)\n"
	    "  TO:   latest (the end offsets when the replay starts; the default) | a time\n"
	    "  --group: the consumer group the offsets reached are committed to\n"
	    "    (default mailpipe-replay-<unix time>; never the sink's group)\n"
	    "  kafka.brokers, database.url and redis.url come from the shared settings\n"
	    "  (MAILPIPE_CONFIG's file, MAILPIPE_* variables) unless given here\n",
	    out);
}

/* "P:OFF,P:OFF" into parts (matched by id once the partitions are known); -1 if malformed. */
static int
parse_offsets(const char *s, int32_t *ids, int64_t *offs, int *n)
{
	const char *p = s;
	char *end;

	*n = 0;
	while (*p) {
		long long id, off;

		if (*n >= MAX_PARTS || *p < '0' || *p > '9')
			return -1;
		errno = 0;
		id = strtoll(p, &end, 10);
		if (errno || *end != ':' || id > INT32_MAX)
			return -1;
		p = end + 1;
		if (*p < '0' || *p > '9')
			return -1;
		off = strtoll(p, &end, 10);
		if (errno || (*end != ',' && *end != '\0'))
			return -1;
		for (int i = 0; i < *n; i++)
			if (ids[i] == (int32_t)id)
				return -1;
		ids[*n] = (int32_t)id;
		offs[(*n)++] = off;
		p = *end == ',' ? end + 1 : end;
		if (*end == ',' && *p == '\0')
			return -1;
	}
	return *n > 0 ? 0 : -1;
}

static int
parse_opts(int argc, char **argv, struct replay_opts *o, int32_t *ids, int64_t *offs, int *noffs)
{
	static const struct option longopts[] = {
	    {"from", required_argument, NULL, 'f'},
	    {"to", required_argument, NULL, 't'},
	    {"group", required_argument, NULL, 'g'},
	    {"database-url", required_argument, NULL, 'd'},
	    {"redis-url", required_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	double t;
	int opt;

	memset(o, 0, sizeof(*o));
	o->to_ms = -1;
	*noffs = 0;
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f': o->from_s = optarg; break;
		case 't': o->to_s = optarg; break;
		case 'g':
			if (optarg[0] == '\0' || strlen(optarg) > 200) {
				mailpipectl_errx("invalid '--group': expected 1 to 200 characters");
				return -1;
			}
			o->group = optarg;
			break;
		case 'd': o->db_url = optarg; break;
		case 'r': o->redis_url = optarg; break;
		default:
			mailpipectl_help_or_bad_option("replay", NULL, opt, argv[optind - 1],
						       replay_usage);
			return -1;
		}
	}
	if (optind < argc) {
		mailpipectl_errx("replay: unexpected argument '%s'", argv[optind]);
		replay_usage(stderr);
		return -1;
	}
	if (o->from_s == NULL) {
		mailpipectl_errx("replay: '--from' is required (earliest, a time, or "
				 "PARTITION:OFFSET,...)");
		replay_usage(stderr);
		return -1;
	}
	if (strcmp(o->from_s, "earliest") == 0) {
		o->from = FROM_EARLIEST;
	} else if (mailpipectl_parse_time(o->from_s, 1, &t) == 0) {
		o->from = FROM_TIME;
		o->from_ms = (int64_t)llround(t * 1000);
	} else if (parse_offsets(o->from_s, ids, offs, noffs) == 0) {
		o->from = FROM_OFFSETS;
	} else {
		mailpipectl_errx("invalid '--from' '%s': expected earliest, an ISO 8601 time, a "
				 "time ago (2h, 7d) or PARTITION:OFFSET,... (each partition once)",
				 o->from_s);
		return -1;
	}
	if (o->to_s && strcmp(o->to_s, "latest") != 0) {
		if (mailpipectl_parse_time(o->to_s, 1, &t) < 0) {
			mailpipectl_errx("invalid '--to' '%s': expected latest, an ISO 8601 time "
					 "or a time ago (2h, 7d)",
					 o->to_s);
			return -1;
		}
		o->to_ms = (int64_t)llround(t * 1000);
		if (o->from == FROM_TIME && o->to_ms <= o->from_ms) {
			mailpipectl_errx("invalid time range: '--from' %s is not before '--to' %s",
					 o->from_s, o->to_s);
			return -1;
		}
	}
	if (o->group == NULL) {
		snprintf(o->group_buf, sizeof(o->group_buf), "mailpipe-replay-%lld",
			 (long long)time(NULL));
		o->group = o->group_buf;
	}
	return 0;
}

static rd_kafka_t *
consumer_new(const struct config *cf, const char *group, char *err, size_t errlen)
{
	rd_kafka_conf_t *conf = kconf_new(cf, err, errlen);
	rd_kafka_t *rk;
	char kerr[512];

	if (conf == NULL)
		return NULL;
	if (kconf_set(conf, "group.id", group, err, errlen) < 0 ||
	    kconf_set(conf, "enable.auto.commit", "false", err, errlen) < 0 ||
	    kconf_set(conf, "enable.auto.offset.store", "false", err, errlen) < 0 ||
	    kconf_set(conf, "enable.partition.eof", "true", err, errlen) < 0 ||
	    kconf_set(conf, "auto.offset.reset", "error", err, errlen) < 0) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	if ((rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, kerr, sizeof(kerr))) == NULL) {
		snprintf(err, errlen, "cannot create kafka consumer: %s", kerr);
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_poll_set_consumer(rk);
	return rk;
}

/* The topic's partitions into r->parts, with their watermarks as the first guess. */
static int
load_partitions(struct run *r, char *err, size_t errlen)
{
	const char *topic = r->cf->kafka_events_topic;
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(r->rk, topic, NULL);
	rd_kafka_resp_err_t e;
	int rc = -1;

	if (rkt == NULL) {
		snprintf(err, errlen, "cannot use topic '%s'", topic);
		return -1;
	}
	e = rd_kafka_metadata(r->rk, 0, rkt, &md, KAFKA_TIMEOUT_MS);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1 || md->topics[0].err) {
		snprintf(err, errlen, "cannot read the partitions of '%s': %s", topic,
			 rd_kafka_err2str(e                    ? e
					  : md->topic_cnt == 1 ? md->topics[0].err
							       : e));
		goto out;
	}
	r->nparts = md->topics[0].partition_cnt;
	if (r->nparts <= 0 || r->nparts > MAX_PARTS ||
	    (r->parts = calloc((size_t)r->nparts, sizeof(*r->parts))) == NULL) {
		snprintf(err, errlen, "topic '%s' has %d partitions", topic, r->nparts);
		goto out;
	}
	for (int i = 0; i < r->nparts; i++) {
		struct part *p = &r->parts[i];
		int64_t low, high;

		p->id = md->topics[0].partitions[i].id;
		e = rd_kafka_query_watermark_offsets(r->rk, topic, p->id, &low, &high,
						     KAFKA_TIMEOUT_MS);
		if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
			snprintf(err, errlen, "cannot read the offsets of '%s' partition %d: %s",
				 topic, (int)p->id, rd_kafka_err2str(e));
			goto out;
		}
		p->start = low;
		p->end = high;
	}
	rc = 0;
out:
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	return rc;
}

/*
 * The first offset at or after ms for each partition into offs; -1 when the broker cannot
 * say (then the caller scans).  An offset of -1 from the broker means "none": the end.
 */
static int
offsets_for_time(struct run *r, int64_t ms, int64_t *offs)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(r->nparts);
	rd_kafka_resp_err_t e;
	int rc = -1;

	for (int i = 0; i < r->nparts; i++)
		rd_kafka_topic_partition_list_add(l, r->cf->kafka_events_topic, r->parts[i].id)
		    ->offset = ms;
	e = rd_kafka_offsets_for_times(r->rk, l, KAFKA_TIMEOUT_MS);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		goto out;
	for (int i = 0; i < l->cnt; i++) {
		if (l->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR)
			goto out;
		for (int k = 0; k < r->nparts; k++)
			if (r->parts[k].id == l->elems[i].partition)
				offs[k] = l->elems[i].offset;
	}
	rc = 0;
out:
	if (rc < 0)
		fprintf(stderr,
			"mailpipectl: replay: cannot look offsets up by time (%s): reading the "
			"records' timestamps instead\n",
			rd_kafka_err2str(e            ? e
					 : l->cnt > 0 ? l->elems[0].err
						      : e));
	rd_kafka_topic_partition_list_destroy(l);
	return rc;
}

/*
 * Whether the broker really looks offsets up by time: asked for time 0, it must answer the
 * first offset of every partition that holds records (librdkafka's mock cluster, which
 * the dev stack runs, answers -1 for any time).  Asked once; -1 means scan instead.
 */
static int
times_work(struct run *r, int64_t *t)
{
	static int known, works;

	if (!known) {
		known = 1;
		works = offsets_for_time(r, 0, t) == 0;
		for (int i = 0; works && i < r->nparts; i++)
			if (r->parts[i].start < r->parts[i].end && t[i] != r->parts[i].start)
				works = 0;
		if (!works)
			fprintf(stderr,
				"mailpipectl: replay: the broker does not look offsets up "
				"by time: scanning the partitions from their earliest offset\n");
	}
	return works ? 0 : -1;
}

/* Fixes each partition's [start, end) from the options. */
static int
plan(struct run *r, const int32_t *ids, const int64_t *offs, int noffs, char *err, size_t errlen)
{
	const struct replay_opts *o = r->o;
	int64_t *t = calloc((size_t)r->nparts, sizeof(*t));
	int rc = -1;

	if (t == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (o->to_ms >= 0) {
		if (times_work(r, t) == 0 && offsets_for_time(r, o->to_ms, t) == 0) {
			for (int i = 0; i < r->nparts; i++)
				if (t[i] >= 0 && t[i] < r->parts[i].end)
					r->parts[i].end = t[i];
		} else {
			for (int i = 0; i < r->nparts; i++)
				r->parts[i].stop_at_ms = o->to_ms;
		}
	}
	if (o->from == FROM_TIME) {
		if (times_work(r, t) == 0 && offsets_for_time(r, o->from_ms, t) == 0) {
			for (int i = 0; i < r->nparts; i++)
				r->parts[i].start = t[i] < 0                   ? r->parts[i].end
						    : t[i] > r->parts[i].start ? t[i]
									       : r->parts[i].start;
		} else {
			for (int i = 0; i < r->nparts; i++)
				r->parts[i].skip_before_ms = o->from_ms;
		}
	} else if (o->from == FROM_OFFSETS) {
		for (int k = 0; k < noffs; k++) {
			struct part *p = NULL;

			for (int i = 0; i < r->nparts; i++)
				if (r->parts[i].id == ids[k])
					p = &r->parts[i];
			if (p == NULL) {
				snprintf(err, errlen, "'%s' has no partition %d (it has %d)",
					 r->cf->kafka_events_topic, (int)ids[k], r->nparts);
				goto out;
			}
			p->listed = 1;
			if (offs[k] < p->start)
				fprintf(stderr,
					"mailpipectl: replay: partition %d starts at offset %lld "
					"now (%lld is gone): from there\n",
					(int)p->id, (long long)p->start, (long long)offs[k]);
			else
				p->start = offs[k];
		}
		for (int i = 0; i < r->nparts; i++)
			if (!r->parts[i].listed)
				r->parts[i].start = r->parts[i].end;
	}
	for (int i = 0; i < r->nparts; i++) {
		struct part *p = &r->parts[i];

		if (p->start > p->end)
			p->start = p->end;
		p->pos = p->start;
		p->done = p->start >= p->end;
	}
	rc = 0;
out:
	free(t);
	return rc;
}

static int
assign(struct run *r, char *err, size_t errlen)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(r->nparts);
	rd_kafka_resp_err_t e;

	for (int i = 0; i < r->nparts; i++)
		if (!r->parts[i].done)
			rd_kafka_topic_partition_list_add(l, r->cf->kafka_events_topic,
							  r->parts[i].id)
			    ->offset = r->parts[i].start;
	e = rd_kafka_assign(r->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, errlen, "cannot assign the partitions: %s", rd_kafka_err2str(e));
		return -1;
	}
	return 0;
}

static struct part *
part_of(struct run *r, int32_t id)
{
	for (int i = 0; i < r->nparts; i++)
		if (r->parts[i].id == id)
			return &r->parts[i];
	return NULL;
}

static int
all_done(const struct run *r)
{
	for (int i = 0; i < r->nparts; i++)
		if (!r->parts[i].done)
			return 0;
	return 1;
}

static void
progress(struct run *r, int force)
{
	time_t now = time(NULL);
	int any = 0;

	if (!force && now < r->next_progress)
		return;
	r->next_progress = now + 1;
	fputs("replay:", stderr);
	for (int i = 0; i < r->nparts; i++) {
		const struct part *p = &r->parts[i];

		if (p->start >= p->end && p->read == 0)
			continue;
		fprintf(stderr, "%s p%d %lld/%lld read=%llu written=%llu duplicates=%llu dead=%llu",
			any ? ";" : "", (int)p->id, (long long)p->pos, (long long)p->end, p->read,
			p->written, p->dups, p->dead);
		any = 1;
	}
	fputs(any ? "\n" : " nothing to read\n", stderr);
}

/*
 * Writes the n messages of one partition (msgs[0..n)) like the sink: valid events through
 * store_write, the rest as dead letters.  -1 with err when the database kept refusing.
 */
static int
write_part(struct run *r, struct part *p, rd_kafka_message_t **msgs, size_t n, char *err,
	   size_t errlen)
{
	size_t nev = 0, ndead = 0, ndead0;
	struct store_result res;
	int rc = -1;

	/* only the events topic is read: no dead-letter topic */
	for (size_t i = 0; i < n; i++) {
		if ((r->docs[i] = sink_classify(msgs[i], NULL, &r->ev[nev], &r->dead[ndead])) ==
		    NULL)
			ndead++;
		else
			nev++;
	}
	ndead0 = ndead;
	for (int tries = 1;; tries++) {
		ndead = ndead0;
		if (store_write(r->st, r->ev, nev, r->dead, &ndead, BATCH, &res, err, errlen) == 0)
			break;
		if (tries == WRITE_TRIES)
			goto out;
		fprintf(stderr, "mailpipectl: replay: batch not written (try %d of %d): %s\n",
			tries, WRITE_TRIES, err);
		sleep((unsigned)tries);
	}
	if (sink_mirror_suppressions(r->st, r->redis, r->cf->redis_prefix) < 0)
		fprintf(stderr, "mailpipectl: replay: warning: suppressions not mirrored "
				"to redis (postgresql, which the sender reads, has them)\n");
	p->written += res.inserted;
	p->dups += res.duplicates;
	p->dead += ndead;
	rc = 0;
out:
	for (size_t i = 0; i < n; i++)
		json_decref(r->docs[i]);
	return rc;
}

/* Writes the batch msgs[0..n), partition by partition; -1 with err. */
static int
write_batch(struct run *r, size_t n, char *err, size_t errlen)
{
	rd_kafka_message_t *mine[BATCH];

	for (int i = 0; i < r->nparts; i++) {
		size_t k = 0;

		for (size_t j = 0; j < n; j++)
			if (r->msgs[j]->partition == r->parts[i].id)
				mine[k++] = r->msgs[j];
		if (k > 0 && write_part(r, &r->parts[i], mine, k, err, errlen) < 0)
			return -1;
	}
	return 0;
}

/*
 * Takes m into the batch, or not: records past the range end their partition, records
 * before --from's time (when scanning) are skipped.  Returns 1 when taken.
 */
static int
take(struct run *r, rd_kafka_message_t *m, size_t *n)
{
	struct part *p = part_of(r, m->partition);
	int64_t ts;

	if (p == NULL || p->done)
		return 0;
	if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
		if (m->offset >= p->end || p->pos >= p->end)
			p->done = 1;
		return 0;
	}
	if (m->offset >= p->end) {
		p->done = 1;
		return 0;
	}
	p->pos = m->offset + 1;
	ts = rd_kafka_message_timestamp(m, NULL);
	if (p->stop_at_ms > 0 && ts >= p->stop_at_ms) {
		p->done = 1;
		return 0;
	}
	if (p->pos >= p->end)
		p->done = 1;
	if (p->skip_before_ms > 0) {
		if (ts >= 0 && ts < p->skip_before_ms)
			return 0;
		p->skip_before_ms = 0; /* the first record at or after the time */
	}
	p->read++;
	r->msgs[(*n)++] = m;
	return 1;
}

/* Where to go on from after a failure: the --from value that resumes. */
static void
print_resume(const struct run *r)
{
	int any = 0;

	fputs("mailpipectl: replay: to resume: --from ", stderr);
	for (int i = 0; i < r->nparts; i++)
		if (!r->parts[i].done || r->parts[i].pos < r->parts[i].end) {
			fprintf(stderr, "%s%d:%lld", any ? "," : "", (int)r->parts[i].id,
				(long long)r->parts[i].pos);
			any = 1;
		}
	fputs(any ? "\n" : "(nothing left)\n", stderr);
}

static int
consume(struct run *r, char *err, size_t errlen)
{
	time_t last_record = time(NULL);

	while (!all_done(r)) {
		size_t n = 0;
		struct timespec t0, now;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		while (n < BATCH && !all_done(r)) {
			rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, 50);

			clock_gettime(CLOCK_MONOTONIC, &now);
			if (m != NULL) {
				if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
					snprintf(err, errlen, "cannot consume: %s",
						 rd_kafka_message_errstr(m));
					rd_kafka_message_destroy(m);
					if (rd_kafka_fatal_error(r->rk, NULL, 0) ||
					    time(NULL) - last_record > STALL_S)
						goto fail;
					fprintf(stderr, "mailpipectl: replay: %s\n", err);
					continue;
				}
				last_record = time(NULL);
				if (!take(r, m, &n))
					rd_kafka_message_destroy(m);
			}
			if ((now.tv_sec - t0.tv_sec) * 1000 +
				(now.tv_nsec - t0.tv_nsec) / 1000000 >=
			    BATCH_MS)
				break;
		}
		if (n == 0 && time(NULL) - last_record > STALL_S) {
			snprintf(err, errlen, "no record for %d s though some are missing",
				 STALL_S);
			goto fail;
		}
		int rc = n > 0 ? write_batch(r, n, err, errlen) : 0;
		for (size_t i = 0; i < n; i++)
			rd_kafka_message_destroy(r->msgs[i]);
		if (rc < 0)
			goto fail;
		progress(r, 0);
	}
	return 0;
fail:
	return -1;
}

/* Commits the offsets reached to the replay's group, for the record. */
static void
commit(struct run *r)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(r->nparts);
	rd_kafka_resp_err_t e;

	for (int i = 0; i < r->nparts; i++)
		if (r->parts[i].pos > r->parts[i].start)
			rd_kafka_topic_partition_list_add(l, r->cf->kafka_events_topic,
							  r->parts[i].id)
			    ->offset = r->parts[i].pos;
	if (l->cnt > 0 && (e = rd_kafka_commit(r->rk, l, 0)) != RD_KAFKA_RESP_ERR_NO_ERROR)
		fprintf(stderr, "mailpipectl: replay: warning: offsets not committed to '%s': %s\n",
			r->o->group, rd_kafka_err2str(e));
	rd_kafka_topic_partition_list_destroy(l);
}

int
mailpipectl_replay_cmd(int argc, char **argv)
{
	static int32_t ids[MAX_PARTS];
	static int64_t offs[MAX_PARTS];
	struct replay_opts o;
	struct config cf;
	struct run *r = NULL;
	char err[1024];
	int noffs, status = MAILPIPECTL_EXIT_FAIL;
	unsigned long long read = 0, written = 0, dups = 0, dead = 0;

	memset(&cf, 0, sizeof(cf));
	if (parse_opts(argc, argv, &o, ids, offs, &noffs) < 0)
		return MAILPIPECTL_EXIT_USAGE;
	/* the sink's writer logs: its warnings (dead letters) are worth seeing, not more */
	log_init("mailpipectl");
	log_set_level(LOG_WARN);
	if (config_load(&cf, NULL, err, sizeof(err)) < 0)
		goto fail;
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	r->cf = &cf;
	r->o = &o;
	if ((r->st = store_new(o.db_url ? o.db_url : cf.database_url)) == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	if ((r->redis = rconn_new(o.redis_url ? o.redis_url : cf.redis_url, err, sizeof(err))) ==
		NULL ||
	    (r->rk = consumer_new(&cf, o.group, err, sizeof(err))) == NULL ||
	    load_partitions(r, err, sizeof(err)) < 0 ||
	    plan(r, ids, offs, noffs, err, sizeof(err)) < 0)
		goto fail;
	/* fail early on a bad database url, before anything is read */
	if (store_maintain(r->st, err, sizeof(err)) < 0)
		goto fail;
	fprintf(stderr, "replay: topic %s as group %s:", cf.kafka_events_topic, o.group);
	for (int i = 0; i < r->nparts; i++)
		fprintf(stderr, " p%d [%lld, %lld)", (int)r->parts[i].id,
			(long long)r->parts[i].start, (long long)r->parts[i].end);
	fputc('\n', stderr);
	r->next_progress = time(NULL) + 1;
	if (assign(r, err, sizeof(err)) < 0)
		goto fail;
	if (consume(r, err, sizeof(err)) < 0) {
		progress(r, 1);
		print_resume(r);
		goto fail;
	}
	progress(r, 1);
	commit(r);
	for (int i = 0; i < r->nparts; i++) {
		read += r->parts[i].read;
		written += r->parts[i].written;
		dups += r->parts[i].dups;
		dead += r->parts[i].dead;
	}
	printf("replayed %llu records: %llu written, %llu duplicates, %llu dead letters\n", read,
	       written, dups, dead);
	status = MAILPIPECTL_EXIT_OK;
	goto out;
fail:
	mailpipectl_errx("replay: %s", err);
out:
	if (r) {
		if (r->rk) {
			rd_kafka_consumer_close(r->rk);
			rd_kafka_destroy(r->rk);
		}
		store_destroy(r->st);
		rconn_destroy(r->redis);
		free(r->parts);
		free(r);
	}
	config_release(&cf);
	return status;
}
