/*
 * sendgrid-sim_send: POST /v3/mail/send as SendGrid answers it; see sendgrid-sim.h.
 *
 * In order: the latency fault; the Bearer key (401); an armed status fault (its status,
 * with SendGrid's body and, for 429, the rate-limit headers); the JSON (400, or 415 for
 * invalid UTF-8); mailreq_validate (400 with every error); sandbox mode (200, no events);
 * else the mail is accepted: counted, its events queued, and 202 with X-Message-Id,
 * after the accept-then-hang delay when that fault is armed.
 */
#include "sendgrid-sim.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "log.h"
#include "mailreq.h"
#include "shutdown.h"

#define MSG_AUTH_MISSING "authorization required"
#define MSG_AUTH_INVALID "The provided authorization grant is invalid, expired, or revoked"

/* 1 if authorization is "Bearer <key>" (scheme case-insensitive), in constant time. */
static int
key_ok(const char *authorization, const char *key)
{
	size_t klen = strlen(key), alen;

	if (strncasecmp(authorization, "Bearer ", 7) != 0)
		return 0;
	authorization += 7;
	while (*authorization == ' ')
		authorization++;
	alen = strlen(authorization);
	while (alen > 0 && authorization[alen - 1] == ' ')
		alen--;
	return alen == klen && klen > 0 && CRYPTO_memcmp(authorization, key, klen) == 0;
}

/* Answers a status fault the way SendGrid answers that status. */
static void
reply_fault(struct req *r, int status, long reset)
{
	const char *field = NULL, *help = NULL, *msg;
	char limit[64], remaining[64], resetb[64];
	const char *headers[3];
	size_t nh = 0;

	switch (status) {
	case 400:
		field = "from.email";
		help = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/"
		       "errors.html#message.from";
		msg = "The from email does not contain a valid address.";
		break;
	case 401: msg = MSG_AUTH_INVALID; break;
	case 403:
		msg = "The from address does not match a verified Sender Identity. Mail cannot "
		      "be sent until this error is resolved. Visit "
		      "https://sendgrid.com/docs/for-developers/sending-email/sender-identity/ "
		      "to see the Sender Identity requirements";
		break;
	case 413: msg = "request entity too large"; break;
	case 429:
		msg = "too many requests";
		snprintf(limit, sizeof(limit), "X-RateLimit-Limit: 600");
		snprintf(remaining, sizeof(remaining), "X-RateLimit-Remaining: 0");
		snprintf(resetb, sizeof(resetb), "X-RateLimit-Reset: %lld",
			 (long long)time(NULL) + reset);
		headers[nh++] = limit;
		headers[nh++] = remaining;
		headers[nh++] = resetb;
		break;
	case 500: msg = "internal error"; break;
	case 502: msg = "bad gateway"; break;
	case 503: msg = "service unavailable"; break;
	default: msg = "simulated fault"; break;
	}
	sim_reply_error(r, status, headers, nh, field, msg, help);
}

/* Parses the body; answers and returns NULL when it is not JSON. */
static json_t *
parse_body(struct req *r)
{
	json_error_t jerr;
	json_t *body = json_loadb(r->body, r->body_len, 0, &jerr);

	if (body)
		return body;
	if (json_error_code(&jerr) == json_error_invalid_utf8)
		sim_reply_error(r, 415, NULL, 0, NULL, "invalid UTF-8 in request body", NULL);
	else
		sim_reply_error(r, 400, NULL, 0, NULL, "Bad Request", NULL);
	return NULL;
}

void
sim_send_handle(struct req *r)
{
	struct sim *s = r->app;
	const char *auth = req_param(r, "HTTP_AUTHORIZATION");
	struct sim_fault_decision fault;
	struct mailreq_info info = {0};
	char xid[SIM_ID_LEN + 1], header[32 + SIM_ID_LEN];
	const char *headers[1] = {header};
	json_t *body = NULL, *errors = NULL;
	long ms;

	atomic_fetch_add(&s->stats.requests, 1);
	if ((ms = sim_faults_latency(s->faults)) > 0)
		shutdown_sleep(ms);
	if (auth == NULL || *auth == '\0' || !key_ok(auth, s->cf->sim_api_key)) {
		atomic_fetch_add(&s->stats.unauthorized, 1);
		sim_reply_error(r, 401, NULL, 0, NULL,
				auth && *auth ? MSG_AUTH_INVALID : MSG_AUTH_MISSING, NULL);
		goto out;
	}
	sim_faults_take_status(s->faults, &fault);
	if (fault.status) {
		atomic_fetch_add(&s->stats.faulted, 1);
		log_info("answering %d: status fault", fault.status);
		reply_fault(r, fault.status, fault.reset);
		goto out;
	}
	if ((body = parse_body(r)) == NULL) {
		atomic_fetch_add(&s->stats.invalid, 1);
		goto out;
	}
	if ((errors = mailreq_validate(body, (long)time(NULL), &info)) == NULL) {
		sim_reply_error(r, 503, NULL, 0, NULL, "out of memory", NULL);
		goto out;
	}
	if (json_array_size(errors) > 0) {
		atomic_fetch_add(&s->stats.invalid, 1);
		reply_headers(r, 400, NULL, 0, json_pack("{s:O}", "errors", errors));
		goto out;
	}
	if (info.sandbox) {
		atomic_fetch_add(&s->stats.sandbox, 1);
		reply_headers(r, 200, NULL, 0, NULL);
		goto out;
	}
	sim_random_id(xid);
	sim_msgs_record(s->msgs, body, xid);
	sim_events_emit(s, body, xid);
	atomic_fetch_add(&s->stats.accepted, 1);
	snprintf(header, sizeof(header), "X-Message-Id: %s", xid);
	if ((ms = sim_faults_take_hang(s->faults)) > 0) {
		atomic_fetch_add(&s->stats.hung, 1);
		log_info("accepted %s with %zu recipients; answering in %ld ms (hang fault)", xid,
			 info.recipients, ms);
		shutdown_sleep(ms);
	} else {
		log_debug("accepted %s with %zu recipients", xid, info.recipients);
	}
	reply_headers(r, 202, headers, 1, NULL);
out:
	json_decref(errors);
	json_decref(body);
}
