/* fuzz_frame.c: libFuzzer target for the frame parser. The input's first bytes choose the 828
 * limit and the split; the rest is fed to a request parser and a response parser, whole and in
 * splits. A broken invariant aborts: a byte used beyond the input, events that depend on the
 * split, stream data out of place or not adding up to the payload size, a non-sticky error. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../protocol/codes.h"
#include "../../protocol/err.h"
#include "../../protocol/frame.h"
#include "../unit/frame_drive.h"

/* Control prefix: limit choice (1 byte), split seed (4 bytes). */
#define CONTROL_SIZE 5u
/* Byte-by-byte feeding is quadratic in calls for the harness only up to this size. */
#define BYTEWISE_MAX 8192u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The log of one stream must describe well-formed framing of that stream. */
static void check_log(const struct fd_log *l, enum frame_direction dir, uint32_t max_stream,
    size_t n)
{
	size_t i, hsize = dir == FRAME_REQUESTS ? REQ_HEADER_SIZE : RESP_HEADER_SIZE;
	size_t expect_off = 0;  /* where the next message must start */

	if (l->consumed > n)
		abort();
	if (l->err != 0 && l->err != SD_ERR_TOO_LARGE && l->err != SD_ERR_UNKNOWN_CODE)
		abort();
	if (l->err == SD_ERR_UNKNOWN_CODE && dir != FRAME_RESPONSES)
		abort();
	/* Without an error the whole input is taken, and the parser is idle only between
	 * messages, which every complete message leaves it. */
	if (l->err == 0 && l->consumed != n)
		abort();
	for (i = 0; i < l->n; i++) {
		const struct fd_event *e = &l->ev[i];

		switch (e->type) {
		case FRAME_MESSAGE:
			if (e->offset != expect_off || e->len != e->header.payload_size ||
			    e->len > FRAME_SMALL_PAYLOAD_MAX)
				abort();
			if (dir == FRAME_RESPONSES && !msg_is_response_code(e->header.code))
				abort();
			if (e->header.code == REQ_SEND_FILE && dir == FRAME_REQUESTS &&
			    e->len >= FILE_PACKET_HEADER_SIZE)
				abort();
			expect_off = e->offset + hsize + e->len;
			break;
		case FRAME_STREAM_START: {
			uint64_t content = e->header.payload_size - (uint64_t)FILE_PACKET_HEADER_SIZE;
			uint64_t seen = 0;

			if (dir != FRAME_REQUESTS || e->header.code != REQ_SEND_FILE ||
			    e->offset != expect_off || e->len != FILE_PACKET_HEADER_SIZE ||
			    e->header.payload_size < FILE_PACKET_HEADER_SIZE ||
			    e->header.payload_size > max_stream)
				abort();
			/* After the start: at most one merged data run, then the end (or EOF). */
			if (i + 1 < l->n && l->ev[i + 1].type == FRAME_STREAM_DATA) {
				i++;
				if (l->ev[i].offset != e->offset + hsize + FILE_PACKET_HEADER_SIZE)
					abort();
				seen = l->ev[i].len;
			}
			if (seen > content)
				abort();
			if (i + 1 < l->n) {
				i++;
				if (l->ev[i].type != FRAME_STREAM_END || seen != content ||
				    l->ev[i].offset != e->offset + hsize + e->header.payload_size)
					abort();
				expect_off = l->ev[i].offset;
			} else if (seen == content || l->idle) {
				abort();  /* complete content without an end, or idle mid-stream */
			} else {
				expect_off = SIZE_MAX;  /* input ended inside the stream */
			}
			break;
		}
		default:
			abort();  /* data or end without a start, or need-more in the log */
		}
	}
	/* Idle exactly when the input ended right after a complete message. */
	if (l->err == 0 && l->idle != (expect_off == n))
		abort();
}

static void run_direction(enum frame_direction dir, uint32_t max_stream, uint32_t seed,
    const uint8_t *in, size_t n)
{
	struct fd_log whole, other;

	if (fd_run(dir, max_stream, in, n, FD_WHOLE, 0, &whole) != NULL)
		abort();
	check_log(&whole, dir, max_stream, n);
	if (fd_run(dir, max_stream, in, n, FD_RANDOM, seed, &other) != NULL ||
	    !fd_log_equal(&whole, &other))
		abort();
	fd_log_free(&other);
	if (n <= BYTEWISE_MAX) {
		if (fd_run(dir, max_stream, in, n, FD_BYTES, 0, &other) != NULL ||
		    !fd_log_equal(&whole, &other))
			abort();
		fd_log_free(&other);
	}
	fd_log_free(&whole);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t limits[] = {
		FILE_PAYLOAD_MAX, 0, FILE_PACKET_HEADER_SIZE - 1, FILE_PACKET_HEADER_SIZE,
		FILE_PACKET_HEADER_SIZE + 1, 1024, 1u << 20, 0x7fffffffu,
	};
	uint32_t max_stream, seed;
	const uint8_t *in;
	size_t n;

	if (size < CONTROL_SIZE)
		return 0;
	max_stream = limits[data[0] % (sizeof(limits) / sizeof(limits[0]))];
	seed = (uint32_t)data[1] | (uint32_t)data[2] << 8 | (uint32_t)data[3] << 16 |
	    (uint32_t)data[4] << 24;
	in = data + CONTROL_SIZE;
	n = size - CONTROL_SIZE;
	run_direction(FRAME_REQUESTS, max_stream, seed, in, n);
	run_direction(FRAME_RESPONSES, max_stream, seed, in, n);
	return 0;
}
