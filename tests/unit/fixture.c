/*
 * fixture: reading the unit tests' fixture folders; see fixture.h.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "fixture.h"

const char *
fixture_root(void)
{
	const char *root = getenv("MAILPIPE_FIXTURES");

	return root == NULL || *root == '\0' ? "tests/fixtures" : root;
}

void
fixture_fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;

	va_start(ap, f);
	vsnprintf(buf, len, f, ap);
	va_end(ap);
}

char *
fixture_slurp(const char *path, size_t *lenp, int terminate)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL, *exact;
	size_t len = 0, cap = 0, n;

	if (f == NULL)
		return NULL;
	do {
		if (cap - len < 4096) {
			char *nb = realloc(buf, cap + 65536);

			if (nb == NULL) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
			cap += 65536;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	if (ferror(f)) {
		free(buf);
		fclose(f);
		errno = EIO;
		return NULL;
	}
	fclose(f);
	if ((exact = malloc(len + (terminate || len == 0))) != NULL) {
		memcpy(exact, buf, len);
		if (terminate)
			exact[len] = '\0';
	}
	free(buf);
	if (lenp != NULL)
		*lenp = len;
	return exact;
}

char *
fixture_slurp_text(const char *path)
{
	size_t len = 0;
	char *s = fixture_slurp(path, &len, 1);

	while (
	    s && len > 0 &&
	    (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' || s[len - 1] == '\t'))
		s[--len] = '\0';
	return s;
}

json_t *
fixture_load_json(const char *path, char *why, size_t whylen)
{
	json_error_t jerr;
	json_t *v = json_load_file(path, 0, &jerr);

	if (v == NULL)
		fixture_fmt(why, whylen, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
	return v;
}

static int
is_case_dir(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

int
fixture_list_cases(const char *dir, struct dirent ***names)
{
	int n = scandir(dir, names, is_case_dir, alphasort), k = 0;

	if (n < 0)
		return -1;
	/* Keep directories only. */
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;

		fixture_fmt(path, sizeof(path), "%s/%s", dir, (*names)[i]->d_name);
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			(*names)[k++] = (*names)[i];
		else
			free((*names)[i]);
	}
	return k;
}

int
fixture_run_suite(const char *root, const char *sub, fixture_case_fn *fn, fixture_diag_fn *diag)
{
	char dir[4096], why[4096 + 256];
	struct dirent **names = NULL;
	int n;

	fixture_fmt(dir, sizeof(dir), "%s/%s", root, sub);
	if ((n = fixture_list_cases(dir, &names)) < 0) {
		fixture_fmt(why, sizeof(why), "cannot list %s: %s", dir, strerror(errno));
		diag(why);
		return 0;
	}
	for (int i = 0; i < n; i++) {
		fn(dir, names[i]->d_name);
		free(names[i]);
	}
	free(names);
	return n;
}

int
fixture_read_invalid(const char *dir, const char *name, char **want_err, char **want_field,
		     char *why, size_t whylen)
{
	char path[4096];

	*want_field = NULL;
	fixture_fmt(path, sizeof(path), "%s/%s/error.txt", dir, name);
	if ((*want_err = fixture_slurp_text(path)) == NULL || (*want_err)[0] == '\0') {
		fixture_fmt(why, whylen, "%s: missing or empty", path);
		free(*want_err);
		*want_err = NULL;
		return -1;
	}
	fixture_fmt(path, sizeof(path), "%s/%s/field.txt", dir, name);
	*want_field = fixture_slurp_text(path);
	return 0;
}
