/* transfer.h: transfer.info (SPEC.md 8): the server's host:port, the client name and the file
 * to send, one per line. The reader is tolerant (CRLF, trailing empty lines, spaces around
 * host:port); names the server would refuse are refused here, with the reason (protocol/text.h).
 * Functions return 0 or a negative sd_err and, on failure, put a one-line reason into why. */
#ifndef SD_CLIENT_TRANSFER_H
#define SD_CLIENT_TRANSFER_H

#include <stddef.h>

#include "../protocol/codes.h"

#define TRANSFER_INFO_MAX 8192u   /* transfer.info larger than this is not a transfer.info */
#define TRANSFER_HOST_MAX 255u    /* a DNS name's limit */
#define TRANSFER_PORT_MAX 5u      /* "65535" */
#define TRANSFER_PATH_MAX 4095u

/* Which transfer.info lines are overridden by options (their content is then not checked and
 * they may be missing). */
enum {
	TRANSFER_SKIP_SERVER = 1u << 0,
	TRANSFER_SKIP_NAME = 1u << 1,
	TRANSFER_SKIP_FILE = 1u << 2,
};

struct transfer_info {
	char host[TRANSFER_HOST_MAX + 1];  /* without the brackets of "[::1]:port" */
	char port[TRANSFER_PORT_MAX + 1];  /* decimal 1-65535 */
	char name[CLIENT_NAME_MAX_LEN + 1];
	char file_path[TRANSFER_PATH_MAX + 1];
};

/* Splits "host:port" or "[v6addr]:port" (port 1-65535) into ti->host and ti->port. */
int transfer_server_parse(const char *text, struct transfer_info *ti, char *why, size_t why_cap);
/* A client name: at most CLIENT_NAME_MAX_LEN bytes (what clients send), and what the server
 * accepts (text_name_check() of protocol/text.h: UTF-8, no control characters). */
int transfer_name_check(const char *name, char *why, size_t why_cap);
/* The file to send: its base name (after the last '/') is what the server accepts as a file
 * name (text_file_name() of protocol/text.h). Only the name is checked, not the file. */
int transfer_file_check(const char *path, char *why, size_t why_cap);
/* Parses transfer.info text (n bytes, need not be NUL-terminated). Lines end in LF or CRLF;
 * a trailing newline and empty trailing lines are fine; a fourth non-empty line is not.
 * Lines whose TRANSFER_SKIP_* bit is set in skip are not checked. *ti is cleared first. */
int transfer_info_parse(const char *text, size_t n, unsigned skip, struct transfer_info *ti,
    char *why, size_t why_cap);
/* Reads and parses the file at path (SD_ERR_NOT_FOUND if it does not exist). */
int transfer_info_load(const char *path, unsigned skip, struct transfer_info *ti, char *why,
    size_t why_cap);

#endif
