/* crash.h: TEST ONLY crash points and failure points. With SEALDROP_CRASH_AT=<step> (or
 * <step>@N) in its environment the server calls _exit(137) the first (or N-th) time it reaches
 * that step, as if killed there: the crash-consistency test
 * (tests/integration/test_server_crash.py) kills it between every pair of storage and database
 * steps of an upload and its verdict, and tests/integration/test_server_v4_crash.py at
 * version 4's (put.c, fetch.c's DELETE); test_server_fail_steps.py kills it at settle-before
 * and settle-after, around the roll-forward of a repeated verdict (commit_settle).
 * With SEALDROP_FAIL_AT=<step> (or <step>@N) the step of that name fails instead, once, the
 * first (or N-th) time it is reached, as if its system call or transaction had failed with
 * EIO, and the server goes on (tests/integration/test_server_fail_steps.py). The steps:
 *   rename, dirsync, publish              version 3's verdict (commit.c): the attempt renamed
 *                                         into place, its folder fsynced, the files row
 *                                         published from the intent (db_commit_publish);
 *   put-rename, put-dirsync, put-publish  the same steps of version 4's PUT_FINISH (put.c).
 * Without the variables every call is one comparison of a NULL pointer. */
#ifndef SD_SERVER_CRASH_H
#define SD_SERVER_CRASH_H

/* Reads SEALDROP_CRASH_AT once, before the workers start. Returns the armed step or NULL. */
const char *crash_init(void);
/* 1 when step is the armed one (for a caller that must do something first, e.g. send). */
int crash_armed(const char *step);
/* _exit(137) when step is armed and reached for the N-th time (with SEALDROP_CRASH_STOP set
 * also: raise(SIGSTOP) instead, and go on once continued). Thread-safe. */
void crash_point(const char *step);

/* Reads SEALDROP_FAIL_AT once, before the workers start. Returns the armed step or NULL. */
const char *crash_fail_init(void);
/* 1, with errno = EIO, when step is SEALDROP_FAIL_AT's and reached for the N-th time (the
 * caller then fails that step as if it had failed by itself); 0 otherwise, also on every
 * later time. Thread-safe. */
int crash_fail(const char *step);

#endif
