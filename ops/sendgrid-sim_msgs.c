/*
 * sendgrid-sim_msgs: how many times a mail carrying a given mailpipe_message_id was
 * accepted, and the X-Message-Id of each acceptance: what GET /sim/messages answers, so
 * that tests can count sends exactly; see sendgrid-sim.h.
 */
#include "sendgrid-sim.h"

#include <stdlib.h>
#include <string.h>

#define ARG "mailpipe_message_id"
/* X-Message-Ids kept per id; the count goes on past it. */
#define IDS_MAX 100

struct sim_msgs {
	pthread_mutex_t mu;
	json_t *by_id; /* id -> {"count":N,"x_message_ids":[...]} */
	unsigned long long untracked;
};

struct sim_msgs *
sim_msgs_new(void)
{
	struct sim_msgs *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	if ((m->by_id = json_object()) == NULL) {
		free(m);
		return NULL;
	}
	pthread_mutex_init(&m->mu, NULL);
	return m;
}

void
sim_msgs_destroy(struct sim_msgs *m)
{
	if (m == NULL)
		return;
	json_decref(m->by_id);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

/* The mailpipe_message_id in a custom_args object (borrowed), or NULL. */
static const char *
arg_of(json_t *custom_args)
{
	json_t *v = json_object_get(custom_args, ARG);

	return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

static void
count_one(struct sim_msgs *m, const char *id, const char *x_message_id)
{
	json_t *rec = json_object_get(m->by_id, id), *ids;

	if (rec == NULL) {
		if (json_object_size(m->by_id) >= SIM_MSGS_MAX) {
			m->untracked++;
			return;
		}
		rec = json_pack("{s:i, s:[]}", "count", 0, "x_message_ids");
		if (rec == NULL || json_object_set_new(m->by_id, id, rec) < 0)
			return;
	}
	json_object_set_new(rec, "count",
			    json_integer(json_integer_value(json_object_get(rec, "count")) + 1));
	ids = json_object_get(rec, "x_message_ids");
	if (json_array_size(ids) < IDS_MAX)
		json_array_append_new(ids, json_string(x_message_id));
}

void
sim_msgs_record(struct sim_msgs *m, json_t *body, const char *x_message_id)
{
	json_t *pers = json_object_get(body, "personalizations"), *seen, *p;
	const char *id;
	size_t i;

	/* The same id in the mail and in its personalizations is one acceptance. */
	if ((seen = json_object()) == NULL)
		return;
	if ((id = arg_of(json_object_get(body, "custom_args"))) != NULL)
		json_object_set_new(seen, id, json_true());
	json_array_foreach(pers, i, p)
	{
		if ((id = arg_of(json_object_get(p, "custom_args"))) != NULL)
			json_object_set_new(seen, id, json_true());
	}
	pthread_mutex_lock(&m->mu);
	for (void *it = json_object_iter(seen); it; it = json_object_iter_next(seen, it))
		count_one(m, json_object_iter_key(it), x_message_id);
	pthread_mutex_unlock(&m->mu);
	json_decref(seen);
}

json_t *
sim_msgs_lookup(struct sim_msgs *m, const char *mailpipe_message_id)
{
	json_t *rec;

	pthread_mutex_lock(&m->mu);
	rec = json_deep_copy(json_object_get(m->by_id, mailpipe_message_id));
	pthread_mutex_unlock(&m->mu);
	if (rec == NULL)
		rec = json_pack("{s:i, s:[]}", "count", 0, "x_message_ids");
	return rec;
}

void
sim_msgs_counts(struct sim_msgs *m, size_t *tracked, unsigned long long *untracked)
{
	pthread_mutex_lock(&m->mu);
	*tracked = json_object_size(m->by_id);
	*untracked = m->untracked;
	pthread_mutex_unlock(&m->mu);
}
