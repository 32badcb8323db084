/* progress.c: a one-line progress bar redrawn in place with '\r', rate-limited so drawing never
 * costs more than a few syscalls a second. */
#include "progress.h"

#include <stdio.h>
#include <string.h>

#include "net.h"

#define BAR_WIDTH 24

void
progress_format_bytes(uint64_t n, char *out, unsigned cap)
{
	static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	unsigned u = 0;

	while (v >= 1024.0 && u < 4) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(out, cap, "%llu B", (unsigned long long)n);
	else
		snprintf(out, cap, "%.1f %s", v, units[u]);
}

void
progress_start(struct progress *p, int enabled, uint64_t total, const char *label)
{
	memset(p, 0, sizeof(*p));
	p->enabled = enabled;
	p->total = total;
	p->start_ms = net_now_ms();
	p->last_ms = 0;
	snprintf(p->label, sizeof(p->label), "%s", label != NULL ? label : "");
}

void
progress_set_stats(struct progress *p, uint64_t resumed, uint64_t plain, uint64_t wire)
{
	if (p == NULL)
		return;
	p->resumed = resumed;
	p->plain = plain;
	p->wire = wire;
}

/* " (resumed at 1.0 MiB) deflated to 2.0 MiB (41.7%)", or "" */
static void
extras(const struct progress *p, char *out, size_t cap)
{
	char res[32];
	int n = 0;

	out[0] = '\0';
	if (p->resumed > 0) {
		progress_format_bytes(p->resumed, res, sizeof(res));
		n = snprintf(out, cap, " (resumed at %s)", res);
	}
	if (n >= 0 && (size_t)n < cap && p->plain > 0 && p->wire < p->plain) {
		progress_format_bytes(p->wire, res, sizeof(res));
		snprintf(out + n, cap - (size_t)n, " deflated to %s (%.1f%%)", res,
		    100.0 * (double)p->wire / (double)p->plain);
	}
}

static void
draw(struct progress *p, long long now)
{
	char done[32], total[32], rate[32], left[32], bar[BAR_WIDTH + 1], extra[96];
	double secs = (double)(now - p->start_ms) / 1000.0;
	uint64_t moved = p->done >= p->resumed ? p->done - p->resumed : 0;
	double bps = secs > 0.0 ? (double)moved / secs : 0.0;
	unsigned pct = p->total > 0 ? (unsigned)(p->done * 100 / p->total) : 100;
	unsigned fill = p->total > 0 ? (unsigned)(p->done * BAR_WIDTH / p->total) : BAR_WIDTH;
	unsigned i;

	if (fill > BAR_WIDTH)
		fill = BAR_WIDTH;
	for (i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[BAR_WIDTH] = '\0';
	progress_format_bytes(p->done, done, sizeof(done));
	progress_format_bytes(p->total, total, sizeof(total));
	progress_format_bytes((uint64_t)bps, rate, sizeof(rate));
	if (bps > 0.0 && p->total >= p->done) {
		unsigned long long s = (unsigned long long)((double)(p->total - p->done) / bps);
		snprintf(left, sizeof(left), "%llu:%02llu left", s / 60, s % 60);
	} else {
		snprintf(left, sizeof(left), "--:-- left");
	}
	extras(p, extra, sizeof(extra));
	/* \033[K clears what a longer previous line left behind. */
	fprintf(stderr, "\r%s [%s] %s / %s %3u%% %s/s %s%s\033[K", p->label, bar, done, total,
	    pct, rate, left, extra);
	fflush(stderr);
	p->drawn = 1;
	p->last_ms = now;
}

void
progress_update(struct progress *p, uint64_t done)
{
	long long now;

	if (p == NULL || !p->enabled)
		return;
	p->done = done;
	now = net_now_ms();
	if (p->drawn && now - p->last_ms < PROGRESS_REDRAW_MS)
		return;
	draw(p, now);
}

void
progress_clear(struct progress *p)
{
	if (p == NULL || !p->enabled || !p->drawn)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	p->drawn = 0;
}

void
progress_finish(struct progress *p)
{
	char total[32], rate[32], extra[96];
	uint64_t moved;
	long long now;
	double secs;

	if (p == NULL || !p->enabled)
		return;
	now = net_now_ms();
	secs = (double)(now - p->start_ms) / 1000.0;
	moved = p->done >= p->resumed ? p->done - p->resumed : 0;
	progress_clear(p);
	progress_format_bytes(moved, total, sizeof(total));
	progress_format_bytes(secs > 0.0 ? (uint64_t)((double)moved / secs) : moved, rate,
	    sizeof(rate));
	extras(p, extra, sizeof(extra));
	fprintf(stderr, "%s %s sent in %.1f s (%s/s)%s\n", p->label, total, secs, rate, extra);
	fflush(stderr);
}
