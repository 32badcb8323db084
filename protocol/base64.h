/* base64.h: standard base64 (RFC 4648, '+' '/' and '=' padding) for the private key in
 * me.info and priv.key. */
#ifndef SD_BASE64_H
#define SD_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Encodes n bytes as one line, no newline. *out is allocated (NUL-terminated, *out_len
 * characters); the caller frees it with crypto_free_secret(*out, *out_len + 1). */
int base64_encode(const uint8_t *in, size_t n, char **out, size_t *out_len);
/* Decodes text, skipping ASCII white space (newlines of wrapped text) anywhere. *out is
 * allocated; the caller frees it with crypto_free_secret(*out, *out_len).
 * SD_ERR_BAD_BASE64 on any other character, bad padding or a truncated group. */
int base64_decode(const char *in, size_t n, uint8_t **out, size_t *out_len);

#endif
