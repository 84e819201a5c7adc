/*
 * mailpipectl_dlq.h: what `mailpipectl dlq` (mailpipectl_dlq.c) shares with its replay
 * (mailpipectl_dlq_replay.c): the parsed options and the filter over dead_letters.
 */
#ifndef MAILPIPECTL_DLQ_H
#define MAILPIPECTL_DLQ_H

#include <stdio.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "config.h"
#include "mailpipectl.h"

/* which subcommand takes an option */
enum {
	O_LIST = 1,
	O_SHOW = 2,
	O_REPLAY = 4,
	O_DISCARD = 8,
	O_FILTER = O_LIST | O_REPLAY | O_DISCARD,
};

struct dlq_opts {
	const char *db_url, *redis_url, *topic, *reason;
	const char *since_s, *until_s; /* as given, for the time filters */
	const char *since, *until;     /* epoch seconds as text, or NULL */
	char since_buf[32], until_buf[32];
	int pending, dry_run, all, nfilters;
	long limit;
	int has_limit;
};

/* $1 topic, $2 reason substring, $3 since, $4 until (epoch seconds), $5 pending only */
#define FILTER_WHERE                                                                               \
	" ($1::text IS NULL OR topic = $1::text)"                                                  \
	" AND ($2::text IS NULL OR strpos(lower(coalesce(error, '')), lower($2::text)) > 0)"       \
	" AND ($3::float8 IS NULL OR created_at >= to_timestamp($3::float8))"                      \
	" AND ($4::float8 IS NULL OR created_at < to_timestamp($4::float8))"                       \
	" AND (NOT $5::bool OR (replayed_at IS NULL AND discarded_at IS NULL))"

void dlq_usage(FILE *out);

/*
 * Parses the options of subcommand `which` (O_*; argv[0] is its name).  Returns -1 after
 * printing why, else 0 with optind at the first operand.
 */
int dlq_parse_opts(int argc, char **argv, int which, struct dlq_opts *o) MAILPIPECTL_MUSTCHECK;

/* What a replay or discard works on: ids, or filters, or --all; -1 after printing. */
int dlq_check_selection(const struct dlq_opts *o, int argc, char **argv) MAILPIPECTL_MUSTCHECK;

/* Operands argv[optind..] as dead letter ids: a new JSON array, or NULL after printing. */
json_t *dlq_parse_ids(int argc, char **argv, const char *sub);

/* The parameters $1..$5 of FILTER_WHERE (borrowed from o). */
void dlq_filter_params(const struct dlq_opts *o, int pending, const char *params[5]);

/* `dlq replay` (mailpipectl_dlq_replay.c) */
int dlq_replay_cmd(int argc, char **argv);

#endif /* MAILPIPECTL_DLQ_H */
