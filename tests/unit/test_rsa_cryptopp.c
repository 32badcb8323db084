/* test_rsa_cryptopp.c: our RSA key code (protocol/rsa.c, der.c) against keys written by Crypto++ (fixtures section 2:
 * SPKI, PKCS#8, PKCS#1, base64 one-line and wrapped, the OAEP blob) and against the 16 recorded
 * client runs (priv.key and me.info load, unwrap the issued AES key, match the 826 key). */
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
#include "json_mini.h"

static struct json *manifest;

static int setup(void **state)
{
	(void)state;
	manifest = json_load_fixture("cryptopp/manifest.json");
	return manifest != NULL && crypto_init() == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	json_free(manifest);
	return 0;
}

/* A number of the manifest's "rsa" object (hex, no leading zeros) as a der_num. */
static void manifest_num(const char *key, struct der_num *out)
{
	const struct json *v = json_get(json_get(manifest, "rsa"), key);
	uint8_t bytes[550];
	size_t n;

	assert_non_null(json_str(v));
	assert_true(v->slen % 2 == 0);
	n = v->slen / 2;
	assert_true(n > 0 && n <= sizeof(bytes));
	assert_int_equal(json_hex(v, bytes, n), 0);
	assert_int_equal(der_num_set(out, bytes, n), 0);
}

static void assert_num_equal(const struct der_num *a, const struct der_num *b)
{
	assert_int_equal(a->len, b->len);
	assert_memory_equal(a->b, b->b, a->len);
}

static uint8_t *fixture(const char *rel, size_t *n)
{
	uint8_t *p = json_read_fixture(rel, n);

	assert_non_null(p);
	return p;
}

static void test_spki(void **state)
{
	struct der_rsa_public num;
	struct der_num n, e;
	struct rsa_public *pub = NULL;
	uint8_t out[PUBLIC_KEY_SIZE];
	size_t len, used = 0;
	uint64_t e_dec = 0;
	uint8_t *spki = fixture("cryptopp/rsa-public-spki.der", &len);

	(void)state;
	assert_int_equal(len, PUBLIC_KEY_SIZE);
	manifest_num("n", &n);
	manifest_num("e", &e);
	assert_int_equal(json_u64(json_get(json_get(manifest, "rsa"), "e_decimal"), &e_dec),
	    0);
	/* The DER reader gives the manifest's numbers ... */
	assert_int_equal(der_spki_decode(spki, len, &used, &num), 0);
	assert_int_equal(used, len);
	assert_num_equal(&num.n, &n);
	assert_num_equal(&num.e, &e);
	/* ... and the key object has them too, and writes the same 160 bytes back. */
	assert_int_equal(rsa_public_from_spki(spki, len, &pub), 0);
	assert_int_equal(rsa_public_bits(pub), 1024);
	assert_int_equal(rsa_public_exponent(pub), e_dec);
	assert_int_equal(rsa_public_to_spki(pub, out, sizeof(out), &len), 0);
	assert_int_equal(len, PUBLIC_KEY_SIZE);
	assert_memory_equal(out, spki, PUBLIC_KEY_SIZE);
	/* Encoding the manifest's (n, e) from scratch gives the same bytes. */
	num.n = n;
	num.e = e;
	assert_int_equal(der_spki_encode(&num, out, sizeof(out), &len), 0);
	assert_int_equal(len, PUBLIC_KEY_SIZE);
	assert_memory_equal(out, spki, PUBLIC_KEY_SIZE);
	rsa_public_free(pub);
	free(spki);
}

/* Both private files give the manifest's n, e, d, p, q; both load as keys; our PKCS#8 and
 * PKCS#1 writers give back the Crypto++ bytes exactly, from either. */
static void test_private(void **state)
{
	static const char *const files[] = { "cryptopp/rsa-private-pkcs8.der",
		"cryptopp/rsa-private-pkcs1.der" };
	struct der_num n, e, d, p, q;
	size_t l8, l1;
	uint8_t *p8 = fixture(files[0], &l8), *p1 = fixture(files[1], &l1);
	struct der_rsa_private *num = malloc(sizeof(*num));

	(void)state;
	assert_non_null(num);
	assert_int_equal(l8, 632);
	assert_int_equal(l1, 606);
	manifest_num("n", &n);
	manifest_num("e", &e);
	manifest_num("d", &d);
	manifest_num("p", &p);
	manifest_num("q", &q);
	for (int i = 0; i < 2; i++) {
		struct rsa_private *k = NULL;
		uint8_t *der = NULL;
		size_t dl = 0;

		assert_int_equal(der_private_decode(i == 0 ? p8 : p1, i == 0 ? l8 : l1, num), 0);
		assert_num_equal(&num->n, &n);
		assert_num_equal(&num->e, &e);
		assert_num_equal(&num->d, &d);
		assert_num_equal(&num->p, &p);
		assert_num_equal(&num->q, &q);
		assert_int_equal(rsa_private_from_der(i == 0 ? p8 : p1, i == 0 ? l8 : l1, &k), 0);
		assert_int_equal(rsa_private_to_pkcs8(k, &der, &dl), 0);
		assert_int_equal(dl, l8);
		assert_memory_equal(der, p8, l8);
		crypto_free_secret(der, dl);
		assert_int_equal(rsa_private_to_pkcs1(k, &der, &dl), 0);
		assert_int_equal(dl, l1);
		assert_memory_equal(der, p1, l1);
		crypto_free_secret(der, dl);
		rsa_private_free(k);
	}
	crypto_wipe(num, sizeof(*num));
	free(num);
	free(p8);
	free(p1);
}

static void test_base64_files(void **state)
{
	size_t l8, lw, lo, dl, sl;
	uint8_t *p8 = fixture("cryptopp/rsa-private-pkcs8.der", &l8);
	uint8_t *wrapped = fixture("cryptopp/rsa-private-pkcs8.b64-wrapped.txt", &lw);
	uint8_t *oneline = fixture("cryptopp/rsa-private-pkcs8.b64-oneline.txt", &lo);
	uint8_t *der = NULL;
	char *s = NULL, *w;
	size_t wi = 0;

	(void)state;
	assert_int_equal(base64_decode((const char *)wrapped, lw, &der, &dl), 0);
	assert_int_equal(dl, l8);
	assert_memory_equal(der, p8, l8);
	crypto_free_secret(der, dl);
	assert_int_equal(base64_decode((const char *)oneline, lo, &der, &dl), 0);
	assert_int_equal(dl, l8);
	assert_memory_equal(der, p8, l8);
	crypto_free_secret(der, dl);
	/* Our encoder writes the one-line file exactly ... */
	assert_int_equal(base64_encode(p8, l8, &s, &sl), 0);
	assert_int_equal(sl, lo);
	assert_memory_equal(s, oneline, lo);
	/* ... and cut into 72-column lines, each ending in \n, it is the wrapped file. */
	w = malloc(sl + sl / 72 + 2);
	assert_non_null(w);
	for (size_t i = 0; i < sl; i++) {
		w[wi++] = s[i];
		if ((i + 1) % 72 == 0 || i + 1 == sl)
			w[wi++] = '\n';
	}
	assert_int_equal(wi, lw);
	assert_memory_equal(w, wrapped, lw);
	free(w);
	crypto_free_secret(s, sl + 1);
	free(p8);
	free(wrapped);
	free(oneline);
}

/* The Crypto++ OAEP blob unwraps to aes-key.bin with the key read from each encoding. */
static void test_oaep_blob(void **state)
{
	static const char *const files[] = { "cryptopp/rsa-private-pkcs8.der",
		"cryptopp/rsa-private-pkcs1.der", "cryptopp/rsa-private-pkcs8.b64-wrapped.txt",
		"cryptopp/rsa-private-pkcs8.b64-oneline.txt" };
	size_t bl, kl;
	uint8_t *blob = fixture("cryptopp/aes-key.oaep-sha1.bin", &bl);
	uint8_t *want = fixture("cryptopp/aes-key.bin", &kl);

	(void)state;
	assert_int_equal(bl, WRAPPED_KEY_SIZE);
	assert_int_equal(kl, AES_KEY_SIZE);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		struct rsa_private *k = NULL;
		uint8_t got[AES_KEY_SIZE], *der = NULL;
		size_t n, dl;
		uint8_t *text = fixture(files[i], &n);

		if (i >= 2) {
			assert_int_equal(base64_decode((const char *)text, n, &der, &dl), 0);
			assert_int_equal(rsa_private_from_der(der, dl, &k), 0);
			crypto_free_secret(der, dl);
		} else {
			assert_int_equal(rsa_private_from_der(text, n, &k), 0);
		}
		memset(got, 0, sizeof(got));
		assert_int_equal(rsa_oaep_unwrap(k, blob, got), 0);
		assert_memory_equal(got, want, AES_KEY_SIZE);
		rsa_private_free(k);
		free(text);
	}
	free(blob);
	free(want);
}

/* A private key from a priv.key or me.info body: base64 text or raw DER. */
static struct rsa_private *load_key(const uint8_t *body, size_t n)
{
	struct rsa_private *k = NULL;
	uint8_t *der = NULL;
	size_t dl;

	if (base64_decode((const char *)body, n, &der, &dl) == 0) {
		assert_int_equal(rsa_private_from_der(der, dl, &k), 0);
		crypto_free_secret(der, dl);
	} else {
		assert_int_equal(body[0], 0x30); /* not base64, so it must be DER */
		assert_int_equal(rsa_private_from_der(body, n, &k), 0);
	}
	return k;
}

static void check_key(struct rsa_private *k, const uint8_t *wrapped, const uint8_t *aes,
    const uint8_t *spki)
{
	struct rsa_public *pub = NULL;
	uint8_t got[AES_KEY_SIZE], out[PUBLIC_KEY_SIZE];
	size_t len;

	memset(got, 0, sizeof(got));
	assert_int_equal(rsa_oaep_unwrap(k, wrapped, got), 0);
	assert_memory_equal(got, aes, AES_KEY_SIZE);
	assert_int_equal(rsa_public_from_private(k, &pub), 0);
	assert_int_equal(rsa_public_exponent(pub), 17);
	assert_int_equal(rsa_public_to_spki(pub, out, sizeof(out), &len), 0);
	assert_int_equal(len, PUBLIC_KEY_SIZE);
	assert_memory_equal(out, spki, PUBLIC_KEY_SIZE);
	rsa_public_free(pub);
}

static void test_client_runs(void **state)
{
	struct json *index = json_load_fixture("clients/index.json");
	const struct json *run;
	int runs = 0, raw_der = 0;

	(void)state;
	assert_non_null(index);
	for (run = json_first(json_get(index, "runs")); run != NULL; run = run->next) {
		const char *dir = json_str(json_get(run, "dir"));
		char rel[512];
		uint8_t wrapped[WRAPPED_KEY_SIZE], aes[AES_KEY_SIZE], spki[PUBLIC_KEY_SIZE];
		uint8_t *priv, *me;
		struct json *keys;
		const uint8_t *body;
		struct rsa_private *k;
		size_t pl, ml;

		assert_non_null(dir);
		snprintf(rel, sizeof(rel), "clients/%s/keys.json", dir);
		assert_non_null(keys = json_load_fixture(rel));
		assert_int_equal(json_hex(json_get(keys, "encrypted_aes_key"), wrapped,
		    sizeof(wrapped)), 0);
		assert_int_equal(json_hex(json_get(keys, "aes_key"), aes, sizeof(aes)), 0);
		assert_int_equal(json_hex(json_get(keys, "public_key_spki"), spki,
		    sizeof(spki)), 0);

		snprintf(rel, sizeof(rel), "clients/%s/priv.key", dir);
		priv = fixture(rel, &pl);
		raw_der += priv[0] == 0x30;
		k = load_key(priv, pl);
		check_key(k, wrapped, aes, spki);
		rsa_private_free(k);

		/* me.info: name line (maybe NUL-padded), ID line, then the base64 lines. */
		snprintf(rel, sizeof(rel), "clients/%s/me.info", dir);
		me = fixture(rel, &ml);
		body = memchr(me, '\n', ml);
		assert_non_null(body);
		body = memchr(body + 1, '\n', ml - (size_t)(body + 1 - me));
		assert_non_null(body);
		body++;
		k = load_key(body, ml - (size_t)(body - me));
		check_key(k, wrapped, aes, spki);
		rsa_private_free(k);

		json_free(keys);
		free(priv);
		free(me);
		runs++;
	}
	assert_int_equal(runs, 16);
	assert_int_equal(raw_der, 4); /* client-perpacket-swapped's four runs */
	json_free(index);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spki),
		cmocka_unit_test(test_private),
		cmocka_unit_test(test_base64_files),
		cmocka_unit_test(test_oaep_blob),
		cmocka_unit_test(test_client_runs),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
