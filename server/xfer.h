/* xfer.h: the plug-in point of version 4's transfers (put.h, fetch.h) for the connection:
 * which request codes they answer, and the switch that routes them. The version-4 request
 * dispatch (accounts, 840-843) calls xfer_message() for everything else. */
#ifndef SD_SERVER_XFER_H
#define SD_SERVER_XFER_H

#include "../protocol/frame.h"

struct conn;

/* A complete version-4 message: 850, 852, 853, 860, 861 and 862 are answered here (1);
 * any other code is left to the caller (0). */
int xfer_message(struct conn *c, const struct frame_event *ev);

#endif
