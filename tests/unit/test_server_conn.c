/* test_server_conn.c: the server's connection state machine without sockets: requests are fed
 * through an in-memory transport (the seam TLS will use), replies read from what it was given
 * to send, deadlines driven by a clock the test moves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "../../db/db.h"
#include "../../protocol/aes.h"
#include "../../protocol/buf.h"
#include "../../protocol/cksum.h"
#include "../../protocol/crypto.h"
#include "../../protocol/err.h"
#include "../../protocol/msg.h"
#include "../../protocol/rsa.h"
#include "../../server/config.h"
#include "../../server/conn.h"
#include "../../server/handlers.h"
#include "../../server/receive.h"
#include "../../server/storage.h"
#include "../../server/transport.h"

#define IN_MAX (1u << 20)
#define OUT_MAX (1u << 20)

/* The in-memory transport: reads hand out what the test queued, at most `slice` bytes a
 * call; writes collect into out (or refuse with CONN_IO_AGAIN while `blocked`). */
struct mem {
	uint8_t in[IN_MAX];
	size_t in_len, in_off, slice;
	int eof;
	int holds;          /* report queued input as pending (a TLS transport's records) */
	uint8_t out[OUT_MAX];
	size_t out_len;
	int blocked;
	int closed;
	int shut;           /* shutdown_write() was called */
	int shut_again;     /* shutdown_write() calls still to answer CONN_IO_AGAIN */
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
	if (m->slice > 0 && n > m->slice)
		n = m->slice;
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
	struct mem *m = t->ctx;

	return m->holds && m->in_off < m->in_len;
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

/* The lingering close: the first `shut_again` calls answer CONN_IO_AGAIN (a TLS alert the
 * socket did not take), then the sending side is shut; reads go on handing out the input. */
static int
mem_shutdown_write(struct conn_transport *t)
{
	struct mem *m = t->ctx;

	if (m->shut_again > 0) {
		m->shut_again--;
		return CONN_IO_AGAIN;
	}
	m->shut = 1;
	return 0;
}

static const struct conn_transport_ops mem_ops = {
	mem_read, mem_write, mem_want, mem_pending, mem_close, mem_nothing, mem_nothing,
	NULL,  /* no lingering close: closes at once (the tests below that want it switch) */
};

static const struct conn_transport_ops mem_linger_ops = {
	mem_read, mem_write, mem_want, mem_pending, mem_close, mem_nothing, mem_nothing,
	mem_shutdown_write,
};

/* One connection with everything it needs: a database in memory, a scratch storage folder,
 * a clock starting at 1000 ms. */
struct rig {
	struct server_config cfg;
	struct conn_env env;
	struct mem *m;
	struct conn *c;
	char dir[64];
};

static int
rig_setup(void **state)
{
	struct rig *g = calloc(1, sizeof(*g));
	struct conn_transport t;

	assert_non_null(g);
	assert_non_null(g->m = calloc(1, sizeof(*g->m)));
	snprintf(g->dir, sizeof(g->dir), "/tmp/sd-conn-XXXXXX");
	assert_non_null(mkdtemp(g->dir));
	config_defaults(&g->cfg);
	g->cfg.storage_dir = g->dir;
	g->cfg.idle_timeout = 10;
	assert_int_equal(db_open(":memory:", DB_READ_WRITE, &g->env.db), 0);
	assert_non_null(g->env.rbuf = malloc(CONN_READ_CHUNK));
	g->env.cfg = &g->cfg;
	g->env.now_ms = 1000;
	t.ops = &mem_ops;
	t.fd = -1;
	t.ctx = g->m;
	assert_non_null(g->c = conn_new(&g->env, &t, "test:1"));
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

	conn_free(g->c);
	assert_true(g->m->closed);
	assert_int_equal(g->env.npending, 0);
	db_close(g->env.db);
	free(g->env.rbuf);
	assert_int_equal(nftw(g->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
	free(g->m);
	free(g);
	return 0;
}

/* Queues b's bytes as input and lets the connection read them. */
static void
feed(struct rig *g, struct buf *b)
{
	assert_true(buf_len(b) <= IN_MAX - g->m->in_len);
	memcpy(g->m->in + g->m->in_len, buf_ptr(b), buf_len(b));
	g->m->in_len += buf_len(b);
	buf_free(b);
	conn_on_readable(g->c);
}

/* The next reply: its code and payload (at most cap bytes; *len gets its size). */
static uint16_t
next_reply(struct rig *g, size_t *at, uint8_t *payload, size_t cap, size_t *len)
{
	struct buf b;
	struct msg_header h;

	buf_init(&b, OUT_MAX);
	assert_int_equal(buf_put_bytes(&b, g->m->out + *at, g->m->out_len - *at), 0);
	assert_int_equal(msg_response_header_decode(&b, &h), 0);
	assert_true(h.payload_size <= cap && h.payload_size <= buf_len(&b));
	memcpy(payload, buf_ptr(&b), h.payload_size);
	*len = h.payload_size;
	*at += RESP_HEADER_SIZE + h.payload_size;
	buf_free(&b);
	return h.code;
}

static const uint8_t zero_id[CLIENT_ID_SIZE];

static void
put_name(struct buf *b, const uint8_t *id, uint16_t code, const char *name)
{
	assert_int_equal(msg_put_name_request(b, id, code, name), 0);
}

/* 825 on a fresh connection: 1600 with a new ID, which becomes the connection's; an invalid
 * name: 1601. */
static void
test_register(void **state)
{
	struct rig *g = *state;
	uint8_t p[512], first[CLIENT_ID_SIZE];
	size_t at = 0, len;
	struct buf b;

	buf_init(&b, 4096);
	put_name(&b, zero_id, REQ_REGISTER, "alice");
	feed(g, &b);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_REGISTERED);
	assert_int_equal(len, CLIENT_ID_SIZE);
	assert_true(g->c->known);
	assert_memory_equal(g->c->id, p, CLIENT_ID_SIZE);
	assert_memory_not_equal(p, zero_id, CLIENT_ID_SIZE);
	assert_int_equal(at, g->m->out_len);
	memcpy(first, p, CLIENT_ID_SIZE);
	/* The name is still pending (no public key): registering it again gives a new ID. */
	buf_init(&b, 4096);
	put_name(&b, zero_id, REQ_REGISTER, "alice");
	feed(g, &b);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_REGISTERED);
	assert_memory_not_equal(p, first, CLIENT_ID_SIZE);
	assert_memory_equal(g->c->id, p, CLIENT_ID_SIZE);
	/* A name with a control character: 1601. */
	buf_init(&b, 4096);
	put_name(&b, zero_id, REQ_REGISTER, "al\x01ice");
	feed(g, &b);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_REGISTER_FAILED);
	assert_int_equal(at, g->m->out_len);
	assert_false(g->c->closing);
	assert_false(conn_busy(g->c));
}

/* An 828 of a registered client that was never issued a key: its content is read and
 * dropped, 1607 at its end, nothing is being received and the connection goes on. */
static void
test_packet_before_key(void **state)
{
	struct rig *g = *state;
	struct msg_file_packet f;
	uint8_t p[512], content[100];
	size_t at = 0, len;
	struct buf b;

	buf_init(&b, 4096);
	put_name(&b, zero_id, REQ_REGISTER, "bob");
	feed(g, &b);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_REGISTERED);
	memset(&f, 0, sizeof(f));
	f.content_size = sizeof(content);
	f.orig_file_size = 90;
	f.packet_number = 1;
	f.total_packets = 1;
	snprintf(f.file_name, sizeof(f.file_name), "x.bin");
	memset(content, 0x5a, sizeof(content));
	buf_init(&b, 4096);
	assert_int_equal(msg_put_file_packet_header(&b, g->c->id, &f, sizeof(content), 0), 0);
	assert_int_equal(buf_put_bytes(&b, content, sizeof(content)), 0);
	g->m->slice = 37;  /* content in several slices, one per wake-up */
	feed(g, &b);
	while (g->m->in_off < g->m->in_len)
		conn_on_readable(g->c);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_ERROR);
	assert_int_equal(at, g->m->out_len);
	assert_null(g->c->recv);
	assert_false(g->c->skip_content);
	assert_false(g->c->closing);
	assert_int_equal(g->c->errors, 1);
}

/* A header whose payload is over its code's limit breaks framing: closed, nothing sent. */
static void
test_bad_header_closes(void **state)
{
	struct rig *g = *state;
	struct msg_header h;
	struct buf b;

	memset(&h, 0, sizeof(h));
	h.version = PROTO_VERSION;
	h.code = REQ_REGISTER;
	h.payload_size = 1u << 20;
	buf_init(&b, 4096);
	assert_int_equal(msg_request_header_encode(&b, &h), 0);
	feed(g, &b);
	assert_true(g->c->closing);
	assert_int_equal(g->env.nclosing, 1);
	assert_int_equal(g->m->out_len, 0);
	assert_int_equal(conn_want(g->c), 0);
	conn_close_later(g->c);  /* idempotent */
	assert_int_equal(g->env.nclosing, 1);
}

/* The peer closing its side closes the connection. */
static void
test_eof_closes(void **state)
{
	struct rig *g = *state;

	g->m->eof = 1;
	conn_on_readable(g->c);
	assert_true(g->c->closing);
	assert_int_equal(g->env.nclosing, 1);
}

/* A request and then EOF (a client that half-closes after its last packet) while the reply
 * cannot be sent yet: reading stops, the reply is sent when the socket is writable, then the
 * connection closes; a peer that never reads it is closed by the idle timeout. */
static void
test_eof_flushes_first(void **state)
{
	struct rig *g = *state;
	uint8_t p[512];
	size_t at = 0, len;
	struct buf b;

	g->m->blocked = 1;
	g->m->eof = 1;
	buf_init(&b, 4096);
	put_name(&b, zero_id, REQ_REGISTER, "ivy");
	feed(g, &b);
	conn_on_readable(g->c);  /* the EOF after the request */
	assert_false(g->c->closing);
	assert_true(g->c->finishing);
	assert_int_equal(conn_want(g->c), CONN_WANT_WRITE);
	conn_on_readable(g->c);  /* EOF again (a level-triggered wake-up): nothing changes */
	assert_false(g->c->closing);
	g->m->blocked = 0;
	conn_on_writable(g->c);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_REGISTERED);
	assert_true(g->c->closing);
	assert_int_equal(g->env.nclosing, 1);
}

static void
test_eof_unread_reply_times_out(void **state)
{
	struct rig *g = *state;
	struct buf b;

	g->m->blocked = 1;
	g->m->eof = 1;
	buf_init(&b, 4096);
	put_name(&b, zero_id, REQ_REGISTER, "jay");
	feed(g, &b);
	conn_on_readable(g->c);
	assert_true(g->c->finishing);
	assert_false(g->c->closing);
	assert_int_equal(conn_check_timeouts(g->c, g->env.now_ms + 9000), 0);
	assert_int_equal(conn_check_timeouts(g->c, g->env.now_ms + 10000), 1);
	assert_true(g->c->closing);
}

/* Replaces the rig's connection with a fresh one over a fresh in-memory transport. */
static void
rig_renew(struct rig *g)
{
	struct conn_transport t;

	conn_free(g->c);
	memset(g->m, 0, sizeof(*g->m));
	g->env.nclosing = 0;
	t.ops = &mem_linger_ops;
	t.fd = -1;
	t.ctx = g->m;
	assert_non_null(g->c = conn_new(&g->env, &t, "test:2"));
}

/* Sends 1607-earning requests before registration until the connection ends it: the last
 * 1607 goes out too (CONN_UNKNOWN_MAX_ERRORS + 1 of them); returns how many were sent. */
static unsigned
refuse_until_finishing(struct rig *g)
{
	unsigned i;
	struct buf b;

	g->c->tr.ops = &mem_linger_ops;
	for (i = 0; i < 100 && !g->c->finishing && !g->c->closing; i++) {
		buf_init(&b, 4096);
		/* An unknown code, empty: 1607, and the framing stays intact. */
		assert_int_equal(msg_put_request_header(&b, PROTO_VERSION, zero_id, 999, 0), 0);
		feed(g, &b);
	}
	return i;
}

/* The error that ends a connection, then a lingering close: the reply is out, the sending
 * side shut, and whatever the peer still sends is read and dropped (no reply, no request)
 * until its EOF; it holds nothing of a request and is not busy. */
static void
test_linger_until_eof(void **state)
{
	struct rig *g = *state;
	unsigned i, n;
	struct buf b;

	n = refuse_until_finishing(g);
	assert_int_equal(n, 33);  /* CONN_UNKNOWN_MAX_ERRORS + 1 */
	assert_int_equal(g->m->out_len, n * RESP_HEADER_SIZE);  /* the last 1607 too */
	assert_true(g->m->shut);
	assert_true(g->c->lingering);
	assert_false(g->c->closing);
	assert_false(conn_busy(g->c));
	assert_int_equal(conn_want(g->c), CONN_WANT_READ);
	/* A request now is dropped unread: nothing answers it. */
	buf_init(&b, 4096);
	put_name(&b, zero_id, REQ_REGISTER, "late");
	feed(g, &b);
	for (i = 0; i < 1000; i++)
		g->m->in[g->m->in_len++] = (uint8_t)i;
	conn_on_readable(g->c);
	assert_int_equal(g->m->in_off, g->m->in_len);
	assert_int_equal(g->m->out_len, n * RESP_HEADER_SIZE);
	assert_false(g->c->known);
	assert_false(g->c->closing);
	conn_on_writable(g->c);  /* nothing to send, nothing happens */
	assert_false(g->c->closing);
	assert_int_equal(conn_check_timeouts(g->c, g->env.now_ms + CONN_LINGER_MS - 1), 0);
	g->m->eof = 1;
	conn_on_readable(g->c);
	assert_true(g->c->closing);
	assert_int_equal(g->env.nclosing, 1);
	assert_int_equal(conn_want(g->c), 0);
}

/* A peer that neither closes nor stops: cut after CONN_LINGER_MS, whatever the idle
 * timeout, or after CONN_LINGER_BYTES, whichever comes first. */
static void
test_linger_bounds(void **state)
{
	struct rig *g = *state;
	uint64_t fed = 0;

	refuse_until_finishing(g);
	assert_true(g->c->lingering);
	g->m->in[g->m->in_len++] = 1;  /* a byte is no progress that extends it */
	g->env.now_ms += CONN_LINGER_MS - 1;
	conn_on_readable(g->c);
	assert_int_equal(conn_check_timeouts(g->c, g->env.now_ms), 0);
	assert_int_equal(conn_check_timeouts(g->c, g->env.now_ms + 1), 1);
	assert_true(g->c->closing);

	/* The byte bound, on a second connection: the input is refilled until it is cut. */
	rig_renew(g);
	refuse_until_finishing(g);
	assert_true(g->c->lingering);
	while (!g->c->closing && fed <= CONN_LINGER_BYTES) {
		g->m->in_off = 0;
		g->m->in_len = IN_MAX;
		fed += IN_MAX;
		while (!g->c->closing && g->m->in_off < g->m->in_len)
			conn_on_readable(g->c);
	}
	assert_true(g->c->closing);
	assert_true(fed >= CONN_LINGER_BYTES);
	assert_true(fed - IN_MAX < CONN_LINGER_BYTES);
}

/* The sending side may not shut at once (a TLS alert the socket did not take): the
 * connection waits as the transport says and tries again when it is writable. A peer that
 * has closed its side gets no lingering close. */
static void
test_linger_shutdown_again(void **state)
{
	struct rig *g = *state;
	struct buf b;

	g->m->shut_again = 1;
	refuse_until_finishing(g);
	assert_true(g->c->finishing);
	assert_false(g->c->lingering);
	assert_false(g->m->shut);
	conn_on_writable(g->c);
	assert_true(g->m->shut);
	assert_true(g->c->lingering);

	/* A request, then EOF, then its reply: closed at once. */
	rig_renew(g);
	g->m->eof = 1;
	g->m->blocked = 1;
	buf_init(&b, 4096);
	put_name(&b, zero_id, REQ_REGISTER, "kim");
	feed(g, &b);
	conn_on_readable(g->c);  /* the EOF after the request */
	assert_true(g->c->finishing);
	g->m->blocked = 0;
	conn_on_writable(g->c);
	assert_true(g->m->out_len > 0);
	assert_true(g->c->closing);
	assert_false(g->m->shut);
}

/* No byte for the idle timeout closes; any byte received moves the deadline. */
static void
test_idle_timeout(void **state)
{
	struct rig *g = *state;
	int64_t limit = (int64_t)g->cfg.idle_timeout * 1000;
	struct buf b;

	assert_int_equal(conn_check_timeouts(g->c, 1000 + limit - 1), 0);
	g->env.now_ms = 1000 + limit - 1;
	buf_init(&b, 4096);
	put_name(&b, zero_id, REQ_REGISTER, "carol");
	feed(g, &b);
	assert_int_equal(conn_check_timeouts(g->c, 1000 + limit), 0);
	assert_int_equal(conn_check_timeouts(g->c, g->env.now_ms + limit - 1), 0);
	assert_false(g->c->closing);
	assert_int_equal(conn_check_timeouts(g->c, g->env.now_ms + limit), 1);
	assert_true(g->c->closing);
	assert_int_equal(g->env.nclosing, 1);
	/* A closing connection has no more deadlines. */
	assert_int_equal(conn_check_timeouts(g->c, g->env.now_ms + 2 * limit), 0);
}

/* A message trickled byte by byte gets the idle timeout for the whole of it, not per byte. */
static void
test_partial_message_timeout(void **state)
{
	struct rig *g = *state;
	int64_t limit = (int64_t)g->cfg.idle_timeout * 1000;
	uint8_t whole[REQ_HEADER_SIZE + NAME_FIELD_SIZE];
	struct buf b;
	size_t i;

	buf_init(&b, 4096);
	put_name(&b, zero_id, REQ_REGISTER, "dave");
	assert_int_equal(buf_len(&b), sizeof(whole));
	memcpy(whole, buf_ptr(&b), sizeof(whole));
	buf_free(&b);
	for (i = 0; i < 10; i++) {
		g->env.now_ms += limit / 20;  /* each byte well within the idle timeout */
		g->m->in[g->m->in_len++] = whole[i];
		conn_on_readable(g->c);
		assert_int_equal(conn_check_timeouts(g->c, g->env.now_ms), 0);
	}
	assert_true(conn_busy(g->c));
	/* 1000 + limit/20 is when the message began. */
	assert_int_equal(conn_check_timeouts(g->c, 1000 + limit / 20 + limit - 1), 0);
	assert_int_equal(conn_check_timeouts(g->c, 1000 + limit / 20 + limit), 1);
	assert_true(g->c->closing);
}

/* Encrypts n bytes of plain under key (AES-256-CBC, zero IV, PKCS#7) into a new buffer. */
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

/* A client "erin" with a stored AES key (as after 1602 on another connection), this
 * connection not knowing it. */
static void
stored_client_elsewhere(struct rig *g, uint8_t id[CLIENT_ID_SIZE], uint8_t key[AES_KEY_SIZE])
{
	memset(id, 0x11, CLIENT_ID_SIZE);
	memset(key, 0x22, AES_KEY_SIZE);
	assert_int_equal(db_client_register(g->env.db, "erin", id), 0);
	assert_int_equal(db_client_set_aes_key(g->env.db, id, key), 0);
}

/* The same, the key issued on this connection (as a 1605 here does). */
static void
stored_client(struct rig *g, uint8_t id[CLIENT_ID_SIZE], uint8_t key[AES_KEY_SIZE])
{
	stored_client_elsewhere(g, id, key);
	conn_set_identity(g->c, id, "erin", key);
}

static const char *packet_file_name = "notes.txt";

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
	snprintf(f.file_name, sizeof(f.file_name), "%s", packet_file_name);
	assert_int_equal(msg_put_file_packet_header(b, id, &f, (uint32_t)n, 0), 0);
	assert_int_equal(buf_put_bytes(b, ct + off, n), 0);
}

/* A whole upload in two packets under the connection's key: 1603 with the file's cksum; the
 * file waits beside the stored version under its temporary name and no row is written; then
 * 900 -> 1604, the file is under its name and its row verified (issue 9 item 1). */
static void
test_upload_and_verdict(void **state)
{
	struct rig *g = *state;
	uint8_t id[CLIENT_ID_SIZE], key[AES_KEY_SIZE], plain[3000], p[512];
	struct msg_file_crc crc;
	struct db_file f;
	size_t ct_len, at = 0, len;
	uint8_t *ct;
	char path[256];
	struct stat st;
	struct buf b;

	stored_client(g, id, key);
	memset(plain, 'q', sizeof(plain));
	ct = encrypt(key, plain, sizeof(plain), &ct_len);
	buf_init(&b, 8192);
	put_packet(&b, id, ct, ct_len, sizeof(plain), 2048, 1, 2);
	feed(g, &b);
	assert_non_null(g->c->recv);
	assert_true(conn_busy(g->c));
	assert_int_equal(g->m->out_len, 0);
	buf_init(&b, 8192);
	put_packet(&b, id, ct, ct_len, sizeof(plain), 2048, 2, 2);
	feed(g, &b);
	free(ct);
	assert_null(g->c->recv);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_FILE_CRC);
	assert_int_equal(msg_file_crc_decode(p, len, &crc), 0);
	assert_int_equal(crc.cksum, cksum_buffer(plain, sizeof(plain)));
	assert_int_equal(crc.content_size, ct_len);
	assert_string_equal(crc.file_name, "notes.txt");
	snprintf(path, sizeof(path), "%s/11111111111111111111111111111111/notes.txt", g->dir);
	assert_int_not_equal(stat(path, &st), 0);
	assert_int_equal(db_file_get(g->env.db, id, "notes.txt", &f), SD_ERR_NOT_FOUND);
	assert_true(g->c->awaiting_verdict);
	buf_init(&b, 4096);
	put_name(&b, id, REQ_CRC_OK, "notes.txt");
	feed(g, &b);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_ACK);
	assert_memory_equal(p, id, CLIENT_ID_SIZE);
	assert_false(conn_busy(g->c));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, sizeof(plain));
	assert_int_equal(db_file_get(g->env.db, id, "notes.txt", &f), 0);
	assert_true(f.verified);
	assert_int_equal(f.size, sizeof(plain));
	assert_int_equal(f.crc, cksum_buffer(plain, sizeof(plain)));
	assert_int_equal(db_commit_get(g->env.db, id, "notes.txt", &(struct db_commit){ 0 }),
	    SD_ERR_NOT_FOUND);
	/* The same verdict again is answered again; the other one is refused. */
	buf_init(&b, 4096);
	put_name(&b, id, REQ_CRC_OK, "notes.txt");
	put_name(&b, id, REQ_CRC_FAIL, "notes.txt");
	feed(g, &b);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_ACK);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_ERROR);
}

/* Counts the entries of the client's folder (the temporary file of an upload in progress). */
static int
entries(const struct rig *g)
{
	char path[256];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/11111111111111111111111111111111", g->dir);
	assert_non_null(d = opendir(path));
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* A new key mid-upload (a 1605 on this connection) aborts the receive: its temporary file
 * goes, the next continuation is refused with 1607. */
static void
test_new_key_aborts_receive(void **state)
{
	struct rig *g = *state;
	uint8_t id[CLIENT_ID_SIZE], key[AES_KEY_SIZE], other[AES_KEY_SIZE], plain[3000], p[64];
	size_t ct_len, at = 0, len;
	uint8_t *ct;
	struct buf b;

	stored_client(g, id, key);
	memset(plain, 'r', sizeof(plain));
	ct = encrypt(key, plain, sizeof(plain), &ct_len);
	buf_init(&b, 8192);
	put_packet(&b, id, ct, ct_len, sizeof(plain), 2048, 1, 2);
	feed(g, &b);
	assert_non_null(g->c->recv);
	assert_int_equal(entries(g), 1);
	memset(other, 0x33, sizeof(other));
	conn_set_identity(g->c, id, "erin", other);
	assert_null(g->c->recv);
	assert_int_equal(entries(g), 0);
	/* The same key again keeps a receive; here there is none left to keep. */
	conn_set_identity(g->c, id, "erin", other);
	assert_null(g->c->recv);
	buf_init(&b, 8192);
	put_packet(&b, id, ct, ct_len, sizeof(plain), 2048, 2, 2);
	feed(g, &b);
	free(ct);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_ERROR);
	assert_null(g->c->recv);
}

/* File content slower than CONN_STREAM_MIN_BYTES per idle period closes, even though bytes
 * keep coming (and so the idle deadline keeps moving). */
static void
test_slow_content_timeout(void **state)
{
	struct rig *g = *state;
	int64_t limit = (int64_t)g->cfg.idle_timeout * 1000;
	uint8_t id[CLIENT_ID_SIZE], key[AES_KEY_SIZE], *plain, *ct;
	size_t ct_len, n = 200000;
	struct buf b;
	int i;

	stored_client(g, id, key);
	assert_non_null(plain = calloc(1, n));
	ct = encrypt(key, plain, n, &ct_len);
	buf_init(&b, ct_len + 4096);
	put_packet(&b, id, ct, ct_len, n, ct_len, 1, 1);
	free(ct);
	free(plain);
	memcpy(g->m->in, buf_ptr(&b), buf_len(&b));
	buf_free(&b);
	/* The headers and 1000 bytes of content, then 1000 bytes every tenth of a period. */
	g->m->in_len = REQ_HEADER_SIZE + FILE_PACKET_HEADER_SIZE + 1000;
	conn_on_readable(g->c);
	assert_non_null(g->c->recv);
	for (i = 0; i < 30; i++) {
		g->env.now_ms += limit / 10;
		if (conn_check_timeouts(g->c, g->env.now_ms))
			break;
		g->m->in_len += 1000;
		conn_on_readable(g->c);
		assert_int_equal(g->m->in_off, g->m->in_len);
	}
	assert_int_equal(i, 9);  /* one whole period after the content began */
	assert_true(g->c->closing);
}

/* Uploads 3000 bytes of fill as packet_file_name in two packets and checks the 1603. */
static void
upload_fill(struct rig *g, const uint8_t id[CLIENT_ID_SIZE], const uint8_t key[AES_KEY_SIZE],
    int fill, size_t *at)
{
	uint8_t plain[3000], p[512], *ct;
	struct msg_file_crc crc;
	size_t ct_len, len;
	struct buf b;

	memset(plain, fill, sizeof(plain));
	ct = encrypt(key, plain, sizeof(plain), &ct_len);
	buf_init(&b, 8192);
	put_packet(&b, id, ct, ct_len, sizeof(plain), 2048, 1, 2);
	put_packet(&b, id, ct, ct_len, sizeof(plain), 2048, 2, 2);
	feed(g, &b);
	free(ct);
	assert_int_equal(next_reply(g, at, p, sizeof(p), &len), RESP_FILE_CRC);
	assert_int_equal(msg_file_crc_decode(p, len, &crc), 0);
	assert_int_equal(crc.cksum, cksum_buffer(plain, sizeof(plain)));
}

/* Sends a verdict (900, 901, 902) on packet_file_name; the reply code, or 0 for none. */
static uint16_t
verdict(struct rig *g, const uint8_t id[CLIENT_ID_SIZE], uint16_t code, size_t *at)
{
	uint8_t p[64];
	size_t len;
	struct buf b;

	buf_init(&b, 4096);
	put_name(&b, id, code, packet_file_name);
	feed(g, &b);
	if (*at == g->m->out_len)
		return 0;
	return next_reply(g, at, p, sizeof(p), &len);
}

/* 1 when the stored notes.txt is 3000 bytes of fill and its row is verified with their CRC. */
static void
assert_stored(struct rig *g, const uint8_t id[CLIENT_ID_SIZE], int fill, int verified)
{
	uint8_t want[3000], got[3001];
	char path[256];
	struct db_file f;
	ssize_t n;
	int fd;

	memset(want, fill, sizeof(want));
	snprintf(path, sizeof(path), "%s/11111111111111111111111111111111/%s", g->dir,
	    packet_file_name);
	assert_true((fd = open(path, O_RDONLY)) >= 0);
	n = read(fd, got, sizeof(got));
	close(fd);
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(got, want, sizeof(want));
	assert_int_equal(db_file_get(g->env.db, id, packet_file_name, &f), 0);
	assert_int_equal(f.verified, verified);
	assert_int_equal(f.size, sizeof(want));
	assert_int_equal(f.crc, cksum_buffer(want, sizeof(want)));
}

/* Issue 9 item 1: an upload the client has not confirmed never replaces a verified file:
 * not at 1603, not on 902 (the attempt goes, the verified version stays), not on 901 (the
 * attempt goes at once), not when the connection drops. Each waiting attempt is one
 * temporary file beside the stored one. */
static void
test_unconfirmed_never_replaces_verified(void **state)
{
	struct rig *g = *state;
	uint8_t id[CLIENT_ID_SIZE], key[AES_KEY_SIZE];
	size_t at = 0;

	stored_client(g, id, key);
	upload_fill(g, id, key, 'q', &at);
	assert_int_equal(verdict(g, id, REQ_CRC_OK, &at), RESP_ACK);
	assert_stored(g, id, 'q', 1);
	assert_int_equal(entries(g), 1);

	upload_fill(g, id, key, 's', &at);
	assert_stored(g, id, 'q', 1);  /* at 1603 */
	assert_int_equal(entries(g), 2);
	assert_int_equal(verdict(g, id, REQ_CRC_FAIL, &at), RESP_ACK);
	assert_stored(g, id, 'q', 1);
	assert_int_equal(entries(g), 1);

	upload_fill(g, id, key, 't', &at);
	assert_int_equal(verdict(g, id, REQ_CRC_RETRY, &at), 0);
	assert_int_equal(entries(g), 1);
	assert_stored(g, id, 'q', 1);
}

/* 902 with no verified version: the attempt is stored, recorded as not verified. */
static void
test_crc_fail_stores_unverified(void **state)
{
	struct rig *g = *state;
	uint8_t id[CLIENT_ID_SIZE], key[AES_KEY_SIZE];
	size_t at = 0;

	stored_client(g, id, key);
	upload_fill(g, id, key, 'u', &at);
	assert_int_equal(verdict(g, id, REQ_CRC_FAIL, &at), RESP_ACK);
	assert_stored(g, id, 'u', 0);
	/* A later 900 of a new attempt replaces it, verified. */
	upload_fill(g, id, key, 'v', &at);
	assert_int_equal(verdict(g, id, REQ_CRC_OK, &at), RESP_ACK);
	assert_stored(g, id, 'v', 1);
	assert_int_equal(entries(g), 1);
}

/* Issue 9 item 1: when the intent cannot be recorded, nothing on disk changes: 900 gets 1607,
 * the verified version stays, the attempt's temporary file goes. */
static void
test_intent_failure_changes_nothing(void **state)
{
	struct rig *g = *state;
	uint8_t id[CLIENT_ID_SIZE], key[AES_KEY_SIZE];
	struct db_commit other;
	char path[700];
	size_t at = 0;
	int fd;

	stored_client(g, id, key);
	upload_fill(g, id, key, 'q', &at);
	assert_int_equal(verdict(g, id, REQ_CRC_OK, &at), RESP_ACK);
	upload_fill(g, id, key, 'w', &at);
	/* Another name's commit onto the same stored path is in flight: db_commit_add refuses. */
	memset(&other, 0, sizeof(other));
	memcpy(other.owner, id, CLIENT_ID_SIZE);
	snprintf(other.file_name, sizeof(other.file_name), "dir/notes.txt");
	snprintf(other.temp_path, sizeof(other.temp_path),
	    "11111111111111111111111111111111/.sealdrop-part-0");
	snprintf(other.path_name, sizeof(other.path_name),
	    "11111111111111111111111111111111/notes.txt");
	other.size = 1;
	assert_int_equal(db_commit_add(g->env.db, &other), 0);
	/* In flight: the live server completing it holds its file (else, as a killed server's
	 * intent, it would be rolled forward out of the way: test_stale_intent_rolled_forward). */
	snprintf(path, sizeof(path), "%s/%s", g->dir, other.temp_path);
	assert_true((fd = open(path, O_WRONLY | O_CREAT, 0600)) >= 0);
	assert_int_equal(storage_lock(fd, 0), 0);
	assert_int_equal(verdict(g, id, REQ_CRC_OK, &at), RESP_ERROR);
	close(fd);
	assert_int_equal(unlink(path), 0);
	assert_stored(g, id, 'q', 1);
	assert_int_equal(entries(g), 1);
}

/* An intent a killed server left on the same stored path (its file unlocked, the rename never
 * done): the 900 rolls it forward (here: dropped, its attempt gone and the stored file
 * another) and stores its own attempt. */
static void
test_stale_intent_rolled_forward(void **state)
{
	struct rig *g = *state;
	uint8_t id[CLIENT_ID_SIZE], key[AES_KEY_SIZE];
	struct db_commit other, got;
	size_t at = 0;

	stored_client(g, id, key);
	upload_fill(g, id, key, 'q', &at);
	assert_int_equal(verdict(g, id, REQ_CRC_OK, &at), RESP_ACK);
	upload_fill(g, id, key, 'w', &at);
	memset(&other, 0, sizeof(other));
	memcpy(other.owner, id, CLIENT_ID_SIZE);
	snprintf(other.file_name, sizeof(other.file_name), "dir/notes.txt");
	snprintf(other.temp_path, sizeof(other.temp_path),
	    "11111111111111111111111111111111/.sealdrop-part-0");
	snprintf(other.path_name, sizeof(other.path_name),
	    "11111111111111111111111111111111/notes.txt");
	other.size = 1;
	assert_int_equal(db_commit_add(g->env.db, &other), 0);
	assert_int_equal(verdict(g, id, REQ_CRC_OK, &at), RESP_ACK);
	assert_stored(g, id, 'w', 1);
	assert_int_equal(db_commit_get(g->env.db, id, "dir/notes.txt", &got), SD_ERR_NOT_FOUND);
	assert_int_equal(entries(g), 1);
}

/* Issue 9 item 2: an 828 under the ID of a client whose key was issued on another connection
 * is refused (1607): the key is never taken from the database by the header's ID. */
static void
test_packet_needs_session_key(void **state)
{
	struct rig *g = *state;
	uint8_t id[CLIENT_ID_SIZE], key[AES_KEY_SIZE], plain[100], p[64], *ct;
	size_t ct_len, at = 0, len;
	struct buf b;

	stored_client_elsewhere(g, id, key);
	memset(plain, 'x', sizeof(plain));
	ct = encrypt(key, plain, sizeof(plain), &ct_len);
	buf_init(&b, 8192);
	put_packet(&b, id, ct, ct_len, sizeof(plain), 2048, 1, 1);
	feed(g, &b);
	free(ct);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_ERROR);
	assert_int_equal(at, g->m->out_len);
	assert_null(g->c->recv);
	assert_int_equal(g->c->uploads_done, 0);
}

/* Issue 9 item 6: after an attempt is refused, the rest of its packets are skipped without a
 * log line each: one line for the attempt; every packet still gets its 1607 (the wire does
 * not change). */
static void
test_refused_attempt_rest_skipped(void **state)
{
	struct rig *g = *state;
	uint8_t id[CLIENT_ID_SIZE], key[AES_KEY_SIZE], plain[5000], p[64], *ct;
	size_t ct_len, at = 0, len;
	unsigned logged;
	struct buf b;
	uint16_t i;

	stored_client(g, id, key);
	memset(plain, 'y', sizeof(plain));
	ct = encrypt(key, plain, sizeof(plain), &ct_len);
	logged = g->c->logged;
	packet_file_name = ".sealdrop-part-x";  /* a name the server cannot store */
	buf_init(&b, 16384);
	for (i = 1; i <= 5; i++)
		put_packet(&b, id, ct, ct_len, sizeof(plain), 1024, i, 5);
	feed(g, &b);
	free(ct);
	packet_file_name = "notes.txt";
	for (i = 1; i <= 5; i++)
		assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_ERROR);
	assert_int_equal(at, g->m->out_len);
	assert_int_equal(g->c->errors, 5);
	assert_int_equal(g->c->logged, logged + 1);
	assert_false(g->c->skip_content);
	/* A new attempt (first packet) is served again. */
	upload_fill(g, id, key, 'z', &at);
}

/* Issue 9 item 3: a pending registration (no key yet) may be registered again only on the
 * connection that created it; from another connection 825 for that name gets 1601. */
static void
test_pending_belongs_to_its_connection(void **state)
{
	struct rig *g = *state;
	struct mem *m2 = calloc(1, sizeof(*m2));
	struct conn_transport t;
	struct conn *c2;
	struct db_client cl;
	uint8_t p[64], first[CLIENT_ID_SIZE];
	size_t at = 0, len;
	struct buf b;

	assert_non_null(m2);
	t.ops = &mem_ops;
	t.fd = -1;
	t.ctx = m2;
	assert_non_null(c2 = conn_new(&g->env, &t, "test:2"));
	buf_init(&b, 4096);
	put_name(&b, zero_id, REQ_REGISTER, "henry");
	feed(g, &b);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_REGISTERED);
	memcpy(first, p, CLIENT_ID_SIZE);
	/* The other connection: 1601, the name stays the first one's. */
	buf_init(&b, 4096);
	put_name(&b, zero_id, REQ_REGISTER, "henry");
	memcpy(m2->in, buf_ptr(&b), buf_len(&b));
	m2->in_len = buf_len(&b);
	buf_free(&b);
	conn_on_readable(c2);
	assert_int_equal(m2->out_len, RESP_HEADER_SIZE);
	assert_int_equal(m2->out[1] | m2->out[2] << 8, RESP_REGISTER_FAILED);
	assert_int_equal(db_client_by_name(g->env.db, "henry", &cl), 0);
	assert_memory_equal(cl.id, first, CLIENT_ID_SIZE);
	conn_free(c2);
	free(m2);
	/* The connection that made it may register it again (827 -> 1606 -> 825). */
	buf_init(&b, 4096);
	put_name(&b, zero_id, REQ_REGISTER, "henry");
	feed(g, &b);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_REGISTERED);
	assert_int_equal(db_client_by_name(g->env.db, "henry", &cl), 0);
	assert_memory_equal(cl.id, p, CLIENT_ID_SIZE);
}

/* Backpressure and the transport seam: output that cannot be sent makes the connection want
 * writing; a transport holding input it already took off the socket is read again. */
static void
test_want_and_pending(void **state)
{
	struct rig *g = *state;
	struct buf b;
	size_t i, before;

	assert_int_equal(conn_want(g->c), CONN_WANT_READ);
	g->m->blocked = 1;
	buf_init(&b, 4096);
	put_name(&b, zero_id, REQ_REGISTER, "frank");
	feed(g, &b);
	assert_int_equal(conn_want(g->c), CONN_WANT_READ | CONN_WANT_WRITE);
	assert_true(conn_busy(g->c));
	g->m->blocked = 0;
	conn_on_writable(g->c);
	assert_int_equal(g->m->out_len, RESP_HEADER_SIZE + CLIENT_ID_SIZE);
	assert_int_equal(conn_want(g->c), CONN_WANT_READ);

	/* Many 900s without an upload (each answered 1607), handed out a few bytes at a time by
	 * a transport that says it holds more: one wake-up reads CONN_READS_PER_WAKE slices and
	 * asks to be called again. */
	buf_init(&b, 16384);
	for (i = 0; i < 8; i++)
		put_name(&b, g->c->id, REQ_CRC_OK, "x");
	before = g->m->in_off;
	g->m->holds = 1;
	g->m->slice = 100;
	feed(g, &b);
	assert_true(g->c->more_pending);
	assert_int_equal(g->env.npending, 1);
	assert_int_equal(g->m->in_off - before, CONN_READS_PER_WAKE * 100);
	while (g->c->more_pending)
		conn_on_readable(g->c);
	assert_int_equal(g->env.npending, 0);
	assert_int_equal(g->m->in_off, g->m->in_len);
	assert_int_equal(g->c->errors, 8);
}

/* Output backed up while the transport still held input: reading stopped, and epoll will
 * never report that input. Once the output drains, the connection must ask to be read again
 * without an event (more_pending), or the held requests would wait forever. */
static void
test_pending_after_output_drains(void **state)
{
	struct rig *g = *state;
	struct msg_header h;
	struct buf b;
	unsigned i, n = 15000, wakes = 0;
	int saved, devnull;

	buf_init(&b, 4096);
	put_name(&b, zero_id, REQ_REGISTER, "henry");
	feed(g, &b);
	g->m->blocked = 1;
	g->m->holds = 1;
	g->m->slice = 1000 * REQ_HEADER_SIZE;
	memset(&h, 0, sizeof(h));
	memcpy(h.client_id, g->c->id, CLIENT_ID_SIZE);
	h.version = PROTO_VERSION;
	h.code = 999;  /* unknown: 1607 each, 7 bytes of output per 23 of input */
	buf_init(&b, IN_MAX);
	for (i = 0; i < n; i++)
		assert_int_equal(msg_request_header_encode(&b, &h), 0);
	assert_true((saved = dup(2)) >= 0);
	assert_true((devnull = open("/dev/null", O_WRONLY)) >= 0);
	assert_int_equal(dup2(devnull, 2), 2);
	feed(g, &b);
	while (g->c->more_pending && wakes++ < 100)
		conn_on_readable(g->c);
	/* Stopped by backpressure with input left in the transport. */
	assert_false(g->c->more_pending);
	assert_true(buf_len(&g->c->out) >= CONN_OUT_HIGH);
	assert_true(g->m->in_off < g->m->in_len);
	assert_int_equal(conn_want(g->c), CONN_WANT_WRITE);
	g->m->blocked = 0;
	conn_on_writable(g->c);
	assert_int_equal(buf_len(&g->c->out), 0);
	assert_true(g->c->more_pending);
	assert_int_equal(g->env.npending, 1);
	while (g->c->more_pending && wakes++ < 1000)
		conn_on_readable(g->c);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	close(devnull);
	assert_int_equal(g->m->in_off, g->m->in_len);
	assert_int_equal(g->c->errors, n);
	assert_int_equal(g->env.npending, 0);
	assert_false(g->c->closing);
}

/* IDs the server makes never start with 0x16, the first byte of a TLS record (SPEC-v4.md
 * 1): among 20,000 draws about 78 would without the rule. */
static void
test_ids_never_start_with_0x16(void **state)
{
	static const uint8_t zero[CLIENT_ID_SIZE];
	uint8_t id[CLIENT_ID_SIZE];
	unsigned i, first[256] = { 0 };

	(void)state;
	for (i = 0; i < 20000; i++) {
		handlers_new_client_id(id);
		assert_memory_not_equal(id, zero, CLIENT_ID_SIZE);
		first[id[0]]++;
	}
	assert_int_equal(first[0x16], 0);
	assert_true(first[0x15] > 0 && first[0x17] > 0);
}

/* A flood of refused requests from a known client: every one answered, at most CONN_LOG_MAX
 * of them logged (plus the one line saying the rest are not). */
static void
test_log_cap(void **state)
{
	struct rig *g = *state;
	unsigned i, n = CONN_LOG_MAX + 50;
	int saved, devnull;
	struct buf b;

	buf_init(&b, 4096);
	put_name(&b, zero_id, REQ_REGISTER, "grace");
	feed(g, &b);
	assert_int_equal(g->c->logged, 1);
	/* The flood's log lines go nowhere; only the count is checked. */
	assert_true((saved = dup(2)) >= 0);
	assert_true((devnull = open("/dev/null", O_WRONLY)) >= 0);
	assert_int_equal(dup2(devnull, 2), 2);
	for (i = 0; i < n; i++) {
		buf_init(&b, 4096);
		put_name(&b, g->c->id, REQ_CRC_FAIL, "none");
		feed(g, &b);
	}
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	close(devnull);
	assert_int_equal(g->c->errors, n);
	assert_int_equal(g->m->out_len, RESP_HEADER_SIZE + CLIENT_ID_SIZE + n * RESP_HEADER_SIZE);
	assert_int_equal(g->c->logged, CONN_LOG_MAX + 1);
	assert_false(g->c->closing);
}

/* Runs SQL on the rig's database file outside the db API (a trigger that makes writes fail). */
static void
rig_sql(struct rig *g, const char *sql)
{
	char path[128];
	sqlite3 *s = NULL;

	snprintf(path, sizeof(path), "%s/defensive.db", g->dir);
	assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
	assert_int_equal(sqlite3_exec(s, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(s);
}

/* 826 whose AES key cannot be stored: 1607 and no public key either, so the client's retry
 * gets its key (1602) instead of "has a key already". */
static void
test_public_key_failure_retry(void **state)
{
	struct rig *g = *state;
	struct rsa_private *priv = NULL;
	struct rsa_public *pub = NULL;
	uint8_t p[512], id[CLIENT_ID_SIZE], spki[PUBLIC_KEY_SIZE];
	char path[128];
	size_t at = 0, len, spki_len;
	struct db_client cl;
	struct buf b;

	/* The rig's database in a file, so a second connection can add a trigger. */
	db_close(g->env.db);
	snprintf(path, sizeof(path), "%s/defensive.db", g->dir);
	assert_int_equal(db_open(path, DB_READ_WRITE, &g->env.db), 0);
	assert_int_equal(rsa_generate(&priv), 0);
	assert_int_equal(rsa_public_from_private(priv, &pub), 0);
	assert_int_equal(rsa_public_to_spki(pub, spki, sizeof(spki), &spki_len), 0);
	assert_int_equal(spki_len, sizeof(spki));

	buf_init(&b, 4096);
	put_name(&b, zero_id, REQ_REGISTER, "henry");
	feed(g, &b);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_REGISTERED);
	memcpy(id, p, CLIENT_ID_SIZE);

	rig_sql(g, "CREATE TRIGGER no_aes BEFORE UPDATE OF AESKey ON clients "
	    "BEGIN SELECT RAISE(ABORT, 'test: no AES key'); END;");
	buf_init(&b, 4096);
	assert_int_equal(msg_put_public_key_request(&b, id, "henry", spki), 0);
	feed(g, &b);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_ERROR);
	assert_int_equal(db_client_by_id(g->env.db, id, &cl), 0);
	assert_false(cl.has_public_key);
	assert_false(cl.has_aes_key);

	rig_sql(g, "DROP TRIGGER no_aes;");
	buf_init(&b, 4096);
	assert_int_equal(msg_put_public_key_request(&b, id, "henry", spki), 0);
	feed(g, &b);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_AES_KEY);
	assert_int_equal(db_client_by_id(g->env.db, id, &cl), 0);
	assert_true(cl.has_public_key);
	assert_true(cl.has_aes_key);
	assert_memory_equal(cl.aes_key, g->c->aes_key, AES_KEY_SIZE);
	rsa_public_free(pub);
	rsa_private_free(priv);
}

/* 826 on the connection that registered the ID stores the key without reading the row first;
 * what the row says still decides: a key stored meanwhile by anyone who knows the ID is never
 * replaced, a row gone (expired) is an unknown ID, another name is refused. 1607 each, and
 * nothing changes. */
static void
test_public_key_on_registering_connection(void **state)
{
	struct rig *g = *state;
	struct rsa_private *priv = NULL;
	struct rsa_public *pub = NULL;
	uint8_t p[512], id[CLIENT_ID_SIZE], id2[CLIENT_ID_SIZE], spki[PUBLIC_KEY_SIZE];
	uint8_t other[PUBLIC_KEY_SIZE], aes[AES_KEY_SIZE];
	size_t at = 0, len, spki_len;
	struct db_client cl;
	struct buf b;

	assert_int_equal(rsa_generate(&priv), 0);
	assert_int_equal(rsa_public_from_private(priv, &pub), 0);
	assert_int_equal(rsa_public_to_spki(pub, spki, sizeof(spki), &spki_len), 0);
	memset(other, 0x5a, sizeof(other));
	memset(aes, 0xa5, sizeof(aes));

	/* Another name on the registering connection: refused. */
	buf_init(&b, 4096);
	put_name(&b, zero_id, REQ_REGISTER, "ivy");
	feed(g, &b);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_REGISTERED);
	memcpy(id, p, CLIENT_ID_SIZE);
	buf_init(&b, 4096);
	assert_int_equal(msg_put_public_key_request(&b, id, "ivy2", spki), 0);
	feed(g, &b);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_ERROR);
	assert_int_equal(db_client_by_id(g->env.db, id, &cl), 0);
	assert_false(cl.has_public_key);

	/* A key stored meanwhile (the ID travels in clear): kept. */
	assert_int_equal(db_client_set_keys(g->env.db, id, other, sizeof(other), aes), 0);
	buf_init(&b, 4096);
	assert_int_equal(msg_put_public_key_request(&b, id, "ivy", spki), 0);
	feed(g, &b);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_ERROR);
	assert_int_equal(db_client_by_id(g->env.db, id, &cl), 0);
	assert_memory_equal(cl.public_key, other, sizeof(other));
	assert_memory_equal(cl.aes_key, aes, sizeof(aes));
	assert_false(g->c->has_key);

	/* The pending row is gone (its name taken over, as db_client_register does): an unknown
	 * ID, nothing stored. */
	buf_init(&b, 4096);
	put_name(&b, zero_id, REQ_REGISTER, "june");
	feed(g, &b);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_REGISTERED);
	memcpy(id, p, CLIENT_ID_SIZE);
	handlers_new_client_id(id2);
	assert_int_equal(db_client_register(g->env.db, "june", id2), 0);
	assert_int_equal(db_client_by_id(g->env.db, id, &cl), SD_ERR_NOT_FOUND);
	buf_init(&b, 4096);
	assert_int_equal(msg_put_public_key_request(&b, id, "june", spki), 0);
	feed(g, &b);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_ERROR);
	assert_int_equal(db_client_by_id(g->env.db, id, &cl), SD_ERR_NOT_FOUND);

	/* Another registration on the same connection: the key goes in at once. */
	buf_init(&b, 4096);
	put_name(&b, zero_id, REQ_REGISTER, "kate");
	feed(g, &b);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_REGISTERED);
	memcpy(id, p, CLIENT_ID_SIZE);
	buf_init(&b, 4096);
	assert_int_equal(msg_put_public_key_request(&b, id, "kate", spki), 0);
	feed(g, &b);
	assert_int_equal(next_reply(g, &at, p, sizeof(p), &len), RESP_AES_KEY);
	assert_int_equal(db_client_by_id(g->env.db, id, &cl), 0);
	assert_memory_equal(cl.public_key, spki, sizeof(spki));
	assert_memory_equal(cl.aes_key, g->c->aes_key, AES_KEY_SIZE);
	rsa_public_free(pub);
	rsa_private_free(priv);
}

/* The detecting transport (both versions on one port) over a socket pair: a version-3
 * request is read whole by the first read, which then leaves the plain transport; a first
 * read too short to tell waits for the rest, and every byte comes out once, in order. */
static void
test_detect_first_read(void **state)
{
	uint8_t req[300], got[CONN_READ_CHUNK];
	struct conn_transport t;
	int sv[2];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(req); i++)
		req[i] = (uint8_t)(i * 7 + 1);
	req[0] = 3;  /* not 0x16: version 3 at once */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(transport_detect(&t, sv[0], NULL), 0);
	assert_int_equal(t.ops->read(&t, got, sizeof(got)), CONN_IO_AGAIN);
	assert_int_equal(write(sv[1], req, sizeof(req)), (ssize_t)sizeof(req));
	assert_int_equal(t.ops->read(&t, got, sizeof(got)), (ssize_t)sizeof(req));
	assert_memory_equal(got, req, sizeof(req));
	assert_null(t.ctx);  /* the plain transport now */
	t.ops->close(&t);
	close(sv[1]);

	/* Three bytes that may start a ClientHello, then the rest that does not. */
	req[0] = 0x16;
	req[1] = 0x03;
	req[2] = 0x01;
	req[5] = 0x02;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(transport_detect(&t, sv[0], NULL), 0);
	assert_int_equal(write(sv[1], req, 3), 3);
	assert_int_equal(t.ops->read(&t, got, sizeof(got)), CONN_IO_AGAIN);
	assert_non_null(t.ctx);
	assert_int_equal(write(sv[1], req + 3, sizeof(req) - 3), (ssize_t)sizeof(req) - 3);
	assert_int_equal(t.ops->read(&t, got, sizeof(got)), (ssize_t)sizeof(req));
	assert_memory_equal(got, req, sizeof(req));
	assert_null(t.ctx);
	t.ops->close(&t);
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_public_key_failure_retry, rig_setup,
		    rig_teardown),
		cmocka_unit_test_setup_teardown(test_public_key_on_registering_connection, rig_setup,
		    rig_teardown),
		cmocka_unit_test(test_detect_first_read),
		cmocka_unit_test_setup_teardown(test_register, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_packet_before_key, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_bad_header_closes, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_eof_closes, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_eof_flushes_first, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_eof_unread_reply_times_out, rig_setup,
		    rig_teardown),
		cmocka_unit_test_setup_teardown(test_linger_until_eof, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_linger_bounds, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_linger_shutdown_again, rig_setup,
		    rig_teardown),
		cmocka_unit_test_setup_teardown(test_idle_timeout, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_partial_message_timeout, rig_setup,
		    rig_teardown),
		cmocka_unit_test_setup_teardown(test_upload_and_verdict, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_new_key_aborts_receive, rig_setup,
		    rig_teardown),
		cmocka_unit_test_setup_teardown(test_slow_content_timeout, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_want_and_pending, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_pending_after_output_drains, rig_setup,
		    rig_teardown),
		cmocka_unit_test(test_ids_never_start_with_0x16),
		cmocka_unit_test_setup_teardown(test_log_cap, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_unconfirmed_never_replaces_verified, rig_setup,
		    rig_teardown),
		cmocka_unit_test_setup_teardown(test_crc_fail_stores_unverified, rig_setup,
		    rig_teardown),
		cmocka_unit_test_setup_teardown(test_intent_failure_changes_nothing, rig_setup,
		    rig_teardown),
		cmocka_unit_test_setup_teardown(test_stale_intent_rolled_forward, rig_setup,
		    rig_teardown),
		cmocka_unit_test_setup_teardown(test_packet_needs_session_key, rig_setup,
		    rig_teardown),
		cmocka_unit_test_setup_teardown(test_refused_attempt_rest_skipped, rig_setup,
		    rig_teardown),
		cmocka_unit_test_setup_teardown(test_pending_belongs_to_its_connection, rig_setup,
		    rig_teardown),
	};

	if (crypto_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
