/*
 * prog: see prog.h.
 */
#include "prog.h"

#include <stdio.h>
#include <string.h>

#include "dispatch.h"
#include "log.h"
#include "metrics_push.h"
#include "reload.h"
#include "shutdown.h"

static const char *config_path;

const char *
prog_config_path(void)
{
	return config_path;
}

int
prog_start(int argc, char **argv, struct config *cf, int *status)
{
	const char *path = NULL;
	char err[512];
	int print = 0;
	enum log_level lvl;

	memset(cf, 0, sizeof(*cf));
	log_init(argv[0]);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			path = argv[++i];
		} else if (strcmp(argv[i], "--print-config") == 0) {
			print = 1;
		} else {
			fprintf(stderr, "usage: %s [-c config-file] [--print-config]\n", argv[0]);
			*status = 2;
			return 0;
		}
	}
	config_path = path;
	if (config_load(cf, path, err, sizeof(err)) < 0) {
		log_errx("%s", err);
		*status = 1;
		return 0;
	}
	if (log_level_parse(cf->log_level, &lvl) == 0)
		log_set_level(lvl);
	if (print) {
		config_write_effective(cf, stdout);
		*status = 0;
		return 0;
	}
	return 1;
}

int
prog_install(const struct config *cf, const struct reload_conf *rl, const char *process)
{
	char err[512];

	shutdown_install();
	reload_install(rl);
	if (process != NULL && metrics_push_start(cf, process, err, sizeof(err)) < 0) {
		log_errx("%s", err);
		return -1;
	}
	return 0;
}

int
prog_serve(const struct dispatch_conf *dc)
{
	char err[512];
	int rc = -1;

	if (reload_start(err, sizeof(err)) < 0) {
		log_errx("%s", err);
		return -1;
	}
	if (dispatch_run(dc, err, sizeof(err)) < 0)
		log_errx("%s", err);
	else
		rc = 0;
	reload_stop();
	return rc;
}
