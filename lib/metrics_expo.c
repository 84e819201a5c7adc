/*
 * metrics_expo: snapshot merging and the Prometheus text format; see metrics_expo.h.
 *
 * Snapshots are checked whole before any of them is used, so rendering can trust their
 * shape.  Families are merged by name in the order first seen (mailpipe_up first).
 */
#include "metrics_expo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define UP_NAME "mailpipe_up"
#define UP_HELP "1 if the process pushed its metrics recently, 0 if its snapshot is stale."

struct snap {
	char *process, *instance;
	json_t *doc;
	int fresh;
};

struct fam {
	const char *name, *help, *type; /* borrowed from the first snapshot showing it */
	struct {
		const struct snap *s;
		json_t *f; /* the family object in s->doc */
	} * parts;
	size_t nparts;
};

struct metrics_expo {
	double now;
	struct snap *snaps;
	size_t nsnaps;
};

struct metrics_expo *
metrics_expo_new(double now)
{
	struct metrics_expo *e = calloc(1, sizeof(*e));

	if (e)
		e->now = now;
	return e;
}

void
metrics_expo_free(struct metrics_expo *e)
{
	if (e == NULL)
		return;
	for (size_t i = 0; i < e->nsnaps; i++) {
		free(e->snaps[i].process);
		json_decref(e->snaps[i].doc);
	}
	free(e->snaps);
	free(e);
}

static int
name_ok(const char *s, int colon)
{
	if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9'))
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || (colon && *s == ':')))
			return 0;
	return 1;
}

static int
label_name_ok(const char *s)
{
	return name_ok(s, 0) && strcmp(s, "process") != 0 && strcmp(s, "instance") != 0 &&
	       strcmp(s, "le") != 0 && strncmp(s, "__", 2) != 0;
}

/* 1 if every element of a is a string (and a valid label name when names). */
static int
strings_ok(const json_t *a, size_t want, int names)
{
	size_t i;
	json_t *v;

	if (!json_is_array(a) || json_array_size(a) != want)
		return 0;
	for (i = 0; i < want; i++) {
		v = json_array_get(a, i);
		if (!json_is_string(v) || (names && !label_name_ok(json_string_value(v))))
			return 0;
	}
	return 1;
}

static int
sample_ok(const json_t *s, size_t nlabels, const char *type, size_t nbuckets)
{
	size_t i;
	json_t *v;

	if (!json_is_object(s) || !strings_ok(json_object_get(s, "l"), nlabels, 0))
		return 0;
	if (strcmp(type, "histogram") != 0)
		return json_is_number(json_object_get(s, "v"));
	if (!json_is_number(json_object_get(s, "sum")) ||
	    !json_is_integer(json_object_get(s, "count")) ||
	    json_integer_value(json_object_get(s, "count")) < 0 ||
	    !json_is_array(json_object_get(s, "b")) ||
	    json_array_size(json_object_get(s, "b")) != nbuckets)
		return 0;
	for (i = 0; i < nbuckets; i++) {
		v = json_array_get(json_object_get(s, "b"), i);
		if (!json_is_integer(v) || json_integer_value(v) < 0)
			return 0;
	}
	return 1;
}

static int
family_ok(const json_t *f)
{
	const char *name = json_string_value(json_object_get(f, "name"));
	const char *type = json_string_value(json_object_get(f, "type"));
	json_t *labels = json_object_get(f, "labels"), *samples = json_object_get(f, "samples");
	json_t *buckets = json_object_get(f, "buckets"), *v;
	size_t nbuckets = 0, i;
	double prev = -INFINITY;

	if (!json_is_object(f) || !name_ok(name, 1) || strcmp(name, UP_NAME) == 0 || !type ||
	    !json_is_string(json_object_get(f, "help")) || !json_is_array(labels) ||
	    !strings_ok(labels, json_array_size(labels), 1) || !json_is_array(samples))
		return 0;
	if (strcmp(type, "histogram") == 0) {
		if (!json_is_array(buckets))
			return 0;
		for (i = 0; i < json_array_size(buckets); i++) {
			v = json_array_get(buckets, i);
			if (!json_is_number(v) || !(json_number_value(v) > prev) ||
			    isinf(json_number_value(v)))
				return 0;
			prev = json_number_value(v);
		}
		nbuckets = json_array_size(buckets);
	} else if (strcmp(type, "counter") != 0 && strcmp(type, "gauge") != 0) {
		return 0;
	}
	for (i = 0; i < json_array_size(samples); i++)
		if (!sample_ok(json_array_get(samples, i), json_array_size(labels), type, nbuckets))
			return 0;
	return 1;
}

static int
snapshot_ok(const json_t *doc)
{
	json_t *fams = json_object_get(doc, "families");

	if (!json_is_object(doc) || !json_is_number(json_object_get(doc, "time")) ||
	    !json_is_array(fams))
		return 0;
	for (size_t i = 0; i < json_array_size(fams); i++)
		if (!family_ok(json_array_get(fams, i)))
			return 0;
	return 1;
}

enum expo_added
metrics_expo_add(struct metrics_expo *e, const char *field, json_t *doc)
{
	const char *at = strchr(field, '@');
	struct snap *s;
	double age, period;
	json_int_t ps;

	if (at == NULL || at == field || at[1] == '\0' || !snapshot_ok(doc)) {
		log_warnx("metrics: snapshot '%s' is malformed: left out", field);
		return EXPO_MALFORMED;
	}
	age = e->now - json_number_value(json_object_get(doc, "time"));
	if (age > METRICS_EXPIRE_SECONDS)
		return EXPO_EXPIRED;
	s = realloc(e->snaps, (e->nsnaps + 1) * sizeof(*s));
	if (s == NULL)
		return EXPO_MALFORMED;
	e->snaps = s;
	s = &e->snaps[e->nsnaps];
	if ((s->process = strdup(field)) == NULL)
		return EXPO_MALFORMED;
	s->process[at - field] = '\0';
	s->instance = s->process + (at - field) + 1;
	s->doc = json_incref(doc);
	ps = json_integer_value(json_object_get(doc, "push_seconds"));
	period = ps > 0 ? (double)ps : 5;
	s->fresh = age <= 3 * period;
	e->nsnaps++;
	return s->fresh ? EXPO_FRESH : EXPO_STALE;
}

enum expo_added
metrics_expo_add_text(struct metrics_expo *e, const char *field, const char *text, size_t len)
{
	json_error_t jerr;
	json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	enum expo_added rc;

	if (doc == NULL) {
		log_warnx("metrics: snapshot '%s' is not JSON: %s", field, jerr.text);
		return EXPO_MALFORMED;
	}
	rc = metrics_expo_add(e, field, doc);
	json_decref(doc);
	return rc;
}

void
metrics_expo_escape(FILE *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", out);
		else if (*s == '"')
			fputs("\\\"", out);
		else if (*s == '\n')
			fputs("\\n", out);
		else
			fputc(*s, out);
	}
}

/* HELP text: \ and newline escaped. */
static void
escape_help(FILE *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", out);
		else if (*s == '\n')
			fputs("\\n", out);
		else
			fputc(*s, out);
	}
}

/* The shortest of %.15g..%.17g that reads back as v. */
static void
put_number(FILE *out, double v)
{
	char buf[64];

	if (isnan(v)) {
		fputs("NaN", out);
		return;
	}
	if (isinf(v)) {
		fputs(v > 0 ? "+Inf" : "-Inf", out);
		return;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	fputs(buf, out);
}

/* name{process="..",instance="..",names[i]="values[i]"...[,le="le"]} */
static void
put_series(FILE *out, const char *name, const char *suffix, const struct snap *s,
	   const json_t *names, const json_t *values, const char *le)
{
	fprintf(out, "%s%s{process=\"", name, suffix);
	metrics_expo_escape(out, s->process);
	fputs("\",instance=\"", out);
	metrics_expo_escape(out, s->instance);
	fputc('"', out);
	for (size_t i = 0; names && i < json_array_size(names); i++) {
		fprintf(out, ",%s=\"", json_string_value(json_array_get(names, i)));
		metrics_expo_escape(out, json_string_value(json_array_get(values, i)));
		fputc('"', out);
	}
	if (le)
		fprintf(out, ",le=\"%s\"", le);
	fputs("} ", out);
}

static void
put_histogram(FILE *out, const char *name, const struct snap *s, const json_t *f,
	      const json_t *sample)
{
	json_t *names = json_object_get(f, "labels"), *values = json_object_get(sample, "l");
	json_t *bounds = json_object_get(f, "buckets"), *b = json_object_get(sample, "b");
	json_int_t count = json_integer_value(json_object_get(sample, "count"));
	json_int_t cum = 0;
	char le[64];

	for (size_t i = 0; i < json_array_size(bounds); i++) {
		FILE *m;

		cum += json_integer_value(json_array_get(b, i));
		/* the bound as put_number() writes it */
		if ((m = fmemopen(le, sizeof(le), "w")) == NULL)
			return;
		put_number(m, json_number_value(json_array_get(bounds, i)));
		fclose(m);
		put_series(out, name, "_bucket", s, names, values, le);
		fprintf(out, "%lld\n", (long long)(cum < count ? cum : count));
	}
	put_series(out, name, "_bucket", s, names, values, "+Inf");
	fprintf(out, "%lld\n", (long long)count);
	put_series(out, name, "_sum", s, names, values, NULL);
	put_number(out, json_number_value(json_object_get(sample, "sum")));
	fputc('\n', out);
	put_series(out, name, "_count", s, names, values, NULL);
	fprintf(out, "%lld\n", (long long)count);
}

static void
put_family(FILE *out, const struct fam *fm)
{
	size_t nsamples = 0;

	for (size_t p = 0; p < fm->nparts; p++)
		nsamples += json_array_size(json_object_get(fm->parts[p].f, "samples"));
	if (nsamples == 0) /* declared, never used */
		return;
	fputs("# HELP ", out);
	fputs(fm->name, out);
	fputc(' ', out);
	escape_help(out, fm->help);
	fprintf(out, "\n# TYPE %s %s\n", fm->name, fm->type);
	for (size_t p = 0; p < fm->nparts; p++) {
		const struct snap *s = fm->parts[p].s;
		json_t *f = fm->parts[p].f, *samples = json_object_get(f, "samples");

		for (size_t i = 0; i < json_array_size(samples); i++) {
			json_t *sample = json_array_get(samples, i);

			if (strcmp(fm->type, "histogram") == 0) {
				put_histogram(out, fm->name, s, f, sample);
				continue;
			}
			put_series(out, fm->name, "", s, json_object_get(f, "labels"),
				   json_object_get(sample, "l"), NULL);
			put_number(out, json_number_value(json_object_get(sample, "v")));
			fputc('\n', out);
		}
	}
}

/* Groups the fresh snapshots' families by name; -1 when out of memory. */
static int
merge(const struct metrics_expo *e, struct fam **out, size_t *nout)
{
	struct fam *fams = NULL;
	size_t n = 0;

	for (size_t k = 0; k < e->nsnaps; k++) {
		const struct snap *s = &e->snaps[k];
		json_t *fl = json_object_get(s->doc, "families");

		if (!s->fresh)
			continue;
		for (size_t i = 0; i < json_array_size(fl); i++) {
			json_t *f = json_array_get(fl, i);
			const char *name = json_string_value(json_object_get(f, "name"));
			const char *type = json_string_value(json_object_get(f, "type"));
			struct fam *fm = NULL;
			void *p;

			for (size_t j = 0; j < n && fm == NULL; j++)
				if (strcmp(fams[j].name, name) == 0)
					fm = &fams[j];
			if (fm == NULL) {
				if ((p = realloc(fams, (n + 1) * sizeof(*fams))) == NULL)
					goto fail;
				fams = p;
				fm = &fams[n++];
				memset(fm, 0, sizeof(*fm));
				fm->name = name;
				fm->type = type;
				fm->help = json_string_value(json_object_get(f, "help"));
			} else if (strcmp(fm->type, type) != 0) {
				log_warnx("metrics: %s is a %s in %s@%s, a %s elsewhere: left out",
					  name, type, s->process, s->instance, fm->type);
				continue;
			}
			if ((p = realloc(fm->parts, (fm->nparts + 1) * sizeof(*fm->parts))) == NULL)
				goto fail;
			fm->parts = p;
			fm->parts[fm->nparts].s = s;
			fm->parts[fm->nparts++].f = f;
		}
	}
	*out = fams;
	*nout = n;
	return 0;
fail:
	for (size_t j = 0; j < n; j++)
		free(fams[j].parts);
	free(fams);
	return -1;
}

char *
metrics_expo_render(struct metrics_expo *e, size_t *len)
{
	struct fam *fams = NULL;
	size_t nfams = 0;
	char *text = NULL;
	FILE *out;

	if (merge(e, &fams, &nfams) < 0)
		return NULL;
	if ((out = open_memstream(&text, len)) == NULL)
		goto out;
	fprintf(out, "# HELP %s %s\n# TYPE %s gauge\n", UP_NAME, UP_HELP, UP_NAME);
	for (size_t k = 0; k < e->nsnaps; k++) {
		put_series(out, UP_NAME, "", &e->snaps[k], NULL, NULL, NULL);
		fputs(e->snaps[k].fresh ? "1\n" : "0\n", out);
	}
	for (size_t j = 0; j < nfams; j++)
		put_family(out, &fams[j]);
	if (ferror(out)) {
		fclose(out);
		free(text);
		text = NULL;
		goto out;
	}
	if (fclose(out) != 0) {
		free(text);
		text = NULL;
	}
out:
	for (size_t j = 0; j < nfams; j++)
		free(fams[j].parts);
	free(fams);
	return text;
}
