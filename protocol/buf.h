/* buf.h: the bounded byte buffer that every wire byte passes through.
 * Typed little-endian get/put; a get that fails leaves the buffer untouched; a put never
 * passes the buffer's limit. Ownership: buf_init() allocates, buf_free() releases (and wipes);
 * buf_view() and buf_fixed() borrow caller memory and never free it. */
#ifndef SD_BUF_H
#define SD_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;   /* storage */
	size_t cap;      /* bytes allocated in data */
	size_t max;      /* hard limit on cap (growable buffers) */
	size_t off;      /* read position */
	size_t len;      /* write position: readable bytes are data[off..len) */
	int owned;       /* 1: data is ours to realloc and free */
	int readonly;    /* 1: a view, puts fail */
};

/* An empty buffer that grows on put up to max bytes. Free with buf_free(). */
void buf_init(struct buf *b, size_t max);
/* A read-only view over len bytes of caller memory (gets only). */
void buf_view(struct buf *b, const void *data, size_t len);
/* An empty buffer writing into cap bytes of caller memory (never grows, never frees). */
void buf_fixed(struct buf *b, void *mem, size_t cap);
/* Releases owned storage after wiping it; accepts NULL; leaves *b empty. */
void buf_free(struct buf *b);
/* Drops all content (keeps storage). */
void buf_reset(struct buf *b);

size_t buf_len(const struct buf *b);            /* readable bytes */
const uint8_t *buf_ptr(const struct buf *b);    /* first readable byte */

/* Gets: 0 or SD_ERR_SHORT (then nothing consumed). Little-endian. */
int buf_get_u8(struct buf *b, uint8_t *v);
int buf_get_u16(struct buf *b, uint16_t *v);
int buf_get_u32(struct buf *b, uint32_t *v);
int buf_get_u64(struct buf *b, uint64_t *v);
int buf_get_bytes(struct buf *b, void *out, size_t n);
int buf_skip(struct buf *b, size_t n);
/* A fixed-size string field of field_size bytes: it must hold a NUL; out (field_size bytes)
 * receives the text up to the NUL, NUL-terminated. Bytes after the NUL are ignored (tolerant).
 * SD_ERR_SHORT, or SD_ERR_BAD_STRING when no NUL is inside the field (nothing consumed). */
int buf_get_string(struct buf *b, char *out, size_t field_size);

/* Puts: 0, SD_ERR_FULL (limit) or SD_ERR_ALLOC; on failure nothing is written. */
int buf_put_u8(struct buf *b, uint8_t v);
int buf_put_u16(struct buf *b, uint16_t v);
int buf_put_u32(struct buf *b, uint32_t v);
int buf_put_u64(struct buf *b, uint64_t v);
int buf_put_bytes(struct buf *b, const void *data, size_t n);
int buf_put_zeros(struct buf *b, size_t n);
/* s zero-padded to field_size bytes; SD_ERR_BAD_STRING if strlen(s) >= field_size. */
int buf_put_string(struct buf *b, const char *s, size_t field_size);

#endif
