/* pg.h: the PostgreSQL backend of db.h (db/pg.c), internal to db/. db.c's public functions
 * hand over to these when the database was opened with a connection string; each has the
 * contract of its db.h namesake. Never prints. */
#ifndef SD_DB_PG_H
#define SD_DB_PG_H

#include "db.h"

struct dbpg;

/* Is target a libpq connection string ("postgresql://", "postgres://", or keyword=value)
 * rather than a SQLite path? */
int dbpg_is_conninfo(const char *target);
/* db_describe_target() for a connection string (see db.h). */
void dbpg_describe(const char *conninfo, char *out, size_t cap);
/* Connects, creates or checks the schema (DB_READ_WRITE), and prepares the statements. On
 * failure why (when why_cap > 0) says why and nothing is left to free. */
int dbpg_open(const char *conninfo, enum db_open_mode mode, struct dbpg **out, char *why,
    size_t why_cap);
/* db_set_busy_timeout() for PostgreSQL: the session's lock_timeout, kept across
 * reconnections (0: no limit, PostgreSQL's default). */
int dbpg_set_lock_timeout(struct dbpg *pg, unsigned ms);
void dbpg_close(struct dbpg *pg);
const char *dbpg_errmsg(const struct dbpg *pg);

/* Shared with db.c: the one spelling of a fingerprint that db.h accepts. */
int db_valid_fingerprint(const char *fp);

int dbpg_client_by_name(struct dbpg *pg, const char *name, struct db_client *out);
int dbpg_client_by_id(struct dbpg *pg, const uint8_t id[CLIENT_ID_SIZE], struct db_client *out);
int dbpg_client_by_fingerprint(struct dbpg *pg, const char *fingerprint, struct db_client *out);
int dbpg_client_register(struct dbpg *pg, const char *name, const uint8_t id[CLIENT_ID_SIZE]);
int dbpg_client_register_conn(struct dbpg *pg, const char *name,
    const uint8_t id[CLIENT_ID_SIZE], const uint8_t *pending_id);
int dbpg_client_expire_pending(struct dbpg *pg, int64_t ttl_seconds, long *removed);
int dbpg_client_register_v4(struct dbpg *pg, const char *name, const uint8_t id[CLIENT_ID_SIZE],
    const uint8_t *public_key, size_t key_len, const char *fingerprint);
int dbpg_client_bind_fingerprint(struct dbpg *pg, const uint8_t id[CLIENT_ID_SIZE],
    const char *fingerprint);
int dbpg_client_set_public_key(struct dbpg *pg, const uint8_t id[CLIENT_ID_SIZE],
    const uint8_t *key, size_t len);
int dbpg_client_set_aes_key(struct dbpg *pg, const uint8_t id[CLIENT_ID_SIZE],
    const uint8_t key[AES_KEY_SIZE]);
int dbpg_client_set_keys(struct dbpg *pg, const uint8_t id[CLIENT_ID_SIZE],
    const uint8_t *public_key, size_t len, const uint8_t aes_key[AES_KEY_SIZE]);
int dbpg_client_copy(struct dbpg *pg, const struct db_client *c);
int dbpg_client_touch(struct dbpg *pg, const uint8_t id[CLIENT_ID_SIZE]);
int dbpg_file_record(struct dbpg *pg, const struct db_file *f);
int dbpg_file_set_verified(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE],
    const char *file_name, int verified);
int dbpg_file_get(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE], const char *file_name,
    struct db_file *out);
int dbpg_file_set_sha256(struct dbpg *pg, const struct db_file *seen,
    const uint8_t sha256[DB_SHA256_SIZE]);
int dbpg_file_delete(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE],
    const char *file_name);
int dbpg_each_client(struct dbpg *pg, db_client_cb cb, void *ctx);
int dbpg_each_file(struct dbpg *pg, const uint8_t *owner, int only_unverified, db_file_cb cb,
    void *ctx);
int dbpg_each_verified_file(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE],
    db_file_cb cb, void *ctx);
int dbpg_commit_add(struct dbpg *pg, const struct db_commit *c);
int dbpg_commit_get(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE],
    const char *file_name, struct db_commit *out);
int dbpg_commit_publish(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE],
    const char *file_name);
int dbpg_commit_delete(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE],
    const char *file_name);
int dbpg_each_commit(struct dbpg *pg, db_commit_cb cb, void *ctx);
int dbpg_upload_get(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE],
    const char *file_name, struct db_upload *out);
int dbpg_upload_put(struct dbpg *pg, const struct db_upload *u);
int dbpg_upload_set_offset(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE],
    const char *file_name, uint64_t offset, int64_t expires);
int dbpg_upload_delete(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE],
    const char *file_name);
int dbpg_each_upload(struct dbpg *pg, const uint8_t *owner, int64_t now, db_upload_cb cb,
    void *ctx);
int dbpg_upload_advance(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE],
    const char *file_name, const char *temp_path, uint64_t offset, int64_t expires);
int dbpg_upload_move(struct dbpg *pg, const char *from_temp_path, const struct db_upload *u);
int dbpg_upload_drop(struct dbpg *pg, const uint8_t owner[CLIENT_ID_SIZE],
    const char *file_name, const char *temp_path);
int dbpg_upload_commit(struct dbpg *pg, const struct db_commit *c);
int dbpg_integrity_check(struct dbpg *pg);

/* sealdrop-db migrate's copies (db_file_copy, db_upload_copy). */
int dbpg_file_copy(struct dbpg *pg, const struct db_file *f);
int dbpg_upload_copy(struct dbpg *pg, const struct db_upload *u);

#endif
