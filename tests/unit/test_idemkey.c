/*
 * test_idemkey: the pure parts of lib/idemkey.c: which Idempotency-Key values are taken,
 * and how a record found in PostgreSQL (body hash, message id) answers a request.
 */
#include <stdio.h>
#include <string.h>

#include "idemkey.h"
#include "msgid.h"
#include "unit.h"

#define HASH_A "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define HASH_B "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"

static void
test_valid(void)
{
	char longest[256], too_long[257];

	memset(longest, 'k', 255);
	longest[255] = '\0';
	memset(too_long, 'k', 256);
	too_long[256] = '\0';
	CHECK(idemkey_valid("order-1"), "a plain key is valid");
	CHECK(idemkey_valid("!~"), "printable ASCII edges are valid");
	CHECK(idemkey_valid(longest), "255 characters are valid");
	CHECK(!idemkey_valid(too_long), "256 characters are not");
	CHECK(!idemkey_valid(""), "an empty key is not valid");
	CHECK(!idemkey_valid(NULL), "no key is not valid");
	CHECK(!idemkey_valid("a b"), "a space is not valid");
	CHECK(!idemkey_valid("a\tb"), "a control character is not valid");
	CHECK(!idemkey_valid("caf\xc3\xa9"), "non-ASCII is not valid");
}

static void
test_same_body(void)
{
	char id[MSGID_LEN + 1];

	if (!CHECK(msgid_new(id) == 0, "a message id"))
		return;
	CHECK(idemkey_same_body(HASH_A, id, HASH_A) == 1, "the same hash is the same body");
	CHECK(idemkey_same_body(HASH_A, id, HASH_B) == 0, "another hash is another body");
	CHECK(idemkey_same_body(NULL, id, HASH_A) == -1, "no stored hash is unusable");
	CHECK(idemkey_same_body(HASH_A, NULL, HASH_A) == -1, "no message id is unusable");
	CHECK(idemkey_same_body(HASH_A, "not-a-ulid", HASH_A) == -1,
	      "a malformed message id is unusable");
	CHECK(idemkey_same_body("abc", id, "abc") == -1, "a short hash is unusable");
	CHECK(idemkey_same_body("9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08",
				id, HASH_A) == -1,
	      "an upper-case hash is not one of ours");
	CHECK(idemkey_same_body(HASH_A "00", id, HASH_A) == -1, "a long hash is unusable");
}

int
main(void)
{
	test_valid();
	test_same_body();
	return unit_done();
}
