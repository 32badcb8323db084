/* hex.h: lower-case hexadecimal of byte strings (client IDs in me.info, folder names, logs,
 * the inspect tool) and its strict inverse; and whether a byte string is all zeros (an unset
 * client ID or digest). */
#ifndef SD_HEX_H
#define SD_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Writes 2 * n lower-case hex digits and a NUL to out (2 * n + 1 bytes). */
void hex_encode(const uint8_t *in, size_t n, char *out);
/* Decodes exactly 2 * n hex digits (either case) of text into n bytes of out.
 * 0, or SD_ERR_BAD_FIELD if text_len != 2 * n or a character is not a hex digit (out is then
 * left unchanged). */
int hex_decode(const char *text, size_t text_len, uint8_t *out, size_t n);

/* 1 if the n bytes at p are all zero (n == 0 included), else 0. */
int bytes_zero(const uint8_t *p, size_t n);

#endif
