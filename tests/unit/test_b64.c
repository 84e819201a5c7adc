/*
 * test_b64: strict standard base64 decoding (lib/b64.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "b64.h"
#include "unit.h"

#define CANARY 0xA5

/*
 * Decodes len bytes of in into a buffer of exactly B64_DECODED_MAX(len) bytes followed by
 * canaries; fails the point if the decoder writes past the bound it advertises.
 */
static int
decode(const char *in, size_t len, unsigned char *out, size_t outcap, size_t *outlen)
{
	size_t max = B64_DECODED_MAX(len);
	unsigned char *buf = malloc(max + 16);
	int rc, overrun = 0;

	if (buf == NULL)
		abort();
	memset(buf, CANARY, max + 16);
	*outlen = (size_t)-1;
	rc = b64_decode(in, len, buf, outlen);
	for (size_t i = max; i < max + 16; i++)
		overrun |= buf[i] != CANARY;
	if (overrun) {
		unit_diag("b64_decode wrote past B64_DECODED_MAX(%zu) = %zu", len, max);
		rc = -2;
	}
	if (rc == 0 && *outlen > max) {
		unit_diag("outlen %zu exceeds B64_DECODED_MAX(%zu) = %zu", *outlen, len, max);
		rc = -2;
	}
	if (rc == 0)
		memcpy(out, buf, *outlen < outcap ? *outlen : outcap);
	free(buf);
	return rc;
}

/* Writes len bytes of s as a C-escaped string into buf. */
static const char *
escape(const void *s, size_t len, char *buf, size_t cap)
{
	const unsigned char *p = s;
	size_t n = 0;

	for (size_t i = 0; i < len && n + 5 < cap; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\' && p[i] != '"')
			buf[n++] = (char)p[i];
		else
			n += (size_t)snprintf(buf + n, cap - n, "\\x%02x", p[i]);
	}
	buf[n] = '\0';
	return buf;
}

static void
accepts(const char *in, const char *want, const char *name)
{
	unsigned char out[256];
	char e1[256], e2[1024];
	size_t outlen, wantlen = strlen(want);
	int rc = decode(in, strlen(in), out, sizeof(out), &outlen);

	if (!CHECK(rc == 0 && outlen == wantlen && memcmp(out, want, wantlen) == 0,
		   "%s: \"%s\" decodes to \"%s\"", name, in,
		   escape(want, wantlen, e1, sizeof(e1)))) {
		if (rc != 0)
			unit_diag("b64_decode returned %d", rc);
		else
			unit_diag("got %zu bytes: \"%s\"", outlen,
				  escape(out, outlen, e2, sizeof(e2)));
	}
}

static void
refuses_n(const char *in, size_t len, const char *name)
{
	unsigned char out[256];
	size_t outlen;
	int rc = decode(in, len, out, sizeof(out), &outlen);

	if (!CHECK(rc == -1, "%s: refused", name))
		unit_diag("b64_decode returned %d (outlen %zu)", rc, outlen);
}

static void
refuses(const char *in, const char *name)
{
	refuses_n(in, strlen(in), name);
}

/* Every byte value round-trips through OpenSSL's encoder, for each length 0..256. */
static void
round_trip(void)
{
	unsigned char raw[256], enc[4 * (sizeof(raw) / 3 + 1) + 1], out[256];
	size_t outlen;
	int bad_len = -1;

	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (unsigned char)(255 - i);
	for (int len = 0; len <= (int)sizeof(raw) && bad_len < 0; len++) {
		int n = EVP_EncodeBlock(enc, raw, len);

		if (decode((const char *)enc, (size_t)n, out, sizeof(out), &outlen) != 0 ||
		    outlen != (size_t)len || memcmp(out, raw, (size_t)len) != 0)
			bad_len = len;
	}
	if (!CHECK(bad_len < 0, "all 256 byte values round-trip, padded, lengths 0 to 256"))
		unit_diag("first failing length: %d", bad_len);

	/* The same without padding. */
	bad_len = -1;
	for (int len = 0; len <= (int)sizeof(raw) && bad_len < 0; len++) {
		int n = EVP_EncodeBlock(enc, raw, len);

		while (n > 0 && enc[n - 1] == '=')
			n--;
		if (decode((const char *)enc, (size_t)n, out, sizeof(out), &outlen) != 0 ||
		    outlen != (size_t)len || memcmp(out, raw, (size_t)len) != 0)
			bad_len = len;
	}
	if (!CHECK(bad_len < 0, "all 256 byte values round-trip, unpadded, lengths 0 to 256"))
		unit_diag("first failing length: %d", bad_len);
}

int
main(void)
{
	unsigned char out[64];
	size_t outlen;
	int rc;

	/* RFC 4648 section 10 test vectors. */
	accepts("", "", "rfc4648");
	accepts("Zg==", "f", "rfc4648");
	accepts("Zm8=", "fo", "rfc4648");
	accepts("Zm9v", "foo", "rfc4648");
	accepts("Zm9vYg==", "foob", "rfc4648");
	accepts("Zm9vYmE=", "fooba", "rfc4648");
	accepts("Zm9vYmFy", "foobar", "rfc4648");
	/* Both ends of the alphabet, '+' and '/'. */
	accepts("+/+/", "\xfb\xff\xbf", "alphabet");
	rc = decode("AAAA", 4, out, sizeof(out), &outlen);
	CHECK(rc == 0 && outlen == 3 && out[0] == 0 && out[1] == 0 && out[2] == 0,
	      "\"AAAA\" gives three zero bytes");
	accepts("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "alphabet");
	accepts("YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXowMTIzNDU2Nzg5",
		"abcdefghijklmnopqrstuvwxyz0123456789", "alphabet");

	/* Padding is optional... */
	accepts("Zg", "f", "unpadded");
	accepts("Zm8", "fo", "unpadded");
	accepts("Zm9vYg", "foob", "unpadded");
	accepts("Zm9vYmE", "fooba", "unpadded");
	/* ...but must be right when present. */
	refuses("Zg=", "one '=' where two are needed");
	refuses("Zm8==", "two '=' where one is needed");
	refuses("Zm9v=", "'=' after a complete group");
	refuses("Zm9v==", "'==' after a complete group");
	refuses("Zg===", "three '='");
	refuses("Zg====", "four '='");
	refuses("=", "'=' alone");
	refuses("==", "'==' alone");
	refuses("====", "'====' alone");
	refuses("Zg==Zm9v", "padding in the middle");
	refuses("Zm=v", "'=' inside a group");
	refuses("Z=g=", "'=' between data characters");

	/* Characters outside the standard alphabet. */
	refuses("Zm9v!A==", "'!'");
	refuses("Zm9-", "base64url '-'");
	refuses("Zm9_", "base64url '_'");
	refuses("Zm9v.A==", "'.'");
	refuses("Zm9v\xc3\xa9", "non-ASCII byte");
	refuses("Zm9v\x7f", "DEL");
	refuses_n("Zm9v\0AAA", 8, "embedded NUL inside len");

	/* White space of any kind is an error, not skipped. */
	refuses("Zm9v Zm9v", "space inside");
	refuses(" Zm9v", "leading space");
	refuses("Zm9v ", "trailing space");
	refuses("Zm9v\n", "trailing newline");
	refuses("Zm9v\r\n", "trailing CRLF");
	refuses("\tZm9v", "leading tab");
	refuses("Zm9vYg==\n", "newline after padding");
	refuses("Zm9vYg= =", "space inside padding");
	/* Lengths that are multiples of 4, valid if the white space were skipped or decoded. */
	refuses("Zm9vYg\r\n", "CRLF ending a group of four");
	refuses("Zm9v    ", "four trailing spaces");
	refuses("Zm9 vYmE", "space in a group of four");
	refuses("\tZm9vYmE", "tab in a group of four");
	refuses("Zm9v\n\n\n\n", "four newlines");

	/* Non-canonical encodings: leftover bits of the last group must be zero. */
	refuses("Zh==", "\"Zh==\": nonzero trailing bits (canonical \"Zg==\")");
	refuses("Zh", "\"Zh\": nonzero trailing bits, unpadded");
	refuses("Zm9=", "\"Zm9=\": nonzero trailing bits (canonical \"Zm8=\")");
	refuses("Zm9", "\"Zm9\": nonzero trailing bits, unpadded");
	refuses("Zm9vYmF=", "\"Zm9vYmF=\": nonzero trailing bits (canonical \"Zm9vYmE=\")");
	refuses("Zm9vYj==", "\"Zm9vYj==\": nonzero trailing bits");
	refuses("//==", "\"//==\": nonzero trailing bits");

	/* A final group of one character carries no whole byte. */
	refuses("Z", "len % 4 == 1: \"Z\"");
	refuses("Zm9vY", "len % 4 == 1: \"Zm9vY\"");
	refuses("Zm9vYmFyZ", "len % 4 == 1: \"Zm9vYmFyZ\"");
	refuses("A", "len % 4 == 1: \"A\" (zero bits)");
	refuses("Zm9vY=", "len % 4 == 1 plus '='");

	/* Only len bytes are read: a prefix decodes on its own. */
	rc = decode("Zm9vYmFy", 4, out, sizeof(out), &outlen);
	CHECK(rc == 0 && outlen == 3 && memcmp(out, "foo", 3) == 0,
	      "decodes only the first len characters");
	rc = decode("Zm9v!!!!", 4, out, sizeof(out), &outlen);
	CHECK(rc == 0 && outlen == 3 && memcmp(out, "foo", 3) == 0,
	      "ignores bytes after len, even invalid ones");
	rc = decode("Zm9vYg==", 0, out, sizeof(out), &outlen);
	CHECK(rc == 0 && outlen == 0, "len 0 decodes to nothing");

	round_trip();
	return unit_done();
}
