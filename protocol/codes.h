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

#endif
