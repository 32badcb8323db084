/* test_msg.c: every request and response encoder and decoder (protocol/msg.h): round trips,
 * the wire layout of SPEC.md, payloads cut at every length or one byte too long, bad strings,
 * bit flips that must land in the field they hit, and the encoders' refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../protocol/buf.h"
#include "../../protocol/codes.h"
#include "../../protocol/err.h"
#include "../../protocol/msg.h"

static const uint8_t test_id[CLIENT_ID_SIZE] = {
	0x8a, 0x6b, 0x16, 0x9d, 0xf3, 0x0f, 0x63, 0xf3,
	0xf9, 0xfb, 0x50, 0x9d, 0x4a, 0x2d, 0x78, 0x2d,
};

static void fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 31u + (i >> 3));
}

/* Reads a whole request (header + payload) from b, checking the header against the spec. */
static const uint8_t *take_request(struct buf *b, uint16_t code, uint32_t payload_size,
    const uint8_t *id)
{
	struct msg_header h;
	const uint8_t *p;

	assert_int_equal(msg_request_header_decode(b, &h), 0);
	assert_int_equal(h.version, 3);
	assert_int_equal(h.code, code);
	assert_true(h.payload_size == payload_size);
	assert_memory_equal(h.client_id, id, CLIENT_ID_SIZE);
	assert_true(buf_len(b) >= payload_size);
	p = buf_ptr(b);
	assert_int_equal(buf_skip(b, payload_size), 0);
	return p;
}

static const uint8_t *take_response(struct buf *b, uint16_t code, uint32_t payload_size)
{
	struct msg_header h;
	const uint8_t *p;

	assert_int_equal(msg_response_header_decode(b, &h), 0);
	assert_int_equal(h.version, 3);
	assert_int_equal(h.code, code);
	assert_true(h.payload_size == payload_size);
	assert_true(buf_len(b) >= payload_size);
	p = buf_ptr(b);
	assert_int_equal(buf_skip(b, payload_size), 0);
	return p;
}

/* The bytes from off to end are all zero (the padding of a string field). */
static void assert_zero_from(const uint8_t *p, size_t off, size_t end)
{
	for (; off < end; off++)
		assert_int_equal(p[off], 0);
}

/* Code classification follows the tables of SPEC.md 2 and 3 for every 16-bit code. */
static void test_codes(void **state)
{
	unsigned c;
	long want;

	(void)state;
	for (c = 0; c <= UINT16_MAX; c++) {
		uint16_t code = (uint16_t)c;
		int req = (c >= 825 && c <= 828) || (c >= 900 && c <= 902);
		int resp = c >= 1600 && c <= 1607;

		assert_int_equal(msg_is_request_code(code), req);
		assert_int_equal(msg_is_response_code(code), resp);
		switch (c) {
		case 825: case 827: case 900: case 901: case 902: want = 255; break;
		case 826: want = 415; break;
		case 1600: case 1604: case 1606: want = 16; break;
		case 1601: case 1607: want = 0; break;
		case 1602: case 1605: want = 144; break;
		case 1603: want = 279; break;
		default: want = -1; break;
		}
		assert_int_equal(msg_fixed_payload_size(code), want);
		assert_non_null(msg_code_name(code));
		if (req || resp)
			assert_string_not_equal(msg_code_name(code), "unknown");
		else
			assert_string_equal(msg_code_name(code), "unknown");
	}
}

/* Headers: 23 and 7 bytes, little-endian, any version byte accepted, cut at every byte. */
static void test_headers(void **state)
{
	static const uint8_t req[REQ_HEADER_SIZE] = {
		1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
		0x03, 0x3c, 0x03, 0xff, 0x00, 0x00, 0x00,  /* version 3, 828, payload 255 */
	};
	static const uint8_t resp[RESP_HEADER_SIZE] = {
		0x03, 0x43, 0x06, 0x17, 0x01, 0x00, 0x00,  /* version 3, 1603, payload 279 */
	};
	uint8_t mem[32];
	struct msg_header h;
	struct buf b;
	size_t k;
	unsigned v;

	(void)state;
	buf_view(&b, req, sizeof(req));
	assert_int_equal(msg_request_header_decode(&b, &h), 0);
	assert_memory_equal(h.client_id, req, 16);
	assert_int_equal(h.version, 3);
	assert_int_equal(h.code, 828);
	assert_int_equal(h.payload_size, 255);
	assert_int_equal(buf_len(&b), 0);
	buf_fixed(&b, mem, sizeof(mem));
	assert_int_equal(msg_request_header_encode(&b, &h), 0);
	assert_int_equal(buf_len(&b), sizeof(req));
	assert_memory_equal(buf_ptr(&b), req, sizeof(req));

	buf_view(&b, resp, sizeof(resp));
	assert_int_equal(msg_response_header_decode(&b, &h), 0);
	assert_int_equal(h.version, 3);
	assert_int_equal(h.code, 1603);
	assert_int_equal(h.payload_size, 279);
	buf_fixed(&b, mem, sizeof(mem));
	assert_int_equal(msg_response_header_encode(&b, &h), 0);
	assert_memory_equal(buf_ptr(&b), resp, sizeof(resp));

	for (k = 0; k < sizeof(req); k++) {
		buf_view(&b, req, k);
		assert_int_equal(msg_request_header_decode(&b, &h), SD_ERR_SHORT);
		assert_int_equal(buf_len(&b), k);
	}
	for (k = 0; k < sizeof(resp); k++) {
		buf_view(&b, resp, k);
		assert_int_equal(msg_response_header_decode(&b, &h), SD_ERR_SHORT);
		assert_int_equal(buf_len(&b), k);
	}
	/* Any version byte is accepted on input (SPEC 1). */
	for (v = 0; v < 256; v++) {
		uint8_t r2[RESP_HEADER_SIZE];

		memcpy(r2, resp, sizeof(r2));
		r2[0] = (uint8_t)v;
		buf_view(&b, r2, sizeof(r2));
		assert_int_equal(msg_response_header_decode(&b, &h), 0);
		assert_int_equal(h.version, v);
		assert_int_equal(h.code, 1603);
	}
	/* A zeroed header struct is sent with our version, 3. */
	memset(&h, 0, sizeof(h));
	h.code = 1607;
	buf_fixed(&b, mem, sizeof(mem));
	assert_int_equal(msg_response_header_encode(&b, &h), 0);
	assert_int_equal(buf_ptr(&b)[0], 3);
	/* A full buffer takes nothing. */
	buf_fixed(&b, mem, RESP_HEADER_SIZE - 1);
	assert_int_equal(msg_response_header_encode(&b, &h), SD_ERR_FULL);
	assert_int_equal(buf_len(&b), 0);
	buf_fixed(&b, mem, REQ_HEADER_SIZE - 1);
	assert_int_equal(msg_request_header_encode(&b, &h), SD_ERR_FULL);
	assert_int_equal(buf_len(&b), 0);
}

/* 825, 827, 900, 901, 902: round trip, padding, and the NULL client ID of an 825. */
static void test_name_requests(void **state)
{
	static const uint16_t codes[] = { 825, 827, 900, 901, 902 };
	static const uint8_t zero_id[CLIENT_ID_SIZE];
	char name[NAME_FIELD_SIZE], longest[NAME_FIELD_SIZE];
	const uint8_t *p;
	struct buf b;
	size_t i;

	(void)state;
	memset(longest, 'n', NAME_MAX_LEN);
	longest[NAME_MAX_LEN] = '\0';
	buf_init(&b, 1 << 16);
	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		assert_int_equal(msg_put_name_request(&b, test_id, codes[i], "Fixture Tester"), 0);
		assert_int_equal(buf_len(&b), 23 + 255);
		p = take_request(&b, codes[i], 255, test_id);
		assert_memory_equal(p, "Fixture Tester", 15);
		assert_zero_from(p, 14, 255);
		assert_int_equal(msg_name_decode(p, 255, name), 0);
		assert_string_equal(name, "Fixture Tester");

		assert_int_equal(msg_put_name_request(&b, test_id, codes[i], longest), 0);
		p = take_request(&b, codes[i], 255, test_id);
		assert_int_equal(msg_name_decode(p, 255, name), 0);
		assert_string_equal(name, longest);
		assert_int_equal(p[254], 0);
	}
	assert_int_equal(msg_put_name_request(&b, NULL, 825, "x"), 0);
	p = take_request(&b, 825, 255, zero_id);
	assert_int_equal(msg_name_decode(p, 255, name), 0);
	assert_string_equal(name, "x");
	/* UTF-8 bytes pass unchanged. */
	assert_int_equal(msg_put_name_request(&b, test_id, 825, "J\xc3\xa9r\xc3\xb4me"), 0);
	p = take_request(&b, 825, 255, test_id);
	assert_int_equal(msg_name_decode(p, 255, name), 0);
	assert_string_equal(name, "J\xc3\xa9r\xc3\xb4me");
	buf_free(&b);
}

/* The encoders refuse what they must not send and write nothing then. */
static void test_encoder_refusals(void **state)
{
	char toolong[NAME_FIELD_SIZE + 1];
	uint8_t key[PUBLIC_KEY_SIZE] = { 0 };
	struct msg_file_packet f;
	struct msg_aes_key k;
	struct msg_file_crc c;
	uint8_t mem[1024];
	struct buf b;

	(void)state;
	memset(toolong, 'z', NAME_FIELD_SIZE);
	toolong[NAME_FIELD_SIZE] = '\0';
	buf_fixed(&b, mem, sizeof(mem));
	assert_int_equal(msg_put_name_request(&b, test_id, 825, toolong), SD_ERR_BAD_STRING);
	assert_int_equal(msg_put_name_request(&b, test_id, 825, ""), SD_ERR_BAD_STRING);
	assert_int_equal(msg_put_name_request(&b, test_id, 825, NULL), SD_ERR_INVALID_ARG);
	assert_int_equal(msg_put_name_request(&b, test_id, 826, "a"), SD_ERR_INVALID_ARG);
	assert_int_equal(msg_put_name_request(&b, test_id, 828, "a"), SD_ERR_INVALID_ARG);
	assert_int_equal(msg_put_name_request(&b, test_id, 1600, "a"), SD_ERR_INVALID_ARG);
	assert_int_equal(msg_put_name_request(&b, test_id, 0, "a"), SD_ERR_INVALID_ARG);
	assert_int_equal(msg_put_public_key_request(&b, test_id, toolong, key), SD_ERR_BAD_STRING);
	assert_int_equal(msg_put_public_key_request(&b, test_id, "", key), SD_ERR_BAD_STRING);
	assert_int_equal(msg_put_public_key_request(&b, test_id, "a", NULL), SD_ERR_INVALID_ARG);

	memset(&f, 0, sizeof(f));
	memset(f.file_name, 'f', NAME_FIELD_SIZE);  /* no NUL inside the field */
	assert_int_equal(msg_put_file_packet_header(&b, test_id, &f, 0, 0), SD_ERR_BAD_STRING);
	f.file_name[0] = '\0';
	assert_int_equal(msg_put_file_packet_header(&b, test_id, &f, 0, 0), SD_ERR_BAD_STRING);
	strcpy(f.file_name, "a.bin");
	/* payload_size = 267 + content must fit a u32. */
	assert_int_equal(msg_put_file_packet_header(&b, test_id, &f, UINT32_MAX - 266, 0),
	    SD_ERR_TOO_LARGE);
	assert_int_equal(msg_put_file_packet_header(&b, test_id, &f, UINT32_MAX, 0),
	    SD_ERR_TOO_LARGE);

	assert_int_equal(msg_put_empty_response(&b, 1600), SD_ERR_INVALID_ARG);
	assert_int_equal(msg_put_empty_response(&b, 1608), SD_ERR_INVALID_ARG);
	assert_int_equal(msg_put_empty_response(&b, 825), SD_ERR_INVALID_ARG);
	assert_int_equal(msg_put_client_id_response(&b, 1601, test_id), SD_ERR_INVALID_ARG);
	assert_int_equal(msg_put_client_id_response(&b, 1602, test_id), SD_ERR_INVALID_ARG);
	assert_int_equal(msg_put_client_id_response(&b, 1600, NULL), SD_ERR_INVALID_ARG);
	memset(&k, 0, sizeof(k));
	assert_int_equal(msg_put_aes_key_response(&b, 1600, &k), SD_ERR_INVALID_ARG);
	assert_int_equal(msg_put_aes_key_response(&b, 1603, &k), SD_ERR_INVALID_ARG);
	memset(&c, 0, sizeof(c));
	assert_int_equal(msg_put_file_crc_response(&b, &c), SD_ERR_BAD_STRING);
	memset(c.file_name, 'c', NAME_FIELD_SIZE);
	assert_int_equal(msg_put_file_crc_response(&b, &c), SD_ERR_BAD_STRING);
	assert_int_equal(buf_len(&b), 0);

	/* A buffer without room for the whole message takes none of it. */
	buf_fixed(&b, mem, 23 + 254);
	assert_int_equal(msg_put_name_request(&b, test_id, 825, "abc"), SD_ERR_FULL);
	assert_int_equal(buf_len(&b), 0);
	buf_fixed(&b, mem, 23 + 414);
	assert_int_equal(msg_put_public_key_request(&b, test_id, "abc", key), SD_ERR_FULL);
	assert_int_equal(buf_len(&b), 0);
	buf_fixed(&b, mem, 7 + 278);
	strcpy(c.file_name, "a");
	assert_int_equal(msg_put_file_crc_response(&b, &c), SD_ERR_FULL);
	assert_int_equal(buf_len(&b), 0);
}

/* 826: name, then the 160-byte key, byte for byte. */
static void test_public_key_request(void **state)
{
	uint8_t key[PUBLIC_KEY_SIZE], key2[PUBLIC_KEY_SIZE];
	char name[NAME_FIELD_SIZE];
	const uint8_t *p;
	struct buf b;

	(void)state;
	fill_pattern(key, sizeof(key), 5);
	buf_init(&b, 4096);
	assert_int_equal(msg_put_public_key_request(&b, test_id, "Fixture Tester", key), 0);
	assert_int_equal(buf_len(&b), 23 + 415);
	p = take_request(&b, 826, 415, test_id);
	assert_memory_equal(p + 255, key, sizeof(key));
	assert_zero_from(p, 14, 255);
	assert_int_equal(msg_public_key_decode(p, 415, name, key2), 0);
	assert_string_equal(name, "Fixture Tester");
	assert_memory_equal(key2, key, sizeof(key));
	buf_free(&b);
}

/* 828: the packet header in both field orders, at the spec's offsets, for several sizes. */
static void test_file_packet_header(void **state)
{
	static const uint32_t contents[] = { 0, 1, 1024, 8192, UINT32_MAX - 267 };
	struct msg_file_packet f, g;
	struct msg_header h;
	const uint8_t *p;
	struct buf b;
	size_t i;
	int swapped;

	(void)state;
	buf_init(&b, 4096);
	for (i = 0; i < sizeof(contents) / sizeof(contents[0]); i++) {
		for (swapped = 0; swapped <= 1; swapped++) {
			memset(&f, 0, sizeof(f));
			f.content_size = 0x01020304u + (uint32_t)i;
			f.orig_file_size = 0xa0b0c0d0u;
			f.packet_number = 7;
			f.total_packets = 0x1234;
			strcpy(f.file_name, "upload-3000.bin");
			assert_int_equal(msg_put_file_packet_header(&b, test_id, &f, contents[i],
			    swapped), 0);
			assert_int_equal(buf_len(&b), 23 + 267);
			/* Only the packet header is written: the content is the caller's to send. */
			assert_int_equal(msg_request_header_decode(&b, &h), 0);
			assert_int_equal(h.version, 3);
			assert_int_equal(h.code, 828);
			assert_true(h.payload_size == 267 + contents[i]);
			assert_memory_equal(h.client_id, test_id, CLIENT_ID_SIZE);
			p = buf_ptr(&b);
			assert_int_equal(buf_skip(&b, 267), 0);
			assert_int_equal(buf_len(&b), 0);
			/* payload offsets 0, 4, 8, 10, 12 (SPEC 2), little-endian */
			assert_int_equal(p[0], 0x04 + i);
			assert_int_equal(p[3], 0x01);
			assert_int_equal(p[4], 0xd0);
			assert_int_equal(p[7], 0xa0);
			assert_int_equal(p[8] | p[9] << 8, swapped ? 0x1234 : 7);
			assert_int_equal(p[10] | p[11] << 8, swapped ? 7 : 0x1234);
			assert_memory_equal(p + 12, "upload-3000.bin", 16);
			assert_zero_from(p, 12 + 15, 267);
			assert_int_equal(msg_file_packet_decode(p, 267, &g), 0);
			assert_true(g.content_size == f.content_size);
			assert_true(g.orig_file_size == f.orig_file_size);
			/* The decoder reads offset 8 into packet_number whatever the sender did. */
			assert_int_equal(g.packet_number, swapped ? 0x1234 : 7);
			assert_int_equal(g.total_packets, swapped ? 7 : 0x1234);
			assert_string_equal(g.file_name, "upload-3000.bin");
		}
	}
	buf_free(&b);
}

/* The responses: 1601 and 1607 empty, 1600/1604/1606 the ID, 1602/1605 ID + wrapped key,
 * 1603 ID, content_size, file name, cksum. */
static void test_responses(void **state)
{
	static const uint16_t id_codes[] = { 1600, 1604, 1606 };
	static const uint16_t key_codes[] = { 1602, 1605 };
	uint8_t id[CLIENT_ID_SIZE];
	struct msg_aes_key k, k2;
	struct msg_file_crc c, c2;
	const uint8_t *p;
	struct buf b;
	size_t i;

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(msg_put_empty_response(&b, 1601), 0);
	assert_int_equal(msg_put_empty_response(&b, 1607), 0);
	assert_int_equal(buf_len(&b), 14);
	take_response(&b, 1601, 0);
	take_response(&b, 1607, 0);

	for (i = 0; i < 3; i++) {
		assert_int_equal(msg_put_client_id_response(&b, id_codes[i], test_id), 0);
		assert_int_equal(buf_len(&b), 7 + 16);
		p = take_response(&b, id_codes[i], 16);
		assert_memory_equal(p, test_id, 16);
		assert_int_equal(msg_client_id_decode(p, 16, id), 0);
		assert_memory_equal(id, test_id, 16);
	}
	for (i = 0; i < 2; i++) {
		memcpy(k.client_id, test_id, sizeof(k.client_id));
		fill_pattern(k.wrapped_key, sizeof(k.wrapped_key), (unsigned)i + 9);
		assert_int_equal(msg_put_aes_key_response(&b, key_codes[i], &k), 0);
		assert_int_equal(buf_len(&b), 7 + 144);
		p = take_response(&b, key_codes[i], 144);
		assert_memory_equal(p, test_id, 16);
		assert_memory_equal(p + 16, k.wrapped_key, 128);
		assert_int_equal(msg_aes_key_decode(p, 144, &k2), 0);
		assert_memory_equal(&k2, &k, sizeof(k));
	}
	memset(&c, 0, sizeof(c));
	memcpy(c.client_id, test_id, sizeof(c.client_id));
	c.content_size = 3008;
	strcpy(c.file_name, "upload-3000.bin");
	c.cksum = 4281747040u;
	assert_int_equal(msg_put_file_crc_response(&b, &c), 0);
	assert_int_equal(buf_len(&b), 7 + 279);
	p = take_response(&b, 1603, 279);
	assert_memory_equal(p, test_id, 16);
	assert_int_equal(p[16] | p[17] << 8, 3008);
	assert_memory_equal(p + 20, "upload-3000.bin", 16);
	assert_zero_from(p, 20 + 15, 275);
	/* 4281747040 = 0xff353660 */
	assert_int_equal(p[275], 0x60);
	assert_int_equal(p[278], 0xff);
	assert_int_equal(msg_file_crc_decode(p, 279, &c2), 0);
	assert_memory_equal(c2.client_id, test_id, 16);
	assert_true(c2.content_size == 3008);
	assert_string_equal(c2.file_name, "upload-3000.bin");
	assert_true(c2.cksum == 4281747040u);
	buf_free(&b);
}

/* Decoder adapters with one signature, so every payload decoder runs through the same checks. */
static int dec_name(const uint8_t *p, size_t n)
{
	char name[NAME_FIELD_SIZE];

	return msg_name_decode(p, n, name);
}

static int dec_public_key(const uint8_t *p, size_t n)
{
	char name[NAME_FIELD_SIZE];
	uint8_t key[PUBLIC_KEY_SIZE];

	return msg_public_key_decode(p, n, name, key);
}

static int dec_file_packet(const uint8_t *p, size_t n)
{
	struct msg_file_packet f;

	return msg_file_packet_decode(p, n, &f);
}

static int dec_client_id(const uint8_t *p, size_t n)
{
	uint8_t id[CLIENT_ID_SIZE];

	return msg_client_id_decode(p, n, id);
}

static int dec_aes_key(const uint8_t *p, size_t n)
{
	struct msg_aes_key k;

	return msg_aes_key_decode(p, n, &k);
}

static int dec_file_crc(const uint8_t *p, size_t n)
{
	struct msg_file_crc c;

	return msg_file_crc_decode(p, n, &c);
}

/* Every decoder, given its valid payload cut at every length or with one byte more, refuses
 * with SD_ERR_BAD_SIZE (the 828 decoder reads only its 267 bytes, so more is fine there). */
static void test_decoders_cut_and_trailing(void **state)
{
	struct {
		int (*dec)(const uint8_t *, size_t);
		size_t size;
		int more_ok;
	} cases[] = {
		{ dec_name, 255, 0 },
		{ dec_public_key, 415, 0 },
		{ dec_file_packet, 267, 1 },
		{ dec_client_id, 16, 0 },
		{ dec_aes_key, 144, 0 },
		{ dec_file_crc, 279, 0 },
	};
	uint8_t payload[512];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* A payload that decodes: non-zero bytes, with NULs where string fields end. */
		memset(payload, 'v', sizeof(payload));
		if (cases[i].dec == dec_name || cases[i].dec == dec_public_key)
			payload[254] = 0;
		if (cases[i].dec == dec_file_packet)
			payload[12 + 254] = 0;
		if (cases[i].dec == dec_file_crc)
			payload[20 + 254] = 0;
		assert_int_equal(cases[i].dec(payload, cases[i].size), 0);
		for (n = 0; n < cases[i].size; n++)
			assert_int_equal(cases[i].dec(payload, n), SD_ERR_BAD_SIZE);
		assert_int_equal(cases[i].dec(payload, cases[i].size + 1),
		    cases[i].more_ok ? 0 : SD_ERR_BAD_SIZE);
		assert_int_equal(cases[i].dec(NULL, 0), SD_ERR_BAD_SIZE);
		assert_int_equal(cases[i].dec(NULL, 5), SD_ERR_INVALID_ARG);
	}
}

/* String fields: no NUL in the field, an empty name, and bytes after the NUL (ignored). */
static void test_bad_strings(void **state)
{
	uint8_t p[512], key[PUBLIC_KEY_SIZE];
	char name[NAME_FIELD_SIZE];
	struct msg_file_packet f;
	struct msg_file_crc c;

	(void)state;
	/* Name field without a NUL. */
	memset(p, 'A', sizeof(p));
	assert_int_equal(msg_name_decode(p, 255, name), SD_ERR_BAD_STRING);
	assert_string_equal(name, "");
	assert_int_equal(msg_public_key_decode(p, 415, name, key), SD_ERR_BAD_STRING);
	assert_int_equal(msg_file_packet_decode(p, 267, &f), SD_ERR_BAD_STRING);
	assert_int_equal(f.content_size, 0);  /* nothing half-decoded is left behind */
	assert_int_equal(msg_file_crc_decode(p, 279, &c), SD_ERR_BAD_STRING);
	assert_int_equal(c.cksum, 0);
	/* Empty names. */
	memset(p, 0, sizeof(p));
	assert_int_equal(msg_name_decode(p, 255, name), SD_ERR_BAD_STRING);
	assert_int_equal(msg_public_key_decode(p, 415, name, key), SD_ERR_BAD_STRING);
	assert_int_equal(msg_file_packet_decode(p, 267, &f), SD_ERR_BAD_STRING);
	assert_int_equal(msg_file_crc_decode(p, 279, &c), SD_ERR_BAD_STRING);
	/* Garbage after the NUL is ignored (tolerant). */
	memset(p, 'G', sizeof(p));
	memcpy(p, "bob", 4);
	assert_int_equal(msg_name_decode(p, 255, name), 0);
	assert_string_equal(name, "bob");
	assert_int_equal(msg_public_key_decode(p, 415, name, key), 0);
	assert_string_equal(name, "bob");
	assert_memory_equal(key, p + 255, sizeof(key));
	memcpy(p + 12, "f.txt", 6);
	assert_int_equal(msg_file_packet_decode(p, 267, &f), 0);
	assert_string_equal(f.file_name, "f.txt");
	memcpy(p + 20, "g.txt", 6);
	assert_int_equal(msg_file_crc_decode(p, 279, &c), 0);
	assert_string_equal(c.file_name, "g.txt");
	/* The NUL in the last byte of the field is enough; one byte earlier missing is not. */
	memset(p, 'L', 255);
	p[254] = 0;
	assert_int_equal(msg_name_decode(p, 255, name), 0);
	assert_int_equal(strlen(name), 254);
	p[254] = 'L';
	p[255] = 0;  /* just past the field */
	assert_int_equal(msg_name_decode(p, 255, name), SD_ERR_BAD_STRING);
}

/* Flipping any bit of an 825 changes exactly what the bit belongs to: the header field it hit,
 * the name (or its end), or nothing at all when it falls in the padding after the NUL. */
static void test_bit_flips_name_request(void **state)
{
	static const char orig[] = "Fixture Tester";
	const size_t nlen = sizeof(orig) - 1;
	uint8_t msg[23 + 255], mut[23 + 255];
	char name[NAME_FIELD_SIZE];
	struct msg_header h;
	struct buf b;
	size_t bit, byte;
	int r;

	(void)state;
	buf_fixed(&b, msg, sizeof(msg));
	assert_int_equal(msg_put_name_request(&b, test_id, 825, orig), 0);
	for (bit = 0; bit < sizeof(msg) * 8; bit++) {
		byte = bit / 8;
		memcpy(mut, msg, sizeof(msg));
		mut[byte] ^= (uint8_t)(1u << (bit % 8));
		buf_view(&b, mut, sizeof(mut));
		assert_int_equal(msg_request_header_decode(&b, &h), 0);
		if (byte < 16) {
			assert_memory_not_equal(h.client_id, test_id, 16);
			continue;
		}
		if (byte == 16) {
			assert_int_not_equal(h.version, 3);
			continue;
		}
		if (byte < 19) {
			assert_int_not_equal(h.code, 825);
			continue;
		}
		if (byte < 23) {
			assert_int_not_equal(h.payload_size, 255);
			if (h.payload_size <= buf_len(&b))
				assert_int_equal(msg_name_decode(buf_ptr(&b), h.payload_size, name),
				    SD_ERR_BAD_SIZE);
			continue;
		}
		assert_int_equal(h.code, 825);
		r = msg_name_decode(buf_ptr(&b), 255, name);
		if (byte - 23 < nlen) {
			if (mut[byte] == 0 && byte == 23) {
				assert_int_equal(r, SD_ERR_BAD_STRING);   /* now empty */
			} else if (mut[byte] == 0) {
				assert_int_equal(r, 0);                   /* now shorter */
				assert_int_equal(strlen(name), byte - 23);
				assert_memory_equal(name, orig, byte - 23);
			} else {
				assert_int_equal(r, 0);                   /* one byte changed */
				assert_int_equal(strlen(name), nlen);
				assert_int_equal((uint8_t)name[byte - 23], mut[byte]);
				assert_string_not_equal(name, orig);
			}
		} else if (byte - 23 == nlen) {
			assert_int_equal(r, 0);                           /* the NUL moved on */
			assert_int_equal(strlen(name), nlen + 1);
			assert_memory_equal(name, orig, nlen);
		} else {
			assert_int_equal(r, 0);                           /* padding: ignored */
			assert_string_equal(name, orig);
		}
	}
	/* With a 254-byte name, any flip of the field's last byte (its only NUL) is refused. */
	{
		char longest[NAME_FIELD_SIZE];

		memset(longest, 'k', NAME_MAX_LEN);
		longest[NAME_MAX_LEN] = '\0';
		buf_fixed(&b, msg, sizeof(msg));
		assert_int_equal(msg_put_name_request(&b, test_id, 901, longest), 0);
		for (bit = 0; bit < 8; bit++) {
			memcpy(mut, msg, sizeof(msg));
			mut[sizeof(mut) - 1] ^= (uint8_t)(1u << bit);
			assert_int_equal(msg_name_decode(mut + 23, 255, name), SD_ERR_BAD_STRING);
		}
	}
}

/* Flipping a bit in a 1603's client ID, content_size or cksum changes exactly that bit of
 * that field (the field offsets and byte order are right); the 828 packet header likewise. */
static void test_bit_flips_numeric_fields(void **state)
{
	uint8_t msg[7 + 279], mut[7 + 279], fmsg[23 + 267], fmut[23 + 267];
	struct msg_file_crc c, d;
	struct msg_file_packet f, g;
	struct buf b;
	size_t bit, off;

	(void)state;
	memset(&c, 0, sizeof(c));
	memcpy(c.client_id, test_id, sizeof(c.client_id));
	c.content_size = 20016;
	strcpy(c.file_name, "upload-20000.bin");
	c.cksum = 1512812613u;
	buf_fixed(&b, msg, sizeof(msg));
	assert_int_equal(msg_put_file_crc_response(&b, &c), 0);
	for (bit = 0; bit < 279 * 8; bit++) {
		off = bit / 8;
		if (off >= 20 && off < 275)
			continue;  /* the name field: covered by the 825 flips */
		memcpy(mut, msg, sizeof(msg));
		mut[7 + off] ^= (uint8_t)(1u << (bit % 8));
		assert_int_equal(msg_file_crc_decode(mut + 7, 279, &d), 0);
		assert_string_equal(d.file_name, c.file_name);
		if (off < 16) {
			assert_int_equal(d.client_id[off] ^ c.client_id[off], 1u << (bit % 8));
			assert_true(d.content_size == c.content_size && d.cksum == c.cksum);
		} else if (off < 20) {
			assert_true((d.content_size ^ c.content_size) == 1u << (bit - 128));
			assert_true(d.cksum == c.cksum);
		} else {
			assert_true((d.cksum ^ c.cksum) == 1u << (bit - 275 * 8));
			assert_true(d.content_size == c.content_size);
		}
	}

	memset(&f, 0, sizeof(f));
	f.content_size = 3008;
	f.orig_file_size = 3000;
	f.packet_number = 2;
	f.total_packets = 3;
	strcpy(f.file_name, "upload-3000.bin");
	buf_fixed(&b, fmsg, sizeof(fmsg));
	assert_int_equal(msg_put_file_packet_header(&b, test_id, &f, 1024, 0), 0);
	for (bit = 0; bit < 12 * 8; bit++) {
		memcpy(fmut, fmsg, sizeof(fmsg));
		fmut[23 + bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_equal(msg_file_packet_decode(fmut + 23, 267, &g), 0);
		assert_true((g.content_size ^ f.content_size) == (bit < 32 ? 1u << bit : 0));
		assert_true((g.orig_file_size ^ f.orig_file_size) ==
		    (bit >= 32 && bit < 64 ? 1u << (bit - 32) : 0));
		assert_true((unsigned)(g.packet_number ^ f.packet_number) ==
		    (bit >= 64 && bit < 80 ? 1u << (bit - 64) : 0));
		assert_true((unsigned)(g.total_packets ^ f.total_packets) ==
		    (bit >= 80 ? 1u << (bit - 80) : 0));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codes),
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_name_requests),
		cmocka_unit_test(test_encoder_refusals),
		cmocka_unit_test(test_public_key_request),
		cmocka_unit_test(test_file_packet_header),
		cmocka_unit_test(test_responses),
		cmocka_unit_test(test_decoders_cut_and_trailing),
		cmocka_unit_test(test_bad_strings),
		cmocka_unit_test(test_bit_flips_name_request),
		cmocka_unit_test(test_bit_flips_numeric_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
