/* hex.c: lower-case hexadecimal encoding and strict decoding, and the all-zero test (hex.h). */
#include "hex.h"

#include <string.h>

#include "err.h"

void
hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

static int
digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
hex_decode(const char *text, size_t text_len, uint8_t *out, size_t n)
{
	size_t i;

	if (n > SIZE_MAX / 2 || text_len != 2 * n)
		return SD_ERR_BAD_FIELD;
	for (i = 0; i < text_len; i++)
		if (digit_value(text[i]) < 0)
			return SD_ERR_BAD_FIELD;
	for (i = 0; i < n; i++)
		out[i] = (uint8_t)(digit_value(text[2 * i]) << 4 | digit_value(text[2 * i + 1]));
	return 0;
}

int
bytes_zero(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != 0)
			return 0;
	return 1;
}
