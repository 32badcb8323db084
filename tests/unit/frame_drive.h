/* frame_drive.h: test helper (static, header-only) that feeds a byte stream to the frame parser
 * in a chosen split (whole, byte by byte, or seeded random slices) and records the events in a
 * normal form that does not depend on the split, checking the parser's promises on the way. */
#ifndef SD_TEST_FRAME_DRIVE_H
#define SD_TEST_FRAME_DRIVE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../protocol/frame.h"

enum fd_split {
	FD_WHOLE,   /* one call with the whole input */
	FD_BYTES,   /* one byte per slice */
	FD_RANDOM,  /* seeded random slices, from empty ones up to a few KiB */
};

/* One event in normal form. Consecutive FRAME_STREAM_DATA events are merged into one, so the
 * log is the same for every split of the same input. */
struct fd_event {
	enum frame_event_type type;
	struct msg_header header;
	size_t offset;  /* MESSAGE and STREAM_START: stream offset of the message's header;
	                 * STREAM_DATA: of the first content byte; STREAM_END: where it ended */
	size_t len;     /* MESSAGE: payload size; STREAM_START: the head (267 for 828);
	                 * STREAM_DATA: bytes in total */
};

struct fd_log {
	struct fd_event *ev;  /* malloc'ed; fd_log_free() releases it */
	size_t n, cap;
	int err;              /* the error that stopped the parser, or 0 */
	size_t consumed;      /* bytes the parser took in total */
	int idle;             /* frame_idle() at the end */
	size_t data_events;   /* raw FRAME_STREAM_DATA events before merging */
};

static inline void fd_log_free(struct fd_log *l)
{
	free(l->ev);
	memset(l, 0, sizeof(*l));
}

/* Returns 0, or -1 when the helper itself runs out of memory. */
static inline int fd_push(struct fd_log *l, const struct fd_event *e)
{
	struct fd_event *last = l->n > 0 ? &l->ev[l->n - 1] : NULL;

	if (e->type == FRAME_STREAM_DATA && last != NULL && last->type == FRAME_STREAM_DATA &&
	    last->offset + last->len == e->offset) {
		last->len += e->len;
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct fd_event *p = realloc(l->ev, cap * sizeof(*p));

		if (p == NULL)
			return -1;
		l->ev = p;
		l->cap = cap;
	}
	l->ev[l->n++] = *e;
	return 0;
}

/* A small deterministic generator for the random splits (xorshift32, never seeded with 0). */
static inline uint32_t fd_rand(uint32_t *s)
{
	uint32_t x = *s ? *s : 0x9e3779b9u;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*s = x;
	return x;
}

/* The length of the next slice for a split. */
static inline size_t fd_next_slice(enum fd_split split, uint32_t *seed, size_t left)
{
	size_t n;

	switch (split) {
	case FD_WHOLE:
		return left;
	case FD_BYTES:
		return left > 0 ? 1 : 0;
	default:
		switch (fd_rand(seed) % 4) {
		case 0: n = 0; break;                          /* an empty slice is harmless */
		case 1: n = 1 + fd_rand(seed) % 8; break;      /* cuts inside headers */
		case 2: n = 1 + fd_rand(seed) % 300; break;    /* around the 267-byte packet header */
		default: n = 1 + fd_rand(seed) % 5000; break;  /* across messages */
		}
		return n < left ? n : left;
	}
}

/* The head a streamed code must start with: 267 for 828 in version 3; 13, 4, 8 for 851, 1615,
 * 1616 in version 4; 0 when the code is not streamed in that version and direction. */
static inline size_t fd_stream_head(int v4, enum frame_direction dir, uint16_t code)
{
	if (!v4)
		return dir == FRAME_REQUESTS && code == REQ_SEND_FILE ? FILE_PACKET_HEADER_SIZE : 0;
	if (dir == FRAME_REQUESTS)
		return code == REQ4_PUT_DATA ? V4_PUT_DATA_HEAD_SIZE : 0;
	return code == RESP4_LISTING || code == RESP4_GET_DATA ? msg4_stream_head_size(code) : 0;
}

/* Feeds in[0..n) to a fresh parser of direction dir, version 3 (v4 = 0) or 4 (max_stream
 * limits an 828, or an 851 / 1616 payload) and fills log. A broken parser promise is
 * returned as a message naming it (NULL: all kept): used within the slice, zero copy in
 * place for stream data, message bytes equal to the input, a bounded number of calls, and a
 * sticky error. */
static inline const char *fd_run_version(int v4, enum frame_direction dir, uint32_t max_stream,
    const uint8_t *in, size_t n, enum fd_split split, uint32_t seed, struct fd_log *log)
{
	struct frame_parser *p;
	struct frame_event ev;
	struct fd_event e;
	size_t pos = 0, slice, off, used, calls = 0, hsize;
	const char *why = NULL;
	int r;

	memset(log, 0, sizeof(*log));
	/* The parser is about 4 KiB: on the heap, like a server's per-connection state. */
	if ((p = malloc(sizeof(*p))) == NULL)
		return "out of memory";
	if (v4)
		frame_init_v4(p, dir);
	else
		frame_init(p, dir);
	p->max_stream_payload = max_stream;
	hsize = dir == FRAME_REQUESTS ? REQ_HEADER_SIZE : RESP_HEADER_SIZE;
	for (;;) {
		slice = fd_next_slice(split, &seed, n - pos);
		off = 0;
		do {
			/* Each call consumes a byte or reports an event, so this bounds the calls. */
			if (++calls > 4 * n + 1000) {
				why = "too many calls";
				goto out;
			}
			r = frame_feed(p, in + pos + off, slice - off, &used, &ev);
			if (used > slice - off) {
				why = "used more than given";
				goto out;
			}
			off += used;
			if (r != 0) {
				size_t used2;

				log->err = r;
				/* Sticky: the same error, nothing consumed, from now on. */
				if (frame_feed(p, in, n, &used2, &ev) != r || used2 != 0 ||
				    frame_idle(p)) {
					why = "error not sticky";
					goto out;
				}
				pos += off;
				goto out;
			}
			memset(&e, 0, sizeof(e));
			e.type = ev.type;
			if (ev.type != FRAME_NEED_MORE) {
				if (ev.header == NULL) {
					why = "event without header";
					goto out;
				}
				e.header = *ev.header;
			}
			switch (ev.type) {
			case FRAME_NEED_MORE:
				if (off != slice) {
					why = "need more with input left";
					goto out;
				}
				continue;
			case FRAME_MESSAGE:
				if (ev.len != ev.header->payload_size || pos + off < hsize + ev.len ||
				    (ev.len > 0 && memcmp(ev.data, in + pos + off - ev.len, ev.len) != 0)) {
					why = "message payload differs from the input";
					goto out;
				}
				e.offset = pos + off - ev.len - hsize;
				e.len = ev.len;
				break;
			case FRAME_STREAM_START:
				if (ev.len == 0 || ev.len != fd_stream_head(v4, dir, ev.header->code) ||
				    memcmp(ev.data, in + pos + off - ev.len, ev.len) != 0) {
					why = "stream start differs from the input";
					goto out;
				}
				e.offset = pos + off - ev.len - hsize;
				e.len = ev.len;
				break;
			case FRAME_STREAM_DATA:
				/* Zero copy: the slice is the input itself, right where it was taken. */
				if (ev.len == 0 || ev.len != used || ev.data != in + pos + off - ev.len) {
					why = "stream data not in place";
					goto out;
				}
				log->data_events++;
				e.offset = pos + off - ev.len;
				e.len = ev.len;
				break;
			case FRAME_STREAM_END:
				if (used != 0) {
					why = "stream end consumed bytes";
					goto out;
				}
				e.offset = pos + off;
				break;
			default:
				why = "unknown event type";
				goto out;
			}
			if (fd_push(log, &e) != 0) {
				why = "out of memory";
				goto out;
			}
		} while (off < slice || ev.type != FRAME_NEED_MORE);
		pos += slice;
		if (pos == n)
			break;
	}
out:
	log->consumed = pos;
	log->idle = frame_idle(p);
	free(p);
	return why;
}

/* Version 3, as before version 4. */
static inline const char *fd_run(enum frame_direction dir, uint32_t max_stream,
    const uint8_t *in, size_t n, enum fd_split split, uint32_t seed, struct fd_log *log)
{
	return fd_run_version(0, dir, max_stream, in, n, split, seed, log);
}

/* Field by field: the struct has padding that assignment need not copy. */
static inline int fd_header_equal(const struct msg_header *a, const struct msg_header *b)
{
	return memcmp(a->client_id, b->client_id, sizeof(a->client_id)) == 0 &&
	    a->version == b->version && a->code == b->code && a->payload_size == b->payload_size;
}

/* 1 when two logs hold the same events, error, end position and idle state. */
static inline int fd_log_equal(const struct fd_log *a, const struct fd_log *b)
{
	size_t i;

	if (a->n != b->n || a->err != b->err || a->consumed != b->consumed || a->idle != b->idle)
		return 0;
	for (i = 0; i < a->n; i++) {
		if (a->ev[i].type != b->ev[i].type || a->ev[i].offset != b->ev[i].offset ||
		    a->ev[i].len != b->ev[i].len || !fd_header_equal(&a->ev[i].header, &b->ev[i].header))
			return 0;
	}
	return 1;
}

#endif
