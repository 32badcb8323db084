/* crypto.c: libgcrypt's set-up, the strong RNG, SHA-256, wiping and secret memory. With rsa.c
 * and aes.c the only files that call libgcrypt. */
#include "crypto.h"

#include <gcrypt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* Secure (mlock'ed where allowed) pool for private keys; it grows on demand past this. */
#define SECMEM_POOL_SIZE 65536u
#define SECMEM_EXPAND_CHUNK 32768u

static int init_err;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void do_init(void)
{
	/* Someone (a test harness, another library) may have set libgcrypt up already. */
	if (gcry_control(GCRYCTL_INITIALIZATION_FINISHED_P))
		return;
	/* The kernel's RNG (getrandom) behind every gcry_randomize(), instead of libgcrypt's own
	 * pool, whose fast poll costs getpid + getrusage + clock_gettime per call (a server does a
	 * few calls per registration). Must come before gcry_check_version(); ignored if
	 * libgcrypt was already set up. */
	gcry_control(GCRYCTL_SET_PREFERRED_RNG_TYPE, GCRY_RNG_TYPE_SYSTEM);
	if (gcry_check_version(GCRYPT_VERSION) == NULL) {
		init_err = SD_ERR_CRYPTO;
		return;
	}
	/* No "using insecure memory" lines on stderr when mlock is not allowed. */
	gcry_control(GCRYCTL_DISABLE_SECMEM_WARN, 0);
	if (gcry_control(GCRYCTL_AUTO_EXPAND_SECMEM, SECMEM_EXPAND_CHUNK) != 0 ||
	    gcry_control(GCRYCTL_INIT_SECMEM, SECMEM_POOL_SIZE, 0) != 0 ||
	    gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0) != 0)
		init_err = SD_ERR_CRYPTO;
}

int crypto_init(void)
{
	pthread_once(&init_once, do_init);
	return init_err;
}

void crypto_random(void *out, size_t n)
{
	if (n == 0)
		return;
	(void)crypto_init();
	gcry_randomize(out, n, GCRY_STRONG_RANDOM);
}

void crypto_wipe(void *p, size_t n)
{
	/* glibc's explicit_bzero is never removed as a dead store, and runs at memset speed
	 * (a volatile byte loop made wiping a connection's buffers a fifth of the server's time). */
	if (p != NULL)
		explicit_bzero(p, n);
}

void *crypto_alloc_secret(size_t n)
{
	(void)crypto_init();
	return gcry_malloc_secure(n > 0 ? n : 1);
}

void crypto_free_secret(void *p, size_t n)
{
	if (p == NULL)
		return;
	crypto_wipe(p, n);
	gcry_free(p);
}

void crypto_sha256(const void *data, size_t n, uint8_t out[32])
{
	(void)crypto_init();
	gcry_md_hash_buffer(GCRY_MD_SHA256, out, data, n);
}

struct sha256_ctx {
	gcry_md_hd_t md;
};

int
sha256_new(struct sha256_ctx **out)
{
	struct sha256_ctx *c;

	if (out == NULL)
		return SD_ERR_INVALID_ARG;
	*out = NULL;
	(void)crypto_init();
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return SD_ERR_ALLOC;
	if (gcry_md_open(&c->md, GCRY_MD_SHA256, 0) != 0) {
		free(c);
		return SD_ERR_CRYPTO;
	}
	*out = c;
	return 0;
}

void
sha256_update(struct sha256_ctx *c, const void *data, size_t n)
{
	if (c != NULL && n > 0)
		gcry_md_write(c->md, data, n);
}

int
sha256_peek(const struct sha256_ctx *c, uint8_t out[32])
{
	gcry_md_hd_t copy;
	const unsigned char *d;

	if (c == NULL || out == NULL)
		return SD_ERR_INVALID_ARG;
	/* Reading a digest finalises the handle: read a copy so the original can go on. */
	if (gcry_md_copy(&copy, c->md) != 0)
		return SD_ERR_CRYPTO;
	if ((d = gcry_md_read(copy, GCRY_MD_SHA256)) == NULL) {
		gcry_md_close(copy);
		return SD_ERR_CRYPTO;
	}
	memcpy(out, d, 32);
	gcry_md_close(copy);
	return 0;
}

void
sha256_free(struct sha256_ctx *c)
{
	if (c == NULL)
		return;
	gcry_md_close(c->md);
	free(c);
}
