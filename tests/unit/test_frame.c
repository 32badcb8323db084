/* test_frame.c: the incremental frame parser (protocol/frame.h). A stream of many messages gives
 * the events its construction predicts, whether fed whole, byte by byte or in random splits;
 * hostile sizes are refused when the header completes; errors are sticky. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../protocol/buf.h"
#include "../../protocol/codes.h"
#include "../../protocol/err.h"
#include "../../protocol/frame.h"
#include "../../protocol/msg.h"
#include "../../protocol/msg4.h"
#include "frame_drive.h"

/* Random splits per stream: enough to hit every state boundary, bounded for run time. */
#define RANDOM_SPLITS 40u

/* A stream under construction and the events it must produce. */
struct stream {
	struct buf b;
	struct fd_log want;
};

static void stream_init(struct stream *s)
{
	buf_init(&s->b, 1u << 22);
	memset(&s->want, 0, sizeof(s->want));
}

static void stream_free(struct stream *s)
{
	buf_free(&s->b);
	fd_log_free(&s->want);
}

static void expect(struct stream *s, enum frame_event_type type, const struct msg_header *h,
    size_t offset, size_t len)
{
	struct fd_event e;

	memset(&e, 0, sizeof(e));
	e.type = type;
	e.header = *h;
	e.offset = offset;
	e.len = len;
	assert_int_equal(fd_push(&s->want, &e), 0);
}

static void pattern(uint8_t *p, size_t n, uint32_t seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(fd_rand(&seed) >> 24);
}

/* Any request code with any payload (pattern bytes): one FRAME_MESSAGE. */
static void add_request(struct stream *s, uint16_t code, uint32_t n, uint8_t idbyte)
{
	struct msg_header h;
	size_t offset = buf_len(&s->b);
	uint8_t payload[FRAME_SMALL_PAYLOAD_MAX];

	assert_true(n <= sizeof(payload));
	memset(&h, 0, sizeof(h));
	memset(h.client_id, idbyte, sizeof(h.client_id));
	h.version = 3;
	h.code = code;
	h.payload_size = n;
	pattern(payload, n, code + n);
	assert_int_equal(msg_request_header_encode(&s->b, &h), 0);
	assert_int_equal(buf_put_bytes(&s->b, payload, n), 0);
	expect(s, FRAME_MESSAGE, &h, offset, n);
}

static void add_response(struct stream *s, uint16_t code, uint32_t n)
{
	struct msg_header h;
	size_t offset = buf_len(&s->b);
	uint8_t payload[FRAME_SMALL_PAYLOAD_MAX];

	assert_true(n <= sizeof(payload));
	memset(&h, 0, sizeof(h));
	h.version = 3;
	h.code = code;
	h.payload_size = n;
	pattern(payload, n, code * 7u + n);
	assert_int_equal(msg_response_header_encode(&s->b, &h), 0);
	assert_int_equal(buf_put_bytes(&s->b, payload, n), 0);
	expect(s, FRAME_MESSAGE, &h, offset, n);
}

/* An 828 with content_len bytes of content: START, DATA (unless empty), END. */
static void add_file_packet(struct stream *s, uint32_t content_len, uint8_t idbyte)
{
	struct msg_file_packet f;
	struct msg_header h;
	size_t offset = buf_len(&s->b);
	uint8_t *content;

	memset(&f, 0, sizeof(f));
	f.content_size = content_len;
	f.orig_file_size = content_len;
	f.packet_number = 1;
	f.total_packets = 1;
	strcpy(f.file_name, "file.bin");
	memset(&h, 0, sizeof(h));
	memset(h.client_id, idbyte, sizeof(h.client_id));
	h.version = 3;
	h.code = 828;
	h.payload_size = 267 + content_len;
	assert_int_equal(msg_put_file_packet_header(&s->b, h.client_id, &f, content_len, 0), 0);
	assert_non_null(content = malloc(content_len + 1u));
	pattern(content, content_len, content_len);
	assert_int_equal(buf_put_bytes(&s->b, content, content_len), 0);
	free(content);
	expect(s, FRAME_STREAM_START, &h, offset, 267);
	if (content_len > 0)
		expect(s, FRAME_STREAM_DATA, &h, offset + 23 + 267, content_len);
	expect(s, FRAME_STREAM_END, &h, offset + 23 + 267 + content_len, 0);
}

/* Every split of the stream gives exactly the expected log, ending idle at EOF. */
static void check_all_splits(struct stream *s, enum frame_direction dir)
{
	struct fd_log got;
	const char *why;
	uint32_t seed;
	size_t n = buf_len(&s->b);

	s->want.consumed = n;
	s->want.idle = 1;
	why = fd_run(dir, FILE_PAYLOAD_MAX, buf_ptr(&s->b), n, FD_WHOLE, 0, &got);
	assert_null(why);
	assert_true(fd_log_equal(&got, &s->want));
	fd_log_free(&got);

	why = fd_run(dir, FILE_PAYLOAD_MAX, buf_ptr(&s->b), n, FD_BYTES, 0, &got);
	assert_null(why);
	assert_true(fd_log_equal(&got, &s->want));
	fd_log_free(&got);

	for (seed = 1; seed <= RANDOM_SPLITS; seed++) {
		why = fd_run(dir, FILE_PAYLOAD_MAX, buf_ptr(&s->b), n, FD_RANDOM, seed, &got);
		assert_null(why);
		assert_true(fd_log_equal(&got, &s->want));
		fd_log_free(&got);
	}
}

/* Every request, short and long 828s, wrong sizes, unknown codes, empty and maximal payloads. */
static void test_request_stream(void **state)
{
	struct stream s;
	uint8_t round;

	(void)state;
	stream_init(&s);
	for (round = 0; round < 3; round++) {
		add_request(&s, 825, 255, round);
		add_request(&s, 826, 415, round);
		add_file_packet(&s, 1024, round);
		add_file_packet(&s, 0, round);          /* payload exactly 267 */
		add_file_packet(&s, 1, round);
		add_file_packet(&s, 20000, round);      /* more than the small-payload limit */
		add_request(&s, 828, 100, round);       /* shorter than 267: a small message */
		add_request(&s, 828, 266, round);
		add_request(&s, 828, 0, round);
		add_request(&s, 900, 255, round);
		add_request(&s, 901, 255, round);
		add_request(&s, 902, 255, round);
		add_request(&s, 827, 255, round);
		add_request(&s, 825, 10, round);        /* wrong size: delivered, the decoder refuses */
		add_request(&s, 826, 0, round);         /* empty payload of a known code */
		add_request(&s, 777, 10, round);        /* unknown code, small payload */
		add_request(&s, 1234, 0, round);        /* unknown code, empty payload */
		add_request(&s, 1600, 16, round);       /* a response code sent as a request */
		add_request(&s, 65535, FRAME_SMALL_PAYLOAD_MAX, round);  /* the largest small one */
	}
	check_all_splits(&s, FRAME_REQUESTS);
	stream_free(&s);
}

/* Every response, with the sizes of SPEC.md 3 and with wrong ones up to the limit. */
static void test_response_stream(void **state)
{
	struct stream s;
	int round;

	(void)state;
	stream_init(&s);
	for (round = 0; round < 3; round++) {
		add_response(&s, 1600, 16);
		add_response(&s, 1601, 0);
		add_response(&s, 1602, 144);
		add_response(&s, 1603, 279);
		add_response(&s, 1604, 16);
		add_response(&s, 1605, 144);
		add_response(&s, 1606, 16);
		add_response(&s, 1607, 0);
		add_response(&s, 1604, 17);                        /* wrong size: delivered */
		add_response(&s, 1607, FRAME_SMALL_PAYLOAD_MAX);   /* the largest allowed */
	}
	check_all_splits(&s, FRAME_RESPONSES);
	stream_free(&s);
}

/* A header alone, as raw bytes. */
static size_t request_header(uint8_t out[REQ_HEADER_SIZE], uint16_t code, uint32_t size)
{
	struct msg_header h;
	struct buf b;

	memset(&h, 0, sizeof(h));
	h.version = 3;
	h.code = code;
	h.payload_size = size;
	buf_fixed(&b, out, REQ_HEADER_SIZE);
	assert_int_equal(msg_request_header_encode(&b, &h), 0);
	return buf_len(&b);
}

static size_t response_header(uint8_t out[RESP_HEADER_SIZE], uint16_t code, uint32_t size)
{
	struct msg_header h;
	struct buf b;

	memset(&h, 0, sizeof(h));
	h.version = 3;
	h.code = code;
	h.payload_size = size;
	buf_fixed(&b, out, RESP_HEADER_SIZE);
	assert_int_equal(msg_response_header_encode(&b, &h), 0);
	return buf_len(&b);
}

/* Feeds a header byte by byte: every byte but the last is taken with NEED_MORE, the last one
 * gives want_err (then nothing more is taken, ever). */
static void assert_header_refused(enum frame_direction dir, uint32_t max_stream,
    const uint8_t *hdr, size_t hlen, int want_err)
{
	struct frame_parser *p;
	struct frame_event ev;
	uint8_t more[64];
	size_t i, used;

	assert_non_null(p = malloc(sizeof(*p)));
	frame_init(p, dir);
	p->max_stream_payload = max_stream;
	for (i = 0; i + 1 < hlen; i++) {
		assert_int_equal(frame_feed(p, hdr + i, 1, &used, &ev), 0);
		assert_int_equal(used, 1);
		assert_int_equal(ev.type, FRAME_NEED_MORE);
		assert_false(frame_idle(p));
	}
	assert_int_equal(frame_feed(p, hdr + i, 1, &used, &ev), want_err);
	assert_int_equal(used, 1);
	/* Sticky: more input, even a valid message, changes nothing. */
	memset(more, 0, sizeof(more));
	assert_int_equal(frame_feed(p, more, sizeof(more), &used, &ev), want_err);
	assert_int_equal(used, 0);
	assert_int_equal(frame_feed(p, NULL, 0, &used, &ev), want_err);
	assert_false(frame_idle(p));
	free(p);

	/* Fed whole, with payload bytes after it: the header is all that is taken. */
	{
		uint8_t whole[REQ_HEADER_SIZE + 64];

		assert_non_null(p = malloc(sizeof(*p)));
		frame_init(p, dir);
		p->max_stream_payload = max_stream;
		memcpy(whole, hdr, hlen);
		memset(whole + hlen, 'p', sizeof(whole) - hlen);
		assert_int_equal(frame_feed(p, whole, sizeof(whole), &used, &ev), want_err);
		assert_int_equal(used, hlen);
		free(p);
	}
}

static void test_hostile_sizes(void **state)
{
	uint8_t h[REQ_HEADER_SIZE];
	size_t n;

	(void)state;
	/* A 4 GiB 828 with a lower limit: refused when its header completes. */
	n = request_header(h, 828, UINT32_MAX);
	assert_header_refused(FRAME_REQUESTS, 1u << 20, h, n, SD_ERR_TOO_LARGE);
	/* The limit is inclusive. */
	n = request_header(h, 828, (1u << 20) + 1);
	assert_header_refused(FRAME_REQUESTS, 1u << 20, h, n, SD_ERR_TOO_LARGE);
	/* A limit below 267 refuses even the packet header. */
	n = request_header(h, 828, 300);
	assert_header_refused(FRAME_REQUESTS, 100, h, n, SD_ERR_TOO_LARGE);
	/* Buffered codes must fit the small-payload limit, known or not. */
	n = request_header(h, 825, 5000);
	assert_header_refused(FRAME_REQUESTS, FILE_PAYLOAD_MAX, h, n, SD_ERR_TOO_LARGE);
	n = request_header(h, 826, FRAME_SMALL_PAYLOAD_MAX + 1);
	assert_header_refused(FRAME_REQUESTS, FILE_PAYLOAD_MAX, h, n, SD_ERR_TOO_LARGE);
	n = request_header(h, 777, 5000);
	assert_header_refused(FRAME_REQUESTS, FILE_PAYLOAD_MAX, h, n, SD_ERR_TOO_LARGE);
	n = request_header(h, 900, UINT32_MAX);
	assert_header_refused(FRAME_REQUESTS, FILE_PAYLOAD_MAX, h, n, SD_ERR_TOO_LARGE);
	/* Responses: only 1600-1607, and small. */
	n = response_header(h, 1599, 0);
	assert_header_refused(FRAME_RESPONSES, FILE_PAYLOAD_MAX, h, n, SD_ERR_UNKNOWN_CODE);
	n = response_header(h, 1608, 0);
	assert_header_refused(FRAME_RESPONSES, FILE_PAYLOAD_MAX, h, n, SD_ERR_UNKNOWN_CODE);
	n = response_header(h, 828, 300);
	assert_header_refused(FRAME_RESPONSES, FILE_PAYLOAD_MAX, h, n, SD_ERR_UNKNOWN_CODE);
	n = response_header(h, 0, 0);
	assert_header_refused(FRAME_RESPONSES, FILE_PAYLOAD_MAX, h, n, SD_ERR_UNKNOWN_CODE);
	n = response_header(h, 1603, 5000);
	assert_header_refused(FRAME_RESPONSES, FILE_PAYLOAD_MAX, h, n, SD_ERR_TOO_LARGE);
	n = response_header(h, 1607, UINT32_MAX);
	assert_header_refused(FRAME_RESPONSES, FILE_PAYLOAD_MAX, h, n, SD_ERR_TOO_LARGE);
}

/* Claims at the limits are accepted: an 828 of exactly the limit, and a 4 GiB 828 under the
 * default limit, which streams (the parser never holds it). */
static void test_large_claims_accepted(void **state)
{
	struct frame_parser *p;
	struct frame_event ev;
	uint8_t in[23 + 267 + 1000];
	struct msg_file_packet f;
	struct buf b;
	size_t used;

	(void)state;
	memset(&f, 0, sizeof(f));
	strcpy(f.file_name, "big");
	memset(in, 0xee, sizeof(in));
	buf_fixed(&b, in, sizeof(in));
	assert_int_equal(msg_put_file_packet_header(&b, NULL, &f, UINT32_MAX - 267, 0), 0);

	assert_non_null(p = malloc(sizeof(*p)));
	frame_init(p, FRAME_REQUESTS);
	assert_true(p->max_stream_payload == FILE_PAYLOAD_MAX);
	assert_int_equal(frame_feed(p, in, sizeof(in), &used, &ev), 0);
	assert_int_equal(ev.type, FRAME_STREAM_START);
	assert_int_equal(used, 23 + 267);
	assert_true(ev.header->payload_size == UINT32_MAX);
	assert_int_equal(frame_feed(p, in + used, sizeof(in) - used, &used, &ev), 0);
	assert_int_equal(ev.type, FRAME_STREAM_DATA);
	assert_int_equal(ev.len, 1000);
	assert_int_equal(used, 1000);
	assert_ptr_equal(ev.data, in + 23 + 267);
	assert_int_equal(frame_feed(p, NULL, 0, &used, &ev), 0);
	assert_int_equal(ev.type, FRAME_NEED_MORE);
	assert_false(frame_idle(p));
	free(p);

	/* Exactly at a lowered limit: accepted. */
	buf_fixed(&b, in, sizeof(in));
	assert_int_equal(msg_put_file_packet_header(&b, NULL, &f, 1000, 0), 0);
	assert_non_null(p = malloc(sizeof(*p)));
	frame_init(p, FRAME_REQUESTS);
	p->max_stream_payload = 267 + 1000;
	assert_int_equal(frame_feed(p, in, sizeof(in), &used, &ev), 0);
	assert_int_equal(ev.type, FRAME_STREAM_START);
	assert_int_equal(frame_feed(p, in + used, sizeof(in) - used, &used, &ev), 0);
	assert_int_equal(ev.type, FRAME_STREAM_DATA);
	assert_int_equal(frame_feed(p, NULL, 0, &used, &ev), 0);
	assert_int_equal(ev.type, FRAME_STREAM_END);
	assert_true(frame_idle(p));
	free(p);
}

/* An empty payload is a message as soon as its header is complete, in that same call, and the
 * bytes after it stay for the next call. An unknown request code is delivered, not an error. */
static void test_empty_and_unknown(void **state)
{
	struct frame_parser *p;
	struct frame_event ev;
	uint8_t in[64];
	size_t n, used;

	(void)state;
	assert_non_null(p = malloc(sizeof(*p)));
	frame_init(p, FRAME_RESPONSES);
	n = response_header(in, 1607, 0);
	assert_int_equal(frame_feed(p, in, n, &used, &ev), 0);
	assert_int_equal(ev.type, FRAME_MESSAGE);
	assert_int_equal(ev.len, 0);
	assert_int_equal(ev.header->code, 1607);
	assert_int_equal(used, n);
	assert_true(frame_idle(p));
	n += response_header(in + n, 1601, 0);
	assert_int_equal(frame_feed(p, in, n, &used, &ev), 0);
	assert_int_equal(ev.type, FRAME_MESSAGE);
	assert_int_equal(used, 7);
	assert_int_equal(frame_feed(p, in + 7, n - 7, &used, &ev), 0);
	assert_int_equal(ev.type, FRAME_MESSAGE);
	assert_int_equal(ev.header->code, 1601);
	free(p);

	assert_non_null(p = malloc(sizeof(*p)));
	frame_init(p, FRAME_REQUESTS);
	n = request_header(in, 777, 5);
	memcpy(in + n, "hello", 5);
	assert_int_equal(frame_feed(p, in, n + 5, &used, &ev), 0);
	assert_int_equal(ev.type, FRAME_MESSAGE);
	assert_int_equal(ev.header->code, 777);
	assert_int_equal(ev.len, 5);
	assert_memory_equal(ev.data, "hello", 5);
	assert_int_equal(used, n + 5);
	assert_true(frame_idle(p));
	free(p);
}

/* frame_idle is true only between messages. */
static void test_idle(void **state)
{
	struct frame_parser *p;
	struct frame_event ev;
	struct msg_file_packet f;
	uint8_t in[23 + 267 + 4];
	struct buf b;
	size_t used;

	(void)state;
	memset(&f, 0, sizeof(f));
	strcpy(f.file_name, "x");
	buf_fixed(&b, in, sizeof(in));
	assert_int_equal(msg_put_file_packet_header(&b, NULL, &f, 4, 0), 0);
	assert_int_equal(buf_put_bytes(&b, "abcd", 4), 0);
	assert_non_null(p = malloc(sizeof(*p)));
	frame_init(p, FRAME_REQUESTS);
	assert_true(frame_idle(p));
	assert_int_equal(frame_feed(p, in, 10, &used, &ev), 0);    /* inside the header */
	assert_false(frame_idle(p));
	assert_int_equal(frame_feed(p, in + 10, 100, &used, &ev), 0);  /* inside the payload */
	assert_int_equal(ev.type, FRAME_NEED_MORE);
	assert_false(frame_idle(p));
	assert_int_equal(frame_feed(p, in + 110, 180, &used, &ev), 0);
	assert_int_equal(ev.type, FRAME_STREAM_START);
	assert_false(frame_idle(p));
	assert_int_equal(frame_feed(p, in + 290, 4, &used, &ev), 0);
	assert_int_equal(ev.type, FRAME_STREAM_DATA);
	assert_false(frame_idle(p));  /* the end is not yet reported */
	assert_int_equal(frame_feed(p, in + 294, 0, &used, &ev), 0);
	assert_int_equal(ev.type, FRAME_STREAM_END);
	assert_true(frame_idle(p));
	free(p);
	assert_false(frame_idle(NULL));
}

static void test_bad_arguments(void **state)
{
	struct frame_parser *p;
	struct frame_event ev;
	uint8_t in[4] = { 0 };
	size_t used = 99;

	(void)state;
	assert_non_null(p = malloc(sizeof(*p)));
	frame_init(p, FRAME_REQUESTS);
	assert_int_equal(frame_feed(NULL, in, 4, &used, &ev), SD_ERR_INVALID_ARG);
	assert_int_equal(used, 0);
	assert_int_equal(frame_feed(p, in, 4, NULL, &ev), SD_ERR_INVALID_ARG);
	assert_int_equal(frame_feed(p, in, 4, &used, NULL), SD_ERR_INVALID_ARG);
	assert_int_equal(frame_feed(p, NULL, 4, &used, &ev), SD_ERR_INVALID_ARG);
	/* A caller's mistake is not a framing error: the parser goes on. */
	assert_true(frame_idle(p));
	assert_int_equal(frame_feed(p, NULL, 0, &used, &ev), 0);
	assert_int_equal(ev.type, FRAME_NEED_MORE);
	assert_int_equal(frame_feed(p, in, 4, &used, &ev), 0);
	assert_int_equal(used, 4);
	frame_init(NULL, FRAME_REQUESTS);
	free(p);
}

/* --- Version 4 (frame_init_v4) ------------------------------------------------------- */

/* Appends a whole encoded message (header + payload) and the events the version-4 parser must
 * give for it: its code's head, then the rest streamed, or one message. */
static void add_v4(struct stream *s, enum frame_direction dir, const uint8_t *msg, size_t len)
{
	struct msg_header h;
	struct buf v;
	size_t offset = buf_len(&s->b), hs, head;

	buf_view(&v, msg, len);
	if (dir == FRAME_REQUESTS) {
		assert_int_equal(msg_request_header_decode(&v, &h), 0);
		hs = REQ_HEADER_SIZE;
	} else {
		assert_int_equal(msg_response_header_decode(&v, &h), 0);
		hs = RESP_HEADER_SIZE;
	}
	assert_int_equal(h.payload_size, len - hs);
	assert_int_equal(buf_put_bytes(&s->b, msg, len), 0);
	head = fd_stream_head(1, dir, h.code);
	if (head > 0 && h.payload_size >= head) {
		expect(s, FRAME_STREAM_START, &h, offset, head);
		if (h.payload_size > head)
			expect(s, FRAME_STREAM_DATA, &h, offset + hs + head, h.payload_size - head);
		expect(s, FRAME_STREAM_END, &h, offset + len, 0);
	} else {
		expect(s, FRAME_MESSAGE, &h, offset, h.payload_size);
	}
}

/* Encodes with call into a scratch buffer (with room for data_len pattern bytes after it). */
#define ADD4(s, dir, data_len, call)                                                        \
	do {                                                                               \
		struct buf b_;                                                             \
		buf_init(&b_, (1u << 21));                                                 \
		assert_int_equal((call), 0);                                               \
		{                                                                          \
			uint8_t *d_ = malloc((size_t)(data_len) + 1u);                     \
			assert_non_null(d_);                                               \
			pattern(d_, (size_t)(data_len), (uint32_t)(data_len));             \
			assert_int_equal(buf_put_bytes(&b_, d_, (size_t)(data_len)), 0);   \
			free(d_);                                                          \
		}                                                                          \
		add_v4((s), (dir), buf_ptr(&b_), buf_len(&b_));                            \
		buf_free(&b_);                                                             \
	} while (0)

static void check_all_splits_v4(struct stream *s, enum frame_direction dir, uint32_t max)
{
	struct fd_log got;
	uint32_t seed;
	size_t n = buf_len(&s->b);

	s->want.consumed = n;
	s->want.idle = 1;
	assert_null(fd_run_version(1, dir, max, buf_ptr(&s->b), n, FD_WHOLE, 0, &got));
	assert_true(fd_log_equal(&got, &s->want));
	fd_log_free(&got);
	assert_null(fd_run_version(1, dir, max, buf_ptr(&s->b), n, FD_BYTES, 0, &got));
	assert_true(fd_log_equal(&got, &s->want));
	fd_log_free(&got);
	for (seed = 1; seed <= RANDOM_SPLITS / 4; seed++) {
		assert_null(fd_run_version(1, dir, max, buf_ptr(&s->b), n, FD_RANDOM, seed, &got));
		assert_true(fd_log_equal(&got, &s->want));
		fd_log_free(&got);
	}
}

/* Every version-4 request; PUT_DATA streamed up to its largest size; a version-3 code inside
 * TLS delivered as a message for the server to refuse. */
static void test_v4_request_stream(void **state)
{
	uint8_t key[PUBLIC_KEY_SIZE], id[CLIENT_ID_SIZE], h32[32];
	struct stream s;
	int round;

	(void)state;
	memset(key, 7, sizeof(key));
	memset(id, 8, sizeof(id));
	memset(h32, 9, sizeof(h32));
	stream_init(&s);
	for (round = 0; round < 2; round++) {
		ADD4(&s, FRAME_REQUESTS, 0, msg4_put_register(&b_, key, "alice"));
		ADD4(&s, FRAME_REQUESTS, 0, msg4_put_link(&b_, "alice", id));
		ADD4(&s, FRAME_REQUESTS, 0, msg4_put_prove(&b_, h32));
		ADD4(&s, FRAME_REQUESTS, 0, msg4_put_empty_request(&b_, REQ4_WHOAMI));
		ADD4(&s, FRAME_REQUESTS, 0, msg4_put_put_open(&b_, 1ull << 40, "big.iso"));
		ADD4(&s, FRAME_REQUESTS, 1000, msg4_put_put_data_head(&b_, 0, 0, 1000, 1000));
		ADD4(&s, FRAME_REQUESTS, 1, msg4_put_put_data_head(&b_, 1000, 1, 5000, 1));
		ADD4(&s, FRAME_REQUESTS, V4_MAX_CHUNK_MAX + V4_CHUNK_SLACK,
		    msg4_put_put_data_head(&b_, 1001, 1, V4_MAX_CHUNK_MAX,
		    V4_MAX_CHUNK_MAX + V4_CHUNK_SLACK));
		ADD4(&s, FRAME_REQUESTS, 0, msg4_put_put_finish(&b_, h32));
		ADD4(&s, FRAME_REQUESTS, 0, msg4_put_empty_request(&b_, REQ4_PUT_ABORT));
		ADD4(&s, FRAME_REQUESTS, 0, msg4_put_empty_request(&b_, REQ4_LIST));
		ADD4(&s, FRAME_REQUESTS, 0, msg4_put_get(&b_, 5, "a"));
		ADD4(&s, FRAME_REQUESTS, 0, msg4_put_delete(&b_, "a"));
		add_request(&s, 851, 12, 0);    /* shorter than its head: a message, refused later */
		add_request(&s, 851, 13, 0);    /* exactly its head: start, end */
		s.want.n--;                     /* (add_request expected a message: replace it) */
		{
			struct msg_header hh;
			size_t off = buf_len(&s.b) - 23 - 13;

			memset(&hh, 0, sizeof(hh));
			hh.version = 3;
			hh.code = 851;
			hh.payload_size = 13;
			expect(&s, FRAME_STREAM_START, &hh, off, 13);
			expect(&s, FRAME_STREAM_END, &hh, off + 23 + 13, 0);
		}
		add_request(&s, 825, 255, 1);   /* version 3 inside TLS: delivered */
		add_request(&s, 828, 300, 1);   /* not streamed in version 4: a small message */
		add_request(&s, 777, 10, 1);
		add_request(&s, 842, 31, 1);    /* wrong size under the limit: the decoder refuses */
	}
	check_all_splits_v4(&s, FRAME_REQUESTS, V4_PUT_DATA_PAYLOAD_MAX);
	stream_free(&s);
}

static void test_v4_response_stream(void **state)
{
	uint8_t id[CLIENT_ID_SIZE], h32[32], enc[128];
	struct msg4_put_state ps;
	struct msg4_put_done pd;
	struct msg4_get_end ge;
	struct msg4_file_entry e;
	struct stream s;
	int round;

	(void)state;
	memset(id, 1, sizeof(id));
	memset(h32, 2, sizeof(h32));
	memset(enc, 3, sizeof(enc));
	memset(&ps, 0, sizeof(ps));
	ps.max_chunk = V4_MAX_CHUNK_MIN;
	memset(&pd, 0, sizeof(pd));
	strcpy(pd.name, "f");
	memset(&ge, 0, sizeof(ge));
	memset(&e, 0, sizeof(e));
	strcpy(e.name, "file");
	stream_init(&s);
	for (round = 0; round < 2; round++) {
		ADD4(&s, FRAME_RESPONSES, 0, msg4_put_welcome(&b_, id, "alice"));
		ADD4(&s, FRAME_RESPONSES, 0, msg4_put_empty_response(&b_, RESP4_UNKNOWN));
		ADD4(&s, FRAME_RESPONSES, 0, msg4_put_challenge(&b_, enc));
		ADD4(&s, FRAME_RESPONSES, 0, msg4_put_put_state(&b_, &ps));
		ADD4(&s, FRAME_RESPONSES, 0, msg4_put_put_done(&b_, &pd));
		ADD4(&s, FRAME_RESPONSES, 0, msg4_put_listing_head(&b_, 0, 0));
		{
			/* A listing of 20 entries: streamed after its count. */
			struct buf b2;
			int k;
			uint32_t one = (uint32_t)msg4_listing_entry_size(&e);

			buf_init(&b2, 1u << 16);
			assert_int_equal(msg4_put_listing_head(&b2, 20, 20 * one), 0);
			for (k = 0; k < 20; k++)
				assert_int_equal(msg4_put_listing_entry(&b2, &e), 0);
			add_v4(&s, FRAME_RESPONSES, buf_ptr(&b2), buf_len(&b2));
			buf_free(&b2);
		}
		ADD4(&s, FRAME_RESPONSES, 100, msg4_put_get_data_head(&b_, 0, 100));
		ADD4(&s, FRAME_RESPONSES, V4_MAX_CHUNK_MAX,
		    msg4_put_get_data_head(&b_, 100, V4_MAX_CHUNK_MAX));
		ADD4(&s, FRAME_RESPONSES, 0, msg4_put_get_data_head(&b_, 7, 0));
		ADD4(&s, FRAME_RESPONSES, 0, msg4_put_get_end(&b_, &ge));
		ADD4(&s, FRAME_RESPONSES, 0, msg4_put_empty_response(&b_, RESP4_OK));
		ADD4(&s, FRAME_RESPONSES, 0, msg4_put_error(&b_, 3, "register first"));
		add_response(&s, 1616, 7);         /* shorter than its head: a message */
		add_response(&s, 1613, 10);        /* wrong size under the limit: delivered */
	}
	check_all_splits_v4(&s, FRAME_RESPONSES, V4_GET_DATA_PAYLOAD_MAX);
	stream_free(&s);
}

/* Feeds one header to a fresh parser of the given version; returns what the last byte gave. */
static int feed_header(int v4, enum frame_direction dir, uint32_t max, uint16_t code,
    uint32_t size)
{
	struct frame_parser *p;
	struct frame_event ev;
	uint8_t hdr[REQ_HEADER_SIZE];
	size_t n, used;
	int r;

	n = dir == FRAME_REQUESTS ? request_header(hdr, code, size) :
	    response_header(hdr, code, size);
	assert_non_null(p = malloc(sizeof(*p)));
	if (v4)
		frame_init_v4(p, dir);
	else
		frame_init(p, dir);
	if (max != 0)
		p->max_stream_payload = max;
	r = frame_feed(p, hdr, n, &used, &ev);
	assert_int_equal(used, n);
	if (r == 0)
		assert_false(frame_idle(p) && ev.type == FRAME_NEED_MORE && size > 0);
	free(p);
	return r;
}

static void test_v4_hostile_sizes(void **state)
{
	const uint32_t lowered = V4_PUT_DATA_HEAD_SIZE + V4_MAX_CHUNK_MIN + V4_CHUNK_SLACK;
	uint8_t h[REQ_HEADER_SIZE];
	size_t n;

	(void)state;
	/* PUT_DATA: the default limit, and a server's lowered one, both inclusive. */
	assert_int_equal(feed_header(1, FRAME_REQUESTS, 0, 851, V4_PUT_DATA_PAYLOAD_MAX), 0);
	assert_int_equal(feed_header(1, FRAME_REQUESTS, 0, 851, V4_PUT_DATA_PAYLOAD_MAX + 1),
	    SD_ERR_TOO_LARGE);
	assert_int_equal(feed_header(1, FRAME_REQUESTS, 0, 851, UINT32_MAX), SD_ERR_TOO_LARGE);
	assert_int_equal(feed_header(1, FRAME_REQUESTS, lowered, 851, lowered), 0);
	assert_int_equal(feed_header(1, FRAME_REQUESTS, lowered, 851, lowered + 1),
	    SD_ERR_TOO_LARGE);
	/* Each small version-4 code has its own limit. */
	assert_int_equal(feed_header(1, FRAME_REQUESTS, 0, 840, V4_REGISTER_PAYLOAD_MAX), 0);
	assert_int_equal(feed_header(1, FRAME_REQUESTS, 0, 840, V4_REGISTER_PAYLOAD_MAX + 1),
	    SD_ERR_TOO_LARGE);
	assert_int_equal(feed_header(1, FRAME_REQUESTS, 0, 842, 33), SD_ERR_TOO_LARGE);
	assert_int_equal(feed_header(1, FRAME_REQUESTS, 0, 843, 1), SD_ERR_TOO_LARGE);
	assert_int_equal(feed_header(1, FRAME_REQUESTS, 0, 860, 1), SD_ERR_TOO_LARGE);
	assert_int_equal(feed_header(1, FRAME_REQUESTS, 0, 862, V4_NAME_FIELD_MAX + 1),
	    SD_ERR_TOO_LARGE);
	/* A version-3 828 inside TLS is not streamed: small, or refused. */
	assert_int_equal(feed_header(1, FRAME_REQUESTS, 0, 828, FRAME_SMALL_PAYLOAD_MAX + 1),
	    SD_ERR_TOO_LARGE);
	/* Responses: only 1610-1619, each within its limit. */
	assert_int_equal(feed_header(1, FRAME_RESPONSES, 0, 1600, 16), SD_ERR_UNKNOWN_CODE);
	assert_int_equal(feed_header(1, FRAME_RESPONSES, 0, 1607, 0), SD_ERR_UNKNOWN_CODE);
	assert_int_equal(feed_header(1, FRAME_RESPONSES, 0, 1609, 0), SD_ERR_UNKNOWN_CODE);
	assert_int_equal(feed_header(1, FRAME_RESPONSES, 0, 1620, 0), SD_ERR_UNKNOWN_CODE);
	assert_int_equal(feed_header(1, FRAME_RESPONSES, 0, 851, 13), SD_ERR_UNKNOWN_CODE);
	assert_int_equal(feed_header(1, FRAME_RESPONSES, 0, 1618, 1), SD_ERR_TOO_LARGE);
	assert_int_equal(feed_header(1, FRAME_RESPONSES, 0, 1619, V4_ERROR_PAYLOAD_MAX + 1),
	    SD_ERR_TOO_LARGE);
	assert_int_equal(feed_header(1, FRAME_RESPONSES, 0, 1616, V4_GET_DATA_PAYLOAD_MAX), 0);
	assert_int_equal(feed_header(1, FRAME_RESPONSES, 0, 1616, V4_GET_DATA_PAYLOAD_MAX + 1),
	    SD_ERR_TOO_LARGE);
	assert_int_equal(feed_header(1, FRAME_RESPONSES, 0, 1615, V4_LISTING_PAYLOAD_MAX), 0);
	assert_int_equal(feed_header(1, FRAME_RESPONSES, 0, 1615, V4_LISTING_PAYLOAD_MAX + 1),
	    SD_ERR_TOO_LARGE);
	/* Version 3 is unchanged: version-4 codes are unknown there. */
	assert_int_equal(feed_header(0, FRAME_REQUESTS, 0, 851, V4_PUT_DATA_PAYLOAD_MAX),
	    SD_ERR_TOO_LARGE);
	assert_int_equal(feed_header(0, FRAME_REQUESTS, 0, 843, 1), 0);
	assert_int_equal(feed_header(0, FRAME_RESPONSES, 0, 1610, 10), SD_ERR_UNKNOWN_CODE);
	/* Refused at the header's last byte, sticky, as in version 3 (the v4 parser). */
	{
		struct frame_parser *p;
		struct frame_event ev;
		size_t used, i;

		n = request_header(h, 851, V4_PUT_DATA_PAYLOAD_MAX + 1);
		assert_non_null(p = malloc(sizeof(*p)));
		frame_init_v4(p, FRAME_REQUESTS);
		for (i = 0; i + 1 < n; i++)
			assert_int_equal(frame_feed(p, h + i, 1, &used, &ev), 0);
		assert_int_equal(frame_feed(p, h + i, 1, &used, &ev), SD_ERR_TOO_LARGE);
		assert_int_equal(frame_feed(p, h, 1, &used, &ev), SD_ERR_TOO_LARGE);
		assert_int_equal(used, 0);
		free(p);
	}
}

static void test_v4_init(void **state)
{
	struct frame_parser *p;

	(void)state;
	assert_non_null(p = malloc(sizeof(*p)));
	frame_init_v4(p, FRAME_REQUESTS);
	assert_true(p->v4);
	assert_int_equal(p->max_stream_payload, V4_PUT_DATA_PAYLOAD_MAX);
	assert_true(frame_idle(p));
	frame_init_v4(p, FRAME_RESPONSES);
	assert_int_equal(p->max_stream_payload, V4_GET_DATA_PAYLOAD_MAX);
	frame_init(p, FRAME_REQUESTS);
	assert_false(p->v4);
	assert_true(p->max_stream_payload == FILE_PAYLOAD_MAX);
	frame_init_v4(NULL, FRAME_REQUESTS);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_stream),
		cmocka_unit_test(test_response_stream),
		cmocka_unit_test(test_hostile_sizes),
		cmocka_unit_test(test_large_claims_accepted),
		cmocka_unit_test(test_empty_and_unknown),
		cmocka_unit_test(test_idle),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_v4_request_stream),
		cmocka_unit_test(test_v4_response_stream),
		cmocka_unit_test(test_v4_hostile_sizes),
		cmocka_unit_test(test_v4_init),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
