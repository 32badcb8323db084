/* codes.h: protocol version, message codes, field sizes and limits (SPEC.md sections 1-4).
 * Every number the wire format uses is named here once. */
#ifndef SD_CODES_H
#define SD_CODES_H

#include <stdint.h>

#define PROTO_VERSION 3u

/* Requests, client to server. */
enum req_code {
	REQ_REGISTER = 825,   /* name[255] */
	REQ_PUBLIC_KEY = 826, /* name[255] public_key[160] */
	REQ_RECONNECT = 827,  /* name[255] */
	REQ_SEND_FILE = 828,  /* file packet header[267] content[...] */
	REQ_CRC_OK = 900,     /* file_name[255] */
	REQ_CRC_RETRY = 901,  /* file_name[255], no reply */
	REQ_CRC_FAIL = 902,   /* file_name[255] */
};

/* Responses, server to client. */
enum resp_code {
	RESP_REGISTERED = 1600,        /* client_id[16] */
	RESP_REGISTER_FAILED = 1601,   /* empty */
	RESP_AES_KEY = 1602,           /* client_id[16] encrypted_aes_key[128] */
	RESP_FILE_CRC = 1603,          /* client_id[16] content_size u32 file_name[255] cksum u32 */
	RESP_ACK = 1604,               /* client_id[16] */
	RESP_RECONNECTED = 1605,       /* client_id[16] encrypted_aes_key[128] */
	RESP_RECONNECT_DENIED = 1606,  /* client_id[16] */
	RESP_ERROR = 1607,             /* empty */
};

#define REQ_HEADER_SIZE 23u   /* client_id[16] version u8 code u16 payload_size u32 */
#define RESP_HEADER_SIZE 7u   /* version u8 code u16 payload_size u32 */
#define MAX_HEADER_SIZE 23u

#define CLIENT_ID_SIZE 16u
#define NAME_FIELD_SIZE 255u      /* every string field: at most 254 bytes then NUL */
#define NAME_MAX_LEN 254u
#define CLIENT_NAME_MAX_LEN 100u  /* what clients send; the server accepts up to 254 */
#define PUBLIC_KEY_SIZE 160u      /* DER SPKI of RSA-1024 with e = 17 */
#define RSA_BITS 1024u
#define RSA_EXPONENT 17ul
#define AES_KEY_SIZE 32u
#define AES_BLOCK_SIZE 16u
#define WRAPPED_KEY_SIZE 128u     /* RSA-OAEP(SHA-1) of the AES key */

/* Fixed payload sizes. */
#define PAYLOAD_NAME_SIZE NAME_FIELD_SIZE                                   /* 825 827 900-902 */
#define PAYLOAD_PUBLIC_KEY_SIZE (NAME_FIELD_SIZE + PUBLIC_KEY_SIZE)         /* 826: 415 */
#define FILE_PACKET_HEADER_SIZE (4u + 4u + 2u + 2u + NAME_FIELD_SIZE)       /* 828: 267 */
#define PAYLOAD_CLIENT_ID_SIZE CLIENT_ID_SIZE                               /* 1600 1604 1606 */
#define PAYLOAD_AES_KEY_SIZE (CLIENT_ID_SIZE + WRAPPED_KEY_SIZE)            /* 1602 1605: 144 */
#define PAYLOAD_FILE_CRC_SIZE (CLIENT_ID_SIZE + 4u + NAME_FIELD_SIZE + 4u)  /* 1603: 279 */

/* Limits. A message that is not streamed is buffered whole, so it must fit this; a larger
 * payload of such a code breaks framing and closes the connection. */
#define FRAME_SMALL_PAYLOAD_MAX 4096u
/* The largest 828 payload: its sizes are u32, so this is the format's own ceiling. */
#define FILE_PAYLOAD_MAX UINT32_MAX

/* Version 4 (SPEC-v4.md): the same framing inside TLS, version byte 4 both ways. */
#define PROTO_VERSION_4 4u

/* Version-4 requests (SPEC-v4.md 3). */
enum req4_code {
	REQ4_REGISTER = 840,    /* public_key[160] name(str) */
	REQ4_LINK = 841,        /* name(str) id[16] */
	REQ4_PROVE = 842,       /* nonce[32] */
	REQ4_WHOAMI = 843,      /* empty */
	REQ4_PUT_OPEN = 850,    /* size u64 name(str) */
	REQ4_PUT_DATA = 851,    /* offset u64 flags u8 plain_len u32 data[payload_size - 13] */
	REQ4_PUT_FINISH = 852,  /* sha256[32] */
	REQ4_PUT_ABORT = 853,   /* empty */
	REQ4_LIST = 860,        /* empty */
	REQ4_GET = 861,         /* offset u64 name(str) */
	REQ4_DELETE = 862,      /* name(str) */
};

/* Version-4 responses. */
enum resp4_code {
	RESP4_WELCOME = 1610,    /* id[16] name(str) */
	RESP4_UNKNOWN = 1611,    /* empty */
	RESP4_CHALLENGE = 1612,  /* encrypted_nonce[128] */
	RESP4_PUT_STATE = 1613,  /* offset u64 prefix_sha256[32] max_chunk u32 */
	RESP4_PUT_DONE = 1614,   /* size u64 sha256[32] cksum u32 name(str) */
	RESP4_LISTING = 1615,    /* count u32, per file: size u64 uploaded u64 sha256[32] name(str) */
	RESP4_GET_DATA = 1616,   /* offset u64 data[...] */
	RESP4_GET_END = 1617,    /* size u64 sha256[32] */
	RESP4_OK = 1618,         /* empty */
	RESP4_ERROR = 1619,      /* reason u16 message(str) */
};

/* Reasons of 1619 ERROR. */
enum v4_reason {
	V4_REASON_BAD_REQUEST = 1,
	V4_REASON_NAME_TAKEN = 2,
	V4_REASON_NOT_REGISTERED = 3,
	V4_REASON_NOT_PROVEN = 4,
	V4_REASON_NOT_FOUND = 5,
	V4_REASON_MISMATCH = 6,      /* hash or size */
	V4_REASON_TOO_LARGE = 7,     /* or quota */
	V4_REASON_BUSY = 8,
	V4_REASON_STORAGE = 9,
};
#define V4_REASON_MIN 1u
#define V4_REASON_MAX 9u

/* Strings are `len u16 | bytes`: UTF-8, no NUL. Names (account and file names, SPEC.md 6)
 * are 1 to V4_NAME_MAX_LEN bytes; an ERROR's message is 0 to V4_MESSAGE_MAX_LEN bytes. */
#define V4_STR_LEN_SIZE 2u
#define V4_NAME_MAX_LEN NAME_MAX_LEN     /* 254 */
#define V4_MESSAGE_MAX_LEN 1024u
#define V4_NAME_FIELD_MAX (V4_STR_LEN_SIZE + V4_NAME_MAX_LEN)

#define V4_SHA256_SIZE 32u
#define V4_NONCE_SIZE 32u
#define V4_CHALLENGE_SIZE WRAPPED_KEY_SIZE  /* RSA-OAEP(SHA-1) of the nonce: 128 */
/* Sizes and offsets are u64 on the wire, at most 2^63 - 1 (they fit off_t). */
#define V4_FILE_SIZE_MAX INT64_MAX

/* Chunks: the server's max_chunk is 64 KiB to 1 MiB; a PUT_DATA carries plain_len 1 to
 * max_chunk plaintext bytes in at most max_chunk + V4_CHUNK_SLACK data bytes. */
#define V4_MAX_CHUNK_MIN 65536u
#define V4_MAX_CHUNK_MAX 1048576u
#define V4_CHUNK_SLACK 1024u
#define V4_PUT_FLAG_DEFLATE 0x01u
#define V4_PUT_FLAGS_KNOWN V4_PUT_FLAG_DEFLATE

/* Fixed and largest payload sizes of the version-4 codes. */
#define V4_PUT_DATA_HEAD_SIZE (8u + 1u + 4u)                                   /* 851: 13 */
#define V4_PUT_DATA_PAYLOAD_MAX (V4_PUT_DATA_HEAD_SIZE + V4_MAX_CHUNK_MAX + V4_CHUNK_SLACK)
#define V4_GET_DATA_HEAD_SIZE 8u                                               /* 1616 */
#define V4_GET_DATA_PAYLOAD_MAX (V4_GET_DATA_HEAD_SIZE + V4_MAX_CHUNK_MAX)
#define V4_LISTING_HEAD_SIZE 4u                                                /* 1615 */
#define V4_LISTING_ENTRY_MAX (8u + 8u + V4_SHA256_SIZE + V4_NAME_FIELD_MAX)    /* 304 */
#define V4_LISTING_COUNT_MAX 1048576u
#define V4_LISTING_PAYLOAD_MAX (V4_LISTING_HEAD_SIZE + V4_LISTING_COUNT_MAX * V4_LISTING_ENTRY_MAX)
#define V4_REGISTER_PAYLOAD_MAX (PUBLIC_KEY_SIZE + V4_NAME_FIELD_MAX)          /* 840: 416 */
#define V4_LINK_PAYLOAD_MAX (V4_NAME_FIELD_MAX + CLIENT_ID_SIZE)               /* 841: 272 */
#define V4_PUT_OPEN_PAYLOAD_MAX (8u + V4_NAME_FIELD_MAX)                       /* 850, 861: 264 */
#define V4_PUT_STATE_SIZE (8u + V4_SHA256_SIZE + 4u)                           /* 1613: 44 */
#define V4_WELCOME_PAYLOAD_MAX (CLIENT_ID_SIZE + V4_NAME_FIELD_MAX)            /* 1610: 272 */
#define V4_PUT_DONE_PAYLOAD_MAX (8u + V4_SHA256_SIZE + 4u + V4_NAME_FIELD_MAX) /* 1614: 300 */
#define V4_GET_END_SIZE (8u + V4_SHA256_SIZE)                                  /* 1617: 40 */
#define V4_ERROR_PAYLOAD_MAX (2u + V4_STR_LEN_SIZE + V4_MESSAGE_MAX_LEN)       /* 1619: 1028 */

#endif
