/* msg.h: encode and decode every request and response of the protocol (SPEC.md 1-3).
 * Encoders are strict (exact sizes, zero-padded NUL-terminated strings, version 3); decoders
 * check the payload size for the code, NUL inside every string field and no trailing bytes.
 * Decoders take a payload that the frame parser delivered; they never allocate. */
#ifndef SD_MSG_H
#define SD_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "codes.h"

/* A request or response header. Responses have no client_id (it stays zero). */
struct msg_header {
	uint8_t client_id[CLIENT_ID_SIZE];
	uint8_t version;
	uint16_t code;
	uint32_t payload_size;
};

/* The fixed 267-byte start of an 828 payload, fields in the order SPEC.md gives.
 * packet_number is the u16 at payload offset 8, total_packets the one at offset 10; a
 * sender with swapped fields is recognised by the server, not here. */
struct msg_file_packet {
	uint32_t content_size;
	uint32_t orig_file_size;
	uint16_t packet_number;
	uint16_t total_packets;
	char file_name[NAME_FIELD_SIZE];
};

/* 1602 and 1605. */
struct msg_aes_key {
	uint8_t client_id[CLIENT_ID_SIZE];
	uint8_t wrapped_key[WRAPPED_KEY_SIZE];
};

/* 1603. */
struct msg_file_crc {
	uint8_t client_id[CLIENT_ID_SIZE];
	uint32_t content_size;
	char file_name[NAME_FIELD_SIZE];
	uint32_t cksum;
};

/* 1: the code is a request code (825-828, 900-902) / a response code (1600-1607). */
int msg_is_request_code(uint16_t code);
int msg_is_response_code(uint16_t code);
/* The exact payload size of a fixed-size code, or -1 for 828 (>= 267) and unknown codes. */
long msg_fixed_payload_size(uint16_t code);
/* Short name for logs ("register", "send file", ...); "unknown" for others. */
const char *msg_code_name(uint16_t code);

/* Headers. Decode reads exactly 23 (request) or 7 (response) bytes. */
int msg_request_header_decode(struct buf *b, struct msg_header *h);
int msg_request_header_encode(struct buf *b, const struct msg_header *h);
int msg_response_header_decode(struct buf *b, struct msg_header *h);
int msg_response_header_encode(struct buf *b, const struct msg_header *h);
/* The same from its fields: version (PROTO_VERSION, or PROTO_VERSION_4 inside TLS), client_id
 * (NULL: 16 zero bytes), code and payload_size. */
int msg_put_request_header(struct buf *b, uint8_t version,
    const uint8_t client_id[CLIENT_ID_SIZE], uint16_t code, uint32_t payload_size);
int msg_put_response_header(struct buf *b, uint8_t version, uint16_t code, uint32_t payload_size);

/* Payload decoders: the whole payload in (p, n). */
/* 825, 827, 900, 901, 902: one name field. Rejects an empty name (SD_ERR_BAD_STRING). */
int msg_name_decode(const uint8_t *p, size_t n, char name[NAME_FIELD_SIZE]);
/* 826. */
int msg_public_key_decode(const uint8_t *p, size_t n, char name[NAME_FIELD_SIZE],
    uint8_t public_key[PUBLIC_KEY_SIZE]);
/* 828: the first 267 bytes only (n must be >= 267; the content follows). */
int msg_file_packet_decode(const uint8_t *p, size_t n, struct msg_file_packet *f);
/* 1600, 1604, 1606. */
int msg_client_id_decode(const uint8_t *p, size_t n, uint8_t client_id[CLIENT_ID_SIZE]);
/* 1602, 1605. */
int msg_aes_key_decode(const uint8_t *p, size_t n, struct msg_aes_key *k);
/* 1603. */
int msg_file_crc_decode(const uint8_t *p, size_t n, struct msg_file_crc *c);

/* Whole-message encoders: header (version 3) and payload appended to b. */
/* 825, 827, 900, 901, 902. */
int msg_put_name_request(struct buf *b, const uint8_t client_id[CLIENT_ID_SIZE], uint16_t code,
    const char *name);
/* 826. */
int msg_put_public_key_request(struct buf *b, const uint8_t client_id[CLIENT_ID_SIZE],
    const char *name, const uint8_t public_key[PUBLIC_KEY_SIZE]);
/* 828: header and the 267-byte packet header for content_len bytes of content, which the
 * caller appends (or sends) right after. swapped = 1 writes total_packets first (variant 5). */
int msg_put_file_packet_header(struct buf *b, const uint8_t client_id[CLIENT_ID_SIZE],
    const struct msg_file_packet *f, uint32_t content_len, int swapped);
/* 1601, 1607 (empty payload). */
int msg_put_empty_response(struct buf *b, uint16_t code);
/* 1600, 1604, 1606. */
int msg_put_client_id_response(struct buf *b, uint16_t code,
    const uint8_t client_id[CLIENT_ID_SIZE]);
/* 1602, 1605. */
int msg_put_aes_key_response(struct buf *b, uint16_t code, const struct msg_aes_key *k);
/* 1603. */
int msg_put_file_crc_response(struct buf *b, const struct msg_file_crc *c);

#endif
