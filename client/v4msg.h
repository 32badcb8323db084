/* v4msg.h: the client's encoders and decoders of the version-4 payloads (SPEC-v4.md 3), over
 * struct buf: strings are `len u16 | bytes` (no NUL), numbers little-endian. Requests are
 * built into a caller's buffer as payload only (v4conn_request() adds the header). Decoders
 * read the whole payload and reject trailing bytes; they never allocate. Return 0 or a
 * negative sd_err. */
#ifndef SD_CLIENT_V4MSG_H
#define SD_CLIENT_V4MSG_H

#include <stddef.h>
#include <stdint.h>

#include "../protocol/buf.h"
#include "../protocol/codes.h"

#define V4_NAME_TEXT_SIZE (V4_NAME_MAX_LEN + 1u)
#define V4_MESSAGE_TEXT_SIZE (V4_MESSAGE_MAX_LEN + 1u)

/* A string: 1..max_len bytes (0.. for messages with allow_empty), no NUL, no control
 * characters below 0x20 except in messages (shown sanitised by the caller). */
int v4msg_put_str(struct buf *b, const char *s);
int v4msg_get_str(struct buf *b, char *out, size_t out_size, size_t max_len, int allow_empty);

struct v4_welcome {
	uint8_t id[CLIENT_ID_SIZE];
	char name[V4_NAME_TEXT_SIZE];
};
struct v4_put_state {
	uint64_t offset;
	uint8_t prefix_sha256[V4_SHA256_SIZE];
	uint32_t max_chunk;
};
struct v4_put_done {
	uint64_t size;
	uint8_t sha256[V4_SHA256_SIZE];
	uint32_t cksum;
	char name[V4_NAME_TEXT_SIZE];
};
struct v4_file_entry {
	uint64_t size;
	uint64_t uploaded;
	uint8_t sha256[V4_SHA256_SIZE];
	char name[V4_NAME_TEXT_SIZE];
};
struct v4_get_end {
	uint64_t size;
	uint8_t sha256[V4_SHA256_SIZE];
};
struct v4_error {
	uint16_t reason;
	char message[V4_MESSAGE_TEXT_SIZE];
};

int v4msg_welcome_decode(struct buf *b, struct v4_welcome *w);
int v4msg_challenge_decode(struct buf *b, uint8_t enc[V4_CHALLENGE_SIZE]);
/* Also checks max_chunk is V4_MAX_CHUNK_MIN..V4_MAX_CHUNK_MAX. */
int v4msg_put_state_decode(struct buf *b, struct v4_put_state *s);
int v4msg_put_done_decode(struct buf *b, struct v4_put_done *d);
/* LISTING: the count first, then one entry per call (check buf_len() == 0 at the end). */
int v4msg_listing_count(struct buf *b, uint32_t *count);
int v4msg_listing_entry(struct buf *b, struct v4_file_entry *e);
/* GET_DATA: the offset; the data are the rest of b (buf_ptr/buf_len). */
int v4msg_get_data_decode(struct buf *b, uint64_t *offset);
int v4msg_get_end_decode(struct buf *b, struct v4_get_end *e);
int v4msg_error_decode(struct buf *b, struct v4_error *e);

/* A short name for a 1619 reason ("name taken", ...). */
const char *v4msg_reason_name(uint16_t reason);
/* A short name for a version-4 code, for --verbose. */
const char *v4msg_code_name(uint16_t code);

#endif
