/*
 * sendgrid-sim_faults: the knobs tests turn to make the simulator misbehave, set with
 * POST /sim/faults and used by every POST /v3/mail/send; see sendgrid-sim.h.
 *
 *   {"status":500,"count":2}                   the next 2 sends answer 500
 *   {"status":429,"count":1,"reset":2}         429, X-RateLimit-Reset = now + 2
 *   {"latency_ms":300}                         every send waits 300 ms first (0: off)
 *   {"accept_then_hang_ms":15000,"count":1}    accept the next send, answer 15 s later
 *   {"clear":true}                             everything off (then the rest applies)
 *
 * A body is checked whole before anything changes: a bad one changes nothing.
 */
#include "sendgrid-sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COUNT 1000000000L
#define MAX_DELAY_MS 600000L

struct sim_faults {
	pthread_mutex_t mu;
	int status;
	long status_count;
	long reset;
	long latency_ms;
	long hang_ms;
	long hang_count;
};

struct sim_faults *
sim_faults_new(void)
{
	struct sim_faults *f = calloc(1, sizeof(*f));

	if (f)
		pthread_mutex_init(&f->mu, NULL);
	return f;
}

void
sim_faults_destroy(struct sim_faults *f)
{
	if (f == NULL)
		return;
	pthread_mutex_destroy(&f->mu);
	free(f);
}

/* Reads the integer key name of body into *out if present: 1 present, 0 absent, -1 bad. */
static int
get_int(json_t *body, const char *name, long lo, long hi, long *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(body, name);

	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
		snprintf(err, errlen, "invalid field '%s': expected an integer from %ld to %ld",
			 name, lo, hi);
		return -1;
	}
	*out = (long)json_integer_value(v);
	return 1;
}

int
sim_faults_apply(struct sim_faults *f, json_t *body, const char **field, char *err, size_t errlen)
{
	static const char *const known[] = {"clear", "status",     "count",
					    "reset", "latency_ms", "accept_then_hang_ms"};
	long status = 0, count = 1, reset = 1, latency = 0, hang = 0;
	int has_status, has_count, has_reset, has_latency, has_hang, clear = 0;
	const char *key;
	json_t *v;

	*field = NULL;
	if (!json_is_object(body)) {
		snprintf(err, errlen, "expected a JSON object");
		return -1;
	}
	json_object_foreach(body, key, v)
	{
		size_t i = 0;

		while (i < sizeof(known) / sizeof(known[0]) && strcmp(known[i], key) != 0)
			i++;
		if (i == sizeof(known) / sizeof(known[0])) {
			*field = key;
			snprintf(err, errlen, "unknown fault '%s'", key);
			return -1;
		}
	}
	if ((v = json_object_get(body, "clear")) != NULL) {
		if (!json_is_boolean(v)) {
			*field = "clear";
			snprintf(err, errlen, "invalid field 'clear': expected a boolean");
			return -1;
		}
		clear = json_is_true(v);
	}
#define GET(name, lo, hi, var, has)                                                                \
	do {                                                                                       \
		*field = name;                                                                     \
		if ((has = get_int(body, name, lo, hi, &var, err, errlen)) < 0)                    \
			return -1;                                                                 \
	} while (0)
	GET("status", 400, 599, status, has_status);
	GET("count", 1, MAX_COUNT, count, has_count);
	GET("reset", 0, 86400, reset, has_reset);
	GET("latency_ms", 0, MAX_DELAY_MS, latency, has_latency);
	GET("accept_then_hang_ms", 0, MAX_DELAY_MS, hang, has_hang);
#undef GET
	if (has_count && !has_status && !has_hang) {
		*field = "count";
		snprintf(err, errlen, "'count' needs 'status' or 'accept_then_hang_ms'");
		return -1;
	}
	if (has_reset && status != 429) {
		*field = "reset";
		snprintf(err, errlen, "'reset' goes with 'status': 429 only");
		return -1;
	}
	*field = NULL;

	pthread_mutex_lock(&f->mu);
	if (clear) {
		f->status = 0;
		f->status_count = 0;
		f->reset = 0;
		f->latency_ms = 0;
		f->hang_ms = 0;
		f->hang_count = 0;
	}
	if (has_status) {
		f->status = (int)status;
		f->status_count = count;
		f->reset = status == 429 ? reset : 0;
	}
	if (has_latency)
		f->latency_ms = latency;
	if (has_hang) {
		f->hang_ms = hang;
		f->hang_count = hang > 0 ? count : 0;
	}
	pthread_mutex_unlock(&f->mu);
	return 0;
}

json_t *
sim_faults_state(struct sim_faults *f)
{
	json_t *o;

	pthread_mutex_lock(&f->mu);
	o = json_pack("{s:i, s:I, s:I, s:I, s:I, s:I}", "status", f->status, "count",
		      (json_int_t)f->status_count, "reset", (json_int_t)f->reset, "latency_ms",
		      (json_int_t)f->latency_ms, "accept_then_hang_ms", (json_int_t)f->hang_ms,
		      "hang_count", (json_int_t)f->hang_count);
	pthread_mutex_unlock(&f->mu);
	return o;
}

long
sim_faults_latency(struct sim_faults *f)
{
	long ms;

	pthread_mutex_lock(&f->mu);
	ms = f->latency_ms;
	pthread_mutex_unlock(&f->mu);
	return ms;
}

void
sim_faults_take_status(struct sim_faults *f, struct sim_fault_decision *d)
{
	d->status = 0;
	d->reset = 0;
	pthread_mutex_lock(&f->mu);
	if (f->status && f->status_count > 0) {
		d->status = f->status;
		d->reset = f->reset;
		if (--f->status_count == 0) {
			f->status = 0;
			f->reset = 0;
		}
	}
	pthread_mutex_unlock(&f->mu);
}

long
sim_faults_take_hang(struct sim_faults *f)
{
	long ms = 0;

	pthread_mutex_lock(&f->mu);
	if (f->hang_ms > 0 && f->hang_count > 0) {
		ms = f->hang_ms;
		if (--f->hang_count == 0)
			f->hang_ms = 0;
	}
	pthread_mutex_unlock(&f->mu);
	return ms;
}
