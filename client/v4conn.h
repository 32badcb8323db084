/* v4conn.h: one version-4 connection of the client: TCP connect, the TLS 1.3 handshake with
 * the server key pinned (or recorded, trust on first use, by the caller), then requests and
 * responses in the framing of SPEC-v4.md 2 (version byte 4). Blocking calls with a deadline on
 * every wait, over the non-blocking socket net.c makes. Responses are framed by the shared
 * frame parser in its version-4 mode; their payloads are decoded by the caller with msg4.h.
 * Functions return 0 or a negative sd_err; they never print. */
#ifndef SD_CLIENT_V4CONN_H
#define SD_CLIENT_V4CONN_H

#include <stddef.h>
#include <stdint.h>

#include "../protocol/buf.h"
#include "../protocol/frame.h"
#include "../protocol/tls.h"

/* The client keeps a LISTING of at most this many bytes (a million files' worth is the
 * protocol's limit; the buffer grows only with bytes that arrive). */
#define V4CONN_LISTING_MAX (64u * 1024u * 1024u)
#define V4CONN_READ_CHUNK 16384u

struct v4conn;

struct v4conn_config {
	const char *host;
	const char *port;
	int connect_timeout_ms;
	int timeout_ms;                  /* every later wait: handshake, each write, each read */
	int handshake_timeout_ms;        /* > 0: the handshake's own deadline instead */
	const struct tls_creds *creds;   /* our identity (borrowed; outlives the connection) */
	const char *expected_fp;         /* the pinned server fingerprint, or NULL (TOFU) */
};

/* Connects and runs the handshake. On success *out owns the connection. Failures:
 * SD_ERR_IO: cannot resolve or connect (*tcp_connected 0), or the handshake timed out
 *   (*tcp_connected 1, errno ETIMEDOUT); why says which;
 * SD_ERR_NOT_TLS or SD_ERR_EOF: the server answered with something other than TLS, or
 *   closed (a version-3 server);
 * SD_ERR_PEER_KEY: the server's key is not expected_fp; presented_fp (TLS_FP_TEXT_SIZE
 *   bytes, may be NULL) receives the one it showed;
 * SD_ERR_TLS: TLS failed otherwise (why has the detail); errno ETIMEDOUT for a timeout. */
int v4conn_open(const struct v4conn_config *cfg, struct v4conn **out, char *presented_fp,
    int *tcp_connected, char *why, size_t why_cap);
/* Closes the connection (close_notify when it can without waiting) and frees it; accepts
 * NULL. */
void v4conn_close(struct v4conn *c);

/* The server's fingerprint, and "TLS1.3 ..." for --verbose. */
const char *v4conn_peer_fingerprint(const struct v4conn *c);
void v4conn_describe(const struct v4conn *c, char *out, size_t cap);

/* Sends all of data (whole requests from msg4.h's encoders, or a PUT_DATA's data after its
 * head). SD_ERR_IO with errno ETIMEDOUT / EPIPE, SD_ERR_EOF or SD_ERR_TLS when the connection
 * is gone. */
int v4conn_write(struct v4conn *c, const void *data, size_t len);
/* Sends two pieces back to back (b may be NULL/0). */
int v4conn_write2(struct v4conn *c, const void *a, size_t a_len, const void *b, size_t b_len);

/* Reads the next response: *code, and its whole payload in (*p, *n), valid until the next
 * read. Streamed responses (LISTING, GET_DATA) are gathered whole (at most
 * V4CONN_LISTING_MAX / V4_GET_DATA_PAYLOAD_MAX bytes). SD_ERR_BAD_FIELD: a version byte other
 * than 4; SD_ERR_UNKNOWN_CODE: not a version-4 response; SD_ERR_TOO_LARGE: a payload over
 * its code's limit; connection errors as v4conn_write. */
int v4conn_read_response(struct v4conn *c, uint16_t *code, const uint8_t **p, size_t *n);
/* 1 if a response is already waiting or arrives within timeout_ms. */
int v4conn_readable(struct v4conn *c, int timeout_ms);

/* Application bytes written so far (headers and payloads). */
uint64_t v4conn_bytes_out(const struct v4conn *c);

#endif
