/*
 * mailpipectl_dlq_replay.c: `mailpipectl dlq replay`: re-publishes dead letters to their
 * source topic (a *.dlq topic goes to the topic it is the dead-letter topic of) with the
 * idempotent producer, waits for every delivery report, and only then sets replayed_at, one
 * UPDATE per batch.  A second delivery changes nothing: the sink's guard table event_ids
 * takes an event once, the sender skips a message that is sent (or beyond).
 *
 * Events: the sink skips an event whose Redis marker <redis.prefix>ev:<sg_event_id> says it
 * is written.  A marker can outlive its row (rows deleted by hand, or set on a refused event
 * by a sink older than sql/014), so replay deletes the markers of the events it
 * re-publishes, and the guard table event_ids decides.
 *
 * Mail: the sender skips a message whose status is `failed`, so before its record goes
 * back to mail.requests a failed message is reset to a fresh start (status queued,
 * attempts 0, no next attempt; last_error is kept until a send clears it) and its Redis
 * state <redis.prefix>msg:<id> is deleted.  Only `failed` messages are reset: a message
 * that was sent meanwhile (an earlier replay) stays as it is and the record is a no-op.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis.h>
#include <jansson.h>

#include "config.h"
#include "event.h"
#include "kpub.h"
#include "mailpipectl.h"
#include "mailpipectl_dlq.h"
#include "rconn.h"

#define BATCH 500
#define DELIVERY_TIMEOUT_MS 30000L

/* replay's rows: by ids ($1, a JSON array) ... */
static const char pick_ids_sql[] =
    "SELECT id::text, coalesce(topic, ''), coalesce(payload, ''::bytea),"
    " (discarded_at IS NOT NULL)::text"
    " FROM dead_letters WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb)::bigint)"
    " ORDER BY dead_letters.id"; /* not the text column id */

/* ... or by the filters, pending only, a batch after id $6, at most $7 */
static const char pick_filter_sql[] =
    "SELECT id::text, coalesce(topic, ''), coalesce(payload, ''::bytea), 'false'"
    " FROM dead_letters WHERE" FILTER_WHERE " AND id > $6::bigint"
    " ORDER BY dead_letters.id LIMIT $7::bigint";

/* The rule for a replayed mail: a failed message starts again, anything else is left. */
static const char reset_sql[] =
    "UPDATE messages SET status = 'queued', status_rank = mailpipe_status_rank('queued'),"
    " attempts = 0, next_attempt_at = NULL, updated_at = now()"
    " WHERE message_id IN (SELECT jsonb_array_elements_text($1::jsonb)) AND status = 'failed'"
    " RETURNING message_id, (now() - created_at > $2::bigint * interval '1 second')::text";

static const char mark_sql[] =
    "UPDATE dead_letters SET replayed_at = now(), replay_count = replay_count + 1"
    " WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb)::bigint)";

struct replay {
	const struct dlq_opts *o;
	const struct config *cf;
	PGconn *conn;
	struct kpub *kp;
	struct rconn *redis;
	unsigned long long done, reset, skipped, total;
	time_t next_progress;
};

/* The topic a dead letter of topic goes back to, or NULL. */
static const char *
source_topic(const struct config *cf, const char *topic, int *is_mail)
{
	*is_mail = 0;
	if (strcmp(topic, cf->kafka_events_topic) == 0 ||
	    strcmp(topic, cf->kafka_events_dlq_topic) == 0)
		return cf->kafka_events_topic;
	if (strcmp(topic, cf->kafka_mail_topic) == 0 ||
	    strcmp(topic, cf->kafka_mail_dlq_topic) == 0) {
		*is_mail = 1;
		return cf->kafka_mail_topic;
	}
	return NULL;
}

/* One row of a batch, ready to go. */
struct item {
	const char *id, *target;
	const char *payload;
	size_t len;
	json_t *doc;     /* the payload parsed (keeps key alive), or NULL */
	const char *key; /* borrowed from doc, or NULL */
	size_t keylen;
	const char *event_id; /* a valid event's sg_event_id, borrowed from doc */
	int is_mail;
};

/* Fills it from row i of res; 0, or -1 when the row cannot be replayed (printed). */
static int
prepare(struct replay *rp, PGresult *res, int i, struct item *it)
{
	const char *topic = PQgetvalue(res, i, 1);
	struct event_info info;
	const char *field;
	char why[256];
	json_t *v;

	memset(it, 0, sizeof(*it));
	it->id = PQgetvalue(res, i, 0);
	it->payload = PQgetvalue(res, i, 2);
	it->len = (size_t)PQgetlength(res, i, 2);
	if ((it->target = source_topic(rp->cf, topic, &it->is_mail)) == NULL) {
		mailpipectl_errx("dead letter %s: cannot replay topic '%s': not one of mailpipe's "
				 "topics (skipped)",
				 it->id, topic);
		return -1;
	}
	it->doc = json_loadb(it->payload, it->len, 0, NULL);
	if (it->is_mail) {
		v = json_object_get(it->doc, "message_id");
		if (!json_is_string(v) || json_string_length(v) == 0) {
			mailpipectl_errx("dead letter %s: the mail has no 'message_id' (skipped)",
					 it->id);
			return -1;
		}
		it->key = json_string_value(v);
		it->keylen = json_string_length(v);
	} else if (it->doc && json_is_object(it->doc) &&
		   event_check(it->doc, &info, why, sizeof(why), &field) == 0) {
		/* the key ingest gives it: the message's events stay on one partition */
		it->key = info.key;
		it->keylen = info.key_len;
		it->event_id = info.sg_event_id;
	}
	return 0;
}

/* DEL key on Redis; -1 when Redis cannot be reached. */
static int
del_key(struct replay *rp, const char *key)
{
	const char *argv[2] = {"DEL", key};
	redisReply *r = rconn_command(rp->redis, 2, argv, NULL);

	if (r == NULL)
		return -1;
	freeReplyObject(r);
	return 0;
}

/* Resets the failed messages among the batch's mails (see the header comment). */
static int
reset_mails(struct replay *rp, struct item *items, size_t n, char *err, size_t errlen)
{
	json_t *mids = json_array();
	char *mids_s = NULL, age_s[24], key[512];
	const char *params[2];
	PGresult *res = NULL;
	int rc = -1, any = 0;

	if (mids == NULL)
		goto oom;
	for (size_t i = 0; i < n; i++)
		if (items[i].is_mail) {
			any = 1;
			if (json_array_append_new(mids, json_string(items[i].key)) < 0)
				goto oom;
		}
	if (!any) {
		rc = 0;
		goto out;
	}
	if ((mids_s = json_dumps(mids, JSON_COMPACT)) == NULL)
		goto oom;
	snprintf(age_s, sizeof(age_s), "%ld", rp->cf->sender_max_age_seconds);
	params[0] = mids_s;
	params[1] = age_s;
	if ((res = mailpipectl_db_exec(rp->conn, reset_sql, 2, params, 0, PGRES_TUPLES_OK, err,
				       errlen, "cannot reset the failed messages")) == NULL)
		goto out;
	for (int i = 0; i < PQntuples(res); i++) {
		const char *mid = PQgetvalue(res, i, 0);

		rp->reset++;
		if (strcmp(PQgetvalue(res, i, 1), "true") == 0)
			mailpipectl_errx("warning: message %s is older than sender.max_age_seconds "
					 "(%ld): the sender will fail it again",
					 mid, rp->cf->sender_max_age_seconds);
		snprintf(key, sizeof(key), "%smsg:%s", rp->cf->redis_prefix, mid);
		if (del_key(rp, key) < 0)
			mailpipectl_errx("warning: cannot delete the redis key '%s' (the sender "
					 "does not need it gone: postgresql decides)",
					 key);
	}
	rc = 0;
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
out:
	free(mids_s);
	json_decref(mids);
	PQclear(res);
	return rc;
}

/*
 * Deletes the sink's "already written" markers <redis.prefix>ev:<sg_event_id> of the
 * batch's events (see the header comment).  Without a marker the sink asks PostgreSQL,
 * whose guard table event_ids keeps a stored event from going in twice.
 */
static void
unmark_events(struct replay *rp, const struct item *items, size_t n)
{
	char key[1024];

	for (size_t i = 0; i < n; i++) {
		if (items[i].event_id == NULL)
			continue;
		snprintf(key, sizeof(key), "%sev:%s", rp->cf->redis_prefix, items[i].event_id);
		if (del_key(rp, key) < 0)
			mailpipectl_errx("warning: cannot delete the redis marker '%s': the sink "
					 "may skip that event until the marker expires",
					 key);
	}
}

/* Publishes the batch, waits for Kafka, then marks it replayed. */
static int
publish(struct replay *rp, struct item *items, size_t n, char *err, size_t errlen)
{
	struct kpub_wait *w = NULL;
	json_t *ids = json_array();
	char *ids_s = NULL, why[512];
	const char *params[1];
	int rc = -1;

	if (ids == NULL || (w = kpub_wait_new()) == NULL)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		struct kpub_header hdr[] = {{"mailpipe_replay_of", items[i].id}};

		if (kpub_send(rp->kp, w, items[i].target, items[i].key, items[i].keylen,
			      items[i].payload, items[i].len, hdr, 1, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "cannot publish dead letter %s: %s", items[i].id,
				 why);
			goto out;
		}
		if (json_array_append_new(ids, json_integer(atoll(items[i].id))) < 0)
			goto oom;
	}
	if (kpub_wait_done(w, DELIVERY_TIMEOUT_MS, why, sizeof(why)) < 0) {
		snprintf(err, errlen,
			 "kafka did not acknowledge the batch (its dead letters stay "
			 "pending): %s",
			 why);
		goto out;
	}
	if ((ids_s = json_dumps(ids, JSON_COMPACT)) == NULL)
		goto oom;
	params[0] = ids_s;
	if (mailpipectl_db_command(rp->conn, mark_sql, 1, params, NULL, err, errlen,
				   "replayed, but cannot mark them replayed (a replay again is a "
				   "no-op)") < 0)
		goto out;
	rp->done += n;
	rc = 0;
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
out:
	free(ids_s);
	json_decref(ids);
	if (w)
		kpub_wait_release(w);
	return rc;
}

/* A line on stderr at most every second while a long replay runs. */
static void
progress(struct replay *rp)
{
	time_t now = time(NULL);

	if (now < rp->next_progress)
		return;
	rp->next_progress = now + 1;
	fprintf(stderr, "dlq replay: %llu of %llu replayed so far, %llu skipped\n", rp->done,
		rp->total, rp->skipped);
}

/* One batch of picked rows (res): prepare, reset, publish, mark.  -1 with err. */
static int
replay_batch(struct replay *rp, PGresult *res, char *err, size_t errlen)
{
	int n = PQntuples(res), rc = -1;
	struct item *items = calloc((size_t)n + 1, sizeof(*items));
	size_t k = 0;

	if (items == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rp->total += (unsigned long long)n;
	for (int i = 0; i < n; i++) {
		if (prepare(rp, res, i, &items[k]) < 0) {
			json_decref(items[k].doc);
			rp->skipped++;
			continue;
		}
		if (rp->o->dry_run)
			printf("would replay dead letter %s: %s -> %s%s%s\n", items[k].id,
			       PQgetvalue(res, i, 1), items[k].target,
			       items[k].is_mail ? ", message " : "",
			       items[k].is_mail ? items[k].key : "");
		k++;
	}
	if (rp->o->dry_run) {
		rp->done += k;
		rc = 0;
		goto out;
	}
	if (k > 0 && reset_mails(rp, items, k, err, errlen) < 0)
		goto out;
	unmark_events(rp, items, k);
	if (k > 0 && publish(rp, items, k, err, errlen) < 0)
		goto out;
	rc = 0;
out:
	for (size_t i = 0; i < k; i++)
		json_decref(items[i].doc);
	free(items);
	progress(rp);
	return rc;
}

static PGresult *
pick(struct replay *rp, const char *sql, int nparams, const char *const *params, char *err,
     size_t errlen)
{
	return mailpipectl_db_exec(rp->conn, sql, nparams, params, 1, PGRES_TUPLES_OK, err, errlen,
				   "cannot read dead letters");
}

/* By ids: every one must exist and not be discarded, else nothing is replayed. */
static int
replay_ids(struct replay *rp, json_t *ids, char *err, size_t errlen)
{
	char *ids_s = json_dumps(ids, JSON_COMPACT);
	const char *params[1] = {ids_s};
	PGresult *res = NULL;
	int rc = -1, bad = 0;

	if (ids_s == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if ((res = pick(rp, pick_ids_sql, 1, params, err, errlen)) == NULL)
		goto out;
	for (size_t i = 0; i < json_array_size(ids); i++) {
		long long want = json_integer_value(json_array_get(ids, i));
		int found = 0;

		for (int r = 0; r < PQntuples(res); r++) {
			if (atoll(PQgetvalue(res, r, 0)) != want)
				continue;
			found = 1;
			if (strcmp(PQgetvalue(res, r, 3), "true") == 0) {
				mailpipectl_errx("dead letter %lld was discarded: not replaying it",
						 want);
				bad = 1;
			}
		}
		if (!found) {
			mailpipectl_errx("no dead letter %lld", want);
			bad = 1;
		}
	}
	if (bad) {
		snprintf(err, errlen, "nothing replayed");
		goto out;
	}
	rc = replay_batch(rp, res, err, errlen);
out:
	PQclear(res);
	free(ids_s);
	return rc;
}

/* By filters (or --all): pending rows, in batches, at most --limit. */
static int
replay_filtered(struct replay *rp, char *err, size_t errlen)
{
	const struct dlq_opts *o = rp->o;
	char after[24] = "0", lim[24];
	const char *params[7];
	unsigned long long left = o->limit > 0 ? (unsigned long long)o->limit : ~0ULL;
	PGresult *res = NULL;

	dlq_filter_params(o, 1, params);
	params[5] = after;
	params[6] = lim;
	while (left > 0) {
		snprintf(lim, sizeof(lim), "%llu", left < BATCH ? left : (unsigned long long)BATCH);
		if ((res = pick(rp, pick_filter_sql, 7, params, err, errlen)) == NULL)
			return -1;
		int n = PQntuples(res);
		if (n == 0)
			break;
		snprintf(after, sizeof(after), "%s", PQgetvalue(res, n - 1, 0));
		left -= (unsigned long long)n;
		if (replay_batch(rp, res, err, errlen) < 0) {
			PQclear(res);
			return -1;
		}
		PQclear(res);
		res = NULL;
		if (o->dry_run && n < BATCH)
			break;
	}
	PQclear(res);
	return 0;
}

int
dlq_replay_cmd(int argc, char **argv)
{
	struct dlq_opts o;
	struct config cf;
	struct replay rp = {0};
	json_t *ids = NULL;
	char err[1024];
	int status = MAILPIPECTL_EXIT_USAGE, rc;

	memset(&cf, 0, sizeof(cf));
	if (dlq_parse_opts(argc, argv, O_REPLAY, &o) < 0 || dlq_check_selection(&o, argc, argv) < 0)
		return MAILPIPECTL_EXIT_USAGE;
	if (optind < argc && (ids = dlq_parse_ids(argc, argv, "replay")) == NULL)
		goto out;
	status = MAILPIPECTL_EXIT_FAIL;
	rp.o = &o;
	rp.cf = &cf;
	rp.next_progress = time(NULL) + 1;
	if (config_load(&cf, NULL, err, sizeof(err)) < 0 ||
	    mailpipectl_db_connect(o.db_url ? o.db_url : cf.database_url, &rp.conn, err,
				   sizeof(err)) < 0)
		goto fail;
	if (!o.dry_run &&
	    ((rp.redis = rconn_new(o.redis_url ? o.redis_url : cf.redis_url, err, sizeof(err))) ==
		 NULL ||
	     (rp.kp = kpub_new(&cf, DELIVERY_TIMEOUT_MS - 5000, err, sizeof(err))) == NULL))
		goto fail;
	rc = ids ? replay_ids(&rp, ids, err, sizeof(err)) : replay_filtered(&rp, err, sizeof(err));
	if (o.dry_run)
		printf("would replay %llu dead letter%s, %llu skipped\n", rp.done,
		       rp.done == 1 ? "" : "s", rp.skipped);
	else
		printf("replayed %llu dead letter%s (%llu failed mail%s reset), %llu skipped\n",
		       rp.done, rp.done == 1 ? "" : "s", rp.reset, rp.reset == 1 ? "" : "s",
		       rp.skipped);
	if (rc < 0)
		goto fail;
	status = rp.skipped > 0 ? MAILPIPECTL_EXIT_FAIL : MAILPIPECTL_EXIT_OK;
	goto out;
fail:
	mailpipectl_errx("%s", err);
out:
	if (rp.kp)
		kpub_destroy(rp.kp, 5000);
	rconn_destroy(rp.redis);
	PQfinish(rp.conn);
	json_decref(ids);
	config_release(&cf);
	return status;
}
