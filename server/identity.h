/* identity.h: the server's version-4 identity files (SPEC-v4.md 1): an Ed25519 key
 * (server.key, PKCS#8 PEM) and its self-signed certificate (server.crt, PEM), by default
 * beside the database. Made on first start, mode 0600, each written to a temporary file in
 * the same folder and then linked into place, so that a file is never half-written and an
 * existing one is never overwritten (not even by a second server starting at the same
 * moment). Never prints: failures come back as an sd_err and a sentence in why. */
#ifndef SD_SERVER_IDENTITY_H
#define SD_SERVER_IDENTITY_H

#include <stddef.h>

struct tls_identity;

#define IDENTITY_KEY_FILE "server.key"
#define IDENTITY_CERT_FILE "server.crt"
#define IDENTITY_PATH_MAX 4096u
/* The common name of the certificate we make (the fingerprint is what clients pin). */
#define IDENTITY_CN "sealdrop-server"

/* out = the folder of db_path joined with file ("server.key" beside "data/defensive.db" is
 * "data/server.key"; beside "defensive.db", "server.key"). SD_ERR_TOO_LARGE if it does not
 * fit cap bytes. */
int identity_path_beside(const char *db_path, const char *file, char *out, size_t cap);

/* Loads the identity from key_path and cert_path, or makes and writes both when neither
 * exists (*created = 1). Refuses (SD_ERR_EXISTS) when only one of them exists: making the
 * other anew would not match it. SD_ERR_BAD_KEY when they do not parse or do not belong
 * together, SD_ERR_IO when a file cannot be read or written. *loose = 1 when the key file
 * can be read by others than its owner (the caller warns). The caller frees *out with
 * tls_identity_free(). why (why_cap bytes, may be 0) says what went wrong. */
int identity_load_or_create(const char *key_path, const char *cert_path,
    struct tls_identity **out, int *created, int *loose, char *why, size_t why_cap);

#endif
