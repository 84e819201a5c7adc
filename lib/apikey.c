/*
 * apikey: key generation and the refreshed snapshot of keys; see apikey.h.
 *
 * The snapshot is an array sorted by prefix, replaced whole under the write lock; checks
 * hold the read lock only to search it.  Keys are 256-bit random secrets, so a plain
 * SHA-256 of the key is all the storage needs (a slow KDF protects guessable passwords,
 * which these are not), and the comparison is CRYPTO_memcmp's constant time.
 */
#include "apikey.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "log.h"
#include "pgconn.h"

#define SCHEME "bearer "
#define SCHEME_LEN 7

#define LOAD_SQL                                                                                   \
	"SELECT id, key_prefix, encode(key_hash, 'hex'), array_to_string(scopes, ',')"             \
	" FROM api_keys WHERE revoked_at IS NULL"

const char *const apikey_scope_names[] = {
    "mail.send", "stats.read", "suppressions.read", "suppressions.write", "metrics.read",
    "all",       NULL,
};
#define SCOPE_ALL (1u << 5)

static const char prefix_alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

struct entry {
	char prefix[APIKEY_PREFIX_LEN + 1];
	unsigned char hash[APIKEY_HASH_LEN];
	long id;
	unsigned int scopes; /* bit i: apikey_scope_names[i] */
};

struct snapshot {
	size_t n;
	struct entry e[]; /* sorted by prefix */
};

struct apikeys {
	pthread_rwlock_t lock;
	struct snapshot *snap; /* NULL until the first load; guarded by lock */

	/* the refresher: mu/cv/stop shared with apikeys_destroy(), the rest its own */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	int have_thread;
	pthread_t thread;
	char *url;
	long refresh_seconds;
	PGconn *conn;
	int failing;          /* warned about the current outage */
	long last_count;      /* keys in the last snapshot loaded, -1 before */
	long last_skipped;    /* malformed rows skipped in the last load */
	unsigned int sync_ok; /* which of lock, mu, cv were initialised */
};

enum { SYNC_LOCK = 1, SYNC_MU = 2, SYNC_CV = 4 };

/* Bit of one scope name; 0 for an unknown name. */
static unsigned int
scope_bit(const char *name, size_t len)
{
	for (unsigned int i = 0; apikey_scope_names[i] != NULL; i++) {
		if (strlen(apikey_scope_names[i]) == len &&
		    memcmp(apikey_scope_names[i], name, len) == 0)
			return 1u << i;
	}
	return 0;
}

int
apikey_scope_known(const char *name)
{
	return name != NULL && scope_bit(name, strlen(name)) != 0;
}

/* Bits of comma-separated scope names; unknown names (a newer schema) grant nothing. */
static unsigned int
scopes_parse(const char *csv)
{
	unsigned int bits = 0;
	const char *p = csv, *comma;

	while (p != NULL && *p != '\0') {
		comma = strchr(p, ',');
		bits |= scope_bit(p, comma ? (size_t)(comma - p) : strlen(p));
		p = comma ? comma + 1 : NULL;
	}
	return bits;
}

static int
prefix_valid(const char *p)
{
	size_t i;

	if (p == NULL)
		return 0;
	for (i = 0; i < APIKEY_PREFIX_LEN; i++) {
		if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9')))
			return 0;
	}
	return p[i] == '\0';
}

/* 1 if s is exactly a key's shape: mp_ + 8 [a-z0-9] + _ + 43 base64url, nothing more. */
static int
key_shape_valid(const char *s)
{
	char prefix[APIKEY_PREFIX_LEN + 1];
	size_t i;

	if (strnlen(s, APIKEY_LEN + 1) != APIKEY_LEN || strncmp(s, "mp_", 3) != 0)
		return 0;
	memcpy(prefix, s + 3, APIKEY_PREFIX_LEN);
	prefix[APIKEY_PREFIX_LEN] = '\0';
	if (!prefix_valid(prefix) || s[3 + APIKEY_PREFIX_LEN] != '_')
		return 0;
	for (i = 3 + APIKEY_PREFIX_LEN + 1; i < APIKEY_LEN; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

static int
sha256(const void *data, size_t len, unsigned char out[APIKEY_HASH_LEN])
{
	unsigned int n = 0;

	if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != APIKEY_HASH_LEN)
		return -1;
	return 0;
}

static int
fill_random(unsigned char *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = getrandom(buf + got, len - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)n;
	}
	return 0;
}

int
apikey_generate(char *key, size_t keylen, char prefix[APIKEY_PREFIX_LEN + 1],
		unsigned char hash[APIKEY_HASH_LEN])
{
	unsigned char rnd[32], secret[32];
	size_t i, used = sizeof(rnd), n = 0, o;
	uint32_t v;
	int rc = -1;

	if (keylen < APIKEY_LEN + 1)
		goto out;
	/* The prefix: uniform over [a-z0-9], rejecting bytes >= 252 (7 * 36). */
	while (n < APIKEY_PREFIX_LEN) {
		if (used == sizeof(rnd)) {
			if (fill_random(rnd, sizeof(rnd)) < 0)
				goto out;
			used = 0;
		}
		if (rnd[used] < 252)
			prefix[n++] = prefix_alphabet[rnd[used] % 36];
		used++;
	}
	prefix[n] = '\0';
	if (fill_random(secret, sizeof(secret)) < 0)
		goto out;

	memcpy(key, "mp_", 3);
	memcpy(key + 3, prefix, APIKEY_PREFIX_LEN);
	o = 3 + APIKEY_PREFIX_LEN;
	key[o++] = '_';
	/* base64url without padding: 10 groups of 3 bytes, then 2 bytes as 3 characters */
	for (i = 0; i + 3 <= sizeof(secret); i += 3) {
		v = (uint32_t)secret[i] << 16 | (uint32_t)secret[i + 1] << 8 | secret[i + 2];
		key[o++] = b64url_alphabet[(v >> 18) & 63];
		key[o++] = b64url_alphabet[(v >> 12) & 63];
		key[o++] = b64url_alphabet[(v >> 6) & 63];
		key[o++] = b64url_alphabet[v & 63];
	}
	v = (uint32_t)secret[i] << 16 | (uint32_t)secret[i + 1] << 8;
	key[o++] = b64url_alphabet[(v >> 18) & 63];
	key[o++] = b64url_alphabet[(v >> 12) & 63];
	key[o++] = b64url_alphabet[(v >> 6) & 63];
	key[o] = '\0';
	if (o != APIKEY_LEN || sha256(key, APIKEY_LEN, hash) < 0)
		goto out;
	rc = 0;
out:
	OPENSSL_cleanse(rnd, sizeof(rnd));
	OPENSSL_cleanse(secret, sizeof(secret));
	if (rc < 0 && keylen > 0)
		OPENSSL_cleanse(key, keylen);
	return rc;
}

static int
entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->prefix, ((const struct entry *)b)->prefix);
}

static struct snapshot *
snapshot_alloc(size_t n)
{
	struct snapshot *s = calloc(1, sizeof(*s) + n * sizeof(s->e[0]));

	if (s != NULL)
		s->n = n;
	return s;
}

static void
snapshot_free(struct snapshot *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s->e, s->n * sizeof(s->e[0]));
	free(s);
}

/* Swaps s in as the current snapshot (takes ownership) and frees the one it replaces. */
static void
snapshot_install(struct apikeys *k, struct snapshot *s)
{
	struct snapshot *old;

	qsort(s->e, s->n, sizeof(s->e[0]), entry_cmp);
	pthread_rwlock_wrlock(&k->lock);
	old = k->snap;
	k->snap = s;
	pthread_rwlock_unlock(&k->lock);
	snapshot_free(old);
}

static int
hex_decode(const char *hex, unsigned char *out, size_t outlen)
{
	size_t i;
	int hi, lo;

	if (strlen(hex) != 2 * outlen)
		return -1;
	for (i = 0; i < outlen; i++) {
		hi = OPENSSL_hexchar2int((unsigned char)hex[2 * i]);
		lo = OPENSSL_hexchar2int((unsigned char)hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

/*
 * One load from PostgreSQL into a new snapshot, connecting first when needed.  -1 with err;
 * the connection is then dropped, to be made again next time.
 */
static int
load(struct apikeys *k, char *err, size_t errlen)
{
	struct snapshot *s = NULL;
	PGresult *res = NULL;
	struct entry *e;
	long skipped = 0;
	char *end;
	int i, rows, rc = -1;

	if (k->conn == NULL &&
	    (k->conn = pgconn_open(k->url, "mailpipe-apikeys", err, errlen)) == NULL)
		goto out;
	res = PQexecParams(k->conn, LOAD_SQL, 0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 4) {
		pgconn_error(err, errlen, "cannot read 'api_keys'", k->conn, res);
		goto out;
	}
	rows = PQntuples(res);
	if ((s = snapshot_alloc((size_t)rows)) == NULL) {
		snprintf(err, errlen, "cannot read 'api_keys': out of memory");
		goto out;
	}
	s->n = 0;
	for (i = 0; i < rows; i++) {
		e = &s->e[s->n];
		errno = 0;
		e->id = strtol(PQgetvalue(res, i, 0), &end, 10);
		if (errno != 0 || *end != '\0' || !prefix_valid(PQgetvalue(res, i, 1)) ||
		    hex_decode(PQgetvalue(res, i, 2), e->hash, sizeof(e->hash)) < 0) {
			skipped++; /* the table's CHECKs make this unlikely */
			continue;
		}
		memcpy(e->prefix, PQgetvalue(res, i, 1), sizeof(e->prefix));
		e->scopes = scopes_parse(PQgetvalue(res, i, 3));
		s->n++;
	}
	if (skipped != k->last_skipped && skipped > 0)
		log_warnx("skipped %ld malformed rows of 'api_keys' (bad id, prefix or hash)",
			  skipped);
	k->last_skipped = skipped;
	if (k->last_count != (long)s->n)
		log_info("api keys loaded: %zu active", s->n);
	k->last_count = (long)s->n;
	snapshot_install(k, s);
	s = NULL;
	rc = 0;
out:
	PQclear(res);
	snapshot_free(s);
	if (rc < 0 && k->conn != NULL) {
		PQfinish(k->conn);
		k->conn = NULL;
	}
	return rc;
}

/* Loads once, logging a failure once per outage and the recovery after one. */
static void
refresh(struct apikeys *k)
{
	char err[512];

	if (load(k, err, sizeof(err)) < 0) {
		if (!k->failing) {
			if (k->last_count < 0)
				log_warnx("cannot load api keys, answering 'unavailable' until "
					  "postgresql is back: %s",
					  err);
			else
				log_warnx("cannot refresh api keys, keeping the last %ld: %s",
					  k->last_count, err);
		} else {
			log_debug("api keys still not refreshed: %s", err);
		}
		k->failing = 1;
		return;
	}
	if (k->failing)
		log_info("api keys refreshed again from postgresql");
	k->failing = 0;
}

void
apikeys_set_refresh(struct apikeys *k, long refresh_seconds)
{
	if (k != NULL)
		__atomic_store_n(&k->refresh_seconds, refresh_seconds < 1 ? 1 : refresh_seconds,
				 __ATOMIC_RELAXED);
}

static void *
refresh_main(void *arg)
{
	struct apikeys *k = arg;
	struct timespec until;
	int stop;

	log_set_ctx("apikeys");
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += __atomic_load_n(&k->refresh_seconds, __ATOMIC_RELAXED);
		pthread_mutex_lock(&k->mu);
		while (!k->stop && pthread_cond_timedwait(&k->cv, &k->mu, &until) != ETIMEDOUT)
			;
		stop = k->stop;
		pthread_mutex_unlock(&k->mu);
		if (stop)
			break;
		refresh(k);
	}
	return NULL;
}

/* Allocates k with its locks; NULL with err. */
static struct apikeys *
apikeys_alloc(char *err, size_t errlen)
{
	struct apikeys *k = calloc(1, sizeof(*k));
	pthread_rwlockattr_t ra;
	pthread_condattr_t ca;
	int e = 0;

	if (k == NULL) {
		snprintf(err, errlen, "cannot set up api keys: out of memory");
		return NULL;
	}
	k->last_count = -1;
	/* Writers first: a steady stream of checks must not starve the refresher. */
	if ((e = pthread_rwlockattr_init(&ra)) == 0) {
		pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		if ((e = pthread_rwlock_init(&k->lock, &ra)) == 0)
			k->sync_ok |= SYNC_LOCK;
		pthread_rwlockattr_destroy(&ra);
	}
	if (e == 0 && (e = pthread_mutex_init(&k->mu, NULL)) == 0)
		k->sync_ok |= SYNC_MU;
	if (e == 0 && (e = pthread_condattr_init(&ca)) == 0) {
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		if ((e = pthread_cond_init(&k->cv, &ca)) == 0)
			k->sync_ok |= SYNC_CV;
		pthread_condattr_destroy(&ca);
	}
	if (e != 0) {
		snprintf(err, errlen, "cannot set up api keys: %s", strerror(e));
		apikeys_destroy(k);
		return NULL;
	}
	return k;
}

struct apikeys *
apikeys_new(const char *database_url, long refresh_seconds, char *err, size_t errlen)
{
	struct apikeys *k = NULL;
	int e;

	if ((k = apikeys_alloc(err, errlen)) == NULL)
		return NULL;
	k->refresh_seconds = refresh_seconds < 1 ? 1 : refresh_seconds;
	if ((k->url = strdup(database_url ? database_url : "")) == NULL) {
		snprintf(err, errlen, "cannot set up api keys: out of memory");
		goto fail;
	}
	refresh(k);
	if ((e = pthread_create(&k->thread, NULL, refresh_main, k)) != 0) {
		snprintf(err, errlen, "cannot start the api key refresher: %s", strerror(e));
		goto fail;
	}
	k->have_thread = 1;
	return k;
fail:
	apikeys_destroy(k);
	return NULL;
}

struct apikeys *
apikeys_new_static(const struct apikey_row *rows, size_t n)
{
	struct apikeys *k = NULL;
	struct snapshot *s = NULL;
	char err[128];
	size_t i;

	for (i = 0; i < n; i++) {
		if (!prefix_valid(rows[i].prefix))
			return NULL;
	}
	if ((k = apikeys_alloc(err, sizeof(err))) == NULL)
		return NULL;
	if ((s = snapshot_alloc(n)) == NULL) {
		apikeys_destroy(k);
		return NULL;
	}
	for (i = 0; i < n; i++) {
		s->e[i].id = rows[i].id;
		memcpy(s->e[i].prefix, rows[i].prefix, sizeof(s->e[i].prefix));
		memcpy(s->e[i].hash, rows[i].hash, sizeof(s->e[i].hash));
		s->e[i].scopes = scopes_parse(rows[i].scopes);
	}
	snapshot_install(k, s);
	return k;
}

enum apikey_result
apikeys_check(struct apikeys *k, const char *authorization, const char *scope, long *key_id)
{
	unsigned char hash[APIKEY_HASH_LEN];
	static const unsigned char zero[APIKEY_HASH_LEN];
	const struct entry *e = NULL;
	struct entry probe;
	const char *key;
	enum apikey_result r;
	int same;

	if (authorization == NULL || authorization[0] == '\0')
		return APIKEY_MISSING;
	if (strncasecmp(authorization, SCHEME, SCHEME_LEN) != 0)
		return APIKEY_INVALID;
	key = authorization + SCHEME_LEN;
	if (!key_shape_valid(key) || sha256(key, APIKEY_LEN, hash) < 0)
		return APIKEY_INVALID;
	memcpy(probe.prefix, key + 3, APIKEY_PREFIX_LEN);
	probe.prefix[APIKEY_PREFIX_LEN] = '\0';

	pthread_rwlock_rdlock(&k->lock);
	if (k->snap == NULL) {
		r = APIKEY_UNAVAILABLE;
		goto out;
	}
	e = bsearch(&probe, k->snap->e, k->snap->n, sizeof(k->snap->e[0]), entry_cmp);
	/* compare against something either way, so an unknown prefix costs the same */
	same = CRYPTO_memcmp(e ? e->hash : zero, hash, sizeof(hash)) == 0;
	if (e == NULL || !same) {
		r = APIKEY_INVALID;
		goto out;
	}
	if (key_id != NULL)
		*key_id = e->id;
	if (scope == NULL || (e->scopes & SCOPE_ALL) ||
	    (e->scopes & scope_bit(scope, strlen(scope))) != 0)
		r = APIKEY_OK;
	else
		r = APIKEY_FORBIDDEN;
out:
	pthread_rwlock_unlock(&k->lock);
	OPENSSL_cleanse(hash, sizeof(hash));
	return r;
}

void
apikeys_destroy(struct apikeys *k)
{
	if (k == NULL)
		return;
	if (k->have_thread) {
		pthread_mutex_lock(&k->mu);
		k->stop = 1;
		pthread_cond_signal(&k->cv);
		pthread_mutex_unlock(&k->mu);
		pthread_join(k->thread, NULL);
	}
	if (k->conn != NULL)
		PQfinish(k->conn);
	snapshot_free(k->snap);
	if (k->sync_ok & SYNC_CV)
		pthread_cond_destroy(&k->cv);
	if (k->sync_ok & SYNC_MU)
		pthread_mutex_destroy(&k->mu);
	if (k->sync_ok & SYNC_LOCK)
		pthread_rwlock_destroy(&k->lock);
	free(k->url);
	free(k);
}
