/*
 * test_jscan: the validating scanner (lib/jscan.c) against jansson, text by text.
 *
 * jscan must accept exactly what json_loadb(JSON_DECODE_ANY | JSON_ALLOW_NUL) accepts,
 * except where it is documented to be more cautious (deep nesting, \u0000 in a key).
 * Every case runs through both, in a buffer of exactly its size (ASan sees over-reads);
 * the verdicts must agree, and jansson's verdict is checked against the expected one too,
 * so a case cannot pass by both being wrong.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jscan.h"
#include "unit.h"

struct text_case {
	const char *text;
	size_t len; /* 0: strlen(text) */
	int valid;  /* jansson's verdict */
};

static const struct text_case cases[] = {
    /* numbers */
    {"0", 0, 1},
    {"-0", 0, 1},
    {"01", 0, 0},
    {"-01", 0, 0},
    {"-", 0, 0},
    {"+1", 0, 0},
    {"1.", 0, 0},
    {".5", 0, 0},
    {"1.5e", 0, 0},
    {"1.5e+", 0, 0},
    {"1.5E-3", 0, 1},
    {"1e400", 0, 0},
    {"-1e400", 0, 0},
    {"1e-400", 0, 1},
    {"9223372036854775807", 0, 1},
    {"9223372036854775808", 0, 0},
    {"-9223372036854775808", 0, 1},
    {"-9223372036854775809", 0, 0},
    {"123456789012345678901234567890123456789012345678901234567890123456789012345", 0, 0},
    {"0.123456789012345678901234567890123456789012345678901234567890123456789012345", 0, 1},
    {"1x", 0, 0},
    /* literals */
    {"true", 0, 1},
    {"tru", 0, 0},
    {"truex", 0, 0},
    {"nul", 0, 0},
    {"null", 0, 1},
    {"False", 0, 0},
    /* strings and escapes */
    {"\"\"", 0, 1},
    {"\"abc", 0, 0},
    {"\"a\tb\"", 0, 0},
    {"\"a\\tb\\\"\\\\\\/\\b\\f\\n\\r\"", 0, 1},
    {"\"\\x\"", 0, 0},
    {"\"\\u00e9\"", 0, 1},
    {"\"\\u00G9\"", 0, 0},
    {"\"\\u00e\"", 0, 0},
    {"\"\\ud83d\\ude00\"", 0, 1},
    {"\"\\uD83D\\uDE00\"", 0, 1},
    {"\"\\ud83d\"", 0, 0},
    {"\"\\ud83dx\"", 0, 0},
    {"\"\\ud83d\\u0041\"", 0, 0},
    {"\"\\ude00\"", 0, 0},
    {"\"\\u0000\"", 0, 1},
    {"\"\\", 0, 0},
    /* UTF-8 */
    {"\"\xc3\xa9\"", 0, 1},
    {"\"\xf0\x9f\x98\x80\"", 0, 1},
    {"\"\xc0\x80\"", 0, 0},
    {"\"\xc1\xbf\"", 0, 0},
    {"\"\xe0\x80\x80\"", 0, 0},
    {"\"\xed\xa0\x80\"", 0, 0},
    {"\"\xf0\x80\x80\x80\"", 0, 0},
    {"\"\xf4\x90\x80\x80\"", 0, 0},
    {"\"\xf5\x80\x80\x80\"", 0, 0},
    {"\"\x80\"", 0, 0},
    {"\"\xc3\"", 0, 0},
    {"\"\xe2\x82\"", 0, 0},
    {"\"\xff\"", 0, 0},
    {"\"\x7f\"", 0, 1},
    /* structure */
    {"[]", 0, 1},
    {" [ 1 , 2 ] ", 0, 1},
    {"[1,]", 0, 0},
    {"[,1]", 0, 0},
    {"[1 2]", 0, 0},
    {"[1", 0, 0},
    {"[] x", 0, 0},
    {"{}", 0, 1},
    {"{\"a\":1,\"a\":2}", 0, 1},
    {"{,}", 0, 0},
    {"{\"a\"}", 0, 0},
    {"{\"a\":1,}", 0, 0},
    {"{\"a\" 1}", 0, 0},
    {"{1:2}", 0, 0},
    {"{\"a\":[{\"b\":[true,false,null]}]}", 0, 1},
    {"[\"a\"\n,\r\n{\"b\":\t\"c\"}]", 0, 1},
    {"", 0, 0},
    {"   ", 0, 0},
    {"[\x0b]", 0, 0},
};

/* jscan's verdict on a whole text: one value and nothing after it. */
static int
jscan_valid(const char *text, size_t len, struct jscan_value *v)
{
	struct jscan s;

	jscan_init(&s, text, len);
	return jscan_value(&s, v) == 0 && jscan_at_end(&s);
}

static int
jansson_valid(const char *text, size_t len)
{
	json_t *j = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);

	json_decref(j);
	return j != NULL;
}

static void
test_cases(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
		char *buf = malloc(len ? len : 1);
		struct jscan_value v;
		int js, jn;

		if (buf == NULL)
			abort();
		memcpy(buf, cases[i].text, len);
		js = jscan_valid(buf, len, &v);
		jn = jansson_valid(buf, len);
		if (!CHECK(js == cases[i].valid && jn == cases[i].valid,
			   "case %zu (%.40s): valid %d", i, cases[i].text, cases[i].valid))
			unit_diag("jscan says %d, jansson says %d", js, jn);
		free(buf);
	}
}

static void
test_spans_and_flags(void)
{
	const char *text = " { \"k\\u005f\" : \"a\\u0000b\" , \"n\" : [ 1 , 2.5 ] } ";
	struct jscan s;
	struct jscan_value k, v;

	jscan_init(&s, text, strlen(text));
	CHECK(jscan_accept(&s, '{'), "an object opens");
	CHECK(jscan_key(&s, &k) == 0 && k.escaped && k.len == strlen("\"k\\u005f\"") &&
		  memcmp(k.start, "\"k\\u005f\"", k.len) == 0,
	      "the key's span, quotes included, and its escape");
	CHECK(jscan_value(&s, &v) == 0 && v.type == JSCAN_STRING && v.has_nul && v.escaped &&
		  v.len == strlen("\"a\\u0000b\""),
	      "a string with \\u0000: has_nul, escaped, its span");
	CHECK(jscan_accept(&s, ','), "then a comma");
	CHECK(jscan_key(&s, &k) == 0 && !k.escaped && k.len == 3, "a plain key");
	CHECK(jscan_value(&s, &v) == 0 && v.type == JSCAN_ARRAY && !v.has_nul &&
		  v.len == strlen("[ 1 , 2.5 ]"),
	      "an array value spans its brackets");
	CHECK(jscan_accept(&s, '}') && jscan_at_end(&s), "the object closes, nothing after");

	jscan_init(&s, "[\"\\u0000\"]", 10);
	CHECK(jscan_value(&s, &v) == 0 && v.has_nul, "has_nul reaches up through containers");
	jscan_init(&s, "{\"a\\u0000\":1}", 13);
	CHECK(jscan_accept(&s, '{') && jscan_key(&s, &k) < 0, "a key holding \\u0000 is refused");
	CHECK(!jansson_valid("{\"a\\u0000\":1}", 13), "as jansson refuses it");
	jscan_init(&s, "-12 ", 4);
	CHECK(jscan_value(&s, &v) == 0 && v.type == JSCAN_INTEGER && v.len == 3, "an integer");
	jscan_init(&s, "1e2", 3);
	CHECK(jscan_value(&s, &v) == 0 && v.type == JSCAN_REAL, "an exponent makes a real");
}

static void
test_depth(void)
{
	size_t depth = JSCAN_MAX_DEPTH + 10, i;
	char *buf = malloc(2 * depth);
	struct jscan_value v;

	if (buf == NULL)
		abort();
	for (i = 0; i < depth; i++) {
		buf[i] = '[';
		buf[2 * depth - 1 - i] = ']';
	}
	CHECK(!jscan_valid(buf, 2 * depth, &v) && jansson_valid(buf, 2 * depth),
	      "deeper than JSCAN_MAX_DEPTH: jscan refuses what jansson still takes (cautious)");
	CHECK(jscan_valid(buf + 20, 2 * depth - 40, &v), "%d levels are fine",
	      JSCAN_MAX_DEPTH - 10);
	free(buf);
}

int
main(void)
{
	unit_start();
	test_cases();
	test_spans_and_flags();
	test_depth();
	return unit_done();
}
