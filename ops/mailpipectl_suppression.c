/*
 * mailpipectl_suppression.c: `mailpipectl suppression list|remove`, the addresses mail is
 * no longer sent to (table suppressions, sql/007_suppressions.sql, filled by the sink).
 *
 * remove deletes the row in PostgreSQL, which the sender checks and which is
 * authoritative, then removes the address from the Redis set <redis.prefix>suppressed,
 * the mirror the sink keeps; lib/suppress.c does both, for the read API's DELETE too.  Redis being
 * away does not undo the removal: it is reported, and running the command again once Redis is back
 * clears the set too.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "config.h"
#include "mailpipectl.h"
#include "rconn.h"
#include "suppress.h"

#define LIMIT_DEFAULT 100
#define LIMIT_MAX 1000000L

/* $1 a reason or NULL, $2 the limit or NULL (no limit) */
static const char list_sql[] =
    "SELECT email, reason, coalesce(source_event, '-'),"
    " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    " FROM suppressions WHERE $1::text IS NULL OR reason = $1::text"
    " ORDER BY created_at DESC, email LIMIT $2::bigint";

static void
suppression_usage(FILE *out)
{
	fputs("usage: mailpipectl suppression list [--reason R] [--limit N] [--database-url URL]\n"
	      "       mailpipectl suppression remove EMAIL [--database-url URL] [--redis-url URL]\n"
	      "  list: suppressed addresses, newest first (at most N, default 100; 0 = all),\n"
	      "    only those with reason R (bounce, spamreport, unsubscribe, group_unsubscribe)\n"
	      "    when given\n"
	      "  remove: mail to EMAIL is sent again: deletes it from PostgreSQL (authoritative)\n"
	      "    and from the Redis set <redis.prefix>suppressed\n"
	      "  database.url, redis.url and redis.prefix come from the shared settings\n"
	      "  (MAILPIPE_CONFIG's file, MAILPIPE_* variables) unless given here\n",
	      out);
}

/*
 * Parses the options of a subcommand (argv[0] is its name).  Returns -1 after printing why
 * (exit status in *status), else 0 with optind at the first operand.
 */
static int
parse_opts(int argc, char **argv, int is_list, const char **db_url, const char **redis_url,
	   const char **reason, long *limit, int *status)
{
	static const struct option longopts[] = {
	    {"database-url", required_argument, NULL, 'd'},
	    {"redis-url", required_argument, NULL, 'r'},
	    {"reason", required_argument, NULL, 'R'},
	    {"limit", required_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char *end;
	int opt, idx = 0;

	*status = MAILPIPECTL_EXIT_USAGE;
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":h", longopts, &idx)) != -1) {
		/* --reason and --limit belong to list, --redis-url to remove */
		if (((opt == 'R' || opt == 'l') && !is_list) || (opt == 'r' && is_list)) {
			mailpipectl_errx("suppression %s: '--%s' is not one of its options",
					 argv[0], longopts[idx].name);
			suppression_usage(stderr);
			return -1;
		}
		switch (opt) {
		case 'd': *db_url = optarg; break;
		case 'r': *redis_url = optarg; break;
		case 'R':
			if (optarg[0] == '\0') {
				mailpipectl_errx("invalid '--reason': empty");
				return -1;
			}
			*reason = optarg;
			break;
		case 'l':
			errno = 0;
			*limit = strtol(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || *limit < 0 ||
			    *limit > LIMIT_MAX) {
				mailpipectl_errx("invalid '--limit' '%s': expected 0 to %ld",
						 optarg, LIMIT_MAX);
				return -1;
			}
			break;
		default:
			mailpipectl_help_or_bad_option("suppression", argv[0], opt,
						       argv[optind - 1], suppression_usage);
			return -1;
		}
	}
	return 0;
}

static int
list_cmd(int argc, char **argv)
{
	const char *db_url = NULL, *redis_url = NULL, *reason = NULL, *params[2];
	char err[1024] = "", limit_s[24];
	static const struct mailpipectl_col cols[] = {
	    {"EMAIL", 0}, {"REASON", 0}, {"SOURCE_EVENT", 0}, {"CREATED_AT", 0}};
	int status, n;
	long limit = LIMIT_DEFAULT;
	PGresult *res = NULL;
	PGconn *conn = NULL;

	if (parse_opts(argc, argv, 1, &db_url, &redis_url, &reason, &limit, &status) < 0)
		return status;
	status = MAILPIPECTL_EXIT_FAIL;
	if (optind < argc) {
		mailpipectl_errx("suppression list: unexpected argument '%s'", argv[optind]);
		suppression_usage(stderr);
		return MAILPIPECTL_EXIT_USAGE;
	}
	if (mailpipectl_db_connect(db_url, &conn, err, sizeof(err)) < 0)
		goto out;
	/* one row more than asked tells whether there are more */
	snprintf(limit_s, sizeof(limit_s), "%ld", limit + 1);
	params[0] = reason;
	params[1] = limit > 0 ? limit_s : NULL; /* LIMIT NULL: no limit */
	if ((res = mailpipectl_db_exec(conn, list_sql, 2, params, 0, PGRES_TUPLES_OK, err,
				       sizeof(err), "cannot list suppressions")) == NULL)
		goto out;
	n = PQntuples(res);
	if (limit > 0 && n > limit)
		n = (int)limit;
	mailpipectl_print_table(res, n, cols, 4);
	if (limit > 0 && PQntuples(res) > limit)
		mailpipectl_errx("showing the newest %ld: there are more (see '--limit')", limit);
	status = MAILPIPECTL_EXIT_OK;
out:
	return mailpipectl_db_end(status, err, res, conn);
}

static int
remove_cmd(int argc, char **argv)
{
	const char *db_url = NULL, *redis_url = NULL, *unused = NULL, *params[2];
	const char *members[4];
	char email[SUPPRESS_EMAIL_MAX + 1], err[1024] = "";
	int status, i, have_cf = 0;
	size_t n;
	long long removed = 0;
	long unused_limit = 0;
	PGresult *res = NULL;
	PGconn *conn = NULL;
	struct rconn *rc = NULL;
	struct config cf;

	if (parse_opts(argc, argv, 0, &db_url, &redis_url, &unused, &unused_limit, &status) < 0)
		return status;
	status = MAILPIPECTL_EXIT_FAIL;
	if (argc - optind != 1) {
		mailpipectl_errx("suppression remove: expected one EMAIL");
		suppression_usage(stderr);
		return MAILPIPECTL_EXIT_USAGE;
	}
	if (suppress_normalize(argv[optind], email, sizeof(email)) < 0) {
		mailpipectl_errx("invalid email '%s': expected an address without white space",
				 argv[optind]);
		return MAILPIPECTL_EXIT_USAGE;
	}
	have_cf = 1;
	if (config_load(&cf, NULL, err, sizeof(err)) < 0)
		goto out;
	/* a bad url stops here, before anything changed */
	if ((rc = rconn_new(redis_url ? redis_url : cf.redis_url, err, sizeof(err))) == NULL ||
	    mailpipectl_db_connect(db_url ? db_url : cf.database_url, &conn, err, sizeof(err)) < 0)
		goto out;

	/* any reason (list NULL); matched lower-cased by PostgreSQL as well */
	params[0] = NULL;
	params[1] = email;
	if ((res = mailpipectl_db_exec(conn, suppress_delete_sql, 2, params, 0, PGRES_TUPLES_OK,
				       err, sizeof(err), "cannot remove '%s' from suppressions",
				       email)) == NULL)
		goto out;
	/* the set holds what the rows held; the address lower-cased, in any case */
	n = suppress_members(res, email, members, sizeof(members) / sizeof(members[0]));
	for (i = 0; i < PQntuples(res); i++)
		printf("removed %s (reason %s) from suppressions\n", PQgetvalue(res, i, 0),
		       PQgetvalue(res, i, 1));

	if (suppress_unmirror(rc, cf.redis_prefix, members, n, &removed) < 0) {
		mailpipectl_errx("warning: cannot remove '%s' from the redis set '%ssuppressed'",
				 email, cf.redis_prefix);
		if (PQntuples(res) > 0)
			mailpipectl_errx(
			    "warning: the sender checks postgresql (authoritative), so "
			    "the removal already takes effect; run this again once "
			    "redis can be reached to clear the set too");
		removed = 0;
	}
	if (PQntuples(res) == 0 && removed > 0) {
		/* an earlier removal that could not reach redis, or a set out of step */
		printf("%s was not in suppressions; removed it from the redis set '%ssuppressed'\n",
		       email, cf.redis_prefix);
	} else if (PQntuples(res) == 0) {
		snprintf(err, sizeof(err), "'%s' is not suppressed", email);
		goto out;
	}
	status = MAILPIPECTL_EXIT_OK;
out:
	rconn_destroy(rc);
	if (have_cf)
		config_release(&cf);
	return mailpipectl_db_end(status, err, res, conn);
}

int
mailpipectl_suppression_cmd(int argc, char **argv)
{
	static const struct mailpipectl_sub subs[] = {
	    {"list", list_cmd},
	    {"remove", remove_cmd},
	};

	return mailpipectl_run_sub("suppression", subs, sizeof(subs) / sizeof(subs[0]),
				   suppression_usage, argc, argv);
}
