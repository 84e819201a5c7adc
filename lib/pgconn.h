/*
 * pgconn: opening PostgreSQL connections and classifying what failed.
 */
#ifndef MAILPIPE_PGCONN_H
#define MAILPIPE_PGCONN_H

#include <stddef.h>

#include <libpq-fe.h>

enum pg_failure {
	PG_FAIL_CONNECTION, /* the server or the link went away: reconnect and retry */
	PG_FAIL_DATA,       /* this data can never be written (SQLSTATE class 22, 23) */
	PG_FAIL_OTHER,      /* anything else: retry later, loudly */
};

/*
 * Connects to url (a libpq URI or conninfo) with a connect timeout, TCP keepalives and
 * application_name = app; the url's own settings win.  NULL with err on failure.
 */
PGconn *pgconn_open(const char *url, const char *app, char *err, size_t errlen);

/* The same with connect_timeout timeout_s (pgconn_open: 5 s), for a caller a request waits on. */
PGconn *pgconn_open_timeout(const char *url, const char *app, int timeout_s, char *err,
			    size_t errlen);

/* Classifies a failed result (res may be NULL) on conn. */
enum pg_failure pgconn_classify(PGconn *conn, const PGresult *res);

/*
 * Fills err with "what: message", or only the message when what is NULL.  The message is the
 * first line of res's error, or of conn's when res is NULL or carries none.  conn and res
 * are borrowed.
 */
void pgconn_error(char *err, size_t errlen, const char *what, PGconn *conn, const PGresult *res);

/* Runs a command without parameters that must succeed; -1 with err filled. */
int pgconn_exec(PGconn *conn, const char *sql, enum pg_failure *why, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
