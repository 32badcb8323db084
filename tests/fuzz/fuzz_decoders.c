/* fuzz_decoders.c: libFuzzer target for the header and payload decoders. Each decoder gets the
 * whole input and its prefix of the decoder's exact size; what decodes is encoded again, and the
 * encoding must reproduce the input (up to each string's NUL: bytes after it are ignored by
 * design) and decode to the same values. Any difference aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../protocol/buf.h"
#include "../../protocol/codes.h"
#include "../../protocol/err.h"
#include "../../protocol/msg.h"

/* The largest message re-encoded here: an 826. */
#define ENCODE_MAX (REQ_HEADER_SIZE + PAYLOAD_PUBLIC_KEY_SIZE)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t zero_id[CLIENT_ID_SIZE];

/* A string field as we write it: the text, then zeros to the end of the field. Equal to the
 * input field up to and including the first NUL. */
static void check_string_field(const uint8_t *in, const uint8_t *enc, size_t field)
{
	const uint8_t *nul = memchr(in, 0, field);
	size_t k, n;

	if (nul == NULL)
		abort();  /* the decoder accepted a field without NUL */
	n = (size_t)(nul - in);
	if (n == 0 || memcmp(in, enc, n + 1) != 0)
		abort();
	for (k = n; k < field; k++)
		if (enc[k] != 0)
			abort();
}

/* Every decoder must refuse sizes other than its own; called with sizes that differ. */
static void check_refusal(int r, size_t n, size_t want)
{
	if (n != want && r != SD_ERR_BAD_SIZE)
		abort();
}

static void fuzz_headers(const uint8_t *d, size_t n)
{
	uint8_t mem[REQ_HEADER_SIZE];
	struct msg_header h;
	struct buf in, out;
	int r;

	buf_view(&in, d, n);
	r = msg_request_header_decode(&in, &h);
	if (n < REQ_HEADER_SIZE) {
		if (r != SD_ERR_SHORT || buf_len(&in) != n)
			abort();
	} else {
		if (r != 0 || buf_len(&in) != n - REQ_HEADER_SIZE)
			abort();
		buf_fixed(&out, mem, sizeof(mem));
		if (msg_request_header_encode(&out, &h) != 0 || buf_len(&out) != REQ_HEADER_SIZE)
			abort();
		/* Version 0 is written as ours (3); every other byte comes back as it was. */
		if (memcmp(mem, d, 16) != 0 || mem[16] != (d[16] ? d[16] : PROTO_VERSION) ||
		    memcmp(mem + 17, d + 17, 6) != 0)
			abort();
	}

	buf_view(&in, d, n);
	r = msg_response_header_decode(&in, &h);
	if (n < RESP_HEADER_SIZE) {
		if (r != SD_ERR_SHORT || buf_len(&in) != n)
			abort();
	} else {
		if (r != 0 || buf_len(&in) != n - RESP_HEADER_SIZE)
			abort();
		buf_fixed(&out, mem, sizeof(mem));
		if (msg_response_header_encode(&out, &h) != 0 || buf_len(&out) != RESP_HEADER_SIZE)
			abort();
		if (mem[0] != (d[0] ? d[0] : PROTO_VERSION) || memcmp(mem + 1, d + 1, 6) != 0)
			abort();
	}
}

static void fuzz_name(const uint8_t *d, size_t n)
{
	char name[NAME_FIELD_SIZE], again[NAME_FIELD_SIZE];
	uint8_t mem[ENCODE_MAX];
	struct buf b;
	int r;

	r = msg_name_decode(d, n, name);
	check_refusal(r, n, PAYLOAD_NAME_SIZE);
	if (r != 0)
		return;
	buf_fixed(&b, mem, sizeof(mem));
	if (msg_put_name_request(&b, zero_id, REQ_CRC_OK, name) != 0 ||
	    buf_len(&b) != REQ_HEADER_SIZE + PAYLOAD_NAME_SIZE)
		abort();
	check_string_field(d, mem + REQ_HEADER_SIZE, NAME_FIELD_SIZE);
	if (msg_name_decode(mem + REQ_HEADER_SIZE, PAYLOAD_NAME_SIZE, again) != 0 ||
	    strcmp(name, again) != 0)
		abort();
}

static void fuzz_public_key(const uint8_t *d, size_t n)
{
	char name[NAME_FIELD_SIZE];
	uint8_t key[PUBLIC_KEY_SIZE], mem[ENCODE_MAX];
	struct buf b;
	int r;

	r = msg_public_key_decode(d, n, name, key);
	check_refusal(r, n, PAYLOAD_PUBLIC_KEY_SIZE);
	if (r != 0)
		return;
	buf_fixed(&b, mem, sizeof(mem));
	if (msg_put_public_key_request(&b, zero_id, name, key) != 0 ||
	    buf_len(&b) != REQ_HEADER_SIZE + PAYLOAD_PUBLIC_KEY_SIZE)
		abort();
	check_string_field(d, mem + REQ_HEADER_SIZE, NAME_FIELD_SIZE);
	if (memcmp(mem + REQ_HEADER_SIZE + NAME_FIELD_SIZE, d + NAME_FIELD_SIZE,
	    PUBLIC_KEY_SIZE) != 0)
		abort();
}

static void fuzz_file_packet(const uint8_t *d, size_t n)
{
	struct msg_file_packet f, g;
	uint8_t mem[ENCODE_MAX];
	const uint8_t *enc = mem + REQ_HEADER_SIZE;
	struct buf b;
	int r, swapped;

	r = msg_file_packet_decode(d, n, &f);
	if (n < FILE_PACKET_HEADER_SIZE && r != SD_ERR_BAD_SIZE)
		abort();
	if (r != 0)
		return;
	for (swapped = 0; swapped <= 1; swapped++) {
		buf_fixed(&b, mem, sizeof(mem));
		if (msg_put_file_packet_header(&b, zero_id, &f, 0, swapped) != 0 ||
		    buf_len(&b) != REQ_HEADER_SIZE + FILE_PACKET_HEADER_SIZE)
			abort();
		/* Swapped writing exchanges the two u16 fields at offsets 8 and 10. */
		if (memcmp(enc, d, 8) != 0 ||
		    memcmp(enc + 8, d + (swapped ? 10 : 8), 2) != 0 ||
		    memcmp(enc + 10, d + (swapped ? 8 : 10), 2) != 0)
			abort();
		check_string_field(d + 12, enc + 12, NAME_FIELD_SIZE);
		if (msg_file_packet_decode(enc, FILE_PACKET_HEADER_SIZE, &g) != 0 ||
		    g.content_size != f.content_size || g.orig_file_size != f.orig_file_size ||
		    strcmp(g.file_name, f.file_name) != 0)
			abort();
	}
}

static void fuzz_client_id(const uint8_t *d, size_t n)
{
	uint8_t id[CLIENT_ID_SIZE], mem[ENCODE_MAX];
	struct buf b;
	int r;

	r = msg_client_id_decode(d, n, id);
	check_refusal(r, n, PAYLOAD_CLIENT_ID_SIZE);
	if (r != 0)
		return;
	buf_fixed(&b, mem, sizeof(mem));
	if (msg_put_client_id_response(&b, RESP_ACK, id) != 0 ||
	    buf_len(&b) != RESP_HEADER_SIZE + PAYLOAD_CLIENT_ID_SIZE ||
	    memcmp(mem + RESP_HEADER_SIZE, d, CLIENT_ID_SIZE) != 0)
		abort();
}

static void fuzz_aes_key(const uint8_t *d, size_t n)
{
	struct msg_aes_key k;
	uint8_t mem[ENCODE_MAX];
	struct buf b;
	int r;

	r = msg_aes_key_decode(d, n, &k);
	check_refusal(r, n, PAYLOAD_AES_KEY_SIZE);
	if (r != 0)
		return;
	buf_fixed(&b, mem, sizeof(mem));
	if (msg_put_aes_key_response(&b, RESP_RECONNECTED, &k) != 0 ||
	    buf_len(&b) != RESP_HEADER_SIZE + PAYLOAD_AES_KEY_SIZE ||
	    memcmp(mem + RESP_HEADER_SIZE, d, PAYLOAD_AES_KEY_SIZE) != 0)
		abort();
}

static void fuzz_file_crc(const uint8_t *d, size_t n)
{
	struct msg_file_crc c;
	uint8_t mem[ENCODE_MAX];
	const uint8_t *enc = mem + RESP_HEADER_SIZE;
	struct buf b;
	int r;

	r = msg_file_crc_decode(d, n, &c);
	check_refusal(r, n, PAYLOAD_FILE_CRC_SIZE);
	if (r != 0)
		return;
	buf_fixed(&b, mem, sizeof(mem));
	if (msg_put_file_crc_response(&b, &c) != 0 ||
	    buf_len(&b) != RESP_HEADER_SIZE + PAYLOAD_FILE_CRC_SIZE)
		abort();
	if (memcmp(enc, d, 20) != 0 || memcmp(enc + 275, d + 275, 4) != 0)
		abort();
	check_string_field(d + 20, enc + 20, NAME_FIELD_SIZE);
}

/* Runs every payload decoder on (d, n) and on the prefix of d of its exact size. */
static void fuzz_payloads(const uint8_t *d, size_t n)
{
	static const size_t sizes[] = {
		PAYLOAD_NAME_SIZE, PAYLOAD_PUBLIC_KEY_SIZE, FILE_PACKET_HEADER_SIZE,
		PAYLOAD_CLIENT_ID_SIZE, PAYLOAD_AES_KEY_SIZE, PAYLOAD_FILE_CRC_SIZE,
	};
	size_t k, m;

	for (k = 0; k <= sizeof(sizes) / sizeof(sizes[0]); k++) {
		m = k < sizeof(sizes) / sizeof(sizes[0]) ? sizes[k] : n;
		if (m > n)
			continue;
		fuzz_name(d, m);
		fuzz_public_key(d, m);
		fuzz_file_packet(d, m);
		fuzz_client_id(d, m);
		fuzz_aes_key(d, m);
		fuzz_file_crc(d, m);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_headers(data, size);
	fuzz_payloads(data, size);
	/* The same payloads again after a request and a response header, as the frame parser
	 * would hand them over. */
	if (size > REQ_HEADER_SIZE)
		fuzz_payloads(data + REQ_HEADER_SIZE, size - REQ_HEADER_SIZE);
	if (size > RESP_HEADER_SIZE)
		fuzz_payloads(data + RESP_HEADER_SIZE, size - RESP_HEADER_SIZE);
	return 0;
}
