/*
 * sendgrid-sim_rand: the simulator's chance and its ids; see sendgrid-sim.h.
 *
 * Chance comes from a xorshift64* generator per thread, seeded from getrandom(); ids come
 * from getrandom() itself, so that two never collide however the threads interleave.
 */
#include "sendgrid-sim.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>

static _Thread_local uint64_t rng_state;

int64_t
sim_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Fills buf from the kernel; falls back on the clock only if getrandom() fails. */
static void
fill_random(void *buf, size_t len)
{
	unsigned char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = getrandom(p + got, len - got, 0);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	for (; got < len; got++) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		p[got] = (unsigned char)(ts.tv_nsec ^ (long)got * 131);
	}
}

uint64_t
sim_rand(void)
{
	if (rng_state == 0) {
		fill_random(&rng_state, sizeof(rng_state));
		if (rng_state == 0)
			rng_state = 0x9e3779b97f4a7c15ULL;
	}
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

long
sim_rand_range(long lo, long hi)
{
	if (hi <= lo)
		return lo;
	return lo + (long)(sim_rand() % (uint64_t)(hi - lo + 1));
}

int
sim_chance(long percent)
{
	return (long)(sim_rand() % 100) < percent;
}

static const char b64std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Encodes len bytes with alphabet; pads with '=' when pad is set.  Returns the length. */
static size_t
encode(const unsigned char *in, size_t len, const char *alphabet, int pad, char *out)
{
	size_t o = 0, i = 0;

	for (; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		out[o++] = alphabet[v >> 6 & 63];
		out[o++] = alphabet[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);

		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		if (i + 1 < len)
			out[o++] = alphabet[v >> 6 & 63];
		else if (pad)
			out[o++] = '=';
		if (pad)
			out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

void
sim_random_id(char out[SIM_ID_LEN + 1])
{
	unsigned char raw[16];

	fill_random(raw, sizeof(raw));
	encode(raw, sizeof(raw), b64url, 0, out);
}

void
sim_base64(const unsigned char *in, size_t len, char *out)
{
	encode(in, len, b64std, 1, out);
}
