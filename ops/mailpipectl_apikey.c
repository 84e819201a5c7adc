/*
 * mailpipectl_apikey.c: `mailpipectl apikey create|list|revoke`, mailpipe's own API keys
 * (table api_keys, sql/005_api_keys.sql; format and checks in lib/apikey.h).
 *
 * create prints the key once, alone on stdout, and stores only its prefix and SHA-256;
 * revoke sets revoked_at, and ingest stops accepting the key at its next refresh
 * (auth.refresh_seconds).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "apikey.h"
#include "mailpipectl.h"

#define NAME_MAX_LEN 200
#define CREATE_TRIES 3 /* a new prefix that collides (1 in 36^8 per key) is drawn again */

static const char list_sql[] =
    "SELECT id, name, 'mp_' || key_prefix, array_to_string(scopes, ','),"
    " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
    " coalesce(to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '-')"
    " FROM api_keys ORDER BY id";

/* One statement: the row as it was ($1 an id or $2 a prefix), and whether this revoked it. */
static const char revoke_sql[] =
    "WITH k AS (SELECT id, revoked_at FROM api_keys"
    "  WHERE id = $1::bigint OR key_prefix = $2::text FOR UPDATE),"
    " r AS (UPDATE api_keys a SET revoked_at = now() FROM k"
    "  WHERE a.id = k.id AND k.revoked_at IS NULL RETURNING a.id)"
    " SELECT a.id, 'mp_' || a.key_prefix, a.name,"
    "  coalesce(to_char(k.revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''),"
    "  (SELECT count(*) FROM r)"
    " FROM api_keys a JOIN k USING (id)";

static void
apikey_usage(FILE *out)
{
	fputs("usage: mailpipectl apikey create --name NAME --scopes LIST [--database-url URL]\n"
	      "       mailpipectl apikey list [--database-url URL]\n"
	      "       mailpipectl apikey revoke ID|PREFIX [--database-url URL]\n"
	      "  create: make a key and print it once, alone on stdout (its id and prefix go to\n"
	      "    stderr); only its SHA-256 is stored. LIST is comma-separated from mail.send,\n"
	      "    stats.read, suppressions.read, suppressions.write, metrics.read and all (every\n"
	      "    scope)\n"
	      "  list: every key (id, name, prefix, scopes, created_at, revoked_at)\n"
	      "  revoke: by id, or by prefix (mp_xxxxxxxx); ingest stops accepting the key\n"
	      "    within auth.refresh_seconds\n",
	      out);
}

/*
 * Parses the common options of a subcommand (argv[0] is its name): --database-url, --help,
 * and for create --name and --scopes.  Returns -1 after printing why (exit status in
 * *status), else 0 with optind at the first operand.
 */
static int
parse_opts(int argc, char **argv, int with_create, const char **url, const char **name,
	   const char **scopes, int *status)
{
	static const struct option longopts[] = {
	    {"database-url", required_argument, NULL, 'd'},
	    {"name", required_argument, NULL, 'n'},
	    {"scopes", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt, idx = 0;

	*status = MAILPIPECTL_EXIT_USAGE;
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":h", longopts, &idx)) != -1) {
		switch (opt) {
		case 'd': *url = optarg; break;
		case 'n':
		case 's':
			if (!with_create) {
				mailpipectl_errx("apikey %s: '--%s' is not one of its options",
						 argv[0], longopts[idx].name);
				apikey_usage(stderr);
				return -1;
			}
			*(opt == 'n' ? name : scopes) = optarg;
			break;
		default:
			mailpipectl_help_or_bad_option("apikey", argv[0], opt, argv[optind - 1],
						       apikey_usage);
			return -1;
		}
	}
	*status = MAILPIPECTL_EXIT_FAIL; /* from here on, a failure is not a usage error */
	return 0;
}

/*
 * Checks the comma-separated scope names of list (spaces around names allowed) and writes
 * them, without repeats, comma-separated into out.  -1 with err naming the bad scope.
 */
static int MAILPIPECTL_MUSTCHECK
normalize_scopes(const char *list, char *out, size_t outlen, char *err, size_t errlen)
{
	const char *seen[16];
	char *copy = NULL, *tok, *save = NULL, *end;
	size_t nseen = 0, n = 0, i;
	int rc = -1;

	out[0] = '\0';
	if ((copy = strdup(list)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		tok += strspn(tok, " ");
		end = tok + strlen(tok);
		while (end > tok && end[-1] == ' ')
			*--end = '\0';
		if (!apikey_scope_known(tok)) {
			snprintf(err, errlen,
				 "unknown scope '%s': expected mail.send, stats.read, "
				 "suppressions.read, suppressions.write, metrics.read or all",
				 tok);
			goto out;
		}
		for (i = 0; i < nseen && strcmp(seen[i], tok) != 0; i++)
			;
		if (i < nseen)
			continue; /* a repeat */
		if (nseen == sizeof(seen) / sizeof(seen[0]) || n + strlen(tok) + 2 > outlen) {
			snprintf(err, errlen, "too many scopes");
			goto out;
		}
		seen[nseen++] = tok;
		n += (size_t)snprintf(out + n, outlen - n, "%s%s", n ? "," : "", tok);
	}
	if (nseen == 0) {
		snprintf(err, errlen, "no scope given");
		goto out;
	}
	rc = 0;
out:
	free(copy);
	return rc;
}

/* Prints s with control characters replaced, for names typed into SQL by hand. */
static void
print_clean(const char *s, int width)
{
	int n = 0;

	for (; *s != '\0'; s++, n++)
		putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
	for (; n < width; n++)
		putchar(' ');
}

static int
create_cmd(int argc, char **argv)
{
	unsigned char hash[APIKEY_HASH_LEN];
	char key[APIKEY_LEN + 1], prefix[APIKEY_PREFIX_LEN + 1], scopes[256], err[1024] = "";
	const char *url = NULL, *name = NULL, *list = NULL, *params[4], *state;
	int lengths[4] = {0, 0, APIKEY_HASH_LEN, 0}, formats[4] = {0, 0, 1, 0};
	int status = MAILPIPECTL_EXIT_FAIL, tries;
	PGresult *res = NULL;
	PGconn *conn = NULL;

	if (parse_opts(argc, argv, 1, &url, &name, &list, &status) < 0)
		return status;
	if (optind < argc) {
		mailpipectl_errx("apikey create: unexpected argument '%s'", argv[optind]);
		apikey_usage(stderr);
		return MAILPIPECTL_EXIT_USAGE;
	}
	if (name == NULL || list == NULL) {
		mailpipectl_errx("apikey create: '--name' and '--scopes' are required");
		apikey_usage(stderr);
		return MAILPIPECTL_EXIT_USAGE;
	}
	if (name[0] == '\0' || strlen(name) > NAME_MAX_LEN) {
		mailpipectl_errx("invalid '--name': expected 1 to %d characters", NAME_MAX_LEN);
		return MAILPIPECTL_EXIT_USAGE;
	}
	for (const char *c = name; *c != '\0'; c++) {
		if ((unsigned char)*c < 0x20 || *c == 0x7f) {
			mailpipectl_errx("invalid '--name': control character");
			return MAILPIPECTL_EXIT_USAGE;
		}
	}
	if (normalize_scopes(list, scopes, sizeof(scopes), err, sizeof(err)) < 0) {
		mailpipectl_errx("invalid '--scopes': %s", err);
		return MAILPIPECTL_EXIT_USAGE;
	}
	if (mailpipectl_db_connect(url, &conn, err, sizeof(err)) < 0)
		goto out;

	for (tries = 0; tries < CREATE_TRIES; tries++) {
		if (apikey_generate(key, sizeof(key), prefix, hash) < 0) {
			snprintf(err, sizeof(err), "cannot generate a key: no randomness");
			goto out;
		}
		params[0] = name;
		params[1] = prefix;
		params[2] = (const char *)hash;
		params[3] = scopes;
		PQclear(res);
		res = PQexecParams(conn,
				   "INSERT INTO api_keys (name, key_prefix, key_hash, scopes)"
				   " VALUES ($1::text, $2::text, $3::bytea,"
				   " string_to_array($4::text, ','))"
				   " RETURNING id",
				   4, NULL, params, lengths, formats, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
			break;
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (state == NULL || strcmp(state, "23505") != 0 || tries + 1 == CREATE_TRIES) {
			char why[512];

			mailpipectl_db_error(conn, res, why, sizeof(why));
			snprintf(err, sizeof(err), "cannot create the key: %s", why);
			goto out;
		}
	}
	printf("%s\n", key);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		/* the key is lost: revoke it at once so no unknown key stays active */
		snprintf(err, sizeof(err), "cannot write the key to stdout: %s; key mp_%s revoked",
			 strerror(errno), prefix);
		PQclear(res);
		params[0] = prefix;
		res = PQexecParams(
		    conn, "UPDATE api_keys SET revoked_at = now() WHERE key_prefix = $1::text", 1,
		    NULL, params, NULL, NULL, 0);
		goto out;
	}
	fprintf(stderr, "created key id=%s prefix=mp_%s name=%s scopes=%s\n", PQgetvalue(res, 0, 0),
		prefix, name, scopes);
	fprintf(stderr, "the key is shown only this once: store it now\n");
	status = MAILPIPECTL_EXIT_OK;
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(hash, sizeof(hash));
	return mailpipectl_db_end(status, err, res, conn);
}

static int
list_cmd(int argc, char **argv)
{
	const char *url = NULL, *unused = NULL;
	static const struct mailpipectl_col cols[] = {
	    {"ID", 0},         {"NAME", MAILPIPECTL_COL_CLEAN},
	    {"PREFIX", 0},     {"SCOPES", 0},
	    {"CREATED_AT", 0}, {"REVOKED_AT", 0},
	};
	int status = MAILPIPECTL_EXIT_FAIL;
	PGresult *res = NULL;
	PGconn *conn = NULL;
	char err[1024] = "";

	if (parse_opts(argc, argv, 0, &url, &unused, &unused, &status) < 0)
		return status;
	if (optind < argc) {
		mailpipectl_errx("apikey list: unexpected argument '%s'", argv[optind]);
		apikey_usage(stderr);
		return MAILPIPECTL_EXIT_USAGE;
	}
	if (mailpipectl_db_connect(url, &conn, err, sizeof(err)) < 0)
		goto out;
	if ((res = mailpipectl_db_exec(conn, list_sql, 0, NULL, 0, PGRES_TUPLES_OK, err,
				       sizeof(err), "cannot list api keys")) == NULL)
		goto out;
	mailpipectl_print_table(res, PQntuples(res), cols, 6);
	status = MAILPIPECTL_EXIT_OK;
out:
	return mailpipectl_db_end(status, err, res, conn);
}

/* An id (digits) or a prefix (mp_xxxxxxxx, or the 8 characters alone). */
static int
parse_target(const char *arg, int *by_id, char *value, size_t valuelen)
{
	const char *p = arg;
	char *end;
	long long id;
	size_t i;

	if (arg[0] >= '0' && arg[0] <= '9' && strspn(arg, "0123456789") == strlen(arg)) {
		errno = 0;
		id = strtoll(arg, &end, 10);
		if (errno != 0 || *end != '\0' || id <= 0)
			return -1;
		*by_id = 1;
		snprintf(value, valuelen, "%lld", id);
		return 0;
	}
	if (strncmp(p, "mp_", 3) == 0)
		p += 3;
	if (strlen(p) != APIKEY_PREFIX_LEN)
		return -1;
	for (i = 0; i < APIKEY_PREFIX_LEN; i++) {
		if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9')))
			return -1;
	}
	*by_id = 0;
	snprintf(value, valuelen, "%s", p);
	return 0;
}

static int
revoke_cmd(int argc, char **argv)
{
	const char *url = NULL, *unused = NULL, *params[2];
	char target[32], err[1024] = "";
	int status = MAILPIPECTL_EXIT_FAIL, by_id = 0;
	PGresult *res = NULL;
	PGconn *conn = NULL;

	if (parse_opts(argc, argv, 0, &url, &unused, &unused, &status) < 0)
		return status;
	if (argc - optind != 1) {
		mailpipectl_errx("apikey revoke: expected one ID or PREFIX");
		apikey_usage(stderr);
		return MAILPIPECTL_EXIT_USAGE;
	}
	if (parse_target(argv[optind], &by_id, target, sizeof(target)) < 0) {
		mailpipectl_errx("invalid key '%s': expected an id or a prefix mp_xxxxxxxx",
				 argv[optind]);
		return MAILPIPECTL_EXIT_USAGE;
	}
	if (mailpipectl_db_connect(url, &conn, err, sizeof(err)) < 0)
		goto out;
	params[0] = by_id ? target : NULL;
	params[1] = by_id ? NULL : target;
	if ((res = mailpipectl_db_exec(conn, revoke_sql, 2, params, 0, PGRES_TUPLES_OK, err,
				       sizeof(err), "cannot revoke key '%s'", argv[optind])) ==
	    NULL)
		goto out;
	if (PQntuples(res) == 0) {
		snprintf(err, sizeof(err), "no such key '%s'", argv[optind]);
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 4), "0") == 0) {
		printf("key id=%s prefix=%s name=", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
		print_clean(PQgetvalue(res, 0, 2), 0);
		printf(" was already revoked at %s\n", PQgetvalue(res, 0, 3));
	} else {
		printf("revoked key id=%s prefix=%s name=", PQgetvalue(res, 0, 0),
		       PQgetvalue(res, 0, 1));
		print_clean(PQgetvalue(res, 0, 2), 0);
		printf(" (ingest stops accepting it within auth.refresh_seconds)\n");
	}
	status = MAILPIPECTL_EXIT_OK;
out:
	return mailpipectl_db_end(status, err, res, conn);
}

int
mailpipectl_apikey_cmd(int argc, char **argv)
{
	static const struct mailpipectl_sub subs[] = {
	    {"create", create_cmd},
	    {"list", list_cmd},
	    {"revoke", revoke_cmd},
	};

	return mailpipectl_run_sub("apikey", subs, sizeof(subs) / sizeof(subs[0]), apikey_usage,
				   argc, argv);
}
