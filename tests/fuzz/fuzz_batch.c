/*
 * fuzz_batch: the Event Webhook body, along the path ingest's webhook handler
 * (fcgi/webhook.c) takes: batch_parse() over the raw bytes, then, for every event without
 * \u0000, event_check().  Input: the request body.
 *
 * Checked besides memory safety and leaks: a refused body leaves the batch empty with an
 * error in valid UTF-8 (the 400 answer quotes it); an accepted one keeps, for each
 * event, raw bytes that lie inside the body and parse on their own to the very object kept,
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

static void
check_event(const struct batch_item *it)
{
	struct event_info ev;
	const char *field = NULL;
	char why[256] = "";

	if (it->has_nul)
		return; /* dead-lettered before event_check() */
	if (event_check(it->obj, &ev, why, sizeof(why), &field) < 0) {
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

	if (batch_parse(&b, body, size, err, sizeof(err), field, sizeof(field)) < 0) {
		json_t *text = json_string(err);

		FUZZ_CHECK(err[0] != '\0', "refused without a reason");
		FUZZ_CHECK(text != NULL, "error \"%s\" is not UTF-8: the 400 answer cannot hold it",
			   err);
		json_decref(text);
		FUZZ_CHECK(b.root == NULL && b.items == NULL && b.n == 0,
			   "a refused body left the batch holding memory");
		return 0;
	}
	FUZZ_CHECK(field[0] == '\0', "accepted with field '%s' set", field);
	for (size_t i = 0; i < b.n; i++) {
		const struct batch_item *it = &b.items[i];
		json_error_t jerr;
		json_t *again;

		FUZZ_CHECK(it->raw >= body && it->raw_len > 0 && it->raw_len <= size &&
			       (size_t)(it->raw - body) <= size - it->raw_len,
			   "event %zu: raw is not inside the body", i);
		FUZZ_CHECK(json_is_object(it->obj), "event %zu is not an object", i);
		again = json_loadb(it->raw, it->raw_len, JSON_ALLOW_NUL, &jerr);
		FUZZ_CHECK(again != NULL, "event %zu: raw does not parse on its own: %s", i,
			   jerr.text);
		FUZZ_CHECK(json_equal(again, it->obj), "event %zu: raw parses to another value", i);
		json_decref(again);
		FUZZ_CHECK(it->has_nul == raw_has_nul(it->raw, it->raw_len),
			   "event %zu: has_nul is %d", i, it->has_nul);
		FUZZ_CHECK(it->has_nul || !holds_nul(it->obj), "event %zu: U+0000 unnoticed", i);
		check_event(it);
	}
	batch_release(&b);
	return 0;
}
