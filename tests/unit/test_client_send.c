/* test_client_send.c: the client's upload writer (client/send.c) and its sending thread
 * (client/sendq.c). Each upload goes over a socketpair to a reader thread; the bytes it got are
 * parsed here by hand (SPEC.md 5: little-endian headers), the content joined in packet order and
 * decrypted with libgcrypt directly, and compared with the file, for files of one chunk and of
 * several, and for layouts whose packets outnumber one write's pieces (the path where a chunk's
 * pieces span two slots of the sending thread). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <gcrypt.h>

#include "../../client/send.h"
#include "../../client/sendq.h"
#include "../../client/options.h"
#include "../../protocol/cksum.h"
#include "../../protocol/codes.h"
#include "../../protocol/crypto.h"

/* ---- the receiving side ---- */

struct reader {
	int fd;
	uint8_t *data;
	size_t len, cap;
	size_t stop_after;   /* > 0: close after this many bytes (a peer gone mid-upload) */
};

static void *
reader_run(void *arg)
{
	struct reader *r = arg;
	ssize_t n;

	for (;;) {
		if (r->len == r->cap) {
			r->cap = r->cap ? r->cap * 2 : 1u << 20;
			r->data = realloc(r->data, r->cap);
			if (r->data == NULL)
				abort();
		}
		n = read(r->fd, r->data + r->len, r->cap - r->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		r->len += (size_t)n;
		if (r->stop_after > 0 && r->len >= r->stop_after)
			break;
	}
	close(r->fd);
	return NULL;
}

static uint32_t
le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t
le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* ---- one upload ---- */

#define TEST_NAME "data.bin"

static const uint8_t test_id[CLIENT_ID_SIZE] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
    14, 15, 16 };
static const uint8_t test_key[AES_KEY_SIZE] = { 0x42, 0x17, 0x99 };

/* A file of size bytes (a pattern that differs in every 16-byte block); its fd. */
static int
make_file(uint64_t size, uint8_t **content)
{
	char path[] = "/tmp/test_client_send.XXXXXX";
	uint8_t *p = malloc(size ? size : 1);
	uint64_t i;
	int fd;

	assert_non_null(p);
	for (i = 0; i < size; i++)
		p[i] = (uint8_t)(i * 2654435761u >> 13);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, p, size), (ssize_t)size);
	*content = p;
	return fd;
}

/* Sends a file of size bytes with layout l, checks every packet and the decrypted content. */
static void
check_upload(const struct send_layout *l, uint64_t size)
{
	struct reader rd = { 0 };
	struct progress pr;
	struct send_job job;
	struct cksum ck;
	pthread_t t;
	uint8_t *content, *cipher, *plain;
	uint32_t crc, ps, packets, expect_no, clen, total;
	uint64_t cipher_size, got = 0;
	size_t off = 0, plain_len;
	gcry_cipher_hd_t h;
	int sv[2], fd;

	fd = make_file(size, &content);
	assert_int_equal(send_plan(l, size, &ps, &packets, &cipher_size), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	rd.fd = sv[1];
	assert_int_equal(pthread_create(&t, NULL, reader_run, &rd), 0);
	progress_start(&pr, 0, size, "test");
	memset(&job, 0, sizeof(job));
	job.sock = sv[0];
	job.timeout_ms = 10000;
	job.file_fd = fd;
	job.file_path = "test file";
	job.file_size = size;
	job.file_name = TEST_NAME;
	job.client_id = test_id;
	job.aes_key = test_key;
	job.upload_no = 1;
	job.progress = &pr;
	assert_int_equal(send_file(l, &job, &crc), CX_OK);
	close(sv[0]);
	pthread_join(t, NULL);

	cksum_init(&ck);
	cksum_update(&ck, content, size);
	assert_int_equal(crc, cksum_final(&ck));

	/* The packets, in order, each header as SPEC.md 5 lays it out. */
	cipher = malloc(cipher_size + 1);
	assert_non_null(cipher);
	expect_no = (uint32_t)l->first_packet;
	while (off < rd.len) {
		assert_true(rd.len - off >= REQ_HEADER_SIZE + FILE_PACKET_HEADER_SIZE);
		assert_memory_equal(rd.data + off, test_id, CLIENT_ID_SIZE);
		assert_int_equal(rd.data[off + 16], PROTO_VERSION);
		assert_int_equal(le16(rd.data + off + 17), REQ_SEND_FILE);
		total = le32(rd.data + off + 19);
		off += REQ_HEADER_SIZE;
		assert_true(rd.len - off >= total);
		assert_int_equal(le32(rd.data + off), (uint32_t)cipher_size);
		assert_int_equal(le32(rd.data + off + 4), (uint32_t)size);
		assert_int_equal(le16(rd.data + off + 8), expect_no);
		assert_int_equal(le16(rd.data + off + 10), packets);
		assert_string_equal((const char *)rd.data + off + 12, TEST_NAME);
		clen = total - FILE_PACKET_HEADER_SIZE;
		/* Content of a packet is ps bytes (the last one less, unless padded). */
		assert_true(clen <= ps);
		if (!l->pad_last_packet && got + clen < cipher_size)
			assert_int_equal(clen, ps);
		if (l->pad_last_packet)
			assert_int_equal(clen, ps);
		if (got + clen > cipher_size) {
			/* The padding of --pad-last-packet: zeros. */
			uint32_t i, real = (uint32_t)(cipher_size - got);

			for (i = real; i < clen; i++)
				assert_int_equal(rd.data[off + FILE_PACKET_HEADER_SIZE + i], 0);
			clen = real;
		}
		memcpy(cipher + got, rd.data + off + FILE_PACKET_HEADER_SIZE, clen);
		got += clen;
		off += total;
		expect_no++;
	}
	assert_int_equal(off, rd.len);
	assert_int_equal(expect_no - (uint32_t)l->first_packet, packets);
	assert_int_equal(got, cipher_size);

	/* AES-256-CBC, zero IV, PKCS#7 (SPEC.md 4), by libgcrypt itself. */
	plain = malloc(cipher_size);
	assert_non_null(plain);
	assert_int_equal(gcry_cipher_open(&h, GCRY_CIPHER_AES256, GCRY_CIPHER_MODE_CBC, 0), 0);
	assert_int_equal(gcry_cipher_setkey(h, test_key, AES_KEY_SIZE), 0);
	assert_int_equal(gcry_cipher_decrypt(h, plain, cipher_size, cipher, cipher_size), 0);
	gcry_cipher_close(h);
	assert_true(cipher_size >= 16 && cipher_size % 16 == 0);
	assert_true(plain[cipher_size - 1] >= 1 && plain[cipher_size - 1] <= 16);
	plain_len = cipher_size - plain[cipher_size - 1];
	assert_int_equal(plain_len, size);
	assert_memory_equal(plain, content, size);

	free(plain);
	free(cipher);
	free(rd.data);
	free(content);
	close(fd);
}

static struct send_layout
layout(uint32_t packet_size)
{
	struct send_layout l;

	memset(&l, 0, sizeof(l));
	l.packet_size = packet_size;
	l.first_packet = 1;
	return l;
}

/* One chunk: no sending thread. */
static void
test_small_files(void **state)
{
	struct send_layout l = layout(65536);

	(void)state;
	check_upload(&l, 0);
	check_upload(&l, 1);
	check_upload(&l, 65536);
	check_upload(&l, SEND_PIPE_CHUNK);
}

/* Several chunks: the sending thread, with sizes around the chunk and the packet edges. */
static void
test_large_files(void **state)
{
	struct send_layout l = layout(65536);

	(void)state;
	check_upload(&l, SEND_PIPE_CHUNK + 1);
	check_upload(&l, 3 * SEND_PIPE_CHUNK - 15);
	check_upload(&l, 9u * 1024 * 1024 + 12345);
}

/* More packets per chunk than pieces per write: a chunk's pieces span two slots, and slots are
 * reused only once the thread has written them (a reuse too early sends other bytes). */
static void
test_many_packets_per_chunk(void **state)
{
	struct send_layout l = layout(4096);
	struct send_layout copied = layout(1000);   /* content copied next to its headers */
	struct send_layout padded = layout(65536);
	struct send_layout zero = layout(8192);

	(void)state;
	check_upload(&l, 5u * 1024 * 1024 + 7);
	check_upload(&copied, 2u * 1024 * 1024 + 3);
	padded.pad_last_packet = 1;
	check_upload(&padded, 3u * 1024 * 1024 + 100);
	zero.first_packet = 0;
	check_upload(&zero, 4u * 1024 * 1024);
}

/* The other layouts through the sending thread: one packet for the whole file, a padded
 * packet larger than the output buffer (its zeros span several writes), packet sizes off the
 * 16-byte grid, 16-byte packets numbered from 0. */
static void
test_other_layouts(void **state)
{
	struct send_layout single = layout(65536), bigpad = layout(4u << 20), odd = layout(4100),
	    tiny = layout(16), padodd = layout(3000);

	(void)state;
	single.single_packet = 1;
	check_upload(&single, 5u * 1024 * 1024 + 9);
	bigpad.pad_last_packet = 1;
	check_upload(&bigpad, 5u * 1024 * 1024 + 9);
	check_upload(&odd, 3u * 1024 * 1024 + 5);
	tiny.first_packet = 0;
	check_upload(&tiny, SEND_PIPE_CHUNK + 4096);
	padodd.pad_last_packet = 1;
	check_upload(&padodd, 2u * 1024 * 1024 + 1);
}

/* The peer goes away mid-upload: the thread's failure reaches send_file, which returns
 * CX_CONNECTION (not a hang, not success). */
static void
test_peer_gone(void **state)
{
	struct send_layout l = layout(65536);
	struct reader rd = { 0 };
	struct progress pr;
	struct send_job job;
	uint8_t *content;
	uint32_t crc = 1;
	pthread_t t;
	int sv[2], fd;

	(void)state;
	fd = make_file(16u * 1024 * 1024, &content);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	rd.fd = sv[1];
	rd.stop_after = 1u << 20;
	assert_int_equal(pthread_create(&t, NULL, reader_run, &rd), 0);
	progress_start(&pr, 0, 16u * 1024 * 1024, "test");
	memset(&job, 0, sizeof(job));
	job.sock = sv[0];
	job.timeout_ms = 10000;
	job.file_fd = fd;
	job.file_path = "test file";
	job.file_size = 16u * 1024 * 1024;
	job.file_name = TEST_NAME;
	job.client_id = test_id;
	job.aes_key = test_key;
	job.progress = &pr;
	assert_int_equal(send_file(&l, &job, &crc), CX_CONNECTION);
	assert_int_equal(crc, 0);
	pthread_join(t, NULL);
	close(sv[0]);
	close(fd);
	free(rd.data);
	free(content);
}

/* sendq on its own: lists come out in the order pushed; sendq_wait(0) means all written. */
static void
test_sendq_order(void **state)
{
	struct reader rd = { 0 };
	struct sendq *q;
	struct iovec iov[3];
	uint8_t pieces[100][3];
	pthread_t t;
	int sv[2], i, j;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	rd.fd = sv[1];
	assert_int_equal(pthread_create(&t, NULL, reader_run, &rd), 0);
	assert_int_equal(sendq_start(&q, sv[0], 10000), 0);
	for (i = 0; i < 100; i++) {
		for (j = 0; j < 3; j++) {
			pieces[i][j] = (uint8_t)(i * 3 + j);
			iov[j].iov_base = &pieces[i][j];
			iov[j].iov_len = 1;
		}
		assert_int_equal(sendq_push(q, iov, 3), 0);
		if (i % 10 == 9)
			assert_int_equal(sendq_wait(q, 0), 0);
	}
	assert_int_equal(sendq_finish(q), 0);
	close(sv[0]);
	pthread_join(t, NULL);
	assert_int_equal(rd.len, 300);
	for (i = 0; i < 300; i++)
		assert_int_equal(rd.data[i], (uint8_t)i);
	free(rd.data);
}

/* A list longer than SENDQ_IOV_MAX is refused; abort with lists queued to a peer that reads
 * nothing returns once the one being written times out. */
static void
test_sendq_limits(void **state)
{
	static uint8_t big[1u << 20];
	struct iovec iov[SENDQ_IOV_MAX + 1];
	struct sendq *q;
	int sv[2];
	size_t i;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(sendq_start(&q, sv[0], 200), 0);
	for (i = 0; i <= SENDQ_IOV_MAX; i++) {
		iov[i].iov_base = big;
		iov[i].iov_len = 1;
	}
	errno = 0;
	assert_int_equal(sendq_push(q, iov, SENDQ_IOV_MAX + 1), -1);
	assert_int_equal(errno, EINVAL);
	iov[0].iov_len = sizeof(big);
	assert_int_equal(sendq_push(q, iov, 1), 0);
	/* Nobody reads: the write times out, and the failure is what later calls say. */
	assert_int_equal(sendq_wait(q, 0), -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_int_equal(sendq_push(q, iov, 1), -1);
	sendq_abort(q);
	close(sv[0]);
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_files),
		cmocka_unit_test(test_large_files),
		cmocka_unit_test(test_many_packets_per_chunk),
		cmocka_unit_test(test_other_layouts),
		cmocka_unit_test(test_peer_gone),
		cmocka_unit_test(test_sendq_order),
		cmocka_unit_test(test_sendq_limits),
	};

	signal(SIGPIPE, SIG_IGN);
	if (crypto_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
