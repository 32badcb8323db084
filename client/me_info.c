/* me_info.c: reading me.info and priv.key tolerantly (CRLF, NUL-padded name line, base64 on
 * one line or wrapped, priv.key as base64 or raw DER) and writing both atomically with mode
 * 0600 (SPEC.md 8). */
#include "me_info.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../protocol/base64.h"
#include "../protocol/crypto.h"
#include "../protocol/err.h"
#include "../protocol/hex.h"
#include "files.h"

void
me_info_clear(struct me_info *mi)
{
	if (mi == NULL)
		return;
	rsa_private_free(mi->key);
	crypto_wipe(mi, sizeof(*mi));
	mi->key = NULL;
}

/* 1 if every byte is base64 text or white space: then it is not raw DER. */
static int
looks_like_base64(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		uint8_t c = p[i];
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '+' || c == '/' || c == '=' || c == ' ' || c == '\t' || c == '\r' ||
		    c == '\n')
			continue;
		return 0;
	}
	return 1;
}

int
me_info_parse_key(const uint8_t *data, size_t n, struct rsa_private **out, char *why,
    size_t why_cap)
{
	uint8_t *der = NULL;
	size_t der_len = 0;
	int r;

	if (data == NULL || out == NULL)
		return SD_ERR_INVALID_ARG;
	*out = NULL;
	if (file_is_blank((const char *)data, n)) {
		file_why(why, why_cap, "the private key is empty");
		return SD_ERR_BAD_KEY;
	}
	if (looks_like_base64(data, n)) {
		if ((r = base64_decode((const char *)data, n, &der, &der_len)) != 0) {
			file_why(why, why_cap, "the private key's base64 does not decode (%s)",
			    sd_strerror(r));
			return r;
		}
		r = rsa_private_from_der(der, der_len, out);
		crypto_free_secret(der, der_len);
	} else {
		/* Some existing clients write priv.key as raw DER. */
		r = rsa_private_from_der(data, n, out);
	}
	if (r != 0)
		file_why(why, why_cap, "the private key does not parse (%s)", sd_strerror(r));
	return r;
}

int
me_info_parse(const char *text, size_t n, const uint8_t *priv, size_t priv_n,
    struct me_info *mi, char *why, size_t why_cap)
{
	struct file_lines l;
	const char *s, *nul;
	size_t sn, i;
	int r = SD_ERR_INTERNAL;

	if (text == NULL || mi == NULL)
		return SD_ERR_INVALID_ARG;
	memset(mi, 0, sizeof(*mi));
	l.p = text;
	l.end = text + n;

	/* Line 1: the name. Some clients pad it with NULs to 255 bytes: keep what precedes them. */
	if (!file_next_line(&l, &s, &sn)) {
		file_why(why, why_cap, "it is empty");
		r = SD_ERR_BAD_FIELD;
		goto out;
	}
	if ((nul = memchr(s, '\0', sn)) != NULL)
		sn = (size_t)(nul - s);
	while (sn > 0 && s[sn - 1] == '\r')
		sn--;
	if (sn == 0 || sn > NAME_MAX_LEN) {
		file_why(why, why_cap, "line 1 (the name) is empty or longer than %u bytes",
		    NAME_MAX_LEN);
		r = SD_ERR_BAD_STRING;
		goto out;
	}
	for (i = 0; i < sn; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			file_why(why, why_cap, "line 1 (the name) has a control character");
			r = SD_ERR_BAD_STRING;
			goto out;
		}
	}
	memcpy(mi->name, s, sn);
	mi->name[sn] = '\0';

	/* Line 2: the ID, 32 hex digits. */
	if (!file_next_line(&l, &s, &sn)) {
		file_why(why, why_cap, "line 2 (the ID) is missing");
		r = SD_ERR_BAD_FIELD;
		goto out;
	}
	file_trim(&s, &sn);
	if ((r = hex_decode(s, sn, mi->id, CLIENT_ID_SIZE)) != 0) {
		file_why(why, why_cap, "line 2 (the ID) is not 32 hex digits");
		goto out;
	}

	/* Lines 3 to the end: the key in base64, wrapped or not. None: priv.key holds it. */
	s = l.p;
	sn = (size_t)(l.end - l.p);
	if (!file_is_blank(s, sn)) {
		if (!looks_like_base64((const uint8_t *)s, sn)) {
			file_why(why, why_cap, "lines 3 and on (the private key) are not base64");
			r = SD_ERR_BAD_BASE64;
			goto out;
		}
		if ((r = me_info_parse_key((const uint8_t *)s, sn, &mi->key, why, why_cap)) != 0)
			goto out;
	} else {
		if (priv == NULL) {
			file_why(why, why_cap, "it has no private key and priv.key is missing");
			r = SD_ERR_BAD_KEY;
			goto out;
		}
		if ((r = me_info_parse_key(priv, priv_n, &mi->key, why, why_cap)) != 0)
			goto out;
		mi->key_from_priv_key = 1;
	}
	r = 0;
out:
	if (r != 0)
		me_info_clear(mi);
	return r;
}

/* 1 if me.info text has something after its ID line. */
static int
has_key_lines(const char *text, size_t n)
{
	struct file_lines l = { text, text + n };
	const char *s;
	size_t sn;

	if (!file_next_line(&l, &s, &sn) || !file_next_line(&l, &s, &sn))
		return 0;
	return !file_is_blank(l.p, (size_t)(l.end - l.p));
}

int
me_info_load(const char *me_path, const char *priv_path, struct me_info *mi, char *why,
    size_t why_cap)
{
	char *text = NULL, *priv = NULL;
	size_t n = 0, priv_n = 0;
	char inner[WHY_MAX];
	int r;

	if (me_path == NULL || mi == NULL)
		return SD_ERR_INVALID_ARG;
	memset(mi, 0, sizeof(*mi));
	if ((r = file_read_small(me_path, ME_INFO_MAX, &text, &n)) != 0) {
		if (r == SD_ERR_NOT_FOUND)
			file_why(why, why_cap, "%s does not exist", me_path);
		else if (r == SD_ERR_TOO_LARGE)
			file_why(why, why_cap, "%s is larger than %u bytes", me_path, ME_INFO_MAX);
		else
			file_why(why, why_cap, "cannot read %s: %s", me_path, strerror(errno));
		goto out;
	}
	if (!has_key_lines(text, n) && priv_path != NULL) {
		r = file_read_small(priv_path, ME_INFO_PRIV_KEY_MAX, &priv, &priv_n);
		if (r == SD_ERR_NOT_FOUND) {
			priv = NULL;
		} else if (r != 0) {
			file_why(why, why_cap, "%s has no key and %s cannot be read: %s", me_path,
			    priv_path, r == SD_ERR_TOO_LARGE ? "too large" : strerror(errno));
			goto out;
		}
	}
	inner[0] = '\0';
	if ((r = me_info_parse(text, n, (const uint8_t *)priv, priv_n, mi, inner,
	    sizeof(inner))) != 0) {
		file_why(why, why_cap, "%s: %s", me_path, inner);
		goto out;
	}
	r = 0;
out:
	file_free_small(text, n);
	file_free_small(priv, priv_n);
	return r;
}

int
me_info_write(const char *me_path, const char *priv_path, const char *name,
    const uint8_t id[CLIENT_ID_SIZE], const struct rsa_private *key, char *why, size_t why_cap)
{
	uint8_t *der = NULL;
	size_t der_len = 0, b64_len = 0, text_len, name_len, cap = 0;
	char *b64 = NULL, *text = NULL;
	char hex[2 * CLIENT_ID_SIZE + 1];
	int r;

	if (me_path == NULL || name == NULL || id == NULL || key == NULL)
		return SD_ERR_INVALID_ARG;
	name_len = strlen(name);
	if (name_len == 0 || name_len > NAME_MAX_LEN || strchr(name, '\n') != NULL) {
		file_why(why, why_cap, "the name cannot be written to me.info");
		return SD_ERR_BAD_STRING;
	}
	if ((r = rsa_private_to_pkcs8(key, &der, &der_len)) != 0) {
		file_why(why, why_cap, "cannot encode the private key (%s)", sd_strerror(r));
		goto out;
	}
	if ((r = base64_encode(der, der_len, &b64, &b64_len)) != 0) {
		file_why(why, why_cap, "cannot encode the private key (%s)", sd_strerror(r));
		goto out;
	}
	hex_encode(id, CLIENT_ID_SIZE, hex);
	cap = name_len + 1 + sizeof(hex) + b64_len + 2;
	if ((text = malloc(cap)) == NULL) {
		r = SD_ERR_ALLOC;
		file_why(why, why_cap, "out of memory");
		goto out;
	}
	/* me.info first: it carries the key itself, so if writing priv.key fails afterwards the
	 * new me.info still works; the other order could pair an old me.info without key lines
	 * with a new priv.key. */
	text_len = (size_t)snprintf(text, cap, "%s\n%s\n%s\n", name, hex, b64);
	if (text_len >= cap) {
		r = SD_ERR_INTERNAL;
		goto out;
	}
	if ((r = file_write_atomic(me_path, text, text_len, why, why_cap)) != 0)
		goto out;
	if (priv_path != NULL) {
		memcpy(text, b64, b64_len);
		text[b64_len] = '\n';
		if ((r = file_write_atomic(priv_path, text, b64_len + 1, why, why_cap)) != 0)
			goto out;
	}
	r = 0;
out:
	file_free_secret(text, cap);
	if (b64 != NULL)
		crypto_free_secret(b64, b64_len + 1);
	if (der != NULL)
		crypto_free_secret(der, der_len);
	return r;
}

int
me_info_key_spki(const struct rsa_private *key, uint8_t spki[PUBLIC_KEY_SIZE], char *why,
    size_t why_cap)
{
	struct rsa_public *pub = NULL;
	size_t len = 0;
	int r;

	if ((r = rsa_public_from_private(key, &pub)) != 0 ||
	    (r = rsa_public_to_spki(pub, spki, PUBLIC_KEY_SIZE, &len)) != 0 ||
	    len != PUBLIC_KEY_SIZE) {
		file_why(why, why_cap, "cannot encode the public key (%s, %zu bytes)", sd_strerror(r),
		    len);
		if (r == 0)
			r = SD_ERR_INTERNAL;
	}
	rsa_public_free(pub);
	return r;
}

int
me_info_new_key(struct rsa_private **out, uint8_t spki[PUBLIC_KEY_SIZE], char *why,
    size_t why_cap)
{
	struct rsa_private *key = NULL;
	int r;

	*out = NULL;
	if ((r = rsa_generate(&key)) != 0) {
		file_why(why, why_cap, "cannot generate an RSA key pair: %s", sd_strerror(r));
		goto out;
	}
	if ((r = me_info_key_spki(key, spki, why, why_cap)) != 0)
		goto out;
	*out = key;
	key = NULL;
out:
	rsa_private_free(key);
	return r;
}

int
me_info_write_key(const char *priv_path, const struct rsa_private *key, char *why,
    size_t why_cap)
{
	uint8_t *der = NULL;
	size_t der_len = 0, b64_len = 0;
	char *b64 = NULL;
	int r;

	if (priv_path == NULL || key == NULL)
		return SD_ERR_INVALID_ARG;
	if ((r = rsa_private_to_pkcs8(key, &der, &der_len)) != 0 ||
	    (r = base64_encode(der, der_len, &b64, &b64_len)) != 0) {
		file_why(why, why_cap, "cannot encode the private key (%s)", sd_strerror(r));
		goto out;
	}
	/* base64_encode leaves room for its NUL: the line's newline takes its place. */
	b64[b64_len] = '\n';
	r = file_write_atomic(priv_path, b64, b64_len + 1, why, why_cap);
	b64[b64_len] = '\0';
out:
	if (b64 != NULL)
		crypto_free_secret(b64, b64_len + 1);
	if (der != NULL)
		crypto_free_secret(der, der_len);
	return r;
}

int
me_info_load_key(const char *priv_path, struct rsa_private **out, char *why, size_t why_cap)
{
	char *text = NULL;
	size_t n = 0;
	int r;

	if (priv_path == NULL || out == NULL)
		return SD_ERR_INVALID_ARG;
	*out = NULL;
	if ((r = file_read_small(priv_path, ME_INFO_PRIV_KEY_MAX, &text, &n)) != 0) {
		if (r == SD_ERR_NOT_FOUND)
			file_why(why, why_cap, "%s does not exist", priv_path);
		else
			file_why(why, why_cap, "cannot read %s: %s", priv_path,
			    r == SD_ERR_TOO_LARGE ? "too large" : strerror(errno));
		return r;
	}
	r = me_info_parse_key((const uint8_t *)text, n, out, why, why_cap);
	file_free_small(text, n);
	return r;
}
