/* crash.c: TEST ONLY crash and failure points (see crash.h): SEALDROP_CRASH_AT=<step>[@N],
 * SEALDROP_FAIL_AT=<step>[@N]. */
#include "crash.h"

#include <errno.h>
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

static char fail_buf[CRASH_STEP_MAX];
static const char *fail_step;  /* NULL: no failure armed */
static long fail_nth = 1;
static atomic_long fail_hits;

/* "<step>[@N]" from the variable var into step (size CRASH_STEP_MAX) and *nth. 0, or -1 when
 * unset, empty or malformed (then nothing is armed). */
static int
parse_armed(const char *var, char *step, long *nth)
{
	const char *v = getenv(var), *at;
	uint64_t n;
	size_t len;

	step[0] = '\0';
	if (v == NULL || v[0] == '\0')
		return -1;
	at = strchr(v, '@');
	len = at != NULL ? (size_t)(at - v) : strlen(v);
	if (len == 0 || len >= CRASH_STEP_MAX)
		return -1;
	*nth = 1;
	if (at != NULL) {
		if (config_parse_u64(at + 1, 1, 1000000000, &n) != 0)
			return -1;
		*nth = (long)n;
	}
	memcpy(step, v, len);
	step[len] = '\0';
	return 0;
}

const char *
crash_init(void)
{
	return parse_armed("SEALDROP_CRASH_AT", armed, &armed_nth) == 0 ? armed : NULL;
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

const char *
crash_fail_init(void)
{
	fail_step = parse_armed("SEALDROP_FAIL_AT", fail_buf, &fail_nth) == 0 ? fail_buf : NULL;
	return fail_step;
}

int
crash_fail(const char *step)
{
	if (fail_step == NULL || strcmp(fail_step, step) != 0)
		return 0;
	/* Once: the N-th time only, so that the server's next attempt at the step succeeds. */
	if (atomic_fetch_add(&fail_hits, 1) + 1 != fail_nth)
		return 0;
	errno = EIO;
	return 1;
}
