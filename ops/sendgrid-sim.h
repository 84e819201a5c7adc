/*
 * sendgrid-sim: a local stand-in for SendGrid's v3 Mail Send API and its Event Webhook,
 * for the dev stack and the tests.  Its parts, one per file:
 *
 *   sendgrid-sim.c         main() wiring, the /sim/... and /healthz routes, the reply writer
 *   sendgrid-sim_send.c    POST /v3/mail/send: auth, faults, validation, acceptance
 *   sendgrid-sim_faults.c  the fault knobs (POST /sim/faults) and their use by sends
 *   sendgrid-sim_msgs.c    how often each mailpipe_message_id was accepted
 *   sendgrid-sim_events.c  the events an accepted mail produces, with their due times
 *   sendgrid-sim_queue.c   the bounded queue of events ordered by due time
 *   sendgrid-sim_post.c    the poster thread: batching, duplicates, signing, libcurl
 *   sendgrid-sim_rand.c    random numbers and base64url ids
 *
 * Every part is thread-safe: the FastCGI threads and the poster share them through
 * struct sim, which each request borrows as r->app.
 */
#ifndef MAILPIPE_SENDGRID_SIM_H
#define MAILPIPE_SENDGRID_SIM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "dispatch.h"

/* Most events held (queued and waiting for their POST); more are dropped and counted. */
#define SIM_QUEUE_MAX 1000000
/* Most mailpipe_message_id values whose acceptances are counted. */
#define SIM_MSGS_MAX 1000000
/* One webhook POST carries at most this many events or bytes, as SendGrid's 768 KB. */
#define SIM_BATCH_MAX_EVENTS 1000
#define SIM_BATCH_MAX_BYTES (768 * 1024)
/* Length of an X-Message-Id and of an sg_event_id: 16 random bytes in base64url. */
#define SIM_ID_LEN 22

struct sim_faults;
struct sim_queue;
struct sim_msgs;
struct sim_poster;

/* Totals shown at GET /sim/stats; every field only ever grows. */
struct sim_stats {
	atomic_ullong requests;       /* POST /v3/mail/send received */
	atomic_ullong accepted;       /* answered (or to be answered) 202 */
	atomic_ullong sandbox;        /* answered 200 */
	atomic_ullong unauthorized;   /* answered 401 */
	atomic_ullong invalid;        /* answered 400/415 for the body */
	atomic_ullong faulted;        /* answered a status fault */
	atomic_ullong hung;           /* accepted, then answered late */
	atomic_ullong recipients;     /* recipients of accepted mails */
	atomic_ullong generated;      /* events made */
	atomic_ullong dropped;        /* events lost to SIM_QUEUE_MAX or at shutdown */
	atomic_ullong posted;         /* events in 2xx-answered POSTs, duplicates included */
	atomic_ullong duplicates;     /* extra copies posted */
	atomic_ullong batches_ok;     /* POSTs answered 2xx */
	atomic_ullong batches_failed; /* POSTs that failed (and were kept for a retry) */
};

struct sim {
	const struct config *cf;
	struct sim_faults *faults;
	struct sim_queue *queue;
	struct sim_msgs *msgs;
	struct sim_poster *poster;
	struct sim_stats stats;
};

/* Answers status with one SendGrid error entry; field and help may be NULL. */
void sim_reply_error(struct req *r, int status, const char *const *headers, size_t nheaders,
		     const char *field, const char *message, const char *help);

/* sendgrid-sim_send.c */
void sim_send_handle(struct req *r);

/* sendgrid-sim_faults.c */
struct sim_fault_decision {
	int status; /* 0: no status fault; else answer this status */
	long reset; /* 429: X-RateLimit-Reset = now + reset */
};

struct sim_faults *sim_faults_new(void);
void sim_faults_destroy(struct sim_faults *f);
/* Applies a POST /sim/faults body (borrowed); -1 with the field and message on a bad one. */
int sim_faults_apply(struct sim_faults *f, json_t *body, const char **field, char *err,
		     size_t errlen) __attribute__((warn_unused_result));
/* The current knobs as a new JSON object. */
json_t *sim_faults_state(struct sim_faults *f);
/* Latency for every send. */
long sim_faults_latency(struct sim_faults *f);
/* Takes one status fault if one is armed (fills status and reset); else status = 0. */
void sim_faults_take_status(struct sim_faults *f, struct sim_fault_decision *d);
/* Takes one accept-then-hang fault if one is armed: its delay, else 0. */
long sim_faults_take_hang(struct sim_faults *f);

/* sendgrid-sim_msgs.c */
struct sim_msgs *sim_msgs_new(void);
void sim_msgs_destroy(struct sim_msgs *m);
/* Counts one acceptance of the mail body (borrowed) as x_message_id for each distinct
 * mailpipe_message_id in its custom_args and its personalizations' custom_args. */
void sim_msgs_record(struct sim_msgs *m, json_t *body, const char *x_message_id);
/* {"count":N,"x_message_ids":[...]} for one id: a new reference. */
json_t *sim_msgs_lookup(struct sim_msgs *m, const char *mailpipe_message_id);
/* How many ids are counted, and how many acceptances went uncounted (SIM_MSGS_MAX). */
void sim_msgs_counts(struct sim_msgs *m, size_t *tracked, unsigned long long *untracked);

/* sendgrid-sim_queue.c: events as compact JSON text (jansson's), ordered by due time. */
struct sim_qev {
	int64_t due_ms; /* CLOCK_MONOTONIC milliseconds */
	char *json;     /* owned */
	size_t len;
	int dup; /* a duplicate copy: never duplicated again */
};

struct sim_queue *sim_queue_new(size_t max);
void sim_queue_destroy(struct sim_queue *q);
/* Takes ownership of json (freed when dropped); -1 when the queue is full. */
int sim_queue_push(struct sim_queue *q, int64_t due_ms, char *json, size_t len, int dup);
/* Moves into out (at most max events, at most max_bytes of JSON but always one) the
 * events due at now_ms (INT64_MAX: every event); returns how many. */
size_t sim_queue_take(struct sim_queue *q, int64_t now_ms, struct sim_qev *out, size_t max,
		      size_t max_bytes);
size_t sim_queue_len(struct sim_queue *q);

/* sendgrid-sim_events.c: queues the events of one accepted mail (body borrowed). */
void sim_events_emit(struct sim *s, json_t *body, const char *x_message_id);

/* sendgrid-sim_post.c */
struct sim_poster *sim_poster_start(struct sim *s, char *err, size_t errlen);
/* Stops the thread after one last flush of everything held, bounded by deadline_ms. */
void sim_poster_stop(struct sim_poster *p, long deadline_ms);
/* Events taken from the queue but not yet answered 2xx (a batch kept for a retry). */
size_t sim_poster_pending(struct sim_poster *p);

/* sendgrid-sim_rand.c: thread-safe. */
int64_t sim_now_ms(void); /* CLOCK_MONOTONIC */
uint64_t sim_rand(void);
/* Uniform in [lo, hi]. */
long sim_rand_range(long lo, long hi);
/* 1 with the chance percent/100. */
int sim_chance(long percent);
/* SIM_ID_LEN characters of base64url from 16 random bytes, and the NUL. */
void sim_random_id(char out[SIM_ID_LEN + 1]);
/* Standard base64 with padding of len bytes into out (4 * ceil(len / 3) + 1 bytes). */
void sim_base64(const unsigned char *in, size_t len, char *out);

#endif
