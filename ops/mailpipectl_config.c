/*
 * mailpipectl_config.c: `mailpipectl config` checks and prints the effective settings;
 * `mailpipectl config-table` prints the settings table the README embeds.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "mailpipectl.h"

int
mailpipectl_config_cmd(int argc, char **argv)
{
	struct config cf;
	const char *path = NULL;
	char err[512];
	int rc = MAILPIPECTL_EXIT_FAIL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			path = argv[++i];
		} else {
			fprintf(stderr, "usage: mailpipectl config [-c FILE]\n");
			return MAILPIPECTL_EXIT_USAGE;
		}
	}
	if (config_load(&cf, path, err, sizeof(err)) < 0) {
		mailpipectl_errx("%s", err);
		goto out;
	}
	config_write_effective(&cf, stdout);
	rc = MAILPIPECTL_EXIT_OK;
out:
	config_release(&cf);
	return rc;
}

int
mailpipectl_config_table_cmd(int argc, char **argv)
{
	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: mailpipectl config-table\n");
		return MAILPIPECTL_EXIT_USAGE;
	}
	config_write_markdown(stdout);
	return MAILPIPECTL_EXIT_OK;
}
