/* der.h: DER of RSA keys (X.509 SubjectPublicKeyInfo, PKCS#8 PrivateKeyInfo, PKCS#1
 * RSAPrivateKey) to and from big-endian integers, through libtasn1. Internal to protocol/:
 * rsa.c turns the integers into libgcrypt keys. No allocation is handed to the caller. */
#ifndef SD_DER_H
#define SD_DER_H

#include <stddef.h>
#include <stdint.h>

/* The largest RSA modulus accepted anywhere, and so the largest integer a key may hold. */
#define DER_RSA_MAX_BITS 4096u
#define DER_NUM_MAX (DER_RSA_MAX_BITS / 8u)
/* The largest key DER accepted (a 4096-bit PKCS#8 key is about 2.4 kB). */
#define DER_KEY_MAX_SIZE 8192u

/* A non-negative integer: big-endian magnitude without leading zero bytes (zero has len 0). */
struct der_num {
	size_t len;
	uint8_t b[DER_NUM_MAX];
};

struct der_rsa_public {
	struct der_num n, e;
};

/* PKCS#1 names and order: prime1 = p, prime2 = q, exponent1 = d mod (p-1),
 * exponent2 = d mod (q-1), coefficient = q^-1 mod p. Holds secrets: wipe after use. */
struct der_rsa_private {
	struct der_num n, e, d, p, q, dp, dq, qinv;
};

/* Sets num to the integer of bytes[0..n) (leading zeros allowed); SD_ERR_TOO_LARGE if its
 * magnitude passes DER_NUM_MAX bytes. */
int der_num_set(struct der_num *num, const uint8_t *bytes, size_t n);

/* Decodes an RSA SubjectPublicKeyInfo (algorithm rsaEncryption, parameters NULL or absent)
 * from der[0..n). Bytes after the DER are allowed only if *used is not NULL: then *used tells
 * how many bytes the DER took and the caller judges the rest. SD_ERR_DER on bad DER,
 * SD_ERR_BAD_KEY for another algorithm or a negative or oversized integer. */
int der_spki_decode(const uint8_t *der, size_t n, size_t *used, struct der_rsa_public *out);
/* Encodes SPKI with NULL parameters into out[0..cap); *len gets its size (SD_ERR_FULL if cap
 * is too small). */
int der_spki_encode(const struct der_rsa_public *k, uint8_t *out, size_t cap, size_t *len);

/* Decodes a PKCS#8 PrivateKeyInfo (version 0, rsaEncryption, no attributes) or a PKCS#1
 * RSAPrivateKey (version 0, two primes) of exactly n bytes. out is wiped on failure. */
int der_private_decode(const uint8_t *der, size_t n, struct der_rsa_private *out);
/* Encode PKCS#1 RSAPrivateKey, or PKCS#8 PrivateKeyInfo around it with NULL parameters and no
 * attributes (what Crypto++ writes), into out[0..cap); *len gets the size. */
int der_pkcs1_encode(const struct der_rsa_private *k, uint8_t *out, size_t cap, size_t *len);
int der_pkcs8_encode(const struct der_rsa_private *k, uint8_t *out, size_t cap, size_t *len);

#endif
