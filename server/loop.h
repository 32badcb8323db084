/* loop.h: the server's event loops. One listening socket shared by N worker threads (each
 * adds it to its own epoll set with EPOLLEXCLUSIVE); each worker owns its connections, its
 * SQLite connection and a read buffer, and checks timeouts on a periodic tick. The connection
 * cap is global (an atomic counter): a connection over it is closed at once. */
#ifndef SD_SERVER_LOOP_H
#define SD_SERVER_LOOP_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct server;
struct conn;
struct db;

/* Bytes read from a socket per recv(); the read buffer is shared by a worker's connections
 * because every byte read is handled before the next connection is served. */
#define LOOP_READ_CHUNK 65536u
/* Milliseconds between timeout checks. */
#define LOOP_TICK_MS 250

/* One worker thread. Connections and handlers use the fields; only loop.c changes them. */
struct worker {
	struct server *srv;
	const struct server_config *cfg;
	int index;
	int epfd;
	int wake_fd;              /* eventfd: the main thread asks for a graceful stop */
	int listening;            /* 1 while the listening socket is in epfd */
	struct db *db;            /* this thread's SQLite connection */
	struct conn *conns;       /* all connections of this worker (list) */
	size_t nconns;
	size_t nclosing;          /* connections marked closing, reaped after each batch */
	uint8_t *rbuf;            /* LOOP_READ_CHUNK bytes */
	int64_t now_ms;           /* monotonic time of the current loop turn */
	int draining;             /* a stop was asked: no accepts, close idle connections */
	int64_t drain_deadline_ms;
	pthread_t thread;
	int started;
};

/* Binds cfg->bind_addr:cfg->port, opens one database connection per worker, starts the
 * workers. cfg is copied. *port gets the real port (for --port 0). The caller owns *out and
 * ends it with server_stop() then server_free(). 0 or a negative sd_err (already logged). */
int server_start(const struct server_config *cfg, struct server **out, uint16_t *port);
/* Asks every worker to stop accepting, to let uploads in flight finish within cfg->grace
 * seconds and then to close everything; waits for the workers. */
void server_stop(struct server *s);
/* Closes the listening socket and the databases and frees s; accepts NULL. */
void server_free(struct server *s);

/* For conn.c: marks c closing (idempotent); the loop frees it after the current batch. */
void loop_mark_closing(struct conn *c);
/* For conn.c: makes epoll watch what c needs now (reading unless its output is backed up,
 * writing while output is pending). */
void loop_update_interest(struct conn *c);

#endif
