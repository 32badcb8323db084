/* frame.h: the incremental frame parser. No sockets: feed it any slice of bytes (one byte at a
 * time or megabytes) and it reports, one event per call, what the bytes completed.
 *
 * Small messages (every code but 828) are buffered inside the parser, at most
 * FRAME_SMALL_PAYLOAD_MAX bytes, and delivered whole as FRAME_MESSAGE. An 828 is streamed: the
 * parser buffers its 267-byte packet header and reports FRAME_STREAM_START, then the content
 * as FRAME_STREAM_DATA slices pointing into the caller's input (zero copy), then
 * FRAME_STREAM_END. An 828 whose payload is shorter than 267 bytes is delivered as a
 * FRAME_MESSAGE (the decoder then rejects it). Every size is checked against its limit as
 * soon as the header is complete, before any byte of payload is accepted. */
#ifndef SD_FRAME_H
#define SD_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "codes.h"
#include "msg.h"

enum frame_direction {
	FRAME_REQUESTS,   /* 23-byte request headers (the server side) */
	FRAME_RESPONSES,  /* 7-byte response headers (the client side) */
};

enum frame_event_type {
	FRAME_NEED_MORE = 0,  /* all input consumed, no event completed */
	FRAME_MESSAGE,        /* header + whole payload (data, len) */
	FRAME_STREAM_START,   /* 828: header + its 267-byte packet header (data, len = 267) */
	FRAME_STREAM_DATA,    /* 828: a slice of content (data, len), pointing into the input */
	FRAME_STREAM_END,     /* 828: content complete */
};

struct frame_event {
	enum frame_event_type type;
	const struct msg_header *header;  /* valid for every event but FRAME_NEED_MORE */
	const uint8_t *data;
	size_t len;
};

struct frame_parser {
	enum frame_direction dir;
	uint32_t max_stream_payload;  /* limit on an 828 payload (default FILE_PAYLOAD_MAX) */
	int state;                    /* private */
	size_t have;                  /* private: bytes gathered of header or small payload */
	uint64_t remaining;           /* private: payload bytes still to come */
	struct msg_header header;
	uint8_t head[MAX_HEADER_SIZE];
	uint8_t small[FRAME_SMALL_PAYLOAD_MAX];
};

void frame_init(struct frame_parser *p, enum frame_direction dir);

/* Consumes a prefix of in[0..len) and sets *used to its size; fills *ev.
 * Returns 0 (see ev->type) or a negative sd_err: SD_ERR_TOO_LARGE (a payload size over its
 * limit) or SD_ERR_UNKNOWN_CODE (a response code outside 1600-1607 on the client side).
 * Unknown request codes are not an error here: their payload (if small) is delivered as a
 * FRAME_MESSAGE so the server can answer 1607 and go on. After an error the parser stays in
 * error: framing is lost, close the connection.
 * Call again while *used < len or the event was not FRAME_NEED_MORE. */
int frame_feed(struct frame_parser *p, const uint8_t *in, size_t len, size_t *used,
    struct frame_event *ev);

/* 1: between messages (no partial header or payload pending): a clean place to close. */
int frame_idle(const struct frame_parser *p);

#endif
