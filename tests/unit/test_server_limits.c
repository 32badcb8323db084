/* test_server_limits.c: the limits per client and per address (server/limits.c) and the
 * minimum upload rate, through a connection with no socket (tests/common/mem_conn.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <time.h>

#include "../../protocol/aes.h"
#include "../../protocol/crypto.h"
#include "../../protocol/err.h"
#include "../../protocol/msg.h"
#include "../../server/commit.h"
#include "../../server/limits.h"
#include "../common/mem_conn.h"

static const uint8_t zero_id[CLIENT_ID_SIZE];

static int
setup(void **state)
{
	struct memc *g;

	limits_reset();
	assert_non_null(g = memc_new("192.0.2.7:4000"));
	*state = g;
	return 0;
}

static int
teardown(void **state)
{
	memc_free(*state);
	limits_reset();
	return 0;
}

/* The codes of every reply written so far, in order (at most cap). */
static size_t
reply_codes(struct memc *g, uint16_t *codes, size_t cap)
{
	size_t at = 0, n = 0;

	while (at < g->p.out_len && n < cap) {
		struct buf b;
		struct msg_header h;

		buf_init(&b, MEMC_OUT_MAX);
		assert_int_equal(buf_put_bytes(&b, g->p.out + at, g->p.out_len - at), 0);
		assert_int_equal(msg_response_header_decode(&b, &h), 0);
		codes[n++] = h.code;
		at += RESP_HEADER_SIZE + h.payload_size;
		buf_free(&b);
	}
	return n;
}

static uint16_t
last_reply(struct memc *g)
{
	uint16_t codes[512];
	size_t n = reply_codes(g, codes, 512);

	assert_true(n > 0);
	return codes[n - 1];
}

static uint8_t *
encrypt(const uint8_t key[AES_KEY_SIZE], const uint8_t *plain, size_t n, size_t *ct_len)
{
	struct aes_cbc *a = NULL;
	uint8_t *ct = malloc(n + 2 * AES_BLOCK_SIZE);
	size_t l1, l2;

	assert_non_null(ct);
	assert_int_equal(aes_cbc_new(&a, key, AES_ENCRYPT), 0);
	assert_int_equal(aes_cbc_update(a, plain, n, ct, &l1), 0);
	assert_int_equal(aes_cbc_final(a, ct + l1, &l2), 0);
	aes_cbc_free(a);
	*ct_len = l1 + l2;
	return ct;
}

#define ID_HEX "11111111111111111111111111111111"

static void
stored_client(struct memc *g, uint8_t id[CLIENT_ID_SIZE], uint8_t key[AES_KEY_SIZE])
{
	memset(id, 0x11, CLIENT_ID_SIZE);
	memset(key, 0x22, AES_KEY_SIZE);
	assert_int_equal(db_client_register(g->env.db, "erin", id), 0);
	assert_int_equal(db_client_set_aes_key(g->env.db, id, key), 0);
	conn_set_identity(g->c, id, "erin", key);  /* as after a 1605 on this connection */
}

/* A stored row of the client: name, size. */
static void
stored_file(struct memc *g, const uint8_t id[CLIENT_ID_SIZE], const char *name, uint64_t size)
{
	struct db_file f;

	memset(&f, 0, sizeof(f));
	memcpy(f.owner, id, CLIENT_ID_SIZE);
	snprintf(f.owner_name, sizeof(f.owner_name), "erin");
	snprintf(f.file_name, sizeof(f.file_name), "%s", name);
	snprintf(f.path_name, sizeof(f.path_name), ID_HEX "/%s", name);
	f.size = size;
	f.uploaded = 1;
	assert_int_equal(db_file_record(g->env.db, &f), 0);
}

/* Packet `number` (1-based) of `total` for ct, psize bytes of content each. */
static void
put_packet(struct buf *b, const uint8_t id[CLIENT_ID_SIZE], const uint8_t *ct, size_t ct_len,
    size_t plain_len, size_t psize, uint16_t number, uint16_t total)
{
	struct msg_file_packet f;
	size_t off = (size_t)(number - 1) * psize;
	size_t n = ct_len - off < psize ? ct_len - off : psize;

	memset(&f, 0, sizeof(f));
	f.content_size = (uint32_t)ct_len;
	f.orig_file_size = (uint32_t)plain_len;
	f.packet_number = number;
	f.total_packets = total;
	snprintf(f.file_name, sizeof(f.file_name), "notes.txt");
	assert_int_equal(msg_put_file_packet_header(b, id, &f, (uint32_t)n, 0), 0);
	assert_int_equal(buf_put_bytes(b, ct + off, n), 0);
}

/* A whole 3000-byte "notes.txt" in two packets; the last reply's code. */
static uint16_t
upload(struct memc *g, const uint8_t id[CLIENT_ID_SIZE], const uint8_t key[AES_KEY_SIZE])
{
	uint8_t plain[3000], *ct;
	size_t ct_len;
	struct buf b;

	memset(plain, 'q', sizeof(plain));
	ct = encrypt(key, plain, sizeof(plain), &ct_len);
	buf_init(&b, 16384);
	put_packet(&b, id, ct, ct_len, sizeof(plain), 2048, 1, 2);
	put_packet(&b, id, ct, ct_len, sizeof(plain), 2048, 2, 2);
	free(ct);
	assert_int_equal(memc_feed_buf(g, &b), 0);
	return last_reply(g);
}

/* Entries in the client's folder (a temporary file would be one). */
static int
entries(const struct memc *g)
{
	char path[256];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/" ID_HEX, g->dir);
	if ((d = opendir(path)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* --max-client-storage: 5000 bytes stored and 3000 more would pass 6000: 1607, no file. A
 * replacement counts its new size minus the old: 5000 + 2500 stored, 8000 allowed, the
 * 3000-byte upload replaces the 2500-byte file: accepted (10500 > 8000 without the rule). */
static void
test_client_storage(void **state)
{
	struct memc *g = *state;
	uint8_t id[CLIENT_ID_SIZE], key[AES_KEY_SIZE];

	stored_client(g, id, key);
	stored_file(g, id, "other.bin", 5000);
	g->cfg.max_client_storage = 6000;
	assert_int_equal(upload(g, id, key), RESP_ERROR);
	assert_null(g->c->recv);
	assert_int_equal(entries(g), 0);
	assert_int_equal(limits_uploads(id), 0);

	stored_file(g, id, "notes.txt", 2500);
	g->cfg.max_client_storage = 8000;
	assert_int_equal(upload(g, id, key), RESP_FILE_CRC);
	assert_int_equal(entries(g), 1);
	g->cfg.max_client_storage = 7999;
	assert_int_equal(upload(g, id, key), RESP_ERROR);
}

/* --max-client-files: one file stored, one allowed: a new name gets 1607; the same name (a
 * replacement) is accepted. */
static void
test_client_files(void **state)
{
	struct memc *g = *state;
	uint8_t id[CLIENT_ID_SIZE], key[AES_KEY_SIZE];

	stored_client(g, id, key);
	stored_file(g, id, "other.bin", 10);
	g->cfg.max_client_files = 1;
	assert_int_equal(upload(g, id, key), RESP_ERROR);
	assert_int_equal(entries(g), 0);
	g->cfg.max_client_files = 2;
	assert_int_equal(upload(g, id, key), RESP_FILE_CRC);
	g->cfg.max_client_files = 2;
	assert_int_equal(upload(g, id, key), RESP_FILE_CRC);  /* replaces notes.txt */
}

/* A finished attempt waiting for its 900 (staged beside the stored files, issue 9 item 1) has
 * no row yet, but a 900 on its connection would publish it whatever the client's other
 * connections store meanwhile: it counts against --max-client-storage and --max-client-files
 * until its verdict. 3000 bytes staged on one connection, 5000 allowed: another connection's
 * 3000-byte upload gets 1607; once the staged attempt goes, it is accepted. */
static void
test_staged_attempt_counts(void **state)
{
	struct memc *g = *state;
	struct memc *h;
	uint8_t id[CLIENT_ID_SIZE], key[AES_KEY_SIZE];

	stored_client(g, id, key);
	g->cfg.max_client_storage = 5000;
	assert_int_equal(upload(g, id, key), RESP_FILE_CRC);
	assert_non_null(g->c->staged);
	assert_int_equal(limits_staged(id), 1);

	assert_non_null(h = memc_new("192.0.2.8:1"));
	h->cfg.max_client_storage = 5000;
	assert_int_equal(db_client_register(h->env.db, "erin", id), 0);
	assert_int_equal(db_client_set_aes_key(h->env.db, id, key), 0);
	conn_set_identity(h->c, id, "erin", key);
	assert_int_equal(upload(h, id, key), RESP_ERROR);
	assert_null(h->c->staged);

	/* The same with a file count: one staged, one allowed. */
	h->cfg.max_client_storage = 0;
	h->cfg.max_client_files = 1;
	assert_int_equal(upload(h, id, key), RESP_ERROR);

	commit_discard(g->c);  /* as on 902, a new attempt or a closed connection */
	assert_int_equal(upload(h, id, key), RESP_FILE_CRC);
	h->cfg.max_client_files = 0;
	h->cfg.max_client_storage = 5000;
	g->cfg.max_client_storage = 5000;
	assert_int_equal(upload(g, id, key), RESP_ERROR);  /* h's staged attempt counts now */
	assert_int_equal(limits_staged(id), 1);
	memc_free(h);  /* its staged attempt goes with the connection */
	assert_int_equal(limits_staged(id), 0);
	assert_int_equal(upload(g, id, key), RESP_FILE_CRC);
}

/* --max-uploads-per-client: with N in progress elsewhere (another worker's connection holds
 * them), a first packet gets 1607; once one ends, the upload goes through; its slot is given
 * back at its 1603 and on an abort. */
static void
test_uploads_per_client(void **state)
{
	struct memc *g = *state;
	struct memc *h;
	uint8_t id[CLIENT_ID_SIZE], key[AES_KEY_SIZE], plain[3000], *ct;
	size_t ct_len;
	struct buf b;
	unsigned i;

	stored_client(g, id, key);
	g->cfg.max_uploads_per_client = 2;
	for (i = 0; i < 2; i++)
		assert_true(limits_upload_begin(id, 2));
	assert_int_equal(upload(g, id, key), RESP_ERROR);
	assert_null(g->c->recv);
	assert_int_equal(limits_uploads(id), 2);
	limits_upload_end(id);
	assert_int_equal(upload(g, id, key), RESP_FILE_CRC);
	assert_int_equal(limits_uploads(id), 1);

	/* A second connection mid-upload holds a slot until it is freed. */
	assert_non_null(h = memc_new("192.0.2.8:1"));
	h->cfg.max_uploads_per_client = 2;
	assert_int_equal(db_client_register(h->env.db, "erin", id), 0);
	assert_int_equal(db_client_set_aes_key(h->env.db, id, key), 0);
	conn_set_identity(h->c, id, "erin", key);
	memset(plain, 'q', sizeof(plain));
	ct = encrypt(key, plain, sizeof(plain), &ct_len);
	buf_init(&b, 8192);
	put_packet(&b, id, ct, ct_len, sizeof(plain), 2048, 1, 2);
	free(ct);
	assert_int_equal(memc_feed_buf(h, &b), 0);
	assert_non_null(h->c->recv);
	assert_int_equal(limits_uploads(id), 2);
	assert_int_equal(upload(g, id, key), RESP_ERROR);
	memc_free(h);
	assert_int_equal(limits_uploads(id), 1);
	assert_int_equal(upload(g, id, key), RESP_FILE_CRC);
}

/* --max-registrations-per-minute: N 825s from one address pass, the next gets 1607 and the
 * connection closes; a connection from another address is not affected; tokens come back at
 * N per minute. */
static void
test_registrations_per_address(void **state)
{
	struct memc *g = *state;
	uint16_t codes[16];
	char name[32];
	struct buf b;
	int i;

	g->cfg.max_registrations = 3;
	for (i = 0; i < 4; i++) {
		buf_init(&b, 4096);
		snprintf(name, sizeof(name), "user%d", i);
		assert_int_equal(msg_put_name_request(&b, zero_id, REQ_REGISTER, name), 0);
		assert_int_equal(memc_feed_buf(g, &b), 0);
	}
	assert_int_equal(reply_codes(g, codes, 16), 4);
	assert_int_equal(codes[0], RESP_REGISTERED);
	assert_int_equal(codes[2], RESP_REGISTERED);
	assert_int_equal(codes[3], RESP_ERROR);
	assert_true(g->c->closing);

	assert_int_equal(limits_registration_allow("192.0.2.7", 3, 1000), 0);
	assert_int_equal(limits_registration_allow("192.0.2.99", 3, 1000), 1);
	assert_int_equal(limits_registration_allow("192.0.2.7", 3, 1000 + 20000), 1);
	assert_int_equal(limits_registration_allow("192.0.2.7", 3, 1000 + 20000), 0);
}

/* The address table is bounded: thousands of addresses evict the least recently used, and a
 * busy address keeps its (empty) bucket. The peer string's port is not part of the address. */
static void
test_address_table(void **state)
{
	char a[LIMITS_ADDR_MAX], addr[64];
	int i;

	(void)state;
	limits_peer_address("10.0.0.1:5555", a);
	assert_string_equal(a, "10.0.0.1");
	limits_peer_address("[2001:db8::1]:80", a);
	assert_string_equal(a, "2001:db8::1");
	assert_int_equal(limits_registration_allow("10.0.0.1", 1, 5000), 1);
	for (i = 0; i < 20000; i++) {
		snprintf(addr, sizeof(addr), "10.1.%d.%d", i / 256, i % 256);
		assert_int_equal(limits_registration_allow(addr, 1, 5000 + i), 1);
		if (i % 100 == 0)  /* the busy address stays recent, and empty */
			assert_int_equal(limits_registration_allow("10.0.0.1", 1, 5000 + i), 0);
	}
}

/* --min-upload-rate: one small packet (16 bytes of content) every 15 s stays within
 * --idle-timeout 20 and never trips the per-period content rule (each read ends on a packet
 * boundary); the average over the upload does: closed once the upload is older than the
 * grace. */
static void
test_min_upload_rate_small_packets(void **state)
{
	struct memc *g = *state;
	uint8_t id[CLIENT_ID_SIZE], key[AES_KEY_SIZE], plain[3000], *ct;
	size_t ct_len;
	struct buf b;
	uint16_t i, total;

	stored_client(g, id, key);
	g->cfg.idle_timeout = 20;
	memset(plain, 'z', sizeof(plain));
	ct = encrypt(key, plain, sizeof(plain), &ct_len);
	total = (uint16_t)((ct_len + 15) / 16);
	for (i = 1; i <= total; i++) {
		buf_init(&b, 1024);
		put_packet(&b, id, ct, ct_len, sizeof(plain), 16, i, total);
		assert_int_equal(memc_feed_buf(g, &b), 0);
		assert_non_null(g->c->recv);
		g->env.now_ms += 15000;
		if (conn_check_timeouts(g->c, g->env.now_ms))
			break;
	}
	free(ct);
	assert_true(g->c->closing);
	assert_int_equal(i, 2);  /* 30 s after the first packet */
}

/* A fast enough upload is not touched by the rate rule however long it runs: 64 KiB every
 * 10 s is 6.5 KiB/s. */
static void
test_min_upload_rate_fast_enough(void **state)
{
	struct memc *g = *state;
	uint8_t id[CLIENT_ID_SIZE], key[AES_KEY_SIZE], *plain, *ct;
	size_t ct_len, n = 640 * 1024, psize = 65536;
	struct buf b;
	uint16_t i, total;

	stored_client(g, id, key);
	g->cfg.idle_timeout = 20;
	assert_non_null(plain = calloc(1, n));
	ct = encrypt(key, plain, n, &ct_len);
	free(plain);
	total = (uint16_t)((ct_len + psize - 1) / psize);
	for (i = 1; i <= total; i++) {
		g->env.now_ms += 10000;
		assert_int_equal(conn_check_timeouts(g->c, g->env.now_ms), 0);
		buf_init(&b, psize + 1024);
		put_packet(&b, id, ct, ct_len, n, psize, i, total);
		g->p.in_len = g->p.in_off = 0;
		assert_int_equal(memc_feed_buf(g, &b), 0);
	}
	free(ct);
	assert_false(g->c->closing);
	assert_int_equal(last_reply(g), RESP_FILE_CRC);
}

/* --retry-reply-after: a 901 with nothing after it gets one 1604 once the time has passed
 * (not before); a 901 followed at once by the resend's first bytes never does. */
static void
test_retry_reply(void **state)
{
	struct memc *g = *state;
	uint8_t id[CLIENT_ID_SIZE], key[AES_KEY_SIZE];
	uint16_t codes[16];
	struct buf b;

	stored_client(g, id, key);
	assert_int_equal(upload(g, id, key), RESP_FILE_CRC);
	buf_init(&b, 4096);
	assert_int_equal(msg_put_name_request(&b, id, REQ_CRC_RETRY, "notes.txt"), 0);
	assert_int_equal(memc_feed_buf(g, &b), 0);
	assert_int_equal(reply_codes(g, codes, 16), 1);
	assert_int_equal(conn_check_timeouts(g->c, g->env.now_ms + 999), 0);
	assert_int_equal(reply_codes(g, codes, 16), 1);
	assert_int_equal(conn_check_timeouts(g->c, g->env.now_ms + 1000), 0);
	assert_int_equal(reply_codes(g, codes, 16), 2);
	assert_int_equal(codes[1], RESP_ACK);
	assert_false(g->c->closing);
	assert_int_equal(conn_check_timeouts(g->c, g->env.now_ms + 2000), 0);
	assert_int_equal(reply_codes(g, codes, 16), 2);  /* once */

	/* The 901 and the resend's first bytes together: no 1604, then the resend's 1603. */
	buf_init(&b, 4096);
	assert_int_equal(msg_put_name_request(&b, id, REQ_CRC_RETRY, "notes.txt"), 0);
	assert_int_equal(buf_put_bytes(&b, "\x11\x11\x11", 3), 0);
	assert_int_equal(memc_feed_buf(g, &b), 0);
	assert_int_equal(conn_check_timeouts(g->c, g->env.now_ms + 1500), 0);
	assert_int_equal(reply_codes(g, codes, 16), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_client_storage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_staged_attempt_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uploads_per_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registrations_per_address, setup, teardown),
		cmocka_unit_test_setup_teardown(test_address_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_min_upload_rate_small_packets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_min_upload_rate_fast_enough, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_reply, setup, teardown),
	};

	if (crypto_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
