/* conn.h: one client connection: its transport, frame parser, output buffer, the identity it
 * has shown, the file it is receiving and its deadlines. conn.c moves bytes between the
 * transport and the parser and hands each event to handlers.c (small messages) or receive.c
 * (828 packets). Nobody frees a connection while it runs: conn_close_later() marks it and the
 * loop that owns it reaps it after the current batch. The loop knows nothing else of it: it
 * calls conn_on_readable/conn_on_writable on readiness, conn_want() for what to poll, and
 * conn_check_timeouts() on its tick. */
#ifndef SD_SERVER_CONN_H
#define SD_SERVER_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../protocol/buf.h"
#include "../protocol/codes.h"
#include "../protocol/frame.h"
#include "../protocol/tls.h"

struct commit_staged;
struct db;
struct fetch;
struct put;
struct receive;
struct server_config;

/* Output backpressure: stop reading while this much output waits, resume below half. One
 * read chunk never produces more output than its own size (every reply is shorter than the
 * request it answers), so the buffer's hard limit is never reached. */
#define CONN_OUT_HIGH 65536u
/* An 828's content must deliver at least this much per idle-timeout period: a sender that
 * trickles a huge announced payload cannot hold a connection slot forever. */
#define CONN_STREAM_MIN_BYTES (64u << 10)
#define CONN_OUT_MAX (CONN_OUT_HIGH + 4u * 65536u)
/* Reads per wake-up, so that one fast sender does not starve the others of its worker. */
#define CONN_READS_PER_WAKE 4
/* Bytes read from the transport per call; the read buffer (env->rbuf) is shared by a
 * worker's connections because every byte read is handled before the next one is served. */
#define CONN_READ_CHUNK 65536u
#define CONN_PEER_MAX 64u
/* Request log lines per connection; past this a flood of bad requests cannot flood the log. */
#define CONN_LOG_MAX 200u
/* The lingering close after a final reply (an error that ends the connection): the sending
 * side is shut and whatever the peer still sends is read and dropped until it closes too, for
 * at most this long and this many bytes, whichever comes first; then the socket closes. A
 * close() with unread input makes the kernel answer with a reset, and the peer's kernel may
 * then discard the reply before its application reads it (or its next write fails first). The
 * byte bound covers what a client streaming a file has in flight when the reply comes (its
 * send buffer and our receive buffer: a few MiB each at Linux's defaults). */
#define CONN_LINGER_MS 2000
#define CONN_LINGER_BYTES (16u << 20)

/* What a connection needs from the thread that runs it. The worker owns it (tests fill one
 * by hand, with a clock they move themselves); connections only read it, except nclosing. */
struct conn_env {
	const struct server_config *cfg;
	struct db *db;          /* this thread's SQLite connection */
	int index;              /* worker number for the log */
	int64_t now_ms;         /* monotonic time of the current loop turn */
	uint8_t *rbuf;          /* CONN_READ_CHUNK bytes, shared by the thread's connections */
	size_t nclosing;        /* connections marked closing and not reaped yet */
	size_t npending;        /* connections whose transport holds input epoll cannot see */
};

/* conn_want() and a transport's want(): what to wait for. */
#define CONN_WANT_READ 1u
#define CONN_WANT_WRITE 2u

/* Results of a transport's read and write besides a byte count (> 0). */
#define CONN_IO_EOF 0            /* read: the peer closed its side */
#define CONN_IO_AGAIN (-1)       /* nothing now: wait for what want() says */
#define CONN_IO_ERROR (-2)       /* the transport is broken: close */

/* The byte pipe under the frame parser. The plain socket is the only one in version 3;
 * version 4 adds TLS (GnuTLS, non-blocking), which is why a transport says itself what it
 * waits for (a TLS read may need the socket writable) and whether it still holds bytes it
 * has already taken off the socket (epoll does not signal those). */
struct conn_transport;

struct conn_transport_ops {
	/* Up to cap bytes into buf: their count, CONN_IO_EOF, CONN_IO_AGAIN or CONN_IO_ERROR. */
	ssize_t (*read)(struct conn_transport *t, uint8_t *buf, size_t cap);
	/* Up to len bytes of buf: the count sent (> 0), CONN_IO_AGAIN or CONN_IO_ERROR. */
	ssize_t (*write)(struct conn_transport *t, const uint8_t *buf, size_t len);
	/* CONN_WANT_* the transport needs on top of the connection's own wishes (a TLS
	 * handshake or renegotiation); 0 for a plain socket. */
	unsigned (*want)(struct conn_transport *t);
	/* 1 when read() has bytes ready without waiting for the socket. */
	int (*pending)(struct conn_transport *t);
	/* Ends the transport and closes its socket. */
	void (*close)(struct conn_transport *t);
	/* The peer's key fingerprint once a TLS session is established (the connection then
	 * speaks version 4); NULL for a plain socket or before the handshake completed. */
	const char *(*peer_key)(struct conn_transport *t);
	/* Why read() or write() last answered CONN_IO_ERROR, for the log; NULL when there is
	 * nothing to say (a plain socket's errors are the peer's resets). */
	const char *(*failure)(struct conn_transport *t);
	/* For the lingering close, once the last reply is written: ends the sending side (TLS:
	 * close_notify, then the session is gone) and shuts the socket's (SHUT_WR). 0 when done:
	 * read() from then on returns the raw bytes that still arrive, not decoded, to be dropped;
	 * CONN_IO_AGAIN: call again when want() says (a TLS alert the socket did not take);
	 * CONN_IO_ERROR: close at once. NULL: the transport has no lingering close (in-memory
	 * transports of tests): the connection closes at once. */
	int (*shutdown_write)(struct conn_transport *t);
};

struct conn_transport {
	const struct conn_transport_ops *ops;
	int fd;                    /* the socket the loop polls */
	void *ctx;                 /* the implementation's state (NULL for a plain socket) */
};

/* The plain-socket transport over a non-blocking socket fd (taken over: close() closes it). */
void conn_transport_plain(struct conn_transport *t, int fd);

struct conn {
	struct conn *prev, *next;  /* the owner's list (the loop's) */
	struct conn_env *env;
	struct conn_transport tr;
	char peer[CONN_PEER_MAX];  /* "address:port" */
	int closing;
	int reading;               /* reads are wanted (backpressure hysteresis) */
	int more_pending;          /* counted in env->npending: read again without an event */
	uint32_t events;           /* owned by the loop: the interest it registered */
	unsigned errors;           /* 1607 replies sent */
	unsigned logged;           /* request log lines written for this connection */
	int64_t last_rx_ms;        /* last byte received */
	int64_t last_tx_ms;        /* last byte sent, or when output started waiting */
	int64_t partial_since_ms;  /* a header or small message began and is not complete
	                            * yet (0: none); a slow sender gets the idle timeout for
	                            * the whole message, not per byte */
	int64_t stream_mark_ms;    /* an 828's content: when it last delivered
	                            * CONN_STREAM_MIN_BYTES (0: no content streaming) */
	uint64_t stream_bytes;     /* content bytes since stream_mark_ms */

	struct frame_parser parser;
	struct buf out;            /* replies waiting for the transport */

	/* Identity shown on this connection (825/826/827 or an 828 under a stored key). */
	int known;
	uint8_t id[CLIENT_ID_SIZE];
	char name[NAME_FIELD_SIZE];
	int has_key;                    /* an AES key was issued to id (here or stored) */
	uint8_t aes_key[AES_KEY_SIZE];  /* the one copy of the session key; wiped on free */
	int64_t last_touch_ms;          /* LastSeen written for intermediate packets at most 1/s */

	/* Receiving files. */
	struct receive *recv;           /* the file being received (NULL: none); its owner is
	                                 * id, a change of identity or key aborts it */
	int skip_content;               /* a refused 828: its content is dropped as it arrives,
	                                 * 1607 at its end */
	int refused;                    /* an attempt was refused: its later packets (same ID
	                                 * and name, not a first packet) are skipped unlogged */
	uint8_t refused_id[CLIENT_ID_SIZE];
	char refused_file[NAME_FIELD_SIZE];
	struct commit_staged *staged;   /* the last file received, fsynced under its temporary
	                                 * name until its verdict (commit.h); NULL: none */
	int uploads_done;               /* completed uploads: 900/901/902 need one */
	char last_file[NAME_FIELD_SIZE];  /* the file named in the last 1603 (as sent) */
	int awaiting_verdict;           /* 1603 sent, no 900/902 yet */
	int verdict_failed;             /* the last verdict's publishing failed (1607): a repeated
	                                 * verdict is not answered from the older row */
	int64_t retry_since_ms;         /* a 901 ended the input at this time (0: no); with
	                                 * nothing after it for --retry-reply-after, 1604 */
	unsigned corrupt_left;          /* --test-corrupt-crc replies still to corrupt */

	/* Version 4 (handlers_v4.c): a TLS connection, from its finished handshake on. Its
	 * identity (known, id, name above) is the account WELCOME named. */
	int v4;                         /* the parser is in version-4 mode */
	char fingerprint[TLS_FP_TEXT_SIZE];  /* the client certificate's */
	int challenge_set;              /* a CHALLENGE is outstanding: one PROVE may use it */
	uint8_t challenge_id[CLIENT_ID_SIZE];       /* the account LINK named */
	uint8_t challenge_nonce[V4_NONCE_SIZE];     /* wiped when used and on free */
	int finishing;                  /* the reply that ends the connection is queued: read
	                                 * nothing more, close once it is sent */
	int peer_eof;                   /* the peer shut its side: nothing to linger for */
	int lingering;                  /* the final reply is out and the sending side shut:
	                                 * input is dropped (CONN_LINGER_*); everything else of
	                                 * the connection is released already */
	int64_t linger_until_ms;
	uint64_t linger_bytes;          /* dropped so far */
	struct put *put;                /* the upload in progress (put.h), NULL: none */
	struct fetch *get;              /* the download or LISTING being streamed (fetch.h),
	                                 * NULL: none */
	uint8_t *held;                  /* input read after a GET in the same read, parsed once
	                                 * the download (or streamed LISTING) ended: replies stay
	                                 * in order; at most CONN_READ_CHUNK bytes, NULL when none
	                                 * (owned; wiped and freed when parsed) */
	size_t held_len;
};

/* A connection over transport t (taken over: conn_free closes it), living in env.
 * NULL when out of memory (t is then left open for the caller). */
struct conn *conn_new(struct conn_env *env, const struct conn_transport *t, const char *peer);
/* Aborts a file being received (its temporary file is removed), closes the transport, wipes
 * the key and frees; accepts NULL. The caller unlinks c from its list first. */
void conn_free(struct conn *c);

/* The transport is readable (or hung up): read, parse, handle. Marks c closing on transport
 * errors or broken framing; on EOF (the peer shut its side) once the replies queued so far
 * are sent (reading stops; --idle-timeout bounds a peer that does not read them). While
 * lingering: reads into the worker's read buffer and drops, closing at the peer's EOF or
 * past CONN_LINGER_BYTES. */
void conn_on_readable(struct conn *c);
/* The transport is writable: send pending output. */
void conn_on_writable(struct conn *c);
/* Sends what output it can now without blocking. */
void conn_flush(struct conn *c);
/* CONN_WANT_* the loop should wait for now (0 once closing): reading unless output is
 * backed up, writing while output is pending, plus what the transport needs; only reading
 * while lingering. */
unsigned conn_want(struct conn *c);

/* Marks c closing (idempotent); its owner frees it after the current batch. */
void conn_close_later(struct conn *c);
/* Stops reading from c and closes it once the replies queued so far are sent (an ERROR
 * that ends a version-4 connection, a 1607 that ends a version-3 one); a peer that does not
 * read them meets the idle timeout. The close lingers (CONN_LINGER_*) unless the peer has
 * closed its side already: input still arriving is dropped, so that the kernel does not
 * answer it with a reset that could cost the peer the reply. A lingering connection still
 * counts against --max-connections. */
void conn_close_after_reply(struct conn *c);
/* Closes c (with a log line) if one of its deadlines passed at now (monotonic ms):
 * no progress for --idle-timeout, a message not complete within it, or file content slower
 * than CONN_STREAM_MIN_BYTES per period; while lingering only CONN_LINGER_MS counts. 1 when
 * it did. */
int conn_check_timeouts(struct conn *c, int64_t now);

/* After a 901 with no byte following it for cfg->retry_reply_after_ms: one 1604, which
 * releases the clients that wait for a reply to 901 before they resend (SPEC.md says 901 gets
 * none; clients that resend at once never see it). 1 when it was sent. */
int conn_retry_reply(struct conn *c, int64_t now);

/* 1 while c has work a graceful stop should wait for: a message or file half received, a
 * file received but not yet confirmed, or replies not yet sent. */
int conn_busy(const struct conn *c);

/* Makes id (named name) the connection's identity with key as its session key (NULL: none
 * issued). A change of identity forgets its uploads and releases a version-4 upload to its
 * owner (put_release); a change of identity or key aborts the file being received. */
void conn_set_identity(struct conn *c, const uint8_t id[CLIENT_ID_SIZE], const char *name,
    const uint8_t *key);
/* Switches c to version 4 (after the TLS handshake): the version-4 frame parser, whose
 * PUT_DATA limit follows the max_chunk this server announces, and the transfer requests. */
void conn_enter_v4(struct conn *c);

/* Writes LastSeen of client id now (errors are logged, not fatal). */
void conn_touch(struct conn *c, const uint8_t id[CLIENT_ID_SIZE]);

/* Replies. conn_queued(c, r) takes the result of putting a reply into c->out: a reply that
 * does not fit means the peer does not read while it keeps sending; that cannot happen with
 * backpressure, so it closes. conn_reply_error() queues 1607, and closes a connection that
 * sent too many bad requests before it was known once that 1607 is sent. */
void conn_queued(struct conn *c, int r);
void conn_reply_error(struct conn *c);

/* Log lines about this connection: conn_log is about its own client (or "-" before one is
 * known), conn_log_as about the client a request names. Both stop after CONN_LOG_MAX lines,
 * so that a flood of bad requests cannot flood the log; conn_log_end is for the one line that
 * ends a connection and is never capped. */
void conn_log(struct conn *c, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void conn_log_as(struct conn *c, const uint8_t *id, const char *name, const char *event,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void conn_log_end(struct conn *c, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
