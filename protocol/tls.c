/* tls.c: the version-4 transport on GnuTLS (tls.h): identities (Ed25519 key + self-signed
 * certificate, PEM in and out, SPKI fingerprint), credentials, and TLS 1.3 sessions with
 * mandatory ALPN whose peer certificate is checked by our own verify function. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "err.h"
#include "tls.h"

/* TLS 1.3 only; AES-GCM first (AES-NI makes it several times faster than ChaCha20 here),
 * and the server's order decides. */
#define TLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:" \
	"+CHACHA20-POLY1305:%SERVER_PRECEDENCE"
#define TLS_CN_MAX 64u
#define TLS_SERIAL_SIZE 16u
#define SHA256_SIZE 32u
/* Bytes taken from the socket per recv(). GnuTLS reads each record in two pulls (its 5-byte
 * header, then its body); served from this buffer, a 16 KiB record costs a fraction of a
 * system call instead of two (a profile of a version-4 upload showed the server's recv()
 * calls and their epoll wake-ups among its largest costs). Holds ciphertext only. */
#define TLS_READ_AHEAD (256u * 1024u)
/* ... once a recv() has filled the buffer's first size: an idle connection (a handshake, a
 * few requests) keeps a small buffer, as the server's memory per idle TLS connection counts. */
#define TLS_READ_AHEAD_FIRST 4096u

struct tls_identity {
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
};

struct tls_creds {
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t prio;
};

struct tls_session {
	gnutls_session_t gs;
	int client;
	int handshake_done;
	int mismatch;                          /* the verify function refused a pinned key */
	char expected[TLS_FP_TEXT_SIZE];       /* client: pinned fingerprint, or "" */
	char peer_fp[TLS_FP_TEXT_SIZE];
	size_t retry_len;                      /* a write that would block: its length */
	int last_error;                        /* GnuTLS code of the last failure, or 0 */
	int fd;                                /* the socket */
	uint8_t *in;                           /* in_cap bytes: read, not pulled yet */
	size_t in_off, in_len, in_cap;
	int in_filled;                         /* the last recv() filled all of in_cap */
	uint64_t pulled;                       /* bytes GnuTLS took from it so far */
	uint8_t *out;                          /* tls_batch_writes(): records not sent yet */
	size_t out_off, out_len;
};

/* --- Detection ----------------------------------------------------------------------- */

enum tls_sniff_result tls_sniff(const uint8_t *p, size_t n)
{
	/* TLS record: type 0x16 (handshake), legacy version 0x03 0x01..0x04, length u16, then
	 * the handshake message type at byte 5: 0x01 ClientHello. */
	if (n == 0 || p == NULL)
		return TLS_SNIFF_MORE;
	if (p[0] != 0x16)
		return TLS_SNIFF_V3;
	if (n < 2)
		return TLS_SNIFF_MORE;
	if (p[1] != 0x03)
		return TLS_SNIFF_V3;
	if (n < 3)
		return TLS_SNIFF_MORE;
	if (p[2] < 0x01 || p[2] > 0x04)
		return TLS_SNIFF_V3;
	if (n < 6)
		return TLS_SNIFF_MORE;
	return p[5] == 0x01 ? TLS_SNIFF_TLS : TLS_SNIFF_V3;
}

/* --- Fingerprints -------------------------------------------------------------------- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int tls_fingerprint_valid(const char *s)
{
	const char *p, *last;
	size_t i, plen = strlen(TLS_FP_PREFIX);

	if (s == NULL || strncmp(s, TLS_FP_PREFIX, plen) != 0 ||
	    strlen(s) != TLS_FP_TEXT_LEN)
		return 0;
	for (i = plen; i < TLS_FP_TEXT_LEN; i++)
		if (s[i] == '\0' || strchr(b64_alphabet, s[i]) == NULL)
			return 0;
	/* 32 bytes are 256 bits: the 43rd character carries 4 bits and 2 zero bits. */
	last = s + TLS_FP_TEXT_LEN - 1;
	p = strchr(b64_alphabet, *last);
	return ((p - b64_alphabet) & 3) == 0;
}

/* "SHA256:" + unpadded base64 of the SHA-256 of the public key's DER SPKI. */
static int fingerprint_of_pubkey(gnutls_pubkey_t pub, char out[TLS_FP_TEXT_SIZE])
{
	gnutls_datum_t spki = { NULL, 0 }, hash, b64 = { NULL, 0 };
	uint8_t digest[SHA256_SIZE];
	size_t plen = strlen(TLS_FP_PREFIX), n;
	int r = SD_ERR_BAD_KEY;

	if (gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &spki) < 0)
		goto out;
	r = SD_ERR_CRYPTO;
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, spki.data, spki.size, digest) < 0)
		goto out;
	hash.data = digest;
	hash.size = sizeof(digest);
	if (gnutls_base64_encode2(&hash, &b64) < 0)
		goto out;
	n = b64.size;
	while (n > 0 && (b64.data[n - 1] == '=' || b64.data[n - 1] == '\0'))
		n--;
	r = SD_ERR_INTERNAL;
	if (plen + n != TLS_FP_TEXT_LEN)
		goto out;
	memcpy(out, TLS_FP_PREFIX, plen);
	memcpy(out + plen, b64.data, n);
	out[TLS_FP_TEXT_LEN] = '\0';
	r = 0;
out:
	gnutls_free(spki.data);
	gnutls_free(b64.data);
	return r;
}

static int fingerprint_of_crt(gnutls_x509_crt_t crt, char out[TLS_FP_TEXT_SIZE])
{
	gnutls_pubkey_t pub = NULL;
	int r = SD_ERR_ALLOC;

	if (gnutls_pubkey_init(&pub) < 0)
		goto out;
	r = SD_ERR_BAD_KEY;
	if (gnutls_pubkey_import_x509(pub, crt, 0) < 0)
		goto out;
	r = fingerprint_of_pubkey(pub, out);
out:
	gnutls_pubkey_deinit(pub);
	return r;
}

int tls_fingerprint_of_cert_der(const uint8_t *der, size_t n, char out[TLS_FP_TEXT_SIZE])
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t d;
	int r;

	if (out != NULL)
		out[0] = '\0';
	if (der == NULL || out == NULL || n == 0)
		return SD_ERR_INVALID_ARG;
	if (n > TLS_PEM_MAX)
		return SD_ERR_TOO_LARGE;
	if (gnutls_x509_crt_init(&crt) < 0)
		return SD_ERR_ALLOC;
	d.data = (unsigned char *)(uintptr_t)der;
	d.size = (unsigned)n;
	r = SD_ERR_BAD_KEY;
	if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) < 0)
		goto out;
	r = fingerprint_of_crt(crt, out);
out:
	gnutls_x509_crt_deinit(crt);
	if (r != 0)
		out[0] = '\0';
	return r;
}

/* --- Identities ---------------------------------------------------------------------- */

void tls_identity_free(struct tls_identity *id)
{
	if (id == NULL)
		return;
	/* GnuTLS zeroes the key's parameters when it frees them. */
	if (id->key != NULL)
		gnutls_x509_privkey_deinit(id->key);
	if (id->crt != NULL)
		gnutls_x509_crt_deinit(id->crt);
	explicit_bzero(id, sizeof(*id));
	gnutls_free(id);
}

static int identity_alloc(struct tls_identity **out)
{
	struct tls_identity *id;

	if ((id = gnutls_calloc(1, sizeof(*id))) == NULL)
		return SD_ERR_ALLOC;
	if (gnutls_x509_privkey_init(&id->key) < 0 || gnutls_x509_crt_init(&id->crt) < 0) {
		tls_identity_free(id);
		return SD_ERR_ALLOC;
	}
	*out = id;
	return 0;
}

static int cn_valid(const char *cn)
{
	size_t i, n;

	if (cn == NULL || (n = strnlen(cn, TLS_CN_MAX + 1)) == 0 || n > TLS_CN_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)cn[i] < 0x20 || (unsigned char)cn[i] > 0x7e)
			return 0;
	return 1;
}

int tls_identity_generate(const char *cn, struct tls_identity **out)
{
	struct tls_identity *id = NULL;
	gnutls_privkey_t signer = NULL;
	uint8_t serial[TLS_SERIAL_SIZE];
	time_t now = time(NULL);
	int r;

	if (out != NULL)
		*out = NULL;
	if (out == NULL || !cn_valid(cn))
		return SD_ERR_INVALID_ARG;
	if ((r = identity_alloc(&id)) != 0)
		goto out;
	r = SD_ERR_CRYPTO;
	if (gnutls_x509_privkey_generate(id->key, GNUTLS_PK_EDDSA_ED25519, 0, 0) < 0)
		goto out;
	/* A positive serial of 16 random bytes (RFC 5280 4.1.2.2: at most 20, non-negative). */
	if (gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial)) < 0)
		goto out;
	serial[0] = (uint8_t)((serial[0] & 0x7f) | 0x40);
	if (gnutls_x509_crt_set_version(id->crt, 3) < 0 ||
	    gnutls_x509_crt_set_serial(id->crt, serial, sizeof(serial)) < 0 ||
	    gnutls_x509_crt_set_dn_by_oid(id->crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
	    (unsigned)strlen(cn)) < 0 ||
	    gnutls_x509_crt_set_issuer_dn_by_oid(id->crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
	    (unsigned)strlen(cn)) < 0 ||
	    gnutls_x509_crt_set_activation_time(id->crt, now - 3600) < 0 ||
	    gnutls_x509_crt_set_expiration_time(id->crt, GNUTLS_X509_NO_WELL_DEFINED_EXPIRATION) < 0 ||
	    gnutls_x509_crt_set_key(id->crt, id->key) < 0 ||
	    gnutls_x509_crt_set_basic_constraints(id->crt, 0, -1) < 0 ||
	    gnutls_x509_crt_set_key_usage(id->crt, GNUTLS_KEY_DIGITAL_SIGNATURE) < 0)
		goto out;
	if (gnutls_privkey_init(&signer) < 0 ||
	    gnutls_privkey_import_x509(signer, id->key, 0) < 0 ||
	    gnutls_x509_crt_privkey_sign(id->crt, id->crt, signer, GNUTLS_DIG_SHA512, 0) < 0)
		goto out;
	*out = id;
	id = NULL;
	r = 0;
out:
	explicit_bzero(serial, sizeof(serial));
	gnutls_privkey_deinit(signer);
	tls_identity_free(id);
	return r;
}

/* The key must be Ed25519 and the certificate must carry its public key. */
static int identity_check(const struct tls_identity *id)
{
	uint8_t a[SHA256_SIZE], b[SHA256_SIZE];
	size_t an = sizeof(a), bn = sizeof(b);

	if (gnutls_x509_privkey_get_pk_algorithm2(id->key, NULL) != GNUTLS_PK_EDDSA_ED25519 ||
	    gnutls_x509_privkey_verify_params(id->key) < 0)
		return SD_ERR_BAD_KEY;
	if (gnutls_x509_privkey_get_key_id(id->key, GNUTLS_KEYID_USE_SHA256, a, &an) < 0 ||
	    gnutls_x509_crt_get_key_id(id->crt, GNUTLS_KEYID_USE_SHA256, b, &bn) < 0 ||
	    an != bn || memcmp(a, b, an) != 0)
		return SD_ERR_BAD_KEY;
	return 0;
}

int tls_identity_from_pems(const uint8_t *key_pem, size_t key_n, const uint8_t *cert_pem,
    size_t cert_n, struct tls_identity **out)
{
	struct tls_identity *id = NULL;
	gnutls_datum_t d;
	int r;

	if (out != NULL)
		*out = NULL;
	if (out == NULL || key_pem == NULL || cert_pem == NULL)
		return SD_ERR_INVALID_ARG;
	if (key_n > TLS_PEM_MAX || cert_n > TLS_PEM_MAX)
		return SD_ERR_TOO_LARGE;
	if ((r = identity_alloc(&id)) != 0)
		goto out;
	r = SD_ERR_BAD_KEY;
	/* GnuTLS finds the PEM block by its label, so one blob may hold both. */
	d.data = (unsigned char *)(uintptr_t)key_pem;
	d.size = (unsigned)key_n;
	if (gnutls_x509_privkey_import2(id->key, &d, GNUTLS_X509_FMT_PEM, NULL,
	    GNUTLS_PKCS_PLAIN) < 0)
		goto out;
	d.data = (unsigned char *)(uintptr_t)cert_pem;
	d.size = (unsigned)cert_n;
	if (gnutls_x509_crt_import(id->crt, &d, GNUTLS_X509_FMT_PEM) < 0)
		goto out;
	if ((r = identity_check(id)) != 0)
		goto out;
	*out = id;
	id = NULL;
	r = 0;
out:
	tls_identity_free(id);
	return r;
}

int tls_identity_from_pem(const uint8_t *pem, size_t n, struct tls_identity **out)
{
	return tls_identity_from_pems(pem, n, pem, n, out);
}

/* Appends a GnuTLS-allocated datum to out and frees it (wiped: it may be a key). */
static int put_datum(struct buf *out, gnutls_datum_t *d)
{
	int r = buf_put_bytes(out, d->data, d->size);

	explicit_bzero(d->data, d->size);
	gnutls_free(d->data);
	d->data = NULL;
	return r;
}

int tls_identity_key_pem(const struct tls_identity *id, struct buf *out)
{
	gnutls_datum_t d = { NULL, 0 };

	if (id == NULL || out == NULL)
		return SD_ERR_INVALID_ARG;
	if (gnutls_x509_privkey_export2_pkcs8(id->key, GNUTLS_X509_FMT_PEM, NULL,
	    GNUTLS_PKCS_PLAIN, &d) < 0)
		return SD_ERR_CRYPTO;
	return put_datum(out, &d);
}

int tls_identity_cert_pem(const struct tls_identity *id, struct buf *out)
{
	gnutls_datum_t d = { NULL, 0 };

	if (id == NULL || out == NULL)
		return SD_ERR_INVALID_ARG;
	if (gnutls_x509_crt_export2(id->crt, GNUTLS_X509_FMT_PEM, &d) < 0)
		return SD_ERR_CRYPTO;
	return put_datum(out, &d);
}

int tls_identity_to_pem(const struct tls_identity *id, struct buf *out)
{
	size_t before;
	int r;

	if (id == NULL || out == NULL)
		return SD_ERR_INVALID_ARG;
	before = out->len;
	if ((r = tls_identity_key_pem(id, out)) != 0 || (r = tls_identity_cert_pem(id, out)) != 0) {
		/* Nothing half-written: drop (and wipe) what the key part appended. */
		if (out->len > before) {
			explicit_bzero(out->data + before, out->len - before);
			out->len = before;
		}
		return r;
	}
	return 0;
}

int tls_identity_fingerprint(const struct tls_identity *id, char out[TLS_FP_TEXT_SIZE])
{
	if (out != NULL)
		out[0] = '\0';
	if (id == NULL || out == NULL)
		return SD_ERR_INVALID_ARG;
	return fingerprint_of_crt(id->crt, out);
}

/* --- Credentials --------------------------------------------------------------------- */

void tls_creds_free(struct tls_creds *c)
{
	if (c == NULL)
		return;
	if (c->cred != NULL)
		gnutls_certificate_free_credentials(c->cred);
	if (c->prio != NULL)
		gnutls_priority_deinit(c->prio);
	explicit_bzero(c, sizeof(*c));
	gnutls_free(c);
}

int tls_creds_new(const struct tls_identity *id, struct tls_creds **out)
{
	struct tls_creds *c = NULL;
	gnutls_x509_crt_t crt;
	int r;

	if (out != NULL)
		*out = NULL;
	if (id == NULL || out == NULL)
		return SD_ERR_INVALID_ARG;
	r = SD_ERR_ALLOC;
	if ((c = gnutls_calloc(1, sizeof(*c))) == NULL ||
	    gnutls_certificate_allocate_credentials(&c->cred) < 0)
		goto out;
	r = SD_ERR_BAD_KEY;
	crt = id->crt;
	if (gnutls_certificate_set_x509_key(c->cred, &crt, 1, id->key) < 0)
		goto out;
	r = SD_ERR_INTERNAL;
	if (gnutls_priority_init(&c->prio, TLS_PRIORITY, NULL) < 0)
		goto out;
	*out = c;
	c = NULL;
	r = 0;
out:
	tls_creds_free(c);
	return r;
}

/* --- Sessions ------------------------------------------------------------------------ */

static int alpn_ok(gnutls_session_t gs)
{
	gnutls_datum_t p = { NULL, 0 };

	return gnutls_alpn_get_selected_protocol(gs, &p) == 0 &&
	    p.size == strlen(TLS_ALPN) && memcmp(p.data, TLS_ALPN, p.size) == 0;
}

/* Server: right after the ClientHello, so that a client without our ALPN gets the
 * no_application_protocol alert before anything else (GNUTLS_ALPN_MANDATORY alone lets a
 * ClientHello without the extension through). */
static int alpn_hook(gnutls_session_t gs, unsigned htype, unsigned when, unsigned incoming,
    const gnutls_datum_t *msg)
{
	(void)htype;
	(void)when;
	(void)incoming;
	(void)msg;
	return alpn_ok(gs) ? 0 : GNUTLS_E_NO_APPLICATION_PROTOCOL;
}

/* Runs during the handshake when the peer's Certificate arrived: on the server after the
 * client's, on the client after the server's (so a pinned mismatch fails before the client
 * sends its Finished or any application byte). Chain validation is skipped on purpose: the
 * keys are self-signed and pinned by fingerprint. A non-zero return fails the handshake. */
static int verify_peer(gnutls_session_t gs)
{
	struct tls_session *s = gnutls_session_get_ptr(gs);
	const gnutls_datum_t *certs;
	unsigned n = 0;

	if (s == NULL)
		return -1;
	if (gnutls_certificate_type_get2(gs, GNUTLS_CTYPE_PEERS) != GNUTLS_CRT_X509)
		return -1;
	certs = gnutls_certificate_get_peers(gs, &n);
	if (certs == NULL || n == 0)
		return -1;
	if (tls_fingerprint_of_cert_der(certs[0].data, certs[0].size, s->peer_fp) != 0)
		return -1;
	if (!alpn_ok(gs))
		return -1;
	if (s->client && s->expected[0] != '\0' && strcmp(s->peer_fp, s->expected) != 0) {
		s->mismatch = 1;
		return -1;
	}
	return 0;
}

void tls_session_free(struct tls_session *s)
{
	if (s == NULL)
		return;
	if (s->gs != NULL)
		gnutls_deinit(s->gs);
	free(s->in);   /* ciphertext only: nothing to wipe */
	free(s->out);
	explicit_bzero(s, sizeof(*s));
	gnutls_free(s);
}

/* Reads: the read-ahead buffer first, refilled by one recv() of up to TLS_READ_AHEAD bytes
 * when it is empty. The buffer is empty whenever this returns -1 (EAGAIN): bytes it holds
 * are always offered to GnuTLS before the socket is asked again. */
static ssize_t buffered_pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
	struct tls_session *s = ptr;
	ssize_t got;
	size_t n;

	if (s->in_off == s->in_len) {
		s->in_off = s->in_len = 0;
		if (s->in_filled && s->in_cap < TLS_READ_AHEAD) {
			uint8_t *bigger = realloc(s->in, TLS_READ_AHEAD);

			if (bigger != NULL) {  /* else it goes on with the small one */
				s->in = bigger;
				s->in_cap = TLS_READ_AHEAD;
			}
		}
		while ((got = recv(s->fd, s->in, s->in_cap, 0)) < 0 && errno == EINTR)
			;
		if (got <= 0) {
			if (got < 0)
				gnutls_transport_set_errno(s->gs, errno);
			return got;
		}
		s->in_len = (size_t)got;
		s->in_filled = s->in_len == s->in_cap;
	}
	n = s->in_len - s->in_off;
	if (n > len)
		n = len;
	memcpy(buf, s->in + s->in_off, n);
	s->in_off += n;
	s->pulled += n;
	return (ssize_t)n;
}

static int buffered_pull_timeout(gnutls_transport_ptr_t ptr, unsigned ms)
{
	struct tls_session *s = ptr;
	struct pollfd pfd = { s->fd, POLLIN, 0 };
	int r;

	if (s->in_off < s->in_len)
		return 1;
	r = poll(&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
	if (r < 0)
		gnutls_transport_set_errno(s->gs, errno);
	return r;
}

static int session_new(const struct tls_creds *c, int fd, int client, const char *expected_fp,
    struct tls_session **out)
{
	static const gnutls_datum_t alpn = { (unsigned char *)(uintptr_t)TLS_ALPN,
	    sizeof(TLS_ALPN) - 1 };
	struct tls_session *s = NULL;
	unsigned flags = (client ? GNUTLS_CLIENT : GNUTLS_SERVER) | GNUTLS_NO_TICKETS |
	    GNUTLS_NO_SIGNAL;
	int r;

	if (out != NULL)
		*out = NULL;
	if (c == NULL || out == NULL || fd < 0 ||
	    (expected_fp != NULL && !tls_fingerprint_valid(expected_fp)))
		return SD_ERR_INVALID_ARG;
	r = SD_ERR_ALLOC;
	if ((s = gnutls_calloc(1, sizeof(*s))) == NULL || gnutls_init(&s->gs, flags) < 0 ||
	    (s->in = malloc(TLS_READ_AHEAD_FIRST)) == NULL)
		goto out;
	s->in_cap = TLS_READ_AHEAD_FIRST;
	s->client = client;
	s->fd = fd;
	if (expected_fp != NULL)
		memcpy(s->expected, expected_fp, TLS_FP_TEXT_SIZE);
	r = SD_ERR_TLS;
	if (gnutls_priority_set(s->gs, c->prio) < 0 ||
	    gnutls_credentials_set(s->gs, GNUTLS_CRD_CERTIFICATE, c->cred) < 0 ||
	    gnutls_alpn_set_protocols(s->gs, &alpn, 1, GNUTLS_ALPN_MANDATORY) < 0)
		goto out;
	if (!client) {
		gnutls_certificate_server_set_request(s->gs, GNUTLS_CERT_REQUIRE);
		gnutls_handshake_set_hook_function(s->gs, GNUTLS_HANDSHAKE_CLIENT_HELLO,
		    GNUTLS_HOOK_POST, alpn_hook);
	}
	gnutls_session_set_ptr(s->gs, s);
	gnutls_session_set_verify_function(s->gs, verify_peer);
	/* The server's event loop owns every timeout; the client sets its own. */
	gnutls_handshake_set_timeout(s->gs, 0);
	/* Reads come through the read-ahead buffer; writes stay GnuTLS's own on the fd (until
	 * tls_batch_writes()). */
	gnutls_transport_set_ptr2(s->gs, s, (gnutls_transport_ptr_t)(intptr_t)fd);
	gnutls_transport_set_pull_function(s->gs, buffered_pull);
	gnutls_transport_set_pull_timeout_function(s->gs, buffered_pull_timeout);
	*out = s;
	s = NULL;
	r = 0;
out:
	tls_session_free(s);
	return r;
}

int tls_server_new(const struct tls_creds *c, int fd, struct tls_session **out)
{
	return session_new(c, fd, 0, NULL, out);
}

int tls_server_new_after(const struct tls_creds *c, int fd, const uint8_t *first, size_t n,
    struct tls_session **out)
{
	struct tls_session *s = NULL;
	int r;

	if (out != NULL)
		*out = NULL;
	if (n > TLS_FIRST_MAX || (first == NULL && n > 0))
		return SD_ERR_INVALID_ARG;
	if ((r = session_new(c, fd, 0, NULL, &s)) != 0)
		return r;
	/* The bytes read before the session are the first the session reads. */
	if (n > s->in_cap) {
		uint8_t *bigger = realloc(s->in, n);

		if (bigger == NULL) {
			tls_session_free(s);
			return SD_ERR_ALLOC;
		}
		s->in = bigger;
		s->in_cap = n;
	}
	if (n > 0)
		memcpy(s->in, first, n);
	s->in_len = n;
	*out = s;
	return 0;
}

int tls_client_new(const struct tls_creds *c, int fd, const char *expected_fp,
    struct tls_session **out)
{
	return session_new(c, fd, 1, expected_fp, out);
}

void tls_set_timeout(struct tls_session *s, unsigned ms)
{
	if (s == NULL)
		return;
	gnutls_handshake_set_timeout(s->gs, ms);
	gnutls_record_set_timeout(s->gs, ms);
}

/* GNUTLS_E_AGAIN / INTERRUPTED: which way the session waits. */
static int would_block(gnutls_session_t gs)
{
	return gnutls_record_get_direction(gs) == 1 ? SD_ERR_WANT_WRITE : SD_ERR_WANT_READ;
}

/* A client whose first read is not a TLS record: a version-3 server (it answers 1607, or
 * closes or resets the connection). Only before any handshake message came from the server. */
static int not_tls(const struct tls_session *s, int e)
{
	if (!s->client ||
	    (int)gnutls_handshake_get_last_in(s->gs) >= (int)GNUTLS_HANDSHAKE_SERVER_HELLO)
		return 0;
	return e == GNUTLS_E_UNEXPECTED_PACKET_LENGTH || e == GNUTLS_E_UNSUPPORTED_VERSION_PACKET ||
	    e == GNUTLS_E_UNEXPECTED_PACKET || e == GNUTLS_E_PREMATURE_TERMINATION ||
	    e == GNUTLS_E_RECORD_OVERFLOW || e == GNUTLS_E_DECRYPTION_FAILED ||
	    e == GNUTLS_E_PUSH_ERROR || e == GNUTLS_E_PULL_ERROR;  /* closed or reset */
}

int tls_handshake(struct tls_session *s)
{
	int e;

	if (s == NULL)
		return SD_ERR_INVALID_ARG;
	if (s->handshake_done)
		return 0;
	e = gnutls_handshake(s->gs);
	if (e == GNUTLS_E_AGAIN || e == GNUTLS_E_INTERRUPTED)
		return would_block(s->gs);
	if (e < 0) {
		s->last_error = e;
		/* Tell the peer why (no_application_protocol, bad_certificate, ...); best effort: on
		 * a full socket the alert is lost, the close says enough. */
		if (e != GNUTLS_E_FATAL_ALERT_RECEIVED && e != GNUTLS_E_PREMATURE_TERMINATION &&
		    e != GNUTLS_E_PUSH_ERROR && e != GNUTLS_E_PULL_ERROR)
			(void)gnutls_alert_send_appropriate(s->gs, e);
		if (s->mismatch)
			return SD_ERR_PEER_KEY;
		if (not_tls(s, e))
			return SD_ERR_NOT_TLS;
		return e == GNUTLS_E_PREMATURE_TERMINATION ? SD_ERR_EOF : SD_ERR_TLS;
	}
	/* The priority allows nothing else, and the verify function saw the ALPN; checked once
	 * more here so that no path reaches application data without them. */
	if (gnutls_protocol_get_version(s->gs) != GNUTLS_TLS1_3 || !alpn_ok(s->gs) ||
	    s->peer_fp[0] == '\0')
		return SD_ERR_TLS;
	s->handshake_done = 1;
	return 0;
}

int tls_read(struct tls_session *s, void *buf, size_t cap, size_t *got)
{
	uint64_t before;
	ssize_t n;

	if (got != NULL)
		*got = 0;
	if (s == NULL || buf == NULL || got == NULL || cap == 0)
		return SD_ERR_INVALID_ARG;
	if (!s->handshake_done)
		return SD_ERR_INVALID_ARG;
	/* GnuTLS answers GNUTLS_E_AGAIN after a post-handshake message (a TLS 1.3 session ticket
	 * from the peer) too, with more records perhaps read ahead already: the fd would not
	 * report those, so they are read on as long as each call takes bytes from the buffer. */
	do {
		before = s->pulled;
		n = gnutls_record_recv(s->gs, buf, cap);
	} while ((n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) &&
	    gnutls_record_get_direction(s->gs) == 0 && s->in_off < s->in_len &&
	    s->pulled != before);
	if (n > 0) {
		*got = (size_t)n;
		return 0;
	}
	if (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION)
		return SD_ERR_EOF;
	if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
		return would_block(s->gs);
	s->last_error = (int)n;
	return SD_ERR_TLS;
}

int tls_write(struct tls_session *s, const void *data, size_t len, size_t *sent)
{
	ssize_t n;

	if (sent != NULL)
		*sent = 0;
	if (s == NULL || data == NULL || sent == NULL || len == 0)
		return SD_ERR_INVALID_ARG;
	if (!s->handshake_done || len < s->retry_len)
		return SD_ERR_INVALID_ARG;
	/* GnuTLS has encrypted the bytes of a write that would block: it must be called again
	 * with exactly those; bytes the caller added after them wait for the next call. */
	if (s->retry_len > 0)
		len = s->retry_len;
	n = gnutls_record_send(s->gs, data, len);
	if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
		s->retry_len = len;
		return would_block(s->gs);
	}
	s->retry_len = 0;
	if (n > 0) {
		*sent = (size_t)n;
		return 0;
	}
	s->last_error = (int)n;
	if (n == GNUTLS_E_PUSH_ERROR || n == GNUTLS_E_PREMATURE_TERMINATION)
		return SD_ERR_EOF;
	return SD_ERR_TLS;
}

size_t tls_pending(const struct tls_session *s)
{
	if (s == NULL || !s->handshake_done)
		return 0;
	return gnutls_record_check_pending(s->gs) + (s->in_len - s->in_off);
}

/* Sends what the batch holds: 0 when all is out, else -1 with errno (EAGAIN: the socket is
 * full; what is left stays, moved to the buffer's start). */
static int out_send(struct tls_session *s)
{
	ssize_t n;

	while (s->out_off < s->out_len) {
		n = send(s->fd, s->out + s->out_off, s->out_len - s->out_off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (s->out_off > 0) {
				memmove(s->out, s->out + s->out_off, s->out_len - s->out_off);
				s->out_len -= s->out_off;
				s->out_off = 0;
			}
			return -1;
		}
		s->out_off += (size_t)n;
	}
	s->out_off = s->out_len = 0;
	return 0;
}

/* Writes with tls_batch_writes(): each record is appended to the batch; a full batch is sent
 * first. A record that still does not fit answers EAGAIN, which GnuTLS turns into
 * GNUTLS_E_AGAIN with the record kept for the retry. */
static ssize_t batched_push(gnutls_transport_ptr_t ptr, const void *data, size_t len)
{
	struct tls_session *s = ptr;
	ssize_t n;

	if (len > TLS_WRITE_BATCH - s->out_len && out_send(s) != 0 &&
	    len > TLS_WRITE_BATCH - s->out_len) {
		gnutls_transport_set_errno(s->gs, errno);
		return -1;
	}
	if (len > TLS_WRITE_BATCH) {
		/* Never for a record (at most 16 KiB and its overhead); straight out if it came. */
		while ((n = send(s->fd, data, len, MSG_NOSIGNAL)) < 0 && errno == EINTR)
			;
		if (n < 0)
			gnutls_transport_set_errno(s->gs, errno);
		return n;
	}
	memcpy(s->out + s->out_len, data, len);
	s->out_len += len;
	return (ssize_t)len;
}

int tls_batch_writes(struct tls_session *s)
{
	if (s == NULL || !s->handshake_done)
		return SD_ERR_INVALID_ARG;
	if (s->out != NULL)
		return 0;
	if ((s->out = malloc(TLS_WRITE_BATCH)) == NULL)
		return SD_ERR_ALLOC;
	gnutls_transport_set_ptr2(s->gs, s, s);
	gnutls_transport_set_push_function(s->gs, batched_push);
	return 0;
}

int tls_flush(struct tls_session *s)
{
	if (s == NULL)
		return SD_ERR_INVALID_ARG;
	if (s->out == NULL || out_send(s) == 0)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return SD_ERR_WANT_WRITE;
	return SD_ERR_EOF;  /* as a write whose push failed: the peer is gone */
}

size_t tls_unsent(const struct tls_session *s)
{
	return s != NULL ? s->out_len - s->out_off : 0;
}

int tls_bye(struct tls_session *s)
{
	int e;

	if (s == NULL)
		return SD_ERR_INVALID_ARG;
	if ((e = tls_flush(s)) != 0)
		return e;  /* records written before the alert go first */
	e = gnutls_bye(s->gs, GNUTLS_SHUT_WR);
	if (e == GNUTLS_E_AGAIN || e == GNUTLS_E_INTERRUPTED)
		return would_block(s->gs);
	return e < 0 ? SD_ERR_TLS : tls_flush(s);
}

const char *tls_last_error(const struct tls_session *s)
{
	if (s == NULL || s->last_error == 0)
		return "";
	return gnutls_strerror(s->last_error);
}

const char *tls_peer_fingerprint(const struct tls_session *s)
{
	return s != NULL ? s->peer_fp : "";
}

void tls_describe(const struct tls_session *s, char *out, size_t cap)
{
	const char *ver, *suite, *group;

	if (out == NULL || cap == 0)
		return;
	out[0] = '\0';
	if (s == NULL || !s->handshake_done)
		return;
	ver = gnutls_protocol_get_name(gnutls_protocol_get_version(s->gs));
	suite = gnutls_ciphersuite_get(s->gs);
	group = gnutls_group_get_name(gnutls_group_get(s->gs));
	snprintf(out, cap, "%s %s (%s)", ver ? ver : "?", suite ? suite : "?",
	    group ? group : "?");
}
