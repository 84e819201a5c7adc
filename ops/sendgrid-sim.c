/*
 * sendgrid-sim: the SendGrid simulator, a FastCGI app behind nginx (see sendgrid-sim.h
 * for its parts).  Routes:
 *
 *   POST /v3/mail/send   SendGrid's Mail Send (sendgrid-sim_send.c)
 *   GET|POST /sim/faults the fault knobs (sendgrid-sim_faults.c)
 *   GET /sim/messages?mailpipe_message_id=ID   {"count":N,"x_message_ids":[...]}
 *   GET /sim/stats       totals
 *   GET /healthz         {"status":"ok"}
 *
 * SIGTERM: stop accepting, finish the requests in flight, post what is held (at most
 * 2 s), exit 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "config.h"
#include "dispatch.h"
#include "log.h"
#include "qparams.h"
#include "prog.h"
#include "reload.h"
#include "sendgrid-sim.h"
#include "sgerr.h"

#define THREADS 16
#define MAX_BODY (30L * 1024 * 1024) /* SendGrid's limit for a whole message */
#define LAST_FLUSH_MS 2000

void
sim_reply_error(struct req *r, int status, const char *const *headers, size_t nheaders,
		const char *field, const char *message, const char *help)
{
	json_t *e = sgerr_entry(field, message);

	if (e && help)
		json_object_set_new(e, "help", json_string(help));
	reply_headers(r, status, headers, nheaders, json_pack("{s:[o]}", "errors", e));
}

static void
faults_get(struct req *r)
{
	struct sim *s = r->app;

	reply_headers(r, 200, NULL, 0, sim_faults_state(s->faults));
}

static void
faults_post(struct req *r)
{
	struct sim *s = r->app;
	const char *field = NULL;
	char err[256];
	json_error_t jerr;
	json_t *body = json_loadb(r->body, r->body_len, 0, &jerr);

	if (body == NULL) {
		snprintf(err, sizeof(err), "invalid JSON: %s", jerr.text);
		sim_reply_error(r, 400, NULL, 0, NULL, err, NULL);
		return;
	}
	if (sim_faults_apply(s->faults, body, &field, err, sizeof(err)) < 0) {
		sim_reply_error(r, 400, NULL, 0, field, err, NULL);
	} else {
		json_t *state = sim_faults_state(s->faults);

		log_info("faults set: %s", r->body);
		reply_headers(r, 200, NULL, 0, state);
	}
	json_decref(body);
}

static void
messages_get(struct req *r)
{
	struct sim *s = r->app;
	struct qparams qp;
	const char *id;
	char err[128];

	if (qparams_parse(r->query, &qp, err, sizeof(err)) < 0) {
		qparams_release(&qp);
		sim_reply_error(r, 400, NULL, 0, NULL, err, NULL);
		return;
	}
	if ((id = qparams_get(&qp, "mailpipe_message_id")) == NULL || id[0] == '\0') {
		qparams_release(&qp);
		sim_reply_error(r, 400, NULL, 0, "mailpipe_message_id",
				"query parameter 'mailpipe_message_id' is required", NULL);
		return;
	}
	reply_headers(r, 200, NULL, 0, sim_msgs_lookup(s->msgs, id));
	qparams_release(&qp);
}

#define N(x) ((json_int_t)atomic_load(&s->stats.x))

static void
stats_get(struct req *r)
{
	struct sim *s = r->app;
	unsigned long long untracked;
	size_t tracked;

	sim_msgs_counts(s->msgs, &tracked, &untracked);
	reply_headers(
	    r, 200, NULL, 0,
	    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
		      " s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
		      " s:{s:I, s:I}, s:{s:I, s:I}, s:o}",
		      "requests", N(requests), "accepted", N(accepted), "sandbox", N(sandbox),
		      "unauthorized", N(unauthorized), "invalid", N(invalid), "faulted", N(faulted),
		      "hung", N(hung), "recipients", N(recipients), "events", "generated",
		      N(generated), "queued", (json_int_t)sim_queue_len(s->queue), "pending",
		      (json_int_t)sim_poster_pending(s->poster), "posted", N(posted), "duplicates",
		      N(duplicates), "dropped", N(dropped), "max_queued", (json_int_t)SIM_QUEUE_MAX,
		      "batches", "posted", N(batches_ok), "failed", N(batches_failed), "messages",
		      "tracked", (json_int_t)tracked, "untracked", (json_int_t)untracked, "faults",
		      sim_faults_state(s->faults)));
}

#undef N

static void
healthz(struct req *r)
{
	reply_headers(r, 200, NULL, 0, json_pack("{s:s}", "status", "ok"));
}

static const struct route routes[] = {
    {"POST", "/v3/mail/send", sim_send_handle}, {"GET", "/sim/faults", faults_get},
    {"POST", "/sim/faults", faults_post},       {"GET", "/sim/messages", messages_get},
    {"GET", "/sim/stats", stats_get},           {"GET", "/healthz", healthz},
};

int
main(int argc, char **argv)
{
	struct config cf;
	struct sim s = {.cf = &cf};
	char err[512];
	int rc = 1, curl_ready = 0;

	if (!prog_start(argc, argv, &cf, &rc))
		goto out;
	if (cf.sim_api_key[0] == '\0') {
		log_errx("sim.api_key is empty: set the key the simulator accepts");
		goto out;
	}
	/* Before any thread: curl_global_init() is not thread-safe. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_errx("cannot initialise libcurl");
		goto out;
	}
	curl_ready = 1;
	/* SIGHUP applies log.level only: the poster reads the sim.* numbers unguarded */
	struct reload_conf rl = {.cf = &cf};
	if (prog_install(&cf, &rl, NULL) < 0)
		goto out;
	s.faults = sim_faults_new();
	s.queue = sim_queue_new(SIM_QUEUE_MAX);
	s.msgs = sim_msgs_new();
	if (s.faults == NULL || s.queue == NULL || s.msgs == NULL) {
		log_errx("out of memory");
		goto out;
	}
	if ((s.poster = sim_poster_start(&s, err, sizeof(err))) == NULL) {
		log_errx("%s", err);
		goto out;
	}
	struct dispatch_conf dc = {
	    .socket_path = cf.sim_socket,
	    .socket_mode = (int)cf.ingest_socket_mode,
	    .threads = THREADS,
	    .max_body = (size_t)MAX_BODY,
	    .routes = routes,
	    .nroutes = sizeof(routes) / sizeof(routes[0]),
	    .app = &s,
	};
	if (prog_serve(&dc) < 0)
		goto out;
	rc = 0;
out:
	sim_poster_stop(s.poster, LAST_FLUSH_MS);
	sim_msgs_destroy(s.msgs);
	sim_queue_destroy(s.queue);
	sim_faults_destroy(s.faults);
	if (curl_ready)
		curl_global_cleanup();
	config_release(&cf);
	log_info("exiting with status %d", rc);
	return rc;
}
