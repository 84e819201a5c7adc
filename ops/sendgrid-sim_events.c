/*
 * sendgrid-sim_events: the Event Webhook events one accepted mail produces, with the
 * field shapes real SendGrid sends (SENDGRID.md), each queued for its due time; see
 * sendgrid-sim.h.
 *
 * Per recipient (to, cc and bcc of every personalization), by the local part's prefix:
 *   (none)    processed, delivered, open (sim.open_percent), click (sim.click_percent of opens)
 *   bounce+   processed, bounce (type bounce, 5.1.1, Invalid Address)
 *   block+    processed, bounce (type blocked, 5.7.1, Reputation)
 *   drop+     dropped (Bounced Address)
 *   defer+    processed, deferred (attempt "1"), delivered
 *   spam+     processed, delivered, spamreport
 *   unsub+    processed, delivered, unsubscribe
 * processed is due at once, delivered 50-300 ms later, engagement up to about a second
 * after that.  Every event carries the mail's and its personalization's custom_args as
 * top-level keys; SendGrid's own keys win a clash.
 */
#include "sendgrid-sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"

/* What one mail's events share. */
struct mail {
	struct sim *s;
	const char *x_message_id;
	json_t *category; /* NULL: the mail has no categories */
	json_t *asm_group_id;
	int64_t wall_ms, mono_ms;
};

/* What one recipient's events share. */
struct rcpt {
	const struct mail *m;
	json_t *custom_args; /* merged: the mail's, then the personalization's */
	const char *email;
	char sg_message_id[SIM_ID_LEN + 40];
	char smtp_id[SIM_ID_LEN + 8];
};

enum outcome { DELIVER, BOUNCE, BLOCK, DROP, DEFER, SPAM, UNSUB };

static const struct {
	const char *prefix;
	enum outcome outcome;
} prefixes[] = {
    {"bounce+", BOUNCE}, {"block+", BLOCK}, {"drop+", DROP},
    {"defer+", DEFER},   {"spam+", SPAM},   {"unsub+", UNSUB},
};

static const char *const useragents[] = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
};

#define NUA (sizeof(useragents) / sizeof(useragents[0]))

static const char *const paths[] = {
    "",
    "pricing",
    "docs/getting-started",
    "account/settings?utm_source=sendgrid&utm_medium=email",
    "blog/2024/hello-world",
};

static enum outcome
outcome_of(const char *email)
{
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncasecmp(email, prefixes[i].prefix, strlen(prefixes[i].prefix)) == 0)
			return prefixes[i].outcome;
	return DELIVER;
}

static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_t *
random_ip(int a, int b)
{
	char ip[32];

	if (a == 0)
		a = (int)sim_rand_range(11, 223);
	if (b < 0)
		b = (int)sim_rand_range(0, 255);
	snprintf(ip, sizeof(ip), "%d.%d.%ld.%ld", a, b, sim_rand_range(0, 255),
		 sim_rand_range(1, 254));
	return json_string(ip);
}

/* tls as SendGrid sends it: 1, "1" or true. */
static json_t *
random_tls(void)
{
	switch (sim_rand() % 3) {
	case 0: return json_integer(1);
	case 1: return json_string("1");
	default: return json_true();
	}
}

/* A new event with the fields every event has. */
static json_t *
event_new(const struct rcpt *rc, const char *name, long at_ms)
{
	long long secs = (long long)((rc->m->wall_ms + at_ms) / 1000);
	char sid[SIM_ID_LEN + 1], ts[24];
	json_t *e;

	sim_random_id(sid);
	snprintf(ts, sizeof(ts), "%lld", secs);
	e = json_pack("{s:s, s:o, s:s, s:s, s:s, s:s}", "email", rc->email, "timestamp",
		      sim_chance(5) ? json_string(ts) : json_integer(secs), "smtp-id", rc->smtp_id,
		      "event", name, "sg_event_id", sid, "sg_message_id", rc->sg_message_id);
	if (e && rc->m->category)
		json_object_set(e, "category", rc->m->category);
	return e;
}

/* Adds the custom args SendGrid's keys do not shadow, serialises and queues e (stolen). */
static void
event_queue(const struct rcpt *rc, json_t *e, long at_ms)
{
	struct sim *s = rc->m->s;
	const char *key;
	json_t *v;
	char *text;

	if (e == NULL) {
		log_warnx("cannot build an event: out of memory");
		return;
	}
	if (rc->m->asm_group_id && json_object_get(e, "asm_group_id") == NULL)
		json_object_set(e, "asm_group_id", rc->m->asm_group_id);
	json_object_foreach(rc->custom_args, key, v)
	{
		if (json_object_get(e, key) == NULL)
			json_object_set(e, key, v);
	}
	text = json_dumps(e, JSON_COMPACT);
	json_decref(e);
	atomic_fetch_add(&s->stats.generated, 1);
	if (text == NULL ||
	    sim_queue_push(s->queue, rc->m->mono_ms + at_ms, text, strlen(text), 0) < 0) {
		unsigned long long n = atomic_fetch_add(&s->stats.dropped, 1);

		if (n % 10000 == 0)
			log_warnx("event queue is full (%d events): dropping events, %llu so far",
				  SIM_QUEUE_MAX, n + 1);
	}
}

static void
processed(const struct rcpt *rc, long at)
{
	json_t *e = event_new(rc, "processed", at);

	if (e && sim_chance(30))
		json_object_set_new(e, "pool", json_pack("{s:s, s:i}", "name", "sim", "id", 1));
	event_queue(rc, e, at);
}

static void
delivered(const struct rcpt *rc, long at)
{
	json_t *e = event_new(rc, "delivered", at);

	if (e) {
		json_object_set_new(e, "response", json_string("250 OK"));
		json_object_set_new(e, "tls", random_tls());
		json_object_set_new(e, "ip", random_ip(149, 72));
	}
	event_queue(rc, e, at);
}

/* open, and click by chance; at is the delivery's time. */
static void
engage(const struct rcpt *rc, long at)
{
	const struct config *cf = rc->m->s->cf;
	int machine = sim_chance(20);
	json_t *e;

	if (!sim_chance(cf->sim_open_percent))
		return;
	at += sim_rand_range(100, 700);
	if ((e = event_new(rc, "open", at)) != NULL) {
		json_object_set_new(
		    e, "useragent",
		    json_string(machine ? "Mozilla/5.0" : useragents[sim_rand() % NUA]));
		json_object_set_new(e, "ip", machine ? random_ip(17, 58) : random_ip(0, -1));
		json_object_set_new(e, "sg_machine_open", json_boolean(machine));
	}
	event_queue(rc, e, at);
	if (!sim_chance(cf->sim_click_percent))
		return;
	at += sim_rand_range(50, 400);
	if ((e = event_new(rc, "click", at)) != NULL) {
		char url[128];

		snprintf(url, sizeof(url), "https://example.com/%s",
			 paths[sim_rand() % (sizeof(paths) / sizeof(paths[0]))]);
		json_object_set_new(e, "useragent", json_string(useragents[sim_rand() % NUA]));
		json_object_set_new(e, "ip", random_ip(0, -1));
		json_object_set_new(e, "url", json_string(url));
		json_object_set_new(e, "url_offset",
				    json_pack("{s:i, s:s}", "index", 0, "type", "html"));
	}
	event_queue(rc, e, at);
}

static void
bounce(const struct rcpt *rc, long at, int blocked)
{
	json_t *e = event_new(rc, "bounce", at);
	char reason[160];

	if (e == NULL) {
		event_queue(rc, e, at);
		return;
	}
	if (blocked) {
		snprintf(reason, sizeof(reason),
			 "554 5.7.1 Service unavailable; Client host [149.72.%ld.%ld] blocked "
			 "using Spamhaus",
			 sim_rand_range(0, 255), sim_rand_range(1, 254));
		json_object_set_new(e, "reason", json_string(reason));
		json_object_set_new(e, "status", json_string("5.7.1"));
		json_object_set_new(e, "type", json_string("blocked"));
		json_object_set_new(e, "bounce_classification", json_string("Reputation"));
	} else {
		json_object_set_new(e, "reason",
				    json_string("550 5.1.1 The email account that you tried to "
						"reach does not exist."));
		json_object_set_new(e, "status", json_string("5.1.1"));
		json_object_set_new(e, "type", json_string("bounce"));
		json_object_set_new(e, "bounce_classification", json_string("Invalid Address"));
	}
	if (sim_chance(50))
		json_object_set_new(e, "tls", random_tls());
	event_queue(rc, e, at);
}

static void
simple(const struct rcpt *rc, const char *name, long at)
{
	event_queue(rc, event_new(rc, name, at), at);
}

static void
recipient(const struct rcpt *rc)
{
	enum outcome o = outcome_of(rc->email);
	long at = sim_rand_range(0, 20), done;
	json_t *e;

	switch (o) {
	case DROP:
		if ((e = event_new(rc, "dropped", at)) != NULL) {
			json_object_set_new(e, "reason", json_string("Bounced Address"));
			json_object_set_new(e, "status", json_string("5.0.0"));
		}
		event_queue(rc, e, at);
		return;
	case BOUNCE:
	case BLOCK:
		processed(rc, at);
		bounce(rc, at + sim_rand_range(50, 300), o == BLOCK);
		return;
	case DEFER:
		processed(rc, at);
		at += sim_rand_range(50, 300);
		if ((e = event_new(rc, "deferred", at)) != NULL) {
			json_object_set_new(e, "response",
					    json_string("421 4.7.0 [TSS04] Messages temporarily "
							"deferred due to unexpected volume"));
			json_object_set_new(e, "attempt", json_string("1"));
		}
		event_queue(rc, e, at);
		delivered(rc, at + sim_rand_range(100, 500));
		return;
	case SPAM:
	case UNSUB:
		processed(rc, at);
		done = at + sim_rand_range(50, 300);
		delivered(rc, done);
		simple(rc, o == SPAM ? "spamreport" : "unsubscribe",
		       done + sim_rand_range(100, 1000));
		return;
	case DELIVER:
		processed(rc, at);
		done = at + sim_rand_range(50, 300);
		delivered(rc, done);
		engage(rc, done);
		return;
	}
}

/* The events of every recipient of one personalization (borrowed). */
static void
personalization(const struct mail *m, json_t *mail_args, json_t *p, size_t *n)
{
	static const char *const fields[] = {"to", "cc", "bcc"};
	json_t *args = json_object(), *to;
	struct rcpt rc = {.m = m};
	size_t i;

	if (args == NULL)
		return;
	if (json_is_object(mail_args))
		json_object_update(args, mail_args);
	if (json_is_object(json_object_get(p, "custom_args")))
		json_object_update(args, json_object_get(p, "custom_args"));
	rc.custom_args = args;
	snprintf(rc.smtp_id, sizeof(rc.smtp_id), "<%s@sim>", m->x_message_id);
	for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
		json_array_foreach(json_object_get(p, fields[f]), i, to)
		{
			const char *email = json_string_value(json_object_get(to, "email"));

			if (email == NULL)
				continue;
			rc.email = email;
			snprintf(rc.sg_message_id, sizeof(rc.sg_message_id), "%s.filterdrecv-%zu",
				 m->x_message_id, (*n)++);
			recipient(&rc);
		}
	}
	json_decref(args);
}

void
sim_events_emit(struct sim *s, json_t *body, const char *x_message_id)
{
	json_t *cats = json_object_get(body, "categories"), *asm_group, *p;
	struct mail m = {
	    .s = s,
	    .x_message_id = x_message_id,
	    .wall_ms = wall_ms(),
	    .mono_ms = sim_now_ms(),
	};
	size_t i, n = 0;

	/* category: a string when the mail has one, else an array of them. */
	if (json_array_size(cats) == 1)
		m.category = json_incref(json_array_get(cats, 0));
	else if (json_array_size(cats) > 1)
		m.category = json_deep_copy(cats);
	asm_group = json_object_get(json_object_get(body, "asm"), "group_id");
	if (json_is_integer(asm_group))
		m.asm_group_id = asm_group;
	json_array_foreach(json_object_get(body, "personalizations"), i, p)
	    personalization(&m, json_object_get(body, "custom_args"), p, &n);
	atomic_fetch_add(&s->stats.recipients, n);
	json_decref(m.category);
}
