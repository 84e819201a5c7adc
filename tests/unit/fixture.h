/*
 * fixture: reading the fixture folders that drive the table-driven unit tests (test_batch,
 * test_event), laid out like Jansson's test/suites:
 *
 *   <root>/<suite>/valid/<case>/...     one folder per case, named after it
 *   <root>/<suite>/invalid/<case>/...
 *
 * Nothing here records a TAP point or writes to stdout by itself (unit.h's state is per test
 * program); diagnostics go through the function a caller passes, normally unit_diag_text.
 */
#ifndef MAILPIPE_FIXTURE_H
#define MAILPIPE_FIXTURE_H

#include <stddef.h>
#include <dirent.h>

#include <jansson.h>

/* Runs one case: dir is the suite folder (root/sub), name the case folder inside it. */
typedef void fixture_case_fn(const char *dir, const char *name);

/* Prints text as a diagnostic (unit_diag_text). */
typedef void fixture_diag_fn(const char *text);

/* The fixture root: $MAILPIPE_FIXTURES if set and not empty, else "tests/fixtures". */
const char *fixture_root(void);

/* snprintf that may truncate on purpose (a diagnostic or a path too long to exist). */
void fixture_fmt(char *buf, size_t len, const char *f, ...) __attribute__((format(printf, 3, 4)));

/*
 * Reads the whole file at path and returns a new allocation the caller frees: exactly the
 * file's size, so ASan catches a read past the end, plus one NUL byte when terminate is set.
 * An empty file read without terminate gives a 1-byte buffer.  Sets *lenp (unless lenp is
 * NULL) to the file's size, the NUL not counted.  NULL on error with errno set.
 */
char *fixture_slurp(const char *path, size_t *lenp, int terminate);

/*
 * Reads a small text file, trailing white space (\n \r space tab) trimmed; returns a new
 * NUL-terminated allocation the caller frees, or NULL (errno set) if it cannot be read, for
 * instance when it is absent.
 */
char *fixture_slurp_text(const char *path);

/*
 * Loads the JSON file at path (json_load_file(), no flags) and returns a new reference the
 * caller releases with json_decref(); or NULL with why set to "<path>:<line>:<column>: <error>".
 */
json_t *fixture_load_json(const char *path, char *why, size_t whylen);

/*
 * Lists the case folders of dir: subdirectories whose names do not start with '.', sorted
 * with alphasort.  Returns their count, with *names set to a new array the caller frees, as
 * well as each of its first count entries (free(names[i]) then free(names)); or -1 with errno
 * set and nothing to free.
 */
int fixture_list_cases(const char *dir, struct dirent ***names);

/*
 * Calls fn(root/sub, name) for every case folder of root/sub, in name order, and returns how
 * many there were.  When root/sub cannot be listed, passes "cannot list <dir>: <reason>" to
 * diag and returns 0.  Everything it allocates is freed before it returns.
 */
int fixture_run_suite(const char *root, const char *sub, fixture_case_fn *fn,
		      fixture_diag_fn *diag);

/* The diagnostic for a fixture folder with no cases: printf format for (nvalid, ninvalid). */
#define FIXTURE_NO_CASES_HINT                                                                      \
	"%d valid and %d invalid cases: run from the repository root or set MAILPIPE_FIXTURES"

/*
 * Reads what an invalid case expects: dir/name/error.txt, text the error message must
 * contain (required, not empty), and dir/name/field.txt, the field at fault (optional; empty
 * is kept as ""), both as fixture_slurp_text() gives them.  Returns 0 with *want_err and
 * *want_field (NULL when field.txt is absent) set to new allocations the caller frees; or -1
 * with both NULL and why set to "<path>: missing or empty".
 */
int fixture_read_invalid(const char *dir, const char *name, char **want_err, char **want_field,
			 char *why, size_t whylen);

#endif
