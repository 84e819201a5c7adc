/*
 * metrics_expo: merges metric snapshots (metrics_push.h's JSON, one per process) and renders
 * them in the Prometheus text exposition format 0.0.4: one # HELP and # TYPE per family,
 * a family's samples together, histograms as cumulative _bucket{le=...} (through +Inf),
 * _sum and _count.  Every sample gets the labels process and instance of its snapshot,
 * and every snapshot a `mailpipe_up` sample: 1, or 0 with no other sample when the
 * snapshot is stale (older than 3 x its push period).  A snapshot that does not parse or
 * does not have the expected shape is left out whole; it never breaks the rest.
 *
 *   struct metrics_expo *e = metrics_expo_new(now);
 *   metrics_expo_add_text(e, "sink@host:42", json_text, len);   // per Redis field
 *   char *text = metrics_expo_render(e, &len);
 *   metrics_expo_free(e);
 */
#ifndef MAILPIPE_METRICS_EXPO_H
#define MAILPIPE_METRICS_EXPO_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

/* A snapshot older than this is expired: left out, and its field should be deleted. */
#define METRICS_EXPIRE_SECONDS 3600

/* What metrics_expo_add*() did with a snapshot. */
enum expo_added {
	EXPO_FRESH,     /* rendered */
	EXPO_STALE,     /* rendered as mailpipe_up 0 only */
	EXPO_EXPIRED,   /* left out: older than METRICS_EXPIRE_SECONDS */
	EXPO_MALFORMED, /* left out: not a snapshot (logged) */
};

struct metrics_expo;

/* now: seconds since the epoch, to age the snapshots.  NULL when out of memory. */
struct metrics_expo *metrics_expo_new(double now);
void metrics_expo_free(struct metrics_expo *e);

/*
 * Adds the snapshot of field "<process>@<instance>"; snap is borrowed (a reference is
 * kept until metrics_expo_free()).
 */
enum expo_added metrics_expo_add(struct metrics_expo *e, const char *field, json_t *snap);

/* The same from the snapshot's JSON text. */
enum expo_added metrics_expo_add_text(struct metrics_expo *e, const char *field, const char *text,
				      size_t len);

/* The exposition text (NUL-terminated, free() it) and its length; NULL when out of memory. */
char *metrics_expo_render(struct metrics_expo *e, size_t *len);

/* Writes s as a label value: \, " and newline escaped. */
void metrics_expo_escape(FILE *out, const char *s);

#endif
