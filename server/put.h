/* put.h: version 4's resumable, verified upload (SPEC-v4.md 3 "Uploads"): PUT_OPEN,
 * PUT_DATA, PUT_FINISH and PUT_ABORT on a connection in version-4 mode, the second kind of
 * receive next to receive.h's version-3 one. A connection holds at most one upload (c->put),
 * which owns its temporary file (STORAGE_RESUME_PREFIX in the account's folder), its running
 * SHA-256 and cksum, and a fixed inflate buffer: its memory does not depend on the file or
 * chunk size. The durable offset (fsynced bytes) is recorded in the database (db_upload_*)
 * at least every PUT_SYNC_INTERVAL bytes and when the upload leaves the connection, so a later
 * PUT_OPEN, also after a restart or kill -9, resumes there.
 *
 * One upload per (account, stored name) across the server's workers: a process-wide registry
 * of slots, each with its own mutex held while the temporary file is written, synced or
 * published. A PUT_OPEN for a name another connection is uploading takes the slot over; the
 * old connection notices on its next event or tick (put_check), answers ERROR 8 and closes,
 * never touching the file again.
 *
 * And across servers sharing the database and the storage folder (docs/deployment.md): the
 * uploads record's TempPath names the file of the upload's current writer, which holds that
 * file's flock (the slot keeps it for the process, so a newer connection of the same process
 * shares it). A PUT_OPEN on another server locks the recorded file and resumes it in place
 * when no live server holds it; when one does, it copies the durable prefix (bytes below the
 * recorded offset never change) to a file of its own and moves the record there
 * (db_upload_move). The older writer finds the record naming another file at its next durable
 * record (db_upload_advance) or at PUT_FINISH (db_upload_commit: the record goes and the intent
 * comes in one transaction, so a taken-over upload never publishes): its file goes and it
 * answers ERROR 8. Start-up reconciliation and expiry leave a file a live server holds.
 *
 * The account's limits (limits.h): an upload counts against --max-uploads-per-client from
 * PUT_OPEN until it leaves its connection (finished, aborted, dropped; a takeover passes the
 * count to the new connection); a partial upload counts at its declared size against
 * --max-client-storage and --max-client-files until it is published, aborted or expires,
 * and PUT_FINISH checks them again before publishing (refused: ERROR 7, the upload stays
 * open). */
#ifndef SD_SERVER_PUT_H
#define SD_SERVER_PUT_H

#include <stdint.h>

#include "../protocol/frame.h"

struct conn;
struct db;

/* The max_chunk this server announces in PUT_STATE. */
#define PUT_MAX_CHUNK V4_MAX_CHUNK_MAX
/* The durable offset is recorded at least this often (bytes). */
#define PUT_SYNC_INTERVAL (64ull << 20)
/* Expired partial uploads are looked for at most this often (the workers share it). */
#define PUT_EXPIRE_INTERVAL_MS 60000

/* 850, 852, 853 as complete messages: answer PUT_STATE, PUT_DONE, OK or ERROR. */
void put_open(struct conn *c, const struct frame_event *ev);
void put_finish(struct conn *c, const struct frame_event *ev);
void put_abort(struct conn *c, const struct frame_event *ev);
/* 851's three frame events (its 13-byte head, slices of its data, its end). Any refusal
 * answers ERROR and closes the connection. */
void put_data_start(struct conn *c, const struct frame_event *ev);
void put_data_slice(struct conn *c, const struct frame_event *ev);
void put_data_end(struct conn *c, const struct frame_event *ev);
/* 1 when c's upload, after --min-rate-grace seconds, averages fewer PUT_DATA bytes per second
 * since its first PUT_DATA than --min-upload-rate (0: no limit): the connection is closed
 * then and the partial upload kept for a later PUT_OPEN. */
int put_too_slow(const struct conn *c, int64_t now_ms);
/* 1 while c's PUT_OPEN waits for the resumed prefix to be hashed: the connection parses no
 * request meanwhile (what came behind the PUT_OPEN waits, as behind a GET) and, writable,
 * calls put_pump(), which hashes the next slice and queues PUT_STATE after the last. */
int put_hashing(const struct conn *c);
void put_pump(struct conn *c);
/* 1 while an 851's data is arriving on c. */
int put_in_chunk(const struct conn *c);

/* Ends c's upload, if any, as a dropped connection does: fsync, durable offset recorded, the
 * partial upload kept for a later PUT_OPEN (nothing recorded when it was taken over). */
void put_release(struct conn *c);
/* Closes c with ERROR 8 when another connection took its upload over. 1 when it did. */
int put_check(struct conn *c);

/* The lock of (owner, stored name): held by the version-4 upload of that name while it writes
 * or publishes its file, by version 3's verdict while it publishes (commit.c), by DELETE
 * (fetch.c) and by expiry, so that a name's row and file change in one order. Returns the
 * locked slot, to be given to put_name_unlock(); NULL when out of memory. Never held across
 * a return to the event loop, never two at once. */
struct put_slot;
struct put_slot *put_name_lock(const uint8_t owner[CLIENT_ID_SIZE], const char *name);
void put_name_unlock(struct put_slot *s);

/* Queues ERROR reason (message text for the peer and the log) on c (handlers_v4.h); close:
 * c closes once it is sent. */
void put_reply_error(struct conn *c, uint16_t reason, int close, const char *message);

/* Start-up, before any connection (root: the storage folder): every partial upload checked
 * against its temporary file (longer: truncated to the durable offset; missing or shorter:
 * the record dropped), resumable temporary files no record names removed; a file another
 * live server holds is left as it is. Counts may be
 * NULL. 0 or a negative sd_err (database unreadable). */
int put_reconcile(struct db *db, const char *root, long *kept, long *dropped);
/* Deletes the partial uploads expired at now (Unix seconds) with their temporary files,
 * except one a connection (of this server or another) holds right now. *removed may be NULL. 0 or a negative sd_err. */
int put_expire(struct db *db, const char *root, int64_t now, long *removed);
/* From a worker's tick: put_expire at most once per PUT_EXPIRE_INTERVAL_MS over all workers
 * (logged when it removed something). */
void put_expire_tick(struct db *db, const char *root, int64_t now_ms, int worker);

#endif
