/* test_tls.c: the version-4 transport (protocol/tls.h): first-byte detection, identities and
 * their PEM forms and fingerprints, and real TLS 1.3 handshakes over a socketpair between a
 * non-blocking server session (driven by poll, as the epoll loop will) and a blocking client
 * in a thread: pinned and trust-on-first-use clients, refusals (pinned mismatch, no client
 * certificate, no or another ALPN, TLS 1.2 only, a peer that is not TLS), data both ways.
 * The refusing peers are raw GnuTLS here, so they are not shaped by our own module. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "../../protocol/buf.h"
#include "../../protocol/err.h"
#include "../../protocol/tls.h"

#define DEADLINE_MS 20000

/* Identities made once for the program (key generation is fast, but the tests are many). */
static struct tls_identity *server_id, *client_id, *other_id;
static struct tls_creds *server_creds, *client_creds, *other_creds;
static char server_fp[TLS_FP_TEXT_SIZE], client_fp[TLS_FP_TEXT_SIZE], other_fp[TLS_FP_TEXT_SIZE];

static int setup(void **state)
{
	(void)state;
	if (tls_identity_generate("server", &server_id) != 0 ||
	    tls_identity_generate("client", &client_id) != 0 ||
	    tls_identity_generate("other", &other_id) != 0 ||
	    tls_creds_new(server_id, &server_creds) != 0 ||
	    tls_creds_new(client_id, &client_creds) != 0 ||
	    tls_creds_new(other_id, &other_creds) != 0 ||
	    tls_identity_fingerprint(server_id, server_fp) != 0 ||
	    tls_identity_fingerprint(client_id, client_fp) != 0 ||
	    tls_identity_fingerprint(other_id, other_fp) != 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tls_creds_free(server_creds);
	tls_creds_free(client_creds);
	tls_creds_free(other_creds);
	tls_identity_free(server_id);
	tls_identity_free(client_id);
	tls_identity_free(other_id);
	return 0;
}

/* --- Detection ----------------------------------------------------------------------- */

static void test_sniff(void **state)
{
	static const uint8_t hello[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00 };
	uint8_t v[8];
	size_t n;

	(void)state;
	assert_int_equal(tls_sniff(NULL, 0), TLS_SNIFF_MORE);
	for (n = 1; n < 6; n++)
		assert_int_equal(tls_sniff(hello, n), TLS_SNIFF_MORE);
	assert_int_equal(tls_sniff(hello, 6), TLS_SNIFF_TLS);
	assert_int_equal(tls_sniff(hello, sizeof(hello)), TLS_SNIFF_TLS);
	/* Every legacy version 0x0301..0x0304. */
	for (n = 1; n <= 4; n++) {
		memcpy(v, hello, 6);
		v[2] = (uint8_t)n;
		assert_int_equal(tls_sniff(v, 6), TLS_SNIFF_TLS);
	}
	/* One byte off anywhere that matters: version 3, as soon as that byte is seen. */
	memcpy(v, hello, 6);
	v[0] = 0x15;
	assert_int_equal(tls_sniff(v, 1), TLS_SNIFF_V3);
	v[0] = 0x00;  /* 825: 16 zero bytes */
	assert_int_equal(tls_sniff(v, 1), TLS_SNIFF_V3);
	memcpy(v, hello, 6);
	v[1] = 0x02;
	assert_int_equal(tls_sniff(v, 2), TLS_SNIFF_V3);
	memcpy(v, hello, 6);
	v[2] = 0x00;
	assert_int_equal(tls_sniff(v, 3), TLS_SNIFF_V3);
	v[2] = 0x05;
	assert_int_equal(tls_sniff(v, 3), TLS_SNIFF_V3);
	memcpy(v, hello, 6);
	v[5] = 0x02;  /* a version-3 ID issued before the rule, starting 16 03 01 */
	assert_int_equal(tls_sniff(v, 5), TLS_SNIFF_MORE);
	assert_int_equal(tls_sniff(v, 6), TLS_SNIFF_V3);
}

/* --- Identities ---------------------------------------------------------------------- */

static void test_fingerprint_form(void **state)
{
	char fp[TLS_FP_TEXT_SIZE];
	struct tls_identity *again;

	(void)state;
	assert_true(tls_fingerprint_valid(server_fp));
	assert_int_equal(strlen(server_fp), 50);
	assert_memory_equal(server_fp, "SHA256:", 7);
	assert_string_not_equal(server_fp, client_fp);
	/* Same identity, same fingerprint. */
	assert_int_equal(tls_identity_fingerprint(server_id, fp), 0);
	assert_string_equal(fp, server_fp);
	/* Two fresh identities with the same name differ. */
	assert_int_equal(tls_identity_generate("server", &again), 0);
	assert_int_equal(tls_identity_fingerprint(again, fp), 0);
	assert_string_not_equal(fp, server_fp);
	tls_identity_free(again);

	assert_false(tls_fingerprint_valid(NULL));
	assert_false(tls_fingerprint_valid(""));
	assert_false(tls_fingerprint_valid("SHA256:"));
	strcpy(fp, server_fp);
	fp[0] = 's';
	assert_false(tls_fingerprint_valid(fp));
	strcpy(fp, server_fp);
	fp[20] = '=';
	assert_false(tls_fingerprint_valid(fp));
	strcpy(fp, server_fp);
	fp[49] = '\0';
	assert_false(tls_fingerprint_valid(fp));
	/* The last character holds 4 bits: 'B' (1) sets a stray bit, 'E' (4) does not. */
	strcpy(fp, server_fp);
	fp[49] = 'B';
	assert_false(tls_fingerprint_valid(fp));
	fp[49] = 'E';
	assert_true(tls_fingerprint_valid(fp));
	assert_int_equal(tls_identity_generate("", &again), SD_ERR_INVALID_ARG);
	assert_null(again);
	assert_int_equal(tls_identity_generate("a\nb", &again), SD_ERR_INVALID_ARG);
}

static void test_pem_round_trip(void **state)
{
	struct buf both, key, crt;
	struct tls_identity *id = NULL;
	char fp[TLS_FP_TEXT_SIZE];
	const char *k;

	(void)state;
	buf_init(&both, TLS_PEM_MAX);
	buf_init(&key, TLS_PEM_MAX);
	buf_init(&crt, TLS_PEM_MAX);
	assert_int_equal(tls_identity_to_pem(client_id, &both), 0);
	assert_int_equal(tls_identity_key_pem(client_id, &key), 0);
	assert_int_equal(tls_identity_cert_pem(client_id, &crt), 0);
	/* me.key: the PKCS#8 key, then the certificate. */
	k = (const char *)buf_ptr(&both);
	assert_int_equal(strncmp(k, "-----BEGIN PRIVATE KEY-----", 27), 0);
	assert_int_equal(buf_len(&both), buf_len(&key) + buf_len(&crt));
	assert_memory_equal(buf_ptr(&both), buf_ptr(&key), buf_len(&key));
	assert_memory_equal(buf_ptr(&both) + buf_len(&key), buf_ptr(&crt), buf_len(&crt));
	assert_int_equal(strncmp((const char *)buf_ptr(&crt), "-----BEGIN CERTIFICATE-----", 27), 0);

	assert_int_equal(tls_identity_from_pem(buf_ptr(&both), buf_len(&both), &id), 0);
	assert_int_equal(tls_identity_fingerprint(id, fp), 0);
	assert_string_equal(fp, client_fp);
	tls_identity_free(id);
	assert_int_equal(tls_identity_from_pems(buf_ptr(&key), buf_len(&key), buf_ptr(&crt),
	    buf_len(&crt), &id), 0);
	assert_int_equal(tls_identity_fingerprint(id, fp), 0);
	assert_string_equal(fp, client_fp);
	tls_identity_free(id);

	/* The wrong halves, one half alone, nothing: refused. */
	{
		struct buf okey, ocrt;

		buf_init(&okey, TLS_PEM_MAX);
		buf_init(&ocrt, TLS_PEM_MAX);
		assert_int_equal(tls_identity_key_pem(other_id, &okey), 0);
		assert_int_equal(tls_identity_cert_pem(other_id, &ocrt), 0);
		assert_int_equal(tls_identity_from_pems(buf_ptr(&key), buf_len(&key),
		    buf_ptr(&ocrt), buf_len(&ocrt), &id), SD_ERR_BAD_KEY);
		assert_null(id);
		assert_int_equal(tls_identity_from_pems(buf_ptr(&okey), buf_len(&okey),
		    buf_ptr(&crt), buf_len(&crt), &id), SD_ERR_BAD_KEY);
		buf_free(&okey);
		buf_free(&ocrt);
	}
	assert_int_equal(tls_identity_from_pem(buf_ptr(&key), buf_len(&key), &id),
	    SD_ERR_BAD_KEY);
	assert_int_equal(tls_identity_from_pem(buf_ptr(&crt), buf_len(&crt), &id),
	    SD_ERR_BAD_KEY);
	assert_int_equal(tls_identity_from_pem((const uint8_t *)"junk", 4, &id), SD_ERR_BAD_KEY);
	/* Cut: every length of the certificate part short of whole fails, none crashes. */
	{
		size_t cut;

		for (cut = buf_len(&key); cut < buf_len(&both) - 30; cut += 7) {
			assert_int_equal(tls_identity_from_pem(buf_ptr(&both), cut, &id),
			    SD_ERR_BAD_KEY);
			assert_null(id);
		}
	}
	buf_free(&both);
	buf_free(&key);
	buf_free(&crt);
}

/* An RSA key with a matching certificate (made with GnuTLS directly): not Ed25519, refused. */
static void test_rsa_identity_refused(void **state)
{
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	gnutls_datum_t kp = { NULL, 0 }, cp = { NULL, 0 };
	struct tls_identity *id = NULL;

	(void)state;
	assert_int_equal(gnutls_x509_privkey_init(&key), 0);
	assert_int_equal(gnutls_x509_crt_init(&crt), 0);
	assert_int_equal(gnutls_x509_privkey_generate(key, GNUTLS_PK_RSA, 2048, 0), 0);
	assert_int_equal(gnutls_x509_crt_set_key(crt, key), 0);
	assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
	assert_int_equal(gnutls_x509_crt_set_serial(crt, "\x01", 1), 0);
	assert_int_equal(gnutls_x509_crt_set_activation_time(crt, time(NULL)), 0);
	assert_int_equal(gnutls_x509_crt_set_expiration_time(crt, time(NULL) + 3600), 0);
	assert_int_equal(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), 0);
	assert_int_equal(gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL,
	    GNUTLS_PKCS_PLAIN, &kp), 0);
	assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &cp), 0);
	assert_int_equal(tls_identity_from_pems(kp.data, kp.size, cp.data, cp.size, &id),
	    SD_ERR_BAD_KEY);
	assert_null(id);
	gnutls_free(kp.data);
	gnutls_free(cp.data);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
}

/* --- Handshakes ---------------------------------------------------------------------- */

static long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* What the client thread does, and what came of it. */
struct peer {
	int fd;
	/* Ours: */
	const struct tls_creds *creds;
	const char *expected;
	int batch;  /* tls_batch_writes() after the handshake */
	/* Raw GnuTLS instead (raw = 1): its priority, ALPN (NULL: none), credentials. */
	int raw;
	const char *priority;
	const char *alpn;
	int with_cert;
	/* Raw bytes to write instead of TLS, then close (raw = 2). */
	const uint8_t *bytes;
	size_t nbytes;
	/* Results. */
	int hs;
	char fp[TLS_FP_TEXT_SIZE];
	char desc[128];
	uint8_t echo[70000];
	size_t echo_len;
	int sent;  /* the client sent its message */
	int alert; /* raw: the fatal alert received, or -1 */
	int expect_refusal;  /* raw: after a finished handshake, wait for the server's alert */
};

/* The message the client sends and the server answers with its reversal. */
#define MSG_LEN 70000u

static void fill(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31u + 7u);
}

static void *our_client(void *arg)
{
	struct peer *c = arg;
	struct tls_session *s = NULL;
	static uint8_t msg[MSG_LEN];
	size_t off, n;

	c->hs = tls_client_new(c->creds, c->fd, c->expected, &s);
	if (c->hs != 0)
		goto out;
	tls_set_timeout(s, DEADLINE_MS);
	c->hs = tls_handshake(s);
	snprintf(c->fp, sizeof(c->fp), "%s", tls_peer_fingerprint(s));
	if (c->hs != 0)
		goto out;
	tls_describe(s, c->desc, sizeof(c->desc));
	fill(msg, sizeof(msg));
	if (c->batch && tls_batch_writes(s) != 0)
		goto out;
	for (off = 0; off < sizeof(msg); off += n)
		if (tls_write(s, msg + off, sizeof(msg) - off, &n) != 0)
			goto out;
	/* Batched: all of it is still in the session (70000 < TLS_WRITE_BATCH) until flushed. */
	if (c->batch && (tls_unsent(s) < MSG_LEN || tls_flush(s) != 0 || tls_unsent(s) != 0))
		goto out;
	c->sent = 1;
	{
		/* Read the echo only after a pause, so that the server's writes fill the small
		 * socket buffer and must block and resume, whatever the machine's load. */
		struct timespec pause = { 0, 500000000L };

		nanosleep(&pause, NULL);
	}
	while (c->echo_len < MSG_LEN) {
		if (tls_read(s, c->echo + c->echo_len, MSG_LEN - c->echo_len, &n) != 0)
			goto out;
		c->echo_len += n;
	}
	tls_bye(s);
out:
	tls_session_free(s);
	shutdown(c->fd, SHUT_RDWR);
	return NULL;
}

static void *raw_client(void *arg)
{
	struct peer *c = arg;
	gnutls_session_t s = NULL;
	gnutls_certificate_credentials_t cred = NULL;
	gnutls_datum_t alpn;
	int e;

	if (c->raw == 2) {
		uint8_t hello[64];

		/* A version-3 server reads (a request header's worth), then answers. */
		if (read(c->fd, hello, sizeof(hello)) <= 0 ||
		    write(c->fd, c->bytes, c->nbytes) != (ssize_t)c->nbytes)
			c->hs = -1000;
		shutdown(c->fd, SHUT_RDWR);
		return NULL;
	}
	if (gnutls_certificate_allocate_credentials(&cred) < 0 ||
	    gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NO_SIGNAL) < 0 ||
	    gnutls_priority_set_direct(s, c->priority, NULL) < 0 ||
	    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred) < 0) {
		c->hs = -1000;
		goto out;
	}
	if (c->with_cert) {
		/* The client identity's PEM, loaded the plain GnuTLS way. */
		struct buf key, crt;
		gnutls_datum_t k, ce;

		buf_init(&key, TLS_PEM_MAX);
		buf_init(&crt, TLS_PEM_MAX);
		if (tls_identity_key_pem(client_id, &key) != 0 ||
		    tls_identity_cert_pem(client_id, &crt) != 0) {
			c->hs = -1000;
			goto out;
		}
		k.data = (unsigned char *)(uintptr_t)buf_ptr(&key);
		k.size = (unsigned)buf_len(&key);
		ce.data = (unsigned char *)(uintptr_t)buf_ptr(&crt);
		ce.size = (unsigned)buf_len(&crt);
		e = gnutls_certificate_set_x509_key_mem(cred, &ce, &k, GNUTLS_X509_FMT_PEM);
		buf_free(&key);
		buf_free(&crt);
		if (e < 0) {
			c->hs = -1000;
			goto out;
		}
	}
	if (c->alpn != NULL) {
		alpn.data = (unsigned char *)(uintptr_t)c->alpn;
		alpn.size = (unsigned)strlen(c->alpn);
		gnutls_alpn_set_protocols(s, &alpn, 1, 0);
	}
	gnutls_transport_set_int(s, c->fd);
	gnutls_handshake_set_timeout(s, DEADLINE_MS);
	c->alert = -1;
	c->hs = gnutls_handshake(s);
	if (c->hs == 0) {
		/* TLS 1.3: the client's handshake ends before the server has checked the client's
		 * certificate, so a refused client may get here; its data must never arrive. */
		uint8_t b;

		if (gnutls_record_send(s, "x", 1) == 1)
			c->sent = 1;
		if (c->expect_refusal)
			c->hs = (int)gnutls_record_recv(s, &b, 1);
	}
	if (c->hs == GNUTLS_E_FATAL_ALERT_RECEIVED)
		c->alert = (int)gnutls_alert_get(s);
out:
	if (s != NULL)
		gnutls_deinit(s);
	if (cred != NULL)
		gnutls_certificate_free_credentials(cred);
	shutdown(c->fd, SHUT_RDWR);
	return NULL;
}

/* The server's side of one connection, non-blocking, as an event loop drives it. */
struct served {
	int hs;            /* tls_handshake's final result */
	char fp[TLS_FP_TEXT_SIZE];
	char desc[128];
	size_t got;        /* application bytes received */
	int echo_ok;       /* the message arrived whole and its reversal went back */
	int saw_pending;   /* tls_pending() was > 0 at some point */
	int retried;       /* writes that would block and were called again */
};

/* Waits for fd to be ready the way r (SD_ERR_WANT_*) asks; 0, or -1 at the deadline. */
static int wait_for(int fd, int r, long deadline)
{
	struct pollfd p = { fd, (short)(r == SD_ERR_WANT_WRITE ? POLLOUT : POLLIN), 0 };
	long left = deadline - now_ms();

	if (left <= 0)
		return -1;
	return poll(&p, 1, (int)left) > 0 ? 0 : -1;
}

static void serve(struct tls_session *s, int fd, struct served *out)
{
	static uint8_t in[MSG_LEN], back[MSG_LEN];
	long deadline = now_ms() + DEADLINE_MS;
	size_t n, off, i;
	int r, retry = 0;

	memset(out, 0, sizeof(*out));
	while ((r = tls_handshake(s)) == SD_ERR_WANT_READ || r == SD_ERR_WANT_WRITE)
		if (wait_for(fd, r, deadline) != 0)
			break;
	out->hs = r;
	snprintf(out->fp, sizeof(out->fp), "%s", tls_peer_fingerprint(s));
	if (r != 0)
		return;
	tls_describe(s, out->desc, sizeof(out->desc));
	/* Small reads, so that GnuTLS holds the rest of a record: tls_pending() tells. */
	while (out->got < MSG_LEN) {
		r = tls_read(s, in + out->got, 1000 < MSG_LEN - out->got ? 1000 : MSG_LEN - out->got,
		    &n);
		if (r == SD_ERR_WANT_READ || r == SD_ERR_WANT_WRITE) {
			assert_int_equal(tls_pending(s), 0);
			if (wait_for(fd, r, deadline) != 0)
				return;
			continue;
		}
		if (r != 0)
			return;
		out->got += n;
		if (tls_pending(s) > 0)
			out->saw_pending = 1;
	}
	fill(back, MSG_LEN);
	if (memcmp(in, back, MSG_LEN) != 0)
		return;
	for (i = 0; i < MSG_LEN; i++)
		back[i] = in[MSG_LEN - 1 - i];
	/* Writes of 3000 bytes; after one would block, the retry offers all that is left, as
	 * an output buffer that grew meanwhile would: the same bytes first, more after them. */
	for (off = 0; off < MSG_LEN;) {
		size_t len = MSG_LEN - off;

		if (!retry && len > 3000)
			len = 3000;
		r = tls_write(s, back + off, len, &n);
		if (r == SD_ERR_WANT_READ || r == SD_ERR_WANT_WRITE) {
			out->retried++;
			retry = 1;
			if (wait_for(fd, r, deadline) != 0)
				return;
			continue;
		}
		if (r != 0 || n > len || (retry && n > 3000))
			return;
		retry = 0;
		off += n;
	}
	out->echo_ok = 1;
	/* Until the client has read all and said bye. */
	while ((r = tls_read(s, in, sizeof(in), &n)) == SD_ERR_WANT_READ || r == 0)
		if (r != 0 && wait_for(fd, r, deadline) != 0)
			break;
}

/* Runs one connection: our server session (non-blocking) against peer c in a thread. */
static void run_pair(struct peer *c, struct served *sv)
{
	struct tls_session *s = NULL;
	pthread_t t;
	int sp[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	/* Small socket buffers, so that writes really block and resume. */
	{
		int sz = 8192;

		setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		setsockopt(sp[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	}
	assert_int_equal(fcntl(sp[0], F_SETFL, fcntl(sp[0], F_GETFL) | O_NONBLOCK), 0);
	c->fd = sp[1];
	assert_int_equal(tls_server_new(server_creds, sp[0], &s), 0);
	assert_int_equal(pthread_create(&t, NULL, c->raw ? raw_client : our_client, c), 0);
	serve(s, sp[0], sv);
	tls_session_free(s);
	shutdown(sp[0], SHUT_RDWR);
	assert_int_equal(pthread_join(t, NULL), 0);
	close(sp[0]);
	close(sp[1]);
}

static struct peer *peer_new(void)
{
	struct peer *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	return c;
}

static void test_handshake_tofu_and_data(void **state)
{
	struct peer *c = peer_new();
	struct served sv;
	uint8_t want[MSG_LEN];
	size_t i;

	(void)state;
	c->creds = client_creds;
	run_pair(c, &sv);
	assert_int_equal(sv.hs, 0);
	assert_int_equal(c->hs, 0);
	/* Each side learnt the other's fingerprint. */
	assert_string_equal(c->fp, server_fp);
	assert_string_equal(sv.fp, client_fp);
	assert_non_null(strstr(sv.desc, "TLS1.3"));
	assert_non_null(strstr(c->desc, "TLS1.3"));
	assert_non_null(strstr(c->desc, "AES_256_GCM"));
	/* Data both ways, across many records and blocked writes. */
	assert_true(sv.echo_ok);
	assert_true(sv.saw_pending);
	assert_true(sv.retried > 0);
	assert_int_equal(c->echo_len, MSG_LEN);
	fill(want, MSG_LEN);
	for (i = 0; i < MSG_LEN; i++)
		assert_int_equal(c->echo[i], want[MSG_LEN - 1 - i]);
	free(c);
}

/* The same with the client's writes batched: nothing leaves before tls_flush(), then all
 * of it arrives in order. */
static void test_batched_writes(void **state)
{
	struct peer *c = peer_new();
	struct served sv;
	uint8_t want[MSG_LEN];
	size_t i;

	(void)state;
	c->creds = client_creds;
	c->batch = 1;
	run_pair(c, &sv);
	assert_int_equal(c->hs, 0);
	assert_true(c->sent);
	assert_true(sv.echo_ok);
	assert_int_equal(c->echo_len, MSG_LEN);
	fill(want, MSG_LEN);
	for (i = 0; i < MSG_LEN; i++)
		assert_int_equal(c->echo[i], want[MSG_LEN - 1 - i]);
	free(c);
}

static void test_handshake_pinned(void **state)
{
	struct peer *c = peer_new();
	struct served sv;

	(void)state;
	c->creds = client_creds;
	c->expected = server_fp;
	run_pair(c, &sv);
	assert_int_equal(c->hs, 0);
	assert_int_equal(sv.hs, 0);
	assert_true(sv.echo_ok);
	assert_string_equal(c->fp, server_fp);
	free(c);
}

/* A man in the middle with its own key: the client refuses in the handshake, knows both
 * fingerprints, and the server never gets a byte of application data. */
static void test_handshake_pinned_mismatch(void **state)
{
	struct peer *c = peer_new();
	struct served sv;

	(void)state;
	c->creds = client_creds;
	c->expected = other_fp;
	run_pair(c, &sv);
	assert_int_equal(c->hs, SD_ERR_PEER_KEY);
	assert_string_equal(c->fp, server_fp);  /* what was presented */
	assert_false(c->sent);
	assert_int_not_equal(sv.hs, 0);
	assert_int_equal(sv.got, 0);
	free(c);
}

static void test_client_new_bad_pin(void **state)
{
	struct tls_session *s = (struct tls_session *)1;

	(void)state;
	assert_int_equal(tls_client_new(client_creds, 0, "SHA256:short", &s), SD_ERR_INVALID_ARG);
	assert_null(s);
	assert_int_equal(tls_server_new(NULL, 0, &s), SD_ERR_INVALID_ARG);
	assert_int_equal(tls_server_new(server_creds, -1, &s), SD_ERR_INVALID_ARG);
}

/* Raw GnuTLS clients that break one rule each: the server's handshake fails, the server
 * receives no application byte, the client gets alert `alert` (or -1: any failure). */
static void refused(const char *priority, const char *alpn, int with_cert, int alert)
{
	struct peer *c = peer_new();
	struct served sv;

	c->raw = 1;
	c->priority = priority;
	c->alpn = alpn;
	c->with_cert = with_cert;
	c->expect_refusal = 1;
	run_pair(c, &sv);
	assert_int_not_equal(sv.hs, 0);
	assert_int_not_equal(sv.hs, SD_ERR_WANT_READ);  /* not a timeout */
	assert_int_equal(sv.got, 0);
	assert_true(c->hs < 0);
	if (alert >= 0) {
		assert_int_equal(c->hs, GNUTLS_E_FATAL_ALERT_RECEIVED);
		assert_int_equal(c->alert, alert);
	}
	free(c);
}

#define TLS13 "NORMAL:-VERS-ALL:+VERS-TLS1.3"

static void test_raw_client_control(void **state)
{
	struct peer *c = peer_new();
	struct served sv;

	/* The raw client with everything right is accepted: the refusals below are real. */
	(void)state;
	c->raw = 1;
	c->priority = TLS13;
	c->alpn = TLS_ALPN;
	c->with_cert = 1;
	run_pair(c, &sv);
	assert_int_equal(c->hs, 0);
	assert_int_equal(sv.hs, 0);
	assert_string_equal(sv.fp, client_fp);
	assert_true(c->sent);
	assert_int_equal(sv.got, 1);
	free(c);
}

static void test_refuse_no_client_cert(void **state)
{
	(void)state;
	refused(TLS13, TLS_ALPN, 0, GNUTLS_A_CERTIFICATE_REQUIRED);
}

static void test_refuse_no_alpn(void **state)
{
	(void)state;
	refused(TLS13, NULL, 1, GNUTLS_A_NO_APPLICATION_PROTOCOL);
}

static void test_refuse_other_alpn(void **state)
{
	(void)state;
	refused(TLS13, "http/1.1", 1, GNUTLS_A_NO_APPLICATION_PROTOCOL);
}

static void test_refuse_tls12(void **state)
{
	(void)state;
	refused("NORMAL:-VERS-ALL:+VERS-TLS1.2", TLS_ALPN, 1, -1);
}

/* A version-3 server answers a ClientHello with 1607 (or closes): SD_ERR_NOT_TLS. Here the
 * "server" is a thread writing those bytes; our client runs in this thread. */
static int client_against_bytes(const uint8_t *bytes, size_t n)
{
	struct peer *c = peer_new();
	struct tls_session *s = NULL;
	pthread_t t;
	int sp[2], r;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	c->raw = 2;
	c->bytes = bytes;
	c->nbytes = n;
	c->fd = sp[1];
	assert_int_equal(pthread_create(&t, NULL, raw_client, c), 0);
	assert_int_equal(tls_client_new(client_creds, sp[0], NULL, &s), 0);
	tls_set_timeout(s, DEADLINE_MS);
	r = tls_handshake(s);
	tls_session_free(s);
	assert_int_equal(pthread_join(t, NULL), 0);
	close(sp[0]);
	close(sp[1]);
	free(c);
	return r;
}

static void test_client_not_tls(void **state)
{
	static const uint8_t resp_1607[] = { 0x03, 0x47, 0x06, 0, 0, 0, 0 };

	(void)state;
	assert_int_equal(client_against_bytes(resp_1607, sizeof(resp_1607)), SD_ERR_NOT_TLS);
	assert_int_equal(client_against_bytes(NULL, 0), SD_ERR_NOT_TLS);
}

/* A raw GnuTLS server without our ALPN: our client refuses. */
struct raw_server {
	int fd;
	const char *alpn;
	int hs;
	int ticket_then_data;  /* after the handshake: a session ticket, then "hello" */
};

static void *raw_server(void *arg)
{
	struct raw_server *rs = arg;
	gnutls_certificate_credentials_t cred = NULL;
	gnutls_session_t s = NULL;
	struct buf key, crt;
	gnutls_datum_t k, ce, alpn, tkey = { NULL, 0 };

	buf_init(&key, TLS_PEM_MAX);
	buf_init(&crt, TLS_PEM_MAX);
	rs->hs = -1000;
	if (tls_identity_key_pem(server_id, &key) != 0 || tls_identity_cert_pem(server_id, &crt) != 0)
		goto out;
	k.data = (unsigned char *)(uintptr_t)buf_ptr(&key);
	k.size = (unsigned)buf_len(&key);
	ce.data = (unsigned char *)(uintptr_t)buf_ptr(&crt);
	ce.size = (unsigned)buf_len(&crt);
	if (gnutls_certificate_allocate_credentials(&cred) < 0 ||
	    gnutls_certificate_set_x509_key_mem(cred, &ce, &k, GNUTLS_X509_FMT_PEM) < 0 ||
	    gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NO_SIGNAL) < 0 ||
	    gnutls_priority_set_direct(s, TLS13, NULL) < 0 ||
	    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred) < 0)
		goto out;
	if (rs->alpn != NULL) {
		alpn.data = (unsigned char *)(uintptr_t)rs->alpn;
		alpn.size = (unsigned)strlen(rs->alpn);
		gnutls_alpn_set_protocols(s, &alpn, 1, 0);
	}
	gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUEST);
	if (rs->ticket_then_data && (gnutls_session_ticket_key_generate(&tkey) < 0 ||
	    gnutls_session_ticket_enable_server(s, &tkey) < 0))
		goto out;
	gnutls_transport_set_int(s, rs->fd);
	gnutls_handshake_set_timeout(s, DEADLINE_MS);
	rs->hs = gnutls_handshake(s);
	if (rs->hs == 0 && rs->ticket_then_data &&
	    (gnutls_session_ticket_send(s, 1, 0) < 0 || gnutls_record_send(s, "hello", 5) != 5))
		rs->hs = -1001;
out:
	gnutls_free(tkey.data);
	buf_free(&key);
	buf_free(&crt);
	if (s != NULL)
		gnutls_deinit(s);
	if (cred != NULL)
		gnutls_certificate_free_credentials(cred);
	shutdown(rs->fd, SHUT_RDWR);
	return NULL;
}

static int client_against_raw_server(const char *alpn)
{
	struct raw_server rs;
	struct tls_session *s = NULL;
	pthread_t t;
	int sp[2], r;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	memset(&rs, 0, sizeof(rs));
	rs.fd = sp[1];
	rs.alpn = alpn;
	assert_int_equal(pthread_create(&t, NULL, raw_server, &rs), 0);
	assert_int_equal(tls_client_new(client_creds, sp[0], server_fp, &s), 0);
	tls_set_timeout(s, DEADLINE_MS);
	r = tls_handshake(s);
	tls_session_free(s);
	shutdown(sp[0], SHUT_RDWR);
	assert_int_equal(pthread_join(t, NULL), 0);
	close(sp[0]);
	close(sp[1]);
	return r;
}

/* A server that sends a TLS 1.3 session ticket and then data at once (OpenSSL does after
 * every handshake): both records come in one read ahead, and GnuTLS answers the ticket with
 * GNUTLS_E_AGAIN; the read must go on to the data, which the fd no longer reports. */
static void test_client_reads_past_ticket(void **state)
{
	struct raw_server rs;
	struct tls_session *s = NULL;
	uint8_t in[16];
	pthread_t t;
	size_t n = 0;
	int sp[2], r;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	memset(&rs, 0, sizeof(rs));
	rs.fd = sp[1];
	rs.alpn = TLS_ALPN;
	rs.ticket_then_data = 1;
	assert_int_equal(pthread_create(&t, NULL, raw_server, &rs), 0);
	assert_int_equal(tls_client_new(client_creds, sp[0], server_fp, &s), 0);
	tls_set_timeout(s, DEADLINE_MS);
	r = tls_handshake(s);
	/* The server has sent both records and closed its side: all is in the socket. */
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(r, 0);
	assert_int_equal(rs.hs, 0);
	assert_int_equal(fcntl(sp[0], F_SETFL, fcntl(sp[0], F_GETFL) | O_NONBLOCK), 0);
	r = tls_read(s, in, sizeof(in), &n);
	assert_int_equal(r, 0);
	assert_int_equal(n, 5);
	assert_memory_equal(in, "hello", 5);
	tls_session_free(s);
	close(sp[0]);
	close(sp[1]);
}

static void test_client_needs_alpn(void **state)
{
	(void)state;
	/* Control: the raw server with our ALPN is accepted. */
	assert_int_equal(client_against_raw_server(TLS_ALPN), 0);
	assert_int_equal(client_against_raw_server(NULL), SD_ERR_TLS);
	assert_int_equal(client_against_raw_server("h2"), SD_ERR_TLS);
}

static void test_null_arguments(void **state)
{
	char out[8] = "x";
	size_t n = 5;

	(void)state;
	assert_int_equal(tls_handshake(NULL), SD_ERR_INVALID_ARG);
	assert_int_equal(tls_read(NULL, out, 1, &n), SD_ERR_INVALID_ARG);
	assert_int_equal(n, 0);
	assert_int_equal(tls_write(NULL, out, 1, &n), SD_ERR_INVALID_ARG);
	assert_int_equal(tls_pending(NULL), 0);
	assert_string_equal(tls_peer_fingerprint(NULL), "");
	tls_describe(NULL, out, sizeof(out));
	assert_string_equal(out, "");
	tls_session_free(NULL);
	tls_creds_free(NULL);
	tls_identity_free(NULL);
	{
		char fp[TLS_FP_TEXT_SIZE];

		assert_int_equal(tls_fingerprint_of_cert_der((const uint8_t *)"abc", 3, fp),
		    SD_ERR_BAD_KEY);
		assert_string_equal(fp, "");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sniff),
		cmocka_unit_test(test_fingerprint_form),
		cmocka_unit_test(test_pem_round_trip),
		cmocka_unit_test(test_rsa_identity_refused),
		cmocka_unit_test(test_handshake_tofu_and_data),
		cmocka_unit_test(test_handshake_pinned),
		cmocka_unit_test(test_handshake_pinned_mismatch),
		cmocka_unit_test(test_client_new_bad_pin),
		cmocka_unit_test(test_raw_client_control),
		cmocka_unit_test(test_refuse_no_client_cert),
		cmocka_unit_test(test_refuse_no_alpn),
		cmocka_unit_test(test_refuse_other_alpn),
		cmocka_unit_test(test_refuse_tls12),
		cmocka_unit_test(test_client_not_tls),
		cmocka_unit_test(test_client_needs_alpn),
		cmocka_unit_test(test_client_reads_past_ticket),
		cmocka_unit_test(test_batched_writes),
		cmocka_unit_test(test_null_arguments),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
