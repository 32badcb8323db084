/* log.h: the client's messages on stderr, every line prefixed "sealdrop-client: ".
 * One process-wide verbosity; --quiet hides notes, --verbose adds the request/response log. */
#ifndef SD_CLIENT_LOG_H
#define SD_CLIENT_LOG_H

enum log_level {
	LOG_QUIET = 0,    /* errors and warnings only */
	LOG_NORMAL = 1,   /* plus notes (registered, confirmed, ...) */
	LOG_VERBOSE = 2,  /* plus each request and response */
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Always printed. */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "Fatal error: ..." always printed: the last line before a non-zero exit. */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "warning: ..." always printed. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Printed unless quiet. */
void log_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Printed only with --verbose. */
void log_verbose(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Called before a line is printed, so a progress bar can clear its line first. */
void log_set_hook(void (*before_print)(void *ctx), void *ctx);

#endif
