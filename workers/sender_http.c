/*
 * sender_http: the one call to SendGrid's Mail Send endpoint; see sender.h.
 *
 * One easy handle is reused for every call, so the connection (and its TLS session) stays
 * open between mails.  The answer is classified here and nowhere else:
 *   2xx -> sent;  429 -> retry at X-RateLimit-Reset;  other 4xx -> permanent;
 *   anything else that answered -> retry;  no answer -> retry when the body never went out
 *   completely (refused, DNS, connect time-out), ambiguous when it did (SendGrid may have
 *   taken the mail: a time-out after the request was sent).
 */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "log.h"
#include "sender.h"

struct sender_http {
	CURL *h;
	struct curl_slist *headers;
	char *url;
	char errbuf[CURL_ERROR_SIZE];
	/* the answer being read */
	char *body;
	size_t body_len;
	struct sender_reply *rep;
	char reset[32];
};

/* Copies a header value: leading/trailing blanks and CR/LF cut. */
static void
header_copy(char *dst, size_t dlen, const char *v, size_t vlen)
{
	while (vlen > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen > 0 && isspace((unsigned char)v[vlen - 1]))
		vlen--;
	if (vlen >= dlen)
		vlen = dlen - 1;
	for (size_t i = 0; i < vlen; i++)
		dst[i] = v[i] >= 0x20 && v[i] < 0x7f ? v[i] : '?';
	dst[vlen] = '\0';
}

static size_t
on_header(char *buf, size_t size, size_t n, void *arg)
{
	struct sender_http *h = arg;
	struct sender_reply *rep = h->rep;
	size_t len = size * n;
	static const struct {
		const char *name;
		size_t off, cap;
	} known[] = {
	    {"x-message-id", offsetof(struct sender_reply, sg_id), SENDER_SGID_MAX},
	    {"x-ratelimit-limit", offsetof(struct sender_reply, rl_limit), 24},
	    {"x-ratelimit-remaining", offsetof(struct sender_reply, rl_remaining), 24},
	};
	const char *colon;

	/* A new status line starts a new header block (after 100 Continue, say). */
	if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
		rep->sg_id[0] = rep->rl_limit[0] = rep->rl_remaining[0] = h->reset[0] = '\0';
		return len;
	}
	if ((colon = memchr(buf, ':', len)) == NULL)
		return len;
	size_t nlen = (size_t)(colon - buf), vlen = len - nlen - 1;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (nlen == strlen(known[i].name) && strncasecmp(buf, known[i].name, nlen) == 0)
			header_copy((char *)rep + known[i].off, known[i].cap, colon + 1, vlen);
	if (nlen == 17 && strncasecmp(buf, "x-ratelimit-reset", nlen) == 0)
		header_copy(h->reset, sizeof(h->reset), colon + 1, vlen);
	return len;
}

static size_t
on_body(char *buf, size_t size, size_t n, void *arg)
{
	struct sender_http *h = arg;
	size_t len = size * n, room = SENDER_BODY_MAX - h->body_len;

	/* Keep the first 64 KiB, read (and drop) the rest so the connection stays usable. */
	if (len < room)
		room = len;
	memcpy(h->body + h->body_len, buf, room);
	h->body_len += room;
	return len;
}

static int
has_crlf(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

struct sender_http *
sender_http_new(const struct config *cf, char *err, size_t errlen)
{
	struct sender_http *h = NULL;
	char *auth = NULL;
	size_t ulen, alen;
	CURLcode e = CURLE_OK;

	if (has_crlf(cf->sendgrid_api_key)) {
		snprintf(err, errlen, "invalid 'sendgrid.api_key': contains CR or LF");
		return NULL;
	}
	if (has_crlf(cf->sendgrid_api_url)) {
		snprintf(err, errlen, "invalid 'sendgrid.api_url': contains CR or LF");
		return NULL;
	}
	if (cf->sendgrid_api_key[0] == '\0')
		log_warnx("'sendgrid.api_key' is empty: SendGrid will answer 401");
	if (strncmp(cf->sendgrid_api_url, "https://", 8) != 0 &&
	    strncmp(cf->sendgrid_api_url, "http://", 7) != 0) {
		snprintf(err, errlen, "invalid 'sendgrid.api_url' '%s': expected http(s)://...",
			 cf->sendgrid_api_url);
		return NULL;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL || (h->body = malloc(SENDER_BODY_MAX + 1)) == NULL)
		goto oom;
	ulen = strlen(cf->sendgrid_api_url);
	while (ulen > 0 && cf->sendgrid_api_url[ulen - 1] == '/')
		ulen--;
	if ((h->url = malloc(ulen + sizeof("/v3/mail/send"))) == NULL)
		goto oom;
	memcpy(h->url, cf->sendgrid_api_url, ulen);
	memcpy(h->url + ulen, "/v3/mail/send", sizeof("/v3/mail/send"));

	alen = strlen(cf->sendgrid_api_key) + sizeof("Authorization: Bearer ");
	if ((auth = malloc(alen)) == NULL)
		goto oom;
	snprintf(auth, alen, "Authorization: Bearer %s", cf->sendgrid_api_key);
	const char *hdrs[] = {auth, "Content-Type: application/json", "Accept: application/json",
			      "Expect:" /* no 100-continue round trip */};
	for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
		struct curl_slist *l = curl_slist_append(h->headers, hdrs[i]);
		if (l == NULL)
			goto oom;
		h->headers = l;
	}
	explicit_bzero(auth, alen);
	free(auth);
	auth = NULL;

	if ((h->h = curl_easy_init()) == NULL)
		goto oom;
	/* clang-format off */
	if ((e = curl_easy_setopt(h->h, CURLOPT_URL, h->url)) ||
	    (e = curl_easy_setopt(h->h, CURLOPT_HTTPHEADER, h->headers)) ||
	    (e = curl_easy_setopt(h->h, CURLOPT_POST, 1L)) ||
	    (e = curl_easy_setopt(h->h, CURLOPT_NOSIGNAL, 1L)) ||
	    (e = curl_easy_setopt(h->h, CURLOPT_TIMEOUT_MS, cf->sendgrid_timeout_ms)) ||
	    (e = curl_easy_setopt(h->h, CURLOPT_CONNECTTIMEOUT_MS, cf->sendgrid_connect_timeout_ms)) ||
	    (e = curl_easy_setopt(h->h, CURLOPT_TCP_KEEPALIVE, 1L)) ||
	    (e = curl_easy_setopt(h->h, CURLOPT_FOLLOWLOCATION, 0L)) ||
	    (e = curl_easy_setopt(h->h, CURLOPT_PROTOCOLS_STR, "http,https")) ||
	    (e = curl_easy_setopt(h->h, CURLOPT_USERAGENT, "mailpipe-sender/1")) ||
	    (e = curl_easy_setopt(h->h, CURLOPT_ERRORBUFFER, h->errbuf)) ||
	    (e = curl_easy_setopt(h->h, CURLOPT_HEADERFUNCTION, on_header)) ||
	    (e = curl_easy_setopt(h->h, CURLOPT_HEADERDATA, h)) ||
	    (e = curl_easy_setopt(h->h, CURLOPT_WRITEFUNCTION, on_body)) ||
	    (e = curl_easy_setopt(h->h, CURLOPT_WRITEDATA, h)))
		goto curl_fail;
	/* clang-format on */
	if (cf->sendgrid_ca_file[0] &&
	    (e = curl_easy_setopt(h->h, CURLOPT_CAINFO, cf->sendgrid_ca_file)) != CURLE_OK)
		goto curl_fail;
	log_info("sending to %s", h->url);
	return h;
curl_fail:
	snprintf(err, errlen, "cannot set up libcurl: %s", curl_easy_strerror(e));
	sender_http_destroy(h);
	return NULL;
oom:
	if (auth) {
		explicit_bzero(auth, alen);
		free(auth);
	}
	snprintf(err, errlen, "out of memory");
	sender_http_destroy(h);
	return NULL;
}

void
sender_http_destroy(struct sender_http *h)
{
	if (h == NULL)
		return;
	if (h->h)
		curl_easy_cleanup(h->h);
	if (h->headers) {
		/* The list holds the API key: wipe it before it goes back to the allocator. */
		for (struct curl_slist *l = h->headers; l; l = l->next)
			explicit_bzero(l->data, strlen(l->data));
		curl_slist_free_all(h->headers);
	}
	free(h->url);
	free(h->body);
	free(h);
}

/* X-RateLimit-Reset: epoch seconds when above 1e9, else seconds from now. */
static long long
reset_time(const char *v)
{
	char *end;
	double d;

	if (v[0] == '\0')
		return 0;
	d = strtod(v, &end);
	if (end == v || *end != '\0' || !(d >= 0) || d > 1e12)
		return 0;
	if (d > 1e9)
		return (long long)(d * 1000.0);
	return sender_now_ms() + (long long)(d * 1000.0);
}

static void
classify_status(struct sender_reply *rep, const char *reset)
{
	long st = rep->status;

	if (st >= 200 && st < 300)
		rep->cls = SEND_OK;
	else if (st == 429) {
		rep->cls = SEND_RATE;
		rep->reset_ms = reset_time(reset);
	} else if (st >= 400 && st < 500)
		rep->cls = SEND_PERMANENT;
	else
		rep->cls = SEND_RETRY; /* 5xx, and 1xx/3xx a proxy may have made up */
}

void
sender_http_send(struct sender_http *h, const char *body, size_t len, struct sender_reply *rep)
{
	curl_off_t sent = 0;
	CURLcode e;

	memset(rep, 0, sizeof(*rep));
	h->rep = rep;
	h->body_len = 0;
	h->reset[0] = h->errbuf[0] = '\0';
	curl_easy_setopt(h->h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	e = curl_easy_perform(h->h);
	h->body[h->body_len] = '\0';
	rep->body = h->body;
	rep->body_len = h->body_len;
	h->rep = NULL;
	if (e == CURLE_OK) {
		curl_easy_getinfo(h->h, CURLINFO_RESPONSE_CODE, &rep->status);
		classify_status(rep, h->reset);
		return;
	}
	snprintf(rep->error, sizeof(rep->error), "%s: %s", curl_easy_strerror(e),
		 h->errbuf[0] ? h->errbuf : "no detail");
	rep->error[strcspn(rep->error, "\r\n")] = '\0';
	/*
	 * No answer.  SendGrid can only have taken the mail if it got the whole body: when
	 * fewer bytes went out (connection refused, DNS, connect or TLS time-out, a reused
	 * connection found closed) resending is safe; when all of it went out, it is not.
	 */
	curl_easy_getinfo(h->h, CURLINFO_SIZE_UPLOAD_T, &sent);
	rep->cls = (len > 0 && sent >= (curl_off_t)len) ? SEND_AMBIGUOUS : SEND_RETRY;
	log_debug("transport failure after %lld of %zu body bytes: %s", (long long)sent, len,
		  rep->error);
}
