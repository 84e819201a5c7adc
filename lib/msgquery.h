/*
 * msgquery: the `query` parameter of GET /v3/messages (SendGrid's Email Activity query
 * language, the subset below) turned into a SQL WHERE clause over the messages table.
 *
 * The clause is made only of fixed column expressions, fixed operators, AND / OR / NOT,
 * parentheses and $1..$n placeholders: every value the user wrote is a parameter, never
 * SQL text.  Grammar (keywords and field names in any case, white space between tokens):
 *
 *   query      = or_expr EOF
 *   or_expr    = and_expr { "OR" and_expr }
 *   and_expr   = unary { "AND" unary }
 *   unary      = "NOT" unary | "(" or_expr ")" | condition
 *   condition  = field ( "=" | "!=" | "<>" ) string
 *              | field [ "NOT" ] "LIKE" string
 *              | field [ "NOT" ] "BETWEEN" timestamp "AND" timestamp
 *   timestamp  = "TIMESTAMP" string          (an RFC 3339 date-time)
 *   string     = '"' { any UTF-8 but '"' and '\' | '\"' | '\\' } '"'
 *
 *   field            =, !=                    LIKE                        BETWEEN
 *   to_email         to_emails @> ARRAY[$n]   some element LIKE $n        -
 *   from_email       from_email = $n          from_email LIKE $n          -
 *   subject          subject = $n             subject LIKE $n             -
 *   status           status = $n              -                           -
 *   msg_id           message_id = $n          message_id LIKE $n          -
 *   categories       categories @> ARRAY[$n]  some element LIKE $n        -
 *                    (categories NULL read as an empty list)
 *   last_event_time  -                        -                           $n AND $m
 *
 * "!=" on a list means no element equals ($n <> ALL(...)).  LIKE takes SQL's wildcards
 * (% and _, \ escapes them).  status values are the message statuses of 006_messages.sql.
 * A text column that is NULL matches no comparison, "!=" and NOT LIKE included (SQL's
 * rules).
 *
 * Limits: MSGQUERY_MAX_LEN bytes of query, MSGQUERY_MAX_PARAMS values, MSGQUERY_MAX_DEPTH
 * nested parentheses and NOTs.  Errors are lowercase and name the 1-based byte position:
 *   unexpected ';' at position 19
 *   unknown field 'foo' at position 1
 *   field 'status' does not support LIKE at position 8
 */
#ifndef MAILPIPE_MSGQUERY_H
#define MAILPIPE_MSGQUERY_H

#include <stddef.h>

#define MSGQUERY_MAX_LEN 4096  /* bytes of query text */
#define MSGQUERY_MAX_PARAMS 31 /* values ($1..$31); params[] keeps a slot for the caller */
#define MSGQUERY_MAX_DEPTH 32  /* nested "(" and "NOT" */

struct msgquery {
	char where[2048];       /* the clause, NUL-terminated; safe to AND with more */
	const char *params[32]; /* params[i] is $(i+1), pointing into owned */
	int nparams;
	char *owned; /* one allocation holding every value */
	/*
	 * A "last_event_time BETWEEN $time_lo AND $time_hi" that every match satisfies (one
	 * of the terms ANDed at the top of the query, not under NOT or OR), so the caller may
	 * pick a plan from it; 0 and 0 when the query has none.  The first such term wins.
	 */
	int time_lo, time_hi;
};

/*
 * Parses query (NUL-terminated) into q, which the caller provides (its contents are
 * overwritten).  On success returns 0 and q holds where, params and nparams until
 * msgquery_release(); the caller passes params[0..nparams-1] as $1..$nparams and may use
 * $(nparams+1) onwards for its own.  Returns -1 with err set (when errlen > 0) and q left
 * empty (nothing to release, releasing is harmless).
 */
int msgquery_parse(const char *query, struct msgquery *q, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Frees what q owns and empties it; may be called again. */
void msgquery_release(struct msgquery *q);

#endif
