/* sdcrypto.c: a small command-line front end to our crypto library, so that the Python test
 * (tests/integration/test_crypto_python.py) can check it against python3-cryptography.
 * Keys are DER files: PKCS#8 (or PKCS#1) for private keys, 160-byte SPKI for public ones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../protocol/cksum.h"
#include "../../protocol/aes.h"
#include "../../protocol/crypto.h"
#include "../../protocol/rsa.h"
#include "../../protocol/err.h"

#define MAX_FILE (64u << 20) /* test inputs are small; this only bounds a mistake */
#define SPKI_OUT_MAX 600u    /* SPKI of keys larger than the protocol's (e = 65537 from Python) */

static void usage(void)
{
	fprintf(stderr,
	    "usage: sdcrypto genkey OUT_PKCS8 OUT_SPKI\n"
	    "       sdcrypto wrap SPKI_FILE KEY_FILE OUT\n"
	    "       sdcrypto unwrap PRIVATE_DER_FILE IN OUT\n"
	    "       sdcrypto aes-enc KEY_FILE IN OUT\n"
	    "       sdcrypto aes-dec KEY_FILE IN OUT\n"
	    "       sdcrypto cksum FILE\n"
	    "       sdcrypto spki-from-private PRIVATE_DER_FILE OUT\n"
	    "       sdcrypto pubinfo SPKI_FILE    (prints bits and exponent)\n");
}

static int read_file(const char *path, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t n = 0, cap = 0, r;

	*out = NULL;
	*len = 0;
	if (f == NULL) {
		perror(path);
		return -1;
	}
	for (;;) {
		if (n == cap) {
			uint8_t *t;
			if (cap >= MAX_FILE || (t = realloc(buf, cap ? cap * 2 : 4096)) == NULL) {
				fprintf(stderr, "%s: too large or out of memory\n", path);
				free(buf);
				fclose(f);
				return -1;
			}
			buf = t;
			cap = cap ? cap * 2 : 4096;
		}
		if ((r = fread(buf + n, 1, cap - n, f)) == 0)
			break;
		n += r;
	}
	fclose(f);
	*out = buf;
	*len = n;
	return 0;
}

static int write_file(const char *path, const uint8_t *data, size_t n)
{
	FILE *f = fopen(path, "wb");

	if (f == NULL || (n > 0 && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
		perror(path);
		return -1;
	}
	return 0;
}

static int fail(const char *what, int r)
{
	fprintf(stderr, "sdcrypto: %s: %d\n", what, r);
	return 1;
}

static int load_private(const char *path, struct rsa_private **k)
{
	uint8_t *der;
	size_t n;
	int r;

	if (read_file(path, &der, &n) != 0)
		return -1;
	r = rsa_private_from_der(der, n, k);
	crypto_wipe(der, n);
	free(der);
	return r;
}

static int load_key32(const char *path, uint8_t key[AES_KEY_SIZE])
{
	uint8_t *data;
	size_t n;

	if (read_file(path, &data, &n) != 0)
		return -1;
	if (n != AES_KEY_SIZE) {
		fprintf(stderr, "%s: an AES key is %u bytes\n", path, AES_KEY_SIZE);
		free(data);
		return -1;
	}
	memcpy(key, data, AES_KEY_SIZE);
	crypto_wipe(data, n);
	free(data);
	return 0;
}

static int cmd_genkey(const char *out8, const char *outspki)
{
	struct rsa_private *k = NULL;
	struct rsa_public *pub = NULL;
	uint8_t *der = NULL, spki[PUBLIC_KEY_SIZE];
	size_t n = 0, sn = 0;
	int r;

	if ((r = rsa_generate(&k)) != 0 || (r = rsa_private_to_pkcs8(k, &der, &n)) != 0 ||
	    (r = rsa_public_from_private(k, &pub)) != 0 ||
	    (r = rsa_public_to_spki(pub, spki, sizeof(spki), &sn)) != 0)
		r = fail("genkey", r);
	else
		r = write_file(out8, der, n) != 0 || write_file(outspki, spki, sn) != 0;
	crypto_free_secret(der, n);
	rsa_private_free(k);
	rsa_public_free(pub);
	return r;
}

static int cmd_wrap(const char *spkifile, const char *keyfile, const char *out)
{
	struct rsa_public *pub = NULL;
	uint8_t *spki = NULL, key[AES_KEY_SIZE], wrapped[WRAPPED_KEY_SIZE];
	size_t n;
	int r;

	if (read_file(spkifile, &spki, &n) != 0 || load_key32(keyfile, key) != 0) {
		free(spki);
		return 1;
	}
	if ((r = rsa_public_from_spki(spki, n, &pub)) != 0 || (r = rsa_oaep_wrap(pub, key, wrapped)) != 0)
		r = fail("wrap", r);
	else
		r = write_file(out, wrapped, sizeof(wrapped)) != 0;
	crypto_wipe(key, sizeof(key));
	rsa_public_free(pub);
	free(spki);
	return r;
}

static int cmd_unwrap(const char *privfile, const char *in, const char *out)
{
	struct rsa_private *k = NULL;
	uint8_t *blob = NULL, key[AES_KEY_SIZE];
	size_t n = 0;
	int r;

	if ((r = load_private(privfile, &k)) != 0)
		return fail("load private key", r);
	if (read_file(in, &blob, &n) != 0 || n != WRAPPED_KEY_SIZE)
		r = fail("wrapped key size", (int)n);
	else if ((r = rsa_oaep_unwrap(k, blob, key)) != 0)
		r = fail("unwrap", r);
	else
		r = write_file(out, key, sizeof(key)) != 0;
	crypto_wipe(key, sizeof(key));
	rsa_private_free(k);
	free(blob);
	return r;
}

/* Streams the file through the cipher in 4099-byte slices, so odd splits are exercised. */
static int cmd_aes(enum aes_direction dir, const char *keyfile, const char *in, const char *out)
{
	struct aes_cbc *c = NULL;
	uint8_t key[AES_KEY_SIZE], *data = NULL, *res = NULL;
	size_t n = 0, o = 0, got, at, slice;
	int r;

	if (load_key32(keyfile, key) != 0 || read_file(in, &data, &n) != 0)
		return 1;
	if ((res = malloc(n + 2 * AES_BLOCK_SIZE)) == NULL ||
	    (r = aes_cbc_new(&c, key, dir)) != 0) {
		r = fail("aes setup", SD_ERR_ALLOC);
		goto out;
	}
	for (at = 0; at < n; at += slice) {
		slice = n - at < 4099 ? n - at : 4099;
		if ((r = aes_cbc_update(c, data + at, slice, res + o, &got)) != 0) {
			r = fail("aes update", r);
			goto out;
		}
		o += got;
	}
	if ((r = aes_cbc_final(c, res + o, &got)) != 0) {
		r = fail("aes final", r);
		goto out;
	}
	o += got;
	r = write_file(out, res, o) != 0;
out:
	crypto_wipe(key, sizeof(key));
	aes_cbc_free(c);
	free(data);
	free(res);
	return r;
}

static int cmd_cksum(const char *path)
{
	static uint8_t buf[1 << 20];
	struct cksum c;
	FILE *f = fopen(path, "rb");
	size_t n;

	if (f == NULL) {
		perror(path);
		return 1;
	}
	cksum_init(&c);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		cksum_update(&c, buf, n);
	if (ferror(f)) {
		perror(path);
		fclose(f);
		return 1;
	}
	fclose(f);
	printf("%u %llu\n", cksum_final(&c), (unsigned long long)c.length);
	return 0;
}

static int cmd_spki_from_private(const char *privfile, const char *out)
{
	struct rsa_private *k = NULL;
	struct rsa_public *pub = NULL;
	uint8_t spki[SPKI_OUT_MAX];
	size_t n = 0;
	int r;

	if ((r = load_private(privfile, &k)) != 0)
		return fail("load private key", r);
	if ((r = rsa_public_from_private(k, &pub)) != 0 ||
	    (r = rsa_public_to_spki(pub, spki, sizeof(spki), &n)) != 0)
		r = fail("spki", r);
	else
		r = write_file(out, spki, n) != 0;
	rsa_private_free(k);
	rsa_public_free(pub);
	return r;
}

static int cmd_pubinfo(const char *spkifile)
{
	struct rsa_public *pub = NULL;
	uint8_t *spki;
	size_t n;
	int r;

	if (read_file(spkifile, &spki, &n) != 0)
		return 1;
	if ((r = rsa_public_from_spki(spki, n, &pub)) != 0)
		r = fail("spki", r);
	else
		printf("%u %lu\n", rsa_public_bits(pub), rsa_public_exponent(pub));
	rsa_public_free(pub);
	free(spki);
	return r;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	if (crypto_init() != 0)
		return fail("crypto_init", SD_ERR_CRYPTO);
	if (strcmp(cmd, "genkey") == 0 && argc == 4)
		return cmd_genkey(argv[2], argv[3]);
	if (strcmp(cmd, "wrap") == 0 && argc == 5)
		return cmd_wrap(argv[2], argv[3], argv[4]);
	if (strcmp(cmd, "unwrap") == 0 && argc == 5)
		return cmd_unwrap(argv[2], argv[3], argv[4]);
	if (strcmp(cmd, "aes-enc") == 0 && argc == 5)
		return cmd_aes(AES_ENCRYPT, argv[2], argv[3], argv[4]);
	if (strcmp(cmd, "aes-dec") == 0 && argc == 5)
		return cmd_aes(AES_DECRYPT, argv[2], argv[3], argv[4]);
	if (strcmp(cmd, "cksum") == 0 && argc == 3)
		return cmd_cksum(argv[2]);
	if (strcmp(cmd, "spki-from-private") == 0 && argc == 4)
		return cmd_spki_from_private(argv[2], argv[3]);
	if (strcmp(cmd, "pubinfo") == 0 && argc == 3)
		return cmd_pubinfo(argv[2]);
	usage();
	return 2;
}
