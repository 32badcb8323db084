/* upload.h: reassembles one uploaded file from its 828 packets, whatever the sender's layout
 * (SPEC.md section 5, variants 1-5), detected from the packets themselves. Streams: each slice
 * of ciphertext is decrypted, fed to the CRC and handed to a sink as it arrives; memory does
 * not grow with the file. No sockets, no files, no database: the server passes a sink that
 * writes its temporary file, tests pass one that collects bytes. */
#ifndef SD_UPLOAD_H
#define SD_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "../protocol/codes.h"
#include "../protocol/msg.h"

enum upload_layout {
	UPLOAD_LAYOUT_UNKNOWN = 0,
	UPLOAD_LAYOUT_STREAM,      /* one CBC stream split into packets (variants 1-4) */
	UPLOAD_LAYOUT_PER_PACKET,  /* each packet its own CBC message, u16 fields total-first (5) */
};

/* Where plaintext goes. write() returns 0 or a negative sd_err (which aborts the upload). */
struct upload_sink {
	int (*write)(void *ctx, const uint8_t *data, size_t n);
	void *ctx;
};

struct upload_result {
	char file_name[NAME_FIELD_SIZE];  /* as sent */
	uint64_t plain_size;              /* bytes written to the sink (= orig_file_size) */
	uint64_t ciphertext_size;         /* total ciphertext received (1603 content_size) */
	uint32_t cksum;                   /* POSIX cksum of the plaintext */
	enum upload_layout layout;
	int first_packet_number;          /* 0 or 1 */
	uint32_t packets;
};

struct upload;

/* A reassembler for uploads decrypted with key (its cipher holds it; wiped on free; a new
 * key means a new reassembler), refusing files whose
 * orig_file_size passes max_file_size. Free with upload_free() (accepts NULL). */
int upload_new(struct upload **out, const uint8_t key[AES_KEY_SIZE], uint64_t max_file_size);
void upload_free(struct upload *u);

/* A packet's header, with content_len = its content bytes (payload_size - 267). The first
 * packet fixes the layout, numbering, name and sizes; a packet that does not continue the
 * upload in progress is an error, except a first packet, which starts a new attempt (the
 * resend after 901) and discards the old one. Errors (SD_ERR_BAD_FIELD, SD_ERR_TOO_LARGE,
 * SD_ERR_BAD_STRING) discard the upload in progress. */
int upload_packet_begin(struct upload *u, const struct msg_file_packet *p, uint32_t content_len);
/* 1 when the packet just begun opened a new upload (the first packet of a file, or a new
 * attempt that replaced the upload in progress): the caller starts a fresh temporary file. */
int upload_packet_is_first(const struct upload *u);
/* A slice of the current packet's content (the slices of a packet add up to content_len). */
int upload_packet_data(struct upload *u, const uint8_t *data, size_t n,
    const struct upload_sink *sink);
/* The current packet's content is complete. *complete = 1 when it was the last packet and the
 * file checked out (padding, plaintext size = orig_file_size); upload_result() then tells the
 * outcome and the reassembler is ready for a new upload. SD_ERR_BAD_PADDING or
 * SD_ERR_BAD_FIELD discard the upload. */
int upload_packet_end(struct upload *u, const struct upload_sink *sink, int *complete);
/* The last completed upload. SD_ERR_NOT_FOUND if none. */
int upload_result(const struct upload *u, struct upload_result *out);
/* 1 while packets of an unfinished upload have been accepted. */
int upload_in_progress(const struct upload *u);
/* Drops the upload in progress (the caller removes its temporary file). */
void upload_abort(struct upload *u);

#endif
