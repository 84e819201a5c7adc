/*
 * test_suppress: address normalization, path decoding, list names and the Redis members of
 * a removal (lib/suppress.c).
 */
#include <stdio.h>
#include <string.h>

#include "suppress.h"
#include "unit.h"

static void
normalizes(const char *in, const char *want, const char *label)
{
	char out[SUPPRESS_EMAIL_MAX + 1] = "";
	int ok = suppress_normalize(in, out, sizeof(out)) == 0 && strcmp(out, want) == 0;

	if (!CHECK(ok, "%s", label))
		unit_diag("'%s' -> '%s', want '%s'", in, out, want);
}

static void
decodes(const char *in, const char *want, const char *label)
{
	char out[SUPPRESS_EMAIL_MAX + 1] = "";
	int ok = suppress_decode(in, strlen(in), out, sizeof(out)) == 0 && strcmp(out, want) == 0;

	if (!CHECK(ok, "%s", label))
		unit_diag("'%s' -> '%s', want '%s'", in, out, want);
}

static void
refuses(const char *in, const char *label)
{
	char out[SUPPRESS_EMAIL_MAX + 1];

	CHECK(suppress_normalize(in, out, sizeof(out)) < 0 &&
		  suppress_decode(in, strlen(in), out, sizeof(out)) < 0,
	      "%s", label);
}

int
main(void)
{
	char longest[SUPPRESS_EMAIL_MAX + 2], out[SUPPRESS_EMAIL_MAX + 1], small[8];
	const char *members[4];

	normalizes("Bob@Example.COM", "bob@example.com", "ASCII letters lower-cased");
	normalizes("\xc3\x89lise@example.com", "\xc3\x89lise@example.com",
		   "non-ASCII bytes kept as they are");
	decodes("Bob%40Example.com", "bob@example.com", "percent escape decoded");
	decodes("a%2Fb+c@example.com", "a/b+c@example.com", "'+' kept, '%2F' decoded");
	decodes("x%25y@example.com", "x%y@example.com", "decoded once");
	refuses("", "empty refused");
	refuses("nobody.example.com", "no '@' refused");
	refuses("a b@example.com", "space refused");
	refuses("a\tb@example.com", "control character refused");
	CHECK(suppress_decode("a%00b@x", 7, out, sizeof(out)) < 0, "decoded NUL refused");
	CHECK(suppress_decode("a%4@x", 5, out, sizeof(out)) < 0, "truncated escape refused");
	CHECK(suppress_decode("a%zz@x", 6, out, sizeof(out)) < 0, "bad escape refused");
	CHECK(suppress_decode("a%0a@x", 6, out, sizeof(out)) < 0, "decoded newline refused");
	CHECK(suppress_decode("a@x.com/rest", 7, out, sizeof(out)) == 0 &&
		  strcmp(out, "a@x.com") == 0,
	      "only len bytes decoded");

	memset(longest, 'a', sizeof(longest));
	longest[10] = '@';
	longest[SUPPRESS_EMAIL_MAX] = '\0';
	CHECK(suppress_normalize(longest, out, sizeof(out)) == 0, "%d bytes accepted",
	      SUPPRESS_EMAIL_MAX);
	longest[SUPPRESS_EMAIL_MAX] = 'a';
	longest[SUPPRESS_EMAIL_MAX + 1] = '\0';
	refuses(longest, "one byte over the maximum refused");
	CHECK(suppress_normalize("abcdefgh@x", small, sizeof(small)) < 0,
	      "an address longer than the buffer refused");

	CHECK(suppress_list_known("bounces") && suppress_list_known("blocks") &&
		  suppress_list_known("spam_reports") && suppress_list_known("unsubscribes"),
	      "SendGrid's four list names known");
	CHECK(!suppress_list_known("group_unsubscribes") && !suppress_list_known("") &&
		  !suppress_list_known("bounce"),
	      "other names unknown");

	CHECK(suppress_members(NULL, "a@x", members, 4) == 1 && strcmp(members[0], "a@x") == 0,
	      "no rows: the address alone");
	CHECK(suppress_members(NULL, "a@x", members, 0) == 0, "no room: nothing");
	CHECK(suppress_delete_sql[0] != '\0' && strstr(suppress_delete_sql, "$1") &&
		  strstr(suppress_delete_sql, "$2"),
	      "the delete statement takes its list and address as parameters");
	return unit_done();
}
