/* db.c: the server's store (db.h) on SQLite: opening and checking the schema, and the domain
 * functions, each over a statement prepared once per connection with bound parameters. A
 * database opened with a PostgreSQL connection string is served by db/pg.c instead: each
 * public function hands over to its dbpg_ namesake after the argument checks both share. (A
 * switch at the top of each function rather than a table of function pointers: the SQLite code
 * stays as it was, the one line says plainly where a PostgreSQL call goes, and a function
 * added to db.h on another branch merges as one more line, not a reshuffled table.) */
#include "db.h"
#include "pg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "../protocol/err.h"
#include "../protocol/hex.h"

/* Generated from db/schema.sql by the Makefile. */
extern const char db_schema_sql[];

#define DB_SCHEMA_VERSION 2
/* How long a statement waits for another connection's write lock before giving up. */
#define DB_BUSY_TIMEOUT_MS 5000
/* Switching to WAL needs a moment alone with the file; other openers may hold it briefly. */
#define DB_WAL_TRIES 100
#define DB_WAL_RETRY_MS 20

enum stmt_id {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_CLIENT_BY_NAME,
	ST_CLIENT_BY_ID,
	ST_CLIENT_BY_FINGERPRINT,
	ST_CLIENT_DELETE_PENDING,
	ST_CLIENT_DELETE_PENDING_ID,
	ST_CLIENT_EXPIRE_PENDING,
	ST_CLIENT_INSERT,
	ST_CLIENT_INSERT_V4,
	ST_CLIENT_SET_PUBKEY,
	ST_CLIENT_SET_AES,
	ST_CLIENT_SET_KEYS,
	ST_CLIENT_SET_FINGERPRINT,
	ST_CLIENT_TOUCH,
	ST_CLIENT_COPY,
	ST_FILE_DELETE_SAME_PATH,
	ST_FILE_RECORD,
	ST_FILE_SET_VERIFIED,
	ST_FILE_SET_SHA256,
	ST_FILE_GET,
	ST_FILE_DELETE,
	ST_FILE_COPY,
	ST_EACH_CLIENT,
	ST_EACH_FILE,
	ST_EACH_VERIFIED_FILE,
	ST_COMMIT_ADD,
	ST_COMMIT_GET,
	ST_COMMIT_NEXT,
	ST_COMMIT_DELETE_SAME_PATH,
	ST_COMMIT_PUBLISH,
	ST_COMMIT_DELETE,
	ST_UPLOAD_GET,
	ST_UPLOAD_PUT,
	ST_UPLOAD_SET_OFFSET,
	ST_UPLOAD_DELETE,
	ST_UPLOAD_NEXT,
	ST_UPLOAD_COPY,
	ST_UPLOAD_ADVANCE,
	ST_UPLOAD_MOVE,
	ST_UPLOAD_DROP,
	ST_INTEGRITY,
	ST_COUNT
};

/* A stored time as Unix seconds (NULL stays NULL), and Unix seconds as stored time. */
#define UNIX(col) "CAST(strftime('%s', " col ") AS INTEGER)"
#define STORED(param) "datetime(" param ", 'unixepoch')"
/* Every client SELECT yields: ID, Name, PublicKey, AESKey, LastSeen as Unix seconds,
 * Fingerprint. */
#define CLIENT_COLS "c.ID, c.Name, c.PublicKey, c.AESKey, " UNIX("c.LastSeen") ", c.Fingerprint"
#define CLIENT_NCOLS 6
/* Every file SELECT yields: ID, owner Name, FileName, PathName, Verified, Size, CRC, Uploaded,
 * SHA256. */
#define FILE_COLS "f.ID, c.Name, f.FileName, f.PathName, f.Verified, f.Size, f.CRC, " \
	UNIX("f.Uploaded") ", f.SHA256"
/* Every commit SELECT yields: ID, FileName, TempPath, PathName, Size, CRC, SHA256, Verified,
 * Created, rowid. */
#define COMMIT_COLS "m.ID, m.FileName, m.TempPath, m.PathName, m.Size, m.CRC, m.SHA256, " \
	"m.Verified, " UNIX("m.Created") ", m.rowid"
/* Every upload SELECT yields: ID, FileName, Size, Offset, TempPath, Expires, Created, rowid. */
#define UPLOAD_COLS "u.ID, u.FileName, u.Size, u.\"Offset\", u.TempPath, " UNIX("u.Expires") \
	", " UNIX("u.Created") ", u.rowid"

static const char *const stmt_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_CLIENT_BY_NAME] = "SELECT " CLIENT_COLS " FROM clients c WHERE c.Name = ?1",
	[ST_CLIENT_BY_ID] = "SELECT " CLIENT_COLS " FROM clients c WHERE c.ID = ?1",
	[ST_CLIENT_BY_FINGERPRINT] = "SELECT " CLIENT_COLS " FROM clients c "
	    "WHERE c.Fingerprint = ?1",
	[ST_CLIENT_DELETE_PENDING] = "DELETE FROM clients WHERE Name = ?1 AND PublicKey IS NULL",
	[ST_CLIENT_DELETE_PENDING_ID] = "DELETE FROM clients WHERE Name = ?1 AND ID = ?2 "
	    "AND PublicKey IS NULL",
	/* A LastSeen that SQLite cannot read as a time is left alone (a database of another
	 * server); one that is NULL never saw a request. */
	[ST_CLIENT_EXPIRE_PENDING] = "DELETE FROM clients WHERE PublicKey IS NULL AND "
	    "(LastSeen IS NULL OR " UNIX("LastSeen") " < " UNIX("'now'") " - ?1)",
	[ST_CLIENT_INSERT] = "INSERT INTO clients (ID, Name, LastSeen) "
	    "VALUES (?1, ?2, datetime('now'))",
	[ST_CLIENT_INSERT_V4] = "INSERT INTO clients (ID, Name, PublicKey, Fingerprint, LastSeen) "
	    "VALUES (?1, ?2, ?3, ?4, datetime('now'))",
	[ST_CLIENT_SET_PUBKEY] = "UPDATE clients SET PublicKey = ?2, LastSeen = datetime('now') "
	    "WHERE ID = ?1 AND PublicKey IS NULL",
	[ST_CLIENT_SET_AES] = "UPDATE clients SET AESKey = ?2, LastSeen = datetime('now') "
	    "WHERE ID = ?1",
	[ST_CLIENT_SET_KEYS] = "UPDATE clients SET PublicKey = ?2, AESKey = ?3, "
	    "LastSeen = datetime('now') WHERE ID = ?1 AND PublicKey IS NULL",
	[ST_CLIENT_SET_FINGERPRINT] = "UPDATE clients SET Fingerprint = ?2, "
	    "LastSeen = datetime('now') WHERE ID = ?1",
	[ST_CLIENT_TOUCH] = "UPDATE clients SET LastSeen = datetime('now') WHERE ID = ?1",
	[ST_CLIENT_COPY] = "INSERT INTO clients (ID, Name, PublicKey, LastSeen, AESKey, Fingerprint) "
	    "VALUES (?1, ?2, ?3, " STORED("?4") ", ?5, ?6) ON CONFLICT (ID) DO UPDATE SET "
	    "Name = excluded.Name, PublicKey = excluded.PublicKey, LastSeen = excluded.LastSeen, "
	    "AESKey = excluded.AESKey, Fingerprint = excluded.Fingerprint",
	[ST_FILE_DELETE_SAME_PATH] = "DELETE FROM files WHERE ID = ?1 AND PathName = ?2 "
	    "AND FileName <> ?3",
	[ST_FILE_RECORD] = "INSERT INTO files (ID, FileName, PathName, Verified, Size, CRC, Uploaded, "
	    "SHA256) VALUES (?1, ?2, ?3, 0, ?4, ?5, COALESCE(" STORED("?6") ", datetime('now')), ?7) "
	    "ON CONFLICT (ID, FileName) DO UPDATE SET PathName = excluded.PathName, Verified = 0, "
	    "Size = excluded.Size, CRC = excluded.CRC, Uploaded = excluded.Uploaded, "
	    "SHA256 = excluded.SHA256",
	[ST_FILE_SET_VERIFIED] = "UPDATE files SET Verified = ?3 WHERE ID = ?1 AND FileName = ?2",
	/* Only while the row still describes the file that was hashed. */
	[ST_FILE_SET_SHA256] = "UPDATE files SET SHA256 = ?7 WHERE ID = ?1 AND FileName = ?2 "
	    "AND PathName = ?3 AND Size = ?4 AND CRC = ?5 "
	    "AND COALESCE(" UNIX("Uploaded") ", 0) = ?6",
	[ST_FILE_GET] = "SELECT " FILE_COLS " FROM files f LEFT JOIN clients c ON c.ID = f.ID "
	    "WHERE f.ID = ?1 AND f.FileName = ?2",
	[ST_FILE_DELETE] = "DELETE FROM files WHERE ID = ?1 AND FileName = ?2",
	/* migrate: the row as it is (Uploaded NULL stays NULL), no other row touched. */
	[ST_FILE_COPY] = "INSERT INTO files (ID, FileName, PathName, Verified, Size, CRC, Uploaded, "
	    "SHA256) VALUES (?1, ?2, ?3, ?4, ?5, ?6, " STORED("?7") ", ?8) "
	    "ON CONFLICT (ID, FileName) DO UPDATE SET PathName = excluded.PathName, "
	    "Verified = excluded.Verified, Size = excluded.Size, CRC = excluded.CRC, "
	    "Uploaded = excluded.Uploaded, SHA256 = excluded.SHA256",
	[ST_EACH_CLIENT] = "SELECT " CLIENT_COLS ", "
	    "(SELECT count(*) FROM files f WHERE f.ID = c.ID) FROM clients c ORDER BY c.Name, c.ID",
	[ST_EACH_FILE] = "SELECT " FILE_COLS " FROM files f LEFT JOIN clients c ON c.ID = f.ID "
	    "WHERE (?1 IS NULL OR f.ID = ?1) AND (?2 = 0 OR f.Verified = 0) "
	    "ORDER BY c.Name, f.ID, f.FileName",
	[ST_EACH_VERIFIED_FILE] = "SELECT " FILE_COLS " FROM files f LEFT JOIN clients c "
	    "ON c.ID = f.ID WHERE f.ID = ?1 AND f.Verified = 1 ORDER BY f.FileName",
	[ST_COMMIT_ADD] = "INSERT INTO commits (ID, FileName, TempPath, PathName, Size, CRC, SHA256, "
	    "Verified, Created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
	    "COALESCE(" STORED("?9") ", datetime('now')))",
	[ST_COMMIT_GET] = "SELECT " COMMIT_COLS " FROM commits m WHERE m.ID = ?1 AND m.FileName = ?2",
	/* Walks by rowid, one row per run, so that the caller may change the table in between. */
	[ST_COMMIT_NEXT] = "SELECT " COMMIT_COLS " FROM commits m WHERE m.rowid > ?1 "
	    "ORDER BY m.rowid LIMIT 1",
	[ST_COMMIT_DELETE_SAME_PATH] = "DELETE FROM files WHERE ID = ?1 AND FileName <> ?2 AND "
	    "PathName = (SELECT PathName FROM commits WHERE ID = ?1 AND FileName = ?2)",
	/* (The WHERE tells SQLite's parser that ON starts the upsert, not a join.) */
	[ST_COMMIT_PUBLISH] = "INSERT INTO files (ID, FileName, PathName, Verified, Size, CRC, "
	    "Uploaded, SHA256) SELECT ID, FileName, PathName, Verified, Size, CRC, Created, SHA256 "
	    "FROM commits WHERE ID = ?1 AND FileName = ?2 "
	    "ON CONFLICT (ID, FileName) DO UPDATE SET PathName = excluded.PathName, "
	    "Verified = excluded.Verified, Size = excluded.Size, CRC = excluded.CRC, "
	    "Uploaded = excluded.Uploaded, SHA256 = excluded.SHA256",
	[ST_COMMIT_DELETE] = "DELETE FROM commits WHERE ID = ?1 AND FileName = ?2",
	[ST_UPLOAD_GET] = "SELECT " UPLOAD_COLS " FROM uploads u WHERE u.ID = ?1 AND u.FileName = ?2",
	[ST_UPLOAD_PUT] = "INSERT INTO uploads (ID, FileName, Size, \"Offset\", TempPath, Expires, "
	    "Created) VALUES (?1, ?2, ?3, ?4, ?5, " STORED("?6") ", datetime('now')) "
	    "ON CONFLICT (ID, FileName) DO UPDATE SET Size = excluded.Size, "
	    "\"Offset\" = excluded.\"Offset\", TempPath = excluded.TempPath, "
	    "Expires = excluded.Expires, Created = excluded.Created",
	[ST_UPLOAD_SET_OFFSET] = "UPDATE uploads SET \"Offset\" = ?3, "
	    "Expires = COALESCE(" STORED("?4") ", Expires) "
	    "WHERE ID = ?1 AND FileName = ?2 AND \"Offset\" <= ?3 AND ?3 <= Size",
	[ST_UPLOAD_DELETE] = "DELETE FROM uploads WHERE ID = ?1 AND FileName = ?2",
	/* ?2: one owner or NULL; ?3: expired at that Unix time, or NULL. */
	[ST_UPLOAD_NEXT] = "SELECT " UPLOAD_COLS " FROM uploads u WHERE u.rowid > ?1 "
	    "AND (?2 IS NULL OR u.ID = ?2) AND (?3 IS NULL OR u.Expires <= " STORED("?3") ") "
	    "ORDER BY u.rowid LIMIT 1",
	[ST_UPLOAD_COPY] = "INSERT INTO uploads (ID, FileName, Size, \"Offset\", TempPath, Expires, "
	    "Created) VALUES (?1, ?2, ?3, ?4, ?5, " STORED("?6") ", COALESCE(" STORED("?7") ", "
	    "datetime('now'))) ON CONFLICT (ID, FileName) DO UPDATE SET Size = excluded.Size, "
	    "\"Offset\" = excluded.\"Offset\", TempPath = excluded.TempPath, "
	    "Expires = excluded.Expires, Created = excluded.Created",
	/* The cross-server forms: only while the record still names the caller's file (?5, ?7,
	 * ?3). */
	[ST_UPLOAD_ADVANCE] = "UPDATE uploads SET \"Offset\" = ?3, "
	    "Expires = COALESCE(" STORED("?4") ", Expires) "
	    "WHERE ID = ?1 AND FileName = ?2 AND TempPath = ?5 AND \"Offset\" <= ?3 AND ?3 <= Size",
	[ST_UPLOAD_MOVE] = "UPDATE uploads SET Size = ?3, \"Offset\" = ?4, TempPath = ?5, "
	    "Expires = " STORED("?6") ", Created = datetime('now') "
	    "WHERE ID = ?1 AND FileName = ?2 AND TempPath = ?7",
	[ST_UPLOAD_DROP] = "DELETE FROM uploads WHERE ID = ?1 AND FileName = ?2 AND TempPath = ?3",
	[ST_INTEGRITY] = "PRAGMA integrity_check",
};

struct db {
	struct dbpg *pg;  /* non-NULL: PostgreSQL, and nothing below is used */
	sqlite3 *sql;
	sqlite3_stmt *st[ST_COUNT];
	int opening;  /* inside db_open: damage means "not a sealdrop database" */
	/* Copied at the failure, since a later reset or statement may change SQLite's own. */
	char errmsg[256];
};

/* Columns of a table that our statements need, and what an upgrade may add. */
struct column {
	const char *name;
	const char *add_sql; /* NULL: required from the start (the names of SPEC.md 8) */
};

static const struct column client_columns[] = {
	{ "ID", NULL }, { "Name", NULL }, { "PublicKey", NULL }, { "LastSeen", NULL },
	{ "AESKey", NULL },
	{ "Fingerprint", "ALTER TABLE clients ADD COLUMN Fingerprint TEXT" },
};
static const struct column file_columns[] = {
	{ "ID", NULL }, { "FileName", NULL }, { "PathName", NULL }, { "Verified", NULL },
	{ "Size", "ALTER TABLE files ADD COLUMN Size INTEGER NOT NULL DEFAULT 0" },
	{ "CRC", "ALTER TABLE files ADD COLUMN CRC INTEGER NOT NULL DEFAULT 0" },
	{ "Uploaded", "ALTER TABLE files ADD COLUMN Uploaded timestamp" },
	{ "SHA256", "ALTER TABLE files ADD COLUMN SHA256 BLOB(32) "
	    "CHECK (SHA256 IS NULL OR length(SHA256) = 32)" },
};
/* Databases of other servers of the protocol may lack the constraints our statements rely on
 * (a unique name, one row per owner and file name); an upgrade adds them as indexes, unless
 * a unique index on those columns exists (ours: from UNIQUE in CREATE TABLE). */
struct unique_index {
	const char *table;
	const char *columns;  /* as group_concat(name, ',') of pragma_index_info lists them */
	const char *create_sql;
};
static const struct unique_index upgrade_indexes[] = {
	{ "clients", "Name", "CREATE UNIQUE INDEX IF NOT EXISTS clients_name ON clients (Name)" },
	{ "files", "ID,FileName",
	    "CREATE UNIQUE INDEX IF NOT EXISTS files_owner_name ON files (ID, FileName)" },
};
/* Tables of version 2 that an upgrade creates whole (db_schema_sql, run again). */
#define DB_V2_TABLES_SQL "SELECT count(*) FROM sqlite_master WHERE type = 'table' " \
	"AND name IN ('commits', 'uploads')"
#define DB_V2_TABLES 2

/* Clears a copy of key material in a way the compiler keeps (the db library stands alone, so
 * it does not borrow crypto_wipe). */
static void
wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;

	while (n-- > 0)
		*v++ = 0;
}

static void
save_errmsg(struct db *db)
{
	snprintf(db->errmsg, sizeof(db->errmsg), "%s", sqlite3_errmsg(db->sql));
}

/* Maps a failed SQLite result to our codes. While opening, a file that is not a database (or
 * is too damaged to read its schema) is not a sealdrop database; later, damage found in some
 * page is a database failure like any other, with SQLite's message in db_errmsg(). */
static int
sql_fail(struct db *db, int rc)
{
	save_errmsg(db);
	if (db->opening && (rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT))
		return SD_ERR_SCHEMA;
	if (rc == SQLITE_CANTOPEN || rc == SQLITE_IOERR)
		return SD_ERR_IO;
	return SD_ERR_DB;
}

/* Makes a statement ready for its next use and drops references to the caller's buffers. */
static void
stmt_done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/* Runs a statement that returns no rows; resets it. */
static int
stmt_exec(struct db *db, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);
	int r = 0;

	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		if ((rc & 0xff) == SQLITE_CONSTRAINT) {
			save_errmsg(db);
			/* Our foreign keys all name the owner: no such client. Any other constraint
			 * is a unique one: the record exists. */
			r = sqlite3_extended_errcode(db->sql) == SQLITE_CONSTRAINT_FOREIGNKEY ?
			    SD_ERR_NOT_FOUND : SD_ERR_EXISTS;
		} else
			r = sql_fail(db, rc);
	}
	stmt_done(s);
	return r;
}

/* Transactions. Every write of more than one statement runs between tx_begin and tx_commit;
 * on any failure the caller goes to its exit and calls tx_abort. */
static int
tx_begin(struct db *db)
{
	/* IMMEDIATE takes the write lock first, so what we read inside stays true. */
	return stmt_exec(db, db->st[ST_BEGIN]);
}

static int
tx_commit(struct db *db)
{
	return stmt_exec(db, db->st[ST_COMMIT]);
}

/* Ends a failed transaction, unless SQLite has ended it already: after some errors (a full
 * disk, I/O errors) it rolls back by itself, and a ROLLBACK then only fails with "cannot
 * rollback - no transaction is active". Never touches db->errmsg: the first error's message
 * is the one that says why. */
static void
tx_abort(struct db *db)
{
	sqlite3_stmt *s = db->st[ST_ROLLBACK];

	if (sqlite3_get_autocommit(db->sql))
		return;
	(void)sqlite3_step(s);
	sqlite3_reset(s);
}

/* Binds text of at most NAME_MAX_LEN bytes (the longest string field of the protocol). */
static int
bind_name(sqlite3_stmt *s, int i, const char *name)
{
	size_t n;

	if (name == NULL)
		return SD_ERR_INVALID_ARG;
	n = strnlen(name, NAME_MAX_LEN + 1);
	if (n == 0 || n > NAME_MAX_LEN)
		return SD_ERR_INVALID_ARG;
	return sqlite3_bind_text(s, i, name, (int)n, SQLITE_STATIC) == SQLITE_OK ? 0 : SD_ERR_DB;
}

static int
bind_id(sqlite3_stmt *s, int i, const uint8_t id[CLIENT_ID_SIZE])
{
	if (id == NULL)
		return SD_ERR_INVALID_ARG;
	return sqlite3_bind_blob(s, i, id, CLIENT_ID_SIZE, SQLITE_STATIC) == SQLITE_OK ? 0 :
	    SD_ERR_DB;
}

/* A fingerprint in the one spelling SPEC-v4.md 1 gives it: "SHA256:" and 43 characters of
 * standard base64 without padding, the last one canonical (its two unused bits zero), so that
 * one certificate cannot be bound twice under two spellings. */
int
db_valid_fingerprint(const char *fp)
{
	static const char prefix[] = "SHA256:";
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = NULL;
	size_t i;

	if (fp == NULL || strnlen(fp, DB_FINGERPRINT_LEN + 1) != DB_FINGERPRINT_LEN ||
	    strncmp(fp, prefix, sizeof(prefix) - 1) != 0)
		return 0;
	for (i = sizeof(prefix) - 1; i < DB_FINGERPRINT_LEN; i++)
		if ((p = strchr(b64, fp[i])) == NULL)
			return 0;
	/* 256 bits: 42 characters of 6 bits, then one with the last 4 bits and 2 zero bits. */
	return ((p - b64) & 3) == 0;
}

static int
bind_fingerprint(sqlite3_stmt *s, int i, const char *fp)
{
	if (!db_valid_fingerprint(fp))
		return SD_ERR_INVALID_ARG;
	return sqlite3_bind_text(s, i, fp, (int)DB_FINGERPRINT_LEN, SQLITE_STATIC) == SQLITE_OK ?
	    0 : SD_ERR_DB;
}

/* A SHA-256, or NULL when has is 0. */
static int
bind_sha256(sqlite3_stmt *s, int i, int has, const uint8_t sha[DB_SHA256_SIZE])
{
	int rc = has ? sqlite3_bind_blob(s, i, sha, DB_SHA256_SIZE, SQLITE_STATIC) :
	    sqlite3_bind_null(s, i);

	return rc == SQLITE_OK ? 0 : SD_ERR_DB;
}

/* A size or offset: SQLite integers are signed 64-bit. */
static int
bind_u64(sqlite3_stmt *s, int i, uint64_t v)
{
	if (v > (uint64_t)INT64_MAX)
		return SD_ERR_INVALID_ARG;
	return sqlite3_bind_int64(s, i, (sqlite3_int64)v) == SQLITE_OK ? 0 : SD_ERR_DB;
}

/* Unix seconds that datetime() can store (up to 9999-12-31 23:59:59); 0 binds NULL ("now" or
 * "keep", as the statement says). */
#define DB_TIME_MAX 253402300799
static int
bind_time(sqlite3_stmt *s, int i, int64_t t)
{
	if (t < 0 || t > DB_TIME_MAX)
		return SD_ERR_INVALID_ARG;
	return (t == 0 ? sqlite3_bind_null(s, i) : sqlite3_bind_int64(s, i, t)) == SQLITE_OK ? 0 :
	    SD_ERR_DB;
}

/* Copies a text column into a fixed field, NUL-terminated. A longer value (only possible in a
 * database written by something else) is cut rather than refused, so that the inspect tool
 * can still show the rest. */
static void
col_text(sqlite3_stmt *s, int i, char *out, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	int n = sqlite3_column_bytes(s, i);
	size_t len = n > 0 ? (size_t)n : 0;

	if (t == NULL)
		len = 0;
	if (len > cap - 1)
		len = cap - 1;
	if (len > 0)
		memcpy(out, t, len);
	out[len] = '\0';
}

/* Copies a blob column into a fixed field; returns the bytes copied (0 for NULL). */
static size_t
col_blob(sqlite3_stmt *s, int i, uint8_t *out, size_t cap)
{
	const void *b = sqlite3_column_blob(s, i);
	int n = sqlite3_column_bytes(s, i);
	size_t len = n > 0 ? (size_t)n : 0;

	if (b == NULL)
		return 0;
	if (len > cap)
		len = cap;
	memcpy(out, b, len);
	return len;
}

static void
read_client(sqlite3_stmt *s, struct db_client *c)
{
	memset(c, 0, sizeof(*c));
	col_blob(s, 0, c->id, sizeof(c->id));
	col_text(s, 1, c->name, sizeof(c->name));
	if (sqlite3_column_type(s, 2) != SQLITE_NULL) {
		c->has_public_key = 1;
		c->public_key_len = col_blob(s, 2, c->public_key, sizeof(c->public_key));
	}
	if (sqlite3_column_type(s, 3) != SQLITE_NULL) {
		c->has_aes_key = 1;
		col_blob(s, 3, c->aes_key, sizeof(c->aes_key));
	}
	c->last_seen = sqlite3_column_int64(s, 4);
	col_text(s, 5, c->fingerprint, sizeof(c->fingerprint));
}

/* A SHA256 column: *has is 1 only for a blob of exactly DB_SHA256_SIZE bytes. */
static void
col_sha256(sqlite3_stmt *s, int i, int *has, uint8_t out[DB_SHA256_SIZE])
{
	*has = sqlite3_column_type(s, i) == SQLITE_BLOB &&
	    sqlite3_column_bytes(s, i) == (int)DB_SHA256_SIZE;
	if (*has)
		col_blob(s, i, out, DB_SHA256_SIZE);
}

/* A size column as uint64_t (a negative value, only from another writer, reads as 0). */
static uint64_t
col_u64(sqlite3_stmt *s, int i)
{
	sqlite3_int64 v = sqlite3_column_int64(s, i);

	return v > 0 ? (uint64_t)v : 0;
}

static void
read_file(sqlite3_stmt *s, struct db_file *f)
{
	sqlite3_int64 size = sqlite3_column_int64(s, 5);
	sqlite3_int64 crc = sqlite3_column_int64(s, 6);

	memset(f, 0, sizeof(*f));
	col_blob(s, 0, f->owner, sizeof(f->owner));
	col_text(s, 1, f->owner_name, sizeof(f->owner_name));
	col_text(s, 2, f->file_name, sizeof(f->file_name));
	col_text(s, 3, f->path_name, sizeof(f->path_name));
	f->verified = sqlite3_column_int(s, 4) != 0;
	f->size = size > 0 ? (uint64_t)size : 0;
	f->crc = (uint32_t)((uint64_t)crc & 0xffffffffu);
	f->uploaded = sqlite3_column_int64(s, 7);
	col_sha256(s, 8, &f->has_sha256, f->sha256);
}

static void
read_commit(sqlite3_stmt *s, struct db_commit *c)
{
	memset(c, 0, sizeof(*c));
	col_blob(s, 0, c->owner, sizeof(c->owner));
	col_text(s, 1, c->file_name, sizeof(c->file_name));
	col_text(s, 2, c->temp_path, sizeof(c->temp_path));
	col_text(s, 3, c->path_name, sizeof(c->path_name));
	c->size = col_u64(s, 4);
	c->crc = (uint32_t)((uint64_t)sqlite3_column_int64(s, 5) & 0xffffffffu);
	col_sha256(s, 6, &c->has_sha256, c->sha256);
	c->verified = sqlite3_column_int(s, 7) != 0;
	c->created = sqlite3_column_int64(s, 8);
}

static void
read_upload(sqlite3_stmt *s, struct db_upload *u)
{
	memset(u, 0, sizeof(*u));
	col_blob(s, 0, u->owner, sizeof(u->owner));
	col_text(s, 1, u->file_name, sizeof(u->file_name));
	u->size = col_u64(s, 2);
	u->offset = col_u64(s, 3);
	col_text(s, 4, u->temp_path, sizeof(u->temp_path));
	u->expires = sqlite3_column_int64(s, 5);
	u->created = sqlite3_column_int64(s, 6);
}

/* Runs SQL text that is ours (the schema, fixed upgrade statements), never built from input. */
static int
exec_fixed(struct db *db, const char *sql)
{
	int rc = sqlite3_exec(db->sql, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : sql_fail(db, rc);
}

static int
pragma_int(struct db *db, const char *sql, int *out)
{
	sqlite3_stmt *s = NULL;
	int rc, r;

	*out = 0;
	if ((rc = sqlite3_prepare_v2(db->sql, sql, -1, &s, NULL)) != SQLITE_OK) {
		r = sql_fail(db, rc);
		goto out;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int(s, 0);
	else if (rc != SQLITE_DONE) {
		r = sql_fail(db, rc);
		goto out;
	}
	r = 0;
out:
	sqlite3_finalize(s);
	return r;
}

/* How many of a table's columns are there: *found counts all of them, *required those that
 * SPEC.md names. A missing table gives 0 and 0. */
static int
count_columns(struct db *db, const char *table, const struct column *cols, size_t ncols,
    size_t *found, size_t *required_found)
{
	sqlite3_stmt *s = NULL;
	int rc, r;
	size_t i;

	*found = *required_found = 0;
	if ((rc = sqlite3_prepare_v2(db->sql, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2",
	    -1, &s, NULL)) != SQLITE_OK) {
		r = sql_fail(db, rc);
		goto out;
	}
	for (i = 0; i < ncols; i++) {
		if (sqlite3_bind_text(s, 1, table, -1, SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_text(s, 2, cols[i].name, -1, SQLITE_STATIC) != SQLITE_OK) {
			r = sql_fail(db, SQLITE_ERROR);
			goto out;
		}
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			(*found)++;
			if (cols[i].add_sql == NULL)
				(*required_found)++;
		} else if (rc != SQLITE_DONE) {
			r = sql_fail(db, rc);
			goto out;
		}
		sqlite3_reset(s);
	}
	r = 0;
out:
	sqlite3_finalize(s);
	return r;
}

static size_t
count_required(const struct column *cols, size_t n)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		k += cols[i].add_sql == NULL;
	return k;
}

#define NCOLS(a) (sizeof(a) / sizeof((a)[0]))

/* Looks at what the file holds. *state: 0 empty (no tables of ours, nothing else either),
 * 1 complete, 2 upgradable (the names of SPEC.md 8 are there, some extra columns or tables of
 * a later version are not). A file with other tables only, or with our tables missing
 * required columns: SD_ERR_SCHEMA. */
static int
inspect_schema(struct db *db, int *state)
{
	size_t cf, cr, ff, fr;
	int version, tables, v2_tables, r;

	*state = 0;
	if ((r = pragma_int(db, "PRAGMA user_version", &version)) != 0 ||
	    (r = pragma_int(db, "SELECT count(*) FROM sqlite_master", &tables)) != 0 ||
	    (r = pragma_int(db, DB_V2_TABLES_SQL, &v2_tables)) != 0 ||
	    (r = count_columns(db, "clients", client_columns, NCOLS(client_columns), &cf, &cr)) != 0 ||
	    (r = count_columns(db, "files", file_columns, NCOLS(file_columns), &ff, &fr)) != 0)
		return r;
	if (version > DB_SCHEMA_VERSION) {
		snprintf(db->errmsg, sizeof(db->errmsg), "schema version %d is newer than %d",
		    version, DB_SCHEMA_VERSION);
		return SD_ERR_SCHEMA;
	}
	if (tables == 0 && cf == 0 && ff == 0)
		return 0;
	if (cr != count_required(client_columns, NCOLS(client_columns)) ||
	    fr != count_required(file_columns, NCOLS(file_columns))) {
		snprintf(db->errmsg, sizeof(db->errmsg), "no sealdrop tables (clients, files)");
		return SD_ERR_SCHEMA;
	}
	*state = (cf == NCOLS(client_columns) && ff == NCOLS(file_columns) &&
	    v2_tables == DB_V2_TABLES && version == DB_SCHEMA_VERSION) ? 1 : 2;
	return 0;
}

/* Is there a unique index (not partial) on exactly these columns of the table? */
static int
has_unique_index(struct db *db, const struct unique_index *u, int *found)
{
	sqlite3_stmt *s = NULL;
	int rc, r;

	*found = 0;
	if ((rc = sqlite3_prepare_v2(db->sql, "SELECT count(*) FROM pragma_index_list(?1) l "
	    "WHERE l.\"unique\" = 1 AND l.partial = 0 AND (SELECT group_concat(i.name, ',') "
	    "FROM pragma_index_info(l.name) i) = ?2", -1, &s, NULL)) != SQLITE_OK) {
		r = sql_fail(db, rc);
		goto out;
	}
	if (sqlite3_bind_text(s, 1, u->table, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 2, u->columns, -1, SQLITE_STATIC) != SQLITE_OK) {
		r = sql_fail(db, SQLITE_ERROR);
		goto out;
	}
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		r = sql_fail(db, rc);
		goto out;
	}
	*found = sqlite3_column_int(s, 0) > 0;
	r = 0;
out:
	sqlite3_finalize(s);
	return r;
}

/* Runs one upgrade statement. What the file holds decides whether it can work (duplicate
 * names where we add a unique index, a table or index of another shape under one of our
 * names): those failures mean "not a sealdrop database we can serve"; a full disk or an I/O
 * error stays what it is. */
static int
exec_upgrade(struct db *db, const char *sql)
{
	int rc = sqlite3_exec(db->sql, sql, NULL, NULL, NULL);

	if (rc == SQLITE_OK)
		return 0;
	if (rc == SQLITE_ERROR || rc == SQLITE_CONSTRAINT) {
		save_errmsg(db);
		return SD_ERR_SCHEMA;
	}
	return sql_fail(db, rc);
}

/* Adds the columns of one table that a later version brought. */
static int
add_columns(struct db *db, const char *table, const struct column *cols, size_t n)
{
	size_t i, cf, cr;
	int r;

	for (i = 0; i < n; i++) {
		if (cols[i].add_sql == NULL)
			continue;
		if ((r = count_columns(db, table, &cols[i], 1, &cf, &cr)) != 0)
			return r;
		if (cf == 0 && (r = exec_upgrade(db, cols[i].add_sql)) != 0)
			return r;
	}
	return 0;
}

/* Creates or upgrades the schema in one write transaction: a failure anywhere leaves the file
 * as it was. Another connection may have done it between our look and our lock, so we look
 * again once we hold the lock. An upgrade adds the missing columns (to version 1 or to a
 * reference server's tables), the unique indexes a foreign database lacks, then runs the
 * schema again (every statement of it is idempotent: new tables, new indexes, the version). */
static int
create_or_upgrade(struct db *db)
{
	int state, found, r, in_tx = 0;
	size_t i;

	if ((r = exec_fixed(db, "BEGIN IMMEDIATE")) != 0)
		goto out;
	in_tx = 1;
	if ((r = inspect_schema(db, &state)) != 0)
		goto out;
	if (state == 0) {
		if ((r = exec_fixed(db, db_schema_sql)) != 0)
			goto out;
	} else if (state == 2) {
		if ((r = add_columns(db, "clients", client_columns, NCOLS(client_columns))) != 0 ||
		    (r = add_columns(db, "files", file_columns, NCOLS(file_columns))) != 0)
			goto out;
		for (i = 0; i < NCOLS(upgrade_indexes); i++) {
			if ((r = has_unique_index(db, &upgrade_indexes[i], &found)) != 0)
				goto out;
			/* Duplicate names or rows: not something we can serve from. */
			if (!found && (r = exec_upgrade(db, upgrade_indexes[i].create_sql)) != 0)
				goto out;
		}
		if ((r = exec_upgrade(db, db_schema_sql)) != 0)
			goto out;
	}
	if ((r = exec_fixed(db, "COMMIT")) != 0)
		goto out;
	in_tx = 0;
	r = 0;
out:
	/* As tx_abort: not after SQLite ended the transaction itself, and keep the message. */
	if (in_tx && !sqlite3_get_autocommit(db->sql))
		sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

/* WAL lets readers (the inspect tool, other workers) run while one connection writes. */
static int
enable_wal(struct db *db)
{
	int tries, rc;

	for (tries = 0; tries < DB_WAL_TRIES; tries++) {
		rc = sqlite3_exec(db->sql, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			return 0;
		if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
			return sql_fail(db, rc);
		sqlite3_sleep(DB_WAL_RETRY_MS);
	}
	return sql_fail(db, rc);
}

int
db_is_postgres(const char *target)
{
	return dbpg_is_conninfo(target);
}

void
db_describe_target(const char *target, char *out, size_t cap)
{
	if (cap == 0)
		return;
	if (target == NULL)
		target = "";
	if (db_is_postgres(target))
		dbpg_describe(target, out, cap);
	else
		snprintf(out, cap, "%s", target);
}

int
db_client_copy(struct db *db, const struct db_client *c)
{
	sqlite3_stmt *s;
	int r;

	if (db == NULL || c == NULL || c->public_key_len > PUBLIC_KEY_SIZE ||
	    (c->fingerprint[0] != '\0' && !db_valid_fingerprint(c->fingerprint)))
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_client_copy(db->pg, c);
	s = db->st[ST_CLIENT_COPY];
	if ((r = bind_id(s, 1, c->id)) != 0 || (r = bind_name(s, 2, c->name)) != 0 ||
	    (r = bind_time(s, 4, c->last_seen > 0 ? c->last_seen : 0)) != 0 ||
	    (c->fingerprint[0] != '\0' && (r = bind_fingerprint(s, 6, c->fingerprint)) != 0))
		goto out;
	if ((c->has_public_key && sqlite3_bind_blob(s, 3, c->public_key, (int)c->public_key_len,
	    SQLITE_STATIC) != SQLITE_OK) || (c->has_aes_key && sqlite3_bind_blob(s, 5, c->aes_key,
	    AES_KEY_SIZE, SQLITE_STATIC) != SQLITE_OK)) {
		r = SD_ERR_DB;
		goto out;
	}
	return stmt_exec(db, s);
out:
	stmt_done(s);
	return r;
}

int
db_set_busy_timeout(struct db *db, unsigned ms)
{
	if (db == NULL || ms > INT32_MAX)
		return SD_ERR_INVALID_ARG;
	/* PostgreSQL locks rows and tables, not the database: the same bound on a lock wait. */
	if (db->pg != NULL)
		return dbpg_set_lock_timeout(db->pg, ms);
	if (sqlite3_busy_timeout(db->sql, (int)ms) != SQLITE_OK)
		return sql_fail(db, SQLITE_ERROR);
	return 0;
}

int
db_open(const char *path, enum db_open_mode mode, struct db **out)
{
	return db_open_why(path, mode, out, NULL, 0);
}

int
db_open_why(const char *path, enum db_open_mode mode, struct db **out, char *why,
    size_t why_cap)
{
	struct db *db = NULL;
	struct stat st;
	int flags, rc, r, state;
	size_t i;

	if (out != NULL)
		*out = NULL;
	if (why != NULL && why_cap > 0)
		why[0] = '\0';
	if (path == NULL || out == NULL || (mode != DB_READ_WRITE && mode != DB_READ_ONLY))
		return SD_ERR_INVALID_ARG;
	if (dbpg_is_conninfo(path)) {
		if ((db = calloc(1, sizeof(*db))) == NULL)
			return SD_ERR_ALLOC;
		if ((r = dbpg_open(path, mode, &db->pg, why, why_cap)) != 0) {
			free(db);
			return r;
		}
		*out = db;
		return 0;
	}
	/* SQLite says only "unable to open" for a missing file; tell missing from unreadable. */
	if (mode == DB_READ_ONLY && stat(path, &st) != 0)
		return errno == ENOENT ? SD_ERR_NOT_FOUND : SD_ERR_IO;
	if ((db = calloc(1, sizeof(*db))) == NULL)
		return SD_ERR_ALLOC;
	db->opening = 1;
	/* One connection per thread: SQLite's own mutexes on it would only cost time. */
	flags = SQLITE_OPEN_NOMUTEX | (mode == DB_READ_ONLY ? SQLITE_OPEN_READONLY :
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	if ((rc = sqlite3_open_v2(path, &db->sql, flags, NULL)) != SQLITE_OK) {
		r = db->sql != NULL ? sql_fail(db, rc) : SD_ERR_ALLOC;
		goto out;
	}
	sqlite3_extended_result_codes(db->sql, 0);
	if ((rc = sqlite3_busy_timeout(db->sql, DB_BUSY_TIMEOUT_MS)) != SQLITE_OK) {
		r = sql_fail(db, rc);
		goto out;
	}
	if (mode == DB_READ_WRITE) {
		if ((r = enable_wal(db)) != 0 || (r = create_or_upgrade(db)) != 0)
			goto out;
		if ((r = exec_fixed(db, "PRAGMA foreign_keys = ON")) != 0)
			goto out;
		/* In WAL mode NORMAL stays consistent through any crash and saves an fsync per
		 * commit; an OS crash or power loss may roll back the last commits (a client then
		 * registers again, a verified mark reverts to unverified). Stored files are
		 * fsynced by the server before their row is written. */
		if ((r = exec_fixed(db, "PRAGMA synchronous = NORMAL")) != 0)
			goto out;
	}
	if ((r = inspect_schema(db, &state)) != 0)
		goto out;
	if (state != 1) {
		snprintf(db->errmsg, sizeof(db->errmsg), state == 0 ? "no sealdrop tables" :
		    "sealdrop tables of an older version");
		r = SD_ERR_SCHEMA;
		goto out;
	}
	for (i = 0; i < ST_COUNT; i++) {
		if ((rc = sqlite3_prepare_v3(db->sql, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		    &db->st[i], NULL)) != SQLITE_OK) {
			/* Our tables are there, so a statement that does not prepare means columns
			 * of another shape than ours. */
			save_errmsg(db);
			r = SD_ERR_SCHEMA;
			goto out;
		}
	}
	db->opening = 0;
	*out = db;
	db = NULL;
	r = 0;
out:
	if (why != NULL && why_cap > 0)
		snprintf(why, why_cap, "%s", r != 0 && db != NULL ? db->errmsg :
		    "");
	db_close(db);
	return r;
}

void
db_close(struct db *db)
{
	size_t i;

	if (db == NULL)
		return;
	dbpg_close(db->pg);
	for (i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(db->st[i]);
	sqlite3_close(db->sql);
	free(db);
}

const char *
db_errmsg(const struct db *db)
{
	if (db == NULL)
		return "no database";
	if (db->pg != NULL)
		return dbpg_errmsg(db->pg);
	return db->errmsg;
}

/* Steps a statement that returns at most one row: 0 with the row current, SD_ERR_NOT_FOUND
 * without one, or the failure. The caller still resets s. */
static int
step_row(struct db *db, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? SD_ERR_NOT_FOUND : sql_fail(db, rc);
}

/* Runs a statement that returns at most one client row. */
static int
one_client(struct db *db, sqlite3_stmt *s, struct db_client *out)
{
	int r = step_row(db, s);

	if (r == 0)
		read_client(s, out);
	stmt_done(s);
	return r;
}

int
db_client_by_name(struct db *db, const char *name, struct db_client *out)
{
	sqlite3_stmt *s;
	int r;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (db == NULL || out == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_client_by_name(db->pg, name, out);
	s = db->st[ST_CLIENT_BY_NAME];
	if ((r = bind_name(s, 1, name)) != 0) {
		stmt_done(s);
		return r == SD_ERR_INVALID_ARG ? SD_ERR_NOT_FOUND : r;
	}
	return one_client(db, s, out);
}

int
db_client_by_id(struct db *db, const uint8_t id[CLIENT_ID_SIZE], struct db_client *out)
{
	sqlite3_stmt *s;
	int r;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (db == NULL || out == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_client_by_id(db->pg, id, out);
	s = db->st[ST_CLIENT_BY_ID];
	if ((r = bind_id(s, 1, id)) != 0) {
		stmt_done(s);
		return r;
	}
	return one_client(db, s, out);
}

int
db_client_find(struct db *db, const char *name_or_hex, struct db_client *out)
{
	uint8_t id[CLIENT_ID_SIZE];
	int r;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (db == NULL || out == NULL || name_or_hex == NULL)
		return SD_ERR_INVALID_ARG;
	if (hex_decode(name_or_hex, strlen(name_or_hex), id, CLIENT_ID_SIZE) == 0 &&
	    (r = db_client_by_id(db, id, out)) != SD_ERR_NOT_FOUND)
		return r;
	return db_client_by_name(db, name_or_hex, out);
}

int
db_client_register(struct db *db, const char *name, const uint8_t id[CLIENT_ID_SIZE])
{
	sqlite3_stmt *del, *ins;
	int r, in_tx = 0;

	if (db == NULL || id == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_client_register(db->pg, name, id);
	del = db->st[ST_CLIENT_DELETE_PENDING];
	ins = db->st[ST_CLIENT_INSERT];
	if ((r = bind_name(del, 1, name)) != 0 || (r = bind_id(ins, 1, id)) != 0 ||
	    (r = bind_name(ins, 2, name)) != 0)
		goto out;
	/* The pending row must go and the new one come in together, or a crash in between
	 * would lose the name; IMMEDIATE takes the write lock first so no one slips in. */
	if ((r = tx_begin(db)) != 0)
		goto out;
	in_tx = 1;
	if ((r = stmt_exec(db, del)) != 0 || (r = stmt_exec(db, ins)) != 0)
		goto out;
	if ((r = tx_commit(db)) != 0)
		goto out;
	in_tx = 0;
	r = 0;
out:
	stmt_done(del);
	stmt_done(ins);
	if (in_tx)
		tx_abort(db);
	return r;
}

/* Runs an UPDATE of one client row; SD_ERR_NOT_FOUND when it touched none. */
static int
update_one(struct db *db, sqlite3_stmt *s)
{
	int r = stmt_exec(db, s);

	if (r == 0 && sqlite3_changes(db->sql) == 0)
		r = SD_ERR_NOT_FOUND;
	return r;
}

/* Runs s, an UPDATE of the client id that matches only a row without a public key: 0, or
 * when it matched nothing, why: SD_ERR_EXISTS (the row has a key), SD_ERR_NOT_FOUND (no
 * such client), or the error of reading it. */
static int
update_keyless(struct db *db, sqlite3_stmt *s, const uint8_t id[CLIENT_ID_SIZE])
{
	struct db_client c;
	int r;

	if ((r = update_one(db, s)) != SD_ERR_NOT_FOUND)
		return r;
	if ((r = db_client_by_id(db, id, &c)) == 0)
		r = SD_ERR_EXISTS;
	wipe(&c, sizeof(c));
	return r;
}

int
db_client_set_public_key(struct db *db, const uint8_t id[CLIENT_ID_SIZE], const uint8_t *key,
    size_t len)
{
	sqlite3_stmt *s;
	int r;

	if (db == NULL || key == NULL || len == 0 || len > PUBLIC_KEY_SIZE)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_client_set_public_key(db->pg, id, key, len);
	s = db->st[ST_CLIENT_SET_PUBKEY];
	if ((r = bind_id(s, 1, id)) != 0 ||
	    (r = sqlite3_bind_blob(s, 2, key, (int)len, SQLITE_STATIC) == SQLITE_OK ? 0 :
	    SD_ERR_DB) != 0) {
		stmt_done(s);
		return r;
	}
	/* The UPDATE only matches a row without a key, so a key is never replaced even by two
	 * racing connections. */
	return update_keyless(db, s, id);
}

int
db_client_set_aes_key(struct db *db, const uint8_t id[CLIENT_ID_SIZE],
    const uint8_t key[AES_KEY_SIZE])
{
	sqlite3_stmt *s;
	int r;

	if (db == NULL || key == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_client_set_aes_key(db->pg, id, key);
	s = db->st[ST_CLIENT_SET_AES];
	if ((r = bind_id(s, 1, id)) != 0 ||
	    (r = sqlite3_bind_blob(s, 2, key, AES_KEY_SIZE, SQLITE_STATIC) == SQLITE_OK ? 0 :
	    SD_ERR_DB) != 0) {
		stmt_done(s);
		return r;
	}
	return update_one(db, s);
}

int
db_client_set_keys(struct db *db, const uint8_t id[CLIENT_ID_SIZE], const uint8_t *public_key,
    size_t len, const uint8_t aes_key[AES_KEY_SIZE])
{
	sqlite3_stmt *s;
	int r;

	if (db == NULL || id == NULL || public_key == NULL || len == 0 ||
	    len > PUBLIC_KEY_SIZE || aes_key == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_client_set_keys(db->pg, id, public_key, len, aes_key);
	/* Both keys or neither, in one statement (one transaction): a public key stored without
	 * its AES key would refuse every later 826 of a client that never got a key. As
	 * db_client_set_public_key, only a row without a key matches; when none did, find out
	 * why. */
	s = db->st[ST_CLIENT_SET_KEYS];
	if ((r = bind_id(s, 1, id)) != 0 ||
	    (r = sqlite3_bind_blob(s, 2, public_key, (int)len, SQLITE_STATIC) == SQLITE_OK &&
	    sqlite3_bind_blob(s, 3, aes_key, AES_KEY_SIZE, SQLITE_STATIC) == SQLITE_OK ? 0 :
	    SD_ERR_DB) != 0) {
		stmt_done(s);
		return r;
	}
	return update_keyless(db, s, id);
}

int
db_client_touch(struct db *db, const uint8_t id[CLIENT_ID_SIZE])
{
	sqlite3_stmt *s;
	int r;

	if (db == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_client_touch(db->pg, id);
	s = db->st[ST_CLIENT_TOUCH];
	if ((r = bind_id(s, 1, id)) != 0) {
		stmt_done(s);
		return r;
	}
	return update_one(db, s);
}

/* Binds a path of at most sizeof(db_file.path_name) - 1 bytes. */
static int
bind_path(sqlite3_stmt *s, int i, const char *path, size_t cap)
{
	size_t n = strnlen(path, cap);

	if (n == 0 || n >= cap)
		return SD_ERR_INVALID_ARG;
	return sqlite3_bind_text(s, i, path, (int)n, SQLITE_STATIC) == SQLITE_OK ? 0 : SD_ERR_DB;
}

int
db_file_record(struct db *db, const struct db_file *f)
{
	sqlite3_stmt *del, *s;
	int r, in_tx = 0;

	if (db == NULL || f == NULL || f->size > (uint64_t)INT64_MAX)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_file_record(db->pg, f);
	del = db->st[ST_FILE_DELETE_SAME_PATH];
	s = db->st[ST_FILE_RECORD];
	if ((r = bind_id(del, 1, f->owner)) != 0 ||
	    (r = bind_path(del, 2, f->path_name, sizeof(f->path_name))) != 0 ||
	    (r = bind_name(del, 3, f->file_name)) != 0 ||
	    (r = bind_id(s, 1, f->owner)) != 0 || (r = bind_name(s, 2, f->file_name)) != 0 ||
	    (r = bind_path(s, 3, f->path_name, sizeof(f->path_name))) != 0 ||
	    (r = bind_sha256(s, 7, f->has_sha256, f->sha256)) != 0)
		goto out;
	if (sqlite3_bind_int64(s, 4, (sqlite3_int64)f->size) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 5, (sqlite3_int64)f->crc) != SQLITE_OK ||
	    (f->uploaded > 0 ? sqlite3_bind_int64(s, 6, f->uploaded) :
	    sqlite3_bind_null(s, 6)) != SQLITE_OK) {
		r = SD_ERR_DB;
		goto out;
	}
	/* Names that differ on the wire ("a/x", "b/x") can be stored under one path: the row of
	 * the file now on disk replaces theirs, in one transaction, so that no row describes
	 * bytes that are no longer there. */
	if ((r = tx_begin(db)) != 0)
		goto out;
	in_tx = 1;
	if ((r = stmt_exec(db, del)) != 0)
		goto out;
	/* The only constraint that can fail here is the owner's foreign key: no such client. */
	if ((r = stmt_exec(db, s)) != 0) {
		if (r == SD_ERR_EXISTS)
			r = SD_ERR_NOT_FOUND;
		goto out;
	}
	if ((r = tx_commit(db)) != 0)
		goto out;
	in_tx = 0;
out:
	stmt_done(del);
	stmt_done(s);
	if (in_tx)
		tx_abort(db);
	return r;
}

int
db_file_set_verified(struct db *db, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name,
    int verified)
{
	sqlite3_stmt *s;
	int r;

	if (db == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_file_set_verified(db->pg, owner, file_name, verified);
	s = db->st[ST_FILE_SET_VERIFIED];
	if ((r = bind_id(s, 1, owner)) != 0 || (r = bind_name(s, 2, file_name)) != 0 ||
	    (r = sqlite3_bind_int(s, 3, verified != 0) == SQLITE_OK ? 0 : SD_ERR_DB) != 0) {
		stmt_done(s);
		return r;
	}
	return update_one(db, s);
}

int
db_file_get(struct db *db, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name,
    struct db_file *out)
{
	sqlite3_stmt *s;
	int r;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (db == NULL || out == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_file_get(db->pg, owner, file_name, out);
	s = db->st[ST_FILE_GET];
	if ((r = bind_id(s, 1, owner)) != 0 || (r = bind_name(s, 2, file_name)) != 0)
		goto out;
	if ((r = step_row(db, s)) == 0)
		read_file(s, out);
out:
	stmt_done(s);
	return r;
}

int
db_each_client(struct db *db, db_client_cb cb, void *ctx)
{
	struct db_client c;
	sqlite3_stmt *s;
	int rc, r = 0;

	if (db == NULL || cb == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_each_client(db->pg, cb, ctx);
	s = db->st[ST_EACH_CLIENT];
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		read_client(s, &c);
		r = cb(ctx, &c, (long)sqlite3_column_int64(s, CLIENT_NCOLS));
		if (r != 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = sql_fail(db, rc);
	wipe(&c, sizeof(c));
	stmt_done(s);
	return r;
}

int
db_each_file(struct db *db, const uint8_t *owner, int only_unverified, db_file_cb cb, void *ctx)
{
	struct db_file f;
	sqlite3_stmt *s;
	int rc, r = 0;

	if (db == NULL || cb == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_each_file(db->pg, owner, only_unverified, cb, ctx);
	s = db->st[ST_EACH_FILE];
	if ((owner != NULL && (r = bind_id(s, 1, owner)) != 0) ||
	    sqlite3_bind_int(s, 2, only_unverified != 0) != SQLITE_OK) {
		stmt_done(s);
		return r != 0 ? r : SD_ERR_DB;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		read_file(s, &f);
		if ((r = cb(ctx, &f)) != 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = sql_fail(db, rc);
	stmt_done(s);
	return r;
}

int
db_integrity_check(struct db *db)
{
	sqlite3_stmt *s;
	const unsigned char *t;
	int rc, r = 0, rows = 0;

	if (db == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_integrity_check(db->pg);
	s = db->st[ST_INTEGRITY];
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		t = sqlite3_column_text(s, 0);
		/* A healthy database answers with exactly one row, "ok"; anything else lists
		 * problems, of which we keep the first. */
		if (rows++ == 0 && t != NULL && strcmp((const char *)t, "ok") == 0)
			continue;
		if (r == 0)
			snprintf(db->errmsg, sizeof(db->errmsg), "%s", t != NULL ? (const char *)t :
			    "integrity check failed");
		r = SD_ERR_DB;
	}
	if (rc != SQLITE_DONE && r == 0)
	{
		sql_fail(db, rc);
		r = SD_ERR_DB;
	}
	if (rows == 0 && r == 0) {
		snprintf(db->errmsg, sizeof(db->errmsg), "integrity check gave no answer");
		r = SD_ERR_DB;
	}
	stmt_done(s);
	return r;
}

/* ---- version-4 accounts and pending registrations ---- */

int
db_client_by_fingerprint(struct db *db, const char *fingerprint, struct db_client *out)
{
	sqlite3_stmt *s;
	int r;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (db == NULL || out == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_client_by_fingerprint(db->pg, fingerprint, out);
	s = db->st[ST_CLIENT_BY_FINGERPRINT];
	if ((r = bind_fingerprint(s, 1, fingerprint)) != 0) {
		stmt_done(s);
		return r == SD_ERR_INVALID_ARG ? SD_ERR_NOT_FOUND : r;
	}
	return one_client(db, s, out);
}

int
db_client_register_conn(struct db *db, const char *name, const uint8_t id[CLIENT_ID_SIZE],
    const uint8_t *pending_id)
{
	sqlite3_stmt *del, *ins;
	int r, in_tx = 0;

	if (db == NULL || id == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_client_register_conn(db->pg, name, id, pending_id);
	del = db->st[ST_CLIENT_DELETE_PENDING_ID];
	ins = db->st[ST_CLIENT_INSERT];
	if ((pending_id != NULL && ((r = bind_name(del, 1, name)) != 0 ||
	    (r = bind_id(del, 2, pending_id)) != 0)) ||
	    (r = bind_id(ins, 1, id)) != 0 || (r = bind_name(ins, 2, name)) != 0)
		goto out;
	/* Without a pending row to replace, the INSERT alone is the transaction. */
	if (pending_id == NULL) {
		r = stmt_exec(db, ins);
		goto out;
	}
	/* The connection's own pending row goes and the new one comes in together; any other
	 * row holding the name stays and makes the INSERT fail. */
	if ((r = tx_begin(db)) != 0)
		goto out;
	in_tx = 1;
	if ((r = stmt_exec(db, del)) != 0 || (r = stmt_exec(db, ins)) != 0)
		goto out;
	if ((r = tx_commit(db)) != 0)
		goto out;
	in_tx = 0;
out:
	stmt_done(del);
	stmt_done(ins);
	if (in_tx)
		tx_abort(db);
	return r;
}

int
db_client_expire_pending(struct db *db, int64_t ttl_seconds, long *removed)
{
	sqlite3_stmt *s;
	int r;

	if (removed != NULL)
		*removed = 0;
	if (db == NULL || ttl_seconds < 0 || ttl_seconds > DB_TIME_MAX)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_client_expire_pending(db->pg, ttl_seconds, removed);
	s = db->st[ST_CLIENT_EXPIRE_PENDING];
	if (sqlite3_bind_int64(s, 1, ttl_seconds) != SQLITE_OK) {
		stmt_done(s);
		return SD_ERR_DB;
	}
	if ((r = stmt_exec(db, s)) == 0 && removed != NULL)
		*removed = (long)sqlite3_changes(db->sql);
	return r;
}

/* Inside a transaction: SD_ERR_BOUND when the fingerprint belongs to an account other than id
 * (id NULL: to any account), 0 otherwise. */
static int
fingerprint_free(struct db *db, const char *fingerprint, const uint8_t *id)
{
	struct db_client c;
	int r = db_client_by_fingerprint(db, fingerprint, &c);

	if (r == 0)
		r = id != NULL && memcmp(c.id, id, CLIENT_ID_SIZE) == 0 ? 0 : SD_ERR_BOUND;
	else if (r == SD_ERR_NOT_FOUND)
		r = 0;
	wipe(&c, sizeof(c));
	return r;
}

int
db_client_register_v4(struct db *db, const char *name, const uint8_t id[CLIENT_ID_SIZE],
    const uint8_t *public_key, size_t key_len, const char *fingerprint)
{
	sqlite3_stmt *ins;
	int r, in_tx = 0;

	if (db == NULL || public_key == NULL || key_len == 0 || key_len > PUBLIC_KEY_SIZE ||
	    !db_valid_fingerprint(fingerprint))
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_client_register_v4(db->pg, name, id, public_key, key_len, fingerprint);
	ins = db->st[ST_CLIENT_INSERT_V4];
	if ((r = bind_id(ins, 1, id)) != 0 || (r = bind_name(ins, 2, name)) != 0 ||
	    (r = sqlite3_bind_blob(ins, 3, public_key, (int)key_len, SQLITE_STATIC) == SQLITE_OK ?
	    0 : SD_ERR_DB) != 0 || (r = bind_fingerprint(ins, 4, fingerprint)) != 0)
		goto out;
	/* The lock is held from the look at the fingerprint to the INSERT: the unique index
	 * would refuse a second binding anyway, but could not say which constraint it was. */
	if ((r = tx_begin(db)) != 0)
		goto out;
	in_tx = 1;
	if ((r = fingerprint_free(db, fingerprint, NULL)) != 0 || (r = stmt_exec(db, ins)) != 0)
		goto out;
	if ((r = tx_commit(db)) != 0)
		goto out;
	in_tx = 0;
out:
	stmt_done(ins);
	if (in_tx)
		tx_abort(db);
	return r;
}

int
db_client_bind_fingerprint(struct db *db, const uint8_t id[CLIENT_ID_SIZE],
    const char *fingerprint)
{
	sqlite3_stmt *s;
	int r, in_tx = 0;

	if (db == NULL || !db_valid_fingerprint(fingerprint))
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_client_bind_fingerprint(db->pg, id, fingerprint);
	s = db->st[ST_CLIENT_SET_FINGERPRINT];
	if ((r = bind_id(s, 1, id)) != 0 || (r = bind_fingerprint(s, 2, fingerprint)) != 0)
		goto out;
	if ((r = tx_begin(db)) != 0)
		goto out;
	in_tx = 1;
	if ((r = fingerprint_free(db, fingerprint, id)) != 0 || (r = update_one(db, s)) != 0)
		goto out;
	if ((r = tx_commit(db)) != 0)
		goto out;
	in_tx = 0;
out:
	stmt_done(s);
	if (in_tx)
		tx_abort(db);
	return r;
}

/* ---- files: SHA-256, deletion, LIST ---- */

/* Binds (owner, file_name) as ?1, ?2 of s. */
static int
bind_key(sqlite3_stmt *s, const uint8_t *owner, const char *file_name)
{
	int r;

	if ((r = bind_id(s, 1, owner)) != 0)
		return r;
	return bind_name(s, 2, file_name);
}

/* A DELETE by (owner, file_name) as ?1, ?2: SD_ERR_NOT_FOUND when there was no such row. */
static int
delete_by_key(struct db *db, enum stmt_id id, const uint8_t *owner, const char *file_name)
{
	sqlite3_stmt *s;
	int r;

	if (db == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return id == ST_FILE_DELETE ? dbpg_file_delete(db->pg, owner, file_name) :
		    id == ST_COMMIT_DELETE ? dbpg_commit_delete(db->pg, owner, file_name) :
		    dbpg_upload_delete(db->pg, owner, file_name);
	s = db->st[id];
	if ((r = bind_key(s, owner, file_name)) != 0) {
		stmt_done(s);
		/* A name no row can have (empty, too long) has no row. */
		return r == SD_ERR_INVALID_ARG && owner != NULL ? SD_ERR_NOT_FOUND : r;
	}
	return update_one(db, s);
}

int
db_file_set_sha256(struct db *db, const struct db_file *seen,
    const uint8_t sha256[DB_SHA256_SIZE])
{
	sqlite3_stmt *s;
	int r;

	if (db == NULL || seen == NULL || sha256 == NULL || seen->size > (uint64_t)INT64_MAX)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_file_set_sha256(db->pg, seen, sha256);
	s = db->st[ST_FILE_SET_SHA256];
	if ((r = bind_id(s, 1, seen->owner)) != 0 || (r = bind_name(s, 2, seen->file_name)) != 0 ||
	    (r = bind_path(s, 3, seen->path_name, sizeof(seen->path_name))) != 0 ||
	    (r = bind_u64(s, 4, seen->size)) != 0 || (r = bind_sha256(s, 7, 1, sha256)) != 0) {
		stmt_done(s);
		return r;
	}
	if (sqlite3_bind_int64(s, 5, (sqlite3_int64)seen->crc) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 6, seen->uploaded) != SQLITE_OK) {
		stmt_done(s);
		return SD_ERR_DB;
	}
	return update_one(db, s);
}

int
db_file_delete(struct db *db, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name)
{
	return delete_by_key(db, ST_FILE_DELETE, owner, file_name);
}

int
db_file_copy(struct db *db, const struct db_file *f)
{
	sqlite3_stmt *s;
	int r;

	if (db == NULL || f == NULL || f->size > (uint64_t)INT64_MAX)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_file_copy(db->pg, f);
	s = db->st[ST_FILE_COPY];
	if ((r = bind_key(s, f->owner, f->file_name)) != 0 ||
	    (r = bind_path(s, 3, f->path_name, sizeof(f->path_name))) != 0 ||
	    (r = bind_u64(s, 5, f->size)) != 0 || (r = bind_time(s, 7, f->uploaded)) != 0 ||
	    (r = bind_sha256(s, 8, f->has_sha256, f->sha256)) != 0) {
		stmt_done(s);
		return r;
	}
	if (sqlite3_bind_int(s, 4, f->verified ? 1 : 0) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 6, (sqlite3_int64)f->crc) != SQLITE_OK) {
		stmt_done(s);
		return SD_ERR_DB;
	}
	/* One statement; the only constraint that can fail is the owner's foreign key. */
	r = stmt_exec(db, s);
	return r == SD_ERR_EXISTS ? SD_ERR_NOT_FOUND : r;
}

int
db_each_verified_file(struct db *db, const uint8_t owner[CLIENT_ID_SIZE], db_file_cb cb,
    void *ctx)
{
	struct db_file f;
	sqlite3_stmt *s;
	int rc, r = 0;

	if (db == NULL || owner == NULL || cb == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_each_verified_file(db->pg, owner, cb, ctx);
	s = db->st[ST_EACH_VERIFIED_FILE];
	if ((r = bind_id(s, 1, owner)) != 0) {
		stmt_done(s);
		return r;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		read_file(s, &f);
		if ((r = cb(ctx, &f)) != 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = sql_fail(db, rc);
	stmt_done(s);
	return r;
}

/* ---- commit intents ---- */

/* Binds the intent c to ST_COMMIT_ADD (reset on failure). */
static int
bind_commit(sqlite3_stmt *s, const struct db_commit *c)
{
	int r;

	if ((r = bind_key(s, c->owner, c->file_name)) != 0 ||
	    (r = bind_path(s, 3, c->temp_path, sizeof(c->temp_path))) != 0 ||
	    (r = bind_path(s, 4, c->path_name, sizeof(c->path_name))) != 0 ||
	    (r = bind_u64(s, 5, c->size)) != 0 ||
	    (r = bind_sha256(s, 7, c->has_sha256, c->sha256)) != 0 ||
	    (r = bind_time(s, 9, c->created)) != 0)
		goto fail;
	if (sqlite3_bind_int64(s, 6, (sqlite3_int64)c->crc) != SQLITE_OK ||
	    sqlite3_bind_int(s, 8, c->verified != 0) != SQLITE_OK) {
		r = SD_ERR_DB;
		goto fail;
	}
	return 0;
fail:
	stmt_done(s);
	return r;
}

int
db_commit_add(struct db *db, const struct db_commit *c)
{
	sqlite3_stmt *s;
	int r;

	if (db == NULL || c == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_commit_add(db->pg, c);
	s = db->st[ST_COMMIT_ADD];
	if ((r = bind_commit(s, c)) != 0)
		return r;
	/* One statement: its own transaction. A second intent for the key or the path fails on
	 * the primary key or commits_path (SD_ERR_EXISTS), a missing owner on the foreign key. */
	return stmt_exec(db, s);
}

int
db_commit_get(struct db *db, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name,
    struct db_commit *out)
{
	sqlite3_stmt *s;
	int r;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (db == NULL || out == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_commit_get(db->pg, owner, file_name, out);
	s = db->st[ST_COMMIT_GET];
	if ((r = bind_key(s, owner, file_name)) != 0)
		goto out;
	if ((r = step_row(db, s)) == 0)
		read_commit(s, out);
out:
	stmt_done(s);
	return r;
}

int
db_commit_publish(struct db *db, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name)
{
	sqlite3_stmt *drop, *pub, *del;
	int r, in_tx = 0;

	if (db == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_commit_publish(db->pg, owner, file_name);
	drop = db->st[ST_COMMIT_DELETE_SAME_PATH];
	pub = db->st[ST_COMMIT_PUBLISH];
	del = db->st[ST_COMMIT_DELETE];
	if ((r = bind_key(drop, owner, file_name)) != 0 || (r = bind_key(pub, owner, file_name)) != 0 ||
	    (r = bind_key(del, owner, file_name)) != 0)
		goto out;
	/* Rows of other names stored under the same path described the bytes now replaced; the
	 * row of this name becomes the intent's; the intent goes. All or nothing. */
	if ((r = tx_begin(db)) != 0)
		goto out;
	in_tx = 1;
	if ((r = stmt_exec(db, drop)) != 0 || (r = update_one(db, pub)) != 0 ||
	    (r = update_one(db, del)) != 0)
		goto out;
	if ((r = tx_commit(db)) != 0)
		goto out;
	in_tx = 0;
out:
	stmt_done(drop);
	stmt_done(pub);
	stmt_done(del);
	if (in_tx)
		tx_abort(db);
	return r;
}

int
db_commit_delete(struct db *db, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name)
{
	return delete_by_key(db, ST_COMMIT_DELETE, owner, file_name);
}

int
db_each_commit(struct db *db, db_commit_cb cb, void *ctx)
{
	struct db_commit c;
	sqlite3_stmt *s;
	sqlite3_int64 last = 0;
	int rc, r;

	if (db == NULL || cb == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_each_commit(db->pg, cb, ctx);
	s = db->st[ST_COMMIT_NEXT];
	for (;;) {
		/* One row per run of the statement, reset before the callback: the callback may
		 * change the table, the next run starts after the last rowid seen. */
		if (sqlite3_bind_int64(s, 1, last) != SQLITE_OK) {
			r = SD_ERR_DB;
			break;
		}
		if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
			r = rc == SQLITE_DONE ? 0 : sql_fail(db, rc);
			break;
		}
		read_commit(s, &c);
		last = sqlite3_column_int64(s, 9);
		stmt_done(s);
		if ((r = cb(ctx, &c)) != 0)
			break;
	}
	stmt_done(s);
	return r;
}

/* ---- partial version-4 uploads ---- */

int
db_upload_get(struct db *db, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name,
    struct db_upload *out)
{
	sqlite3_stmt *s;
	int r;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (db == NULL || out == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_upload_get(db->pg, owner, file_name, out);
	s = db->st[ST_UPLOAD_GET];
	if ((r = bind_key(s, owner, file_name)) != 0)
		goto out;
	if ((r = step_row(db, s)) == 0)
		read_upload(s, out);
out:
	stmt_done(s);
	return r;
}

/* db_upload_put and db_upload_copy: the record's columns bound to ?1..?6, and Created to ?7
 * when copied as it is. */
static int
upload_write(struct db *db, const struct db_upload *u, int keep_created)
{
	sqlite3_stmt *s;
	int r;

	if (db == NULL || u == NULL || u->offset > u->size || u->expires <= 0)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return keep_created ? dbpg_upload_copy(db->pg, u) : dbpg_upload_put(db->pg, u);
	s = db->st[keep_created ? ST_UPLOAD_COPY : ST_UPLOAD_PUT];
	if ((r = bind_key(s, u->owner, u->file_name)) != 0 || (r = bind_u64(s, 3, u->size)) != 0 ||
	    (r = bind_u64(s, 4, u->offset)) != 0 ||
	    (r = bind_path(s, 5, u->temp_path, sizeof(u->temp_path))) != 0 ||
	    (r = bind_time(s, 6, u->expires)) != 0 ||
	    (keep_created && (r = bind_time(s, 7, u->created)) != 0)) {
		stmt_done(s);
		return r;
	}
	/* An upsert: one statement, so one transaction; a missing owner fails its foreign key. */
	return stmt_exec(db, s);
}

int
db_upload_put(struct db *db, const struct db_upload *u)
{
	return upload_write(db, u, 0);
}

int
db_upload_copy(struct db *db, const struct db_upload *u)
{
	return upload_write(db, u, 1);
}

int
db_upload_set_offset(struct db *db, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name,
    uint64_t offset, int64_t expires)
{
	struct db_upload u;
	sqlite3_stmt *s;
	int r;

	if (db == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_upload_set_offset(db->pg, owner, file_name, offset, expires);
	s = db->st[ST_UPLOAD_SET_OFFSET];
	if ((r = bind_key(s, owner, file_name)) != 0 || (r = bind_u64(s, 3, offset)) != 0 ||
	    (r = bind_time(s, 4, expires)) != 0) {
		stmt_done(s);
		return r;
	}
	/* The WHERE keeps the offset from going back or past the size; when it matched
	 * nothing, find out why. */
	if ((r = update_one(db, s)) != SD_ERR_NOT_FOUND)
		return r;
	if ((r = db_upload_get(db, owner, file_name, &u)) == 0)
		r = SD_ERR_BAD_FIELD;
	return r;
}

int
db_upload_delete(struct db *db, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name)
{
	return delete_by_key(db, ST_UPLOAD_DELETE, owner, file_name);
}

/* Walks uploads one row per run of ST_UPLOAD_NEXT (see db_each_commit), filtered by owner
 * (NULL: all) and by expiry at now (0: all). */
static int
each_upload(struct db *db, const uint8_t *owner, int64_t now, db_upload_cb cb, void *ctx)
{
	struct db_upload u;
	sqlite3_stmt *s;
	sqlite3_int64 last = 0;
	int rc, r;

	if (db == NULL || cb == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_each_upload(db->pg, owner, now, cb, ctx);
	s = db->st[ST_UPLOAD_NEXT];
	for (;;) {
		if ((owner != NULL && (r = bind_id(s, 2, owner)) != 0) ||
		    (r = bind_time(s, 3, now)) != 0)
			break;
		if (sqlite3_bind_int64(s, 1, last) != SQLITE_OK) {
			r = SD_ERR_DB;
			break;
		}
		if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
			r = rc == SQLITE_DONE ? 0 : sql_fail(db, rc);
			break;
		}
		read_upload(s, &u);
		last = sqlite3_column_int64(s, 7);
		stmt_done(s);
		if ((r = cb(ctx, &u)) != 0)
			break;
	}
	stmt_done(s);
	return r;
}

int
db_each_upload(struct db *db, const uint8_t *owner, db_upload_cb cb, void *ctx)
{
	return each_upload(db, owner, 0, cb, ctx);
}

int
db_each_expired_upload(struct db *db, int64_t now, db_upload_cb cb, void *ctx)
{
	if (now <= 0)
		return SD_ERR_INVALID_ARG;
	return each_upload(db, NULL, now, cb, ctx);
}

/* ---- partial uploads shared by several servers (the record names its owner's file) ---- */

int
db_upload_advance(struct db *db, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name,
    const char *temp_path, uint64_t offset, int64_t expires)
{
	struct db_upload u;
	sqlite3_stmt *s;
	int r;

	if (db == NULL || temp_path == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_upload_advance(db->pg, owner, file_name, temp_path, offset, expires);
	s = db->st[ST_UPLOAD_ADVANCE];
	if ((r = bind_key(s, owner, file_name)) != 0 || (r = bind_u64(s, 3, offset)) != 0 ||
	    (r = bind_time(s, 4, expires)) != 0 ||
	    (r = bind_path(s, 5, temp_path, DB_PATH_SIZE)) != 0) {
		stmt_done(s);
		return r;
	}
	if ((r = update_one(db, s)) != SD_ERR_NOT_FOUND)
		return r;
	/* Matched nothing: gone or taken over (NOT_FOUND), or an offset out of range. */
	if ((r = db_upload_get(db, owner, file_name, &u)) == 0)
		r = strcmp(u.temp_path, temp_path) != 0 ? SD_ERR_NOT_FOUND : SD_ERR_BAD_FIELD;
	return r;
}

int
db_upload_move(struct db *db, const char *from_temp_path, const struct db_upload *u)
{
	sqlite3_stmt *s;
	int r;

	if (db == NULL || u == NULL || from_temp_path == NULL || u->offset > u->size ||
	    u->expires <= 0)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_upload_move(db->pg, from_temp_path, u);
	s = db->st[ST_UPLOAD_MOVE];
	if ((r = bind_key(s, u->owner, u->file_name)) != 0 || (r = bind_u64(s, 3, u->size)) != 0 ||
	    (r = bind_u64(s, 4, u->offset)) != 0 ||
	    (r = bind_path(s, 5, u->temp_path, sizeof(u->temp_path))) != 0 ||
	    (r = bind_time(s, 6, u->expires)) != 0 ||
	    (r = bind_path(s, 7, from_temp_path, DB_PATH_SIZE)) != 0) {
		stmt_done(s);
		return r;
	}
	return update_one(db, s);
}

int
db_upload_drop(struct db *db, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name,
    const char *temp_path)
{
	sqlite3_stmt *s;
	int r;

	if (db == NULL || temp_path == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_upload_drop(db->pg, owner, file_name, temp_path);
	s = db->st[ST_UPLOAD_DROP];
	if ((r = bind_key(s, owner, file_name)) != 0 ||
	    (r = bind_path(s, 3, temp_path, DB_PATH_SIZE)) != 0) {
		stmt_done(s);
		return r == SD_ERR_INVALID_ARG && owner != NULL ? SD_ERR_NOT_FOUND : r;
	}
	return update_one(db, s);
}

int
db_upload_commit(struct db *db, const struct db_commit *c)
{
	sqlite3_stmt *drop, *add;
	int r, in_tx = 0;

	if (db == NULL || c == NULL)
		return SD_ERR_INVALID_ARG;
	if (db->pg != NULL)
		return dbpg_upload_commit(db->pg, c);
	drop = db->st[ST_UPLOAD_DROP];
	add = db->st[ST_COMMIT_ADD];
	if ((r = bind_key(drop, c->owner, c->file_name)) != 0 ||
	    (r = bind_path(drop, 3, c->temp_path, sizeof(c->temp_path))) != 0) {
		stmt_done(drop);
		return r;
	}
	if ((r = bind_commit(add, c)) != 0) {
		stmt_done(drop);
		return r;
	}
	/* The record must still name this file (no other server took the upload over); it
	 * goes and the intent comes, all or nothing. */
	if ((r = tx_begin(db)) != 0)
		goto out;
	in_tx = 1;
	if ((r = update_one(db, drop)) != 0 || (r = stmt_exec(db, add)) != 0)
		goto out;
	if ((r = tx_commit(db)) != 0)
		goto out;
	in_tx = 0;
out:
	stmt_done(drop);
	stmt_done(add);
	if (in_tx)
		tx_abort(db);
	return r;
}
