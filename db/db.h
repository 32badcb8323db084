/* db.h: the server's store on SQLite or PostgreSQL: domain functions over prepared statements.
 * One struct db per thread (SQLite connection in WAL mode with a busy timeout, or one libpq
 * connection, re-established once when the database restarted). Never prints.
 * The schema (db/schema.sql, compiled in; version 2) keeps the table and column names of
 * SPEC.md 8, and adds the version-4 fingerprint and SHA-256, commit intents and partial
 * uploads. Every write of more than one statement is one transaction. Times cross this API as
 * Unix seconds and are stored as UTC text ('YYYY-MM-DD HH:MM:SS', readable in sqlite3). */
#ifndef SD_DB_H
#define SD_DB_H

#include <stddef.h>
#include <stdint.h>

#include "../protocol/codes.h"

struct db;

/* A version-4 certificate fingerprint as SPEC-v4.md 1 writes it: "SHA256:" and the unpadded
 * base64 of 32 bytes (43 characters), 50 characters in all. Functions that take one refuse
 * any other form with SD_ERR_INVALID_ARG (lookups answer SD_ERR_NOT_FOUND). */
#define DB_FINGERPRINT_LEN 50u
#define DB_FINGERPRINT_SIZE (DB_FINGERPRINT_LEN + 1u)
#define DB_SHA256_SIZE 32u
/* Paths relative to the storage folder (PathName, TempPath): at most DB_PATH_SIZE - 1 bytes. */
#define DB_PATH_SIZE 512u

enum db_open_mode {
	DB_READ_WRITE,  /* create the file and schema if missing (the server) */
	DB_READ_ONLY,   /* SQLITE_OPEN_READONLY, fails on a missing file (the inspect tool) */
};

/* Opens (and in DB_READ_WRITE mode creates or upgrades) the database at path (":memory:"
 * works for tests). SD_ERR_SCHEMA if the file is not a sealdrop database. A path that is a
 * libpq connection string (db_is_postgres) opens PostgreSQL instead (db/pg.c): the same tables
 * and columns, schema created under an advisory lock in one transaction; connection failures
 * are SD_ERR_IO (why says libpq's reason), a unique violation is SD_ERR_EXISTS. A connection
 * the server closed while idle is replaced before the next statement is sent; a request whose
 * connection broke while a statement ran fails with SD_ERR_DB (reads and BEGIN are retried
 * once on a new connection first), the next call reconnecting. */
int db_open(const char *path, enum db_open_mode mode, struct db **out);
/* How long each statement waits for another connection's write lock before it fails with
 * SD_ERR_DB ("database is locked"); db_open sets DB_BUSY_TIMEOUT_MS (5 s). On PostgreSQL:
 * the session's lock_timeout on a row or table lock (none until this is called). */
int db_set_busy_timeout(struct db *db, unsigned ms);
/* (db_open's other results: SD_ERR_NOT_FOUND for a missing file in DB_READ_ONLY mode,
 * SD_ERR_IO when the file cannot be opened, SD_ERR_DB for other SQLite failures.)
 * DB_READ_WRITE upgrades an older schema (version 1, or a reference server's tables) in place
 * in one transaction; a failed upgrade leaves the file as it was. DB_READ_ONLY never writes,
 * so it refuses an older schema with SD_ERR_SCHEMA until a writer has opened the file. */
/* The same, and on failure why in words (SQLite's message, or what is wrong with the schema)
 * in why[0..why_cap), always NUL-terminated when why_cap > 0 ("" when there is nothing to
 * add to the error code). On failure nothing is left to free, so db_errmsg() cannot tell. */
int db_open_why(const char *path, enum db_open_mode mode, struct db **out, char *why,
    size_t why_cap);
/* Is target a PostgreSQL connection string ("postgresql://...", "postgres://..." or libpq
 * keywords such as "host=/run/postgresql dbname=sealdrop": anything with '=') rather than a
 * SQLite path? */
int db_is_postgres(const char *target);
/* What a log line may show of target: a SQLite path as it is; for PostgreSQL, its host, port,
 * database and user as libpq parses them, never a password. Always NUL-terminates out. */
void db_describe_target(const char *target, char *out, size_t cap);
/* Finalises statements and closes; accepts NULL. */
void db_close(struct db *db);
/* The last SQLite error message of this connection (for logs). */
const char *db_errmsg(const struct db *db);

struct db_client {
	uint8_t id[CLIENT_ID_SIZE];
	char name[NAME_FIELD_SIZE];
	int has_public_key;
	uint8_t public_key[PUBLIC_KEY_SIZE];
	size_t public_key_len;
	int has_aes_key;
	uint8_t aes_key[AES_KEY_SIZE];
	int64_t last_seen;  /* Unix seconds, 0 if never */
	char fingerprint[DB_FINGERPRINT_SIZE];  /* version-4 certificate; "" when none */
};

/* Lookups: 0, SD_ERR_NOT_FOUND or SD_ERR_DB. */
int db_client_by_name(struct db *db, const char *name, struct db_client *out);
int db_client_by_id(struct db *db, const uint8_t id[CLIENT_ID_SIZE], struct db_client *out);
/* For the inspect tool: 32 hex digits are tried as an ID first, then the text as a name. */
int db_client_find(struct db *db, const char *name_or_hex, struct db_client *out);
/* The account whose certificate has this fingerprint (SPEC-v4.md: the account of a TLS
 * connection). 0, SD_ERR_NOT_FOUND (also for a malformed fingerprint) or SD_ERR_DB. */
int db_client_by_fingerprint(struct db *db, const char *fingerprint, struct db_client *out);

/* The writes on a client (register, keys) also set its LastSeen to now: one commit fewer
 * per request than a separate db_client_touch(). */
/* Registers name under id in one transaction. A name held by a client with a public key:
 * SD_ERR_EXISTS. A pending name (no key yet) is replaced: its old row goes, the new id holds
 * the name. */
int db_client_register(struct db *db, const char *name, const uint8_t id[CLIENT_ID_SIZE]);
/* 825 under the rule of SPEC.md 6 (issue 9 item 3): registers name under id in one
 * transaction. A pending name (no key yet) is replaced only when its ID equals pending_id,
 * the registration this same connection created (827 -> 1606 -> 825); pending_id NULL, or
 * any other holder of the name: SD_ERR_EXISTS and nothing changes. An id already in use:
 * SD_ERR_EXISTS. */
int db_client_register_conn(struct db *db, const char *name, const uint8_t id[CLIENT_ID_SIZE],
    const uint8_t *pending_id);
/* Deletes the pending registrations (no public key) whose LastSeen is more than ttl_seconds
 * in the past, or unknown; *removed (may be NULL) says how many. Their rows in other tables
 * go with them. One statement, so one transaction. */
int db_client_expire_pending(struct db *db, int64_t ttl_seconds, long *removed);
/* Version-4 REGISTER (SPEC-v4.md "Accounts"): in one transaction, a new account with name,
 * id, the version-3 public key (1 to PUBLIC_KEY_SIZE bytes of DER SPKI) and the
 * certificate's fingerprint. The fingerprint bound to any account already: SD_ERR_BOUND
 * (checked first); the name held by any client (pending or not) or the id in use:
 * SD_ERR_EXISTS. Nothing changes on failure. */
int db_client_register_v4(struct db *db, const char *name, const uint8_t id[CLIENT_ID_SIZE],
    const uint8_t *public_key, size_t key_len, const char *fingerprint);
/* LINK + PROVE succeeded: binds the fingerprint to the account id, replacing that account's
 * earlier binding, in one transaction (LastSeen = now). Bound to that same account already:
 * 0. Bound to another account: SD_ERR_BOUND, nothing changes. No such account:
 * SD_ERR_NOT_FOUND. (That the account has a version-3 key is the caller's check: it just
 * proved it.) */
int db_client_bind_fingerprint(struct db *db, const uint8_t id[CLIENT_ID_SIZE],
    const char *fingerprint);
/* Sets the public key of a client that has none: SD_ERR_EXISTS if it has one already,
 * SD_ERR_NOT_FOUND if there is no such client. */
int db_client_set_public_key(struct db *db, const uint8_t id[CLIENT_ID_SIZE],
    const uint8_t *key, size_t len);
/* Stores the AES key most recently issued to the client. */
int db_client_set_aes_key(struct db *db, const uint8_t id[CLIENT_ID_SIZE],
    const uint8_t key[AES_KEY_SIZE]);
/* For sealdrop-db migrate: writes c whole (ID, Name, keys, LastSeen, Fingerprint; an empty
 * fingerprint is none), replacing the row with the same ID. The name or fingerprint held by
 * another ID: SD_ERR_EXISTS. */
int db_client_copy(struct db *db, const struct db_client *c);
/* 826: in one transaction, the public key of a client that has none (as
 * db_client_set_public_key: SD_ERR_EXISTS, SD_ERR_NOT_FOUND) and the AES key issued to it.
 * Nothing changes on failure, so the client may send 826 again. */
int db_client_set_keys(struct db *db, const uint8_t id[CLIENT_ID_SIZE],
    const uint8_t *public_key, size_t len, const uint8_t aes_key[AES_KEY_SIZE]);
/* LastSeen = now. SD_ERR_NOT_FOUND if no such client. */
int db_client_touch(struct db *db, const uint8_t id[CLIENT_ID_SIZE]);

struct db_file {
	uint8_t owner[CLIENT_ID_SIZE];
	char owner_name[NAME_FIELD_SIZE];
	char file_name[NAME_FIELD_SIZE];  /* as the client sent it */
	char path_name[DB_PATH_SIZE];     /* relative to the storage folder */
	int verified;
	uint64_t size;                    /* plaintext bytes (at most INT64_MAX) */
	uint32_t crc;                     /* cksum of the plaintext */
	int64_t uploaded;                 /* Unix seconds */
	int has_sha256;                   /* 0: not known yet (a version-3 upload not read) */
	uint8_t sha256[DB_SHA256_SIZE];   /* SHA-256 of the plaintext, when has_sha256 */
};

/* Records (or replaces) the row for (owner, file_name) with verified = 0, and the SHA-256 if
 * f->has_sha256 (else none: a replaced row's hash described other bytes). Rows of the owner's
 * other file names stored under the same path_name go (their file was replaced). */
int db_file_record(struct db *db, const struct db_file *f);
/* Sets Verified of (owner, file_name): SD_ERR_NOT_FOUND if there is no such row. */
int db_file_set_verified(struct db *db, const uint8_t owner[CLIENT_ID_SIZE],
    const char *file_name, int verified);
/* One file row, or SD_ERR_NOT_FOUND. */
int db_file_get(struct db *db, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name,
    struct db_file *out);
/* Sets the SHA-256 of the row seen (as db_file_get returned it before the caller hashed the
 * file at seen->path_name), only if that row still describes the same file (PathName, Size,
 * CRC and Uploaded unchanged): otherwise a newer upload replaced it meanwhile and the hash
 * would describe bytes no longer there: SD_ERR_NOT_FOUND, as for a row that is gone. */
int db_file_set_sha256(struct db *db, const struct db_file *seen,
    const uint8_t sha256[DB_SHA256_SIZE]);
/* Deletes the row (owner, file_name) (version-4 DELETE; the caller removes the file).
 * SD_ERR_NOT_FOUND if there is none. */
int db_file_delete(struct db *db, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name);
/* For sealdrop-db migrate: writes f as it is (PathName, Verified, Size, CRC, SHA-256, and
 * Uploaded, 0 staying NULL as in a reference server's rows), replacing the row (owner,
 * file_name) and touching no other. No such owner: SD_ERR_NOT_FOUND. */
int db_file_copy(struct db *db, const struct db_file *f);

/* Iteration for the inspect tool: the callback returns 0 to go on, non-zero to stop (that
 * value is returned). owner == NULL: every client's files; only_unverified filters. */
typedef int (*db_client_cb)(void *ctx, const struct db_client *c, long file_count);
typedef int (*db_file_cb)(void *ctx, const struct db_file *f);
int db_each_client(struct db *db, db_client_cb cb, void *ctx);
int db_each_file(struct db *db, const uint8_t *owner, int only_unverified, db_file_cb cb,
    void *ctx);
/* Version-4 LIST: the owner's verified files, by file name. */
int db_each_verified_file(struct db *db, const uint8_t owner[CLIENT_ID_SIZE], db_file_cb cb,
    void *ctx);
/* (A callback of these may read with the other functions on the same db, but not start the
 * same kind of iteration again, nor change the table it walks: each iteration uses its
 * connection's one prepared statement. The commit and upload walks below have no such limit.) */

/* Commit intents: how a finished upload takes the place of a stored file so that a kill at any
 * instant leaves the database describing exactly what is on disk (issue 9 item 1):
 *   (a) db_commit_add records the intent (one transaction);
 *   (b) the server fsyncs temp_path and renames it to path_name;
 *   (c) db_commit_publish, in ONE transaction, writes the files row from the intent and
 *       deletes the intent.
 * At start-up every intent is rolled forward (db_each_commit): if temp_path still exists it
 * is renamed, then (c). A failed (b) is undone with db_commit_delete. */
struct db_commit {
	uint8_t owner[CLIENT_ID_SIZE];
	char file_name[NAME_FIELD_SIZE];  /* as the client sent it */
	char temp_path[DB_PATH_SIZE];     /* the finished upload, relative to the storage folder */
	char path_name[DB_PATH_SIZE];     /* where it goes, relative to the storage folder */
	uint64_t size;                    /* plaintext bytes (at most INT64_MAX) */
	uint32_t crc;                     /* cksum of the plaintext */
	int has_sha256;
	uint8_t sha256[DB_SHA256_SIZE];
	int verified;                     /* the Verified the files row gets */
	int64_t created;                  /* Unix seconds; 0 on add: now. Becomes Uploaded. */
};

/* Records the intent for (owner, file_name). Another intent for the same (owner, file_name)
 * or for the same path_name (two names that sanitise to one stored file): SD_ERR_EXISTS, as
 * two renames onto one path at once could leave a row describing the other's bytes; the
 * caller fails this upload (or publishes the older intent first). No such owner:
 * SD_ERR_NOT_FOUND. */
int db_commit_add(struct db *db, const struct db_commit *c);
/* One intent, or SD_ERR_NOT_FOUND. */
int db_commit_get(struct db *db, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name,
    struct db_commit *out);
/* Step (c), in one transaction: the files row (owner, file_name) becomes the intent's
 * (PathName, Verified, Size, CRC, SHA256, Uploaded = the intent's created), rows of the
 * owner's other file names stored under the same path_name go, and the intent goes.
 * SD_ERR_NOT_FOUND if there is no intent (nothing changes). */
int db_commit_publish(struct db *db, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name);
/* Drops an intent without publishing it. SD_ERR_NOT_FOUND if there is none. */
int db_commit_delete(struct db *db, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name);
/* Every intent, oldest first. The callback may publish or delete the intent it is given (or
 * any other): each row is fetched afresh after the previous callback returned. */
typedef int (*db_commit_cb)(void *ctx, const struct db_commit *c);
int db_each_commit(struct db *db, db_commit_cb cb, void *ctx);

/* Partial version-4 uploads (SPEC-v4.md "Uploads"): one per (owner, file name). */
struct db_upload {
	uint8_t owner[CLIENT_ID_SIZE];
	char file_name[NAME_FIELD_SIZE];
	uint64_t size;                    /* the whole file, as PUT_OPEN said (at most INT64_MAX) */
	uint64_t offset;                  /* bytes durably in temp_path (fsynced), <= size */
	char temp_path[DB_PATH_SIZE];     /* relative to the storage folder */
	int64_t expires;                  /* Unix seconds: deleted from then on */
	int64_t created;                  /* Unix seconds; set by db_upload_put */
};

/* One partial upload, or SD_ERR_NOT_FOUND. */
int db_upload_get(struct db *db, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name,
    struct db_upload *out);
/* Creates, or replaces whole, the partial upload (u->owner, u->file_name) (created = now).
 * offset > size, size > INT64_MAX, or expires not in 1..253402300799: SD_ERR_INVALID_ARG.
 * No such owner: SD_ERR_NOT_FOUND. (Replacing: the caller removes the old temp file.) */
int db_upload_put(struct db *db, const struct db_upload *u);
/* Records a new durable offset, only forward (equal is fine: it refreshes expires), and
 * expires unless it is 0 (then kept). Backward, or past the size: SD_ERR_BAD_FIELD and
 * nothing changes; no such upload: SD_ERR_NOT_FOUND. */
int db_upload_set_offset(struct db *db, const uint8_t owner[CLIENT_ID_SIZE],
    const char *file_name, uint64_t offset, int64_t expires);
/* Deletes the record (the caller removes the temp file). SD_ERR_NOT_FOUND if none. */
int db_upload_delete(struct db *db, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name);
/* For sealdrop-db migrate: db_upload_put, but Created is u->created (0: now). */
int db_upload_copy(struct db *db, const struct db_upload *u);
/* Walks, oldest record first (one replaced by db_upload_put keeps its place): every partial
 * upload (owner NULL) or one owner's (reconciliation at start-up, sealdrop-db), or those
 * expired at now (expires <= now, Unix seconds). The callback may delete or change the upload
 * it is given: each row is fetched afresh after the previous callback returned. */
typedef int (*db_upload_cb)(void *ctx, const struct db_upload *u);
int db_each_upload(struct db *db, const uint8_t *owner, db_upload_cb cb, void *ctx);
int db_each_expired_upload(struct db *db, int64_t now, db_upload_cb cb, void *ctx);

/* Several servers, one upload per (owner, file name) (SPEC-v4.md: the newer PUT_OPEN takes
 * over): the record's TempPath names the file its current owner writes. A server that takes
 * over an upload whose file another live server still holds moves the record to a file of
 * its own (db_upload_move); the older server's next write of the record then no longer finds
 * its file named. So these change the record only while TempPath equals temp_path, and
 * answer SD_ERR_NOT_FOUND when it names another file or is gone (taken over, or deleted). */
/* db_upload_set_offset under that condition (SD_ERR_BAD_FIELD as there). */
int db_upload_advance(struct db *db, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name,
    const char *temp_path, uint64_t offset, int64_t expires);
/* Replaces the record (u->owner, u->file_name) whole with u (created = now) while it names
 * from_temp_path. Arguments as db_upload_put. */
int db_upload_move(struct db *db, const char *from_temp_path, const struct db_upload *u);
/* db_upload_delete while the record names temp_path. */
int db_upload_drop(struct db *db, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name,
    const char *temp_path);
/* A finished upload's step (a): in ONE transaction, the record (c->owner, c->file_name)
 * naming c->temp_path is deleted and the intent c added (db_commit_add's rules and errors).
 * The record names another file or is gone: SD_ERR_NOT_FOUND, nothing changes, and the upload
 * must not publish (it was taken over). */
int db_upload_commit(struct db *db, const struct db_commit *c);

/* PRAGMA integrity_check: 0 when "ok", SD_ERR_DB otherwise (message in db_errmsg()). */
int db_integrity_check(struct db *db);

#endif
