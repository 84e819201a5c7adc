/*
 * event: validation of one SendGrid event; see event.h.
 */
#include "event.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* sg_event_id is documented as "up to 100 characters"; allow slack, refuse abuse. */
#define SG_EVENT_ID_MAX 1024
#define EVENT_NAME_MAX 128
/* Beyond year 9999 in seconds; larger values are taken as milliseconds. */
#define MAX_SECONDS 253402300799.0
#define MS_THRESHOLD 100000000000.0

const char *const event_fields[] = {
    "sg_event_id", "event", "timestamp", EVENT_MESSAGE_ID_ARG, "sg_message_id", NULL,
};

static int
seconds_to_us(double v, int64_t *out)
{
	if (!isfinite(v) || v < 0)
		return -1;
	if (v >= MS_THRESHOLD)
		v /= 1000.0;
	if (v > MAX_SECONDS)
		return -1;
	*out = (int64_t)llround(v * 1e6);
	return 0;
}

int
event_parse_time(json_t *v, int64_t *time_us)
{
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);

		if (i < 0)
			return -1;
		if ((double)i >= MS_THRESHOLD) {
			if ((double)i / 1000.0 > MAX_SECONDS)
				return -1;
			*time_us = (int64_t)i * 1000;
			return 0;
		}
		*time_us = (int64_t)i * 1000000;
		return 0;
	}
	if (json_is_real(v))
		return seconds_to_us(json_real_value(v), time_us);
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t len = json_string_length(v), i, dots = 0;
		char *end;
		double d;

		if (len == 0 || len > 32)
			return -1;
		for (i = 0; i < len; i++) {
			if (s[i] == '.' && i > 0)
				dots++;
			else if (!isdigit((unsigned char)s[i]))
				return -1;
		}
		if (dots > 1 || s[len - 1] == '.')
			return -1;
		if (dots == 0 && len <= 18) {
			json_t *tmp = json_integer(strtoll(s, NULL, 10));
			int rc = tmp ? event_parse_time(tmp, time_us) : -1;
			json_decref(tmp);
			return rc;
		}
		d = strtod(s, &end);
		return *end == '\0' ? seconds_to_us(d, time_us) : -1;
	}
	return -1;
}

static int
required_string(json_t *obj, const char *name, size_t max, const char **out, char *err,
		size_t errlen)
{
	json_t *v = json_object_get(obj, name);

	if (v == NULL || json_is_null(v)) {
		snprintf(err, errlen, "missing field '%s'", name);
		return -1;
	}
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max) {
		snprintf(err, errlen,
			 "invalid field '%s': expected a string of 1 to %zu characters", name, max);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

int
event_check(json_t *obj, struct event_info *info, char *err, size_t errlen, const char **field)
{
	json_t *v;

	memset(info, 0, sizeof(*info));
	if (!json_is_object(obj)) {
		*field = NULL;
		snprintf(err, errlen, "event is not a JSON object");
		return -1;
	}
	*field = "sg_event_id";
	if (required_string(obj, "sg_event_id", SG_EVENT_ID_MAX, &info->sg_event_id, err, errlen))
		return -1;
	*field = "event";
	if (required_string(obj, "event", EVENT_NAME_MAX, &info->event, err, errlen))
		return -1;
	*field = "timestamp";
	v = json_object_get(obj, "timestamp");
	if (v == NULL || json_is_null(v)) {
		snprintf(err, errlen, "missing field 'timestamp'");
		return -1;
	}
	if (event_parse_time(v, &info->time_us) < 0) {
		snprintf(err, errlen,
			 "cannot parse field 'timestamp': expected unix seconds or milliseconds");
		return -1;
	}
	*field = NULL;

	v = json_object_get(obj, EVENT_MESSAGE_ID_ARG);
	if (json_is_string(v) && json_string_length(v) > 0) {
		info->key = json_string_value(v);
		info->key_len = json_string_length(v);
		return 0;
	}
	v = json_object_get(obj, "sg_message_id");
	if (json_is_string(v) && json_string_length(v) > 0) {
		const char *s = json_string_value(v), *dot = strchr(s, '.');

		info->key = s;
		info->key_len = dot && dot > s ? (size_t)(dot - s) : json_string_length(v);
		return 0;
	}
	info->key = info->sg_event_id;
	info->key_len = strlen(info->sg_event_id);
	return 0;
}
