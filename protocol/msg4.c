/* msg4.c: encode and decode every version-4 request and response (msg4.h, SPEC-v4.md 3).
 * Each decoder reads its payload as one column in wire order and rejects what is left over;
 * each encoder builds the whole message in a local buffer first, so a failure appends
 * nothing to the caller's. */
#include <string.h>

#include "err.h"
#include "msg.h"
#include "msg4.h"
#include "text.h"

/* The largest message built in one piece: a 1619 with the longest message. */
#define MSG4_ENCODE_MAX (RESP_HEADER_SIZE + V4_ERROR_PAYLOAD_MAX)
/* The smallest listing entry: a one-byte name. */
#define V4_LISTING_ENTRY_MIN (8u + 8u + V4_SHA256_SIZE + V4_STR_LEN_SIZE + 1u)

int msg4_is_request_code(uint16_t code)
{
	return (code >= REQ4_REGISTER && code <= REQ4_WHOAMI) ||
	    (code >= REQ4_PUT_OPEN && code <= REQ4_PUT_ABORT) ||
	    (code >= REQ4_LIST && code <= REQ4_DELETE);
}

int msg4_is_response_code(uint16_t code)
{
	return code >= RESP4_WELCOME && code <= RESP4_ERROR;
}

uint32_t msg4_payload_max(uint16_t code)
{
	switch (code) {
	case REQ4_REGISTER: return V4_REGISTER_PAYLOAD_MAX;
	case REQ4_LINK: return V4_LINK_PAYLOAD_MAX;
	case REQ4_PROVE: return V4_NONCE_SIZE;
	case REQ4_PUT_OPEN: return V4_PUT_OPEN_PAYLOAD_MAX;
	case REQ4_PUT_DATA: return V4_PUT_DATA_PAYLOAD_MAX;
	case REQ4_PUT_FINISH: return V4_SHA256_SIZE;
	case REQ4_GET: return V4_PUT_OPEN_PAYLOAD_MAX;
	case REQ4_DELETE: return V4_NAME_FIELD_MAX;
	case RESP4_WELCOME: return V4_WELCOME_PAYLOAD_MAX;
	case RESP4_CHALLENGE: return V4_CHALLENGE_SIZE;
	case RESP4_PUT_STATE: return V4_PUT_STATE_SIZE;
	case RESP4_PUT_DONE: return V4_PUT_DONE_PAYLOAD_MAX;
	case RESP4_LISTING: return V4_LISTING_PAYLOAD_MAX;
	case RESP4_GET_DATA: return V4_GET_DATA_PAYLOAD_MAX;
	case RESP4_GET_END: return V4_GET_END_SIZE;
	case RESP4_ERROR: return V4_ERROR_PAYLOAD_MAX;
	default: return 0;  /* empty codes (843 853 860 1611 1618) and codes outside version 4 */
	}
}

uint32_t msg4_stream_head_size(uint16_t code)
{
	switch (code) {
	case REQ4_PUT_DATA: return V4_PUT_DATA_HEAD_SIZE;
	case RESP4_LISTING: return V4_LISTING_HEAD_SIZE;
	case RESP4_GET_DATA: return V4_GET_DATA_HEAD_SIZE;
	default: return 0;
	}
}

const char *msg4_code_name(uint16_t code)
{
	switch (code) {
	case REQ4_REGISTER: return "register";
	case REQ4_LINK: return "link";
	case REQ4_PROVE: return "prove";
	case REQ4_WHOAMI: return "whoami";
	case REQ4_PUT_OPEN: return "put open";
	case REQ4_PUT_DATA: return "put data";
	case REQ4_PUT_FINISH: return "put finish";
	case REQ4_PUT_ABORT: return "put abort";
	case REQ4_LIST: return "list";
	case REQ4_GET: return "get";
	case REQ4_DELETE: return "delete";
	case RESP4_WELCOME: return "welcome";
	case RESP4_UNKNOWN: return "unknown account";
	case RESP4_CHALLENGE: return "challenge";
	case RESP4_PUT_STATE: return "put state";
	case RESP4_PUT_DONE: return "put done";
	case RESP4_LISTING: return "listing";
	case RESP4_GET_DATA: return "get data";
	case RESP4_GET_END: return "get end";
	case RESP4_OK: return "ok";
	case RESP4_ERROR: return "error";
	default: return "unknown";
	}
}

const char *msg4_reason_name(uint16_t reason)
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

/* --- Strings ------------------------------------------------------------------------- */

/* Well-formed UTF-8 (text.h's decoder, the one both sides use) with no NUL. */
static int utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0, len;

	while (i < n) {
		if (s[i] == 0 || (len = text_utf8_len(s + i, n - i)) == 0)
			return 0;
		i += len;
	}
	return 1;
}

int msg4_name_valid(const char *s, size_t n)
{
	return s != NULL && n >= 1 && n <= V4_NAME_MAX_LEN && utf8_valid((const uint8_t *)s, n);
}

/* `len u16 | bytes` into out (max + 1 bytes), NUL-terminated. A length over max is
 * SD_ERR_TOO_LARGE, an empty one (when min is 1) or bad UTF-8 SD_ERR_BAD_STRING. */
static int get_str(struct buf *b, char *out, size_t min, size_t max)
{
	uint16_t len;
	int r;

	if ((r = buf_get_u16(b, &len)) != 0)
		return r;
	if (len > max)
		return SD_ERR_TOO_LARGE;
	if (len < min)
		return SD_ERR_BAD_STRING;
	if ((r = buf_get_bytes(b, out, len)) != 0)
		return r;
	out[len] = '\0';
	if (!utf8_valid((const uint8_t *)out, len))
		return SD_ERR_BAD_STRING;
	return 0;
}

static int get_name(struct buf *b, char out[V4_NAME_BUF])
{
	return get_str(b, out, 1, V4_NAME_MAX_LEN);
}

/* A string we send: the same rules as get_str (strict). */
static int put_str(struct buf *b, const char *s, size_t min, size_t max)
{
	size_t n;
	int r;

	if (s == NULL)
		s = "";
	n = strnlen(s, max + 1);
	if (n > max)
		return SD_ERR_TOO_LARGE;
	if (n < min || !utf8_valid((const uint8_t *)s, n))
		return SD_ERR_BAD_STRING;
	if ((r = buf_put_u16(b, (uint16_t)n)) != 0)
		return r;
	return buf_put_bytes(b, s, n);
}

static int put_name(struct buf *b, const char *s)
{
	if (s == NULL)
		return SD_ERR_INVALID_ARG;
	return put_str(b, s, 1, V4_NAME_MAX_LEN);
}

static size_t name_field_size(const char *s)
{
	return V4_STR_LEN_SIZE + strnlen(s, V4_NAME_MAX_LEN + 1);
}

/* --- Decoders ------------------------------------------------------------------------ */

/* The common end of a decoder: r from the gets, then nothing may be left. */
static int finish(struct buf *b, int r)
{
	if (r == 0 && buf_len(b) != 0)
		r = SD_ERR_TRAILING;
	/* Input cut short: the payload size does not fit the code. */
	return r == SD_ERR_SHORT ? SD_ERR_BAD_SIZE : r;
}

static int args_ok(const uint8_t *p, size_t n, const void *out)
{
	return !(p == NULL && n > 0) && out != NULL;
}

static int get_u64_max(struct buf *b, uint64_t *v)
{
	int r;

	if ((r = buf_get_u64(b, v)) != 0)
		return r;
	return *v > (uint64_t)V4_FILE_SIZE_MAX ? SD_ERR_BAD_FIELD : 0;
}

/* A fixed-size payload: exactly size bytes. */
static int fixed_decode(const uint8_t *p, size_t n, uint8_t *out, size_t size)
{
	if (!args_ok(p, n, out))
		return SD_ERR_INVALID_ARG;
	memset(out, 0, size);
	if (n != size)
		return SD_ERR_BAD_SIZE;
	memcpy(out, p, size);
	return 0;
}

int msg4_empty_decode(const uint8_t *p, size_t n)
{
	if (p == NULL && n > 0)
		return SD_ERR_INVALID_ARG;
	return n == 0 ? 0 : SD_ERR_BAD_SIZE;
}

int msg4_register_decode(const uint8_t *p, size_t n, struct msg4_register *m)
{
	struct buf b;
	int r;

	if (!args_ok(p, n, m))
		return SD_ERR_INVALID_ARG;
	memset(m, 0, sizeof(*m));
	buf_view(&b, p, n);
	r = buf_get_bytes(&b, m->public_key, PUBLIC_KEY_SIZE);  /* public_key[160] */
	if (r == 0)
		r = get_name(&b, m->name);                      /* name (str) */
	if ((r = finish(&b, r)) != 0)
		memset(m, 0, sizeof(*m));
	return r;
}

int msg4_link_decode(const uint8_t *p, size_t n, struct msg4_link *m)
{
	struct buf b;
	int r;

	if (!args_ok(p, n, m))
		return SD_ERR_INVALID_ARG;
	memset(m, 0, sizeof(*m));
	buf_view(&b, p, n);
	r = get_name(&b, m->name);                              /* name (str) */
	if (r == 0)
		r = buf_get_bytes(&b, m->id, CLIENT_ID_SIZE);   /* id[16] */
	if ((r = finish(&b, r)) != 0)
		memset(m, 0, sizeof(*m));
	return r;
}

int msg4_prove_decode(const uint8_t *p, size_t n, uint8_t nonce[V4_NONCE_SIZE])
{
	return fixed_decode(p, n, nonce, V4_NONCE_SIZE);
}

int msg4_put_open_decode(const uint8_t *p, size_t n, struct msg4_put_open *m)
{
	struct buf b;
	int r;

	if (!args_ok(p, n, m))
		return SD_ERR_INVALID_ARG;
	memset(m, 0, sizeof(*m));
	buf_view(&b, p, n);
	r = get_u64_max(&b, &m->size);                          /* size u64 */
	if (r == 0)
		r = get_name(&b, m->name);                      /* name (str) */
	if ((r = finish(&b, r)) != 0)
		memset(m, 0, sizeof(*m));
	return r;
}

int msg4_put_data_decode(const uint8_t *p, size_t n, uint32_t payload_size,
    uint32_t max_chunk, struct msg4_put_data *m)
{
	struct buf b;
	uint32_t data_len;
	int r;

	if (!args_ok(p, n, m) || max_chunk < V4_MAX_CHUNK_MIN || max_chunk > V4_MAX_CHUNK_MAX)
		return SD_ERR_INVALID_ARG;
	memset(m, 0, sizeof(*m));
	if (n != V4_PUT_DATA_HEAD_SIZE || payload_size < V4_PUT_DATA_HEAD_SIZE)
		return SD_ERR_BAD_SIZE;
	data_len = payload_size - V4_PUT_DATA_HEAD_SIZE;
	buf_view(&b, p, n);
	if ((r = get_u64_max(&b, &m->offset)) != 0 ||          /* offset u64 */
	    (r = buf_get_u8(&b, &m->flags)) != 0 ||             /* flags u8 */
	    (r = buf_get_u32(&b, &m->plain_len)) != 0)          /* plain_len u32 */
		goto out;
	r = SD_ERR_BAD_FIELD;
	if ((m->flags & ~V4_PUT_FLAGS_KNOWN) != 0 || m->plain_len == 0 ||
	    m->plain_len > max_chunk ||
	    (uint64_t)V4_FILE_SIZE_MAX - m->offset < m->plain_len)
		goto out;
	r = SD_ERR_TOO_LARGE;
	if (data_len > max_chunk + V4_CHUNK_SLACK)
		goto out;
	/* Raw data is the plaintext itself; deflated data is at least one byte. */
	r = SD_ERR_BAD_SIZE;
	if ((m->flags & V4_PUT_FLAG_DEFLATE) ? data_len == 0 : data_len != m->plain_len)
		goto out;
	m->data_len = data_len;
	r = 0;
out:
	if ((r = finish(&b, r)) != 0)
		memset(m, 0, sizeof(*m));
	return r;
}

int msg4_put_finish_decode(const uint8_t *p, size_t n, uint8_t sha256[V4_SHA256_SIZE])
{
	return fixed_decode(p, n, sha256, V4_SHA256_SIZE);
}

int msg4_get_decode(const uint8_t *p, size_t n, struct msg4_get *m)
{
	struct buf b;
	int r;

	if (!args_ok(p, n, m))
		return SD_ERR_INVALID_ARG;
	memset(m, 0, sizeof(*m));
	buf_view(&b, p, n);
	r = get_u64_max(&b, &m->offset);                        /* offset u64 */
	if (r == 0)
		r = get_name(&b, m->name);                      /* name (str) */
	if ((r = finish(&b, r)) != 0)
		memset(m, 0, sizeof(*m));
	return r;
}

int msg4_delete_decode(const uint8_t *p, size_t n, char name[V4_NAME_BUF])
{
	struct buf b;
	int r;

	if (!args_ok(p, n, name))
		return SD_ERR_INVALID_ARG;
	memset(name, 0, V4_NAME_BUF);
	buf_view(&b, p, n);
	r = get_name(&b, name);                                 /* name (str) */
	if ((r = finish(&b, r)) != 0)
		memset(name, 0, V4_NAME_BUF);
	return r;
}

int msg4_welcome_decode(const uint8_t *p, size_t n, struct msg4_welcome *m)
{
	struct buf b;
	int r;

	if (!args_ok(p, n, m))
		return SD_ERR_INVALID_ARG;
	memset(m, 0, sizeof(*m));
	buf_view(&b, p, n);
	r = buf_get_bytes(&b, m->id, CLIENT_ID_SIZE);           /* id[16] */
	if (r == 0)
		r = get_name(&b, m->name);                      /* name (str) */
	if ((r = finish(&b, r)) != 0)
		memset(m, 0, sizeof(*m));
	return r;
}

int msg4_challenge_decode(const uint8_t *p, size_t n, uint8_t enc[V4_CHALLENGE_SIZE])
{
	return fixed_decode(p, n, enc, V4_CHALLENGE_SIZE);
}

int msg4_put_state_decode(const uint8_t *p, size_t n, struct msg4_put_state *m)
{
	struct buf b;
	int r;

	if (!args_ok(p, n, m))
		return SD_ERR_INVALID_ARG;
	memset(m, 0, sizeof(*m));
	buf_view(&b, p, n);
	if ((r = get_u64_max(&b, &m->offset)) != 0 ||                       /* offset u64 */
	    (r = buf_get_bytes(&b, m->prefix_sha256, V4_SHA256_SIZE)) != 0 || /* prefix[32] */
	    (r = buf_get_u32(&b, &m->max_chunk)) != 0)                      /* max_chunk u32 */
		goto out;
	if (m->max_chunk < V4_MAX_CHUNK_MIN || m->max_chunk > V4_MAX_CHUNK_MAX)
		r = SD_ERR_BAD_FIELD;
out:
	if ((r = finish(&b, r)) != 0)
		memset(m, 0, sizeof(*m));
	return r;
}

int msg4_put_done_decode(const uint8_t *p, size_t n, struct msg4_put_done *m)
{
	struct buf b;
	int r;

	if (!args_ok(p, n, m))
		return SD_ERR_INVALID_ARG;
	memset(m, 0, sizeof(*m));
	buf_view(&b, p, n);
	if ((r = get_u64_max(&b, &m->size)) == 0 &&                   /* size u64 */
	    (r = buf_get_bytes(&b, m->sha256, V4_SHA256_SIZE)) == 0 &&  /* sha256[32] */
	    (r = buf_get_u32(&b, &m->cksum)) == 0)                    /* cksum u32 */
		r = get_name(&b, m->name);                              /* stored name (str) */
	if ((r = finish(&b, r)) != 0)
		memset(m, 0, sizeof(*m));
	return r;
}

int msg4_listing_head_decode(const uint8_t *p, size_t n, uint32_t payload_size,
    uint32_t *count)
{
	struct buf b;
	uint64_t entries;
	int r;

	if (!args_ok(p, n, count))
		return SD_ERR_INVALID_ARG;
	*count = 0;
	if (n != V4_LISTING_HEAD_SIZE || payload_size < V4_LISTING_HEAD_SIZE)
		return SD_ERR_BAD_SIZE;
	if (payload_size > V4_LISTING_PAYLOAD_MAX)
		return SD_ERR_TOO_LARGE;
	buf_view(&b, p, n);
	if ((r = buf_get_u32(&b, count)) != 0)                  /* count u32 */
		return SD_ERR_BAD_SIZE;
	entries = payload_size - V4_LISTING_HEAD_SIZE;
	if (*count > V4_LISTING_COUNT_MAX)
		r = SD_ERR_TOO_LARGE;
	else if (entries < (uint64_t)*count * V4_LISTING_ENTRY_MIN ||
	    entries > (uint64_t)*count * V4_LISTING_ENTRY_MAX)
		r = SD_ERR_BAD_SIZE;
	if (r != 0)
		*count = 0;
	return r;
}

int msg4_listing_entry_get(struct buf *b, struct msg4_file_entry *e)
{
	struct buf t;
	int r;

	if (b == NULL || e == NULL)
		return SD_ERR_INVALID_ARG;
	memset(e, 0, sizeof(*e));
	/* Read from a copy of the read position: a cut entry consumes nothing. */
	t = *b;
	if ((r = get_u64_max(&t, &e->size)) != 0 ||                     /* size u64 */
	    (r = buf_get_u64(&t, &e->uploaded)) != 0 ||                 /* uploaded u64 */
	    (r = buf_get_bytes(&t, e->sha256, V4_SHA256_SIZE)) != 0 ||  /* sha256[32] */
	    (r = get_name(&t, e->name)) != 0) {                         /* name (str) */
		memset(e, 0, sizeof(*e));
		return r;
	}
	b->off = t.off;
	return 0;
}

int msg4_get_data_head_decode(const uint8_t *p, size_t n, uint64_t *offset)
{
	struct buf b;
	int r;

	if (!args_ok(p, n, offset))
		return SD_ERR_INVALID_ARG;
	*offset = 0;
	buf_view(&b, p, n);
	r = get_u64_max(&b, offset);                            /* offset u64 */
	if ((r = finish(&b, r)) != 0)
		*offset = 0;
	return r;
}

int msg4_get_end_decode(const uint8_t *p, size_t n, struct msg4_get_end *m)
{
	struct buf b;
	int r;

	if (!args_ok(p, n, m))
		return SD_ERR_INVALID_ARG;
	memset(m, 0, sizeof(*m));
	buf_view(&b, p, n);
	r = get_u64_max(&b, &m->size);                          /* size u64 */
	if (r == 0)
		r = buf_get_bytes(&b, m->sha256, V4_SHA256_SIZE); /* sha256[32] */
	if ((r = finish(&b, r)) != 0)
		memset(m, 0, sizeof(*m));
	return r;
}

int msg4_error_decode(const uint8_t *p, size_t n, struct msg4_error *m)
{
	struct buf b;
	int r;

	if (!args_ok(p, n, m))
		return SD_ERR_INVALID_ARG;
	memset(m, 0, sizeof(*m));
	buf_view(&b, p, n);
	if ((r = buf_get_u16(&b, &m->reason)) != 0)             /* reason u16 */
		goto out;
	if (m->reason < V4_REASON_MIN || m->reason > V4_REASON_MAX) {
		r = SD_ERR_BAD_FIELD;
		goto out;
	}
	r = get_str(&b, m->message, 0, V4_MESSAGE_MAX_LEN);     /* message (str) */
out:
	if ((r = finish(&b, r)) != 0)
		memset(m, 0, sizeof(*m));
	return r;
}

/* --- Encoders ------------------------------------------------------------------------ */

/* Inside TLS the request header's client_id is 16 zero bytes. */
static int put_request_header(struct buf *t, uint16_t code, uint32_t payload_size)
{
	return msg_put_request_header(t, PROTO_VERSION_4, NULL, code, payload_size);
}

static int put_response_header(struct buf *t, uint16_t code, uint32_t payload_size)
{
	return msg_put_response_header(t, PROTO_VERSION_4, code, payload_size);
}

/* Appends the message built in t; wipes the local copy (a nonce may have passed). */
static int commit(struct buf *b, struct buf *t, int r)
{
	if (r == 0)
		r = buf_put_bytes(b, buf_ptr(t), buf_len(t));
	explicit_bzero(t->data, t->cap);
	return r;
}

int msg4_put_register(struct buf *b, const uint8_t public_key[PUBLIC_KEY_SIZE],
    const char *name)
{
	uint8_t mem[MSG4_ENCODE_MAX];
	struct buf t;
	int r;

	if (b == NULL || public_key == NULL || name == NULL)
		return SD_ERR_INVALID_ARG;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = put_request_header(&t, REQ4_REGISTER,
	    (uint32_t)(PUBLIC_KEY_SIZE + name_field_size(name)))) == 0 &&
	    (r = buf_put_bytes(&t, public_key, PUBLIC_KEY_SIZE)) == 0)
		r = put_name(&t, name);
	return commit(b, &t, r);
}

int msg4_put_link(struct buf *b, const char *name, const uint8_t id[CLIENT_ID_SIZE])
{
	uint8_t mem[MSG4_ENCODE_MAX];
	struct buf t;
	int r;

	if (b == NULL || name == NULL || id == NULL)
		return SD_ERR_INVALID_ARG;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = put_request_header(&t, REQ4_LINK,
	    (uint32_t)(name_field_size(name) + CLIENT_ID_SIZE))) == 0 &&
	    (r = put_name(&t, name)) == 0)
		r = buf_put_bytes(&t, id, CLIENT_ID_SIZE);
	return commit(b, &t, r);
}

static int put_fixed_request(struct buf *b, uint16_t code, const uint8_t *p, uint32_t n)
{
	uint8_t mem[MSG4_ENCODE_MAX];
	struct buf t;
	int r;

	if (b == NULL || (p == NULL && n > 0))
		return SD_ERR_INVALID_ARG;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = put_request_header(&t, code, n)) == 0 && n > 0)
		r = buf_put_bytes(&t, p, n);
	return commit(b, &t, r);
}

int msg4_put_prove(struct buf *b, const uint8_t nonce[V4_NONCE_SIZE])
{
	if (nonce == NULL)
		return SD_ERR_INVALID_ARG;
	return put_fixed_request(b, REQ4_PROVE, nonce, V4_NONCE_SIZE);
}

int msg4_put_empty_request(struct buf *b, uint16_t code)
{
	if (code != REQ4_WHOAMI && code != REQ4_PUT_ABORT && code != REQ4_LIST)
		return SD_ERR_INVALID_ARG;
	return put_fixed_request(b, code, NULL, 0);
}

int msg4_put_put_finish(struct buf *b, const uint8_t sha256[V4_SHA256_SIZE])
{
	if (sha256 == NULL)
		return SD_ERR_INVALID_ARG;
	return put_fixed_request(b, REQ4_PUT_FINISH, sha256, V4_SHA256_SIZE);
}

/* 850 and 861: u64 then a name. */
static int put_u64_name_request(struct buf *b, uint16_t code, uint64_t v, const char *name)
{
	uint8_t mem[MSG4_ENCODE_MAX];
	struct buf t;
	int r;

	if (b == NULL || name == NULL)
		return SD_ERR_INVALID_ARG;
	if (v > (uint64_t)V4_FILE_SIZE_MAX)
		return SD_ERR_BAD_FIELD;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = put_request_header(&t, code, (uint32_t)(8u + name_field_size(name)))) == 0 &&
	    (r = buf_put_u64(&t, v)) == 0)
		r = put_name(&t, name);
	return commit(b, &t, r);
}

int msg4_put_put_open(struct buf *b, uint64_t size, const char *name)
{
	return put_u64_name_request(b, REQ4_PUT_OPEN, size, name);
}

int msg4_put_get(struct buf *b, uint64_t offset, const char *name)
{
	return put_u64_name_request(b, REQ4_GET, offset, name);
}

int msg4_put_delete(struct buf *b, const char *name)
{
	uint8_t mem[MSG4_ENCODE_MAX];
	struct buf t;
	int r;

	if (b == NULL || name == NULL)
		return SD_ERR_INVALID_ARG;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = put_request_header(&t, REQ4_DELETE, (uint32_t)name_field_size(name))) == 0)
		r = put_name(&t, name);
	return commit(b, &t, r);
}

int msg4_put_put_data_head(struct buf *b, uint64_t offset, uint8_t flags, uint32_t plain_len,
    uint32_t data_len)
{
	uint8_t mem[MSG4_ENCODE_MAX];
	struct buf t;
	int r;

	if (b == NULL)
		return SD_ERR_INVALID_ARG;
	if ((flags & ~V4_PUT_FLAGS_KNOWN) != 0 || plain_len == 0 || plain_len > V4_MAX_CHUNK_MAX ||
	    offset > (uint64_t)V4_FILE_SIZE_MAX ||
	    (uint64_t)V4_FILE_SIZE_MAX - offset < plain_len)
		return SD_ERR_BAD_FIELD;
	if (data_len > V4_MAX_CHUNK_MAX + V4_CHUNK_SLACK)
		return SD_ERR_TOO_LARGE;
	if ((flags & V4_PUT_FLAG_DEFLATE) ? data_len == 0 : data_len != plain_len)
		return SD_ERR_BAD_SIZE;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = put_request_header(&t, REQ4_PUT_DATA, V4_PUT_DATA_HEAD_SIZE + data_len)) == 0 &&
	    (r = buf_put_u64(&t, offset)) == 0 &&
	    (r = buf_put_u8(&t, flags)) == 0)
		r = buf_put_u32(&t, plain_len);
	return commit(b, &t, r);
}

int msg4_put_welcome(struct buf *b, const uint8_t id[CLIENT_ID_SIZE], const char *name)
{
	uint8_t mem[MSG4_ENCODE_MAX];
	struct buf t;
	int r;

	if (b == NULL || id == NULL || name == NULL)
		return SD_ERR_INVALID_ARG;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = put_response_header(&t, RESP4_WELCOME,
	    (uint32_t)(CLIENT_ID_SIZE + name_field_size(name)))) == 0 &&
	    (r = buf_put_bytes(&t, id, CLIENT_ID_SIZE)) == 0)
		r = put_name(&t, name);
	return commit(b, &t, r);
}

static int put_fixed_response(struct buf *b, uint16_t code, const uint8_t *p, uint32_t n)
{
	uint8_t mem[MSG4_ENCODE_MAX];
	struct buf t;
	int r;

	if (b == NULL || (p == NULL && n > 0))
		return SD_ERR_INVALID_ARG;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = put_response_header(&t, code, n)) == 0 && n > 0)
		r = buf_put_bytes(&t, p, n);
	return commit(b, &t, r);
}

int msg4_put_empty_response(struct buf *b, uint16_t code)
{
	if (code != RESP4_UNKNOWN && code != RESP4_OK)
		return SD_ERR_INVALID_ARG;
	return put_fixed_response(b, code, NULL, 0);
}

int msg4_put_challenge(struct buf *b, const uint8_t enc[V4_CHALLENGE_SIZE])
{
	if (enc == NULL)
		return SD_ERR_INVALID_ARG;
	return put_fixed_response(b, RESP4_CHALLENGE, enc, V4_CHALLENGE_SIZE);
}

int msg4_put_put_state(struct buf *b, const struct msg4_put_state *m)
{
	uint8_t mem[MSG4_ENCODE_MAX];
	struct buf t;
	int r;

	if (b == NULL || m == NULL)
		return SD_ERR_INVALID_ARG;
	if (m->offset > (uint64_t)V4_FILE_SIZE_MAX || m->max_chunk < V4_MAX_CHUNK_MIN ||
	    m->max_chunk > V4_MAX_CHUNK_MAX)
		return SD_ERR_BAD_FIELD;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = put_response_header(&t, RESP4_PUT_STATE, V4_PUT_STATE_SIZE)) == 0 &&
	    (r = buf_put_u64(&t, m->offset)) == 0 &&
	    (r = buf_put_bytes(&t, m->prefix_sha256, V4_SHA256_SIZE)) == 0)
		r = buf_put_u32(&t, m->max_chunk);
	return commit(b, &t, r);
}

int msg4_put_put_done(struct buf *b, const struct msg4_put_done *m)
{
	uint8_t mem[MSG4_ENCODE_MAX];
	struct buf t;
	int r;

	if (b == NULL || m == NULL)
		return SD_ERR_INVALID_ARG;
	if (m->size > (uint64_t)V4_FILE_SIZE_MAX)
		return SD_ERR_BAD_FIELD;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = put_response_header(&t, RESP4_PUT_DONE,
	    (uint32_t)(8u + V4_SHA256_SIZE + 4u + name_field_size(m->name)))) == 0 &&
	    (r = buf_put_u64(&t, m->size)) == 0 &&
	    (r = buf_put_bytes(&t, m->sha256, V4_SHA256_SIZE)) == 0 &&
	    (r = buf_put_u32(&t, m->cksum)) == 0)
		r = put_name(&t, m->name);
	return commit(b, &t, r);
}

int msg4_put_listing_head(struct buf *b, uint32_t count, uint32_t entries_len)
{
	uint8_t mem[MSG4_ENCODE_MAX];
	struct buf t;
	int r;

	if (b == NULL)
		return SD_ERR_INVALID_ARG;
	if (count > V4_LISTING_COUNT_MAX)
		return SD_ERR_TOO_LARGE;
	if ((uint64_t)entries_len < (uint64_t)count * V4_LISTING_ENTRY_MIN ||
	    (uint64_t)entries_len > (uint64_t)count * V4_LISTING_ENTRY_MAX)
		return SD_ERR_BAD_SIZE;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = put_response_header(&t, RESP4_LISTING, V4_LISTING_HEAD_SIZE + entries_len)) == 0)
		r = buf_put_u32(&t, count);
	return commit(b, &t, r);
}

size_t msg4_listing_entry_size(const struct msg4_file_entry *e)
{
	if (e == NULL)
		return 0;
	return 8u + 8u + V4_SHA256_SIZE + name_field_size(e->name);
}

int msg4_put_listing_entry(struct buf *b, const struct msg4_file_entry *e)
{
	uint8_t mem[MSG4_ENCODE_MAX];
	struct buf t;
	int r;

	if (b == NULL || e == NULL)
		return SD_ERR_INVALID_ARG;
	if (e->size > (uint64_t)V4_FILE_SIZE_MAX)
		return SD_ERR_BAD_FIELD;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = buf_put_u64(&t, e->size)) == 0 &&
	    (r = buf_put_u64(&t, e->uploaded)) == 0 &&
	    (r = buf_put_bytes(&t, e->sha256, V4_SHA256_SIZE)) == 0)
		r = put_name(&t, e->name);
	return commit(b, &t, r);
}

int msg4_put_get_data_head(struct buf *b, uint64_t offset, uint32_t data_len)
{
	uint8_t mem[MSG4_ENCODE_MAX];
	struct buf t;
	int r;

	if (b == NULL)
		return SD_ERR_INVALID_ARG;
	if (offset > (uint64_t)V4_FILE_SIZE_MAX)
		return SD_ERR_BAD_FIELD;
	if (data_len > V4_MAX_CHUNK_MAX)
		return SD_ERR_TOO_LARGE;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = put_response_header(&t, RESP4_GET_DATA, V4_GET_DATA_HEAD_SIZE + data_len)) == 0)
		r = buf_put_u64(&t, offset);
	return commit(b, &t, r);
}

int msg4_put_get_end(struct buf *b, const struct msg4_get_end *m)
{
	uint8_t mem[MSG4_ENCODE_MAX];
	struct buf t;
	int r;

	if (b == NULL || m == NULL)
		return SD_ERR_INVALID_ARG;
	if (m->size > (uint64_t)V4_FILE_SIZE_MAX)
		return SD_ERR_BAD_FIELD;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = put_response_header(&t, RESP4_GET_END, V4_GET_END_SIZE)) == 0 &&
	    (r = buf_put_u64(&t, m->size)) == 0)
		r = buf_put_bytes(&t, m->sha256, V4_SHA256_SIZE);
	return commit(b, &t, r);
}

int msg4_put_error(struct buf *b, uint16_t reason, const char *message)
{
	uint8_t mem[MSG4_ENCODE_MAX];
	struct buf t;
	size_t n;
	int r;

	if (b == NULL)
		return SD_ERR_INVALID_ARG;
	if (reason < V4_REASON_MIN || reason > V4_REASON_MAX)
		return SD_ERR_BAD_FIELD;
	if (message == NULL)
		message = "";
	if ((n = strnlen(message, V4_MESSAGE_MAX_LEN + 1)) > V4_MESSAGE_MAX_LEN)
		return SD_ERR_TOO_LARGE;
	buf_fixed(&t, mem, sizeof(mem));
	if ((r = put_response_header(&t, RESP4_ERROR, (uint32_t)(2u + V4_STR_LEN_SIZE + n))) == 0 &&
	    (r = buf_put_u16(&t, reason)) == 0)
		r = put_str(&t, message, 0, V4_MESSAGE_MAX_LEN);
	return commit(b, &t, r);
}
