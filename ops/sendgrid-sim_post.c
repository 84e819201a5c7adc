/*
 * sendgrid-sim_post: the poster thread.  Every sim.flush_ms it takes the events that are
 * due, adds duplicates (sim.duplicate_percent: half in the same batch, half in a later
 * one), shuffles them, and POSTs them to sim.webhook_url as SendGrid's Event Webhook does:
 * a JSON array, signed with ECDSA P-256 / SHA-256 over timestamp + body (DER, standard
 * base64) in X-Twilio-Email-Event-Webhook-Signature and -Timestamp.  One libcurl handle
 * is reused (keep-alive).  A batch answered non-2xx, or lost in transport, is kept and
 * posted again after a bounded backoff; later events wait in the queue meanwhile.
 *
 * The array is the events' compact jansson texts joined with ',' inside '[' ']': the
 * same bytes json_dumps() would make of the array, without rebuilding the trees.
 */
#include "sendgrid-sim.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "backoff.h"
#include "log.h"

#define TIMEOUT_MS 10000L
#define CONNECT_TIMEOUT_MS 3000L
#define RETRY_BASE_MS 250L
#define RETRY_MAX_MS 5000L

struct sim_poster {
	struct sim *s;
	pthread_t tid;
	atomic_int stop;
	atomic_llong deadline_ms; /* of the last flush, once stop is set */
	atomic_size_t pending;
	CURL *curl;
	EVP_PKEY *key; /* NULL: batches go unsigned */
	struct sim_qev batch[2 * SIM_BATCH_MAX_EVENTS];
	char *body; /* the batch kept for a retry, or NULL */
	size_t body_len, nevents, ndups;
	struct backoff bo;
	int64_t retry_at;
	char answer[256];
	size_t answer_len;
};

static EVP_PKEY *
load_key(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *key = NULL;
	char group[64] = "";
	size_t glen = 0;

	if (f == NULL) {
		snprintf(err, errlen, "cannot open 'sim.signing_key_file' '%s': %m", path);
		return NULL;
	}
	key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (key == NULL) {
		snprintf(err, errlen, "cannot read a PEM private key from '%s'", path);
		return NULL;
	}
	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
	    EVP_PKEY_get_group_name(key, group, sizeof(group), &glen) != 1 ||
	    strcmp(group, "prime256v1") != 0) {
		snprintf(err, errlen, "'%s' is not an ECDSA P-256 private key", path);
		EVP_PKEY_free(key);
		return NULL;
	}
	return key;
}

/* Signs ts + body into sig (standard base64 of DER); -1 on failure. */
static int
sign(EVP_PKEY *key, const char *ts, const char *body, size_t len, char *sig, size_t siglen)
{
	unsigned char der[256];
	size_t derlen = sizeof(der);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = -1;

	if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSignUpdate(ctx, ts, strlen(ts)) != 1 ||
	    EVP_DigestSignUpdate(ctx, body, len) != 1 ||
	    EVP_DigestSignFinal(ctx, der, &derlen) != 1 || (derlen + 2) / 3 * 4 + 1 > siglen)
		goto out;
	sim_base64(der, derlen, sig);
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

static size_t
on_answer(char *data, size_t size, size_t n, void *arg)
{
	struct sim_poster *p = arg;
	size_t len = size * n, room = sizeof(p->answer) - 1 - p->answer_len;

	memcpy(p->answer + p->answer_len, data, len < room ? len : room);
	p->answer_len += len < room ? len : room;
	p->answer[p->answer_len] = '\0';
	return len;
}

/* Adds duplicates to the n events of p->batch, shuffles them and joins them into p->body.
 * final: duplicates only within this batch.  Frees the events' texts. */
static int
build(struct sim_poster *p, size_t n, int final)
{
	struct sim *s = p->s;
	size_t total = n, len = 2;
	char *w;

	p->ndups = 0;
	for (size_t i = 0; i < n; i++) {
		char *copy;

		if (p->batch[i].dup) {
			p->ndups++; /* a copy put back into the queue by an earlier batch */
			continue;
		}
		if (!sim_chance(s->cf->sim_duplicate_percent))
			continue;
		if ((copy = strdup(p->batch[i].json)) == NULL)
			continue;
		if (final || sim_chance(50)) {
			p->batch[total] = p->batch[i];
			p->batch[total].dup = 1;
			p->batch[total++].json = copy;
			p->ndups++;
		} else if (sim_queue_push(s->queue,
					  sim_now_ms() + s->cf->sim_flush_ms * sim_rand_range(1, 3),
					  copy, p->batch[i].len, 1) < 0) {
			atomic_fetch_add(&s->stats.dropped, 1);
		}
	}
	for (size_t i = total; i > 1; i--) {
		size_t j = (size_t)(sim_rand() % i);
		struct sim_qev tmp = p->batch[i - 1];

		p->batch[i - 1] = p->batch[j];
		p->batch[j] = tmp;
	}
	for (size_t i = 0; i < total; i++)
		len += p->batch[i].len + 1;
	if ((p->body = malloc(len + 1)) == NULL) {
		for (size_t i = 0; i < total; i++)
			free(p->batch[i].json);
		return -1;
	}
	w = p->body;
	*w++ = '[';
	for (size_t i = 0; i < total; i++) {
		if (i)
			*w++ = ',';
		memcpy(w, p->batch[i].json, p->batch[i].len);
		w += p->batch[i].len;
		free(p->batch[i].json);
	}
	*w++ = ']';
	*w = '\0';
	p->body_len = (size_t)(w - p->body);
	p->nevents = total;
	atomic_store(&p->pending, total);
	return 0;
}

/* POSTs p->body once; 0 on a 2xx answer, else -1 with the reason in why. */
static int
post(struct sim_poster *p, long timeout_ms, char *why, size_t whylen)
{
	struct sim *s = p->s;
	char ts[32], sig[128], sighdr[200], tshdr[96];
	struct curl_slist *h = NULL, *tmp;
	int64_t t0 = sim_now_ms();
	long code = 0;
	CURLcode cc;
	int rc = -1;

	snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
	if (p->key && sign(p->key, ts, p->body, p->body_len, sig, sizeof(sig)) < 0) {
		snprintf(why, whylen, "cannot sign it: OpenSSL failed");
		return -1;
	}
	snprintf(sighdr, sizeof(sighdr), "X-Twilio-Email-Event-Webhook-Signature: %s", sig);
	snprintf(tshdr, sizeof(tshdr), "X-Twilio-Email-Event-Webhook-Timestamp: %s", ts);
	static const char *const fixed[] = {"Content-Type: application/json",
					    "User-Agent: SendGrid Event API", "Expect:"};
	for (size_t i = 0; i < 3 + (p->key ? 2 : 0); i++) {
		const char *line = i < 3 ? fixed[i] : i == 3 ? sighdr : tshdr;

		if ((tmp = curl_slist_append(h, line)) == NULL) {
			snprintf(why, whylen, "out of memory");
			goto out;
		}
		h = tmp;
	}
	p->answer_len = 0;
	p->answer[0] = '\0';
	curl_easy_setopt(p->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(p->curl, CURLOPT_POSTFIELDS, p->body);
	curl_easy_setopt(p->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->body_len);
	curl_easy_setopt(p->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
	cc = curl_easy_perform(p->curl);
	if (cc == CURLE_OK)
		curl_easy_getinfo(p->curl, CURLINFO_RESPONSE_CODE, &code);
	if (cc == CURLE_OK && code >= 200 && code < 300) {
		atomic_fetch_add(&s->stats.batches_ok, 1);
		atomic_fetch_add(&s->stats.posted, p->nevents);
		atomic_fetch_add(&s->stats.duplicates, p->ndups);
		log_debug("posted %zu events (%zu duplicates, %zu bytes) -> %ld in %lld ms",
			  p->nevents, p->ndups, p->body_len, code, (long long)(sim_now_ms() - t0));
		rc = 0;
	} else {
		atomic_fetch_add(&s->stats.batches_failed, 1);
		while (p->answer_len > 0 && (unsigned char)p->answer[p->answer_len - 1] <= ' ')
			p->answer[--p->answer_len] = '\0';
		if (cc != CURLE_OK)
			snprintf(why, whylen, "%s", curl_easy_strerror(cc));
		else
			snprintf(why, whylen, "answered %ld: %s", code, p->answer);
	}
out:
	curl_easy_setopt(p->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(h);
	return rc;
}

static void
drop_body(struct sim_poster *p)
{
	free(p->body);
	p->body = NULL;
	p->nevents = 0;
	atomic_store(&p->pending, 0);
}

/* Posts what is due at until (INT64_MAX: everything) while the posts succeed; a failed
 * batch waits for its backoff.  final: retries every 200 ms instead, until the deadline. */
static void
flush(struct sim_poster *p, int64_t until, int final)
{
	int64_t deadline = atomic_load(&p->deadline_ms), now;
	long timeout, pause;
	char why[400];

	for (;;) {
		now = sim_now_ms();
		if (final && now >= deadline)
			return;
		if (!final && now < p->retry_at)
			return;
		if (p->body == NULL) {
			size_t n = sim_queue_take(p->s->queue, until, p->batch,
						  SIM_BATCH_MAX_EVENTS, SIM_BATCH_MAX_BYTES);

			if (n == 0)
				return;
			if (build(p, n, final) < 0) {
				log_warnx("cannot build a batch: out of memory: %zu events lost",
					  n);
				atomic_fetch_add(&p->s->stats.dropped, n);
				continue;
			}
		}
		timeout =
		    final && deadline - now < TIMEOUT_MS ? (long)(deadline - now) : TIMEOUT_MS;
		if (post(p, timeout, why, sizeof(why)) == 0) {
			drop_body(p);
			backoff_reset(&p->bo);
			p->retry_at = 0;
			continue;
		}
		if (final) {
			struct timespec ts = {0, 200 * 1000000L};

			log_warnx("cannot post %zu events to '%s': %s", p->nevents,
				  p->s->cf->sim_webhook_url, why);
			nanosleep(&ts, NULL);
			continue;
		}
		pause = backoff_next(&p->bo);
		p->retry_at = sim_now_ms() + pause;
		log_warnx("cannot post %zu events to '%s': %s; keeping them, next try in %ld ms",
			  p->nevents, p->s->cf->sim_webhook_url, why, pause);
		return;
	}
}

static void *
poster_main(void *arg)
{
	struct sim_poster *p = arg;
	size_t left;

	while (!atomic_load(&p->stop)) {
		int64_t wake = sim_now_ms() + p->s->cf->sim_flush_ms;

		while (!atomic_load(&p->stop) && sim_now_ms() < wake) {
			struct timespec ts = {0, 10 * 1000000L};

			nanosleep(&ts, NULL);
		}
		if (!atomic_load(&p->stop))
			flush(p, sim_now_ms(), 0);
	}
	flush(p, INT64_MAX, 1);
	left = sim_queue_len(p->s->queue) + p->nevents;
	if (left) {
		log_warnx("shutting down with %zu events not posted", left);
		atomic_fetch_add(&p->s->stats.dropped, left);
	}
	return NULL;
}

struct sim_poster *
sim_poster_start(struct sim *s, char *err, size_t errlen)
{
	struct sim_poster *p = calloc(1, sizeof(*p));
	sigset_t block, old;
	const struct config *cf = s->cf;

	if (p == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->s = s;
	backoff_init(&p->bo, RETRY_BASE_MS, RETRY_MAX_MS);
	if (cf->sim_signing_key_file[0] == '\0')
		log_warnx("sim.signing_key_file is not set: webhook batches go unsigned");
	else if ((p->key = load_key(cf->sim_signing_key_file, err, errlen)) == NULL)
		goto fail;
	if ((p->curl = curl_easy_init()) == NULL) {
		snprintf(err, errlen, "cannot create a libcurl handle");
		goto fail;
	}
	curl_easy_setopt(p->curl, CURLOPT_URL, cf->sim_webhook_url);
	curl_easy_setopt(p->curl, CURLOPT_POST, 1L);
	curl_easy_setopt(p->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(p->curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(p->curl, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	curl_easy_setopt(p->curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(p->curl, CURLOPT_WRITEFUNCTION, on_answer);
	curl_easy_setopt(p->curl, CURLOPT_WRITEDATA, p);
	if (cf->sim_ca_file[0] != '\0' &&
	    curl_easy_setopt(p->curl, CURLOPT_CAINFO, cf->sim_ca_file) != CURLE_OK) {
		snprintf(err, errlen, "cannot use 'sim.ca_file' '%s'", cf->sim_ca_file);
		goto fail;
	}
	/* Signals go to the main thread only. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	errno = pthread_create(&p->tid, NULL, poster_main, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (errno != 0) {
		snprintf(err, errlen, "cannot start the poster thread: %m");
		goto fail;
	}
	log_info("posting events to %s every %ld ms%s", cf->sim_webhook_url, cf->sim_flush_ms,
		 p->key ? ", signed" : "");
	return p;
fail:
	curl_easy_cleanup(p->curl);
	EVP_PKEY_free(p->key);
	free(p);
	return NULL;
}

void
sim_poster_stop(struct sim_poster *p, long deadline_ms)
{
	if (p == NULL)
		return;
	atomic_store(&p->deadline_ms, sim_now_ms() + deadline_ms);
	atomic_store(&p->stop, 1);
	pthread_join(p->tid, NULL);
	free(p->body);
	curl_easy_cleanup(p->curl);
	EVP_PKEY_free(p->key);
	free(p);
}

size_t
sim_poster_pending(struct sim_poster *p)
{
	return p ? atomic_load(&p->pending) : 0;
}
