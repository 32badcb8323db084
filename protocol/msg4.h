/* msg4.h: encode and decode every version-4 request and response (SPEC-v4.md 2-3).
 * Inside TLS the framing is SPEC.md's with version byte 4; the request header's client_id is
 * 16 zero bytes. Strings are `len u16 | bytes`: UTF-8, no NUL; names (account and file) are
 * 1 to V4_NAME_MAX_LEN bytes, an ERROR's message 0 to V4_MESSAGE_MAX_LEN. Every length and
 * value from the wire is checked against its limit in codes.h.
 *
 * Encoders append one whole message (header and payload) to a struct buf, or nothing on
 * failure; streamed messages (851 PUT_DATA, 1615 LISTING, 1616 GET_DATA) get their header and
 * fixed head, and the caller appends the rest. Decoders take the payload the frame parser
 * delivered (p, n), reject trailing bytes, clear their output on entry and on failure, and
 * never allocate. Strings are decoded NUL-terminated into fixed arrays. */
#ifndef SD_MSG4_H
#define SD_MSG4_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "codes.h"

#define V4_NAME_BUF (V4_NAME_MAX_LEN + 1u)
#define V4_MESSAGE_BUF (V4_MESSAGE_MAX_LEN + 1u)

struct msg4_register {            /* 840 */
	uint8_t public_key[PUBLIC_KEY_SIZE];
	char name[V4_NAME_BUF];
};

struct msg4_link {                /* 841 */
	char name[V4_NAME_BUF];
	uint8_t id[CLIENT_ID_SIZE];
};

struct msg4_put_open {            /* 850 */
	uint64_t size;
	char name[V4_NAME_BUF];
};

struct msg4_put_data {            /* 851: the 13-byte head; data_len bytes of data follow */
	uint64_t offset;
	uint8_t flags;
	uint32_t plain_len;
	uint32_t data_len;            /* payload_size - 13 (not on the wire) */
};

struct msg4_get {                 /* 861 */
	uint64_t offset;
	char name[V4_NAME_BUF];
};

struct msg4_welcome {             /* 1610 */
	uint8_t id[CLIENT_ID_SIZE];
	char name[V4_NAME_BUF];
};

struct msg4_put_state {           /* 1613 */
	uint64_t offset;
	uint8_t prefix_sha256[V4_SHA256_SIZE];
	uint32_t max_chunk;
};

struct msg4_put_done {            /* 1614 */
	uint64_t size;
	uint8_t sha256[V4_SHA256_SIZE];
	uint32_t cksum;
	char name[V4_NAME_BUF];
};

struct msg4_file_entry {          /* one file of 1615 */
	uint64_t size;
	uint64_t uploaded;            /* Unix seconds */
	uint8_t sha256[V4_SHA256_SIZE];
	char name[V4_NAME_BUF];
};

struct msg4_get_end {             /* 1617 */
	uint64_t size;
	uint8_t sha256[V4_SHA256_SIZE];
};

struct msg4_error {               /* 1619 */
	uint16_t reason;
	char message[V4_MESSAGE_BUF];
};

/* 1: a version-4 request code (840-843, 850-853, 860-862) / response code (1610-1619). */
int msg4_is_request_code(uint16_t code);
int msg4_is_response_code(uint16_t code);
/* The largest payload a version-4 code may carry (streamed ones: their whole payload), or 0
 * for codes outside version 4. Empty codes: 0 too; tell them apart with msg4_is_*_code(). */
uint32_t msg4_payload_max(uint16_t code);
/* The fixed head of a streamed code (851: 13, 1615: 4, 1616: 8), 0 for every other code. */
uint32_t msg4_stream_head_size(uint16_t code);
/* Short name for logs ("register", "put data", ...); "unknown" for others. */
const char *msg4_code_name(uint16_t code);
/* Short text of a 1619 reason ("name taken", ...); "unknown reason" for others. */
const char *msg4_reason_name(uint16_t reason);

/* 1 if (s, n) is a name we accept: 1..V4_NAME_MAX_LEN bytes of UTF-8 without NUL. */
int msg4_name_valid(const char *s, size_t n);

/* --- Request decoders ---------------------------------------------------------------- */
int msg4_register_decode(const uint8_t *p, size_t n, struct msg4_register *m);
int msg4_link_decode(const uint8_t *p, size_t n, struct msg4_link *m);
int msg4_prove_decode(const uint8_t *p, size_t n, uint8_t nonce[V4_NONCE_SIZE]);
/* 843, 853, 860 (and 1611, 1618): the payload must be empty. */
int msg4_empty_decode(const uint8_t *p, size_t n);
int msg4_put_open_decode(const uint8_t *p, size_t n, struct msg4_put_open *m);
/* 851's head: p holds exactly its 13 bytes, payload_size the whole payload. Checks
 * flags (only V4_PUT_FLAG_DEFLATE), plain_len 1..max_chunk, data at most max_chunk +
 * V4_CHUNK_SLACK bytes, at least 1 when compressed and exactly plain_len when not;
 * max_chunk is the one PUT_STATE announced (V4_MAX_CHUNK_MIN..V4_MAX_CHUNK_MAX). */
int msg4_put_data_decode(const uint8_t *p, size_t n, uint32_t payload_size,
    uint32_t max_chunk, struct msg4_put_data *m);
int msg4_put_finish_decode(const uint8_t *p, size_t n, uint8_t sha256[V4_SHA256_SIZE]);
int msg4_get_decode(const uint8_t *p, size_t n, struct msg4_get *m);
/* 862. */
int msg4_delete_decode(const uint8_t *p, size_t n, char name[V4_NAME_BUF]);

/* --- Response decoders --------------------------------------------------------------- */
int msg4_welcome_decode(const uint8_t *p, size_t n, struct msg4_welcome *m);
int msg4_challenge_decode(const uint8_t *p, size_t n, uint8_t enc[V4_CHALLENGE_SIZE]);
int msg4_put_state_decode(const uint8_t *p, size_t n, struct msg4_put_state *m);
int msg4_put_done_decode(const uint8_t *p, size_t n, struct msg4_put_done *m);
/* 1615's head (n == 4); payload_size the whole payload: the count must be possible for it
 * (each entry takes at least its fixed 50 bytes and at most V4_LISTING_ENTRY_MAX). */
int msg4_listing_head_decode(const uint8_t *p, size_t n, uint32_t payload_size,
    uint32_t *count);
/* One entry of 1615 from the front of b (the listing's content, gathered by the caller):
 * consumes it and fills e; SD_ERR_SHORT (nothing consumed) if b holds only part of it. */
int msg4_listing_entry_get(struct buf *b, struct msg4_file_entry *e);
/* 1616's head (n == 8): the offset. */
int msg4_get_data_head_decode(const uint8_t *p, size_t n, uint64_t *offset);
int msg4_get_end_decode(const uint8_t *p, size_t n, struct msg4_get_end *m);
int msg4_error_decode(const uint8_t *p, size_t n, struct msg4_error *m);

/* --- Request encoders (header with version 4 and a zero client_id) --------------------- */
int msg4_put_register(struct buf *b, const uint8_t public_key[PUBLIC_KEY_SIZE],
    const char *name);
int msg4_put_link(struct buf *b, const char *name, const uint8_t id[CLIENT_ID_SIZE]);
int msg4_put_prove(struct buf *b, const uint8_t nonce[V4_NONCE_SIZE]);
/* 843 WHOAMI, 853 PUT_ABORT, 860 LIST. */
int msg4_put_empty_request(struct buf *b, uint16_t code);
int msg4_put_put_open(struct buf *b, uint64_t size, const char *name);
/* 851: header and head for data_len bytes of data, which the caller appends. */
int msg4_put_put_data_head(struct buf *b, uint64_t offset, uint8_t flags, uint32_t plain_len,
    uint32_t data_len);
int msg4_put_put_finish(struct buf *b, const uint8_t sha256[V4_SHA256_SIZE]);
int msg4_put_get(struct buf *b, uint64_t offset, const char *name);
int msg4_put_delete(struct buf *b, const char *name);

/* --- Response encoders -------------------------------------------------------------- */
int msg4_put_welcome(struct buf *b, const uint8_t id[CLIENT_ID_SIZE], const char *name);
/* 1611 UNKNOWN, 1618 OK. */
int msg4_put_empty_response(struct buf *b, uint16_t code);
int msg4_put_challenge(struct buf *b, const uint8_t enc[V4_CHALLENGE_SIZE]);
int msg4_put_put_state(struct buf *b, const struct msg4_put_state *m);
int msg4_put_put_done(struct buf *b, const struct msg4_put_done *m);
/* 1615: header and count for entries_len bytes of entries (the sum of
 * msg4_listing_entry_size()), which the caller appends with msg4_put_listing_entry(). */
int msg4_put_listing_head(struct buf *b, uint32_t count, uint32_t entries_len);
size_t msg4_listing_entry_size(const struct msg4_file_entry *e);
int msg4_put_listing_entry(struct buf *b, const struct msg4_file_entry *e);
/* 1616: header and offset for data_len (<= V4_MAX_CHUNK_MAX) bytes the caller appends. */
int msg4_put_get_data_head(struct buf *b, uint64_t offset, uint32_t data_len);
int msg4_put_get_end(struct buf *b, const struct msg4_get_end *m);
/* 1619: reason 1..9; message may be NULL or "" (the longest is V4_MESSAGE_MAX_LEN bytes). */
int msg4_put_error(struct buf *b, uint16_t reason, const char *message);

#endif
