/* test_crypto.c: AES-256-CBC streams against NIST SP 800-38A and the Crypto++ vectors in every
 * split, padding and length refusals, RSA-OAEP round trips, our own keys through SPKI, PKCS#8
 * and PKCS#1, SPKI import limits, and base64 against RFC 4648 and its refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../protocol/base64.h"
#include "../../protocol/aes.h"
#include "../../protocol/crypto.h"
#include "../../protocol/rsa.h"
#include "../../protocol/der.h"
#include "../../protocol/err.h"
#include "../../protocol/hex.h"
#include "json_mini.h"
#include "test_util.h"

/* ---- AES ---- */

/* Runs a whole stream fed in the slices that cuts[] marks; returns the status of the first
 * failing call, the output in out and its size in *out_len. */
static int aes_stream(enum aes_direction dir, const uint8_t key[AES_KEY_SIZE], const uint8_t *in,
    size_t n, const size_t *cuts, size_t ncuts, uint8_t *out, size_t *out_len)
{
	struct aes_cbc *c = NULL;
	size_t at = 0, o = 0, got;
	int r;

	*out_len = 0;
	assert_int_equal(aes_cbc_new(&c, key, dir), 0);
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : n;
		if ((r = aes_cbc_update(c, in + at, end - at, out + o, &got)) != 0)
			goto out;
		/* The contract: never more than in_len + one block per call. */
		assert_true(got <= end - at + AES_BLOCK_SIZE);
		o += got;
		at = end;
	}
	if ((r = aes_cbc_final(c, out + o, &got)) != 0)
		goto out;
	assert_true(got <= AES_BLOCK_SIZE);
	o += got;
	*out_len = o;
out:
	aes_cbc_free(c);
	return r;
}

static void sort_cuts(size_t *cuts, size_t k)
{
	for (size_t i = 1; i < k; i++)
		for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
			size_t t = cuts[j];
			cuts[j] = cuts[j - 1];
			cuts[j - 1] = t;
		}
}

static void hex_to(const char *hex, uint8_t *out, size_t n)
{
	assert_int_equal(hex_decode(hex, strlen(hex), out, n), 0);
}

/* NIST SP 800-38A F.2.5 CBC-AES256.Encrypt. Our IV is zero, so feeding (P1 xor IV) as the first
 * block makes the chain identical from there on. */
static void test_aes_nist_vector(void **state)
{
	uint8_t key[32], iv[16], pt[64], ct[64], in[64], out[96], back[96];
	size_t n, m;

	(void)state;
	hex_to("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", key, 32);
	hex_to("000102030405060708090a0b0c0d0e0f", iv, 16);
	hex_to("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
	       "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710", pt, 64);
	hex_to("f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d"
	       "39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b", ct, 64);
	memcpy(in, pt, 64);
	for (int i = 0; i < 16; i++)
		in[i] ^= iv[i];
	assert_int_equal(aes_stream(AES_ENCRYPT, key, in, 64, NULL, 0, out, &n), 0);
	assert_int_equal(n, 80); /* 64 bytes and a whole block of padding */
	assert_memory_equal(out, ct, 64);
	assert_int_equal(aes_stream(AES_DECRYPT, key, out, n, NULL, 0, back, &m), 0);
	assert_int_equal(m, 64);
	assert_memory_equal(back, in, 64);
	/* The padding block is the encryption of sixteen 0x10 chained on C4: decrypting C4 || it
	 * as a stream of its own gives one block (C4 under a zero IV) and a valid full padding. */
	assert_int_equal(aes_stream(AES_DECRYPT, key, out + 48, 32, NULL, 0, back, &m), 0);
	assert_int_equal(m, 16);
}

/* The Crypto++ ciphertexts: each decrypts to its plaintext and is reproduced by encryption,
 * with the input cut at every point (and every pair of points for the small ones) and in
 * random slices. */
static void test_aes_cryptopp_vectors(void **state)
{
	static const unsigned sizes[] = { 0, 1, 15, 16, 17, 1000, 3000 };
	uint8_t key[AES_KEY_SIZE], out[3100];
	size_t klen;
	uint8_t *k = json_read_fixture("cryptopp/aes-key.bin", &klen);

	(void)state;
	assert_non_null(k);
	assert_int_equal(klen, AES_KEY_SIZE);
	memcpy(key, k, AES_KEY_SIZE);
	free(k);
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		char rel[64];
		size_t pn, cn, n, cuts[32];
		uint8_t *plain, *cipher;

		snprintf(rel, sizeof(rel), "cryptopp/plain-%u.bin", sizes[s]);
		plain = json_read_fixture(rel, &pn);
		snprintf(rel, sizeof(rel), "cryptopp/aes-cbc-%u.bin", sizes[s]);
		cipher = json_read_fixture(rel, &cn);
		assert_non_null(plain);
		assert_non_null(cipher);
		assert_int_equal(pn, sizes[s]);
		assert_int_equal(cn, aes_cbc_ciphertext_size(pn));

		assert_int_equal(aes_stream(AES_ENCRYPT, key, plain, pn, NULL, 0, out, &n), 0);
		assert_int_equal(n, cn);
		assert_memory_equal(out, cipher, cn);
		assert_int_equal(aes_stream(AES_DECRYPT, key, cipher, cn, NULL, 0, out, &n), 0);
		assert_int_equal(n, pn);
		assert_memory_equal(out, plain, pn);

		for (size_t a = 0; a <= cn; a++) {
			if (a <= pn) {
				assert_int_equal(aes_stream(AES_ENCRYPT, key, plain, pn, &a, 1, out, &n), 0);
				assert_int_equal(n, cn);
				assert_memory_equal(out, cipher, cn);
			}
			assert_int_equal(aes_stream(AES_DECRYPT, key, cipher, cn, &a, 1, out, &n), 0);
			assert_int_equal(n, pn);
			assert_memory_equal(out, plain, pn);
			if (cn > 40)
				continue;
			for (size_t b = a; b <= cn; b++) {
				size_t two[2] = { a, b };
				if (b <= pn) {
					assert_int_equal(aes_stream(AES_ENCRYPT, key, plain, pn, two, 2, out, &n), 0);
					assert_memory_equal(out, cipher, cn);
				}
				assert_int_equal(aes_stream(AES_DECRYPT, key, cipher, cn, two, 2, out, &n), 0);
				assert_int_equal(n, pn);
				assert_memory_equal(out, plain, pn);
			}
		}
		for (int round = 0; round < 200; round++) {
			size_t kc = tu_below(32);
			for (size_t i = 0; i < kc; i++)
				cuts[i] = tu_below(pn + 1);
			sort_cuts(cuts, kc);
			assert_int_equal(aes_stream(AES_ENCRYPT, key, plain, pn, cuts, kc, out, &n), 0);
			assert_int_equal(n, cn);
			assert_memory_equal(out, cipher, cn);
			for (size_t i = 0; i < kc; i++)
				cuts[i] = tu_below(cn + 1);
			sort_cuts(cuts, kc);
			assert_int_equal(aes_stream(AES_DECRYPT, key, cipher, cn, cuts, kc, out, &n), 0);
			assert_int_equal(n, pn);
			assert_memory_equal(out, plain, pn);
		}
		free(plain);
		free(cipher);
	}
}

/* Wrong padding, partial blocks and no data at all are refused at final(). */
static void test_aes_refusals(void **state)
{
	uint8_t key[AES_KEY_SIZE], plain[16], ct[32], bad[32], out[64];
	size_t n;

	(void)state;
	tu_fill(key, sizeof(key));
	tu_fill(plain, sizeof(plain));
	/* 16 bytes of plaintext: the second block is all padding, sixteen 0x10 bytes. */
	assert_int_equal(aes_stream(AES_ENCRYPT, key, plain, 16, NULL, 0, ct, &n), 0);
	assert_int_equal(n, 32);

	/* In CBC, flipping bits of C1 flips the same bits of the last plaintext block. */
	static const struct { unsigned pos; uint8_t last; int ok; size_t len; } cases[] = {
		{ 15, 0x00, 0, 0 },  /* pad byte 0 */
		{ 15, 0x11, 0, 0 },  /* pad byte 17 */
		{ 15, 0xff, 0, 0 },
		{ 15, 0x0f, 0, 0 },  /* says 15 but byte 1 of the block is 0x10 */
		{ 0, 0x0f, 0, 0 },   /* first padding byte differs */
		{ 15, 0x01, 1, 31 }, /* a valid one-byte padding: the control */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(bad, ct, 32);
		bad[cases[i].pos] ^= (uint8_t)(0x10 ^ cases[i].last);
		int r = aes_stream(AES_DECRYPT, key, bad, 32, NULL, 0, out, &n);
		if (cases[i].ok) {
			assert_int_equal(r, 0);
			assert_int_equal(n, cases[i].len);
		} else {
			assert_int_equal(r, SD_ERR_BAD_PADDING);
		}
	}
	/* Not whole blocks, and nothing at all. */
	static const size_t lens[] = { 0, 1, 15, 17, 31 };
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		assert_int_equal(aes_stream(AES_DECRYPT, key, ct, lens[i], NULL, 0, out, &n),
		    SD_ERR_BAD_PADDING);
}

/* A context is one stream: after final() only reset() continues, and reset() starts over. */
static void test_aes_reset(void **state)
{
	uint8_t key[AES_KEY_SIZE], plain[100], a[128], b[128];
	struct aes_cbc *c = NULL;
	size_t n1, n2, f1, f2;

	(void)state;
	tu_fill(key, sizeof(key));
	tu_fill(plain, sizeof(plain));
	assert_int_equal(aes_cbc_new(&c, key, AES_ENCRYPT), 0);
	assert_int_equal(aes_cbc_update(c, plain, 100, a, &n1), 0);
	assert_int_equal(n1, 96);
	assert_int_equal(aes_cbc_final(c, a + n1, &f1), 0);
	assert_int_equal(f1, 16);
	assert_int_not_equal(aes_cbc_update(c, plain, 1, b, &n2), 0);
	assert_int_not_equal(aes_cbc_final(c, b, &n2), 0);
	assert_int_equal(aes_cbc_reset(c), 0);
	assert_int_equal(aes_cbc_update(c, plain, 100, b, &n2), 0);
	assert_int_equal(aes_cbc_final(c, b + n2, &f2), 0);
	assert_int_equal(n1 + f1, n2 + f2);
	assert_memory_equal(a, b, n1 + f1);
	aes_cbc_free(c);
	aes_cbc_free(NULL);
	assert_int_equal(aes_cbc_ciphertext_size(0), 16);
	assert_int_equal(aes_cbc_ciphertext_size(15), 16);
	assert_int_equal(aes_cbc_ciphertext_size(16), 32);
	assert_int_equal(aes_cbc_ciphertext_size(3000), 3008);
}

/* ---- RSA ---- */

/* A fresh key pair of our own, shared by the RSA tests (generation is the slow part). */
static struct rsa_private *own_key;

static int setup_key(void **state)
{
	(void)state;
	return rsa_generate(&own_key) == 0 ? 0 : -1;
}

static int teardown_key(void **state)
{
	(void)state;
	rsa_private_free(own_key);
	own_key = NULL;
	return 0;
}

static void test_own_key_shape(void **state)
{
	struct rsa_public *pub = NULL, *again = NULL;
	uint8_t spki[600], spki2[600], *fix;
	size_t n, n2, flen;

	(void)state;
	assert_int_equal(rsa_public_from_private(own_key, &pub), 0);
	assert_int_equal(rsa_public_bits(pub), 1024);
	assert_int_equal(rsa_public_exponent(pub), 17);
	assert_int_equal(rsa_public_to_spki(pub, spki, sizeof(spki), &n), 0);
	assert_int_equal(n, PUBLIC_KEY_SIZE);
	/* The same DER layout as Crypto++'s key: all but the modulus bytes agree. */
	fix = json_read_fixture("cryptopp/rsa-public-spki.der", &flen);
	assert_non_null(fix);
	assert_int_equal(flen, n);
	assert_memory_equal(spki, fix, 29);
	assert_memory_equal(spki + 157, fix + 157, 3);
	free(fix);
	/* And it reads back to the same key. */
	assert_int_equal(rsa_public_from_spki(spki, n, &again), 0);
	assert_int_equal(rsa_public_to_spki(again, spki2, sizeof(spki2), &n2), 0);
	assert_int_equal(n2, n);
	assert_memory_equal(spki, spki2, n);
	/* Too small an output buffer is refused, not overrun. */
	assert_int_equal(rsa_public_to_spki(pub, spki2, 100, &n2), SD_ERR_FULL);
	rsa_public_free(pub);
	rsa_public_free(again);
	rsa_public_free(NULL);
	rsa_private_free(NULL);
}

static void test_own_key_private_round_trips(void **state)
{
	struct rsa_private *from8 = NULL, *from1 = NULL;
	struct rsa_public *pub = NULL;
	uint8_t *p8 = NULL, *p8b = NULL, *p1 = NULL, *p8c = NULL, *fix;
	size_t n8, n8b, n1, n8c, flen;
	uint8_t key[AES_KEY_SIZE], wrapped[WRAPPED_KEY_SIZE], got[AES_KEY_SIZE];

	(void)state;
	assert_int_equal(rsa_private_to_pkcs8(own_key, &p8, &n8), 0);
	assert_int_equal(rsa_private_from_der(p8, n8, &from8), 0);
	assert_int_equal(rsa_private_to_pkcs8(from8, &p8b, &n8b), 0);
	assert_int_equal(n8b, n8);
	assert_memory_equal(p8b, p8, n8);
	/* PKCS#8 shape: the Crypto++ header up to the OCTET STRING, apart from the lengths. */
	fix = json_read_fixture("cryptopp/rsa-private-pkcs8.der", &flen);
	assert_non_null(fix);
	assert_memory_equal(p8, fix, 2);
	assert_memory_equal(p8 + 4, fix + 4, 20);
	free(fix);

	assert_int_equal(rsa_private_to_pkcs1(own_key, &p1, &n1), 0);
	assert_int_equal(n1 + 26, n8); /* PKCS#8 wraps PKCS#1 in 26 bytes of header here */
	assert_memory_equal(p8 + 26, p1, n1);
	assert_int_equal(rsa_private_from_der(p1, n1, &from1), 0);
	assert_int_equal(rsa_private_to_pkcs8(from1, &p8c, &n8c), 0);
	assert_int_equal(n8c, n8);
	assert_memory_equal(p8c, p8, n8);

	/* Every re-read key unwraps what the original public key wrapped. */
	assert_int_equal(rsa_public_from_private(own_key, &pub), 0);
	crypto_random(key, sizeof(key));
	assert_int_equal(rsa_oaep_wrap(pub, key, wrapped), 0);
	assert_int_equal(rsa_oaep_unwrap(from8, wrapped, got), 0);
	assert_memory_equal(got, key, AES_KEY_SIZE);
	memset(got, 0, sizeof(got));
	assert_int_equal(rsa_oaep_unwrap(from1, wrapped, got), 0);
	assert_memory_equal(got, key, AES_KEY_SIZE);

	crypto_free_secret(p8, n8);
	crypto_free_secret(p8b, n8b);
	crypto_free_secret(p1, n1);
	crypto_free_secret(p8c, n8c);
	rsa_private_free(from8);
	rsa_private_free(from1);
	rsa_public_free(pub);
}

static void test_oaep(void **state)
{
	struct rsa_public *pub = NULL;
	struct rsa_private *other = NULL;
	uint8_t key[AES_KEY_SIZE], w1[WRAPPED_KEY_SIZE], w2[WRAPPED_KEY_SIZE], got[AES_KEY_SIZE];

	(void)state;
	assert_int_equal(rsa_public_from_private(own_key, &pub), 0);
	crypto_random(key, sizeof(key));
	assert_int_equal(rsa_oaep_wrap(pub, key, w1), 0);
	assert_int_equal(rsa_oaep_wrap(pub, key, w2), 0);
	/* OAEP is randomised: the same key wraps to different blocks. */
	assert_memory_not_equal(w1, w2, WRAPPED_KEY_SIZE);
	assert_int_equal(rsa_oaep_unwrap(own_key, w1, got), 0);
	assert_memory_equal(got, key, AES_KEY_SIZE);
	assert_int_equal(rsa_oaep_unwrap(own_key, w2, got), 0);
	assert_memory_equal(got, key, AES_KEY_SIZE);
	/* A flipped bit or another key fails the OAEP check. */
	w1[77] ^= 0x04;
	assert_int_not_equal(rsa_oaep_unwrap(own_key, w1, got), 0);
	assert_int_equal(rsa_generate(&other), 0);
	assert_int_not_equal(rsa_oaep_unwrap(other, w2, got), 0);
	rsa_private_free(other);
	rsa_public_free(pub);
}

/* A SubjectPublicKeyInfo of given numbers, through the DER writer (no checks of ours). */
static size_t make_spki(const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen,
    uint8_t *out, size_t cap)
{
	struct der_rsa_public k;
	size_t len = 0;

	assert_int_equal(der_num_set(&k.n, n, nlen), 0);
	assert_int_equal(der_num_set(&k.e, e, elen), 0);
	assert_int_equal(der_spki_encode(&k, out, cap, &len), 0);
	return len;
}

static void test_spki_import_limits(void **state)
{
	struct rsa_public *pub = NULL;
	uint8_t spki[PUBLIC_KEY_SIZE], buf[700], mod[512];
	uint8_t *fix;
	size_t flen, n;
	static const uint8_t e17[] = { 17 }, e1[] = { 1 }, e_big[] = { 1, 0, 0, 0, 1 };

	(void)state;
	fix = json_read_fixture("cryptopp/rsa-public-spki.der", &flen);
	assert_non_null(fix);
	assert_int_equal(flen, PUBLIC_KEY_SIZE);
	memcpy(spki, fix, flen);
	free(fix);

	/* Every truncation fails, and a byte more than the field is refused. */
	for (size_t cut = 1; cut < PUBLIC_KEY_SIZE; cut++) {
		assert_int_not_equal(rsa_public_from_spki(spki, cut, &pub), 0);
		assert_null(pub);
	}
	memcpy(buf, spki, PUBLIC_KEY_SIZE);
	buf[PUBLIC_KEY_SIZE] = 0;
	assert_int_equal(rsa_public_from_spki(buf, PUBLIC_KEY_SIZE + 1, &pub), SD_ERR_TOO_LARGE);

	/* The same key without the NULL parameters is 158 bytes: zero fill to the 160-byte field
	 * is accepted, anything else after the DER is not. */
	uint8_t short_spki[PUBLIC_KEY_SIZE];
	memcpy(short_spki, "\x30\x81\x9b\x30\x0b", 5);
	memcpy(short_spki + 5, spki + 5, 11);           /* OID */
	memcpy(short_spki + 16, spki + 18, 142);        /* BIT STRING */
	short_spki[158] = 0;
	short_spki[159] = 0;
	assert_int_equal(rsa_public_from_spki(short_spki, 158, &pub), 0);
	rsa_public_free(pub);
	assert_int_equal(rsa_public_from_spki(short_spki, 160, &pub), 0);
	assert_int_equal(rsa_public_exponent(pub), 17);
	/* ... and exports canonically, with the NULL parameters, as the original 160 bytes. */
	assert_int_equal(rsa_public_to_spki(pub, buf, sizeof(buf), &n), 0);
	assert_int_equal(n, PUBLIC_KEY_SIZE);
	assert_memory_equal(buf, spki, PUBLIC_KEY_SIZE);
	rsa_public_free(pub);
	short_spki[159] = 1;
	assert_int_equal(rsa_public_from_spki(short_spki, 160, &pub), SD_ERR_TRAILING);
	assert_null(pub);

	/* Another algorithm (the OID's last arc 1 -> 11, sha256WithRSAEncryption) is refused. */
	memcpy(buf, spki, PUBLIC_KEY_SIZE);
	buf[16] = 11;
	assert_int_equal(rsa_public_from_spki(buf, PUBLIC_KEY_SIZE, &pub), SD_ERR_BAD_KEY);
	/* Parameters other than NULL are refused. */
	memcpy(buf, spki, PUBLIC_KEY_SIZE);
	buf[17] = 0x04; /* an empty OCTET STRING */
	assert_int_not_equal(rsa_public_from_spki(buf, PUBLIC_KEY_SIZE, &pub), 0);
	assert_null(pub);

	/* Numbers: a 512-bit modulus, an even modulus, e = 1, e of five bytes, a 4096-bit key
	 * (too large for the field) are all refused. */
	tu_fill(mod, sizeof(mod));
	mod[0] |= 0x80;
	mod[63] |= 1;
	n = make_spki(mod, 64, e17, 1, buf, sizeof(buf));
	assert_int_equal(rsa_public_from_spki(buf, n, &pub), SD_ERR_BAD_KEY);
	memcpy(mod, spki + 29, 128);
	mod[127] &= 0xfe;
	n = make_spki(mod, 128, e17, 1, buf, sizeof(buf));
	assert_int_equal(rsa_public_from_spki(buf, n, &pub), SD_ERR_BAD_KEY);
	memcpy(mod, spki + 29, 128);
	n = make_spki(mod, 128, e1, 1, buf, sizeof(buf));
	assert_int_equal(rsa_public_from_spki(buf, n, &pub), SD_ERR_BAD_KEY);
	n = make_spki(mod, 128, e_big, sizeof(e_big), buf, sizeof(buf));
	assert_int_equal(rsa_public_from_spki(buf, n, &pub), SD_ERR_TOO_LARGE);
	tu_fill(mod, sizeof(mod));
	mod[0] |= 0x80;
	mod[511] |= 1;
	n = make_spki(mod, 512, e17, 1, buf, sizeof(buf));
	assert_true(n > PUBLIC_KEY_SIZE);
	assert_int_equal(rsa_public_from_spki(buf, n, &pub), SD_ERR_TOO_LARGE);
	/* The control: the fixture's own numbers through the same writer are accepted. */
	memcpy(mod, spki + 29, 128);
	n = make_spki(mod, 128, e17, 1, buf, sizeof(buf));
	assert_int_equal(n, PUBLIC_KEY_SIZE);
	assert_int_equal(rsa_public_from_spki(buf, n, &pub), 0);
	rsa_public_free(pub);
}

static void test_private_import_refusals(void **state)
{
	struct rsa_private *k = NULL;
	uint8_t *p8, *buf;
	size_t n;

	(void)state;
	p8 = json_read_fixture("cryptopp/rsa-private-pkcs8.der", &n);
	assert_non_null(p8);
	buf = malloc(n + 1);
	assert_non_null(buf);
	for (size_t cut = 1; cut < n; cut += 7) {
		assert_int_not_equal(rsa_private_from_der(p8, cut, &k), 0);
		assert_null(k);
	}
	memcpy(buf, p8, n);
	buf[n] = 0;
	assert_int_equal(rsa_private_from_der(buf, n + 1, &k), SD_ERR_TRAILING);
	/* A changed coefficient (the last byte) no longer agrees with the primes. */
	memcpy(buf, p8, n);
	buf[n - 1] ^= 1;
	assert_int_equal(rsa_private_from_der(buf, n, &k), SD_ERR_BAD_KEY);
	/* A changed prime: n = p q fails. */
	memcpy(buf, p8, n);
	buf[n - 300] ^= 1;
	assert_int_equal(rsa_private_from_der(buf, n, &k), SD_ERR_BAD_KEY);
	/* PKCS#8 version 1 is refused. */
	memcpy(buf, p8, n);
	assert_int_equal(buf[6], 0);
	buf[6] = 1;
	assert_int_equal(rsa_private_from_der(buf, n, &k), SD_ERR_BAD_KEY);
	/* The control: the unchanged bytes load. */
	assert_int_equal(rsa_private_from_der(p8, n, &k), 0);
	rsa_private_free(k);
	free(buf);
	free(p8);
}

static void test_random_and_sha256(void **state)
{
	uint8_t a[32], b[32], d[32], want[32];

	(void)state;
	crypto_random(a, sizeof(a));
	crypto_random(b, sizeof(b));
	assert_memory_not_equal(a, b, sizeof(a));
	/* FIPS 180-2 example: SHA-256("abc"). */
	hex_to("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", want, 32);
	crypto_sha256("abc", 3, d);
	assert_memory_equal(d, want, 32);
	crypto_wipe(a, sizeof(a));
	for (size_t i = 0; i < sizeof(a); i++)
		assert_int_equal(a[i], 0);
	crypto_free_secret(NULL, 10);
}

/* ---- base64 ---- */

static void test_base64_rfc4648(void **state)
{
	static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const text[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
		"Zm9vYmFy" };

	(void)state;
	for (size_t i = 0; i < 7; i++) {
		char *s = NULL;
		uint8_t *d = NULL;
		size_t n, m;

		assert_int_equal(base64_encode((const uint8_t *)plain[i], strlen(plain[i]), &s, &n), 0);
		assert_int_equal(n, strlen(text[i]));
		assert_string_equal(s, text[i]);
		assert_int_equal(base64_decode(text[i], strlen(text[i]), &d, &m), 0);
		assert_non_null(d);
		assert_int_equal(m, strlen(plain[i]));
		assert_memory_equal(d, plain[i], m);
		crypto_free_secret(s, n + 1);
		crypto_free_secret(d, m);
	}
}

static void test_base64_whitespace_and_refusals(void **state)
{
	static const char *const bad[] = { "Zg", "Zg=", "Z===", "=Zg=", "Zg==Zg==", "Zg==x",
		"Zh==", "Zm9=", "Zm9v!", "Zm9v\x80", "Zm-v", "Zm_v", "Zm9vY", "Zm\0v" };
	static const size_t bad_len[] = { 2, 3, 4, 4, 8, 5, 4, 4, 5, 5, 4, 4, 5, 4 };
	uint8_t *d = NULL;
	size_t m;

	(void)state;
	assert_int_equal(base64_decode(" Zm9v\nYm\r\n Fy\t\n", 15, &d, &m), 0);
	assert_int_equal(m, 6);
	assert_memory_equal(d, "foobar", 6);
	crypto_free_secret(d, m);
	assert_int_equal(base64_decode("Zg==\n\n", 6, &d, &m), 0);
	assert_int_equal(m, 1);
	crypto_free_secret(d, m);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		d = (uint8_t *)1;
		assert_int_equal(base64_decode(bad[i], bad_len[i], &d, &m), SD_ERR_BAD_BASE64);
		assert_null(d);
	}
}

static void test_base64_round_trips(void **state)
{
	uint8_t data[300];

	(void)state;
	for (size_t n = 0; n <= sizeof(data); n++) {
		char *s = NULL;
		uint8_t *d = NULL;
		size_t sl, dl;

		tu_fill(data, n);
		assert_int_equal(base64_encode(data, n, &s, &sl), 0);
		assert_int_equal(sl, (n + 2) / 3 * 4);
		assert_int_equal(strlen(s), sl);
		assert_int_equal(base64_decode(s, sl, &d, &dl), 0);
		assert_int_equal(dl, n);
		assert_memory_equal(d, data, n);
		crypto_free_secret(s, sl + 1);
		crypto_free_secret(d, dl);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_aes_nist_vector),
		cmocka_unit_test(test_aes_cryptopp_vectors),
		cmocka_unit_test(test_aes_refusals),
		cmocka_unit_test(test_aes_reset),
		cmocka_unit_test(test_own_key_shape),
		cmocka_unit_test(test_own_key_private_round_trips),
		cmocka_unit_test(test_oaep),
		cmocka_unit_test(test_spki_import_limits),
		cmocka_unit_test(test_private_import_refusals),
		cmocka_unit_test(test_random_and_sha256),
		cmocka_unit_test(test_base64_rfc4648),
		cmocka_unit_test(test_base64_whitespace_and_refusals),
		cmocka_unit_test(test_base64_round_trips),
	};

	if (crypto_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, setup_key, teardown_key);
}
