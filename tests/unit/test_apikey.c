/*
 * test_apikey: API key generation and checks (lib/apikey.c), without a database: the
 * snapshot comes from apikeys_new_static().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "apikey.h"
#include "unit.h"

#define ROUNDS 2000

static int
sha256_of(const char *s, unsigned char out[APIKEY_HASH_LEN])
{
	unsigned int n = 0;

	return EVP_Digest(s, strlen(s), out, &n, EVP_sha256(), NULL) == 1 && n == APIKEY_HASH_LEN
		   ? 0
		   : -1;
}

/* 1 if key has the documented shape and embeds prefix. */
static int
shape_ok(const char *key, const char *prefix)
{
	size_t i;

	if (strlen(key) != 55 || strncmp(key, "mp_", 3) != 0 || key[11] != '_' ||
	    strlen(prefix) != 8 || memcmp(key + 3, prefix, 8) != 0)
		return 0;
	for (i = 3; i < 11; i++) {
		if (!((key[i] >= 'a' && key[i] <= 'z') || (key[i] >= '0' && key[i] <= '9')))
			return 0;
	}
	for (i = 12; i < 55; i++) {
		char c = key[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_generate(void)
{
	char key[APIKEY_LEN + 1], prefix[APIKEY_PREFIX_LEN + 1], small[APIKEY_LEN];
	unsigned char hash[APIKEY_HASH_LEN], want[APIKEY_HASH_LEN];
	char **keys = calloc(ROUNDS, sizeof(*keys)), **prefixes = calloc(ROUNDS, sizeof(*keys));
	int shape = 1, hashes = 1, dup_key = 0, dup_prefix = 0, gen = 1;
	int seen_pchar[256] = {0}, seen_schar[256] = {0}, pchars = 0, schars = 0;

	if (keys == NULL || prefixes == NULL)
		abort();
	CHECK(APIKEY_LEN == 55, "a key is 55 characters");
	for (int i = 0; i < ROUNDS; i++) {
		memset(key, 'X', sizeof(key));
		if (apikey_generate(key, sizeof(key), prefix, hash) != 0) {
			gen = 0;
			break;
		}
		if (shape && !shape_ok(key, prefix)) {
			unit_diag("bad key shape: prefix '%s', key of %zu characters", prefix,
				  strlen(key));
			shape = 0;
		}
		if (sha256_of(key, want) < 0 || memcmp(hash, want, sizeof(want)) != 0)
			hashes = 0;
		for (int j = 3; j < 11; j++)
			seen_pchar[(unsigned char)key[j]]++;
		for (int j = 12; j < 55; j++)
			seen_schar[(unsigned char)key[j]]++;
		if ((keys[i] = strdup(key)) == NULL || (prefixes[i] = strdup(prefix)) == NULL)
			abort();
	}
	CHECK(gen, "apikey_generate succeeds %d times", ROUNDS);
	CHECK(shape, "mp_ + 8 of [a-z0-9] (the prefix) + _ + 43 of base64url");
	CHECK(hashes, "hash is SHA-256 of the whole key string");
	qsort(keys, ROUNDS, sizeof(*keys), cmp_str);
	qsort(prefixes, ROUNDS, sizeof(*prefixes), cmp_str);
	for (int i = 1; i < ROUNDS; i++) {
		dup_key += strcmp(keys[i - 1], keys[i]) == 0;
		dup_prefix += strcmp(prefixes[i - 1], prefixes[i]) == 0;
	}
	CHECK(dup_key == 0, "%d keys are distinct", ROUNDS);
	CHECK(dup_prefix == 0, "%d prefixes are distinct", ROUNDS);
	for (int c = 0; c < 256; c++) {
		pchars += seen_pchar[c] > 0;
		schars += seen_schar[c] > 0;
	}
	/* 16000 prefix characters over 36, 86000 secret ones over 64: all show up */
	if (!CHECK(pchars == 36, "prefixes use all of [a-z0-9]"))
		unit_diag("%d distinct characters", pchars);
	if (!CHECK(schars == 64, "secrets use the whole base64url alphabet"))
		unit_diag("%d distinct characters", schars);
	CHECK(apikey_generate(small, sizeof(small), prefix, hash) == -1,
	      "a key buffer of 55 bytes (no room for the NUL) is refused");
	for (int i = 0; i < ROUNDS; i++) {
		free(keys[i]);
		free(prefixes[i]);
	}
	free(keys);
	free(prefixes);
}

static void
test_scopes_known(void)
{
	CHECK(apikey_scope_known("mail.send") && apikey_scope_known("stats.read") &&
		  apikey_scope_known("suppressions.read") &&
		  apikey_scope_known("suppressions.write") && apikey_scope_known("all"),
	      "the five scope names are known");
	CHECK(!apikey_scope_known("mail") && !apikey_scope_known("mail.send ") &&
		  !apikey_scope_known("") && !apikey_scope_known(NULL) &&
		  !apikey_scope_known("ALL"),
	      "other names are not");
}

struct key {
	char key[APIKEY_LEN + 1];
	char prefix[APIKEY_PREFIX_LEN + 1];
	unsigned char hash[APIKEY_HASH_LEN];
	char auth[APIKEY_LEN + 32];
};

static void
make_key(struct key *k)
{
	if (apikey_generate(k->key, sizeof(k->key), k->prefix, k->hash) != 0)
		abort();
	snprintf(k->auth, sizeof(k->auth), "Bearer %s", k->key);
}

static const char *
result_name(enum apikey_result r)
{
	switch (r) {
	case APIKEY_OK: return "OK";
	case APIKEY_MISSING: return "MISSING";
	case APIKEY_INVALID: return "INVALID";
	case APIKEY_FORBIDDEN: return "FORBIDDEN";
	case APIKEY_UNAVAILABLE: return "UNAVAILABLE";
	}
	return "?";
}

static void
expect(struct apikeys *ks, const char *auth, const char *scope, enum apikey_result want,
       long want_id, const char *what)
{
	long id = -7;
	enum apikey_result got = apikeys_check(ks, auth, scope, &id);

	if (!CHECK(got == want, "%s: %s", what, result_name(want)))
		unit_diag("got %s", result_name(got));
	if (want == APIKEY_OK || want == APIKEY_FORBIDDEN) {
		if (!CHECK(id == want_id, "%s: key id %ld", what, want_id))
			unit_diag("got id %ld", id);
	} else if (!CHECK(id == -7, "%s: key id untouched", what)) {
		unit_diag("got id %ld", id);
	}
}

static void
test_check(void)
{
	struct key send, all, stats, revoked, other;
	struct apikey_row rows[3];
	struct apikeys *ks;
	char buf[256];

	make_key(&send);
	make_key(&all);
	make_key(&stats);
	make_key(&revoked); /* never in the snapshot: what a revoked key looks like */
	make_key(&other);

	rows[0] = (struct apikey_row){.id = 12, .prefix = send.prefix, .scopes = "mail.send"};
	memcpy(rows[0].hash, send.hash, APIKEY_HASH_LEN);
	rows[1] = (struct apikey_row){.id = 13, .prefix = all.prefix, .scopes = "all"};
	memcpy(rows[1].hash, all.hash, APIKEY_HASH_LEN);
	rows[2] = (struct apikey_row){
	    .id = 14, .prefix = stats.prefix, .scopes = "stats.read,suppressions.read,future.x"};
	memcpy(rows[2].hash, stats.hash, APIKEY_HASH_LEN);

	{
		struct apikey_row bad = rows[0];

		bad.prefix = "ABCDEFGH";
		CHECK(apikeys_new_static(&bad, 1) == NULL, "a row with a bad prefix is refused");
	}
	if ((ks = apikeys_new_static(rows, 3)) == NULL) {
		CHECK(0, "apikeys_new_static");
		return;
	}

	expect(ks, send.auth, "mail.send", APIKEY_OK, 12, "key with mail.send asks mail.send");
	expect(ks, send.auth, NULL, APIKEY_OK, 12, "any valid key when no scope is asked");
	expect(ks, send.auth, "stats.read", APIKEY_FORBIDDEN, 12, "mail.send key asks stats.read");
	expect(ks, stats.auth, "stats.read", APIKEY_OK, 14, "second scope of a list");
	expect(ks, stats.auth, "suppressions.read", APIKEY_OK, 14, "third scope of a list");
	expect(ks, stats.auth, "mail.send", APIKEY_FORBIDDEN, 14, "scope not in the list");
	expect(ks, stats.auth, "suppressions.write", APIKEY_FORBIDDEN, 14,
	       "suppressions.read does not grant suppressions.write");
	expect(ks, stats.auth, "future.x", APIKEY_FORBIDDEN, 14,
	       "an unknown scope name in the row grants nothing");
	expect(ks, all.auth, "mail.send", APIKEY_OK, 13, "all grants mail.send");
	expect(ks, all.auth, "suppressions.write", APIKEY_OK, 13, "all grants suppressions.write");
	expect(ks, all.auth, "stats.read", APIKEY_OK, 13, "all grants stats.read");

	expect(ks, NULL, "mail.send", APIKEY_MISSING, 0, "no header");
	expect(ks, "", "mail.send", APIKEY_MISSING, 0, "empty header");
	expect(ks, revoked.auth, "mail.send", APIKEY_INVALID, 0, "revoked (unknown) prefix");
	/* the right prefix with another key's secret */
	memcpy(other.key + 3, send.prefix, APIKEY_PREFIX_LEN);
	snprintf(buf, sizeof(buf), "Bearer %s", other.key);
	expect(ks, buf, "mail.send", APIKEY_INVALID, 0, "known prefix, wrong secret");
	/* one character of the secret changed */
	snprintf(buf, sizeof(buf), "Bearer %s", send.key);
	buf[sizeof("Bearer ") - 1 + 30] = buf[sizeof("Bearer ") - 1 + 30] == 'A' ? 'B' : 'A';
	expect(ks, buf, "mail.send", APIKEY_INVALID, 0, "one secret character off");
	expect(ks, "garbage", "mail.send", APIKEY_INVALID, 0, "garbage");
	expect(ks, "Basic dXNlcjpwYXNz", "mail.send", APIKEY_INVALID, 0, "Basic scheme");
	snprintf(buf, sizeof(buf), "Basic %s", send.key);
	expect(ks, buf, "mail.send", APIKEY_INVALID, 0, "Basic scheme with a good key");
	expect(ks, "Bearer", "mail.send", APIKEY_INVALID, 0, "Bearer alone");
	expect(ks, "Bearer ", "mail.send", APIKEY_INVALID, 0, "Bearer and a space");
	snprintf(buf, sizeof(buf), "bearer %s", send.key);
	expect(ks, buf, "mail.send", APIKEY_OK, 12, "lower-case bearer");
	snprintf(buf, sizeof(buf), "BEARER %s", send.key);
	expect(ks, buf, "mail.send", APIKEY_OK, 12, "upper-case BEARER");
	snprintf(buf, sizeof(buf), "Bearer  %s", send.key);
	expect(ks, buf, "mail.send", APIKEY_INVALID, 0, "two spaces after Bearer");
	snprintf(buf, sizeof(buf), " Bearer %s", send.key);
	expect(ks, buf, "mail.send", APIKEY_INVALID, 0, "leading space");
	snprintf(buf, sizeof(buf), "Bearer %s ", send.key);
	expect(ks, buf, "mail.send", APIKEY_INVALID, 0, "trailing space");
	snprintf(buf, sizeof(buf), "Bearer\t%s", send.key);
	expect(ks, buf, "mail.send", APIKEY_INVALID, 0, "tab after Bearer");
	snprintf(buf, sizeof(buf), "Bearer %sx", send.key);
	expect(ks, buf, "mail.send", APIKEY_INVALID, 0, "one character too many");
	snprintf(buf, sizeof(buf), "Bearer %.*s", APIKEY_LEN - 1, send.key);
	expect(ks, buf, "mail.send", APIKEY_INVALID, 0, "one character short");
	snprintf(buf, sizeof(buf), "Bearer %s", send.key);
	buf[sizeof("Bearer ") - 1 + 3] = 'A';
	expect(ks, buf, "mail.send", APIKEY_INVALID, 0, "prefix in upper case");
	snprintf(buf, sizeof(buf), "Bearer %s", send.key);
	buf[sizeof("Bearer ") - 1 + 40] = '=';
	expect(ks, buf, "mail.send", APIKEY_INVALID, 0, "a character outside base64url");
	snprintf(buf, sizeof(buf), "Bearer %s", send.key + 3);
	expect(ks, buf, "mail.send", APIKEY_INVALID, 0, "without mp_");
	apikeys_destroy(ks);

	/* an empty snapshot is loaded: every key is invalid, none unavailable */
	if ((ks = apikeys_new_static(NULL, 0)) == NULL) {
		CHECK(0, "apikeys_new_static with no rows");
		return;
	}
	expect(ks, send.auth, "mail.send", APIKEY_INVALID, 0, "empty snapshot");
	apikeys_destroy(ks);
	apikeys_destroy(NULL);
}

/* PostgreSQL refusing the connection: UNAVAILABLE, and destroy does not wait an hour. */
static void
test_unavailable(void)
{
	struct timespec t0, t1;
	struct apikeys *ks;
	struct key k;
	char err[256] = "";
	long ms;

	make_key(&k);
	ks = apikeys_new("host=127.0.0.1 port=1 dbname=mailpipe connect_timeout=2", 3600, err,
			 sizeof(err));
	if (!CHECK(ks != NULL, "apikeys_new survives an unreachable database")) {
		unit_diag("%s", err);
		return;
	}
	expect(ks, k.auth, "mail.send", APIKEY_UNAVAILABLE, 0, "never loaded");
	expect(ks, NULL, "mail.send", APIKEY_MISSING, 0, "never loaded, no header");
	expect(ks, "Basic x", "mail.send", APIKEY_INVALID, 0, "never loaded, Basic scheme");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	apikeys_destroy(ks);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000L + (t1.tv_nsec - t0.tv_nsec) / 1000000L;
	if (!CHECK(ms < 500, "destroy stops the refresher at once (refresh every hour)"))
		unit_diag("took %ld ms", ms);
}

int
main(void)
{
	test_generate();
	test_scopes_known();
	test_check();
	test_unavailable();
	return unit_done();
}
