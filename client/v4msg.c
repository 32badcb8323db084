/* v4msg.c: version-4 payloads for the client, one column per field as SPEC-v4.md 3 lists
 * them. */
#include "v4msg.h"

#include <string.h>

#include "../protocol/err.h"

int
v4msg_put_str(struct buf *b, const char *s)
{
	size_t n;
	int r;

	if (s == NULL)
		return SD_ERR_INVALID_ARG;
	n = strlen(s);
	if (n == 0 || n > V4_NAME_MAX_LEN)
		return SD_ERR_BAD_STRING;
	if ((r = buf_put_u16(b, (uint16_t)n)) != 0)
		return r;
	if ((r = buf_put_bytes(b, s, n)) != 0) {
		/* Leave nothing half-written: the length alone would break the message. */
		b->len -= V4_STR_LEN_SIZE;
		return r;
	}
	return 0;
}

int
v4msg_get_str(struct buf *b, char *out, size_t out_size, size_t max_len, int allow_empty)
{
	size_t save = b->off;
	uint16_t n;
	int r;

	out[0] = '\0';
	if ((r = buf_get_u16(b, &n)) != 0)
		return r;
	if (n > max_len || (size_t)n >= out_size || (n == 0 && !allow_empty)) {
		b->off = save;
		return n > max_len ? SD_ERR_TOO_LARGE : SD_ERR_BAD_STRING;
	}
	if ((r = buf_get_bytes(b, out, n)) != 0) {
		b->off = save;
		return r;
	}
	out[n] = '\0';
	if (memchr(out, '\0', n) != NULL) {
		b->off = save;
		out[0] = '\0';
		return SD_ERR_BAD_STRING;
	}
	return 0;
}

static int
end(const struct buf *b)
{
	return buf_len(b) == 0 ? 0 : SD_ERR_TRAILING;
}

int
v4msg_welcome_decode(struct buf *b, struct v4_welcome *w)
{
	int r;

	memset(w, 0, sizeof(*w));
	if ((r = buf_get_bytes(b, w->id, CLIENT_ID_SIZE)) != 0 ||
	    (r = v4msg_get_str(b, w->name, sizeof(w->name), V4_NAME_MAX_LEN, 0)) != 0)
		return r;
	return end(b);
}

int
v4msg_challenge_decode(struct buf *b, uint8_t enc[V4_CHALLENGE_SIZE])
{
	int r;

	if ((r = buf_get_bytes(b, enc, V4_CHALLENGE_SIZE)) != 0)
		return r;
	return end(b);
}

int
v4msg_put_state_decode(struct buf *b, struct v4_put_state *s)
{
	int r;

	memset(s, 0, sizeof(*s));
	if ((r = buf_get_u64(b, &s->offset)) != 0 ||
	    (r = buf_get_bytes(b, s->prefix_sha256, V4_SHA256_SIZE)) != 0 ||
	    (r = buf_get_u32(b, &s->max_chunk)) != 0)
		return r;
	if (s->max_chunk < V4_MAX_CHUNK_MIN || s->max_chunk > V4_MAX_CHUNK_MAX ||
	    s->offset > V4_FILE_SIZE_MAX)
		return SD_ERR_BAD_FIELD;
	return end(b);
}

int
v4msg_put_done_decode(struct buf *b, struct v4_put_done *d)
{
	int r;

	memset(d, 0, sizeof(*d));
	if ((r = buf_get_u64(b, &d->size)) != 0 ||
	    (r = buf_get_bytes(b, d->sha256, V4_SHA256_SIZE)) != 0 ||
	    (r = buf_get_u32(b, &d->cksum)) != 0 ||
	    (r = v4msg_get_str(b, d->name, sizeof(d->name), V4_NAME_MAX_LEN, 0)) != 0)
		return r;
	return end(b);
}

int
v4msg_listing_count(struct buf *b, uint32_t *count)
{
	int r;

	*count = 0;
	if ((r = buf_get_u32(b, count)) != 0)
		return r;
	/* Each entry takes at least 51 bytes: a count that cannot fit is a lie. */
	if (*count > V4_LISTING_COUNT_MAX ||
	    (uint64_t)*count * (8u + 8u + V4_SHA256_SIZE + V4_STR_LEN_SIZE + 1u) > buf_len(b))
		return SD_ERR_BAD_FIELD;
	return 0;
}

int
v4msg_listing_entry(struct buf *b, struct v4_file_entry *e)
{
	int r;

	memset(e, 0, sizeof(*e));
	if ((r = buf_get_u64(b, &e->size)) != 0 || (r = buf_get_u64(b, &e->uploaded)) != 0 ||
	    (r = buf_get_bytes(b, e->sha256, V4_SHA256_SIZE)) != 0 ||
	    (r = v4msg_get_str(b, e->name, sizeof(e->name), V4_NAME_MAX_LEN, 0)) != 0)
		return r;
	return 0;
}

int
v4msg_get_data_decode(struct buf *b, uint64_t *offset)
{
	return buf_get_u64(b, offset);
}

int
v4msg_get_end_decode(struct buf *b, struct v4_get_end *e)
{
	int r;

	memset(e, 0, sizeof(*e));
	if ((r = buf_get_u64(b, &e->size)) != 0 ||
	    (r = buf_get_bytes(b, e->sha256, V4_SHA256_SIZE)) != 0)
		return r;
	return end(b);
}

int
v4msg_error_decode(struct buf *b, struct v4_error *e)
{
	int r;

	memset(e, 0, sizeof(*e));
	if ((r = buf_get_u16(b, &e->reason)) != 0 ||
	    (r = v4msg_get_str(b, e->message, sizeof(e->message), V4_MESSAGE_MAX_LEN, 1)) != 0)
		return r;
	return end(b);
}

const char *
v4msg_reason_name(uint16_t reason)
{
	switch (reason) {
	case V4_REASON_BAD_REQUEST: return "bad request";
	case V4_REASON_NAME_TAKEN: return "name taken";
	case V4_REASON_NOT_REGISTERED: return "not registered";
	case V4_REASON_NOT_PROVEN: return "not proven";
	case V4_REASON_NOT_FOUND: return "not found";
	case V4_REASON_MISMATCH: return "mismatch";
	case V4_REASON_TOO_LARGE: return "too large";
	case V4_REASON_BUSY: return "server busy";
	case V4_REASON_STORAGE: return "storage failure";
	default: return "unknown reason";
	}
}

const char *
v4msg_code_name(uint16_t code)
{
	switch (code) {
	case REQ4_REGISTER: return "REGISTER";
	case REQ4_LINK: return "LINK";
	case REQ4_PROVE: return "PROVE";
	case REQ4_WHOAMI: return "WHOAMI";
	case REQ4_PUT_OPEN: return "PUT_OPEN";
	case REQ4_PUT_DATA: return "PUT_DATA";
	case REQ4_PUT_FINISH: return "PUT_FINISH";
	case REQ4_PUT_ABORT: return "PUT_ABORT";
	case REQ4_LIST: return "LIST";
	case REQ4_GET: return "GET";
	case REQ4_DELETE: return "DELETE";
	case RESP4_WELCOME: return "WELCOME";
	case RESP4_UNKNOWN: return "UNKNOWN";
	case RESP4_CHALLENGE: return "CHALLENGE";
	case RESP4_PUT_STATE: return "PUT_STATE";
	case RESP4_PUT_DONE: return "PUT_DONE";
	case RESP4_LISTING: return "LISTING";
	case RESP4_GET_DATA: return "GET_DATA";
	case RESP4_GET_END: return "GET_END";
	case RESP4_OK: return "OK";
	case RESP4_ERROR: return "ERROR";
	default: return "unknown";
	}
}
