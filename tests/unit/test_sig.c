/*
 * test_sig: SendGrid Event Webhook signature verification (lib/sig.c).
 *
 * Keys are generated here with OpenSSL and bodies signed the way SendGrid signs them:
 * ECDSA P-256 / SHA-256 over the timestamp header's bytes followed by the raw body, the
 * DER signature and the DER SubjectPublicKeyInfo both in standard base64.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/x509.h>

#include "sig.h"
#include "unit.h"

#define NOW 1700000000L
#define TS "1700000000"

static const char body[] = "[{\"email\":\"a@example.com\",\"event\":\"delivered\",\"sg_event_id\":"
			   "\"ZXZlbnQtMQ\",\"timestamp\":1700000000,\"url\":\"https:\\/\\/x\"}]";

static __attribute__((noreturn)) void
die(const char *what)
{
	fprintf(stderr, "test_sig: %s failed\n", what);
	printf("not ok - setup: %s failed\n", what);
	exit(1);
}

static char *
b64_encode(const unsigned char *der, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);

	if (out == NULL)
		die("malloc");
	EVP_EncodeBlock((unsigned char *)out, der, (int)len);
	return out;
}

/* Returns a new key for a named group ("P-256", "P-384", "secp256k1"...). */
static EVP_PKEY *
gen_ec(const char *curve)
{
	EVP_PKEY *pkey = EVP_EC_gen(curve);

	if (pkey == NULL)
		die("EVP_EC_gen");
	return pkey;
}

/* Returns the base64 DER SubjectPublicKeyInfo of pkey (caller frees). */
static char *
pub_b64(EVP_PKEY *pkey)
{
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(pkey, &der);
	char *out;

	if (len <= 0)
		die("i2d_PUBKEY");
	out = b64_encode(der, (size_t)len);
	OPENSSL_free(der);
	return out;
}

/* Signs ts + data; returns the DER signature in *der (caller frees) and its length. */
static size_t
sign_der(EVP_PKEY *pkey, const char *ts, const void *data, size_t len, unsigned char **der)
{
	size_t tslen = strlen(ts), siglen = 0;
	unsigned char *msg = malloc(tslen + len + 1);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (msg == NULL || ctx == NULL)
		die("malloc");
	memcpy(msg, ts, tslen);
	memcpy(msg + tslen, data, len);
	if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey) != 1 ||
	    EVP_DigestSign(ctx, NULL, &siglen, msg, tslen + len) != 1 ||
	    (*der = malloc(siglen)) == NULL ||
	    EVP_DigestSign(ctx, *der, &siglen, msg, tslen + len) != 1)
		die("EVP_DigestSign");
	EVP_MD_CTX_free(ctx);
	free(msg);
	return siglen;
}

/* Signs ts + data; returns the base64 DER signature (caller frees). */
static char *
sign_b64(EVP_PKEY *pkey, const char *ts, const void *data, size_t len)
{
	unsigned char *der = NULL;
	size_t n = sign_der(pkey, ts, data, len, &der);
	char *out = b64_encode(der, n);

	free(der);
	return out;
}

/*
 * Re-encodes a DER signature with s replaced by n - s when want_high says s should be
 * above n/2 and it is not, or below and it is not.  Sets *was_high to whether the result's
 * s is above n/2.  Returns base64 (caller frees).
 */
static char *
with_s_half(const unsigned char *der, size_t len, int want_high, int *is_high)
{
	const unsigned char *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
	EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	BIGNUM *half = BN_new(), *r2 = NULL, *s2 = BN_new();
	const BIGNUM *r, *s, *order;
	unsigned char *out = NULL;
	char *b64;
	int outlen;

	if (sig == NULL || group == NULL || half == NULL || s2 == NULL)
		die("ECDSA_SIG parse");
	order = EC_GROUP_get0_order(group);
	ECDSA_SIG_get0(sig, &r, &s);
	if (BN_rshift1(half, order) != 1)
		die("BN_rshift1");
	if ((BN_cmp(s, half) > 0) != want_high) {
		if (BN_sub(s2, order, s) != 1)
			die("BN_sub");
	} else if (BN_copy(s2, s) == NULL) {
		die("BN_copy");
	}
	*is_high = BN_cmp(s2, half) > 0;
	if ((r2 = BN_dup(r)) == NULL || ECDSA_SIG_set0(sig, r2, s2) != 1)
		die("ECDSA_SIG_set0");
	s2 = NULL;
	if ((outlen = i2d_ECDSA_SIG(sig, &out)) <= 0)
		die("i2d_ECDSA_SIG");
	b64 = b64_encode(out, (size_t)outlen);
	OPENSSL_free(out);
	ECDSA_SIG_free(sig);
	EC_GROUP_free(group);
	BN_free(half);
	return b64;
}

static const char *
status_name(enum sig_status st)
{
	switch (st) {
	case SIG_OK: return "SIG_OK";
	case SIG_MISSING: return "SIG_MISSING";
	case SIG_BAD_ENCODING: return "SIG_BAD_ENCODING";
	case SIG_MISMATCH: return "SIG_MISMATCH";
	case SIG_EXPIRED: return "SIG_EXPIRED";
	}
	return "(unknown)";
}

/*
 * One test point: sig_verify() gives want, and when want is not SIG_OK fills err with a
 * message containing err_has (if not NULL).
 */
static void
expect(const struct sig_key *key, const char *sig, const char *ts, const void *data, size_t len,
       long max_age, enum sig_status want, const char *err_has, const char *name)
{
	char err[256] = "";
	enum sig_status got = sig_verify(key, sig, ts, data, len, max_age, NOW, err, sizeof(err));
	int ok = got == want;

	if (ok && want != SIG_OK)
		ok = err[0] != '\0' && (err_has == NULL || strstr(err, err_has) != NULL);
	if (!CHECK(ok, "%s -> %s", name, status_name(want)))
		unit_diag("got %s, err \"%s\"%s%s", status_name(got), err,
			  err_has ? ", expected err containing " : "", err_has ? err_has : "");
}

/* Inserts a newline every 64 characters plus spaces and tabs, as pasted from a page. */
static char *
mangle_whitespace(const char *b64)
{
	size_t len = strlen(b64), n = 0;
	char *out = malloc(2 * len + 16);

	if (out == NULL)
		die("malloc");
	n += (size_t)sprintf(out, "  \n");
	for (size_t i = 0; i < len; i++) {
		if (i > 0 && i % 64 == 0)
			out[n++] = '\n';
		else if (i > 0 && i % 20 == 0)
			out[n++] = (i % 40) ? ' ' : '\t';
		out[n++] = b64[i];
	}
	n += (size_t)sprintf(out + n, "\r\n ");
	out[n] = '\0';
	return out;
}

static void
key_refused(const char *b64, const char *err_has, const char *name)
{
	char err[256] = "";
	struct sig_key *key = sig_key_new(b64, err, sizeof(err));

	if (!CHECK(key == NULL && strstr(err, err_has) != NULL, "sig_key_new refuses %s", name))
		unit_diag("got %s, err \"%s\", expected err containing \"%s\"",
			  key ? "a key" : "NULL", err, err_has);
	sig_key_destroy(key);
}

static void
test_keys(EVP_PKEY *pkey, const char *pub)
{
	char err[256] = "", *spaced = mangle_whitespace(pub), *s;
	struct sig_key *key;
	EVP_PKEY *other;
	unsigned char garbage[91];

	/* A key pasted with line breaks and spaces still verifies. */
	key = sig_key_new(spaced, err, sizeof(err));
	if (!CHECK(key != NULL, "sig_key_new accepts newlines, spaces and tabs in the key"))
		unit_diag("err \"%s\"", err);
	if (key != NULL) {
		s = sign_b64(pkey, TS, body, strlen(body));
		expect(key, s, TS, body, strlen(body), 0, SIG_OK, NULL,
		       "key with white space verifies a good signature");
		free(s);
	}
	sig_key_destroy(key);
	free(spaced);

	key_refused("", "empty", "an empty key");
	key_refused(" \n\t ", "empty", "a key of white space only");
	key_refused("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE!!!", "base64",
		    "a key that is not base64");
	memset(garbage, 0x42, sizeof(garbage));
	s = b64_encode(garbage, sizeof(garbage));
	key_refused(s, "SubjectPublicKeyInfo", "base64 of 91 bytes that are not DER");
	free(s);

	/* Valid DER followed by extra bytes. */
	{
		unsigned char *der = NULL, *ext = NULL;
		int len = i2d_PUBKEY(pkey, &der);

		if (len <= 0 || (ext = malloc((size_t)len + 2)) == NULL)
			die("i2d_PUBKEY");
		memcpy(ext, der, (size_t)len);
		ext[len] = 0;
		ext[len + 1] = 0;
		s = b64_encode(ext, (size_t)len + 2);
		key_refused(s, "SubjectPublicKeyInfo", "a DER key followed by trailing bytes");
		free(s);
		free(ext);
		OPENSSL_free(der);
	}

	other = gen_ec("P-384");
	s = pub_b64(other);
	key_refused(s, "P-256", "a P-384 key");
	free(s);
	EVP_PKEY_free(other);

	other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	if (other == NULL)
		die("RSA keygen");
	s = pub_b64(other);
	key_refused(s, "P-256", "an RSA key");
	free(s);
	EVP_PKEY_free(other);

	other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (other == NULL)
		die("Ed25519 keygen");
	s = pub_b64(other);
	key_refused(s, "P-256", "an Ed25519 key");
	free(s);
	EVP_PKEY_free(other);

	/* 256 bits but not NIST P-256: SendGrid's key is always prime256v1. */
	other = gen_ec("secp256k1");
	s = pub_b64(other);
	key_refused(s, "P-256", "a secp256k1 key (256 bits, wrong curve)");
	free(s);
	EVP_PKEY_free(other);
}

int
main(void)
{
	char err[256] = "", *pub, *good, *s;
	EVP_PKEY *pkey, *other;
	struct sig_key *key;
	size_t blen = strlen(body);

	pkey = gen_ec("P-256");
	pub = pub_b64(pkey);
	CHECK(strlen(pub) == 124,
	      "a P-256 SubjectPublicKeyInfo is 91 bytes, 124 base64 characters");
	key = sig_key_new(pub, err, sizeof(err));
	if (!CHECK(key != NULL, "sig_key_new accepts a P-256 SubjectPublicKeyInfo")) {
		unit_diag("err \"%s\"", err);
		return unit_done();
	}
	good = sign_b64(pkey, TS, body, blen);

	expect(key, good, TS, body, blen, 0, SIG_OK, NULL, "valid signature");
	expect(key, good, TS, body, blen, 0, SIG_OK, NULL, "valid signature, checked twice");

	/* Tampering. */
	{
		char *t = strdup(body);

		if (t == NULL)
			die("strdup");
		t[blen - 3] ^= 1;
		expect(key, good, TS, t, blen, 0, SIG_MISMATCH, "does not match",
		       "one bit of the body flipped");
		free(t);
	}
	expect(key, good, TS, body, blen - 1, 0, SIG_MISMATCH, NULL, "body truncated by one byte");
	expect(key, good, "1700000001", body, blen, 0, SIG_MISMATCH, NULL, "timestamp changed");
	expect(key, good, "01700000000", body, blen, 0, SIG_MISMATCH, NULL,
	       "timestamp with a leading zero (same number, other bytes)");
	other = gen_ec("P-256");
	s = sign_b64(other, TS, body, blen);
	expect(key, s, TS, body, blen, 0, SIG_MISMATCH, "does not match", "signed by another key");
	free(s);
	EVP_PKEY_free(other);

	/* Missing headers. */
	expect(key, NULL, TS, body, blen, 0, SIG_MISSING, "Signature", "signature NULL");
	expect(key, "", TS, body, blen, 0, SIG_MISSING, "Signature", "signature empty");
	expect(key, good, NULL, body, blen, 0, SIG_MISSING, "Timestamp", "timestamp NULL");
	expect(key, good, "", body, blen, 0, SIG_MISSING, "Timestamp", "timestamp empty");
	expect(key, NULL, NULL, body, blen, 0, SIG_MISSING, NULL, "both NULL");

	/* Encodings. */
	expect(key, "not base64 at all!", TS, body, blen, 0, SIG_BAD_ENCODING, "Signature",
	       "signature not base64");
	{
		char *nl = malloc(strlen(good) + 2);

		if (nl == NULL)
			die("malloc");
		sprintf(nl, "%s\n", good);
		expect(key, nl, TS, body, blen, 0, SIG_BAD_ENCODING, NULL,
		       "signature with a trailing newline");
		free(nl);
	}
	{
		unsigned char garbage[70];

		for (size_t i = 0; i < sizeof(garbage); i++)
			garbage[i] = (unsigned char)(i * 37 + 11);
		s = b64_encode(garbage, sizeof(garbage));
		expect(key, s, TS, body, blen, 0, SIG_BAD_ENCODING, "Signature",
		       "base64 of 70 bytes that are not DER");
		free(s);
		s = b64_encode(garbage, 4);
		expect(key, s, TS, body, blen, 0, SIG_BAD_ENCODING, NULL,
		       "base64 of 4 bytes, too short for DER");
		free(s);
	}
	{
		unsigned char *der = NULL, *ext = NULL;
		size_t n = sign_der(pkey, TS, body, blen, &der);

		if ((ext = malloc(n + 1)) == NULL)
			die("malloc");
		memcpy(ext, der, n);
		ext[n] = 0;
		s = b64_encode(ext, n + 1);
		expect(key, s, TS, body, blen, 0, SIG_BAD_ENCODING, NULL,
		       "valid DER signature followed by one extra byte");
		free(s);
		free(ext);
		free(der);
	}
	{
		char big[200];

		memset(big, 'A', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		expect(key, big, TS, body, blen, 0, SIG_BAD_ENCODING, NULL,
		       "199-character signature");
	}

	/* The timestamp must be decimal unix seconds, checked before the signature. */
	{
		static const char *const bad_ts[] = {
		    "17000000a0",   "-1700000000", " 1700000000", "1700000000 ",
		    "1700000000.5", "0x6553f100",  "+1700000000", "1234567890123456"};

		for (size_t i = 0; i < sizeof(bad_ts) / sizeof(bad_ts[0]); i++) {
			char name[64];

			s = sign_b64(pkey, bad_ts[i], body, blen);
			snprintf(name, sizeof(name), "timestamp \"%s\" (correctly signed)",
				 bad_ts[i]);
			expect(key, s, bad_ts[i], body, blen, 0, SIG_BAD_ENCODING, "Timestamp",
			       name);
			free(s);
		}
	}

	/* The raw body, byte for byte: a trailing CRLF is part of what was signed. */
	{
		char crlf[sizeof(body) + 2];

		snprintf(crlf, sizeof(crlf), "%s\r\n", body);
		s = sign_b64(pkey, TS, crlf, blen + 2);
		expect(key, s, TS, crlf, blen + 2, 0, SIG_OK, NULL,
		       "body with trailing CRLF, signed with it");
		expect(key, s, TS, body, blen, 0, SIG_MISMATCH, NULL,
		       "same signature, body without the CRLF");
		expect(key, good, TS, crlf, blen + 2, 0, SIG_MISMATCH, NULL,
		       "signature without CRLF, body with it");
		free(s);
	}
	{
		static const char nul_body[] = "[{\"a\":\"x\"}]\0tail";
		size_t nlen = sizeof(nul_body) - 1;

		s = sign_b64(pkey, TS, nul_body, nlen);
		expect(key, s, TS, nul_body, nlen, 0, SIG_OK, NULL,
		       "body with a NUL byte: len counts, not strlen");
		expect(key, s, TS, nul_body, strlen(nul_body), 0, SIG_MISMATCH, NULL,
		       "same body cut at its NUL byte");
		free(s);
	}
	s = sign_b64(pkey, TS, "", 0);
	expect(key, s, TS, "", 0, 0, SIG_OK, NULL, "empty body, signed");
	free(s);

	/* High-S and low-S forms of the same signature both verify (SendGrid sends high-S). */
	{
		unsigned char *der = NULL;
		size_t n = sign_der(pkey, TS, body, blen, &der);
		int high = 0, low = 1;
		char *hs = with_s_half(der, n, 1, &high), *ls = with_s_half(der, n, 0, &low);

		CHECK(high && !low, "test setup: s' = n - s gives one high-S and one low-S form");
		expect(key, hs, TS, body, blen, 0, SIG_OK, NULL, "high-S signature (s > n/2)");
		expect(key, ls, TS, body, blen, 0, SIG_OK, NULL, "low-S signature (s <= n/2)");
		expect(key, hs, "1700000001", body, blen, 0, SIG_MISMATCH, NULL,
		       "high-S signature over another timestamp");
		free(hs);
		free(ls);
		free(der);
	}

	/* max_age: the age check is ours, and only applies to signatures that verify. */
	{
		const char *old = "1699990000"; /* NOW - 10000 */
		char *so = sign_b64(pkey, old, body, blen);

		expect(key, so, old, body, blen, 300, SIG_EXPIRED, "older than 300 seconds",
		       "10000 s old, max_age 300");
		expect(key, so, old, body, blen, 0, SIG_OK, NULL, "10000 s old, max_age 0 (off)");
		expect(key, so, old, body, blen, 10000, SIG_OK, NULL,
		       "10000 s old, max_age 10000 (boundary)");
		expect(key, so, old, body, blen, 9999, SIG_EXPIRED, NULL,
		       "10000 s old, max_age 9999");
		expect(key, so, old, body, blen, 90000, SIG_OK, NULL,
		       "10000 s old, max_age 90000 (SendGrid retries)");
		expect(key, good, TS, body, blen, 300, SIG_OK, NULL,
		       "current timestamp, max_age 300");
		expect(key, so, old, "tampered", 8, 300, SIG_MISMATCH, NULL,
		       "old timestamp and bad signature: mismatch, not expired");
		free(so);
	}

	test_keys(pkey, pub);

	sig_key_destroy(key);
	sig_key_destroy(NULL);
	free(good);
	free(pub);
	EVP_PKEY_free(pkey);
	return unit_done();
}
