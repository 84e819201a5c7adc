/*
 * mailpipectl_archive.c: writing, checksumming and verifying the archive files of
 * `mailpipectl retention` and `restore`; see mailpipectl_archive.h.
 */
#include "mailpipectl_archive.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <zlib.h>

#define IO_CHUNK (128 * 1024)
#define LINE_MAX_BYTES (256L * 1024 * 1024) /* raw is capped far below this */

int
archive_mkdir(const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(path)) {
		snprintf(err, errlen, "invalid archive directory '%s'", dir);
		return -1;
	}
	memcpy(path, dir, n + 1);
	for (char *p = path + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(path, ARCHIVE_DIR_MODE) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create '%s': %s", path, strerror(errno));
			return -1;
		}
		*p = c;
		if (c == '\0')
			break;
	}
	struct stat st;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "'%s' is not a directory", dir);
		return -1;
	}
	return 0;
}

int
archive_fsync_dir(const char *dir, char *err, size_t errlen)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || fsync(fd) < 0) {
		snprintf(err, errlen, "cannot sync directory '%s': %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int
archive_sha256(const char *path, char hex[ARCHIVE_SHA256_HEX], long long *bytes, char *err,
	       size_t errlen)
{
	EVP_MD_CTX *ctx = NULL;
	unsigned char *buf = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	long long total = 0;
	ssize_t n;
	int fd = -1, rc = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
		goto out;
	}
	if ((buf = malloc(IO_CHUNK)) == NULL || (ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		snprintf(err, errlen, "cannot hash '%s': out of memory", path);
		goto out;
	}
	while ((n = read(fd, buf, IO_CHUNK)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
			goto out;
		}
		if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
			snprintf(err, errlen, "cannot hash '%s'", path);
			goto out;
		}
		total += n;
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) {
		snprintf(err, errlen, "cannot hash '%s'", path);
		goto out;
	}
	for (unsigned int i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	*bytes = total;
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	free(buf);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Checks one line (without its newline) is a JSON object. */
static int
check_line(const char *line, size_t len, long long lineno, const char *path, char *err,
	   size_t errlen)
{
	json_error_t jerr;
	json_t *v = json_loadb(line, len, 0, &jerr);
	int ok = v != NULL && json_is_object(v);

	json_decref(v);
	if (!ok)
		snprintf(err, errlen, "'%s': line %lld is not a JSON object", path, lineno);
	return ok ? 0 : -1;
}

int
archive_count_rows(const char *path, long long *rows, char *err, size_t errlen)
{
	gzFile gz = NULL;
	char *buf = NULL, *line = NULL;
	size_t llen = 0, lcap = 0;
	long long count = 0;
	int n, rc = -1;

	if ((gz = gzopen(path, "rb")) == NULL) {
		snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
		goto out;
	}
	if ((buf = malloc(IO_CHUNK)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	gzbuffer(gz, IO_CHUNK);
	while ((n = gzread(gz, buf, IO_CHUNK)) > 0) {
		const char *p = buf, *end = buf + n;

		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t take = (size_t)((nl ? nl : end) - p);

			if (llen + take > (size_t)LINE_MAX_BYTES) {
				snprintf(err, errlen, "'%s': line %lld is too long", path,
					 count + 1);
				goto out;
			}
			if (llen + take + 1 > lcap) {
				size_t cap = (llen + take + 1) * 2;
				char *nb = realloc(line, cap);
				if (nb == NULL) {
					snprintf(err, errlen, "out of memory");
					goto out;
				}
				line = nb;
				lcap = cap;
			}
			memcpy(line + llen, p, take);
			llen += take;
			p += take;
			if (nl == NULL)
				break;
			p++; /* the newline */
			count++;
			if (check_line(line, llen, count, path, err, errlen) < 0)
				goto out;
			llen = 0;
		}
	}
	if (n < 0) {
		int zerr = 0;
		const char *msg = gzerror(gz, &zerr);
		snprintf(err, errlen, "'%s' is corrupt: %s", path,
			 zerr == Z_ERRNO ? strerror(errno) : msg);
		goto out;
	}
	if (llen > 0) {
		snprintf(err, errlen, "'%s' is truncated: its last line has no newline", path);
		goto out;
	}
	*rows = count;
	rc = 0;
out:
	free(line);
	free(buf);
	if (gz != NULL && gzclose(gz) != Z_OK && rc == 0) {
		snprintf(err, errlen, "'%s' is corrupt: bad gzip trailer", path);
		rc = -1;
	}
	return rc;
}

static int
write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
archive_write_manifest(const char *path, const json_t *manifest, char *err, size_t errlen)
{
	char tmp[PATH_MAX + 16];
	char *text = NULL;
	size_t len;
	int fd = -1, rc = -1;

	if ((text = json_dumps(manifest, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) == NULL) {
		snprintf(err, errlen, "cannot encode the manifest: out of memory");
		goto out;
	}
	len = strlen(text);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, ARCHIVE_FILE_MODE);
	if (fd < 0 || fchmod(fd, ARCHIVE_FILE_MODE) < 0) {
		snprintf(err, errlen, "cannot create '%s': %s", tmp, strerror(errno));
		goto out;
	}
	if (write_all(fd, text, len) < 0 || write_all(fd, "\n", 1) < 0) {
		snprintf(err, errlen, "cannot write '%s': %s", tmp, strerror(errno));
		goto out;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		snprintf(err, errlen, "cannot write '%s': %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		snprintf(err, errlen, "cannot rename '%s': %s", tmp, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		unlink(tmp);
	free(text);
	return rc;
}

/* The manifest path for path (a manifest itself, or NAME.jsonl.gz). */
static int
manifest_path(const char *path, char *out, size_t len, char *err, size_t errlen)
{
	size_t n = strlen(path), ds = strlen(ARCHIVE_DATA_SUFFIX),
	       ms = strlen(ARCHIVE_MANIFEST_SUFFIX);
	int w;

	if (n > ms && strcmp(path + n - ms, ARCHIVE_MANIFEST_SUFFIX) == 0)
		w = snprintf(out, len, "%s", path);
	else if (n > ds && strcmp(path + n - ds, ARCHIVE_DATA_SUFFIX) == 0)
		w = snprintf(out, len, "%.*s%s", (int)(n - ds), path, ARCHIVE_MANIFEST_SUFFIX);
	else {
		snprintf(err, errlen,
			 "'%s' is not an archive: expected NAME" ARCHIVE_DATA_SUFFIX
			 " or NAME" ARCHIVE_MANIFEST_SUFFIX,
			 path);
		return -1;
	}
	if (w < 0 || (size_t)w >= len) {
		snprintf(err, errlen, "path too long: '%s'", path);
		return -1;
	}
	return 0;
}

int
archive_verify(const char *path, json_t **manifest, char *data_path, size_t len, char *err,
	       size_t errlen)
{
	char mpath[PATH_MAX], hex[ARCHIVE_SHA256_HEX], why[512];
	json_t *m = NULL;
	json_error_t jerr;
	const char *fmt, *file, *sum, *slash;
	long long rows, bytes, want_rows, want_bytes;
	int w, rc = -1;

	if (manifest_path(path, mpath, sizeof(mpath), err, errlen) < 0)
		goto out;
	if ((m = json_load_file(mpath, 0, &jerr)) == NULL) {
		snprintf(err, errlen, "cannot read manifest '%s': %s", mpath, jerr.text);
		goto out;
	}
	fmt = json_string_value(json_object_get(m, "format"));
	file = json_string_value(json_object_get(m, "file"));
	sum = json_string_value(json_object_get(m, "sha256"));
	if (fmt == NULL || strcmp(fmt, ARCHIVE_FORMAT) != 0 || file == NULL ||
	    strchr(file, '/') != NULL || sum == NULL ||
	    !json_is_integer(json_object_get(m, "rows")) ||
	    !json_is_integer(json_object_get(m, "bytes"))) {
		snprintf(err, errlen,
			 "'%s' is not a mailpipe manifest (expected format '" ARCHIVE_FORMAT
			 "' with file, rows, bytes and sha256)",
			 mpath);
		goto out;
	}
	want_rows = json_integer_value(json_object_get(m, "rows"));
	want_bytes = json_integer_value(json_object_get(m, "bytes"));
	slash = strrchr(mpath, '/');
	w = slash ? snprintf(data_path, len, "%.*s/%s", (int)(slash - mpath), mpath, file)
		  : snprintf(data_path, len, "%s", file);
	if (w < 0 || (size_t)w >= len) {
		snprintf(err, errlen, "path too long: '%s'", file);
		goto out;
	}
	if (archive_sha256(data_path, hex, &bytes, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s", why);
		goto out;
	}
	if (bytes != want_bytes || strcmp(hex, sum) != 0) {
		snprintf(err, errlen,
			 "'%s' does not match its manifest: %lld bytes, sha256 %s; the manifest "
			 "says %lld bytes, sha256 %s",
			 data_path, bytes, hex, want_bytes, sum);
		goto out;
	}
	if (archive_count_rows(data_path, &rows, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s", why);
		goto out;
	}
	if (rows != want_rows) {
		snprintf(err, errlen, "'%s' holds %lld rows; its manifest says %lld", data_path,
			 rows, want_rows);
		goto out;
	}
	*manifest = m;
	m = NULL;
	rc = 0;
out:
	json_decref(m);
	return rc;
}

int
archive_session(PGconn *conn, long *schema_version, char *err, size_t errlen)
{
	PGresult *res = NULL;
	int rc = -1;

	if (mailpipectl_db_command(conn, "SET TimeZone = 'UTC'", 0, NULL, NULL, err, errlen,
				   "cannot set up the session") < 0 ||
	    mailpipectl_db_command(conn, "SET lock_timeout = '60s'", 0, NULL, NULL, err, errlen,
				   "cannot set up the session") < 0)
		goto out;
	res = mailpipectl_db_exec(conn,
				  "SELECT current_user, pg_get_userbyid(c.relowner),"
				  " pg_has_role(current_user, c.relowner, 'USAGE')"
				  " FROM pg_class c WHERE c.oid = to_regclass('events')",
				  0, NULL, 0, PGRES_TUPLES_OK, err, errlen,
				  "cannot look up the owner of 'events'");
	if (res == NULL)
		goto out;
	if (PQntuples(res) != 1) {
		snprintf(err, errlen, "no table 'events': run 'mailpipectl migrate' first");
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 2), "t") != 0) {
		snprintf(err, errlen,
			 "role '%s' does not own 'events' (its owner is '%s'): run as the "
			 "migration role, with the '--database-url' 'mailpipectl migrate' uses",
			 PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
		goto out;
	}
	PQclear(res);
	/* an aggregate: always one row */
	res = mailpipectl_db_exec(conn, "SELECT coalesce(max(version), 0) FROM schema_migrations",
				  0, NULL, 0, PGRES_TUPLES_OK, err, errlen,
				  "cannot read 'schema_migrations'");
	if (res == NULL)
		goto out;
	*schema_version = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	rc = 0;
out:
	PQclear(res);
	return rc;
}
