/* tls.h: the version-4 transport (SPEC-v4.md 1): TLS 1.3 with ALPN "sealdrop/4" and pinned
 * self-signed Ed25519 certificates, on GnuTLS (the only user of GnuTLS). It never opens a
 * socket, touches a file or prints: it drives an fd it is given and returns bytes.
 *
 * Ownership: every *_new / *_generate / *_from_* hands over an object on success only (the
 * out-parameter is NULL on failure); the matching *_free accepts NULL and wipes. PEM exports
 * append to a caller's struct buf (the caller frees it with buf_free(), which wipes).
 * A tls_creds may be shared by many sessions and threads once made (read-only); it must
 * outlive them. A tls_session is used by one thread at a time. */
#ifndef SD_TLS_H
#define SD_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define TLS_ALPN "sealdrop/4"
/* "SHA256:" + 43 characters of unpadded base64 + NUL. */
#define TLS_FP_PREFIX "SHA256:"
#define TLS_FP_TEXT_LEN 50u
#define TLS_FP_TEXT_SIZE (TLS_FP_TEXT_LEN + 1u)
/* A PEM blob we read (me.key, server.key, server.crt) is at most this long. */
#define TLS_PEM_MAX 16384u

/* --- Detection (pure) ---------------------------------------------------------------- */

enum tls_sniff_result {
	TLS_SNIFF_MORE = 0,  /* not enough bytes to tell yet */
	TLS_SNIFF_TLS,       /* a TLS ClientHello: 0x16, 0x03 0x01..0x04, byte 5 = 0x01 */
	TLS_SNIFF_V3,        /* anything else: version 3 */
};
/* Tells, from the first n bytes of a connection, TLS from version 3 (SPEC-v4.md 1). */
enum tls_sniff_result tls_sniff(const uint8_t *p, size_t n);

/* --- Fingerprints -------------------------------------------------------------------- */

/* 1 if s (NUL-terminated) has the form of a fingerprint: "SHA256:" + 43 base64 characters
 * whose last one carries no stray bits. */
int tls_fingerprint_valid(const char *s);
/* The fingerprint of a DER X.509 certificate (SHA-256 of its DER SubjectPublicKeyInfo).
 * SD_ERR_BAD_KEY if it does not parse. */
int tls_fingerprint_of_cert_der(const uint8_t *der, size_t n, char out[TLS_FP_TEXT_SIZE]);

/* --- Identities: an Ed25519 key and its self-signed certificate ---------------------- */

struct tls_identity;

/* A new key and a self-signed certificate (common name cn, printable, 1-64 bytes; serial
 * from the RNG; valid from one hour ago to the year 9999, as RFC 5280 4.1.2.5 advises for
 * certificates without a well-defined expiry). */
int tls_identity_generate(const char *cn, struct tls_identity **out);
/* me.key: one PEM blob holding the PKCS#8 key, then the certificate. */
int tls_identity_from_pem(const uint8_t *pem, size_t n, struct tls_identity **out);
/* server.key and server.crt: two PEM blobs. */
int tls_identity_from_pems(const uint8_t *key_pem, size_t key_n, const uint8_t *cert_pem,
    size_t cert_n, struct tls_identity **out);
/* Both import functions: SD_ERR_BAD_KEY if either part is missing or does not parse, the key
 * is not Ed25519, or the certificate is not for that key; SD_ERR_TOO_LARGE over TLS_PEM_MAX. */

/* Appends the PEM key then the PEM certificate (me.key) / the key alone / the certificate
 * alone (text, no NUL) to out. */
int tls_identity_to_pem(const struct tls_identity *id, struct buf *out);
int tls_identity_key_pem(const struct tls_identity *id, struct buf *out);
int tls_identity_cert_pem(const struct tls_identity *id, struct buf *out);
int tls_identity_fingerprint(const struct tls_identity *id, char out[TLS_FP_TEXT_SIZE]);
void tls_identity_free(struct tls_identity *id);

/* --- Credentials: an identity made ready for sessions (one per process and role) ------ */

struct tls_creds;

/* Copies the identity's key and certificate; id may be freed afterwards. */
int tls_creds_new(const struct tls_identity *id, struct tls_creds **out);
void tls_creds_free(struct tls_creds *c);

/* --- Sessions ------------------------------------------------------------------------ */

struct tls_session;

/* Server side over a connected (non-blocking) fd: requests and requires a client
 * certificate, accepts any that parses (the caller decides by tls_peer_fingerprint()). */
int tls_server_new(const struct tls_creds *c, int fd, struct tls_session **out);
/* The same for a server that read the first bytes of the connection itself to tell TLS
 * from version 3 (tls_sniff needs TLS_SNIFF_MAX of them; a first read may have taken more):
 * the session takes those n bytes (at most TLS_FIRST_MAX) before anything more from fd, as if
 * they had never been read. */
#define TLS_SNIFF_MAX 6u
#define TLS_FIRST_MAX (256u * 1024u)
int tls_server_new_after(const struct tls_creds *c, int fd, const uint8_t *first, size_t n,
    struct tls_session **out);
/* Client side over a connected fd. expected_fp: the pinned server fingerprint (a mismatch
 * fails the handshake with SD_ERR_PEER_KEY before any application byte is sent), or NULL
 * to accept any server certificate (trust on first use: read tls_peer_fingerprint()). */
int tls_client_new(const struct tls_creds *c, int fd, const char *expected_fp,
    struct tls_session **out);
/* Bounds each blocking handshake, read and write (blocking fds only; 0 = no bound). */
void tls_set_timeout(struct tls_session *s, unsigned ms);

/* Handshake step: 0 when done; SD_ERR_WANT_READ / SD_ERR_WANT_WRITE: call again when the
 * fd is ready that way; SD_ERR_PEER_KEY (client: pinned mismatch; tls_peer_fingerprint()
 * names what was presented); SD_ERR_NOT_TLS (client: the server answered with something
 * other than TLS, e.g. a version-3 1607 or a close); SD_ERR_EOF; SD_ERR_TLS otherwise (no
 * or another ALPN, TLS below 1.3, no client certificate, bad record...). A failure is final. */
int tls_handshake(struct tls_session *s);

/* After the handshake. Read: 0 with *got > 0 bytes (at most one record's); SD_ERR_WANT_*;
 * SD_ERR_EOF (the peer closed, with or without close_notify); SD_ERR_TLS. The session reads
 * the fd up to 256 KiB at a time and keeps what GnuTLS has not taken yet (tls_pending()).
 * Write: 0 with *sent (1..len, at most one record); after SD_ERR_WANT_* call again with the
 * same bytes first (more may follow them: an output buffer that grew meanwhile is fine;
 * fewer is SD_ERR_INVALID_ARG). */
int tls_read(struct tls_session *s, void *buf, size_t cap, size_t *got);
int tls_write(struct tls_session *s, const void *data, size_t len, size_t *sent);
/* Bytes the session holds that the fd will not report as readable: decrypted bytes GnuTLS
 * keeps, and bytes read ahead from the fd (perhaps only part of a record, so a read may
 * still answer SD_ERR_WANT_READ). An epoll loop must read on while it is > 0; after a read
 * answered SD_ERR_WANT_READ it is 0. */
size_t tls_pending(const struct tls_session *s);

/* Write batching, for a writer that sends much at a time and can say when it is done (the
 * client): after tls_batch_writes(), tls_write() appends each record to a buffer of
 * TLS_WRITE_BATCH bytes and sends it only when it is full (SD_ERR_WANT_WRITE as before when
 * the fd takes nothing), so a 1 MiB write costs a few send() calls, not one per 16 KiB
 * record. *sent then counts bytes taken, not yet sent: the caller must tls_flush() until it
 * returns 0 before it waits for an answer. SD_ERR_INVALID_ARG before the handshake is done;
 * SD_ERR_ALLOC. tls_flush(): 0 when nothing is left unsent (also without batching),
 * SD_ERR_WANT_WRITE (call again when the fd is writable), SD_ERR_EOF (the peer is gone).
 * tls_unsent(): bytes still in the buffer. */
#define TLS_WRITE_BATCH (256u * 1024u)
int tls_batch_writes(struct tls_session *s);
int tls_flush(struct tls_session *s);
size_t tls_unsent(const struct tls_session *s);

/* Sends close_notify, after what a batch still holds (0, SD_ERR_WANT_*, or an error; the
 * caller may just close after an error). */
int tls_bye(struct tls_session *s);

/* The peer certificate's fingerprint ("" before the certificate arrived). Valid until
 * tls_session_free(). */
const char *tls_peer_fingerprint(const struct tls_session *s);
/* "TLS1.3 AES-256-GCM (ECDHE-X25519, EdDSA-Ed25519)" or so, for --verbose; "" before the
 * handshake. */
void tls_describe(const struct tls_session *s, char *out, size_t cap);
/* Why the last handshake, read or write failed, in GnuTLS's words (for a log line); "" when
 * nothing failed. Valid until tls_session_free(). */
const char *tls_last_error(const struct tls_session *s);
/* Frees the session (GnuTLS wipes its keys); does not close the fd. */
void tls_session_free(struct tls_session *s);

#endif
