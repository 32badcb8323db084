/* fuzz_msg4.c: libFuzzer target for the version-4 messages and the version-4 frame parser.
 * Every decoder gets the input (whole, and after a request and a response header); the
 * version-4 encodings are canonical, so whatever decodes must encode back to exactly the
 * input bytes, and whatever does not must leave its output cleared. The input is also a
 * stream of listing entries, and a stream of frames for the version-4 parser in both
 * directions, whose events must not depend on how the bytes are split. Any break aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../protocol/buf.h"
#include "../../protocol/codes.h"
#include "../../protocol/err.h"
#include "../../protocol/frame.h"
#include "../../protocol/msg.h"
#include "../../protocol/msg4.h"
#include "../unit/frame_drive.h"

#define ENCODE_MAX 2048u
/* Byte-by-byte feeding costs a call per byte: only for small inputs. */
#define BYTEWISE_MAX 4096u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != 0)
			return 0;
	return 1;
}

/* The message encoded from a decoded payload: header (skipped) + payload == input. */
static void same_payload(const uint8_t *enc, size_t enc_len, size_t hs, const uint8_t *p,
    size_t n)
{
	if (enc_len != hs + n || memcmp(enc + hs, p, n) != 0)
		abort();
}

static void fuzz_payloads(const uint8_t *p, size_t n)
{
	uint8_t mem[ENCODE_MAX], fixed[V4_CHALLENGE_SIZE];
	struct buf b;
	int r;

	buf_fixed(&b, mem, sizeof(mem));
	{
		struct msg4_register m;

		memset(&m, 0xa5, sizeof(m));
		if ((r = msg4_register_decode(p, n, &m)) == 0) {
			if (msg4_put_register(&b, m.public_key, m.name) != 0)
				abort();
			same_payload(mem, buf_len(&b), REQ_HEADER_SIZE, p, n);
		} else if (!all_zero(&m, sizeof(m))) {
			abort();
		}
	}
	buf_fixed(&b, mem, sizeof(mem));
	{
		struct msg4_link m;

		memset(&m, 0xa5, sizeof(m));
		if (msg4_link_decode(p, n, &m) == 0) {
			if (msg4_put_link(&b, m.name, m.id) != 0)
				abort();
			same_payload(mem, buf_len(&b), REQ_HEADER_SIZE, p, n);
		} else if (!all_zero(&m, sizeof(m))) {
			abort();
		}
	}
	buf_fixed(&b, mem, sizeof(mem));
	{
		struct msg4_put_open m;

		memset(&m, 0xa5, sizeof(m));
		if (msg4_put_open_decode(p, n, &m) == 0) {
			if (msg4_put_put_open(&b, m.size, m.name) != 0)
				abort();
			same_payload(mem, buf_len(&b), REQ_HEADER_SIZE, p, n);
		} else if (!all_zero(&m, sizeof(m))) {
			abort();
		}
	}
	buf_fixed(&b, mem, sizeof(mem));
	{
		struct msg4_get m;

		memset(&m, 0xa5, sizeof(m));
		if (msg4_get_decode(p, n, &m) == 0) {
			if (msg4_put_get(&b, m.offset, m.name) != 0)
				abort();
			same_payload(mem, buf_len(&b), REQ_HEADER_SIZE, p, n);
		} else if (!all_zero(&m, sizeof(m))) {
			abort();
		}
	}
	buf_fixed(&b, mem, sizeof(mem));
	{
		char name[V4_NAME_BUF];

		memset(name, 0xa5, sizeof(name));
		if (msg4_delete_decode(p, n, name) == 0) {
			if (msg4_put_delete(&b, name) != 0)
				abort();
			same_payload(mem, buf_len(&b), REQ_HEADER_SIZE, p, n);
		} else if (!all_zero(name, sizeof(name))) {
			abort();
		}
	}
	buf_fixed(&b, mem, sizeof(mem));
	{
		struct msg4_welcome m;

		memset(&m, 0xa5, sizeof(m));
		if (msg4_welcome_decode(p, n, &m) == 0) {
			if (msg4_put_welcome(&b, m.id, m.name) != 0)
				abort();
			same_payload(mem, buf_len(&b), RESP_HEADER_SIZE, p, n);
		} else if (!all_zero(&m, sizeof(m))) {
			abort();
		}
	}
	buf_fixed(&b, mem, sizeof(mem));
	{
		struct msg4_put_state m;

		memset(&m, 0xa5, sizeof(m));
		if (msg4_put_state_decode(p, n, &m) == 0) {
			if (msg4_put_put_state(&b, &m) != 0)
				abort();
			same_payload(mem, buf_len(&b), RESP_HEADER_SIZE, p, n);
		} else if (!all_zero(&m, sizeof(m))) {
			abort();
		}
	}
	buf_fixed(&b, mem, sizeof(mem));
	{
		struct msg4_put_done m;

		memset(&m, 0xa5, sizeof(m));
		if (msg4_put_done_decode(p, n, &m) == 0) {
			if (msg4_put_put_done(&b, &m) != 0)
				abort();
			same_payload(mem, buf_len(&b), RESP_HEADER_SIZE, p, n);
		} else if (!all_zero(&m, sizeof(m))) {
			abort();
		}
	}
	buf_fixed(&b, mem, sizeof(mem));
	{
		struct msg4_get_end m;

		memset(&m, 0xa5, sizeof(m));
		if (msg4_get_end_decode(p, n, &m) == 0) {
			if (msg4_put_get_end(&b, &m) != 0)
				abort();
			same_payload(mem, buf_len(&b), RESP_HEADER_SIZE, p, n);
		} else if (!all_zero(&m, sizeof(m))) {
			abort();
		}
	}
	buf_fixed(&b, mem, sizeof(mem));
	{
		struct msg4_error m;

		memset(&m, 0xa5, sizeof(m));
		if (msg4_error_decode(p, n, &m) == 0) {
			if (msg4_put_error(&b, m.reason, m.message) != 0)
				abort();
			same_payload(mem, buf_len(&b), RESP_HEADER_SIZE, p, n);
		} else if (!all_zero(&m, sizeof(m))) {
			abort();
		}
	}
	/* Fixed-size payloads: exactly their size. */
	if ((msg4_prove_decode(p, n, fixed) == 0) != (n == V4_NONCE_SIZE) ||
	    (msg4_put_finish_decode(p, n, fixed) == 0) != (n == V4_SHA256_SIZE) ||
	    (msg4_challenge_decode(p, n, fixed) == 0) != (n == V4_CHALLENGE_SIZE) ||
	    (msg4_empty_decode(p, n) == 0) != (n == 0))
		abort();
	/* Heads of streamed messages. */
	{
		uint64_t off = 1;

		r = msg4_get_data_head_decode(p, n, &off);
		if (r == 0) {
			buf_fixed(&b, mem, sizeof(mem));
			if (n != 8 || msg4_put_get_data_head(&b, off, 0) != 0)
				abort();
			same_payload(mem, buf_len(&b), RESP_HEADER_SIZE, p, n);
		} else if (off != 0) {
			abort();
		}
	}
	if (n >= V4_PUT_DATA_HEAD_SIZE + 5) {
		/* The 13-byte head, with a payload size and a max_chunk taken from what follows. */
		struct msg4_put_data d;
		struct buf v;
		uint32_t psize, mc;
		uint8_t sel;

		buf_view(&v, p + V4_PUT_DATA_HEAD_SIZE, 5);
		if (buf_get_u32(&v, &psize) != 0 || buf_get_u8(&v, &sel) != 0)
			abort();
		mc = V4_MAX_CHUNK_MIN + (uint32_t)sel * 3855u;  /* 64 KiB .. 1 MiB */
		if (msg4_put_data_decode(p, V4_PUT_DATA_HEAD_SIZE, psize, mc, &d) == 0) {
			if (d.plain_len == 0 || d.plain_len > mc || d.data_len > mc + V4_CHUNK_SLACK ||
			    d.data_len != psize - V4_PUT_DATA_HEAD_SIZE ||
			    (!(d.flags & 1) && d.data_len != d.plain_len))
				abort();
			buf_fixed(&b, mem, sizeof(mem));
			if (msg4_put_put_data_head(&b, d.offset, d.flags, d.plain_len, d.data_len) != 0)
				abort();
			same_payload(mem, buf_len(&b), REQ_HEADER_SIZE, p, V4_PUT_DATA_HEAD_SIZE);
		} else if (!all_zero(&d, sizeof(d))) {
			abort();
		}
	}
}

/* The input as listing entries: each one pulled encodes back to the bytes it took. */
static void fuzz_listing(const uint8_t *p, size_t n)
{
	struct msg4_file_entry e;
	uint8_t mem[ENCODE_MAX];
	struct buf in, out;
	size_t before;
	int r;

	buf_view(&in, p, n);
	for (;;) {
		before = buf_len(&in);
		r = msg4_listing_entry_get(&in, &e);
		if (r != 0) {
			if (buf_len(&in) != before || !all_zero(&e, sizeof(e)))
				abort();
			break;
		}
		buf_fixed(&out, mem, sizeof(mem));
		if (msg4_put_listing_entry(&out, &e) != 0 || buf_len(&out) != before - buf_len(&in) ||
		    buf_len(&out) != msg4_listing_entry_size(&e) ||
		    memcmp(mem, p + (n - before), buf_len(&out)) != 0)
			abort();
	}
}

static void run_direction(enum frame_direction dir, uint32_t max_stream, uint32_t seed,
    const uint8_t *in, size_t n)
{
	struct fd_log whole, other;

	if (fd_run_version(1, dir, max_stream, in, n, FD_WHOLE, 0, &whole) != NULL)
		abort();
	if (fd_run_version(1, dir, max_stream, in, n, FD_RANDOM, seed, &other) != NULL ||
	    !fd_log_equal(&whole, &other))
		abort();
	fd_log_free(&other);
	if (n <= BYTEWISE_MAX) {
		if (fd_run_version(1, dir, max_stream, in, n, FD_BYTES, 0, &other) != NULL ||
		    !fd_log_equal(&whole, &other))
			abort();
		fd_log_free(&other);
	}
	/* Every event obeys the version-4 limits. */
	for (size_t i = 0; i < whole.n; i++) {
		const struct msg_header *h = &whole.ev[i].header;
		int known = dir == FRAME_REQUESTS ? msg4_is_request_code(h->code) :
		    msg4_is_response_code(h->code);

		if (dir == FRAME_RESPONSES && !known)
			abort();
		if (known && h->payload_size > msg4_payload_max(h->code))
			abort();
		if (!known && h->payload_size > FRAME_SMALL_PAYLOAD_MAX)
			abort();
	}
	fd_log_free(&whole);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t seed = 1;

	fuzz_payloads(data, size);
	if (size > REQ_HEADER_SIZE)
		fuzz_payloads(data + REQ_HEADER_SIZE, size - REQ_HEADER_SIZE);
	if (size > RESP_HEADER_SIZE)
		fuzz_payloads(data + RESP_HEADER_SIZE, size - RESP_HEADER_SIZE);
	fuzz_listing(data, size);
	if (size > 4)
		seed = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[size - 1] << 16;
	run_direction(FRAME_REQUESTS, V4_PUT_DATA_PAYLOAD_MAX, seed, data, size);
	run_direction(FRAME_REQUESTS, V4_PUT_DATA_HEAD_SIZE + V4_MAX_CHUNK_MIN + V4_CHUNK_SLACK,
	    seed, data, size);
	run_direction(FRAME_RESPONSES, V4_GET_DATA_PAYLOAD_MAX, seed, data, size);
	return 0;
}
