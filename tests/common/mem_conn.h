/* mem_conn.h: a server connection with no socket, for tests and fuzz targets: an in-memory
 * transport (reads hand out queued input, writes collect output), a database in memory, a
 * scratch storage folder and a clock the caller moves. Header-only (static inline functions), no test
 * framework: failures are return values. The caller owns the memc and frees it with
 * memc_free(), which frees the connection, the database and removes the folder. */
#ifndef SD_TESTS_MEM_CONN_H
#define SD_TESTS_MEM_CONN_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../db/db.h"
#include "../../protocol/buf.h"
#include "../../server/config.h"
#include "../../server/conn.h"

#define MEMC_IN_MAX (1u << 20)
#define MEMC_OUT_MAX (1u << 20)

struct memc_pipe {
	uint8_t *in;
	size_t in_len, in_off, slice;
	int eof;
	uint8_t *out;
	size_t out_len;
	int closed;
};

struct memc {
	struct server_config cfg;
	struct conn_env env;
	struct memc_pipe p;
	struct conn *c;
	char dir[64];
};

static inline ssize_t
memc_read(struct conn_transport *t, uint8_t *buf, size_t cap)
{
	struct memc_pipe *m = t->ctx;
	size_t n = m->in_len - m->in_off;

	if (n == 0)
		return m->eof ? CONN_IO_EOF : CONN_IO_AGAIN;
	if (n > cap)
		n = cap;
	if (m->slice > 0 && n > m->slice)
		n = m->slice;
	memcpy(buf, m->in + m->in_off, n);
	m->in_off += n;
	return (ssize_t)n;
}

static inline ssize_t
memc_write(struct conn_transport *t, const uint8_t *buf, size_t len)
{
	struct memc_pipe *m = t->ctx;

	if (len > MEMC_OUT_MAX - m->out_len)
		return CONN_IO_ERROR;
	memcpy(m->out + m->out_len, buf, len);
	m->out_len += len;
	return (ssize_t)len;
}

static inline unsigned
memc_want(struct conn_transport *t)
{
	(void)t;
	return 0;
}

static inline int
memc_pending(struct conn_transport *t)
{
	(void)t;
	return 0;
}

static inline void
memc_close(struct conn_transport *t)
{
	((struct memc_pipe *)t->ctx)->closed = 1;
}

static inline const char *
memc_nothing(struct conn_transport *t)
{
	(void)t;
	return NULL;  /* no TLS: no peer key, no failure text */
}

static const struct conn_transport_ops memc_ops = {
	memc_read, memc_write, memc_want, memc_pending, memc_close, memc_nothing, memc_nothing,
	NULL,  /* no lingering close: closes at once */
};

/* A fresh connection from peer over a new env (cfg defaults, idle timeout 10 s, clock at
 * 1000 ms, database ":memory:", storage under /tmp). NULL on failure. */
static inline struct memc *
memc_new(const char *peer)
{
	struct memc *g = calloc(1, sizeof(*g));
	struct conn_transport t;

	if (g == NULL)
		return NULL;
	g->p.in = malloc(MEMC_IN_MAX);
	g->p.out = malloc(MEMC_OUT_MAX);
	snprintf(g->dir, sizeof(g->dir), "/tmp/sd-memc-XXXXXX");
	config_defaults(&g->cfg);
	g->cfg.storage_dir = g->dir;
	g->cfg.idle_timeout = 10;
	g->env.cfg = &g->cfg;
	g->env.now_ms = 1000;
	if (g->p.in == NULL || g->p.out == NULL || mkdtemp(g->dir) == NULL ||
	    (g->env.rbuf = malloc(CONN_READ_CHUNK)) == NULL ||
	    db_open(":memory:", DB_READ_WRITE, &g->env.db) != 0)
		goto fail;
	t.ops = &memc_ops;
	t.fd = -1;
	t.ctx = &g->p;
	if ((g->c = conn_new(&g->env, &t, peer)) == NULL)
		goto fail;
	return g;
fail:
	db_close(g->env.db);
	free(g->env.rbuf);
	free(g->p.in);
	free(g->p.out);
	free(g);
	return NULL;
}

static inline int
memc_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static inline void
memc_free(struct memc *g)
{
	if (g == NULL)
		return;
	conn_free(g->c);
	db_close(g->env.db);
	free(g->env.rbuf);
	(void)nftw(g->dir, memc_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(g->p.in);
	free(g->p.out);
	free(g);
}

/* Queues n bytes of input (0, or -1 when they do not fit) and lets the connection read. */
static inline int
memc_feed(struct memc *g, const uint8_t *data, size_t n)
{
	if (n > MEMC_IN_MAX - g->p.in_len)
		return -1;
	memcpy(g->p.in + g->p.in_len, data, n);
	g->p.in_len += n;
	while (!g->c->closing && g->p.in_off < g->p.in_len) {
		size_t before = g->p.in_off;

		conn_on_readable(g->c);
		if (g->p.in_off == before)
			break;  /* backpressure: output must be read first */
	}
	return 0;
}

/* Queues b's bytes (b is freed). */
static inline int
memc_feed_buf(struct memc *g, struct buf *b)
{
	int r = memc_feed(g, buf_ptr(b), buf_len(b));

	buf_free(b);
	return r;
}

#endif
