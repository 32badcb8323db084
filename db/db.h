/* db.h: the server's store on SQLite: domain functions over prepared statements.
 * One struct db per thread (SQLite connection in WAL mode with a busy timeout). Never prints.
 * The schema (db/schema.sql, compiled in) keeps the table and column names of SPEC.md 8. */
#ifndef SD_DB_H
#define SD_DB_H

#include <stddef.h>
#include <stdint.h>

#include "../protocol/codes.h"

struct db;

enum db_open_mode {
	DB_READ_WRITE,  /* create the file and schema if missing (the server) */
	DB_READ_ONLY,   /* SQLITE_OPEN_READONLY, fails on a missing file (the inspect tool) */
};

/* Opens (and in DB_READ_WRITE mode creates or upgrades) the database at path (":memory:"
 * works for tests). SD_ERR_SCHEMA if the file is not a sealdrop database. */
int db_open(const char *path, enum db_open_mode mode, struct db **out);
/* (db_open's other results: SD_ERR_NOT_FOUND for a missing file in DB_READ_ONLY mode,
 * SD_ERR_IO when the file cannot be opened, SD_ERR_DB for other SQLite failures.) */
/* The same, and on failure why in words (SQLite's message, or what is wrong with the schema)
 * in why[0..why_cap), always NUL-terminated when why_cap > 0 ("" when there is nothing to
 * add to the error code). On failure nothing is left to free, so db_errmsg() cannot tell. */
int db_open_why(const char *path, enum db_open_mode mode, struct db **out, char *why,
    size_t why_cap);
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
};

/* Lookups: 0, SD_ERR_NOT_FOUND or SD_ERR_DB. */
int db_client_by_name(struct db *db, const char *name, struct db_client *out);
int db_client_by_id(struct db *db, const uint8_t id[CLIENT_ID_SIZE], struct db_client *out);
/* For the inspect tool: 32 hex digits are tried as an ID first, then the text as a name. */
int db_client_find(struct db *db, const char *name_or_hex, struct db_client *out);

/* The writes on a client (register, keys) also set its LastSeen to now: one commit fewer
 * per request than a separate db_client_touch(). */
/* Registers name under id in one transaction. A name held by a client with a public key:
 * SD_ERR_EXISTS. A pending name (no key yet) is replaced: its old row goes, the new id holds
 * the name. */
int db_client_register(struct db *db, const char *name, const uint8_t id[CLIENT_ID_SIZE]);
/* Sets the public key of a client that has none: SD_ERR_EXISTS if it has one already,
 * SD_ERR_NOT_FOUND if there is no such client. */
int db_client_set_public_key(struct db *db, const uint8_t id[CLIENT_ID_SIZE],
    const uint8_t *key, size_t len);
/* Stores the AES key most recently issued to the client. */
int db_client_set_aes_key(struct db *db, const uint8_t id[CLIENT_ID_SIZE],
    const uint8_t key[AES_KEY_SIZE]);
/* LastSeen = now. SD_ERR_NOT_FOUND if no such client. */
int db_client_touch(struct db *db, const uint8_t id[CLIENT_ID_SIZE]);

struct db_file {
	uint8_t owner[CLIENT_ID_SIZE];
	char owner_name[NAME_FIELD_SIZE];
	char file_name[NAME_FIELD_SIZE];  /* as the client sent it */
	char path_name[512];              /* relative to the storage folder */
	int verified;
	uint64_t size;                    /* plaintext bytes */
	uint32_t crc;                     /* cksum of the plaintext */
	int64_t uploaded;                 /* Unix seconds */
};

/* Records (or replaces) the row for (owner, file_name) with verified = 0. Rows of the owner's
 * other file names stored under the same path_name go (their file was replaced). */
int db_file_record(struct db *db, const struct db_file *f);
/* Sets Verified of (owner, file_name): SD_ERR_NOT_FOUND if there is no such row. */
int db_file_set_verified(struct db *db, const uint8_t owner[CLIENT_ID_SIZE],
    const char *file_name, int verified);
/* One file row, or SD_ERR_NOT_FOUND. */
int db_file_get(struct db *db, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name,
    struct db_file *out);

/* Iteration for the inspect tool: the callback returns 0 to go on, non-zero to stop (that
 * value is returned). owner == NULL: every client's files; only_unverified filters. */
typedef int (*db_client_cb)(void *ctx, const struct db_client *c, long file_count);
typedef int (*db_file_cb)(void *ctx, const struct db_file *f);
int db_each_client(struct db *db, db_client_cb cb, void *ctx);
int db_each_file(struct db *db, const uint8_t *owner, int only_unverified, db_file_cb cb,
    void *ctx);
/* (A callback may call the other functions on the same db, but not start the same kind of
 * iteration again: each iteration uses its connection's one prepared statement.) */
/* PRAGMA integrity_check: 0 when "ok", SD_ERR_DB otherwise (message in db_errmsg()). */
int db_integrity_check(struct db *db);

#endif
