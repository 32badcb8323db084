/* base64.c: standard base64 (RFC 4648) for the private key text of me.info and priv.key.
 * The decoder skips ASCII white space so that 72-column wrapped text reads as one line. */
#include "base64.h"

#include <stdint.h>
#include <string.h>

#include "crypto.h"
#include "err.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_encode(const uint8_t *in, size_t n, char **out, size_t *out_len)
{
	char *s = NULL;
	size_t len = 0, i, o = 0;
	int r;

	if (out == NULL || out_len == NULL)
		return SD_ERR_INVALID_ARG;
	*out = NULL;
	*out_len = 0;
	if (in == NULL && n > 0)
		return SD_ERR_INVALID_ARG;
	/* 4 characters per started group of 3, plus the NUL, must fit a size_t. */
	if (n / 3 >= (SIZE_MAX - 5) / 4) {
		r = SD_ERR_TOO_LARGE;
		goto out;
	}
	len = (n + 2) / 3 * 4;
	if ((s = crypto_alloc_secret(len + 1)) == NULL) {
		r = SD_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		s[o++] = alphabet[v >> 18];
		s[o++] = alphabet[(v >> 12) & 63];
		s[o++] = alphabet[(v >> 6) & 63];
		s[o++] = alphabet[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		s[o++] = alphabet[v >> 18];
		s[o++] = alphabet[(v >> 12) & 63];
		s[o++] = '=';
		s[o++] = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		s[o++] = alphabet[v >> 18];
		s[o++] = alphabet[(v >> 12) & 63];
		s[o++] = alphabet[(v >> 6) & 63];
		s[o++] = '=';
	}
	s[o] = '\0';
	*out = s;
	*out_len = o;
	s = NULL;
	r = 0;
out:
	crypto_free_secret(s, len + 1);
	return r;
}

/* The 6-bit value of a base64 character, or -1. */
static int value_of(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

static int is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Longer than 60 lines on purpose: one pass over the text with its white-space, padding and
 * trailing-bits rules next to each other, so that what is accepted can be read in one place. */
int base64_decode(const char *in, size_t n, uint8_t **out, size_t *out_len)
{
	uint8_t *buf = NULL;
	size_t cap = 0, o = 0, i;
	uint32_t group = 0;
	unsigned have = 0, pad = 0;
	int r;

	if (out == NULL || out_len == NULL)
		return SD_ERR_INVALID_ARG;
	*out = NULL;
	*out_len = 0;
	if (in == NULL && n > 0)
		return SD_ERR_INVALID_ARG;
	/* Every 4 characters give at most 3 bytes; one spare byte keeps the allocation non-empty. */
	cap = n / 4 * 3 + 1;
	if ((buf = crypto_alloc_secret(cap)) == NULL) {
		r = SD_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		int v;

		if (is_space(c))
			continue;
		if (c == '=') {
			/* Padding only fills the last one or two places of a group. */
			if (have < 2) {
				r = SD_ERR_BAD_BASE64;
				goto out;
			}
			pad++;
			have++;
			group <<= 6;
		} else {
			if (pad > 0 || (v = value_of(c)) < 0) {
				r = SD_ERR_BAD_BASE64;
				goto out;
			}
			group = group << 6 | (uint32_t)v;
			have++;
		}
		if (have < 4)
			continue;
		if (pad > 2) {
			r = SD_ERR_BAD_BASE64;
			goto out;
		}
		buf[o++] = (uint8_t)(group >> 16);
		if (pad < 2)
			buf[o++] = (uint8_t)(group >> 8);
		if (pad < 1)
			buf[o++] = (uint8_t)group;
		/* The bits under the padding must be zero (canonical text). */
		if ((pad == 1 && (group & 0xff) != 0) || (pad == 2 && (group & 0xffff) != 0)) {
			r = SD_ERR_BAD_BASE64;
			goto out;
		}
		if (pad > 0) {
			/* Nothing but white space may follow the padded group. */
			for (i++; i < n; i++) {
				if (!is_space((unsigned char)in[i])) {
					r = SD_ERR_BAD_BASE64;
					goto out;
				}
			}
			have = 0;
			break;
		}
		group = 0;
		have = 0;
	}
	if (have != 0) {
		r = SD_ERR_BAD_BASE64; /* a truncated group */
		goto out;
	}
	*out = buf;
	*out_len = o;
	buf = NULL;
	r = 0;
out:
	crypto_wipe(&group, sizeof(group));
	crypto_free_secret(buf, cap);
	return r;
}
