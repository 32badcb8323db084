/* known_servers.c: reading, matching and appending the client's pinned server fingerprints
 * (trust on first use, SPEC-v4.md 1). */
#include "known_servers.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
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

/* Opens the folder holding path (for its lock). -1 on failure. */
static int
open_folder(const char *path)
{
	char dir[PATH_MAX];
	char *slash;

	if ((size_t)snprintf(dir, sizeof(dir), "%s", path) >= sizeof(dir))
		return -1;
	if ((slash = strrchr(dir, '/')) == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	return open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int
known_servers_append(const char *path, const char *key, const char *fingerprint, char *why,
    size_t why_cap)
{
	char line[SERVER_KEY_TEXT_MAX + FINGERPRINT_TEXT_LEN + 4];
	char *old = NULL, *text = NULL;
	size_t n = 0, len;
	int dfd, r, k;

	if (path == NULL || key == NULL || fingerprint == NULL)
		return SD_ERR_INVALID_ARG;
	if (fingerprint_check(fingerprint) != 0 || strlen(key) == 0 ||
	    strlen(key) > SERVER_KEY_TEXT_MAX || strpbrk(key, " \t\r\n") != NULL)
		return SD_ERR_INVALID_ARG;
	/* Runs in the same folder take turns (a lock on the folder, as the file itself is
	 * replaced), so that neither loses the other's line. */
	if ((dfd = open_folder(path)) < 0 || flock(dfd, LOCK_EX) != 0) {
		file_why(why, why_cap, "cannot lock the folder of %s: %s", path, strerror(errno));
		r = SD_ERR_IO;
		goto out;
	}
	r = file_read_small(path, KNOWN_SERVERS_MAX, &old, &n);
	if (r == SD_ERR_NOT_FOUND) {
		old = NULL;
		n = 0;
	} else if (r != 0) {
		file_why(why, why_cap, "cannot read %s: %s", path, r == SD_ERR_TOO_LARGE ?
		    "too large" : strerror(errno));
		goto out;
	}
	k = snprintf(line, sizeof(line), "%s%s %s\n", n > 0 && old[n - 1] != '\n' ? "\n" : "",
	    key, fingerprint);
	if (k < 0 || (size_t)k >= sizeof(line)) {
		r = SD_ERR_INTERNAL;
		goto out;
	}
	len = n + (size_t)k;
	if ((text = malloc(len)) == NULL) {
		file_why(why, why_cap, "out of memory");
		r = SD_ERR_ALLOC;
		goto out;
	}
	if (n > 0)
		memcpy(text, old, n);
	memcpy(text + n, line, (size_t)k);
	/* The old content and the new line in a new file, synced, renamed over the old one
	 * and the folder synced: a crash leaves the old file or the new one, never a torn
	 * line that would make every later run refuse the file. */
	r = file_write_atomic(path, text, len, why, why_cap);
out:
	free(text);
	file_free_small(old, n);
	if (dfd >= 0)
		close(dfd);  /* and the lock with it */
	return r;
}
