/*
 * mailpipectl.h: shared pieces of the mailpipe operations CLI.
 *
 * Every subcommand is a function with main()'s signature: argv[0] is the
 * subcommand's name, the return value is the process exit status
 * (MAILPIPECTL_EXIT_*). Helpers return 0 or -1 and fill a caller-owned error
 * buffer; they never print.
 */
#ifndef MAILPIPECTL_H
#define MAILPIPECTL_H

#include <stddef.h>
#include <stdio.h>

#include <libpq-fe.h>

#define MAILPIPECTL_MUSTCHECK __attribute__((warn_unused_result))

enum {
	MAILPIPECTL_EXIT_OK = 0,
	MAILPIPECTL_EXIT_FAIL = 1,  /* the command ran and failed */
	MAILPIPECTL_EXIT_USAGE = 2, /* bad command line */
};

/* environment variable read when --database-url is not given */
#define MAILPIPECTL_DATABASE_URL_ENV "MAILPIPE_DATABASE_URL"

/* subcommands (mailpipectl_migrate.c, mailpipectl_partitions.c) */
int mailpipectl_migrate_cmd(int argc, char **argv);
int mailpipectl_partitions_cmd(int argc, char **argv);
int mailpipectl_config_cmd(int argc, char **argv);
int mailpipectl_config_table_cmd(int argc, char **argv);
/* mailpipectl_apikey.c, mailpipectl_suppression.c */
int mailpipectl_apikey_cmd(int argc, char **argv);
int mailpipectl_suppression_cmd(int argc, char **argv);
/* mailpipectl_dlq.c, mailpipectl_replay.c */
int mailpipectl_dlq_cmd(int argc, char **argv);
int mailpipectl_replay_cmd(int argc, char **argv);
/* mailpipectl_retention.c, mailpipectl_restore.c, mailpipectl_checkconfig.c */
int mailpipectl_retention_cmd(int argc, char **argv);
int mailpipectl_restore_cmd(int argc, char **argv);
int mailpipectl_check_config_cmd(int argc, char **argv);

/*
 * Parses an ISO 8601 time (YYYY-MM-DD[THH:MM[:SS[.frac]]][Z|+HH:MM], UTC when no zone)
 * or, when relative_ok, a time ago (90s, 30m, 2h, 7d, 1w) into seconds since the epoch.
 * Returns -1 when s is neither.
 */
int mailpipectl_parse_time(const char *s, int relative_ok, double *epoch) MAILPIPECTL_MUSTCHECK;

/* A subcommand of a command group such as `apikey create`. */
struct mailpipectl_sub {
	const char *name;
	int (*fn)(int argc, char **argv);
};

/*
 * Runs the subcommand argv[1] of group (argv[0] is the group's name) from subs; usage(out)
 * describes the group.  Unknown or missing subcommands print usage and return
 * MAILPIPECTL_EXIT_USAGE.
 */
int mailpipectl_run_sub(const char *group, const struct mailpipectl_sub *subs, size_t n,
			void (*usage)(FILE *out), int argc, char **argv);

/*
 * What a getopt loop of `group [sub]` leaves to its default case, after which the command
 * exits with MAILPIPECTL_EXIT_USAGE: opt 'h' (--help) prints usage to stdout; anything
 * else is a getopt failure -- ':' a missing value, else an unknown option; arg is
 * argv[optind - 1] -- reported before usage is printed to stderr.
 */
void mailpipectl_help_or_bad_option(const char *group, const char *sub, int opt, const char *arg,
				    void (*usage_fn)(FILE *out));

/* prints "mailpipectl: <msg>\n" to stderr */
void mailpipectl_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A column of mailpipectl_print_table(): its heading and MAILPIPECTL_COL_* flags. */
struct mailpipectl_col {
	const char *head;
	int flags;
};

#define MAILPIPECTL_COL_RIGHT 1       /* right-aligned (numbers) */
#define MAILPIPECTL_COL_CLEAN 2       /* control characters printed as '?' (typed by hand) */
#define MAILPIPECTL_TABLE_MAX_COLS 16 /* more are left out */

/*
 * Prints the first nrows rows of res (at most all) to stdout as a table: the headings,
 * then a line per row, columns 0..ncols-1 of res two spaces apart, each as wide as its
 * widest value or heading; the last column is not padded.
 */
void mailpipectl_print_table(const PGresult *res, int nrows, const struct mailpipectl_col *cols,
			     int ncols);

/*
 * Connects to url, or to $MAILPIPE_DATABASE_URL when url is NULL. url may be
 * a libpq URI or a key=value conninfo string. Server notices are printed to
 * stderr as "mailpipectl: notice: ...". On success *out is a new connection
 * the caller closes with PQfinish(); on failure *out is NULL and err says why
 * (never containing the url, which may hold a password).
 */
int mailpipectl_db_connect(const char *url, PGconn **out, char *err,
			   size_t errlen) MAILPIPECTL_MUSTCHECK;

/*
 * Copies the error of res (or, when res is NULL, of conn) into err as one
 * line: the primary message, then " (DETAIL)" when there is one; the
 * trailing newline libpq adds is removed. Borrowed: conn, res.
 */
void mailpipectl_db_error(PGconn *conn, const PGresult *res, char *err, size_t errlen);

/*
 * The end of a subcommand that used the database: prints err (mailpipectl_errx) when
 * status is not MAILPIPECTL_EXIT_OK and err is not empty, then PQclear()s res and
 * PQfinish()es conn (each may be NULL; both are taken).  Returns status.
 */
int mailpipectl_db_end(int status, const char *err, PGresult *res, PGconn *conn);

/*
 * Runs sql with n text parameters (NULL is SQL NULL), the result in text, or in binary
 * when binary.  Returns the result (the caller PQclear()s it) when its status is want;
 * else NULL with err "<what>: <the server's error>", what formatted from fmt.
 */
PGresult *mailpipectl_db_exec(PGconn *conn, const char *sql, int n, const char *const *params,
			      int binary, ExecStatusType want, char *err, size_t errlen,
			      const char *fmt, ...)
    __attribute__((format(printf, 9, 10))) MAILPIPECTL_MUSTCHECK;

/*
 * Runs the command sql (PGRES_COMMAND_OK) as mailpipectl_db_exec() does; the rows it
 * touched in *tuples unless NULL.  -1 with err.
 */
int mailpipectl_db_command(PGconn *conn, const char *sql, int n, const char *const *params,
			   long long *tuples, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 8, 9))) MAILPIPECTL_MUSTCHECK;

/*
 * SELECT mailpipe_ensure_partitions(months_ahead); months_ahead < 0 means the
 * function's default. Stores the number of partitions created in *created.
 */
int mailpipectl_db_ensure_partitions(PGconn *conn, int months_ahead, int *created, char *err,
				     size_t errlen) MAILPIPECTL_MUSTCHECK;

#endif /* MAILPIPECTL_H */
