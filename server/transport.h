/* transport.h: the transport of a server that speaks both versions on one port (SPEC-v4.md
 * 1). It reads the first bytes of a connection (one read into the connection's buffer, then
 * up to TLS_SNIFF_MAX if that read was shorter) and tells a TLS ClientHello from version 3 by
 * their shape (tls_sniff); version 3 continues as the plain
 * socket transport with those bytes delivered first, unchanged; TLS continues as a
 * non-blocking GnuTLS session (tls.h) that is given those bytes before the socket's. Until
 * the handshake is done the connection reads no application byte; then the transport's
 * peer_key() names the client certificate's fingerprint and the connection turns to
 * version 4 (conn.c). Every wait goes through the epoll loop: a handshake step, a read or a
 * write that would block says which way it waits (want()), and decrypted bytes GnuTLS holds
 * are reported by pending(). No timer of its own: the connection's idle and partial-message
 * deadlines close a slow or stalled handshake like any other slow peer. */
#ifndef SD_SERVER_TRANSPORT_H
#define SD_SERVER_TRANSPORT_H

#include "conn.h"

struct tls_creds;

/* Makes t the detecting transport over the accepted non-blocking socket fd (taken over:
 * t's close() closes it). creds (the server's identity, shared by every connection and
 * worker) must outlive t. 0, or SD_ERR_ALLOC (fd is then left open for the caller). */
int transport_detect(struct conn_transport *t, int fd, const struct tls_creds *creds);

#endif
