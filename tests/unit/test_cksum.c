/* test_cksum.c: our cksum CRC against GNU `cksum` (run through popen on temporary files of
 * many sizes), over every split point and random splits, the carry-less multiply path against
 * the portable table path, and the Crypto++ fixture values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../protocol/cksum.h"
#include "json_mini.h"
#include "test_util.h"

/* The first field of `cksum FILE` for these bytes, from GNU coreutils. */
static uint32_t gnu_cksum(const uint8_t *data, size_t n)
{
	char path[256], cmd[512], line[256];
	unsigned long v = 0;
	FILE *p;

	assert_int_equal(tu_temp_file(data, n, path, sizeof(path)), 0);
	snprintf(cmd, sizeof(cmd), "cksum '%s'", path);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(line, sizeof(line), p));
	assert_int_equal(pclose(p), 0);
	unlink(path);
	assert_int_equal(sscanf(line, "%lu", &v), 1);
	return (uint32_t)v;
}

static uint32_t split_cksum(const uint8_t *data, size_t n, const size_t *cuts, size_t ncuts,
    int portable)
{
	struct cksum c;
	size_t at = 0;

	cksum_init(&c);
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : n;
		if (portable)
			cksum_update_portable(&c, data + at, end - at);
		else
			cksum_update(&c, data + at, end - at);
		at = end;
	}
	assert_int_equal(c.length, n);
	return cksum_final(&c);
}

static void test_against_gnu(void **state)
{
	static const size_t sizes[] = { 0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 63, 64, 65, 255, 256, 257,
		1000, 4095, 4096, 4097, 65537, 1048576, 1048576 + 13, 3 * 1048576 + 7 };
	uint8_t *buf = malloc(3 * 1048576 + 7);

	(void)state;
	assert_non_null(buf);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		uint32_t want;

		tu_fill(buf, n);
		want = gnu_cksum(buf, n);
		assert_int_equal(cksum_buffer(buf, n), want);
		assert_int_equal(split_cksum(buf, n, NULL, 0, 1), want);
	}
	/* All zeros and all ones stress the table edges the random data may not. */
	memset(buf, 0, 5000);
	assert_int_equal(cksum_buffer(buf, 5000), gnu_cksum(buf, 5000));
	memset(buf, 0xff, 5000);
	assert_int_equal(cksum_buffer(buf, 5000), gnu_cksum(buf, 5000));
	free(buf);
}

/* A 600-byte input crosses the size where the folding path starts: every split point, and
 * every pair of split points on a shorter one. */
static void test_every_split(void **state)
{
	uint8_t buf[600];
	uint32_t want;

	(void)state;
	tu_fill(buf, sizeof(buf));
	want = gnu_cksum(buf, sizeof(buf));
	for (size_t a = 0; a <= sizeof(buf); a++) {
		assert_int_equal(split_cksum(buf, sizeof(buf), &a, 1, 0), want);
		assert_int_equal(split_cksum(buf, sizeof(buf), &a, 1, 1), want);
	}
	want = gnu_cksum(buf, 40);
	for (size_t a = 0; a <= 40; a++)
		for (size_t b = a; b <= 40; b++) {
			size_t cuts[2] = { a, b };
			assert_int_equal(split_cksum(buf, 40, cuts, 2, 0), want);
		}
}

static void test_random_splits(void **state)
{
	size_t n = 1048576 + 77;
	uint8_t *buf = malloc(n);
	size_t cuts[64];
	uint32_t want;

	(void)state;
	assert_non_null(buf);
	tu_fill(buf, n);
	want = gnu_cksum(buf, n);
	for (int round = 0; round < 40; round++) {
		size_t k = 1 + tu_below(63);
		for (size_t i = 0; i < k; i++)
			cuts[i] = tu_below(n + 1);
		/* sort the cut points (insertion sort, k is small) */
		for (size_t i = 1; i < k; i++)
			for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
				size_t t = cuts[j];
				cuts[j] = cuts[j - 1];
				cuts[j - 1] = t;
			}
		assert_int_equal(split_cksum(buf, n, cuts, k, round % 2), want);
	}
	free(buf);
}

/* Both paths agree for every length up to 2100 at every alignment of the start. */
static void test_paths_agree(void **state)
{
	uint8_t buf[2100 + 16];
	struct cksum a, b;

	(void)state;
	tu_fill(buf, sizeof(buf));
	for (size_t off = 0; off < 16; off++)
		for (size_t n = 0; n + off <= sizeof(buf); n += (off == 0 ? 1 : 7)) {
			cksum_init(&a);
			cksum_init(&b);
			/* a nonzero register going in checks how the folding path continues one */
			cksum_update(&a, "x", 1);
			cksum_update_portable(&b, "x", 1);
			cksum_update(&a, buf + off, n);
			cksum_update_portable(&b, buf + off, n);
			assert_int_equal(a.crc, b.crc);
			assert_int_equal(cksum_final(&a), cksum_final(&b));
		}
	/* Say which path ran; the comparison above is only meaningful with both present. */
	print_message("cksum: carry-less multiply path %s\n", cksum_has_clmul() ? "used" : "absent");
}

/* final() leaves the state as it was, so a stream can report and go on. */
static void test_final_is_pure(void **state)
{
	uint8_t buf[3000];
	struct cksum c;

	(void)state;
	tu_fill(buf, sizeof(buf));
	cksum_init(&c);
	cksum_update(&c, buf, 1000);
	assert_int_equal(cksum_final(&c), cksum_buffer(buf, 1000));
	assert_int_equal(cksum_final(&c), cksum_buffer(buf, 1000));
	cksum_update(&c, buf + 1000, 2000);
	assert_int_equal(cksum_final(&c), cksum_buffer(buf, 3000));
}

/* The values in cryptopp/manifest.json, recorded with GNU cksum by the fixture's authors. */
static void test_fixture_values(void **state)
{
	static const unsigned sizes[] = { 0, 1, 15, 16, 17, 1000, 3000 };
	struct json *manifest = json_load_fixture("cryptopp/manifest.json");

	(void)state;
	assert_non_null(manifest);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char rel[64], name[64];
		const struct json *at;
		uint64_t want = 0, size = 0;
		size_t n;
		uint8_t *data;

		/* The "files" entry of this plaintext. */
		snprintf(name, sizeof(name), "plain-%u.bin", sizes[i]);
		for (at = json_first(json_get(manifest, "files")); at != NULL; at = at->next) {
			const char *file = json_str(json_get(at, "file"));

			if (file != NULL && strcmp(file, name) == 0)
				break;
		}
		assert_non_null(at);
		assert_int_equal(json_u64(json_get(at, "size"), &size), 0);
		assert_int_equal(json_u64(json_get(at, "cksum"), &want), 0);
		snprintf(rel, sizeof(rel), "cryptopp/plain-%u.bin", sizes[i]);
		data = json_read_fixture(rel, &n);
		assert_non_null(data);
		assert_int_equal(n, size);
		assert_int_equal(cksum_buffer(data, n), want);
		free(data);
	}
	json_free(manifest);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_against_gnu),
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_random_splits),
		cmocka_unit_test(test_paths_agree),
		cmocka_unit_test(test_final_is_pure),
		cmocka_unit_test(test_fixture_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
