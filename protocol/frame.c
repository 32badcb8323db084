/* frame.c: the incremental frame parser (frame.h): a state machine that gathers a header, checks
 * its sizes at once, then gathers a small payload or streams a large one (828 in version 3;
 * 851, 1615, 1616 in version 4); no allocation, ever. */
#include <string.h>

#include "err.h"
#include "frame.h"

/* p->state: these values, or a negative sd_err once framing is lost. */
enum {
	ST_HEADER = 0,     /* gathering a header into head[] (have bytes so far) */
	ST_SMALL,          /* gathering a whole small payload into small[] */
	ST_STREAM_HEAD,    /* streamed: gathering its head (head_size bytes) into small[] */
	ST_STREAM_DATA,    /* streamed: content passing through, remaining bytes to come */
	ST_STREAM_END,     /* streamed: content complete, FRAME_STREAM_END not yet reported */
};

void frame_init(struct frame_parser *p, enum frame_direction dir)
{
	if (p == NULL)
		return;
	memset(p, 0, sizeof(*p));
	p->dir = dir;
	p->max_stream_payload = FILE_PAYLOAD_MAX;
	p->state = ST_HEADER;
}

void frame_init_v4(struct frame_parser *p, enum frame_direction dir)
{
	if (p == NULL)
		return;
	frame_init(p, dir);
	p->v4 = 1;
	p->max_stream_payload = dir == FRAME_REQUESTS ? V4_PUT_DATA_PAYLOAD_MAX :
	    V4_GET_DATA_PAYLOAD_MAX;
}

int frame_idle(const struct frame_parser *p)
{
	return p != NULL && p->state == ST_HEADER && p->have == 0;
}

static size_t header_size(const struct frame_parser *p)
{
	return p->dir == FRAME_REQUESTS ? REQ_HEADER_SIZE : RESP_HEADER_SIZE;
}

/* Copies what is missing of a want-byte piece into dst (have bytes so far) from in[*pos..len),
 * advancing *pos. in may be NULL when len is 0, so nothing is computed from it then. */
static void gather(uint8_t *dst, size_t *have, size_t want, const uint8_t *in, size_t len,
    size_t *pos)
{
	size_t n = want - *have;

	if (n > len - *pos)
		n = len - *pos;
	if (n == 0)
		return;
	memcpy(dst + *have, in + *pos, n);
	*have += n;
	*pos += n;
}

/* Version 4: each version-4 code of this direction within its own limit; streamed codes
 * stream; anything else is small (a request the server answers with ERROR). */
static int header_done_v4(struct frame_parser *p, uint32_t size)
{
	uint16_t code = p->header.code;
	int known = p->dir == FRAME_REQUESTS ? msg4_is_request_code(code) :
	    msg4_is_response_code(code);
	uint32_t head = known ? msg4_stream_head_size(code) : 0;
	uint32_t limit;

	if (p->dir == FRAME_RESPONSES && !known)
		return SD_ERR_UNKNOWN_CODE;
	if (head > 0) {
		/* 851 and 1616 by the caller's limit, 1615 by its own. */
		limit = code == RESP4_LISTING ? msg4_payload_max(code) : p->max_stream_payload;
		if (size > limit)
			return SD_ERR_TOO_LARGE;
		p->head_size = head;
		p->state = size >= head ? ST_STREAM_HEAD : ST_SMALL;
		return 0;
	}
	if ((known && size > msg4_payload_max(code)) || size > FRAME_SMALL_PAYLOAD_MAX)
		return SD_ERR_TOO_LARGE;
	p->state = ST_SMALL;
	return 0;
}

/* The header is complete in head[]: decode it and choose how its payload travels, checking
 * every size against its limit before a byte of payload is accepted. */
static int header_done(struct frame_parser *p)
{
	struct buf b;
	uint32_t size;
	int r;

	buf_view(&b, p->head, header_size(p));
	r = p->dir == FRAME_REQUESTS ? msg_request_header_decode(&b, &p->header) :
	    msg_response_header_decode(&b, &p->header);
	if (r != 0)
		return r;
	size = p->header.payload_size;
	p->have = 0;
	p->remaining = size;
	if (p->v4)
		return header_done_v4(p, size);
	if (p->dir == FRAME_RESPONSES && !msg_is_response_code(p->header.code))
		return SD_ERR_UNKNOWN_CODE;
	if (p->dir == FRAME_REQUESTS && p->header.code == REQ_SEND_FILE) {
		if (size > p->max_stream_payload)
			return SD_ERR_TOO_LARGE;
		/* Shorter than its packet header: a small message that the decoder will reject. */
		p->head_size = FILE_PACKET_HEADER_SIZE;
		p->state = size >= FILE_PACKET_HEADER_SIZE ? ST_STREAM_HEAD : ST_SMALL;
		return 0;
	}
	/* Every other code, known or not, is buffered whole, so it must fit small[]. */
	if (size > FRAME_SMALL_PAYLOAD_MAX)
		return SD_ERR_TOO_LARGE;
	p->state = ST_SMALL;
	return 0;
}

static void set_event(struct frame_parser *p, struct frame_event *ev,
    enum frame_event_type type, const uint8_t *data, size_t len)
{
	ev->type = type;
	ev->header = &p->header;
	ev->data = data;
	ev->len = len;
}

/* Longer than 60 lines on purpose: one switch over the parser's states (header, small
 * payload, stream head, stream content), read top to bottom like the wire; splitting it would
 * spread one state machine over several functions that share every local. */
int frame_feed(struct frame_parser *p, const uint8_t *in, size_t len, size_t *used,
    struct frame_event *ev)
{
	size_t pos = 0, n;
	int r;

	if (used != NULL)
		*used = 0;
	if (ev != NULL)
		memset(ev, 0, sizeof(*ev));
	if (p == NULL || used == NULL || ev == NULL || (in == NULL && len > 0))
		return SD_ERR_INVALID_ARG;
	if (p->state < 0)
		return p->state;
	ev->type = FRAME_NEED_MORE;

	for (;;) {
		switch (p->state) {
		case ST_HEADER:
			gather(p->head, &p->have, header_size(p), in, len, &pos);
			if (p->have < header_size(p))
				goto done;
			if ((r = header_done(p)) != 0) {
				p->state = r;
				*used = pos;
				memset(ev, 0, sizeof(*ev));
				return r;
			}
			if (p->state == ST_SMALL && p->remaining == 0) {
				/* An empty payload is complete with its header. */
				p->state = ST_HEADER;
				set_event(p, ev, FRAME_MESSAGE, p->small, 0);
				goto done;
			}
			break;
		case ST_SMALL:
			gather(p->small, &p->have, (size_t)p->remaining, in, len, &pos);
			if (p->have < p->remaining)
				goto done;
			set_event(p, ev, FRAME_MESSAGE, p->small, p->have);
			p->state = ST_HEADER;
			p->have = 0;
			p->remaining = 0;
			goto done;
		case ST_STREAM_HEAD:
			gather(p->small, &p->have, p->head_size, in, len, &pos);
			if (p->have < p->head_size)
				goto done;
			set_event(p, ev, FRAME_STREAM_START, p->small, p->head_size);
			p->remaining -= p->head_size;
			p->have = 0;
			p->state = p->remaining > 0 ? ST_STREAM_DATA : ST_STREAM_END;
			goto done;
		case ST_STREAM_DATA:
			if (pos == len)
				goto done;
			n = len - pos;
			if (n > p->remaining)
				n = (size_t)p->remaining;
			/* Zero copy: the slice points into the caller's input. */
			set_event(p, ev, FRAME_STREAM_DATA, in + pos, n);
			pos += n;
			p->remaining -= n;
			if (p->remaining == 0)
				p->state = ST_STREAM_END;
			goto done;
		case ST_STREAM_END:
			set_event(p, ev, FRAME_STREAM_END, NULL, 0);
			p->state = ST_HEADER;
			goto done;
		default:
			/* A state this file never sets: a broken invariant, framing is lost. */
			p->state = SD_ERR_INTERNAL;
			memset(ev, 0, sizeof(*ev));
			return SD_ERR_INTERNAL;
		}
	}
done:
	*used = pos;
	return 0;
}
