/* files.h: the client's small files (SPEC.md 8): reading one whole, writing one atomically
 * (temporary file, fsync, rename, mode 0600, so a valid file is never replaced by a broken
 * one), splitting text into lines, and the one-line reason a failing reader or writer gives.
 * transfer.h and me_info.h read and write the files themselves. */
#ifndef SD_CLIENT_FILES_H
#define SD_CLIENT_FILES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define WHY_MAX 256u              /* a reason for a failure, one line */

/* Formats a reason into why (cap bytes); does nothing if why is NULL or cap is 0. */
void file_why(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Reads a whole small file (at most max bytes) into a new allocation (NUL-terminated; *n bytes
 * before the NUL); the caller frees it with file_free_small(*out, *n). SD_ERR_NOT_FOUND for a
 * missing file, SD_ERR_TOO_LARGE over max, SD_ERR_IO otherwise (errno kept). */
int file_read_small(const char *path, size_t max, char **out, size_t *n);
/* Wipes and frees what file_read_small() returned; accepts NULL. */
void file_free_small(char *p, size_t n);
/* Wipes n bytes at p and frees them (malloc'd memory); accepts NULL. */
void file_free_secret(void *p, size_t n);

/* Opens the regular file at path for an upload: name gets its base name (what follows the last
 * '/', trailing slashes ignored; 1 to name_max bytes, no control character; name holds
 * name_max + 1), *fd the open descriptor (the caller closes it), *size its size. On failure
 * *fd is -1 and why says what is wrong: SD_ERR_INVALID_ARG for the name, SD_ERR_IO otherwise. */
int file_open_upload(const char *path, size_t name_max, char *name, int *fd, uint64_t *size,
    char *why, size_t why_cap);

/* What identifies the content of a file being uploaded: an edit in place changes the size,
 * mtime or ctime of its inode; a replacement (rename over it) the inode the path names. */
struct file_stamp {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
};

/* Records the stamp of the open file fd. 0 or SD_ERR_IO (errno kept). */
int file_stamp_get(int fd, struct file_stamp *st);
/* 1 if the file open as fd, or the file path names now, is no longer the one stamped (or
 * cannot be checked), else 0. */
int file_stamp_changed(int fd, const char *path, const struct file_stamp *st);

/* Writes all n bytes at p to fd (retrying after EINTR and short writes), then fsyncs it. 0, or -1
 * with errno as write() or fsync() left it. fd stays open (the caller closes it). */
int file_write_sync(int fd, const void *p, size_t n);

/* Writes data to path through "path.tmp-XXXXXX" (mode 0600), fsync, rename, then fsyncs the
 * folder so the new name survives a crash. On failure the temporary file is removed and the
 * previous file is left as it was. */
int file_write_atomic(const char *path, const char *data, size_t n, char *why, size_t why_cap);

/* Lines of a text in memory, from p to end. */
struct file_lines {
	const char *p;
	const char *end;
};

/* The next line: [*start, *start + *len) without its LF and a CR before it. 0 at the end. */
int file_next_line(struct file_lines *l, const char **start, size_t *len);
/* 1 if the n bytes at s are only spaces, tabs, CR and LF. */
int file_is_blank(const char *s, size_t n);
/* Moves *s and shortens *n past leading and trailing spaces and tabs. */
void file_trim(const char **s, size_t *n);

#endif
