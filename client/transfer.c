/* transfer.c: reading transfer.info (server, client name, file; SPEC.md 8) tolerantly, and
 * refusing up front the names the server would refuse (protocol/text.h). */
#include "transfer.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../protocol/err.h"
#include "../protocol/text.h"
#include "files.h"

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
			file_why(why, why_cap, "server '%.80s' is not [address]:port", text);
			return SD_ERR_BAD_FIELD;
		}
		host = text + 1;
		host_len = (size_t)(close - host);
		port = close + 2;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL) {
			file_why(why, why_cap, "server '%.80s' is not host:port", text);
			return SD_ERR_BAD_FIELD;
		}
		host = text;
		host_len = (size_t)(colon - text);
		port = colon + 1;
		if (memchr(host, ':', host_len) != NULL) {
			file_why(why, why_cap, "server '%.80s': write an IPv6 address as [address]:port",
			    text);
			return SD_ERR_BAD_FIELD;
		}
	}
	if (host_len == 0 || host_len > TRANSFER_HOST_MAX) {
		file_why(why, why_cap, "server '%.80s': the host is empty or too long", text);
		return SD_ERR_BAD_FIELD;
	}
	for (i = 0; i < host_len; i++) {
		if ((unsigned char)host[i] <= ' ' || host[i] == 0x7f) {
			file_why(why, why_cap, "server '%.80s': the host has a space or control character",
			    text);
			return SD_ERR_BAD_FIELD;
		}
	}
	port_len = strlen(port);
	if (port_len == 0 || port_len > TRANSFER_PORT_MAX) {
		file_why(why, why_cap, "server '%.80s': bad port '%.20s' (1-65535)", text, port);
		return SD_ERR_BAD_FIELD;
	}
	for (i = 0; i < port_len; i++) {
		if (port[i] < '0' || port[i] > '9') {
			file_why(why, why_cap, "server '%.80s': bad port '%.20s' (1-65535)", text, port);
			return SD_ERR_BAD_FIELD;
		}
		value = value * 10 + (unsigned long)(port[i] - '0');
	}
	if (value < 1 || value > 65535) {
		file_why(why, why_cap, "server '%.80s': bad port '%.20s' (1-65535)", text, port);
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
	enum text_fault f;
	size_t n;

	if (name == NULL)
		return SD_ERR_INVALID_ARG;
	n = strlen(name);
	if (n > CLIENT_NAME_MAX_LEN) {
		file_why(why, why_cap, "the client name has %zu characters; at most %u are allowed",
		    n, CLIENT_NAME_MAX_LEN);
		return SD_ERR_BAD_STRING;
	}
	/* Exactly the server's rule (SPEC.md 6), so a name it would refuse is never sent. */
	if (text_name_check(name, &f) != 0) {
		file_why(why, why_cap, "the client name %s", text_fault_str(f));
		return SD_ERR_BAD_STRING;
	}
	return 0;
}

int
transfer_file_check(const char *path, char *why, size_t why_cap)
{
	char base[NAME_FIELD_SIZE], safe[NAME_FIELD_SIZE], shown[TEXT_ESCAPE_SIZE(64)];
	const char *b;
	size_t len;
	enum text_fault f;

	if (path == NULL)
		return SD_ERR_INVALID_ARG;
	/* The base name the client sends: what follows the last '/', ignoring trailing slashes. */
	len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		len--;
	b = path + len;
	while (b > path && b[-1] != '/')
		b--;
	len = (size_t)(path + len - b);
	if (len > NAME_MAX_LEN) {
		file_why(why, why_cap, "the file name of %.80s is longer than %u bytes", path,
		    NAME_MAX_LEN);
		return SD_ERR_BAD_STRING;
	}
	memcpy(base, b, len);
	base[len] = '\0';
	/* The server's file-name rule: what it would refuse with 1607 is refused here. */
	if (text_file_name(base, safe, &f) != 0) {
		text_escape(base, shown, sizeof(shown));
		file_why(why, why_cap, "the file name '%s' %s; the server refuses it", shown,
		    text_fault_str(f));
		return SD_ERR_BAD_STRING;
	}
	return 0;
}

int
transfer_info_parse(const char *text, size_t n, unsigned skip, struct transfer_info *ti,
    char *why, size_t why_cap)
{
	struct file_lines l;
	const char *line[3] = { NULL, NULL, NULL };
	size_t len[3] = { 0, 0, 0 };
	const char *s;
	size_t sn, count = 0;
	char tmp[TRANSFER_PATH_MAX + 1];
	int r;

	if (text == NULL || ti == NULL)
		return SD_ERR_INVALID_ARG;
	memset(ti, 0, sizeof(*ti));
	if (memchr(text, '\0', n) != NULL) {
		file_why(why, why_cap, "it holds a NUL byte (not a text file)");
		return SD_ERR_BAD_FIELD;
	}
	l.p = text;
	l.end = text + n;
	while (file_next_line(&l, &s, &sn)) {
		if (count < 3) {
			line[count] = s;
			len[count] = sn;
			count++;
		} else if (!file_is_blank(s, sn)) {
			file_why(why, why_cap, "it has more than three lines (server, name, file)");
			return SD_ERR_BAD_FIELD;
		}
	}

	if (!(skip & TRANSFER_SKIP_SERVER)) {
		s = line[0];
		sn = len[0];
		if (s != NULL)
			file_trim(&s, &sn);
		if (s == NULL || sn == 0) {
			file_why(why, why_cap, "line 1 (host:port) is missing");
			return SD_ERR_BAD_FIELD;
		}
		if (sn >= sizeof(tmp)) {
			file_why(why, why_cap, "line 1 (host:port) is too long");
			return SD_ERR_BAD_FIELD;
		}
		memcpy(tmp, s, sn);
		tmp[sn] = '\0';
		if ((r = transfer_server_parse(tmp, ti, why, why_cap)) != 0)
			return r;
	}
	if (!(skip & TRANSFER_SKIP_NAME)) {
		if (line[1] == NULL || len[1] == 0) {
			file_why(why, why_cap, "line 2 (the client name) is missing");
			return SD_ERR_BAD_FIELD;
		}
		if (len[1] > CLIENT_NAME_MAX_LEN) {
			file_why(why, why_cap, "line 2: the client name has %zu characters; at most %u "
			    "are allowed", len[1], CLIENT_NAME_MAX_LEN);
			return SD_ERR_BAD_STRING;
		}
		memcpy(ti->name, line[1], len[1]);
		ti->name[len[1]] = '\0';
		if ((r = transfer_name_check(ti->name, why, why_cap)) != 0)
			return r;
	}
	if (!(skip & TRANSFER_SKIP_FILE)) {
		if (line[2] == NULL || len[2] == 0) {
			file_why(why, why_cap, "line 3 (the file to send) is missing");
			return SD_ERR_BAD_FIELD;
		}
		if (len[2] > TRANSFER_PATH_MAX) {
			file_why(why, why_cap, "line 3: the file path is too long");
			return SD_ERR_BAD_FIELD;
		}
		memcpy(ti->file_path, line[2], len[2]);
		ti->file_path[len[2]] = '\0';
	}
	return 0;
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
			file_why(why, why_cap, "%s does not exist", path);
		else if (r == SD_ERR_TOO_LARGE)
			file_why(why, why_cap, "%s is larger than %u bytes", path, TRANSFER_INFO_MAX);
		else
			file_why(why, why_cap, "cannot read %s: %s", path, strerror(errno));
		return r;
	}
	r = transfer_info_parse(text, n, skip, ti, why, why_cap);
	file_free_small(text, n);
	return r;
}
