/* log.c: the client's stderr messages with one prefix, so every line says who printed it. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

static enum log_level g_level = LOG_NORMAL;
static void (*g_hook)(void *ctx);
static void *g_hook_ctx;

void
log_set_level(enum log_level level)
{
	g_level = level;
}

enum log_level
log_get_level(void)
{
	return g_level;
}

void
log_set_hook(void (*before_print)(void *ctx), void *ctx)
{
	g_hook = before_print;
	g_hook_ctx = ctx;
}

static void
vlog(const char *tag, const char *fmt, va_list ap)
{
	if (g_hook != NULL)
		g_hook(g_hook_ctx);
	fputs("sealdrop-client: ", stderr);
	if (tag != NULL)
		fputs(tag, stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	fflush(stderr);
}

void
log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(NULL, fmt, ap);
	va_end(ap);
}

void
log_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("Fatal error: ", fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("warning: ", fmt, ap);
	va_end(ap);
}

void
log_note(const char *fmt, ...)
{
	va_list ap;

	if (g_level < LOG_NORMAL)
		return;
	va_start(ap, fmt);
	vlog(NULL, fmt, ap);
	va_end(ap);
}

void
log_verbose(const char *fmt, ...)
{
	va_list ap;

	if (g_level < LOG_VERBOSE)
		return;
	va_start(ap, fmt);
	vlog(NULL, fmt, ap);
	va_end(ap);
}
