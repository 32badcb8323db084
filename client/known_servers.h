/* known_servers.h: the client's pins of version-4 servers (SPEC-v4.md 1): the file
 * `known_servers` in the working directory, one line per server, `HOST:PORT SHA256:...`
 * (an IPv6 host in brackets). Blank lines and lines starting with '#' are ignored; any other
 * line must have exactly that form. Trust on first use: the caller appends a line for a server
 * seen the first time; a later different fingerprint is refused, never overwritten here.
 * Functions return 0 or a negative sd_err and put a one-line reason into why on failure. */
#ifndef SD_CLIENT_KNOWN_SERVERS_H
#define SD_CLIENT_KNOWN_SERVERS_H

#include <stddef.h>

#include "../protocol/tls.h"

#define KNOWN_SERVERS_MAX (1u << 20)   /* a larger known_servers is refused, not read */
#define FINGERPRINT_PREFIX TLS_FP_PREFIX
#define FINGERPRINT_B64_LEN 43u        /* unpadded base64 of 32 bytes */
#define FINGERPRINT_TEXT_LEN TLS_FP_TEXT_LEN
#define SERVER_KEY_TEXT_MAX 262u       /* "[" host(255) "]:" port(5) */

/* 0 if text is a well-formed fingerprint (tls_fingerprint_valid(): SHA256: then 43 base64
 * characters, the last one without stray bits), else SD_ERR_BAD_FIELD. */
int fingerprint_check(const char *text);

/* The line key of a server: "host:port", or "[host]:port" when host holds a ':'. */
int known_servers_key(const char *host, const char *port, char *out, size_t cap);

enum known_verdict {
	KNOWN_NONE = 0,     /* no line for this server */
	KNOWN_MATCH,        /* a line for this server holds this fingerprint */
	KNOWN_MISMATCH,     /* lines for this server, none with this fingerprint */
};

struct known_result {
	enum known_verdict verdict;
	unsigned line;                            /* KNOWN_MISMATCH, KNOWN_MATCH: 1-based line */
	char fingerprint[FINGERPRINT_TEXT_LEN + 1];  /* the matching one; else the first line's */
};

/* Looks up key (from known_servers_key) in known_servers text (n bytes, need not be
 * NUL-terminated). fingerprint: the server's, or NULL to ask only whether the server is known
 * (then a found line gives KNOWN_MISMATCH with its fingerprint). Hosts compare without regard
 * to case. SD_ERR_BAD_FIELD for a malformed line (why names it). */
int known_servers_parse(const char *text, size_t n, const char *key, const char *fingerprint,
    struct known_result *res, char *why, size_t why_cap);
/* The same on the file at path; a missing file is KNOWN_NONE. */
int known_servers_lookup(const char *path, const char *key, const char *fingerprint,
    struct known_result *res, char *why, size_t why_cap);
/* Adds the line "key fingerprint\n" to path (a newline first when the file does not end in
 * one): the old content and the line go to a temporary file, which is synced and renamed over
 * path (mode 0600), then the folder is synced; runs in the same folder take turns by a lock
 * on it. A crash leaves the old file or the new one whole. */
int known_servers_append(const char *path, const char *key, const char *fingerprint, char *why,
    size_t why_cap);

#endif
