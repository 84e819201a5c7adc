/*
 * mailpipectl_partitions.c: `mailpipectl partitions [--months-ahead N]`,
 * creates the missing monthly partitions of events through
 * mailpipe_ensure_partitions() (sql/004_partitions.sql). Run it from a
 * monthly timer; `mailpipectl migrate` calls it too.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "mailpipectl.h"

#define MONTHS_AHEAD_MAX 120 /* the SQL function's own limit */

static void
partitions_usage(FILE *out)
{
	fputs("usage: mailpipectl partitions [--months-ahead N] [--database-url URL]\n"
	      "  create the monthly partitions events_yYYYYmMM from last month through N\n"
	      "  months ahead (default 3) that do not exist yet, and print how many were\n"
	      "  created; a month whose rows already sit in the default partition is\n"
	      "  skipped with a notice\n",
	      out);
}

int
mailpipectl_partitions_cmd(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"months-ahead", required_argument, NULL, 'm'},
	    {"database-url", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *url = NULL;
	PGconn *conn = NULL;
	char err[1024], *end;
	int months_ahead = -1, created = 0, opt, status = MAILPIPECTL_EXIT_FAIL;
	long n;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'm':
			errno = 0;
			n = strtol(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || n < 0 ||
			    n > MONTHS_AHEAD_MAX) {
				mailpipectl_errx("invalid '--months-ahead' '%s': expected 0 to %d",
						 optarg, MONTHS_AHEAD_MAX);
				return MAILPIPECTL_EXIT_USAGE;
			}
			months_ahead = (int)n;
			break;
		case 'd': url = optarg; break;
		default:
			mailpipectl_help_or_bad_option("partitions", NULL, opt, argv[optind - 1],
						       partitions_usage);
			return MAILPIPECTL_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		mailpipectl_errx("partitions: unexpected argument '%s'", argv[optind]);
		partitions_usage(stderr);
		return MAILPIPECTL_EXIT_USAGE;
	}

	if (mailpipectl_db_connect(url, &conn, err, sizeof(err)) < 0 ||
	    mailpipectl_db_ensure_partitions(conn, months_ahead, &created, err, sizeof(err)) < 0) {
		mailpipectl_errx("%s", err);
		goto out;
	}
	printf("partitions: %d created\n", created);
	status = MAILPIPECTL_EXIT_OK;
out:
	PQfinish(conn);
	return status;
}
