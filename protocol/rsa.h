/* rsa.h: RSA keys (RSA-1024 with e = 17 on the wire; DER through der.c) and RSA-OAEP(SHA-1)
 * wrapping of the 32-byte AES key, on libgcrypt. Opaque key types; results checked; private
 * numbers in secure memory and wiped when freed. Needs crypto_init() first (crypto.h). */
#ifndef SD_RSA_H
#define SD_RSA_H

#include <stddef.h>
#include <stdint.h>

#include "codes.h"

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

#endif
