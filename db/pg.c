/* pg.c: the PostgreSQL backend of db.h through libpq (several servers sharing one database):
 * the schema of db/schema.sql in PostgreSQL types, statements prepared once per connection,
 * one reconnection attempt after the database went away, unique violations as SD_ERR_EXISTS. */
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "../protocol/err.h"

#define PG_SCHEMA_VERSION 2
/* pg_advisory_xact_lock key that serialises schema creation between servers starting at once
 * ("sealdrop" in ASCII, read as a number). */
#define PG_SCHEMA_LOCK "7233184724434456688"
/* Unix seconds a timestamp column can hold here as in SQLite (up to 9999-12-31 23:59:59). */
#define PG_TIME_MAX 253402300799
#define PG_MAX_PARAMS 9
#define DB_PG_CONNECT_TIMEOUT "10"

/* The schema: the same tables and columns as db/schema.sql (unquoted names fold to lower case,
 * so `SELECT Name FROM clients` reads the same in psql as in sqlite3; "Offset" is a keyword
 * and stays quoted). Verified is 0 or 1 as in SQLite (where BOOLEAN is an integer), so that
 * `WHERE Verified = 1` and `sum(Verified)` work in both. Times are UTC `timestamp` (no zone), whole seconds. Seq orders the
 * walks of commits and uploads as SQLite's rowid does. Every statement is idempotent. */
static const char pg_schema_sql[] =
    "CREATE TABLE IF NOT EXISTS sealdrop_schema (version integer NOT NULL);"
    "CREATE TABLE IF NOT EXISTS clients ("
    " ID bytea PRIMARY KEY CHECK (length(ID) = 16),"
    " Name text UNIQUE NOT NULL,"
    " PublicKey bytea,"
    " LastSeen timestamp,"
    " AESKey bytea,"
    " Fingerprint text);"
    "CREATE UNIQUE INDEX IF NOT EXISTS clients_fingerprint ON clients (Fingerprint);"
    "CREATE TABLE IF NOT EXISTS files ("
    " ID bytea NOT NULL REFERENCES clients(ID) ON DELETE CASCADE,"
    " FileName text NOT NULL,"
    " PathName text NOT NULL,"
    " Verified smallint NOT NULL DEFAULT 0 CHECK (Verified IN (0, 1)),"
    " Size bigint NOT NULL DEFAULT 0,"
    " CRC bigint NOT NULL DEFAULT 0,"
    " Uploaded timestamp,"
    " SHA256 bytea CHECK (SHA256 IS NULL OR length(SHA256) = 32),"
    " UNIQUE (ID, FileName));"
    "CREATE TABLE IF NOT EXISTS commits ("
    " ID bytea NOT NULL REFERENCES clients(ID) ON DELETE CASCADE,"
    " FileName text NOT NULL,"
    " TempPath text NOT NULL,"
    " PathName text NOT NULL,"
    " Size bigint NOT NULL CHECK (Size >= 0),"
    " CRC bigint NOT NULL,"
    " SHA256 bytea CHECK (SHA256 IS NULL OR length(SHA256) = 32),"
    " Verified smallint NOT NULL CHECK (Verified IN (0, 1)),"
    " Created timestamp NOT NULL,"
    " Seq bigint GENERATED ALWAYS AS IDENTITY,"
    " PRIMARY KEY (ID, FileName));"
    "CREATE UNIQUE INDEX IF NOT EXISTS commits_path ON commits (PathName);"
    "CREATE TABLE IF NOT EXISTS uploads ("
    " ID bytea NOT NULL REFERENCES clients(ID) ON DELETE CASCADE,"
    " FileName text NOT NULL,"
    " Size bigint NOT NULL CHECK (Size >= 0),"
    " \"Offset\" bigint NOT NULL CHECK (\"Offset\" >= 0 AND \"Offset\" <= Size),"
    " TempPath text NOT NULL,"
    " Expires timestamp NOT NULL,"
    " Created timestamp NOT NULL,"
    " Seq bigint GENERATED ALWAYS AS IDENTITY,"
    " PRIMARY KEY (ID, FileName));"
    "INSERT INTO sealdrop_schema (version) SELECT 2 "
    " WHERE NOT EXISTS (SELECT 1 FROM sealdrop_schema);";

enum pst {
	PS_CLIENT_BY_NAME,
	PS_CLIENT_BY_ID,
	PS_CLIENT_BY_FINGERPRINT,
	PS_CLIENT_DELETE_PENDING,
	PS_CLIENT_DELETE_PENDING_ID,
	PS_CLIENT_EXPIRE_PENDING,
	PS_CLIENT_INSERT,
	PS_CLIENT_INSERT_V4,
	PS_CLIENT_SET_PUBKEY,
	PS_CLIENT_SET_AES,
	PS_CLIENT_SET_FINGERPRINT,
	PS_CLIENT_TOUCH,
	PS_CLIENT_COPY,
	PS_FILE_DELETE_SAME_PATH,
	PS_FILE_RECORD,
	PS_FILE_SET_VERIFIED,
	PS_FILE_SET_SHA256,
	PS_FILE_GET,
	PS_FILE_DELETE,
	PS_FILE_COPY,
	PS_EACH_CLIENT,
	PS_EACH_FILE,
	PS_EACH_VERIFIED_FILE,
	PS_COMMIT_ADD,
	PS_COMMIT_GET,
	PS_COMMIT_NEXT,
	PS_COMMIT_DELETE_SAME_PATH,
	PS_COMMIT_PUBLISH,
	PS_COMMIT_DELETE,
	PS_UPLOAD_GET,
	PS_UPLOAD_PUT,
	PS_UPLOAD_SET_OFFSET,
	PS_UPLOAD_DELETE,
	PS_UPLOAD_NEXT,
	PS_UPLOAD_COPY,
	PS_UPLOAD_ADVANCE,
	PS_UPLOAD_MOVE,
	PS_UPLOAD_DROP,
	PS_INTEGRITY,
	PS_COUNT
};

/* Stored time as Unix seconds, Unix seconds as stored time, and now, all in UTC. */
#define UNIX(col) "CAST(extract(epoch FROM " col ") AS bigint)"
#define STORED(p) "(to_timestamp(" p "::bigint) AT TIME ZONE 'UTC')"
#define NOW "date_trunc('second', now() AT TIME ZONE 'UTC')"
/* Names sort by their bytes, as in SQLite, whatever the database's collation. */
#define BYTES " COLLATE \"C\""
#define CLIENT_COLS "c.ID, c.Name, c.PublicKey, c.AESKey, " UNIX("c.LastSeen") ", c.Fingerprint"
#define CLIENT_NCOLS 6
#define FILE_COLS "f.ID, c.Name, f.FileName, f.PathName, f.Verified, f.Size, f.CRC, " \
	UNIX("f.Uploaded") ", f.SHA256"
#define COMMIT_COLS "m.ID, m.FileName, m.TempPath, m.PathName, m.Size, m.CRC, m.SHA256, " \
	"m.Verified, " UNIX("m.Created") ", m.Seq"
#define UPLOAD_COLS "u.ID, u.FileName, u.Size, u.\"Offset\", u.TempPath, " UNIX("u.Expires") \
	", " UNIX("u.Created") ", u.Seq"

struct pstmt {
	const char *sql;
	int nparams;
	/* Safe to run again after the connection broke under it: a read, or a write whose
	 * second run leaves the same rows as one. */
	int retry;
};

static const struct pstmt pstmts[PS_COUNT] = {
	[PS_CLIENT_BY_NAME] = { "SELECT " CLIENT_COLS " FROM clients c WHERE c.Name = $1", 1, 1 },
	[PS_CLIENT_BY_ID] = { "SELECT " CLIENT_COLS " FROM clients c WHERE c.ID = $1", 1, 1 },
	[PS_CLIENT_BY_FINGERPRINT] = { "SELECT " CLIENT_COLS " FROM clients c "
	    "WHERE c.Fingerprint = $1", 1, 1 },
	[PS_CLIENT_DELETE_PENDING] = { "DELETE FROM clients WHERE Name = $1 "
	    "AND PublicKey IS NULL", 1, 0 },
	[PS_CLIENT_DELETE_PENDING_ID] = { "DELETE FROM clients WHERE Name = $1 AND ID = $2 "
	    "AND PublicKey IS NULL", 2, 0 },
	[PS_CLIENT_EXPIRE_PENDING] = { "DELETE FROM clients WHERE PublicKey IS NULL AND "
	    "(LastSeen IS NULL OR LastSeen < " NOW " - $1::bigint * interval '1 second')", 1, 1 },
	[PS_CLIENT_INSERT] = { "INSERT INTO clients (ID, Name, LastSeen) VALUES ($1, $2, " NOW ")",
	    2, 0 },
	[PS_CLIENT_INSERT_V4] = { "INSERT INTO clients (ID, Name, PublicKey, Fingerprint, "
	    "LastSeen) VALUES ($1, $2, $3, $4, " NOW ")", 4, 0 },
	[PS_CLIENT_SET_PUBKEY] = { "UPDATE clients SET PublicKey = $2, LastSeen = " NOW
	    " WHERE ID = $1 AND PublicKey IS NULL", 2, 0 },
	[PS_CLIENT_SET_AES] = { "UPDATE clients SET AESKey = $2, LastSeen = " NOW
	    " WHERE ID = $1", 2, 1 },
	[PS_CLIENT_SET_FINGERPRINT] = { "UPDATE clients SET Fingerprint = $2, LastSeen = " NOW
	    " WHERE ID = $1", 2, 0 },
	[PS_CLIENT_TOUCH] = { "UPDATE clients SET LastSeen = " NOW " WHERE ID = $1", 1, 1 },
	[PS_CLIENT_COPY] = { "INSERT INTO clients (ID, Name, PublicKey, LastSeen, AESKey, "
	    "Fingerprint) VALUES ($1, $2, $3, " STORED("$4") ", $5, $6) ON CONFLICT (ID) DO UPDATE "
	    "SET Name = excluded.Name, PublicKey = excluded.PublicKey, "
	    "LastSeen = excluded.LastSeen, AESKey = excluded.AESKey, "
	    "Fingerprint = excluded.Fingerprint", 6, 1 },
	[PS_FILE_DELETE_SAME_PATH] = { "DELETE FROM files WHERE ID = $1 AND PathName = $2 "
	    "AND FileName <> $3", 3, 0 },
	[PS_FILE_RECORD] = { "INSERT INTO files (ID, FileName, PathName, Verified, Size, CRC, "
	    "Uploaded, SHA256) VALUES ($1, $2, $3, 0, $4::bigint, $5::bigint, "
	    "COALESCE(" STORED("$6") ", " NOW "), $7) "
	    "ON CONFLICT (ID, FileName) DO UPDATE SET PathName = excluded.PathName, "
	    "Verified = 0, Size = excluded.Size, CRC = excluded.CRC, "
	    "Uploaded = excluded.Uploaded, SHA256 = excluded.SHA256", 7, 0 },
	[PS_FILE_SET_VERIFIED] = { "UPDATE files SET Verified = $3::smallint "
	    "WHERE ID = $1 AND FileName = $2", 3, 1 },
	[PS_FILE_SET_SHA256] = { "UPDATE files SET SHA256 = $7 WHERE ID = $1 AND FileName = $2 "
	    "AND PathName = $3 AND Size = $4::bigint AND CRC = $5::bigint "
	    "AND COALESCE(" UNIX("Uploaded") ", 0) = $6::bigint", 7, 1 },
	[PS_FILE_GET] = { "SELECT " FILE_COLS " FROM files f LEFT JOIN clients c ON c.ID = f.ID "
	    "WHERE f.ID = $1 AND f.FileName = $2", 2, 1 },
	[PS_FILE_DELETE] = { "DELETE FROM files WHERE ID = $1 AND FileName = $2", 2, 0 },
	[PS_FILE_COPY] = { "INSERT INTO files (ID, FileName, PathName, Verified, Size, CRC, "
	    "Uploaded, SHA256) VALUES ($1, $2, $3, $4::smallint, $5::bigint, $6::bigint, "
	    STORED("$7") ", $8) ON CONFLICT (ID, FileName) DO UPDATE SET "
	    "PathName = excluded.PathName, Verified = excluded.Verified, Size = excluded.Size, "
	    "CRC = excluded.CRC, Uploaded = excluded.Uploaded, SHA256 = excluded.SHA256", 8, 1 },
	[PS_EACH_CLIENT] = { "SELECT " CLIENT_COLS ", (SELECT count(*) FROM files f "
	    "WHERE f.ID = c.ID) FROM clients c ORDER BY c.Name" BYTES ", c.ID", 0, 1 },
	[PS_EACH_FILE] = { "SELECT " FILE_COLS " FROM files f LEFT JOIN clients c ON c.ID = f.ID "
	    "WHERE ($1::bytea IS NULL OR f.ID = $1::bytea) AND ($2::integer = 0 OR f.Verified = 0) "
	    "ORDER BY c.Name" BYTES ", f.ID, f.FileName" BYTES, 2, 1 },
	[PS_EACH_VERIFIED_FILE] = { "SELECT " FILE_COLS " FROM files f LEFT JOIN clients c "
	    "ON c.ID = f.ID WHERE f.ID = $1 AND f.Verified = 1 ORDER BY f.FileName" BYTES, 1, 1 },
	[PS_COMMIT_ADD] = { "INSERT INTO commits (ID, FileName, TempPath, PathName, Size, CRC, "
	    "SHA256, Verified, Created) VALUES ($1, $2, $3, $4, $5::bigint, $6::bigint, $7, "
	    "$8::smallint, COALESCE(" STORED("$9") ", " NOW "))", 9, 0 },
	[PS_COMMIT_GET] = { "SELECT " COMMIT_COLS " FROM commits m WHERE m.ID = $1 "
	    "AND m.FileName = $2", 2, 1 },
	[PS_COMMIT_NEXT] = { "SELECT " COMMIT_COLS " FROM commits m WHERE m.Seq > $1::bigint "
	    "ORDER BY m.Seq LIMIT 1", 1, 1 },
	[PS_COMMIT_DELETE_SAME_PATH] = { "DELETE FROM files WHERE ID = $1 AND FileName <> $2 AND "
	    "PathName = (SELECT PathName FROM commits WHERE ID = $1 AND FileName = $2)", 2, 0 },
	[PS_COMMIT_PUBLISH] = { "INSERT INTO files (ID, FileName, PathName, Verified, Size, CRC, "
	    "Uploaded, SHA256) SELECT ID, FileName, PathName, Verified, Size, CRC, Created, SHA256 "
	    "FROM commits WHERE ID = $1 AND FileName = $2 "
	    "ON CONFLICT (ID, FileName) DO UPDATE SET PathName = excluded.PathName, "
	    "Verified = excluded.Verified, Size = excluded.Size, CRC = excluded.CRC, "
	    "Uploaded = excluded.Uploaded, SHA256 = excluded.SHA256", 2, 0 },
	[PS_COMMIT_DELETE] = { "DELETE FROM commits WHERE ID = $1 AND FileName = $2", 2, 0 },
	[PS_UPLOAD_GET] = { "SELECT " UPLOAD_COLS " FROM uploads u WHERE u.ID = $1 "
	    "AND u.FileName = $2", 2, 1 },
	[PS_UPLOAD_PUT] = { "INSERT INTO uploads (ID, FileName, Size, \"Offset\", TempPath, "
	    "Expires, Created) VALUES ($1, $2, $3::bigint, $4::bigint, $5, " STORED("$6") ", "
	    NOW ") ON CONFLICT (ID, FileName) DO UPDATE SET Size = excluded.Size, "
	    "\"Offset\" = excluded.\"Offset\", TempPath = excluded.TempPath, "
	    "Expires = excluded.Expires, Created = excluded.Created", 6, 0 },
	[PS_UPLOAD_SET_OFFSET] = { "UPDATE uploads SET \"Offset\" = $3::bigint, "
	    "Expires = COALESCE(" STORED("$4") ", Expires) WHERE ID = $1 AND FileName = $2 "
	    "AND \"Offset\" <= $3::bigint AND $3::bigint <= Size", 4, 0 },
	[PS_UPLOAD_DELETE] = { "DELETE FROM uploads WHERE ID = $1 AND FileName = $2", 2, 0 },
	[PS_UPLOAD_NEXT] = { "SELECT " UPLOAD_COLS " FROM uploads u WHERE u.Seq > $1::bigint "
	    "AND ($2::bytea IS NULL OR u.ID = $2::bytea) "
	    "AND ($3::bigint IS NULL OR u.Expires <= " STORED("$3") ") ORDER BY u.Seq LIMIT 1",
	    3, 1 },
	[PS_UPLOAD_COPY] = { "INSERT INTO uploads (ID, FileName, Size, \"Offset\", TempPath, "
	    "Expires, Created) VALUES ($1, $2, $3::bigint, $4::bigint, $5, " STORED("$6") ", "
	    "COALESCE(" STORED("$7") ", " NOW ")) ON CONFLICT (ID, FileName) DO UPDATE SET "
	    "Size = excluded.Size, \"Offset\" = excluded.\"Offset\", TempPath = excluded.TempPath, "
	    "Expires = excluded.Expires, Created = excluded.Created", 7, 1 },
	/* The cross-server forms: only while the record still names the caller's file. */
	[PS_UPLOAD_ADVANCE] = { "UPDATE uploads SET \"Offset\" = $3::bigint, "
	    "Expires = COALESCE(" STORED("$4") ", Expires) WHERE ID = $1 AND FileName = $2 "
	    "AND TempPath = $5 AND \"Offset\" <= $3::bigint AND $3::bigint <= Size", 5, 0 },
	[PS_UPLOAD_MOVE] = { "UPDATE uploads SET Size = $3::bigint, \"Offset\" = $4::bigint, "
	    "TempPath = $5, Expires = " STORED("$6") ", Created = " NOW " "
	    "WHERE ID = $1 AND FileName = $2 AND TempPath = $7", 7, 0 },
	[PS_UPLOAD_DROP] = { "DELETE FROM uploads WHERE ID = $1 AND FileName = $2 "
	    "AND TempPath = $3", 3, 0 },
	/* Rows that no constraint of ours would let in: 0 on a healthy database. */
	[PS_INTEGRITY] = { "SELECT (SELECT count(*) FROM files f WHERE NOT EXISTS "
	    "(SELECT 1 FROM clients c WHERE c.ID = f.ID)) + (SELECT count(*) FROM uploads u "
	    "WHERE u.\"Offset\" > u.Size) + (SELECT count(*) FROM sealdrop_schema "
	    "WHERE version <> 2)", 0, 1 },
};

struct dbpg {
	PGconn *conn;
	int prepared;  /* the statements exist on this connection (lost with it) */
	int in_tx;     /* between tx_begin and tx_commit or tx_abort */
	unsigned lock_timeout_ms; /* set on every new connection; 0: PostgreSQL's (no limit) */
	char errmsg[256];
};

/* Parameters of one statement: text, or binary for bytea; NULL where v[i] is NULL. */
struct args {
	const char *v[PG_MAX_PARAMS];
	int len[PG_MAX_PARAMS];
	int fmt[PG_MAX_PARAMS];
	char num[PG_MAX_PARAMS][24];
};

static void
wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;

	while (n-- > 0)
		*v++ = 0;
}

/* libpq prints notices (e.g. "relation already exists, skipping") to stderr by default: a
 * library of ours never prints. */
static void
ignore_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

int
dbpg_is_conninfo(const char *target)
{
	if (target == NULL)
		return 0;
	return strncmp(target, "postgresql://", 13) == 0 ||
	    strncmp(target, "postgres://", 11) == 0 || strchr(target, '=') != NULL;
}

/* Length of the value at v of a "password=" keyword (quoted as libpq quotes, or up to a
 * space, '&' of a URI query, or a quote of the message around it). */
static size_t
keyword_value_len(const char *v)
{
	size_t n = 0;

	if (v[0] == '\'') {
		for (n = 1; v[n] != '\0' && v[n] != '\''; n++)
			if (v[n] == '\\' && v[n + 1] != '\0')
				n++;
		return v[n] == '\'' ? n + 1 : n;
	}
	return strcspn(v, " \t\n&\"");
}

/* Copies in to out (always NUL-terminated when cap > 0) with every password in it replaced
 * by "***": secret (the connection's own password, may be NULL) wherever it appears, the
 * password of a URI ("scheme://user:PASSWORD@host", up to the '@' as libpq reads it), and the
 * value of a "password=" keyword. libpq's and the server's messages may quote a connection
 * string or a database name that is one; what we keep of them reaches logs. */
static void
copy_masked(const char *in, const char *secret, char *out, size_t cap)
{
	size_t i = 0, o = 0, n, slen = secret != NULL ? strlen(secret) : 0, k;
	const char *keep = NULL, *colon;
	size_t keep_len = 0, skip = 0;

	if (cap == 0)
		return;
	while (in[i] != '\0' && o + 1 < cap) {
		keep = NULL;
		skip = 0;
		if (slen > 0 && strncmp(in + i, secret, slen) == 0) {
			skip = slen;
		} else if (strncmp(in + i, "://", 3) == 0) {
			k = strcspn(in + i + 3, "@/");
			colon = memchr(in + i + 3, ':', k);
			if (in[i + 3 + k] == '@' && colon != NULL) {
				keep = in + i;  /* "://user:" stays, the password goes */
				keep_len = (size_t)(colon - keep) + 1;
				skip = (size_t)(in + i + 3 + k - keep) - keep_len;
			}
		} else if (strncmp(in + i, "password=", 9) == 0) {
			keep = in + i;
			keep_len = 9;
			skip = keyword_value_len(in + i + 9);
		}
		if (keep == NULL && skip == 0) {
			out[o++] = in[i++];
			continue;
		}
		for (n = 0; n < keep_len && o + 1 < cap; n++)
			out[o++] = keep[n];
		i += keep_len + skip;
		keep_len = 0;
		for (n = 0; n < 3 && o + 1 < cap; n++)
			out[o++] = '*';
	}
	out[o] = '\0';
}

/* Keeps the first line of libpq's message (they end with a newline), without passwords. */
static void
save_msg(struct dbpg *pg, const char *msg)
{
	size_t n;

	copy_masked(msg != NULL && *msg != '\0' ? msg : "PostgreSQL failed",
	    pg->conn != NULL ? PQpass(pg->conn) : NULL, pg->errmsg, sizeof(pg->errmsg));
	n = strcspn(pg->errmsg, "\n");
	pg->errmsg[n] = '\0';
}

/* Maps a failed result: unique violations (a name, an id, a path, a key taken: the
 * constraint decides races between servers) are SD_ERR_EXISTS, our foreign keys all name the
 * owner so theirs is SD_ERR_NOT_FOUND; the fingerprint's unique index is SD_ERR_BOUND. */
static int
result_fail(struct dbpg *pg, const PGresult *res)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *cons = res != NULL ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;

	save_msg(pg, res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(pg->conn));
	if (state == NULL)
		return SD_ERR_DB;
	if (strcmp(state, "23505") == 0)
		return cons != NULL && strcmp(cons, "clients_fingerprint") == 0 ? SD_ERR_BOUND :
		    SD_ERR_EXISTS;
	if (strcmp(state, "23503") == 0)
		return SD_ERR_NOT_FOUND;
	return SD_ERR_DB;
}

static int exec_fixed(struct dbpg *pg, const char *sql);

static int
prepare_all(struct dbpg *pg)
{
	PGresult *res;
	char name[16];
	size_t i;
	int r = 0;

	for (i = 0; i < PS_COUNT; i++) {
		snprintf(name, sizeof(name), "sd%zu", i);
		res = PQprepare(pg->conn, name, pstmts[i].sql, pstmts[i].nparams, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			r = result_fail(pg, res);
		PQclear(res);
		if (r != 0)
			return r == SD_ERR_DB && PQstatus(pg->conn) == CONNECTION_OK ?
			    SD_ERR_SCHEMA : r;
	}
	pg->prepared = 1;
	return 0;
}

/* Has the server closed this idle connection (a database restart, an administrator)? Its
 * last words (a FATAL message, which libpq hands to the notice processor) and the end of the
 * stream wait on the socket: reading them, without sending anything, marks the connection
 * bad. Two reads: the message, then the end. Never blocks (libpq's socket is non-blocking).
 * A server that is closing it only now is not seen: the statement then fails as before. */
static void
notice_closed(struct dbpg *pg)
{
	int i;

	for (i = 0; i < 2 && PQstatus(pg->conn) == CONNECTION_OK; i++) {
		if (!PQconsumeInput(pg->conn))
			break;
		(void)PQisBusy(pg->conn);  /* parses what came in */
	}
}

/* The session's lock_timeout: how long a statement waits for a lock another session holds
 * (a row another server is changing, an administrator's LOCK TABLE or ALTER TABLE) before it
 * fails with lock_not_available, SD_ERR_DB. Session settings go with the connection, so a new
 * one gets it again (ready). */
static int
apply_lock_timeout(struct dbpg *pg)
{
	char sql[48];

	snprintf(sql, sizeof(sql), "SET lock_timeout = %u", pg->lock_timeout_ms);
	return exec_fixed(pg, sql);
}

/* Before a statement: a connection that broke is reset (once per call), and statements are
 * prepared (and the lock timeout set) on a fresh one. Outside a transaction, one the server
 * closed while it was idle counts as broken: the statement has not been sent yet, so a write
 * too runs once on the new connection. Inside a transaction a broken connection lost it:
 * SD_ERR_DB. */
static int
ready(struct dbpg *pg)
{
	int r;

	if (!pg->in_tx && PQstatus(pg->conn) == CONNECTION_OK)
		notice_closed(pg);
	if (PQstatus(pg->conn) != CONNECTION_OK) {
		pg->prepared = 0;
		if (pg->in_tx) {
			save_msg(pg, "connection lost inside a transaction");
			return SD_ERR_DB;
		}
		PQreset(pg->conn);
		if (PQstatus(pg->conn) != CONNECTION_OK) {
			save_msg(pg, PQerrorMessage(pg->conn));
			return SD_ERR_DB;
		}
	}
	if (pg->prepared)
		return 0;
	if ((r = apply_lock_timeout(pg)) != 0)
		return r;
	return prepare_all(pg);
}

/* Runs a prepared statement. On success *out holds the result (the caller clears it). A
 * statement marked retry whose connection broke runs once more on a new connection, outside
 * transactions only; any other failure is the caller's (the server answers 1607). */
static int
run(struct dbpg *pg, enum pst id, const struct args *a, PGresult **out)
{
	PGresult *res;
	ExecStatusType st;
	char name[16];
	int r, tries = 0;

	*out = NULL;
	snprintf(name, sizeof(name), "sd%d", (int)id);
	for (;;) {
		if ((r = ready(pg)) != 0)
			return r;
		res = PQexecPrepared(pg->conn, name, pstmts[id].nparams,
		    a != NULL ? a->v : NULL, a != NULL ? a->len : NULL, a != NULL ? a->fmt : NULL, 0);
		st = PQresultStatus(res);
		if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
			*out = res;
			return 0;
		}
		r = result_fail(pg, res);
		PQclear(res);
		if (PQstatus(pg->conn) == CONNECTION_OK)
			return r;
		pg->prepared = 0;
		if (pg->in_tx || !pstmts[id].retry || tries++ > 0)
			return SD_ERR_DB;
	}
}

/* Runs a statement for its effect; *changed (may be NULL) gets the rows it touched. */
static int
exec_count(struct dbpg *pg, enum pst id, const struct args *a, long *changed)
{
	PGresult *res;
	int r;

	if (changed != NULL)
		*changed = 0;
	if ((r = run(pg, id, a, &res)) != 0)
		return r;
	if (changed != NULL)
		*changed = strtol(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return 0;
}

/* The same for a statement that must touch a row: SD_ERR_NOT_FOUND when it touched none. */
static int
exec_one(struct dbpg *pg, enum pst id, const struct args *a)
{
	long n;
	int r = exec_count(pg, id, a, &n);

	return r == 0 && n == 0 ? SD_ERR_NOT_FOUND : r;
}

/* Fixed SQL of ours (transaction control, the schema), never built from input. */
static int
exec_fixed(struct dbpg *pg, const char *sql)
{
	PGresult *res = PQexec(pg->conn, sql);
	ExecStatusType st = PQresultStatus(res);
	int r = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		r = result_fail(pg, res);
	PQclear(res);
	return r;
}

/* BEGIN on a connection that broke since its last use (the database restarted) is tried once
 * more on a new one: nothing was done yet. */
static int
tx_begin(struct dbpg *pg)
{
	int r, tries;

	for (tries = 0; tries < 2; tries++) {
		if ((r = ready(pg)) != 0)
			return r;
		if ((r = exec_fixed(pg, "BEGIN")) == 0) {
			pg->in_tx = 1;
			return 0;
		}
		if (PQstatus(pg->conn) == CONNECTION_OK)
			return r;
		pg->prepared = 0;
	}
	return SD_ERR_DB;
}

static int
tx_commit(struct dbpg *pg)
{
	int r = exec_fixed(pg, "COMMIT");

	pg->in_tx = 0;
	return r;
}

/* Ends a failed transaction, keeping the first error's message. */
static void
tx_abort(struct dbpg *pg)
{
	PGresult *res;

	if (!pg->in_tx)
		return;
	pg->in_tx = 0;
	if (PQstatus(pg->conn) != CONNECTION_OK)
		return;
	res = PQexec(pg->conn, "ROLLBACK");
	PQclear(res);
}

/* ---- parameters ---- */

static void
args_init(struct args *a)
{
	memset(a, 0, sizeof(*a));
}

static int
arg_bytes(struct args *a, int i, const void *p, size_t n)
{
	a->v[i - 1] = p;
	a->len[i - 1] = (int)n;
	a->fmt[i - 1] = 1;
	return 0;
}

static int
arg_id(struct args *a, int i, const uint8_t *id)
{
	if (id == NULL)
		return SD_ERR_INVALID_ARG;
	return arg_bytes(a, i, id, CLIENT_ID_SIZE);
}

/* Text of 1 to NAME_MAX_LEN bytes (the longest string field of the protocol). libpq reads
 * text parameters up to their NUL. */
static int
arg_name(struct args *a, int i, const char *name)
{
	size_t n;

	if (name == NULL)
		return SD_ERR_INVALID_ARG;
	n = strnlen(name, NAME_MAX_LEN + 1);
	if (n == 0 || n > NAME_MAX_LEN)
		return SD_ERR_INVALID_ARG;
	a->v[i - 1] = name;
	return 0;
}

static int
arg_path(struct args *a, int i, const char *path, size_t cap)
{
	size_t n = strnlen(path, cap);

	if (n == 0 || n >= cap)
		return SD_ERR_INVALID_ARG;
	a->v[i - 1] = path;
	return 0;
}

static int
arg_fingerprint(struct args *a, int i, const char *fp)
{
	if (!db_valid_fingerprint(fp))
		return SD_ERR_INVALID_ARG;
	a->v[i - 1] = fp;
	return 0;
}

static int
arg_i64(struct args *a, int i, int64_t v)
{
	snprintf(a->num[i - 1], sizeof(a->num[i - 1]), "%lld", (long long)v);
	a->v[i - 1] = a->num[i - 1];
	return 0;
}

static int
arg_u64(struct args *a, int i, uint64_t v)
{
	if (v > (uint64_t)INT64_MAX)
		return SD_ERR_INVALID_ARG;
	return arg_i64(a, i, (int64_t)v);
}

/* Unix seconds; 0 stays NULL ("now" or "keep", as the statement says). */
static int
arg_time(struct args *a, int i, int64_t t)
{
	if (t < 0 || t > PG_TIME_MAX)
		return SD_ERR_INVALID_ARG;
	return t == 0 ? 0 : arg_i64(a, i, t);
}

static int
arg_sha256(struct args *a, int i, int has, const uint8_t *sha)
{
	return has ? arg_bytes(a, i, sha, DB_SHA256_SIZE) : 0;
}

/* Binds (owner, file_name) as $1, $2. */
static int
arg_key(struct args *a, const uint8_t *owner, const char *file_name)
{
	int r;

	if ((r = arg_id(a, 1, owner)) != 0)
		return r;
	return arg_name(a, 2, file_name);
}

/* ---- columns (text results) ---- */

static void
col_text(const PGresult *res, int row, int col, char *out, size_t cap)
{
	const char *t = PQgetvalue(res, row, col);
	size_t len = strlen(t);

	if (len > cap - 1)
		len = cap - 1;
	memcpy(out, t, len);
	out[len] = '\0';
}

/* A bytea column into a fixed field; the bytes copied, 0 for NULL. */
static size_t
col_blob(const PGresult *res, int row, int col, uint8_t *out, size_t cap)
{
	unsigned char *b;
	size_t len = 0;

	if (PQgetisnull(res, row, col))
		return 0;
	b = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, col), &len);
	if (b == NULL)
		return 0;
	if (len > cap)
		len = cap;
	memcpy(out, b, len);
	wipe(b, len);
	PQfreemem(b);
	return len;
}

static int64_t
col_i64(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static uint64_t
col_u64(const PGresult *res, int row, int col)
{
	int64_t v = col_i64(res, row, col);

	return v > 0 ? (uint64_t)v : 0;
}

/* A boolean (to_regclass tests) or a 0/1 Verified column. */
static int
col_bool(const PGresult *res, int row, int col)
{
	const char *v = PQgetvalue(res, row, col);

	return !PQgetisnull(res, row, col) && (v[0] == 't' || v[0] == '1');
}

static void
col_sha256(const PGresult *res, int row, int col, int *has, uint8_t out[DB_SHA256_SIZE])
{
	uint8_t tmp[DB_SHA256_SIZE + 1];

	*has = col_blob(res, row, col, tmp, sizeof(tmp)) == DB_SHA256_SIZE;
	if (*has)
		memcpy(out, tmp, DB_SHA256_SIZE);
}

static void
read_client(const PGresult *res, int row, struct db_client *c)
{
	memset(c, 0, sizeof(*c));
	col_blob(res, row, 0, c->id, sizeof(c->id));
	col_text(res, row, 1, c->name, sizeof(c->name));
	if (!PQgetisnull(res, row, 2)) {
		c->has_public_key = 1;
		c->public_key_len = col_blob(res, row, 2, c->public_key, sizeof(c->public_key));
	}
	if (!PQgetisnull(res, row, 3)) {
		c->has_aes_key = 1;
		col_blob(res, row, 3, c->aes_key, sizeof(c->aes_key));
	}
	c->last_seen = col_i64(res, row, 4);
	col_text(res, row, 5, c->fingerprint, sizeof(c->fingerprint));
}

static void
read_file(const PGresult *res, int row, struct db_file *f)
{
	memset(f, 0, sizeof(*f));
	col_blob(res, row, 0, f->owner, sizeof(f->owner));
	col_text(res, row, 1, f->owner_name, sizeof(f->owner_name));
	col_text(res, row, 2, f->file_name, sizeof(f->file_name));
	col_text(res, row, 3, f->path_name, sizeof(f->path_name));
	f->verified = col_bool(res, row, 4);
	f->size = col_u64(res, row, 5);
	f->crc = (uint32_t)((uint64_t)col_i64(res, row, 6) & 0xffffffffu);
	f->uploaded = col_i64(res, row, 7);
	col_sha256(res, row, 8, &f->has_sha256, f->sha256);
}

static void
read_commit(const PGresult *res, int row, struct db_commit *c)
{
	memset(c, 0, sizeof(*c));
	col_blob(res, row, 0, c->owner, sizeof(c->owner));
	col_text(res, row, 1, c->file_name, sizeof(c->file_name));
	col_text(res, row, 2, c->temp_path, sizeof(c->temp_path));
	col_text(res, row, 3, c->path_name, sizeof(c->path_name));
	c->size = col_u64(res, row, 4);
	c->crc = (uint32_t)((uint64_t)col_i64(res, row, 5) & 0xffffffffu);
	col_sha256(res, row, 6, &c->has_sha256, c->sha256);
	c->verified = col_bool(res, row, 7);
	c->created = col_i64(res, row, 8);
}

static void
read_upload(const PGresult *res, int row, struct db_upload *u)
{
	memset(u, 0, sizeof(*u));
	col_blob(res, row, 0, u->owner, sizeof(u->owner));
	col_text(res, row, 1, u->file_name, sizeof(u->file_name));
	u->size = col_u64(res, row, 2);
	u->offset = col_u64(res, row, 3);
	col_text(res, row, 4, u->temp_path, sizeof(u->temp_path));
	u->expires = col_i64(res, row, 5);
	u->created = col_i64(res, row, 6);
}

/* ---- opening ---- */

/* Creates the schema, or checks the one there, in one transaction under an advisory lock so
 * that servers starting together do not race on CREATE TABLE IF NOT EXISTS. A later schema
 * version upgrades here, under the same lock. */
static int
create_or_check(struct dbpg *pg, enum db_open_mode mode)
{
	PGresult *res = NULL;
	int r, in_tx = 0, version;

	if ((r = exec_fixed(pg, "BEGIN")) != 0)
		goto out;
	in_tx = 1;
	if (mode == DB_READ_WRITE &&
	    (r = exec_fixed(pg, "SELECT pg_advisory_xact_lock(" PG_SCHEMA_LOCK ")")) != 0)
		goto out;
	res = PQexec(pg->conn, "SELECT to_regclass('sealdrop_schema') IS NOT NULL, "
	    "to_regclass('clients') IS NOT NULL");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		r = result_fail(pg, res);
		goto out;
	}
	if (!col_bool(res, 0, 0)) {
		if (col_bool(res, 0, 1)) {
			save_msg(pg, "tables without a sealdrop_schema version");
			r = SD_ERR_SCHEMA;
			goto out;
		}
		if (mode != DB_READ_WRITE) {
			save_msg(pg, "no sealdrop tables");
			r = SD_ERR_SCHEMA;
			goto out;
		}
		if ((r = exec_fixed(pg, pg_schema_sql)) != 0)
			goto out;
	}
	PQclear(res);
	res = PQexec(pg->conn, "SELECT max(version) FROM sealdrop_schema");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		r = result_fail(pg, res);
		goto out;
	}
	version = (int)col_i64(res, 0, 0);
	if (version != PG_SCHEMA_VERSION) {
		snprintf(pg->errmsg, sizeof(pg->errmsg), "schema version %d, not %d", version,
		    PG_SCHEMA_VERSION);
		r = SD_ERR_SCHEMA;
		goto out;
	}
	if ((r = exec_fixed(pg, "COMMIT")) != 0)
		goto out;
	in_tx = 0;
out:
	PQclear(res);
	if (in_tx)
		PQclear(PQexec(pg->conn, "ROLLBACK"));
	return r;
}

/* The "options" of conninfo (as parsed in opts) with read-only transactions added last: as
 * a connection parameter it holds on every connection made with them, the new one PQreset
 * makes after a database restart too (a SET would be lost there). Caller frees. */
static char *
read_only_options(const PQconninfoOption *opts)
{
	static const char ro[] = "-c default_transaction_read_only=on";
	const char *given = "";
	char *s;
	size_t n;

	for (; opts->keyword != NULL; opts++)
		if (strcmp(opts->keyword, "options") == 0 && opts->val != NULL)
			given = opts->val;
	/* libpq reads PGOPTIONS only when no options are given: ours would hide it. */
	if (given[0] == '\0' && getenv("PGOPTIONS") != NULL)
		given = getenv("PGOPTIONS");
	n = strlen(given) + 1 + sizeof(ro);
	if ((s = malloc(n)) != NULL)
		snprintf(s, n, "%s%s%s", given, given[0] != '\0' ? " " : "", ro);
	return s;
}

int
dbpg_open(const char *conninfo, enum db_open_mode mode, struct dbpg **out, char *why,
    size_t why_cap)
{
	/* A database host that does not answer must not hold a worker for minutes: connecting
	 * (and every reconnection, PQreset) gives up after DB_PG_CONNECT_TIMEOUT seconds unless
	 * the connection string sets its own connect_timeout (it is read after ours). Options
	 * come after the connection string, so that read-only cannot be overridden there. */
	static const char *const keys[] = { "connect_timeout", "dbname", "options", NULL };
	const char *values[] = { DB_PG_CONNECT_TIMEOUT, conninfo, NULL, NULL };
	PQconninfoOption *opts = NULL;
	char *parse_err = NULL, *ro_opts = NULL;
	struct dbpg *pg;
	int r;

	*out = NULL;
	if ((pg = calloc(1, sizeof(*pg))) == NULL)
		return SD_ERR_ALLOC;
	/* libpq's own message quotes the string, password and all: ours says only what is
	 * expected. */
	if ((opts = PQconninfoParse(conninfo, &parse_err)) == NULL) {
		r = parse_err != NULL ? SD_ERR_IO : SD_ERR_ALLOC;
		snprintf(pg->errmsg, sizeof(pg->errmsg), "unparsable connection string (expected "
		    "postgresql://USER@HOST/DATABASE or keywords as in host=HOST dbname=DATABASE)");
		goto out;
	}
	if (mode == DB_READ_ONLY && (values[2] = ro_opts = read_only_options(opts)) == NULL) {
		r = SD_ERR_ALLOC;
		goto out;
	}
	if ((pg->conn = PQconnectdbParams(keys, values, 1)) == NULL) {
		r = SD_ERR_ALLOC;
		goto out;
	}
	if (PQstatus(pg->conn) != CONNECTION_OK) {
		save_msg(pg, PQerrorMessage(pg->conn));
		r = SD_ERR_IO;
		goto out;
	}
	PQsetNoticeProcessor(pg->conn, ignore_notice, NULL);
	if ((r = create_or_check(pg, mode)) != 0 || (r = prepare_all(pg)) != 0)
		goto out;
	*out = pg;
	pg = NULL;
	r = 0;
out:
	if (why != NULL && why_cap > 0)
		snprintf(why, why_cap, "%s", pg != NULL ? pg->errmsg : "");
	if (parse_err != NULL) {
		wipe(parse_err, strlen(parse_err));
		PQfreemem(parse_err);
	}
	PQconninfoFree(opts);
	free(ro_opts);
	dbpg_close(pg);
	return r;
}

int
dbpg_set_lock_timeout(struct dbpg *pg, unsigned ms)
{
	pg->lock_timeout_ms = ms;
	if (PQstatus(pg->conn) != CONNECTION_OK) {
		pg->prepared = 0;  /* ready() sets it on the next connection */
		return 0;
	}
	return apply_lock_timeout(pg);
}

void
dbpg_close(struct dbpg *pg)
{
	if (pg == NULL)
		return;
	PQfinish(pg->conn);
	free(pg);
}

const char *
dbpg_errmsg(const struct dbpg *pg)
{
	return pg->errmsg;
}

/* ---- clients ---- */

static int
one_client(struct dbpg *pg, enum pst id, const struct args *a, struct db_client *out)
{
	PGresult *res;
	int r;

	if ((r = run(pg, id, a, &res)) != 0)
		return r;
	if (PQntuples(res) > 0)
		read_client(res, 0, out);
	else
		r = SD_ERR_NOT_FOUND;
	PQclear(res);
	return r;
}

int
dbpg_client_by_name(struct dbpg *pg, const char *name, struct db_client *out)
{
	struct args a;

	args_init(&a);
	if (arg_name(&a, 1, name) != 0)
		return SD_ERR_NOT_FOUND;
	return one_client(pg, PS_CLIENT_BY_NAME, &a, out);
}

int
dbpg_client_by_id(struct dbpg *pg, const uint8_t id[CLIENT_ID_SIZE], struct db_client *out)
{
	struct args a;
	int r;

	args_init(&a);
	if ((r = arg_id(&a, 1, id)) != 0)
		return r;
	return one_client(pg, PS_CLIENT_BY_ID, &a, out);
}

int
dbpg_client_by_fingerprint(struct dbpg *pg, const char *fingerprint, struct db_client *out)
{
	struct args a;

	args_init(&a);
	if (arg_fingerprint(&a, 1, fingerprint) != 0)
		return SD_ERR_NOT_FOUND;
	return one_client(pg, PS_CLIENT_BY_FINGERPRINT, &a, out);
}

/* Registration: the old pending row (pending_id's only, or any when any_pending) goes and the
 * new row comes in, in one transaction. Between servers the unique constraint on Name decides:
 * the second INSERT fails with unique_violation, SD_ERR_EXISTS. */
static int
register_tx(struct dbpg *pg, const char *name, const uint8_t *id, const uint8_t *pending_id,
    int any_pending)
{
	struct args del, ins;
	int r;

	args_init(&del);
	args_init(&ins);
	if ((r = arg_id(&ins, 1, id)) != 0 || (r = arg_name(&ins, 2, name)) != 0 ||
	    (r = arg_name(&del, 1, name)) != 0 ||
	    (pending_id != NULL && (r = arg_id(&del, 2, pending_id)) != 0))
		return r;
	if ((r = tx_begin(pg)) != 0)
		return r;
	if ((any_pending && (r = exec_count(pg, PS_CLIENT_DELETE_PENDING, &del, NULL)) != 0) ||
	    (pending_id != NULL &&
	    (r = exec_count(pg, PS_CLIENT_DELETE_PENDING_ID, &del, NULL)) != 0) ||
	    (r = exec_count(pg, PS_CLIENT_INSERT, &ins, NULL)) != 0)
		goto out;
	r = tx_commit(pg);
out:
	tx_abort(pg);
	return r;
}

int
dbpg_client_register(struct dbpg *pg, const char *name, const uint8_t id[CLIENT_ID_SIZE])
{
	return register_tx(pg, name, id, NULL, 1);
}

int
dbpg_client_register_conn(struct dbpg *pg, const char *name, const uint8_t id[CLIENT_ID_SIZE],
    const uint8_t *pending_id)
{
	return register_tx(pg, name, id, pending_id, 0);
}

int
dbpg_client_expire_pending(struct dbpg *pg, int64_t ttl_seconds, long *removed)
{
	struct args a;
	long n;
	int r;

	args_init(&a);
	arg_i64(&a, 1, ttl_seconds);
	r = exec_count(pg, PS_CLIENT_EXPIRE_PENDING, &a, &n);
	if (r == 0 && removed != NULL)
		*removed = n;
	return r;
}

/* Inside a transaction: SD_ERR_BOUND when the fingerprint belongs to an account other than id
 * (id NULL: to any account). */
static int
fingerprint_free(struct dbpg *pg, const char *fingerprint, const uint8_t *id)
{
	struct db_client c;
	int r = dbpg_client_by_fingerprint(pg, fingerprint, &c);

	if (r == 0)
		r = id != NULL && memcmp(c.id, id, CLIENT_ID_SIZE) == 0 ? 0 : SD_ERR_BOUND;
	else if (r == SD_ERR_NOT_FOUND)
		r = 0;
	wipe(&c, sizeof(c));
	return r;
}

int
dbpg_client_register_v4(struct dbpg *pg, const char *name, const uint8_t id[CLIENT_ID_SIZE],
    const uint8_t *public_key, size_t key_len, const char *fingerprint)
{
	struct args a;
	int r;

	args_init(&a);
	if ((r = arg_id(&a, 1, id)) != 0 || (r = arg_name(&a, 2, name)) != 0 ||
	    (r = arg_bytes(&a, 3, public_key, key_len)) != 0 ||
	    (r = arg_fingerprint(&a, 4, fingerprint)) != 0)
		return r;
	/* The look first names the usual case; a race with another server is decided by the
	 * unique index, which result_fail maps to SD_ERR_BOUND by its name. */
	if ((r = tx_begin(pg)) != 0)
		return r;
	if ((r = fingerprint_free(pg, fingerprint, NULL)) != 0 ||
	    (r = exec_count(pg, PS_CLIENT_INSERT_V4, &a, NULL)) != 0)
		goto out;
	r = tx_commit(pg);
out:
	tx_abort(pg);
	return r;
}

int
dbpg_client_bind_fingerprint(struct dbpg *pg, const uint8_t id[CLIENT_ID_SIZE],
    const char *fingerprint)
{
	struct args a;
	int r;

	args_init(&a);
	if ((r = arg_id(&a, 1, id)) != 0 || (r = arg_fingerprint(&a, 2, fingerprint)) != 0)
		return r;
	if ((r = tx_begin(pg)) != 0)
		return r;
	if ((r = fingerprint_free(pg, fingerprint, id)) != 0 ||
	    (r = exec_one(pg, PS_CLIENT_SET_FINGERPRINT, &a)) != 0)
		goto out;
	r = tx_commit(pg);
out:
	tx_abort(pg);
	return r;
}

int
dbpg_client_set_public_key(struct dbpg *pg, const uint8_t id[CLIENT_ID_SIZE],
    const uint8_t *key, size_t len)
{
	struct db_client c;
	struct args a;
	int r;

	args_init(&a);
	if ((r = arg_id(&a, 1, id)) != 0 || (r = arg_bytes(&a, 2, key, len)) != 0)
		return r;
	/* Only a row without a key matches; when none did, find out why. */
	if ((r = exec_one(pg, PS_CLIENT_SET_PUBKEY, &a)) != SD_ERR_NOT_FOUND)
		return r;
	if ((r = dbpg_client_by_id(pg, id, &c)) == 0)
		r = SD_ERR_EXISTS;
	wipe(&c, sizeof(c));
	return r;
}

int
dbpg_client_set_aes_key(struct dbpg *pg, const uint8_t id[CLIENT_ID_SIZE],
    const uint8_t key[AES_KEY_SIZE])
{
	struct args a;
	int r;

	args_init(&a);
	if ((r = arg_id(&a, 1, id)) != 0 || (r = arg_bytes(&a, 2, key, AES_KEY_SIZE)) != 0)
		return r;
	return exec_one(pg, PS_CLIENT_SET_AES, &a);
}

int
dbpg_client_touch(struct dbpg *pg, const uint8_t id[CLIENT_ID_SIZE])
{
	struct args a;
	int r;

	args_init(&a);
	if ((r = arg_id(&a, 1, id)) != 0)
		return r;
	return exec_one(pg, PS_CLIENT_TOUCH, &a);
}

/* 826: both keys in one transaction, or neither. */
int
dbpg_client_set_keys(struct dbpg *pg, const uint8_t id[CLIENT_ID_SIZE],
    const uint8_t *public_key, size_t len, const uint8_t aes_key[AES_KEY_SIZE])
{
	int r;

	if ((r = tx_begin(pg)) != 0)
		return r;
	if ((r = dbpg_client_set_public_key(pg, id, public_key, len)) != 0 ||
	    (r = dbpg_client_set_aes_key(pg, id, aes_key)) != 0)
		goto out;
	r = tx_commit(pg);
out:
	tx_abort(pg);
	return r;
}

int
dbpg_client_copy(struct dbpg *pg, const struct db_client *c)
{
	struct args a;
	int r;

	args_init(&a);
	if ((r = arg_id(&a, 1, c->id)) != 0 || (r = arg_name(&a, 2, c->name)) != 0 ||
	    (c->has_public_key && (r = arg_bytes(&a, 3, c->public_key, c->public_key_len)) != 0) ||
	    (r = arg_time(&a, 4, c->last_seen > 0 ? c->last_seen : 0)) != 0 ||
	    (c->has_aes_key && (r = arg_bytes(&a, 5, c->aes_key, AES_KEY_SIZE)) != 0) ||
	    (c->fingerprint[0] != '\0' && (r = arg_fingerprint(&a, 6, c->fingerprint)) != 0))
		return r;
	r = exec_count(pg, PS_CLIENT_COPY, &a, NULL);
	/* Another ID holds the fingerprint: still "exists" for a copy. */
	return r == SD_ERR_BOUND ? SD_ERR_EXISTS : r;
}

/* ---- files ---- */

int
dbpg_file_record(struct dbpg *pg, const struct db_file *f)
{
	struct args del, a;
	int r;

	args_init(&del);
	args_init(&a);
	if ((r = arg_id(&del, 1, f->owner)) != 0 ||
	    (r = arg_path(&del, 2, f->path_name, sizeof(f->path_name))) != 0 ||
	    (r = arg_name(&del, 3, f->file_name)) != 0 ||
	    (r = arg_key(&a, f->owner, f->file_name)) != 0 ||
	    (r = arg_path(&a, 3, f->path_name, sizeof(f->path_name))) != 0 ||
	    (r = arg_u64(&a, 4, f->size)) != 0 || (r = arg_i64(&a, 5, (int64_t)f->crc)) != 0 ||
	    (f->uploaded > 0 && (r = arg_i64(&a, 6, f->uploaded)) != 0) ||
	    (r = arg_sha256(&a, 7, f->has_sha256, f->sha256)) != 0)
		return r;
	if ((r = tx_begin(pg)) != 0)
		return r;
	if ((r = exec_count(pg, PS_FILE_DELETE_SAME_PATH, &del, NULL)) != 0)
		goto out;
	/* The only constraint that can fail here is the owner's foreign key. */
	if ((r = exec_count(pg, PS_FILE_RECORD, &a, NULL)) != 0) {
		if (r == SD_ERR_EXISTS)
			r = SD_ERR_NOT_FOUND;
		goto out;
	}
	r = tx_commit(pg);
out:
	tx_abort(pg);
	return r;
}

int
dbpg_file_set_verified(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE],
    const char *file_name, int verified)
{
	struct args a;
	int r;

	args_init(&a);
	if ((r = arg_key(&a, owner, file_name)) != 0)
		return r;
	a.v[2] = verified ? "1" : "0";
	return exec_one(pg, PS_FILE_SET_VERIFIED, &a);
}

int
dbpg_file_get(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name,
    struct db_file *out)
{
	PGresult *res;
	struct args a;
	int r;

	args_init(&a);
	if ((r = arg_key(&a, owner, file_name)) != 0 ||
	    (r = run(pg, PS_FILE_GET, &a, &res)) != 0)
		return r;
	if (PQntuples(res) > 0)
		read_file(res, 0, out);
	else
		r = SD_ERR_NOT_FOUND;
	PQclear(res);
	return r;
}

int
dbpg_file_set_sha256(struct dbpg *pg, const struct db_file *seen,
    const uint8_t sha256[DB_SHA256_SIZE])
{
	struct args a;
	int r;

	args_init(&a);
	if ((r = arg_key(&a, seen->owner, seen->file_name)) != 0 ||
	    (r = arg_path(&a, 3, seen->path_name, sizeof(seen->path_name))) != 0 ||
	    (r = arg_u64(&a, 4, seen->size)) != 0 ||
	    (r = arg_i64(&a, 5, (int64_t)seen->crc)) != 0 ||
	    (r = arg_i64(&a, 6, seen->uploaded)) != 0 ||
	    (r = arg_sha256(&a, 7, 1, sha256)) != 0)
		return r;
	return exec_one(pg, PS_FILE_SET_SHA256, &a);
}

int
dbpg_file_copy(struct dbpg *pg, const struct db_file *f)
{
	struct args a;
	int r;

	args_init(&a);
	if ((r = arg_key(&a, f->owner, f->file_name)) != 0 ||
	    (r = arg_path(&a, 3, f->path_name, sizeof(f->path_name))) != 0 ||
	    (r = arg_u64(&a, 5, f->size)) != 0 || (r = arg_i64(&a, 6, (int64_t)f->crc)) != 0 ||
	    (r = arg_time(&a, 7, f->uploaded)) != 0 ||
	    (r = arg_sha256(&a, 8, f->has_sha256, f->sha256)) != 0)
		return r;
	a.v[3] = f->verified ? "1" : "0";
	/* One statement; the only constraint that can fail is the owner's foreign key. */
	return exec_count(pg, PS_FILE_COPY, &a, NULL);
}

/* A DELETE by (owner, file_name): SD_ERR_NOT_FOUND when there was no such row. */
static int
delete_by_key(struct dbpg *pg, enum pst id, const uint8_t *owner, const char *file_name)
{
	struct args a;
	int r;

	args_init(&a);
	if ((r = arg_key(&a, owner, file_name)) != 0)
		return r == SD_ERR_INVALID_ARG && owner != NULL ? SD_ERR_NOT_FOUND : r;
	return exec_one(pg, id, &a);
}

int
dbpg_file_delete(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name)
{
	return delete_by_key(pg, PS_FILE_DELETE, owner, file_name);
}

/* The walks over clients and files fetch the whole answer first, so a callback may use the
 * connection freely (they serve the inspect tool and LIST, not the hot path). */
int
dbpg_each_client(struct dbpg *pg, db_client_cb cb, void *ctx)
{
	struct db_client c;
	PGresult *res;
	int i, n, r;

	if ((r = run(pg, PS_EACH_CLIENT, NULL, &res)) != 0)
		return r;
	n = PQntuples(res);
	for (i = 0; i < n && r == 0; i++) {
		read_client(res, i, &c);
		r = cb(ctx, &c, (long)col_i64(res, i, CLIENT_NCOLS));
	}
	wipe(&c, sizeof(c));
	PQclear(res);
	return r;
}

static int
each_file_of(struct dbpg *pg, enum pst id, const struct args *a, db_file_cb cb, void *ctx)
{
	struct db_file f;
	PGresult *res;
	int i, n, r;

	if ((r = run(pg, id, a, &res)) != 0)
		return r;
	n = PQntuples(res);
	for (i = 0; i < n && r == 0; i++) {
		read_file(res, i, &f);
		r = cb(ctx, &f);
	}
	PQclear(res);
	return r;
}

int
dbpg_each_file(struct dbpg *pg, const uint8_t *owner, int only_unverified, db_file_cb cb,
    void *ctx)
{
	struct args a;

	args_init(&a);
	if (owner != NULL)
		arg_id(&a, 1, owner);
	a.v[1] = only_unverified ? "1" : "0";
	return each_file_of(pg, PS_EACH_FILE, &a, cb, ctx);
}

int
dbpg_each_verified_file(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE], db_file_cb cb,
    void *ctx)
{
	struct args a;

	args_init(&a);
	arg_id(&a, 1, owner);
	return each_file_of(pg, PS_EACH_VERIFIED_FILE, &a, cb, ctx);
}

/* ---- commit intents ---- */

/* The parameters of PS_COMMIT_ADD for the intent c. */
static int
args_commit(struct args *a, const struct db_commit *c)
{
	int r;

	args_init(a);
	if ((r = arg_key(a, c->owner, c->file_name)) != 0 ||
	    (r = arg_path(a, 3, c->temp_path, sizeof(c->temp_path))) != 0 ||
	    (r = arg_path(a, 4, c->path_name, sizeof(c->path_name))) != 0 ||
	    (r = arg_u64(a, 5, c->size)) != 0 || (r = arg_i64(a, 6, (int64_t)c->crc)) != 0 ||
	    (r = arg_sha256(a, 7, c->has_sha256, c->sha256)) != 0 ||
	    (r = arg_time(a, 9, c->created)) != 0)
		return r;
	a->v[7] = c->verified ? "1" : "0";
	return 0;
}

int
dbpg_commit_add(struct dbpg *pg, const struct db_commit *c)
{
	struct args a;
	int r;

	if ((r = args_commit(&a, c)) != 0)
		return r;
	/* One statement: the primary key or commits_path refuses a second intent (EXISTS), the
	 * foreign key a missing owner (NOT_FOUND). */
	return exec_count(pg, PS_COMMIT_ADD, &a, NULL);
}

int
dbpg_commit_get(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name,
    struct db_commit *out)
{
	PGresult *res;
	struct args a;
	int r;

	args_init(&a);
	if ((r = arg_key(&a, owner, file_name)) != 0 ||
	    (r = run(pg, PS_COMMIT_GET, &a, &res)) != 0)
		return r;
	if (PQntuples(res) > 0)
		read_commit(res, 0, out);
	else
		r = SD_ERR_NOT_FOUND;
	PQclear(res);
	return r;
}

int
dbpg_commit_publish(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE],
    const char *file_name)
{
	struct args a;
	int r;

	args_init(&a);
	if ((r = arg_key(&a, owner, file_name)) != 0)
		return r;
	if ((r = tx_begin(pg)) != 0)
		return r;
	if ((r = exec_count(pg, PS_COMMIT_DELETE_SAME_PATH, &a, NULL)) != 0 ||
	    (r = exec_one(pg, PS_COMMIT_PUBLISH, &a)) != 0 ||
	    (r = exec_one(pg, PS_COMMIT_DELETE, &a)) != 0)
		goto out;
	r = tx_commit(pg);
out:
	tx_abort(pg);
	return r;
}

int
dbpg_commit_delete(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name)
{
	return delete_by_key(pg, PS_COMMIT_DELETE, owner, file_name);
}

int
dbpg_each_commit(struct dbpg *pg, db_commit_cb cb, void *ctx)
{
	struct db_commit c;
	PGresult *res;
	struct args a;
	int64_t last = 0;
	int r;

	for (;;) {
		/* One row per run: the callback may change the table in between. */
		args_init(&a);
		arg_i64(&a, 1, last);
		if ((r = run(pg, PS_COMMIT_NEXT, &a, &res)) != 0)
			return r;
		if (PQntuples(res) == 0) {
			PQclear(res);
			return 0;
		}
		read_commit(res, 0, &c);
		last = col_i64(res, 0, 9);
		PQclear(res);
		if ((r = cb(ctx, &c)) != 0)
			return r;
	}
}

/* ---- partial version-4 uploads ---- */

int
dbpg_upload_get(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name,
    struct db_upload *out)
{
	PGresult *res;
	struct args a;
	int r;

	args_init(&a);
	if ((r = arg_key(&a, owner, file_name)) != 0 ||
	    (r = run(pg, PS_UPLOAD_GET, &a, &res)) != 0)
		return r;
	if (PQntuples(res) > 0)
		read_upload(res, 0, out);
	else
		r = SD_ERR_NOT_FOUND;
	PQclear(res);
	return r;
}

/* The record's columns as arguments $1..$6, and Created as $7 when copied as it is. */
static int
upload_write(struct dbpg *pg, const struct db_upload *u, int keep_created)
{
	struct args a;
	int r;

	args_init(&a);
	if ((r = arg_key(&a, u->owner, u->file_name)) != 0 || (r = arg_u64(&a, 3, u->size)) != 0 ||
	    (r = arg_u64(&a, 4, u->offset)) != 0 ||
	    (r = arg_path(&a, 5, u->temp_path, sizeof(u->temp_path))) != 0 ||
	    (r = arg_time(&a, 6, u->expires)) != 0 ||
	    (keep_created && (r = arg_time(&a, 7, u->created)) != 0))
		return r;
	return exec_count(pg, keep_created ? PS_UPLOAD_COPY : PS_UPLOAD_PUT, &a, NULL);
}

int
dbpg_upload_put(struct dbpg *pg, const struct db_upload *u)
{
	return upload_write(pg, u, 0);
}

int
dbpg_upload_copy(struct dbpg *pg, const struct db_upload *u)
{
	return upload_write(pg, u, 1);
}

int
dbpg_upload_set_offset(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE],
    const char *file_name, uint64_t offset, int64_t expires)
{
	struct db_upload u;
	struct args a;
	int r;

	args_init(&a);
	if ((r = arg_key(&a, owner, file_name)) != 0 || (r = arg_u64(&a, 3, offset)) != 0 ||
	    (r = arg_time(&a, 4, expires)) != 0)
		return r;
	if ((r = exec_one(pg, PS_UPLOAD_SET_OFFSET, &a)) != SD_ERR_NOT_FOUND)
		return r;
	if ((r = dbpg_upload_get(pg, owner, file_name, &u)) == 0)
		r = SD_ERR_BAD_FIELD;
	return r;
}

int
dbpg_upload_delete(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name)
{
	return delete_by_key(pg, PS_UPLOAD_DELETE, owner, file_name);
}

int
dbpg_each_upload(struct dbpg *pg, const uint8_t *owner, int64_t now, db_upload_cb cb,
    void *ctx)
{
	struct db_upload u;
	PGresult *res;
	struct args a;
	int64_t last = 0;
	int r;

	for (;;) {
		args_init(&a);
		arg_i64(&a, 1, last);
		if ((owner != NULL && (r = arg_id(&a, 2, owner)) != 0) ||
		    (r = arg_time(&a, 3, now)) != 0 || (r = run(pg, PS_UPLOAD_NEXT, &a, &res)) != 0)
			return r;
		if (PQntuples(res) == 0) {
			PQclear(res);
			return 0;
		}
		read_upload(res, 0, &u);
		last = col_i64(res, 0, 7);
		PQclear(res);
		if ((r = cb(ctx, &u)) != 0)
			return r;
	}
}

/* ---- partial uploads shared by several servers (the record names its owner's file) ---- */

int
dbpg_upload_advance(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE],
    const char *file_name, const char *temp_path, uint64_t offset, int64_t expires)
{
	struct db_upload u;
	struct args a;
	int r;

	args_init(&a);
	if ((r = arg_key(&a, owner, file_name)) != 0 || (r = arg_u64(&a, 3, offset)) != 0 ||
	    (r = arg_time(&a, 4, expires)) != 0 ||
	    (r = arg_path(&a, 5, temp_path, DB_PATH_SIZE)) != 0)
		return r;
	if ((r = exec_one(pg, PS_UPLOAD_ADVANCE, &a)) != SD_ERR_NOT_FOUND)
		return r;
	if ((r = dbpg_upload_get(pg, owner, file_name, &u)) == 0)
		r = strcmp(u.temp_path, temp_path) != 0 ? SD_ERR_NOT_FOUND : SD_ERR_BAD_FIELD;
	return r;
}

int
dbpg_upload_move(struct dbpg *pg, const char *from_temp_path, const struct db_upload *u)
{
	struct args a;
	int r;

	args_init(&a);
	if ((r = arg_key(&a, u->owner, u->file_name)) != 0 || (r = arg_u64(&a, 3, u->size)) != 0 ||
	    (r = arg_u64(&a, 4, u->offset)) != 0 ||
	    (r = arg_path(&a, 5, u->temp_path, sizeof(u->temp_path))) != 0 ||
	    (r = arg_time(&a, 6, u->expires)) != 0 ||
	    (r = arg_path(&a, 7, from_temp_path, DB_PATH_SIZE)) != 0)
		return r;
	return exec_one(pg, PS_UPLOAD_MOVE, &a);
}

int
dbpg_upload_drop(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name,
    const char *temp_path)
{
	struct args a;
	int r;

	args_init(&a);
	if ((r = arg_key(&a, owner, file_name)) != 0 ||
	    (r = arg_path(&a, 3, temp_path, DB_PATH_SIZE)) != 0)
		return r == SD_ERR_INVALID_ARG && owner != NULL ? SD_ERR_NOT_FOUND : r;
	return exec_one(pg, PS_UPLOAD_DROP, &a);
}

int
dbpg_upload_commit(struct dbpg *pg, const struct db_commit *c)
{
	struct args drop, add;
	int r;

	args_init(&drop);
	if ((r = arg_key(&drop, c->owner, c->file_name)) != 0 ||
	    (r = arg_path(&drop, 3, c->temp_path, sizeof(c->temp_path))) != 0 ||
	    (r = args_commit(&add, c)) != 0)
		return r;
	/* The DELETE locks the record: a server moving it to another file at this instant
	 * waits, then finds no record. */
	if ((r = tx_begin(pg)) != 0)
		return r;
	if ((r = exec_one(pg, PS_UPLOAD_DROP, &drop)) != 0 ||
	    (r = exec_count(pg, PS_COMMIT_ADD, &add, NULL)) != 0)
		goto out;
	r = tx_commit(pg);
out:
	tx_abort(pg);
	return r;
}

int
dbpg_integrity_check(struct dbpg *pg)
{
	PGresult *res;
	int r;

	if ((r = run(pg, PS_INTEGRITY, NULL, &res)) != 0)
		return r;
	if (PQntuples(res) != 1 || col_i64(res, 0, 0) != 0) {
		save_msg(pg, "rows that break the sealdrop schema's rules");
		r = SD_ERR_DB;
	}
	PQclear(res);
	return r;
}

/* The connection string through libpq's own parser (URI or keywords), keeping only the
 * fields that say where the database is: a password never reaches a log line. */
void
dbpg_describe(const char *conninfo, char *out, size_t cap)
{
	static const char *const shown[] = { "host", "port", "dbname", "user" };
	PQconninfoOption *opts, *o;
	char val[256];
	size_t used = 0, i;
	int n;

	if (cap == 0)
		return;
	out[0] = '\0';
	if ((opts = PQconninfoParse(conninfo, NULL)) == NULL) {
		snprintf(out, cap, "PostgreSQL (an unparsable connection string)");
		return;
	}
	n = snprintf(out, cap, "PostgreSQL");
	used = n > 0 && (size_t)n < cap ? (size_t)n : cap - 1;
	for (i = 0; i < sizeof(shown) / sizeof(shown[0]); i++) {
		for (o = opts; o->keyword != NULL; o++) {
			if (strcmp(o->keyword, shown[i]) != 0 || o->val == NULL || o->val[0] == '\0')
				continue;
			/* A database name may itself be a connection string with a password. */
			copy_masked(o->val, NULL, val, sizeof(val));
			n = snprintf(out + used, cap - used, " %s=%s", o->keyword, val);
			used = n > 0 && (size_t)n < cap - used ? used + (size_t)n : cap - 1;
		}
	}
	PQconninfoFree(opts);
}
