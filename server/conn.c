/* conn.c: one client connection: bytes from its transport go through the frame parser to the
 * handlers; replies wait in a bounded output buffer and go out as the transport accepts them.
 * The connection also owns its identity, its log lines, its closing and its deadlines. */
#include "conn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../db/db.h"
#include "../protocol/aes.h"
#include "../protocol/crypto.h"
#include "../protocol/err.h"
#include "../protocol/msg.h"
#include "commit.h"
#include "config.h"
#include "fetch.h"
#include "handlers.h"
#include "handlers_v4.h"
#include "log.h"
#include "put.h"
#include "receive.h"
#include "xfer.h"

/* Largest file-packet payload the parser lets through: the reassembler checks the exact
 * sizes; this only keeps absurd claims out before a byte of content is read. A fixed-size
 * sender may zero-fill its last packet past the ciphertext, hence the slack. */
#define CONN_STREAM_SLACK (1024u * 1024u)
/* Before a client is known, a connection may send this many invalid requests; then it is
 * closed (Redis-style lower caps before authentication). */
#define CONN_UNKNOWN_MAX_ERRORS 32

/* The plain-socket transport: nothing but the fd. */
static ssize_t
plain_read(struct conn_transport *t, uint8_t *buf, size_t cap)
{
	ssize_t n;

	while ((n = recv(t->fd, buf, cap, 0)) < 0 && errno == EINTR)
		;
	if (n >= 0)
		return n;
	return errno == EAGAIN || errno == EWOULDBLOCK ? CONN_IO_AGAIN : CONN_IO_ERROR;
}

static ssize_t
plain_write(struct conn_transport *t, const uint8_t *buf, size_t len)
{
	ssize_t n;

	while ((n = send(t->fd, buf, len, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	if (n > 0)
		return n;
	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? CONN_IO_AGAIN : CONN_IO_ERROR;
}

static unsigned
plain_want(struct conn_transport *t)
{
	(void)t;
	return 0;
}

static int
plain_pending(struct conn_transport *t)
{
	(void)t;
	return 0;
}

static void
plain_close(struct conn_transport *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

static const char *
plain_nothing(struct conn_transport *t)
{
	(void)t;
	return NULL;
}

static int
plain_shutdown_write(struct conn_transport *t)
{
	return shutdown(t->fd, SHUT_WR) == 0 ? 0 : CONN_IO_ERROR;
}

static const struct conn_transport_ops plain_ops = {
	plain_read, plain_write, plain_want, plain_pending, plain_close, plain_nothing,
	plain_nothing, plain_shutdown_write,
};

void
conn_transport_plain(struct conn_transport *t, int fd)
{
	t->ops = &plain_ops;
	t->fd = fd;
	t->ctx = NULL;
}

struct conn *
conn_new(struct conn_env *env, const struct conn_transport *t, const char *peer)
{
	struct conn *c;
	uint64_t max;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->env = env;
	c->tr = *t;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	c->reading = 1;
	c->last_rx_ms = env->now_ms;
	c->last_tx_ms = env->now_ms;
	frame_init(&c->parser, FRAME_REQUESTS);
	max = (uint64_t)FILE_PACKET_HEADER_SIZE +
	    aes_cbc_ciphertext_size(env->cfg->max_file_size) + CONN_STREAM_SLACK;
	c->parser.max_stream_payload = max > FILE_PAYLOAD_MAX ? FILE_PAYLOAD_MAX :
	    (uint32_t)max;
	buf_init(&c->out, CONN_OUT_MAX);
	c->corrupt_left = env->cfg->test_corrupt_crc;
	return c;
}

static void
set_pending(struct conn *c, int more)
{
	if (more == c->more_pending)
		return;
	c->more_pending = more;
	if (more)
		c->env->npending++;
	else
		c->env->npending--;
}

/* Forgets held input (it may carry file content: wiped). */
static void
drop_held(struct conn *c)
{
	if (c->held != NULL)
		crypto_wipe(c->held, c->held_len);
	free(c->held);
	c->held = NULL;
	c->held_len = 0;
}

/* Everything a connection holds for its requests: a file being received, a version-4 upload
 * or download, held input, a staged attempt. On the way to its close (conn_free, or the
 * start of a lingering close, after which no request is read). */
static void
release(struct conn *c)
{
	if (c->recv != NULL)
		conn_log_end(c, "send file", "aborted: connection closed mid-upload; partial file "
		    "removed");
	receive_abort(c);
	put_release(c);
	fetch_end(c);
	drop_held(c);
	commit_discard(c);  /* never confirmed: the stored version stays */
	set_pending(c, 0);
}

void
conn_free(struct conn *c)
{
	if (c == NULL)
		return;
	release(c);
	c->tr.ops->close(&c->tr);
	buf_free(&c->out);
	crypto_wipe(c->aes_key, sizeof(c->aes_key));
	crypto_wipe(c->challenge_nonce, sizeof(c->challenge_nonce));
	crypto_wipe(&c->parser, sizeof(c->parser));
	free(c);
}

void
conn_close_later(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	c->env->nclosing++;
	set_pending(c, 0);
}

int
conn_busy(const struct conn *c)
{
	if (c->lingering)
		return 0;  /* its requests are over: nothing a graceful stop waits for */
	return !frame_idle(&c->parser) || c->recv != NULL || c->awaiting_verdict ||
	    buf_len(&c->out) > 0 || c->put != NULL || c->get != NULL || c->held_len > 0;
}

/* One log line with this connection's worker and peer; capped says whether it counts against
 * CONN_LOG_MAX. */
static void
vlog(struct conn *c, int capped, const uint8_t *id, const char *name, const char *event,
    const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));

static void
vlog(struct conn *c, int capped, const uint8_t *id, const char *name, const char *event,
    const char *fmt, va_list ap)
{
	if (capped) {
		if (c->logged > CONN_LOG_MAX)
			return;
		if (c->logged++ == CONN_LOG_MAX) {
			log_event(c->env->index, c->peer, id, name, "log", "%u events logged for "
			    "this connection; the rest are not", CONN_LOG_MAX);
			return;
		}
	}
	log_eventv(c->env->index, c->peer, id, name, event, fmt, ap);
}

void
conn_log(struct conn *c, const char *event, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(c, 1, c->known ? c->id : NULL, c->known ? c->name : NULL, event, fmt, ap);
	va_end(ap);
}

void
conn_log_as(struct conn *c, const uint8_t *id, const char *name, const char *event,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(c, 1, id, name, event, fmt, ap);
	va_end(ap);
}

void
conn_log_end(struct conn *c, const char *event, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(c, 0, c->known ? c->id : NULL, c->known ? c->name : NULL, event, fmt, ap);
	va_end(ap);
}

void
conn_close_after_reply(struct conn *c)
{
	c->finishing = 1;
	set_pending(c, 0);
}

void
conn_queued(struct conn *c, int r)
{
	if (r != 0) {
		conn_log(c, "reply", "failed: %s; closing", sd_strerror(r));
		conn_close_later(c);
	}
}

void
conn_reply_error(struct conn *c)
{
	conn_queued(c, msg_put_empty_response(&c->out, RESP_ERROR));
	c->errors++;
	if (!c->known && c->errors > CONN_UNKNOWN_MAX_ERRORS) {
		conn_log(c, "limit", "too many invalid requests before registration; closing");
		conn_close_after_reply(c);  /* this 1607 still goes out */
	}
}

void
conn_touch(struct conn *c, const uint8_t id[CLIENT_ID_SIZE])
{
	int r = db_client_touch(c->env->db, id);

	if (r != 0 && r != SD_ERR_NOT_FOUND)
		conn_log(c, "lastseen", "failed: %s (%s)", sd_strerror(r),
		    db_errmsg(c->env->db));
	c->last_touch_ms = c->env->now_ms;
}

void
conn_set_identity(struct conn *c, const uint8_t id[CLIENT_ID_SIZE], const char *name,
    const uint8_t *key)
{
	if (!c->known || memcmp(c->id, id, CLIENT_ID_SIZE) != 0) {
		receive_abort(c);
		put_release(c);  /* kept for its owner (still c->id here), never moved to id */
		commit_discard(c);
		c->uploads_done = 0;
		c->awaiting_verdict = 0;
	}
	c->known = 1;
	memcpy(c->id, id, CLIENT_ID_SIZE);
	if (name != c->name)
		snprintf(c->name, sizeof(c->name), "%s", name);
	if (key == NULL) {
		c->has_key = 0;
		crypto_wipe(c->aes_key, sizeof(c->aes_key));
		return;
	}
	if (c->has_key && memcmp(c->aes_key, key, AES_KEY_SIZE) == 0)
		return;
	receive_abort(c);  /* a file under an older key cannot go on */
	memcpy(c->aes_key, key, AES_KEY_SIZE);
	c->has_key = 1;
}

void
conn_enter_v4(struct conn *c)
{
	/* What check_tls() does once a handshake is done, for tests that drive a connection
	 * without TLS. */
	receive_abort(c);
	c->v4 = 1;
	frame_init_v4(&c->parser, FRAME_REQUESTS);
}

/* A transport that ended in an error: its reason in the log (TLS says why), then closing. */
static void
transport_failed(struct conn *c)
{
	const char *why = c->tr.ops->failure(&c->tr);

	if (why != NULL)
		conn_log_end(c, "tls", "%s; closing", why);
	conn_close_later(c);
}

/* After each read: a transport that has just established TLS makes this a version-4
 * connection before any of its application bytes is parsed. */
static void
check_tls(struct conn *c)
{
	const char *fp = c->tr.ops->peer_key(&c->tr);

	if (fp == NULL)
		return;
	c->v4 = 1;
	frame_init_v4(&c->parser, FRAME_REQUESTS);
	c->last_rx_ms = c->env->now_ms;  /* a finished handshake is progress */
	handlers_v4_start(c, fp);
}

/* 1 while an 828's or 851's content is arriving (for a file or to be dropped). */
static int
streaming(const struct conn *c)
{
	if (c->v4)
		return put_in_chunk(c);
	return c->skip_content || (c->recv != NULL && receive_in_packet(c->recv));
}

/* Keeps the len bytes that follow a GET in the input just read until the download (or a
 * streamed LISTING) ends, or that follow a PUT_OPEN until its prefix is hashed (put_pump):
 * a request behind it must be answered after it. len <=
 * CONN_READ_CHUNK (one read's rest); nothing is held yet (held input is parsed before any
 * further read, and parsing stops again at the next GET). */
static void
hold(struct conn *c, const uint8_t *in, size_t len)
{
	if ((c->held = malloc(len)) == NULL) {
		conn_log_end(c, "connection", "out of memory for input behind a GET; closing");
		conn_close_later(c);
		return;
	}
	memcpy(c->held, in, len);
	c->held_len = len;
}

/* Hands every event that len bytes of input complete to the handlers; stops after a GET
 * (the rest is held, see hold()). */
static void
parse(struct conn *c, const uint8_t *in, size_t len)
{
	struct frame_event ev;
	size_t off = 0, used;
	int r;

	for (;;) {
		if ((r = frame_feed(&c->parser, in + off, len - off, &used, &ev)) != 0) {
			conn_log_end(c, "framing", "broken: %s; closing", sd_strerror(r));
			if (c->v4)  /* version 4 says why before it closes */
				handlers_v4_fail(c, V4_REASON_BAD_REQUEST, "bad frame");
			else
				conn_close_later(c);
			return;
		}
		off += used;
		if (ev.type != FRAME_NEED_MORE)
			c->retry_since_ms = 0;  /* a request after the 901: the resend came */
		switch (ev.type) {
		case FRAME_NEED_MORE:
			return;
		case FRAME_MESSAGE:
			if (c->v4)
				handlers_v4_message(c, &ev);
			else if (c->env->cfg->tls_creds != NULL &&
			    msg4_is_request_code(ev.header->code))
				handlers_v4_outside_tls(c, &ev);
			else
				handlers_message(c, &ev);
			break;
		case FRAME_STREAM_START:
		case FRAME_STREAM_DATA:
		case FRAME_STREAM_END:
			if (c->v4)
				handlers_v4_stream(c, &ev);
			else if (ev.type == FRAME_STREAM_START)
				receive_packet_start(c, &ev);
			else if (ev.type == FRAME_STREAM_DATA)
				receive_packet_data(c, &ev);
			else
				receive_packet_end(c, &ev);
			break;
		}
		if (c->closing || c->finishing)
			return;
		if (c->get != NULL || put_hashing(c)) {
			if (off < len)
				hold(c, in + off, len - off);
			return;
		}
	}
}

/* The reply that ends the connection is out: close, lingering unless the peer has closed its
 * side already (conn_close_after_reply). Everything the connection held for its requests goes
 * now, and its output buffer's storage: a lingering connection costs its struct only, the
 * bytes it drops go through the worker's read buffer. */
static void
finish(struct conn *c)
{
	int r;

	if (c->peer_eof || c->tr.ops->shutdown_write == NULL) {
		conn_close_later(c);
		return;
	}
	if ((r = c->tr.ops->shutdown_write(&c->tr)) == CONN_IO_AGAIN)
		return;  /* a TLS alert waits for the socket: conn_want() asks the transport */
	if (r != 0) {
		conn_close_later(c);
		return;
	}
	release(c);
	buf_free(&c->out);
	buf_init(&c->out, CONN_OUT_MAX);
	c->retry_since_ms = 0;
	c->lingering = 1;
	c->linger_until_ms = c->env->now_ms + CONN_LINGER_MS;
	c->linger_bytes = 0;
}

/* A lingering connection's input: read and dropped, a few reads per wake-up like any other
 * connection's; the peer's EOF (or a reset) ends it, and so does CONN_LINGER_BYTES. */
static void
drain(struct conn *c)
{
	ssize_t n;
	int i;

	for (i = 0; i < CONN_READS_PER_WAKE; i++) {
		n = c->tr.ops->read(&c->tr, c->env->rbuf, CONN_READ_CHUNK);
		if (n == CONN_IO_AGAIN)
			return;
		if (n <= 0) {  /* EOF: the peer has closed its side too; or it is gone */
			conn_close_later(c);
			return;
		}
		c->linger_bytes += (uint64_t)n;
		if (c->linger_bytes >= CONN_LINGER_BYTES) {
			conn_log_end(c, "connection", "lingering close: the peer sent %u MiB more "
			    "after the last reply; closing", CONN_LINGER_BYTES >> 20);
			conn_close_later(c);
			return;
		}
	}
}

/* After n bytes were parsed: the deadlines that depend on what is pending. */
static void
update_progress(struct conn *c, size_t n)
{
	int64_t now = c->env->now_ms;

	c->last_rx_ms = now;
	if (!frame_idle(&c->parser))
		c->retry_since_ms = 0;  /* the resend has begun */
	if (frame_idle(&c->parser) || streaming(c))
		c->partial_since_ms = 0;
	else if (c->partial_since_ms == 0)
		c->partial_since_ms = now;
	if (!streaming(c)) {
		c->stream_mark_ms = 0;
	} else if (c->stream_mark_ms == 0 ||
	    (c->stream_bytes += (uint64_t)n) >= CONN_STREAM_MIN_BYTES) {
		c->stream_mark_ms = now;
		c->stream_bytes = 0;
	}
}

void
conn_on_readable(struct conn *c)
{
	ssize_t n;
	int i;

	if (c->lingering) {
		drain(c);
		return;
	}
	for (i = 0; i < CONN_READS_PER_WAKE && !c->closing && !c->finishing; i++) {
		if (buf_len(&c->out) >= CONN_OUT_HIGH || c->get != NULL || put_hashing(c))
			break;  /* backpressure: the peer must read its replies (or download) first,
			         * or a resumed upload's prefix is being hashed */
		if (c->held_len > 0) {
			/* What followed a finished GET goes first, through the read buffer (which
			 * is free: every byte read is handled before the next read). */
			n = (ssize_t)c->held_len;
			memcpy(c->env->rbuf, c->held, c->held_len);
			drop_held(c);
			parse(c, c->env->rbuf, (size_t)n);
			update_progress(c, (size_t)n);
			continue;
		}
		n = c->tr.ops->read(&c->tr, c->env->rbuf, CONN_READ_CHUNK);
		if (!c->v4)
			check_tls(c);
		if (n == CONN_IO_EOF) {
			if (!frame_idle(&c->parser) || c->recv != NULL)
				conn_log_end(c, "connection", "closed by the peer mid-message");
			c->peer_eof = 1;
			/* A half-close after the last request still waits for its replies (1603,
			 * 1604): close once they are sent (conn_flush below). */
			conn_close_after_reply(c);
			break;
		}
		if (n < 0) {
			if (n != CONN_IO_AGAIN)
				transport_failed(c);
			break;
		}
		parse(c, c->env->rbuf, (size_t)n);
		update_progress(c, (size_t)n);
		/* A short read most likely emptied the socket; a transport that holds bytes of
		 * its own (TLS) says so, and is read on. */
		if ((size_t)n < CONN_READ_CHUNK && !c->tr.ops->pending(&c->tr))
			break;
	}
	if (!c->closing)
		conn_flush(c);
	/* Out of turns with input still held by the transport: epoll will not report it, so
	 * the loop comes back to this connection without waiting. Judged after the flush: output
	 * that drained at once must not leave read-ahead TLS records waiting for an event that
	 * never comes (the socket may be empty). */
	if (!c->closing)
		set_pending(c, !c->finishing && c->get == NULL && !put_hashing(c) &&
		    buf_len(&c->out) < CONN_OUT_HIGH &&
		    (c->held_len > 0 || c->tr.ops->pending(&c->tr)));
}

void
conn_flush(struct conn *c)
{
	ssize_t n;

	if (c->lingering)
		return;  /* the sending side is shut */
	while (buf_len(&c->out) > 0 && !c->closing) {
		n = c->tr.ops->write(&c->tr, buf_ptr(&c->out), buf_len(&c->out));
		if (n < 0) {
			if (n != CONN_IO_AGAIN)
				transport_failed(c);
			return;
		}
		(void)buf_skip(&c->out, (size_t)n);
		c->last_tx_ms = c->env->now_ms;
	}
	if (buf_len(&c->out) == 0) {
		buf_reset(&c->out);  /* reuse the storage from its start */
		if (c->finishing)
			finish(c);  /* the reply that ends the connection is out */
	} else if (c->out.off >= CONN_OUT_HIGH) {
		/* A slow reader: move what is left to a fresh buffer so the sent part does not
		 * count against the limit. */
		struct buf fresh;

		buf_init(&fresh, CONN_OUT_MAX);
		if (buf_put_bytes(&fresh, buf_ptr(&c->out), buf_len(&c->out)) != 0) {
			buf_free(&fresh);
			conn_close_later(c);
			return;
		}
		buf_free(&c->out);
		c->out = fresh;
	}
}

void
conn_on_writable(struct conn *c)
{
	if (c->lingering)
		return;  /* only reads are waited for */
	/* A TLS handshake step or record read may wait for the socket to take bytes: it goes
	 * on now (conn_on_readable flushes as well). */
	if (!c->finishing && (c->tr.ops->want(&c->tr) & CONN_WANT_WRITE)) {
		conn_on_readable(c);
		return;
	}
	conn_flush(c);
	if (c->get != NULL && !c->closing) {
		fetch_pump(c);  /* a download refills the output as it drains */
		conn_flush(c);
	}
	if (put_hashing(c) && !c->closing) {
		put_pump(c);  /* a slice of a resumed upload's prefix per turn */
		conn_flush(c);
	}
	/* Input the transport holds, or held behind a GET or a PUT_OPEN hashing its prefix, was
	 * left alone while output was backed up or that ran; epoll will not report it, so the
	 * loop must come back for it now. */
	if (!c->closing && !c->finishing && c->get == NULL && !put_hashing(c) &&
	    buf_len(&c->out) < CONN_OUT_HIGH && (c->held_len > 0 || c->tr.ops->pending(&c->tr)))
		set_pending(c, 1);
}

unsigned
conn_want(struct conn *c)
{
	size_t pending = buf_len(&c->out);
	unsigned want = 0;

	if (c->closing)
		return 0;
	if (c->lingering)
		return CONN_WANT_READ;  /* raw bytes to drop: the transport waits for nothing */
	if (c->finishing)  /* only the last reply goes out */
		return (pending > 0 ? CONN_WANT_WRITE : 0u) | c->tr.ops->want(&c->tr);
	/* Hysteresis: stop reading at CONN_OUT_HIGH, resume below half of it. */
	c->reading = c->get == NULL && !put_hashing(c) &&
	    (pending < CONN_OUT_HIGH / 2 || (c->reading && pending < CONN_OUT_HIGH));
	if (c->reading)
		want |= CONN_WANT_READ;
	/* A download goes on as soon as the transport takes it; a prefix being hashed on the
	 * next turn (a socket with room is writable at once). */
	if (pending > 0 || c->get != NULL || put_hashing(c))
		want |= CONN_WANT_WRITE;
	return want | c->tr.ops->want(&c->tr);
}

int
conn_retry_reply(struct conn *c, int64_t now)
{
	unsigned after = c->env->cfg->retry_reply_after_ms;

	if (c->closing || c->lingering || c->retry_since_ms == 0 || after == 0 ||
	    now - c->retry_since_ms < (int64_t)after || !c->known)
		return 0;
	c->retry_since_ms = 0;
	conn_log(c, "crc retry", "no resend within %u ms: 1604 (for clients that wait for a "
	    "reply to 901)", after);
	conn_queued(c, msg_put_client_id_response(&c->out, RESP_ACK, c->id));
	conn_flush(c);
	return 1;
}

int
conn_check_timeouts(struct conn *c, int64_t now)
{
	unsigned idle = c->env->cfg->idle_timeout;
	int64_t limit = (int64_t)idle * 1000;
	int64_t last = c->last_rx_ms > c->last_tx_ms ? c->last_rx_ms : c->last_tx_ms;

	if (c->closing)
		return 0;
	if (c->lingering) {
		if (now < c->linger_until_ms)
			return 0;
		conn_log_end(c, "connection", "lingering close: the peer neither closed nor stopped "
		    "sending within %d ms (%llu bytes dropped); closing", CONN_LINGER_MS,
		    (unsigned long long)c->linger_bytes);
		conn_close_later(c);
		return 1;
	}
	if (conn_retry_reply(c, now))
		return 0;
	if (put_check(c))
		return 1;  /* its upload was taken over: ERROR 8, closed */
	if (c->partial_since_ms != 0 && now - c->partial_since_ms >= limit) {
		/* Trickling a message byte by byte must not hold a connection forever. */
		conn_log_end(c, "connection", "timed out: a message took longer than %u s to "
		    "arrive", idle);
	} else if (c->stream_mark_ms != 0 && now - c->stream_mark_ms >= limit) {
		conn_log_end(c, "connection", "timed out: file content slower than %u KiB in "
		    "%u s", CONN_STREAM_MIN_BYTES >> 10, idle);
	} else if (receive_too_slow(c, now) || put_too_slow(c, now)) {
		conn_log_end(c, "limit", "upload too slow: below --min-upload-rate %u bytes/s on "
		    "average; closing", c->env->cfg->min_upload_rate);
	} else if (now - last >= limit) {
		conn_log_end(c, "connection", "timed out: no progress for %u s%s", idle,
		    frame_idle(&c->parser) ? "" : " in the middle of a message");
	} else {
		return 0;
	}
	conn_close_later(c);
	return 1;
}
