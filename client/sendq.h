/* sendq.h: a sending thread for one upload. The caller hands it lists of pieces (the wire
 * bytes of a few packets) and goes on encrypting the next ones while the thread writes them to
 * the socket in the order given, so the encrypting core does not also do the socket's copy and
 * the loopback's TCP work (issue 12). The pieces' memory stays the caller's: it must not be
 * changed until sendq_wait() says the list is sent. At most SENDQ_DEPTH lists wait at once. */
#ifndef SD_CLIENT_SENDQ_H
#define SD_CLIENT_SENDQ_H

#include <stddef.h>
#include <sys/uio.h>

#define SENDQ_DEPTH 4u       /* lists queued or being written at once */
#define SENDQ_IOV_MAX 64u    /* pieces per list */

struct sendq;

/* Starts the thread writing to sock (non-blocking), each wait for room bounded by timeout_ms.
 * Returns 0, or -1 with errno set. */
int sendq_start(struct sendq **q, int sock, int timeout_ms);

/* Queues a copy of the list iov[0..n) (n <= SENDQ_IOV_MAX), waiting for room when SENDQ_DEPTH
 * lists are queued. Returns 0, or -1 with errno set to why an earlier write failed (ETIMEDOUT:
 * the peer took nothing for timeout_ms); nothing is written after a failure. */
int sendq_push(struct sendq *q, const struct iovec *iov, size_t n);

/* Waits until at most max_pending lists are queued or being written: the ones pushed before
 * them are sent, and their memory free again. Returns 0, or -1 with errno as for sendq_push. */
int sendq_wait(struct sendq *q, unsigned max_pending);

/* Waits for every list, stops the thread and frees q. Returns 0 when everything was written,
 * or -1 with errno as for sendq_push. */
int sendq_finish(struct sendq *q);

/* Stops the thread without writing what is still queued (the list being written is finished
 * or fails first), and frees q. NULL is allowed. */
void sendq_abort(struct sendq *q);

#endif
