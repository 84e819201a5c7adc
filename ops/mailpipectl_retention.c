/*
 * mailpipectl_retention.c: `mailpipectl retention [--dry-run] [--days N]`.
 *
 * Keeps the events table bounded: every monthly partition events_yYYYYmMM lying wholly
 * before the cut-off (now - retention.days) is archived to archive.dir (gzip JSON lines
 * plus a manifest, see mailpipectl_archive.h), the archive is re-read and checked, and
 * only then is the partition dropped, with the event_ids guards of its range, in the
 * same transaction. Rows of events_default older than the cut-off are archived and
 * deleted the same way; the default partition itself stays. The rollups (stats_daily,
 * stats_unique, stats_minute) are not touched: statistics outlive the events.
 *
 * Each table is read under a SHARE lock (nothing can be added to it meanwhile; other
 * partitions are not blocked), so the archive holds exactly the rows that are dropped.
 * It must run as the owner of events (the migration role).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "config.h"
#include "mailpipectl.h"
#include "mailpipectl_archive.h"
#include "metrics.h"
#include "retention.h"

#define PROGRESS_EVERY_S 5.0

/* one table to archive: a monthly partition or the old rows of events_default */
struct target {
	char table[64]; /* events_y2026m07 or events_default */
	char name[96];  /* archive name: the table, or events_default_before_<cut-off> */
	time_t from;    /* 0 for the default partition */
	time_t to;      /* the partition's upper bound, or the cut-off */
	int is_default;
};

struct retention {
	PGconn *conn;
	const char *dir;
	time_t cutoff;
	int dry_run;
	long schema_version;
	long long rows, guards;
	int dropped, archives;
};

/* what one archive run found */
struct stats {
	long long rows;
	char min[40], max[40];
};

static void
retention_usage(FILE *out)
{
	fputs("usage: mailpipectl retention [--dry-run] [--days N] [--archive-dir DIR]\n"
	      "                             [-c FILE] [--database-url URL]\n"
	      "  archive to DIR (archive.dir), then drop, the monthly partitions of 'events'\n"
	      "  wholly older than N days (retention.days; 0 keeps everything) together with\n"
	      "  the event_ids guards of their range; rows of events_default older than that\n"
	      "  are archived and deleted. Each archive is NAME" ARCHIVE_DATA_SUFFIX " (gzip JSON\n"
	      "  lines) plus NAME" ARCHIVE_MANIFEST_SUFFIX
	      ", verified before anything is dropped.\n"
	      "  The daily rollups are kept. Must run as the owner of 'events' (the migration\n"
	      "  role). --dry-run only says what would be done.\n",
	      out);
}

static void
rollback(PGconn *conn)
{
	PQclear(PQexec(conn, "ROLLBACK"));
}

/* "LOCK TABLE <ident> IN SHARE MODE" and the like, the identifier escaped by libpq. */
static int
run_ident(PGconn *conn, const char *before, const char *table, const char *after, const char *what,
	  char *err, size_t errlen)
{
	char *ident = PQescapeIdentifier(conn, table, strlen(table)), *sql = NULL;
	size_t len;
	int rc = -1;

	if (ident == NULL) {
		snprintf(err, errlen, "%s: cannot quote '%s'", what, table);
		return -1;
	}
	len = strlen(before) + strlen(ident) + strlen(after) + 1;
	if ((sql = malloc(len)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", what);
		goto out;
	}
	snprintf(sql, len, "%s%s%s", before, ident, after);
	rc = mailpipectl_db_command(conn, sql, 0, NULL, NULL, err, errlen, "%s", what);
out:
	free(sql);
	PQfreemem(ident);
	return rc;
}

static int
set_cutoff(PGconn *conn, time_t cutoff, char *err, size_t errlen)
{
	char t[RETENTION_TIME_LEN];
	const char *params[1] = {t};
	PGresult *res;

	retention_format_time(cutoff, t, sizeof(t));
	res =
	    mailpipectl_db_exec(conn, "SELECT set_config('mailpipe.cutoff', $1, false)", 1, params,
				0, PGRES_TUPLES_OK, err, errlen, "cannot set the cut-off");
	PQclear(res);
	return res ? 0 : -1;
}

static int
count_rows(struct retention *r, const struct target *t, struct stats *st, char *err, size_t errlen)
{
	char sql[256];
	PGresult *res;
	char *ident = NULL;

	if (t->is_default) {
		/* COPY takes no parameters: the cut-off is the setting mailpipe.cutoff */
		snprintf(sql, sizeof(sql),
			 "SELECT count(*), min(event_time), max(event_time) FROM events_default"
			 " WHERE event_time < current_setting('mailpipe.cutoff')::timestamptz");
	} else {
		if ((ident = PQescapeIdentifier(r->conn, t->table, strlen(t->table))) == NULL) {
			snprintf(err, errlen, "cannot quote '%s'", t->table);
			return -1;
		}
		snprintf(sql, sizeof(sql),
			 "SELECT count(*), min(event_time), max(event_time) FROM %s", ident);
		PQfreemem(ident);
	}
	res = mailpipectl_db_exec(r->conn, sql, 0, NULL, 0, PGRES_TUPLES_OK, err, errlen,
				  "cannot count the rows");
	if (res == NULL)
		return -1;
	st->rows = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	snprintf(st->min, sizeof(st->min), "%s", PQgetvalue(res, 0, 1));
	snprintf(st->max, sizeof(st->max), "%s", PQgetvalue(res, 0, 2));
	PQclear(res);
	return 0;
}

/* ISO 8601 of PostgreSQL's "2026-07-03 10:00:00.123+00" (TimeZone UTC), or JSON null. */
static json_t *
json_time(const char *pg)
{
	char buf[48];
	size_t n = strlen(pg);

	if (n == 0 || n + 4 >= sizeof(buf))
		return json_null();
	snprintf(buf, sizeof(buf), "%s", pg);
	if (buf[10] == ' ')
		buf[10] = 'T';
	if (n >= 3 && strcmp(buf + n - 3, "+00") == 0)
		snprintf(buf + n - 3, sizeof(buf) - (n - 3), "Z");
	return json_string(buf);
}

static json_t *
json_time_t(time_t t)
{
	char buf[RETENTION_TIME_LEN];

	retention_format_time(t, buf, sizeof(buf));
	return json_string(buf);
}

/*
 * COPYs the rows of t, ordered by event_time, as JSON lines into the gzip stream gz;
 * prints progress every few seconds. Rows in *rows.
 */
static int
copy_out(struct retention *r, const struct target *t, gzFile gz, long long *rows, char *err,
	 size_t errlen)
{
	char sql[512], why[512];
	char *ident = NULL, *buf = NULL;
	PGresult *res = NULL;
	double start = metrics_now(), last = start;
	long long n = 0;
	int len, rc = -1;

	if ((ident = PQescapeIdentifier(r->conn, t->table, strlen(t->table))) == NULL) {
		snprintf(err, errlen, "cannot quote '%s'", t->table);
		return -1;
	}
	/*
	 * CSV with a delimiter and a quote that valid JSON text never holds (control
	 * characters are escaped in JSON), so each line is the JSON text exactly.
	 */
	snprintf(sql, sizeof(sql),
		 "COPY (SELECT row_to_json(e)::text FROM %s e%s ORDER BY e.event_time, "
		 "e.sg_event_id) TO STDOUT WITH (FORMAT csv, DELIMITER E'\\x02', QUOTE "
		 "E'\\x01')",
		 ident,
		 t->is_default ? " WHERE e.event_time < "
				 "current_setting('mailpipe.cutoff')::timestamptz"
			       : "");
	res = PQexec(r->conn, sql);
	if (PQresultStatus(res) != PGRES_COPY_OUT) {
		mailpipectl_db_error(r->conn, res, why, sizeof(why));
		snprintf(err, errlen, "cannot read '%s': %s", t->table, why);
		goto out;
	}
	PQclear(res);
	res = NULL;
	while ((len = PQgetCopyData(r->conn, &buf, 0)) > 0) {
		if (len < 3 || buf[0] != '{' || buf[len - 1] != '\n' || buf[len - 2] != '}') {
			snprintf(err, errlen, "cannot read '%s': row %lld is not one JSON line",
				 t->table, n + 1);
			goto drain;
		}
		if (gzwrite(gz, buf, (unsigned)len) != len) {
			int zerr;
			snprintf(err, errlen, "cannot compress '%s': %s", t->name,
				 gzerror(gz, &zerr));
			goto drain;
		}
		PQfreemem(buf);
		buf = NULL;
		n++;
		if ((n & 1023) == 0 && metrics_now() - last >= PROGRESS_EVERY_S) {
			last = metrics_now();
			fprintf(stderr, "retention: %s: %lld rows so far (%.0f rows/s)\n", t->table,
				n, (double)n / (last - start));
		}
	}
	if (len == -2) {
		mailpipectl_db_error(r->conn, NULL, why, sizeof(why));
		snprintf(err, errlen, "cannot read '%s': %s", t->table, why);
		goto out;
	}
	res = PQgetResult(r->conn);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		mailpipectl_db_error(r->conn, res, why, sizeof(why));
		snprintf(err, errlen, "cannot read '%s': %s", t->table, why);
		goto out;
	}
	*rows = n;
	rc = 0;
	goto out;
drain:
	/* leave the connection usable for the ROLLBACK: read what is left of the COPY */
	PQfreemem(buf);
	buf = NULL;
	while (PQgetCopyData(r->conn, &buf, 0) > 0) {
		PQfreemem(buf);
		buf = NULL;
	}
out:
	PQfreemem(buf);
	PQclear(res);
	while ((res = PQgetResult(r->conn)) != NULL)
		PQclear(res);
	PQfreemem(ident);
	return rc;
}

/* Writes the gzip file of t to path, fsync'ed, mode ARCHIVE_FILE_MODE. */
static int
write_data(struct retention *r, const struct target *t, const char *path, long long *rows,
	   char *err, size_t errlen)
{
	gzFile gz = NULL;
	int fd = -1, gfd = -1, rc = -1, zrc;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, ARCHIVE_FILE_MODE);
	if (fd < 0 || fchmod(fd, ARCHIVE_FILE_MODE) < 0) {
		snprintf(err, errlen, "cannot create '%s': %s", path, strerror(errno));
		goto out;
	}
	/* gzclose() closes its descriptor: give it a copy and keep fd for the fsync */
	if ((gfd = dup(fd)) < 0 || (gz = gzdopen(gfd, "wb6")) == NULL) {
		snprintf(err, errlen, "cannot open '%s' for gzip: %s", path, strerror(errno));
		if (gfd >= 0)
			close(gfd);
		goto out;
	}
	gzbuffer(gz, 256 * 1024);
	if (copy_out(r, t, gz, rows, err, errlen) < 0)
		goto out;
	zrc = gzclose(gz);
	gz = NULL;
	if (zrc != Z_OK) {
		snprintf(err, errlen, "cannot write '%s': gzip error %d", path, zrc);
		goto out;
	}
	if (fsync(fd) < 0) {
		snprintf(err, errlen, "cannot sync '%s': %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (gz != NULL)
		gzclose(gz);
	if (fd >= 0 && close(fd) < 0 && rc == 0) {
		snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
		rc = -1;
	}
	return rc;
}

static json_t *
make_manifest(struct retention *r, const struct target *t, const char *file, const struct stats *st,
	      const char *sha, long long bytes)
{
	json_t *m = json_object();

	if (m == NULL)
		return NULL;
	json_object_set_new(m, "format", json_string(ARCHIVE_FORMAT));
	json_object_set_new(m, "table", json_string("events"));
	json_object_set_new(m, "partition", json_string(t->table));
	json_object_set_new(m, "name", json_string(t->name));
	json_object_set_new(m, "range_from", t->is_default ? json_null() : json_time_t(t->from));
	json_object_set_new(m, "range_to", json_time_t(t->to));
	json_object_set_new(m, "file", json_string(file));
	json_object_set_new(m, "compression", json_string("gzip"));
	json_object_set_new(m, "encoding", json_string("jsonl"));
	json_object_set_new(m, "rows", json_integer(st->rows));
	json_object_set_new(m, "bytes", json_integer(bytes));
	json_object_set_new(m, "sha256", json_string(sha));
	json_object_set_new(m, "min_event_time", json_time(st->min));
	json_object_set_new(m, "max_event_time", json_time(st->max));
	json_object_set_new(m, "created_at", json_time_t(time(NULL)));
	json_object_set_new(m, "mailpipe_version", json_string(MAILPIPE_VERSION));
	json_object_set_new(m, "schema_version", json_integer(r->schema_version));
	return m;
}

/*
 * Archives t and removes its rows, in one transaction: lock, count, copy to the gzip
 * file, write the manifest, verify both, then drop (or delete) with the guards.
 */
static int
archive_target(struct retention *r, const struct target *t, char *err, size_t errlen)
{
	char data[PATH_MAX], manifest[PATH_MAX], tmp[PATH_MAX + 8], file[128], vpath[PATH_MAX];
	char sha[ARCHIVE_SHA256_HEX], from[RETENTION_TIME_LEN], to[RETENTION_TIME_LEN];
	const char *params[2] = {from, to};
	struct stats st;
	json_t *m = NULL, *check = NULL;
	long long rows = 0, bytes = 0, guards = 0, deleted = 0;
	double start = metrics_now(), secs;
	int in_tx = 0, rc = -1;

	snprintf(file, sizeof(file), "%s" ARCHIVE_DATA_SUFFIX, t->name);
	if (snprintf(data, sizeof(data), "%s/%s", r->dir, file) >= (int)sizeof(data) ||
	    snprintf(manifest, sizeof(manifest), "%s/%s" ARCHIVE_MANIFEST_SUFFIX, r->dir,
		     t->name) >= (int)sizeof(manifest)) {
		snprintf(err, errlen, "archive path too long in '%s'", r->dir);
		return -1;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", data);
	retention_format_time(t->from, from, sizeof(from));
	retention_format_time(t->to, to, sizeof(to));

	if (mailpipectl_db_command(r->conn, "BEGIN", 0, NULL, NULL, err, errlen, "cannot begin") <
	    0)
		goto out;
	in_tx = 1;
	if (run_ident(r->conn, "LOCK TABLE ", t->table, " IN SHARE MODE", "cannot lock", err,
		      errlen) < 0 ||
	    count_rows(r, t, &st, err, errlen) < 0)
		goto out;
	if (write_data(r, t, tmp, &rows, err, errlen) < 0)
		goto out;
	if (rows != st.rows) {
		snprintf(err, errlen, "'%s': copied %lld rows, counted %lld", t->table, rows,
			 st.rows);
		goto out;
	}
	if (archive_sha256(tmp, sha, &bytes, err, errlen) < 0)
		goto out;
	if (rename(tmp, data) < 0) {
		snprintf(err, errlen, "cannot rename '%s': %s", tmp, strerror(errno));
		goto out;
	}
	if ((m = make_manifest(r, t, file, &st, sha, bytes)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (archive_write_manifest(manifest, m, err, errlen) < 0 ||
	    archive_fsync_dir(r->dir, err, errlen) < 0)
		goto out;
	/* read back what is on disk before anything is dropped */
	if (archive_verify(manifest, &check, vpath, sizeof(vpath), err, errlen) < 0)
		goto out;

	if (t->is_default) {
		if (mailpipectl_db_command(
			r->conn,
			"DELETE FROM event_ids g USING events_default d"
			" WHERE d.event_time < $1::timestamptz AND g.sg_event_id = d.sg_event_id",
			1, params + 1, &guards, err, errlen, "cannot delete the guards") < 0 ||
		    mailpipectl_db_command(
			r->conn, "DELETE FROM events_default WHERE event_time < $1::timestamptz", 1,
			params + 1, &deleted, err, errlen, "cannot delete the rows") < 0)
			goto out;
		if (deleted != rows) {
			snprintf(err, errlen, "'%s': would delete %lld rows, archived %lld",
				 t->table, deleted, rows);
			goto out;
		}
	} else {
		if (run_ident(r->conn, "DROP TABLE ", t->table, "", "cannot drop", err, errlen) <
			0 ||
		    mailpipectl_db_command(
			r->conn,
			"DELETE FROM event_ids WHERE event_time >= $1::timestamptz"
			" AND event_time < $2::timestamptz",
			2, params, &guards, err, errlen, "cannot delete the guards") < 0)
			goto out;
	}
	if (mailpipectl_db_command(r->conn, "COMMIT", 0, NULL, NULL, err, errlen, "cannot commit") <
	    0)
		goto out;
	in_tx = 0;
	secs = metrics_now() - start;
	fprintf(stderr,
		"retention: %s: %lld rows archived to %s and verified, %s, %lld guards "
		"deleted (%.1f s, %.0f rows/s)\n",
		t->table, rows, data, t->is_default ? "rows deleted" : "partition dropped", guards,
		secs, secs > 0 ? (double)rows / secs : 0.0);
	r->rows += rows;
	r->guards += guards;
	r->archives++;
	r->dropped += !t->is_default;
	rc = 0;
out:
	if (in_tx)
		rollback(r->conn);
	if (rc < 0)
		unlink(tmp);
	json_decref(m);
	json_decref(check);
	return rc;
}

static int
dry_run_target(struct retention *r, const struct target *t, char *err, size_t errlen)
{
	struct stats st;

	if (count_rows(r, t, &st, err, errlen) < 0)
		return -1;
	if (t->is_default && st.rows == 0)
		return 0;
	printf("would archive %lld rows of %s to %s/%s" ARCHIVE_DATA_SUFFIX " and %s\n", st.rows,
	       t->table, r->dir, t->name,
	       t->is_default ? "delete them and their guards"
			     : "drop the partition and the guards of its range");
	r->rows += st.rows;
	r->archives++;
	r->dropped += !t->is_default;
	return 0;
}

/* Fills *out (n in *count) with the expired monthly partitions, oldest first. */
static int
find_targets(struct retention *r, struct target **out, size_t *count, char *err, size_t errlen)
{
	PGresult *res = NULL;
	struct target *ts = NULL;
	size_t n = 0;
	int rc = -1;

	res = mailpipectl_db_exec(
	    r->conn,
	    "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
	    " JOIN pg_class c ON c.oid = i.inhrelid"
	    " WHERE i.inhparent = 'events'::regclass ORDER BY c.relname",
	    0, NULL, 0, PGRES_TUPLES_OK, err, errlen, "cannot list the partitions of 'events'");
	if (res == NULL)
		goto out;
	if ((ts = calloc((size_t)PQntuples(res) + 1, sizeof(*ts))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		const char *name = PQgetvalue(res, i, 0), *bound = PQgetvalue(res, i, 1);
		char want[128];
		int y, m;
		time_t from, to;

		if (strcmp(name, "events_default") == 0)
			continue;
		if (retention_parse_name(name, &y, &m) < 0 ||
		    retention_month_bounds(y, m, &from, &to) < 0) {
			mailpipectl_errx("retention: skipping partition '%s': not a monthly "
					 "partition events_yYYYYmMM",
					 name);
			continue;
		}
		if (!retention_expired(to, r->cutoff))
			continue;
		if (retention_bound_expr(y, m, want, sizeof(want)) < 0 ||
		    strcmp(want, bound) != 0) {
			mailpipectl_errx("retention: skipping partition '%s': its bounds '%s' are "
					 "not its month's",
					 name, bound);
			continue;
		}
		snprintf(ts[n].table, sizeof(ts[n].table), "%s", name);
		snprintf(ts[n].name, sizeof(ts[n].name), "%s", name);
		ts[n].from = from;
		ts[n].to = to;
		n++;
	}
	*out = ts;
	ts = NULL;
	*count = n;
	rc = 0;
out:
	free(ts);
	PQclear(res);
	return rc;
}

static int
parse_days(const char *s, long *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || n < 0 || n > RETENTION_DAYS_MAX)
		return -1;
	*out = n;
	return 0;
}

static int
run_retention(struct retention *r, char *err, size_t errlen)
{
	struct target *ts = NULL, def;
	size_t n = 0;
	char cut[RETENTION_TIME_LEN];
	int rc = -1;

	retention_format_time(r->cutoff, cut, sizeof(cut));
	if (archive_session(r->conn, &r->schema_version, err, errlen) < 0 ||
	    set_cutoff(r->conn, r->cutoff, err, errlen) < 0 ||
	    find_targets(r, &ts, &n, err, errlen) < 0)
		goto out;
	if (!r->dry_run && archive_mkdir(r->dir, err, errlen) < 0)
		goto out;
	fprintf(stderr, "retention: cut-off %s: %zu partition%s to archive and drop%s\n", cut, n,
		n == 1 ? "" : "s", r->dry_run ? " (dry run)" : "");
	for (size_t i = 0; i < n; i++) {
		if ((r->dry_run ? dry_run_target(r, &ts[i], err, errlen)
				: archive_target(r, &ts[i], err, errlen)) < 0)
			goto out;
	}
	memset(&def, 0, sizeof(def));
	def.is_default = 1;
	def.to = r->cutoff;
	snprintf(def.table, sizeof(def.table), "events_default");
	if (retention_default_name(r->cutoff, def.name, sizeof(def.name)) < 0) {
		snprintf(err, errlen, "cannot name the archive of 'events_default'");
		goto out;
	}
	if (r->dry_run) {
		if (dry_run_target(r, &def, err, errlen) < 0)
			goto out;
	} else {
		struct stats st;

		if (count_rows(r, &def, &st, err, errlen) < 0)
			goto out;
		if (st.rows > 0 && archive_target(r, &def, err, errlen) < 0)
			goto out;
	}
	rc = 0;
out:
	free(ts);
	return rc;
}

int
mailpipectl_retention_cmd(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dry-run", no_argument, NULL, 'n'},
	    {"days", required_argument, NULL, 'D'},
	    {"archive-dir", required_argument, NULL, 'a'},
	    {"config", required_argument, NULL, 'c'},
	    {"database-url", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct config cf;
	struct retention r;
	const char *url = NULL, *dir = NULL, *path = NULL;
	char err[2 * PATH_MAX + 512]; /* room for two paths */
	long days = -1;
	int opt, status = MAILPIPECTL_EXIT_FAIL;

	memset(&cf, 0, sizeof(cf));
	memset(&r, 0, sizeof(r));
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":hc:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'n': r.dry_run = 1; break;
		case 'D':
			if (parse_days(optarg, &days) < 0) {
				mailpipectl_errx("invalid '--days' '%s': expected 0 to %ld", optarg,
						 RETENTION_DAYS_MAX);
				return MAILPIPECTL_EXIT_USAGE;
			}
			break;
		case 'a': dir = optarg; break;
		case 'c': path = optarg; break;
		case 'd': url = optarg; break;
		default:
			mailpipectl_help_or_bad_option("retention", NULL, opt, argv[optind - 1],
						       retention_usage);
			return MAILPIPECTL_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		mailpipectl_errx("retention: unexpected argument '%s'", argv[optind]);
		retention_usage(stderr);
		return MAILPIPECTL_EXIT_USAGE;
	}
	if (config_load(&cf, path, err, sizeof(err)) < 0) {
		mailpipectl_errx("%s", err);
		goto out;
	}
	if (days < 0)
		days = cf.retention_days;
	if (dir == NULL)
		dir = cf.archive_dir;
	if (days == 0) {
		printf("retention: retention.days is 0: keeping every event\n");
		status = MAILPIPECTL_EXIT_OK;
		goto out;
	}
	if (dir == NULL || dir[0] != '/') {
		mailpipectl_errx("retention: archive.dir '%s' must be an absolute path: nothing is "
				 "dropped without an archive",
				 dir ? dir : "");
		goto out;
	}
	r.dir = dir;
	r.cutoff = retention_cutoff(time(NULL), days);
	if (mailpipectl_db_connect(url ? url : cf.database_url, &r.conn, err, sizeof(err)) < 0 ||
	    run_retention(&r, err, sizeof(err)) < 0) {
		mailpipectl_errx("retention: %s", err);
		goto out;
	}
	if (r.dry_run)
		printf("retention: dry run: %d partition%s would be dropped, %lld rows archived "
		       "in %d archive%s; nothing changed\n",
		       r.dropped, r.dropped == 1 ? "" : "s", r.rows, r.archives,
		       r.archives == 1 ? "" : "s");
	else
		printf("retention: %d partition%s dropped, %lld rows archived in %d archive%s, "
		       "%lld guards deleted; rollups kept\n",
		       r.dropped, r.dropped == 1 ? "" : "s", r.rows, r.archives,
		       r.archives == 1 ? "" : "s", r.guards);
	status = MAILPIPECTL_EXIT_OK;
out:
	PQfinish(r.conn);
	config_release(&cf);
	return status;
}
