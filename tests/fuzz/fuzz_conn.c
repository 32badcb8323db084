/* fuzz_conn.c: libFuzzer target for a whole server connection in process: the frame parser,
 * the handlers, the receive, the reassembler, storage and the database, through the in-memory
 * transport of tests/common/mem_conn.h, with a database and a scratch storage folder in
 * memory (/dev/shm when it exists), up to three connections interleaved in one worker's
 * environment. The database is opened once and emptied between inputs (opening and creating
 * the schema took half of each run with ":memory:").
 * The input is a script of operations, each starting with a control byte c:
 *   c & 3 in 0..2: bytes for connection c & 3: a u16 length (little-endian), then that many
 *     bytes (cut short at the end of the input); bit 7 of c: then the peer closes its side.
 *     A connection that closed is replaced by a fresh one on its next bytes.
 *   c & 3 == 3, bit 2 clear: the clock moves ((c >> 3) + 1) * 700 ms and every connection
 *     checks its deadlines (idle timeout, slow content, --min-upload-rate, 901 nudge).
 *   c & 3 == 3, bit 2 set: the AES key of recorded run (c >> 3) % 16 (the fixtures of
 *     ../shared/fixtures/clients) is stored for its client ID and issued on connection
 *     (c >> 7) (as a 1605 would; skipped while that connection is in the middle of a
 *     request, where a 1605 cannot come), so that its recorded 828 packets decrypt and reach storage
 *     and the database (the seeds do this right before the first 828).
 * Invariants checked after every operation (abort on violation): every connection is closed
 * or has output within CONN_OUT_MAX; uploads in progress per client within
 * --max-uploads-per-client, attempts waiting for a 900 at most one per connection; after the
 * input: every Verified = 1 row describes exactly its file (size and cksum), each client's
 * rows within --max-client-storage and --max-client-files, and once every connection is
 * freed no upload slot or staged count left taken and no temporary file left. Seeds: tests/fuzz/seed_fuzz_conn.py. */
#include <dirent.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../protocol/cksum.h"
#include "../../protocol/crypto.h"
#include "../../protocol/frame.h"
#include "../../protocol/hex.h"
#include "../../server/limits.h"
#include "../../server/storage.h"
#include "../common/mem_conn.h"

#define FUZZ_CONNS 3
#define FUZZ_RUNS 16
#define FUZZ_MAX_STORAGE 40000u
#define FUZZ_MAX_FILES 3u
#define FUZZ_MAX_UPLOADS 2u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Client ID and AES key of each recorded run, as in the fixtures' index.json. */
static const char *const runs[FUZZ_RUNS][2] = {
	{ "8a6b169df30f63f3f9fb509d4a2d782d", "5c679d69104ff2da1e01981922d9871284cc5ad0cc0a5f48a293b996b3db0b25" },  /* client-fixed1024-from1/first-run-3000 */
	{ "8a6b169df30f63f3f9fb509d4a2d782d", "ebdd6aa8f4fbcf126208da955cbab824208f285211456c4f33c278ae1dc40079" },  /* client-fixed1024-from1/second-run-3000 */
	{ "14c8d9f5bb6e5b8abe2bdafc3123d873", "0fc4254c0b4ee167533869ef11c798dc2a4c8469c357a925fe7624939a6db1cb" },  /* client-fixed1024-from1/first-run-20000 */
	{ "14c8d9f5bb6e5b8abe2bdafc3123d873", "29ee8d6cb2922d2145a70c973d72fce62862dcc251bd4a9ce0f98be576331691" },  /* client-fixed1024-from1/second-run-20000 */
	{ "cf98ae157c644555d8aeb30ae59d8cd5", "a5b4f6a77511eb5ebea252080dcd010f71d8103711f6e3f929268d5347060312" },  /* client-fixed1024-from0/first-run-3000 */
	{ "cf98ae157c644555d8aeb30ae59d8cd5", "62afbb7c545e76ecd6a86cd350ae4aed2701c9aba4ecff2ffbe2d3e6fc1fa9c3" },  /* client-fixed1024-from0/second-run-3000 */
	{ "3289b06f6d4ddd641cf19d7f5842dbbe", "735178de9a9ee8cbe9fac923615f55bb5cb7057ef0ae1ed2001a8873cc01295a" },  /* client-fixed1024-from0/first-run-20000 */
	{ "3289b06f6d4ddd641cf19d7f5842dbbe", "4b1a34f81b039d7fa16500f2010942d3bb91d0168010aef53fd53fe46db18e0f" },  /* client-fixed1024-from0/second-run-20000 */
	{ "e262404c3ceaa5636c5a58ec99a7e834", "4f46b48f1cf29ee2861fb1816f5b82c359ac2dee8da54158cae894c42264b6be" },  /* client-var8192-from1/first-run-3000 */
	{ "e262404c3ceaa5636c5a58ec99a7e834", "fd15fd7df94feb44c10048207a8bb2e11d4bfc24d20beb2dfe10bdf1b2bfe1c2" },  /* client-var8192-from1/second-run-3000 */
	{ "48447e5e15388e22645086b635719b8a", "c46dcadd1da9d47f40e4ce7cd702fee8ff2e774c99a747318be9c016b6e78cfe" },  /* client-var8192-from1/first-run-20000 */
	{ "48447e5e15388e22645086b635719b8a", "1c509ffb29cc4c2748cab62be2888bf4ad81818f79fdfb31077e50f70ba40d1b" },  /* client-var8192-from1/second-run-20000 */
	{ "da26578801124192f33217e1860d494d", "ec9a51468fff51b47a84024655b5111d0c255f976c5e48c60b2ebb0437a3d547" },  /* client-perpacket-swapped/first-run-3000 */
	{ "da26578801124192f33217e1860d494d", "6d7805733b4d54e465a7e8a00c9dfb5c6762681ede7948dc6f22ba7657f0c951" },  /* client-perpacket-swapped/second-run-3000 */
	{ "378a95ac1a3570bd61c2115742b62833", "be854ad97526114408c5970e2aa2501b1b90294b9a933dae1856909062f90d54" },  /* client-perpacket-swapped/first-run-20000 */
	{ "378a95ac1a3570bd61c2115742b62833", "03108797dd7c19eba85231a8a4a0f4cbf81277b1ce22b374f483d042b444b354" },  /* client-perpacket-swapped/second-run-20000 */
};

static char dir[64];
static char db_file[96];
static sqlite3 *wiper;   /* a second handle on the database, to empty it between inputs */
static struct server_config cfg;
static struct conn_env env;
static struct memc_pipe pipes[FUZZ_CONNS];
static struct conn *conns[FUZZ_CONNS];
static const char *const peers[FUZZ_CONNS] = { "192.0.2.1:1", "192.0.2.1:2", "192.0.2.9:3" };

static void
check(int ok)
{
	if (!ok)
		abort();
}

/* At exit: the database and the scratch folder go. */
static void
cleanup(void)
{
	sqlite3_close(wiper);
	db_close(env.db);
	(void)nftw(dir, memc_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Once: libgcrypt, the storage folder (in memory when /dev/shm exists: fsync is cheap there),
 * the read buffer, the pipes' buffers, the settings. */
static void
init_once(void)
{
	static int done;
	size_t i;

	if (done)
		return;
	done = 1;
	check(crypto_init() == 0);
	snprintf(dir, sizeof(dir), "/dev/shm/sd-fuzz-conn-XXXXXX");
	if (mkdtemp(dir) == NULL) {
		snprintf(dir, sizeof(dir), "/tmp/sd-fuzz-conn-XXXXXX");
		check(mkdtemp(dir) != NULL);
	}
	snprintf(db_file, sizeof(db_file), "%s/fuzz.db", dir);
	check(db_open(db_file, DB_READ_WRITE, &env.db) == 0);
	check(sqlite3_open(db_file, &wiper) == SQLITE_OK);
	check(atexit(cleanup) == 0);
	check((env.rbuf = malloc(CONN_READ_CHUNK)) != NULL);
	for (i = 0; i < FUZZ_CONNS; i++) {
		check((pipes[i].in = malloc(MEMC_IN_MAX)) != NULL);
		check((pipes[i].out = malloc(MEMC_OUT_MAX)) != NULL);
	}
	config_defaults(&cfg);
	cfg.storage_dir = dir;
	cfg.idle_timeout = 10;
	cfg.max_file_size = 1u << 20;
	cfg.max_client_storage = FUZZ_MAX_STORAGE;
	cfg.max_client_files = FUZZ_MAX_FILES;
	cfg.max_uploads_per_client = FUZZ_MAX_UPLOADS;
	cfg.max_registrations = 20;
	cfg.min_rate_grace = 5;
	env.cfg = &cfg;
}

static void
run_id(size_t k, uint8_t id[CLIENT_ID_SIZE])
{
	check(hex_decode(runs[k][0], 2 * CLIENT_ID_SIZE, id, CLIENT_ID_SIZE) == 0);
}

/* The recorded clients, registered under names of their own (the recorded name stays free
 * for the seeds' 825 and 827). */
static void
register_runs(void)
{
	uint8_t id[CLIENT_ID_SIZE];
	char name[32];
	size_t k;

	for (k = 0; k < FUZZ_RUNS; k += 2) {
		run_id(k, id);
		snprintf(name, sizeof(name), "recorded %zu", k / 2);
		check(db_client_register(env.db, name, id) == 0);
	}
}

static void
close_conn(size_t i)
{
	conn_free(conns[i]);
	conns[i] = NULL;
}

static struct conn *
open_conn(size_t i)
{
	struct conn_transport t;

	if (conns[i] != NULL && conns[i]->closing)
		close_conn(i);
	if (conns[i] == NULL) {
		pipes[i].in_len = pipes[i].in_off = pipes[i].slice = pipes[i].out_len = 0;
		pipes[i].eof = pipes[i].closed = 0;
		t.ops = &memc_ops;
		t.fd = -1;
		t.ctx = &pipes[i];
		check((conns[i] = conn_new(&env, &t, peers[i])) != NULL);
	}
	return conns[i];
}

/* Run k's key stored and issued on connection i, as a 1605 would; only between requests (a
 * 1605 answers a whole 827, so no key is ever issued in the middle of a request: issuing one
 * mid-packet ends the receive in a state the wire cannot reach). */
static void
prime_key(size_t k, size_t i)
{
	uint8_t id[CLIENT_ID_SIZE], key[AES_KEY_SIZE];
	char name[32];
	struct conn *c = open_conn(i);

	if (!frame_idle(&c->parser))
		return;
	run_id(k, id);
	check(hex_decode(runs[k][1], 2 * AES_KEY_SIZE, key, AES_KEY_SIZE) == 0);
	check(db_client_set_aes_key(env.db, id, key) == 0);
	snprintf(name, sizeof(name), "recorded %zu", k / 2);
	conn_set_identity(c, id, name, key);
}

/* Feeds n bytes to connection i (the pipe's input starts over each time: everything fed
 * before was read or the connection closed). */
static void
feed(size_t i, const uint8_t *p, size_t n, int eof)
{
	struct conn *c = open_conn(i);
	struct memc_pipe *m = &pipes[i];

	m->in_len = m->in_off = 0;
	memcpy(m->in, p, n);
	m->in_len = n;
	m->eof = eof;
	while (!c->closing && (m->in_off < m->in_len || m->eof)) {
		size_t before = m->in_off;

		conn_on_readable(c);
		m->out_len = 0;  /* the peer reads every reply */
		conn_on_writable(c);
		m->out_len = 0;
		if (m->in_off == before)
			break;
	}
	m->out_len = 0;
	/* A connection that did not read everything is stuck behind its output: as over a
	 * socket, the rest waits; the fuzzer does not resend it. */
}

static void
check_conns(void)
{
	uint8_t id[CLIENT_ID_SIZE];
	size_t i, k;

	for (i = 0; i < FUZZ_CONNS; i++)
		if (conns[i] != NULL && !conns[i]->closing)
			check(buf_len(&conns[i]->out) <= CONN_OUT_MAX);
	for (k = 0; k < FUZZ_RUNS; k += 2) {
		run_id(k, id);
		check(limits_uploads(id) <= FUZZ_MAX_UPLOADS);
		check(limits_staged(id) <= FUZZ_CONNS);  /* one waiting attempt per connection */
	}
}

struct totals {
	uint8_t owner[CLIENT_ID_SIZE];
	uint64_t bytes, files;
};

/* One row: a verified row must describe its file exactly. */
static int
check_row(void *ctx, const struct db_file *f)
{
	struct totals *t = ctx;
	char path[STORAGE_PATH_MAX + 80];
	uint8_t chunk[4096];
	struct cksum ck;
	uint64_t size = 0;
	ssize_t n;
	int fd;

	t->bytes += f->size;
	t->files++;
	if (!f->verified)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", dir, f->path_name);
	check((fd = open(path, O_RDONLY | O_NOFOLLOW)) >= 0);
	cksum_init(&ck);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		cksum_update(&ck, chunk, (size_t)n);
		size += (uint64_t)n;
	}
	close(fd);
	check(n == 0 && size == f->size && cksum_final(&ck) == f->crc);
	return 0;
}

static int
check_client(void *ctx, const struct db_client *cl, long file_count)
{
	struct totals t;

	(void)ctx;
	(void)file_count;
	memset(&t, 0, sizeof(t));
	memcpy(t.owner, cl->id, CLIENT_ID_SIZE);
	check(db_each_file(env.db, cl->id, 0, check_row, &t) == 0);
	check(t.bytes <= FUZZ_MAX_STORAGE && t.files <= FUZZ_MAX_FILES);
	return 0;
}

/* No temporary file anywhere under the storage folder (one level of client folders). */
static void
check_no_partial(void)
{
	char sub[STORAGE_PATH_MAX];
	struct dirent *e, *f;
	DIR *d, *s;

	check((d = opendir(dir)) != NULL);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || e->d_type != DT_DIR)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
		if ((s = opendir(sub)) == NULL)
			continue;
		while ((f = readdir(s)) != NULL)
			check(strncmp(f->d_name, STORAGE_TMP_PREFIX, strlen(STORAGE_TMP_PREFIX)) != 0);
		closedir(s);
	}
	closedir(d);
}

/* Empties the storage folder for the next input. */
static void
clean_storage(void)
{
	char sub[STORAGE_PATH_MAX];
	struct dirent *e;
	DIR *d;

	check((d = opendir(dir)) != NULL);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    e->d_type != DT_DIR)
			continue;  /* the client folders go; the database stays */
		snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
		(void)nftw(sub, memc_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	}
	closedir(d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t id[CLIENT_ID_SIZE];
	size_t off = 0, i, k;

	init_once();
	limits_reset();
	check(sqlite3_exec(wiper, "DELETE FROM files; DELETE FROM clients;", NULL, NULL,
	    NULL) == SQLITE_OK);
	env.now_ms = 1000;
	env.nclosing = 0;
	register_runs();
	while (off < size) {
		uint8_t c = data[off++];

		if ((c & 3) == 3) {
			if (c & 4) {
				prime_key((size_t)(c >> 3) % FUZZ_RUNS, (size_t)(c >> 7));
			} else {
				env.now_ms += ((int64_t)(c >> 3) + 1) * 700;
				for (i = 0; i < FUZZ_CONNS; i++)
					if (conns[i] != NULL)
						(void)conn_check_timeouts(conns[i], env.now_ms);
			}
		} else {
			size_t n;

			if (size - off < 2)
				break;
			n = (size_t)data[off] | (size_t)data[off + 1] << 8;
			off += 2;
			if (n > size - off)
				n = size - off;
			feed((size_t)(c & 3), data + off, n, (c & 0x80) != 0);
			off += n;
		}
		check_conns();
	}
	check(db_each_client(env.db, check_client, NULL) == 0);
	for (i = 0; i < FUZZ_CONNS; i++)
		if (conns[i] != NULL)
			close_conn(i);
	env.nclosing = 0;
	env.npending = 0;
	for (k = 0; k < FUZZ_RUNS; k += 2) {
		run_id(k, id);
		check(limits_uploads(id) == 0);
		check(limits_staged(id) == 0);
	}
	check_no_partial();
	clean_storage();
	return 0;
}
