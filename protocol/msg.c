/* msg.c: encode and decode every request and response (msg.h, SPEC.md 1-3). Encoders build the
 * whole message in a local buffer first, so a failure leaves the caller's buffer untouched. */
#include <string.h>

#include "err.h"
#include "msg.h"

/* The largest message built in one piece: an 826 (request header + 415). */
#define MSG_ENCODE_MAX (REQ_HEADER_SIZE + PAYLOAD_PUBLIC_KEY_SIZE)

int msg_is_request_code(uint16_t code)
{
	return (code >= REQ_REGISTER && code <= REQ_SEND_FILE) ||
	    (code >= REQ_CRC_OK && code <= REQ_CRC_FAIL);
}

int msg_is_response_code(uint16_t code)
{
	return code >= RESP_REGISTERED && code <= RESP_ERROR;
}

long msg_fixed_payload_size(uint16_t code)
{
	switch (code) {
	case REQ_REGISTER:
	case REQ_RECONNECT:
	case REQ_CRC_OK:
	case REQ_CRC_RETRY:
	case REQ_CRC_FAIL:
		return PAYLOAD_NAME_SIZE;
	case REQ_PUBLIC_KEY:
		return PAYLOAD_PUBLIC_KEY_SIZE;
	case RESP_REGISTERED:
	case RESP_ACK:
	case RESP_RECONNECT_DENIED:
		return PAYLOAD_CLIENT_ID_SIZE;
	case RESP_REGISTER_FAILED:
	case RESP_ERROR:
		return 0;
	case RESP_AES_KEY:
	case RESP_RECONNECTED:
		return PAYLOAD_AES_KEY_SIZE;
	case RESP_FILE_CRC:
		return PAYLOAD_FILE_CRC_SIZE;
	default:
		return -1;  /* 828 (variable) and codes outside the protocol */
	}
}

const char *msg_code_name(uint16_t code)
{
	switch (code) {
	case REQ_REGISTER: return "register";
	case REQ_PUBLIC_KEY: return "send public key";
	case REQ_RECONNECT: return "reconnect";
	case REQ_SEND_FILE: return "send file";
	case REQ_CRC_OK: return "crc ok";
	case REQ_CRC_RETRY: return "crc retry";
	case REQ_CRC_FAIL: return "crc fail";
	case RESP_REGISTERED: return "registered";
	case RESP_REGISTER_FAILED: return "registration failed";
	case RESP_AES_KEY: return "aes key";
	case RESP_FILE_CRC: return "file crc";
	case RESP_ACK: return "ack";
	case RESP_RECONNECTED: return "reconnected";
	case RESP_RECONNECT_DENIED: return "reconnect denied";
	case RESP_ERROR: return "error";
	default: return "unknown";
	}
}

/* Headers. */

int msg_request_header_decode(struct buf *b, struct msg_header *h)
{
	int r;

	if (b == NULL || h == NULL)
		return SD_ERR_INVALID_ARG;
	memset(h, 0, sizeof(*h));
	/* Checked whole first, so a short header consumes nothing. */
	if (buf_len(b) < REQ_HEADER_SIZE)
		return SD_ERR_SHORT;
	if ((r = buf_get_bytes(b, h->client_id, CLIENT_ID_SIZE)) != 0 ||
	    (r = buf_get_u8(b, &h->version)) != 0 ||  /* any version is accepted (SPEC 1) */
	    (r = buf_get_u16(b, &h->code)) != 0 ||
	    (r = buf_get_u32(b, &h->payload_size)) != 0)
		return SD_ERR_INTERNAL;
	return 0;
}

int msg_response_header_decode(struct buf *b, struct msg_header *h)
{
	int r;

	if (b == NULL || h == NULL)
		return SD_ERR_INVALID_ARG;
	memset(h, 0, sizeof(*h));
	if (buf_len(b) < RESP_HEADER_SIZE)
		return SD_ERR_SHORT;
	if ((r = buf_get_u8(b, &h->version)) != 0 ||
	    (r = buf_get_u16(b, &h->code)) != 0 ||
	    (r = buf_get_u32(b, &h->payload_size)) != 0)
		return SD_ERR_INTERNAL;
	return 0;
}

/* Version 0 never occurs on the wire, so a zeroed header struct gets our version (3); any
 * other value is written as given (the opt-in extension answers with its own version). */
static uint8_t msg_wire_version(const struct msg_header *h)
{
	return h->version != 0 ? h->version : (uint8_t)PROTO_VERSION;
}

int msg_request_header_encode(struct buf *b, const struct msg_header *h)
{
	uint8_t mem[REQ_HEADER_SIZE];
	struct buf t;
	int r;

	if (b == NULL || h == NULL)
		return SD_ERR_INVALID_ARG;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = buf_put_bytes(&t, h->client_id, CLIENT_ID_SIZE)) != 0 ||
	    (r = buf_put_u8(&t, msg_wire_version(h))) != 0 ||
	    (r = buf_put_u16(&t, h->code)) != 0 ||
	    (r = buf_put_u32(&t, h->payload_size)) != 0)
		return r;
	return buf_put_bytes(b, buf_ptr(&t), buf_len(&t));
}

int msg_response_header_encode(struct buf *b, const struct msg_header *h)
{
	uint8_t mem[RESP_HEADER_SIZE];
	struct buf t;
	int r;

	if (b == NULL || h == NULL)
		return SD_ERR_INVALID_ARG;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = buf_put_u8(&t, msg_wire_version(h))) != 0 ||
	    (r = buf_put_u16(&t, h->code)) != 0 ||
	    (r = buf_put_u32(&t, h->payload_size)) != 0)
		return r;
	return buf_put_bytes(b, buf_ptr(&t), buf_len(&t));
}

/* Payload decoders. */

/* A string field that must be non-empty (every name and file name of the protocol). */
static int get_name(struct buf *b, char *out, size_t field_size)
{
	int r;

	if ((r = buf_get_string(b, out, field_size)) != 0)
		return r;
	if (out[0] == '\0')
		return SD_ERR_BAD_STRING;
	return 0;
}

int msg_name_decode(const uint8_t *p, size_t n, char name[NAME_FIELD_SIZE])
{
	struct buf b;
	int r;

	if ((p == NULL && n > 0) || name == NULL)
		return SD_ERR_INVALID_ARG;
	memset(name, 0, NAME_FIELD_SIZE);
	if (n != PAYLOAD_NAME_SIZE)
		return SD_ERR_BAD_SIZE;
	buf_view(&b, p, n);
	if ((r = get_name(&b, name, NAME_FIELD_SIZE)) != 0)
		goto out;
	r = 0;
out:
	if (r != 0)
		memset(name, 0, NAME_FIELD_SIZE);
	return r;
}

int msg_public_key_decode(const uint8_t *p, size_t n, char name[NAME_FIELD_SIZE],
    uint8_t public_key[PUBLIC_KEY_SIZE])
{
	struct buf b;
	int r;

	if ((p == NULL && n > 0) || name == NULL || public_key == NULL)
		return SD_ERR_INVALID_ARG;
	memset(name, 0, NAME_FIELD_SIZE);
	memset(public_key, 0, PUBLIC_KEY_SIZE);
	if (n != PAYLOAD_PUBLIC_KEY_SIZE)
		return SD_ERR_BAD_SIZE;
	buf_view(&b, p, n);
	if ((r = get_name(&b, name, NAME_FIELD_SIZE)) != 0 ||     /* name[255] */
	    (r = buf_get_bytes(&b, public_key, PUBLIC_KEY_SIZE)) != 0) /* public_key[160] */
		goto out;
	r = 0;
out:
	if (r != 0) {
		memset(name, 0, NAME_FIELD_SIZE);
		memset(public_key, 0, PUBLIC_KEY_SIZE);
	}
	return r;
}

int msg_file_packet_decode(const uint8_t *p, size_t n, struct msg_file_packet *f)
{
	struct buf b;
	int r;

	if ((p == NULL && n > 0) || f == NULL)
		return SD_ERR_INVALID_ARG;
	memset(f, 0, sizeof(*f));
	if (n < FILE_PACKET_HEADER_SIZE)
		return SD_ERR_BAD_SIZE;
	/* Only the packet header is read; the content after it is the caller's. */
	buf_view(&b, p, FILE_PACKET_HEADER_SIZE);
	if ((r = buf_get_u32(&b, &f->content_size)) != 0 ||     /* content_size u32 */
	    (r = buf_get_u32(&b, &f->orig_file_size)) != 0 ||   /* orig_file_size u32 */
	    (r = buf_get_u16(&b, &f->packet_number)) != 0 ||    /* u16 at offset 8 */
	    (r = buf_get_u16(&b, &f->total_packets)) != 0 ||    /* u16 at offset 10 */
	    (r = get_name(&b, f->file_name, NAME_FIELD_SIZE)) != 0) /* file_name[255] */
		goto out;
	r = 0;
out:
	if (r != 0)
		memset(f, 0, sizeof(*f));
	return r;
}

int msg_client_id_decode(const uint8_t *p, size_t n, uint8_t client_id[CLIENT_ID_SIZE])
{
	if ((p == NULL && n > 0) || client_id == NULL)
		return SD_ERR_INVALID_ARG;
	memset(client_id, 0, CLIENT_ID_SIZE);
	if (n != PAYLOAD_CLIENT_ID_SIZE)
		return SD_ERR_BAD_SIZE;
	memcpy(client_id, p, CLIENT_ID_SIZE);
	return 0;
}

int msg_aes_key_decode(const uint8_t *p, size_t n, struct msg_aes_key *k)
{
	struct buf b;
	int r;

	if ((p == NULL && n > 0) || k == NULL)
		return SD_ERR_INVALID_ARG;
	memset(k, 0, sizeof(*k));
	if (n != PAYLOAD_AES_KEY_SIZE)
		return SD_ERR_BAD_SIZE;
	buf_view(&b, p, n);
	if ((r = buf_get_bytes(&b, k->client_id, CLIENT_ID_SIZE)) != 0 ||     /* client_id[16] */
	    (r = buf_get_bytes(&b, k->wrapped_key, WRAPPED_KEY_SIZE)) != 0) /* wrapped key[128] */
		goto out;
	r = 0;
out:
	if (r != 0)
		memset(k, 0, sizeof(*k));
	return r;
}

int msg_file_crc_decode(const uint8_t *p, size_t n, struct msg_file_crc *c)
{
	struct buf b;
	int r;

	if ((p == NULL && n > 0) || c == NULL)
		return SD_ERR_INVALID_ARG;
	memset(c, 0, sizeof(*c));
	if (n != PAYLOAD_FILE_CRC_SIZE)
		return SD_ERR_BAD_SIZE;
	buf_view(&b, p, n);
	if ((r = buf_get_bytes(&b, c->client_id, CLIENT_ID_SIZE)) != 0 ||   /* client_id[16] */
	    (r = buf_get_u32(&b, &c->content_size)) != 0 ||                /* content_size u32 */
	    (r = get_name(&b, c->file_name, NAME_FIELD_SIZE)) != 0 ||      /* file_name[255] */
	    (r = buf_get_u32(&b, &c->cksum)) != 0)                         /* cksum u32 */
		goto out;
	r = 0;
out:
	if (r != 0)
		memset(c, 0, sizeof(*c));
	return r;
}

/* Encoders. Each writes into a local buffer of its exact size, then appends in one put. */

/* A name we send: 1 to 254 bytes, so that it fits its field with the NUL (strict). */
static int check_name(const char *s)
{
	size_t n;

	if (s == NULL)
		return SD_ERR_INVALID_ARG;
	n = strnlen(s, NAME_FIELD_SIZE);
	if (n == 0 || n > NAME_MAX_LEN)
		return SD_ERR_BAD_STRING;
	return 0;
}

int msg_put_request_header(struct buf *b, uint8_t version,
    const uint8_t client_id[CLIENT_ID_SIZE], uint16_t code, uint32_t payload_size)
{
	struct msg_header h;

	memset(&h, 0, sizeof(h));
	if (client_id != NULL)
		memcpy(h.client_id, client_id, CLIENT_ID_SIZE);
	h.version = version;
	h.code = code;
	h.payload_size = payload_size;
	return msg_request_header_encode(b, &h);
}

int msg_put_response_header(struct buf *b, uint8_t version, uint16_t code,
    uint32_t payload_size)
{
	struct msg_header h;

	memset(&h, 0, sizeof(h));
	h.version = version;
	h.code = code;
	h.payload_size = payload_size;
	return msg_response_header_encode(b, &h);
}

int msg_put_name_request(struct buf *b, const uint8_t client_id[CLIENT_ID_SIZE], uint16_t code,
    const char *name)
{
	uint8_t mem[MSG_ENCODE_MAX];
	struct buf t;
	int r;

	if (b == NULL || msg_fixed_payload_size(code) != (long)PAYLOAD_NAME_SIZE ||
	    !msg_is_request_code(code))
		return SD_ERR_INVALID_ARG;
	if ((r = check_name(name)) != 0)
		return r;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = msg_put_request_header(&t, PROTO_VERSION, client_id, code,
	    PAYLOAD_NAME_SIZE)) != 0 ||
	    (r = buf_put_string(&t, name, NAME_FIELD_SIZE)) != 0)
		return r;
	return buf_put_bytes(b, buf_ptr(&t), buf_len(&t));
}

int msg_put_public_key_request(struct buf *b, const uint8_t client_id[CLIENT_ID_SIZE],
    const char *name, const uint8_t public_key[PUBLIC_KEY_SIZE])
{
	uint8_t mem[MSG_ENCODE_MAX];
	struct buf t;
	int r;

	if (b == NULL || public_key == NULL)
		return SD_ERR_INVALID_ARG;
	if ((r = check_name(name)) != 0)
		return r;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = msg_put_request_header(&t, PROTO_VERSION, client_id, REQ_PUBLIC_KEY,
	    PAYLOAD_PUBLIC_KEY_SIZE)) != 0 ||
	    (r = buf_put_string(&t, name, NAME_FIELD_SIZE)) != 0 ||
	    (r = buf_put_bytes(&t, public_key, PUBLIC_KEY_SIZE)) != 0)
		return r;
	return buf_put_bytes(b, buf_ptr(&t), buf_len(&t));
}

int msg_put_file_packet_header(struct buf *b, const uint8_t client_id[CLIENT_ID_SIZE],
    const struct msg_file_packet *f, uint32_t content_len, int swapped)
{
	uint8_t mem[MSG_ENCODE_MAX];
	struct buf t;
	uint16_t at8, at10;
	int r;

	if (b == NULL || f == NULL)
		return SD_ERR_INVALID_ARG;
	/* The payload size is a u32 that must hold the packet header and the content. */
	if (content_len > UINT32_MAX - FILE_PACKET_HEADER_SIZE)
		return SD_ERR_TOO_LARGE;
	if ((r = check_name(f->file_name)) != 0)
		return r;
	at8 = swapped ? f->total_packets : f->packet_number;
	at10 = swapped ? f->packet_number : f->total_packets;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = msg_put_request_header(&t, PROTO_VERSION, client_id, REQ_SEND_FILE,
	    FILE_PACKET_HEADER_SIZE + content_len)) != 0 ||
	    (r = buf_put_u32(&t, f->content_size)) != 0 ||
	    (r = buf_put_u32(&t, f->orig_file_size)) != 0 ||
	    (r = buf_put_u16(&t, at8)) != 0 ||
	    (r = buf_put_u16(&t, at10)) != 0 ||
	    (r = buf_put_string(&t, f->file_name, NAME_FIELD_SIZE)) != 0)
		return r;
	return buf_put_bytes(b, buf_ptr(&t), buf_len(&t));
}

int msg_put_empty_response(struct buf *b, uint16_t code)
{
	uint8_t mem[RESP_HEADER_SIZE];
	struct buf t;
	int r;

	if (b == NULL || !msg_is_response_code(code) || msg_fixed_payload_size(code) != 0)
		return SD_ERR_INVALID_ARG;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = msg_put_response_header(&t, PROTO_VERSION, code, 0)) != 0)
		return r;
	return buf_put_bytes(b, buf_ptr(&t), buf_len(&t));
}

int msg_put_client_id_response(struct buf *b, uint16_t code,
    const uint8_t client_id[CLIENT_ID_SIZE])
{
	uint8_t mem[RESP_HEADER_SIZE + PAYLOAD_CLIENT_ID_SIZE];
	struct buf t;
	int r;

	if (b == NULL || client_id == NULL || !msg_is_response_code(code) ||
	    msg_fixed_payload_size(code) != (long)PAYLOAD_CLIENT_ID_SIZE)
		return SD_ERR_INVALID_ARG;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = msg_put_response_header(&t, PROTO_VERSION, code,
	    PAYLOAD_CLIENT_ID_SIZE)) != 0 ||
	    (r = buf_put_bytes(&t, client_id, CLIENT_ID_SIZE)) != 0)
		return r;
	return buf_put_bytes(b, buf_ptr(&t), buf_len(&t));
}

int msg_put_aes_key_response(struct buf *b, uint16_t code, const struct msg_aes_key *k)
{
	uint8_t mem[RESP_HEADER_SIZE + PAYLOAD_AES_KEY_SIZE];
	struct buf t;
	int r;

	if (b == NULL || k == NULL || (code != RESP_AES_KEY && code != RESP_RECONNECTED))
		return SD_ERR_INVALID_ARG;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = msg_put_response_header(&t, PROTO_VERSION, code,
	    PAYLOAD_AES_KEY_SIZE)) != 0 ||
	    (r = buf_put_bytes(&t, k->client_id, CLIENT_ID_SIZE)) != 0 ||
	    (r = buf_put_bytes(&t, k->wrapped_key, WRAPPED_KEY_SIZE)) != 0)
		return r;
	return buf_put_bytes(b, buf_ptr(&t), buf_len(&t));
}

int msg_put_file_crc_response(struct buf *b, const struct msg_file_crc *c)
{
	uint8_t mem[RESP_HEADER_SIZE + PAYLOAD_FILE_CRC_SIZE];
	struct buf t;
	int r;

	if (b == NULL || c == NULL)
		return SD_ERR_INVALID_ARG;
	if ((r = check_name(c->file_name)) != 0)
		return r;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = msg_put_response_header(&t, PROTO_VERSION, RESP_FILE_CRC,
	    PAYLOAD_FILE_CRC_SIZE)) != 0 ||
	    (r = buf_put_bytes(&t, c->client_id, CLIENT_ID_SIZE)) != 0 ||
	    (r = buf_put_u32(&t, c->content_size)) != 0 ||
	    (r = buf_put_string(&t, c->file_name, NAME_FIELD_SIZE)) != 0 ||
	    (r = buf_put_u32(&t, c->cksum)) != 0)
		return r;
	return buf_put_bytes(b, buf_ptr(&t), buf_len(&t));
}
