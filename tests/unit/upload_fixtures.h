/* upload_fixtures.h: a minimal, bounds-checked JSON reader and file helpers for the unit tests
 * that read the recorded client runs in $SEALDROP_FIXTURES (static functions, one copy per
 * test program). Enough for the fixture files: objects, arrays, strings, integers, null. */
#ifndef SD_UPLOAD_FIXTURES_H
#define SD_UPLOAD_FIXTURES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A whole file in a new NUL-terminated allocation (free()); NULL on failure. */
static uint8_t *
fx_read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *data = NULL;
	long size;

	*len = 0;
	if (fp == NULL)
		return NULL;
	if (fseek(fp, 0, SEEK_END) != 0 || (size = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0)
		goto out;
	if ((data = malloc((size_t)size + 1)) == NULL)
		goto out;
	if (fread(data, 1, (size_t)size, fp) != (size_t)size) {
		free(data);
		data = NULL;
		goto out;
	}
	data[size] = 0;
	*len = (size_t)size;
out:
	fclose(fp);
	return data;
}

/* A JSON value: text from p up to the end of the document e. */
struct fx_json {
	const char *p;
	const char *e;
};

static const char *
fx_ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	return p;
}

/* The end of the value at p, or NULL if it is malformed. */
static const char *
fx_skip(const char *p, const char *e)
{
	int depth = 0;

	p = fx_ws(p, e);
	if (p >= e)
		return NULL;
	if (*p != '{' && *p != '[' && *p != '"') {
		while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n')
			p++;
		return p;
	}
	do {
		if (p >= e)
			return NULL;
		if (*p == '"') {
			for (p++; p < e && *p != '"'; p++)
				if (*p == '\\')
					p++;
			if (p >= e)
				return NULL;
		} else if (*p == '{' || *p == '[') {
			depth++;
		} else if (*p == '}' || *p == ']') {
			depth--;
		}
		p++;
	} while (depth > 0);
	return p;
}

/* The member key of object v: 0 and *out, or -1 if absent. */
static int
fx_get(struct fx_json v, const char *key, struct fx_json *out)
{
	const char *p = fx_ws(v.p, v.e), *k, *e = v.e;
	size_t klen = strlen(key);

	if (p >= e || *p != '{')
		return -1;
	p = fx_ws(p + 1, e);
	while (p < e && *p == '"') {
		k = p + 1;
		if ((p = fx_skip(p, e)) == NULL)
			return -1;
		p = fx_ws(p, e);
		if (p >= e || *p != ':')
			return -1;
		p = fx_ws(p + 1, e);
		if ((size_t)(p - k) >= klen + 1 && memcmp(k, key, klen) == 0 && k[klen] == '"') {
			out->p = p;
			out->e = e;
			return 0;
		}
		if ((p = fx_skip(p, e)) == NULL)
			return -1;
		p = fx_ws(p, e);
		if (p < e && *p == ',')
			p = fx_ws(p + 1, e);
	}
	return -1;
}

/* Element i of array v: 0 and *out, or -1 past the end. */
static int
fx_at(struct fx_json v, size_t i, struct fx_json *out)
{
	const char *p = fx_ws(v.p, v.e), *e = v.e;

	if (p >= e || *p != '[')
		return -1;
	p = fx_ws(p + 1, e);
	for (;;) {
		if (p >= e || *p == ']')
			return -1;
		if (i == 0) {
			out->p = p;
			out->e = e;
			return 0;
		}
		if ((p = fx_skip(p, e)) == NULL)
			return -1;
		p = fx_ws(p, e);
		if (p >= e || *p != ',')
			return -1;
		p = fx_ws(p + 1, e);
		i--;
	}
}

static int
fx_is_null(struct fx_json v)
{
	const char *p = fx_ws(v.p, v.e);

	return v.e - p >= 4 && memcmp(p, "null", 4) == 0;
}

/* A non-negative integer. */
static int
fx_u64(struct fx_json v, uint64_t *out)
{
	const char *p = fx_ws(v.p, v.e);
	uint64_t x = 0;
	int digits = 0;

	while (p < v.e && *p >= '0' && *p <= '9' && digits < 19) {
		x = x * 10u + (uint64_t)(*p - '0');
		p++;
		digits++;
	}
	if (digits == 0)
		return -1;
	*out = x;
	return 0;
}

/* A string without escapes other than \" \\ \/, into out (cap bytes with the NUL). */
static int
fx_str(struct fx_json v, char *out, size_t cap)
{
	const char *p = fx_ws(v.p, v.e);
	size_t n = 0;

	if (p >= v.e || *p != '"')
		return -1;
	for (p++; p < v.e && *p != '"'; p++) {
		if (*p == '\\') {
			if (++p >= v.e || (*p != '"' && *p != '\\' && *p != '/'))
				return -1;
		}
		if (n + 1 >= cap)
			return -1;
		out[n++] = *p;
	}
	if (p >= v.e)
		return -1;
	out[n] = '\0';
	return 0;
}

static int
fx_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A hex string of exactly n bytes. */
static int
fx_hex(struct fx_json v, uint8_t *out, size_t n)
{
	char text[256];
	size_t i;
	int hi, lo;

	if (n * 2 + 1 > sizeof(text) || fx_str(v, text, sizeof(text)) != 0 || strlen(text) != n * 2)
		return -1;
	for (i = 0; i < n; i++) {
		if ((hi = fx_hexval(text[2 * i])) < 0 || (lo = fx_hexval(text[2 * i + 1])) < 0)
			return -1;
		out[i] = (uint8_t)(hi * 16 + lo);
	}
	return 0;
}

/* fx_get() for a path of member keys, e.g. fx_path(v, out, "fields", "cksum", NULL). */
static int
fx_path(struct fx_json v, struct fx_json *out, const char *key, const char *key2)
{
	struct fx_json mid;

	if (fx_get(v, key, &mid) != 0)
		return -1;
	if (key2 == NULL) {
		*out = mid;
		return 0;
	}
	return fx_get(mid, key2, out);
}

#endif
