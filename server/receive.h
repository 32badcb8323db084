/* receive.h: one file being received on a connection, from the packet that starts it to its
 * 1603 or its abort. A receive owns everything of that file: the temporary file
 * (storage.h), the name of the attempt and, for the version-3 kind, the reassembler
 * (upload.h) and whether an 828's content is arriving for it. It exists only while a file is
 * being received (c->recv), so an idle connection holds none of this.
 *
 * Kinds: RECEIVE_V3_PACKETS is the 828 upload of SPEC.md section 5. A second kind (version
 * 4's resumable upload) is added next to it in receive.c: its own start (a new enum value, a
 * create function and a case in receive_free_kind()), sharing the temporary file
 * (open_attempt_file) and the end of every receive (store_and_reply: fsync, rename, files
 * row, 1603 with the CRC). */
#ifndef SD_SERVER_RECEIVE_H
#define SD_SERVER_RECEIVE_H

#include <stdint.h>

#include "../protocol/frame.h"

struct conn;
struct receive;

enum receive_kind {
	RECEIVE_V3_PACKETS = 1,  /* 828 packets through the reassembler */
};

/* The three frame events of an 828 (frame.h): its packet header, slices of its content, its
 * end. They start, feed and finish c->recv, answer 1603 or 1607, and abort the receive on
 * any refusal. */
void receive_packet_start(struct conn *c, const struct frame_event *ev);
void receive_packet_data(struct conn *c, const struct frame_event *ev);
void receive_packet_end(struct conn *c, const struct frame_event *ev);

/* 1 when c's receive, older than --min-rate-grace at now_ms, averaged fewer than
 * --min-upload-rate bytes per second since it began (any packet size counts the same). */
int receive_too_slow(const struct conn *c, int64_t now_ms);

/* 1 while an 828's content is arriving for r. */
int receive_in_packet(const struct receive *r);

/* The one abort: frees c->recv (its temporary file removed, its reassembler wiped) and sets
 * it to NULL; nothing happens when there is none. */
void receive_abort(struct conn *c);

/* --max-client-storage and --max-client-files for a file of size bytes that will be stored
 * at rel_path ("<id hex>/<name>"; a replacement counts its new size minus the old), checked
 * before any byte is written, for both versions' uploads. 0, or SD_ERR_TOO_LARGE (logged),
 * or the database's error. */
int receive_check_client_limits(struct conn *c, const char *rel_path, uint64_t size);

#endif
