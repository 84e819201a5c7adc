/*
 * msgid: ULID message ids; see msgid.h.
 */
#include "msgid.h"

#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

int
msgid_new(char out[MSGID_LEN + 1])
{
	unsigned char rnd[10];
	struct timespec ts;
	uint64_t ms;
	int i;

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -1;
	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	/* 10 characters of time (50 bits, the top 2 always zero). */
	for (i = 9; i >= 0; i--) {
		out[i] = alphabet[ms & 31];
		ms >>= 5;
	}
	/* 16 characters of randomness: 80 bits, 5 at a time. */
	for (i = 0; i < 16; i++) {
		int bit = i * 5, byte = bit / 8, shift = bit % 8;
		unsigned v = (unsigned)rnd[byte] << 8 | (byte + 1 < 10 ? rnd[byte + 1] : 0);

		out[10 + i] = alphabet[(v >> (11 - shift)) & 31];
	}
	out[MSGID_LEN] = '\0';
	return 0;
}

int
msgid_valid(const char *s)
{
	if (s == NULL || strlen(s) != MSGID_LEN)
		return 0;
	for (int i = 0; i < MSGID_LEN; i++)
		if (strchr(alphabet, s[i]) == NULL || s[i] == '\0')
			return 0;
	return 1;
}
