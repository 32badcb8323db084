/* storage.h: where uploaded files live: <root>/<client id hex>/<sanitised base name>.
 * A file is written to a temporary file in its client's folder and appears under its final
 * name only when complete (fsync, rename, fsync of the folder). Nothing a client sends can
 * place a file outside its folder. */
#ifndef SD_STORAGE_H
#define SD_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "../protocol/codes.h"
#include "../protocol/text.h"

/* Temporary files of uploads in progress start with this; the server removes leftovers at
 * start-up. The file-name rule (protocol/text.h) refuses it for stored names. */
#define STORAGE_TMP_PREFIX TEXT_RESERVED_PREFIX
#define STORAGE_PATH_MAX 1024u
/* Version 4's resumable uploads keep their temporary files across restarts under this prefix
 * (a longer form of STORAGE_TMP_PREFIX, so no stored name can take it): storage_remove_stale()
 * leaves them to the reconciliation of partial uploads with the database (server/put.h). */
#define STORAGE_RESUME_PREFIX STORAGE_TMP_PREFIX "resume-"

/* The name a file from the wire is stored under: text_file_name() of protocol/text.h (the
 * last path component; SD_ERR_BAD_STRING for what the rule refuses). */
int storage_sanitize_name(const char *wire_name, char out[NAME_FIELD_SIZE]);

struct storage_file {
	int fd;                               /* the temporary file, -1 when closed */
	int dir_fd;                           /* the client's folder */
	char tmp_name[NAME_FIELD_SIZE + 32];  /* inside the client's folder */
	char final_name[NAME_FIELD_SIZE];     /* sanitised base name */
	char rel_path[STORAGE_PATH_MAX];      /* <id hex>/<name>, for the database PathName */
	uint64_t written;                     /* bytes written so far */
	uint64_t writeback_from;              /* start of the bytes not yet sent to the disk */
	int err;                              /* errno of the last failure (0: none), for logs:
	                                       * a full disk reads "No space left on device" */
};

/* Writeback of a file being stored starts every this many bytes, so that the disk works while
 * the upload goes on and the fsync at the end has little left to do. */
#define STORAGE_WRITEBACK_CHUNK (8u << 20)

/* Creates <root>/<hex id>/ (mode 0700) if needed and a new temporary file in it (O_EXCL,
 * no symlinks followed). f is set to closed values first. 0 or SD_ERR_IO (errno kept). */
int storage_begin(const char *root, const uint8_t owner[CLIENT_ID_SIZE], const char *safe_name,
    struct storage_file *f);
/* Writes all n bytes (retrying short writes); starts writeback every STORAGE_WRITEBACK_CHUNK. */
int storage_write(struct storage_file *f, const void *data, size_t n);
/* fsync, close, rename over the final name, fsync the folder. f is closed afterwards. */
int storage_commit(struct storage_file *f);
/* The two-step form of storage_commit() for a file that must wait for its client's verdict
 * (issue 9 item 1): storage_finish() fsyncs the temporary file, which keeps its temporary
 * name beside the stored version (storage_abort() still removes it) and stays open, its lock
 * held, until storage_abort(): through the verdict wait, the rename and the publishing, so
 * that another server starting meanwhile neither removes it nor rolls its commit forward
 * (docs/deployment.md); storage_rename() puts it in place under its final name
 * (f->tmp_name becomes ""); storage_sync_folder() makes the rename durable. 0 or SD_ERR_IO
 * (f->err says why). */
int storage_finish(struct storage_file *f);
int storage_rename(struct storage_file *f);
int storage_sync_folder(struct storage_file *f);
/* Closes and removes the temporary file; accepts a closed f. */
void storage_abort(struct storage_file *f);
/* Opens (creating if missing, mode 0700) the folder <root>/<hex owner>/ without following a
 * link below root: *dir_fd (the caller closes it). 0 or SD_ERR_IO (errno kept). */
int storage_open_folder(const char *root, const uint8_t owner[CLIENT_ID_SIZE], int *dir_fd);
/* Takes the exclusive flock of a temporary file this server writes (fd open for writing): held
 * until every descriptor of that open file description is closed, so another server's
 * clean-up or takeover sees the file in use (docs/deployment.md). wait: block until granted
 * (a clean-up's test holds it an instant); else fail at once. 0 when held (also on a
 * filesystem without locks: one server then), STORAGE_LOCK_HELD when another open file
 * description holds it (another server, or another connection of this one). */
#define STORAGE_LOCK_HELD 1
int storage_lock(int fd, int wait);
/* 1 when the temporary file name in dir_fd is one a live server writes: another holds its
 * lock, or it is empty and created in the last few seconds (not locked yet). */
int storage_in_use(int dir_fd, const char *name);
/* One server at a time does the start-up work on a shared storage folder (rolling commits
 * forward, reconciling partial uploads, removing stale files): an exclusive flock on
 * STORAGE_STARTUP_LOCK in root, waited for at most wait_seconds (*waited set when it had to
 * wait). *fd: close it to let go. 0, SD_ERR_IO, or SD_ERR_TOO_LARGE when the wait ran out. */
#define STORAGE_STARTUP_LOCK ".sealdrop-startup.lock"
int storage_startup_lock(const char *root, unsigned wait_seconds, int *fd, int *waited);
/* Removes leftover temporary files under root (after a crash), except the resumable ones
 * (STORAGE_RESUME_PREFIX) and those a live server holds (a server locks its temporary files;
 * several may share root). Returns how many, or < 0. */
int storage_remove_stale(const char *root);

#endif
