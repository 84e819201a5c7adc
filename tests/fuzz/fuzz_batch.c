/*
 * fuzz_batch: the Event Webhook body, along the path ingest's webhook handler
 * (fcgi/webhook.c) takes: batch_parse() over the raw bytes, then, for every event without
 * \u0000, event_check().  Input: the request body.
 *
 * Checked besides memory safety and leaks: batch_parse() accepts exactly the bodies jansson
 * parses to an array of objects (its fast path, lib/jscan.c, must never accept what jansson
 * refuses); a refused body leaves the batch empty with an error in valid UTF-8 (the 400
 * answer quotes it); an accepted one keeps, for each event, raw bytes that lie inside the
 * body and parse on their own to an object with the event_fields kept (equal to jansson's),
 * and has_nul set exactly when those bytes hold a \u0000 escape (so always when the object
 * holds U+0000; a duplicate key can hide one from the object, never from the raw bytes that
 * are stored); an event that passes event_check() has a non-empty Kafka key and a time >= 0.
 */
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "batch.h"
#include "event.h"
#include "fuzz.h"

/* 1 when a string value anywhere in v holds U+0000 (keys cannot: jansson refuses them). */
static int
holds_nul(json_t *v)
{
	const char *key;
	json_t *item;
	size_t i;

	switch (json_typeof(v)) {
	case JSON_STRING: return memchr(json_string_value(v), '\0', json_string_length(v)) != NULL;
	case JSON_OBJECT:
		json_object_foreach(v, key, item)
		{
			if (holds_nul(item))
				return 1;
		}
		return 0;
	case JSON_ARRAY:
		json_array_foreach(v, i, item)
		{
			if (holds_nul(item))
				return 1;
		}
		return 0;
	default: return 0;
	}
}

/* 1 when raw holds the escape \u0000 (a "u0000" after an odd run of backslashes). */
static int
raw_has_nul(const char *raw, size_t len)
{
	for (size_t i = 0; i + 5 <= len; i++) {
		size_t bs = 0;

		if (memcmp(raw + i, "u0000", 5) != 0)
			continue;
		while (bs < i && raw[i - 1 - bs] == '\\')
			bs++;
		if (bs % 2 == 1)
			return 1;
	}
	return 0;
}

/* 1 when a and b hold equal event_fields (or both lack one). */
static int
same_fields(json_t *a, json_t *b)
{
	for (const char *const *f = event_fields; *f; f++) {
		json_t *x = json_object_get(a, *f), *y = json_object_get(b, *f);

		if (x == NULL ? y != NULL : y == NULL || !json_equal(x, y))
			return 0;
	}
	return 1;
}

/* jansson's parse of body when that is an array of objects (what batch_parse() takes). */
static json_t *
jansson_batch(const char *body, size_t size)
{
	json_t *root =
	    memchr(body, '\0', size) ? NULL : json_loadb(body, size, JSON_ALLOW_NUL, NULL);
	size_t i;
	json_t *v;

	if (root && json_is_array(root)) {
		json_array_foreach(root, i, v)
		{
			if (!json_is_object(v))
				break;
		}
		if (i == json_array_size(root))
			return root;
	}
	json_decref(root);
	return NULL;
}

static void
check_event(const struct batch_item *it, json_t *obj)
{
	struct event_info ev;
	const char *field = NULL;
	char why[256] = "";

	if (it->has_nul)
		return; /* dead-lettered before event_check() */
	if (event_check(obj, &ev, why, sizeof(why), &field) < 0) {
		FUZZ_CHECK(why[0] != '\0', "event_check() failed without a reason");
		return;
	}
	FUZZ_CHECK(ev.sg_event_id != NULL && ev.sg_event_id[0] != '\0', "empty sg_event_id");
	FUZZ_CHECK(ev.event != NULL && ev.event[0] != '\0', "empty event");
	FUZZ_CHECK(ev.key != NULL && ev.key_len > 0, "empty Kafka key");
	FUZZ_CHECK(ev.time_us >= 0, "negative time %lld", (long long)ev.time_us);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	char err[512] = "", field[32] = "x";
	struct batch b;

	json_t *dom = jansson_batch(body, size);

	if (batch_parse(&b, body, size, err, sizeof(err), field, sizeof(field)) < 0) {
		json_t *text = json_string(err);

		FUZZ_CHECK(dom == NULL, "refused a body jansson parses: %s", err);
		json_decref(dom);

		FUZZ_CHECK(err[0] != '\0', "refused without a reason");
		FUZZ_CHECK(text != NULL, "error \"%s\" is not UTF-8: the 400 answer cannot hold it",
			   err);
		json_decref(text);
		FUZZ_CHECK(b.root == NULL && b.items == NULL && b.n == 0,
			   "a refused body left the batch holding memory");
		return 0;
	}
	FUZZ_CHECK(dom != NULL, "accepted a body jansson refuses");
	FUZZ_CHECK(json_array_size(dom) == b.n, "%zu events, jansson sees %zu", b.n,
		   json_array_size(dom));
	FUZZ_CHECK(field[0] == '\0', "accepted with field '%s' set", field);
	for (size_t i = 0; i < b.n; i++) {
		const struct batch_item *it = &b.items[i];
		json_t *obj = batch_event(&b, i);
		json_error_t jerr;
		json_t *again;

		FUZZ_CHECK(it->raw >= body && it->raw_len > 0 && it->raw_len <= size &&
			       (size_t)(it->raw - body) <= size - it->raw_len,
			   "event %zu: raw is not inside the body", i);
		FUZZ_CHECK(json_is_object(obj), "event %zu: batch_event() gave no object", i);
		again = json_loadb(it->raw, it->raw_len, JSON_ALLOW_NUL, &jerr);
		FUZZ_CHECK(again != NULL, "event %zu: raw does not parse on its own: %s", i,
			   jerr.text);
		FUZZ_CHECK(same_fields(again, obj), "event %zu: raw parses to other fields", i);
		FUZZ_CHECK(same_fields(json_array_get(dom, i), obj),
			   "event %zu: other fields than jansson's", i);
		json_decref(again);
		FUZZ_CHECK(it->has_nul == raw_has_nul(it->raw, it->raw_len),
			   "event %zu: has_nul is %d", i, it->has_nul);
		FUZZ_CHECK(it->has_nul || !holds_nul(obj), "event %zu: U+0000 unnoticed", i);
		check_event(it, obj);
		json_decref(obj);
	}
	batch_release(&b);
	json_decref(dom);
	return 0;
}
