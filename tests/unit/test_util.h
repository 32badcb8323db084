/* test_util.h: what the unit tests need besides fixture reading (that is json_mini.h): a
 * seeded PRNG and temporary files (static, one copy per program). */
#ifndef SD_TEST_UTIL_H
#define SD_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* A reproducible xorshift64* stream: tests print nothing random, so failures replay. */
static uint64_t tu_rand_state = 0x9e3779b97f4a7c15ull;

static inline uint64_t tu_rand(void)
{
	tu_rand_state ^= tu_rand_state >> 12;
	tu_rand_state ^= tu_rand_state << 25;
	tu_rand_state ^= tu_rand_state >> 27;
	return tu_rand_state * 2685821657736338717ull;
}

static inline size_t tu_below(size_t n)
{
	return n == 0 ? 0 : (size_t)(tu_rand() % n);
}

static inline void tu_fill(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(tu_rand() >> 56);
}

/* Writes data to a new temporary file; its path goes into path (cap >= 64). 0 or -1. */
static inline int tu_temp_file(const uint8_t *data, size_t n, char *path, size_t cap)
{
	const char *dir = getenv("TMPDIR");
	int fd, ok;
	FILE *f;

	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	if (snprintf(path, cap, "%s/sdtest-XXXXXX", dir) >= (int)cap || (fd = mkstemp(path)) < 0)
		return -1;
	if ((f = fdopen(fd, "wb")) == NULL) {
		close(fd);
		unlink(path);
		return -1;
	}
	ok = (n == 0 || fwrite(data, 1, n, f) == n);
	if (fclose(f) != 0 || !ok) {
		unlink(path);
		return -1;
	}
	return 0;
}

#endif
