/* conn.h: one client connection: its frame parser, output buffer, the identity it has shown,
 * the upload in progress and its timers. conn.c moves bytes between the socket and the
 * parser and hands each event to handlers.c; handlers never free a connection, they mark it
 * closing (loop_mark_closing) and the loop reaps it. */
#ifndef SD_SERVER_CONN_H
#define SD_SERVER_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "../protocol/buf.h"
#include "../protocol/codes.h"
#include "../protocol/frame.h"
#include "storage.h"

struct worker;
struct upload;

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
#define CONN_PEER_MAX 64u
/* Request log lines per connection; past this a flood of bad requests cannot flood the log. */
#define CONN_LOG_MAX 200u

/* What the rest of the current 828 content is for. */
enum conn_stream {
	CONN_STREAM_NONE = 0,  /* no 828 content pending */
	CONN_STREAM_UPLOAD,    /* content goes to the reassembler and the temporary file */
	CONN_STREAM_SKIP,      /* refused packet: content is read and dropped, 1607 at its end */
};

struct conn {
	struct conn *prev, *next;  /* the worker's list */
	struct worker *w;
	int fd;
	char peer[CONN_PEER_MAX];  /* "address:port" */
	int closing;
	unsigned errors;           /* 1607 replies sent */
	unsigned logged;           /* request log lines written for this connection */
	uint32_t events;           /* epoll interest now registered */
	int64_t last_rx_ms;        /* last byte received */
	int64_t last_tx_ms;        /* last byte sent, or when output started waiting */
	int64_t partial_since_ms;  /* a header or small message began and is not complete
	                            * yet (0: none); a slow sender gets the idle timeout for
	                            * the whole message, not per byte */
	int64_t stream_mark_ms;    /* an 828's content: when it last delivered
	                            * CONN_STREAM_MIN_BYTES (0: no content streaming) */
	uint64_t stream_bytes;     /* content bytes since stream_mark_ms */

	struct frame_parser parser;
	struct buf out;            /* replies waiting for the socket */

	/* Identity shown on this connection (825/826/827 or an 828 under a stored key). */
	int known;
	uint8_t id[CLIENT_ID_SIZE];
	char name[NAME_FIELD_SIZE];
	int has_key;                    /* an AES key was issued to id (here or stored) */
	uint8_t aes_key[AES_KEY_SIZE];  /* the key the reassembler uses; wiped on free */
	int64_t last_touch_ms;          /* LastSeen written for intermediate packets at most 1/s */

	/* The upload. */
	struct upload *up;              /* only while an upload is in progress; its owner is id
	                                 * (a change of identity aborts it) */
	struct storage_file sf;
	int storing;                    /* sf holds an open temporary file */
	enum conn_stream stream;
	int uploads_done;               /* completed uploads: 900/901/902 need one */
	char last_file[NAME_FIELD_SIZE];  /* the file named in the last 1603 (as sent) */
	char attempt_file[NAME_FIELD_SIZE];  /* the file of the upload in progress (as sent) */
	int awaiting_verdict;           /* 1603 sent, no 900/902 yet */
	unsigned corrupt_left;          /* --test-corrupt-crc replies still to corrupt */
};

/* A connection over an accepted non-blocking socket fd (taken over: conn_free closes it).
 * NULL when out of memory (fd is then left open for the caller). */
struct conn *conn_new(struct worker *w, int fd, const char *peer);
/* Aborts an upload in progress (its temporary file is removed), closes the socket, wipes the
 * key and frees; accepts NULL. The caller unlinks c from its worker first. */
void conn_free(struct conn *c);

/* The socket is readable (or hung up): read, parse, handle. Marks c closing on EOF, socket
 * errors or broken framing. */
void conn_on_readable(struct conn *c);
/* The socket is writable: send pending output. */
void conn_on_writable(struct conn *c);
/* Sends what output it can now without blocking. */
void conn_flush(struct conn *c);

/* 1 while c has work a graceful stop should wait for: a message or upload half received,
 * a file received but not yet confirmed, or replies not yet sent. */
int conn_busy(const struct conn *c);

/* Drops the upload in progress and removes its temporary file. */
void conn_abort_upload(struct conn *c);

#endif
