/*
 * mailpipectl_db.c: connecting to PostgreSQL, running statements and reporting their
 * errors for the mailpipectl subcommands.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "mailpipectl.h"

/* Appends src to dst (size dstlen, NUL-terminated), turning each run of
 * whitespace (libpq's messages span lines) into one space. */
static void
append_oneline(char *dst, size_t dstlen, const char *src)
{
	size_t n = strlen(dst);
	char c;

	for (; *src != '\0' && n + 1 < dstlen; src++) {
		c = *src;
		if (isspace((unsigned char)c)) {
			if (n == 0 || dst[n - 1] == ' ')
				continue;
			c = ' ';
		}
		dst[n++] = c;
	}
	dst[n] = '\0';
}

static void
trim_end(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && s[n - 1] == ' ')
		s[--n] = '\0';
}

void
mailpipectl_db_error(PGconn *conn, const PGresult *res, char *err, size_t errlen)
{
	const char *primary = NULL, *detail = NULL, *hint = NULL;

	if (errlen == 0)
		return;
	err[0] = '\0';
	if (res != NULL) {
		primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
		hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
		if (primary == NULL)
			primary = PQresultErrorMessage(res);
	}
	if (primary == NULL || primary[0] == '\0')
		primary = conn != NULL ? PQerrorMessage(conn) : "out of memory";
	if (primary[0] == '\0')
		primary = "unknown error";

	append_oneline(err, errlen, primary);
	trim_end(err);
	if (detail != NULL) {
		append_oneline(err, errlen, " (");
		append_oneline(err, errlen, detail);
		append_oneline(err, errlen, ")");
	}
	if (hint != NULL) {
		append_oneline(err, errlen, " (hint: ");
		append_oneline(err, errlen, hint);
		append_oneline(err, errlen, ")");
	}
	trim_end(err);
}

int
mailpipectl_db_end(int status, const char *err, PGresult *res, PGconn *conn)
{
	if (status != MAILPIPECTL_EXIT_OK && err[0] != '\0')
		mailpipectl_errx("%s", err);
	PQclear(res);
	PQfinish(conn);
	return status;
}

/* Prints server NOTICEs and WARNINGs, e.g. from mailpipe_ensure_partitions(). */
static void
notice_receiver(void *arg, const PGresult *res)
{
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	char line[1024] = "";
	size_t i;

	(void)arg;
	if (msg == NULL)
		return;
	append_oneline(line, sizeof(line), severity != NULL ? severity : "notice");
	for (i = 0; line[i] != '\0'; i++)
		line[i] = (char)tolower((unsigned char)line[i]);
	append_oneline(line, sizeof(line), ": ");
	append_oneline(line, sizeof(line), msg);
	trim_end(line);
	mailpipectl_errx("%s", line);
}

int
mailpipectl_db_connect(const char *url, PGconn **out, char *err, size_t errlen)
{
	/* entries before dbname are defaults the url may override; entries after
	 * it override the url (none do) */
	const char *keys[] = {"connect_timeout", "dbname", "fallback_application_name", NULL};
	const char *vals[] = {"10", NULL, "mailpipectl", NULL};
	PGconn *conn = NULL;
	char why[512];
	int rc = -1;

	struct config cf;
	int have_cf = 0;

	*out = NULL;
	if (url == NULL) {
		/* The shared settings: MAILPIPE_CONFIG's file, then MAILPIPE_DATABASE_URL. */
		have_cf = 1;
		if (config_load(&cf, NULL, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s", why);
			goto out;
		}
		url = cf.database_url;
	}
	if (url == NULL || url[0] == '\0') {
		snprintf(err, errlen,
			 "no database url: set " MAILPIPECTL_DATABASE_URL_ENV
			 " or pass '--database-url'");
		goto out;
	}
	vals[1] = url;
	conn = PQconnectdbParams(keys, vals, 1);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		mailpipectl_db_error(conn, NULL, why, sizeof(why));
		snprintf(err, errlen, "cannot connect to database: %s", why);
		goto out;
	}
	PQsetNoticeReceiver(conn, notice_receiver, NULL);
	*out = conn;
	conn = NULL;
	rc = 0;
out:
	PQfinish(conn);
	if (have_cf)
		config_release(&cf);
	return rc;
}

static PGresult *
vexec(PGconn *conn, const char *sql, int n, const char *const *params, int binary,
      ExecStatusType want, char *err, size_t errlen, const char *fmt, va_list ap)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, binary ? 1 : 0);
	char what[256], why[512];

	if (PQresultStatus(res) == want)
		return res;
	mailpipectl_db_error(conn, res, why, sizeof(why));
	vsnprintf(what, sizeof(what), fmt, ap);
	snprintf(err, errlen, "%s: %s", what, why);
	PQclear(res);
	return NULL;
}

PGresult *
mailpipectl_db_exec(PGconn *conn, const char *sql, int n, const char *const *params, int binary,
		    ExecStatusType want, char *err, size_t errlen, const char *fmt, ...)
{
	PGresult *res;
	va_list ap;

	va_start(ap, fmt);
	res = vexec(conn, sql, n, params, binary, want, err, errlen, fmt, ap);
	va_end(ap);
	return res;
}

int
mailpipectl_db_command(PGconn *conn, const char *sql, int n, const char *const *params,
		       long long *tuples, char *err, size_t errlen, const char *fmt, ...)
{
	PGresult *res;
	va_list ap;

	va_start(ap, fmt);
	res = vexec(conn, sql, n, params, 0, PGRES_COMMAND_OK, err, errlen, fmt, ap);
	va_end(ap);
	if (res == NULL)
		return -1;
	if (tuples != NULL)
		*tuples = strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return 0;
}

int
mailpipectl_db_ensure_partitions(PGconn *conn, int months_ahead, int *created, char *err,
				 size_t errlen)
{
	PGresult *res = NULL;
	char arg[16], why[512];
	const char *params[1];
	char *end = NULL;
	long n = -1;
	int rc = -1;

	if (months_ahead < 0) {
		res = PQexec(conn, "SELECT mailpipe_ensure_partitions()");
	} else {
		snprintf(arg, sizeof(arg), "%d", months_ahead);
		params[0] = arg;
		res = PQexecParams(conn, "SELECT mailpipe_ensure_partitions($1::int)", 1, NULL,
				   params, NULL, NULL, 0);
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		mailpipectl_db_error(conn, res, why, sizeof(why));
		snprintf(err, errlen, "cannot ensure partitions of 'events': %s", why);
		goto out;
	}
	errno = 0;
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		n = strtol(PQgetvalue(res, 0, 0), &end, 10);
	if (n < 0 || n > 100000 || errno != 0 || end == NULL || *end != '\0') {
		snprintf(err, errlen, "cannot ensure partitions of 'events': unexpected result");
		goto out;
	}
	*created = (int)n;
	rc = 0;
out:
	PQclear(res);
	return rc;
}
