/* crash.c: TEST ONLY crash points (see crash.h): SEALDROP_CRASH_AT=<step>[@N]. */
#include "crash.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define CRASH_STEP_MAX 64u

static char armed[CRASH_STEP_MAX];
static long armed_nth = 1;
static atomic_long hits;

const char *
crash_init(void)
{
	const char *v = getenv("SEALDROP_CRASH_AT"), *at;
	uint64_t n;
	size_t len;

	armed[0] = '\0';
	if (v == NULL || v[0] == '\0')
		return NULL;
	at = strchr(v, '@');
	len = at != NULL ? (size_t)(at - v) : strlen(v);
	if (len == 0 || len >= sizeof(armed))
		return NULL;
	armed_nth = 1;
	if (at != NULL) {
		if (config_parse_u64(at + 1, 1, 1000000000, &n) != 0)
			return NULL;
		armed_nth = (long)n;
	}
	memcpy(armed, v, len);
	armed[len] = '\0';
	return armed;
}

int
crash_armed(const char *step)
{
	return armed[0] != '\0' && strcmp(armed, step) == 0;
}

void
crash_point(const char *step)
{
	if (!crash_armed(step))
		return;
	if (atomic_fetch_add(&hits, 1) + 1 < armed_nth)
		return;
	/* SEALDROP_CRASH_STOP=1: stopped there instead (SIGSTOP), alive with its locks, until
	 * the test sends SIGCONT: a server caught in the middle of a step. */
	if (getenv("SEALDROP_CRASH_STOP") != NULL) {
		(void)raise(SIGSTOP);
		return;
	}
	_exit(137);
}
