/* crash.h: TEST ONLY crash points. With SEALDROP_CRASH_AT=<step> (or <step>@N) in its
 * environment the server calls _exit(137) the first (or N-th) time it reaches that step, as if
 * killed there: the crash-consistency test (tests/integration/test_server_crash.py) kills it
 * between every pair of storage and database steps of an upload and its verdict, and
 * tests/integration/test_server_v4_crash.py at version 4's (put.c, fetch.c's DELETE).
 * Without the variable every call is one comparison of a NULL pointer. */
#ifndef SD_SERVER_CRASH_H
#define SD_SERVER_CRASH_H

/* Reads SEALDROP_CRASH_AT once, before the workers start. Returns the armed step or NULL. */
const char *crash_init(void);
/* 1 when step is the armed one (for a caller that must do something first, e.g. send). */
int crash_armed(const char *step);
/* _exit(137) when step is armed and reached for the N-th time (with SEALDROP_CRASH_STOP set
 * also: raise(SIGSTOP) instead, and go on once continued). Thread-safe. */
void crash_point(const char *step);

#endif
