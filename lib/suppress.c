/*
 * suppress: removing an address from the suppression lists; see suppress.h.
 */
#include "suppress.h"

#include <stdio.h>
#include <string.h>

#include <hiredis.h>

#include "qparams.h"

#define MEMBERS_MAX 8

const char suppress_delete_sql[] =
    "SELECT removed_email, removed_reason FROM mailpipe_suppression_delete($1::text, $2::text)";

const char *const suppress_lists[] = {"bounces", "blocks", "spam_reports", "unsubscribes"};
const size_t suppress_nlists = sizeof(suppress_lists) / sizeof(suppress_lists[0]);

int
suppress_list_known(const char *name)
{
	for (size_t i = 0; i < suppress_nlists; i++)
		if (strcmp(suppress_lists[i], name) == 0)
			return 1;
	return 0;
}

static int
lower_ascii(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

int
suppress_normalize(const char *email, char *out, size_t outlen)
{
	size_t i, len = strlen(email);

	if (len == 0 || len > SUPPRESS_EMAIL_MAX || len >= outlen || strchr(email, '@') == NULL)
		return -1;
	for (i = 0; i < len; i++) {
		if ((unsigned char)email[i] <= 0x20 || email[i] == 0x7f)
			return -1;
		out[i] = (char)lower_ascii((unsigned char)email[i]);
	}
	out[len] = '\0';
	return 0;
}

int
suppress_decode(const char *s, size_t len, char *out, size_t outlen)
{
	char buf[3 * SUPPRESS_EMAIL_MAX + 2];

	/* longer even when decoded: suppress_normalize would refuse it */
	if (len >= sizeof(buf) || qparams_decode(s, len, 0, buf) < 0)
		return -1;
	return suppress_normalize(buf, out, outlen);
}

size_t
suppress_members(const PGresult *res, const char *email, const char **members, size_t cap)
{
	size_t n = 0;

	if (cap == 0)
		return 0;
	members[n++] = email;
	for (int i = 0; res != NULL && i < PQntuples(res) && n < cap; i++) {
		const char *e = PQgetvalue(res, i, 0);
		int seen = 0;

		for (size_t k = 0; k < n && !seen; k++)
			seen = strcmp(members[k], e) == 0;
		if (!seen)
			members[n++] = e;
	}
	return n;
}

int
suppress_unmirror(struct rconn *rc, const char *prefix, const char *const *members, size_t n,
		  long long *removed)
{
	const char *argv[MEMBERS_MAX + 2];
	char key[256];
	redisReply *r;

	*removed = 0;
	if (n == 0 || n > MEMBERS_MAX)
		return -1;
	if ((size_t)snprintf(key, sizeof(key), "%ssuppressed", prefix) >= sizeof(key))
		return -1;
	argv[0] = "SREM";
	argv[1] = key;
	for (size_t i = 0; i < n; i++)
		argv[i + 2] = members[i];
	if ((r = rconn_command(rc, (int)n + 2, argv, NULL)) == NULL)
		return -1;
	*removed = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
	freeReplyObject(r);
	return 0;
}
