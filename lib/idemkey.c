/*
 * idemkey: Idempotency-Key records in Redis; see idemkey.h.
 *
 * Record value: "<body sha256 hex> pending" while the first request runs, then
 * "<body sha256 hex> <status> <message id>".
 *
 * PostgreSQL side (idemkey_recall): messages.idempotency_key / idempotency_body_sha256,
 * written by the sender, found through the unique partial index of 017_idempotency.sql.
 */
#include "idemkey.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "log.h"
#include "pgconn.h"

/*
 * A database that is away or frozen (SIGSTOP, a stalled disk) makes a keyed request answer
 * 503 within a few seconds; it never holds ingest's threads longer.
 */
#define IDEMDB_RETRY_SECONDS 1     /* pause between connection attempts while it is away */
#define IDEMDB_CONNECT_S 2         /* connect_timeout (unless database.url sets one) */
#define IDEMDB_STATEMENT_MS "1000" /* statement_timeout, on the server */
#define IDEMDB_WAIT_MS 1500        /* longest wait for the answer, on our side */
#define IDEMDB_LOCK_MS 3000        /* longest wait for the connection, behind other lookups */

struct idemdb {
	pthread_mutex_t mu; /* one query at a time on conn */
	char *url;
	PGconn *conn;
	time_t next_try;
};

#define RECALL_STMT "mailpipe_idemkey_recall"

/* The message a key is bound to, its body hash, and the seconds its binding has left. */
static const char recall_sql[] =
    "SELECT message_id, idempotency_body_sha256,"
    " greatest(1, $3::bigint - extract(epoch FROM now() - created_at)::bigint)"
    " FROM messages WHERE api_key_id = $1::bigint AND idempotency_key = $2"
    " AND created_at > now() - $3::bigint * interval '1 second'";

static void
sha256_hex(const void *data, size_t len, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int mdlen = 0;

	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	for (unsigned int i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

int
idemkey_valid(const char *value)
{
	size_t len = value ? strlen(value) : 0;

	if (len == 0 || len > 255)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)value[i] < 0x21 || (unsigned char)value[i] > 0x7e)
			return 0;
	return 1;
}

/* Parses a stored record into its parts; -1 if malformed. */
static int
parse_record(const char *v, char hash[65], int *status, char msgid[MSGID_LEN + 1])
{
	char st[16] = "", id[MSGID_LEN + 2] = "";
	int n = sscanf(v, "%64s %15s %27s", hash, st, id);

	if (n < 2)
		return -1;
	if (strcmp(st, "pending") == 0) {
		*status = 0;
		return 0;
	}
	*status = atoi(st);
	if (n != 3 || *status < 100 || !msgid_valid(id))
		return -1;
	memcpy(msgid, id, MSGID_LEN + 1);
	return 0;
}

enum idemkey_state
idemkey_begin(struct idemkey *ik, struct rconn *rc, const char *prefix, long ttl_seconds,
	      long api_key_id, const char *value, const void *body, size_t len, int *status,
	      char msgid[MSGID_LEN + 1])
{
	char value_hash[65], record[80], ttl[24], stored_hash[65];
	redisReply *r;

	memset(ik, 0, sizeof(*ik));
	ik->rc = rc;
	ik->prefix = prefix;
	ik->ttl_seconds = ttl_seconds;
	/* The header is hashed: any byte a client sends becomes a fixed-length safe key. */
	sha256_hex(value, strlen(value), value_hash);
	sha256_hex(body, len, ik->body_hash);
	snprintf(ik->key, sizeof(ik->key), "%sidk:%ld:%s", prefix, api_key_id, value_hash);
	snprintf(record, sizeof(record), "%s pending", ik->body_hash);
	snprintf(ttl, sizeof(ttl), "%ld", ttl_seconds);

	const char *set[] = {"SET", ik->key, record, "NX", "EX", ttl};
	if ((r = rconn_command(rc, 6, set, NULL)) == NULL)
		return IDEMKEY_UNAVAILABLE;
	int claimed = r->type == REDIS_REPLY_STATUS;
	freeReplyObject(r);
	if (claimed)
		return IDEMKEY_NEW;

	const char *get[] = {"GET", ik->key};
	if ((r = rconn_command(rc, 2, get, NULL)) == NULL)
		return IDEMKEY_UNAVAILABLE;
	if (r->type != REDIS_REPLY_STRING) {
		/* Expired or released between SET and GET: let the client retry. */
		freeReplyObject(r);
		return IDEMKEY_IN_PROGRESS;
	}
	int bad = parse_record(r->str, stored_hash, status, msgid) < 0;
	freeReplyObject(r);
	if (bad)
		return IDEMKEY_UNAVAILABLE;
	if (strcmp(stored_hash, ik->body_hash) != 0)
		return IDEMKEY_CONFLICT;
	return *status == 0 ? IDEMKEY_IN_PROGRESS : IDEMKEY_REPLAY;
}

int
idemkey_finish(struct idemkey *ik, int status, const char *msgid)
{
	char record[128], ttl[24];
	redisReply *r;

	snprintf(record, sizeof(record), "%s %d %s", ik->body_hash, status, msgid);
	snprintf(ttl, sizeof(ttl), "%ld", ik->ttl_seconds);
	const char *set[] = {"SET", ik->key, record, "EX", ttl};
	if ((r = rconn_command(ik->rc, 5, set, NULL)) == NULL)
		return -1;
	freeReplyObject(r);
	return 0;
}

void
idemkey_release(struct idemkey *ik)
{
	const char *del[] = {"DEL", ik->key};
	redisReply *r = rconn_command(ik->rc, 2, del, NULL);

	if (r)
		freeReplyObject(r);
}

struct idemdb *
idemdb_new(const char *url)
{
	struct idemdb *db = calloc(1, sizeof(*db));

	if (db == NULL || (db->url = strdup(url)) == NULL) {
		free(db);
		return NULL;
	}
	pthread_mutex_init(&db->mu, NULL);
	return db;
}

void
idemdb_destroy(struct idemdb *db)
{
	if (db == NULL)
		return;
	if (db->conn)
		PQfinish(db->conn);
	pthread_mutex_destroy(&db->mu);
	free(db->url);
	free(db);
}

/* As pgconn_open(), with a shorter connect_timeout: a request is waiting. */
static PGconn *
connect_db(const char *url, char *err, size_t errlen)
{
	return pgconn_open_timeout(url, "mailpipe-ingest-idempotency", IDEMDB_CONNECT_S, err,
				   errlen);
}

static long long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Runs the prepared lookup and waits at most IDEMDB_WAIT_MS for its result.  NULL when
 * none came (the connection is then unusable: the caller drops it), with err.
 */
static PGresult *
recall_query(PGconn *conn, const char *const *vals, char *err, size_t errlen)
{
	long long deadline = mono_ms() + IDEMDB_WAIT_MS;
	PGresult *res, *last = NULL;

	if (!PQsendQueryPrepared(conn, RECALL_STMT, 3, vals, NULL, NULL, 0))
		goto broken;
	for (;;) {
		if (!PQconsumeInput(conn))
			goto broken;
		while (!PQisBusy(conn)) {
			if ((res = PQgetResult(conn)) == NULL) {
				if (last == NULL)
					goto broken;
				return last;
			}
			PQclear(last);
			last = res;
		}
		long long left = deadline - mono_ms();
		struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
		if (left <= 0) {
			snprintf(err, errlen, "Idempotency-Key lookup: no answer within %d ms",
				 IDEMDB_WAIT_MS);
			PQclear(last);
			return NULL;
		}
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			goto broken;
	}
broken:
	pgconn_error(err, errlen, "Idempotency-Key lookup", conn, NULL);
	PQclear(last);
	return NULL;
}

/* With db->mu held: a usable connection, or NULL (not retried before next_try). */
static PGconn *
idemdb_conn(struct idemdb *db)
{
	char err[512];
	enum pg_failure why;
	PGresult *res;
	time_t now = time(NULL);

	if (db->conn && PQstatus(db->conn) == CONNECTION_OK)
		return db->conn;
	if (db->conn) {
		PQfinish(db->conn);
		db->conn = NULL;
	}
	if (now < db->next_try)
		return NULL;
	db->next_try = now + IDEMDB_RETRY_SECONDS;
	if ((db->conn = connect_db(db->url, err, sizeof(err))) == NULL) {
		log_warnx("Idempotency-Key lookups: %s", err);
		return NULL;
	}
	if (pgconn_exec(db->conn, "SET statement_timeout = " IDEMDB_STATEMENT_MS, &why, err,
			sizeof(err)) < 0) {
		log_warnx("Idempotency-Key lookups: %s", err);
		PQfinish(db->conn);
		db->conn = NULL;
		return NULL;
	}
	/* Prepared once per connection: planning costs more than the index lookup itself. */
	res = PQprepare(db->conn, RECALL_STMT, recall_sql, 3, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		pgconn_error(err, sizeof(err), "Idempotency-Key lookups", db->conn, res);
		log_warnx("%s", err);
		PQclear(res);
		PQfinish(db->conn);
		db->conn = NULL;
		return NULL;
	}
	PQclear(res);
	return db->conn;
}

int
idemkey_same_body(const char *stored_hash, const char *stored_msgid, const char *body_hash)
{
	if (stored_hash == NULL || stored_msgid == NULL || !msgid_valid(stored_msgid) ||
	    strlen(stored_hash) != 64 || strspn(stored_hash, "0123456789abcdef") != 64)
		return -1;
	return strcmp(stored_hash, body_hash) == 0;
}

/* Locks db->mu, waiting at most IDEMDB_LOCK_MS; -1 if it stayed taken. */
static int
lock_db(struct idemdb *db)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += IDEMDB_LOCK_MS / 1000;
	until.tv_nsec += (long)(IDEMDB_LOCK_MS % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	return pthread_mutex_timedlock(&db->mu, &until) == 0 ? 0 : -1;
}

/* Writes the record of an answered key back into Redis, for ttl more seconds. */
static void
reseed(struct idemkey *ik, const char *hash, const char *msgid, long long ttl)
{
	char record[128], ex[24];
	redisReply *r;

	snprintf(record, sizeof(record), "%s 202 %s", hash, msgid);
	snprintf(ex, sizeof(ex), "%lld", ttl);
	const char *set[] = {"SET", ik->key, record, "EX", ex};
	if ((r = rconn_command(ik->rc, 5, set, NULL)) == NULL) {
		log_warnx("Idempotency-Key record of message %s not restored in redis", msgid);
		return;
	}
	freeReplyObject(r);
}

enum idemkey_state
idemkey_recall(struct idemkey *ik, struct idemdb *db, long api_key_id, const char *value,
	       int *status, char msgid[MSGID_LEN + 1])
{
	char key[24], ttl[24], hash[65] = "", id[MSGID_LEN + 1] = "", err[512];
	const char *vals[] = {key, value, ttl};
	enum idemkey_state st = IDEMKEY_UNAVAILABLE;
	long long left = 0;
	PGresult *res = NULL;
	PGconn *conn;
	int found = 0, same = -1;

	snprintf(key, sizeof(key), "%ld", api_key_id);
	snprintf(ttl, sizeof(ttl), "%ld", ik->ttl_seconds);
	if (lock_db(db) < 0) {
		log_warnx("Idempotency-Key lookup: the connection stayed busy for %d ms",
			  IDEMDB_LOCK_MS);
		idemkey_release(ik);
		return IDEMKEY_UNAVAILABLE;
	}
	if ((conn = idemdb_conn(db)) != NULL) {
		res = recall_query(conn, vals, err, sizeof(err));
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			if (res)
				pgconn_error(err, sizeof(err), "Idempotency-Key lookup", conn, res);
			log_warnx("%s", err);
			if (res == NULL || PQstatus(conn) != CONNECTION_OK) {
				PQfinish(db->conn);
				db->conn = NULL;
				db->next_try = time(NULL) + IDEMDB_RETRY_SECONDS;
			}
		} else if ((found = PQntuples(res) > 0)) {
			snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
			snprintf(hash, sizeof(hash), "%s", PQgetvalue(res, 0, 1));
			left = atoll(PQgetvalue(res, 0, 2));
			same = PQgetisnull(res, 0, 1) ? -1
						      : idemkey_same_body(hash, id, ik->body_hash);
			st = same < 0 ? IDEMKEY_UNAVAILABLE
			     : same   ? IDEMKEY_REPLAY
				      : IDEMKEY_CONFLICT;
		} else {
			st = IDEMKEY_NEW;
		}
	}
	pthread_mutex_unlock(&db->mu);
	PQclear(res);
	if (st == IDEMKEY_NEW)
		return st;
	if (st == IDEMKEY_UNAVAILABLE) {
		if (found)
			log_warnx("Idempotency-Key bound to message %s without a usable body hash",
				  id);
		idemkey_release(ik);
		return st;
	}
	reseed(ik, hash, id, left);
	*status = 202;
	memcpy(msgid, id, MSGID_LEN + 1);
	return st;
}
