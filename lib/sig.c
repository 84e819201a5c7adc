/*
 * sig: ECDSA P-256 verification of the Event Webhook with OpenSSL's EVP interface; see
 * sig.h.  EVP_DigestVerify accepts high-S signatures, which real SendGrid signatures
 * include: do not normalise or reject them.
 */
#include "sig.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "b64.h"

struct sig_key {
	EVP_PKEY *pkey;
};

struct sig_key *
sig_key_new(const char *b64, char *err, size_t errlen)
{
	size_t len = strlen(b64), n = 0, derlen;
	char *clean = NULL;
	unsigned char *der = NULL;
	const unsigned char *p;
	struct sig_key *key = NULL;
	EVP_PKEY *pkey = NULL;

	if ((clean = malloc(len + 1)) == NULL || (der = malloc(B64_DECODED_MAX(len))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < len; i++)
		if (!isspace((unsigned char)b64[i]))
			clean[n++] = b64[i];
	if (n == 0) {
		snprintf(err, errlen, "public key is empty");
		goto out;
	}
	if (b64_decode(clean, n, der, &derlen) < 0) {
		snprintf(err, errlen, "public key is not valid base64");
		goto out;
	}
	p = der;
	pkey = d2i_PUBKEY(NULL, &p, (long)derlen);
	if (pkey == NULL || p != der + derlen) {
		snprintf(err, errlen, "public key is not a DER SubjectPublicKeyInfo");
		goto out;
	}
	char group[64] = "";
	size_t glen = 0;
	/* 256 bits is not enough: secp256k1 and brainpoolP256r1 are 256-bit curves too. */
	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC ||
	    EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen) != 1 ||
	    strcmp(group, "prime256v1") != 0) {
		snprintf(err, errlen, "public key is not an ECDSA P-256 key");
		goto out;
	}
	if ((key = malloc(sizeof(*key))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	key->pkey = pkey;
	pkey = NULL;
out:
	EVP_PKEY_free(pkey);
	free(der);
	free(clean);
	return key;
}

void
sig_key_destroy(struct sig_key *key)
{
	if (key == NULL)
		return;
	EVP_PKEY_free(key->pkey);
	free(key);
}

/* Decimal unix seconds, at most 15 digits; -1 if not. */
static long
parse_timestamp(const char *ts)
{
	long v = 0;
	size_t i;

	for (i = 0; ts[i]; i++) {
		if (!isdigit((unsigned char)ts[i]) || i >= 15)
			return -1;
		v = v * 10 + (ts[i] - '0');
	}
	return i ? v : -1;
}

enum sig_status
sig_verify(const struct sig_key *key, const char *sig_b64, const char *timestamp, const void *body,
	   size_t len, long max_age, long now, char *err, size_t errlen)
{
	enum sig_status st = SIG_BAD_ENCODING;
	unsigned char *der = NULL;
	EVP_MD_CTX *ctx = NULL;
	size_t siglen = 0, derlen;
	long ts;

	if (sig_b64 == NULL || *sig_b64 == '\0') {
		snprintf(err, errlen, "missing header 'X-Twilio-Email-Event-Webhook-Signature'");
		return SIG_MISSING;
	}
	if (timestamp == NULL || *timestamp == '\0') {
		snprintf(err, errlen, "missing header 'X-Twilio-Email-Event-Webhook-Timestamp'");
		return SIG_MISSING;
	}
	if ((ts = parse_timestamp(timestamp)) < 0) {
		snprintf(err, errlen,
			 "cannot parse header 'X-Twilio-Email-Event-Webhook-Timestamp': expected "
			 "unix seconds");
		return SIG_BAD_ENCODING;
	}
	siglen = strlen(sig_b64);
	/* A DER ECDSA P-256 signature is at most 72 bytes: 96 base64 characters. */
	if (siglen > 128 || (der = malloc(B64_DECODED_MAX(siglen))) == NULL ||
	    b64_decode(sig_b64, siglen, der, &derlen) < 0 || derlen < 8) {
		snprintf(err, errlen,
			 "cannot decode header 'X-Twilio-Email-Event-Webhook-Signature': expected "
			 "base64 DER signature");
		goto out;
	}
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key->pkey) != 1 ||
	    EVP_DigestVerifyUpdate(ctx, timestamp, strlen(timestamp)) != 1 ||
	    EVP_DigestVerifyUpdate(ctx, body, len) != 1) {
		snprintf(err, errlen, "signature check failed inside OpenSSL");
		st = SIG_MISMATCH;
		goto out;
	}
	switch (EVP_DigestVerifyFinal(ctx, der, derlen)) {
	case 1: break;
	case 0:
		snprintf(err, errlen, "signature does not match the body and timestamp");
		st = SIG_MISMATCH;
		goto out;
	default:
		/* OpenSSL could not parse the DER SEQUENCE{r, s}. */
		snprintf(err, errlen,
			 "cannot decode header 'X-Twilio-Email-Event-Webhook-Signature': not a DER "
			 "ECDSA signature");
		goto out;
	}
	if (max_age > 0 && ts < now - max_age) {
		snprintf(err, errlen, "signed timestamp is older than %ld seconds", max_age);
		st = SIG_EXPIRED;
		goto out;
	}
	st = SIG_OK;
out:
	EVP_MD_CTX_free(ctx);
	free(der);
	return st;
}
