/*
 * ingest: the FastCGI app behind nginx that takes data in and hands it to Kafka.
 * Routes: POST /webhooks/sendgrid (webhook.c), GET /healthz.  main() only wires.
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
#include "shutdown.h"
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

static const struct route routes[] = {
    {"POST", "/webhooks/sendgrid", webhook_handle},
    {"GET", "/healthz", healthz},
};

static void
usage(void)
{
	fprintf(stderr, "usage: ingest [-c config-file] [--print-config]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct config cf;
	struct ingest in = {.cf = &cf};
	const char *path = NULL;
	char err[512];
	int print = 0, rc = 1;
	enum log_level lvl;

	log_init(argv[0]);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (strcmp(argv[i], "--print-config") == 0)
			print = 1;
		else
			usage();
	}
	if (config_load(&cf, path, err, sizeof(err)) < 0) {
		log_errx("%s", err);
		goto out;
	}
	if (log_level_parse(cf.log_level, &lvl) == 0)
		log_set_level(lvl);
	if (print) {
		config_write_effective(&cf, stdout);
		rc = 0;
		goto out;
	}
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
	shutdown_install();
	if ((in.kp = kpub_new(&cf, cf.ingest_deadline_ms, err, sizeof(err))) == NULL) {
		log_errx("%s", err);
		goto out;
	}
	struct dispatch_conf dc = {
	    .socket_path = cf.ingest_socket,
	    .socket_mode = (int)cf.ingest_socket_mode,
	    .threads = (int)cf.ingest_threads,
	    .max_body = (size_t)cf.ingest_max_body_bytes,
	    .routes = routes,
	    .nroutes = sizeof(routes) / sizeof(routes[0]),
	    .app = &in,
	};
	if (dispatch_run(&dc, err, sizeof(err)) < 0) {
		log_errx("%s", err);
		goto out;
	}
	rc = kpub_fatal(in.kp) ? 1 : 0;
out:
	kpub_destroy(in.kp, 5000);
	sig_key_destroy(in.key);
	config_release(&cf);
	log_info("exiting with status %d", rc);
	return rc;
}
