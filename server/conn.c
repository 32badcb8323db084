/* conn.c: one client connection: bytes from the socket go through the frame parser to the
 * handlers; replies wait in a bounded output buffer and go out as the socket accepts them. */
#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../protocol/aes.h"
#include "../protocol/crypto.h"
#include "../protocol/err.h"
#include "handlers.h"
#include "log.h"
#include "loop.h"
#include "upload.h"

/* Largest file-packet payload the parser lets through: the reassembler checks the exact
 * sizes; this only keeps absurd claims out before a byte of content is read. A fixed-size
 * sender may zero-fill its last packet past the ciphertext, hence the slack. */
#define CONN_STREAM_SLACK (1024u * 1024u)

struct conn *
conn_new(struct worker *w, int fd, const char *peer)
{
	struct conn *c;
	uint64_t max;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->w = w;
	c->fd = fd;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	c->last_rx_ms = w->now_ms;
	c->last_tx_ms = w->now_ms;
	frame_init(&c->parser, FRAME_REQUESTS);
	max = (uint64_t)FILE_PACKET_HEADER_SIZE +
	    aes_cbc_ciphertext_size(w->cfg->max_file_size) + CONN_STREAM_SLACK;
	c->parser.max_stream_payload = max > FILE_PAYLOAD_MAX ? FILE_PAYLOAD_MAX :
	    (uint32_t)max;
	buf_init(&c->out, CONN_OUT_MAX);
	c->sf.fd = -1;
	c->sf.dir_fd = -1;
	c->corrupt_left = w->cfg->test_corrupt_crc;
	return c;
}

void
conn_abort_upload(struct conn *c)
{
	/* The reassembler (with its 64 KiB buffer) exists only while an upload is in progress,
	 * so that idle connections stay small. */
	upload_free(c->up);
	c->up = NULL;
	if (c->storing) {
		storage_abort(&c->sf);
		c->storing = 0;
	}
}

void
conn_free(struct conn *c)
{
	if (c == NULL)
		return;
	if (c->storing || (c->up != NULL && upload_in_progress(c->up)))
		log_event(c->w->index, c->peer, c->known ? c->id : NULL,
		    c->known ? c->name : NULL, "send file", "aborted: connection closed "
		    "mid-upload; partial file removed");
	conn_abort_upload(c);
	if (c->fd >= 0)
		close(c->fd);
	buf_free(&c->out);
	crypto_wipe(c->aes_key, sizeof(c->aes_key));
	crypto_wipe(&c->parser, sizeof(c->parser));
	free(c);
}

int
conn_busy(const struct conn *c)
{
	return !frame_idle(&c->parser) || c->storing ||
	    (c->up != NULL && upload_in_progress(c->up)) || c->awaiting_verdict ||
	    buf_len(&c->out) > 0;
}

/* Hands every event that len bytes of input complete to the handlers. */
static void
parse(struct conn *c, const uint8_t *in, size_t len)
{
	struct frame_event ev;
	size_t off = 0, used;
	int r;

	for (;;) {
		if ((r = frame_feed(&c->parser, in + off, len - off, &used, &ev)) != 0) {
			log_event(c->w->index, c->peer, c->known ? c->id : NULL,
			    c->known ? c->name : NULL, "framing",
			    "broken: %s; closing", sd_strerror(r));
			loop_mark_closing(c);
			return;
		}
		off += used;
		switch (ev.type) {
		case FRAME_NEED_MORE:
			return;
		case FRAME_MESSAGE:
			handle_message(c, &ev);
			break;
		case FRAME_STREAM_START:
			handle_stream_start(c, &ev);
			break;
		case FRAME_STREAM_DATA:
			handle_stream_data(c, &ev);
			break;
		case FRAME_STREAM_END:
			handle_stream_end(c, &ev);
			break;
		}
		if (c->closing)
			return;
	}
}

void
conn_on_readable(struct conn *c)
{
	ssize_t n;
	int i;

	for (i = 0; i < CONN_READS_PER_WAKE && !c->closing; i++) {
		if (buf_len(&c->out) >= CONN_OUT_HIGH)
			break;  /* backpressure: the peer must read its replies first */
		n = recv(c->fd, c->w->rbuf, LOOP_READ_CHUNK, 0);
		if (n == 0) {
			if (!frame_idle(&c->parser) || c->storing)
				log_event(c->w->index, c->peer, c->known ? c->id : NULL,
				    c->known ? c->name : NULL, "connection",
				    "closed by the peer mid-message");
			loop_mark_closing(c);
			break;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				loop_mark_closing(c);
			break;
		}
		c->last_rx_ms = c->w->now_ms;
		parse(c, c->w->rbuf, (size_t)n);
		if (frame_idle(&c->parser) || c->stream != CONN_STREAM_NONE)
			c->partial_since_ms = 0;
		else if (c->partial_since_ms == 0)
			c->partial_since_ms = c->w->now_ms;
		if (c->stream == CONN_STREAM_NONE) {
			c->stream_mark_ms = 0;
		} else if (c->stream_mark_ms == 0 ||
		    (c->stream_bytes += (uint64_t)n) >= CONN_STREAM_MIN_BYTES) {
			c->stream_mark_ms = c->w->now_ms;
			c->stream_bytes = 0;
		}
		if ((size_t)n < LOOP_READ_CHUNK)
			break;  /* the socket is most likely empty now */
	}
	if (!c->closing) {
		conn_flush(c);
		loop_update_interest(c);
	}
}

void
conn_flush(struct conn *c)
{
	ssize_t n;

	while (buf_len(&c->out) > 0 && !c->closing) {
		n = send(c->fd, buf_ptr(&c->out), buf_len(&c->out), MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				loop_mark_closing(c);
			return;
		}
		(void)buf_skip(&c->out, (size_t)n);
		c->last_tx_ms = c->w->now_ms;
	}
	if (buf_len(&c->out) == 0) {
		buf_reset(&c->out);  /* reuse the storage from its start */
	} else if (c->out.off >= CONN_OUT_HIGH) {
		/* A slow reader: move what is left to a fresh buffer so the sent part does not
		 * count against the limit. */
		struct buf fresh;

		buf_init(&fresh, CONN_OUT_MAX);
		if (buf_put_bytes(&fresh, buf_ptr(&c->out), buf_len(&c->out)) != 0) {
			buf_free(&fresh);
			loop_mark_closing(c);
			return;
		}
		buf_free(&c->out);
		c->out = fresh;
	}
}

void
conn_on_writable(struct conn *c)
{
	conn_flush(c);
	if (!c->closing)
		loop_update_interest(c);
}
