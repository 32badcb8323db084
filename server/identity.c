/* identity.c: server.key and server.crt (identity.h): read them, or make them once, without
 * ever overwriting or half-writing one. */
#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../protocol/buf.h"
#include "../protocol/err.h"
#include "../protocol/tls.h"

static void say(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
say(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (cap == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, cap, fmt, ap);
	va_end(ap);
}

int
identity_path_beside(const char *db_path, const char *file, char *out, size_t cap)
{
	const char *slash = strrchr(db_path, '/');
	int n;

	if (slash == NULL)
		n = snprintf(out, cap, "%s", file);
	else
		n = snprintf(out, cap, "%.*s/%s", (int)(slash - db_path), db_path, file);
	return n < 0 || (size_t)n >= cap ? SD_ERR_TOO_LARGE : 0;
}

/* The whole file (at most TLS_PEM_MAX bytes) into b. SD_ERR_NOT_FOUND when it does not
 * exist; *loose = 1 when group or others may read it. */
static int
read_pem(const char *path, struct buf *b, int *loose, char *why, size_t cap)
{
	uint8_t chunk[4096];
	struct stat st;
	ssize_t n;
	int fd, r = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		if (errno == ENOENT)
			return SD_ERR_NOT_FOUND;
		say(why, cap, "cannot open %s: %s", path, strerror(errno));
		return SD_ERR_IO;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		say(why, cap, "%s is not a regular file", path);
		close(fd);
		return SD_ERR_IO;
	}
	if (loose != NULL)
		*loose = (st.st_mode & 077) != 0;
	for (;;) {
		while ((n = read(fd, chunk, sizeof(chunk))) < 0 && errno == EINTR)
			;
		if (n <= 0)
			break;
		if ((r = buf_put_bytes(b, chunk, (size_t)n)) != 0) {
			say(why, cap, "%s is longer than %u bytes", path, TLS_PEM_MAX);
			break;
		}
	}
	if (n < 0) {
		say(why, cap, "cannot read %s: %s", path, strerror(errno));
		r = SD_ERR_IO;
	}
	explicit_bzero(chunk, sizeof(chunk));
	close(fd);
	return r;
}

static void
fsync_folder_of(const char *path)
{
	char dir[IDENTITY_PATH_MAX];
	int fd;

	if (identity_path_beside(path, ".", dir, sizeof(dir)) != 0)
		return;
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

/* Writes b to a new file at path, mode 0600: a temporary file beside it, fsynced, then
 * linked into place (link() never replaces a file: SD_ERR_EXISTS if path exists). */
static int
write_new(const char *path, const struct buf *b, char *why, size_t cap)
{
	char tmp[IDENTITY_PATH_MAX];
	size_t off = 0;
	ssize_t n;
	int fd, r = SD_ERR_IO;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= (int)sizeof(tmp)) {
		say(why, cap, "path too long: %s", path);
		return SD_ERR_TOO_LARGE;
	}
	if ((fd = mkstemp(tmp)) < 0) {  /* mode 0600 */
		say(why, cap, "cannot create a file beside %s: %s", path, strerror(errno));
		return SD_ERR_IO;
	}
	while (off < buf_len(b)) {
		while ((n = write(fd, buf_ptr(b) + off, buf_len(b) - off)) < 0 && errno == EINTR)
			;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	if (off != buf_len(b) || fchmod(fd, 0600) != 0 || fsync(fd) != 0) {
		say(why, cap, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (link(tmp, path) != 0) {
		r = errno == EEXIST ? SD_ERR_EXISTS : SD_ERR_IO;
		say(why, cap, "cannot create %s: %s", path, strerror(errno));
		goto out;
	}
	r = 0;
out:
	close(fd);
	unlink(tmp);
	if (r == 0)
		fsync_folder_of(path);
	return r;
}

/* Both files anew. A concurrent start that made them first wins: ours are dropped. */
static int
create(const char *key_path, const char *cert_path, struct tls_identity **out, char *why,
    size_t cap)
{
	struct tls_identity *id = NULL;
	struct buf key, crt;
	int r;

	buf_init(&key, TLS_PEM_MAX);
	buf_init(&crt, TLS_PEM_MAX);
	if ((r = tls_identity_generate(IDENTITY_CN, &id)) != 0 ||
	    (r = tls_identity_key_pem(id, &key)) != 0 ||
	    (r = tls_identity_cert_pem(id, &crt)) != 0) {
		say(why, cap, "cannot make a key: %s", sd_strerror(r));
		goto out;
	}
	/* The key first: a certificate without its key would be of no use. */
	if ((r = write_new(key_path, &key, why, cap)) != 0)
		goto out;
	if ((r = write_new(cert_path, &crt, why, cap)) != 0) {
		unlink(key_path);
		goto out;
	}
	*out = id;
	id = NULL;
out:
	tls_identity_free(id);
	buf_free(&key);
	buf_free(&crt);
	return r;
}

int
identity_load_or_create(const char *key_path, const char *cert_path,
    struct tls_identity **out, int *created, int *loose, char *why, size_t why_cap)
{
	struct buf key, crt;
	int rk, rc, r;

	*out = NULL;
	*created = 0;
	*loose = 0;
	if (why_cap > 0)
		why[0] = '\0';
	buf_init(&key, TLS_PEM_MAX);
	buf_init(&crt, TLS_PEM_MAX);
	rk = read_pem(key_path, &key, loose, why, why_cap);
	rc = rk == 0 || rk == SD_ERR_NOT_FOUND ? read_pem(cert_path, &crt, NULL, why, why_cap) : 0;
	if (rk == SD_ERR_NOT_FOUND && rc == SD_ERR_NOT_FOUND) {
		r = create(key_path, cert_path, out, why, why_cap);
		*created = r == 0;
		goto out;
	}
	if (rk == SD_ERR_NOT_FOUND || rc == SD_ERR_NOT_FOUND) {
		say(why, why_cap, "%s exists but %s does not; restore it, or remove both to make a "
		    "new identity (clients that pinned the old one will refuse it)",
		    rk == 0 ? key_path : cert_path, rk == 0 ? cert_path : key_path);
		r = SD_ERR_EXISTS;
		goto out;
	}
	if ((r = rk) != 0 || (r = rc) != 0)
		goto out;
	if ((r = tls_identity_from_pems(buf_ptr(&key), buf_len(&key), buf_ptr(&crt),
	    buf_len(&crt), out)) != 0)
		say(why, why_cap, "%s and %s: %s (an Ed25519 key and its certificate are needed)",
		    key_path, cert_path, sd_strerror(r));
out:
	buf_free(&key);
	buf_free(&crt);
	return r;
}
