/* transport.c: first-byte detection and the TLS transport of the server (transport.h): a
 * struct conn_transport_ops whose read() first tells TLS from version 3, then drives the
 * GnuTLS session's handshake and records. */
#include "transport.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../protocol/err.h"
#include "../protocol/tls.h"

enum tr_state {
	TR_SNIFF = 0,     /* reading the first bytes */
	TR_HANDSHAKE,     /* TLS: handshake in progress */
	TR_OPEN,          /* TLS: established, application data */
	TR_DRAIN,         /* the lingering close: close_notify sent, the session freed; raw
	                   * bytes are read to be dropped */
};

#define TR_WHY_MAX 160u

struct tr_tls {
	const struct tls_creds *creds;
	enum tr_state state;
	uint8_t first[TLS_SNIFF_MAX];
	size_t nfirst;
	struct tls_session *s;
	unsigned hs_want;          /* CONN_WANT_* the handshake waits for */
	int read_wants_write;      /* a record read blocked until the socket is writable */
	int write_wants_read;      /* a record write blocked until the socket is readable */
	int deferred;              /* the end or failure a read met after records it returned */
	unsigned bye_want;         /* CONN_WANT_* the close_notify waits for */
	char why[TR_WHY_MAX];      /* the last failure, for the log */
};

static ssize_t
recv_some(int fd, uint8_t *buf, size_t cap)
{
	ssize_t n;

	while ((n = recv(fd, buf, cap, 0)) < 0 && errno == EINTR)
		;
	if (n >= 0)
		return n;
	return errno == EAGAIN || errno == EWOULDBLOCK ? CONN_IO_AGAIN : CONN_IO_ERROR;
}

static void
tr_free(struct tr_tls *x)
{
	if (x == NULL)
		return;
	tls_session_free(x->s);
	explicit_bzero(x, sizeof(*x));
	free(x);
}

/* Version 3: the plain socket from now on, the bytes read so far first, unchanged. */
static ssize_t
become_plain(struct conn_transport *t, uint8_t *buf, size_t cap)
{
	struct tr_tls *x = t->ctx;
	size_t n = x->nfirst;
	ssize_t more;

	memcpy(buf, x->first, n);  /* cap >= TLS_SNIFF_MAX: checked by the caller */
	conn_transport_plain(t, t->fd);
	tr_free(x);
	/* Whatever else the socket holds now comes along, as a plain read would take it. */
	if ((more = recv_some(t->fd, buf + n, cap - n)) > 0)
		n += (size_t)more;
	return (ssize_t)n;
}

static ssize_t
fail(struct tr_tls *x, const char *what, int r)
{
	const char *detail = x->s != NULL ? tls_last_error(x->s) : "";
	size_t n;

	snprintf(x->why, sizeof(x->why), "%s: %s", what, detail[0] != '\0' ? detail :
	    sd_strerror(r));
	if ((n = strlen(x->why)) > 0 && x->why[n - 1] == '.')
		x->why[n - 1] = '\0';  /* GnuTLS's sentences end in a full stop; log lines do not */
	return CONN_IO_ERROR;
}

/* TLS: a handshake step while it lasts, then application bytes of the records at hand. */
static ssize_t
tls_step(struct tr_tls *x, uint8_t *buf, size_t cap)
{
	size_t got, total;
	int r;

	if (x->state == TR_HANDSHAKE) {
		r = tls_handshake(x->s);
		if (r == SD_ERR_WANT_READ || r == SD_ERR_WANT_WRITE) {
			x->hs_want = r == SD_ERR_WANT_READ ? CONN_WANT_READ : CONN_WANT_WRITE;
			return CONN_IO_AGAIN;
		}
		if (r != 0)
			return fail(x, "handshake failed", r);
		x->hs_want = 0;
		x->state = TR_OPEN;
	}
	if ((r = x->deferred) != 0) {
		x->deferred = 0;
	} else {
		/* As many records as fit and are at hand (decrypted, or read ahead from the
		 * socket): the connection gets one slice per wake-up rather than one per 16 KiB
		 * record, and the upload writes its file in slices as large. */
		r = SD_ERR_INVALID_ARG;  /* never: cap is CONN_READ_CHUNK */
		for (total = 0; total < cap; total += got) {
			if ((r = tls_read(x->s, buf + total, cap - total, &got)) != 0)
				break;
			if (tls_pending(x->s) == 0) {
				total += got;
				break;
			}
		}
		x->read_wants_write = r == SD_ERR_WANT_WRITE;
		if (total > 0) {
			/* The end or a failure after some records: those records first. */
			if (r != 0 && r != SD_ERR_WANT_READ && r != SD_ERR_WANT_WRITE)
				x->deferred = r;
			return (ssize_t)total;
		}
	}
	if (r == SD_ERR_WANT_READ || r == SD_ERR_WANT_WRITE)
		return CONN_IO_AGAIN;
	if (r == SD_ERR_EOF)
		return CONN_IO_EOF;
	return fail(x, "bad record", r);
}

/* The connection's first read, straight into its buffer: a version-3 request arrives in one
 * recv(), as on a plain socket, and a ClientHello is handed to the TLS session whole. */
static ssize_t
first_read(struct conn_transport *t, uint8_t *buf, size_t cap)
{
	struct tr_tls *x = t->ctx;
	ssize_t n = recv_some(t->fd, buf, cap);
	int r;

	if (n <= 0)
		return n;  /* CONN_IO_EOF, CONN_IO_AGAIN or CONN_IO_ERROR */
	switch (tls_sniff(buf, (size_t)n)) {
	case TLS_SNIFF_MORE:
		/* Fewer than TLS_SNIFF_MAX bytes: the socket is empty, wait for more. */
		memcpy(x->first, buf, (size_t)n);
		x->nfirst = (size_t)n;
		return CONN_IO_AGAIN;
	case TLS_SNIFF_V3:
		conn_transport_plain(t, t->fd);
		tr_free(x);
		return n;
	case TLS_SNIFF_TLS:
		break;
	}
	if ((r = tls_server_new_after(x->creds, t->fd, buf, (size_t)n, &x->s)) != 0)
		return fail(x, "cannot start a session", r);
	x->state = TR_HANDSHAKE;
	return tls_step(x, buf, cap);
}

static ssize_t
tr_read(struct conn_transport *t, uint8_t *buf, size_t cap)
{
	struct tr_tls *x = t->ctx;
	ssize_t n;
	int r;

	if (x->state == TR_DRAIN)
		return recv_some(t->fd, buf, cap);  /* dropped by the connection, not decrypted */
	if (x->state != TR_SNIFF)
		return tls_step(x, buf, cap);
	if (cap < TLS_SNIFF_MAX || cap > TLS_FIRST_MAX)
		return CONN_IO_ERROR;  /* never: the connection reads CONN_READ_CHUNK */
	if (x->nfirst == 0)
		return first_read(t, buf, cap);
	/* The first read was too short to tell: the rest of the TLS_SNIFF_MAX bytes. */
	n = recv_some(t->fd, x->first + x->nfirst, TLS_SNIFF_MAX - x->nfirst);
	if (n == CONN_IO_EOF)
		/* Closed before the shape was clear: what came is version 3's to judge. */
		return x->nfirst > 0 ? become_plain(t, buf, cap) : CONN_IO_EOF;
	if (n < 0)
		return n;
	x->nfirst += (size_t)n;
	switch (tls_sniff(x->first, x->nfirst)) {
	case TLS_SNIFF_MORE:
		/* recv() gave fewer bytes than asked: the socket is empty, wait for more. */
		return CONN_IO_AGAIN;
	case TLS_SNIFF_V3:
		return become_plain(t, buf, cap);
	case TLS_SNIFF_TLS:
		break;
	}
	if ((r = tls_server_new_after(x->creds, t->fd, x->first, x->nfirst, &x->s)) != 0)
		return fail(x, "cannot start a session", r);
	x->state = TR_HANDSHAKE;
	return tls_step(x, buf, cap);
}

static ssize_t
tr_write(struct conn_transport *t, const uint8_t *buf, size_t len)
{
	struct tr_tls *x = t->ctx;
	size_t sent;
	int r;

	if (x->state != TR_OPEN)
		return CONN_IO_AGAIN;  /* nothing is queued before the handshake is done */
	/* A write that would block is taken again by tls_write() with exactly its bytes: the
	 * output buffer only grows at its end meanwhile. */
	r = tls_write(x->s, buf, len, &sent);
	x->write_wants_read = r == SD_ERR_WANT_READ;
	if (r == 0)
		return (ssize_t)sent;
	if (r == SD_ERR_WANT_READ || r == SD_ERR_WANT_WRITE)
		return CONN_IO_AGAIN;
	return fail(x, "write failed", r);
}

static unsigned
tr_want(struct conn_transport *t)
{
	const struct tr_tls *x = t->ctx;

	if (x->state == TR_HANDSHAKE)
		return x->hs_want;
	if (x->state != TR_OPEN)
		return 0;
	if (x->bye_want != 0)
		return x->bye_want;
	/* Only what the connection's own wishes do not cover: a read waiting for the socket to
	 * be writable, a write waiting for it to be readable (a TLS 1.3 key update). */
	return (x->read_wants_write ? CONN_WANT_WRITE : 0u) |
	    (x->write_wants_read ? CONN_WANT_READ : 0u);
}

static int
tr_pending(struct conn_transport *t)
{
	const struct tr_tls *x = t->ctx;

	return x->state == TR_OPEN && (tls_pending(x->s) > 0 || x->deferred != 0);
}

static void
tr_close(struct conn_transport *t)
{
	struct tr_tls *x = t->ctx;

	/* close_notify, best effort: the socket is non-blocking and closes right after. */
	if (x != NULL && x->state == TR_OPEN && x->why[0] == '\0')
		(void)tls_bye(x->s);
	tr_free(x);
	t->ctx = NULL;
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

/* The lingering close: close_notify once the last reply is written (the socket usually takes
 * the alert at once; if not, the connection calls again when it is writable), then the
 * session goes, with its memory, and the socket's sending side is shut. A session that failed
 * sends no alert. Before the handshake is done there is nothing of TLS to end. */
static int
tr_shutdown_write(struct conn_transport *t)
{
	struct tr_tls *x = t->ctx;
	int r;

	if (x->state == TR_OPEN && x->why[0] == '\0') {
		r = tls_bye(x->s);
		if (r == SD_ERR_WANT_READ || r == SD_ERR_WANT_WRITE) {
			x->bye_want = r == SD_ERR_WANT_READ ? CONN_WANT_READ : CONN_WANT_WRITE;
			return CONN_IO_AGAIN;
		}
		if (r != 0)
			return CONN_IO_ERROR;
	}
	x->bye_want = 0;
	tls_session_free(x->s);
	x->s = NULL;
	x->state = TR_DRAIN;
	return shutdown(t->fd, SHUT_WR) == 0 ? 0 : CONN_IO_ERROR;
}

static const char *
tr_peer_key(struct conn_transport *t)
{
	const struct tr_tls *x = t->ctx;

	return x->state == TR_OPEN ? tls_peer_fingerprint(x->s) : NULL;
}

static const char *
tr_failure(struct conn_transport *t)
{
	const struct tr_tls *x = t->ctx;

	return x->why[0] != '\0' ? x->why : NULL;
}

static const struct conn_transport_ops detect_ops = {
	tr_read, tr_write, tr_want, tr_pending, tr_close, tr_peer_key, tr_failure,
	tr_shutdown_write,
};

int
transport_detect(struct conn_transport *t, int fd, const struct tls_creds *creds)
{
	struct tr_tls *x;

	if ((x = calloc(1, sizeof(*x))) == NULL)
		return SD_ERR_ALLOC;
	x->creds = creds;
	x->state = TR_SNIFF;
	t->ops = &detect_ops;
	t->fd = fd;
	t->ctx = x;
	return 0;
}
