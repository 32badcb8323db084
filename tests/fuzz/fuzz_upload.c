/* fuzz_upload.c: libFuzzer target for the server's upload reassembler (server/upload.c), the
 * code that turns 828 packets from the wire into a file. The input is a script of packets:
 *   per packet: content_size u32, orig_file_size u32, u16 at offset 8, u16 at offset 10,
 *   a name selector u8, a content length u16, then that many content bytes (cut short at the
 *   end of the input), fed in two slices split where the next input byte says.
 * The key is the Crypto++ fixture key 00 01 .. 1f, so real ciphertexts make good seeds.
 * Invariants (abort on violation): the sink never gets more than orig_file_size bytes of one
 * upload; a completed upload's plaintext size, size and CRC equal what the sink received. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../protocol/cksum.h"
#include "../../protocol/codes.h"
#include "../../protocol/crypto.h"
#include "../../protocol/msg.h"
#include "../../server/upload.h"

#define FUZZ_MAX_FILE (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sink_state {
	struct cksum ck;
	uint64_t bytes;
	uint64_t limit;  /* orig_file_size of the upload being fed */
};

static int sink_write(void *ctx, const uint8_t *p, size_t n)
{
	struct sink_state *s = ctx;

	s->bytes += n;
	if (s->bytes > s->limit)
		abort();  /* more plaintext than the upload announced */
	cksum_update(&s->ck, p, n);
	return 0;
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "a.bin", "b.bin", "dir/a.bin", "x" };
	uint8_t key[AES_KEY_SIZE];
	struct upload *u = NULL;
	struct upload_result res;
	struct sink_state st;
	struct upload_sink sink = { sink_write, &st };
	struct msg_file_packet p;
	size_t off = 0, i;
	int complete;

	for (i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)i;
	if (crypto_init() != 0 || upload_new(&u, key, FUZZ_MAX_FILE) != 0)
		abort();
	memset(&st, 0, sizeof(st));
	cksum_init(&st.ck);
	while (size - off >= 15) {
		uint16_t clen;
		size_t have, cut;

		memset(&p, 0, sizeof(p));
		p.content_size = get_u32(data + off);
		p.orig_file_size = get_u32(data + off + 4);
		p.packet_number = get_u16(data + off + 8);
		p.total_packets = get_u16(data + off + 10);
		strcpy(p.file_name, names[data[off + 12] % 4]);
		clen = get_u16(data + off + 13);
		off += 15;
		have = size - off < clen ? size - off : clen;
		if (upload_packet_begin(u, &p, clen) != 0)
			break;
		if (upload_packet_is_first(u)) {  /* a new attempt: the sink starts over */
			cksum_init(&st.ck);
			st.bytes = 0;
			st.limit = p.orig_file_size;
		}
		cut = have > 0 ? data[off] % (have + 1) : 0;
		if (upload_packet_data(u, data + off, cut, &sink) != 0 ||
		    upload_packet_data(u, data + off + cut, have - cut, &sink) != 0)
			break;
		off += have;
		if (have < clen)
			break;  /* the input ended inside the packet: a connection cut mid-upload */
		complete = 0;
		if (upload_packet_end(u, &sink, &complete) != 0)
			break;
		if (complete) {
			if (upload_result(u, &res) != 0 || res.plain_size != st.bytes ||
			    res.plain_size != p.orig_file_size || res.cksum != cksum_final(&st.ck))
				abort();
			cksum_init(&st.ck);
			st.bytes = 0;
		}
	}
	upload_free(u);
	return 0;
}
