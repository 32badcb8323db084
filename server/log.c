/* log.c: one line per event on stderr, with a UTC time stamp; lines are built in memory and
 * written with a single write(2) so that worker threads never mix their output. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../protocol/hex.h"
#include "../protocol/text.h"

/* A log line never needs more; longer outcomes are cut. */
#define LOG_LINE_MAX 1024

void
log_sanitize(const char *in, char *out, size_t cap)
{
	text_ascii_safe(in, out, cap < LOG_NAME_MAX + 1 ? cap : LOG_NAME_MAX + 1);
}

void
log_sanitize_path(const char *in, char *out, size_t cap)
{
	text_ascii_safe(in, out, cap < LOG_PATH_MAX + 1 ? cap : LOG_PATH_MAX + 1);
}

static size_t
put_time(char *line, size_t cap)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, cap, "%Y-%m-%dT%H:%M:%SZ ", &tm);
	return n;
}

static void
emit(char *line, size_t len)
{
	ssize_t w;
	size_t done = 0;

	if (len >= LOG_LINE_MAX)
		len = LOG_LINE_MAX - 1;
	line[len++] = '\n';
	while (done < len) {
		w = write(STDERR_FILENO, line + done, len - done);
		if (w <= 0)
			return;  /* stderr gone: logging must never stop the server */
		done += (size_t)w;
	}
}

static size_t
clamp(int n, size_t used)
{
	if (n < 0)
		return used;
	if (used + (size_t)n >= LOG_LINE_MAX)
		return LOG_LINE_MAX - 1;
	return used + (size_t)n;
}

void
log_event(int worker, const char *peer, const uint8_t *id, const char *name,
    const char *event, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_eventv(worker, peer, id, name, event, fmt, ap);
	va_end(ap);
}

void
log_eventv(int worker, const char *peer, const uint8_t *id, const char *name,
    const char *event, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX + 1];
	char who[LOG_NAME_MAX + 8];
	char idhex[9] = "-";
	size_t n;

	n = put_time(line, sizeof(line));
	if (id != NULL)
		hex_encode(id, 4, idhex);
	if (name != NULL)
		log_sanitize(name, who, sizeof(who));
	if (worker >= 0)
		n = clamp(snprintf(line + n, LOG_LINE_MAX - n, "w%d ", worker), n);
	else
		n = clamp(snprintf(line + n, LOG_LINE_MAX - n, "main "), n);
	n = clamp(snprintf(line + n, LOG_LINE_MAX - n, "%s %s %s%s%s %s ",
	    peer != NULL ? peer : "-", idhex, name != NULL ? "\"" : "",
	    name != NULL ? who : "-", name != NULL ? "\"" : "", event), n);
	n = clamp(vsnprintf(line + n, LOG_LINE_MAX - n, fmt, ap), n);
	emit(line, n);
}

void
log_server(const char *fmt, ...)
{
	char line[LOG_LINE_MAX + 1];
	size_t n;
	va_list ap;

	n = put_time(line, sizeof(line));
	va_start(ap, fmt);
	n = clamp(vsnprintf(line + n, LOG_LINE_MAX - n, fmt, ap), n);
	va_end(ap);
	emit(line, n);
}
