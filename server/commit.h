/* commit.h: how a received file takes the place of its stored version (issue 9 item 1).
 * Invariant: a files row with Verified = 1 always describes exactly the bytes at its PathName
 * (size and CRC), and an upload its client has not confirmed (900) never replaces a verified
 * file. Mechanism: an intent recorded before the rename, rolled forward at start-up.
 *   - At 1603 the attempt is fsynced and stays a temporary file beside the stored version
 *     (commit_stage); no row changes.
 *   - 900 (commit_verdict, verified = 1): the intent (temporary path, final path, size, CRC,
 *     Verified) is recorded in one transaction; the file is renamed into place and its folder
 *     fsynced; the row is written from the intent and the intent deleted in one transaction.
 *   - 902: the same with Verified = 0 when no verified file is stored under that path;
 *     otherwise the attempt goes and the verified version stays.
 *   - 901, a new attempt, a dropped connection, a change of identity or any failure:
 *     commit_discard (the temporary file goes, nothing else changes).
 * The one transient window is between the rename and the publishing transaction: a kill
 * there leaves the intent, and commit_recover() rolls it forward at the next start, before the
 * stale temporary files are removed. */
#ifndef SD_SERVER_COMMIT_H
#define SD_SERVER_COMMIT_H

#include <stdint.h>

#include "../protocol/codes.h"
#include "storage.h"

struct conn;
struct db;
struct db_commit;
struct storage_file;

/* Takes over sf (an open temporary file holding the whole attempt): fsyncs it, keeps it open
 * and locked under its temporary name and makes it c's staged attempt at file_name (as sent)
 * with its plaintext size and CRC, discarding an earlier one. 0, or a negative sd_err (logged;
 * the file is removed). sf is closed afterwards either way. */
int commit_stage(struct conn *c, struct storage_file *sf, const char *file_name,
    uint64_t size, uint32_t crc);
/* 1 when c holds a staged attempt at file_name. */
int commit_staged(const struct conn *c, const char *file_name);
/* Removes c's staged attempt, if any (accepts none). */
void commit_discard(struct conn *c);
/* The verdict on c's staged attempt: verified = 1 for 900, 0 for 902 (see above). 0 when the
 * client may be answered 1604, else a negative sd_err (logged; 1607 is the caller's). The
 * staged attempt is gone afterwards either way. */
int commit_verdict(struct conn *c, int verified);

/* Start-up: rolls every recorded intent forward under the storage folder root: a temporary
 * file still there is renamed into place (folder fsynced) and the row published; when it is
 * gone, the intent is published if the stored file is exactly the intent's (size and CRC), or
 * else dropped (its rename never happened). *rolled and *dropped count them. 0, or a negative
 * sd_err when the database could not be read or written (the intents stay). */
int commit_recover(struct db *db, const char *root, long *rolled, long *dropped);
/* A live server's intent for mine (db_commit_add or db_upload_commit) was refused because
 * another intent holds its name or stored path: if no live server holds that intent's file
 * (its server was killed between intent and publishing, and none has started since), it is
 * rolled forward now as commit_recover does. 1 when it was (the caller records its intent
 * again, once), 0 when it belongs to a live server or is gone, or a negative sd_err. Any
 * thread. */
int commit_roll_stale(struct db *db, const char *root, const struct db_commit *mine);
/* A verdict repeated after its publishing failed (the folder fsync or the row: the intent
 * stays, and the attempt is no longer staged): the intent of (c's client, file_name) is rolled
 * forward now, under the stored name's lock, as the next upload of the path would, so that
 * the repeated verdict is answered from the row it publishes. 1 when it was rolled forward,
 * 0 when there was none (or a live server holds it), or a negative sd_err. */
int commit_settle(struct conn *c, const char *file_name);
/* The temporary name of a DELETE's intent (fetch.c): no file ever has it. */
#define COMMIT_DELETE_TEMP STORAGE_TMP_PREFIX "delete"

#endif
