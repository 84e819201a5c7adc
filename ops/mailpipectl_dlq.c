/*
 * mailpipectl_dlq.c: `mailpipectl dlq list|show|replay|discard`, the dead letters
 * (table dead_letters, sql/003_dead_letters.sql and sql/014_dead_letters_ops.sql); replay is
 * in mailpipectl_dlq_replay.c.
 *
 * Two programs write dead letters: the sink (records of sendgrid.events PostgreSQL or the
 * validator refused, under their own topic, and the events ingest put on
 * sendgrid.events.dlq, under that topic) and the sender (mail that failed for good, under
 * mail.requests).  list and show read them; discard sets discarded_at: the row stays as the
 * record of what failed, but it is no longer pending and is never replayed.  The options
 * and the filters, shared with replay, are parsed here.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "mailpipectl.h"
#include "mailpipectl_dlq.h"

#define LIMIT_DEFAULT 100
#define LIMIT_MAX 100000000L
#define ERROR_CLIP 60
#define STR_(x) #x
#define STR(x) STR_(x)

/* an ISO 8601 UTC time, as the other subcommands print them */
#define ISO_FMT "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'"

/* $6 the limit or NULL, $7 ERROR_CLIP: the error on one line, clipped to that many characters */
static const char list_sql[] =
    "SELECT id::text, coalesce(topic, '-'),"
    " CASE WHEN kafka_partition IS NULL THEN '-'"
    "   ELSE kafka_partition || '/' || coalesce(kafka_offset::text, '-') END,"
    " to_char(created_at AT TIME ZONE 'UTC', " ISO_FMT "),"
    " CASE WHEN discarded_at IS NOT NULL"
    "   THEN 'discarded ' || to_char(discarded_at AT TIME ZONE 'UTC', " ISO_FMT ")"
    "   WHEN replayed_at IS NOT NULL"
    "   THEN to_char(replayed_at AT TIME ZONE 'UTC', " ISO_FMT ")"
    "     || CASE WHEN replay_count > 1 THEN ' (x' || replay_count || ')' ELSE '' END"
    "   ELSE '-' END,"
    " CASE WHEN length(e.err) > $7::int THEN left(e.err, $7::int - 3) || '...'"
    "   ELSE e.err END,"
    " count(*) OVER ()"
    " FROM dead_letters"
    " CROSS JOIN LATERAL (SELECT regexp_replace(coalesce(error, ''), '\\s+', ' ', 'g')) e (err)"
    " WHERE" FILTER_WHERE " ORDER BY dead_letters.id LIMIT $6::bigint";

/* every column as text, fetched in binary: the payload's bytes as they are */
static const char show_sql[] =
    "SELECT id::text, coalesce(topic, '-'), coalesce(kafka_partition::text, '-'),"
    " coalesce(kafka_offset::text, '-'),"
    " coalesce(to_char(created_at AT TIME ZONE 'UTC', " ISO_FMT "), '-'),"
    " coalesce(to_char(replayed_at AT TIME ZONE 'UTC', " ISO_FMT "), '-'),"
    " replay_count::text,"
    " coalesce(to_char(discarded_at AT TIME ZONE 'UTC', " ISO_FMT "), '-'),"
    " coalesce(error, ''), payload"
    " FROM dead_letters WHERE id = $1::bigint";

static const char discard_ids_sql[] =
    "WITH want AS (SELECT jsonb_array_elements_text($1::jsonb)::bigint AS id),"
    " upd AS (UPDATE dead_letters d SET discarded_at = now() FROM want"
    "   WHERE d.id = want.id AND d.discarded_at IS NULL AND NOT $2::bool RETURNING d.id)"
    " SELECT w.id::text, d.id IS NOT NULL, d.discarded_at IS NOT NULL"
    " FROM want w LEFT JOIN dead_letters d USING (id) ORDER BY w.id";

static const char discard_filter_sql[] =
    "WITH pick AS (SELECT id FROM dead_letters WHERE" FILTER_WHERE
    "   ORDER BY id LIMIT $6::bigint),"
    " upd AS (UPDATE dead_letters d SET discarded_at = now() FROM pick"
    "   WHERE d.id = pick.id AND NOT $7::bool RETURNING d.id)"
    " SELECT count(*) FROM pick";

void
dlq_usage(FILE *out)
{
	fputs(
	    "usage: mailpipectl dlq list [FILTERS] [--pending] [--limit N]\n"
	    "       mailpipectl dlq show ID\n"
	    "       mailpipectl dlq replay ID... | FILTERS | --all  [--limit N] [--dry-run]\n"
	    "       mailpipectl dlq discard ID... | FILTERS | --all  [--limit N] [--dry-run]\n"
	    "  FILTERS: --topic T (exact), --reason TEXT (in the error, any case),\n"
	    "    --since TIME, --until TIME (ISO 8601 like 2026-11-22T10:00:00Z, or a time\n"
	    "    ago: 90s, 30m, 2h, 7d)\n"
	    "  list: the dead letters, oldest first (at most N, default 100; 0 = all);\n"
	    "    --pending: only those neither replayed nor discarded\n"
	    "  show: one dead letter with its payload (pretty-printed when JSON)\n"
	    "  replay: re-publishes each payload to its source topic (sendgrid.events.dlq ->\n"
	    "    sendgrid.events, mail.requests.dlq -> mail.requests, a source topic to itself),\n"
	    "    waits for Kafka to acknowledge them, then marks them replayed.  A failed mail\n"
	    "    is reset to queued with a fresh set of attempts first.  With filters or --all\n"
	    "    only pending dead letters; by ID also ones replayed before (a no-op for what\n"
	    "    was stored or sent since)\n"
	    "  discard: marks dead letters as not to be replayed (the rows stay)\n"
	    "  every command also takes --database-url URL; replay takes --redis-url URL;\n"
	    "  they and kafka.brokers come from the shared settings (MAILPIPE_CONFIG's file,\n"
	    "  MAILPIPE_* variables) unless given here\n",
	    out);
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static long long
days_from_civil(long long y, unsigned m, unsigned d)
{
	y -= m <= 2;
	long long era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long long)doe - 719468;
}

/* n digits at *p into *v; advances *p.  -1 if they are not all digits. */
static int
digits(const char **p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (**p < '0' || **p > '9')
			return -1;
		*v = *v * 10 + (**p - '0');
	}
	return 0;
}

/* ISO 8601: YYYY-MM-DD[(T| )HH:MM[:SS[.frac]]][Z|(+|-)HH[:]MM], UTC when no zone. */
static int
parse_iso(const char *s, double *epoch)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, mo, d, h = 0, mi = 0, sec = 0, zh = 0, zm = 0, sign = 0;
	double frac = 0, scale = 0.1;
	const char *p = s;

	if (digits(&p, 4, &y) < 0 || *p++ != '-' || digits(&p, 2, &mo) < 0 || *p++ != '-' ||
	    digits(&p, 2, &d) < 0)
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1])
		return -1;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (digits(&p, 2, &h) < 0 || *p++ != ':' || digits(&p, 2, &mi) < 0)
			return -1;
		if (*p == ':') {
			p++;
			if (digits(&p, 2, &sec) < 0)
				return -1;
			if (*p == '.' || *p == ',') {
				if (*++p < '0' || *p > '9')
					return -1;
				for (; *p >= '0' && *p <= '9'; p++, scale /= 10)
					frac += (*p - '0') * scale;
			}
		}
		if (h > 23 || mi > 59 || sec > 60)
			return -1;
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			sign = *p++ == '-' ? -1 : 1;
			if (digits(&p, 2, &zh) < 0 || (*p == ':' && *++p == '\0') ||
			    digits(&p, 2, &zm) < 0 || zh > 23 || zm > 59)
				return -1;
		}
	}
	if (*p != '\0')
		return -1;
	*epoch = (double)(days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 +
			  mi * 60 + sec) +
		 frac - sign * (zh * 3600 + zm * 60);
	return 0;
}

int
mailpipectl_parse_time(const char *s, int relative_ok, double *epoch)
{
	char *end;
	double n, unit = 0;

	if (parse_iso(s, epoch) == 0)
		return 0;
	if (!relative_ok || s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	n = strtod(s, &end);
	if (errno != 0 || end == s || end[0] == '\0' || end[1] != '\0')
		return -1;
	switch (end[0]) {
	case 's': unit = 1; break;
	case 'm': unit = 60; break;
	case 'h': unit = 3600; break;
	case 'd': unit = 86400; break;
	case 'w': unit = 7 * 86400; break;
	default: return -1;
	}
	*epoch = (double)time(NULL) - n * unit;
	return 0;
}

/* --since (since) or --until: arg, and its epoch seconds as text, into o; -1 after printing. */
static int
time_opt(struct dlq_opts *o, int since, const char *arg)
{
	char *buf = since ? o->since_buf : o->until_buf;
	double t;

	if (mailpipectl_parse_time(arg, 1, &t) < 0) {
		mailpipectl_errx("invalid '--%s' '%s': expected an ISO 8601 time "
				 "(2026-11-22T10:00:00Z) or a time ago (90s, 30m, 2h, 7d)",
				 since ? "since" : "until", arg);
		return -1;
	}
	snprintf(buf, sizeof(o->since_buf), "%.6f", t);
	*(since ? &o->since : &o->until) = buf;
	*(since ? &o->since_s : &o->until_s) = arg;
	return 0;
}

/*
 * Parses the options of subcommand `which` (argv[0] is its name).  Returns -1 after
 * printing why, else 0 with optind at the first operand.
 */
int
dlq_parse_opts(int argc, char **argv, int which, struct dlq_opts *o)
{
	static const struct option longopts[] = {
	    {"database-url", required_argument, NULL, 'd'},
	    {"redis-url", required_argument, NULL, 'r'},
	    {"topic", required_argument, NULL, 't'},
	    {"reason", required_argument, NULL, 'R'},
	    {"since", required_argument, NULL, 's'},
	    {"until", required_argument, NULL, 'u'},
	    {"pending", no_argument, NULL, 'p'},
	    {"limit", required_argument, NULL, 'l'},
	    {"dry-run", no_argument, NULL, 'n'},
	    {"all", no_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	/* the subcommands of each option, in longopts' order */
	static const int takes[] = {
	    O_LIST | O_SHOW | O_REPLAY | O_DISCARD,
	    O_REPLAY,
	    O_FILTER,
	    O_FILTER,
	    O_FILTER,
	    O_FILTER,
	    O_FILTER,
	    O_FILTER,
	    O_REPLAY | O_DISCARD,
	    O_REPLAY | O_DISCARD,
	    O_LIST | O_SHOW | O_REPLAY | O_DISCARD,
	};
	char *end;
	int opt, idx;

	memset(o, 0, sizeof(*o));
	o->limit = which == O_LIST ? LIMIT_DEFAULT : 0;
	opterr = 0;
	optind = 1;
	for (;;) {
		idx = -1;
		if ((opt = getopt_long(argc, argv, ":h", longopts, &idx)) == -1)
			break;
		if (opt == 'h')
			idx = 10;
		if (idx >= 0 && !(takes[idx] & which)) {
			mailpipectl_errx("dlq %s: '--%s' is not one of its options", argv[0],
					 longopts[idx].name);
			dlq_usage(stderr);
			return -1;
		}
		switch (opt) {
		case 'd': o->db_url = optarg; break;
		case 'r': o->redis_url = optarg; break;
		case 't':
		case 'R':
			if (optarg[0] == '\0') {
				mailpipectl_errx("invalid '--%s': empty", longopts[idx].name);
				return -1;
			}
			*(opt == 't' ? &o->topic : &o->reason) = optarg;
			o->nfilters++;
			break;
		case 's':
		case 'u':
			if (time_opt(o, opt == 's', optarg) < 0)
				return -1;
			o->nfilters++;
			break;
		case 'p': o->pending = 1; break;
		case 'l':
			errno = 0;
			o->limit = strtol(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || o->limit < 0 ||
			    o->limit > LIMIT_MAX) {
				mailpipectl_errx("invalid '--limit' '%s': expected 0 to %ld",
						 optarg, LIMIT_MAX);
				return -1;
			}
			o->has_limit = 1;
			break;
		case 'n': o->dry_run = 1; break;
		case 'a': o->all = 1; break;
		default:
			mailpipectl_help_or_bad_option("dlq", argv[0], opt, argv[optind - 1],
						       dlq_usage);
			return -1;
		}
	}
	if (o->since && o->until && atof(o->since) >= atof(o->until)) {
		mailpipectl_errx("invalid time range: '--since' %s is not before '--until' %s",
				 o->since_s, o->until_s);
		return -1;
	}
	return 0;
}

/* Operands argv[optind..] as dead letter ids into a new JSON array; NULL after printing. */
json_t *
dlq_parse_ids(int argc, char **argv, const char *sub)
{
	json_t *ids = json_array();
	char *end;

	if (ids == NULL) {
		mailpipectl_errx("out of memory");
		return NULL;
	}
	for (int i = optind; i < argc; i++) {
		long long id;

		errno = 0;
		id = strtoll(argv[i], &end, 10);
		if (errno != 0 || end == argv[i] || *end != '\0' || id <= 0) {
			mailpipectl_errx("dlq %s: invalid id '%s': expected a dead letter's number",
					 sub, argv[i]);
			dlq_usage(stderr);
			json_decref(ids);
			return NULL;
		}
		if (json_array_append_new(ids, json_integer(id)) < 0) {
			mailpipectl_errx("out of memory");
			json_decref(ids);
			return NULL;
		}
	}
	return ids;
}

void
dlq_filter_params(const struct dlq_opts *o, int pending, const char *params[5])
{
	params[0] = o->topic;
	params[1] = o->reason;
	params[2] = o->since;
	params[3] = o->until;
	params[4] = pending ? "true" : "false";
}

static int
list_cmd(int argc, char **argv)
{
	struct dlq_opts o;
	const char *params[7];
	char err[1024] = "", limit_s[24];
	int status = MAILPIPECTL_EXIT_USAGE, n;
	long total = 0;
	PGresult *res = NULL;
	PGconn *conn = NULL;
	static const struct mailpipectl_col cols[] = {
	    {"ID", MAILPIPECTL_COL_RIGHT},
	    {"TOPIC", 0},
	    {"POSITION", 0},
	    {"CREATED", 0},
	    {"REPLAYED", 0},
	    {"ERROR", 0},
	};

	if (dlq_parse_opts(argc, argv, O_LIST, &o) < 0)
		return MAILPIPECTL_EXIT_USAGE;
	if (optind < argc) {
		mailpipectl_errx("dlq list: unexpected argument '%s'", argv[optind]);
		dlq_usage(stderr);
		goto out;
	}
	status = MAILPIPECTL_EXIT_FAIL;
	/* --database-url, else database.url from the settings */
	if (mailpipectl_db_connect(o.db_url, &conn, err, sizeof(err)) < 0)
		goto out;
	dlq_filter_params(&o, o.pending, params);
	snprintf(limit_s, sizeof(limit_s), "%ld", o.limit);
	params[5] = o.limit > 0 ? limit_s : NULL;
	params[6] = STR(ERROR_CLIP);
	if ((res = mailpipectl_db_exec(conn, list_sql, 7, params, 0, PGRES_TUPLES_OK, err,
				       sizeof(err), "cannot list dead letters")) == NULL)
		goto out;
	n = PQntuples(res);
	mailpipectl_print_table(res, n, cols, 6);
	if (n > 0)
		total = atol(PQgetvalue(res, 0, 6));
	if (total > n)
		printf("%d of %ld dead letters (see '--limit')\n", n, total);
	else
		printf("%d dead letter%s\n", n, n == 1 ? "" : "s");
	status = MAILPIPECTL_EXIT_OK;
out:
	return mailpipectl_db_end(status, err, res, conn);
}

/* Writes len bytes as text, escaping what is not printable ASCII or UTF-8. */
static void
print_bytes(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\n' || p[i] == '\t' || (p[i] >= 0x20 && p[i] != 0x7f))
			putchar(p[i]);
		else
			printf("\\x%02x", p[i]);
	}
	putchar('\n');
}

static int
show_cmd(int argc, char **argv)
{
	static const char *const names[] = {
	    "id",      "topic",    "partition",    "offset",
	    "created", "replayed", "replay_count", "discarded",
	};
	struct dlq_opts o;
	json_t *ids = NULL, *doc = NULL;
	const char *params[1];
	char err[1024] = "", *pretty = NULL;
	int status = MAILPIPECTL_EXIT_USAGE;
	PGresult *res = NULL;
	PGconn *conn = NULL;

	if (dlq_parse_opts(argc, argv, O_SHOW, &o) < 0)
		return MAILPIPECTL_EXIT_USAGE;
	if (argc - optind != 1) {
		mailpipectl_errx("dlq show: expected one ID");
		dlq_usage(stderr);
		goto out;
	}
	if ((ids = dlq_parse_ids(argc, argv, "show")) == NULL)
		goto out;
	status = MAILPIPECTL_EXIT_FAIL;
	/* --database-url, else database.url from the settings */
	if (mailpipectl_db_connect(o.db_url, &conn, err, sizeof(err)) < 0)
		goto out;
	params[0] = argv[optind];
	if ((res = mailpipectl_db_exec(conn, show_sql, 1, params, 1, PGRES_TUPLES_OK, err,
				       sizeof(err), "cannot read dead letter %s", argv[optind])) ==
	    NULL)
		goto out;
	if (PQntuples(res) == 0) {
		snprintf(err, sizeof(err), "no dead letter %s", argv[optind]);
		goto out;
	}
	for (int c = 0; c < 8; c++)
		printf("%-13s %s\n", names[c], PQgetvalue(res, 0, c));
	printf("%-13s ", "error");
	print_bytes((const unsigned char *)PQgetvalue(res, 0, 8), (size_t)PQgetlength(res, 0, 8));
	printf("payload       (%d bytes)\n", PQgetlength(res, 0, 9));
	doc = json_loadb(PQgetvalue(res, 0, 9), (size_t)PQgetlength(res, 0, 9), JSON_DECODE_ANY,
			 NULL);
	if (doc && (pretty = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
						 JSON_ENCODE_ANY)) != NULL)
		printf("%s\n", pretty);
	else
		print_bytes((const unsigned char *)PQgetvalue(res, 0, 9),
			    (size_t)PQgetlength(res, 0, 9));
	status = MAILPIPECTL_EXIT_OK;
out:
	free(pretty);
	json_decref(doc);
	json_decref(ids);
	return mailpipectl_db_end(status, err, res, conn);
}

/* What a replay or discard works on: ids, or filters, or --all; -1 after printing. */
int
dlq_check_selection(const struct dlq_opts *o, int argc, char **argv)
{
	int by_ids = optind < argc;

	if (by_ids && (o->nfilters > 0 || o->all || o->has_limit)) {
		mailpipectl_errx("dlq %s: give IDs or filters (or --all), not both", argv[0]);
		dlq_usage(stderr);
		return -1;
	}
	if (!by_ids && o->nfilters == 0 && !o->all) {
		mailpipectl_errx("dlq %s: which dead letters? give IDs, filters or --all", argv[0]);
		dlq_usage(stderr);
		return -1;
	}
	if (o->all && o->nfilters > 0) {
		mailpipectl_errx("dlq %s: '--all' takes no filters", argv[0]);
		dlq_usage(stderr);
		return -1;
	}
	return 0;
}

static int
discard_cmd(int argc, char **argv)
{
	struct dlq_opts o;
	json_t *ids = NULL;
	const char *params[7];
	char err[1024] = "", lim[24], *ids_s = NULL;
	int status = MAILPIPECTL_EXIT_USAGE, bad = 0;
	long count = 0;
	PGresult *res = NULL;
	PGconn *conn = NULL;

	if (dlq_parse_opts(argc, argv, O_DISCARD, &o) < 0 ||
	    dlq_check_selection(&o, argc, argv) < 0)
		return MAILPIPECTL_EXIT_USAGE;
	if (optind < argc && (ids = dlq_parse_ids(argc, argv, "discard")) == NULL)
		goto out;
	status = MAILPIPECTL_EXIT_FAIL;
	/* --database-url, else database.url from the settings */
	if (mailpipectl_db_connect(o.db_url, &conn, err, sizeof(err)) < 0)
		goto out;
	if (ids) {
		if ((ids_s = json_dumps(ids, JSON_COMPACT)) == NULL) {
			snprintf(err, sizeof(err), "out of memory");
			goto out;
		}
		params[0] = ids_s;
		params[1] = o.dry_run ? "true" : "false";
	} else {
		dlq_filter_params(&o, 1, params);
		snprintf(lim, sizeof(lim), "%ld", o.limit);
		params[5] = o.limit > 0 ? lim : NULL;
		params[6] = o.dry_run ? "true" : "false";
	}
	if ((res = mailpipectl_db_exec(conn, ids ? discard_ids_sql : discard_filter_sql,
				       ids ? 2 : 7, params, 0, PGRES_TUPLES_OK, err, sizeof(err),
				       "cannot discard dead letters")) == NULL)
		goto out;
	if (ids) {
		for (int i = 0; i < PQntuples(res); i++) {
			if (strcmp(PQgetvalue(res, i, 1), "t") != 0) {
				mailpipectl_errx("no dead letter %s", PQgetvalue(res, i, 0));
				bad = 1;
			} else if (strcmp(PQgetvalue(res, i, 2), "t") == 0) {
				/* the snapshot shows the row before this statement's update */
				mailpipectl_errx("dead letter %s was already discarded",
						 PQgetvalue(res, i, 0));
			} else {
				count++;
			}
		}
	} else {
		count = atol(PQgetvalue(res, 0, 0));
	}
	printf("%s %ld dead letter%s\n", o.dry_run ? "would discard" : "discarded", count,
	       count == 1 ? "" : "s");
	status = bad ? MAILPIPECTL_EXIT_FAIL : MAILPIPECTL_EXIT_OK;
out:
	free(ids_s);
	json_decref(ids);
	return mailpipectl_db_end(status, err, res, conn);
}

int
mailpipectl_dlq_cmd(int argc, char **argv)
{
	static const struct mailpipectl_sub subs[] = {
	    {"list", list_cmd},
	    {"show", show_cmd},
	    {"replay", dlq_replay_cmd},
	    {"discard", discard_cmd},
	};

	return mailpipectl_run_sub("dlq", subs, sizeof(subs) / sizeof(subs[0]), dlq_usage, argc,
				   argv);
}
