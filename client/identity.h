/* identity.h: the client's version-4 identity, me.key (SPEC-v4.md 1): one PEM file holding
 * the PKCS#8 Ed25519 key, then its self-signed certificate, mode 0600, beside me.info.
 * Written through a temporary file and a rename, and checked by reading it back first, so a
 * valid me.key is never replaced by a broken one. Functions return 0 or a negative sd_err
 * and put a one-line reason into why on failure. */
#ifndef SD_CLIENT_IDENTITY_H
#define SD_CLIENT_IDENTITY_H

#include <stddef.h>

#include "../protocol/tls.h"

/* Reads path into *out (owned by the caller: tls_identity_free()). SD_ERR_NOT_FOUND if the
 * file does not exist; SD_ERR_BAD_KEY if it does not parse. */
int identity_load(const char *path, struct tls_identity **out, char *why, size_t why_cap);
/* Writes id to path (replacing it only once the new content is complete and parses). */
int identity_save(const char *path, const struct tls_identity *id, char *why, size_t why_cap);
/* A new identity whose certificate names cn (made printable and cut to 64 bytes). */
int identity_generate(const char *cn, struct tls_identity **out, char *why, size_t why_cap);

#endif
