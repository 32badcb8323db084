/* sdbench.c: the limits that `make bench` compares sealdrop with, measured by one tool in the
 * same run: the cost per GiB of the work a transfer cannot avoid (our AES-256-CBC and cksum,
 * AES-256-GCM as TLS 1.3 records use it, SHA-256, memcpy), of storing bytes into a folder, and
 * of the server's RSA work per key exchange.
 *
 * Usage:
 *   sdbench limits [MIB]           in-memory costs over MIB MiB each (default 1024)
 *   sdbench write DIR MIB [fsync]  write MIB MiB into a new file in DIR (then fsync), remove it
 *   sdbench copy FILE DIR          copy FILE into a new file in DIR, fsync, remove it
 *   sdbench cksum FILE             our cksum over a file (read() included, like GNU cksum)
 *   sdbench keys                   key exchanges (SPKI parse, random key, OAEP wrap) per second
 *   sdbench db DIR N               the database work of N registrations as the server does it
 *                                  (db/, SQLite in a new database in DIR): N 825 INSERTs, then
 *                                  N 826 UPDATEs storing both keys, each its own commit; one
 *                                  connection, so no other writer's changes to read
 *   sdbench touch MIB              touch MIB MiB of new memory once, then free it: in a virtual
 *                                  machine the first touch of a page costs far more than later
 *                                  ones, so the benchmark does this first to measure steady state
 * Every figure line reads "NAME bytes=N cpu=SECONDS wall=SECONDS [extra]": cpu is this
 * process's user + system time (clock_gettime(CLOCK_PROCESS_CPUTIME_ID)), wall the elapsed
 * time; bench/bench.py turns them into seconds per GiB and MB/s. Nothing is asserted here. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "../../db/db.h"
#include "../../protocol/aes.h"
#include "../../protocol/cksum.h"
#include "../../protocol/crypto.h"
#include "../../protocol/err.h"
#include "../../protocol/rsa.h"

#define SLICE (1u << 20)          /* bytes per call: large, as the programs' reads are */
#define SOURCE (64u << 20)        /* the input cycles over this much memory (beyond the caches) */
#define TLS_RECORD 16384u         /* a full TLS 1.3 record's plaintext */
#define GCM_TAG 16u
#define GCM_NONCE 12u
#define TLS_AAD 5u                /* TLS 1.3's additional data: the record header */
#define MIB_MAX (1u << 20)        /* 1 TiB: a bound on the size argument */

struct meter {
	double cpu0, wall0;
};

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void meter_start(struct meter *m)
{
	m->cpu0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
	m->wall0 = clock_s(CLOCK_MONOTONIC);
}

static void meter_print(const struct meter *m, const char *name, uint64_t bytes,
    const char *extra)
{
	printf("%s bytes=%llu cpu=%.6f wall=%.6f%s%s\n", name, (unsigned long long)bytes,
	    clock_s(CLOCK_PROCESS_CPUTIME_ID) - m->cpu0, clock_s(CLOCK_MONOTONIC) - m->wall0,
	    extra[0] ? " " : "", extra);
	fflush(stdout);
}

/* Bytes that no compressor or deduplicator shortens (xorshift64*; the strong RNG would take
 * seconds for SOURCE bytes, and the content does not change any cost measured here). */
static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed | 1, v;
	size_t i;

	for (i = 0; i < n; i += sizeof(v)) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		v = x * 0x2545F4914F6CDD1Dull;
		memcpy(p + i, &v, n - i < sizeof(v) ? n - i : sizeof(v));
	}
}

static int parse_mib(const char *s, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v == 0 || v > MIB_MAX)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* ---- in-memory limits ---- */

/* Every in-memory figure reads `total` bytes from the SOURCE buffer in SLICE pieces, cycling,
 * so its input comes from memory as a program's reads from the page cache do. */
struct mem {
	uint8_t *src;       /* SOURCE random bytes */
	uint8_t *dst;       /* SOURCE + room: ciphertext, copies */
	uint64_t total;
	uint64_t sink;      /* folds outputs so the compiler keeps the work */
};

static int lim_memcpy(struct mem *m)
{
	struct meter t;
	uint64_t done;
	size_t off = 0;

	meter_start(&t);
	for (done = 0; done < m->total; done += SLICE) {
		memcpy(m->dst, m->src + off, SLICE);
		m->sink += m->dst[SLICE - 1];
		off = (off + SLICE) % SOURCE;
	}
	meter_print(&t, "memcpy", done, "");
	return 0;
}

static int lim_cksum(struct mem *m)
{
	struct meter t;
	struct cksum ck;
	uint64_t done;
	size_t off = 0;
	char extra[64];

	cksum_init(&ck);
	meter_start(&t);
	for (done = 0; done < m->total; done += SLICE) {
		cksum_update(&ck, m->src + off, SLICE);
		off = (off + SLICE) % SOURCE;
	}
	snprintf(extra, sizeof(extra), "crc=%u impl=%s", cksum_final(&ck),
	    cksum_has_clmul() ? "pclmul" : "table");
	meter_print(&t, "cksum", done, extra);
	return 0;
}

/* AES-256-CBC through protocol/crypto.c, one stream per pass over SOURCE (encrypt), or the
 * decryption of that stream's ciphertext (padding checked at each pass's end). */
static int lim_aes_cbc(struct mem *m, enum aes_direction dir)
{
	struct aes_cbc *c = NULL;
	struct meter t;
	uint8_t key[AES_KEY_SIZE];
	uint8_t *out = NULL;
	const uint8_t *in;
	size_t off, n, got, in_size;
	uint64_t done = 0;
	int r;

	crypto_random(key, sizeof(key));
	if ((out = malloc(SLICE + AES_BLOCK_SIZE)) == NULL) {
		r = SD_ERR_ALLOC;
		goto out;
	}
	/* The ciphertext of SOURCE, to decrypt, in m->dst. */
	if ((r = aes_cbc_new(&c, key, AES_ENCRYPT)) != 0)
		goto out;
	for (off = 0; off < SOURCE; off += SLICE)
		if ((r = aes_cbc_update(c, m->src + off, SLICE, m->dst + off, &got)) != 0)
			goto out;
	if ((r = aes_cbc_final(c, m->dst + SOURCE, &got)) != 0)
		goto out;
	aes_cbc_free(c);
	c = NULL;
	if ((r = aes_cbc_new(&c, key, dir)) != 0)
		goto out;
	in = dir == AES_ENCRYPT ? m->src : m->dst;
	in_size = dir == AES_ENCRYPT ? SOURCE : SOURCE + AES_BLOCK_SIZE;
	meter_start(&t);
	while (done < m->total) {
		for (off = 0; off < in_size; off += n, done += n) {
			n = in_size - off < SLICE ? in_size - off : SLICE;
			if ((r = aes_cbc_update(c, in + off, n, out, &got)) != 0)
				goto out;
			m->sink += out[0];
		}
		if ((r = aes_cbc_final(c, out, &got)) != 0 || (r = aes_cbc_reset(c)) != 0)
			goto out;
	}
	meter_print(&t, dir == AES_ENCRYPT ? "aes-cbc-encrypt" : "aes-cbc-decrypt", done, "");
out:
	crypto_wipe(key, sizeof(key));
	aes_cbc_free(c);
	free(out);
	return r;
}

/* AES-256-GCM as TLS 1.3 uses it: full 16 KiB records, a 12-byte nonce per record, 5 bytes of
 * additional data, a 16-byte tag; through GnuTLS (the library of version 4's TLS). */
static int lim_aes_gcm(struct mem *m, int encrypt)
{
	gnutls_aead_cipher_hd_t h = NULL;
	gnutls_datum_t k;
	struct meter t;
	uint8_t key[32], nonce[GCM_NONCE], aad[TLS_AAD] = { 0x17, 0x03, 0x03, 0x40, 0x11 };
	uint8_t *ct = NULL, *pt = NULL;
	const size_t ct_rec = TLS_RECORD + GCM_TAG, records = SOURCE / TLS_RECORD;
	size_t i, len;
	uint64_t done = 0;
	int r = SD_ERR_CRYPTO;

	crypto_random(key, sizeof(key));
	k.data = key;
	k.size = sizeof(key);
	memset(nonce, 0, sizeof(nonce));
	if ((ct = malloc(records * ct_rec)) == NULL || (pt = malloc(TLS_RECORD)) == NULL) {
		r = SD_ERR_ALLOC;
		goto out;
	}
	if (gnutls_aead_cipher_init(&h, GNUTLS_CIPHER_AES_256_GCM, &k) < 0)
		goto out;
	/* The records of SOURCE, to decrypt (nonce = record number, as TLS derives it). */
	for (i = 0; i < records; i++) {
		memcpy(nonce, &i, sizeof(i));
		len = ct_rec;
		if (gnutls_aead_cipher_encrypt(h, nonce, sizeof(nonce), aad, sizeof(aad), GCM_TAG,
		    m->src + i * TLS_RECORD, TLS_RECORD, ct + i * ct_rec, &len) < 0 || len != ct_rec)
			goto out;
	}
	meter_start(&t);
	for (i = 0; done < m->total; i = (i + 1) % records, done += TLS_RECORD) {
		memcpy(nonce, &i, sizeof(i));
		if (encrypt) {
			len = ct_rec;
			if (gnutls_aead_cipher_encrypt(h, nonce, sizeof(nonce), aad, sizeof(aad),
			    GCM_TAG, m->src + i * TLS_RECORD, TLS_RECORD, m->dst, &len) < 0)
				goto out;
			m->sink += m->dst[0];
		} else {
			len = TLS_RECORD;
			if (gnutls_aead_cipher_decrypt(h, nonce, sizeof(nonce), aad, sizeof(aad),
			    GCM_TAG, ct + i * ct_rec, ct_rec, pt, &len) < 0)
				goto out;
			m->sink += pt[0];
		}
	}
	meter_print(&t, encrypt ? "aes-gcm-encrypt" : "aes-gcm-decrypt", done,
	    "impl=gnutls record=16384");
	r = 0;
out:
	crypto_wipe(key, sizeof(key));
	if (h != NULL)
		gnutls_aead_cipher_deinit(h);
	free(ct);
	free(pt);
	return r;
}

/* SHA-256 through our crypto_sha256 (libgcrypt), one call per slice, and through GnuTLS's
 * streaming hash (nettle): version 4 hashes the whole file on each side. */
static int lim_sha256(struct mem *m)
{
	gnutls_hash_hd_t h = NULL;
	struct meter t;
	uint8_t md[32];
	uint64_t done;
	size_t off = 0;

	meter_start(&t);
	for (done = 0; done < m->total; done += SLICE) {
		crypto_sha256(m->src + off, SLICE, md);
		m->sink += md[0];
		off = (off + SLICE) % SOURCE;
	}
	meter_print(&t, "sha256-gcrypt", done, "");
	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
		return SD_ERR_CRYPTO;
	meter_start(&t);
	for (done = 0, off = 0; done < m->total; done += SLICE) {
		if (gnutls_hash(h, m->src + off, SLICE) < 0) {
			gnutls_hash_deinit(h, md);
			return SD_ERR_CRYPTO;
		}
		off = (off + SLICE) % SOURCE;
	}
	gnutls_hash_deinit(h, md);
	m->sink += md[0];
	meter_print(&t, "sha256-gnutls", done, "");
	return 0;
}

static int cmd_limits(unsigned mib)
{
	struct mem m;
	int r;

	memset(&m, 0, sizeof(m));
	m.total = (uint64_t)mib << 20;
	m.total = (m.total + SLICE - 1) / SLICE * SLICE;
	if ((m.src = malloc(SOURCE)) == NULL || (m.dst = malloc(SOURCE + SLICE)) == NULL) {
		r = SD_ERR_ALLOC;
		goto out;
	}
	fill(m.src, SOURCE, (uint64_t)getpid());
	memset(m.dst, 0, SOURCE + SLICE);
	if ((r = lim_memcpy(&m)) != 0 || (r = lim_cksum(&m)) != 0 ||
	    (r = lim_aes_cbc(&m, AES_ENCRYPT)) != 0 || (r = lim_aes_cbc(&m, AES_DECRYPT)) != 0 ||
	    (r = lim_aes_gcm(&m, 1)) != 0 || (r = lim_aes_gcm(&m, 0)) != 0 ||
	    (r = lim_sha256(&m)) != 0)
		goto out;
	printf("sink %llu\n", (unsigned long long)(m.sink & 1));
out:
	free(m.src);
	free(m.dst);
	if (r != 0)
		fprintf(stderr, "sdbench: limits: %s\n", sd_strerror(r));
	return r != 0;
}

/* ---- storing bytes ---- */

/* A new file in dir (removed again by the caller); -1 and a message on failure. */
static int new_file(const char *dir, char *path, size_t cap)
{
	int fd, n;

	n = snprintf(path, cap, "%s/.sdbench-%ld-XXXXXX", dir, (long)getpid());
	if (n < 0 || (size_t)n >= cap) {
		fprintf(stderr, "sdbench: path too long: %s\n", dir);
		return -1;
	}
	if ((fd = mkstemp(path)) < 0)
		perror(path);
	return fd;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The same bytes into a new file of dir: what the server's storing costs at least. The wall
 * figure with fsync includes the disk's flush. */
static int cmd_write(const char *dir, unsigned mib, int do_fsync)
{
	struct meter t;
	char path[4096], name[32];
	uint8_t *buf = NULL;
	uint64_t done = 0, total = (uint64_t)mib << 20;
	int fd = -1, rc = 1;

	if ((buf = malloc(SLICE)) == NULL)
		goto out;
	fill(buf, SLICE, (uint64_t)getpid());
	if ((fd = new_file(dir, path, sizeof(path))) < 0)
		goto out;
	meter_start(&t);
	for (; done < total; done += SLICE) {
		buf[0] = (uint8_t)done;  /* no two slices alike */
		if (write_all(fd, buf, SLICE) != 0) {
			perror(path);
			goto out;
		}
	}
	if (do_fsync && fsync(fd) != 0) {
		perror(path);
		goto out;
	}
	snprintf(name, sizeof(name), "write%s", do_fsync ? "-fsync" : "");
	meter_print(&t, name, done, "");
	rc = 0;
out:
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	free(buf);
	return rc;
}

/* FILE copied into a new file of dir with one fsync at the end. */
static int cmd_copy(const char *src, const char *dir)
{
	struct meter t;
	char path[4096];
	uint8_t *buf = NULL;
	uint64_t done = 0;
	ssize_t n;
	int in = -1, fd = -1, rc = 1;

	if ((buf = malloc(SLICE)) == NULL)
		goto out;
	if ((in = open(src, O_RDONLY)) < 0) {
		perror(src);
		goto out;
	}
	if ((fd = new_file(dir, path, sizeof(path))) < 0)
		goto out;
	meter_start(&t);
	while ((n = read(in, buf, SLICE)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror(src);
			goto out;
		}
		if (write_all(fd, buf, (size_t)n) != 0) {
			perror(path);
			goto out;
		}
		done += (uint64_t)n;
	}
	if (fsync(fd) != 0) {
		perror(path);
		goto out;
	}
	meter_print(&t, "copy-fsync", done, "");
	rc = 0;
out:
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	if (in >= 0)
		close(in);
	free(buf);
	return rc;
}

/* Our cksum over a file with read() as GNU cksum reads it, to compare with GNU's. */
static int cmd_cksum(const char *path)
{
	struct meter t;
	struct cksum ck;
	char extra[48];
	uint8_t *buf = NULL;
	uint64_t done = 0;
	ssize_t n;
	int fd = -1, rc = 1;

	if ((buf = malloc(SLICE)) == NULL)
		goto out;
	if ((fd = open(path, O_RDONLY)) < 0) {
		perror(path);
		goto out;
	}
	cksum_init(&ck);
	meter_start(&t);
	while ((n = read(fd, buf, SLICE)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror(path);
			goto out;
		}
		cksum_update(&ck, buf, (size_t)n);
		done += (uint64_t)n;
	}
	snprintf(extra, sizeof(extra), "crc=%u", cksum_final(&ck));
	meter_print(&t, "cksum-file", done, extra);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

/* The RSA work of one 826 or 827 on the server: parse the client's SPKI, draw an AES key, wrap
 * it with OAEP. Repeated for about a second on one core. */
static int cmd_keys(void)
{
	struct rsa_private *priv = NULL;
	struct rsa_public *pub = NULL, *parsed = NULL;
	uint8_t spki[PUBLIC_KEY_SIZE], key[AES_KEY_SIZE], wrapped[WRAPPED_KEY_SIZE];
	struct meter t;
	size_t len = 0;
	unsigned long n = 0;
	double t0;
	char extra[32];
	int r;

	if ((r = rsa_generate(&priv)) != 0 || (r = rsa_public_from_private(priv, &pub)) != 0 ||
	    (r = rsa_public_to_spki(pub, spki, sizeof(spki), &len)) != 0)
		goto out;
	meter_start(&t);
	t0 = clock_s(CLOCK_MONOTONIC);
	while (clock_s(CLOCK_MONOTONIC) - t0 < 1.0) {
		if ((r = rsa_public_from_spki(spki, len, &parsed)) != 0)
			goto out;
		crypto_random(key, sizeof(key));
		r = rsa_oaep_wrap(parsed, key, wrapped);
		rsa_public_free(parsed);
		parsed = NULL;
		if (r != 0)
			goto out;
		n++;
	}
	snprintf(extra, sizeof(extra), "count=%lu", n);
	meter_print(&t, "keys", 0, extra);
out:
	crypto_wipe(key, sizeof(key));
	rsa_public_free(pub);
	rsa_private_free(priv);
	if (r != 0)
		fprintf(stderr, "sdbench: key exchange failed: %s\n", sd_strerror(r));
	return r != 0;
}

/* The database writes of N registrations (db/ on SQLite, in a new database in dir): the 825
 * INSERTs, then the 826 UPDATEs, timed apart; each is one commit, as on the server. */
static int cmd_db(const char *dir, unsigned n)
{
	char path[4096], side[4200], name[64];
	uint8_t (*ids)[CLIENT_ID_SIZE] = NULL;
	uint8_t spki[PUBLIC_KEY_SIZE], aes[AES_KEY_SIZE];
	struct db *db = NULL;
	struct meter t;
	char extra[32];
	unsigned i;
	int r = SD_ERR_ALLOC;

	snprintf(path, sizeof(path), "%s/sdbench-%ld.db", dir, (long)getpid());
	if ((ids = calloc(n, sizeof(*ids))) == NULL || (r = db_open(path, DB_READ_WRITE, &db)) != 0)
		goto out;
	for (i = 0; i < n; i++)
		crypto_random(ids[i], CLIENT_ID_SIZE);
	crypto_random(spki, sizeof(spki));
	crypto_random(aes, sizeof(aes));
	snprintf(extra, sizeof(extra), "count=%u", n);
	meter_start(&t);
	for (i = 0; i < n && r == 0; i++) {
		snprintf(name, sizeof(name), "sdbench %u", i);
		r = db_client_register_conn(db, name, ids[i], NULL);
	}
	if (r != 0)
		goto out;
	meter_print(&t, "db-register", 0, extra);
	meter_start(&t);
	for (i = 0; i < n && r == 0; i++)
		r = db_client_set_keys(db, ids[i], spki, sizeof(spki), aes);
	if (r == 0)
		meter_print(&t, "db-set-keys", 0, extra);
out:
	if (r != 0)
		fprintf(stderr, "sdbench: database: %s (%s)\n", sd_strerror(r), db_errmsg(db));
	db_close(db);
	free(ids);
	unlink(path);
	snprintf(side, sizeof(side), "%s-wal", path);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", path);
	unlink(side);
	return r != 0;
}

/* New memory, touched once per page and freed: what the first use of a page costs. */
static int cmd_touch(unsigned mib)
{
	struct meter t;
	size_t n = (size_t)mib << 20, i;
	volatile uint8_t *p;

	meter_start(&t);
	if ((p = malloc(n)) == NULL) {
		fprintf(stderr, "sdbench: cannot allocate %u MiB\n", mib);
		return 1;
	}
	for (i = 0; i < n; i += 4096)
		p[i] = 1;
	free((void *)p);
	meter_print(&t, "touch", n, "");
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: sdbench limits [MIB] | write DIR MIB [fsync] | copy FILE DIR | "
	    "cksum FILE | keys | db DIR N | touch MIB\n");
	return 2;
}

int main(int argc, char **argv)
{
	unsigned mib = 1024;

	if (argc < 2)
		return usage();
	if (crypto_init() != 0 || gnutls_global_init() < 0) {
		fprintf(stderr, "sdbench: crypto initialisation failed\n");
		return 1;
	}
	if (strcmp(argv[1], "limits") == 0 && argc <= 3) {
		if (argc == 3 && parse_mib(argv[2], &mib) != 0)
			return usage();
		return cmd_limits(mib);
	}
	if (strcmp(argv[1], "write") == 0 && (argc == 4 || argc == 5)) {
		if (parse_mib(argv[3], &mib) != 0 || (argc == 5 && strcmp(argv[4], "fsync") != 0))
			return usage();
		return cmd_write(argv[2], mib, argc == 5);
	}
	if (strcmp(argv[1], "copy") == 0 && argc == 4)
		return cmd_copy(argv[2], argv[3]);
	if (strcmp(argv[1], "cksum") == 0 && argc == 3)
		return cmd_cksum(argv[2]);
	if (strcmp(argv[1], "keys") == 0 && argc == 2)
		return cmd_keys();
	if (strcmp(argv[1], "db") == 0 && argc == 4) {
		unsigned n;

		if (parse_mib(argv[3], &n) != 0)  /* a count, 1 to MIB_MAX, read the same way */
			return usage();
		return cmd_db(argv[2], n);
	}
	if (strcmp(argv[1], "touch") == 0 && argc == 3) {
		if (parse_mib(argv[2], &mib) != 0)
			return usage();
		return cmd_touch(mib);
	}
	return usage();
}
