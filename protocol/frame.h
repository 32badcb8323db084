/* frame.h: the incremental frame parser. No sockets: feed it any slice of bytes (one byte at a
 * time or megabytes) and it reports, one event per call, what the bytes completed.
 *
 * Small messages (every code but the streamed ones) are buffered inside the parser, at most
 * FRAME_SMALL_PAYLOAD_MAX bytes, and delivered whole as FRAME_MESSAGE. A streamed message is
 * not: the parser buffers its fixed head and reports FRAME_STREAM_START, then the rest as
 * FRAME_STREAM_DATA slices pointing into the caller's input (zero copy), then
 * FRAME_STREAM_END. Version 3 (frame_init) streams the 828 request (head: its 267-byte packet
 * header). Version 4 (frame_init_v4, inside TLS) streams the 851 PUT_DATA request (head 13
 * bytes), and the 1615 LISTING (head 4: the count) and 1616 GET_DATA (head 8: the offset)
 * responses. A streamed code whose payload is shorter than its head is delivered as a
 * FRAME_MESSAGE (the decoder then rejects it). Every size is checked against its limit as
 * soon as the header is complete, before any byte of payload is accepted: in version 4 each
 * version-4 code has its own limit (msg4_payload_max()). */
#ifndef SD_FRAME_H
#define SD_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "codes.h"
#include "msg.h"
#include "msg4.h"

enum frame_direction {
	FRAME_REQUESTS,   /* 23-byte request headers (the server side) */
	FRAME_RESPONSES,  /* 7-byte response headers (the client side) */
};

enum frame_event_type {
	FRAME_NEED_MORE = 0,  /* all input consumed, no event completed */
	FRAME_MESSAGE,        /* header + whole payload (data, len) */
	FRAME_STREAM_START,   /* header + the code's head (data, len = 267 for 828, 13 for 851,
	                       * 4 for 1615, 8 for 1616) */
	FRAME_STREAM_DATA,    /* a slice of the rest (data, len), pointing into the input */
	FRAME_STREAM_END,     /* the streamed payload is complete */
};

struct frame_event {
	enum frame_event_type type;
	const struct msg_header *header;  /* valid for every event but FRAME_NEED_MORE */
	const uint8_t *data;
	size_t len;
};

struct frame_parser {
	enum frame_direction dir;
	/* Limit on a streamed payload: version 3, an 828 (default FILE_PAYLOAD_MAX); version 4,
	 * an 851 (default V4_PUT_DATA_PAYLOAD_MAX; a server lowers it to 13 + its max_chunk +
	 * V4_CHUNK_SLACK) or a 1616 (default V4_GET_DATA_PAYLOAD_MAX). 1615 has its fixed limit. */
	uint32_t max_stream_payload;
	int v4;                       /* 1: version-4 codes and limits (frame_init_v4) */
	int state;                    /* private */
	uint32_t head_size;           /* private: the head of the message being streamed */
	size_t have;                  /* private: bytes gathered of header or small payload */
	uint64_t remaining;           /* private: payload bytes still to come */
	struct msg_header header;
	uint8_t head[MAX_HEADER_SIZE];
	uint8_t small[FRAME_SMALL_PAYLOAD_MAX];
};

/* Version 3 (outside TLS), exactly as before version 4 existed. */
void frame_init(struct frame_parser *p, enum frame_direction dir);
/* Version 4 (inside TLS). Responses: only 1610-1619 (others: SD_ERR_UNKNOWN_CODE). Requests:
 * version-4 codes within their limits; any other code (a version-3 code inside TLS) is
 * delivered like an unknown code, if small, so the server can answer ERROR. */
void frame_init_v4(struct frame_parser *p, enum frame_direction dir);

/* Consumes a prefix of in[0..len) and sets *used to its size; fills *ev.
 * Returns 0 (see ev->type) or a negative sd_err: SD_ERR_TOO_LARGE (a payload size over its
 * limit) or SD_ERR_UNKNOWN_CODE (a response code outside 1600-1607, or 1610-1619 in
 * version 4, on the client side).
 * Unknown request codes are not an error here: their payload (if small) is delivered as a
 * FRAME_MESSAGE so the server can answer 1607 and go on. After an error the parser stays in
 * error: framing is lost, close the connection.
 * Call again while *used < len or the event was not FRAME_NEED_MORE. */
int frame_feed(struct frame_parser *p, const uint8_t *in, size_t len, size_t *used,
    struct frame_event *ev);

/* 1: between messages (no partial header or payload pending): a clean place to close. */
int frame_idle(const struct frame_parser *p);

#endif
