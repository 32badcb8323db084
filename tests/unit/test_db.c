/* test_db.c: the SQLite store (db/db.h) on ":memory:" and on temporary files: registration
 * rules, keys, files, iteration, read-only use, foreign files and two writers at once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "../../db/db.h"
#include "../../protocol/err.h"

#define THREAD_NAMES 40

struct tmp {
	char dir[64];
	char path[128];
};

static void
tmp_make(struct tmp *t)
{
	snprintf(t->dir, sizeof(t->dir), "/tmp/sd-test-db-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/defensive.db", t->dir);
}

static void
tmp_remove(struct tmp *t)
{
	static const char *const suffix[] = { "", "-wal", "-shm", "-journal" };
	char p[160];
	size_t i;

	for (i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", t->path, suffix[i]);
		unlink(p);
	}
	rmdir(t->dir);
}

static void
make_id(uint8_t id[CLIENT_ID_SIZE], uint8_t seed)
{
	size_t i;

	for (i = 0; i < CLIENT_ID_SIZE; i++)
		id[i] = (uint8_t)(seed * 31u + i * 7u + 1u);
}

/* Runs SQL directly on a file, outside the db API (to prepare odd states). */
static void
raw_sql(const char *path, const char *sql)
{
	sqlite3 *s = NULL;

	assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
	assert_int_equal(sqlite3_exec(s, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(s);
}

static void
test_register_and_lookup(void **state)
{
	struct db *db = NULL;
	struct db_client c;
	uint8_t id[CLIENT_ID_SIZE], other[CLIENT_ID_SIZE];
	time_t before = time(NULL);

	(void)state;
	make_id(id, 1);
	make_id(other, 2);
	assert_int_equal(db_open(":memory:", DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_by_name(db, "alice", &c), SD_ERR_NOT_FOUND);
	assert_int_equal(db_client_register(db, "alice", id), 0);

	assert_int_equal(db_client_by_name(db, "alice", &c), 0);
	assert_memory_equal(c.id, id, CLIENT_ID_SIZE);
	assert_string_equal(c.name, "alice");
	assert_false(c.has_public_key);
	assert_false(c.has_aes_key);
	assert_true(c.last_seen >= (int64_t)before);

	assert_int_equal(db_client_by_id(db, id, &c), 0);
	assert_string_equal(c.name, "alice");
	assert_int_equal(db_client_by_id(db, other, &c), SD_ERR_NOT_FOUND);
	/* Names are exact: no case folding, no prefix match. */
	assert_int_equal(db_client_by_name(db, "Alice", &c), SD_ERR_NOT_FOUND);
	assert_int_equal(db_client_by_name(db, "alic", &c), SD_ERR_NOT_FOUND);
	db_close(db);
}

static void
test_name_rules(void **state)
{
	struct db *db = NULL;
	struct db_client c;
	uint8_t id1[CLIENT_ID_SIZE], id2[CLIENT_ID_SIZE], id3[CLIENT_ID_SIZE];
	uint8_t key[PUBLIC_KEY_SIZE];
	char longname[NAME_FIELD_SIZE + 2];

	(void)state;
	make_id(id1, 1);
	make_id(id2, 2);
	make_id(id3, 3);
	memset(key, 0x30, sizeof(key));
	assert_int_equal(db_open(":memory:", DB_READ_WRITE, &db), 0);

	/* A pending name (no key yet) is registered afresh: the old ID is gone. */
	assert_int_equal(db_client_register(db, "bob", id1), 0);
	assert_int_equal(db_client_register(db, "bob", id2), 0);
	assert_int_equal(db_client_by_id(db, id1, &c), SD_ERR_NOT_FOUND);
	assert_int_equal(db_client_by_name(db, "bob", &c), 0);
	assert_memory_equal(c.id, id2, CLIENT_ID_SIZE);

	/* Once the name has a key it is taken, and nothing changes. */
	assert_int_equal(db_client_set_public_key(db, id2, key, sizeof(key)), 0);
	assert_int_equal(db_client_register(db, "bob", id3), SD_ERR_EXISTS);
	assert_int_equal(db_client_by_id(db, id3, &c), SD_ERR_NOT_FOUND);
	assert_int_equal(db_client_by_name(db, "bob", &c), 0);
	assert_memory_equal(c.id, id2, CLIENT_ID_SIZE);

	/* An ID already in use under another name is refused too. */
	assert_int_equal(db_client_register(db, "carol", id2), SD_ERR_EXISTS);
	assert_int_equal(db_client_by_name(db, "carol", &c), SD_ERR_NOT_FOUND);

	/* Names must fit the protocol's string field. */
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(db_client_register(db, longname, id3), SD_ERR_INVALID_ARG);
	longname[NAME_MAX_LEN] = '\0';
	assert_int_equal(db_client_register(db, longname, id3), 0);
	assert_int_equal(db_client_by_name(db, longname, &c), 0);
	assert_int_equal(strlen(c.name), NAME_MAX_LEN);
	assert_int_equal(db_client_register(db, "", id1), SD_ERR_INVALID_ARG);
	db_close(db);
}

static void
test_keys(void **state)
{
	struct db *db = NULL;
	struct db_client c;
	uint8_t id[CLIENT_ID_SIZE], unknown[CLIENT_ID_SIZE];
	uint8_t key[PUBLIC_KEY_SIZE], key2[PUBLIC_KEY_SIZE], aes[AES_KEY_SIZE], aes2[AES_KEY_SIZE];
	size_t i;

	(void)state;
	make_id(id, 4);
	make_id(unknown, 5);
	for (i = 0; i < sizeof(key); i++) {
		key[i] = (uint8_t)i;
		key2[i] = (uint8_t)(255 - i);
	}
	for (i = 0; i < sizeof(aes); i++) {
		aes[i] = (uint8_t)(i * 3);
		aes2[i] = (uint8_t)(i * 5 + 1);
	}
	assert_int_equal(db_open(":memory:", DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_set_public_key(db, unknown, key, sizeof(key)), SD_ERR_NOT_FOUND);
	assert_int_equal(db_client_set_aes_key(db, unknown, aes), SD_ERR_NOT_FOUND);
	assert_int_equal(db_client_register(db, "dave", id), 0);

	assert_int_equal(db_client_set_public_key(db, id, key, sizeof(key)), 0);
	/* A key is never replaced. */
	assert_int_equal(db_client_set_public_key(db, id, key2, sizeof(key2)), SD_ERR_EXISTS);
	assert_int_equal(db_client_by_id(db, id, &c), 0);
	assert_true(c.has_public_key);
	assert_int_equal(c.public_key_len, sizeof(key));
	assert_memory_equal(c.public_key, key, sizeof(key));
	assert_int_equal(db_client_set_public_key(db, id, key, PUBLIC_KEY_SIZE + 1),
	    SD_ERR_INVALID_ARG);

	/* The AES key is the latest one issued. */
	assert_int_equal(db_client_set_aes_key(db, id, aes), 0);
	assert_int_equal(db_client_by_name(db, "dave", &c), 0);
	assert_true(c.has_aes_key);
	assert_memory_equal(c.aes_key, aes, sizeof(aes));
	assert_int_equal(db_client_set_aes_key(db, id, aes2), 0);
	assert_int_equal(db_client_by_name(db, "dave", &c), 0);
	assert_memory_equal(c.aes_key, aes2, sizeof(aes2));

	/* Both keys at once (826): never over a stored public key, and then nothing changes. */
	assert_int_equal(db_client_set_keys(db, unknown, key, sizeof(key), aes), SD_ERR_NOT_FOUND);
	assert_int_equal(db_client_set_keys(db, id, key2, sizeof(key2), aes), SD_ERR_EXISTS);
	assert_int_equal(db_client_by_name(db, "dave", &c), 0);
	assert_memory_equal(c.public_key, key, sizeof(key));
	assert_memory_equal(c.aes_key, aes2, sizeof(aes2));
	assert_int_equal(db_client_register(db, "erin", unknown), 0);
	assert_int_equal(db_client_set_keys(db, unknown, key2, sizeof(key2), aes), 0);
	assert_int_equal(db_client_by_name(db, "erin", &c), 0);
	assert_true(c.has_public_key && c.has_aes_key);
	assert_memory_equal(c.public_key, key2, sizeof(key2));
	assert_memory_equal(c.aes_key, aes, sizeof(aes));
	db_close(db);
}

static void
test_touch(void **state)
{
	struct tmp t;
	struct db *db = NULL;
	struct db_client c;
	uint8_t id[CLIENT_ID_SIZE], unknown[CLIENT_ID_SIZE];
	time_t before;

	(void)state;
	tmp_make(&t);
	make_id(id, 6);
	make_id(unknown, 7);
	assert_int_equal(db_open(t.path, DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_register(db, "erin", id), 0);
	db_close(db);
	/* Move LastSeen into the past behind the API's back, then touch. */
	raw_sql(t.path, "UPDATE clients SET LastSeen = '2001-02-03 04:05:06'");
	assert_int_equal(db_open(t.path, DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_by_name(db, "erin", &c), 0);
	assert_int_equal(c.last_seen, 981173106);
	before = time(NULL);
	assert_int_equal(db_client_touch(db, id), 0);
	assert_int_equal(db_client_by_name(db, "erin", &c), 0);
	assert_true(c.last_seen >= (int64_t)before);
	assert_int_equal(db_client_touch(db, unknown), SD_ERR_NOT_FOUND);
	db_close(db);

	/* The stored form is readable text in UTC. */
	{
		sqlite3 *s = NULL;
		sqlite3_stmt *st = NULL;
		const char *txt;

		assert_int_equal(sqlite3_open(t.path, &s), SQLITE_OK);
		assert_int_equal(sqlite3_prepare_v2(s, "SELECT typeof(LastSeen), LastSeen FROM clients",
		    -1, &st, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(st, 0), "text");
		txt = (const char *)sqlite3_column_text(st, 1);
		assert_int_equal(strlen(txt), 19);
		assert_true(txt[4] == '-' && txt[10] == ' ' && txt[13] == ':');
		sqlite3_finalize(st);
		sqlite3_close(s);
	}
	tmp_remove(&t);
}

static void
fill_file(struct db_file *f, const uint8_t owner[CLIENT_ID_SIZE], const char *name,
    uint64_t size, uint32_t crc)
{
	memset(f, 0, sizeof(*f));
	memcpy(f->owner, owner, CLIENT_ID_SIZE);
	snprintf(f->file_name, sizeof(f->file_name), "%s", name);
	snprintf(f->path_name, sizeof(f->path_name), "owner/%s", name);
	f->size = size;
	f->crc = crc;
}

static void
test_files(void **state)
{
	struct db *db = NULL;
	struct db_file f, g;
	uint8_t id[CLIENT_ID_SIZE], unknown[CLIENT_ID_SIZE];
	time_t before = time(NULL);

	(void)state;
	make_id(id, 8);
	make_id(unknown, 9);
	assert_int_equal(db_open(":memory:", DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_register(db, "frank", id), 0);

	fill_file(&f, unknown, "a.txt", 10, 1);
	assert_int_equal(db_file_record(db, &f), SD_ERR_NOT_FOUND);
	assert_int_equal(db_file_get(db, unknown, "a.txt", &g), SD_ERR_NOT_FOUND);

	fill_file(&f, id, "a.txt", 5000000000ull, 4294967295u);
	assert_int_equal(db_file_record(db, &f), 0);
	assert_int_equal(db_file_get(db, id, "a.txt", &g), 0);
	assert_memory_equal(g.owner, id, CLIENT_ID_SIZE);
	assert_string_equal(g.owner_name, "frank");
	assert_string_equal(g.file_name, "a.txt");
	assert_string_equal(g.path_name, "owner/a.txt");
	assert_int_equal(g.size, 5000000000ull);
	assert_int_equal(g.crc, 4294967295u);
	assert_false(g.verified);
	assert_true(g.uploaded >= (int64_t)before);

	assert_int_equal(db_file_set_verified(db, id, "a.txt", 1), 0);
	assert_int_equal(db_file_get(db, id, "a.txt", &g), 0);
	assert_true(g.verified);
	assert_int_equal(db_file_set_verified(db, id, "b.txt", 1), SD_ERR_NOT_FOUND);

	/* Recording again replaces the row and starts unverified. */
	fill_file(&f, id, "a.txt", 7, 12345);
	f.uploaded = 1000000000;
	assert_int_equal(db_file_record(db, &f), 0);
	assert_int_equal(db_file_get(db, id, "a.txt", &g), 0);
	assert_false(g.verified);
	assert_int_equal(g.size, 7);
	assert_int_equal(g.crc, 12345);
	assert_int_equal(g.uploaded, 1000000000);
	db_close(db);
}

struct collect {
	int clients;
	long files_of[8];
	char names[8][NAME_FIELD_SIZE];
	int files;
	int stop_after;
};

static int
collect_client(void *ctx, const struct db_client *c, long file_count)
{
	struct collect *k = ctx;

	if (k->clients < 8) {
		k->files_of[k->clients] = file_count;
		snprintf(k->names[k->clients], NAME_FIELD_SIZE, "%s", c->name);
	}
	k->clients++;
	return k->stop_after != 0 && k->clients >= k->stop_after ? 42 : 0;
}

static int
collect_file(void *ctx, const struct db_file *f)
{
	struct collect *k = ctx;

	(void)f;
	k->files++;
	return k->stop_after != 0 && k->files >= k->stop_after ? 43 : 0;
}

static void
test_iteration(void **state)
{
	struct db *db = NULL;
	struct db_file f;
	struct collect k;
	uint8_t a[CLIENT_ID_SIZE], b[CLIENT_ID_SIZE], c[CLIENT_ID_SIZE];

	(void)state;
	make_id(a, 10);
	make_id(b, 11);
	make_id(c, 12);
	assert_int_equal(db_open(":memory:", DB_READ_WRITE, &db), 0);
	memset(&k, 0, sizeof(k));
	assert_int_equal(db_each_client(db, collect_client, &k), 0);
	assert_int_equal(k.clients, 0);

	assert_int_equal(db_client_register(db, "zed", a), 0);
	assert_int_equal(db_client_register(db, "amy", b), 0);
	assert_int_equal(db_client_register(db, "kim", c), 0);
	fill_file(&f, a, "1", 1, 1);
	assert_int_equal(db_file_record(db, &f), 0);
	fill_file(&f, a, "2", 2, 2);
	assert_int_equal(db_file_record(db, &f), 0);
	fill_file(&f, b, "3", 3, 3);
	assert_int_equal(db_file_record(db, &f), 0);
	assert_int_equal(db_file_set_verified(db, a, "2", 1), 0);

	memset(&k, 0, sizeof(k));
	assert_int_equal(db_each_client(db, collect_client, &k), 0);
	assert_int_equal(k.clients, 3);
	/* By name: amy, kim, zed. */
	assert_string_equal(k.names[0], "amy");
	assert_int_equal(k.files_of[0], 1);
	assert_string_equal(k.names[1], "kim");
	assert_int_equal(k.files_of[1], 0);
	assert_string_equal(k.names[2], "zed");
	assert_int_equal(k.files_of[2], 2);

	memset(&k, 0, sizeof(k));
	assert_int_equal(db_each_file(db, NULL, 0, collect_file, &k), 0);
	assert_int_equal(k.files, 3);
	memset(&k, 0, sizeof(k));
	assert_int_equal(db_each_file(db, a, 0, collect_file, &k), 0);
	assert_int_equal(k.files, 2);
	memset(&k, 0, sizeof(k));
	assert_int_equal(db_each_file(db, a, 1, collect_file, &k), 0);
	assert_int_equal(k.files, 1);
	memset(&k, 0, sizeof(k));
	assert_int_equal(db_each_file(db, NULL, 1, collect_file, &k), 0);
	assert_int_equal(k.files, 2);
	memset(&k, 0, sizeof(k));
	assert_int_equal(db_each_file(db, c, 0, collect_file, &k), 0);
	assert_int_equal(k.files, 0);

	/* A callback's non-zero value stops the walk and comes back; the statement is reusable. */
	memset(&k, 0, sizeof(k));
	k.stop_after = 2;
	assert_int_equal(db_each_client(db, collect_client, &k), 42);
	assert_int_equal(k.clients, 2);
	memset(&k, 0, sizeof(k));
	k.stop_after = 1;
	assert_int_equal(db_each_file(db, NULL, 0, collect_file, &k), 43);
	assert_int_equal(k.files, 1);
	memset(&k, 0, sizeof(k));
	assert_int_equal(db_each_client(db, collect_client, &k), 0);
	assert_int_equal(k.clients, 3);
	db_close(db);
}

static void
test_find(void **state)
{
	struct db *db = NULL;
	struct db_client c;
	uint8_t id[CLIENT_ID_SIZE], id2[CLIENT_ID_SIZE];
	char hex[2 * CLIENT_ID_SIZE + 1];
	size_t i;

	(void)state;
	make_id(id, 13);
	for (i = 0; i < CLIENT_ID_SIZE; i++)
		snprintf(hex + 2 * i, 3, "%02X", id[i]);
	assert_int_equal(db_open(":memory:", DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_register(db, "gina", id), 0);
	assert_int_equal(db_client_find(db, "gina", &c), 0);
	assert_memory_equal(c.id, id, CLIENT_ID_SIZE);
	assert_int_equal(db_client_find(db, hex, &c), 0);
	assert_string_equal(c.name, "gina");
	hex[0] = hex[0] == '0' ? '1' : '0';
	assert_int_equal(db_client_find(db, hex, &c), SD_ERR_NOT_FOUND);
	/* A name that looks like hex but is not an ID is still found as a name. */
	make_id(id2, 16);
	assert_int_equal(db_client_register(db, hex, id2), 0);
	assert_int_equal(db_client_find(db, hex, &c), 0);
	assert_memory_equal(c.id, id2, CLIENT_ID_SIZE);
	db_close(db);
}

static void
test_read_only(void **state)
{
	struct tmp t;
	struct db *db = NULL, *ro = NULL;
	struct db_client c;
	struct db_file f;
	uint8_t id[CLIENT_ID_SIZE], id2[CLIENT_ID_SIZE];

	(void)state;
	tmp_make(&t);
	make_id(id, 14);
	make_id(id2, 15);
	assert_int_equal(db_open(t.path, DB_READ_ONLY, &ro), SD_ERR_NOT_FOUND);
	assert_null(ro);
	assert_int_equal(access(t.path, F_OK), -1); /* and nothing was created */

	assert_int_equal(db_open(t.path, DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_register(db, "hank", id), 0);
	/* The writer stays open: reading goes on beside it. */
	assert_int_equal(db_open(t.path, DB_READ_ONLY, &ro), 0);
	assert_int_equal(db_client_by_name(ro, "hank", &c), 0);
	assert_int_equal(db_client_register(ro, "ivy", id2), SD_ERR_DB);
	assert_int_equal(db_client_set_aes_key(ro, id, c.aes_key), SD_ERR_DB);
	fill_file(&f, id, "x", 1, 1);
	assert_int_equal(db_file_record(ro, &f), SD_ERR_DB);
	assert_int_equal(db_client_by_name(ro, "ivy", &c), SD_ERR_NOT_FOUND);
	assert_int_equal(db_integrity_check(ro), 0);
	/* A write by the other connection is seen by the reader. */
	assert_int_equal(db_client_register(db, "jill", id2), 0);
	assert_int_equal(db_client_by_name(ro, "jill", &c), 0);
	db_close(ro);
	db_close(db);

	/* After the writer closed cleanly (no -wal, no -shm left), reading still works. */
	assert_int_equal(db_open(t.path, DB_READ_ONLY, &ro), 0);
	assert_int_equal(db_client_by_name(ro, "jill", &c), 0);
	db_close(ro);
	tmp_remove(&t);
}

static void
test_foreign_files(void **state)
{
	struct tmp t;
	struct db *db = NULL;
	unsigned char junk[4096];
	size_t i;
	int fd;

	(void)state;
	tmp_make(&t);
	/* An SQLite database of something else. */
	raw_sql(t.path, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"
	    "INSERT INTO notes (body) VALUES ('hello');");
	assert_int_equal(db_open(t.path, DB_READ_ONLY, &db), SD_ERR_SCHEMA);
	assert_int_equal(db_open(t.path, DB_READ_WRITE, &db), SD_ERR_SCHEMA);
	assert_null(db);
	tmp_remove(&t);

	/* Tables of our names but the wrong columns. */
	tmp_make(&t);
	raw_sql(t.path, "CREATE TABLE clients (ID BLOB, Nom TEXT);"
	    "CREATE TABLE files (ID BLOB, FileName TEXT, PathName TEXT, Verified BOOLEAN);");
	assert_int_equal(db_open(t.path, DB_READ_WRITE, &db), SD_ERR_SCHEMA);
	assert_int_equal(db_open(t.path, DB_READ_ONLY, &db), SD_ERR_SCHEMA);
	tmp_remove(&t);

	/* An empty SQLite file is no sealdrop database to read, but one to create. */
	tmp_make(&t);
	fd = open(t.path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(db_open(t.path, DB_READ_ONLY, &db), SD_ERR_SCHEMA);
	assert_int_equal(db_open(t.path, DB_READ_WRITE, &db), 0);
	db_close(db);
	tmp_remove(&t);

	/* Not SQLite at all: random bytes, and a text file. */
	srand(7);
	for (i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)rand();
	tmp_make(&t);
	fd = open(t.path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	close(fd);
	assert_int_equal(db_open(t.path, DB_READ_ONLY, &db), SD_ERR_SCHEMA);
	assert_int_equal(db_open(t.path, DB_READ_WRITE, &db), SD_ERR_SCHEMA);
	tmp_remove(&t);
	tmp_make(&t);
	fd = open(t.path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "this is not a database\n", 23), 23);
	close(fd);
	assert_int_equal(db_open(t.path, DB_READ_ONLY, &db), SD_ERR_SCHEMA);
	assert_int_equal(db_open(t.path, DB_READ_WRITE, &db), SD_ERR_SCHEMA);
	tmp_remove(&t);
}

/* A database as the course's reference servers make it (SPEC.md 8 names only): read-only
 * refuses it, read-write adds our columns and keeps the rows. */
static void
test_upgrade(void **state)
{
	struct tmp t;
	struct db *db = NULL;
	struct db_client c;
	struct db_file f;
	uint8_t id[CLIENT_ID_SIZE];

	(void)state;
	tmp_make(&t);
	memset(id, 0xab, sizeof(id));
	raw_sql(t.path, "CREATE TABLE clients (ID BLOB(16) PRIMARY KEY, Name TEXT UNIQUE, "
	    "PublicKey BLOB(160), LastSeen timestamp, AESKey BLOB(32));"
	    "CREATE TABLE files (ID BLOB(16), FileName TEXT, PathName TEXT, Verified BOOLEAN);"
	    "INSERT INTO clients (ID, Name) VALUES (x'abababababababababababababababab', 'old');"
	    "INSERT INTO files VALUES (x'abababababababababababababababab', 'f', 'p/f', 1);");
	assert_int_equal(db_open(t.path, DB_READ_ONLY, &db), SD_ERR_SCHEMA);
	assert_int_equal(db_open(t.path, DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_by_name(db, "old", &c), 0);
	assert_memory_equal(c.id, id, sizeof(id));
	assert_int_equal(c.last_seen, 0);
	assert_int_equal(db_file_get(db, id, "f", &f), 0);
	assert_true(f.verified);
	assert_string_equal(f.path_name, "p/f");
	assert_int_equal(f.size, 0);
	db_close(db);
	assert_int_equal(db_open(t.path, DB_READ_ONLY, &db), 0);
	db_close(db);
	tmp_remove(&t);
}

struct worker {
	const char *path;
	int index;
	int failures;
};

static void *
register_many(void *arg)
{
	struct worker *w = arg;
	struct db *db = NULL;
	uint8_t id[CLIENT_ID_SIZE], key[PUBLIC_KEY_SIZE];
	char name[32];
	int i;

	memset(key, w->index, sizeof(key));
	if (db_open(w->path, DB_READ_WRITE, &db) != 0) {
		w->failures = THREAD_NAMES;
		return NULL;
	}
	for (i = 0; i < THREAD_NAMES; i++) {
		snprintf(name, sizeof(name), "t%d-%d", w->index, i);
		memset(id, 0, sizeof(id));
		id[0] = (uint8_t)w->index;
		id[1] = (uint8_t)i;
		if (db_client_register(db, name, id) != 0 ||
		    db_client_set_public_key(db, id, key, sizeof(key)) != 0 ||
		    db_client_touch(db, id) != 0)
			w->failures++;
	}
	db_close(db);
	return NULL;
}

static int
count_client(void *ctx, const struct db_client *c, long file_count)
{
	(void)c;
	(void)file_count;
	(*(int *)ctx)++;
	return 0;
}

static void
test_two_threads(void **state)
{
	struct tmp t;
	struct worker w[2];
	pthread_t th[2];
	struct db *db = NULL;
	struct db_client c;
	int i, n = 0;

	(void)state;
	tmp_make(&t);
	/* Both threads open the new file at once: one creates the schema, the other waits. */
	for (i = 0; i < 2; i++) {
		w[i].path = t.path;
		w[i].index = i + 1;
		w[i].failures = 0;
		assert_int_equal(pthread_create(&th[i], NULL, register_many, &w[i]), 0);
	}
	for (i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(w[i].failures, 0);
	}
	assert_int_equal(db_open(t.path, DB_READ_ONLY, &db), 0);
	assert_int_equal(db_each_client(db, count_client, &n), 0);
	assert_int_equal(n, 2 * THREAD_NAMES);
	assert_int_equal(db_client_by_name(db, "t2-39", &c), 0);
	assert_int_equal(c.id[0], 2);
	assert_int_equal(c.id[1], 39);
	assert_true(c.has_public_key);
	assert_int_equal(db_integrity_check(db), 0);
	db_close(db);
	tmp_remove(&t);
}

/* A full disk, made with a small max_page_count on every connection SQLite opens (an
 * auto-extension, so the db API needs no test hook). */
static int full_max_pages;

static int
limit_pages(sqlite3 *s, const char **err, const struct sqlite3_api_routines *api)
{
	char sql[64];

	(void)err;
	(void)api;
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %d", full_max_pages);
	return sqlite3_exec(s, sql, NULL, NULL, NULL);
}

/* Registers long names until the database is full; returns the failing result. */
static int
fill_until_full(struct db *db, int *count)
{
	uint8_t id[CLIENT_ID_SIZE];
	char name[NAME_MAX_LEN + 1];
	int i, r = 0;

	for (i = 0; i < 100000 && r == 0; i++) {
		memset(name, 'a' + i % 26, NAME_MAX_LEN);
		snprintf(name + NAME_MAX_LEN - 8, 9, "%08d", i);
		memset(id, 0, sizeof(id));
		memcpy(id, &i, sizeof(i));
		r = db_client_register(db, name, id);
	}
	*count = i - 1;
	return r;
}

/* Issue 9 item 6: SQLite ends the transaction itself when the disk is full; our rollback must
 * not replace its message with "cannot rollback - no transaction is active". */
static void
test_full_disk_message(void **state)
{
	static const char *const paths[] = { NULL, ":memory:" };
	struct tmp t;
	struct db *db = NULL;
	size_t k;
	int n, m, r;

	(void)state;
	for (k = 0; k < sizeof(paths) / sizeof(paths[0]); k++) {
		if (paths[k] == NULL)
			tmp_make(&t);
		full_max_pages = 12;
		assert_int_equal(sqlite3_auto_extension((void (*)(void))limit_pages), SQLITE_OK);
		r = db_open(paths[k] != NULL ? paths[k] : t.path, DB_READ_WRITE, &db);
		sqlite3_reset_auto_extension();
		assert_int_equal(r, 0);
		r = fill_until_full(db, &n);
		assert_int_equal(r, SD_ERR_DB);
		assert_true(n > 0);
		assert_string_equal(db_errmsg(db), "database or disk is full");
		/* The connection is still usable: what was committed is there, the last is not. */
		assert_int_equal(db_integrity_check(db), 0);
		m = 0;
		assert_int_equal(db_each_client(db, count_client, &m), 0);
		assert_int_equal(m, n);
		db_close(db);
		db = NULL;
		if (paths[k] == NULL)
			tmp_remove(&t);
	}
}

static void
test_integrity_and_close(void **state)
{
	struct db *db = NULL;

	(void)state;
	db_close(NULL);
	assert_int_equal(db_open(":memory:", DB_READ_WRITE, &db), 0);
	assert_int_equal(db_integrity_check(db), 0);
	db_close(db);
	assert_int_equal(db_open(NULL, DB_READ_WRITE, &db), SD_ERR_INVALID_ARG);
}

/* db_open_why: a failed open tells why in words, though it leaves no handle to ask. */
/* What the server logs of --db: a SQLite path as given, a PostgreSQL string without its
 * password, in URI and keyword form. */
static void
test_describe_target(void **state)
{
	char out[256];

	(void)state;
	db_describe_target("defensive.db", out, sizeof(out));
	assert_string_equal(out, "defensive.db");
	db_describe_target("postgresql://alice:s3cret@db.example:5433/sealdrop", out, sizeof(out));
	assert_null(strstr(out, "s3cret"));
	assert_non_null(strstr(out, "host=db.example"));
	assert_non_null(strstr(out, "dbname=sealdrop"));
	assert_non_null(strstr(out, "user=alice"));
	db_describe_target("host=/run/pg dbname=sd password=s3cret user=bob", out, sizeof(out));
	assert_null(strstr(out, "s3cret"));
	assert_non_null(strstr(out, "host=/run/pg"));
	db_describe_target("postgresql://x:s3cret@h/d", out, 12);
	assert_int_equal(strlen(out), 11);
	assert_null(strstr(out, "s3cret"));
	/* A database name that is itself a URI, or keywords, with a password. */
	db_describe_target("host=/run/pg dbname=postgresql://u:s3cret@h/d", out, sizeof(out));
	assert_null(strstr(out, "s3cret"));
	assert_non_null(strstr(out, "host=/run/pg"));
	assert_non_null(strstr(out, "postgresql://u:***@h/d"));
	db_describe_target("host=/run/pg dbname='password=s3cret'", out, sizeof(out));
	assert_null(strstr(out, "s3cret"));
}

/* libpq's parse errors quote the connection string: what db_open_why says of one it cannot
 * parse, or cannot connect with, never holds the password (the server and sealdrop-db print
 * it). */
static void
test_open_why_hides_password(void **state)
{
	static const char *const bad[] = {
		"postgresql://sealdrop:TopSecret99@[db1/sealdrop",
		"password=Top Secret99",
		"host=/nonexistent-sd port=1 password=TopSecret99 dbname='x",
		"postgresql://sealdrop:TopSecret99@/sealdrop?host=/nonexistent-sd&port=1",
		"host=/nonexistent-sd port=1 user=u password=TopSecret99 dbname=sd",
	};
	struct db *db = NULL;
	char why[256], shown[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_not_equal(db_open_why(bad[i], DB_READ_ONLY, &db, why, sizeof(why)), 0);
		assert_null(db);
		assert_true(why[0] != '\0');
		if (strstr(why, "Secret99") != NULL)
			fail_msg("%s: password in \"%s\"", bad[i], why);
		db_describe_target(bad[i], shown, sizeof(shown));
		assert_null(strstr(shown, "Secret99"));
	}
	/* Unparsable: a plain reason with the forms expected. */
	assert_int_not_equal(db_open_why(bad[0], DB_READ_WRITE, &db, why, sizeof(why)), 0);
	assert_non_null(strstr(why, "unparsable connection string"));
}

static void
test_open_why(void **state)
{
	struct tmp t;
	struct db *db = NULL;
	char why[256];

	(void)state;
	tmp_make(&t);
	raw_sql(t.path, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);");
	memset(why, 'x', sizeof(why));
	assert_int_equal(db_open_why(t.path, DB_READ_WRITE, &db, why, sizeof(why)),
	    SD_ERR_SCHEMA);
	assert_null(db);
	assert_non_null(strstr(why, "no sealdrop tables"));
	/* A folder is no database file: SQLite's own message. */
	memset(why, 'x', sizeof(why));
	assert_int_not_equal(db_open_why("/", DB_READ_WRITE, &db, why, sizeof(why)), 0);
	assert_null(db);
	assert_true(why[0] != '\0' && strlen(why) < sizeof(why));
	/* Success leaves it empty; a NULL why is allowed. */
	assert_int_equal(db_open_why(":memory:", DB_READ_WRITE, &db, why, sizeof(why)), 0);
	assert_string_equal(why, "");
	db_close(db);
	db = NULL;
	assert_int_equal(db_open_why(t.path, DB_READ_ONLY, &db, NULL, 0), SD_ERR_SCHEMA);
	tmp_remove(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_and_lookup),
		cmocka_unit_test(test_name_rules),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_touch),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_iteration),
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_read_only),
		cmocka_unit_test(test_foreign_files),
		cmocka_unit_test(test_upgrade),
		cmocka_unit_test(test_two_threads),
		cmocka_unit_test(test_full_disk_message),
		cmocka_unit_test(test_integrity_and_close),
		cmocka_unit_test(test_open_why),
		cmocka_unit_test(test_describe_target),
		cmocka_unit_test(test_open_why_hides_password),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
