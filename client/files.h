/* files.h: the client's files (SPEC.md 8): transfer.info (server, name, file), me.info (name,
 * ID, private key) and priv.key. Readers are tolerant (CRLF, NUL-padded name line, base64 on one
 * line or wrapped, priv.key as base64 or raw DER); the writer is strict and atomic (temporary
 * file, fsync, rename, mode 0600) so a valid me.info is never replaced by a broken one.
 * Functions return 0 or a negative sd_err and, on failure, put a one-line reason into why. */
#ifndef SD_CLIENT_FILES_H
#define SD_CLIENT_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "../protocol/codes.h"
#include "../protocol/crypto.h"

#define TRANSFER_INFO_MAX 8192u   /* transfer.info larger than this is not a transfer.info */
#define ME_INFO_MAX 16384u        /* me.info: 255-byte name, ID, ~1 KiB of base64 */
#define PRIV_KEY_MAX 16384u
#define HOST_MAX 255u             /* a DNS name's limit */
#define PORT_TEXT_MAX 5u          /* "65535" */
#define FILE_PATH_MAX 4095u
#define WHY_MAX 256u              /* a reason for a failure, one line */

/* Which transfer.info lines are overridden by options (their content is then not checked and
 * they may be missing). */
enum {
	TI_SKIP_SERVER = 1u << 0,
	TI_SKIP_NAME = 1u << 1,
	TI_SKIP_FILE = 1u << 2,
};

struct transfer_info {
	char host[HOST_MAX + 1];       /* without the brackets of "[::1]:port" */
	char port[PORT_TEXT_MAX + 1];  /* decimal 1-65535 */
	char name[CLIENT_NAME_MAX_LEN + 1];
	char file_path[FILE_PATH_MAX + 1];
};

/* Splits "host:port" or "[v6addr]:port" (port 1-65535) into ti->host and ti->port. */
int transfer_server_parse(const char *text, struct transfer_info *ti, char *why, size_t why_cap);
/* A client name: 1 to CLIENT_NAME_MAX_LEN bytes, no control characters. */
int transfer_name_check(const char *name, char *why, size_t why_cap);
/* Parses transfer.info text (n bytes, need not be NUL-terminated). Lines end in LF or CRLF;
 * a trailing newline and empty trailing lines are fine; a fourth non-empty line is not.
 * Lines whose TI_SKIP_* bit is set in skip are not checked. *ti is cleared first. */
int transfer_info_parse(const char *text, size_t n, unsigned skip, struct transfer_info *ti,
    char *why, size_t why_cap);
/* Reads and parses the file at path (SD_ERR_NOT_FOUND if it does not exist). */
int transfer_info_load(const char *path, unsigned skip, struct transfer_info *ti, char *why,
    size_t why_cap);

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
int priv_key_parse(const uint8_t *data, size_t n, struct rsa_private **out, char *why,
    size_t why_cap);
/* Writes priv.key (the base64 key, one line) and then me.info (name, lower-case hex ID, the same
 * base64), each through a temporary file in the same folder with mode 0600, fsync and rename.
 * On failure the previous files are left as they were. */
int me_info_write(const char *me_path, const char *priv_path, const char *name,
    const uint8_t id[CLIENT_ID_SIZE], const struct rsa_private *key, char *why, size_t why_cap);

/* Reads a whole small file (at most max bytes) into a new allocation (NUL-terminated; *n bytes
 * before the NUL); the caller frees it with file_free_small(*out, *n). SD_ERR_NOT_FOUND for a
 * missing file, SD_ERR_TOO_LARGE over max, SD_ERR_IO otherwise (errno kept). */
int file_read_small(const char *path, size_t max, char **out, size_t *n);
/* Wipes and frees what file_read_small() returned; accepts NULL. */
void file_free_small(char *p, size_t n);
/* Writes n bytes to path through a temporary file in the same folder (mode 0600), fsync,
 * rename, folder fsync: path holds either its old content or all of the new. */
int file_write_atomic(const char *path, const void *data, size_t n, char *why, size_t why_cap);


#endif
