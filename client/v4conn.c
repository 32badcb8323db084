/* v4conn.c: the client's version-4 connection: the socket from net.c, a TLS session from
 * protocol/tls.c driven with poll() deadlines, and the response framing of SPEC-v4.md 2. */
#include "v4conn.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../protocol/codes.h"
#include "../protocol/err.h"
#include "net.h"

struct v4conn {
	int fd;
	int timeout_ms;
	struct tls_session *tls;
	uint64_t bytes_out;
	struct frame_parser parser;    /* version-4 responses */
	struct buf payload;            /* a streamed response, gathered (grown as bytes arrive) */
	uint8_t in[V4CONN_READ_CHUNK]; /* decrypted bytes not yet framed */
	size_t in_off;
	size_t in_len;
};

/* Waits until the socket is ready for what the TLS call wants; 0 or SD_ERR_IO (ETIMEDOUT). */
static int
wait_for(struct v4conn *c, int want, long long deadline)
{
	return net_wait_fd(c->fd, want == SD_ERR_WANT_WRITE ? POLLOUT : POLLIN, deadline);
}

static void
conn_free(struct v4conn *c)
{
	if (c == NULL)
		return;
	tls_session_free(c->tls);
	if (c->fd >= 0)
		close(c->fd);
	buf_free(&c->payload);
	memset(c->in, 0, sizeof(c->in));
	free(c);
}

int
v4conn_open(const struct v4conn_config *cfg, struct v4conn **out, char *presented_fp,
    int *tcp_connected, char *why, size_t why_cap)
{
	struct v4conn *c = NULL;
	long long deadline;
	int r;

	if (cfg == NULL || out == NULL || cfg->creds == NULL)
		return SD_ERR_INVALID_ARG;
	*out = NULL;
	*tcp_connected = 0;
	if (presented_fp != NULL)
		presented_fp[0] = '\0';
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return SD_ERR_ALLOC;
	c->fd = -1;
	c->timeout_ms = cfg->timeout_ms;
	buf_init(&c->payload, V4CONN_LISTING_MAX);
	frame_init_v4(&c->parser, FRAME_RESPONSES);
	if ((r = net_connect(cfg->host, cfg->port, cfg->connect_timeout_ms, &c->fd, why,
	    why_cap)) != 0)
		goto out;
	*tcp_connected = 1;
	if ((r = tls_client_new(cfg->creds, c->fd, cfg->expected_fp, &c->tls)) != 0) {
		snprintf(why, why_cap, "cannot start TLS: %s", sd_strerror(r));
		goto out;
	}
	deadline = net_now_ms() + (cfg->handshake_timeout_ms > 0 ? cfg->handshake_timeout_ms :
	    cfg->timeout_ms);
	for (;;) {
		r = tls_handshake(c->tls);
		if (r != SD_ERR_WANT_READ && r != SD_ERR_WANT_WRITE)
			break;
		if ((r = wait_for(c, r, deadline)) != 0) {
			snprintf(why, why_cap, "the TLS handshake with %s port %s timed out",
			    cfg->host, cfg->port);
			goto out;
		}
	}
	if (r == SD_ERR_PEER_KEY && presented_fp != NULL)
		snprintf(presented_fp, TLS_FP_TEXT_SIZE, "%s", tls_peer_fingerprint(c->tls));
	if (r != 0) {
		snprintf(why, why_cap, "TLS handshake with %s port %s: %s", cfg->host, cfg->port,
		    sd_strerror(r));
		goto out;
	}
	/* A chunk of the file goes out in a few large send() calls, not one per record: half
	 * the system calls of an upload, and larger TCP segments for the server to take. */
	if ((r = tls_batch_writes(c->tls)) != 0) {
		snprintf(why, why_cap, "cannot start TLS: %s", sd_strerror(r));
		goto out;
	}
	*out = c;
	c = NULL;
	r = 0;
out:
	conn_free(c);
	return r;
}

void
v4conn_close(struct v4conn *c)
{
	if (c == NULL)
		return;
	/* close_notify if it goes out now; a closing client never waits for it. */
	if (c->tls != NULL)
		(void)tls_bye(c->tls);
	conn_free(c);
}

const char *
v4conn_peer_fingerprint(const struct v4conn *c)
{
	return c != NULL && c->tls != NULL ? tls_peer_fingerprint(c->tls) : "";
}

void
v4conn_describe(const struct v4conn *c, char *out, size_t cap)
{
	if (cap == 0)
		return;
	out[0] = '\0';
	if (c != NULL && c->tls != NULL)
		tls_describe(c->tls, out, cap);
}

uint64_t
v4conn_bytes_out(const struct v4conn *c)
{
	return c != NULL ? c->bytes_out : 0;
}

/* Hands len bytes to the session, which batches them into records (tls_batch_writes());
 * flush() sends what is left. */
static int
write_some(struct v4conn *c, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t sent;
	long long deadline = net_now_ms() + c->timeout_ms;
	int r;

	while (len > 0) {
		r = tls_write(c->tls, p, len, &sent);
		if (r == SD_ERR_WANT_READ || r == SD_ERR_WANT_WRITE) {
			if ((r = wait_for(c, r, deadline)) != 0)
				return r;
			continue;
		}
		if (r != 0)
			return r;
		/* Progress: the deadline is for a stall, not for the whole write. */
		deadline = net_now_ms() + c->timeout_ms;
		p += sent;
		len -= sent;
		c->bytes_out += sent;
	}
	return 0;
}

static int
flush(struct v4conn *c)
{
	long long deadline = net_now_ms() + c->timeout_ms;
	size_t before = tls_unsent(c->tls);
	int r;

	while ((r = tls_flush(c->tls)) == SD_ERR_WANT_WRITE) {
		if (tls_unsent(c->tls) < before) {
			before = tls_unsent(c->tls);
			deadline = net_now_ms() + c->timeout_ms;
		}
		if ((r = wait_for(c, r, deadline)) != 0)
			return r;
	}
	return r;
}

int
v4conn_write(struct v4conn *c, const void *data, size_t len)
{
	int r;

	if ((r = write_some(c, data, len)) != 0)
		return r;
	return flush(c);
}

int
v4conn_write2(struct v4conn *c, const void *a, size_t a_len, const void *b, size_t b_len)
{
	int r;

	if (a_len > 0 && (r = write_some(c, a, a_len)) != 0)
		return r;
	if (b_len > 0 && (r = write_some(c, b, b_len)) != 0)
		return r;
	return flush(c);
}

/* Reads more decrypted bytes into c->in (which must be empty). */
static int
fill(struct v4conn *c)
{
	long long deadline = net_now_ms() + c->timeout_ms;
	size_t got;
	int r;

	c->in_off = c->in_len = 0;
	for (;;) {
		r = tls_read(c->tls, c->in, sizeof(c->in), &got);
		if (r == SD_ERR_WANT_READ || r == SD_ERR_WANT_WRITE) {
			if ((r = wait_for(c, r, deadline)) != 0)
				return r;
			continue;
		}
		if (r != 0)
			return r;
		c->in_len = got;
		return 0;
	}
}

int
v4conn_read_response(struct v4conn *c, uint16_t *code, const uint8_t **p, size_t *n)
{
	struct frame_event ev;
	size_t used;
	int r;

	*code = 0;
	*p = NULL;
	*n = 0;
	for (;;) {
		/* Fed even with no bytes: a streamed message reports its end on the call after
		 * its last data. */
		r = frame_feed(&c->parser, c->in + c->in_off, c->in_len - c->in_off, &used, &ev);
		c->in_off += used;
		if (r != 0)
			return r;
		if (ev.type == FRAME_NEED_MORE) {
			if (c->in_off == c->in_len && (r = fill(c)) != 0)
				return r;
			continue;
		}
		if (ev.header->version != PROTO_VERSION_4)
			return SD_ERR_BAD_FIELD;
		switch (ev.type) {
		case FRAME_MESSAGE:
			/* Points into the parser: valid until the next feed. */
			*code = ev.header->code;
			*p = ev.data;
			*n = ev.len;
			return 0;
		case FRAME_STREAM_START:
			buf_reset(&c->payload);
			/* fall through */
		case FRAME_STREAM_DATA:
			if ((r = buf_put_bytes(&c->payload, ev.data, ev.len)) != 0)
				return r == SD_ERR_FULL ? SD_ERR_TOO_LARGE : r;
			break;
		case FRAME_STREAM_END:
			*code = ev.header->code;
			*p = buf_ptr(&c->payload);
			*n = buf_len(&c->payload);
			return 0;
		default:
			return SD_ERR_INTERNAL;
		}
	}
}

int
v4conn_readable(struct v4conn *c, int timeout_ms)
{
	if (c->in_off < c->in_len || tls_pending(c->tls) > 0)
		return 1;
	return net_wait_readable(c->fd, timeout_ms);
}
