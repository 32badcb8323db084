/* test_msg4.c: the version-4 messages (protocol/msg4.h). Every message: its header (version
 * 4, code, payload size), a round trip through decoder and encoder to the same bytes, every
 * cut refused with the output cleared, a trailing byte refused, every single-bit flip either
 * refused or decoded to something that encodes back to exactly the flipped bytes; then the
 * hostile values of each field (string lengths, UTF-8, sizes, chunk limits, reasons). */
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
#include "../../protocol/msg.h"
#include "../../protocol/msg4.h"

#define MSG_MAX 2048u

/* One message kind: a decoder and an encoder over the decoded form, as adapters. */
struct kind {
	const char *what;
	uint16_t code;
	int request;
	size_t out_size;
	int (*dec)(const uint8_t *p, size_t n, void *out);
	int (*enc)(struct buf *b, const void *out);
};

#define ADAPT(name, type, decode, encode_expr)                                             \
	static int dec_##name(const uint8_t *p, size_t n, void *out)                       \
	{                                                                                  \
		return decode(p, n, (type *)out);                                          \
	}                                                                                  \
	static int enc_##name(struct buf *b, const void *out)                              \
	{                                                                                  \
		const type *m = out;                                                       \
		return encode_expr;                                                        \
	}

ADAPT(register, struct msg4_register, msg4_register_decode,
    msg4_put_register(b, m->public_key, m->name))
ADAPT(link, struct msg4_link, msg4_link_decode, msg4_put_link(b, m->name, m->id))
ADAPT(prove, uint8_t, msg4_prove_decode, msg4_put_prove(b, m))
ADAPT(put_open, struct msg4_put_open, msg4_put_open_decode,
    msg4_put_put_open(b, m->size, m->name))
ADAPT(put_finish, uint8_t, msg4_put_finish_decode, msg4_put_put_finish(b, m))
ADAPT(get, struct msg4_get, msg4_get_decode, msg4_put_get(b, m->offset, m->name))
ADAPT(delete, char, msg4_delete_decode, msg4_put_delete(b, m))
ADAPT(welcome, struct msg4_welcome, msg4_welcome_decode, msg4_put_welcome(b, m->id, m->name))
ADAPT(challenge, uint8_t, msg4_challenge_decode, msg4_put_challenge(b, m))
ADAPT(put_state, struct msg4_put_state, msg4_put_state_decode, msg4_put_put_state(b, m))
ADAPT(put_done, struct msg4_put_done, msg4_put_done_decode, msg4_put_put_done(b, m))
ADAPT(get_end, struct msg4_get_end, msg4_get_end_decode, msg4_put_get_end(b, m))
ADAPT(error, struct msg4_error, msg4_error_decode, msg4_put_error(b, m->reason, m->message))

static const struct kind kinds[] = {
	{ "register", REQ4_REGISTER, 1, sizeof(struct msg4_register), dec_register, enc_register },
	{ "link", REQ4_LINK, 1, sizeof(struct msg4_link), dec_link, enc_link },
	{ "prove", REQ4_PROVE, 1, V4_NONCE_SIZE, dec_prove, enc_prove },
	{ "put open", REQ4_PUT_OPEN, 1, sizeof(struct msg4_put_open), dec_put_open, enc_put_open },
	{ "put finish", REQ4_PUT_FINISH, 1, V4_SHA256_SIZE, dec_put_finish, enc_put_finish },
	{ "get", REQ4_GET, 1, sizeof(struct msg4_get), dec_get, enc_get },
	{ "delete", REQ4_DELETE, 1, V4_NAME_BUF, dec_delete, enc_delete },
	{ "welcome", RESP4_WELCOME, 0, sizeof(struct msg4_welcome), dec_welcome, enc_welcome },
	{ "challenge", RESP4_CHALLENGE, 0, V4_CHALLENGE_SIZE, dec_challenge, enc_challenge },
	{ "put state", RESP4_PUT_STATE, 0, sizeof(struct msg4_put_state), dec_put_state,
	    enc_put_state },
	{ "put done", RESP4_PUT_DONE, 0, sizeof(struct msg4_put_done), dec_put_done, enc_put_done },
	{ "get end", RESP4_GET_END, 0, sizeof(struct msg4_get_end), dec_get_end, enc_get_end },
	{ "error", RESP4_ERROR, 0, sizeof(struct msg4_error), dec_error, enc_error },
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

static const struct kind *kind_of(uint16_t code)
{
	size_t i;

	for (i = 0; i < NKINDS; i++)
		if (kinds[i].code == code)
			return &kinds[i];
	fail();
	return NULL;
}

static void pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((i + 1) * 131u + seed * 17u);
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return 0;
	return 1;
}

/* The header of msg: version 4, code, payload size; returns the header size. */
static size_t check_header(const struct kind *k, const uint8_t *msg, size_t len)
{
	struct msg_header h;
	struct buf b;
	size_t hs = k->request ? REQ_HEADER_SIZE : RESP_HEADER_SIZE;

	buf_view(&b, msg, len);
	if (k->request) {
		assert_int_equal(msg_request_header_decode(&b, &h), 0);
		assert_true(all_zero(h.client_id, CLIENT_ID_SIZE));
	} else {
		assert_int_equal(msg_response_header_decode(&b, &h), 0);
	}
	assert_int_equal(h.version, 4);
	assert_int_equal(h.code, k->code);
	assert_int_equal(h.payload_size, len - hs);
	assert_true(h.payload_size <= msg4_payload_max(k->code));
	return hs;
}

/* All the generic promises for one encoded message of kind k. */
static void check_message(const struct kind *k, const uint8_t *msg, size_t len)
{
	uint8_t *out, *out2, again[MSG_MAX], flipped[MSG_MAX + 1];
	const uint8_t *p;
	struct buf b;
	size_t hs, n, cut, i;
	int bit, r;

	assert_true(len <= MSG_MAX);
	hs = check_header(k, msg, len);
	p = msg + hs;
	n = len - hs;
	assert_non_null(out = malloc(k->out_size));
	assert_non_null(out2 = malloc(k->out_size));

	/* Round trip to the same bytes. */
	assert_int_equal(k->dec(p, n, out), 0);
	buf_fixed(&b, again, sizeof(again));
	assert_int_equal(k->enc(&b, out), 0);
	assert_int_equal(buf_len(&b), len);
	assert_memory_equal(again, msg, len);

	/* Every cut: refused, output cleared. */
	for (cut = 0; cut < n; cut++) {
		memset(out2, 0xa5, k->out_size);
		r = k->dec(p, cut, out2);
		assert_int_not_equal(r, 0);
		assert_true(all_zero(out2, k->out_size));
	}
	/* A trailing byte. */
	memcpy(flipped, p, n);
	flipped[n] = 0;
	r = k->dec(flipped, n + 1, out2);
	assert_true(r == SD_ERR_TRAILING || r == SD_ERR_BAD_SIZE);
	assert_true(all_zero(out2, k->out_size));

	/* Bit flips in the payload: refused, or canonical (encodes back to the flipped bytes). */
	for (i = 0; i < n; i++) {
		for (bit = 0; bit < 8; bit++) {
			memcpy(flipped, msg, len);
			flipped[hs + i] ^= (uint8_t)(1u << bit);
			if (k->dec(flipped + hs, n, out2) != 0) {
				assert_true(all_zero(out2, k->out_size));
				continue;
			}
			buf_fixed(&b, again, sizeof(again));
			assert_int_equal(k->enc(&b, out2), 0);
			assert_int_equal(buf_len(&b), len);
			assert_memory_equal(again, flipped, len);
		}
	}
	free(out);
	free(out2);
}

/* Encodes with the given call into a fresh buffer, then runs check_message. */
#define CHECK(code, call)                                                                   \
	do {                                                                               \
		uint8_t mem_[MSG_MAX];                                                     \
		struct buf b_;                                                             \
		buf_fixed(&b_, mem_, sizeof(mem_));                                        \
		assert_int_equal((call), 0);                                               \
		check_message(kind_of(code), mem_, buf_len(&b_));                          \
	} while (0)

static const char *names[] = {
	"a", "Alice", "héllo wörld ✓ 😀", "file.tar.gz", "x y z", NULL,
};

static void test_round_trips(void **state)
{
	uint8_t key[PUBLIC_KEY_SIZE], id[CLIENT_ID_SIZE], h[V4_SHA256_SIZE], enc[V4_CHALLENGE_SIZE];
	char longest[V4_NAME_BUF], msg[V4_MESSAGE_BUF];
	struct msg4_put_state ps;
	struct msg4_put_done pd;
	struct msg4_get_end ge;
	size_t i;

	(void)state;
	memset(longest, 'n', V4_NAME_MAX_LEN);
	longest[V4_NAME_MAX_LEN] = '\0';
	names[5] = longest;
	pattern(key, sizeof(key), 1);
	pattern(id, sizeof(id), 2);
	pattern(h, sizeof(h), 3);
	pattern(enc, sizeof(enc), 4);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *nm = names[i];

		CHECK(REQ4_REGISTER, msg4_put_register(&b_, key, nm));
		CHECK(REQ4_LINK, msg4_put_link(&b_, nm, id));
		CHECK(REQ4_PUT_OPEN, msg4_put_put_open(&b_, 0, nm));
		CHECK(REQ4_PUT_OPEN, msg4_put_put_open(&b_, (uint64_t)V4_FILE_SIZE_MAX, nm));
		CHECK(REQ4_GET, msg4_put_get(&b_, 123456789012ull, nm));
		CHECK(REQ4_DELETE, msg4_put_delete(&b_, nm));
		CHECK(RESP4_WELCOME, msg4_put_welcome(&b_, id, nm));
		memset(&pd, 0, sizeof(pd));
		pd.size = 5ull << 32;
		memcpy(pd.sha256, h, sizeof(h));
		pd.cksum = 0xdeadbeef;
		strcpy(pd.name, nm);
		CHECK(RESP4_PUT_DONE, msg4_put_put_done(&b_, &pd));
	}
	CHECK(REQ4_PROVE, msg4_put_prove(&b_, h));
	CHECK(REQ4_PUT_FINISH, msg4_put_put_finish(&b_, h));
	CHECK(RESP4_CHALLENGE, msg4_put_challenge(&b_, enc));
	memset(&ps, 0, sizeof(ps));
	memcpy(ps.prefix_sha256, h, sizeof(h));
	ps.max_chunk = V4_MAX_CHUNK_MIN;
	CHECK(RESP4_PUT_STATE, msg4_put_put_state(&b_, &ps));
	ps.offset = 1ull << 40;
	ps.max_chunk = V4_MAX_CHUNK_MAX;
	CHECK(RESP4_PUT_STATE, msg4_put_put_state(&b_, &ps));
	memset(&ge, 0, sizeof(ge));
	ge.size = 42;
	memcpy(ge.sha256, h, sizeof(h));
	CHECK(RESP4_GET_END, msg4_put_get_end(&b_, &ge));
	CHECK(RESP4_ERROR, msg4_put_error(&b_, V4_REASON_NAME_TAKEN, "name taken"));
	CHECK(RESP4_ERROR, msg4_put_error(&b_, V4_REASON_STORAGE, ""));
	CHECK(RESP4_ERROR, msg4_put_error(&b_, V4_REASON_BAD_REQUEST, NULL));
	memset(msg, 'm', V4_MESSAGE_MAX_LEN);
	msg[V4_MESSAGE_MAX_LEN] = '\0';
	CHECK(RESP4_ERROR, msg4_put_error(&b_, V4_REASON_BUSY, msg));
}

/* Field values come out as they went in (the round trip above proves bytes, this the API). */
static void test_decoded_fields(void **state)
{
	uint8_t mem[MSG_MAX], key[PUBLIC_KEY_SIZE], id[CLIENT_ID_SIZE];
	struct msg4_register reg;
	struct msg4_put_open po;
	struct msg4_error er;
	struct buf b;

	(void)state;
	pattern(key, sizeof(key), 9);
	pattern(id, sizeof(id), 8);
	buf_fixed(&b, mem, sizeof(mem));
	assert_int_equal(msg4_put_register(&b, key, "Zoë"), 0);
	assert_int_equal(buf_len(&b), 23 + 160 + 2 + 4);
	assert_int_equal(mem[16], 4);          /* version */
	assert_int_equal(mem[17], 840 & 0xff); /* code, little-endian */
	assert_int_equal(mem[18], 840 >> 8);
	assert_int_equal(mem[23 + 160], 4);    /* name length u16 */
	assert_int_equal(mem[23 + 161], 0);
	assert_int_equal(msg4_register_decode(mem + 23, buf_len(&b) - 23, &reg), 0);
	assert_memory_equal(reg.public_key, key, sizeof(key));
	assert_string_equal(reg.name, "Zoë");

	buf_fixed(&b, mem, sizeof(mem));
	assert_int_equal(msg4_put_put_open(&b, 0x0102030405060708ull, "f"), 0);
	assert_int_equal(mem[23], 0x08);       /* u64 little-endian */
	assert_int_equal(mem[30], 0x01);
	assert_int_equal(msg4_put_open_decode(mem + 23, buf_len(&b) - 23, &po), 0);
	assert_true(po.size == 0x0102030405060708ull);
	assert_string_equal(po.name, "f");

	buf_fixed(&b, mem, sizeof(mem));
	assert_int_equal(msg4_put_error(&b, 6, "hash differs"), 0);
	assert_int_equal(mem[0], 4);
	assert_int_equal(msg4_error_decode(mem + 7, buf_len(&b) - 7, &er), 0);
	assert_int_equal(er.reason, V4_REASON_MISMATCH);
	assert_string_equal(er.message, "hash differs");
	assert_string_equal(msg4_reason_name(er.reason), "mismatch");

	/* Empty messages. */
	buf_fixed(&b, mem, sizeof(mem));
	assert_int_equal(msg4_put_empty_request(&b, REQ4_WHOAMI), 0);
	assert_int_equal(msg4_put_empty_request(&b, REQ4_PUT_ABORT), 0);
	assert_int_equal(msg4_put_empty_request(&b, REQ4_LIST), 0);
	assert_int_equal(buf_len(&b), 3 * 23);
	assert_int_equal(mem[23 + 17] | mem[23 + 18] << 8, 853);
	assert_int_equal(msg4_put_empty_request(&b, REQ4_PROVE), SD_ERR_INVALID_ARG);
	assert_int_equal(msg4_put_empty_response(&b, RESP4_OK), 0);
	assert_int_equal(msg4_put_empty_response(&b, RESP4_UNKNOWN), 0);
	assert_int_equal(msg4_put_empty_response(&b, RESP4_ERROR), SD_ERR_INVALID_ARG);
	assert_int_equal(buf_len(&b), 3 * 23 + 2 * 7);
	assert_int_equal(msg4_empty_decode(NULL, 0), 0);
	assert_int_equal(msg4_empty_decode(mem, 1), SD_ERR_BAD_SIZE);
}

/* A name field: len u16 then bytes, placed after `before` bytes of a payload of a name-only
 * message (862): each hostile form is refused with its error. */
static int delete_with(const uint8_t *field, size_t n)
{
	char name[V4_NAME_BUF];

	return msg4_delete_decode(field, n, name);
}

static void test_hostile_strings(void **state)
{
	uint8_t f[400];
	char name[V4_NAME_BUF];
	uint8_t mem[MSG_MAX];
	struct buf b;
	static const struct {
		const char *bytes;
		size_t n;
		int ok;
	} utf8[] = {
		{ "abc", 3, 1 },
		{ "\xc3\xa9", 2, 1 },             /* é */
		{ "\xe2\x9c\x93", 3, 1 },         /* ✓ */
		{ "\xf0\x9f\x98\x80", 4, 1 },     /* 😀 */
		{ "\xf4\x8f\xbf\xbf", 4, 1 },     /* U+10FFFF */
		{ "a\0b", 3, 0 },                 /* NUL */
		{ "\xc0\x80", 2, 0 },             /* overlong NUL */
		{ "\xc1\xbf", 2, 0 },             /* overlong */
		{ "\xe0\x80\xaf", 3, 0 },         /* overlong */
		{ "\xed\xa0\x80", 3, 0 },         /* surrogate */
		{ "\xf4\x90\x80\x80", 4, 0 },     /* above U+10FFFF */
		{ "\xf5\x80\x80\x80", 4, 0 },
		{ "\xff", 1, 0 },
		{ "\x80", 1, 0 },                 /* lone continuation */
		{ "\xc3", 1, 0 },                 /* cut sequence */
		{ "\xe2\x9c", 2, 0 },
		{ "\xc3\x28", 2, 0 },             /* bad continuation */
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(utf8) / sizeof(utf8[0]); i++) {
		f[0] = (uint8_t)utf8[i].n;
		f[1] = 0;
		memcpy(f + 2, utf8[i].bytes, utf8[i].n);
		assert_int_equal(delete_with(f, 2 + utf8[i].n), utf8[i].ok ? 0 : SD_ERR_BAD_STRING);
		assert_int_equal(msg4_name_valid(utf8[i].bytes, utf8[i].n), utf8[i].ok);
	}
	/* Empty name. */
	f[0] = 0;
	f[1] = 0;
	assert_int_equal(delete_with(f, 2), SD_ERR_BAD_STRING);
	/* Length over the limit, however many bytes follow. */
	memset(f, 'a', sizeof(f));
	f[0] = 255;
	f[1] = 0;
	assert_int_equal(delete_with(f, 2 + 255), SD_ERR_TOO_LARGE);
	f[0] = 0xff;
	f[1] = 0xff;
	assert_int_equal(delete_with(f, sizeof(f)), SD_ERR_TOO_LARGE);
	/* Length past the end of the payload. */
	f[0] = 10;
	f[1] = 0;
	assert_int_equal(delete_with(f, 2 + 9), SD_ERR_BAD_SIZE);
	/* Exactly the limit. */
	f[0] = 254;
	assert_int_equal(msg4_delete_decode(f, 2 + 254, name), 0);
	assert_int_equal(strlen(name), 254);

	/* Encoders refuse the same; nothing is appended. */
	buf_fixed(&b, mem, sizeof(mem));
	memset(f, 'a', sizeof(f));
	f[255] = '\0';
	assert_int_equal(msg4_put_delete(&b, (const char *)f), SD_ERR_TOO_LARGE);
	assert_int_equal(msg4_put_delete(&b, ""), SD_ERR_BAD_STRING);
	assert_int_equal(msg4_put_delete(&b, "\xc0\x80"), SD_ERR_BAD_STRING);
	assert_int_equal(msg4_put_delete(&b, NULL), SD_ERR_INVALID_ARG);
	assert_int_equal(msg4_put_put_open(&b, 1, "\xff"), SD_ERR_BAD_STRING);
	assert_int_equal(buf_len(&b), 0);
	/* A full buffer: SD_ERR_FULL and nothing half-written. */
	buf_fixed(&b, mem, 30);
	assert_int_equal(msg4_put_delete(&b, "abcdefghij"), SD_ERR_FULL);
	assert_int_equal(buf_len(&b), 0);
}

static void test_hostile_values(void **state)
{
	uint8_t mem[MSG_MAX], h[V4_SHA256_SIZE] = { 0 };
	struct msg4_put_state ps;
	struct msg4_put_open po;
	struct msg4_error er;
	struct msg4_get_end ge;
	struct buf b;
	char big[V4_MESSAGE_MAX_LEN + 2];

	(void)state;
	/* Sizes and offsets above 2^63 - 1. */
	buf_fixed(&b, mem, sizeof(mem));
	assert_int_equal(msg4_put_put_open(&b, (uint64_t)V4_FILE_SIZE_MAX + 1, "f"),
	    SD_ERR_BAD_FIELD);
	assert_int_equal(msg4_put_get(&b, UINT64_MAX, "f"), SD_ERR_BAD_FIELD);
	assert_int_equal(buf_len(&b), 0);
	assert_int_equal(msg4_put_put_open(&b, 7, "f"), 0);
	mem[23 + 7] = 0x80;  /* size 2^63 + 7 */
	assert_int_equal(msg4_put_open_decode(mem + 23, buf_len(&b) - 23, &po), SD_ERR_BAD_FIELD);
	assert_true(po.size == 0);

	/* max_chunk outside 64 KiB .. 1 MiB. */
	memset(&ps, 0, sizeof(ps));
	ps.max_chunk = V4_MAX_CHUNK_MIN - 1;
	buf_fixed(&b, mem, sizeof(mem));
	assert_int_equal(msg4_put_put_state(&b, &ps), SD_ERR_BAD_FIELD);
	ps.max_chunk = V4_MAX_CHUNK_MAX + 1;
	assert_int_equal(msg4_put_put_state(&b, &ps), SD_ERR_BAD_FIELD);
	ps.max_chunk = V4_MAX_CHUNK_MAX;
	assert_int_equal(msg4_put_put_state(&b, &ps), 0);
	mem[7 + 8 + 32 + 2] = 0x20;  /* max_chunk 0x00200000 = 2 MiB */
	assert_int_equal(msg4_put_state_decode(mem + 7, V4_PUT_STATE_SIZE, &ps), SD_ERR_BAD_FIELD);

	/* Reasons outside 1..9; messages over the limit. */
	buf_fixed(&b, mem, sizeof(mem));
	assert_int_equal(msg4_put_error(&b, 0, "x"), SD_ERR_BAD_FIELD);
	assert_int_equal(msg4_put_error(&b, 10, "x"), SD_ERR_BAD_FIELD);
	memset(big, 'm', sizeof(big));
	big[V4_MESSAGE_MAX_LEN + 1] = '\0';
	assert_int_equal(msg4_put_error(&b, 1, big), SD_ERR_TOO_LARGE);
	assert_int_equal(buf_len(&b), 0);
	assert_int_equal(msg4_put_error(&b, 9, "x"), 0);
	mem[7] = 10;
	assert_int_equal(msg4_error_decode(mem + 7, buf_len(&b) - 7, &er), SD_ERR_BAD_FIELD);
	mem[7] = 0;
	assert_int_equal(msg4_error_decode(mem + 7, buf_len(&b) - 7, &er), SD_ERR_BAD_FIELD);
	mem[7] = 9;
	mem[9] = 0x01;  /* message length 0x0401 = 1025 */
	mem[10] = 0x04;
	assert_int_equal(msg4_error_decode(mem + 7, buf_len(&b) - 7, &er), SD_ERR_TOO_LARGE);

	buf_fixed(&b, mem, sizeof(mem));
	memset(&ge, 0, sizeof(ge));
	ge.size = UINT64_MAX;
	assert_int_equal(msg4_put_get_end(&b, &ge), SD_ERR_BAD_FIELD);
	assert_int_equal(msg4_put_prove(&b, NULL), SD_ERR_INVALID_ARG);
	assert_int_equal(msg4_put_put_finish(&b, h), 0);
	assert_int_equal(msg4_put_finish_decode(mem + 23, 31, h), SD_ERR_BAD_SIZE);
	assert_int_equal(msg4_put_finish_decode(mem + 23, 33, h), SD_ERR_BAD_SIZE);
	assert_int_equal(msg4_put_finish_decode(NULL, 3, h), SD_ERR_INVALID_ARG);
}

/* 851: the head, its checks against the data length and max_chunk. */
static void test_put_data(void **state)
{
	uint8_t mem[MSG_MAX];
	struct msg4_put_data d;
	struct msg_header h;
	struct buf b, v;
	const uint32_t mc = V4_MAX_CHUNK_MIN;
	size_t cut;

	(void)state;
	buf_fixed(&b, mem, sizeof(mem));
	assert_int_equal(msg4_put_put_data_head(&b, 1ull << 33, 0, 1000, 1000), 0);
	assert_int_equal(buf_len(&b), 23 + 13);
	buf_view(&v, mem, 23);
	assert_int_equal(msg_request_header_decode(&v, &h), 0);
	assert_int_equal(h.code, 851);
	assert_int_equal(h.version, 4);
	assert_int_equal(h.payload_size, 13 + 1000);
	assert_int_equal(msg4_put_data_decode(mem + 23, 13, h.payload_size, mc, &d), 0);
	assert_true(d.offset == 1ull << 33);
	assert_int_equal(d.flags, 0);
	assert_int_equal(d.plain_len, 1000);
	assert_int_equal(d.data_len, 1000);
	for (cut = 0; cut < 13; cut++)
		assert_int_equal(msg4_put_data_decode(mem + 23, cut, h.payload_size, mc, &d),
		    SD_ERR_BAD_SIZE);
	assert_int_equal(msg4_put_data_decode(mem + 23, 14, h.payload_size, mc, &d),
	    SD_ERR_BAD_SIZE);
	/* Raw data must be exactly plain_len. */
	assert_int_equal(msg4_put_data_decode(mem + 23, 13, 13 + 999, mc, &d), SD_ERR_BAD_SIZE);
	assert_int_equal(msg4_put_data_decode(mem + 23, 13, 13, mc, &d), SD_ERR_BAD_SIZE);
	assert_int_equal(msg4_put_data_decode(mem + 23, 13, 12, mc, &d), SD_ERR_BAD_SIZE);
	/* max_chunk out of its range is the caller's mistake. */
	assert_int_equal(msg4_put_data_decode(mem + 23, 13, h.payload_size, 100, &d),
	    SD_ERR_INVALID_ARG);

	/* Compressed: any data length 1 .. max_chunk + 1024; plain_len up to max_chunk. */
	buf_fixed(&b, mem, sizeof(mem));
	assert_int_equal(msg4_put_put_data_head(&b, 0, V4_PUT_FLAG_DEFLATE, mc, 10), 0);
	assert_int_equal(msg4_put_data_decode(mem + 23, 13, 13 + 10, mc, &d), 0);
	assert_int_equal(d.flags, 1);
	assert_int_equal(msg4_put_data_decode(mem + 23, 13, 13 + mc + 1024, mc, &d), 0);
	assert_int_equal(msg4_put_data_decode(mem + 23, 13, 13 + mc + 1025, mc, &d),
	    SD_ERR_TOO_LARGE);
	assert_int_equal(msg4_put_data_decode(mem + 23, 13, 13, mc, &d), SD_ERR_BAD_SIZE);
	/* plain_len over max_chunk (a bomb claim) or zero; unknown flags. */
	mem[23 + 9] = 0x01;  /* plain_len = mc + 1 */
	assert_int_equal(msg4_put_data_decode(mem + 23, 13, 13 + 10, mc, &d), SD_ERR_BAD_FIELD);
	assert_int_equal(msg4_put_data_decode(mem + 23, 13, 13 + 10, 2 * mc, &d), 0);
	memset(mem + 23 + 9, 0, 4);
	assert_int_equal(msg4_put_data_decode(mem + 23, 13, 13 + 10, mc, &d), SD_ERR_BAD_FIELD);
	mem[23 + 9] = 1;
	mem[23 + 8] = 0x03;
	assert_int_equal(msg4_put_data_decode(mem + 23, 13, 13 + 10, mc, &d), SD_ERR_BAD_FIELD);
	mem[23 + 8] = 0x80;
	assert_int_equal(msg4_put_data_decode(mem + 23, 13, 13 + 10, mc, &d), SD_ERR_BAD_FIELD);
	/* An offset whose chunk would pass 2^63 - 1. */
	mem[23 + 8] = 0;
	memset(mem + 23, 0xff, 8);
	mem[23 + 7] = 0x7f;
	assert_int_equal(msg4_put_data_decode(mem + 23, 13, 13 + 1, mc, &d), SD_ERR_BAD_FIELD);
	assert_true(d.offset == 0 && d.plain_len == 0);

	/* The encoder's own refusals. */
	buf_fixed(&b, mem, sizeof(mem));
	assert_int_equal(msg4_put_put_data_head(&b, 0, 2, 10, 10), SD_ERR_BAD_FIELD);
	assert_int_equal(msg4_put_put_data_head(&b, 0, 0, 0, 0), SD_ERR_BAD_FIELD);
	assert_int_equal(msg4_put_put_data_head(&b, 0, 0, V4_MAX_CHUNK_MAX + 1,
	    V4_MAX_CHUNK_MAX + 1), SD_ERR_BAD_FIELD);
	assert_int_equal(msg4_put_put_data_head(&b, 0, 1, 10, V4_MAX_CHUNK_MAX + 1025),
	    SD_ERR_TOO_LARGE);
	assert_int_equal(msg4_put_put_data_head(&b, 0, 0, 10, 11), SD_ERR_BAD_SIZE);
	assert_int_equal(msg4_put_put_data_head(&b, 0, 1, 10, 0), SD_ERR_BAD_SIZE);
	assert_int_equal(msg4_put_put_data_head(&b, (uint64_t)V4_FILE_SIZE_MAX, 0, 1, 1),
	    SD_ERR_BAD_FIELD);
	assert_int_equal(buf_len(&b), 0);
}

/* 1615: head, then entries pulled from a buffer that fills bit by bit. */
static void test_listing(void **state)
{
	struct msg4_file_entry e[3], got;
	uint8_t mem[MSG_MAX], acc_mem[MSG_MAX];
	struct msg_header h;
	struct buf b, v, acc;
	uint32_t count, entries = 0;
	size_t i, fed, pulled = 0, hs = RESP_HEADER_SIZE;

	(void)state;
	memset(e, 0, sizeof(e));
	for (i = 0; i < 3; i++) {
		e[i].size = (uint64_t)i << 40 | i;
		e[i].uploaded = 1700000000u + i;
		pattern(e[i].sha256, V4_SHA256_SIZE, (unsigned)i);
		strcpy(e[i].name, names[i]);
		entries += (uint32_t)msg4_listing_entry_size(&e[i]);
	}
	buf_fixed(&b, mem, sizeof(mem));
	assert_int_equal(msg4_put_listing_head(&b, 3, entries), 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(msg4_put_listing_entry(&b, &e[i]), 0);
	buf_view(&v, mem, hs);
	assert_int_equal(msg_response_header_decode(&v, &h), 0);
	assert_int_equal(h.code, 1615);
	assert_int_equal(h.payload_size, buf_len(&b) - hs);
	assert_int_equal(msg4_listing_head_decode(mem + hs, 4, h.payload_size, &count), 0);
	assert_int_equal(count, 3);
	/* Counts the payload cannot hold, either way. */
	assert_int_equal(msg4_listing_head_decode(mem + hs, 4, h.payload_size - entries + 100,
	    &count), SD_ERR_BAD_SIZE);
	assert_int_equal(count, 0);
	assert_int_equal(msg4_listing_head_decode(mem + hs, 4, 4 + 3 * V4_LISTING_ENTRY_MAX + 1,
	    &count), SD_ERR_BAD_SIZE);
	assert_int_equal(msg4_listing_head_decode(mem + hs, 3, h.payload_size, &count),
	    SD_ERR_BAD_SIZE);
	assert_int_equal(msg4_listing_head_decode(mem + hs, 4, V4_LISTING_PAYLOAD_MAX + 1u,
	    &count), SD_ERR_TOO_LARGE);
	{
		uint8_t many[4] = { 0x01, 0x00, 0x10, 0x00 };  /* 2^20 + 1 */

		assert_int_equal(msg4_listing_head_decode(many, 4, V4_LISTING_PAYLOAD_MAX, &count),
		    SD_ERR_TOO_LARGE);
	}
	/* Entries arrive a byte at a time: each comes out once complete, not before. */
	buf_fixed(&acc, acc_mem, sizeof(acc_mem));
	for (fed = hs + 4; fed < buf_len(&b); fed++) {
		assert_int_equal(buf_put_u8(&acc, mem[fed]), 0);
		while (msg4_listing_entry_get(&acc, &got) == 0) {
			assert_true(pulled < 3);
			assert_true(got.size == e[pulled].size);
			assert_true(got.uploaded == e[pulled].uploaded);
			assert_memory_equal(got.sha256, e[pulled].sha256, V4_SHA256_SIZE);
			assert_string_equal(got.name, e[pulled].name);
			pulled++;
		}
	}
	assert_int_equal(pulled, 3);
	assert_int_equal(buf_len(&acc), 0);
	/* A bad entry is refused and consumes nothing. */
	buf_fixed(&acc, acc_mem, sizeof(acc_mem));
	assert_int_equal(msg4_put_listing_entry(&acc, &e[0]), 0);
	acc_mem[8 + 8 + 32] = 0;  /* empty name */
	acc_mem[8 + 8 + 32 + 1] = 0;
	assert_int_equal(msg4_listing_entry_get(&acc, &got), SD_ERR_BAD_STRING);
	assert_int_equal(buf_len(&acc), msg4_listing_entry_size(&e[0]));
	/* Encoder refusals. */
	buf_fixed(&b, mem, sizeof(mem));
	assert_int_equal(msg4_put_listing_head(&b, 2, 10), SD_ERR_BAD_SIZE);
	assert_int_equal(msg4_put_listing_head(&b, V4_LISTING_COUNT_MAX + 1, 0), SD_ERR_TOO_LARGE);
	assert_int_equal(msg4_put_listing_head(&b, 0, 0), 0);
	assert_int_equal(buf_len(&b), 7 + 4);
}

/* 1616: the head. */
static void test_get_data(void **state)
{
	uint8_t mem[MSG_MAX];
	uint64_t off = 9;
	struct msg_header h;
	struct buf b, v;

	(void)state;
	buf_fixed(&b, mem, sizeof(mem));
	assert_int_equal(msg4_put_get_data_head(&b, 77777, V4_MAX_CHUNK_MAX), 0);
	buf_view(&v, mem, 7);
	assert_int_equal(msg_response_header_decode(&v, &h), 0);
	assert_int_equal(h.code, 1616);
	assert_int_equal(h.payload_size, 8 + V4_MAX_CHUNK_MAX);
	assert_int_equal(h.payload_size, msg4_payload_max(1616));
	assert_int_equal(msg4_get_data_head_decode(mem + 7, 8, &off), 0);
	assert_true(off == 77777);
	assert_int_equal(msg4_get_data_head_decode(mem + 7, 7, &off), SD_ERR_BAD_SIZE);
	assert_true(off == 0);
	assert_int_equal(msg4_get_data_head_decode(mem + 7, 9, &off), SD_ERR_TRAILING);
	assert_int_equal(msg4_put_get_data_head(&b, 0, V4_MAX_CHUNK_MAX + 1), SD_ERR_TOO_LARGE);
	mem[7 + 7] = 0x80;
	assert_int_equal(msg4_get_data_head_decode(mem + 7, 8, &off), SD_ERR_BAD_FIELD);
}

static void test_code_tables(void **state)
{
	unsigned c;
	int req = 0, resp = 0;

	(void)state;
	for (c = 0; c < 65536; c++) {
		if (msg4_is_request_code((uint16_t)c)) {
			req++;
			assert_string_not_equal(msg4_code_name((uint16_t)c), "unknown");
			assert_false(msg_is_request_code((uint16_t)c));
		}
		if (msg4_is_response_code((uint16_t)c)) {
			resp++;
			assert_string_not_equal(msg4_code_name((uint16_t)c), "unknown");
			assert_false(msg_is_response_code((uint16_t)c));
		}
		if (msg4_payload_max((uint16_t)c) > 0)
			assert_true(msg4_is_request_code((uint16_t)c) ||
			    msg4_is_response_code((uint16_t)c));
		if (msg4_payload_max((uint16_t)c) > FRAME_SMALL_PAYLOAD_MAX)
			assert_true(msg4_stream_head_size((uint16_t)c) > 0);
	}
	assert_int_equal(req, 11);
	assert_int_equal(resp, 10);
	assert_int_equal(msg4_payload_max(REQ4_PUT_DATA), 13 + 1048576 + 1024);
	assert_int_equal(msg4_payload_max(REQ4_WHOAMI), 0);
	assert_int_equal(msg4_stream_head_size(REQ4_PUT_DATA), 13);
	assert_int_equal(msg4_stream_head_size(RESP4_GET_DATA), 8);
	assert_int_equal(msg4_stream_head_size(RESP4_LISTING), 4);
	assert_int_equal(msg4_stream_head_size(REQ_SEND_FILE), 0);
	assert_string_equal(msg4_reason_name(0), "unknown reason");
	assert_string_equal(msg4_code_name(828), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_decoded_fields),
		cmocka_unit_test(test_hostile_strings),
		cmocka_unit_test(test_hostile_values),
		cmocka_unit_test(test_put_data),
		cmocka_unit_test(test_listing),
		cmocka_unit_test(test_get_data),
		cmocka_unit_test(test_code_tables),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
