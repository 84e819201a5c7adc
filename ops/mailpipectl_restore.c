/*
 * mailpipectl_restore.c: `mailpipectl restore ARCHIVE [--dry-run]` loads back what
 * `mailpipectl retention` archived.
 *
 * The archive is verified first (manifest format, size and SHA-256 of the data file,
 * one JSON object per line, row count); a file that does not match is refused before
 * the database is touched. Then, in one transaction: the monthly partition is created
 * when missing (mailpipe_create_partition(), sql/015_retention.sql), the lines are
 * COPYed into a temporary table, and each row is inserted into events only when its
 * event_ids guard is new, as the sink does: restoring twice, or restoring events a
 * Kafka replay stored again, stores nothing twice. The rollups are not touched
 * (retention kept them). --dry-run does all of it and rolls back.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "config.h"
#include "mailpipectl.h"
#include "mailpipectl_archive.h"
#include "retention.h"

#define CHUNK (256 * 1024)

struct restore {
	PGconn *conn;
	json_t *manifest; /* owned */
	char data[PATH_MAX];
	const char *partition; /* borrowed from manifest */
	int dry_run;
	long long rows, loaded, inserted;
	int created;
};

static void
restore_usage(FILE *out)
{
	fputs("usage: mailpipectl restore ARCHIVE [--dry-run] [-c FILE] [--database-url URL]\n"
	      "  verify the archive NAME" ARCHIVE_DATA_SUFFIX " (or NAME" ARCHIVE_MANIFEST_SUFFIX
	      ") written by\n"
	      "  'mailpipectl retention' against its manifest, recreate its partition when\n"
	      "  missing and load its rows back into 'events' with their event_ids guards;\n"
	      "  rows whose guard exists are skipped, so restoring twice stores nothing twice.\n"
	      "  --dry-run does the same and rolls back. Must run as the owner of 'events'.\n",
	      out);
}

/* Recreates the monthly partition of the archive when missing. */
static int
ensure_partition(struct restore *r, char *err, size_t errlen)
{
	const char *rfrom = json_string_value(json_object_get(r->manifest, "range_from"));
	const char *rto = json_string_value(json_object_get(r->manifest, "range_to"));
	char month[16];
	const char *params[1] = {month};
	PGresult *res;
	time_t from, to, mf, mt;
	int y, m;

	if (strcmp(r->partition, "events_default") == 0)
		return 0;
	if (retention_parse_name(r->partition, &y, &m) < 0 ||
	    retention_month_bounds(y, m, &from, &to) < 0 || rfrom == NULL || rto == NULL ||
	    retention_parse_time(rfrom, &mf) < 0 || retention_parse_time(rto, &mt) < 0 ||
	    mf != from || mt != to) {
		snprintf(err, errlen,
			 "the manifest's partition '%s' and range do not match a monthly partition",
			 r->partition);
		return -1;
	}
	snprintf(month, sizeof(month), "%04d-%02d-01", y, m);
	res = mailpipectl_db_exec(r->conn, "SELECT mailpipe_create_partition($1::date)", 1, params,
				  0, PGRES_TUPLES_OK, err, errlen, "cannot create the partition");
	if (res == NULL)
		return -1;
	r->created = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return 0;
}

/* COPYs the archive's lines into the temporary table mailpipe_restore. */
static int
copy_in(struct restore *r, char *err, size_t errlen)
{
	gzFile gz = NULL;
	char *buf = NULL, why[512];
	PGresult *res = NULL;
	int n, rc = -1, copying = 0;

	if ((gz = gzopen(r->data, "rb")) == NULL || (buf = malloc(CHUNK)) == NULL) {
		snprintf(err, errlen, "cannot open '%s': %s", r->data, strerror(errno));
		goto out;
	}
	res = PQexec(r->conn, "COPY mailpipe_restore (line) FROM STDIN WITH (FORMAT csv, "
			      "DELIMITER E'\\x02', QUOTE E'\\x01')");
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		mailpipectl_db_error(r->conn, res, why, sizeof(why));
		snprintf(err, errlen, "cannot load '%s': %s", r->data, why);
		goto out;
	}
	PQclear(res);
	res = NULL;
	copying = 1;
	while ((n = gzread(gz, buf, CHUNK)) > 0) {
		if (PQputCopyData(r->conn, buf, n) != 1) {
			mailpipectl_db_error(r->conn, NULL, why, sizeof(why));
			snprintf(err, errlen, "cannot load '%s': %s", r->data, why);
			goto out;
		}
	}
	if (n < 0) {
		int zerr;
		snprintf(err, errlen, "cannot read '%s': %s", r->data, gzerror(gz, &zerr));
		PQputCopyEnd(r->conn, "archive unreadable");
		copying = 0;
		goto out;
	}
	copying = 0;
	if (PQputCopyEnd(r->conn, NULL) != 1) {
		mailpipectl_db_error(r->conn, NULL, why, sizeof(why));
		snprintf(err, errlen, "cannot load '%s': %s", r->data, why);
		goto out;
	}
	res = PQgetResult(r->conn);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		mailpipectl_db_error(r->conn, res, why, sizeof(why));
		snprintf(err, errlen, "cannot load '%s': %s", r->data, why);
		goto out;
	}
	r->loaded = strtoll(PQcmdTuples(res), NULL, 10);
	rc = 0;
out:
	if (copying)
		PQputCopyEnd(r->conn, "restore failed");
	PQclear(res);
	while ((res = PQgetResult(r->conn)) != NULL)
		PQclear(res);
	if (gz != NULL)
		gzclose(gz);
	free(buf);
	return rc;
}

static int
run_restore(struct restore *r, char *err, size_t errlen)
{
	long schema = 0;
	int in_tx = 0, rc = -1;

	if (archive_session(r->conn, &schema, err, errlen) < 0 ||
	    mailpipectl_db_command(r->conn, "BEGIN", 0, NULL, NULL, err, errlen, "cannot begin") <
		0)
		goto out;
	in_tx = 1;
	if (ensure_partition(r, err, errlen) < 0 ||
	    mailpipectl_db_command(r->conn,
				   "CREATE TEMP TABLE mailpipe_restore (line jsonb NOT NULL)"
				   " ON COMMIT DROP",
				   0, NULL, NULL, err, errlen,
				   "cannot create the staging table") < 0 ||
	    copy_in(r, err, errlen) < 0)
		goto out;
	if (r->loaded != r->rows) {
		snprintf(err, errlen, "loaded %lld lines, the manifest says %lld", r->loaded,
			 r->rows);
		goto out;
	}
	/* the sink's rule: an events row only for a guard this statement inserted */
	if (mailpipectl_db_command(
		r->conn,
		"WITH src AS ("
		"  SELECT DISTINCT ON (e.sg_event_id) e.*"
		"  FROM mailpipe_restore s, jsonb_populate_record(NULL::events, s.line) e"
		"  ORDER BY e.sg_event_id, e.received_at),"
		" g AS ("
		"  INSERT INTO event_ids (sg_event_id, event_time)"
		"  SELECT sg_event_id, event_time FROM src"
		"  ON CONFLICT (sg_event_id) DO NOTHING RETURNING sg_event_id)"
		" INSERT INTO events SELECT src.* FROM src JOIN g USING (sg_event_id)",
		0, NULL, &r->inserted, err, errlen, "cannot insert the rows") < 0 ||
	    mailpipectl_db_command(r->conn, r->dry_run ? "ROLLBACK" : "COMMIT", 0, NULL, NULL, err,
				   errlen, "cannot commit") < 0)
		goto out;
	in_tx = 0;
	rc = 0;
out:
	if (in_tx)
		PQclear(PQexec(r->conn, "ROLLBACK"));
	return rc;
}

int
mailpipectl_restore_cmd(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dry-run", no_argument, NULL, 'n'},
	    {"config", required_argument, NULL, 'c'},
	    {"database-url", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct config cf;
	struct restore r;
	const char *url = NULL, *path = NULL, *table;
	char err[2 * PATH_MAX + 512]; /* room for two paths */
	int opt, status = MAILPIPECTL_EXIT_FAIL;

	memset(&cf, 0, sizeof(cf));
	memset(&r, 0, sizeof(r));
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":hc:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'n': r.dry_run = 1; break;
		case 'c': path = optarg; break;
		case 'd': url = optarg; break;
		default:
			mailpipectl_help_or_bad_option("restore", NULL, opt, argv[optind - 1],
						       restore_usage);
			return MAILPIPECTL_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		mailpipectl_errx("restore: expected one archive file");
		restore_usage(stderr);
		return MAILPIPECTL_EXIT_USAGE;
	}
	if (archive_verify(argv[optind], &r.manifest, r.data, sizeof(r.data), err, sizeof(err)) <
	    0) {
		mailpipectl_errx("restore: refused: %s", err);
		goto out;
	}
	r.rows = json_integer_value(json_object_get(r.manifest, "rows"));
	r.partition = json_string_value(json_object_get(r.manifest, "partition"));
	table = json_string_value(json_object_get(r.manifest, "table"));
	if (r.partition == NULL || table == NULL || strcmp(table, "events") != 0) {
		mailpipectl_errx("restore: refusing '%s': its manifest names no partition of "
				 "'events'",
				 argv[optind]);
		goto out;
	}
	fprintf(stderr, "restore: %s: %lld rows, checksum verified\n", r.data, r.rows);
	if (config_load(&cf, path, err, sizeof(err)) < 0) {
		mailpipectl_errx("%s", err);
		goto out;
	}
	if (mailpipectl_db_connect(url ? url : cf.database_url, &r.conn, err, sizeof(err)) < 0 ||
	    run_restore(&r, err, sizeof(err)) < 0) {
		mailpipectl_errx("restore: %s", err);
		goto out;
	}
	printf("restore: %s%s: %lld rows in the archive, %lld %s, %lld already present; "
	       "partition %s %s\n",
	       r.dry_run ? "dry run: " : "", r.partition, r.rows, r.inserted,
	       r.dry_run ? "would be restored" : "restored", r.rows - r.inserted, r.partition,
	       r.created ? (r.dry_run ? "would be created" : "created") : "existed");
	status = MAILPIPECTL_EXIT_OK;
out:
	PQfinish(r.conn);
	json_decref(r.manifest);
	config_release(&cf);
	return status;
}
