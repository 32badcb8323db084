/* text.h: the text rules both sides share, written once (as OpenSSH keeps one utf8.c): which
 * client names and file names the server accepts (SPEC.md 5 and 6), and how text from the wire
 * or a database is made safe to show in a log line or on a terminal. No allocation, no I/O. */
#ifndef SD_TEXT_H
#define SD_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "codes.h"

/* The server's temporary files of uploads in progress start with this, so no stored file
 * name may (a client could otherwise overwrite or have removed an upload in progress). */
#define TEXT_RESERVED_PREFIX ".sealdrop-part-"

/* Why a name is refused, for a message that tells the user what to change. */
enum text_fault {
	TEXT_OK = 0,
	TEXT_EMPTY,      /* no bytes; for a file name: nothing after the last '/' or '\\' */
	TEXT_TOO_LONG,   /* more than NAME_MAX_LEN bytes (it must fit its field with the NUL) */
	TEXT_CONTROL,    /* a control character: C0 or DEL; for client names also C1 */
	TEXT_NOT_UTF8,   /* not well-formed UTF-8: a cut sequence, an overlong form, a surrogate,
	                  * a code point past U+10FFFF */
	TEXT_DOT,        /* a file name that is "." or ".." */
	TEXT_RESERVED,   /* a file name that starts with TEXT_RESERVED_PREFIX */
};

/* A short static description of a fault ("has a control character", ...; never NULL). */
const char *text_fault_str(enum text_fault f);

/* Length (1 to 4) of the well-formed UTF-8 sequence at s, which has n >= 1 bytes, or 0 if the
 * bytes there are not one (overlong forms, surrogates and code points past U+10FFFF are not). */
size_t text_utf8_len(const uint8_t *s, size_t n);

/* The client-name rule (SPEC.md 6): 1 to NAME_MAX_LEN bytes of well-formed UTF-8 without
 * control characters (C0, DEL, and the C1 code points U+0080-U+009F). 0, SD_ERR_BAD_STRING
 * (with the reason in *why if why is not NULL), or SD_ERR_INVALID_ARG for a NULL name. */
int text_name_check(const char *name, enum text_fault *why);

/* The file-name rule: the name a file is stored under is the last path component of the name
 * from the wire (after the last '/' or '\\': Windows clients send backslashes). The whole name
 * must be 1 to NAME_MAX_LEN bytes of well-formed UTF-8 without C0 or DEL (the database keeps it
 * as sent); the base must not be empty, ".", "..", or start with TEXT_RESERVED_PREFIX.
 * out (NAME_FIELD_SIZE bytes) gets the base name, or "" on failure. 0, SD_ERR_BAD_STRING (the
 * reason in *why if why is not NULL), or SD_ERR_INVALID_ARG for a NULL argument. */
int text_file_name(const char *wire_name, char out[NAME_FIELD_SIZE], enum text_fault *why);

/* Display sanitisers: text from the wire or a database can never forge a log line or move a
 * terminal's cursor.
 *
 * text_ascii_safe: at most cap - 1 bytes of plain printable ASCII (for log lines): control
 * bytes, '"', '\\' and every byte >= 0x7f become '?'. A cut text ends in "...". NULL in is
 * shown as "". out is always NUL-terminated if cap >= 1; cap < 4 gives "". */
void text_ascii_safe(const char *in, char *out, size_t cap);

/* text_escape: well-formed UTF-8 kept as is (for a terminal), C0 controls, DEL, C1 controls
 * (U+0080 to U+009F, each of their two bytes) and bytes that are not UTF-8 written as "\xNN". Whole units only: the result is cut before the first unit
 * that does not fit. out gets at most cap - 1 bytes and a NUL (cap >= 1); TEXT_ESCAPE_SIZE(n)
 * bytes always hold the whole text of an n-byte input. Returns the bytes written. */
#define TEXT_ESCAPE_SIZE(n) (4 * (n) + 1)
size_t text_escape(const char *in, char *out, size_t cap);

#endif
