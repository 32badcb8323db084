/* aes.h: AES-256-CBC streams on libgcrypt, as version 3 encrypts files. Needs crypto_init()
 * first (crypto.h). */
#ifndef SD_AES_H
#define SD_AES_H

#include <stddef.h>
#include <stdint.h>

#include "codes.h"

/* AES-256-CBC with a zero IV and PKCS#7 padding, streamed over slices of any size.
 * Encrypt: update() writes whole blocks as they fill (out needs in_len + AES_BLOCK_SIZE bytes),
 * final() writes the last padded block (16 bytes; an empty input gives one block).
 * Decrypt: update() holds back the last block, so out needs in_len + AES_BLOCK_SIZE bytes;
 * final() checks and strips the padding (SD_ERR_BAD_PADDING if the total is not a positive
 * multiple of 16 or the padding is wrong) and writes the remaining plaintext (< 16 bytes).
 * One context per stream; aes_cbc_reset() starts a new stream with the same key. */
struct aes_cbc;

enum aes_direction { AES_ENCRYPT, AES_DECRYPT };

int aes_cbc_new(struct aes_cbc **out, const uint8_t key[AES_KEY_SIZE], enum aes_direction dir);
void aes_cbc_free(struct aes_cbc *c);
int aes_cbc_reset(struct aes_cbc *c);
int aes_cbc_update(struct aes_cbc *c, const uint8_t *in, size_t in_len, uint8_t *out,
    size_t *out_len);
int aes_cbc_final(struct aes_cbc *c, uint8_t *out, size_t *out_len);
/* The ciphertext size of a plaintext of n bytes: (n / 16 + 1) * 16. */
uint64_t aes_cbc_ciphertext_size(uint64_t n);

#endif
