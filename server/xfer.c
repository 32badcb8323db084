/* xfer.c: routes the version-4 transfer requests to put.c and fetch.c. */
#include "xfer.h"

#include "../protocol/codes.h"
#include "fetch.h"
#include "put.h"

int
xfer_message(struct conn *c, const struct frame_event *ev)
{
	switch (ev->header->code) {
	case REQ4_PUT_OPEN:
		put_open(c, ev);
		return 1;
	case REQ4_PUT_DATA:
		/* A PUT_DATA shorter than its head arrives as a message: malformed. */
		put_reply_error(c, V4_REASON_BAD_REQUEST, 1, "malformed PUT_DATA");
		return 1;
	case REQ4_PUT_FINISH:
		put_finish(c, ev);
		return 1;
	case REQ4_PUT_ABORT:
		put_abort(c, ev);
		return 1;
	case REQ4_LIST:
		fetch_list(c, ev);
		return 1;
	case REQ4_GET:
		fetch_get(c, ev);
		return 1;
	case REQ4_DELETE:
		fetch_delete(c, ev);
		return 1;
	default:
		return 0;
	}
}
