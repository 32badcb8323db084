/* db.c: the server's store on SQLite (db.h): opening and checking the schema, and the domain
 * functions, each over a statement prepared once per connection with bound parameters. */
#include "db.h"

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

#define DB_SCHEMA_VERSION 1
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
	ST_CLIENT_DELETE_PENDING,
	ST_CLIENT_INSERT,
	ST_CLIENT_SET_PUBKEY,
	ST_CLIENT_SET_AES,
	ST_CLIENT_TOUCH,
	ST_FILE_DELETE_SAME_PATH,
	ST_FILE_RECORD,
	ST_FILE_SET_VERIFIED,
	ST_FILE_GET,
	ST_EACH_CLIENT,
	ST_EACH_FILE,
	ST_INTEGRITY,
	ST_COUNT
};

/* Every client SELECT yields: ID, Name, PublicKey, AESKey, LastSeen as Unix seconds. */
#define CLIENT_COLS "c.ID, c.Name, c.PublicKey, c.AESKey, " \
	"CAST(strftime('%s', c.LastSeen) AS INTEGER)"
/* Every file SELECT yields: ID, owner Name, FileName, PathName, Verified, Size, CRC, Uploaded. */
#define FILE_COLS "f.ID, c.Name, f.FileName, f.PathName, f.Verified, f.Size, f.CRC, " \
	"CAST(strftime('%s', f.Uploaded) AS INTEGER)"

static const char *const stmt_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_CLIENT_BY_NAME] = "SELECT " CLIENT_COLS " FROM clients c WHERE c.Name = ?1",
	[ST_CLIENT_BY_ID] = "SELECT " CLIENT_COLS " FROM clients c WHERE c.ID = ?1",
	[ST_CLIENT_DELETE_PENDING] = "DELETE FROM clients WHERE Name = ?1 AND PublicKey IS NULL",
	[ST_CLIENT_INSERT] = "INSERT INTO clients (ID, Name, LastSeen) "
	    "VALUES (?1, ?2, datetime('now'))",
	[ST_CLIENT_SET_PUBKEY] = "UPDATE clients SET PublicKey = ?2, LastSeen = datetime('now') "
	    "WHERE ID = ?1 AND PublicKey IS NULL",
	[ST_CLIENT_SET_AES] = "UPDATE clients SET AESKey = ?2, LastSeen = datetime('now') "
	    "WHERE ID = ?1",
	[ST_CLIENT_TOUCH] = "UPDATE clients SET LastSeen = datetime('now') WHERE ID = ?1",
	[ST_FILE_DELETE_SAME_PATH] = "DELETE FROM files WHERE ID = ?1 AND PathName = ?2 "
	    "AND FileName <> ?3",
	[ST_FILE_RECORD] = "INSERT INTO files (ID, FileName, PathName, Verified, Size, CRC, Uploaded) "
	    "VALUES (?1, ?2, ?3, 0, ?4, ?5, COALESCE(datetime(?6, 'unixepoch'), datetime('now'))) "
	    "ON CONFLICT (ID, FileName) DO UPDATE SET PathName = excluded.PathName, Verified = 0, "
	    "Size = excluded.Size, CRC = excluded.CRC, Uploaded = excluded.Uploaded",
	[ST_FILE_SET_VERIFIED] = "UPDATE files SET Verified = ?3 WHERE ID = ?1 AND FileName = ?2",
	[ST_FILE_GET] = "SELECT " FILE_COLS " FROM files f LEFT JOIN clients c ON c.ID = f.ID "
	    "WHERE f.ID = ?1 AND f.FileName = ?2",
	[ST_EACH_CLIENT] = "SELECT " CLIENT_COLS ", "
	    "(SELECT count(*) FROM files f WHERE f.ID = c.ID) FROM clients c ORDER BY c.Name, c.ID",
	[ST_EACH_FILE] = "SELECT " FILE_COLS " FROM files f LEFT JOIN clients c ON c.ID = f.ID "
	    "WHERE (?1 IS NULL OR f.ID = ?1) AND (?2 = 0 OR f.Verified = 0) "
	    "ORDER BY c.Name, f.ID, f.FileName",
	[ST_INTEGRITY] = "PRAGMA integrity_check",
};

struct db {
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
};
static const struct column file_columns[] = {
	{ "ID", NULL }, { "FileName", NULL }, { "PathName", NULL }, { "Verified", NULL },
	{ "Size", "ALTER TABLE files ADD COLUMN Size INTEGER NOT NULL DEFAULT 0" },
	{ "CRC", "ALTER TABLE files ADD COLUMN CRC INTEGER NOT NULL DEFAULT 0" },
	{ "Uploaded", "ALTER TABLE files ADD COLUMN Uploaded timestamp" },
};
/* Databases of other servers of the protocol may lack the constraints our statements rely on
 * (a unique name, one row per owner and file name); an upgrade adds them as indexes. */
static const char upgrade_index_sql[] =
	"CREATE UNIQUE INDEX IF NOT EXISTS clients_name ON clients (Name);"
	"CREATE UNIQUE INDEX IF NOT EXISTS files_owner_name ON files (ID, FileName);";

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
		r = (rc & 0xff) == SQLITE_CONSTRAINT ? SD_ERR_EXISTS : sql_fail(db, rc);
		if (r == SD_ERR_EXISTS)
			save_errmsg(db);
	}
	stmt_done(s);
	return r;
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
 * 1 complete, 2 upgradable (the names of SPEC.md 8 are there, some extra columns are not).
 * A file with other tables only, or with our tables missing required columns: SD_ERR_SCHEMA. */
static int
inspect_schema(struct db *db, int *state)
{
	size_t cf, cr, ff, fr;
	int version, tables, r;

	*state = 0;
	if ((r = pragma_int(db, "PRAGMA user_version", &version)) != 0 ||
	    (r = pragma_int(db, "SELECT count(*) FROM sqlite_master", &tables)) != 0 ||
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
	    version == DB_SCHEMA_VERSION) ? 1 : 2;
	return 0;
}

/* Creates or upgrades the schema in one write transaction. Another connection may have done
 * it between our look and our lock, so we look again once we hold the lock. */
static int
create_or_upgrade(struct db *db)
{
	int state, r, in_tx = 0;
	size_t i, cf, cr;

	if ((r = exec_fixed(db, "BEGIN IMMEDIATE")) != 0)
		goto out;
	in_tx = 1;
	if ((r = inspect_schema(db, &state)) != 0)
		goto out;
	if (state == 0) {
		if ((r = exec_fixed(db, db_schema_sql)) != 0)
			goto out;
	} else if (state == 2) {
		for (i = 0; i < NCOLS(file_columns); i++) {
			if (file_columns[i].add_sql == NULL)
				continue;
			if ((r = count_columns(db, "files", &file_columns[i], 1, &cf, &cr)) != 0)
				goto out;
			if (cf == 0 && (r = exec_fixed(db, file_columns[i].add_sql)) != 0)
				goto out;
		}
		if ((r = exec_fixed(db, upgrade_index_sql)) != 0) {
			/* Duplicate names or rows: not something we can serve from. */
			r = SD_ERR_SCHEMA;
			goto out;
		}
		if ((r = exec_fixed(db, "PRAGMA user_version = 1")) != 0)
			goto out;
	}
	if ((r = exec_fixed(db, "COMMIT")) != 0)
		goto out;
	in_tx = 0;
	r = 0;
out:
	if (in_tx)
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
	return db->errmsg;
}

/* Runs a statement that returns at most one client row. */
static int
one_client(struct db *db, sqlite3_stmt *s, struct db_client *out)
{
	int rc = sqlite3_step(s);
	int r;

	if (rc == SQLITE_ROW) {
		read_client(s, out);
		r = 0;
	} else if (rc == SQLITE_DONE)
		r = SD_ERR_NOT_FOUND;
	else
		r = sql_fail(db, rc);
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
	del = db->st[ST_CLIENT_DELETE_PENDING];
	ins = db->st[ST_CLIENT_INSERT];
	if ((r = bind_name(del, 1, name)) != 0 || (r = bind_id(ins, 1, id)) != 0 ||
	    (r = bind_name(ins, 2, name)) != 0)
		goto out;
	/* The pending row must go and the new one come in together, or a crash in between
	 * would lose the name; IMMEDIATE takes the write lock first so no one slips in. */
	if ((r = stmt_exec(db, db->st[ST_BEGIN])) != 0)
		goto out;
	in_tx = 1;
	if ((r = stmt_exec(db, del)) != 0 || (r = stmt_exec(db, ins)) != 0)
		goto out;
	if ((r = stmt_exec(db, db->st[ST_COMMIT])) != 0)
		goto out;
	in_tx = 0;
	r = 0;
out:
	stmt_done(del);
	stmt_done(ins);
	if (in_tx)
		stmt_exec(db, db->st[ST_ROLLBACK]);
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

int
db_client_set_public_key(struct db *db, const uint8_t id[CLIENT_ID_SIZE], const uint8_t *key,
    size_t len)
{
	struct db_client c;
	sqlite3_stmt *s;
	int r;

	if (db == NULL || key == NULL || len == 0 || len > PUBLIC_KEY_SIZE)
		return SD_ERR_INVALID_ARG;
	s = db->st[ST_CLIENT_SET_PUBKEY];
	if ((r = bind_id(s, 1, id)) != 0 ||
	    (r = sqlite3_bind_blob(s, 2, key, (int)len, SQLITE_STATIC) == SQLITE_OK ? 0 :
	    SD_ERR_DB) != 0) {
		stmt_done(s);
		return r;
	}
	/* The UPDATE only matches a row without a key, so a key is never replaced even by two
	 * racing connections; when it matched nothing, find out why. */
	if ((r = update_one(db, s)) != SD_ERR_NOT_FOUND)
		return r;
	if ((r = db_client_by_id(db, id, &c)) == 0)
		r = SD_ERR_EXISTS;
	wipe(&c, sizeof(c));
	return r;
}

int
db_client_set_aes_key(struct db *db, const uint8_t id[CLIENT_ID_SIZE],
    const uint8_t key[AES_KEY_SIZE])
{
	sqlite3_stmt *s;
	int r;

	if (db == NULL || key == NULL)
		return SD_ERR_INVALID_ARG;
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
db_client_touch(struct db *db, const uint8_t id[CLIENT_ID_SIZE])
{
	sqlite3_stmt *s;
	int r;

	if (db == NULL)
		return SD_ERR_INVALID_ARG;
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
	del = db->st[ST_FILE_DELETE_SAME_PATH];
	s = db->st[ST_FILE_RECORD];
	if ((r = bind_id(del, 1, f->owner)) != 0 ||
	    (r = bind_path(del, 2, f->path_name, sizeof(f->path_name))) != 0 ||
	    (r = bind_name(del, 3, f->file_name)) != 0 ||
	    (r = bind_id(s, 1, f->owner)) != 0 || (r = bind_name(s, 2, f->file_name)) != 0 ||
	    (r = bind_path(s, 3, f->path_name, sizeof(f->path_name))) != 0)
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
	if ((r = stmt_exec(db, db->st[ST_BEGIN])) != 0)
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
	if ((r = stmt_exec(db, db->st[ST_COMMIT])) != 0)
		goto out;
	in_tx = 0;
out:
	stmt_done(del);
	stmt_done(s);
	if (in_tx)
		stmt_exec(db, db->st[ST_ROLLBACK]);
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
	int r, rc;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (db == NULL || out == NULL)
		return SD_ERR_INVALID_ARG;
	s = db->st[ST_FILE_GET];
	if ((r = bind_id(s, 1, owner)) != 0 || (r = bind_name(s, 2, file_name)) != 0)
		goto out;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		read_file(s, out);
		r = 0;
	} else
		r = rc == SQLITE_DONE ? SD_ERR_NOT_FOUND : sql_fail(db, rc);
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
	s = db->st[ST_EACH_CLIENT];
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		read_client(s, &c);
		r = cb(ctx, &c, (long)sqlite3_column_int64(s, 5));
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
