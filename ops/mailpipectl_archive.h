/*
 * mailpipectl_archive.h: the archive files of `mailpipectl retention` and `restore`.
 *
 * An archive is two files in one directory: NAME.jsonl.gz, gzip-compressed JSON lines
 * (one object per events row, every column), and NAME.manifest.json, which says what
 * the first holds (ARCHIVE_FORMAT, table, partition and range, rows, the SHA-256 and
 * size of the compressed file, min/max event_time, when and by which schema it was made).
 * Both are written to a temporary name, fsync'ed and renamed, then the directory is
 * fsync'ed: a crash leaves either the old state or both complete files.
 */
#ifndef MAILPIPECTL_ARCHIVE_H
#define MAILPIPECTL_ARCHIVE_H

#include <stddef.h>

#include <jansson.h>

#include "mailpipectl.h"

/* the build may say which mailpipe made an archive: make CFLAGS+=-DMAILPIPE_VERSION=... */
#ifndef MAILPIPE_VERSION
#define MAILPIPE_VERSION "dev"
#endif

#define ARCHIVE_FORMAT "mailpipe-archive/1"
#define ARCHIVE_DATA_SUFFIX ".jsonl.gz"
#define ARCHIVE_MANIFEST_SUFFIX ".manifest.json"
#define ARCHIVE_FILE_MODE 0640
#define ARCHIVE_DIR_MODE 0750
#define ARCHIVE_SHA256_HEX 65 /* 64 hex digits and the NUL */

/* Creates dir and its missing parents (mode ARCHIVE_DIR_MODE); an existing one is fine. */
int archive_mkdir(const char *dir, char *err, size_t errlen) MAILPIPECTL_MUSTCHECK;

/* fsyncs directory dir, making renames in it durable. */
int archive_fsync_dir(const char *dir, char *err, size_t errlen) MAILPIPECTL_MUSTCHECK;

/* SHA-256 (lower-case hex) and size of the file at path. */
int archive_sha256(const char *path, char hex[ARCHIVE_SHA256_HEX], long long *bytes, char *err,
		   size_t errlen) MAILPIPECTL_MUSTCHECK;

/*
 * Decompresses the gzip file at path and counts its lines into *rows, checking that
 * each is one JSON object (so the file restores). Fails on a truncated or corrupt file.
 */
int archive_count_rows(const char *path, long long *rows, char *err,
		       size_t errlen) MAILPIPECTL_MUSTCHECK;

/* Writes manifest (borrowed) to path atomically: path.tmp, fsync, rename, mode 0640. */
int archive_write_manifest(const char *path, const json_t *manifest, char *err,
			   size_t errlen) MAILPIPECTL_MUSTCHECK;

/*
 * Reads and checks the archive whose manifest or data file is at path: the manifest's
 * format, the data file's size and SHA-256 against the manifest, and its row count.
 * On success *manifest is a new reference and data_path (size len) the data file's path.
 */
int archive_verify(const char *path, json_t **manifest, char *data_path, size_t len, char *err,
		   size_t errlen) MAILPIPECTL_MUSTCHECK;

/*
 * Prepares conn (borrowed) for archive work: TimeZone UTC, a bounded lock wait, and
 * checks that the session's role owns events (directly or by membership), which
 * dropping and creating partitions needs.  *schema_version is the newest migration
 * applied (schema_migrations).
 */
int archive_session(PGconn *conn, long *schema_version, char *err,
		    size_t errlen) MAILPIPECTL_MUSTCHECK;

#endif
