/*
 * sender_store: the sender's PostgreSQL side; see sender.h.
 *
 * Every write is one statement (autocommit), so each returns only once it is durable.
 * Status changes follow the precedence of mailpipe_status_rank(): a status only moves to an
 * equal or higher rank, so nothing the sink learnt from SendGrid's events is overwritten.
 * Attempts are claimed with a compare-and-swap on messages.attempts: two senders that both
 * think a message is due can never both call SendGrid for the same attempt.  A message's
 * Idempotency-Key binds to it through a unique index (017): a second message with a key
 * already bound is stored as its duplicate, failed, and never sent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgconn.h"
#include "sender.h"

struct sender_store {
	char *url;
	PGconn *conn;
	long idem_ttl_s; /* mail.idempotency_ttl_seconds: how long a key stays bound */
};

/* The columns struct sender_row is read from (load_sql's RETURNING and its SELECT). */
#define ROW_COLS                                                                                   \
	"status, status_rank, attempts,"                                                           \
	" (extract(epoch FROM next_attempt_at - now()) * 1000)::bigint,"                           \
	" (extract(epoch FROM now() - created_at) * 1000)::bigint,"                                \
	" (extract(epoch FROM created_at) * 1000)::bigint,"                                        \
	" api_key_id, request::text, last_error, sent_at IS NOT NULL"

static const char insert_sql[] =
    "WITH r AS (SELECT $2::jsonb AS j),"
    " ins AS ("
    "  INSERT INTO messages (message_id, api_key_id, from_email, to_emails, subject,"
    "    categories, request, created_at, idempotency_key, idempotency_body_sha256,"
    "    status, status_rank, last_error)"
    "  SELECT $1, $3::bigint, j->'from'->>'email',"
    "    ARRAY(SELECT e #>> '{}' FROM jsonb_path_query(j, 'lax $.personalizations[*].to[*].email') "
    "e),"
    "    coalesce(j->>'subject', j #>> '{personalizations,0,subject}'),"
    "    NULLIF(ARRAY(SELECT e #>> '{}' FROM jsonb_path_query(j, 'lax $.categories[*]') e), '{}'),"
    "    j, coalesce(to_timestamp($4::bigint / 1000.0), now()), $5, $6,"
    "    CASE WHEN $7::text IS NULL THEN 'queued' ELSE 'failed' END,"
    "    mailpipe_status_rank(CASE WHEN $7::text IS NULL THEN 'queued' ELSE 'failed' END), $7"
    "  FROM r"
    "  ON CONFLICT DO NOTHING"
    "  RETURNING " ROW_COLS ")"
    " SELECT * FROM ins"
    " UNION ALL"
    " SELECT " ROW_COLS " FROM messages"
    "  WHERE message_id = $1 AND NOT EXISTS (SELECT 1 FROM ins)";

/*
 * The message an Idempotency-Key is bound to, and whether the binding still holds for a
 * message received at $3 (epoch ms; NULL = now): made less than the key's TTL before it.
 */
static const char bound_sql[] =
    "SELECT message_id,"
    " created_at > coalesce(to_timestamp($3::bigint / 1000.0), now())"
    "   - $4::bigint * interval '1 second'"
    " FROM messages WHERE api_key_id = $1::bigint AND idempotency_key = $2";

/* A binding older than the TTL: the key is free again, as it would be in Redis. */
static const char unbind_sql[] =
    "UPDATE messages SET idempotency_key = NULL WHERE message_id = $1 AND idempotency_key = $2";

static const char select_sql[] = "SELECT " ROW_COLS " FROM messages WHERE message_id = $1";

static const char begin_sql[] =
    "UPDATE messages SET status = 'sending', status_rank = mailpipe_status_rank('sending'),"
    " attempts = attempts + 1, next_attempt_at = now() + $3::bigint * interval '1 millisecond',"
    " updated_at = now()"
    " WHERE message_id = $1 AND attempts = $2::int"
    " AND status_rank <= mailpipe_status_rank('sending')"
    " RETURNING attempts";

/* SendGrid's id and sent_at are facts even when events already moved the status on. */
static const char sent_sql[] =
    "UPDATE messages SET"
    " status = CASE WHEN status_rank <= mailpipe_status_rank('sent') THEN 'sent' ELSE status END,"
    " last_error = CASE WHEN status IN ('failed', 'suppressed') THEN last_error END,"
    " status_rank = greatest(status_rank, mailpipe_status_rank('sent')),"
    " sendgrid_message_id = coalesce($2, sendgrid_message_id),"
    " sent_at = coalesce(sent_at, CASE WHEN $3::bigint IS NULL THEN now() ELSE greatest("
    "   created_at, timestamptz 'epoch' + $3::bigint * interval '1 millisecond') END),"
    " next_attempt_at = NULL, updated_at = now()"
    " WHERE message_id = $1";

static const char retry_sql[] =
    "UPDATE messages SET status = 'retrying', status_rank = mailpipe_status_rank('retrying'),"
    " next_attempt_at = now() + $2::bigint * interval '1 millisecond', last_error = $3,"
    " updated_at = now()"
    " WHERE message_id = $1 AND status_rank <= mailpipe_status_rank('retrying')";

static const char ambiguous_sql[] =
    "UPDATE messages SET last_error = $2, updated_at = now()"
    " WHERE message_id = $1 AND status = 'sending'"
    " RETURNING (extract(epoch FROM next_attempt_at - now()) * 1000)::bigint";

static const char suppressed_sql[] =
    "UPDATE messages SET status = 'suppressed',"
    " status_rank = mailpipe_status_rank('suppressed'), last_error = $2,"
    " next_attempt_at = NULL, updated_at = now()"
    " WHERE message_id = $1 AND status_rank < mailpipe_status_rank('sent')";

static const char failed_sql[] =
    "WITH upd AS ("
    "  UPDATE messages SET status = 'failed', status_rank = mailpipe_status_rank('failed'),"
    "   last_error = $2, next_attempt_at = NULL, updated_at = now()"
    "  WHERE message_id = $1 AND status_rank < mailpipe_status_rank('sent')"
    "  RETURNING 1),"
    " dl AS ("
    "  INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, payload, error)"
    "  SELECT $3, $4::int, $5::bigint, $6::bytea, $2 FROM upd"
    "  ON CONFLICT (topic, kafka_partition, kafka_offset) DO NOTHING"
    "  RETURNING 1)"
    " SELECT (SELECT count(*) FROM upd), (SELECT count(*) FROM dl)";

static const char dead_sql[] =
    "INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, payload, error)"
    " VALUES ($1, $2::int, $3::bigint, $4::bytea, $5)"
    " ON CONFLICT (topic, kafka_partition, kafka_offset) DO NOTHING";

static const char suppressions_sql[] =
    "SELECT r.ord - 1 FROM jsonb_array_elements_text($1::jsonb) WITH ORDINALITY AS r(email, ord)"
    " WHERE EXISTS (SELECT 1 FROM suppressions s WHERE s.email = lower(r.email))";

/*
 * Events carry SendGrid's id as <X-Message-Id>.<filter>...: the first part of the earliest
 * one is the id SendGrid answered; the earliest event time is when it had the mail.
 */
static const char event_sql[] =
    "SELECT (array_agg(split_part(sg_message_id, '.', 1) ORDER BY event_time)"
    "   FILTER (WHERE split_part(sg_message_id, '.', 1) <> ''))[1],"
    " (extract(epoch FROM min(event_time)) * 1000)::bigint"
    " FROM events WHERE message_id = $1"
    " AND event_time >= timestamptz 'epoch' + $2::bigint * interval '1 millisecond'"
    "   - interval '1 day'";

/* Keyset over (next_attempt_at, message_id); each branch can use an index on its own. */
#define PENDING_WHERE                                                                              \
	" next_attempt_at IS NOT NULL AND (NOT $2::bool OR next_attempt_at <= now())"              \
	" AND (next_attempt_at, message_id) >"                                                     \
	"   (timestamptz 'epoch' + $3::bigint * interval '1 microsecond', $4::text)"
static const char pending_sql[] =
    "SELECT message_id, (extract(epoch FROM next_attempt_at - now()) * 1000)::bigint,"
    " (extract(epoch FROM next_attempt_at) * 1000000)::bigint"
    " FROM ("
    "  (SELECT message_id, next_attempt_at FROM messages WHERE status = 'retrying' "
    "AND" PENDING_WHERE " ORDER BY next_attempt_at, message_id LIMIT $5)"
    "  UNION ALL"
    "  (SELECT message_id, next_attempt_at FROM messages WHERE status = 'sending'"
    "   AND created_at > now() - $1::bigint * interval '1 second' AND" PENDING_WHERE
    "   ORDER BY next_attempt_at, message_id LIMIT $5)"
    " ) p ORDER BY next_attempt_at, message_id LIMIT $5";

struct sender_store *
sender_store_new(const char *url, long idem_ttl_s)
{
	struct sender_store *st = calloc(1, sizeof(*st));

	if (st == NULL || (st->url = strdup(url)) == NULL) {
		free(st);
		return NULL;
	}
	st->idem_ttl_s = idem_ttl_s;
	return st;
}

void
sender_store_destroy(struct sender_store *st)
{
	if (st == NULL)
		return;
	if (st->conn)
		PQfinish(st->conn);
	free(st->url);
	free(st);
}

void
sender_row_release(struct sender_row *row)
{
	free(row->request);
	free(row->last_error);
	row->request = row->last_error = NULL;
}

static int
ensure_conn(struct sender_store *st, char *err, size_t errlen)
{
	if (st->conn && PQstatus(st->conn) == CONNECTION_OK)
		return 0;
	if (st->conn)
		PQfinish(st->conn);
	if ((st->conn = pgconn_open(st->url, "mailpipe-sender", err, errlen)) == NULL)
		return -1;
	log_info("connected to postgresql");
	return 0;
}

/*
 * A copy of s that PostgreSQL's text accepts: bytes that are not valid UTF-8 become '?'.
 * Returns a new string (free it), or NULL when out of memory.
 */
static char *
clean_text(const char *s)
{
	size_t len = strlen(s);
	char *out = malloc(len + 1);
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	if (out == NULL)
		return NULL;
	while (i < len) {
		unsigned char c = p[i];
		size_t n = c < 0x80         ? 1
			   : (c >> 5) == 6  ? 2
			   : (c >> 4) == 14 ? 3
			   : (c >> 3) == 30 ? 4
					    : 0;
		int ok = n > 0 && i + n <= len && !(n == 2 && c < 0xc2);

		for (size_t k = 1; ok && k < n; k++)
			ok = (p[i + k] & 0xc0) == 0x80;
		if (ok && n == 3) {
			unsigned cp =
			    (c & 0x0fu) << 12 | (p[i + 1] & 0x3fu) << 6 | (p[i + 2] & 0x3fu);
			ok = cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff);
		} else if (ok && n == 4) {
			unsigned cp = (c & 0x07u) << 18 | (p[i + 1] & 0x3fu) << 12;
			ok = cp >= 0x10000 && cp <= 0x10ffff;
		}
		if (!ok) {
			out[i++] = '?';
			continue;
		}
		memcpy(out + i, p + i, n);
		i += n;
	}
	out[len] = '\0';
	return out;
}

/*
 * Runs sql with params; returns the result when it has status want, else NULL with err
 * (and *why when given).  A broken connection is dropped and reopened on the next call.
 */
static PGresult *
run(struct sender_store *st, const char *sql, int n, const char *const *vals, const int *lens,
    const int *fmts, ExecStatusType want, enum pg_failure *why, char *err, size_t errlen)
{
	PGresult *res;
	enum pg_failure w = PG_FAIL_CONNECTION;

	if (ensure_conn(st, err, errlen) < 0)
		goto fail;
	res = PQexecParams(st->conn, sql, n, NULL, vals, lens, fmts, 0);
	if (PQresultStatus(res) == want)
		return res;
	w = pgconn_classify(st->conn, res);
	pgconn_error(err, errlen, NULL, st->conn, res);
	PQclear(res);
	if (PQstatus(st->conn) != CONNECTION_OK) {
		PQfinish(st->conn);
		st->conn = NULL;
	}
fail:
	if (why)
		*why = w;
	return NULL;
}

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int
read_row(PGresult *res, struct sender_row *row)
{
	memset(row, 0, sizeof(*row));
	snprintf(row->status, sizeof(row->status), "%s", PQgetvalue(res, 0, 0));
	row->rank = atoi(PQgetvalue(res, 0, 1));
	row->attempts = atol(PQgetvalue(res, 0, 2));
	row->due_in_ms = PQgetisnull(res, 0, 3) ? SENDER_NO_DUE : atoll(PQgetvalue(res, 0, 3));
	row->age_ms = atoll(PQgetvalue(res, 0, 4));
	row->created_ms = atoll(PQgetvalue(res, 0, 5));
	row->has_api_key = !PQgetisnull(res, 0, 6);
	row->api_key_id = row->has_api_key ? atoll(PQgetvalue(res, 0, 6)) : 0;
	row->request = strdup(PQgetvalue(res, 0, 7));
	row->last_error = PQgetisnull(res, 0, 8) ? NULL : dup_or_null(PQgetvalue(res, 0, 8));
	row->has_sent_at = PQgetvalue(res, 0, 9)[0] == 't';
	if (row->request == NULL || (!PQgetisnull(res, 0, 8) && row->last_error == NULL)) {
		sender_row_release(row);
		return -1;
	}
	return 0;
}

/* Runs insert_sql for nw; dup_of: NULL, or the message a duplicate's key is bound to. */
static PGresult *
insert_new(struct sender_store *st, const struct sender_new *nw, const char *id, const char *dup_of,
	   enum pg_failure *why, char *err, size_t errlen)
{
	char key[24], recv[24], note[160];
	const char *vals[7] = {id, nw->request, NULL, NULL, NULL, nw->body_sha256, NULL};

	if (nw->has_api_key) {
		snprintf(key, sizeof(key), "%lld", (long long)nw->api_key_id);
		vals[2] = key;
	}
	if (nw->received_ms > 0) {
		snprintf(recv, sizeof(recv), "%lld", (long long)nw->received_ms);
		vals[3] = recv;
	}
	if (dup_of) {
		/* The key stays with the first message; this one is kept, failed, unsent. */
		snprintf(note, sizeof(note),
			 "duplicate of %s: its Idempotency-Key was already used, not sent", dup_of);
		vals[6] = note;
	} else {
		vals[4] = nw->idem_key;
	}
	return run(st, insert_sql, 7, vals, NULL, NULL, PGRES_TUPLES_OK, why, err, errlen);
}

/*
 * The insert of nw wrote nothing and found no row of id: its Idempotency-Key is bound to
 * another message (or id is being inserted concurrently).  A binding within the TTL makes
 * nw a duplicate, inserted failed; an older one is cleared and nw inserted as usual.
 * Returns the insert's result, or NULL with err (*why) to try again later.
 */
static PGresult *
insert_bound(struct sender_store *st, const struct sender_new *nw, const char *id,
	     enum pg_failure *why, char *err, size_t errlen)
{
	char key[24], recv[24], ttl[24], other[MSGID_LEN + 1];
	const char *vals[4] = {key, nw->idem_key, NULL, ttl};
	PGresult *res;
	int live;

	*why = PG_FAIL_OTHER;
	snprintf(key, sizeof(key), "%lld", (long long)nw->api_key_id);
	snprintf(ttl, sizeof(ttl), "%ld", st->idem_ttl_s);
	if (nw->received_ms > 0) {
		snprintf(recv, sizeof(recv), "%lld", (long long)nw->received_ms);
		vals[2] = recv;
	}
	if ((res = run(st, bound_sql, 4, vals, NULL, NULL, PGRES_TUPLES_OK, why, err, errlen)) ==
	    NULL)
		return NULL;
	if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), id) == 0) {
		PQclear(res);
		snprintf(err, errlen, "message '%s' is being inserted concurrently", id);
		return NULL;
	}
	snprintf(other, sizeof(other), "%s", PQgetvalue(res, 0, 0));
	live = PQgetvalue(res, 0, 1)[0] == 't';
	PQclear(res);
	if (live) {
		log_warnx("Idempotency-Key already bound to message %s: %s is a duplicate, not "
			  "sent",
			  other, id);
		return insert_new(st, nw, id, other, why, err, errlen);
	}
	const char *uvals[] = {other, nw->idem_key};
	if ((res = run(st, unbind_sql, 2, uvals, NULL, NULL, PGRES_COMMAND_OK, why, err, errlen)) ==
	    NULL)
		return NULL;
	PQclear(res);
	log_info("Idempotency-Key of message %s expired: now bound to %s", other, id);
	return insert_new(st, nw, id, NULL, why, err, errlen);
}

enum sender_load
sender_store_load(struct sender_store *st, const struct sender_new *nw, const char *id,
		  struct sender_row *row, char *err, size_t errlen)
{
	const char *vals[] = {id};
	enum pg_failure why;
	PGresult *res;
	enum sender_load rc = LOAD_FAIL;

	if (nw) {
		res = insert_new(st, nw, id, NULL, &why, err, errlen);
		if (res && PQntuples(res) == 0 && nw->idem_key && nw->has_api_key) {
			PQclear(res);
			res = insert_bound(st, nw, id, &why, err, errlen);
		}
	} else {
		res = run(st, select_sql, 1, vals, NULL, NULL, PGRES_TUPLES_OK, &why, err, errlen);
	}
	if (res == NULL)
		return nw && why == PG_FAIL_DATA ? LOAD_POISON : LOAD_FAIL;
	if (PQntuples(res) == 0) {
		/* A new record not visible yet: another sender inserts it right now. */
		if (nw)
			snprintf(err, errlen, "message '%s' is being inserted concurrently", id);
		rc = nw ? LOAD_FAIL : LOAD_NONE;
	} else if (read_row(res, row) < 0) {
		snprintf(err, errlen, "out of memory");
	} else {
		rc = LOAD_OK;
	}
	PQclear(res);
	return rc;
}

int
sender_store_begin(struct sender_store *st, const char *id, long seen_attempts, long grace_ms,
		   int *won, char *err, size_t errlen)
{
	char att[24], grace[24];
	const char *vals[] = {id, att, grace};
	PGresult *res;

	snprintf(att, sizeof(att), "%ld", seen_attempts);
	snprintf(grace, sizeof(grace), "%ld", grace_ms);
	if ((res = run(st, begin_sql, 3, vals, NULL, NULL, PGRES_TUPLES_OK, NULL, err, errlen)) ==
	    NULL)
		return -1;
	*won = PQntuples(res) == 1;
	PQclear(res);
	return 0;
}

int
sender_store_sent(struct sender_store *st, const char *id, const char *sg_id, int64_t at_ms,
		  char *err, size_t errlen)
{
	char at[24];
	const char *vals[] = {id, sg_id && sg_id[0] ? sg_id : NULL, at_ms > 0 ? at : NULL};
	PGresult *res;

	snprintf(at, sizeof(at), "%lld", (long long)at_ms);
	if ((res = run(st, sent_sql, 3, vals, NULL, NULL, PGRES_COMMAND_OK, NULL, err, errlen)) ==
	    NULL)
		return -1;
	PQclear(res);
	return 0;
}

int
sender_store_retry(struct sender_store *st, const char *id, long long delay_ms, const char *error,
		   int *changed, char *err, size_t errlen)
{
	char delay[24], *text = clean_text(error);
	const char *vals[] = {id, delay, text};
	PGresult *res;

	if (text == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(delay, sizeof(delay), "%lld", delay_ms);
	res = run(st, retry_sql, 3, vals, NULL, NULL, PGRES_COMMAND_OK, NULL, err, errlen);
	free(text);
	if (res == NULL)
		return -1;
	*changed = atoi(PQcmdTuples(res)) > 0;
	PQclear(res);
	return 0;
}

int
sender_store_ambiguous(struct sender_store *st, const char *id, const char *error,
		       int64_t *due_in_ms, char *err, size_t errlen)
{
	char *text = clean_text(error);
	const char *vals[] = {id, text};
	PGresult *res;

	if (text == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	res = run(st, ambiguous_sql, 2, vals, NULL, NULL, PGRES_TUPLES_OK, NULL, err, errlen);
	free(text);
	if (res == NULL)
		return -1;
	*due_in_ms = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) ? atoll(PQgetvalue(res, 0, 0))
								    : SENDER_NO_DUE;
	PQclear(res);
	return 0;
}

int
sender_store_suppressed(struct sender_store *st, const char *id, const char *reason, char *err,
			size_t errlen)
{
	const char *vals[] = {id, reason};
	PGresult *res;

	if ((res = run(st, suppressed_sql, 2, vals, NULL, NULL, PGRES_COMMAND_OK, NULL, err,
		       errlen)) == NULL)
		return -1;
	PQclear(res);
	return 0;
}

/* vals/lens/fmts for a dead letter: topic, partition, offset, payload (binary), error. */
static void
dead_params(const struct sender_dead *d, const char *error, char part[16], char off[24],
	    const char *vals[5], int lens[5], int fmts[5])
{
	int has_pos = d->partition >= 0;

	snprintf(part, 16, "%d", (int)d->partition);
	snprintf(off, 24, "%lld", (long long)d->offset);
	vals[0] = d->topic;
	vals[1] = has_pos ? part : NULL;
	vals[2] = has_pos ? off : NULL;
	vals[3] = d->payload ? d->payload : "";
	vals[4] = error;
	for (int i = 0; i < 5; i++)
		lens[i] = fmts[i] = 0;
	lens[3] = (int)d->len;
	fmts[3] = 1;
}

int
sender_store_failed(struct sender_store *st, const char *id, const struct sender_dead *d,
		    int *changed, char *err, size_t errlen)
{
	char part[16], off[24], *text = clean_text(d->error);
	const char *dv[5], *vals[6];
	int dl[5], df[5], lens[6] = {0}, fmts[6] = {0};
	PGresult *res;

	if (text == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	dead_params(d, text, part, off, dv, dl, df);
	vals[0] = id;
	vals[1] = text;
	for (int i = 0; i < 4; i++) {
		vals[2 + i] = dv[i];
		lens[2 + i] = dl[i];
		fmts[2 + i] = df[i];
	}
	res = run(st, failed_sql, 6, vals, lens, fmts, PGRES_TUPLES_OK, NULL, err, errlen);
	free(text);
	if (res == NULL)
		return -1;
	*changed = atoi(PQgetvalue(res, 0, 0)) > 0;
	PQclear(res);
	return 0;
}

int
sender_store_dead(struct sender_store *st, const struct sender_dead *d, char *err, size_t errlen)
{
	char part[16], off[24], *text = clean_text(d->error);
	const char *vals[5];
	int lens[5], fmts[5];
	PGresult *res;

	if (text == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	dead_params(d, text, part, off, vals, lens, fmts);
	res = run(st, dead_sql, 5, vals, lens, fmts, PGRES_COMMAND_OK, NULL, err, errlen);
	free(text);
	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

int
sender_store_suppressions(struct sender_store *st, const char *emails_json, size_t n,
			  unsigned char *hit, char *err, size_t errlen)
{
	const char *vals[] = {emails_json};
	PGresult *res;

	memset(hit, 0, n);
	if ((res = run(st, suppressions_sql, 1, vals, NULL, NULL, PGRES_TUPLES_OK, NULL, err,
		       errlen)) == NULL)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		long k = atol(PQgetvalue(res, i, 0));
		if (k >= 0 && (size_t)k < n)
			hit[k] = 1;
	}
	PQclear(res);
	return 0;
}

int
sender_store_event_seen(struct sender_store *st, const char *id, int64_t created_ms, int *seen,
			char *sg_id, size_t sg_len, int64_t *first_ms, char *err, size_t errlen)
{
	char created[24];
	const char *vals[] = {id, created};
	PGresult *res;

	snprintf(created, sizeof(created), "%lld", (long long)created_ms);
	if ((res = run(st, event_sql, 2, vals, NULL, NULL, PGRES_TUPLES_OK, NULL, err, errlen)) ==
	    NULL)
		return -1;
	*seen = PQntuples(res) == 1 && !PQgetisnull(res, 0, 1);
	*first_ms = *seen ? atoll(PQgetvalue(res, 0, 1)) : 0;
	snprintf(sg_id, sg_len, "%s",
		 *seen && !PQgetisnull(res, 0, 0) ? PQgetvalue(res, 0, 0) : "");
	PQclear(res);
	return 0;
}

ssize_t
sender_store_pending(struct sender_store *st, int only_due, long window_s,
		     const struct sender_pending *after, struct sender_pending *out, size_t max,
		     char *err, size_t errlen)
{
	char win[24], at[24], lim[24];
	const char *vals[] = {win, only_due ? "true" : "false", at, after->id, lim};
	PGresult *res;
	ssize_t n;

	snprintf(win, sizeof(win), "%ld", window_s);
	/* No cursor yet: start below any real time. */
	snprintf(at, sizeof(at), "%lld",
		 after->id[0] ? (long long)after->at_us : -9000000000000000LL);
	snprintf(lim, sizeof(lim), "%zu", max);
	if ((res = run(st, pending_sql, 5, vals, NULL, NULL, PGRES_TUPLES_OK, NULL, err, errlen)) ==
	    NULL)
		return -1;
	n = PQntuples(res);
	for (ssize_t i = 0; i < n; i++) {
		snprintf(out[i].id, sizeof(out[i].id), "%s", PQgetvalue(res, (int)i, 0));
		out[i].due_in_ms = atoll(PQgetvalue(res, (int)i, 1));
		out[i].at_us = atoll(PQgetvalue(res, (int)i, 2));
	}
	PQclear(res);
	return n;
}
