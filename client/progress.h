/* progress.h: the upload progress bar on stderr (bytes sent of total, percent, rate, time left),
 * redrawn at most PROGRESS_REDRAW_MS apart, then one summary line. Disabled: every call does
 * nothing (stderr not a terminal, or --quiet). */
#ifndef SD_CLIENT_PROGRESS_H
#define SD_CLIENT_PROGRESS_H

#include <stdint.h>

#define PROGRESS_REDRAW_MS 100

struct progress {
	int enabled;
	int drawn;            /* 1: a bar is on the current line */
	uint64_t total;
	uint64_t done;
	long long start_ms;
	long long last_ms;
	char label[64];
};

void progress_start(struct progress *p, int enabled, uint64_t total, const char *label);
/* done = bytes sent so far. */
void progress_update(struct progress *p, uint64_t done);
/* Clears the bar's line (before another message is printed). */
void progress_clear(struct progress *p);
/* Draws the final line: total and average rate (only if enabled). */
void progress_finish(struct progress *p);
/* Formats n bytes as "12.3 MiB" into out. */
void progress_format_bytes(uint64_t n, char *out, unsigned cap);

#endif
