/* test_hex.c: unit tests of the hex encoder and its strict decoder (protocol/hex.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../protocol/err.h"
#include "../../protocol/hex.h"

static void
test_encode_every_byte(void **state)
{
	uint8_t all[256];
	char text[2 * 256 + 1];
	uint8_t back[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(all); i++)
		all[i] = (uint8_t)i;
	hex_encode(all, sizeof(all), text);
	assert_int_equal(strlen(text), 512);
	assert_memory_equal(text, "000102", 6);
	assert_string_equal(text + 2 * 0xfd, "fdfeff");
	assert_int_equal(hex_decode(text, strlen(text), back, sizeof(back)), 0);
	assert_memory_equal(back, all, sizeof(all));
}

static void
test_decode_either_case_and_empty(void **state)
{
	uint8_t out[4];
	char text[1];

	(void)state;
	assert_int_equal(hex_decode("DeadBEEF", 8, out, 4), 0);
	assert_memory_equal(out, "\xde\xad\xbe\xef", 4);
	hex_encode(out, 0, text);
	assert_string_equal(text, "");
	assert_int_equal(hex_decode("", 0, out, 0), 0);
}

static void
test_decode_refuses_and_leaves_output(void **state)
{
	static const char *const bad[] = { "0g", "g0", " 0", "0 ", "-1", "0x", "\xff" "0" };
	uint8_t out[2] = { 0x55, 0x66 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(hex_decode(bad[i], 2, out, 1), SD_ERR_BAD_FIELD);
		assert_int_equal(out[0], 0x55);
	}
	/* wrong lengths: odd, too short, too long */
	assert_int_equal(hex_decode("abc", 3, out, 2), SD_ERR_BAD_FIELD);
	assert_int_equal(hex_decode("ab", 2, out, 2), SD_ERR_BAD_FIELD);
	assert_int_equal(hex_decode("abcdef", 6, out, 2), SD_ERR_BAD_FIELD);
	/* a bad digit at the end leaves even the first bytes alone */
	assert_int_equal(hex_decode("aabz", 4, out, 2), SD_ERR_BAD_FIELD);
	assert_int_equal(out[0], 0x55);
	assert_int_equal(out[1], 0x66);
}

static void
test_bytes_zero(void **state)
{
	uint8_t b[4] = { 0, 0, 0, 0 };

	(void)state;
	assert_int_equal(bytes_zero(b, 0), 1);
	assert_int_equal(bytes_zero(b, sizeof(b)), 1);
	b[3] = 1;
	assert_int_equal(bytes_zero(b, sizeof(b)), 0);
	assert_int_equal(bytes_zero(b, 3), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_every_byte),
		cmocka_unit_test(test_decode_either_case_and_empty),
		cmocka_unit_test(test_decode_refuses_and_leaves_output),
		cmocka_unit_test(test_bytes_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
