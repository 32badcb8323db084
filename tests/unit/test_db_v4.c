/* test_db_v4.c: schema version 2 of the SQLite store (db/db.h): the upgrade in place of a
 * version-1 database, version-4 accounts (fingerprints), pending registrations bound to their
 * connection, file hashes, deletion and listing, commit intents and partial uploads, on
 * ":memory:" and on temporary files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "../../db/db.h"
#include "../../protocol/err.h"

/* The version-1 schema exactly as release 0.1.0 created it (db/schema.sql then, comments
 * outside the statements left out: SQLite does not keep them). */
static const char v1_schema[] =
	"CREATE TABLE IF NOT EXISTS clients (\n"
	"\tID BLOB(16) PRIMARY KEY NOT NULL CHECK (length(ID) = 16),\n"
	"\tName TEXT UNIQUE NOT NULL,\n"
	"\tPublicKey BLOB(160),          -- DER SubjectPublicKeyInfo; NULL while registration is pending\n"
	"\tLastSeen timestamp,           -- UTC text, updated on every request of the client\n"
	"\tAESKey BLOB(32)               -- the AES key most recently issued to the client\n"
	");\n"
	"CREATE TABLE IF NOT EXISTS files (\n"
	"\tID BLOB(16) NOT NULL REFERENCES clients(ID) ON DELETE CASCADE,\n"
	"\tFileName TEXT NOT NULL,       -- the name the client sent\n"
	"\tPathName TEXT NOT NULL,       -- the stored file, relative to the storage folder\n"
	"\tVerified BOOLEAN NOT NULL DEFAULT 0,\n"
	"\tSize INTEGER NOT NULL DEFAULT 0,      -- plaintext bytes\n"
	"\tCRC INTEGER NOT NULL DEFAULT 0,       -- cksum of the plaintext\n"
	"\tUploaded timestamp,                   -- UTC text\n"
	"\tUNIQUE (ID, FileName)\n"
	");\n"
	"PRAGMA user_version = 1;\n";

/* Rows as the version-1 server writes them (its statements, in WAL mode): a client with keys,
 * a pending one, a verified and an unverified file. */
static const char v1_rows[] =
	"PRAGMA journal_mode = WAL;"
	"INSERT INTO clients (ID, Name, LastSeen) VALUES "
	"  (x'0102030405060708090a0b0c0d0e0f10', 'alice', datetime('now')),"
	"  (x'1112131415161718191a1b1c1d1e1f20', 'pending', datetime('now'));"
	"UPDATE clients SET PublicKey = zeroblob(160), LastSeen = datetime('now') "
	"  WHERE ID = x'0102030405060708090a0b0c0d0e0f10' AND PublicKey IS NULL;"
	"UPDATE clients SET AESKey = x'00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff' "
	"  WHERE ID = x'0102030405060708090a0b0c0d0e0f10';"
	"INSERT INTO files (ID, FileName, PathName, Verified, Size, CRC, Uploaded) VALUES "
	"  (x'0102030405060708090a0b0c0d0e0f10', 'a.txt', '0102030405060708090a0b0c0d0e0f10/a.txt', "
	"   1, 5, 1234, '2020-01-02 03:04:05'),"
	"  (x'0102030405060708090a0b0c0d0e0f10', 'b.txt', '0102030405060708090a0b0c0d0e0f10/b.txt', "
	"   0, 7, 99, datetime('now'));";

static const uint8_t alice_id[CLIENT_ID_SIZE] = {
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
};

/* Fingerprints in the one accepted spelling: "SHA256:" + 43 base64 characters, the last of
 * which has its two unused bits zero. */
static const char fp_a[] = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
static const char fp_b[] = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
static const char fp_c[] = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";

struct tmp {
	char dir[64];
	char path[128];
};

static void
tmp_make(struct tmp *t)
{
	snprintf(t->dir, sizeof(t->dir), "/tmp/sd-test-dbv4-XXXXXX");
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
		id[i] = (uint8_t)(seed * 37u + i * 11u + 3u);
}

static void
make_key(uint8_t key[PUBLIC_KEY_SIZE], uint8_t seed)
{
	memset(key, seed, PUBLIC_KEY_SIZE);
}

/* Runs SQL directly on a file, outside the db API. */
static void
raw_sql(const char *path, const char *sql)
{
	sqlite3 *s = NULL;
	char *err = NULL;

	assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
	if (sqlite3_exec(s, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("raw_sql: %s", err != NULL ? err : "?");
	sqlite3_close(s);
}

/* One integer from a query on a file (or -1 when it yields no row). */
static long long
raw_int(const char *path, const char *sql)
{
	sqlite3 *s = NULL;
	sqlite3_stmt *st = NULL;
	long long v = -1;

	assert_int_equal(sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(s, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(s);
	return v;
}

/* The shape of the schema, independent of how the CREATE text reads: every column of our
 * tables (name, type, not null, default, primary key), every index with its uniqueness and
 * columns, and the version. Two databases of the same shape serve the same statements. */
static void
schema_shape(const char *path, char *out, size_t cap)
{
	static const char sql[] =
	    "SELECT group_concat(x, ';') FROM ("
	    " SELECT 'v' || (SELECT user_version FROM pragma_user_version) AS x"
	    " UNION ALL SELECT * FROM ("
	    "  SELECT m.name || '.' || c.name || ':' || c.type || ':' || c.\"notnull\" || ':' ||"
	    "   ifnull(c.dflt_value, '-') || ':' || c.pk FROM sqlite_master m,"
	    "   pragma_table_info(m.name) c WHERE m.type = 'table' ORDER BY m.name, c.cid)"
	    " UNION ALL SELECT * FROM ("
	    "  SELECT m.name || ' ' || l.\"unique\" || ' ' || l.partial || ' ' ||"
	    "   (SELECT group_concat(i.name) FROM pragma_index_info(l.name) i) FROM sqlite_master m,"
	    "   pragma_index_list(m.name) l WHERE m.type = 'table'"
	    "   ORDER BY m.name, (SELECT group_concat(i.name) FROM pragma_index_info(l.name) i)))";
	sqlite3 *s = NULL;
	sqlite3_stmt *st = NULL;

	assert_int_equal(sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(s, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(s);
}

/* The stored schema text, to see that a re-open changes nothing. */
static void
schema_text(const char *path, char *out, size_t cap)
{
	sqlite3 *s = NULL;
	sqlite3_stmt *st = NULL;

	assert_int_equal(sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(s, "SELECT group_concat(sql, ';') || "
	    "(SELECT user_version FROM pragma_user_version) FROM sqlite_master", -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(s);
}

static void
fill_file(struct db_file *f, const uint8_t owner[CLIENT_ID_SIZE], const char *name,
    const char *path, uint64_t size, uint32_t crc)
{
	memset(f, 0, sizeof(*f));
	memcpy(f->owner, owner, CLIENT_ID_SIZE);
	snprintf(f->file_name, sizeof(f->file_name), "%s", name);
	snprintf(f->path_name, sizeof(f->path_name), "%s", path);
	f->size = size;
	f->crc = crc;
}

static void
fill_commit(struct db_commit *c, const uint8_t owner[CLIENT_ID_SIZE], const char *name,
    const char *temp, const char *path, uint64_t size, uint32_t crc)
{
	memset(c, 0, sizeof(*c));
	memcpy(c->owner, owner, CLIENT_ID_SIZE);
	snprintf(c->file_name, sizeof(c->file_name), "%s", name);
	snprintf(c->temp_path, sizeof(c->temp_path), "%s", temp);
	snprintf(c->path_name, sizeof(c->path_name), "%s", path);
	c->size = size;
	c->crc = crc;
	c->verified = 1;
}

static void
fill_upload(struct db_upload *u, const uint8_t owner[CLIENT_ID_SIZE], const char *name,
    uint64_t size, uint64_t offset, int64_t expires)
{
	memset(u, 0, sizeof(*u));
	memcpy(u->owner, owner, CLIENT_ID_SIZE);
	snprintf(u->file_name, sizeof(u->file_name), "%s", name);
	snprintf(u->temp_path, sizeof(u->temp_path), "owner/.sealdrop-part-%s", name);
	u->size = size;
	u->offset = offset;
	u->expires = expires;
}

/* A fresh database is version 2; opening it again changes nothing; a reader opens it. */
static void
test_fresh_and_reopen(void **state)
{
	struct tmp t;
	struct db *db = NULL;
	char before[8192], after[8192];

	(void)state;
	tmp_make(&t);
	assert_int_equal(db_open(t.path, DB_READ_WRITE, &db), 0);
	db_close(db);
	assert_int_equal(raw_int(t.path, "PRAGMA user_version"), 2);
	assert_int_equal(raw_int(t.path, "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
	    "AND name IN ('clients', 'files', 'commits', 'uploads')"), 4);
	schema_text(t.path, before, sizeof(before));
	assert_int_equal(db_open(t.path, DB_READ_WRITE, &db), 0);
	db_close(db);
	assert_int_equal(db_open(t.path, DB_READ_ONLY, &db), 0);
	db_close(db);
	schema_text(t.path, after, sizeof(after));
	assert_string_equal(before, after);
	tmp_remove(&t);
}

/* Issue 10: a database written by the current release (version 1) is upgraded in place, keeps
 * every row, gets the same shape as a fresh one, and a second open changes nothing. */
static void
test_upgrade_v1(void **state)
{
	struct tmp t, fresh;
	struct db *db = NULL;
	struct db_client c;
	struct db_file f;
	struct db_upload u;
	char shape_up[8192], shape_fresh[8192], before[8192], after[8192];

	(void)state;
	tmp_make(&t);
	raw_sql(t.path, v1_schema);
	raw_sql(t.path, v1_rows);
	/* A reader of version 2 does not upgrade: it refuses an older file. */
	assert_int_equal(db_open(t.path, DB_READ_ONLY, &db), SD_ERR_SCHEMA);
	assert_int_equal(raw_int(t.path, "PRAGMA user_version"), 1);

	assert_int_equal(db_open(t.path, DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_by_name(db, "alice", &c), 0);
	assert_memory_equal(c.id, alice_id, CLIENT_ID_SIZE);
	assert_true(c.has_public_key);
	assert_int_equal(c.public_key_len, PUBLIC_KEY_SIZE);
	assert_true(c.has_aes_key);
	assert_int_equal(c.aes_key[1], 0x11);
	assert_string_equal(c.fingerprint, "");
	assert_int_equal(db_client_by_name(db, "pending", &c), 0);
	assert_false(c.has_public_key);
	assert_int_equal(db_file_get(db, alice_id, "a.txt", &f), 0);
	assert_true(f.verified);
	assert_int_equal(f.size, 5);
	assert_int_equal(f.crc, 1234);
	assert_int_equal(f.uploaded, 1577934245);
	assert_false(f.has_sha256);
	assert_int_equal(db_file_get(db, alice_id, "b.txt", &f), 0);
	assert_false(f.verified);
	/* The new parts work on it. */
	assert_int_equal(db_client_bind_fingerprint(db, alice_id, fp_a), 0);
	assert_int_equal(db_client_by_fingerprint(db, fp_a, &c), 0);
	assert_string_equal(c.name, "alice");
	fill_upload(&u, alice_id, "big.iso", 1ull << 40, 0, 2000000000);
	assert_int_equal(db_upload_put(db, &u), 0);
	assert_int_equal(db_integrity_check(db), 0);
	db_close(db);

	assert_int_equal(raw_int(t.path, "PRAGMA user_version"), 2);
	assert_int_equal(raw_int(t.path, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
	tmp_make(&fresh);
	assert_int_equal(db_open(fresh.path, DB_READ_WRITE, &db), 0);
	db_close(db);
	schema_shape(t.path, shape_up, sizeof(shape_up));
	schema_shape(fresh.path, shape_fresh, sizeof(shape_fresh));
	assert_string_equal(shape_up, shape_fresh);
	/* (and the shape says what we think: the fingerprint is unique, the hash a column) */
	assert_non_null(strstr(shape_fresh, "clients 1 0 Fingerprint"));
	assert_non_null(strstr(shape_fresh, "files.SHA256:BLOB(32):0:-:0"));
	assert_non_null(strstr(shape_fresh, "commits 1 0 PathName"));
	tmp_remove(&fresh);

	/* Idempotent: the next opens change nothing, and the reader opens it now. */
	schema_text(t.path, before, sizeof(before));
	assert_int_equal(db_open(t.path, DB_READ_WRITE, &db), 0);
	db_close(db);
	schema_text(t.path, after, sizeof(after));
	assert_string_equal(before, after);
	assert_int_equal(db_open(t.path, DB_READ_ONLY, &db), 0);
	assert_int_equal(db_upload_get(db, alice_id, "big.iso", &u), 0);
	assert_int_equal(u.size, 1ull << 40);
	db_close(db);
	tmp_remove(&t);
}

/* The upgrade is one transaction: when a step fails (here a table already holds the name of
 * our new index), the file stays exactly version 1. */
static void
test_upgrade_all_or_nothing(void **state)
{
	struct tmp t;
	struct db *db = NULL;
	char before[8192], after[8192], why[256];

	(void)state;
	tmp_make(&t);
	raw_sql(t.path, v1_schema);
	raw_sql(t.path, v1_rows);
	raw_sql(t.path, "CREATE TABLE clients_fingerprint (x);");
	schema_text(t.path, before, sizeof(before));
	assert_int_equal(db_open_why(t.path, DB_READ_WRITE, &db, why, sizeof(why)), SD_ERR_SCHEMA);
	assert_null(db);
	assert_non_null(strstr(why, "clients_fingerprint"));
	schema_text(t.path, after, sizeof(after));
	assert_string_equal(before, after);
	assert_int_equal(raw_int(t.path, "PRAGMA user_version"), 1);
	assert_int_equal(raw_int(t.path, "SELECT count(*) FROM pragma_table_info('clients') "
	    "WHERE name = 'Fingerprint'"), 0);
	assert_int_equal(raw_int(t.path, "SELECT count(*) FROM files"), 2);
	tmp_remove(&t);
}

/* A reference server's database (SPEC.md 8 names only) reaches version 2 too, and gets a
 * unique index only where it has none (no second index on clients.Name). */
static void
test_upgrade_reference(void **state)
{
	struct tmp t;
	struct db *db = NULL;
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
	assert_int_equal(db_open(t.path, DB_READ_WRITE, &db), 0);
	assert_int_equal(db_file_get(db, id, "f", &f), 0);
	assert_true(f.verified);
	assert_false(f.has_sha256);
	db_close(db);
	assert_int_equal(raw_int(t.path, "PRAGMA user_version"), 2);
	assert_int_equal(raw_int(t.path, "SELECT count(*) FROM pragma_index_list('clients') l "
	    "WHERE l.\"unique\" = 1 AND (SELECT group_concat(name) FROM pragma_index_info(l.name)) "
	    "= 'Name'"), 1);
	assert_int_equal(raw_int(t.path, "SELECT count(*) FROM sqlite_master WHERE type = 'index' "
	    "AND name = 'files_owner_name'"), 1);
	tmp_remove(&t);
}

/* SPEC-v4.md "Accounts": REGISTER, the fingerprint lookup, LINK + PROVE's binding. */
static void
test_v4_accounts(void **state)
{
	struct db *db = NULL;
	struct db_client c;
	uint8_t id1[CLIENT_ID_SIZE], id2[CLIENT_ID_SIZE], id3[CLIENT_ID_SIZE];
	uint8_t id4[CLIENT_ID_SIZE], key[PUBLIC_KEY_SIZE];
	time_t before = time(NULL);

	(void)state;
	make_id(id1, 1);
	make_id(id2, 2);
	make_id(id3, 3);
	make_id(id4, 4);
	make_key(key, 0x42);
	assert_int_equal(db_open(":memory:", DB_READ_WRITE, &db), 0);

	assert_int_equal(db_client_by_fingerprint(db, fp_a, &c), SD_ERR_NOT_FOUND);
	assert_int_equal(db_client_register_v4(db, "vera", id1, key, sizeof(key), fp_a), 0);
	assert_int_equal(db_client_by_fingerprint(db, fp_a, &c), 0);
	assert_memory_equal(c.id, id1, CLIENT_ID_SIZE);
	assert_string_equal(c.name, "vera");
	assert_string_equal(c.fingerprint, fp_a);
	assert_true(c.has_public_key);
	assert_int_equal(c.public_key_len, sizeof(key));
	assert_memory_equal(c.public_key, key, sizeof(key));
	assert_true(c.last_seen >= (int64_t)before);
	/* The same account over version 3: its key is set, so 826 cannot replace it. */
	assert_int_equal(db_client_set_public_key(db, id1, key, sizeof(key)), SD_ERR_EXISTS);

	/* A certificate bound already: SD_ERR_BOUND, checked before the name. */
	assert_int_equal(db_client_register_v4(db, "walt", id2, key, sizeof(key), fp_a),
	    SD_ERR_BOUND);
	assert_int_equal(db_client_register_v4(db, "vera", id2, key, sizeof(key), fp_a),
	    SD_ERR_BOUND);
	assert_int_equal(db_client_by_name(db, "walt", &c), SD_ERR_NOT_FOUND);
	/* Two registrations of one name: the second is refused, nothing changes. */
	assert_int_equal(db_client_register_v4(db, "vera", id2, key, sizeof(key), fp_b),
	    SD_ERR_EXISTS);
	assert_int_equal(db_client_by_fingerprint(db, fp_b, &c), SD_ERR_NOT_FOUND);
	/* A name pending on version 3 is taken for version 4 too (no connection owns it here). */
	assert_int_equal(db_client_register(db, "pend", id3), 0);
	assert_int_equal(db_client_register_v4(db, "pend", id2, key, sizeof(key), fp_b),
	    SD_ERR_EXISTS);
	assert_int_equal(db_client_by_id(db, id3, &c), 0);
	/* An ID in use. */
	assert_int_equal(db_client_register_v4(db, "xena", id1, key, sizeof(key), fp_b),
	    SD_ERR_EXISTS);
	assert_int_equal(db_client_by_name(db, "xena", &c), SD_ERR_NOT_FOUND);

	/* Malformed input. */
	assert_int_equal(db_client_register_v4(db, "yuri", id2, key, 0, fp_b), SD_ERR_INVALID_ARG);
	assert_int_equal(db_client_register_v4(db, "yuri", id2, key, PUBLIC_KEY_SIZE + 1, fp_b),
	    SD_ERR_INVALID_ARG);
	assert_int_equal(db_client_register_v4(db, "yuri", id2, NULL, 10, fp_b),
	    SD_ERR_INVALID_ARG);
	assert_int_equal(db_client_register_v4(db, "", id2, key, sizeof(key), fp_b),
	    SD_ERR_INVALID_ARG);
	assert_int_equal(db_client_register_v4(db, "yuri", id2, key, sizeof(key), NULL),
	    SD_ERR_INVALID_ARG);

	/* LINK + PROVE of a version-3 account: binds; a later binding replaces it. */
	make_key(key, 0x43);
	assert_int_equal(db_client_register(db, "zoe", id4), 0);
	assert_int_equal(db_client_set_public_key(db, id4, key, sizeof(key)), 0);
	assert_int_equal(db_client_by_name(db, "zoe", &c), 0);
	assert_string_equal(c.fingerprint, "");
	assert_int_equal(db_client_bind_fingerprint(db, id4, fp_b), 0);
	assert_int_equal(db_client_by_fingerprint(db, fp_b, &c), 0);
	assert_memory_equal(c.id, id4, CLIENT_ID_SIZE);
	assert_int_equal(db_client_bind_fingerprint(db, id4, fp_b), 0); /* again: no change */
	assert_int_equal(db_client_bind_fingerprint(db, id4, fp_c), 0);
	assert_int_equal(db_client_by_fingerprint(db, fp_b, &c), SD_ERR_NOT_FOUND);
	assert_int_equal(db_client_by_fingerprint(db, fp_c, &c), 0);
	assert_string_equal(c.name, "zoe");
	/* A fingerprint bound to another account is refused, and both bindings stay. */
	assert_int_equal(db_client_bind_fingerprint(db, id4, fp_a), SD_ERR_BOUND);
	assert_int_equal(db_client_by_fingerprint(db, fp_a, &c), 0);
	assert_string_equal(c.name, "vera");
	assert_int_equal(db_client_by_fingerprint(db, fp_c, &c), 0);
	assert_string_equal(c.name, "zoe");
	/* No such account. */
	assert_int_equal(db_client_bind_fingerprint(db, id2, fp_b), SD_ERR_NOT_FOUND);
	assert_int_equal(db_client_by_fingerprint(db, fp_b, &c), SD_ERR_NOT_FOUND);
	/* The error has its own text. */
	assert_string_not_equal(sd_strerror(SD_ERR_BOUND), sd_strerror(SD_ERR_EXISTS));
	assert_string_not_equal(sd_strerror(SD_ERR_BOUND), sd_strerror(-1000));
	db_close(db);
}

/* Only the one spelling of SPEC-v4.md is a fingerprint: one certificate, one text. */
static void
test_fingerprint_form(void **state)
{
	static const char *const bad[] = {
		"",
		"SHA256:",
		"sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"SHA1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",    /* 42 */
		"SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  /* 44 */
		"SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",   /* padded */
		"SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB",   /* non-canonical last */
		"SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-_A",   /* base64url */
		"SHA256:AAAAAAAAAAAAAAAAAAAA AAAAAAAAAAAAAAAAAAAAAA",
	};
	struct db *db = NULL;
	struct db_client c;
	uint8_t id[CLIENT_ID_SIZE], key[PUBLIC_KEY_SIZE];
	size_t i;

	(void)state;
	make_id(id, 5);
	make_key(key, 1);
	assert_int_equal(db_open(":memory:", DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_register(db, "una", id), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(db_client_register_v4(db, "ola", id, key, sizeof(key), bad[i]),
		    SD_ERR_INVALID_ARG);
		assert_int_equal(db_client_bind_fingerprint(db, id, bad[i]), SD_ERR_INVALID_ARG);
		assert_int_equal(db_client_by_fingerprint(db, bad[i], &c), SD_ERR_NOT_FOUND);
	}
	assert_int_equal(db_client_bind_fingerprint(db, id, NULL), SD_ERR_INVALID_ARG);
	assert_int_equal(db_client_by_fingerprint(db, NULL, &c), SD_ERR_NOT_FOUND);
	/* Each of the good ones: all 16 canonical last characters, and + / in the middle. */
	assert_int_equal(db_client_bind_fingerprint(db, id, fp_b), 0);
	assert_int_equal(db_client_bind_fingerprint(db, id,
	    "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA8"), 0);
	assert_int_equal(db_client_bind_fingerprint(db, id,
	    "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAw"), 0);
	db_close(db);
}

/* The fingerprint is unique in the database itself, not only through our checks: a second
 * binding behind the API's back is refused by SQLite. */
static void
test_fingerprint_unique_in_schema(void **state)
{
	struct tmp t;
	struct db *db = NULL;
	uint8_t id1[CLIENT_ID_SIZE], id2[CLIENT_ID_SIZE], key[PUBLIC_KEY_SIZE];
	sqlite3 *s = NULL;
	char sql[256];

	(void)state;
	tmp_make(&t);
	make_id(id1, 6);
	make_id(id2, 7);
	make_key(key, 2);
	assert_int_equal(db_open(t.path, DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_register_v4(db, "a", id1, key, sizeof(key), fp_a), 0);
	assert_int_equal(db_client_register_v4(db, "b", id2, key, sizeof(key), fp_b), 0);
	db_close(db);
	assert_int_equal(sqlite3_open(t.path, &s), SQLITE_OK);
	snprintf(sql, sizeof(sql), "UPDATE clients SET Fingerprint = '%s' WHERE Name = 'b'", fp_a);
	assert_int_equal(sqlite3_exec(s, sql, NULL, NULL, NULL), SQLITE_CONSTRAINT);
	/* Many accounts without one are fine (NULLs are distinct). */
	assert_int_equal(sqlite3_exec(s, "INSERT INTO clients (ID, Name) VALUES "
	    "(zeroblob(16), 'n1'), (x'ffffffffffffffffffffffffffffffff', 'n2')", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(s);
	tmp_remove(&t);
}

struct binder {
	const char *path;
	int index;
	int won, bound, other;
};

/* Each thread registers accounts under the same fingerprints as the other thread. */
static void *
register_same_fingerprints(void *arg)
{
	struct binder *b = arg;
	struct db *db = NULL;
	uint8_t id[CLIENT_ID_SIZE], key[PUBLIC_KEY_SIZE];
	char name[32], fp[DB_FINGERPRINT_SIZE];
	int i, r;

	make_key(key, (uint8_t)b->index);
	if (db_open(b->path, DB_READ_WRITE, &db) != 0) {
		b->other = 1000;
		return NULL;
	}
	for (i = 0; i < 30; i++) {
		snprintf(name, sizeof(name), "t%d-%d", b->index, i);
		snprintf(fp, sizeof(fp), "SHA256:%042dA", i);
		make_id(id, (uint8_t)(b->index * 64 + i));
		r = db_client_register_v4(db, name, id, key, sizeof(key), fp);
		if (r == 0)
			b->won++;
		else if (r == SD_ERR_BOUND)
			b->bound++;
		else
			b->other++;
	}
	db_close(db);
	return NULL;
}

static int
count_client(void *ctx, const struct db_client *c, long files)
{
	(void)c;
	(void)files;
	(*(int *)ctx)++;
	return 0;
}

/* Two connections race to bind the same certificates: each goes to exactly one account. */
static void
test_fingerprint_race(void **state)
{
	struct tmp t;
	struct binder b[2];
	pthread_t th[2];
	struct db *db = NULL;
	int i;

	(void)state;
	tmp_make(&t);
	assert_int_equal(db_open(t.path, DB_READ_WRITE, &db), 0);
	db_close(db);
	for (i = 0; i < 2; i++) {
		memset(&b[i], 0, sizeof(b[i]));
		b[i].path = t.path;
		b[i].index = i + 1;
		assert_int_equal(pthread_create(&th[i], NULL, register_same_fingerprints, &b[i]), 0);
	}
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	assert_int_equal(b[0].other + b[1].other, 0);
	assert_int_equal(b[0].won + b[1].won, 30);
	assert_int_equal(b[0].bound + b[1].bound, 30);
	/* Through the db API, so that test_db_v4_pg.c runs this on PostgreSQL too. */
	assert_int_equal(db_open(t.path, DB_READ_ONLY, &db), 0);
	i = 0;
	assert_int_equal(db_each_client(db, count_client, &i), 0);
	assert_int_equal(i, 30);
	db_close(db);
	tmp_remove(&t);
}

/* Issue 9 item 3: a pending name is registered again only by the connection that made it. */
static void
test_register_conn(void **state)
{
	struct db *db = NULL;
	struct db_client c;
	uint8_t id1[CLIENT_ID_SIZE], id2[CLIENT_ID_SIZE], id3[CLIENT_ID_SIZE];
	uint8_t id4[CLIENT_ID_SIZE], key[PUBLIC_KEY_SIZE];

	(void)state;
	make_id(id1, 11);
	make_id(id2, 12);
	make_id(id3, 13);
	make_id(id4, 14);
	make_key(key, 3);
	assert_int_equal(db_open(":memory:", DB_READ_WRITE, &db), 0);
	/* 827 with an unknown name made a pending row under id1 on connection 1. */
	assert_int_equal(db_client_register_conn(db, "pat", id1, NULL), 0);
	/* Another connection (no pending ID of its own, or another one): taken. */
	assert_int_equal(db_client_register_conn(db, "pat", id2, NULL), SD_ERR_EXISTS);
	assert_int_equal(db_client_register_conn(db, "pat", id2, id3), SD_ERR_EXISTS);
	assert_int_equal(db_client_by_name(db, "pat", &c), 0);
	assert_memory_equal(c.id, id1, CLIENT_ID_SIZE);
	assert_int_equal(db_client_by_id(db, id2, &c), SD_ERR_NOT_FOUND);
	/* The connection that made it (825 after 1606): replaced, id1 is gone. */
	assert_int_equal(db_client_register_conn(db, "pat", id2, id1), 0);
	assert_int_equal(db_client_by_name(db, "pat", &c), 0);
	assert_memory_equal(c.id, id2, CLIENT_ID_SIZE);
	assert_int_equal(db_client_by_id(db, id1, &c), SD_ERR_NOT_FOUND);
	/* Its own pending ID, but another name's: that row stays, this name is new. */
	assert_int_equal(db_client_register_conn(db, "quin", id3, id2), 0);
	assert_int_equal(db_client_by_id(db, id2, &c), 0);
	assert_string_equal(c.name, "pat");
	/* A name with a key is never replaced, not even by its own ID. */
	assert_int_equal(db_client_set_public_key(db, id2, key, sizeof(key)), 0);
	assert_int_equal(db_client_register_conn(db, "pat", id4, id2), SD_ERR_EXISTS);
	assert_int_equal(db_client_by_name(db, "pat", &c), 0);
	assert_memory_equal(c.id, id2, CLIENT_ID_SIZE);
	assert_true(c.has_public_key);
	/* An ID in use under another name; bad arguments. */
	assert_int_equal(db_client_register_conn(db, "rae", id2, NULL), SD_ERR_EXISTS);
	assert_int_equal(db_client_register_conn(db, "", id4, NULL), SD_ERR_INVALID_ARG);
	assert_int_equal(db_client_register_conn(db, "rae", NULL, NULL), SD_ERR_INVALID_ARG);
	db_close(db);
}

/* Pending rows expire after their TTL; rows with a key never do. */
static void
test_expire_pending(void **state)
{
	struct tmp t;
	struct db *db = NULL;
	struct db_client c;
	uint8_t a[CLIENT_ID_SIZE], b[CLIENT_ID_SIZE], k[CLIENT_ID_SIZE], key[PUBLIC_KEY_SIZE];
	struct db_upload u;
	long n = -1;

	(void)state;
	tmp_make(&t);
	make_id(a, 21);
	make_id(b, 22);
	make_id(k, 23);
	make_key(key, 4);
	assert_int_equal(db_open(t.path, DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_register(db, "old-pending", a), 0);
	assert_int_equal(db_client_register(db, "new-pending", b), 0);
	assert_int_equal(db_client_register(db, "old-keyed", k), 0);
	assert_int_equal(db_client_set_public_key(db, k, key, sizeof(key)), 0);
	/* A row in another table goes with its client. */
	fill_upload(&u, a, "x", 10, 0, 2000000000);
	assert_int_equal(db_upload_put(db, &u), 0);
	/* Nothing is 10 minutes old yet. */
	assert_int_equal(db_client_expire_pending(db, 600, &n), 0);
	assert_int_equal(n, 0);
	db_close(db);
	raw_sql(t.path, "UPDATE clients SET LastSeen = datetime('now', '-11 minutes') "
	    "WHERE Name IN ('old-pending', 'old-keyed');"
	    "INSERT INTO clients (ID, Name) VALUES (x'99999999999999999999999999999999', 'never');"
	    "INSERT INTO clients (ID, Name, LastSeen) VALUES "
	    "  (x'88888888888888888888888888888888', 'odd-time', 'not a time');");
	assert_int_equal(db_open(t.path, DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_expire_pending(db, -1, &n), SD_ERR_INVALID_ARG);
	assert_int_equal(db_client_expire_pending(db, 600, &n), 0);
	assert_int_equal(n, 2); /* old-pending, never */
	assert_int_equal(db_client_by_name(db, "old-pending", &c), SD_ERR_NOT_FOUND);
	assert_int_equal(db_client_by_name(db, "never", &c), SD_ERR_NOT_FOUND);
	assert_int_equal(db_client_by_name(db, "new-pending", &c), 0);
	assert_int_equal(db_client_by_name(db, "old-keyed", &c), 0);
	assert_int_equal(db_client_by_name(db, "odd-time", &c), 0);
	assert_int_equal(db_upload_get(db, a, "x", &u), SD_ERR_NOT_FOUND);
	/* The name is free again for anyone. */
	assert_int_equal(db_client_register_conn(db, "old-pending", b, NULL), SD_ERR_EXISTS);
	assert_int_equal(db_client_register_conn(db, "old-pending", a, NULL), 0);
	assert_int_equal(db_client_expire_pending(db, 600, NULL), 0);
	db_close(db);
	tmp_remove(&t);
}

struct names {
	int n;
	char name[8][NAME_FIELD_SIZE];
	int has_sha[8];
};

static int
collect_name(void *ctx, const struct db_file *f)
{
	struct names *k = ctx;

	if (k->n < 8) {
		snprintf(k->name[k->n], NAME_FIELD_SIZE, "%s", f->file_name);
		k->has_sha[k->n] = f->has_sha256;
	}
	k->n++;
	return 0;
}

/* Files: the SHA-256 column, setting it only on the row that was hashed, DELETE, LIST. */
static void
test_files_v4(void **state)
{
	struct db *db = NULL;
	struct db_file f, seen, g;
	struct names k;
	uint8_t a[CLIENT_ID_SIZE], b[CLIENT_ID_SIZE], sha[DB_SHA256_SIZE], sha2[DB_SHA256_SIZE];

	(void)state;
	make_id(a, 31);
	make_id(b, 32);
	memset(sha, 0x5a, sizeof(sha));
	memset(sha2, 0xa5, sizeof(sha2));
	assert_int_equal(db_open(":memory:", DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_register(db, "ann", a), 0);
	assert_int_equal(db_client_register(db, "ben", b), 0);

	/* Recorded with a hash, then again without: the stale hash goes. */
	fill_file(&f, a, "one", "a/one", 3, 30);
	f.has_sha256 = 1;
	memcpy(f.sha256, sha, sizeof(sha));
	assert_int_equal(db_file_record(db, &f), 0);
	assert_int_equal(db_file_get(db, a, "one", &g), 0);
	assert_true(g.has_sha256);
	assert_memory_equal(g.sha256, sha, sizeof(sha));
	fill_file(&f, a, "one", "a/one", 4, 40);
	assert_int_equal(db_file_record(db, &f), 0);
	assert_int_equal(db_file_get(db, a, "one", &seen), 0);
	assert_false(seen.has_sha256);

	/* First read of a version-3 file: the hash is set on the row that was read. */
	assert_int_equal(db_file_set_sha256(db, &seen, sha2), 0);
	assert_int_equal(db_file_get(db, a, "one", &g), 0);
	assert_true(g.has_sha256);
	assert_memory_equal(g.sha256, sha2, sizeof(sha2));
	/* A newer upload replaced the row while the old one was hashed: refused, and the new
	 * row keeps no hash. */
	fill_file(&f, a, "one", "a/one", 5, 50);
	assert_int_equal(db_file_record(db, &f), 0);
	assert_int_equal(db_file_set_sha256(db, &seen, sha), SD_ERR_NOT_FOUND);
	assert_int_equal(db_file_get(db, a, "one", &g), 0);
	assert_false(g.has_sha256);
	/* Same size and CRC but another upload time: refused too. */
	assert_int_equal(db_file_get(db, a, "one", &seen), 0);
	fill_file(&f, a, "one", "a/one", 5, 50);
	f.uploaded = seen.uploaded - 100;
	assert_int_equal(db_file_record(db, &f), 0);
	assert_int_equal(db_file_set_sha256(db, &seen, sha), SD_ERR_NOT_FOUND);

	/* LIST: the owner's verified files only, by name. */
	fill_file(&f, a, "zz", "a/zz", 1, 1);
	assert_int_equal(db_file_record(db, &f), 0);
	fill_file(&f, a, "mm", "a/mm", 1, 1);
	f.has_sha256 = 1;
	memcpy(f.sha256, sha, sizeof(sha));
	assert_int_equal(db_file_record(db, &f), 0);
	fill_file(&f, b, "bb", "b/bb", 1, 1);
	assert_int_equal(db_file_record(db, &f), 0);
	assert_int_equal(db_file_set_verified(db, a, "zz", 1), 0);
	assert_int_equal(db_file_set_verified(db, a, "mm", 1), 0);
	assert_int_equal(db_file_set_verified(db, b, "bb", 1), 0);
	memset(&k, 0, sizeof(k));
	assert_int_equal(db_each_verified_file(db, a, collect_name, &k), 0);
	assert_int_equal(k.n, 2);
	assert_string_equal(k.name[0], "mm");
	assert_true(k.has_sha[0]);
	assert_string_equal(k.name[1], "zz");
	assert_false(k.has_sha[1]);
	assert_int_equal(db_each_verified_file(db, NULL, collect_name, &k), SD_ERR_INVALID_ARG);

	/* DELETE: that row only; a second time, or another owner's name: not found. */
	assert_int_equal(db_file_delete(db, a, "zz"), 0);
	assert_int_equal(db_file_get(db, a, "zz", &g), SD_ERR_NOT_FOUND);
	assert_int_equal(db_file_delete(db, a, "zz"), SD_ERR_NOT_FOUND);
	assert_int_equal(db_file_delete(db, a, "bb"), SD_ERR_NOT_FOUND);
	assert_int_equal(db_file_delete(db, a, ""), SD_ERR_NOT_FOUND);
	assert_int_equal(db_file_get(db, b, "bb", &g), 0);
	memset(&k, 0, sizeof(k));
	assert_int_equal(db_each_verified_file(db, a, collect_name, &k), 0);
	assert_int_equal(k.n, 1);
	db_close(db);
}

/* Issue 9 item 1: intent, then publish in one step; the files row changes only at publish. */
static void
test_commit_publish(void **state)
{
	struct db *db = NULL;
	struct db_commit c, d;
	struct db_file f, g;
	uint8_t a[CLIENT_ID_SIZE], unknown[CLIENT_ID_SIZE], sha[DB_SHA256_SIZE];

	(void)state;
	make_id(a, 41);
	make_id(unknown, 42);
	memset(sha, 0x77, sizeof(sha));
	assert_int_equal(db_open(":memory:", DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_register(db, "cora", a), 0);
	/* The verified file now, and another file of the owner. */
	fill_file(&f, a, "r.txt", "A/r.txt", 5, 1);
	assert_int_equal(db_file_record(db, &f), 0);
	assert_int_equal(db_file_set_verified(db, a, "r.txt", 1), 0);
	fill_file(&f, a, "other", "A/other", 2, 2);
	assert_int_equal(db_file_record(db, &f), 0);

	/* (a) the intent. */
	fill_commit(&c, a, "r.txt", "A/.sealdrop-part-1", "A/r.txt", 9, 2);
	c.has_sha256 = 1;
	memcpy(c.sha256, sha, sizeof(sha));
	c.created = 1700000000;
	assert_int_equal(db_commit_add(db, &c), 0);
	assert_int_equal(db_commit_get(db, a, "r.txt", &d), 0);
	assert_string_equal(d.temp_path, "A/.sealdrop-part-1");
	assert_string_equal(d.path_name, "A/r.txt");
	assert_int_equal(d.size, 9);
	assert_int_equal(d.crc, 2);
	assert_true(d.has_sha256);
	assert_memory_equal(d.sha256, sha, sizeof(sha));
	assert_true(d.verified);
	assert_int_equal(d.created, 1700000000);
	/* Until published, the verified row is untouched. */
	assert_int_equal(db_file_get(db, a, "r.txt", &g), 0);
	assert_true(g.verified);
	assert_int_equal(g.size, 5);
	/* One intent per name and per stored path at a time; an owner must exist. */
	assert_int_equal(db_commit_add(db, &c), SD_ERR_EXISTS);
	fill_commit(&d, a, "y/r.txt", "A/.sealdrop-part-2", "A/r.txt", 1, 1);
	assert_int_equal(db_commit_add(db, &d), SD_ERR_EXISTS);
	fill_commit(&d, unknown, "r.txt", "B/.sealdrop-part-3", "B/r.txt", 1, 1);
	assert_int_equal(db_commit_add(db, &d), SD_ERR_NOT_FOUND);
	fill_commit(&d, a, "r.txt", "", "A/r.txt", 1, 1);
	assert_int_equal(db_commit_add(db, &d), SD_ERR_INVALID_ARG);
	fill_commit(&d, a, "z", "A/t", "A/z", (uint64_t)INT64_MAX + 1, 1);
	assert_int_equal(db_commit_add(db, &d), SD_ERR_INVALID_ARG);

	/* (c) publish: the row becomes the intent's, the intent goes. */
	assert_int_equal(db_commit_publish(db, a, "r.txt"), 0);
	assert_int_equal(db_file_get(db, a, "r.txt", &g), 0);
	assert_true(g.verified);
	assert_int_equal(g.size, 9);
	assert_int_equal(g.crc, 2);
	assert_true(g.has_sha256);
	assert_memory_equal(g.sha256, sha, sizeof(sha));
	assert_int_equal(g.uploaded, 1700000000);
	assert_string_equal(g.path_name, "A/r.txt");
	assert_int_equal(db_commit_get(db, a, "r.txt", &d), SD_ERR_NOT_FOUND);
	assert_int_equal(db_file_get(db, a, "other", &g), 0);
	/* Again: nothing to publish, nothing changes. */
	assert_int_equal(db_commit_publish(db, a, "r.txt"), SD_ERR_NOT_FOUND);
	assert_int_equal(db_file_get(db, a, "r.txt", &g), 0);
	assert_int_equal(g.size, 9);

	/* An unverified intent without a hash over that file, under another wire name stored at
	 * the same path: the old name's row goes (its bytes are replaced), no stale hash. */
	fill_commit(&c, a, "w/r.txt", "A/.sealdrop-part-4", "A/r.txt", 11, 3);
	c.verified = 0;
	assert_int_equal(db_commit_add(db, &c), 0);
	assert_int_equal(db_commit_publish(db, a, "w/r.txt"), 0);
	assert_int_equal(db_file_get(db, a, "r.txt", &g), SD_ERR_NOT_FOUND);
	assert_int_equal(db_file_get(db, a, "w/r.txt", &g), 0);
	assert_false(g.verified);
	assert_false(g.has_sha256);
	assert_int_equal(g.size, 11);
	assert_true(g.uploaded > 1700000000); /* created 0: now */

	/* A failed rename is undone by dropping the intent. */
	fill_commit(&c, a, "q", "A/.sealdrop-part-5", "A/q", 1, 1);
	assert_int_equal(db_commit_add(db, &c), 0);
	assert_int_equal(db_commit_delete(db, a, "q"), 0);
	assert_int_equal(db_commit_delete(db, a, "q"), SD_ERR_NOT_FOUND);
	assert_int_equal(db_commit_publish(db, a, "q"), SD_ERR_NOT_FOUND);
	assert_int_equal(db_file_get(db, a, "q", &g), SD_ERR_NOT_FOUND);
	db_close(db);
}

/* Publish is all or nothing: when its last step fails, the files rows are as before and the
 * intent is still there to roll forward. */
static void
test_publish_atomic(void **state)
{
	struct tmp t;
	struct db *db = NULL;
	struct db_commit c;
	struct db_file f, g;
	uint8_t a[CLIENT_ID_SIZE];

	(void)state;
	tmp_make(&t);
	make_id(a, 43);
	assert_int_equal(db_open(t.path, DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_register(db, "dora", a), 0);
	fill_file(&f, a, "s", "A/s", 5, 1);
	assert_int_equal(db_file_record(db, &f), 0);
	assert_int_equal(db_file_set_verified(db, a, "s", 1), 0);
	/* Another wire name for the same stored file: publishing it replaces the row of "s". */
	fill_commit(&c, a, "t/s", "A/.part", "A/s", 9, 2);
	assert_int_equal(db_commit_add(db, &c), 0);
	db_close(db);
	raw_sql(t.path, "CREATE TRIGGER no_delete BEFORE DELETE ON commits "
	    "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;");
	assert_int_equal(db_open(t.path, DB_READ_WRITE, &db), 0);
	assert_int_not_equal(db_commit_publish(db, a, "t/s"), 0);
	assert_string_equal(db_errmsg(db), "refused by the test");
	assert_int_equal(db_file_get(db, a, "s", &g), 0);
	assert_int_equal(g.size, 5);
	assert_true(g.verified);
	assert_int_equal(db_file_get(db, a, "t/s", &g), SD_ERR_NOT_FOUND);
	assert_int_equal(db_commit_get(db, a, "t/s", &c), 0);
	db_close(db);
	raw_sql(t.path, "DROP TRIGGER no_delete;");
	assert_int_equal(db_open(t.path, DB_READ_WRITE, &db), 0);
	assert_int_equal(db_commit_publish(db, a, "t/s"), 0);
	assert_int_equal(db_file_get(db, a, "s", &g), SD_ERR_NOT_FOUND);
	assert_int_equal(db_file_get(db, a, "t/s", &g), 0);
	assert_int_equal(g.size, 9);
	assert_true(g.verified);
	db_close(db);
	tmp_remove(&t);
}

struct roll {
	struct db *db;
	int seen;
	int stop_at;
	char order[8][NAME_FIELD_SIZE];
};

/* What the server does at start-up for each intent (the rename is left out here). */
static int
roll_forward(void *ctx, const struct db_commit *c)
{
	struct roll *k = ctx;
	int r;

	if (k->seen < 8)
		snprintf(k->order[k->seen], NAME_FIELD_SIZE, "%s", c->file_name);
	k->seen++;
	if (k->stop_at != 0 && k->seen == k->stop_at)
		return 7;
	if ((r = db_commit_publish(k->db, c->owner, c->file_name)) != 0)
		return r;
	/* A change to another intent during the walk is seen by the walk. */
	if (strcmp(c->file_name, "first") == 0)
		(void)db_commit_delete(k->db, c->owner, "third");
	return 0;
}

static void
test_each_commit(void **state)
{
	struct db *db = NULL;
	struct db_commit c;
	struct db_file g;
	struct roll k;
	uint8_t a[CLIENT_ID_SIZE], b[CLIENT_ID_SIZE];

	(void)state;
	make_id(a, 51);
	make_id(b, 52);
	assert_int_equal(db_open(":memory:", DB_READ_WRITE, &db), 0);
	memset(&k, 0, sizeof(k));
	k.db = db;
	assert_int_equal(db_each_commit(db, roll_forward, &k), 0);
	assert_int_equal(k.seen, 0);
	assert_int_equal(db_client_register(db, "eve", a), 0);
	assert_int_equal(db_client_register(db, "fay", b), 0);
	fill_commit(&c, b, "first", "B/.p1", "B/first", 1, 1);
	assert_int_equal(db_commit_add(db, &c), 0);
	fill_commit(&c, a, "second", "A/.p2", "A/second", 2, 2);
	assert_int_equal(db_commit_add(db, &c), 0);
	fill_commit(&c, b, "third", "B/.p3", "B/third", 3, 3);
	assert_int_equal(db_commit_add(db, &c), 0);
	fill_commit(&c, a, "fourth", "A/.p4", "A/fourth", 4, 4);
	assert_int_equal(db_commit_add(db, &c), 0);

	/* A callback's non-zero value stops the walk and comes back. */
	memset(&k, 0, sizeof(k));
	k.db = db;
	k.stop_at = 2;
	assert_int_equal(db_each_commit(db, roll_forward, &k), 7);
	assert_int_equal(k.seen, 2);
	assert_int_equal(db_file_get(db, b, "first", &g), 0);
	/* The rest, in the order they were recorded; "third" went during the first walk. */
	memset(&k, 0, sizeof(k));
	k.db = db;
	assert_int_equal(db_each_commit(db, roll_forward, &k), 0);
	assert_int_equal(k.seen, 2);
	assert_string_equal(k.order[0], "second");
	assert_string_equal(k.order[1], "fourth");
	assert_int_equal(db_file_get(db, a, "second", &g), 0);
	assert_int_equal(g.size, 2);
	assert_int_equal(db_file_get(db, a, "fourth", &g), 0);
	assert_int_equal(db_commit_get(db, b, "third", &c), SD_ERR_NOT_FOUND);
	assert_int_equal(db_file_get(db, b, "third", &g), SD_ERR_NOT_FOUND);
	memset(&k, 0, sizeof(k));
	k.db = db;
	assert_int_equal(db_each_commit(db, roll_forward, &k), 0);
	assert_int_equal(k.seen, 0);
	assert_int_equal(db_each_commit(db, NULL, &k), SD_ERR_INVALID_ARG);
	db_close(db);
}

struct uploads_seen {
	struct db *db;
	int n;
	int delete_each;
	char name[8][NAME_FIELD_SIZE];
};

static int
on_upload(void *ctx, const struct db_upload *u)
{
	struct uploads_seen *k = ctx;

	if (k->n < 8)
		snprintf(k->name[k->n], NAME_FIELD_SIZE, "%s", u->file_name);
	k->n++;
	if (k->delete_each)
		return db_upload_delete(k->db, u->owner, u->file_name);
	return 0;
}

/* Partial uploads: record, resume offset only forward, expiry, walks, deletion. */
static void
test_uploads(void **state)
{
	struct tmp t;
	struct db *db = NULL;
	struct db_upload u, v;
	struct uploads_seen k;
	uint8_t a[CLIENT_ID_SIZE], b[CLIENT_ID_SIZE], unknown[CLIENT_ID_SIZE];
	time_t before = time(NULL);

	(void)state;
	tmp_make(&t);
	make_id(a, 61);
	make_id(b, 62);
	make_id(unknown, 63);
	assert_int_equal(db_open(t.path, DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_register(db, "gus", a), 0);
	assert_int_equal(db_client_register(db, "hal", b), 0);

	assert_int_equal(db_upload_get(db, a, "big", &u), SD_ERR_NOT_FOUND);
	fill_upload(&u, a, "big", 5ull << 32, 0, 1900000000);
	assert_int_equal(db_upload_put(db, &u), 0);
	assert_int_equal(db_upload_get(db, a, "big", &v), 0);
	assert_memory_equal(v.owner, a, CLIENT_ID_SIZE);
	assert_string_equal(v.file_name, "big");
	assert_int_equal(v.size, 5ull << 32);
	assert_int_equal(v.offset, 0);
	assert_string_equal(v.temp_path, "owner/.sealdrop-part-big");
	assert_int_equal(v.expires, 1900000000);
	assert_true(v.created >= (int64_t)before);

	/* Forward only, within the size; expires 0 keeps it. */
	assert_int_equal(db_upload_set_offset(db, a, "big", 64ull << 20, 0), 0);
	assert_int_equal(db_upload_set_offset(db, a, "big", 64ull << 20, 1900000100), 0);
	assert_int_equal(db_upload_get(db, a, "big", &v), 0);
	assert_int_equal(v.offset, 64ull << 20);
	assert_int_equal(v.expires, 1900000100);
	assert_int_equal(db_upload_set_offset(db, a, "big", 1, 0), SD_ERR_BAD_FIELD);
	assert_int_equal(db_upload_set_offset(db, a, "big", (5ull << 32) + 1, 0), SD_ERR_BAD_FIELD);
	assert_int_equal(db_upload_get(db, a, "big", &v), 0);
	assert_int_equal(v.offset, 64ull << 20);
	assert_int_equal(db_upload_set_offset(db, a, "big", 5ull << 32, 0), 0);
	assert_int_equal(db_upload_set_offset(db, a, "nope", 1, 0), SD_ERR_NOT_FOUND);
	assert_int_equal(db_upload_set_offset(db, a, "big", (uint64_t)INT64_MAX + 1, 0),
	    SD_ERR_INVALID_ARG);

	/* Put again: replaced whole (another size means another upload). */
	fill_upload(&u, a, "big", 100, 0, 1900000200);
	snprintf(u.temp_path, sizeof(u.temp_path), "owner/.sealdrop-part-new");
	assert_int_equal(db_upload_put(db, &u), 0);
	assert_int_equal(db_upload_get(db, a, "big", &v), 0);
	assert_int_equal(v.size, 100);
	assert_int_equal(v.offset, 0);
	assert_string_equal(v.temp_path, "owner/.sealdrop-part-new");

	/* Refusals. */
	fill_upload(&u, a, "x", 10, 11, 1900000000);
	assert_int_equal(db_upload_put(db, &u), SD_ERR_INVALID_ARG);
	fill_upload(&u, a, "x", (uint64_t)INT64_MAX + 1, 0, 1900000000);
	assert_int_equal(db_upload_put(db, &u), SD_ERR_INVALID_ARG);
	fill_upload(&u, a, "x", 10, 0, 0);
	assert_int_equal(db_upload_put(db, &u), SD_ERR_INVALID_ARG);
	fill_upload(&u, a, "x", 10, 0, 253402300800);
	assert_int_equal(db_upload_put(db, &u), SD_ERR_INVALID_ARG);
	fill_upload(&u, unknown, "x", 10, 0, 1900000000);
	assert_int_equal(db_upload_put(db, &u), SD_ERR_NOT_FOUND);
	fill_upload(&u, a, "", 10, 0, 1900000000);
	assert_int_equal(db_upload_put(db, &u), SD_ERR_INVALID_ARG);
	/* Sizes up to 2^63 - 1 (SPEC-v4.md: up to 2^63). */
	fill_upload(&u, b, "huge", (uint64_t)INT64_MAX, (uint64_t)INT64_MAX - 1, 1900000000);
	assert_int_equal(db_upload_put(db, &u), 0);
	assert_int_equal(db_upload_get(db, b, "huge", &v), 0);
	assert_int_equal(v.size, (uint64_t)INT64_MAX);
	assert_int_equal(v.offset, (uint64_t)INT64_MAX - 1);

	/* Walks: all, one owner, expired (deleting as it goes). */
	fill_upload(&u, b, "early", 10, 5, 1000000000);
	assert_int_equal(db_upload_put(db, &u), 0);
	fill_upload(&u, a, "early-too", 10, 5, 1000000001);
	assert_int_equal(db_upload_put(db, &u), 0);
	memset(&k, 0, sizeof(k));
	assert_int_equal(db_each_upload(db, NULL, on_upload, &k), 0);
	assert_int_equal(k.n, 4);
	memset(&k, 0, sizeof(k));
	assert_int_equal(db_each_upload(db, b, on_upload, &k), 0);
	assert_int_equal(k.n, 2);
	assert_string_equal(k.name[0], "huge");
	assert_string_equal(k.name[1], "early");
	memset(&k, 0, sizeof(k));
	assert_int_equal(db_each_expired_upload(db, 1000000000, on_upload, &k), 0);
	assert_int_equal(k.n, 1);
	assert_string_equal(k.name[0], "early");
	memset(&k, 0, sizeof(k));
	k.db = db;
	k.delete_each = 1;
	assert_int_equal(db_each_expired_upload(db, 1500000000, on_upload, &k), 0);
	assert_int_equal(k.n, 2);
	assert_int_equal(db_upload_get(db, b, "early", &v), SD_ERR_NOT_FOUND);
	assert_int_equal(db_upload_get(db, a, "early-too", &v), SD_ERR_NOT_FOUND);
	memset(&k, 0, sizeof(k));
	assert_int_equal(db_each_upload(db, NULL, on_upload, &k), 0);
	assert_int_equal(k.n, 2);
	assert_int_equal(db_each_expired_upload(db, 0, on_upload, &k), SD_ERR_INVALID_ARG);
	/* Reconciliation drops every record whose temp file is gone: delete during the walk. */
	memset(&k, 0, sizeof(k));
	k.db = db;
	k.delete_each = 1;
	assert_int_equal(db_each_upload(db, NULL, on_upload, &k), 0);
	assert_int_equal(k.n, 2);
	assert_int_equal(db_upload_delete(db, a, "big"), SD_ERR_NOT_FOUND);
	memset(&k, 0, sizeof(k));
	assert_int_equal(db_each_upload(db, NULL, on_upload, &k), 0);
	assert_int_equal(k.n, 0);
	fill_upload(&u, a, "kept", 10, 0, 1900000000);
	assert_int_equal(db_upload_put(db, &u), 0);
	db_close(db);

	/* Stored as readable UTC text, as every time in this database. */
	assert_int_equal(raw_int(t.path, "SELECT count(*) FROM uploads WHERE "
	    "Expires = '2030-03-17 17:46:40' AND typeof(Created) = 'text'"), 1);
	tmp_remove(&t);
}

struct opener {
	const char *path;
	int index;
	int result;
};

static void *
open_and_register(void *arg)
{
	struct opener *o = arg;
	struct db *db = NULL;
	uint8_t id[CLIENT_ID_SIZE], key[PUBLIC_KEY_SIZE];
	char name[16];

	if ((o->result = db_open(o->path, DB_READ_WRITE, &db)) != 0)
		return NULL;
	memset(id, 0, sizeof(id));
	id[0] = (uint8_t)(0x20 + o->index);
	snprintf(name, sizeof(name), "n%02x", id[0]);
	make_key(key, id[0]);
	o->result = db_client_register_v4(db, name, id, key, sizeof(key), fp_a);
	db_close(db);
	return NULL;
}

/* Several workers start at once on a version-1 file: one upgrades, the others find it done;
 * all of them then work on version 2 (one of them gets the fingerprint). */
static void
test_upgrade_concurrent(void **state)
{
	struct tmp t;
	struct opener o[4];
	pthread_t th[4];
	int i, ok = 0, bound = 0;

	(void)state;
	tmp_make(&t);
	raw_sql(t.path, v1_schema);
	raw_sql(t.path, v1_rows);
	for (i = 0; i < 4; i++) {
		o[i].path = t.path;
		o[i].index = i;
		o[i].result = 1;
		assert_int_equal(pthread_create(&th[i], NULL, open_and_register, &o[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		ok += o[i].result == 0;
		bound += o[i].result == SD_ERR_BOUND;
	}
	assert_int_equal(ok, 1);
	assert_int_equal(bound, 3);
	assert_int_equal(raw_int(t.path, "PRAGMA user_version"), 2);
	assert_int_equal(raw_int(t.path, "SELECT count(*) FROM clients"), 3);
	assert_int_equal(raw_int(t.path, "SELECT count(*) FROM pragma_table_info('clients') "
	    "WHERE name = 'Fingerprint'"), 1);
	tmp_remove(&t);
}

/* A reader (sealdrop-db) cannot write to the new tables either. */
static void
test_read_only_v4(void **state)
{
	struct tmp t;
	struct db *db = NULL, *ro = NULL;
	struct db_upload u;
	struct db_commit c;
	uint8_t a[CLIENT_ID_SIZE], key[PUBLIC_KEY_SIZE];

	(void)state;
	tmp_make(&t);
	make_id(a, 71);
	make_key(key, 5);
	assert_int_equal(db_open(t.path, DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_register_v4(db, "ida", a, key, sizeof(key), fp_a), 0);
	assert_int_equal(db_open(t.path, DB_READ_ONLY, &ro), 0);
	fill_upload(&u, a, "x", 10, 0, 1900000000);
	assert_int_equal(db_upload_put(ro, &u), SD_ERR_DB);
	fill_commit(&c, a, "x", "A/.p", "A/x", 1, 1);
	assert_int_equal(db_commit_add(ro, &c), SD_ERR_DB);
	assert_int_equal(db_client_bind_fingerprint(ro, a, fp_b), SD_ERR_DB);
	assert_int_equal(db_client_register_v4(ro, "jo", key, key, sizeof(key), fp_c), SD_ERR_DB);
	assert_int_equal(db_client_expire_pending(ro, 0, NULL), SD_ERR_DB);
	assert_int_equal(db_upload_put(db, &u), 0);
	assert_int_equal(db_upload_get(ro, a, "x", &u), 0);
	db_close(ro);
	db_close(db);
	tmp_remove(&t);
}

/* Several servers: the record names its owner's file. Advancing, moving, dropping and
 * committing act only while it names the caller's file; otherwise NOT_FOUND and nothing
 * changes. The commit deletes the record and adds the intent in one transaction. */
static void
test_upload_owner(void **state)
{
	struct db *db = NULL;
	struct db_upload u, v;
	struct db_commit in, got;
	uint8_t a[CLIENT_ID_SIZE];

	(void)state;
	make_id(a, 71);
	assert_int_equal(db_open(":memory:", DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_register(db, "ivy", a), 0);
	fill_upload(&u, a, "f", 1000, 0, 1900000000);
	assert_int_equal(db_upload_put(db, &u), 0);
	assert_int_equal(db_upload_advance(db, a, "f", "owner/.sealdrop-part-f", 100, 1900000100),
	    0);
	assert_int_equal(db_upload_advance(db, a, "f", "owner/.sealdrop-part-x", 200, 0),
	    SD_ERR_NOT_FOUND);
	assert_int_equal(db_upload_advance(db, a, "f", "owner/.sealdrop-part-f", 50, 0),
	    SD_ERR_BAD_FIELD);
	assert_int_equal(db_upload_advance(db, a, "g", "owner/.sealdrop-part-f", 50, 0),
	    SD_ERR_NOT_FOUND);
	assert_int_equal(db_upload_get(db, a, "f", &v), 0);
	assert_int_equal(v.offset, 100);
	assert_int_equal(v.expires, 1900000100);

	/* Taken over: moved to another file at the durable offset. */
	fill_upload(&u, a, "f", 1000, 100, 1900000200);
	snprintf(u.temp_path, sizeof(u.temp_path), "owner/.sealdrop-part-b");
	assert_int_equal(db_upload_move(db, "owner/.sealdrop-part-x", &u), SD_ERR_NOT_FOUND);
	assert_int_equal(db_upload_move(db, "owner/.sealdrop-part-f", &u), 0);
	assert_int_equal(db_upload_get(db, a, "f", &v), 0);
	assert_string_equal(v.temp_path, "owner/.sealdrop-part-b");
	assert_int_equal(v.offset, 100);
	assert_int_equal(v.expires, 1900000200);
	/* The older owner can neither advance, drop nor commit any more. */
	assert_int_equal(db_upload_advance(db, a, "f", "owner/.sealdrop-part-f", 300, 0),
	    SD_ERR_NOT_FOUND);
	assert_int_equal(db_upload_drop(db, a, "f", "owner/.sealdrop-part-f"), SD_ERR_NOT_FOUND);
	memset(&in, 0, sizeof(in));
	memcpy(in.owner, a, CLIENT_ID_SIZE);
	snprintf(in.file_name, sizeof(in.file_name), "f");
	snprintf(in.temp_path, sizeof(in.temp_path), "owner/.sealdrop-part-f");
	snprintf(in.path_name, sizeof(in.path_name), "owner/f");
	in.size = 1000;
	in.crc = 7;
	in.verified = 1;
	assert_int_equal(db_upload_commit(db, &in), SD_ERR_NOT_FOUND);
	assert_int_equal(db_commit_get(db, a, "f", &got), SD_ERR_NOT_FOUND);
	assert_int_equal(db_upload_get(db, a, "f", &v), 0);

	/* An intent on the same path already: EXISTS, and the record stays (all or nothing). */
	snprintf(in.temp_path, sizeof(in.temp_path), "owner/.sealdrop-other");
	snprintf(in.file_name, sizeof(in.file_name), "other");
	assert_int_equal(db_commit_add(db, &in), 0);
	snprintf(in.file_name, sizeof(in.file_name), "f");
	snprintf(in.temp_path, sizeof(in.temp_path), "owner/.sealdrop-part-b");
	assert_int_equal(db_upload_commit(db, &in), SD_ERR_EXISTS);
	assert_int_equal(db_upload_get(db, a, "f", &v), 0);
	assert_int_equal(db_commit_delete(db, a, "other"), 0);

	/* The owner commits: record gone, intent there. */
	assert_int_equal(db_upload_commit(db, &in), 0);
	assert_int_equal(db_upload_get(db, a, "f", &v), SD_ERR_NOT_FOUND);
	assert_int_equal(db_commit_get(db, a, "f", &got), 0);
	assert_string_equal(got.temp_path, "owner/.sealdrop-part-b");
	assert_int_equal(db_commit_publish(db, a, "f"), 0);

	/* Drop only the named file's record. */
	fill_upload(&u, a, "h", 10, 0, 1900000000);
	assert_int_equal(db_upload_put(db, &u), 0);
	assert_int_equal(db_upload_drop(db, a, "h", "owner/.sealdrop-part-x"), SD_ERR_NOT_FOUND);
	assert_int_equal(db_upload_drop(db, a, "h", "owner/.sealdrop-part-h"), 0);
	assert_int_equal(db_upload_get(db, a, "h", &v), SD_ERR_NOT_FOUND);
	db_close(db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fresh_and_reopen),
		cmocka_unit_test(test_upgrade_v1),
		cmocka_unit_test(test_upgrade_all_or_nothing),
		cmocka_unit_test(test_upgrade_reference),
		cmocka_unit_test(test_upgrade_concurrent),
		cmocka_unit_test(test_v4_accounts),
		cmocka_unit_test(test_fingerprint_form),
		cmocka_unit_test(test_fingerprint_unique_in_schema),
		cmocka_unit_test(test_fingerprint_race),
		cmocka_unit_test(test_register_conn),
		cmocka_unit_test(test_expire_pending),
		cmocka_unit_test(test_files_v4),
		cmocka_unit_test(test_commit_publish),
		cmocka_unit_test(test_publish_atomic),
		cmocka_unit_test(test_each_commit),
		cmocka_unit_test(test_uploads),
		cmocka_unit_test(test_upload_owner),
		cmocka_unit_test(test_read_only_v4),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
