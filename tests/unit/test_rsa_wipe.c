/* test_rsa_wipe.c: no copy of an AES key wrapped or unwrapped with RSA-OAEP that our code
 * hands to libgcrypt is left in memory freed without wiping (STYLE.md 11). libgcrypt's
 * allocations go through handlers of this test, which look for the key in every ordinary
 * block when it is freed (secure blocks are wiped by libgcrypt, and by these handlers).
 * Blocks allocated inside gcry_pk_encrypt/gcry_pk_decrypt are libgcrypt's own copies (1.10
 * copies the (data ...) list into ordinary memory with sexp_find_token) and out of our
 * reach: they are counted apart and only reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gcrypt.h>

#include "../../protocol/codes.h"
#include "../../protocol/crypto.h"
#include "../../protocol/rsa.h"

/* Each block starts with a header: the list of live blocks, its size and whether it is
 * secure. */
struct hdr {
	struct hdr *prev, *next;
	size_t size;
	size_t secure;
	size_t internal;  /* allocated inside gcry_pk_encrypt or gcry_pk_decrypt */
	max_align_t align[1];
};
#define HDR offsetof(struct hdr, align)

static struct hdr live;  /* the live blocks (a ring through live) */
static uint8_t watched[AES_KEY_SIZE];
static int watching;
static unsigned found;  /* freed ordinary blocks of ours that held the watched key */
static unsigned found_internal;  /* the same, libgcrypt's own copies */
static int in_pk;

static void *
block_alloc(size_t n, size_t secure)
{
	/* Zeroed, so that scanning a block never reads uninitialised bytes (valgrind). */
	struct hdr *h = calloc(1, HDR + (n > 0 ? n : 1));

	if (h == NULL)
		return NULL;
	if (live.next == NULL)
		live.next = live.prev = &live;
	h->next = live.next;
	h->prev = &live;
	live.next->prev = h;
	live.next = h;
	h->size = n;
	h->secure = secure;
	h->internal = (size_t)in_pk;
	return (char *)h + HDR;
}

static void *
h_alloc(size_t n)
{
	return block_alloc(n, 0);
}

static void *
h_alloc_secure(size_t n)
{
	return block_alloc(n, 1);
}

/* libgcrypt asks about any pointer: only the live blocks have a header. */
static int
h_is_secure(const void *p)
{
	const struct hdr *h;

	for (h = live.next; p != NULL && h != NULL && h != &live; h = h->next)
		if ((const char *)h + HDR == (const char *)p)
			return h->secure != 0;
	return 0;
}

static void
h_free(void *p)
{
	struct hdr *h;

	if (p == NULL)
		return;
	h = (struct hdr *)(void *)((char *)p - HDR);
	if (h->secure)
		explicit_bzero(p, h->size);
	else if (watching && h->size >= sizeof(watched) &&
	    memmem(p, h->size, watched, sizeof(watched)) != NULL) {
		if (h->internal)
			found_internal++;
		else
			found++;
	}
	h->prev->next = h->next;
	h->next->prev = h->prev;
	free(h);
}

static void *
h_realloc(void *p, size_t n)
{
	struct hdr *h;
	void *q;

	if (p == NULL)
		return h_alloc(n);
	h = (struct hdr *)(void *)((char *)p - HDR);
	if ((q = block_alloc(n, h->secure)) == NULL)
		return NULL;
	memcpy(q, p, h->size < n ? h->size : n);
	h_free(p);
	return q;
}

/* rsa.c's calls come here (the program's definition comes first), and go on to libgcrypt's. */
typedef gcry_error_t (*pk_fn)(gcry_sexp_t *, gcry_sexp_t, gcry_sexp_t);

static gcry_error_t
call_pk(const char *name, gcry_sexp_t *r, gcry_sexp_t data, gcry_sexp_t key)
{
	pk_fn real;
	gcry_error_t e;

	*(void **)&real = dlsym(RTLD_NEXT, name);
	assert_non_null(real);
	in_pk++;
	e = real(r, data, key);
	in_pk--;
	return e;
}

gcry_error_t
gcry_pk_encrypt(gcry_sexp_t *r, gcry_sexp_t data, gcry_sexp_t key)
{
	return call_pk("gcry_pk_encrypt", r, data, key);
}

gcry_error_t
gcry_pk_decrypt(gcry_sexp_t *r, gcry_sexp_t data, gcry_sexp_t key)
{
	return call_pk("gcry_pk_decrypt", r, data, key);
}

/* Wraps and unwraps a random key several times: no freed ordinary block held it. */
static void
test_oaep_leaves_no_key(void **state)
{
	struct rsa_private *priv = NULL;
	struct rsa_public *pub = NULL;
	uint8_t wrapped[WRAPPED_KEY_SIZE], back[AES_KEY_SIZE];
	int i;

	(void)state;
	assert_int_equal(rsa_generate(&priv), 0);
	assert_int_equal(rsa_public_from_private(priv, &pub), 0);
	for (i = 0; i < 8; i++) {
		crypto_random(watched, sizeof(watched));
		watching = 1;
		assert_int_equal(rsa_oaep_wrap(pub, watched, wrapped), 0);
		assert_int_equal(found, 0);
		assert_int_equal(rsa_oaep_unwrap(priv, wrapped, back), 0);
		watching = 0;
		assert_memory_equal(back, watched, sizeof(back));
		assert_int_equal(found, 0);
	}
	if (found_internal > 0)
		fprintf(stderr, "note: %u blocks freed unwiped inside libgcrypt's gcry_pk_* held "
		    "the key (its own copies)\n", found_internal);
	rsa_public_free(pub);
	rsa_private_free(priv);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oaep_leaves_no_key),
	};

	/* Before libgcrypt's initialisation, as it requires. */
	gcry_set_allocation_handler(h_alloc, h_alloc_secure, h_is_secure, h_realloc, h_free);
	if (crypto_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
