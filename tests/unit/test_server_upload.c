/* test_server_upload.c: the upload reassembler against the 16 recorded client runs, the Crypto++
 * vectors, uploads built here in every layout, and every inconsistency it must refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../protocol/cksum.h"
#include "../../protocol/aes.h"
#include "../../protocol/crypto.h"
#include "../../protocol/err.h"
#include "../../protocol/msg.h"
#include "../../server/upload.h"
#include "json_mini.h"

#define MAX_FILE (1ull << 30)

static const uint8_t key_a[AES_KEY_SIZE] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
	0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,
	0x1e, 0x1f,
};
static const uint8_t key_b[AES_KEY_SIZE] = { 0xb0, 0x0b, 0x5e, 0xed, 0x42 };

/* A sink that collects the plaintext; it can be told to fail. */
struct collect {
	uint8_t *data;
	size_t len, cap;
	int fail;
	size_t writes;       /* calls that wrote */
	size_t last_write;   /* bytes of the latest one */
	size_t min_write;    /* the smallest before it (0: none yet) */
	size_t max_write;    /* the largest */
};

static int
collect_write(void *ctx, const uint8_t *d, size_t n)
{
	struct collect *c = ctx;
	uint8_t *p;

	if (c->fail)
		return SD_ERR_IO;
	if (c->len + n > c->cap) {
		size_t cap = (c->len + n) * 2 + 64;

		if ((p = realloc(c->data, cap)) == NULL)
			return SD_ERR_ALLOC;
		c->data = p;
		c->cap = cap;
	}
	memcpy(c->data + c->len, d, n);
	c->len += n;
	if (c->writes > 0 && (c->min_write == 0 || c->last_write < c->min_write))
		c->min_write = c->last_write;
	c->writes++;
	c->last_write = n;
	if (n > c->max_write)
		c->max_write = n;
	return 0;
}

/* Deterministic pseudo-random numbers for slicing and test data. */
static uint32_t rng_state = 12345;

static uint32_t
rng(void)
{
	rng_state = rng_state * 1664525u + 1013904223u;
	return rng_state >> 8;
}

/* One packet to feed: its header and its content. */
struct pk {
	struct msg_file_packet h;
	const uint8_t *content;
	uint32_t len;
};

/* Feeds one packet, the content in one slice (max_slice 0) or random slices of 1..max_slice
 * bytes. A packet that opens an upload empties the sink, as the server starts a new file. */
static int
feed(struct upload *u, const struct pk *p, size_t max_slice, struct collect *c, int *complete)
{
	struct upload_sink sink = { collect_write, c };
	size_t off = 0, n;
	int r;

	*complete = 0;
	if ((r = upload_packet_begin(u, &p->h, p->len)) != 0)
		return r;
	if (upload_packet_is_first(u))
		c->len = 0;
	while (off < p->len) {
		n = p->len - off;
		if (max_slice > 0 && n > max_slice)
			n = 1 + rng() % max_slice;
		if ((r = upload_packet_data(u, p->content + off, n, &sink)) != 0)
			return r;
		off += n;
	}
	return upload_packet_end(u, &sink, complete);
}

/* Feeds n packets; 0 only if every packet passed and the last completed the upload. */
static int
feed_all(struct upload *u, const struct pk *pk, size_t n, size_t max_slice, struct collect *c)
{
	size_t i;
	int r, complete = 0;

	for (i = 0; i < n; i++) {
		if ((r = feed(u, &pk[i], max_slice, c, &complete)) != 0)
			return r;
		if (complete != (i + 1 == n))
			return SD_ERR_INTERNAL;
	}
	return 0;
}

static uint8_t *
make_plain(size_t n)
{
	uint8_t *p = malloc(n + 1);
	uint32_t x = (uint32_t)n;
	size_t i;

	assert_non_null(p);
	for (i = 0; i < n; i++) {
		x = x * 1664525u + 1013904223u;
		p[i] = (uint8_t)(x >> 24);
	}
	return p;
}

/* AES-256-CBC (zero IV, PKCS#7) of n bytes, in a new allocation of *ct_len bytes. */
static uint8_t *
encrypt(const uint8_t key[AES_KEY_SIZE], const uint8_t *plain, size_t n, size_t *ct_len)
{
	struct aes_cbc *c = NULL;
	uint8_t *ct = malloc(n + 2 * AES_BLOCK_SIZE);
	size_t a = 0, b = 0;

	assert_non_null(ct);
	assert_int_equal(aes_cbc_new(&c, key, AES_ENCRYPT), 0);
	assert_int_equal(aes_cbc_update(c, plain, n, ct, &a), 0);
	assert_int_equal(aes_cbc_final(c, ct + a, &b), 0);
	aes_cbc_free(c);
	*ct_len = a + b;
	assert_int_equal(*ct_len, (n / 16 + 1) * 16);
	return ct;
}

/* An upload built by a test: packets pointing into mem. */
struct built {
	struct pk *pk;
	size_t n;
	uint8_t *mem;
	size_t ct_total;  /* the ciphertext size the 1603 must report */
};

static void
built_free(struct built *b)
{
	free(b->pk);
	free(b->mem);
	memset(b, 0, sizeof(*b));
}

static void
set_header(struct msg_file_packet *h, uint32_t content_size, uint32_t orig, uint16_t at8,
    uint16_t at10, const char *name)
{
	memset(h, 0, sizeof(*h));
	h->content_size = content_size;
	h->orig_file_size = orig;
	h->packet_number = at8;
	h->total_packets = at10;
	snprintf(h->file_name, sizeof(h->file_name), "%s", name);
}

/* Variants 1-4: one CBC stream cut into psize-byte contents numbered from first; fixed = 1
 * zero-fills the last content to psize (variant 3). */
static void
build_stream(struct built *b, const uint8_t key[AES_KEY_SIZE], const uint8_t *plain, size_t n,
    size_t psize, uint16_t first, int fixed)
{
	size_t ct_len, i, total, mem_len;
	uint8_t *ct = encrypt(key, plain, n, &ct_len);

	total = (ct_len + psize - 1) / psize;
	assert_true(total <= 0xffff);
	mem_len = fixed ? total * psize : ct_len;
	b->mem = calloc(1, mem_len);
	b->pk = calloc(total, sizeof(*b->pk));
	assert_non_null(b->mem);
	assert_non_null(b->pk);
	memcpy(b->mem, ct, ct_len);
	free(ct);
	for (i = 0; i < total; i++) {
		set_header(&b->pk[i].h, (uint32_t)ct_len, (uint32_t)n, (uint16_t)(first + i),
		    (uint16_t)total, "file.bin");
		b->pk[i].content = b->mem + i * psize;
		b->pk[i].len = (uint32_t)(i * psize + psize <= mem_len ? psize : mem_len - i * psize);
	}
	b->n = total;
	b->ct_total = ct_len;
}

/* Variant 5: each chunk-byte piece of plaintext encrypted on its own, total written first. */
static void
build_per_packet(struct built *b, const uint8_t key[AES_KEY_SIZE], const uint8_t *plain,
    size_t n, size_t chunk)
{
	size_t total = n == 0 ? 1 : (n + chunk - 1) / chunk, i, off = 0, ct_len, take;
	uint8_t *ct;

	b->mem = malloc(n + 16 * total);
	b->pk = calloc(total, sizeof(*b->pk));
	assert_non_null(b->mem);
	assert_non_null(b->pk);
	b->ct_total = 0;
	for (i = 0; i < total; i++) {
		take = n - i * chunk < chunk ? n - i * chunk : chunk;
		ct = encrypt(key, plain + i * chunk, take, &ct_len);
		memcpy(b->mem + off, ct, ct_len);
		free(ct);
		set_header(&b->pk[i].h, (uint32_t)ct_len, (uint32_t)n, (uint16_t)total,
		    (uint16_t)(i + 1), "file.bin");
		b->pk[i].content = b->mem + off;
		b->pk[i].len = (uint32_t)ct_len;
		off += ct_len;
		b->ct_total += ct_len;
	}
	b->n = total;
}

/* Feeds b and checks the outcome against plain. */
static void
expect_ok(const struct built *b, const uint8_t *plain, size_t n, size_t max_slice,
    enum upload_layout layout, int first)
{
	struct upload *u = NULL;
	struct collect c = { 0 };
	struct upload_result res;

	assert_int_equal(upload_new(&u, key_a, MAX_FILE), 0);
	assert_int_equal(feed_all(u, b->pk, b->n, max_slice, &c), 0);
	assert_int_equal(upload_in_progress(u), 0);
	assert_int_equal(upload_result(u, &res), 0);
	assert_int_equal(res.plain_size, n);
	assert_int_equal(c.len, n);
	assert_true(n == 0 || memcmp(c.data, plain, n) == 0);
	assert_int_equal(res.cksum, cksum_buffer(plain, n));
	assert_int_equal(res.ciphertext_size, b->ct_total);
	assert_int_equal(res.layout, layout);
	assert_int_equal(res.first_packet_number, first);
	assert_int_equal(res.packets, b->n);
	assert_string_equal(res.file_name, "file.bin");
	upload_free(u);
	free(c.data);
}

/* Feeds b and expects error want (any error if want is 0) with the upload dropped. */
static void
expect_fail(const struct built *b, const uint8_t key[AES_KEY_SIZE], int want)
{
	struct upload *u = NULL;
	struct collect c = { 0 };
	struct upload_result res;
	int r;

	assert_int_equal(upload_new(&u, key, MAX_FILE), 0);
	r = feed_all(u, b->pk, b->n, 0, &c);
	if (want != 0)
		assert_int_equal(r, want);
	else
		assert_true(r < 0 && r != SD_ERR_INTERNAL);
	assert_int_equal(upload_in_progress(u), 0);
	assert_int_equal(upload_result(u, &res), SD_ERR_NOT_FOUND);
	upload_free(u);
	free(c.data);
}

static const char *
fixtures(void)
{
	return json_fixtures_dir();
}

static uint8_t *
read_in(const char *dir, const char *run, const char *file, size_t *len)
{
	char path[1024];
	uint8_t *data;

	snprintf(path, sizeof(path), "%s/clients/%s/%s", dir, run, file);
	data = json_read_file(path, len);
	if (data == NULL)
		fail_msg("cannot read %s", path);
	return data;
}

/* A JSON file of a recorded run, parsed. */
static struct json *
load_in(const char *dir, const char *run, const char *file)
{
	char path[1024];
	struct json *v;

	snprintf(path, sizeof(path), "%s/clients/%s/%s", dir, run, file);
	v = json_load_file(path);
	if (v == NULL)
		fail_msg("cannot read %s", path);
	return v;
}

/* The 828 packets of a recorded run, headers decoded by the protocol library and checked
 * against messages.json. */
static size_t
run_packets(const uint8_t *c2s, size_t c2s_len, const struct json *msgs, struct pk *pk,
    size_t cap)
{
	const struct json *m, *fields, *list;
	const char *name;
	uint64_t code = 0, poff = 0, psize = 0, x = 0;
	size_t n = 0;

	assert_non_null(list = json_get(msgs, "messages"));
	assert_int_equal(list->type, JSON_ARRAY);
	for (m = json_first(list); m != NULL; m = m->next) {
		assert_int_equal(json_u64(json_get(m, "code"), &code), 0);
		assert_non_null(name = json_str(json_get(m, "dir")));
		if (code != REQ_SEND_FILE || strcmp(name, "c2s") != 0)
			continue;
		assert_true(n < cap);
		assert_int_equal(json_u64(json_get(m, "payload_offset"), &poff), 0);
		assert_int_equal(json_u64(json_get(m, "payload_size"), &psize), 0);
		assert_true(psize >= FILE_PACKET_HEADER_SIZE && poff + psize <= c2s_len);
		assert_int_equal(msg_file_packet_decode(c2s + poff, psize, &pk[n].h), 0);
		pk[n].content = c2s + poff + FILE_PACKET_HEADER_SIZE;
		pk[n].len = (uint32_t)(psize - FILE_PACKET_HEADER_SIZE);
		/* The decoder and the independent recorder agree on every field. */
		fields = json_get(m, "fields");
		assert_int_equal(json_u64(json_get(fields, "content_size"), &x), 0);
		assert_int_equal(x, pk[n].h.content_size);
		assert_int_equal(json_u64(json_get(fields, "orig_file_size"), &x), 0);
		assert_int_equal(x, pk[n].h.orig_file_size);
		assert_int_equal(json_u64(json_get(fields, "u16_at_payload_8"), &x), 0);
		assert_int_equal(x, pk[n].h.packet_number);
		assert_int_equal(json_u64(json_get(fields, "u16_at_payload_10"), &x), 0);
		assert_int_equal(x, pk[n].h.total_packets);
		assert_int_equal(json_u64(json_get(fields, "content_offset"), &x), 0);
		assert_int_equal(x, poff + FILE_PACKET_HEADER_SIZE);
		assert_int_equal(json_u64(json_get(fields, "content_length"), &x), 0);
		assert_int_equal(x, pk[n].len);
		assert_non_null(name = json_str(json_get(fields, "file_name")));
		assert_true(strlen(name) < NAME_FIELD_SIZE);
		assert_string_equal(name, pk[n].h.file_name);
		n++;
	}
	return n;
}

/* Every recorded run reassembles to its upload, whole and in random slices. */
static void
test_fixture_runs(void **state)
{
	const char *dir = fixtures();
	char path[1024];
	const char *run, *client, *file;
	struct json *idx, *keys, *msgs;
	const struct json *r, *v;
	uint8_t *c2s, *up;
	size_t c2s_len, up_len, n, mode;
	uint64_t want_cksum = 0, want_packets = 0, want_ct = 0, size = 0;
	uint8_t key[AES_KEY_SIZE], old_key[AES_KEY_SIZE];
	static const size_t slices[] = { 0, 1, 13, 700 };
	struct pk pk[64];
	int runs_done = 0, per_packet_runs = 0;

	(void)state;
	snprintf(path, sizeof(path), "%s/clients/index.json", dir);
	assert_non_null(idx = json_load_file(path));
	for (r = json_first(json_get(idx, "runs")); r != NULL; r = r->next) {
		assert_non_null(run = json_str(json_get(r, "dir")));
		assert_non_null(client = json_str(json_get(r, "client")));
		assert_non_null(file = json_str(json_get(r, "upload_file")));
		assert_int_equal(json_u64(json_get(r, "upload_cksum"), &want_cksum), 0);
		assert_int_equal(json_u64(json_get(r, "upload_size"), &size), 0);
		assert_int_equal(json_u64(json_get(r, "packets_828"), &want_packets), 0);
		assert_int_equal(json_hex(json_get(r, "aes_key"), key, sizeof(key)), 0);
		/* The values the README gives (GNU cksum of the two uploads). */
		assert_int_equal(want_cksum, size == 3000 ? 4281747040u : 1512812613u);

		c2s = read_in(dir, run, "c2s.bin", &c2s_len);
		up = read_in(dir, run, file, &up_len);
		keys = load_in(dir, run, "keys.json");
		msgs = load_in(dir, run, "messages.json");
		assert_int_equal(up_len, size);
		assert_int_equal(json_u64(json_get(json_get(keys, "server_1603"), "content_size"),
		    &want_ct), 0);
		n = run_packets(c2s, c2s_len, msgs, pk, sizeof(pk) / sizeof(pk[0]));
		assert_int_equal(n, want_packets);

		for (mode = 0; mode < sizeof(slices) / sizeof(slices[0]); mode++) {
			struct upload *u = NULL;
			struct collect c = { 0 };
			struct upload_result res;
			int perpacket = strstr(client, "perpacket") != NULL;

			assert_int_equal(upload_new(&u, key, MAX_FILE), 0);
			assert_int_equal(feed_all(u, pk, n, slices[mode], &c), 0);
			assert_int_equal(upload_result(u, &res), 0);
			assert_int_equal(c.len, up_len);
			assert_memory_equal(c.data, up, up_len);
			assert_int_equal(res.cksum, want_cksum);
			assert_int_equal(res.plain_size, size);
			assert_int_equal(res.ciphertext_size, want_ct);
			assert_int_equal(res.ciphertext_size,
			    perpacket ? (size == 3000 ? 3040 : 20320) : (size == 3000 ? 3008 : 20016));
			assert_int_equal(res.layout,
			    perpacket ? UPLOAD_LAYOUT_PER_PACKET : UPLOAD_LAYOUT_STREAM);
			assert_int_equal(res.first_packet_number, strstr(client, "from0") ? 0 : 1);
			assert_int_equal(res.packets, n);
			assert_string_equal(res.file_name, file);
			per_packet_runs += perpacket && mode == 0;
			upload_free(u);
			free(c.data);
		}

		/* The previous run's key must not give the upload back. */
		assert_non_null(v = json_get(keys, "previous_run_aes_key"));
		if (v->type != JSON_NULL) {
			struct upload *u = NULL;
			struct collect c = { 0 };
			int rr;

			assert_int_equal(json_hex(v, old_key, sizeof(old_key)), 0);
			assert_memory_not_equal(old_key, key, sizeof(key));
			assert_int_equal(upload_new(&u, old_key, MAX_FILE), 0);
			rr = feed_all(u, pk, n, 0, &c);
			assert_true(rr == SD_ERR_BAD_PADDING || rr == SD_ERR_BAD_FIELD ||
			    (rr == 0 && (c.len != up_len || memcmp(c.data, up, up_len) != 0)));
			upload_free(u);
			free(c.data);
		}
		free(c2s);
		free(up);
		json_free(keys);
		json_free(msgs);
		runs_done++;
	}
	assert_int_equal(runs_done, 16);
	assert_int_equal(per_packet_runs, 4);
	json_free(idx);
}

/* Crypto++ ciphertexts (key 00..1f) in one packet and in 16-byte packets numbered from 0. */
static void
test_cryptopp_vectors(void **state)
{
	static const struct {
		size_t n;
		uint32_t cksum;
	} vec[] = {
		{ 0, 4294967295u }, { 1, 77606278u }, { 15, 642214337u }, { 16, 3127987311u },
		{ 17, 3640453999u }, { 1000, 2570933978u }, { 3000, 4281747040u },
	};
	char path[1024];
	size_t i, j, ct_len, plain_len;
	uint8_t *ct, *plain;

	(void)state;
	for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		struct built b = { 0 };
		struct upload *u = NULL;
		struct collect c = { 0 };
		struct upload_result res;

		snprintf(path, sizeof(path), "%s/cryptopp/aes-cbc-%zu.bin", fixtures(), vec[i].n);
		assert_non_null(ct = json_read_file(path, &ct_len));
		snprintf(path, sizeof(path), "%s/cryptopp/plain-%zu.bin", fixtures(), vec[i].n);
		assert_non_null(plain = json_read_file(path, &plain_len));
		assert_int_equal(plain_len, vec[i].n);

		b.n = ct_len / 16;
		b.pk = calloc(b.n + 1, sizeof(*b.pk));
		assert_non_null(b.pk);
		for (j = 0; j < b.n; j++) {
			set_header(&b.pk[j].h, (uint32_t)ct_len, (uint32_t)plain_len, (uint16_t)j,
			    (uint16_t)b.n, "file.bin");
			b.pk[j].content = ct + 16 * j;
			b.pk[j].len = 16;
		}
		b.ct_total = ct_len;
		expect_ok(&b, plain, plain_len, 0, UPLOAD_LAYOUT_STREAM, 0);

		/* 1 of 1. */
		assert_int_equal(upload_new(&u, key_a, MAX_FILE), 0);
		set_header(&b.pk[0].h, (uint32_t)ct_len, (uint32_t)plain_len, 1, 1, "file.bin");
		b.pk[0].content = ct;
		b.pk[0].len = (uint32_t)ct_len;
		assert_int_equal(feed_all(u, b.pk, 1, 5, &c), 0);
		assert_int_equal(upload_result(u, &res), 0);
		assert_int_equal(res.cksum, vec[i].cksum);
		assert_int_equal(c.len, plain_len);
		assert_true(plain_len == 0 || memcmp(c.data, plain, plain_len) == 0);
		upload_free(u);
		free(c.data);
		free(b.pk);
		free(ct);
		free(plain);
	}
}

/* Uploads built here in every whole-stream layout, sizes around the block size. */
static void
test_stream_layouts(void **state)
{
	static const size_t sizes[] = { 0, 1, 15, 16, 17, 100, 5000 };
	static const size_t psizes[] = { 1, 7, 16, 1024, 100000 };
	size_t i, j;
	uint16_t first;
	int fixed;

	(void)state;
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t *plain = make_plain(sizes[i]);

		for (j = 0; j < sizeof(psizes) / sizeof(psizes[0]); j++) {
			for (first = 0; first <= 1; first++) {
				for (fixed = 0; fixed <= 1; fixed++) {
					struct built b = { 0 };

					build_stream(&b, key_a, plain, sizes[i], psizes[j], first, fixed);
					/* A lone packet's fill is capped at 64 KiB. */
					if (fixed && b.n == 1 && psizes[j] - b.ct_total > 65536) {
						expect_fail(&b, key_a, SD_ERR_BAD_FIELD);
					} else {
						expect_ok(&b, plain, sizes[i], 0, UPLOAD_LAYOUT_STREAM,
						    first);
						expect_ok(&b, plain, sizes[i], 3, UPLOAD_LAYOUT_STREAM,
						    first);
					}
					built_free(&b);
				}
			}
		}
		free(plain);
	}
}

/* Variant 5 built here, including a file whose first packet's ciphertext size equals the
 * whole-stream size (1030 bytes in 1024-byte chunks: both 1040). */
static void
test_per_packet_layout(void **state)
{
	static const struct {
		size_t n, chunk;
	} cases[] = {
		{ 2, 1 }, { 15, 4 }, { 16, 8 }, { 17, 16 }, { 1030, 1024 }, { 3000, 1024 },
		{ 20000, 1024 }, { 4096, 1024 }, { 200000, 70000 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct built b = { 0 };
		uint8_t *plain = make_plain(cases[i].n);

		build_per_packet(&b, key_a, plain, cases[i].n, cases[i].chunk);
		assert_true(b.n > 1);
		expect_ok(&b, plain, cases[i].n, 0, UPLOAD_LAYOUT_PER_PACKET, 1);
		expect_ok(&b, plain, cases[i].n, 11, UPLOAD_LAYOUT_PER_PACKET, 1);
		built_free(&b);
		free(plain);
	}
}

/* An empty file is one block of padding; nothing reaches the sink. */
static void
test_empty_file(void **state)
{
	struct built b = { 0 };
	struct upload *u = NULL;
	struct collect c = { 0 };
	struct upload_result res;
	uint8_t none[1] = { 0 };

	(void)state;
	build_stream(&b, key_a, none, 0, 1024, 1, 0);
	assert_int_equal(b.n, 1);
	assert_int_equal(b.pk[0].len, 16);
	assert_int_equal(upload_new(&u, key_a, MAX_FILE), 0);
	assert_int_equal(feed_all(u, b.pk, b.n, 0, &c), 0);
	assert_int_equal(upload_result(u, &res), 0);
	assert_int_equal(res.plain_size, 0);
	assert_int_equal(c.len, 0);
	assert_int_equal(res.cksum, 4294967295u);
	assert_int_equal(res.ciphertext_size, 16);
	upload_free(u);
	built_free(&b);
}

/* Packet numbers: out of range, total 0, a first packet numbered 2, a skipped packet. */
static void
test_bad_numbers(void **state)
{
	uint8_t *plain = make_plain(5000);
	struct built b = { 0 };

	(void)state;
	build_stream(&b, key_a, plain, 5000, 1024, 1, 0);
	b.pk[2].h.packet_number = 9;           /* beyond the total */
	expect_fail(&b, key_a, SD_ERR_BAD_FIELD);
	b.pk[2].h.packet_number = 4;           /* skips 3 */
	expect_fail(&b, key_a, SD_ERR_BAD_FIELD);
	b.pk[2].h.packet_number = 3;
	b.pk[2].h.total_packets = 6;           /* the total changes */
	expect_fail(&b, key_a, SD_ERR_BAD_FIELD);
	b.pk[2].h.total_packets = (uint16_t)b.n;
	b.pk[0].h.packet_number = 2;           /* does not start at 0 or 1 */
	expect_fail(&b, key_a, SD_ERR_BAD_FIELD);
	built_free(&b);

	build_stream(&b, key_a, plain, 5000, 1024, 1, 0);
	for (size_t i = 0; i < b.n; i++)
		b.pk[i].h.total_packets = 0;
	expect_fail(&b, key_a, SD_ERR_BAD_FIELD);
	built_free(&b);

	/* Per-packet: a number past the total, then a total of 0. */
	build_per_packet(&b, key_a, plain, 5000, 1024);
	b.pk[3].h.total_packets = 9;           /* per-packet: number at offset 10 */
	expect_fail(&b, key_a, SD_ERR_BAD_FIELD);
	b.pk[3].h.total_packets = 4;
	b.pk[1].h.packet_number = 0;           /* per-packet: total at offset 8 becomes 0 */
	expect_fail(&b, key_a, 0);
	built_free(&b);
	free(plain);
}

/* Name, file size or content_size changing mid-upload. */
static void
test_changes_mid_upload(void **state)
{
	uint8_t *plain = make_plain(5000);
	struct built b = { 0 };

	(void)state;
	build_stream(&b, key_a, plain, 5000, 1024, 1, 0);
	snprintf(b.pk[2].h.file_name, NAME_FIELD_SIZE, "other.bin");
	expect_fail(&b, key_a, SD_ERR_BAD_FIELD);
	snprintf(b.pk[2].h.file_name, NAME_FIELD_SIZE, "file.bin");
	b.pk[3].h.orig_file_size = 4999;
	expect_fail(&b, key_a, SD_ERR_BAD_FIELD);
	b.pk[3].h.orig_file_size = 5000;
	b.pk[4].h.content_size += 16;
	expect_fail(&b, key_a, SD_ERR_BAD_FIELD);
	built_free(&b);

	build_per_packet(&b, key_a, plain, 5000, 1024);
	snprintf(b.pk[2].h.file_name, NAME_FIELD_SIZE, "other.bin");
	expect_fail(&b, key_a, SD_ERR_BAD_FIELD);
	built_free(&b);

	/* An empty name is refused at once. */
	build_stream(&b, key_a, plain, 5000, 1024, 1, 0);
	b.pk[0].h.file_name[0] = '\0';
	expect_fail(&b, key_a, SD_ERR_BAD_STRING);
	built_free(&b);
	free(plain);
}

/* Content beyond what the packet or the file announced. */
static void
test_more_than_announced(void **state)
{
	uint8_t *plain = make_plain(5000), extra[2048] = { 0 };
	struct built b = { 0 };
	struct upload *u = NULL;
	struct collect c = { 0 };
	struct upload_sink sink = { collect_write, &c };
	int complete;

	(void)state;
	/* A slice longer than the packet's content_len. */
	build_stream(&b, key_a, plain, 5000, 1024, 1, 0);
	assert_int_equal(upload_new(&u, key_a, MAX_FILE), 0);
	assert_int_equal(upload_packet_begin(u, &b.pk[0].h, 1024), 0);
	assert_int_equal(upload_packet_data(u, b.pk[0].content, 1000, &sink), 0);
	assert_int_equal(upload_packet_data(u, b.pk[0].content + 1000, 25, &sink),
	    SD_ERR_TOO_LARGE);
	assert_int_equal(upload_in_progress(u), 0);
	assert_int_equal(upload_packet_end(u, &sink, &complete), SD_ERR_INVALID_ARG);
	assert_int_equal(complete, 0);
	upload_free(u);

	/* A content_len past content_size, refused before any byte. */
	c.len = 0;
	assert_int_equal(upload_new(&u, key_a, MAX_FILE), 0);
	assert_int_equal(upload_packet_begin(u, &b.pk[0].h, 5008), SD_ERR_BAD_FIELD);
	assert_int_equal(upload_packet_begin(u, &b.pk[0].h, UINT32_MAX), SD_ERR_BAD_FIELD);
	assert_int_equal(upload_packet_begin(u, &b.pk[0].h, 0), SD_ERR_BAD_FIELD);
	assert_int_equal(c.len, 0);
	upload_free(u);

	/* A middle packet that would fill content_size, leaving nothing for the last. */
	b.pk[1].len = (uint32_t)(b.ct_total - 1024);
	expect_fail(&b, key_a, SD_ERR_BAD_FIELD);
	built_free(&b);

	/* Fill past content_size larger than the sender's packet size. */
	build_stream(&b, key_a, plain, 5000, 1024, 1, 1);
	b.pk[b.n - 1].len = 1040;
	expect_fail(&b, key_a, SD_ERR_BAD_FIELD);
	built_free(&b);

	/* Fill that is not zeros. */
	build_stream(&b, key_a, plain, 5000, 1024, 1, 1);
	b.mem[b.n * 1024 - 1] = 1;
	expect_fail(&b, key_a, SD_ERR_BAD_FIELD);
	built_free(&b);

	/* Per-packet: content_size different from the content, or more than the file needs. */
	build_per_packet(&b, key_a, plain, 5000, 1024);
	b.pk[1].len = 1024;
	expect_fail(&b, key_a, SD_ERR_BAD_FIELD);
	built_free(&b);
	free(c.data);
	build_per_packet(&b, key_a, plain, 3000, 1024);
	memcpy(extra, b.pk[2].content, b.pk[2].len);
	b.pk[2].content = extra;
	b.pk[2].len = b.pk[2].h.content_size = 2048;  /* 952 bytes remain: at most 960 */
	expect_fail(&b, key_a, SD_ERR_BAD_FIELD);
	built_free(&b);
	free(plain);
}

/* Ciphertext sizes that are not whole blocks. */
static void
test_not_whole_blocks(void **state)
{
	uint8_t *plain = make_plain(3000);
	struct built b = { 0 };

	(void)state;
	build_stream(&b, key_a, plain, 3000, 1024, 1, 0);
	for (size_t i = 0; i < b.n; i++)
		b.pk[i].h.content_size = 3001;
	b.pk[b.n - 1].len -= 7;
	expect_fail(&b, key_a, SD_ERR_BAD_FIELD);
	built_free(&b);

	build_per_packet(&b, key_a, plain, 3000, 1024);
	b.pk[0].len = b.pk[0].h.content_size = 1039;
	expect_fail(&b, key_a, SD_ERR_BAD_FIELD);
	built_free(&b);
	free(plain);
}

/* A last packet too short to complete the file, and a packet ended early. */
static void
test_truncated(void **state)
{
	uint8_t *plain = make_plain(3000);
	struct built b = { 0 };
	struct upload *u = NULL;
	struct collect c = { 0 };
	struct upload_sink sink = { collect_write, &c };
	int complete = 7;

	(void)state;
	build_stream(&b, key_a, plain, 3000, 1024, 1, 0);
	b.pk[b.n - 1].len -= 16;
	expect_fail(&b, key_a, SD_ERR_BAD_FIELD);
	b.pk[b.n - 1].len += 16;

	assert_int_equal(upload_new(&u, key_a, MAX_FILE), 0);
	assert_int_equal(upload_packet_begin(u, &b.pk[0].h, b.pk[0].len), 0);
	assert_int_equal(upload_packet_data(u, b.pk[0].content, 100, &sink), 0);
	assert_int_equal(upload_packet_end(u, &sink, &complete), SD_ERR_SHORT);
	assert_int_equal(complete, 0);
	assert_int_equal(upload_in_progress(u), 0);
	/* Data or end without a begun packet are refused. */
	assert_int_equal(upload_packet_data(u, plain, 1, &sink), SD_ERR_INVALID_ARG);
	assert_int_equal(upload_packet_end(u, &sink, &complete), SD_ERR_INVALID_ARG);
	/* A second begin without ending the first. */
	assert_int_equal(upload_packet_begin(u, &b.pk[0].h, b.pk[0].len), 0);
	assert_int_equal(upload_packet_begin(u, &b.pk[1].h, b.pk[1].len), SD_ERR_INVALID_ARG);
	assert_int_equal(upload_in_progress(u), 0);
	upload_free(u);
	free(c.data);
	built_free(&b);
	free(plain);
}

/* orig_file_size over the limit is refused at the first packet. */
static void
test_too_large(void **state)
{
	uint8_t *plain = make_plain(3000);
	struct built b = { 0 };
	struct upload *u = NULL;

	(void)state;
	build_stream(&b, key_a, plain, 3000, 1024, 1, 0);
	assert_int_equal(upload_new(&u, key_a, 2999), 0);
	assert_int_equal(upload_packet_begin(u, &b.pk[0].h, b.pk[0].len), SD_ERR_TOO_LARGE);
	assert_int_equal(upload_in_progress(u), 0);
	upload_free(u);
	assert_int_equal(upload_new(&u, key_a, 3000), 0);
	assert_int_equal(upload_packet_begin(u, &b.pk[0].h, b.pk[0].len), 0);
	upload_free(u);
	built_free(&b);

	/* The largest size the format allows, over a 1 GiB limit. */
	{
		struct msg_file_packet h;

		set_header(&h, 0, UINT32_MAX, 1, 2, "big");
		assert_int_equal(upload_new(&u, key_a, MAX_FILE), 0);
		assert_int_equal(upload_packet_begin(u, &h, 1024), SD_ERR_TOO_LARGE);
		upload_free(u);
	}
	free(plain);
}

/* A resend after 901: a new first packet replaces the attempt in progress. */
static void
test_restart(void **state)
{
	uint8_t *plain = make_plain(5000);
	struct built b = { 0 }, again = { 0 };
	struct upload *u = NULL;
	struct collect c = { 0 };
	struct upload_result res;
	int complete, variant;

	(void)state;
	for (variant = 0; variant < 3; variant++) {
		if (variant == 2)
			build_per_packet(&b, key_a, plain, 5000, 1024);
		else
			build_stream(&b, key_a, plain, 5000, 1024, (uint16_t)variant, 0);
		assert_int_equal(upload_new(&u, key_a, MAX_FILE), 0);
		assert_int_equal(feed(u, &b.pk[0], 0, &c, &complete), 0);
		assert_int_equal(feed(u, &b.pk[1], 0, &c, &complete), 0);
		assert_int_equal(upload_in_progress(u), 1);
		/* Plaintext gathers until the upload ends or 60 KiB wait: nothing written yet. */
		assert_int_equal(c.len, 0);
		assert_int_equal(feed_all(u, b.pk, b.n, 0, &c), 0);
		assert_int_equal(upload_result(u, &res), 0);
		assert_int_equal(res.packets, b.n);
		assert_int_equal(c.len, 5000);
		assert_memory_equal(c.data, plain, 5000);
		assert_int_equal(res.cksum, cksum_buffer(plain, 5000));
		/* And the next file after a complete one. */
		build_stream(&again, key_a, plain, 4000, 100, 1, 0);
		assert_int_equal(feed_all(u, again.pk, again.n, 0, &c), 0);
		assert_int_equal(upload_result(u, &res), 0);
		assert_int_equal(res.plain_size, 4000);
		assert_int_equal(res.cksum, cksum_buffer(plain, 4000));
		upload_free(u);
		built_free(&b);
		built_free(&again);
	}
	free(c.data);
	free(plain);
}

/* Wrong key, bad padding, and plaintext of another size than announced. */
static void
test_bad_plaintext(void **state)
{
	uint8_t *plain = make_plain(5000), *ct, block[48];
	struct built b = { 0 };
	struct upload *u = NULL;
	struct collect c = { 0 };
	size_t ct_len;
	int r;

	(void)state;
	/* Another key: the padding check fails, or the bytes differ. */
	build_stream(&b, key_a, plain, 5000, 1024, 1, 0);
	assert_int_equal(upload_new(&u, key_b, MAX_FILE), 0);
	r = feed_all(u, b.pk, b.n, 0, &c);
	assert_true(r == SD_ERR_BAD_PADDING || r == SD_ERR_BAD_FIELD ||
	    (r == 0 && memcmp(c.data, plain, 5000) != 0));
	upload_free(u);
	built_free(&b);

	/* 32 bytes encrypted whose last block decrypts to zeros: padding byte 0 is invalid. */
	memset(block, 0, sizeof(block));
	memcpy(block, plain, 16);
	ct = encrypt(key_a, block, 32, &ct_len);
	b.n = 1;
	b.pk = calloc(1, sizeof(*b.pk));
	assert_non_null(b.pk);
	set_header(&b.pk[0].h, 32, 16, 1, 1, "file.bin");
	b.pk[0].content = ct;
	b.pk[0].len = 32;
	expect_fail(&b, key_a, SD_ERR_BAD_PADDING);
	/* Per-packet: the same bad block as the second packet's content. */
	free(b.pk);
	b.pk = NULL;
	build_per_packet(&b, key_a, plain, 32, 16);
	b.pk[1].content = ct;
	expect_fail(&b, key_a, SD_ERR_BAD_PADDING);
	built_free(&b);
	free(ct);

	/* 20 bytes of plaintext announced as 30 (same ciphertext size): short at the end. */
	build_stream(&b, key_a, plain, 20, 16, 1, 0);
	for (size_t i = 0; i < b.n; i++)
		b.pk[i].h.orig_file_size = 30;
	expect_fail(&b, key_a, SD_ERR_BAD_FIELD);
	/* ... and as 17: more plaintext than announced. */
	for (size_t i = 0; i < b.n; i++)
		b.pk[i].h.orig_file_size = 17;
	expect_fail(&b, key_a, SD_ERR_BAD_FIELD);
	built_free(&b);

	/* Per-packet that delivers less than orig_file_size. */
	build_per_packet(&b, key_a, plain, 3000, 1024);
	for (size_t i = 0; i < b.n; i++)
		b.pk[i].h.orig_file_size = 3010;
	expect_fail(&b, key_a, SD_ERR_BAD_FIELD);
	built_free(&b);
	free(c.data);
	free(plain);
}

/* A file larger than the decrypt buffer, in packets larger than it and in one slice. */
static void
test_large_packets(void **state)
{
	size_t n = (1u << 20) + 5;
	uint8_t *plain = make_plain(n);
	struct built b = { 0 };

	(void)state;
	build_stream(&b, key_a, plain, n, 200000, 1, 0);
	expect_ok(&b, plain, n, 0, UPLOAD_LAYOUT_STREAM, 1);
	built_free(&b);
	build_stream(&b, key_a, plain, n, 300000, 0, 1);
	expect_ok(&b, plain, n, 0, UPLOAD_LAYOUT_STREAM, 0);
	built_free(&b);
	free(plain);
}

/* A socket read holds the end of one packet and the start of the next: the plaintext of both
 * goes to the sink in one write, so a 1 MiB upload in 64 KiB packets, fed in 64 KiB slices
 * that straddle the packets, takes 18 writes of 60 KiB or more (the last one shorter), not
 * one per piece (32). */
static void
test_writes_gathered(void **state)
{
	size_t n = 1u << 20;
	uint8_t *plain = make_plain(n);
	struct built b = { 0 };
	struct upload *u = NULL;
	struct collect c = { 0 };
	struct upload_result res;

	(void)state;
	build_stream(&b, key_a, plain, n, 65536, 1, 0);
	assert_int_equal(upload_new(&u, key_a, MAX_FILE), 0);
	assert_int_equal(feed_all(u, b.pk, b.n, 65536 - 1000, &c), 0);
	assert_int_equal(upload_result(u, &res), 0);
	assert_int_equal(c.len, n);
	assert_memory_equal(c.data, plain, n);
	assert_true(c.writes <= n / (60u * 1024) + 1);
	assert_true(c.min_write >= 60u * 1024);
	upload_free(u);
	built_free(&b);
	free(c.data);
	free(plain);
}

/* Per-packet senders (layout 5) end a CBC message in every packet: a packet of 70,001 bytes
 * leaves 1 byte of its last block, so the gathered plaintext is off the 16-byte grid, and a
 * read of 16 KiB can release a held-back block when the buffer is nearly full. The buffer must
 * be written before it could overflow (the room test once wrapped below zero and the next
 * piece went past the buffer: a heap overflow under AddressSanitizer, found in review); no
 * write is larger than the buffer. */
static void
test_per_packet_odd_sizes_in_slices(void **state)
{
	size_t n = 400000, i, off, k;
	uint8_t *plain = make_plain(n);
	struct built b = { 0 };
	struct upload *u = NULL;
	struct collect c = { 0 };
	struct upload_sink sink = { collect_write, &c };
	struct upload_result res;
	int complete = 0, r = 0;

	(void)state;
	build_per_packet(&b, key_a, plain, n, 70001);
	assert_int_equal(upload_new(&u, key_a, MAX_FILE), 0);
	for (i = 0; i < b.n && r == 0; i++) {
		assert_int_equal(upload_packet_begin(u, &b.pk[i].h, b.pk[i].len), 0);
		for (off = 0; off < b.pk[i].len && r == 0; off += k) {
			k = b.pk[i].len - off < 16384 ? b.pk[i].len - off : 16384;
			r = upload_packet_data(u, b.pk[i].content + off, k, &sink);
		}
		if (r == 0)
			r = upload_packet_end(u, &sink, &complete);
	}
	assert_int_equal(r, 0);
	assert_int_equal(complete, 1);
	assert_int_equal(upload_result(u, &res), 0);
	assert_int_equal(res.plain_size, n);
	assert_int_equal(c.len, n);
	assert_memory_equal(c.data, plain, n);
	assert_true(c.max_write <= 64u * 1024 + 16);
	upload_free(u);
	built_free(&b);
	free(c.data);
	free(plain);
}

/* Sink failure, key change and abort all drop the upload; the next one works. */
static void
test_sink_key_abort(void **state)
{
	uint8_t *plain = make_plain(3000);
	struct built b = { 0 };
	struct upload *u = NULL;
	struct collect c = { 0 };
	struct upload_result res;
	int complete;

	(void)state;
	assert_int_equal(upload_new(NULL, key_a, MAX_FILE), SD_ERR_INVALID_ARG);
	upload_free(NULL);
	upload_abort(NULL);
	assert_int_equal(upload_in_progress(NULL), 0);

	build_stream(&b, key_a, plain, 3000, 1024, 1, 0);
	assert_int_equal(upload_new(&u, key_a, MAX_FILE), 0);
	assert_int_equal(upload_result(u, &res), SD_ERR_NOT_FOUND);

	/* The write happens when the upload ends (3000 bytes gather in memory): it fails there. */
	c.fail = 1;
	assert_int_equal(feed(u, &b.pk[0], 0, &c, &complete), 0);
	assert_int_equal(feed(u, &b.pk[1], 0, &c, &complete), 0);
	assert_int_equal(feed(u, &b.pk[2], 0, &c, &complete), SD_ERR_IO);
	assert_int_equal(complete, 0);
	assert_int_equal(upload_in_progress(u), 0);
	assert_int_equal(upload_result(u, &res), SD_ERR_NOT_FOUND);
	c.fail = 0;

	/* A new key is a new reassembler (the server's receive); dropping the old one's upload
	 * is upload_abort. */
	assert_int_equal(feed(u, &b.pk[0], 0, &c, &complete), 0);
	upload_abort(u);
	assert_int_equal(upload_in_progress(u), 0);
	/* The continuation alone is no longer an upload. */
	assert_int_equal(feed(u, &b.pk[1], 0, &c, &complete), SD_ERR_BAD_FIELD);

	assert_int_equal(feed(u, &b.pk[0], 0, &c, &complete), 0);
	upload_abort(u);
	assert_int_equal(upload_in_progress(u), 0);
	assert_int_equal(feed_all(u, b.pk, b.n, 0, &c), 0);
	assert_int_equal(upload_result(u, &res), 0);
	assert_memory_equal(c.data, plain, 3000);
	upload_free(u);
	built_free(&b);
	free(c.data);
	free(plain);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixture_runs),
		cmocka_unit_test(test_cryptopp_vectors),
		cmocka_unit_test(test_stream_layouts),
		cmocka_unit_test(test_per_packet_layout),
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_bad_numbers),
		cmocka_unit_test(test_changes_mid_upload),
		cmocka_unit_test(test_more_than_announced),
		cmocka_unit_test(test_not_whole_blocks),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_restart),
		cmocka_unit_test(test_bad_plaintext),
		cmocka_unit_test(test_large_packets),
		cmocka_unit_test(test_sink_key_abort),
		cmocka_unit_test(test_writes_gathered),
		cmocka_unit_test(test_per_packet_odd_sizes_in_slices),
	};

	if (crypto_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
