/* test_text.c: unit tests of protocol/text.h at its edges: the UTF-8 decoder over every 2- and
 * 3-byte sequence and every code point, overlong forms, surrogates, C1 controls, 254/255
 * bytes, NUL, the file-name rule, and both display sanitisers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../protocol/err.h"
#include "../../protocol/text.h"

/* A reference encoder, written from the definition of UTF-8 (RFC 3629 section 3). */
static size_t
encode(uint32_t cp, uint8_t out[4])
{
	if (cp < 0x80) {
		out[0] = (uint8_t)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (uint8_t)(0xc0 | (cp >> 6));
		out[1] = (uint8_t)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (uint8_t)(0xe0 | (cp >> 12));
		out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (uint8_t)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (uint8_t)(0xf0 | (cp >> 18));
	out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (uint8_t)(0x80 | (cp & 0x3f));
	return 4;
}

static void
test_utf8_every_code_point(void **state)
{
	uint8_t b[4];
	uint32_t cp;
	size_t len;

	(void)state;
	for (cp = 0; cp <= 0x10ffff; cp++) {
		len = encode(cp, b);
		if (cp >= 0xd800 && cp <= 0xdfff) {
			assert_int_equal(text_utf8_len(b, len), 0);
			continue;
		}
		if (text_utf8_len(b, len) != len)
			fail_msg("U+%04X refused", (unsigned)cp);
		/* Cut anywhere, it is not a sequence. */
		if (len > 1)
			assert_int_equal(text_utf8_len(b, len - 1), 0);
	}
}

/* Exactly the shortest forms pass: counting every 2- and 3-byte string finds as many valid
 * ones as there are code points of that length (surrogates excluded). */
static void
test_utf8_counts_all_short_sequences(void **state)
{
	uint8_t b[3];
	uint32_t i;
	size_t two = 0, three = 0;

	(void)state;
	for (i = 0; i < 0x10000; i++) {
		b[0] = (uint8_t)(i >> 8);
		b[1] = (uint8_t)i;
		two += b[0] >= 0x80 && text_utf8_len(b, 2) == 2;
	}
	for (i = 0; i < 0x1000000; i++) {
		b[0] = (uint8_t)(i >> 16);
		b[1] = (uint8_t)(i >> 8);
		b[2] = (uint8_t)i;
		three += b[0] >= 0xe0 && text_utf8_len(b, 3) == 3;
	}
	assert_int_equal(two, 0x800 - 0x80);
	assert_int_equal(three, 0x10000 - 0x800 - 0x800);
}

static void
test_utf8_edges(void **state)
{
	static const struct {
		const char *s;
		size_t n, len;
	} t[] = {
		{ "\xc2\x80", 2, 2 },          /* smallest 2-byte */
		{ "\xdf\xbf", 2, 2 },          /* largest 2-byte */
		{ "\xc0\x80", 2, 0 },          /* overlong NUL */
		{ "\xc1\xbf", 2, 0 },          /* overlong U+007F */
		{ "\xe0\xa0\x80", 3, 3 },      /* U+0800 */
		{ "\xe0\x9f\xbf", 3, 0 },      /* overlong U+07FF */
		{ "\xe0\x80\xaf", 3, 0 },      /* overlong '/' */
		{ "\xed\x9f\xbf", 3, 3 },      /* U+D7FF, just below the surrogates */
		{ "\xed\xa0\x80", 3, 0 },      /* U+D800 */
		{ "\xed\xbf\xbf", 3, 0 },      /* U+DFFF */
		{ "\xee\x80\x80", 3, 3 },      /* U+E000 */
		{ "\xef\xbf\xbf", 3, 3 },      /* U+FFFF */
		{ "\xf0\x90\x80\x80", 4, 4 },  /* U+10000 */
		{ "\xf0\x8f\xbf\xbf", 4, 0 },  /* overlong U+FFFF */
		{ "\xf0\x80\x80\xaf", 4, 0 },  /* overlong '/' in four bytes */
		{ "\xf4\x8f\xbf\xbf", 4, 4 },  /* U+10FFFF */
		{ "\xf4\x90\x80\x80", 4, 0 },  /* U+110000 */
		{ "\xf5\x80\x80\x80", 4, 0 },
		{ "\xf8\x88\x80\x80\x80", 5, 0 },  /* old 5-byte form */
		{ "\xff", 1, 0 },
		{ "\x80", 1, 0 },              /* lone continuation */
		{ "\xc3\x00", 2, 0 },          /* NUL inside a sequence */
		{ "\xe2\x82\x00", 3, 0 },
		{ "\xc3\xc3", 2, 0 },          /* lead byte where a continuation belongs */
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (text_utf8_len((const uint8_t *)t[i].s, t[i].n) != t[i].len)
			fail_msg("case %zu: length %zu, not %zu", i,
			    text_utf8_len((const uint8_t *)t[i].s, t[i].n), t[i].len);
}

static void
expect_name(const char *name, enum text_fault want)
{
	enum text_fault got = TEXT_RESERVED;
	int r = text_name_check(name, &got);

	if (got != want || r != (want == TEXT_OK ? 0 : SD_ERR_BAD_STRING))
		fail_msg("name '%s': fault %d (%s), want %d", name, got, text_fault_str(got), want);
}

static void
test_name_rule(void **state)
{
	char s[300];
	size_t i;

	(void)state;
	expect_name("a", TEXT_OK);
	expect_name("Alice Example", TEXT_OK);
	expect_name("\xc3\xa9l\xc3\xa8ve", TEXT_OK);
	expect_name("\xc2\xa0nbsp", TEXT_OK);          /* U+00A0, just past C1 */
	expect_name("\xf4\x8f\xbf\xbf", TEXT_OK);
	expect_name("", TEXT_EMPTY);
	expect_name("\x01", TEXT_CONTROL);
	expect_name("a\x1f", TEXT_CONTROL);
	expect_name("del\x7f", TEXT_CONTROL);
	expect_name("c1 \xc2\x80", TEXT_CONTROL);      /* U+0080 */
	expect_name("c1 \xc2\x85", TEXT_CONTROL);      /* NEL */
	expect_name("c1 \xc2\x9f", TEXT_CONTROL);      /* U+009F */
	expect_name("\xc0\x80", TEXT_NOT_UTF8);        /* overlong NUL */
	expect_name("\xed\xa0\x80", TEXT_NOT_UTF8);
	expect_name("\xed\xbf\xbf", TEXT_NOT_UTF8);
	expect_name("ab\xc3", TEXT_NOT_UTF8);
	/* The string ends at its NUL: what follows is never looked at. */
	expect_name("ok\0\x01", TEXT_OK);
	/* 254 bytes fit the field with its NUL; 255 do not. */
	memset(s, 'n', sizeof(s));
	s[NAME_MAX_LEN] = '\0';
	expect_name(s, TEXT_OK);
	s[NAME_MAX_LEN] = 'n';
	s[NAME_MAX_LEN + 1] = '\0';
	expect_name(s, TEXT_TOO_LONG);
	s[sizeof(s) - 1] = '\0';
	expect_name(s, TEXT_TOO_LONG);
	/* 254 bytes ending in a whole 2-byte character, then one cut at the end. */
	for (i = 0; i + 1 < NAME_MAX_LEN; i += 2)
		memcpy(s + i, "\xc3\xa9", 2);
	s[NAME_MAX_LEN] = '\0';
	expect_name(s, TEXT_OK);
	s[NAME_MAX_LEN - 1] = '\0';
	expect_name(s, TEXT_NOT_UTF8);
	assert_int_equal(text_name_check(NULL, NULL), SD_ERR_INVALID_ARG);
	assert_int_equal(text_name_check("x\n", NULL), SD_ERR_BAD_STRING);
}

static void
expect_file(const char *in, const char *want, enum text_fault fault)
{
	char out[NAME_FIELD_SIZE];
	enum text_fault got = TEXT_RESERVED;
	int r;

	memset(out, 'Z', sizeof(out));
	r = text_file_name(in, out, &got);
	if (got != fault || r != (fault == TEXT_OK ? 0 : SD_ERR_BAD_STRING))
		fail_msg("file '%s': fault %d (%s), want %d", in, got, text_fault_str(got), fault);
	assert_string_equal(out, want != NULL ? want : "");
}

static void
test_file_name_rule(void **state)
{
	char s[300], out[NAME_FIELD_SIZE];

	(void)state;
	expect_file("report.pdf", "report.pdf", TEXT_OK);
	expect_file("../../etc/passwd", "passwd", TEXT_OK);
	expect_file("C:\\Users\\me\\f.bin", "f.bin", TEXT_OK);
	expect_file("c1 \xc2\x85.txt", "c1 \xc2\x85.txt", TEXT_OK);  /* C1 allowed in files */
	expect_file("sealdrop-part-1", "sealdrop-part-1", TEXT_OK);
	expect_file("", NULL, TEXT_EMPTY);
	expect_file("dir/", NULL, TEXT_EMPTY);
	expect_file("dir\\", NULL, TEXT_EMPTY);
	expect_file(".", NULL, TEXT_DOT);
	expect_file("a/..", NULL, TEXT_DOT);
	expect_file(TEXT_RESERVED_PREFIX "00", NULL, TEXT_RESERVED);
	expect_file("x\\" TEXT_RESERVED_PREFIX, NULL, TEXT_RESERVED);
	expect_file("ctl\n/ok", NULL, TEXT_CONTROL);   /* the whole name counts */
	expect_file("\xc0\xaf" "etc", NULL, TEXT_NOT_UTF8);  /* overlong '/' is no separator */
	expect_file("\xed\xa0\x80", NULL, TEXT_NOT_UTF8);
	memset(s, 'f', sizeof(s));
	s[NAME_MAX_LEN] = '\0';
	expect_file(s, s, TEXT_OK);
	s[NAME_MAX_LEN] = 'f';
	s[sizeof(s) - 1] = '\0';
	expect_file(s, NULL, TEXT_TOO_LONG);
	assert_int_equal(text_file_name(NULL, out, NULL), SD_ERR_INVALID_ARG);
	assert_int_equal(text_file_name("x", NULL, NULL), SD_ERR_INVALID_ARG);
}

static void
test_ascii_safe(void **state)
{
	char out[16];

	(void)state;
	text_ascii_safe("a\nb\"c\\d\x1b\x7f\xc3\xa9", out, sizeof(out));
	assert_string_equal(out, "a?b?c?d????");
	text_ascii_safe("0123456789abcdefghij", out, sizeof(out));
	assert_string_equal(out, "0123456789ab...");
	text_ascii_safe(NULL, out, sizeof(out));
	assert_string_equal(out, "");
	text_ascii_safe("abc", out, 3);
	assert_string_equal(out, "");
	text_ascii_safe("abcd", out, 4);
	assert_string_equal(out, "...");
}

static void
test_escape(void **state)
{
	char all_bad[64], out[TEXT_ESCAPE_SIZE(64)], small[8];

	(void)state;
	assert_int_equal(text_escape("\xc3\xa9t\xc3\xa9", out, sizeof(out)), 5);
	assert_string_equal(out, "\xc3\xa9t\xc3\xa9");
	text_escape("a\x01" "b\x7f\xff\xc2\x85\xed\xa0\x80", out, sizeof(out));
	assert_string_equal(out, "a\\x01b\\x7f\\xff\\xc2\\x85\\xed\\xa0\\x80");
	/* C1 controls (U+009B is CSI) are escaped; U+00A0 and above are text. */
	text_escape("x\xc2\x9b" "31m\xc2\x80\xc2\x9f\xc2\xa0\xc3\xbf", out, sizeof(out));
	assert_string_equal(out, "x\\xc2\\x9b31m\\xc2\\x80\\xc2\\x9f\xc2\xa0\xc3\xbf");
	/* The worst case fits TEXT_ESCAPE_SIZE. */
	memset(all_bad, 0xff, sizeof(all_bad) - 1);
	all_bad[sizeof(all_bad) - 1] = '\0';
	assert_int_equal(text_escape(all_bad, out, sizeof(out)), 4 * (sizeof(all_bad) - 1));
	/* Cut before a unit that does not fit, never inside one. */
	assert_int_equal(text_escape("ab\x01", small, 6), 2);
	assert_string_equal(small, "ab");
	assert_int_equal(text_escape("abc\xe2\x82\xac", small, sizeof(small)), 6);
	assert_string_equal(small, "abc\xe2\x82\xac");
	assert_int_equal(text_escape("abcd\xe2\x82\xac", small, 7), 4);
	assert_string_equal(small, "abcd");
	assert_int_equal(text_escape(NULL, small, sizeof(small)), 0);
	assert_string_equal(small, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8_every_code_point),
		cmocka_unit_test(test_utf8_counts_all_short_sequences),
		cmocka_unit_test(test_utf8_edges),
		cmocka_unit_test(test_name_rule),
		cmocka_unit_test(test_file_name_rule),
		cmocka_unit_test(test_ascii_safe),
		cmocka_unit_test(test_escape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
