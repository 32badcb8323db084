/* crypto.h: every cryptographic operation of sealdrop, on libgcrypt (keys encoded as DER
 * through libtasn1 in der.c). Fixed-size key types; results checked; secrets wiped when freed.
 * crypto_init() is called once from main() (and from each test program) before anything else. */
#ifndef SD_CRYPTO_H
#define SD_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "codes.h"

/* Initialises libgcrypt (version check, secure memory, finished initialisation).
 * 0 or SD_ERR_CRYPTO. Safe to call more than once. */
int crypto_init(void);

/* Random bytes from libgcrypt's strong RNG (IDs and AES keys). */
void crypto_random(void *out, size_t n);

/* RSA keys. Opaque; free functions accept NULL and wipe. */
struct rsa_private;
struct rsa_public;

void rsa_private_free(struct rsa_private *k);
void rsa_public_free(struct rsa_public *k);

/* A new RSA-1024 key pair with public exponent 17 (its SPKI is PUBLIC_KEY_SIZE bytes). */
int rsa_generate(struct rsa_private **out);
/* The public half of a private key. */
int rsa_public_from_private(const struct rsa_private *k, struct rsa_public **out);
/* Modulus size in bits, and the public exponent (for checks and tests). */
unsigned rsa_public_bits(const struct rsa_public *k);
unsigned long rsa_public_exponent(const struct rsa_public *k);

/* X.509 SubjectPublicKeyInfo DER. Import accepts any RSA SPKI of at most PUBLIC_KEY_SIZE bytes
 * with no trailing bytes after the DER (zero padding after it inside the 160-byte field is
 * allowed: pass the field and its size). Export writes the canonical DER into out (cap bytes)
 * and sets *len; for RSA-1024 with e = 17 that is exactly 160 bytes. */
int rsa_public_from_spki(const uint8_t *der, size_t n, struct rsa_public **out);
int rsa_public_to_spki(const struct rsa_public *k, uint8_t *out, size_t cap, size_t *len);

/* Private key DER. Import accepts PKCS#8 PrivateKeyInfo or PKCS#1 RSAPrivateKey. Export writes
 * PKCS#8 (byte for byte what Crypto++ writes); *der is allocated, the caller releases it with
 * crypto_free_secret(*der, *len). */
int rsa_private_from_der(const uint8_t *der, size_t n, struct rsa_private **out);
int rsa_private_to_pkcs8(const struct rsa_private *k, uint8_t **der, size_t *len);
/* The same key as PKCS#1 RSAPrivateKey DER (prime1 > prime2 for our own keys, as Crypto++ and
 * OpenSSL write them); released like rsa_private_to_pkcs8's. */
int rsa_private_to_pkcs1(const struct rsa_private *k, uint8_t **der, size_t *len);

/* RSA-OAEP with SHA-1, MGF1-SHA-1, empty label: wraps and unwraps the 32-byte AES key. */
int rsa_oaep_wrap(const struct rsa_public *k, const uint8_t key[AES_KEY_SIZE],
    uint8_t out[WRAPPED_KEY_SIZE]);
int rsa_oaep_unwrap(const struct rsa_private *k, const uint8_t in[WRAPPED_KEY_SIZE],
    uint8_t key[AES_KEY_SIZE]);

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
