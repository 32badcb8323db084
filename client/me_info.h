/* me_info.h: me.info (name, ID, private key) and priv.key (the key alone), SPEC.md 8. Readers
 * are tolerant (CRLF, NUL-padded name line, base64 on one line or wrapped, priv.key as base64
 * or raw DER); the writer is strict and atomic (temporary file, fsync, rename, mode 0600) so a
 * valid me.info is never replaced by a broken one. Functions return 0 or a negative sd_err
 * and, on failure, put a one-line reason into why. */
#ifndef SD_CLIENT_ME_INFO_H
#define SD_CLIENT_ME_INFO_H

#include <stddef.h>
#include <stdint.h>

#include "../protocol/codes.h"
#include "../protocol/rsa.h"

#define ME_INFO_MAX 16384u           /* me.info: 255-byte name, ID, ~1 KiB of base64 */
#define ME_INFO_PRIV_KEY_MAX 16384u  /* priv.key */

struct me_info {
	char name[NAME_FIELD_SIZE];
	uint8_t id[CLIENT_ID_SIZE];
	struct rsa_private *key;  /* owned: release with me_info_clear() */
	int key_from_priv_key;    /* 1: me.info had no key lines, the key came from priv.key */
};

/* Releases the key and clears *mi; accepts NULL. */
void me_info_clear(struct me_info *mi);
/* Parses me.info text: line 1 the name (NULs and CR stripped), line 2 the ID (32 hex digits,
 * either case), lines 3 to the end the base64 PKCS#8 (or PKCS#1) key, one line or wrapped.
 * If me.info has no key lines, priv (priv_n bytes, base64 or raw DER) is used; priv may be NULL.
 * On success *mi owns a key; on failure *mi is cleared. */
int me_info_parse(const char *text, size_t n, const uint8_t *priv, size_t priv_n,
    struct me_info *mi, char *why, size_t why_cap);
/* Reads me_path (SD_ERR_NOT_FOUND if missing) and, only when needed, priv_path. */
int me_info_load(const char *me_path, const char *priv_path, struct me_info *mi, char *why,
    size_t why_cap);
/* Decodes a private key file: base64 text (wrapped or not) or raw DER. */
int me_info_parse_key(const uint8_t *data, size_t n, struct rsa_private **out, char *why,
    size_t why_cap);
/* A new RSA key pair for registering: *out is the private key (the caller frees it with
 * rsa_private_free), spki its public key as sent in 826 and REGISTER. */
int me_info_new_key(struct rsa_private **out, uint8_t spki[PUBLIC_KEY_SIZE], char *why,
    size_t why_cap);
/* spki: key's public key as sent in 826 and REGISTER. */
int me_info_key_spki(const struct rsa_private *key, uint8_t spki[PUBLIC_KEY_SIZE], char *why,
    size_t why_cap);
/* Writes priv.key alone (the base64 key, one line; temporary file, fsync, rename, 0600): the
 * version-4 client keeps the key of a REGISTER not yet answered there, so that a lost reply
 * does not lose the account (v4.c). */
int me_info_write_key(const char *priv_path, const struct rsa_private *key, char *why,
    size_t why_cap);
/* Reads priv.key into *out (the caller frees it with rsa_private_free); SD_ERR_NOT_FOUND if
 * it does not exist. */
int me_info_load_key(const char *priv_path, struct rsa_private **out, char *why,
    size_t why_cap);
/* Writes priv.key (the base64 key, one line) and then me.info (name, lower-case hex ID, the same
 * base64), each through a temporary file in the same folder with mode 0600, fsync and rename.
 * On failure the previous files are left as they were. */
int me_info_write(const char *me_path, const char *priv_path, const char *name,
    const uint8_t id[CLIENT_ID_SIZE], const struct rsa_private *key, char *why, size_t why_cap);

#endif
