/*
 * fuzz_sig: the signed Event Webhook's headers (lib/sig.c) and the base64 under them
 * (lib/b64.c).  The first input byte picks what the rest is:
 *
 *   0  "<signature header>\n<timestamp header>\n<body>": sig_verify() with a fixed test
 *      public key (never matches: this is the header decoding and DER parsing);
 *   1  "<timestamp header>\n<body>": signed here with a key made at start-up, then
 *      sig_verify() must say OK (or expired, or a bad timestamp, exactly when the timestamp
 *      calls for it), and MISMATCH once one bit of the body is flipped;
 *   2  a public key as pasted into webhook.public_key: sig_key_new();
 *   3  base64 text for b64_decode(): what it accepts must encode back to the same text
 *      (padding aside), and the input's bytes, encoded, must decode back to themselves.
 */
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "b64.h"
#include "fuzz.h"
#include "sig.h"

/* A P-256 SubjectPublicKeyInfo made for this test only; its private key was thrown away. */
#define TEST_PUBLIC_KEY                                                                            \
	"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEeiiHy4zbQoQbEaYpISuKwk8IYhpA1pmjaImvXRIq508PS2t161LF" \
	"7/CRKB32I/lhpiJOsqixyh8iYkj86lVmfw=="
#define NOW 1700000000L
#define MAX_AGE 300L

static struct sig_key *fixed_key;  /* TEST_PUBLIC_KEY */
static EVP_PKEY *signer;           /* made at start-up */
static struct sig_key *signer_key; /* its public half, through sig_key_new() */

static __attribute__((noreturn)) void
die(const char *what)
{
	fprintf(stderr, "fuzz_sig: setup: %s failed\n", what);
	exit(1);
}

/* Standard base64 of len bytes, padded; the caller frees. */
static char *
encode(const unsigned char *in, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);

	if (out == NULL)
		die("malloc");
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return out;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	unsigned char *der = NULL;
	char err[256], *b64;
	int len;

	(void)argc;
	(void)argv;
	if ((fixed_key = sig_key_new(TEST_PUBLIC_KEY, err, sizeof(err))) == NULL)
		die(err);
	if ((signer = EVP_EC_gen("P-256")) == NULL)
		die("EVP_EC_gen");
	if ((len = i2d_PUBKEY(signer, &der)) <= 0)
		die("i2d_PUBKEY");
	b64 = encode(der, (size_t)len);
	OPENSSL_free(der);
	if ((signer_key = sig_key_new(b64, err, sizeof(err))) == NULL)
		die(err);
	free(b64);
	return 0;
}

/* A new NUL-terminated copy of len bytes (a header as FastCGI hands it over). */
static char *
dup_text(const uint8_t *p, size_t len)
{
	char *s = malloc(len + 1);

	if (s == NULL)
		die("malloc");
	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

/* Splits [*p, end) at the next '\n': returns the text before it, moves *p past it. */
static char *
take_line(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
	const uint8_t *stop = nl ? nl : end;
	char *s = dup_text(*p, (size_t)(stop - *p));

	*p = nl ? nl + 1 : end;
	return s;
}

/* A new copy of the body with room for extra bytes (none: ASan sees a read past its end). */
static unsigned char *
dup_body(const uint8_t *p, size_t len, size_t extra)
{
	unsigned char *b = malloc(len + extra ? len + extra : 1);

	if (b == NULL)
		die("malloc");
	if (len)
		memcpy(b, p, len);
	return b;
}

static void
verify_fixed(const uint8_t *p, const uint8_t *end)
{
	char *sig = take_line(&p, end), *ts = take_line(&p, end), err[256] = "";
	size_t len = (size_t)(end - p);
	unsigned char *body = dup_body(p, len, 0);
	enum sig_status st =
	    sig_verify(fixed_key, sig, ts, body, len, MAX_AGE, NOW, err, sizeof(err));

	FUZZ_CHECK(st != SIG_OK && st != SIG_EXPIRED, "a signature nobody made verified");
	FUZZ_CHECK(err[0] != '\0', "refused without a reason");
	free(body);
	free(ts);
	free(sig);
}

/* What sig_verify() must answer for a correct signature over timestamp ts. */
static enum sig_status
expected_status(const char *ts)
{
	size_t n = strlen(ts);
	long v = 0;

	if (n == 0)
		return SIG_MISSING;
	if (n > 15 || strspn(ts, "0123456789") != n)
		return SIG_BAD_ENCODING;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (ts[i] - '0');
	return v < NOW - MAX_AGE ? SIG_EXPIRED : SIG_OK;
}

/* Signs ts + body with signer; returns the base64 DER signature (caller frees). */
static char *
sign(const char *ts, const unsigned char *body, size_t len)
{
	unsigned char der[80];
	size_t derlen = sizeof(der);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, signer) != 1 ||
	    EVP_DigestSignUpdate(ctx, ts, strlen(ts)) != 1 ||
	    EVP_DigestSignUpdate(ctx, body, len) != 1 ||
	    EVP_DigestSignFinal(ctx, der, &derlen) != 1)
		die("signing");
	EVP_MD_CTX_free(ctx);
	return encode(der, derlen);
}

static void
verify_signed(const uint8_t *p, const uint8_t *end)
{
	char *ts = take_line(&p, end), *sig, err[256] = "";
	size_t len = (size_t)(end - p);
	unsigned char *body = dup_body(p, len, 1);
	enum sig_status want = expected_status(ts), st;

	sig = sign(ts, body, len);
	st = sig_verify(signer_key, sig, ts, body, len, MAX_AGE, NOW, err, sizeof(err));
	FUZZ_CHECK(st == want, "status %d, expected %d (%s)", st, want, err);
	if (want == SIG_OK || want == SIG_EXPIRED) {
		/* One bit flipped (or one byte added to an empty body) must not verify. */
		if (len > 0)
			body[len / 2] ^= 0x01;
		else
			body[0] = 'x';
		st = sig_verify(signer_key, sig, ts, body, len ? len : 1, MAX_AGE, NOW, err,
				sizeof(err));
		FUZZ_CHECK(st == SIG_MISMATCH, "a changed body gave status %d", st);
	}
	free(sig);
	free(body);
	free(ts);
}

static void
parse_key(const uint8_t *p, const uint8_t *end)
{
	char *text = dup_text(p, (size_t)(end - p)), err[256] = "";
	struct sig_key *key = sig_key_new(text, err, sizeof(err));

	FUZZ_CHECK(key != NULL || err[0] != '\0', "refused without a reason");
	sig_key_destroy(key);
	free(text);
}

/* s[0..n) without its trailing '=' characters. */
static size_t
unpadded(const char *s, size_t n)
{
	while (n > 0 && s[n - 1] == '=')
		n--;
	return n;
}

static void
b64_round_trip(const uint8_t *p, const uint8_t *end)
{
	size_t len = (size_t)(end - p), outlen = 0, back;
	unsigned char *out = malloc(B64_DECODED_MAX(len) + 1);
	char *again;

	if (out == NULL)
		die("malloc");
	if (b64_decode((const char *)p, len, out, &outlen) == 0) {
		FUZZ_CHECK(outlen <= B64_DECODED_MAX(len), "wrote %zu bytes for %zu", outlen, len);
		again = encode(out, outlen);
		FUZZ_CHECK(unpadded(again, strlen(again)) == unpadded((const char *)p, len) &&
			       memcmp(again, p, unpadded(again, strlen(again))) == 0,
			   "accepted text that is not the canonical encoding of what it gave");
		free(again);
	}
	free(out);

	/* The other way: any bytes, encoded, decode back to themselves. */
	again = encode(p, len);
	back = strlen(again);
	out = malloc(B64_DECODED_MAX(back) + 1);
	if (out == NULL)
		die("malloc");
	FUZZ_CHECK(b64_decode(again, back, out, &outlen) == 0, "refused its own encoding");
	FUZZ_CHECK(outlen == len && (len == 0 || memcmp(out, p, len) == 0),
		   "decoded to other bytes");
	free(out);
	free(again);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *end = data + size;

	if (size == 0)
		return 0;
	switch (data[0] % 4) {
	case 0: verify_fixed(data + 1, end); break;
	case 1: verify_signed(data + 1, end); break;
	case 2: parse_key(data + 1, end); break;
	default: b64_round_trip(data + 1, end); break;
	}
	return 0;
}
