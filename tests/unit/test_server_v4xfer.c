/* test_server_v4xfer.c: version 4's transfers on the server (put.c, fetch.c) without TLS or
 * sockets: connections in version-4 mode with a known account are fed requests through an
 * in-memory transport; replies, files on disk and database rows are checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "../../db/db.h"
#include "../../protocol/buf.h"
#include "../../protocol/cksum.h"
#include "../../protocol/crypto.h"
#include "../../protocol/err.h"
#include "../../protocol/hex.h"
#include "../../protocol/msg4.h"
#include "../../server/commit.h"
#include "../../server/config.h"
#include "../../server/conn.h"
#include "../../server/fetch.h"
#include "../../server/limits.h"
#include "../../server/put.h"
#include "../../server/storage.h"

#define IN_MAX (8u << 20)
#define OUT_MAX (16u << 20)

struct mem {
	uint8_t *in;
	size_t in_len, in_off;
	int eof;
	uint8_t *out;
	size_t out_len, out_at;   /* out_at: replies read so far */
	int blocked;
	int closed;
};

static ssize_t
mem_read(struct conn_transport *t, uint8_t *buf, size_t cap)
{
	struct mem *m = t->ctx;
	size_t n = m->in_len - m->in_off;

	if (n == 0)
		return m->eof ? CONN_IO_EOF : CONN_IO_AGAIN;
	if (n > cap)
		n = cap;
	memcpy(buf, m->in + m->in_off, n);
	m->in_off += n;
	return (ssize_t)n;
}

static ssize_t
mem_write(struct conn_transport *t, const uint8_t *buf, size_t len)
{
	struct mem *m = t->ctx;

	if (m->blocked)
		return CONN_IO_AGAIN;
	assert_true(len <= OUT_MAX - m->out_len);
	memcpy(m->out + m->out_len, buf, len);
	m->out_len += len;
	return (ssize_t)len;
}

static unsigned
mem_want(struct conn_transport *t)
{
	(void)t;
	return 0;
}

static int
mem_pending(struct conn_transport *t)
{
	(void)t;
	return 0;
}

static void
mem_close(struct conn_transport *t)
{
	struct mem *m = t->ctx;

	m->closed = 1;
}

static const char *
mem_nothing(struct conn_transport *t)
{
	(void)t;
	return NULL;
}

static const struct conn_transport_ops mem_ops = {
	mem_read, mem_write, mem_want, mem_pending, mem_close, mem_nothing, mem_nothing,
	NULL,  /* no lingering close: closes at once */
};

static const char fp_a[] = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
static const char fp_b[] = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
static const uint8_t id_a[CLIENT_ID_SIZE] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
static const uint8_t id_b[CLIENT_ID_SIZE] = { 2, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };

struct peer {
	struct mem m;
	struct conn *c;
};

struct rig {
	struct server_config cfg;
	struct conn_env env;
	char dir[64];
	struct peer p[3];
};

static void
peer_open(struct rig *g, int i, const uint8_t *id, const char *name)
{
	struct peer *p = &g->p[i];
	struct conn_transport t;

	memset(&p->m, 0, sizeof(p->m));
	assert_non_null(p->m.in = malloc(IN_MAX));
	assert_non_null(p->m.out = malloc(OUT_MAX));
	t.ops = &mem_ops;
	t.fd = -1;
	t.ctx = &p->m;
	assert_non_null(p->c = conn_new(&g->env, &t, "test:1"));
	if (id != NULL)
		conn_set_identity(p->c, id, name, NULL);
	conn_enter_v4(p->c);
}

static void
peer_close(struct rig *g, int i)
{
	struct peer *p = &g->p[i];

	if (p->c == NULL)
		return;
	conn_free(p->c);
	assert_true(p->m.closed);
	p->c = NULL;
	free(p->m.in);
	free(p->m.out);
}

static int
rig_setup(void **state)
{
	struct rig *g = calloc(1, sizeof(*g));
	uint8_t key[PUBLIC_KEY_SIZE];

	assert_non_null(g);
	snprintf(g->dir, sizeof(g->dir), "/tmp/sd-v4x-XXXXXX");
	assert_non_null(mkdtemp(g->dir));
	config_defaults(&g->cfg);
	g->cfg.storage_dir = g->dir;
	g->cfg.idle_timeout = 10;
	assert_int_equal(db_open(":memory:", DB_READ_WRITE, &g->env.db), 0);
	memset(key, 0x30, sizeof(key));
	assert_int_equal(db_client_register_v4(g->env.db, "alice", id_a, key, sizeof(key), fp_a), 0);
	assert_int_equal(db_client_register_v4(g->env.db, "bob", id_b, key, sizeof(key), fp_b), 0);
	assert_non_null(g->env.rbuf = malloc(CONN_READ_CHUNK));
	g->env.cfg = &g->cfg;
	g->env.now_ms = 1000;
	peer_open(g, 0, id_a, "alice");
	*state = g;
	return 0;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int
rig_teardown(void **state)
{
	struct rig *g = *state;
	int i;

	for (i = 0; i < 3; i++)
		peer_close(g, i);
	assert_int_equal(g->env.npending, 0);
	db_close(g->env.db);
	free(g->env.rbuf);
	assert_int_equal(nftw(g->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
	free(g);
	return 0;
}

/* Queues b's bytes as peer i's input and lets its connection read all of them. */
static void
feed(struct rig *g, int i, struct buf *b)
{
	struct peer *p = &g->p[i];
	int rounds;

	assert_true(buf_len(b) <= IN_MAX - p->m.in_len);
	memcpy(p->m.in + p->m.in_len, buf_ptr(b), buf_len(b));
	p->m.in_len += buf_len(b);
	buf_free(b);
	for (rounds = 0; rounds < 100000 && p->m.in_off < p->m.in_len && !p->c->closing; rounds++) {
		conn_on_readable(p->c);
		if (p->c->get != NULL || put_hashing(p->c))
			conn_on_writable(p->c);
	}
	for (; rounds < 200000 && (p->c->get != NULL || put_hashing(p->c)) && !p->c->closing;
	    rounds++)
		conn_on_writable(p->c);
}

/* The next reply of peer i: code, payload copied to *payload (malloc'd, caller frees). */
static uint16_t
reply(struct rig *g, int i, uint8_t **payload, size_t *len)
{
	struct peer *p = &g->p[i];
	struct buf b;
	uint8_t ver;
	uint16_t code;
	uint32_t size;

	assert_true(p->m.out_len - p->m.out_at >= RESP_HEADER_SIZE);
	buf_view(&b, p->m.out + p->m.out_at, p->m.out_len - p->m.out_at);
	assert_int_equal(buf_get_u8(&b, &ver), 0);
	assert_int_equal(ver, 4);
	assert_int_equal(buf_get_u16(&b, &code), 0);
	assert_int_equal(buf_get_u32(&b, &size), 0);
	assert_true(size <= buf_len(&b));
	*payload = malloc(size + 1u);
	assert_non_null(*payload);
	memcpy(*payload, buf_ptr(&b), size);
	*len = size;
	p->m.out_at += RESP_HEADER_SIZE + size;
	return code;
}

static int
no_reply(struct rig *g, int i)
{
	return g->p[i].m.out_at == g->p[i].m.out_len;
}

/* The next reply must be ERROR reason. */
static void
expect_error(struct rig *g, int i, uint16_t reason)
{
	struct msg4_error e;
	uint8_t *pl;
	size_t n;

	assert_int_equal(reply(g, i, &pl, &n), RESP4_ERROR);
	assert_int_equal(msg4_error_decode(pl, n, &e), 0);
	assert_int_equal(e.reason, reason);
	free(pl);
}

static void
req_open(struct rig *g, int i, const char *name, uint64_t size, struct msg4_put_state *st)
{
	struct buf b;
	uint8_t *pl;
	size_t n;

	buf_init(&b, 1024);
	assert_int_equal(msg4_put_put_open(&b, size, name), 0);
	feed(g, i, &b);
	if (st == NULL)
		return;
	assert_int_equal(reply(g, i, &pl, &n), RESP4_PUT_STATE);
	assert_int_equal(msg4_put_state_decode(pl, n, st), 0);
	assert_int_equal(st->max_chunk, PUT_MAX_CHUNK);
	free(pl);
}

/* One PUT_DATA of data[0..len) at offset, plain or deflated (data then is plain_len's
 * deflate stream, given as is). */
static void
req_data(struct rig *g, int i, uint64_t offset, uint8_t flags, uint32_t plain_len,
    const uint8_t *data, size_t len)
{
	struct buf b;

	buf_init(&b, IN_MAX);
	/* Written by hand: the encoder refuses what these tests must send (over max_chunk). */
	assert_int_equal(buf_put_zeros(&b, CLIENT_ID_SIZE), 0);
	assert_int_equal(buf_put_u8(&b, 4), 0);
	assert_int_equal(buf_put_u16(&b, REQ4_PUT_DATA), 0);
	assert_int_equal(buf_put_u32(&b, (uint32_t)(V4_PUT_DATA_HEAD_SIZE + len)), 0);
	assert_int_equal(buf_put_u64(&b, offset), 0);
	assert_int_equal(buf_put_u8(&b, flags), 0);
	assert_int_equal(buf_put_u32(&b, plain_len), 0);
	assert_int_equal(buf_put_bytes(&b, data, len), 0);
	feed(g, i, &b);
}

/* Raw deflate of (p, n) into a malloc'd buffer. */
static uint8_t *
deflate_raw(const uint8_t *p, size_t n, size_t *out_len)
{
	z_stream z;
	size_t cap = n + n / 100 + 1024;
	uint8_t *out = malloc(cap);

	assert_non_null(out);
	memset(&z, 0, sizeof(z));
	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (Bytef *)(uintptr_t)p;
	z.avail_in = (uInt)n;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	*out_len = cap - z.avail_out;
	deflateEnd(&z);
	return out;
}

static void
req_finish(struct rig *g, int i, const uint8_t sha[32])
{
	struct buf b;

	buf_init(&b, 256);
	assert_int_equal(msg4_put_put_finish(&b, sha), 0);
	feed(g, i, &b);
}

static void
expect_done(struct rig *g, int i, const uint8_t *data, size_t n, const char *name)
{
	struct msg4_put_done d;
	uint8_t sha[32], *pl;
	size_t len;

	assert_int_equal(reply(g, i, &pl, &len), RESP4_PUT_DONE);
	assert_int_equal(msg4_put_done_decode(pl, len, &d), 0);
	free(pl);
	crypto_sha256(data, n, sha);
	assert_int_equal(d.size, n);
	assert_memory_equal(d.sha256, sha, 32);
	assert_int_equal(d.cksum, cksum_buffer(data, n));
	assert_string_equal(d.name, name);
}

static uint8_t *
pattern(size_t n, unsigned seed)
{
	uint8_t *p = malloc(n ? n : 1);
	size_t k;
	uint32_t x = seed * 2654435761u + 1;

	assert_non_null(p);
	for (k = 0; k < n; k++) {
		x = x * 1103515245u + 12345u;
		p[k] = (uint8_t)(x >> 16);
	}
	return p;
}

/* The stored file of account id named name, read whole (NULL if missing); *n its size. */
static uint8_t *
stored(struct rig *g, const uint8_t *id, const char *name, size_t *n)
{
	char hex[33], path[512];
	struct stat st;
	uint8_t *p;
	int fd;

	hex_encode(id, CLIENT_ID_SIZE, hex);
	snprintf(path, sizeof(path), "%s/%s/%s", g->dir, hex, name);
	if ((fd = open(path, O_RDONLY)) < 0)
		return NULL;
	assert_int_equal(fstat(fd, &st), 0);
	*n = (size_t)st.st_size;
	assert_non_null(p = malloc(*n + 1));
	assert_int_equal(read(fd, p, *n), (ssize_t)*n);
	close(fd);
	return p;
}

/* A whole upload in chunks of `chunk` bytes (every other one deflated when mix). */
static void
upload(struct rig *g, int i, const char *name, const uint8_t *data, size_t n, size_t chunk,
    int mix)
{
	struct msg4_put_state st;
	uint8_t sha[32];
	size_t off = 0, len, zl;
	uint8_t *z;
	int k = 0;

	req_open(g, i, name, n, &st);
	assert_int_equal(st.offset, 0);
	while (off < n) {
		len = n - off < chunk ? n - off : chunk;
		if (mix && (k++ & 1)) {
			z = deflate_raw(data + off, len, &zl);
			req_data(g, i, off, V4_PUT_FLAG_DEFLATE, (uint32_t)len, z, zl);
			free(z);
		} else {
			req_data(g, i, off, 0, (uint32_t)len, data + off, len);
		}
		off += len;
	}
	assert_true(no_reply(g, i));
	crypto_sha256(data, n, sha);
	req_finish(g, i, sha);
	expect_done(g, i, data, n, name);
}

/* A whole upload, deflated and plain chunks: PUT_DONE, the file on disk, the row. */
static void
test_upload_roundtrip(void **state)
{
	struct rig *g = *state;
	size_t n = 700000, got;
	uint8_t *data = pattern(n, 1), *disk;
	struct db_file f;
	uint8_t sha[32];

	memset(data + 1000, 'a', 200000);  /* something deflate shrinks */
	upload(g, 0, "report.pdf", data, n, 150000, 1);
	assert_non_null(disk = stored(g, id_a, "report.pdf", &got));
	assert_int_equal(got, n);
	assert_memory_equal(disk, data, n);
	assert_int_equal(db_file_get(g->env.db, id_a, "report.pdf", &f), 0);
	crypto_sha256(data, n, sha);
	assert_true(f.verified && f.has_sha256);
	assert_memory_equal(f.sha256, sha, 32);
	assert_int_equal(f.crc, cksum_buffer(data, n));
	{
		struct db_upload u;

		assert_int_equal(db_upload_get(g->env.db, id_a, "report.pdf", &u),
		    SD_ERR_NOT_FOUND);
	}
	free(disk);
	/* Empty and one-byte files; a name with a folder is stored under its base name. */
	upload(g, 0, "empty", data, 0, 10, 0);
	assert_non_null(disk = stored(g, id_a, "empty", &got));
	assert_int_equal(got, 0);
	free(disk);
	upload(g, 0, "one", data, 1, 10, 0);
	{
		struct msg4_put_state st;

		req_open(g, 0, "../dir/x.bin", 3, &st);
		req_data(g, 0, 0, 0, 3, data, 3);
		crypto_sha256(data, 3, sha);
		req_finish(g, 0, sha);
		expect_done(g, 0, data, 3, "x.bin");
	}
	free(data);
}

/* A dropped connection keeps the bytes it sent; PUT_OPEN resumes there with the prefix's
 * hash; the rest completes the file. */
static void
test_resume_after_drop(void **state)
{
	struct rig *g = *state;
	size_t n = 500000, got;
	uint8_t *data = pattern(n, 2), *disk, sha[32];
	struct msg4_put_state st;
	struct db_upload u;

	req_open(g, 0, "big", n, &st);
	req_data(g, 0, 0, 0, 200000, data, 200000);
	req_data(g, 0, 200000, 0, 100000, data + 200000, 100000);
	peer_close(g, 0);
	assert_int_equal(db_upload_get(g->env.db, id_a, "big", &u), 0);
	assert_int_equal(u.offset, 300000);
	assert_int_equal(u.size, n);

	peer_open(g, 0, id_a, "alice");
	req_open(g, 0, "big", n, &st);
	assert_int_equal(st.offset, 300000);
	crypto_sha256(data, 300000, sha);
	assert_memory_equal(st.prefix_sha256, sha, 32);
	/* Another size for the same name starts over. */
	req_open(g, 0, "big", n + 1, &st);
	assert_int_equal(st.offset, 0);
	peer_close(g, 0);
	peer_open(g, 0, id_a, "alice");
	req_open(g, 0, "big", n, &st);
	assert_int_equal(st.offset, 0);
	req_data(g, 0, 0, 0, 250000, data, 250000);
	peer_close(g, 0);
	peer_open(g, 0, id_a, "alice");
	req_open(g, 0, "big", n, &st);
	assert_int_equal(st.offset, 250000);
	req_data(g, 0, 250000, 0, 250000, data + 250000, 250000);
	crypto_sha256(data, n, sha);
	req_finish(g, 0, sha);
	expect_done(g, 0, data, n, "big");
	assert_non_null(disk = stored(g, id_a, "big", &got));
	assert_int_equal(got, n);
	assert_memory_equal(disk, data, n);
	free(disk);
	free(data);
}

/* PUT_DATA at another offset than the server's: ERROR 6 and close. */
static void
test_wrong_offset(void **state)
{
	struct rig *g = *state;
	uint8_t data[100] = { 0 };
	struct msg4_put_state st;

	req_open(g, 0, "f", 100, &st);
	req_data(g, 0, 10, 0, 10, data, 10);
	expect_error(g, 0, V4_REASON_MISMATCH);
	assert_true(g->p[0].c->closing);
}

/* A deflate bomb (10 MB of zeros announced as 1000 bytes): ERROR 1, nothing of it kept. */
static void
test_deflate_bomb(void **state)
{
	struct rig *g = *state;
	size_t n = 10u << 20, zl;
	uint8_t *zeros = calloc(1, n), *z;
	struct msg4_put_state st;
	struct db_upload u;

	assert_non_null(zeros);
	z = deflate_raw(zeros, n, &zl);
	assert_true(zl < 20000);
	req_open(g, 0, "bomb", 1u << 20, &st);
	req_data(g, 0, 0, V4_PUT_FLAG_DEFLATE, 1000, z, zl);
	expect_error(g, 0, V4_REASON_BAD_REQUEST);
	assert_true(g->p[0].c->closing);
	peer_close(g, 0);
	assert_int_equal(db_upload_get(g->env.db, id_a, "bomb", &u), 0);
	assert_int_equal(u.offset, 0);
	free(z);
	free(zeros);
}

/* plain_len that the deflate data does not yield (fewer bytes), and plain_len over
 * max_chunk: ERROR 1 and close. */
static void
test_plain_len_checks(void **state)
{
	struct rig *g = *state;
	uint8_t data[4000], *z;
	size_t zl;
	struct msg4_put_state st;

	memset(data, 'q', sizeof(data));
	z = deflate_raw(data, 3000, &zl);
	req_open(g, 0, "f", 1u << 21, &st);
	req_data(g, 0, 0, V4_PUT_FLAG_DEFLATE, 4000, z, zl);
	expect_error(g, 0, V4_REASON_BAD_REQUEST);
	assert_true(g->p[0].c->closing);
	free(z);

	peer_close(g, 0);
	peer_open(g, 0, id_a, "alice");
	req_open(g, 0, "f", 1u << 21, &st);
	{
		size_t len = PUT_MAX_CHUNK + 1u;
		uint8_t *big = calloc(1, len);

		assert_non_null(big);
		req_data(g, 0, 0, 0, (uint32_t)len, big, len);
		free(big);
	}
	expect_error(g, 0, V4_REASON_BAD_REQUEST);
	assert_true(g->p[0].c->closing);
	/* Unknown flag bits: refused too. */
	peer_close(g, 0);
	peer_open(g, 0, id_a, "alice");
	req_open(g, 0, "f", 1u << 21, &st);
	req_data(g, 0, 0, 2, 10, data, 10);
	expect_error(g, 0, V4_REASON_BAD_REQUEST);
}

/* A hash mismatch at PUT_FINISH discards the upload; the earlier verified file of that name
 * stays, on disk and in the database. */
static void
test_hash_mismatch_keeps_old(void **state)
{
	struct rig *g = *state;
	size_t n = 5000, got;
	uint8_t *a = pattern(n, 3), *b = pattern(n, 4), *disk, bad[32];
	struct msg4_put_state st;
	struct db_file f;
	struct db_upload u;

	upload(g, 0, "doc", a, n, 4096, 0);
	req_open(g, 0, "doc", n, &st);
	req_data(g, 0, 0, 0, (uint32_t)n, b, n);
	/* Before PUT_FINISH the old file is untouched. */
	assert_non_null(disk = stored(g, id_a, "doc", &got));
	assert_memory_equal(disk, a, n);
	free(disk);
	crypto_sha256(a, n, bad);  /* the hash of other bytes */
	req_finish(g, 0, bad);
	expect_error(g, 0, V4_REASON_MISMATCH);
	assert_false(g->p[0].c->closing);
	assert_non_null(disk = stored(g, id_a, "doc", &got));
	assert_int_equal(got, n);
	assert_memory_equal(disk, a, n);
	free(disk);
	assert_int_equal(db_file_get(g->env.db, id_a, "doc", &f), 0);
	assert_true(f.verified);
	assert_memory_equal(f.sha256, bad, 32);
	assert_int_equal(db_upload_get(g->env.db, id_a, "doc", &u), SD_ERR_NOT_FOUND);
	/* PUT_FINISH before the whole file: ERROR 6, the upload goes on. */
	req_open(g, 0, "doc", n, &st);
	assert_int_equal(st.offset, 0);
	req_data(g, 0, 0, 0, 10, b, 10);
	req_finish(g, 0, bad);
	expect_error(g, 0, V4_REASON_MISMATCH);
	req_data(g, 0, 10, 0, (uint32_t)n - 10, b + 10, n - 10);
	crypto_sha256(b, n, bad);
	req_finish(g, 0, bad);
	expect_done(g, 0, b, n, "doc");
	free(a);
	free(b);
}

/* A PUT_OPEN of the same name by another connection of the account takes the upload over
 * with the bytes written so far; the old connection gets ERROR 8 and is closed. */
static void
test_takeover(void **state)
{
	struct rig *g = *state;
	size_t n = 300000;
	uint8_t *data = pattern(n, 5), sha[32];
	struct msg4_put_state st;

	req_open(g, 0, "t", n, &st);
	req_data(g, 0, 0, 0, 100000, data, 100000);
	peer_open(g, 1, id_a, "alice");
	req_open(g, 1, "t", n, &st);
	assert_int_equal(st.offset, 100000);
	crypto_sha256(data, 100000, sha);
	assert_memory_equal(st.prefix_sha256, sha, 32);
	/* The old connection learns it on its next event (here: more data) or tick. */
	req_data(g, 0, 100000, 0, 1000, data + 100000, 1000);
	expect_error(g, 0, V4_REASON_BUSY);
	assert_true(g->p[0].c->closing);
	peer_close(g, 0);
	req_data(g, 1, 100000, 0, (uint32_t)(n - 100000), data + 100000, n - 100000);
	crypto_sha256(data, n, sha);
	req_finish(g, 1, sha);
	expect_done(g, 1, data, n, "t");

	/* On a tick too, without a request of its own. */
	req_open(g, 1, "t2", 10, &st);
	peer_open(g, 2, id_a, "alice");
	req_open(g, 2, "t2", 10, &st);
	assert_int_equal(conn_check_timeouts(g->p[1].c, g->env.now_ms), 1);
	/* The check writes the ERROR itself (no event of this connection would), then closes. */
	expect_error(g, 1, V4_REASON_BUSY);
	assert_true(g->p[1].c->closing);
	/* Another account's upload of the same name is its own. */
	peer_close(g, 1);
	peer_open(g, 1, id_b, "bob");
	req_open(g, 1, "t2", 10, &st);
	assert_false(g->p[2].c->closing);
	assert_int_equal(conn_check_timeouts(g->p[2].c, g->env.now_ms), 0);
	assert_true(no_reply(g, 2));
	free(data);
}

/* GET from an offset: GET_DATA pieces that put together are the rest of the file, then
 * GET_END with the whole file's size and SHA-256. The output never holds much more than
 * CONN_OUT_HIGH at once. */
static void
get_file(struct rig *g, int i, const char *name, uint64_t offset, const uint8_t *want,
    size_t n)
{
	struct buf b;
	uint8_t *pl, sha[32];
	size_t len, have = 0;
	uint16_t code;
	uint64_t off;
	struct msg4_get_end end;

	buf_init(&b, 512);
	assert_int_equal(msg4_put_get(&b, offset, name), 0);
	feed(g, i, &b);
	assert_null(g->p[i].c->get);
	for (;;) {
		code = reply(g, i, &pl, &len);
		if (code != RESP4_GET_DATA)
			break;
		assert_true(len >= 8 && len - 8 <= PUT_MAX_CHUNK);
		assert_int_equal(msg4_get_data_head_decode(pl, 8, &off), 0);
		assert_int_equal(off, offset + have);
		assert_true(offset + have + (len - 8) <= n);
		assert_memory_equal(pl + 8, want + offset + have, len - 8);
		have += len - 8;
		free(pl);
	}
	assert_int_equal(code, RESP4_GET_END);
	assert_int_equal(msg4_get_end_decode(pl, len, &end), 0);
	free(pl);
	assert_int_equal(offset + have, n);
	assert_int_equal(end.size, n);
	crypto_sha256(want, n, sha);
	assert_memory_equal(end.sha256, sha, 32);
}

static void
test_get_from_offset(void **state)
{
	struct rig *g = *state;
	size_t n = 2000000;
	uint8_t *data = pattern(n, 6);

	upload(g, 0, "g", data, n, PUT_MAX_CHUNK, 0);
	get_file(g, 0, "g", 0, data, n);
	get_file(g, 0, "g", 123457, data, n);
	get_file(g, 0, "g", n, data, n);
	/* Past the end: refused. */
	{
		struct buf b;

		buf_init(&b, 512);
		assert_int_equal(msg4_put_get(&b, n + 1, "g"), 0);
		feed(g, 0, &b);
		expect_error(g, 0, V4_REASON_BAD_REQUEST);
	}
	free(data);
}

/* While the peer does not read, the download waits: the output stays bounded. */
static void
test_get_backpressure(void **state)
{
	struct rig *g = *state;
	size_t n = 3000000;
	uint8_t *data = pattern(n, 7);
	struct buf b;
	int k;

	upload(g, 0, "h", data, n, PUT_MAX_CHUNK, 0);
	g->p[0].m.blocked = 1;
	buf_init(&b, 512);
	assert_int_equal(msg4_put_get(&b, 0, "h"), 0);
	memcpy(g->p[0].m.in + g->p[0].m.in_len, buf_ptr(&b), buf_len(&b));
	g->p[0].m.in_len += buf_len(&b);
	buf_free(&b);
	conn_on_readable(g->p[0].c);
	for (k = 0; k < 10; k++)
		conn_on_writable(g->p[0].c);
	assert_non_null(g->p[0].c->get);
	assert_true(buf_len(&g->p[0].c->out) <= CONN_OUT_HIGH + FETCH_BLOCK + 64u);
	assert_true(conn_want(g->p[0].c) & CONN_WANT_WRITE);
	assert_false(conn_want(g->p[0].c) & CONN_WANT_READ);
	g->p[0].m.blocked = 0;
	for (k = 0; k < 1000 && g->p[0].c->get != NULL; k++)
		conn_on_writable(g->p[0].c);
	assert_null(g->p[0].c->get);
	{
		/* What was sent is the whole file. */
		uint8_t *pl;
		size_t len, have = 0;

		while (reply(g, 0, &pl, &len) == RESP4_GET_DATA) {
			assert_memory_equal(pl + 8, data + have, len - 8);
			have += len - 8;
			free(pl);
		}
		free(pl);
		assert_int_equal(have, n);
	}
	free(data);
}

/* LIST, GET and DELETE see only the account's own files; DELETE removes file and row. */
static void
test_accounts_confined(void **state)
{
	struct rig *g = *state;
	uint8_t *data = pattern(1000, 8), *pl, *disk;
	struct buf b;
	size_t len, got;
	uint32_t count;
	struct msg4_file_entry e;
	struct buf view;

	upload(g, 0, "mine", data, 1000, 1000, 0);
	peer_open(g, 1, id_b, "bob");
	buf_init(&b, 64);
	assert_int_equal(msg4_put_empty_request(&b, REQ4_LIST), 0);
	feed(g, 1, &b);
	assert_int_equal(reply(g, 1, &pl, &len), RESP4_LISTING);
	assert_int_equal(msg4_listing_head_decode(pl, 4, (uint32_t)len, &count), 0);
	assert_int_equal(count, 0);
	free(pl);
	buf_init(&b, 512);
	assert_int_equal(msg4_put_get(&b, 0, "mine"), 0);
	feed(g, 1, &b);
	expect_error(g, 1, V4_REASON_NOT_FOUND);
	buf_init(&b, 512);
	assert_int_equal(msg4_put_delete(&b, "mine"), 0);
	feed(g, 1, &b);
	expect_error(g, 1, V4_REASON_NOT_FOUND);
	assert_non_null(disk = stored(g, id_a, "mine", &got));
	free(disk);

	buf_init(&b, 64);
	assert_int_equal(msg4_put_empty_request(&b, REQ4_LIST), 0);
	feed(g, 0, &b);
	assert_int_equal(reply(g, 0, &pl, &len), RESP4_LISTING);
	assert_int_equal(msg4_listing_head_decode(pl, 4, (uint32_t)len, &count), 0);
	assert_int_equal(count, 1);
	buf_view(&view, pl + 4, len - 4);
	assert_int_equal(msg4_listing_entry_get(&view, &e), 0);
	assert_string_equal(e.name, "mine");
	assert_int_equal(e.size, 1000);
	free(pl);
	buf_init(&b, 512);
	assert_int_equal(msg4_put_delete(&b, "mine"), 0);
	feed(g, 0, &b);
	assert_int_equal(reply(g, 0, &pl, &len), RESP4_OK);
	free(pl);
	assert_null(stored(g, id_a, "mine", &got));
	buf_init(&b, 512);
	assert_int_equal(msg4_put_delete(&b, "mine"), 0);
	feed(g, 0, &b);
	expect_error(g, 0, V4_REASON_NOT_FOUND);
	/* Before an account is known every transfer request gets ERROR 3. */
	peer_open(g, 2, NULL, NULL);
	buf_init(&b, 64);
	assert_int_equal(msg4_put_empty_request(&b, REQ4_LIST), 0);
	feed(g, 2, &b);
	expect_error(g, 2, V4_REASON_NOT_REGISTERED);
	req_open(g, 2, "x", 1, NULL);
	expect_error(g, 2, V4_REASON_NOT_REGISTERED);
	free(data);
}

/* A version-3 file (no stored SHA-256): LIST shows 32 zero bytes; the first full GET
 * computes and stores it. Sizes over --max-file-size: ERROR 7. */
static void
test_v3_file_hash_and_limits(void **state)
{
	struct rig *g = *state;
	uint8_t *data = pattern(70000, 9), zero[32] = { 0 }, *pl;
	char hex[33], path[512];
	struct db_file f;
	struct buf b, view;
	size_t len;
	uint32_t count;
	struct msg4_file_entry e;
	int fd;

	hex_encode(id_a, CLIENT_ID_SIZE, hex);
	snprintf(path, sizeof(path), "%s/%s", g->dir, hex);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/%s/old.txt", g->dir, hex);
	assert_true((fd = open(path, O_WRONLY | O_CREAT, 0600)) >= 0);
	assert_int_equal(write(fd, data, 70000), 70000);
	close(fd);
	memset(&f, 0, sizeof(f));
	memcpy(f.owner, id_a, CLIENT_ID_SIZE);
	snprintf(f.file_name, sizeof(f.file_name), "old.txt");
	snprintf(f.path_name, sizeof(f.path_name), "%s/old.txt", hex);
	f.size = 70000;
	f.crc = cksum_buffer(data, 70000);
	f.uploaded = (int64_t)time(NULL);
	assert_int_equal(db_file_record(g->env.db, &f), 0);
	assert_int_equal(db_file_set_verified(g->env.db, id_a, "old.txt", 1), 0);
	buf_init(&b, 64);
	assert_int_equal(msg4_put_empty_request(&b, REQ4_LIST), 0);
	feed(g, 0, &b);
	assert_int_equal(reply(g, 0, &pl, &len), RESP4_LISTING);
	assert_int_equal(msg4_listing_head_decode(pl, 4, (uint32_t)len, &count), 0);
	assert_int_equal(count, 1);
	buf_view(&view, pl + 4, len - 4);
	assert_int_equal(msg4_listing_entry_get(&view, &e), 0);
	assert_memory_equal(e.sha256, zero, 32);
	free(pl);
	get_file(g, 0, "old.txt", 5000, data, 70000);
	assert_int_equal(db_file_get(g->env.db, id_a, "old.txt", &f), 0);
	assert_true(f.has_sha256);
	get_file(g, 0, "old.txt", 0, data, 70000);

	g->cfg.max_file_size_v4 = 1000;
	req_open(g, 0, "huge", 1001, NULL);
	expect_error(g, 0, V4_REASON_TOO_LARGE);
	req_open(g, 0, ".sealdrop-part-x", 10, NULL);
	expect_error(g, 0, V4_REASON_BAD_REQUEST);
	free(data);
}

/* PUT_ABORT discards the partial upload: the next PUT_OPEN starts at 0. */
static void
test_abort(void **state)
{
	struct rig *g = *state;
	uint8_t data[100] = { 1 }, *pl;
	struct msg4_put_state st;
	struct buf b;
	size_t len;
	struct db_upload u;

	req_open(g, 0, "ab", 100, &st);
	req_data(g, 0, 0, 0, 50, data, 50);
	buf_init(&b, 64);
	assert_int_equal(msg4_put_empty_request(&b, REQ4_PUT_ABORT), 0);
	feed(g, 0, &b);
	assert_int_equal(reply(g, 0, &pl, &len), RESP4_OK);
	free(pl);
	assert_int_equal(db_upload_get(g->env.db, id_a, "ab", &u), SD_ERR_NOT_FOUND);
	req_open(g, 0, "ab", 100, &st);
	assert_int_equal(st.offset, 0);
}

/* Start-up reconciliation and expiry against the database and the temporary files. */
static void
test_reconcile_and_expire(void **state)
{
	struct rig *g = *state;
	uint8_t data[1000];
	struct msg4_put_state st;
	struct db_upload u;
	char hex[33], path[600];
	long kept, dropped, removed;
	struct stat sb;
	int fd;

	memset(data, 7, sizeof(data));
	req_open(g, 0, "long", 1000, &st);
	req_data(g, 0, 0, 0, 600, data, 600);
	req_open(g, 0, "gone", 1000, &st);
	req_data(g, 0, 0, 0, 300, data, 300);
	peer_close(g, 0);
	/* "long": 200 bytes more on disk than recorded (a kill -9 before the record). */
	assert_int_equal(db_upload_get(g->env.db, id_a, "long", &u), 0);
	snprintf(path, sizeof(path), "%s/%s", g->dir, u.temp_path);
	assert_true((fd = open(path, O_WRONLY | O_APPEND)) >= 0);
	assert_int_equal(write(fd, data, 200), 200);
	close(fd);
	/* "gone": its file vanished. A stray resumable file no record names. */
	assert_int_equal(db_upload_get(g->env.db, id_a, "gone", &u), 0);
	snprintf(path, sizeof(path), "%s/%s", g->dir, u.temp_path);
	assert_int_equal(unlink(path), 0);
	hex_encode(id_a, CLIENT_ID_SIZE, hex);
	snprintf(path, sizeof(path), "%s/%s/%sstray", g->dir, hex, STORAGE_RESUME_PREFIX);
	assert_true((fd = open(path, O_WRONLY | O_CREAT, 0600)) >= 0);
	/* Bytes in it, no lock: left by a crash (an empty one might be a live server's, made an
	 * instant ago and not locked yet). */
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	/* storage_remove_stale leaves resumable files alone. */
	assert_int_equal(storage_remove_stale(g->dir), 0);
	assert_int_equal(put_reconcile(g->env.db, g->dir, &kept, &dropped), 0);
	assert_int_equal(kept, 1);
	assert_int_equal(dropped, 2);
	assert_int_not_equal(stat(path, &sb), 0);
	assert_int_equal(db_upload_get(g->env.db, id_a, "gone", &u), SD_ERR_NOT_FOUND);
	assert_int_equal(db_upload_get(g->env.db, id_a, "long", &u), 0);
	snprintf(path, sizeof(path), "%s/%s", g->dir, u.temp_path);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, 600);
	/* Expiry: not yet, then past it. */
	assert_int_equal(put_expire(g->env.db, g->dir, (int64_t)time(NULL), &removed), 0);
	assert_int_equal(removed, 0);
	assert_int_equal(put_expire(g->env.db, g->dir,
	    (int64_t)time(NULL) + (int64_t)g->cfg.resume_ttl + 10, &removed), 0);
	assert_int_equal(removed, 1);
	assert_int_not_equal(stat(path, &sb), 0);
	assert_int_equal(db_upload_get(g->env.db, id_a, "long", &u), SD_ERR_NOT_FOUND);
}

/* No upload record at all (a server's first start with its storage folder present): a
 * stray resumable file still goes, and nothing is sorted or searched in a NULL array (UBSan
 * found qsort(NULL, 0, ...) here). */
static void
test_reconcile_no_records(void **state)
{
	struct rig *g = *state;
	char hex[33], path[600];
	long kept = -1, dropped = -1;
	struct stat sb;
	int fd;

	hex_encode(id_a, CLIENT_ID_SIZE, hex);
	snprintf(path, sizeof(path), "%s/%s", g->dir, hex);
	assert_true(mkdir(path, 0700) == 0 || errno == EEXIST);
	snprintf(path, sizeof(path), "%s/%s/%sstray", g->dir, hex, STORAGE_RESUME_PREFIX);
	assert_true((fd = open(path, O_WRONLY | O_CREAT, 0600)) >= 0);
	/* Bytes in it, no lock: left by a crash (an empty one might be a live server's, made an
	 * instant ago and not locked yet). */
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	assert_int_equal(put_reconcile(g->env.db, g->dir, &kept, &dropped), 0);
	assert_int_equal(kept, 0);
	assert_int_equal(dropped, 1);
	assert_int_not_equal(stat(path, &sb), 0);
}

/* Another server sharing the folder (an flock on another open file description): start-up
 * reconciliation neither truncates nor drops the upload it writes, nor removes a file it has
 * not recorded yet; expiry leaves its upload until its lock goes; a PUT_OPEN here moves the
 * upload to a copy of the durable prefix and leaves that server's file to it. */
static void
test_files_held_by_another_server(void **state)
{
	struct rig *g = *state;
	uint8_t data[1000];
	struct msg4_put_state st;
	struct db_upload u, v;
	char hex[33], path[600], stray[600];
	long kept, dropped, removed;
	struct stat sb;
	int fd, sfd;

	memset(data, 9, sizeof(data));
	req_open(g, 0, "held", 1000, &st);
	req_data(g, 0, 0, 0, 600, data, 600);
	peer_close(g, 0);
	assert_int_equal(db_upload_get(g->env.db, id_a, "held", &u), 0);
	assert_int_equal(u.offset, 600);
	snprintf(path, sizeof(path), "%s/%s", g->dir, u.temp_path);
	/* The other server holds it and has written 200 bytes past the record. */
	assert_true((fd = open(path, O_WRONLY | O_APPEND)) >= 0);
	assert_int_equal(storage_lock(fd, 0), 0);
	assert_int_equal(write(fd, data, 200), 200);
	hex_encode(id_a, CLIENT_ID_SIZE, hex);
	snprintf(stray, sizeof(stray), "%s/%s/%sother", g->dir, hex, STORAGE_RESUME_PREFIX);
	assert_true((sfd = open(stray, O_WRONLY | O_CREAT, 0600)) >= 0);
	assert_int_equal(storage_lock(sfd, 0), 0);
	assert_int_equal(write(sfd, data, 10), 10);
	assert_int_equal(put_reconcile(g->env.db, g->dir, &kept, &dropped), 0);
	assert_int_equal(kept, 1);
	assert_int_equal(dropped, 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, 800);
	assert_int_equal(stat(stray, &sb), 0);
	assert_int_equal(put_expire(g->env.db, g->dir,
	    (int64_t)time(NULL) + (int64_t)g->cfg.resume_ttl + 10, &removed), 0);
	assert_int_equal(removed, 0);
	assert_int_equal(db_upload_get(g->env.db, id_a, "held", &v), 0);
	/* A newer PUT_OPEN here: the durable 600 bytes, in a file of its own. */
	peer_open(g, 1, id_a, "alice");
	req_open(g, 1, "held", 1000, &st);
	assert_int_equal(st.offset, 600);
	assert_int_equal(db_upload_get(g->env.db, id_a, "held", &v), 0);
	assert_string_not_equal(v.temp_path, u.temp_path);
	assert_int_equal(v.offset, 600);
	assert_int_equal(stat(path, &sb), 0);  /* the other server's, to remove itself */
	req_data(g, 1, 600, 0, 400, data, 400);
	peer_close(g, 1);
	close(fd);
	close(sfd);
	/* Unlocked now (that server died): expiry and reconciliation deal with them. */
	assert_int_equal(put_reconcile(g->env.db, g->dir, &kept, &dropped), 0);
	assert_int_equal(kept, 1);
	assert_int_not_equal(stat(stray, &sb), 0);
	assert_int_not_equal(stat(path, &sb), 0);
	assert_int_equal(put_expire(g->env.db, g->dir,
	    (int64_t)time(NULL) + (int64_t)g->cfg.resume_ttl + 10, &removed), 0);
	assert_int_equal(removed, 1);
}

/* SEALDROP_BIG=1: a file over 4 GiB, resumed past 4 GiB from a sparse temporary file
 * (recorded as durable, as a long upload leaves it): the prefix hash, the offsets and
 * PUT_DONE's size are 64-bit through. */
static void
test_big_resume_past_4gib(void **state)
{
	struct rig *g = *state;
	const uint64_t prefix = (4ull << 30) + 4096u, size = prefix + 70000u;
	uint8_t *tail = pattern(70000, 10), *zeros, sha[32];
	struct sha256_ctx *h;
	struct msg4_put_state st;
	struct msg4_put_done d;
	struct db_upload u;
	char hex[33], path[600];
	uint8_t *pl;
	size_t len;
	uint64_t at;
	int fd;

	if (getenv("SEALDROP_BIG") == NULL || strcmp(getenv("SEALDROP_BIG"), "1") != 0) {
		free(tail);
		skip();
	}
	hex_encode(id_a, CLIENT_ID_SIZE, hex);
	snprintf(path, sizeof(path), "%s/%s", g->dir, hex);
	assert_int_equal(mkdir(path, 0700), 0);
	memset(&u, 0, sizeof(u));
	memcpy(u.owner, id_a, CLIENT_ID_SIZE);
	snprintf(u.file_name, sizeof(u.file_name), "huge.iso");
	u.size = size;
	u.offset = prefix;
	snprintf(u.temp_path, sizeof(u.temp_path), "%s/%sbig", hex, STORAGE_RESUME_PREFIX);
	u.expires = (int64_t)time(NULL) + 3600;
	snprintf(path, sizeof(path), "%s/%s", g->dir, u.temp_path);
	assert_true((fd = open(path, O_RDWR | O_CREAT, 0600)) >= 0);
	assert_int_equal(ftruncate(fd, (off_t)prefix), 0);  /* sparse: zeros */
	close(fd);
	assert_int_equal(db_upload_put(g->env.db, &u), 0);

	assert_non_null(zeros = calloc(1, 1u << 20));
	assert_int_equal(sha256_new(&h), 0);
	for (at = 0; at < prefix; at += len) {
		len = prefix - at < (1u << 20) ? (size_t)(prefix - at) : (1u << 20);
		sha256_update(h, zeros, len);
	}
	assert_int_equal(sha256_peek(h, sha), 0);
	req_open(g, 0, "huge.iso", size, &st);
	assert_int_equal(st.offset, prefix);
	assert_memory_equal(st.prefix_sha256, sha, 32);
	req_data(g, 0, prefix, 0, 70000, tail, 70000);
	sha256_update(h, tail, 70000);
	assert_int_equal(sha256_peek(h, sha), 0);
	req_finish(g, 0, sha);
	assert_int_equal(reply(g, 0, &pl, &len), RESP4_PUT_DONE);
	assert_int_equal(msg4_put_done_decode(pl, len, &d), 0);
	assert_int_equal(d.size, size);
	assert_memory_equal(d.sha256, sha, 32);
	free(pl);
	sha256_free(h);
	free(zeros);
	free(tail);
}

/* The per-client limits hold for version 4 (review of the v4 server, item 1): an upload in
 * progress counts against --max-uploads-per-client for as long as a connection holds it;
 * partial uploads count at their declared size against --max-client-storage and
 * --max-client-files; PUT_FINISH checks again before publishing and keeps the upload open
 * when it no longer fits. */
static void
test_client_limits(void **state)
{
	struct rig *g = *state;
	uint8_t data[1000], sha[32], *pl;
	struct msg4_put_state st;
	struct db_upload u;
	struct db_file f;
	char hex[33];
	size_t len;

	limits_reset();
	memset(data, 3, sizeof(data));
	g->cfg.max_uploads_per_client = 1;
	g->cfg.max_client_storage = 1000000;
	req_open(g, 0, "a", 900000, &st);
	assert_int_equal(limits_uploads(id_a), 1);
	peer_open(g, 1, id_a, "alice");
	req_open(g, 1, "b", 10, NULL);
	expect_error(g, 1, V4_REASON_BUSY);
	/* Taking over the same name inherits the count; the old connection's goes with it. */
	req_open(g, 1, "a", 900000, &st);
	assert_int_equal(limits_uploads(id_a), 1);
	req_data(g, 0, 0, 0, 10, data, 10);
	expect_error(g, 0, V4_REASON_BUSY);
	peer_close(g, 0);
	assert_int_equal(limits_uploads(id_a), 1);
	req_data(g, 1, 0, 0, 1000, data, 1000);
	peer_close(g, 1);
	assert_int_equal(limits_uploads(id_a), 0);
	assert_int_equal(db_upload_get(g->env.db, id_a, "a", &u), 0);
	assert_int_equal(u.offset, 1000);

	/* The partial "a" counts at its 900000 bytes; resuming it is not counted twice. */
	peer_open(g, 0, id_a, "alice");
	req_open(g, 0, "b", 200000, NULL);
	expect_error(g, 0, V4_REASON_TOO_LARGE);
	assert_int_equal(db_upload_get(g->env.db, id_a, "b", &u), SD_ERR_NOT_FOUND);
	req_open(g, 0, "a", 900000, &st);
	assert_int_equal(st.offset, 1000);
	assert_int_equal(limits_uploads(id_a), 1);

	/* Partial uploads count as files too. */
	g->cfg.max_client_storage = 0;
	g->cfg.max_client_files = 2;
	req_open(g, 0, "c", 10, &st);
	req_open(g, 0, "d", 10, NULL);
	expect_error(g, 0, V4_REASON_TOO_LARGE);

	/* Checked again at PUT_FINISH: a file stored meanwhile (here written straight into the
	 * database) leaves no room; the upload stays open and is published once room is made. */
	g->cfg.max_client_files = 0;
	g->cfg.max_client_storage = 1000000;
	req_open(g, 0, "c", 10, &st);
	req_data(g, 0, 0, 0, 10, data, 10);
	hex_encode(id_a, CLIENT_ID_SIZE, hex);
	memset(&f, 0, sizeof(f));
	memcpy(f.owner, id_a, CLIENT_ID_SIZE);
	snprintf(f.file_name, sizeof(f.file_name), "x");
	snprintf(f.path_name, sizeof(f.path_name), "%s/x", hex);
	f.size = 99995;
	f.uploaded = (int64_t)time(NULL);
	assert_int_equal(db_file_record(g->env.db, &f), 0);
	crypto_sha256(data, 10, sha);
	req_finish(g, 0, sha);
	expect_error(g, 0, V4_REASON_TOO_LARGE);
	assert_false(g->p[0].c->closing);
	assert_int_equal(db_file_get(g->env.db, id_a, "c", &f), SD_ERR_NOT_FOUND);
	assert_int_equal(db_file_delete(g->env.db, id_a, "x"), 0);
	req_finish(g, 0, sha);
	expect_done(g, 0, data, 10, "c");
	assert_int_equal(limits_uploads(id_a), 0);
	(void)pl;
	(void)len;
	limits_reset();
}

/* Expiry takes the name's lock (review item 2): it leaves alone an upload whose lock another
 * holds (a PUT_OPEN resuming it), and deletes it once the lock is free. */
static void
test_expire_takes_name_lock(void **state)
{
	struct rig *g = *state;
	uint8_t data[100];
	struct msg4_put_state st;
	struct db_upload u;
	struct put_slot *lk;
	long removed;
	int64_t later = (int64_t)time(NULL) + (int64_t)g->cfg.resume_ttl + 10;

	memset(data, 1, sizeof(data));
	req_open(g, 0, "old", 1000, &st);
	req_data(g, 0, 0, 0, 100, data, 100);
	peer_close(g, 0);
	assert_non_null(lk = put_name_lock(id_a, "old"));
	assert_int_equal(put_expire(g->env.db, g->dir, later, &removed), 0);
	assert_int_equal(removed, 0);
	assert_int_equal(db_upload_get(g->env.db, id_a, "old", &u), 0);
	put_name_unlock(lk);
	assert_int_equal(put_expire(g->env.db, g->dir, later, &removed), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(db_upload_get(g->env.db, id_a, "old", &u), SD_ERR_NOT_FOUND);
}

/* A commit intent left by a publish whose last steps failed (folder fsync or publishing
 * transaction after the rename; review item 4) no longer refuses every later upload of the
 * name until a restart: the next PUT_FINISH rolls it forward, then publishes. A young one may
 * be another server's publish in progress and is left alone (ERROR 9). */
static void
test_leftover_intent_rolled_forward(void **state)
{
	struct rig *g = *state;
	uint8_t *x = pattern(3000, 11), *y = pattern(5000, 12), *disk;
	char hex[33], path[600];
	struct db_commit in;
	struct db_file f;
	size_t n;
	int fd;

	hex_encode(id_a, CLIENT_ID_SIZE, hex);
	snprintf(path, sizeof(path), "%s/%s", g->dir, hex);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/%s/doc", g->dir, hex);
	assert_true((fd = open(path, O_WRONLY | O_CREAT, 0600)) >= 0);
	assert_int_equal(write(fd, x, 3000), 3000);
	close(fd);
	memset(&in, 0, sizeof(in));
	memcpy(in.owner, id_a, CLIENT_ID_SIZE);
	snprintf(in.file_name, sizeof(in.file_name), "doc");
	snprintf(in.temp_path, sizeof(in.temp_path), "%s/%sgone", hex, STORAGE_RESUME_PREFIX);
	snprintf(in.path_name, sizeof(in.path_name), "%s/doc", hex);
	in.size = 3000;
	in.crc = cksum_buffer(x, 3000);
	in.verified = 1;
	in.created = (int64_t)time(NULL) - 3600;
	assert_int_equal(db_commit_add(g->env.db, &in), 0);
	upload(g, 0, "doc", y, 5000, 4096, 0);
	assert_int_equal(db_commit_get(g->env.db, id_a, "doc", &in), SD_ERR_NOT_FOUND);
	assert_int_equal(db_file_get(g->env.db, id_a, "doc", &f), 0);
	assert_int_equal(f.size, 5000);
	assert_int_equal(f.crc, cksum_buffer(y, 5000));
	assert_non_null(disk = stored(g, id_a, "doc", &n));
	assert_int_equal(n, 5000);
	assert_memory_equal(disk, y, 5000);
	free(disk);

	/* Recorded just now, and a DELETE's intent: no live server holds their files (the lock
	 * decides, not the age; test_files_held_by_another_server has the held case), so they
	 * are settled too and the upload is stored. */
	memset(&in, 0, sizeof(in));
	memcpy(in.owner, id_a, CLIENT_ID_SIZE);
	snprintf(in.temp_path, sizeof(in.temp_path), "%s/%sgone", hex, STORAGE_RESUME_PREFIX);
	in.size = 3000;
	in.crc = cksum_buffer(x, 3000);
	in.verified = 1;
	snprintf(in.file_name, sizeof(in.file_name), "doc2");
	snprintf(in.path_name, sizeof(in.path_name), "%s/doc2", hex);
	in.created = (int64_t)time(NULL);
	assert_int_equal(db_commit_add(g->env.db, &in), 0);
	upload(g, 0, "doc2", y, 10, 4096, 0);
	assert_int_equal(db_commit_get(g->env.db, id_a, "doc2", &in), SD_ERR_NOT_FOUND);
	assert_int_equal(db_file_get(g->env.db, id_a, "doc2", &f), 0);
	assert_int_equal(f.size, 10);

	memset(&in, 0, sizeof(in));
	memcpy(in.owner, id_a, CLIENT_ID_SIZE);
	snprintf(in.file_name, sizeof(in.file_name), "doc3");
	snprintf(in.temp_path, sizeof(in.temp_path), "%s/%s", hex, COMMIT_DELETE_TEMP);
	snprintf(in.path_name, sizeof(in.path_name), "%s/doc3", hex);
	in.size = 3000;
	in.crc = cksum_buffer(x, 3000);
	in.verified = 1;
	in.created = (int64_t)time(NULL) - 3600;
	assert_int_equal(db_commit_add(g->env.db, &in), 0);
	upload(g, 0, "doc3", y, 10, 4096, 0);
	assert_int_equal(db_commit_get(g->env.db, id_a, "doc3", &in), SD_ERR_NOT_FOUND);
	assert_int_equal(db_file_get(g->env.db, id_a, "doc3", &f), 0);
	assert_int_equal(f.size, 10);
	free(x);
	free(y);
}

/* --min-upload-rate and --min-rate-grace hold for version-4 uploads (review item 5): one that
 * averages less than the rate after the grace is closed, its partial upload kept. */
static void
test_min_upload_rate(void **state)
{
	struct rig *g = *state;
	uint8_t data[3000];
	struct msg4_put_state st;
	struct db_upload u;

	memset(data, 9, sizeof(data));
	g->cfg.min_upload_rate = 1000;
	g->cfg.min_rate_grace = 2;
	req_open(g, 0, "slow", 100000, &st);
	req_data(g, 0, 0, 0, 3000, data, sizeof(data));
	g->env.now_ms += 1500;  /* within the grace */
	assert_int_equal(conn_check_timeouts(g->p[0].c, g->env.now_ms), 0);
	g->env.now_ms += 1000;  /* 2.5 s, 3000 bytes and headers: fast enough */
	assert_int_equal(conn_check_timeouts(g->p[0].c, g->env.now_ms), 0);
	g->env.now_ms += 1000;  /* 3.5 s: below 1000 bytes/s */
	assert_int_equal(conn_check_timeouts(g->p[0].c, g->env.now_ms), 1);
	assert_true(g->p[0].c->closing);
	peer_close(g, 0);
	assert_int_equal(db_upload_get(g->env.db, id_a, "slow", &u), 0);
	assert_int_equal(u.offset, 3000);
}

/* A PUT_OPEN resuming a long prefix does not hash it in one go (review item 6: 1 GiB held
 * the worker 1.44 s): PUT_STATE comes after several turns of the loop, each hashing a slice,
 * while the connection reads nothing more and another connection is served in between; the
 * hash is the prefix's. A request read together with such a PUT_OPEN is answered after it. */
static void
test_resume_hashes_in_slices(void **state)
{
	struct rig *g = *state;
	const uint64_t prefix = 40u << 20;
	uint8_t *zeros, sha[32], *pl;
	struct sha256_ctx *h;
	struct msg4_put_state st;
	struct db_upload u;
	struct buf b;
	char hex[33], path[600];
	size_t len;
	uint64_t at;
	int fd, turns = 0;

	hex_encode(id_a, CLIENT_ID_SIZE, hex);
	snprintf(path, sizeof(path), "%s/%s", g->dir, hex);
	assert_int_equal(mkdir(path, 0700), 0);
	memset(&u, 0, sizeof(u));
	memcpy(u.owner, id_a, CLIENT_ID_SIZE);
	snprintf(u.file_name, sizeof(u.file_name), "big");
	u.size = prefix + 10;
	u.offset = prefix;
	snprintf(u.temp_path, sizeof(u.temp_path), "%s/%sbig", hex, STORAGE_RESUME_PREFIX);
	u.expires = (int64_t)time(NULL) + 3600;
	snprintf(path, sizeof(path), "%s/%s", g->dir, u.temp_path);
	assert_true((fd = open(path, O_RDWR | O_CREAT, 0600)) >= 0);
	assert_int_equal(ftruncate(fd, (off_t)prefix), 0);
	close(fd);
	assert_int_equal(db_upload_put(g->env.db, &u), 0);

	buf_init(&b, 1024);
	assert_int_equal(msg4_put_put_open(&b, prefix + 10, "big"), 0);
	memcpy(g->p[0].m.in, buf_ptr(&b), buf_len(&b));
	g->p[0].m.in_len = buf_len(&b);
	buf_free(&b);
	conn_on_readable(g->p[0].c);
	assert_true(put_hashing(g->p[0].c));
	assert_true(no_reply(g, 0));
	assert_int_equal(conn_want(g->p[0].c) & (CONN_WANT_READ | CONN_WANT_WRITE),
	    CONN_WANT_WRITE);
	/* Another connection is served meanwhile. */
	peer_open(g, 1, id_b, "bob");
	buf_init(&b, 64);
	assert_int_equal(msg4_put_empty_request(&b, REQ4_LIST), 0);
	feed(g, 1, &b);
	assert_int_equal(reply(g, 1, &pl, &len), RESP4_LISTING);
	free(pl);
	while (put_hashing(g->p[0].c) && turns < 1000) {
		conn_on_writable(g->p[0].c);
		turns++;
	}
	assert_true(turns >= 5);
	assert_int_equal(reply(g, 0, &pl, &len), RESP4_PUT_STATE);
	assert_int_equal(msg4_put_state_decode(pl, len, &st), 0);
	free(pl);
	assert_int_equal(st.offset, prefix);
	assert_non_null(zeros = calloc(1, 1u << 20));
	assert_int_equal(sha256_new(&h), 0);
	for (at = 0; at < prefix; at += 1u << 20)
		sha256_update(h, zeros, 1u << 20);
	assert_int_equal(sha256_peek(h, sha), 0);
	assert_memory_equal(st.prefix_sha256, sha, 32);
	/* The rest, then PUT_FINISH: the whole file checks. */
	memset(zeros, 0, 10);
	req_data(g, 0, prefix, 0, 10, zeros, 10);
	sha256_update(h, zeros, 10);
	assert_int_equal(sha256_peek(h, sha), 0);
	req_finish(g, 0, sha);
	assert_int_equal(reply(g, 0, &pl, &len), RESP4_PUT_DONE);
	free(pl);
	sha256_free(h);

	/* A request sent right behind a resuming PUT_OPEN waits: answered after PUT_STATE. */
	assert_int_equal(db_upload_put(g->env.db, &u), 0);
	assert_true((fd = open(path, O_RDWR | O_CREAT, 0600)) >= 0);
	assert_int_equal(ftruncate(fd, (off_t)prefix), 0);
	close(fd);
	buf_init(&b, 1024);
	assert_int_equal(msg4_put_put_open(&b, prefix + 10, "big"), 0);
	assert_int_equal(msg4_put_empty_request(&b, REQ4_LIST), 0);
	feed(g, 0, &b);
	assert_int_equal(reply(g, 0, &pl, &len), RESP4_PUT_STATE);
	free(pl);
	assert_true(no_reply(g, 0));
	/* The loop comes back for the held LIST without an epoll event (read_pending). */
	assert_true(g->env.npending > 0);
	conn_on_readable(g->p[0].c);
	assert_int_equal(reply(g, 0, &pl, &len), RESP4_LISTING);
	free(pl);
	assert_false(g->p[0].c->closing);
	free(zeros);
}

/* A GET from an offset of a version-3 file (no stored SHA-256) hashes the bytes before the
 * offset a slice per loop turn too (review item 6, fetch.c), then sends the rest and the
 * whole file's hash. */
static void
test_get_offset_hashes_in_slices(void **state)
{
	struct rig *g = *state;
	const size_t size = 24u << 20;
	uint8_t *data = calloc(1, size), sha[32], *pl;
	char hex[33], path[600];
	struct msg4_get_end end;
	struct db_file f;
	struct buf b;
	size_t len;
	int fd, turns = 0;
	uint16_t code;

	assert_non_null(data);
	data[size - 1] = 7;
	hex_encode(id_a, CLIENT_ID_SIZE, hex);
	snprintf(path, sizeof(path), "%s/%s", g->dir, hex);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/%s/v3.bin", g->dir, hex);
	assert_true((fd = open(path, O_WRONLY | O_CREAT, 0600)) >= 0);
	assert_int_equal(write(fd, data, size), (ssize_t)size);
	close(fd);
	memset(&f, 0, sizeof(f));
	memcpy(f.owner, id_a, CLIENT_ID_SIZE);
	snprintf(f.file_name, sizeof(f.file_name), "v3.bin");
	snprintf(f.path_name, sizeof(f.path_name), "%s/v3.bin", hex);
	f.size = size;
	f.crc = cksum_buffer(data, size);
	f.uploaded = (int64_t)time(NULL);
	assert_int_equal(db_file_record(g->env.db, &f), 0);
	assert_int_equal(db_file_set_verified(g->env.db, id_a, "v3.bin", 1), 0);

	buf_init(&b, 512);
	assert_int_equal(msg4_put_get(&b, size - 10, "v3.bin"), 0);
	memcpy(g->p[0].m.in, buf_ptr(&b), buf_len(&b));
	g->p[0].m.in_len = buf_len(&b);
	buf_free(&b);
	conn_on_readable(g->p[0].c);
	assert_non_null(g->p[0].c->get);
	assert_true(no_reply(g, 0));
	while (g->p[0].c->get != NULL && turns < 1000) {
		conn_on_writable(g->p[0].c);
		turns++;
	}
	assert_true(turns >= 4);
	assert_int_equal(reply(g, 0, &pl, &len), RESP4_GET_DATA);
	assert_int_equal(len, 8 + 10);
	assert_memory_equal(pl + 8, data + size - 10, 10);
	free(pl);
	code = reply(g, 0, &pl, &len);
	assert_int_equal(code, RESP4_GET_END);
	assert_int_equal(msg4_get_end_decode(pl, len, &end), 0);
	free(pl);
	crypto_sha256(data, size, sha);
	assert_memory_equal(end.sha256, sha, 32);
	free(data);
}

struct delete_job {
	struct rig *g;
	const char *name;
	int done;
};

static void *
delete_thread(void *arg)
{
	struct delete_job *j = arg;
	struct buf b;

	buf_init(&b, 512);
	assert_int_equal(msg4_put_delete(&b, j->name), 0);
	feed(j->g, 0, &b);
	__atomic_store_n(&j->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* DELETE runs under the stored name's lock, the one publishing holds (review item 3): while
 * a publisher of the name holds it, DELETE waits, so the row it read is the row it deletes
 * and a file published meanwhile is never removed behind its row. */
static void
test_delete_waits_for_publishing(void **state)
{
	struct rig *g = *state;
	uint8_t data[100], *pl;
	struct delete_job j = { g, "doc", 0 };
	struct put_slot *lk;
	struct db_file f;
	pthread_t t;
	size_t n, len;
	struct timespec ms = { 0, 20 * 1000 * 1000 };
	int k;

	memset(data, 5, sizeof(data));
	upload(g, 0, "doc", data, sizeof(data), 100, 0);
	assert_non_null(lk = put_name_lock(id_a, "doc"));
	assert_int_equal(pthread_create(&t, NULL, delete_thread, &j), 0);
	for (k = 0; k < 10; k++)
		nanosleep(&ms, NULL);
	assert_int_equal(__atomic_load_n(&j.done, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(db_file_get(g->env.db, id_a, "doc", &f), 0);
	assert_non_null(pl = stored(g, id_a, "doc", &n));
	free(pl);
	put_name_unlock(lk);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(reply(g, 0, &pl, &len), RESP4_OK);
	free(pl);
	assert_int_equal(db_file_get(g->env.db, id_a, "doc", &f), SD_ERR_NOT_FOUND);
	assert_null(stored(g, id_a, "doc", &n));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_upload_roundtrip, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_resume_after_drop, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_wrong_offset, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_deflate_bomb, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_plain_len_checks, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_hash_mismatch_keeps_old, rig_setup,
		    rig_teardown),
		cmocka_unit_test_setup_teardown(test_takeover, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_get_from_offset, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_get_backpressure, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_accounts_confined, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_v3_file_hash_and_limits, rig_setup,
		    rig_teardown),
		cmocka_unit_test_setup_teardown(test_abort, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_reconcile_and_expire, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_reconcile_no_records, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_files_held_by_another_server, rig_setup,
		    rig_teardown),
		cmocka_unit_test_setup_teardown(test_big_resume_past_4gib, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_client_limits, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_expire_takes_name_lock, rig_setup,
		    rig_teardown),
		cmocka_unit_test_setup_teardown(test_leftover_intent_rolled_forward, rig_setup,
		    rig_teardown),
		cmocka_unit_test_setup_teardown(test_min_upload_rate, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_resume_hashes_in_slices, rig_setup,
		    rig_teardown),
		cmocka_unit_test_setup_teardown(test_get_offset_hashes_in_slices, rig_setup,
		    rig_teardown),
		cmocka_unit_test_setup_teardown(test_delete_waits_for_publishing, rig_setup,
		    rig_teardown),
	};

	crypto_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
