/*
 * pgconn: see pgconn.h.
 */
#include "pgconn.h"

#include <stdio.h>
#include <string.h>

PGconn *
pgconn_open_timeout(const char *url, const char *app, int timeout_s, char *err, size_t errlen)
{
	char timeout[16];

	/* Defaults first: expand_dbname lets the url's own keywords override them. */
	const char *keys[] = {"connect_timeout",
			      "keepalives_idle",
			      "keepalives_interval",
			      "keepalives_count",
			      "application_name",
			      "dbname",
			      NULL};
	const char *vals[] = {timeout, "10", "5", "3", app, url, NULL};
	PGconn *c;

	snprintf(timeout, sizeof(timeout), "%d", timeout_s);
	c = PQconnectdbParams(keys, vals, 1);

	if (c == NULL) {
		snprintf(err, errlen, "cannot connect to postgresql: out of memory");
		return NULL;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		pgconn_error(err, errlen, "cannot connect to postgresql", c, NULL);
		PQfinish(c);
		return NULL;
	}
	return c;
}

PGconn *
pgconn_open(const char *url, const char *app, char *err, size_t errlen)
{
	return pgconn_open_timeout(url, app, 5, err, errlen);
}

enum pg_failure
pgconn_classify(PGconn *conn, const PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (PQstatus(conn) != CONNECTION_OK || state == NULL)
		return PG_FAIL_CONNECTION;
	if (strncmp(state, "08", 2) == 0 || strncmp(state, "57", 2) == 0)
		return PG_FAIL_CONNECTION;
	if (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0)
		return PG_FAIL_DATA;
	return PG_FAIL_OTHER;
}

void
pgconn_error(char *err, size_t errlen, const char *what, PGconn *conn, const PGresult *res)
{
	const char *msg =
	    res && PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res) : PQerrorMessage(conn);

	if (what)
		snprintf(err, errlen, "%s: %s", what, msg);
	else
		snprintf(err, errlen, "%s", msg);
	err[strcspn(err, "\n")] = '\0';
}

int
pgconn_exec(PGconn *conn, const char *sql, enum pg_failure *why, char *err, size_t errlen)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);
	int rc = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		*why = pgconn_classify(conn, res);
		pgconn_error(err, errlen, NULL, conn, res);
		rc = -1;
	}
	PQclear(res);
	return rc;
}
