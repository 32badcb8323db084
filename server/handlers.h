/* handlers.h: the request handlers of the server (SPEC.md sections 3-6): one function per
 * frame event, each checking that the request is allowed in the connection's state, doing its
 * work on the worker's database and queuing the reply in the connection's output buffer.
 * A handler never frees its connection; on a fatal problem it marks it closing. */
#ifndef SD_SERVER_HANDLERS_H
#define SD_SERVER_HANDLERS_H

#include <stddef.h>

#include "../protocol/codes.h"
#include "../protocol/frame.h"

struct conn;

/* A complete small message (825, 826, 827, 900, 901, 902, unknown codes, a short 828). */
void handle_message(struct conn *c, const struct frame_event *ev);
/* An 828: its packet header, then content slices, then its end. */
void handle_stream_start(struct conn *c, const struct frame_event *ev);
void handle_stream_data(struct conn *c, const struct frame_event *ev);
void handle_stream_end(struct conn *c, const struct frame_event *ev);

/* 1 when name (NUL-terminated, as decoded) is a valid client name: 1 to NAME_MAX_LEN bytes of
 * UTF-8 (shortest forms, no surrogates) without control characters (C0, DEL, C1). */
int handlers_name_valid(const char *name);

#endif
