/* crypto.h: libgcrypt's set-up, the strong RNG, SHA-256, wiping and secret memory. RSA keys are
 * in rsa.h, AES streams in aes.h; these three are the only users of libgcrypt.
 * crypto_init() is called once from main() (and from each test program) before anything else. */
#ifndef SD_CRYPTO_H
#define SD_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

/* Initialises libgcrypt (version check, secure memory, finished initialisation).
 * 0 or SD_ERR_CRYPTO. Safe to call more than once. */
int crypto_init(void);

/* Random bytes from libgcrypt's strong RNG (IDs and AES keys). */
void crypto_random(void *out, size_t n);

/* n bytes (at least one) of memory for secrets, from libgcrypt's secure pool (it grows on
 * demand); NULL if out of memory. Released with crypto_free_secret(p, n). */
void *crypto_alloc_secret(size_t n);
/* Wipes and frees memory handed out by this module; accepts NULL. */
void crypto_free_secret(void *p, size_t n);
/* Wipes n bytes in a way the compiler keeps. */
void crypto_wipe(void *p, size_t n);

/* SHA-256 (key fingerprints for the inspect tool). */
void crypto_sha256(const void *data, size_t n, uint8_t out[32]);

/* Streaming SHA-256 over slices of any size (version-4 files: whole-file and prefix hashes).
 * sha256_new() hands over a context on success (*out NULL on failure); sha256_free() accepts
 * NULL. sha256_peek() writes the digest of what was hashed so far and leaves the context able
 * to go on (call it at the end for the final digest). */
struct sha256_ctx;

int sha256_new(struct sha256_ctx **out);
void sha256_update(struct sha256_ctx *c, const void *data, size_t n);
int sha256_peek(const struct sha256_ctx *c, uint8_t out[32]);
void sha256_free(struct sha256_ctx *c);

#endif
