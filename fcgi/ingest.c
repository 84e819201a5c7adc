/*
 * ingest: the FastCGI app behind nginx that takes data in and hands it to Kafka.
 * Routes: POST /webhooks/sendgrid (webhook.c), POST /v3/mail/send (mailsend.c),
 * GET /healthz.  main() only wires.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "dispatch.h"
#include "ingest.h"
#include "kpub.h"
#include "log.h"
#include "metrics_push.h"
#include "prog.h"
#include "reload.h"
#include "sig.h"

static void
healthz(struct req *r)
{
	const struct ingest *in = r->app;

	if (kpub_fatal(in->kp)) {
		reply_error(r, 503, NULL, "kafka producer is in a fatal state");
		return;
	}
	reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

/* what SIGHUP applies besides log.level (reload.h) */
static const char *const live_keys[] = {"webhook.max_age_seconds", "auth.refresh_seconds", NULL};

static void
reloaded(void *arg)
{
	const struct ingest *in = arg;

	apikeys_set_refresh(in->keys, config_live(&in->cf->auth_refresh_seconds));
}

static const struct route routes[] = {
    {"POST", "/webhooks/sendgrid", webhook_handle},
    {"POST", "/v3/mail/send", mailsend_handle},
    {"GET", "/healthz", healthz},
};

int
main(int argc, char **argv)
{
	struct config cf;
	struct ingest in = {.cf = &cf};
	char err[512];
	int rc = 1;

	if (!prog_start(argc, argv, &cf, &rc))
		goto out;
	if (cf.webhook_verify) {
		if (cf.webhook_public_key[0] == '\0') {
			log_errx(
			    "webhook.public_key is not set: set it to the key SendGrid shows, or "
			    "set webhook.verify = off explicitly");
			goto out;
		}
		if ((in.key = sig_key_new(cf.webhook_public_key, err, sizeof(err))) == NULL) {
			log_errx("invalid webhook.public_key: %s", err);
			goto out;
		}
	} else {
		log_warnx("webhook.verify is off: unsigned webhook requests are accepted");
	}
	if ((in.redis = rconn_new(cf.redis_url, err, sizeof(err))) == NULL) {
		log_errx("invalid redis.url: %s", err);
		goto out;
	}
	if ((in.idemdb = idemdb_new(cf.database_url)) == NULL) {
		log_errx("out of memory");
		goto out;
	}
	/* Loads now if it can; a database that is away only delays mail sends (503). */
	if ((in.keys = apikeys_new(cf.database_url, cf.auth_refresh_seconds, err, sizeof(err))) ==
	    NULL) {
		log_errx("%s", err);
		goto out;
	}
	struct reload_conf rl = {.cf = &cf, .live = live_keys, .applied = reloaded, .arg = &in};
	if (prog_install(&cf, &rl, "ingest") < 0)
		goto out;
	if ((in.kp = kpub_new(&cf, cf.ingest_deadline_ms, err, sizeof(err))) == NULL) {
		log_errx("%s", err);
		goto out;
	}
	struct dispatch_conf dc = {
	    .socket_path = cf.ingest_socket,
	    .socket_mode = (int)cf.ingest_socket_mode,
	    .threads = (int)cf.ingest_threads,
	    .max_body = (size_t)cf.ingest_max_body_bytes,
	    .max_inflight = (size_t)cf.ingest_max_inflight_bytes,
	    .routes = routes,
	    .nroutes = sizeof(routes) / sizeof(routes[0]),
	    .app = &in,
	};
	if (prog_serve(&dc) < 0)
		goto out;
	rc = kpub_fatal(in.kp) ? 1 : 0;
out:
	metrics_push_stop();
	kpub_destroy(in.kp, 5000);
	apikeys_destroy(in.keys);
	rconn_destroy(in.redis);
	idemdb_destroy(in.idemdb);
	sig_key_destroy(in.key);
	config_release(&cf);
	log_info("exiting with status %d", rc);
	return rc;
}
