/* net.h: blocking TCP for the client with a deadline on every step (connect, each send, each
 * wait for bytes), so a dead or stalled server never hangs it. Functions return 0 or a
 * negative sd_err; on SD_ERR_IO errno says why (ETIMEDOUT for a timeout, EPIPE/ECONNRESET for a
 * dropped connection). */
#ifndef SD_CLIENT_NET_H
#define SD_CLIENT_NET_H

#include <stddef.h>
#include <sys/uio.h>

/* Resolves host (name, IPv4 or IPv6) and port with getaddrinfo and tries each address until one
 * connects within timeout_ms. *fd is the connected socket (the caller closes it). why gets a
 * one-line reason on failure. */
int net_connect(const char *host, const char *port, int timeout_ms, int *fd, char *why,
    size_t why_cap);
/* Sends the two pieces back to back (b may be empty), waiting at most timeout_ms whenever the
 * socket cannot take more bytes. */
int net_send2(int fd, const void *a, size_t a_len, const void *b, size_t b_len, int timeout_ms);
/* Sends the n_iov pieces back to back (empty ones allowed) in as few sendmsg() calls as the
 * socket allows, with the same waiting rule. The pieces are borrowed; iov itself is advanced
 * over what was sent (its contents are undefined afterwards). */
int net_sendv(int fd, struct iovec *iov, size_t n_iov, int timeout_ms);
/* Waits at most timeout_ms for bytes and reads up to cap of them: *got > 0, or *got == 0 when
 * the peer closed the connection. */
int net_recv(int fd, void *buf, size_t cap, size_t *got, int timeout_ms);
/* Waits at most timeout_ms until every byte written to fd has been acknowledged by the peer
 * (the kernel's send queue is empty, ioctl SIOCOUTQ), so the next write travels alone. */
int net_wait_sent(int fd, int timeout_ms);
/* 1 if bytes (or a close) arrive within timeout_ms (0: only what is waiting now). */
int net_wait_readable(int fd, int timeout_ms);

#endif
