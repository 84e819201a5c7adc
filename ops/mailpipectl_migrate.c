/*
 * mailpipectl_migrate.c: `mailpipectl migrate [--dir SQLDIR] [--status]`.
 *
 * Forward-only numbered migrations: SQLDIR holds NNN_name.sql files, applied
 * in version order, each in its own transaction together with its row in
 * schema_migrations (version, name, checksum = SHA-256 of the file, applied_at).
 * A session advisory lock keeps two hosts from migrating at once. It refuses
 * to run when an applied file changed or went missing, when two files share a
 * version, or when a pending file is older than an applied one. Afterwards it
 * calls mailpipe_ensure_partitions().
 *
 * Migration files run inside the transaction opened here: they must not
 * contain COMMIT/ROLLBACK nor statements that cannot run in a transaction
 * block (CREATE INDEX CONCURRENTLY, VACUUM, ...).
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "mailpipectl.h"

/* pg_advisory_lock() key: "mailpipe" as a big-endian int64 */
#define MIGRATE_LOCK_KEY "7881696737338421349"
#define MIGRATE_FILE_MAX (64L * 1024 * 1024)
#define CHECKSUM_HEX_LEN 64

struct migration {
	int version;
	char *name; /* file name, "002_events.sql" */
	char *sql;  /* the file's contents, NUL-terminated */
	size_t len;
	char checksum[CHECKSUM_HEX_LEN + 1];
};

/* one row of schema_migrations */
struct applied {
	int version;
	char *name;
	char *checksum;
	char *applied_at; /* ISO 8601, UTC */
};

struct migrate_state {
	char dir[PATH_MAX];
	struct migration *files; /* sorted by version */
	size_t nfiles;
	struct applied *rows; /* sorted by version */
	size_t nrows;
};

static void
migrate_usage(FILE *out)
{
	fputs("usage: mailpipectl migrate [--dir SQLDIR] [--status] [--database-url URL]\n"
	      "  apply the pending SQLDIR/NNN_name.sql migrations in order, each in its own\n"
	      "  transaction, then create missing partitions; --status lists every migration\n"
	      "  as applied or pending instead. SQLDIR defaults to the 'sql' directory found\n"
	      "  walking up from the directory of the mailpipectl binary\n",
	      out);
}

static void
state_release(struct migrate_state *st)
{
	size_t i;

	for (i = 0; i < st->nfiles; i++) {
		free(st->files[i].name);
		free(st->files[i].sql);
	}
	free(st->files);
	for (i = 0; i < st->nrows; i++) {
		free(st->rows[i].name);
		free(st->rows[i].checksum);
		free(st->rows[i].applied_at);
	}
	free(st->rows);
	memset(st, 0, sizeof(*st));
}

/* Finds the first directory containing sql/, walking up from the directory
 * of /proc/self/exe: <repo>/build/mailpipectl and <repo>/build/san/mailpipectl
 * both give <repo>/sql. */
static int MAILPIPECTL_MUSTCHECK
default_sql_dir(char *out, size_t outlen, char *err, size_t errlen)
{
	char dir[PATH_MAX], start[PATH_MAX], cand[PATH_MAX + 8], *slash;
	struct stat sb;
	ssize_t n;
	int rc = -1;

	n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	if (n < 0) {
		snprintf(err, errlen, "cannot resolve '/proc/self/exe': %s: pass '--dir'",
			 strerror(errno));
		goto out;
	}
	dir[n] = '\0';
	if ((slash = strrchr(dir, '/')) == NULL) {
		snprintf(err, errlen,
			 "cannot resolve '/proc/self/exe': not absolute: pass '--dir'");
		goto out;
	}
	*slash = '\0';
	start[0] = '\0';
	memcpy(start, dir, (size_t)(slash - dir) + 1);
	for (;;) {
		snprintf(cand, sizeof(cand), "%s/sql", dir);
		if (stat(cand, &sb) == 0 && S_ISDIR(sb.st_mode)) {
			if (strlen(cand) >= outlen)
				break;
			strcpy(out, cand);
			rc = 0;
			goto out;
		}
		if (dir[0] == '\0' || (slash = strrchr(dir, '/')) == NULL)
			break;
		*slash = '\0'; /* "/a/b" -> "/a" -> "" (the root) */
	}
	snprintf(err, errlen, "cannot find a 'sql' directory above '%s': pass '--dir'",
		 start[0] != '\0' ? start : "/");
out:
	return rc;
}

/* Returns 1 and sets *version when name is NNN_name.sql (NNN: 1 to 9 digits,
 * not 0; name: letters, digits, '_' or '-'), 0 when it does not end in
 * ".sql" or is hidden (not a migration), -1 when it ends in ".sql" but is not
 * a valid migration name. */
static int
parse_file_name(const char *name, int *version)
{
	size_t len = strlen(name), i, digits = 0;
	long v = 0;

	if (name[0] == '.' || len < 4 || strcmp(name + len - 4, ".sql") != 0)
		return 0;
	for (i = 0; name[i] >= '0' && name[i] <= '9'; i++, digits++)
		v = v * 10 + (name[i] - '0');
	if (digits == 0 || digits > 9 || v == 0 || name[i] != '_' || i + 1 == len - 4)
		return -1;
	for (i++; i < len - 4; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return -1;
	}
	*version = (int)v;
	return 1;
}

/* Reads path into m->sql (new allocation) and sets m->len and m->checksum. */
static int MAILPIPECTL_MUSTCHECK
load_file(const char *path, struct migration *m, char *err, size_t errlen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	FILE *f = NULL;
	struct stat sb;
	char *buf = NULL;
	size_t got;
	int rc = -1;

	if ((f = fopen(path, "rb")) == NULL || fstat(fileno(f), &sb) < 0) {
		snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
		goto out;
	}
	if (sb.st_size > MIGRATE_FILE_MAX) {
		snprintf(err, errlen, "cannot read '%s': larger than %ld bytes", path,
			 MIGRATE_FILE_MAX);
		goto out;
	}
	if ((buf = malloc((size_t)sb.st_size + 1)) == NULL) {
		snprintf(err, errlen, "cannot read '%s': out of memory", path);
		goto out;
	}
	got = fread(buf, 1, (size_t)sb.st_size + 1, f);
	if (ferror(f) || got != (size_t)sb.st_size) {
		snprintf(err, errlen, "cannot read '%s': %s", path,
			 ferror(f) ? strerror(errno) : "file changed while reading");
		goto out;
	}
	buf[got] = '\0';
	if (memchr(buf, '\0', got) != NULL) {
		snprintf(err, errlen, "cannot use '%s': it contains a NUL byte", path);
		goto out;
	}
	if (EVP_Digest(buf, got, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen * 2 != CHECKSUM_HEX_LEN) {
		snprintf(err, errlen, "cannot compute the SHA-256 of '%s'", path);
		goto out;
	}
	for (i = 0; i < mdlen; i++)
		snprintf(m->checksum + 2 * i, 3, "%02x", md[i]);
	m->sql = buf;
	m->len = got;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	if (f != NULL)
		fclose(f);
	return rc;
}

static int
cmp_migration(const void *a, const void *b)
{
	const struct migration *x = a, *y = b;

	return (x->version > y->version) - (x->version < y->version);
}

/* Loads every migration of st->dir into st->files, sorted; refuses badly
 * named .sql files and duplicate versions. */
static int MAILPIPECTL_MUSTCHECK
load_files(struct migrate_state *st, char *err, size_t errlen)
{
	char path[PATH_MAX + NAME_MAX + 2];
	struct migration *grown;
	struct dirent *de;
	struct stat sb;
	size_t cap = 0, i;
	DIR *d = NULL;
	int version, kind, rc = -1;

	if ((d = opendir(st->dir)) == NULL) {
		snprintf(err, errlen, "cannot open migrations directory '%s': %s", st->dir,
			 strerror(errno));
		goto out;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		snprintf(path, sizeof(path), "%s/%s", st->dir, de->d_name);
		if ((kind = parse_file_name(de->d_name, &version)) == 0)
			continue;
		if (stat(path, &sb) < 0) {
			snprintf(err, errlen, "cannot stat '%s': %s", path, strerror(errno));
			goto out;
		}
		if (!S_ISREG(sb.st_mode))
			continue;
		if (kind < 0) {
			snprintf(err, errlen,
				 "unexpected file '%s' in '%s': migrations are named NNN_name.sql",
				 de->d_name, st->dir);
			goto out;
		}
		if (st->nfiles == cap) {
			cap = cap ? cap * 2 : 16;
			if ((grown = realloc(st->files, cap * sizeof(*grown))) == NULL) {
				snprintf(err, errlen, "out of memory");
				goto out;
			}
			st->files = grown;
		}
		memset(&st->files[st->nfiles], 0, sizeof(st->files[0]));
		st->files[st->nfiles].version = version;
		if ((st->files[st->nfiles].name = strdup(de->d_name)) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		st->nfiles++;
		if (load_file(path, &st->files[st->nfiles - 1], err, errlen) < 0)
			goto out;
	}
	if (errno != 0) {
		snprintf(err, errlen, "cannot read directory '%s': %s", st->dir, strerror(errno));
		goto out;
	}
	if (st->nfiles > 0)
		qsort(st->files, st->nfiles, sizeof(st->files[0]), cmp_migration);
	for (i = 1; i < st->nfiles; i++) {
		if (st->files[i].version == st->files[i - 1].version) {
			snprintf(err, errlen, "duplicate migration version %d: '%s' and '%s'",
				 st->files[i].version, st->files[i - 1].name, st->files[i].name);
			goto out;
		}
	}
	rc = 0;
out:
	if (d != NULL)
		closedir(d);
	return rc;
}

static char *
dup_value(const PGresult *res, int row, int col)
{
	return strdup(PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col));
}

/* Sets *exists to whether schema_migrations exists (in the search_path). */
static int MAILPIPECTL_MUSTCHECK
table_exists(PGconn *conn, int *exists, char *err, size_t errlen)
{
	PGresult *res = NULL;
	char why[512];
	int rc = -1;

	res = PQexec(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		mailpipectl_db_error(conn, res, why, sizeof(why));
		snprintf(err, errlen, "cannot look up 'schema_migrations': %s", why);
		goto out;
	}
	*exists = PQgetvalue(res, 0, 0)[0] == 't';
	rc = 0;
out:
	PQclear(res);
	return rc;
}

static int MAILPIPECTL_MUSTCHECK
create_table(PGconn *conn, char *err, size_t errlen)
{
	return mailpipectl_db_command(conn,
				      "CREATE TABLE schema_migrations ("
				      " version int PRIMARY KEY,"
				      " name text NOT NULL,"
				      " checksum text NOT NULL,"
				      " applied_at timestamptz NOT NULL DEFAULT now())",
				      0, NULL, NULL, err, errlen,
				      "cannot create 'schema_migrations'");
}

/* Loads schema_migrations into st->rows, sorted by version. */
static int MAILPIPECTL_MUSTCHECK
load_applied(PGconn *conn, struct migrate_state *st, char *err, size_t errlen)
{
	PGresult *res = NULL;
	struct applied *a;
	int i, n, rc = -1;

	res = mailpipectl_db_exec(
	    conn,
	    "SELECT version, name, checksum,"
	    " to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
	    " FROM schema_migrations ORDER BY version",
	    0, NULL, 0, PGRES_TUPLES_OK, err, errlen, "cannot read 'schema_migrations'");
	if (res == NULL)
		goto out;
	n = PQntuples(res);
	if (n > 0 && (st->rows = calloc((size_t)n, sizeof(*st->rows))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		a = &st->rows[i];
		st->nrows++;
		a->version = atoi(PQgetvalue(res, i, 0));
		a->name = dup_value(res, i, 1);
		a->checksum = dup_value(res, i, 2);
		a->applied_at = dup_value(res, i, 3);
		if (a->name == NULL || a->checksum == NULL || a->applied_at == NULL) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	}
	rc = 0;
out:
	PQclear(res);
	return rc;
}

static const struct applied *
find_applied(const struct migrate_state *st, int version)
{
	size_t i;

	for (i = 0; i < st->nrows; i++) {
		if (st->rows[i].version == version)
			return &st->rows[i];
	}
	return NULL;
}

static const struct migration *
find_file(const struct migrate_state *st, int version)
{
	size_t i;

	for (i = 0; i < st->nfiles; i++) {
		if (st->files[i].version == version)
			return &st->files[i];
	}
	return NULL;
}

/* Refuses to migrate when the applied history and the files disagree. */
static int MAILPIPECTL_MUSTCHECK
check_history(const struct migrate_state *st, char *err, size_t errlen)
{
	const struct migration *m;
	const struct applied *a;
	int last = st->nrows > 0 ? st->rows[st->nrows - 1].version : 0;
	size_t i;
	int rc = -1;

	for (i = 0; i < st->nrows; i++) {
		a = &st->rows[i];
		if ((m = find_file(st, a->version)) == NULL) {
			snprintf(err, errlen,
				 "applied migration '%s' (version %d) has no file in '%s': "
				 "is this mailpipectl older than the database?",
				 a->name, a->version, st->dir);
			goto out;
		}
		if (strcmp(a->checksum, m->checksum) != 0) {
			snprintf(err, errlen,
				 "migration '%s' changed after it was applied on %s "
				 "(checksum %.12s in the database, %.12s on disk): "
				 "restore it and add a new migration instead",
				 m->name, a->applied_at, a->checksum, m->checksum);
			goto out;
		}
	}
	for (i = 0; i < st->nfiles; i++) {
		m = &st->files[i];
		if (m->version < last && find_applied(st, m->version) == NULL) {
			snprintf(err, errlen,
				 "migration '%s' is pending but version %d is already applied: "
				 "migrations are forward-only, renumber it above %d",
				 m->name, last, last);
			goto out;
		}
	}
	rc = 0;
out:
	return rc;
}

/* Converts a 1-based character position in sql (PG_DIAG_STATEMENT_POSITION,
 * counted in characters of the UTF-8 text) into a 1-based line number. */
static int
position_line(const char *sql, long pos)
{
	int line = 1;
	long chars = 0;

	for (; *sql != '\0'; sql++) {
		if (((unsigned char)*sql & 0xC0) == 0x80)
			continue; /* UTF-8 continuation byte */
		if (++chars >= pos)
			break;
		if (*sql == '\n')
			line++;
	}
	return line;
}

/* Applies m in its own transaction together with its schema_migrations row. */
static int MAILPIPECTL_MUSTCHECK
apply_one(PGconn *conn, const struct migration *m, char *err, size_t errlen)
{
	PGresult *res = NULL;
	const char *params[3], *pos;
	char version[16], why[512], where[32] = "";
	int rc = -1, begun = 0;

	if (mailpipectl_db_command(conn, "BEGIN", 0, NULL, NULL, err, errlen,
				   "cannot begin a transaction") < 0)
		goto out;
	begun = 1;

	res = PQexec(conn, m->sql);
	switch (PQresultStatus(res)) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
	case PGRES_EMPTY_QUERY: break;
	default:
		mailpipectl_db_error(conn, res, why, sizeof(why));
		if ((pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION)) != NULL)
			snprintf(where, sizeof(where), " at line %d",
				 position_line(m->sql, strtol(pos, NULL, 10)));
		snprintf(err, errlen, "migration '%s' failed%s: %s", m->name, where, why);
		goto out;
	}
	PQclear(res);
	res = NULL;
	if (PQtransactionStatus(conn) != PQTRANS_INTRANS) {
		begun = 0;
		snprintf(err, errlen,
			 "migration '%s' ended the transaction itself (COMMIT or ROLLBACK in the "
			 "file?): it may be partly applied and is not recorded, check by hand",
			 m->name);
		goto out;
	}

	snprintf(version, sizeof(version), "%d", m->version);
	params[0] = version;
	params[1] = m->name;
	params[2] = m->checksum;
	if (mailpipectl_db_command(conn,
				   "INSERT INTO schema_migrations (version, name, checksum)"
				   " VALUES ($1::int, $2::text, $3::text)",
				   3, params, NULL, err, errlen, "cannot record migration '%s'",
				   m->name) < 0)
		goto out;

	begun = 0; /* a failed COMMIT leaves no transaction open */
	if (mailpipectl_db_command(conn, "COMMIT", 0, NULL, NULL, err, errlen,
				   "cannot commit migration '%s'", m->name) < 0)
		goto out;
	rc = 0;
out:
	PQclear(res);
	if (begun)
		PQclear(PQexec(conn, "ROLLBACK"));
	return rc;
}

/* Takes the migration advisory lock, saying so when it has to wait. */
static int MAILPIPECTL_MUSTCHECK
lock_migrations(PGconn *conn, char *err, size_t errlen)
{
	const char *params[1] = {MIGRATE_LOCK_KEY};
	PGresult *res = NULL;
	char why[512];
	int rc = -1;

	res = PQexecParams(conn, "SELECT pg_try_advisory_lock($1::bigint)", 1, NULL, params, NULL,
			   NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    PQgetvalue(res, 0, 0)[0] != 't') {
		mailpipectl_errx("waiting for another 'mailpipectl migrate' to finish "
				 "(advisory lock %s)",
				 MIGRATE_LOCK_KEY);
		PQclear(res);
		res = PQexecParams(conn, "SELECT pg_advisory_lock($1::bigint)", 1, NULL, params,
				   NULL, NULL, 0);
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		mailpipectl_db_error(conn, res, why, sizeof(why));
		snprintf(err, errlen, "cannot take the migration lock: %s", why);
		goto out;
	}
	rc = 0;
out:
	PQclear(res);
	return rc;
}

static long
elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000L + (t1.tv_nsec - t0->tv_nsec) / 1000000L;
}

static int MAILPIPECTL_MUSTCHECK
run_migrate(PGconn *conn, struct migrate_state *st, char *err, size_t errlen)
{
	const struct migration *m;
	const char *params[1] = {MIGRATE_LOCK_KEY};
	struct timespec t0;
	int exists = 0, applied = 0, created = 0, locked = 0, rc = -1;
	size_t i;

	if (lock_migrations(conn, err, errlen) < 0)
		goto out;
	locked = 1;
	if (table_exists(conn, &exists, err, errlen) < 0 ||
	    (!exists && create_table(conn, err, errlen) < 0) ||
	    load_applied(conn, st, err, errlen) < 0 || check_history(st, err, errlen) < 0)
		goto out;

	for (i = 0; i < st->nfiles; i++) {
		m = &st->files[i];
		if (find_applied(st, m->version) != NULL)
			continue;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (apply_one(conn, m, err, errlen) < 0)
			goto out;
		applied++;
		printf("migrate: applied %s (%ld ms)\n", m->name, elapsed_ms(&t0));
		fflush(stdout);
	}
	if (mailpipectl_db_ensure_partitions(conn, -1, &created, err, errlen) < 0)
		goto out;
	if (created > 0)
		printf("migrate: %d partitions created\n", created);
	printf("migrate: %d applied, 0 pending\n", applied);
	rc = 0;
out:
	/* closing the connection would release it too */
	if (locked)
		PQclear(PQexecParams(conn, "SELECT pg_advisory_unlock($1::bigint)", 1, NULL, params,
				     NULL, NULL, 0));
	return rc;
}

static int MAILPIPECTL_MUSTCHECK
run_status(PGconn *conn, struct migrate_state *st, char *err, size_t errlen)
{
	const struct migration *m;
	const struct applied *a;
	int exists = 0, napplied = 0, npending = 0, last;
	size_t i;

	if (table_exists(conn, &exists, err, errlen) < 0 ||
	    (exists && load_applied(conn, st, err, errlen) < 0))
		return -1;

	last = st->nrows > 0 ? st->rows[st->nrows - 1].version : 0;
	printf("%-7s %-36s %-8s %s\n", "VERSION", "FILE", "STATE", "APPLIED_AT");
	for (i = 0; i < st->nfiles; i++) {
		m = &st->files[i];
		if ((a = find_applied(st, m->version)) == NULL) {
			npending++;
			printf("%-7d %-36s %-8s %s%s\n", m->version, m->name, "pending", "-",
			       m->version < last ? "  (older than an applied migration: "
						   "migrate refuses it)"
						 : "");
			continue;
		}
		napplied++;
		printf("%-7d %-36s %-8s %s%s\n", m->version, m->name,
		       strcmp(a->checksum, m->checksum) == 0 ? "applied" : "changed", a->applied_at,
		       strcmp(a->checksum, m->checksum) == 0
			   ? ""
			   : "  (file differs from the applied one)");
	}
	for (i = 0; i < st->nrows; i++) {
		a = &st->rows[i];
		if (find_file(st, a->version) != NULL)
			continue;
		napplied++;
		printf("%-7d %-36s %-8s %s  (applied, no file in '%s')\n", a->version, a->name,
		       "missing", a->applied_at, st->dir);
	}
	printf("status: %d applied, %d pending\n", napplied, npending);
	return 0;
}

int
mailpipectl_migrate_cmd(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dir", required_argument, NULL, 'D'},
	    {"status", no_argument, NULL, 's'},
	    {"database-url", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct migrate_state st;
	const char *url = NULL, *dir = NULL;
	PGconn *conn = NULL;
	char err[2 * PATH_MAX] = "";
	int opt, status_only = 0, status = MAILPIPECTL_EXIT_FAIL;

	memset(&st, 0, sizeof(st));
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'D': dir = optarg; break;
		case 's': status_only = 1; break;
		case 'd': url = optarg; break;
		default:
			mailpipectl_help_or_bad_option("migrate", NULL, opt, argv[optind - 1],
						       migrate_usage);
			return MAILPIPECTL_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		mailpipectl_errx("migrate: unexpected argument '%s'", argv[optind]);
		migrate_usage(stderr);
		return MAILPIPECTL_EXIT_USAGE;
	}

	if (dir != NULL) {
		if (strlen(dir) >= sizeof(st.dir)) {
			mailpipectl_errx("invalid '--dir': path too long");
			return MAILPIPECTL_EXIT_USAGE;
		}
		strcpy(st.dir, dir);
	} else if (default_sql_dir(st.dir, sizeof(st.dir), err, sizeof(err)) < 0) {
		goto out;
	}
	if (load_files(&st, err, sizeof(err)) < 0 ||
	    mailpipectl_db_connect(url, &conn, err, sizeof(err)) < 0)
		goto out;
	if (status_only ? run_status(conn, &st, err, sizeof(err)) < 0
			: run_migrate(conn, &st, err, sizeof(err)) < 0)
		goto out;
	status = MAILPIPECTL_EXIT_OK;
out:
	if (status != MAILPIPECTL_EXIT_OK)
		mailpipectl_errx("%s", err);
	PQfinish(conn);
	state_release(&st);
	return status;
}
