/* frame.c: the incremental frame parser (frame.h): a state machine that gathers a header, checks
 * its sizes at once, then gathers a small payload or streams an 828; no allocation, ever. */
#include <string.h>

#include "err.h"
#include "frame.h"

/* p->state: these values, or a negative sd_err once framing is lost. */
enum {
	ST_HEADER = 0,     /* gathering a header into head[] (have bytes so far) */
	ST_SMALL,          /* gathering a whole small payload into small[] */
	ST_STREAM_HEAD,    /* 828: gathering its 267-byte packet header into small[] */
	ST_STREAM_DATA,    /* 828: content passing through, remaining bytes to come */
	ST_STREAM_END,     /* 828: content complete, FRAME_STREAM_END not yet reported */
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
	if (p->dir == FRAME_RESPONSES && !msg_is_response_code(p->header.code))
		return SD_ERR_UNKNOWN_CODE;
	if (p->dir == FRAME_REQUESTS && p->header.code == REQ_SEND_FILE) {
		if (size > p->max_stream_payload)
			return SD_ERR_TOO_LARGE;
		/* Shorter than its packet header: a small message that the decoder will reject. */
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
			gather(p->small, &p->have, FILE_PACKET_HEADER_SIZE, in, len, &pos);
			if (p->have < FILE_PACKET_HEADER_SIZE)
				goto done;
			set_event(p, ev, FRAME_STREAM_START, p->small, FILE_PACKET_HEADER_SIZE);
			p->remaining -= FILE_PACKET_HEADER_SIZE;
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
