/* known_servers.c: reading, matching and appending the client's pinned server fingerprints
 * (trust on first use, SPEC-v4.md 1). */
#include "known_servers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../protocol/err.h"
#include "../protocol/tls.h"
#include "files.h"

/* Checks n bytes at s (not necessarily NUL-terminated) with tls.h's rule. */
static int
fingerprint_check_n(const char *s, size_t n)
{
	char text[FINGERPRINT_TEXT_LEN + 1];

	if (n != FINGERPRINT_TEXT_LEN)
		return SD_ERR_BAD_FIELD;
	memcpy(text, s, n);
	text[n] = '\0';
	return tls_fingerprint_valid(text) ? 0 : SD_ERR_BAD_FIELD;
}

int
fingerprint_check(const char *text)
{
	if (text == NULL)
		return SD_ERR_INVALID_ARG;
	return tls_fingerprint_valid(text) ? 0 : SD_ERR_BAD_FIELD;
}

int
known_servers_key(const char *host, const char *port, char *out, size_t cap)
{
	int n;

	if (host == NULL || port == NULL || out == NULL || cap == 0)
		return SD_ERR_INVALID_ARG;
	n = snprintf(out, cap, strchr(host, ':') != NULL ? "[%s]:%s" : "%s:%s", host, port);
	if (n < 0 || (size_t)n >= cap)
		return SD_ERR_TOO_LARGE;
	return 0;
}

/* 1 if the line's key (k, kn bytes) names the server key: the port exactly, the host without
 * regard to case. */
static int
key_equal(const char *k, size_t kn, const char *key)
{
	return kn == strlen(key) && strncasecmp(k, key, kn) == 0;
}

int
known_servers_parse(const char *text, size_t n, const char *key, const char *fingerprint,
    struct known_result *res, char *why, size_t why_cap)
{
	const char *p, *end, *nl, *line, *sp, *fp;
	size_t len, kn, fn;
	unsigned lineno = 0;

	if (text == NULL || key == NULL || res == NULL)
		return SD_ERR_INVALID_ARG;
	memset(res, 0, sizeof(*res));
	p = text;
	end = text + n;
	while (p < end) {
		lineno++;
		nl = memchr(p, '\n', (size_t)(end - p));
		line = p;
		len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		p = nl != NULL ? nl + 1 : end;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
			len--;
		while (len > 0 && (*line == ' ' || *line == '\t')) {
			line++;
			len--;
		}
		if (len == 0 || line[0] == '#')
			continue;
		/* The key ends at the first space or tab. */
		sp = line;
		while (sp < line + len && *sp != ' ' && *sp != '\t')
			sp++;
		if (sp == line + len || memchr(line, '\0', len) != NULL) {
			file_why(why, why_cap, "line %u is not 'HOST:PORT SHA256:...'", lineno);
			return SD_ERR_BAD_FIELD;
		}
		kn = (size_t)(sp - line);
		fp = sp;
		while (fp < line + len && (*fp == ' ' || *fp == '\t'))
			fp++;
		fn = (size_t)(line + len - fp);
		if (kn == 0 || kn > SERVER_KEY_TEXT_MAX || fingerprint_check_n(fp, fn) != 0) {
			file_why(why, why_cap, "line %u is not 'HOST:PORT SHA256:...' (the fingerprint "
			    "is %s followed by %u base64 characters)", lineno, FINGERPRINT_PREFIX,
			    FINGERPRINT_B64_LEN);
			return SD_ERR_BAD_FIELD;
		}
		if (!key_equal(line, kn, key))
			continue;
		if (fingerprint != NULL && strlen(fingerprint) == fn &&
		    memcmp(fp, fingerprint, fn) == 0) {
			res->verdict = KNOWN_MATCH;
			res->line = lineno;
			memcpy(res->fingerprint, fp, fn);
			res->fingerprint[fn] = '\0';
			/* A match anywhere wins over an earlier other line for the same server. */
			return 0;
		}
		if (res->verdict == KNOWN_NONE) {
			res->verdict = KNOWN_MISMATCH;
			res->line = lineno;
			memcpy(res->fingerprint, fp, fn);
			res->fingerprint[fn] = '\0';
		}
	}
	return 0;
}

int
known_servers_lookup(const char *path, const char *key, const char *fingerprint,
    struct known_result *res, char *why, size_t why_cap)
{
	char *text = NULL;
	char inner[WHY_MAX];
	size_t n = 0;
	int r;

	if (path == NULL || res == NULL)
		return SD_ERR_INVALID_ARG;
	memset(res, 0, sizeof(*res));
	if ((r = file_read_small(path, KNOWN_SERVERS_MAX, &text, &n)) != 0) {
		if (r == SD_ERR_NOT_FOUND)
			return 0;
		if (r == SD_ERR_TOO_LARGE)
			file_why(why, why_cap, "%s is larger than %u bytes", path, KNOWN_SERVERS_MAX);
		else
			file_why(why, why_cap, "cannot read %s: %s", path, strerror(errno));
		return r;
	}
	inner[0] = '\0';
	r = known_servers_parse(text, n, key, fingerprint, res, inner, sizeof(inner));
	if (r != 0)
		file_why(why, why_cap, "%s: %s", path, inner);
	file_free_small(text, n);
	return r;
}

int
known_servers_append(const char *path, const char *key, const char *fingerprint, char *why,
    size_t why_cap)
{
	char line[SERVER_KEY_TEXT_MAX + FINGERPRINT_TEXT_LEN + 4];
	struct stat st;
	char last = '\n';
	int fd, r = SD_ERR_IO, n;

	if (path == NULL || key == NULL || fingerprint == NULL)
		return SD_ERR_INVALID_ARG;
	if (fingerprint_check(fingerprint) != 0 || strlen(key) == 0 ||
	    strlen(key) > SERVER_KEY_TEXT_MAX || strpbrk(key, " \t\r\n") != NULL)
		return SD_ERR_INVALID_ARG;
	if ((fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644)) < 0) {
		file_why(why, why_cap, "cannot open %s: %s", path, strerror(errno));
		return SD_ERR_IO;
	}
	if (fstat(fd, &st) != 0)
		goto fail;
	if (st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) != 1)
		goto fail;
	n = snprintf(line, sizeof(line), "%s%s %s\n", last == '\n' ? "" : "\n", key, fingerprint);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		r = SD_ERR_INTERNAL;
		goto fail;
	}
	/* One write with O_APPEND: another client appending at once cannot split our line. */
	if (file_write_sync(fd, line, (size_t)n) != 0)
		goto fail;
	if (close(fd) != 0) {
		file_why(why, why_cap, "cannot write %s: %s", path, strerror(errno));
		return SD_ERR_IO;
	}
	return 0;
fail:
	file_why(why, why_cap, "cannot write %s: %s", path, strerror(errno));
	close(fd);
	return r;
}
