/* text.c: the client-name rule, the file-name rule and the display sanitisers of text.h, on
 * one UTF-8 decoder, so that the client refuses exactly what the server refuses. */
#include "text.h"

#include <stdio.h>
#include <string.h>

#include "err.h"

const char *
text_fault_str(enum text_fault f)
{
	switch (f) {
	case TEXT_OK: return "is valid";
	case TEXT_EMPTY: return "is empty";
	case TEXT_TOO_LONG: return "is longer than 254 bytes";
	case TEXT_CONTROL: return "has a control character";
	case TEXT_NOT_UTF8: return "is not valid UTF-8";
	case TEXT_DOT: return "is '.' or '..'";
	case TEXT_RESERVED: return "starts with " TEXT_RESERVED_PREFIX " (reserved by the server)";
	}
	return "is not allowed";
}

size_t
text_utf8_len(const uint8_t *s, size_t n)
{
	uint8_t c = s[0];
	size_t len, i;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {          /* 0xc0, 0xc1 would only start overlong forms */
		len = 2;
		cp = c & 0x1fu;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0fu;
	} else if (c >= 0xf0 && c <= 0xf4) {   /* past 0xf4 is past U+10FFFF */
		len = 4;
		cp = c & 0x07u;
	} else {
		return 0;                          /* a continuation byte first, or no lead byte */
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0u) != 0x80u)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3fu);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* Checks n bytes: well-formed UTF-8, no C0 or DEL, and no C1 if refuse_c1. */
static enum text_fault
scan(const uint8_t *s, size_t n, int refuse_c1)
{
	size_t i, step;

	for (i = 0; i < n; i += step) {
		if (s[i] < 0x20 || s[i] == 0x7f)
			return TEXT_CONTROL;
		if ((step = text_utf8_len(s + i, n - i)) == 0)
			return TEXT_NOT_UTF8;
		/* U+0080-U+009F are 0xc2 0x80-0x9f. */
		if (refuse_c1 && step == 2 && s[i] == 0xc2 && s[i + 1] <= 0x9f)
			return TEXT_CONTROL;
	}
	return TEXT_OK;
}

static int
fault(enum text_fault f, enum text_fault *why)
{
	if (why != NULL)
		*why = f;
	return f == TEXT_OK ? 0 : SD_ERR_BAD_STRING;
}

int
text_name_check(const char *name, enum text_fault *why)
{
	size_t n;

	if (why != NULL)
		*why = TEXT_OK;
	if (name == NULL)
		return SD_ERR_INVALID_ARG;
	n = strnlen(name, NAME_FIELD_SIZE);
	if (n == 0)
		return fault(TEXT_EMPTY, why);
	if (n > NAME_MAX_LEN)
		return fault(TEXT_TOO_LONG, why);
	return fault(scan((const uint8_t *)name, n, 1), why);
}

int
text_file_name(const char *wire_name, char out[NAME_FIELD_SIZE], enum text_fault *why)
{
	size_t n, i, base = 0;
	enum text_fault f;

	if (why != NULL)
		*why = TEXT_OK;
	if (out != NULL)
		out[0] = '\0';
	if (wire_name == NULL || out == NULL)
		return SD_ERR_INVALID_ARG;
	n = strnlen(wire_name, NAME_FIELD_SIZE);
	if (n == 0)
		return fault(TEXT_EMPTY, why);
	if (n > NAME_MAX_LEN)
		return fault(TEXT_TOO_LONG, why);
	/* The whole name is checked, not just the part kept: the database stores it as sent. */
	if ((f = scan((const uint8_t *)wire_name, n, 0)) != TEXT_OK)
		return fault(f, why);
	/* '/' and '\\' are ASCII, never inside a multi-byte sequence, so cutting is safe. */
	for (i = 0; i < n; i++)
		if (wire_name[i] == '/' || wire_name[i] == '\\')
			base = i + 1;
	n -= base;
	if (n == 0)
		return fault(TEXT_EMPTY, why);
	if (strcmp(wire_name + base, ".") == 0 || strcmp(wire_name + base, "..") == 0)
		return fault(TEXT_DOT, why);
	if (strncmp(wire_name + base, TEXT_RESERVED_PREFIX, strlen(TEXT_RESERVED_PREFIX)) == 0)
		return fault(TEXT_RESERVED, why);
	memcpy(out, wire_name + base, n);
	out[n] = '\0';
	return 0;
}

void
text_ascii_safe(const char *in, char *out, size_t cap)
{
	size_t i, o = 0;

	if (cap < 4) {
		if (cap > 0)
			out[0] = '\0';
		return;
	}
	if (in == NULL)
		in = "";
	for (i = 0; in[i] != '\0'; i++) {
		unsigned char ch = (unsigned char)in[i];
		char c = (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') ? '?' : (char)ch;

		if (o + 1 >= cap) {
			/* Cut: replace the tail with "..." so the reader sees it was cut. */
			size_t at = o >= 3 ? o - 3 : 0;

			memcpy(out + at, "...", 3);
			o = at + 3;
			break;
		}
		out[o++] = c;
	}
	out[o] = '\0';
}

size_t
text_escape(const char *in, char *out, size_t cap)
{
	const uint8_t *p = (const uint8_t *)in;
	size_t n, i = 0, o = 0, k;

	if (cap == 0)
		return 0;
	n = in != NULL ? strlen(in) : 0;
	while (i < n) {
		k = text_utf8_len(p + i, n - i);
		/* C1 controls (U+0080 to U+009F, UTF-8 C2 80 to C2 9F) move a cursor too
		 * (U+009B is CSI): escaped byte by byte like C0. */
		if (k == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0)
			k = 0;
		if (k == 0 || p[i] < 0x20 || p[i] == 0x7f) {
			if (o + 4 >= cap)
				break;
			snprintf(out + o, 5, "\\x%02x", p[i]);
			o += 4;
			i++;
			continue;
		}
		if (o + k >= cap)
			break;
		memcpy(out + o, p + i, k);
		o += k;
		i += k;
	}
	out[o] = '\0';
	return o;
}
