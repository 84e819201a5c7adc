/*
 * sender: shared types of the sender worker (Kafka mail.requests -> SendGrid).
 *
 *   sender.c        main, the loop: Kafka records, due retries, reconciler, progress
 *   sender_job.c    one message: skip, ambiguous check, limits, call, outcome
 *   sender_rcpt.c   dropping suppressed recipients from the request
 *   sender_http.c   the libcurl call and the classification of its answer
 *   sender_state.c  Redis: the per-message state hash and the retry schedule (ZSET)
 *   sender_store.c  PostgreSQL: messages, suppressions, events, dead_letters
 *   sender_rate.c   the send rate limit (token bucket, 429 holds)
 *
 * PostgreSQL is the truth; Redis only makes things faster and may vanish at any time.
 */
#ifndef MAILPIPE_SENDER_H
#define MAILPIPE_SENDER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "backoff.h"
#include "config.h"
#include "msgid.h"

#define SENDER_BODY_MAX (64 * 1024) /* most of SendGrid's answer body kept */
#define SENDER_SGID_MAX 128         /* longest X-Message-Id kept */

/* ---- sender_http.c ------------------------------------------------------------------- */

enum sender_class {
	SEND_OK,    /* 2xx: SendGrid took it */
	SEND_RETRY, /* 5xx, other odd statuses, or a transport failure before the body was sent */
	SEND_RATE,  /* 429: retry at reset_ms */
	SEND_AMBIGUOUS, /* the request went out, no answer came: it may have been sent */
	SEND_PERMANENT, /* any other 4xx: never retried */
};

struct sender_reply {
	enum sender_class cls;
	long status;                         /* HTTP status; 0 when none came */
	char sg_id[SENDER_SGID_MAX];         /* X-Message-Id, "" when absent */
	long long reset_ms;                  /* 429: when to retry (epoch ms), 0 when unknown */
	char rl_limit[24], rl_remaining[24]; /* X-RateLimit-Limit/Remaining as given */
	const char *body;                    /* borrowed from the handle until the next call */
	size_t body_len;
	char error[400]; /* transport failure, "" when an answer came */
};

struct sender_http;

/*
 * Prepares one reused easy handle for POST <sendgrid.api_url>/v3/mail/send.  NULL with
 * err when the settings cannot work (CR/LF in the API key, bad URL, out of memory).
 */
struct sender_http *sender_http_new(const struct config *cf, char *err, size_t errlen);
void sender_http_destroy(struct sender_http *h);

/* Posts body (len bytes of JSON) and classifies the answer into rep. */
void sender_http_send(struct sender_http *h, const char *body, size_t len,
		      struct sender_reply *rep);

/* ---- sender_rate.c ------------------------------------------------------------------- */

struct sender_rate {
	double per_ms;        /* tokens per millisecond; 0 = no limit */
	double tokens;        /* at most 1: sends are spaced, never bursted */
	long long last_ms;    /* monotonic time tokens were last added */
	long long hold_until; /* epoch ms before which nothing is sent (429); 0 = none */
};

void sender_rate_init(struct sender_rate *r, long per_second);
/* Sends nothing before until_ms (epoch ms), capped at max_ms from now. */
void sender_rate_hold(struct sender_rate *r, long long until_ms, long max_ms);
/* Waits for the right to send once; -1 if shutdown was requested meanwhile. */
int sender_rate_wait(struct sender_rate *r) __attribute__((warn_unused_result));

/* ---- sender_state.c ------------------------------------------------------------------ */

struct sender_state;

struct sender_mstate {
	char state[16]; /* queued|sending|sent|retrying|failed|suppressed */
	long attempts;
	long long since_ms;
	char sg_id[SENDER_SGID_MAX];
};

/* url as redis.url; keys start with prefix.  NULL with err when the URL is bad. */
struct sender_state *sender_state_new(const char *url, const char *prefix, long ttl_seconds,
				      char *err, size_t errlen);
void sender_state_destroy(struct sender_state *rs);
/* 1 if Redis is reachable now (connecting when a retry is due), else 0. */
int sender_state_up(struct sender_state *rs);
/* 1 once after Redis came back from being unreachable (or on the first connect). */
int sender_state_came_back(struct sender_state *rs);
/* 1 found, 0 no state, -1 Redis unavailable. */
int sender_state_get(struct sender_state *rs, const char *id, struct sender_mstate *out)
    __attribute__((warn_unused_result));
/* Writes the state hash (sg_id may be NULL).  -1 Redis unavailable. */
int sender_state_set(struct sender_state *rs, const char *id, const char *state, long attempts,
		     long long since_ms, const char *sg_id);
/* ZCARD of the retry schedule: how many mails wait on it; -1 Redis unavailable. */
long long sender_state_depth(struct sender_state *rs);
/* ZADD the retry schedule.  -1 Redis unavailable. */
int sender_state_schedule(struct sender_state *rs, const char *id, long long due_ms);
/* Up to max ids due at now_ms, earliest first.  -1 Redis unavailable. */
ssize_t sender_state_due(struct sender_state *rs, long long now_ms, char (*ids)[MSGID_LEN + 1],
			 size_t max) __attribute__((warn_unused_result));
/* ZREM: 1 if this process took id off the schedule, 0 if another did, -1 unavailable. */
int sender_state_claim(struct sender_state *rs, const char *id) __attribute__((warn_unused_result));
/* missing[i] = 1 when ids[i] is not on the schedule.  -1 Redis unavailable. */
int sender_state_missing(struct sender_state *rs, char (*ids)[MSGID_LEN + 1], size_t n,
			 unsigned char *missing) __attribute__((warn_unused_result));

/* ---- sender_store.c ------------------------------------------------------------------ */

#define SENDER_NO_DUE INT64_MIN

/* A messages row as the sender needs it; sender_row_release() frees the strings. */
struct sender_row {
	char status[24];
	int rank;
	long attempts;
	int64_t due_in_ms; /* next_attempt_at - now(); SENDER_NO_DUE when NULL */
	int64_t age_ms;    /* now() - created_at */
	int64_t created_ms;
	int64_t api_key_id;
	int has_api_key;
	char *request;    /* messages.request as JSON text */
	char *last_error; /* NULL when none */
	int has_sent_at;
};

/* Where a dead letter came from; partition -1 when not from a Kafka record. */
struct sender_dead {
	const char *topic;
	int32_t partition;
	int64_t offset;
	const void *payload;
	size_t len;
	const char *error;
};

/* What a new Kafka record says; strings borrowed. */
struct sender_new {
	const char *message_id;
	const char *request; /* JSON text */
	int64_t api_key_id;
	int has_api_key;
	int64_t received_ms;     /* 0 when absent */
	const char *idem_key;    /* the Idempotency-Key header, NULL when none */
	const char *body_sha256; /* hex SHA-256 of the request body as ingest got it, or NULL */
};

enum sender_load {
	LOAD_OK,
	LOAD_NONE,   /* no such message (a stale schedule entry) */
	LOAD_POISON, /* the database refuses the record's data: dead-letter it */
	LOAD_FAIL,   /* try again later */
};

struct sender_store;

/* idem_ttl_s: mail.idempotency_ttl_seconds, how long an Idempotency-Key stays bound. */
struct sender_store *sender_store_new(const char *url, long idem_ttl_s);
void sender_store_destroy(struct sender_store *st);
void sender_row_release(struct sender_row *row);

/*
 * Step 1: inserts nw (ON CONFLICT DO NOTHING) when given, then reads the row of id.  When
 * nw's Idempotency-Key is already bound to another message (within idem_ttl_s), nw is
 * inserted as a duplicate: status failed, last_error "duplicate of <id>: ...", never sent.
 */
enum sender_load sender_store_load(struct sender_store *st, const struct sender_new *nw,
				   const char *id, struct sender_row *row, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Claims an attempt: status sending, attempts+1, next_attempt_at = now() + grace_ms, only
 * if attempts is still seen_attempts (compare and swap against other senders).  *won = 1
 * when this process got it.
 */
int sender_store_begin(struct sender_store *st, const char *id, long seen_attempts, long grace_ms,
		       int *won, char *err, size_t errlen) __attribute__((warn_unused_result));
/*
 * Records a send SendGrid took: SendGrid's id (may be NULL) and sent_at (at_ms = when its
 * events say SendGrid had it, never before created_at; 0 = now), both kept if already set;
 * the status only moves forward.
 */
int sender_store_sent(struct sender_store *st, const char *id, const char *sg_id, int64_t at_ms,
		      char *err, size_t errlen) __attribute__((warn_unused_result));
/* status retrying, next_attempt_at = now() + delay_ms.  *changed = 0 if it moved on. */
int sender_store_retry(struct sender_store *st, const char *id, long long delay_ms,
		       const char *error, int *changed, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* The attempt's answer is unknown: stays sending; *due_in_ms = the check's time. */
int sender_store_ambiguous(struct sender_store *st, const char *id, const char *error,
			   int64_t *due_in_ms, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* status suppressed (reason in last_error).  */
int sender_store_suppressed(struct sender_store *st, const char *id, const char *reason, char *err,
			    size_t errlen) __attribute__((warn_unused_result));
/*
 * status failed with last_error = d->error, and the dead letter, in one statement;
 * *changed = 0 when the message had already moved on (then no dead letter is written).
 */
int sender_store_failed(struct sender_store *st, const char *id, const struct sender_dead *d,
			int *changed, char *err, size_t errlen) __attribute__((warn_unused_result));
/* A dead letter of a record that is no message at all. */
int sender_store_dead(struct sender_store *st, const struct sender_dead *d, char *err,
		      size_t errlen) __attribute__((warn_unused_result));
/*
 * emails_json: a JSON array of addresses.  Sets hit[i] = 1 for each suppressed one
 * (compared lower-cased).
 */
int sender_store_suppressions(struct sender_store *st, const char *emails_json, size_t n,
			      unsigned char *hit, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/*
 * *seen = 1 if events holds an event of id (created at created_ms); sg_id gets SendGrid's
 * id from them ("" if none says), *first_ms the earliest event's time.
 */
int sender_store_event_seen(struct sender_store *st, const char *id, int64_t created_ms, int *seen,
			    char *sg_id, size_t sg_len, int64_t *first_ms, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* A message waiting for a retry or an ambiguous check. */
struct sender_pending {
	char id[MSGID_LEN + 1];
	int64_t due_in_ms;
	int64_t at_us; /* next_attempt_at, the keyset cursor */
};

/*
 * Up to max messages retrying, or sending with a check due (created within window_s),
 * ordered by next_attempt_at after the key *after (none: after->id[0] == 0); only_due
 * limits them to those due now.  Returns the count or -1.
 */
ssize_t sender_store_pending(struct sender_store *st, int only_due, long window_s,
			     const struct sender_pending *after, struct sender_pending *out,
			     size_t max, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* ---- sender_rcpt.c ------------------------------------------------------------------- */

/*
 * Step 4: request (JSON text) minus its suppressed recipients.  *body is a new string, NULL
 * when no personalization keeps a `to` (a personalization whose `to` all went is dropped
 * with its cc and bcc, counted in *lost: SendGrid refuses one without `to`); *dropped
 * counts the suppressed recipients.  -1 with err when PostgreSQL could not be asked (or
 * out of memory); -2 with err when request cannot be read at all.
 */
int sender_rcpt_filter(struct sender_store *st, const char *request, char **body, size_t *dropped,
		       size_t *lost, char *err, size_t errlen) __attribute__((warn_unused_result));

/* ---- sender_job.c -------------------------------------------------------------------- */

struct sender_totals {
	unsigned long long sent, retried, failed, suppressed, skipped, ambiguous, dead;
};

/* Everything the worker shares; one per process, used by one thread. */
struct sender {
	const struct config *cf;
	struct kcons *kc;
	struct kpub *kp;
	struct sender_store *st;
	struct sender_state *rs;
	struct sender_http *http;
	struct sender_rate rate;
	struct backoff bo; /* pauses between tries while PostgreSQL/Kafka are away */
	unsigned int seed; /* retry jitter */
	long grace_ms;     /* effective ambiguous grace */
	struct sender_totals total;
};

/* One message to work on: from a Kafka record (rec set) or from the retry schedule. */
struct sender_job {
	const char *id;
	const struct sender_new *rec; /* NULL for a retry */
	const void *payload;          /* the record's bytes (the DLQ record value) */
	size_t len;
	int32_t partition;
	int64_t offset;
};

enum sender_job_result {
	JOB_DONE,   /* the outcome is durable in PostgreSQL: the offset may be stored */
	JOB_AGAIN,  /* nothing irreversible happened; try the job again later */
	JOB_POISON, /* the record can never be stored: dead-letter it */
	JOB_STOP,   /* shutdown came before the outcome could be made durable */
};

enum sender_job_result sender_job_run(struct sender *s, const struct sender_job *j, char *err,
				      size_t errlen);

/* Produces value to the DLQ topic and waits for it.  -1 with err. */
int sender_job_dlq(struct sender *s, const char *key, const void *value, size_t len,
		   const char *error, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Wall clock, epoch milliseconds. */
long long sender_now_ms(void);

#endif
