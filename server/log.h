/* log.h: the server's log, one line per event on stderr:
 *   <UTC time> w<worker> <peer> <short id> "<name>" <event> <outcome>
 * Lines are built whole and written with one write(2), so worker threads never interleave.
 * Everything that came from the wire is sanitised before it is printed. */
#ifndef SD_SERVER_LOG_H
#define SD_SERVER_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "../protocol/codes.h"

/* Longest name text a line shows; longer names are cut and end in "...". */
#define LOG_NAME_MAX 64u

/* An event of a connection. worker < 0 means the main thread; peer, id and name may be NULL
 * (shown as "-"). fmt describes the outcome. */
void log_event(int worker, const char *peer, const uint8_t *id, const char *name,
    const char *event, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* The same with a va_list (for wrappers in other modules). */
void log_eventv(int worker, const char *peer, const uint8_t *id, const char *name,
    const char *event, const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));

/* A server-wide line (start-up, shutdown, warnings). */
void log_server(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Copies at most cap - 1 bytes of printable text from in to out: control bytes, quotes,
 * backslashes and bytes >= 0x7f become escapes or '?', so a name from the wire can never
 * forge a log line. Cut names end in "...". out is always NUL-terminated (cap >= 4). */
void log_sanitize(const char *in, char *out, size_t cap);

/* Longest stored path a line shows ("<client id hex>/<file name>"). */
#define LOG_PATH_MAX 320u
/* The same for a stored path: the file name in it came from the wire (C1 controls such as
 * U+009B are valid UTF-8 and allowed in names, but never reach a log). Cut at LOG_PATH_MAX. */
void log_sanitize_path(const char *in, char *out, size_t cap);

#endif
