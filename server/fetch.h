/* fetch.h: version 4's LIST, GET and DELETE (SPEC-v4.md 3 "Listing, downloads, deletion"),
 * confined to the connection's account. A download (c->get) is pumped into the connection's
 * output as the transport takes it: file blocks are read straight into the output buffer, at
 * most CONN_OUT_HIGH bytes wait at any time, so a huge file is never queued whole. A LISTING
 * too big for the output buffer is streamed the same way (c->get too), its entries built in
 * one pass over the rows (one snapshot: the header's count and size are the entries') and
 * kept beyond 64 KiB in an unlinked temporary file of the account's folder. While either
 * lasts the connection reads no further requests and parses none it has read already
 * (conn.c holds them until it ends, GET_END or the last entry queued: replies stay in
 * order). */
#ifndef SD_SERVER_FETCH_H
#define SD_SERVER_FETCH_H

#include "../protocol/frame.h"

struct conn;

/* The bytes of file content per GET_DATA (at most the max_chunk of PUT_STATE). */
#define FETCH_BLOCK (128u << 10)

/* 860, 861, 862 as complete messages. */
void fetch_list(struct conn *c, const struct frame_event *ev);
void fetch_get(struct conn *c, const struct frame_event *ev);
void fetch_delete(struct conn *c, const struct frame_event *ev);

/* Queues more of c's download while the output has room (called after output drained);
 * GET_END ends it. Nothing happens when no download runs. */
void fetch_pump(struct conn *c);
/* Ends c's download, if any (the connection closes). */
void fetch_end(struct conn *c);

#endif
