/* aes.c: AES-256-CBC streams on libgcrypt (zero IV, PKCS#7), for files of any size in slices
 * of any size. */
#include "aes.h"

#include <gcrypt.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "err.h"

struct aes_cbc {
	gcry_cipher_hd_t h;
	enum aes_direction dir;
	int done;                    /* final() was called; only reset() or free() may follow */
	size_t have;                 /* bytes in buf */
	uint8_t buf[AES_BLOCK_SIZE]; /* encrypt: partial block; decrypt: held-back block */
};

static const uint8_t zero_iv[AES_BLOCK_SIZE];

void aes_cbc_free(struct aes_cbc *c)
{
	if (c == NULL)
		return;
	gcry_cipher_close(c->h); /* libgcrypt wipes the key schedule on close */
	crypto_wipe(c, sizeof(*c));
	free(c);
}

/* Not GCRY_CIPHER_SECURE: a server runs many streams at once and the key schedule is wiped
 * on close anyway; the small locked pool is kept for RSA private keys. */
int aes_cbc_new(struct aes_cbc **out, const uint8_t key[AES_KEY_SIZE], enum aes_direction dir)
{
	struct aes_cbc *c = NULL;
	int r;

	if (out == NULL)
		return SD_ERR_INVALID_ARG;
	*out = NULL;
	if (key == NULL || (dir != AES_ENCRYPT && dir != AES_DECRYPT))
		return SD_ERR_INVALID_ARG;
	if ((r = crypto_init()) != 0)
		return r;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return SD_ERR_ALLOC;
	c->dir = dir;
	if (gcry_cipher_open(&c->h, GCRY_CIPHER_AES256, GCRY_CIPHER_MODE_CBC, 0) != 0) {
		c->h = NULL;
		r = SD_ERR_CRYPTO;
		goto out;
	}
	if (gcry_cipher_setkey(c->h, key, AES_KEY_SIZE) != 0 ||
	    gcry_cipher_setiv(c->h, zero_iv, sizeof(zero_iv)) != 0) {
		r = SD_ERR_CRYPTO;
		goto out;
	}
	*out = c;
	c = NULL;
	r = 0;
out:
	aes_cbc_free(c);
	return r;
}

int aes_cbc_reset(struct aes_cbc *c)
{
	if (c == NULL)
		return SD_ERR_INVALID_ARG;
	crypto_wipe(c->buf, sizeof(c->buf));
	c->have = 0;
	c->done = 0;
	if (gcry_cipher_reset(c->h) != 0 || gcry_cipher_setiv(c->h, zero_iv, sizeof(zero_iv)) != 0)
		return SD_ERR_CRYPTO;
	return 0;
}

static int run(struct aes_cbc *c, uint8_t *out, const uint8_t *in, size_t n)
{
	gcry_error_t e;

	if (c->dir == AES_ENCRYPT)
		e = gcry_cipher_encrypt(c->h, out, n, in, n);
	else
		e = gcry_cipher_decrypt(c->h, out, n, in, n);
	return e == 0 ? 0 : SD_ERR_CRYPTO;
}

int aes_cbc_update(struct aes_cbc *c, const uint8_t *in, size_t in_len, uint8_t *out,
    size_t *out_len)
{
	size_t total, todo, o = 0;
	int r;

	if (out_len != NULL)
		*out_len = 0;
	if (c == NULL || out_len == NULL || (in == NULL && in_len > 0) || (out == NULL && in_len > 0))
		return SD_ERR_INVALID_ARG;
	if (c->done)
		return SD_ERR_INVALID_ARG;
	if (in_len > SIZE_MAX - AES_BLOCK_SIZE)
		return SD_ERR_TOO_LARGE;
	total = c->have + in_len;
	/* Encrypt all whole blocks; decrypt all but the last block, which may carry the padding
	 * and is only known to be last at final(). */
	if (c->dir == AES_ENCRYPT)
		todo = total / AES_BLOCK_SIZE * AES_BLOCK_SIZE;
	else
		todo = total == 0 ? 0 : (total - 1) / AES_BLOCK_SIZE * AES_BLOCK_SIZE;
	if (todo == 0) {
		if (in_len > 0)
			memcpy(c->buf + c->have, in, in_len);
		c->have = total;
		return 0;
	}
	if (c->have > 0) {
		size_t need = AES_BLOCK_SIZE - c->have;

		memcpy(c->buf + c->have, in, need);
		in += need;
		in_len -= need;
		if ((r = run(c, out, c->buf, AES_BLOCK_SIZE)) != 0)
			return r;
		o = AES_BLOCK_SIZE;
		todo -= AES_BLOCK_SIZE;
		c->have = 0;
	}
	if (todo > 0) {
		if ((r = run(c, out + o, in, todo)) != 0)
			return r;
		o += todo;
		in += todo;
		in_len -= todo;
	}
	if (in_len > 0)
		memcpy(c->buf, in, in_len);
	c->have = in_len;
	*out_len = o;
	return 0;
}

int aes_cbc_final(struct aes_cbc *c, uint8_t *out, size_t *out_len)
{
	uint8_t pad, bad = 0;
	int r;

	if (out_len != NULL)
		*out_len = 0;
	if (c == NULL || out == NULL || out_len == NULL || c->done)
		return SD_ERR_INVALID_ARG;
	c->done = 1;
	if (c->dir == AES_ENCRYPT) {
		pad = (uint8_t)(AES_BLOCK_SIZE - c->have);
		memset(c->buf + c->have, pad, pad);
		r = run(c, out, c->buf, AES_BLOCK_SIZE);
		if (r == 0)
			*out_len = AES_BLOCK_SIZE;
		goto out;
	}
	if (c->have != AES_BLOCK_SIZE) {
		r = SD_ERR_BAD_PADDING; /* no data, or not whole blocks */
		goto out;
	}
	if ((r = run(c, c->buf, c->buf, AES_BLOCK_SIZE)) != 0)
		goto out;
	/* Check every padding byte without an early exit, so timing says little. */
	pad = c->buf[AES_BLOCK_SIZE - 1];
	bad |= (uint8_t)(pad == 0);
	bad |= (uint8_t)(pad > AES_BLOCK_SIZE);
	for (unsigned i = 0; i < AES_BLOCK_SIZE; i++) {
		uint8_t in_pad = (uint8_t)(i >= AES_BLOCK_SIZE - (unsigned)pad);
		bad |= (uint8_t)(in_pad & (c->buf[i] != pad));
	}
	if (bad) {
		r = SD_ERR_BAD_PADDING;
		goto out;
	}
	memcpy(out, c->buf, AES_BLOCK_SIZE - (size_t)pad);
	*out_len = AES_BLOCK_SIZE - (size_t)pad;
	r = 0;
out:
	crypto_wipe(c->buf, sizeof(c->buf));
	c->have = 0;
	return r;
}

uint64_t aes_cbc_ciphertext_size(uint64_t n)
{
	return (n / AES_BLOCK_SIZE + 1) * AES_BLOCK_SIZE;
}
