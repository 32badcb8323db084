/* progress.h: the upload progress bar on stderr (bytes sent of total, percent, rate, time left,
 * resumed bytes and compression ratio),
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
	uint64_t resumed;     /* bytes the server held already (not sent in this run) */
	uint64_t plain;       /* file bytes sent in this run ... */
	uint64_t wire;        /* ... and what they took on the wire (compression) */
};

void progress_start(struct progress *p, int enabled, uint64_t total, const char *label);
/* done = bytes sent so far. */
void progress_update(struct progress *p, uint64_t done);
/* Version 4: bytes resumed (shown, and not counted in the rate), and the plaintext and wire
 * bytes of what was sent (the compression ratio is shown when wire < plain). */
void progress_set_stats(struct progress *p, uint64_t resumed, uint64_t plain, uint64_t wire);
/* Clears the bar's line (before another message is printed). */
void progress_clear(struct progress *p);
/* Draws the final line: total and average rate (only if enabled). */
void progress_finish(struct progress *p);
/* Formats n bytes as "12.3 MiB" into out. */
void progress_format_bytes(uint64_t n, char *out, unsigned cap);

#endif
