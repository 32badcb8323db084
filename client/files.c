/* files.c: the client's small files: whole-file reads, atomic writes (temporary file, fsync,
 * rename, mode 0600), line splitting and the one-line reasons of failures. */
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../protocol/crypto.h"
#include "../protocol/err.h"

void
file_why(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || cap == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, cap, fmt, ap);
	va_end(ap);
}

void
file_free_secret(void *p, size_t n)
{
	if (p == NULL)
		return;
	crypto_wipe(p, n);
	free(p);
}

void
file_free_small(char *p, size_t n)
{
	file_free_secret(p, n + 1);
}

int
file_next_line(struct file_lines *l, const char **start, size_t *len)
{
	const char *nl;

	if (l->p >= l->end)
		return 0;
	*start = l->p;
	nl = memchr(l->p, '\n', (size_t)(l->end - l->p));
	if (nl == NULL) {
		*len = (size_t)(l->end - l->p);
		l->p = l->end;
	} else {
		*len = (size_t)(nl - l->p);
		l->p = nl + 1;
	}
	if (*len > 0 && (*start)[*len - 1] == '\r')
		(*len)--;
	return 1;
}

int
file_is_blank(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return 0;
	return 1;
}

void
file_trim(const char **s, size_t *n)
{
	while (*n > 0 && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
		(*n)--;
}

int
file_read_small(const char *path, size_t max, char **out, size_t *n)
{
	int fd = -1, r = SD_ERR_INTERNAL, saved;
	struct stat st;
	char *data = NULL;
	size_t have = 0;
	ssize_t got;

	if (path == NULL || out == NULL || n == NULL)
		return SD_ERR_INVALID_ARG;
	*out = NULL;
	*n = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		r = errno == ENOENT ? SD_ERR_NOT_FOUND : SD_ERR_IO;
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		r = SD_ERR_IO;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		r = SD_ERR_IO;
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		r = SD_ERR_TOO_LARGE;
		goto out;
	}
	/* Read up to max + 1 bytes whatever fstat said, so a file that grew is still caught. */
	if ((data = malloc(max + 2)) == NULL) {
		r = SD_ERR_ALLOC;
		goto out;
	}
	for (;;) {
		got = read(fd, data + have, max + 1 - have);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			r = SD_ERR_IO;
			goto out;
		}
		if (got == 0)
			break;
		have += (size_t)got;
		if (have > max) {
			r = SD_ERR_TOO_LARGE;
			goto out;
		}
	}
	data[have] = '\0';
	*out = data;
	*n = have;
	data = NULL;
	r = 0;
out:
	saved = errno;
	file_free_secret(data, max + 2);
	if (fd >= 0)
		close(fd);
	errno = saved;
	return r;
}

int
file_open_upload(const char *path, size_t name_max, char *name, int *fd, uint64_t *size,
    char *why, size_t why_cap)
{
	const char *base;
	struct stat st;
	size_t len = strlen(path), i;

	*fd = -1;
	*size = 0;
	while (len > 1 && path[len - 1] == '/')
		len--;
	base = path + len;
	while (base > path && base[-1] != '/')
		base--;
	if ((size_t)(path + len - base) > name_max || path + len == base) {
		file_why(why, why_cap, "the file name of %s is empty or longer than %zu bytes", path,
		    name_max);
		return SD_ERR_INVALID_ARG;
	}
	memcpy(name, base, (size_t)(path + len - base));
	name[path + len - base] = '\0';
	for (i = 0; name[i] != '\0'; i++) {
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f) {
			file_why(why, why_cap, "the file name of %s has a control character", path);
			return SD_ERR_INVALID_ARG;
		}
	}
	if ((*fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		file_why(why, why_cap, "cannot open %s: %s", path, strerror(errno));
		return SD_ERR_IO;
	}
	if (fstat(*fd, &st) != 0) {
		file_why(why, why_cap, "cannot read %s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		file_why(why, why_cap, "%s is not a regular file", path);
		goto fail;
	}
	*size = (uint64_t)st.st_size;
	return 0;
fail:
	close(*fd);
	*fd = -1;
	return SD_ERR_IO;
}

int
file_stamp_get(int fd, struct file_stamp *st)
{
	struct stat sb;

	memset(st, 0, sizeof(*st));
	if (fstat(fd, &sb) != 0)
		return SD_ERR_IO;
	st->dev = sb.st_dev;
	st->ino = sb.st_ino;
	st->size = sb.st_size;
	st->mtim = sb.st_mtim;
	st->ctim = sb.st_ctim;
	return 0;
}

int
file_stamp_changed(int fd, const char *path, const struct file_stamp *st)
{
	struct file_stamp now;
	struct stat sb;

	if (file_stamp_get(fd, &now) != 0 || now.dev != st->dev || now.ino != st->ino ||
	    now.size != st->size || now.mtim.tv_sec != st->mtim.tv_sec ||
	    now.mtim.tv_nsec != st->mtim.tv_nsec || now.ctim.tv_sec != st->ctim.tv_sec ||
	    now.ctim.tv_nsec != st->ctim.tv_nsec)
		return 1;
	if (stat(path, &sb) != 0 || sb.st_dev != st->dev || sb.st_ino != st->ino)
		return 1;
	return 0;
}

int
file_write_sync(int fd, const void *p, size_t n)
{
	const char *c = p;
	size_t off = 0;
	ssize_t w;

	while (off < n) {
		w = write(fd, c + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	return fsync(fd) != 0 ? -1 : 0;
}

int
file_write_atomic(const char *path, const char *data, size_t n, char *why, size_t why_cap)
{
	char tmp[PATH_MAX];
	char dir[PATH_MAX];
	int fd = -1, dfd, r = SD_ERR_IO;
	char *slash;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= sizeof(tmp)) {
		file_why(why, why_cap, "the path %s is too long", path);
		return SD_ERR_INVALID_ARG;
	}
	/* mkstemp creates the file with mode 0600, readable by its owner only. */
	if ((fd = mkstemp(tmp)) < 0) {
		file_why(why, why_cap, "cannot create a temporary file for %s: %s", path,
		    strerror(errno));
		return SD_ERR_IO;
	}
	if (fchmod(fd, S_IRUSR | S_IWUSR) != 0)
		goto fail;
	if (file_write_sync(fd, data, n) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		goto fail;
	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) != NULL) {
		if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
	} else {
		snprintf(dir, sizeof(dir), ".");
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
fail:
	file_why(why, why_cap, "cannot write %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return r;
}
