/* sdbench.c: throughput of our cksum CRC and our streaming AES-256-CBC encryption over a file,
 * and the rate of the server's RSA work per key exchange, for `make bench`.
 * Usage: sdbench cksum FILE | sdbench aes FILE | sdbench keys. Prints one line with MB/s
 * (10^6 bytes per second, wall clock, file reads included as a real upload has them), or with
 * key exchanges per second on one core. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../protocol/cksum.h"
#include "../../protocol/aes.h"
#include "../../protocol/crypto.h"
#include "../../protocol/rsa.h"
#include "../../protocol/err.h"

#define READ_SIZE (1u << 20) /* large reads, like GNU cksum's own buffered reads or larger */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The RSA work of one 826 or 827 on the server: parse the client's SPKI, draw an AES key, wrap
 * it with OAEP. Repeated for about a second on one core. */
static int keys_rate(void)
{
	struct rsa_private *priv = NULL;
	struct rsa_public *pub = NULL, *parsed = NULL;
	uint8_t spki[PUBLIC_KEY_SIZE], key[AES_KEY_SIZE], wrapped[WRAPPED_KEY_SIZE];
	size_t len = 0;
	unsigned long n = 0;
	double t0, t = 0;
	int r;

	if ((r = rsa_generate(&priv)) != 0 || (r = rsa_public_from_private(priv, &pub)) != 0 ||
	    (r = rsa_public_to_spki(pub, spki, sizeof(spki), &len)) != 0)
		goto out;
	t0 = now();
	while ((t = now() - t0) < 1.0) {
		if ((r = rsa_public_from_spki(spki, len, &parsed)) != 0)
			goto out;
		crypto_random(key, sizeof(key));
		r = rsa_oaep_wrap(parsed, key, wrapped);
		rsa_public_free(parsed);
		parsed = NULL;
		if (r != 0)
			goto out;
		n++;
	}
	printf("key exchanges (SPKI parse, random key, OAEP wrap): %lu in %.3f s: %.0f /s\n", n, t,
	    (double)n / t);
out:
	crypto_wipe(key, sizeof(key));
	rsa_public_free(pub);
	rsa_private_free(priv);
	if (r != 0)
		fprintf(stderr, "sdbench: key exchange failed: %s\n", sd_strerror(r));
	return r != 0;
}

int main(int argc, char **argv)
{
	static uint8_t in[READ_SIZE], out[READ_SIZE + 32];
	struct aes_cbc *c = NULL;
	struct cksum ck;
	uint8_t key[AES_KEY_SIZE];
	uint64_t total = 0, sink = 0;
	size_t n, got;
	double t0, t;
	int aes;
	FILE *f;

	if (argc == 2 && strcmp(argv[1], "keys") == 0) {
		if (crypto_init() != 0) {
			fprintf(stderr, "sdbench: crypto_init failed\n");
			return 1;
		}
		return keys_rate();
	}
	if (argc != 3 || (strcmp(argv[1], "cksum") != 0 && strcmp(argv[1], "aes") != 0)) {
		fprintf(stderr, "usage: sdbench cksum|aes FILE | sdbench keys\n");
		return 2;
	}
	aes = strcmp(argv[1], "aes") == 0;
	if (crypto_init() != 0) {
		fprintf(stderr, "sdbench: crypto_init failed\n");
		return 1;
	}
	if ((f = fopen(argv[2], "rb")) == NULL) {
		perror(argv[2]);
		return 1;
	}
	setvbuf(f, NULL, _IONBF, 0);
	crypto_random(key, sizeof(key));
	if (aes && aes_cbc_new(&c, key, AES_ENCRYPT) != 0) {
		fprintf(stderr, "sdbench: aes_cbc_new failed\n");
		fclose(f);
		return 1;
	}
	cksum_init(&ck);
	t0 = now();
	while ((n = fread(in, 1, sizeof(in), f)) > 0) {
		if (aes) {
			if (aes_cbc_update(c, in, n, out, &got) != 0)
				break;
			sink += out[0];
		} else {
			cksum_update(&ck, in, n);
		}
		total += n;
	}
	if (aes && aes_cbc_final(c, out, &got) == 0)
		sink += out[0];
	t = now() - t0;
	if (ferror(f)) {
		perror(argv[2]);
		fclose(f);
		aes_cbc_free(c);
		return 1;
	}
	fclose(f);
	aes_cbc_free(c);
	if (t <= 0)
		t = 1e-9;
	if (aes)
		printf("aes-256-cbc encrypt: %llu bytes in %.3f s: %.1f MB/s (sink %llu)\n",
		    (unsigned long long)total, t, (double)total / t / 1e6, (unsigned long long)(sink & 1));
	else
		printf("cksum: %u %llu in %.3f s: %.1f MB/s (%s)\n", cksum_final(&ck),
		    (unsigned long long)total, t, (double)total / t / 1e6,
		    cksum_has_clmul() ? "pclmul" : "table");
	return 0;
}
