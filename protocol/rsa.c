/* rsa.c: RSA-1024/e=17 keys on libgcrypt (their DER through der.c) and RSA-OAEP(SHA-1), which
 * wraps the AES key of a client. */
#include "rsa.h"

#include <gcrypt.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "der.h"
#include "err.h"

/* Accepted RSA sizes: below 1024 bits a key is unsafe and cannot carry the 128-byte wrap. */
#define RSA_MIN_BITS 1024u
/* Public exponents are small odd numbers (17, 65537); more than 4 bytes is not a real key. */
#define RSA_E_MAX_BYTES 4u

struct rsa_public {
	gcry_sexp_t key;           /* (public-key (rsa (n) (e))) */
	struct der_rsa_public num; /* the same numbers as bytes, for SPKI export */
	unsigned bits;
	unsigned long e;
};

struct rsa_private {
	gcry_sexp_t key;            /* (private-key (rsa (n e d p q u))), libgcrypt's order */
	struct der_rsa_private *num; /* PKCS#1 numbers, secure memory, for export */
};

void rsa_public_free(struct rsa_public *k)
{
	if (k == NULL)
		return;
	gcry_sexp_release(k->key);
	crypto_wipe(k, sizeof(*k));
	free(k);
}

void rsa_private_free(struct rsa_private *k)
{
	if (k == NULL)
		return;
	gcry_sexp_release(k->key);
	crypto_free_secret(k->num, sizeof(*k->num));
	crypto_wipe(k, sizeof(*k));
	free(k);
}

/* An MPI of a big-endian integer; secret ones live in secure memory. */
static int mpi_from_num(gcry_mpi_t *out, const struct der_num *num, int secret)
{
	*out = NULL;
	if (num->len == 0) {
		*out = secret ? gcry_mpi_snew(0) : gcry_mpi_new(0);
		return *out != NULL ? 0 : SD_ERR_ALLOC;
	}
	if (gcry_mpi_scan(out, GCRYMPI_FMT_USG, num->b, num->len, NULL) != 0)
		return SD_ERR_CRYPTO;
	if (secret)
		gcry_mpi_set_flag(*out, GCRYMPI_FLAG_SECURE);
	return 0;
}

static int num_from_mpi(struct der_num *num, gcry_mpi_t m)
{
	uint8_t tmp[DER_NUM_MAX];
	size_t len = 0;
	int r;

	crypto_wipe(num, sizeof(*num));
	if (gcry_mpi_cmp_ui(m, 0) < 0 ||
	    gcry_mpi_print(GCRYMPI_FMT_USG, tmp, sizeof(tmp), &len, m) != 0)
		r = SD_ERR_BAD_KEY;
	else
		r = der_num_set(num, tmp, len); /* drops the zero byte USG may give for 0 */
	crypto_wipe(tmp, sizeof(tmp));
	return r;
}

/* Size and exponent checks shared by public and private keys; sets *bits and *e. */
static int check_public_numbers(const struct der_num *n, const struct der_num *e,
    unsigned *bits, unsigned long *ev)
{
	unsigned long v = 0;
	unsigned b;

	if (n->len == 0 || n->len > DER_RSA_MAX_BITS / 8 || (n->b[n->len - 1] & 1) == 0)
		return SD_ERR_BAD_KEY;
	b = (unsigned)(n->len * 8);
	for (uint8_t top = n->b[0]; (top & 0x80) == 0; top = (uint8_t)(top << 1))
		b--;
	if (b < RSA_MIN_BITS || b > DER_RSA_MAX_BITS)
		return SD_ERR_BAD_KEY;
	if (e->len == 0 || e->len > RSA_E_MAX_BYTES || (e->b[e->len - 1] & 1) == 0)
		return SD_ERR_BAD_KEY;
	for (size_t i = 0; i < e->len; i++)
		v = v << 8 | e->b[i];
	if (v < 3)
		return SD_ERR_BAD_KEY;
	*bits = b;
	*ev = v;
	return 0;
}

/* A public key object of checked numbers. */
static int public_from_num(const struct der_rsa_public *num, struct rsa_public **out)
{
	struct rsa_public *k = NULL;
	gcry_mpi_t n = NULL, e = NULL;
	int r;

	*out = NULL;
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return SD_ERR_ALLOC;
	k->num = *num;
	if ((r = check_public_numbers(&num->n, &num->e, &k->bits, &k->e)) != 0 ||
	    (r = mpi_from_num(&n, &num->n, 0)) != 0 ||
	    (r = mpi_from_num(&e, &num->e, 0)) != 0)
		goto out;
	if (gcry_sexp_build(&k->key, NULL, "(public-key (rsa (n %m) (e %m)))", n, e) != 0) {
		r = SD_ERR_CRYPTO;
		goto out;
	}
	*out = k;
	k = NULL;
	r = 0;
out:
	gcry_mpi_release(n);
	gcry_mpi_release(e);
	rsa_public_free(k);
	return r;
}

/*
 * A private key object from PKCS#1 numbers, which must agree with each other (the CRT values
 * are what exports write back, so they are checked rather than trusted). libgcrypt's CRT
 * wants u = p^-1 mod q while PKCS#1 stores coefficient = prime2^-1 mod prime1, so libgcrypt's
 * p is PKCS#1's prime2 and its q is prime1; then u is the coefficient unchanged.
 * Takes ownership of num (secure memory) in every case.
 */
static int private_from_num(struct der_rsa_private *num, struct rsa_private **out)
{
	struct rsa_private *k = NULL;
	gcry_mpi_t n = NULL, e = NULL, d = NULL, p = NULL, q = NULL, dp = NULL, dq = NULL;
	gcry_mpi_t u = NULL, t = NULL, m = NULL;
	unsigned bits;
	unsigned long ev;
	int r;

	*out = NULL;
	if ((r = check_public_numbers(&num->n, &num->e, &bits, &ev)) != 0)
		goto out;
	if ((r = mpi_from_num(&n, &num->n, 0)) != 0 || (r = mpi_from_num(&e, &num->e, 0)) != 0 ||
	    (r = mpi_from_num(&d, &num->d, 1)) != 0 || (r = mpi_from_num(&p, &num->p, 1)) != 0 ||
	    (r = mpi_from_num(&q, &num->q, 1)) != 0 || (r = mpi_from_num(&dp, &num->dp, 1)) != 0 ||
	    (r = mpi_from_num(&dq, &num->dq, 1)) != 0 ||
	    (r = mpi_from_num(&u, &num->qinv, 1)) != 0)
		goto out;
	if ((t = gcry_mpi_snew(DER_RSA_MAX_BITS * 2)) == NULL || (m = gcry_mpi_snew(DER_RSA_MAX_BITS)) == NULL) {
		r = SD_ERR_ALLOC;
		goto out;
	}
	r = SD_ERR_BAD_KEY;
	if (gcry_mpi_cmp_ui(p, 1) <= 0 || gcry_mpi_cmp_ui(q, 1) <= 0 || gcry_mpi_cmp_ui(d, 1) <= 0)
		goto out;
	gcry_mpi_mul(t, p, q); /* n = p q */
	if (gcry_mpi_cmp(t, n) != 0)
		goto out;
	gcry_mpi_mulm(t, u, q, p); /* coefficient * prime2 = 1 mod prime1 */
	if (gcry_mpi_cmp_ui(t, 1) != 0)
		goto out;
	gcry_mpi_sub_ui(m, p, 1); /* exponent1 = d mod (prime1 - 1), and e * it = 1 there */
	gcry_mpi_mod(t, d, m);
	if (gcry_mpi_cmp(t, dp) != 0)
		goto out;
	gcry_mpi_mulm(t, e, dp, m);
	if (gcry_mpi_cmp_ui(t, 1) != 0)
		goto out;
	gcry_mpi_sub_ui(m, q, 1); /* exponent2 likewise for prime2 */
	gcry_mpi_mod(t, d, m);
	if (gcry_mpi_cmp(t, dq) != 0)
		goto out;
	gcry_mpi_mulm(t, e, dq, m);
	if (gcry_mpi_cmp_ui(t, 1) != 0)
		goto out;

	if ((k = calloc(1, sizeof(*k))) == NULL) {
		r = SD_ERR_ALLOC;
		goto out;
	}
	if (gcry_sexp_build(&k->key, NULL,
	    "(private-key (rsa (n %m) (e %m) (d %m) (p %m) (q %m) (u %m)))", n, e, d, q, p, u) != 0) {
		r = SD_ERR_CRYPTO;
		goto out;
	}
	if (gcry_pk_testkey(k->key) != 0) {
		r = SD_ERR_BAD_KEY;
		goto out;
	}
	k->num = num;
	num = NULL;
	*out = k;
	k = NULL;
	r = 0;
out:
	gcry_mpi_release(n);
	gcry_mpi_release(e);
	gcry_mpi_release(d);
	gcry_mpi_release(p);
	gcry_mpi_release(q);
	gcry_mpi_release(dp);
	gcry_mpi_release(dq);
	gcry_mpi_release(u);
	gcry_mpi_release(t);
	gcry_mpi_release(m);
	crypto_free_secret(num, sizeof(*num));
	rsa_private_free(k);
	return r;
}

int rsa_generate(struct rsa_private **out)
{
	gcry_sexp_t parms = NULL, pair = NULL, priv = NULL;
	gcry_mpi_t n = NULL, e = NULL, d = NULL, p = NULL, q = NULL, u = NULL, t = NULL, m = NULL;
	struct der_rsa_private *num = NULL;
	int r;

	if (out == NULL)
		return SD_ERR_INVALID_ARG;
	*out = NULL;
	if ((r = crypto_init()) != 0)
		return r;
	if ((num = crypto_alloc_secret(sizeof(*num))) == NULL)
		return SD_ERR_ALLOC;
	if (gcry_sexp_build(&parms, NULL, "(genkey (rsa (nbits %u) (rsa-use-e %u)))",
	    (unsigned)RSA_BITS, (unsigned)RSA_EXPONENT) != 0 ||
	    gcry_pk_genkey(&pair, parms) != 0 ||
	    (priv = gcry_sexp_find_token(pair, "private-key", 0)) == NULL ||
	    gcry_sexp_extract_param(priv, NULL, "nedpqu", &n, &e, &d, &p, &q, &u, NULL) != 0 ||
	    (t = gcry_mpi_snew(RSA_BITS)) == NULL || (m = gcry_mpi_snew(RSA_BITS)) == NULL) {
		r = SD_ERR_CRYPTO;
		goto out;
	}
	/* libgcrypt has p < q and u = p^-1 mod q: PKCS#1 prime1 is its q, prime2 its p. */
	if ((r = num_from_mpi(&num->n, n)) != 0 || (r = num_from_mpi(&num->e, e)) != 0 ||
	    (r = num_from_mpi(&num->d, d)) != 0 || (r = num_from_mpi(&num->p, q)) != 0 ||
	    (r = num_from_mpi(&num->q, p)) != 0 || (r = num_from_mpi(&num->qinv, u)) != 0)
		goto out;
	gcry_mpi_sub_ui(m, q, 1);
	gcry_mpi_mod(t, d, m);
	if ((r = num_from_mpi(&num->dp, t)) != 0)
		goto out;
	gcry_mpi_sub_ui(m, p, 1);
	gcry_mpi_mod(t, d, m);
	if ((r = num_from_mpi(&num->dq, t)) != 0)
		goto out;
	r = private_from_num(num, out);
	num = NULL;
out:
	gcry_sexp_release(parms);
	gcry_sexp_release(pair);
	gcry_sexp_release(priv);
	gcry_mpi_release(n);
	gcry_mpi_release(e);
	gcry_mpi_release(d);
	gcry_mpi_release(p);
	gcry_mpi_release(q);
	gcry_mpi_release(u);
	gcry_mpi_release(t);
	gcry_mpi_release(m);
	crypto_free_secret(num, sizeof(*num));
	return r;
}

int rsa_public_from_private(const struct rsa_private *k, struct rsa_public **out)
{
	struct der_rsa_public num;
	int r;

	if (out == NULL)
		return SD_ERR_INVALID_ARG;
	*out = NULL;
	if (k == NULL || k->num == NULL)
		return SD_ERR_INVALID_ARG;
	num.n = k->num->n;
	num.e = k->num->e;
	r = public_from_num(&num, out);
	return r;
}

unsigned rsa_public_bits(const struct rsa_public *k)
{
	return k != NULL ? k->bits : 0;
}

unsigned long rsa_public_exponent(const struct rsa_public *k)
{
	return k != NULL ? k->e : 0;
}

int rsa_public_from_spki(const uint8_t *der, size_t n, struct rsa_public **out)
{
	struct der_rsa_public num;
	size_t used = 0;
	int r;

	if (out == NULL)
		return SD_ERR_INVALID_ARG;
	*out = NULL;
	if (der == NULL || n == 0)
		return SD_ERR_INVALID_ARG;
	if ((r = crypto_init()) != 0)
		return r;
	if (n > PUBLIC_KEY_SIZE)
		return SD_ERR_TOO_LARGE;
	if ((r = der_spki_decode(der, n, &used, &num)) != 0)
		return r;
	/* Only zero fill may follow the DER inside the fixed key field. */
	for (size_t i = used; i < n; i++)
		if (der[i] != 0)
			return SD_ERR_TRAILING;
	return public_from_num(&num, out);
}

int rsa_public_to_spki(const struct rsa_public *k, uint8_t *out, size_t cap, size_t *len)
{
	if (len != NULL)
		*len = 0;
	if (k == NULL || out == NULL || len == NULL)
		return SD_ERR_INVALID_ARG;
	return der_spki_encode(&k->num, out, cap, len);
}

int rsa_private_from_der(const uint8_t *der, size_t n, struct rsa_private **out)
{
	struct der_rsa_private *num = NULL;
	int r;

	if (out == NULL)
		return SD_ERR_INVALID_ARG;
	*out = NULL;
	if (der == NULL || n == 0)
		return SD_ERR_INVALID_ARG;
	if ((r = crypto_init()) != 0)
		return r;
	if (n > DER_KEY_MAX_SIZE)
		return SD_ERR_TOO_LARGE;
	if ((num = crypto_alloc_secret(sizeof(*num))) == NULL)
		return SD_ERR_ALLOC;
	if ((r = der_private_decode(der, n, num)) != 0) {
		crypto_free_secret(num, sizeof(*num));
		return r;
	}
	return private_from_num(num, out);
}

/* Encodes the key with one of der.c's private-key encoders into an allocation of exactly the
 * DER's size, as crypto_free_secret(*der, *len) frees. */
static int export_private(const struct rsa_private *k,
    int (*encode)(const struct der_rsa_private *, uint8_t *, size_t, size_t *),
    uint8_t **der, size_t *len)
{
	uint8_t *buf = NULL;
	size_t n = 0;
	int r;

	if (der == NULL || len == NULL)
		return SD_ERR_INVALID_ARG;
	*der = NULL;
	*len = 0;
	if (k == NULL || k->num == NULL)
		return SD_ERR_INVALID_ARG;
	if ((buf = crypto_alloc_secret(DER_KEY_MAX_SIZE)) == NULL)
		return SD_ERR_ALLOC;
	if ((r = encode(k->num, buf, DER_KEY_MAX_SIZE, &n)) != 0)
		goto out;
	if ((*der = crypto_alloc_secret(n)) == NULL) {
		r = SD_ERR_ALLOC;
		goto out;
	}
	memcpy(*der, buf, n);
	*len = n;
	r = 0;
out:
	crypto_free_secret(buf, DER_KEY_MAX_SIZE);
	return r;
}

int rsa_private_to_pkcs8(const struct rsa_private *k, uint8_t **der, size_t *len)
{
	return export_private(k, der_pkcs8_encode, der, len);
}

int rsa_private_to_pkcs1(const struct rsa_private *k, uint8_t **der, size_t *len)
{
	return export_private(k, der_pkcs1_encode, der, len);
}

/* The wrapped key is exactly one 1024-bit RSA block. */
static int wraps_fit(unsigned bits)
{
	return (bits + 7) / 8 == WRAPPED_KEY_SIZE;
}

int rsa_oaep_wrap(const struct rsa_public *k, const uint8_t key[AES_KEY_SIZE],
    uint8_t out[WRAPPED_KEY_SIZE])
{
	gcry_sexp_t data = NULL, enc = NULL, a = NULL;
	uint8_t *secret = NULL;
	const char *p;
	size_t len = 0;
	int r;

	if (k == NULL || key == NULL || out == NULL)
		return SD_ERR_INVALID_ARG;
	if (!wraps_fit(k->bits))
		return SD_ERR_BAD_KEY;
	/* gcry_sexp_build puts the s-expression in secure memory when a %b buffer is in it, and
	 * libgcrypt wipes secure s-expressions on release: from ordinary memory, every issued
	 * key would stay in freed heap. */
	if ((secret = crypto_alloc_secret(AES_KEY_SIZE)) == NULL) {
		r = SD_ERR_ALLOC;
		goto out;
	}
	memcpy(secret, key, AES_KEY_SIZE);
	if (gcry_sexp_build(&data, NULL, "(data (flags oaep) (hash-algo sha1) (value %b))",
	    (int)AES_KEY_SIZE, secret) != 0 ||
	    gcry_pk_encrypt(&enc, data, k->key) != 0 ||
	    (a = gcry_sexp_find_token(enc, "a", 0)) == NULL ||
	    (p = gcry_sexp_nth_data(a, 1, &len)) == NULL || len == 0 || len > WRAPPED_KEY_SIZE) {
		r = SD_ERR_CRYPTO;
		goto out;
	}
	/* The block is a number below n: left-pad it to the full 128 bytes. */
	memset(out, 0, WRAPPED_KEY_SIZE - len);
	memcpy(out + (WRAPPED_KEY_SIZE - len), p, len);
	r = 0;
out:
	gcry_sexp_release(data); /* libgcrypt wipes sexps it holds in secure memory */
	gcry_sexp_release(enc);
	gcry_sexp_release(a);
	crypto_free_secret(secret, AES_KEY_SIZE);
	return r;
}

/* Decryption results hold the AES key as "(value KEY)": libgcrypt only wipes sexps it put in
 * secure memory, so clear the data in place before release. */
static void wipe_value(gcry_sexp_t s)
{
	const char *p;
	size_t len = 0;

	if (s != NULL && (p = gcry_sexp_nth_data(s, 1, &len)) != NULL)
		crypto_wipe((void *)(uintptr_t)p, len);
}

int rsa_oaep_unwrap(const struct rsa_private *k, const uint8_t in[WRAPPED_KEY_SIZE],
    uint8_t key[AES_KEY_SIZE])
{
	gcry_sexp_t enc = NULL, plain = NULL, value = NULL;
	const char *p;
	size_t len = 0;
	int r;

	if (k == NULL || in == NULL || key == NULL || k->num == NULL)
		return SD_ERR_INVALID_ARG;
	if (!wraps_fit((unsigned)(k->num->n.len * 8)))
		return SD_ERR_BAD_KEY;
	if (gcry_sexp_build(&enc, NULL, "(enc-val (flags oaep) (hash-algo sha1) (rsa (a %b)))",
	    (int)WRAPPED_KEY_SIZE, in) != 0 ||
	    gcry_pk_decrypt(&plain, enc, k->key) != 0 ||
	    (value = gcry_sexp_find_token(plain, "value", 0)) == NULL ||
	    (p = gcry_sexp_nth_data(value, 1, &len)) == NULL || len != AES_KEY_SIZE) {
		r = SD_ERR_CRYPTO;
		goto out;
	}
	memcpy(key, p, AES_KEY_SIZE);
	r = 0;
out:
	wipe_value(value);
	wipe_value(plain);
	gcry_sexp_release(enc);
	gcry_sexp_release(value);
	gcry_sexp_release(plain);
	return r;
}
