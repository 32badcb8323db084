/* storage.c: uploaded files on disk under <root>/<client id hex>/<name>, written to a temporary
 * file and renamed into place when complete. Every path step is taken relative to a folder fd
 * with O_NOFOLLOW, so a symlink planted in the storage cannot redirect a write. */
#include "storage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../protocol/crypto.h"
#include "../protocol/err.h"
#include "../protocol/hex.h"
#include "../protocol/text.h"

#define TMP_RANDOM_BYTES 8u   /* hex-encoded after STORAGE_TMP_PREFIX */
#define TMP_ATTEMPTS 8        /* O_EXCL collisions are practically impossible; bounded anyway */
/* Several servers may share the storage folder (docs/deployment.md). A live server holds an
 * flock on each temporary file from creation until storage_abort(): through the verdict wait,
 * the rename and the publishing, so that the start-up clean-up or roll-forward of another
 * server skips it; a killed server's locks are gone with it. An empty file younger than this
 * may be one created an instant ago and not locked yet: it is left too. */
#define TMP_FRESH_SECONDS 5

int
storage_sanitize_name(const char *wire_name, char out[NAME_FIELD_SIZE])
{
	return text_file_name(wire_name, out, NULL);
}

static void
closed_file(struct storage_file *f)
{
	memset(f, 0, sizeof(*f));
	f->fd = -1;
	f->dir_fd = -1;
}

/* Closes fd, keeping errno of the failure being reported. */
static void
close_keep_errno(int fd)
{
	int saved = errno;

	if (fd >= 0)
		(void)close(fd);
	errno = saved;
}

/* Opens (creating if missing, mode 0700) the folder name under at, refusing a symlink. */
static int
open_folder(int at, const char *name, int *out)
{
	int fd;

	if (mkdirat(at, name, 0700) != 0 && errno != EEXIST)
		return SD_ERR_IO;
	if ((fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return SD_ERR_IO;
	*out = fd;
	return 0;
}

int
storage_begin(const char *root, const uint8_t owner[CLIENT_ID_SIZE], const char *safe_name,
    struct storage_file *f)
{
	char hex[CLIENT_ID_SIZE * 2 + 1], check[NAME_FIELD_SIZE];
	uint8_t rnd[TMP_RANDOM_BYTES];
	char rnd_hex[TMP_RANDOM_BYTES * 2 + 1];
	int root_fd = -1, r, attempt, len;

	if (f == NULL)
		return SD_ERR_INVALID_ARG;
	closed_file(f);
	if (root == NULL || owner == NULL || safe_name == NULL)
		return SD_ERR_INVALID_ARG;
	/* The name must already be what storage_sanitize_name() gives: one plain component. */
	if (storage_sanitize_name(safe_name, check) != 0 || strcmp(check, safe_name) != 0)
		return SD_ERR_INVALID_ARG;
	hex_encode(owner, CLIENT_ID_SIZE, hex);
	len = snprintf(f->rel_path, sizeof(f->rel_path), "%s/%s", hex, safe_name);
	if (len < 0 || (size_t)len >= sizeof(f->rel_path))
		return SD_ERR_INVALID_ARG;
	memcpy(f->final_name, safe_name, strlen(safe_name) + 1);

	/* The root is the operator's choice and may be a symlink; below it nothing is followed. */
	if (mkdir(root, 0700) != 0 && errno != EEXIST) {
		r = SD_ERR_IO;
		goto out;
	}
	if ((root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = SD_ERR_IO;
		goto out;
	}
	if ((r = open_folder(root_fd, hex, &f->dir_fd)) != 0)
		goto out;
	r = SD_ERR_IO;
	for (attempt = 0; attempt < TMP_ATTEMPTS && f->fd < 0; attempt++) {
		crypto_random(rnd, sizeof(rnd));
		hex_encode(rnd, sizeof(rnd), rnd_hex);
		snprintf(f->tmp_name, sizeof(f->tmp_name), "%s%s", STORAGE_TMP_PREFIX, rnd_hex);
		f->fd = openat(f->dir_fd, f->tmp_name,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (f->fd < 0 && errno != EEXIST)
			goto out;
	}
	if (f->fd < 0)
		goto out;
	/* Blocking: only another server's clean-up can hold it, for an instant (it leaves an
	 * empty young file alone). A filesystem without locks still works for one server. */
	(void)storage_lock(f->fd, 1);
	r = 0;
out:
	close_keep_errno(root_fd);
	if (r != 0) {
		int saved = errno;

		close_keep_errno(f->dir_fd);
		closed_file(f);
		f->err = saved;
	}
	return r;
}

int
storage_open_folder(const char *root, const uint8_t owner[CLIENT_ID_SIZE], int *dir_fd)
{
	char hex[CLIENT_ID_SIZE * 2 + 1];
	int root_fd, r;

	if (root == NULL || owner == NULL || dir_fd == NULL)
		return SD_ERR_INVALID_ARG;
	*dir_fd = -1;
	if (mkdir(root, 0700) != 0 && errno != EEXIST)
		return SD_ERR_IO;
	if ((root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return SD_ERR_IO;
	hex_encode(owner, CLIENT_ID_SIZE, hex);
	r = open_folder(root_fd, hex, dir_fd);
	close_keep_errno(root_fd);
	return r;
}

int
storage_write(struct storage_file *f, const void *data, size_t n)
{
	const uint8_t *p = data;
	ssize_t w;

	if (f == NULL || f->fd < 0 || (data == NULL && n > 0))
		return SD_ERR_INVALID_ARG;
	while (n > 0) {
		if ((w = write(f->fd, p, n)) < 0) {
			if (errno == EINTR)
				continue;
			f->err = errno;
			return SD_ERR_IO;
		}
		p += w;
		n -= (size_t)w;
		f->written += (uint64_t)w;
	}
	if (f->written - f->writeback_from >= STORAGE_WRITEBACK_CHUNK) {
		/* Asynchronous: queues the range for writing and returns. Advisory, so a failure
		 * changes nothing; the fsync in storage_commit() is what guarantees the data. */
		(void)sync_file_range(f->fd, (off_t)f->writeback_from,
		    (off_t)(f->written - f->writeback_from), SYNC_FILE_RANGE_WRITE);
		f->writeback_from = f->written;
	}
	return 0;
}

int
storage_commit(struct storage_file *f)
{
	int r;

	/* The data is on disk before the name points at it: a crash never shows a short file
	 * under its final name. */
	if ((r = storage_finish(f)) == 0 && (r = storage_rename(f)) == 0)
		r = storage_sync_folder(f);
	storage_abort(f);
	return r;
}

int
storage_finish(struct storage_file *f)
{
	if (f == NULL || f->fd < 0 || f->dir_fd < 0)
		return SD_ERR_INVALID_ARG;
	/* Stays open: its lock tells other servers it is still this one's. */
	if (fsync(f->fd) != 0) {
		f->err = errno;
		close_keep_errno(f->fd);
		f->fd = -1;
		return SD_ERR_IO;
	}
	return 0;
}

int
storage_rename(struct storage_file *f)
{
	if (f == NULL || f->dir_fd < 0 || f->tmp_name[0] == '\0')
		return SD_ERR_INVALID_ARG;
	/* renameat replaces whatever has the final name, a planted symlink included, without
	 * following it. */
	if (renameat(f->dir_fd, f->tmp_name, f->dir_fd, f->final_name) != 0) {
		f->err = errno;
		return SD_ERR_IO;
	}
	f->tmp_name[0] = '\0';
	return 0;
}

int
storage_sync_folder(struct storage_file *f)
{
	if (f == NULL || f->dir_fd < 0)
		return SD_ERR_INVALID_ARG;
	if (fsync(f->dir_fd) != 0) {
		f->err = errno;
		return SD_ERR_IO;
	}
	return 0;
}

void
storage_abort(struct storage_file *f)
{
	if (f == NULL)
		return;
	close_keep_errno(f->fd);
	if (f->dir_fd >= 0 && f->tmp_name[0] != '\0') {
		int saved = errno;

		(void)unlinkat(f->dir_fd, f->tmp_name, 0);
		errno = saved;
	}
	close_keep_errno(f->dir_fd);
	f->fd = -1;
	f->dir_fd = -1;
	f->tmp_name[0] = '\0';
}

int
storage_lock(int fd, int wait)
{
	while (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? STORAGE_LOCK_HELD : 0;
	}
	return 0;
}

int
storage_in_use(int dir_fd, const char *name)
{
	struct stat st;
	int fd, busy;

	fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return 0;
	busy = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
	if (!busy && fstat(fd, &st) == 0 && st.st_size == 0 &&
	    st.st_mtime > time(NULL) - TMP_FRESH_SECONDS)
		busy = 1;
	close(fd);
	return busy;
}

int
storage_startup_lock(const char *root, unsigned wait_seconds, int *fd, int *waited)
{
	int root_fd, lfd, r;
	unsigned tries;
	const unsigned per_second = 20;

	*fd = -1;
	*waited = 0;
	if ((root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return SD_ERR_IO;
	lfd = openat(root_fd, STORAGE_STARTUP_LOCK, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	close_keep_errno(root_fd);
	if (lfd < 0)
		return SD_ERR_IO;
	for (tries = 0; (r = storage_lock(lfd, 0)) == STORAGE_LOCK_HELD; tries++) {
		if (tries >= wait_seconds * per_second) {
			(void)close(lfd);
			return SD_ERR_TOO_LARGE;
		}
		*waited = 1;
		(void)usleep(1000000 / per_second);
	}
	*fd = lfd;
	return 0;
}

/* Removes the temporary files (regular files with our prefix) in the folder dir_fd that no
 * live server is writing. */
static int
remove_stale_in(int dir_fd)
{
	DIR *d;
	struct dirent *e;
	struct stat st;
	int count = 0;

	if ((d = fdopendir(dir_fd)) == NULL) {
		close_keep_errno(dir_fd);
		return SD_ERR_IO;
	}
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, STORAGE_TMP_PREFIX, strlen(STORAGE_TMP_PREFIX)) != 0 ||
		    strncmp(e->d_name, STORAGE_RESUME_PREFIX, strlen(STORAGE_RESUME_PREFIX)) == 0)
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(st.st_mode) || storage_in_use(dirfd(d), e->d_name))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0)
			count++;
	}
	closedir(d);
	return count;
}

int
storage_remove_stale(const char *root)
{
	DIR *d = NULL;
	struct dirent *e;
	struct stat st;
	int root_fd, fd, n, count = 0, r;

	if (root == NULL)
		return SD_ERR_INVALID_ARG;
	if ((root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? 0 : SD_ERR_IO;  /* no storage yet, nothing stale */
	if ((d = fdopendir(root_fd)) == NULL) {
		close_keep_errno(root_fd);
		return SD_ERR_IO;
	}
	/* Only the client folders directly under root hold temporary files; symlinks are not
	 * followed, so nothing outside root is touched. */
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (fstatat(root_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		fd = openat(root_fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			r = SD_ERR_IO;
			goto out;
		}
		if ((n = remove_stale_in(fd)) < 0) {
			r = n;
			goto out;
		}
		count += n;
	}
	r = count;
out:
	closedir(d);
	return r;
}
