/* loop.h: the server's event loops. One listening socket shared by N worker threads (each
 * adds it to its own epoll set with EPOLLEXCLUSIVE); each worker owns its connections, its
 * SQLite connection and a read buffer. A loop only dispatches readiness to its connections
 * (conn.h) and asks them on a periodic tick to check their own deadlines; it knows nothing of
 * what they do. The connection cap is global (an atomic counter): a connection over it is
 * closed at once. */
#ifndef SD_SERVER_LOOP_H
#define SD_SERVER_LOOP_H

#include <stdint.h>

#include "config.h"

struct server;

/* Binds cfg->bind_addr:cfg->port, opens one database connection per worker, starts the
 * workers. cfg is copied. *port gets the real port (for --port 0). The caller owns *out and
 * ends it with server_stop() then server_free(). 0 or a negative sd_err (already logged). */
int server_start(const struct server_config *cfg, struct server **out, uint16_t *port);
/* Asks every worker to stop accepting, to let uploads in flight finish within cfg->grace
 * seconds and then to close everything; waits for the workers. */
void server_stop(struct server *s);
/* Closes the listening socket and the databases and frees s; accepts NULL. */
void server_free(struct server *s);

#endif
