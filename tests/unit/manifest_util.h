/* manifest_util.h: small helpers for the crypto unit tests (static, one copy per program):
 * fixture paths under $SEALDROP_FIXTURES, whole-file reads, a key scanner for the flat JSON of
 * the fixture manifests, hex, a seeded PRNG and temporary files. */
#ifndef SD_MANIFEST_UTIL_H
#define SD_MANIFEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* $SEALDROP_FIXTURES/rel into out; 0, or -1 if the variable is unset or the path too long. */
static inline int mu_fixture(char *out, size_t cap, const char *rel)
{
	const char *top = getenv("SEALDROP_FIXTURES");
	int n;

	if (top == NULL || *top == '\0')
		return -1;
	n = snprintf(out, cap, "%s/%s", top, rel);
	return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* A whole file in a new NUL-terminated allocation (free()); NULL on failure. */
static inline uint8_t *mu_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *data = NULL;
	size_t cap = 0, n = 0, r;

	*len = 0;
	if (f == NULL)
		return NULL;
	for (;;) {
		if (cap - n < 4096) {
			uint8_t *t = realloc(data, cap + 65536 + 1);
			if (t == NULL) {
				free(data);
				fclose(f);
				return NULL;
			}
			data = t;
			cap += 65536;
		}
		if ((r = fread(data + n, 1, cap - n, f)) == 0)
			break;
		n += r;
	}
	fclose(f);
	data[n] = 0;
	*len = n;
	return data;
}

/* A fixture file (see mu_fixture); NULL if missing. */
static inline uint8_t *mu_read_fixture(const char *rel, size_t *len)
{
	char path[4096];

	*len = 0;
	if (mu_fixture(path, sizeof(path), rel) != 0)
		return NULL;
	return mu_read(path, len);
}

/* Finds "key": "VALUE" at or after from and copies VALUE (no escapes in fixture values) into
 * out; returns the position after the value, or NULL. */
static inline const char *mu_string(const char *from, const char *key, char *out, size_t cap)
{
	char pat[128];
	const char *p, *q;

	snprintf(pat, sizeof(pat), "\"%s\"", key);
	if ((p = strstr(from, pat)) == NULL)
		return NULL;
	p += strlen(pat);
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	if (*p++ != ':')
		return NULL;
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	if (*p++ != '"' || (q = strchr(p, '"')) == NULL || (size_t)(q - p) >= cap)
		return NULL;
	memcpy(out, p, (size_t)(q - p));
	out[q - p] = '\0';
	return q + 1;
}

/* Finds "key": NUMBER at or after from. */
static inline const char *mu_number(const char *from, const char *key, uint64_t *out)
{
	char pat[128];
	const char *p;
	uint64_t v = 0;
	int digits = 0;

	snprintf(pat, sizeof(pat), "\"%s\"", key);
	if ((p = strstr(from, pat)) == NULL)
		return NULL;
	p += strlen(pat);
	while (*p == ' ' || *p == ':' || *p == '\n')
		p++;
	for (; *p >= '0' && *p <= '9' && digits < 19; p++, digits++)
		v = v * 10 + (uint64_t)(*p - '0');
	if (digits == 0)
		return NULL;
	*out = v;
	return p;
}

/* Hex text to bytes; the number of bytes, or -1 on a bad digit, odd length or overflow. */
static inline long mu_hex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex), i;

	if (n % 2 != 0 || n / 2 > cap)
		return -1;
	for (i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return (long)(n / 2);
}

/* A reproducible xorshift64* stream: tests print nothing random, so failures replay. */
static uint64_t mu_rand_state = 0x9e3779b97f4a7c15ull;

static inline uint64_t mu_rand(void)
{
	mu_rand_state ^= mu_rand_state >> 12;
	mu_rand_state ^= mu_rand_state << 25;
	mu_rand_state ^= mu_rand_state >> 27;
	return mu_rand_state * 2685821657736338717ull;
}

static inline size_t mu_below(size_t n)
{
	return n == 0 ? 0 : (size_t)(mu_rand() % n);
}

static inline void mu_fill(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(mu_rand() >> 56);
}

/* Writes data to a new temporary file; its path goes into path (cap >= 64). 0 or -1. */
static inline int mu_temp_file(const uint8_t *data, size_t n, char *path, size_t cap)
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
