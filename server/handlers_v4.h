/* handlers_v4.h: what the server does for version-4 requests inside TLS (SPEC-v4.md 2-3):
 * the accounts (840 REGISTER, 841 LINK, 842 PROVE, 843 WHOAMI) here, and one dispatch point
 * for the transfers (850-853, 860-862). Until WELCOME a connection may send only the four
 * account requests (every other version-4 request gets ERROR 3); after it, the connection's
 * identity (c->known, c->id, c->name) is the account's, as after 1602/1605 in version 3.
 * A version-3 code or another version byte inside TLS gets ERROR 1 and the connection
 * closes; a version-4 code outside TLS gets version 3's 1607 and the connection closes.
 * Replies are queued in the connection's output; a handler never frees its connection. */
#ifndef SD_SERVER_HANDLERS_V4_H
#define SD_SERVER_HANDLERS_V4_H

#include <stdint.h>

#include "../protocol/frame.h"

struct conn;

/* Log lines show a fingerprint by its first characters: "SHA256:" and 10 of base64. */
#define HANDLERS_V4_FP_SHORT 17

/* The TLS handshake of c is done and the client presented the certificate of fingerprint
 * fp: c is now a version-4 connection (conn.c has switched its parser). */
void handlers_v4_start(struct conn *c, const char *fp);

/* A complete small message on a version-4 connection. */
void handlers_v4_message(struct conn *c, const struct frame_event *ev);
/* The streamed 851 PUT_DATA's events (its 13-byte head, slices of data, its end). */
void handlers_v4_stream(struct conn *c, const struct frame_event *ev);
/* A version-4 request code on a version-3 (plain) connection of a server that speaks
 * version 4: 1607, then the connection closes. */
void handlers_v4_outside_tls(struct conn *c, const struct frame_event *ev);

/* Replies for the version-4 handlers (also the transfers'): ERROR (1619) with reason and a
 * short message (may be NULL). handlers_v4_error keeps the connection open (but closes one
 * that sent too many refused requests before WELCOME); handlers_v4_fail closes it once the
 * ERROR is sent. */
void handlers_v4_error(struct conn *c, uint16_t reason, const char *message);
void handlers_v4_fail(struct conn *c, uint16_t reason, const char *message);

#endif
