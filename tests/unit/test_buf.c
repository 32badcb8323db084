/* test_buf.c: the bounded byte buffer (protocol/buf.h) at its edges: every get and put, byte
 * order, limits, growth up to max, failed gets that leave the buffer untouched, and sd_strerror. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../protocol/buf.h"
#include "../../protocol/err.h"

/* Little-endian order is the protocol's (SPEC 1): these bytes are the spec, not our output. */
static void test_put_get_little_endian(void **state)
{
	static const uint8_t want[] = {
		0xab,                    /* u8 0xab */
		0x34, 0x12,              /* u16 0x1234 */
		0x78, 0x56, 0x34, 0x12,  /* u32 0x12345678 */
		'x', 'y', 'z',           /* bytes */
		0, 0,                    /* zeros */
		'h', 'i', 0, 0, 0,       /* string "hi" in a 5-byte field */
	};
	struct buf b;
	uint8_t u8, bytes[3];
	uint16_t u16;
	uint32_t u32;
	char s[5];

	(void)state;
	buf_init(&b, 1024);
	assert_int_equal(buf_len(&b), 0);
	assert_int_equal(buf_put_u8(&b, 0xab), 0);
	assert_int_equal(buf_put_u16(&b, 0x1234), 0);
	assert_int_equal(buf_put_u32(&b, 0x12345678), 0);
	assert_int_equal(buf_put_bytes(&b, "xyz", 3), 0);
	assert_int_equal(buf_put_zeros(&b, 2), 0);
	assert_int_equal(buf_put_string(&b, "hi", 5), 0);
	assert_int_equal(buf_len(&b), sizeof(want));
	assert_memory_equal(buf_ptr(&b), want, sizeof(want));

	assert_int_equal(buf_get_u8(&b, &u8), 0);
	assert_int_equal(u8, 0xab);
	assert_int_equal(buf_get_u16(&b, &u16), 0);
	assert_int_equal(u16, 0x1234);
	assert_int_equal(buf_get_u32(&b, &u32), 0);
	assert_int_equal(u32, 0x12345678);
	assert_int_equal(buf_get_bytes(&b, bytes, 3), 0);
	assert_memory_equal(bytes, "xyz", 3);
	assert_int_equal(buf_skip(&b, 2), 0);
	assert_int_equal(buf_get_string(&b, s, sizeof(s)), 0);
	assert_string_equal(s, "hi");
	assert_int_equal(buf_len(&b), 0);
	assert_int_equal(buf_get_u8(&b, &u8), SD_ERR_SHORT);
	buf_free(&b);
}

/* The extremes of each integer width survive the trip. */
static void test_integer_extremes(void **state)
{
	static const uint32_t v32[] = { 0, 1, 0x7fffffff, 0x80000000u, 0xfffffffeu, UINT32_MAX };
	static const uint16_t v16[] = { 0, 1, 0x7fff, 0x8000, UINT16_MAX };
	uint8_t mem[64];
	struct buf b;
	uint32_t g32;
	uint16_t g16;
	size_t i;

	(void)state;
	buf_fixed(&b, mem, sizeof(mem));
	for (i = 0; i < sizeof(v32) / sizeof(v32[0]); i++)
		assert_int_equal(buf_put_u32(&b, v32[i]), 0);
	for (i = 0; i < sizeof(v16) / sizeof(v16[0]); i++)
		assert_int_equal(buf_put_u16(&b, v16[i]), 0);
	for (i = 0; i < sizeof(v32) / sizeof(v32[0]); i++) {
		assert_int_equal(buf_get_u32(&b, &g32), 0);
		assert_true(g32 == v32[i]);
	}
	for (i = 0; i < sizeof(v16) / sizeof(v16[0]); i++) {
		assert_int_equal(buf_get_u16(&b, &g16), 0);
		assert_int_equal(g16, v16[i]);
	}
	assert_int_equal(buf_len(&b), 0);
}

/* One record of every field type, read from a view cut at every length: the first get that
 * cannot complete fails with SD_ERR_SHORT and changes nothing, and the ones before succeed. */
static void test_cut_at_every_byte(void **state)
{
	uint8_t rec[1 + 2 + 4 + 5 + 10];
	/* The end offset of each field of rec. */
	static const size_t ends[] = { 1, 3, 7, 12, 22 };
	struct buf w, b;
	size_t cut, f, before;
	const uint8_t *pbefore;
	uint8_t u8, bytes[5];
	uint16_t u16;
	uint32_t u32;
	char s[10];
	int r;

	(void)state;
	buf_fixed(&w, rec, sizeof(rec));
	assert_int_equal(buf_put_u8(&w, 7), 0);
	assert_int_equal(buf_put_u16(&w, 0xbeef), 0);
	assert_int_equal(buf_put_u32(&w, 0xdeadbeef), 0);
	assert_int_equal(buf_put_bytes(&w, "abcde", 5), 0);
	assert_int_equal(buf_put_string(&w, "string", 10), 0);
	assert_int_equal(buf_len(&w), sizeof(rec));

	for (cut = 0; cut <= sizeof(rec); cut++) {
		buf_view(&b, rec, cut);
		for (f = 0; f < 5; f++) {
			before = buf_len(&b);
			pbefore = buf_ptr(&b);
			switch (f) {
			case 0: r = buf_get_u8(&b, &u8); break;
			case 1: r = buf_get_u16(&b, &u16); break;
			case 2: r = buf_get_u32(&b, &u32); break;
			case 3: r = buf_get_bytes(&b, bytes, sizeof(bytes)); break;
			default: r = buf_get_string(&b, s, sizeof(s)); break;
			}
			if (ends[f] <= cut) {
				assert_int_equal(r, 0);
				continue;
			}
			assert_int_equal(r, SD_ERR_SHORT);
			assert_int_equal(buf_len(&b), before);
			assert_ptr_equal(buf_ptr(&b), pbefore);
			/* The skip of the same field fails the same way. */
			assert_int_equal(buf_skip(&b, ends[f] - (f ? ends[f - 1] : 0)), SD_ERR_SHORT);
			assert_int_equal(buf_len(&b), before);
			break;
		}
		if (cut == sizeof(rec)) {
			assert_int_equal(f, 5);
			assert_int_equal(u8, 7);
			assert_int_equal(u16, 0xbeef);
			assert_true(u32 == 0xdeadbeef);
			assert_memory_equal(bytes, "abcde", 5);
			assert_string_equal(s, "string");
		}
	}
}

/* Hostile lengths cannot wrap around: a skip, a get or a put of SIZE_MAX fails cleanly. */
static void test_hostile_lengths(void **state)
{
	uint8_t mem[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, out[8];
	struct buf b;
	char s[4];

	(void)state;
	buf_view(&b, mem, sizeof(mem));
	assert_int_equal(buf_skip(&b, 3), 0);
	assert_int_equal(buf_skip(&b, SIZE_MAX), SD_ERR_SHORT);
	assert_int_equal(buf_skip(&b, SIZE_MAX - 2), SD_ERR_SHORT);
	assert_int_equal(buf_get_bytes(&b, out, SIZE_MAX), SD_ERR_SHORT);
	assert_int_equal(buf_len(&b), 5);

	buf_init(&b, 100);
	assert_int_equal(buf_put_u8(&b, 1), 0);
	assert_int_equal(buf_put_zeros(&b, SIZE_MAX), SD_ERR_FULL);
	assert_int_equal(buf_put_zeros(&b, SIZE_MAX - 1), SD_ERR_FULL);
	assert_int_equal(buf_put_bytes(&b, mem, SIZE_MAX), SD_ERR_FULL);
	assert_int_equal(buf_len(&b), 1);
	assert_true(b.cap <= 100);
	buf_free(&b);

	/* A string field longer than what is left. */
	buf_view(&b, mem, 3);
	assert_int_equal(buf_get_string(&b, s, sizeof(s)), SD_ERR_SHORT);
	assert_int_equal(buf_len(&b), 3);
	assert_int_equal(buf_get_string(&b, s, 0), SD_ERR_INVALID_ARG);
}

/* A growable buffer doubles its storage up to max, never beyond, then refuses with
 * SD_ERR_FULL while keeping what it holds. */
static void test_growth_to_max(void **state)
{
	const size_t max = 1000;
	size_t i, caps = 0, lastcap = 0;
	struct buf b;
	uint8_t v;

	(void)state;
	buf_init(&b, max);
	for (i = 0; i < max; i++) {
		assert_int_equal(buf_put_u8(&b, (uint8_t)(i * 7)), 0);
		assert_true(b.cap <= max);
		assert_true(b.cap >= buf_len(&b));
		if (b.cap != lastcap) {
			/* Each new size at least doubles the last one, or is the limit. */
			assert_true(lastcap == 0 || b.cap >= 2 * lastcap || b.cap == max);
			lastcap = b.cap;
			caps++;
		}
	}
	/* Geometric growth: a handful of allocations, not one per byte. */
	assert_true(caps <= 6);
	assert_int_equal(b.cap, max);
	assert_int_equal(buf_put_u8(&b, 1), SD_ERR_FULL);
	assert_int_equal(buf_put_u16(&b, 1), SD_ERR_FULL);
	assert_int_equal(buf_put_string(&b, "", 1), SD_ERR_FULL);
	assert_int_equal(buf_len(&b), max);
	for (i = 0; i < max; i++) {
		assert_int_equal(buf_get_u8(&b, &v), 0);
		assert_int_equal(v, (uint8_t)(i * 7));
	}
	/* Space read out of a full buffer is reused. */
	assert_int_equal(buf_put_u32(&b, 0x01020304), 0);
	assert_int_equal(buf_len(&b), 4);
	buf_free(&b);

	/* A put bigger than the room left writes nothing. */
	buf_init(&b, 10);
	assert_int_equal(buf_put_bytes(&b, "123456", 6), 0);
	assert_int_equal(buf_put_bytes(&b, "abcdef", 5), SD_ERR_FULL);
	assert_int_equal(buf_len(&b), 6);
	assert_memory_equal(buf_ptr(&b), "123456", 6);
	assert_int_equal(buf_put_bytes(&b, "abcd", 4), 0);
	assert_memory_equal(buf_ptr(&b), "123456abcd", 10);
	buf_free(&b);

	/* Limit 0 holds nothing; a zero-byte put is fine. */
	buf_init(&b, 0);
	assert_int_equal(buf_put_bytes(&b, "", 0), 0);
	assert_int_equal(buf_put_u8(&b, 1), SD_ERR_FULL);
	buf_free(&b);
}

/* A fixed buffer writes into caller memory, never past cap, and reuses space that was read. */
static void test_fixed(void **state)
{
	uint8_t mem[9];
	struct buf b;
	uint32_t v;

	(void)state;
	mem[8] = 0x5a;  /* guard byte beyond the buffer's cap */
	buf_fixed(&b, mem, 8);
	assert_int_equal(buf_put_u32(&b, 1), 0);
	assert_int_equal(buf_put_u32(&b, 2), 0);
	assert_int_equal(buf_put_u8(&b, 3), SD_ERR_FULL);
	assert_int_equal(buf_get_u32(&b, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(buf_put_u32(&b, 3), 0);
	assert_int_equal(buf_put_u8(&b, 4), SD_ERR_FULL);
	assert_int_equal(buf_get_u32(&b, &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(buf_get_u32(&b, &v), 0);
	assert_int_equal(v, 3);
	assert_int_equal(mem[8], 0x5a);
	buf_reset(&b);
	assert_int_equal(buf_len(&b), 0);
	assert_int_equal(buf_put_bytes(&b, "12345678", 8), 0);
	assert_memory_equal(mem, "12345678", 8);
	buf_free(&b);   /* borrowed memory: not freed, the buffer is just emptied */
	assert_int_equal(buf_len(&b), 0);
	assert_memory_equal(mem, "12345678", 8);
}

/* A view reads caller memory and refuses every put. */
static void test_view_read_only(void **state)
{
	const uint8_t mem[4] = { 1, 2, 3, 4 };
	struct buf b;
	uint16_t v;

	(void)state;
	buf_view(&b, mem, sizeof(mem));
	assert_int_equal(buf_len(&b), 4);
	assert_ptr_equal(buf_ptr(&b), mem);
	assert_int_not_equal(buf_put_u8(&b, 9), 0);
	assert_int_not_equal(buf_put_u16(&b, 9), 0);
	assert_int_not_equal(buf_put_zeros(&b, 1), 0);
	assert_int_not_equal(buf_put_string(&b, "a", 2), 0);
	assert_int_equal(buf_get_u16(&b, &v), 0);
	assert_int_equal(v, 0x0201);
	assert_int_not_equal(buf_put_u8(&b, 9), 0);
	assert_int_equal(buf_len(&b), 2);
	assert_int_equal(mem[0], 1);
	buf_view(&b, NULL, 0);
	assert_int_equal(buf_len(&b), 0);
	assert_int_equal(buf_get_u16(&b, &v), SD_ERR_SHORT);
}

/* String fields: the NUL must be inside the field, bytes after it are ignored, and a field
 * without one is refused without consuming anything. */
static void test_strings(void **state)
{
	uint8_t field[8];
	char s[8], big[9];
	struct buf b;

	(void)state;
	/* No NUL anywhere in the field. */
	memset(field, 'A', sizeof(field));
	buf_view(&b, field, sizeof(field));
	memset(s, 'x', sizeof(s));
	assert_int_equal(buf_get_string(&b, s, sizeof(s)), SD_ERR_BAD_STRING);
	assert_int_equal(buf_len(&b), 8);
	assert_int_equal(s[0], '\0');  /* the out-parameter is cleared */
	/* A NUL just outside the field does not count. */
	{
		uint8_t nine[9];
		memset(nine, 'A', 8);
		nine[8] = 0;
		buf_view(&b, nine, sizeof(nine));
		assert_int_equal(buf_get_string(&b, s, 8), SD_ERR_BAD_STRING);
		assert_int_equal(buf_len(&b), 9);
	}
	/* NUL in the last byte: the longest string the field holds. */
	field[7] = 0;
	buf_view(&b, field, sizeof(field));
	assert_int_equal(buf_get_string(&b, s, sizeof(s)), 0);
	assert_string_equal(s, "AAAAAAA");
	assert_int_equal(buf_len(&b), 0);
	/* Bytes after the NUL are ignored (tolerant) but consumed with the field. */
	memcpy(field, "ab\0garbg", 8);
	buf_view(&b, field, sizeof(field));
	assert_int_equal(buf_get_string(&b, s, sizeof(s)), 0);
	assert_string_equal(s, "ab");
	assert_memory_equal(s, "ab\0\0\0\0\0\0", 8);
	assert_int_equal(buf_len(&b), 0);
	/* An empty string is a valid field at this level. */
	memset(field, 0, sizeof(field));
	buf_view(&b, field, sizeof(field));
	assert_int_equal(buf_get_string(&b, s, sizeof(s)), 0);
	assert_string_equal(s, "");
	/* A field cut short. */
	buf_view(&b, field, 7);
	assert_int_equal(buf_get_string(&b, s, 8), SD_ERR_SHORT);
	assert_int_equal(buf_len(&b), 7);

	/* Puts: the string must leave room for its NUL; the rest is zero padding. */
	buf_init(&b, 64);
	memset(big, 'B', 8);
	big[8] = 0;
	assert_int_equal(buf_put_string(&b, big, 8), SD_ERR_BAD_STRING);
	assert_int_equal(buf_len(&b), 0);
	big[7] = 0;
	assert_int_equal(buf_put_string(&b, big, 8), 0);
	assert_memory_equal(buf_ptr(&b), "BBBBBBB\0", 8);
	assert_int_equal(buf_put_string(&b, "q", 4), 0);
	assert_memory_equal(buf_ptr(&b) + 8, "q\0\0\0", 4);
	assert_int_equal(buf_put_string(&b, "", 1), 0);
	assert_int_equal(buf_len(&b), 13);
	assert_int_equal(buf_put_string(&b, "", 0), SD_ERR_INVALID_ARG);
	assert_int_equal(buf_put_string(&b, NULL, 4), SD_ERR_INVALID_ARG);
	assert_int_equal(buf_len(&b), 13);
	buf_free(&b);
}

/* Bad arguments are refused, not dereferenced; free functions accept NULL. */
static void test_null_arguments(void **state)
{
	struct buf b;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;

	(void)state;
	buf_free(NULL);
	buf_reset(NULL);
	assert_int_equal(buf_len(NULL), 0);
	assert_null(buf_ptr(NULL));
	assert_int_equal(buf_get_u8(NULL, &u8), SD_ERR_INVALID_ARG);
	assert_int_equal(buf_get_u16(NULL, &u16), SD_ERR_INVALID_ARG);
	assert_int_equal(buf_get_u32(NULL, &u32), SD_ERR_INVALID_ARG);
	assert_int_equal(buf_put_u8(NULL, 1), SD_ERR_INVALID_ARG);
	buf_init(&b, 16);
	assert_int_equal(buf_put_u8(&b, 1), 0);
	assert_int_equal(buf_get_u8(&b, NULL), SD_ERR_INVALID_ARG);
	assert_int_equal(buf_get_bytes(&b, NULL, 1), SD_ERR_INVALID_ARG);
	assert_int_equal(buf_put_bytes(&b, NULL, 1), SD_ERR_INVALID_ARG);
	assert_int_equal(buf_len(&b), 1);
	buf_free(&b);
	buf_free(&b);  /* twice is harmless */
}

/* After buf_free a growable buffer is empty and usable again with the same limit. */
static void test_free_and_reuse(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 8);
	assert_int_equal(buf_put_u32(&b, 7), 0);
	buf_free(&b);
	assert_int_equal(buf_len(&b), 0);
	assert_null(b.data);
	assert_int_equal(buf_put_u32(&b, 7), 0);
	assert_int_equal(buf_put_u32(&b, 8), 0);
	assert_int_equal(buf_put_u8(&b, 9), SD_ERR_FULL);
	buf_reset(&b);
	assert_int_equal(buf_len(&b), 0);
	assert_int_equal(buf_put_u8(&b, 9), 0);
	buf_free(&b);
}

/* Every code has its own text; unknown codes get a generic one. */
/* u64: little-endian on the wire, extremes intact, a short get consumes nothing. */
static void test_u64(void **state)
{
	static const uint64_t v[] = { 0, 1, 0x0102030405060708ull, 1ull << 63, UINT64_MAX };
	uint8_t mem[8 * 5];
	struct buf b;
	uint64_t g = 7;
	size_t i;

	(void)state;
	buf_fixed(&b, mem, sizeof(mem));
	for (i = 0; i < 5; i++)
		assert_int_equal(buf_put_u64(&b, v[i]), 0);
	assert_int_equal(buf_put_u64(&b, 1), SD_ERR_FULL);
	assert_int_equal(mem[16], 0x08);
	assert_int_equal(mem[23], 0x01);
	for (i = 0; i < 5; i++) {
		assert_int_equal(buf_get_u64(&b, &g), 0);
		assert_true(g == v[i]);
	}
	buf_view(&b, mem, 7);
	assert_int_equal(buf_get_u64(&b, &g), SD_ERR_SHORT);
	assert_true(g == 0);
	assert_int_equal(buf_len(&b), 7);
	assert_int_equal(buf_get_u64(&b, NULL), SD_ERR_INVALID_ARG);
}

static void test_strerror(void **state)
{
	int a, c;

	(void)state;
	for (a = SD_ERR_TAKEN; a <= SD_OK; a++) {
		assert_non_null(sd_strerror(a));
		assert_true(strlen(sd_strerror(a)) > 0);
		assert_string_not_equal(sd_strerror(a), sd_strerror(-1000));
		for (c = SD_ERR_TAKEN; c < a; c++)
			assert_string_not_equal(sd_strerror(a), sd_strerror(c));
	}
	assert_non_null(sd_strerror(1));
	assert_string_equal(sd_strerror(1), sd_strerror(-1000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_get_little_endian),
		cmocka_unit_test(test_integer_extremes),
		cmocka_unit_test(test_cut_at_every_byte),
		cmocka_unit_test(test_hostile_lengths),
		cmocka_unit_test(test_growth_to_max),
		cmocka_unit_test(test_fixed),
		cmocka_unit_test(test_view_read_only),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_null_arguments),
		cmocka_unit_test(test_free_and_reuse),
		cmocka_unit_test(test_u64),
		cmocka_unit_test(test_strerror),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
