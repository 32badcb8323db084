/* buf.c: the bounded byte buffer (buf.h). Every get checks the readable length before it
 * touches anything, every put reserves room for all its bytes first, so neither can half-happen. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"

/* The first allocation of a growable buffer; later ones double. */
#define BUF_INITIAL_CAP 64u

/* Wipes in a way the compiler cannot drop (explicit_bzero): the buffer may have held key
 * material, and crypto.h belongs to the crypto module, which this one must not depend on. */
static void buf_wipe(void *p, size_t n)
{
	explicit_bzero(p, n);
}

void buf_init(struct buf *b, size_t max)
{
	if (b == NULL)
		return;
	memset(b, 0, sizeof(*b));
	b->max = max;
	b->owned = 1;
}

void buf_view(struct buf *b, const void *data, size_t len)
{
	if (b == NULL)
		return;
	memset(b, 0, sizeof(*b));
	if (data == NULL)
		len = 0;
	/* The cast drops const only for storage; readonly = 1 keeps every put away from it. */
	b->data = (uint8_t *)(uintptr_t)data;
	b->cap = len;
	b->max = len;
	b->len = len;
	b->readonly = 1;
}

void buf_fixed(struct buf *b, void *mem, size_t cap)
{
	if (b == NULL)
		return;
	memset(b, 0, sizeof(*b));
	if (mem == NULL)
		cap = 0;
	b->data = mem;
	b->cap = cap;
	b->max = cap;
}

void buf_free(struct buf *b)
{
	size_t max;
	int owned;

	if (b == NULL)
		return;
	max = b->max;
	owned = b->owned;
	if (owned && b->data != NULL) {
		buf_wipe(b->data, b->cap);
		free(b->data);
	}
	memset(b, 0, sizeof(*b));
	/* A growable buffer stays usable, as if buf_init(b, max) had just run. */
	if (owned) {
		b->max = max;
		b->owned = 1;
	}
}

void buf_reset(struct buf *b)
{
	if (b == NULL)
		return;
	b->off = 0;
	b->len = 0;
}

size_t buf_len(const struct buf *b)
{
	return b == NULL ? 0 : b->len - b->off;
}

const uint8_t *buf_ptr(const struct buf *b)
{
	if (b == NULL || b->data == NULL)
		return NULL;
	return b->data + b->off;
}

/* Makes room for n more bytes after len: first by moving unread bytes to the front, then (for
 * owned buffers) by growing geometrically, never past max. Content is unchanged on failure. */
static int buf_reserve(struct buf *b, size_t n)
{
	size_t used, newcap;
	uint8_t *p;

	if (b == NULL)
		return SD_ERR_INVALID_ARG;
	if (b->readonly)
		return SD_ERR_FULL;
	if (n <= b->cap - b->len)
		return 0;
	used = b->len - b->off;
	if (n > b->max - used || (!b->owned && n > b->cap - used))
		return SD_ERR_FULL;
	if (n <= b->cap - used) {
		memmove(b->data, b->data + b->off, used);
		b->off = 0;
		b->len = used;
		return 0;
	}
	newcap = b->cap > 0 ? b->cap : BUF_INITIAL_CAP;
	while (newcap < used + n) {
		if (newcap > b->max / 2) {
			newcap = b->max;
			break;
		}
		newcap *= 2;
	}
	if (newcap > b->max)
		newcap = b->max;
	/* A fresh block rather than realloc(), so the old one can be wiped before it is freed. */
	if ((p = malloc(newcap)) == NULL)
		return SD_ERR_ALLOC;
	if (used > 0)
		memcpy(p, b->data + b->off, used);
	if (b->data != NULL) {
		buf_wipe(b->data, b->cap);
		free(b->data);
	}
	b->data = p;
	b->cap = newcap;
	b->off = 0;
	b->len = used;
	return 0;
}

int buf_get_bytes(struct buf *b, void *out, size_t n)
{
	if (b == NULL || (out == NULL && n > 0))
		return SD_ERR_INVALID_ARG;
	if (n > b->len - b->off)
		return SD_ERR_SHORT;
	if (n > 0)
		memcpy(out, b->data + b->off, n);
	b->off += n;
	return 0;
}

int buf_skip(struct buf *b, size_t n)
{
	if (b == NULL)
		return SD_ERR_INVALID_ARG;
	if (n > b->len - b->off)
		return SD_ERR_SHORT;
	b->off += n;
	return 0;
}

int buf_get_u8(struct buf *b, uint8_t *v)
{
	if (v == NULL)
		return SD_ERR_INVALID_ARG;
	*v = 0;
	return buf_get_bytes(b, v, 1);
}

int buf_get_u16(struct buf *b, uint16_t *v)
{
	uint8_t x[2];
	int r;

	if (v == NULL)
		return SD_ERR_INVALID_ARG;
	*v = 0;
	if ((r = buf_get_bytes(b, x, sizeof(x))) != 0)
		return r;
	*v = (uint16_t)(x[0] | (unsigned)x[1] << 8);
	return 0;
}

int buf_get_u32(struct buf *b, uint32_t *v)
{
	uint8_t x[4];
	int r;

	if (v == NULL)
		return SD_ERR_INVALID_ARG;
	*v = 0;
	if ((r = buf_get_bytes(b, x, sizeof(x))) != 0)
		return r;
	*v = (uint32_t)x[0] | (uint32_t)x[1] << 8 | (uint32_t)x[2] << 16 | (uint32_t)x[3] << 24;
	return 0;
}

int buf_get_u64(struct buf *b, uint64_t *v)
{
	uint8_t x[8];
	int i, r;

	if (v == NULL)
		return SD_ERR_INVALID_ARG;
	*v = 0;
	if ((r = buf_get_bytes(b, x, sizeof(x))) != 0)
		return r;
	for (i = 7; i >= 0; i--)
		*v = *v << 8 | x[i];
	return 0;
}

int buf_get_string(struct buf *b, char *out, size_t field_size)
{
	const uint8_t *p, *nul;

	if (b == NULL || out == NULL || field_size == 0)
		return SD_ERR_INVALID_ARG;
	memset(out, 0, field_size);
	if (field_size > b->len - b->off)
		return SD_ERR_SHORT;
	p = b->data + b->off;
	if ((nul = memchr(p, 0, field_size)) == NULL)
		return SD_ERR_BAD_STRING;
	memcpy(out, p, (size_t)(nul - p));
	b->off += field_size;
	return 0;
}

int buf_put_bytes(struct buf *b, const void *data, size_t n)
{
	int r;

	if (b == NULL || (data == NULL && n > 0))
		return SD_ERR_INVALID_ARG;
	if ((r = buf_reserve(b, n)) != 0)
		return r;
	if (n > 0)
		memcpy(b->data + b->len, data, n);
	b->len += n;
	return 0;
}

int buf_put_zeros(struct buf *b, size_t n)
{
	int r;

	if ((r = buf_reserve(b, n)) != 0)
		return r;
	if (n > 0)
		memset(b->data + b->len, 0, n);
	b->len += n;
	return 0;
}

int buf_put_u8(struct buf *b, uint8_t v)
{
	return buf_put_bytes(b, &v, 1);
}

int buf_put_u16(struct buf *b, uint16_t v)
{
	uint8_t x[2] = { (uint8_t)v, (uint8_t)(v >> 8) };

	return buf_put_bytes(b, x, sizeof(x));
}

int buf_put_u32(struct buf *b, uint32_t v)
{
	uint8_t x[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };

	return buf_put_bytes(b, x, sizeof(x));
}

int buf_put_u64(struct buf *b, uint64_t v)
{
	uint8_t x[8];
	int i;

	for (i = 0; i < 8; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	return buf_put_bytes(b, x, sizeof(x));
}

int buf_put_string(struct buf *b, const char *s, size_t field_size)
{
	size_t n;
	int r;

	if (b == NULL || s == NULL || field_size == 0)
		return SD_ERR_INVALID_ARG;
	/* strnlen: s need not be terminated within field_size, and must not be read further. */
	if ((n = strnlen(s, field_size)) >= field_size)
		return SD_ERR_BAD_STRING;
	if ((r = buf_reserve(b, field_size)) != 0)
		return r;
	memcpy(b->data + b->len, s, n);
	memset(b->data + b->len + n, 0, field_size - n);
	b->len += field_size;
	return 0;
}
