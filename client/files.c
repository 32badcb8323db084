/* files.c: reading transfer.info, me.info and priv.key tolerantly, and writing me.info and
 * priv.key atomically with mode 0600 (SPEC.md 8). */
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

#include "../protocol/base64.h"
#include "../protocol/err.h"
#include "../protocol/hex.h"

static void
set_why(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
set_why(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || cap == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, cap, fmt, ap);
	va_end(ap);
}

/* Wipes and frees memory this file allocated with malloc; accepts NULL. */
static void
free_secret(void *p, size_t n)
{
	if (p == NULL)
		return;
	crypto_wipe(p, n);
	free(p);
}

void
file_free_small(char *p, size_t n)
{
	free_secret(p, n + 1);
}

/* One line of a text: [*start, *end) without its LF and a CR before it. Returns 0 at the end. */
struct lines {
	const char *p;
	const char *end;
};

static int
next_line(struct lines *l, const char **start, size_t *len)
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

static int
is_blank(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return 0;
	return 1;
}

static void
trim(const char **s, size_t *n)
{
	while (*n > 0 && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
		(*n)--;
}

int
transfer_server_parse(const char *text, struct transfer_info *ti, char *why, size_t why_cap)
{
	const char *colon, *host, *port;
	size_t host_len, port_len, i;
	unsigned long value = 0;

	if (text == NULL || ti == NULL)
		return SD_ERR_INVALID_ARG;
	if (text[0] == '[') {
		/* An IPv6 literal: "[addr]:port". */
		const char *close = strchr(text, ']');
		if (close == NULL || close[1] != ':') {
			set_why(why, why_cap, "server '%.80s' is not [address]:port", text);
			return SD_ERR_BAD_FIELD;
		}
		host = text + 1;
		host_len = (size_t)(close - host);
		port = close + 2;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL) {
			set_why(why, why_cap, "server '%.80s' is not host:port", text);
			return SD_ERR_BAD_FIELD;
		}
		host = text;
		host_len = (size_t)(colon - text);
		port = colon + 1;
		if (memchr(host, ':', host_len) != NULL) {
			set_why(why, why_cap, "server '%.80s': write an IPv6 address as [address]:port",
			    text);
			return SD_ERR_BAD_FIELD;
		}
	}
	if (host_len == 0 || host_len > HOST_MAX) {
		set_why(why, why_cap, "server '%.80s': the host is empty or too long", text);
		return SD_ERR_BAD_FIELD;
	}
	for (i = 0; i < host_len; i++) {
		if ((unsigned char)host[i] <= ' ' || host[i] == 0x7f) {
			set_why(why, why_cap, "server '%.80s': the host has a space or control character",
			    text);
			return SD_ERR_BAD_FIELD;
		}
	}
	port_len = strlen(port);
	if (port_len == 0 || port_len > PORT_TEXT_MAX) {
		set_why(why, why_cap, "server '%.80s': bad port '%.20s' (1-65535)", text, port);
		return SD_ERR_BAD_FIELD;
	}
	for (i = 0; i < port_len; i++) {
		if (port[i] < '0' || port[i] > '9') {
			set_why(why, why_cap, "server '%.80s': bad port '%.20s' (1-65535)", text, port);
			return SD_ERR_BAD_FIELD;
		}
		value = value * 10 + (unsigned long)(port[i] - '0');
	}
	if (value < 1 || value > 65535) {
		set_why(why, why_cap, "server '%.80s': bad port '%.20s' (1-65535)", text, port);
		return SD_ERR_BAD_FIELD;
	}
	memcpy(ti->host, host, host_len);
	ti->host[host_len] = '\0';
	snprintf(ti->port, sizeof(ti->port), "%lu", value);
	return 0;
}

int
transfer_name_check(const char *name, char *why, size_t why_cap)
{
	size_t n, i;

	if (name == NULL)
		return SD_ERR_INVALID_ARG;
	n = strlen(name);
	if (n == 0) {
		set_why(why, why_cap, "the client name is empty");
		return SD_ERR_BAD_STRING;
	}
	if (n > CLIENT_NAME_MAX_LEN) {
		set_why(why, why_cap, "the client name has %zu characters; at most %u are allowed",
		    n, CLIENT_NAME_MAX_LEN);
		return SD_ERR_BAD_STRING;
	}
	for (i = 0; i < n; i++) {
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f) {
			set_why(why, why_cap, "the client name has a control character");
			return SD_ERR_BAD_STRING;
		}
	}
	return 0;
}

int
transfer_info_parse(const char *text, size_t n, unsigned skip, struct transfer_info *ti,
    char *why, size_t why_cap)
{
	struct lines l;
	const char *line[3] = { NULL, NULL, NULL };
	size_t len[3] = { 0, 0, 0 };
	const char *s;
	size_t sn, count = 0;
	char tmp[FILE_PATH_MAX + 1];
	int r;

	if (text == NULL || ti == NULL)
		return SD_ERR_INVALID_ARG;
	memset(ti, 0, sizeof(*ti));
	if (memchr(text, '\0', n) != NULL) {
		set_why(why, why_cap, "it holds a NUL byte (not a text file)");
		return SD_ERR_BAD_FIELD;
	}
	l.p = text;
	l.end = text + n;
	while (next_line(&l, &s, &sn)) {
		if (count < 3) {
			line[count] = s;
			len[count] = sn;
			count++;
		} else if (!is_blank(s, sn)) {
			set_why(why, why_cap, "it has more than three lines (server, name, file)");
			return SD_ERR_BAD_FIELD;
		}
	}

	if (!(skip & TI_SKIP_SERVER)) {
		s = line[0];
		sn = len[0];
		if (s != NULL)
			trim(&s, &sn);
		if (s == NULL || sn == 0) {
			set_why(why, why_cap, "line 1 (host:port) is missing");
			return SD_ERR_BAD_FIELD;
		}
		if (sn >= sizeof(tmp)) {
			set_why(why, why_cap, "line 1 (host:port) is too long");
			return SD_ERR_BAD_FIELD;
		}
		memcpy(tmp, s, sn);
		tmp[sn] = '\0';
		if ((r = transfer_server_parse(tmp, ti, why, why_cap)) != 0)
			return r;
	}
	if (!(skip & TI_SKIP_NAME)) {
		if (line[1] == NULL || len[1] == 0) {
			set_why(why, why_cap, "line 2 (the client name) is missing");
			return SD_ERR_BAD_FIELD;
		}
		if (len[1] > CLIENT_NAME_MAX_LEN) {
			set_why(why, why_cap, "line 2: the client name has %zu characters; at most %u "
			    "are allowed", len[1], CLIENT_NAME_MAX_LEN);
			return SD_ERR_BAD_STRING;
		}
		memcpy(ti->name, line[1], len[1]);
		ti->name[len[1]] = '\0';
		if ((r = transfer_name_check(ti->name, why, why_cap)) != 0)
			return r;
	}
	if (!(skip & TI_SKIP_FILE)) {
		if (line[2] == NULL || len[2] == 0) {
			set_why(why, why_cap, "line 3 (the file to send) is missing");
			return SD_ERR_BAD_FIELD;
		}
		if (len[2] > FILE_PATH_MAX) {
			set_why(why, why_cap, "line 3: the file path is too long");
			return SD_ERR_BAD_FIELD;
		}
		memcpy(ti->file_path, line[2], len[2]);
		ti->file_path[len[2]] = '\0';
	}
	return 0;
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
	free_secret(data, max + 2);
	if (fd >= 0)
		close(fd);
	errno = saved;
	return r;
}

int
transfer_info_load(const char *path, unsigned skip, struct transfer_info *ti, char *why,
    size_t why_cap)
{
	char *text = NULL;
	size_t n = 0;
	int r;

	if ((r = file_read_small(path, TRANSFER_INFO_MAX, &text, &n)) != 0) {
		if (r == SD_ERR_NOT_FOUND)
			set_why(why, why_cap, "%s does not exist", path);
		else if (r == SD_ERR_TOO_LARGE)
			set_why(why, why_cap, "%s is larger than %u bytes", path, TRANSFER_INFO_MAX);
		else
			set_why(why, why_cap, "cannot read %s: %s", path, strerror(errno));
		return r;
	}
	r = transfer_info_parse(text, n, skip, ti, why, why_cap);
	file_free_small(text, n);
	return r;
}

void
me_info_clear(struct me_info *mi)
{
	if (mi == NULL)
		return;
	rsa_private_free(mi->key);
	crypto_wipe(mi, sizeof(*mi));
	mi->key = NULL;
}

/* 1 if every byte is base64 text or white space: then it is not raw DER. */
static int
looks_like_base64(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		uint8_t c = p[i];
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '+' || c == '/' || c == '=' || c == ' ' || c == '\t' || c == '\r' ||
		    c == '\n')
			continue;
		return 0;
	}
	return 1;
}

int
priv_key_parse(const uint8_t *data, size_t n, struct rsa_private **out, char *why,
    size_t why_cap)
{
	uint8_t *der = NULL;
	size_t der_len = 0;
	int r;

	if (data == NULL || out == NULL)
		return SD_ERR_INVALID_ARG;
	*out = NULL;
	if (is_blank((const char *)data, n)) {
		set_why(why, why_cap, "the private key is empty");
		return SD_ERR_BAD_KEY;
	}
	if (looks_like_base64(data, n)) {
		if ((r = base64_decode((const char *)data, n, &der, &der_len)) != 0) {
			set_why(why, why_cap, "the private key's base64 does not decode (%s)",
			    sd_strerror(r));
			return r;
		}
		r = rsa_private_from_der(der, der_len, out);
		crypto_free_secret(der, der_len);
	} else {
		/* Some existing clients write priv.key as raw DER. */
		r = rsa_private_from_der(data, n, out);
	}
	if (r != 0)
		set_why(why, why_cap, "the private key does not parse (%s)", sd_strerror(r));
	return r;
}

int
me_info_parse(const char *text, size_t n, const uint8_t *priv, size_t priv_n,
    struct me_info *mi, char *why, size_t why_cap)
{
	struct lines l;
	const char *s, *nul;
	size_t sn, i;
	int r = SD_ERR_INTERNAL;

	if (text == NULL || mi == NULL)
		return SD_ERR_INVALID_ARG;
	memset(mi, 0, sizeof(*mi));
	l.p = text;
	l.end = text + n;

	/* Line 1: the name. Some clients pad it with NULs to 255 bytes: keep what precedes them. */
	if (!next_line(&l, &s, &sn)) {
		set_why(why, why_cap, "it is empty");
		r = SD_ERR_BAD_FIELD;
		goto out;
	}
	if ((nul = memchr(s, '\0', sn)) != NULL)
		sn = (size_t)(nul - s);
	while (sn > 0 && s[sn - 1] == '\r')
		sn--;
	if (sn == 0 || sn > NAME_MAX_LEN) {
		set_why(why, why_cap, "line 1 (the name) is empty or longer than %u bytes",
		    NAME_MAX_LEN);
		r = SD_ERR_BAD_STRING;
		goto out;
	}
	for (i = 0; i < sn; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			set_why(why, why_cap, "line 1 (the name) has a control character");
			r = SD_ERR_BAD_STRING;
			goto out;
		}
	}
	memcpy(mi->name, s, sn);
	mi->name[sn] = '\0';

	/* Line 2: the ID, 32 hex digits. */
	if (!next_line(&l, &s, &sn)) {
		set_why(why, why_cap, "line 2 (the ID) is missing");
		r = SD_ERR_BAD_FIELD;
		goto out;
	}
	trim(&s, &sn);
	if ((r = hex_decode(s, sn, mi->id, CLIENT_ID_SIZE)) != 0) {
		set_why(why, why_cap, "line 2 (the ID) is not 32 hex digits");
		goto out;
	}

	/* Lines 3 to the end: the key in base64, wrapped or not. None: priv.key holds it. */
	s = l.p;
	sn = (size_t)(l.end - l.p);
	if (!is_blank(s, sn)) {
		if (!looks_like_base64((const uint8_t *)s, sn)) {
			set_why(why, why_cap, "lines 3 and on (the private key) are not base64");
			r = SD_ERR_BAD_BASE64;
			goto out;
		}
		if ((r = priv_key_parse((const uint8_t *)s, sn, &mi->key, why, why_cap)) != 0)
			goto out;
	} else {
		if (priv == NULL) {
			set_why(why, why_cap, "it has no private key and priv.key is missing");
			r = SD_ERR_BAD_KEY;
			goto out;
		}
		if ((r = priv_key_parse(priv, priv_n, &mi->key, why, why_cap)) != 0)
			goto out;
		mi->key_from_priv_key = 1;
	}
	r = 0;
out:
	if (r != 0)
		me_info_clear(mi);
	return r;
}

/* 1 if me.info text has something after its ID line. */
static int
has_key_lines(const char *text, size_t n)
{
	struct lines l = { text, text + n };
	const char *s;
	size_t sn;

	if (!next_line(&l, &s, &sn) || !next_line(&l, &s, &sn))
		return 0;
	return !is_blank(l.p, (size_t)(l.end - l.p));
}

int
me_info_load(const char *me_path, const char *priv_path, struct me_info *mi, char *why,
    size_t why_cap)
{
	char *text = NULL, *priv = NULL;
	size_t n = 0, priv_n = 0;
	char inner[WHY_MAX];
	int r;

	if (me_path == NULL || mi == NULL)
		return SD_ERR_INVALID_ARG;
	memset(mi, 0, sizeof(*mi));
	if ((r = file_read_small(me_path, ME_INFO_MAX, &text, &n)) != 0) {
		if (r == SD_ERR_NOT_FOUND)
			set_why(why, why_cap, "%s does not exist", me_path);
		else if (r == SD_ERR_TOO_LARGE)
			set_why(why, why_cap, "%s is larger than %u bytes", me_path, ME_INFO_MAX);
		else
			set_why(why, why_cap, "cannot read %s: %s", me_path, strerror(errno));
		goto out;
	}
	if (!has_key_lines(text, n) && priv_path != NULL) {
		r = file_read_small(priv_path, PRIV_KEY_MAX, &priv, &priv_n);
		if (r == SD_ERR_NOT_FOUND) {
			priv = NULL;
		} else if (r != 0) {
			set_why(why, why_cap, "%s has no key and %s cannot be read: %s", me_path,
			    priv_path, r == SD_ERR_TOO_LARGE ? "too large" : strerror(errno));
			goto out;
		}
	}
	inner[0] = '\0';
	if ((r = me_info_parse(text, n, (const uint8_t *)priv, priv_n, mi, inner,
	    sizeof(inner))) != 0) {
		set_why(why, why_cap, "%s: %s", me_path, inner);
		goto out;
	}
	r = 0;
out:
	file_free_small(text, n);
	file_free_small(priv, priv_n);
	return r;
}

/* Writes data to path through "path.tmp-XXXXXX" (mode 0600), fsync, rename, then fsyncs the
 * folder so the new name survives a crash. On failure the temporary file is removed. */
static int
write_atomic(const char *path, const char *data, size_t n, char *why, size_t why_cap)
{
	char tmp[PATH_MAX];
	char dir[PATH_MAX];
	int fd = -1, dfd, r = SD_ERR_IO;
	size_t off = 0;
	ssize_t w;
	char *slash;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= sizeof(tmp)) {
		set_why(why, why_cap, "the path %s is too long", path);
		return SD_ERR_INVALID_ARG;
	}
	/* mkstemp creates the file with mode 0600, readable by its owner only. */
	if ((fd = mkstemp(tmp)) < 0) {
		set_why(why, why_cap, "cannot create a temporary file for %s: %s", path,
		    strerror(errno));
		return SD_ERR_IO;
	}
	if (fchmod(fd, S_IRUSR | S_IWUSR) != 0)
		goto fail;
	while (off < n) {
		w = write(fd, data + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto fail;
		off += (size_t)w;
	}
	if (fsync(fd) != 0)
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
	set_why(why, why_cap, "cannot write %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return r;
}

int
me_info_write(const char *me_path, const char *priv_path, const char *name,
    const uint8_t id[CLIENT_ID_SIZE], const struct rsa_private *key, char *why, size_t why_cap)
{
	uint8_t *der = NULL;
	size_t der_len = 0, b64_len = 0, text_len, name_len, cap = 0;
	char *b64 = NULL, *text = NULL;
	char hex[2 * CLIENT_ID_SIZE + 1];
	int r;

	if (me_path == NULL || name == NULL || id == NULL || key == NULL)
		return SD_ERR_INVALID_ARG;
	name_len = strlen(name);
	if (name_len == 0 || name_len > NAME_MAX_LEN || strchr(name, '\n') != NULL) {
		set_why(why, why_cap, "the name cannot be written to me.info");
		return SD_ERR_BAD_STRING;
	}
	if ((r = rsa_private_to_pkcs8(key, &der, &der_len)) != 0) {
		set_why(why, why_cap, "cannot encode the private key (%s)", sd_strerror(r));
		goto out;
	}
	if ((r = base64_encode(der, der_len, &b64, &b64_len)) != 0) {
		set_why(why, why_cap, "cannot encode the private key (%s)", sd_strerror(r));
		goto out;
	}
	hex_encode(id, CLIENT_ID_SIZE, hex);
	cap = name_len + 1 + sizeof(hex) + b64_len + 2;
	if ((text = malloc(cap)) == NULL) {
		r = SD_ERR_ALLOC;
		set_why(why, why_cap, "out of memory");
		goto out;
	}
	/* me.info first: it carries the key itself, so if writing priv.key fails afterwards the
	 * new me.info still works; the other order could pair an old me.info without key lines
	 * with a new priv.key. */
	text_len = (size_t)snprintf(text, cap, "%s\n%s\n%s\n", name, hex, b64);
	if (text_len >= cap) {
		r = SD_ERR_INTERNAL;
		goto out;
	}
	if ((r = write_atomic(me_path, text, text_len, why, why_cap)) != 0)
		goto out;
	if (priv_path != NULL) {
		memcpy(text, b64, b64_len);
		text[b64_len] = '\n';
		if ((r = write_atomic(priv_path, text, b64_len + 1, why, why_cap)) != 0)
			goto out;
	}
	r = 0;
out:
	free_secret(text, cap);
	if (b64 != NULL)
		crypto_free_secret(b64, b64_len + 1);
	if (der != NULL)
		crypto_free_secret(der, der_len);
	return r;
}

int
file_write_atomic(const char *path, const void *data, size_t n, char *why, size_t why_cap)
{
	if (path == NULL || (data == NULL && n > 0))
		return SD_ERR_INVALID_ARG;
	return write_atomic(path, data, n, why, why_cap);
}
