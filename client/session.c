/* session.c: the client's protocol flow: register or reconnect, send the file (send.c), and run
 * the CRC loop, with the retry rules of SPEC.md 5-7. Reads the server's replies through one
 * frame parser; sends the small requests itself. */
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../protocol/codes.h"
#include "../protocol/aes.h"
#include "../protocol/crypto.h"
#include "../protocol/err.h"
#include "../protocol/hex.h"
#include "../protocol/frame.h"
#include "../protocol/msg.h"
#include "../protocol/rsa.h"
#include "files.h"
#include "me_info.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "progress.h"
#include "send.h"

/* A response, decoded by code. */
struct reply {
	struct msg_header h;
	uint8_t id[CLIENT_ID_SIZE];   /* 1600, 1604, 1606 */
	struct msg_aes_key key;       /* 1602, 1605 */
	struct msg_file_crc crc;      /* 1603 */
};

struct session {
	const struct session_config *cfg;
	int fd;
	int file_fd;
	uint64_t file_size;
	struct file_stamp stamp;          /* the file when the last upload of it began */
	char file_name[NAME_FIELD_SIZE];  /* the base name sent in 828 and 900-902 */
	uint8_t id[CLIENT_ID_SIZE];
	struct me_info me;
	int have_me;
	uint8_t aes_key[AES_KEY_SIZE];
	int have_key;
	uint32_t crc;                     /* of the plaintext sent in the last upload */
	struct frame_parser parser;
	uint8_t in[4096];
	size_t in_off;
	size_t in_len;
	size_t msg_bytes;                 /* bytes of the response the parser is gathering */
	struct progress progress;
	int upload_no;
};

/* What a step sends; returns 0 or an exit status. */
typedef int (*send_fn)(struct session *s, void *ctx);
/* Checks a reply's meaning (e.g. the wrapped key unwraps); 0 or -1 (counts as a bad reply). */
typedef int (*check_fn)(struct session *s, const struct reply *r);

static void
progress_hook(void *ctx)
{
	progress_clear(ctx);
}

static int
conn_error(struct session *s, const char *what)
{
	if (errno == ETIMEDOUT)
		log_fatal("%s: the server sent nothing for %d.%03d s (read timeout)", what,
		    s->cfg->timeout_ms / 1000, s->cfg->timeout_ms % 1000);
	else
		log_fatal("%s: connection lost (%s)", what, strerror(errno));
	return CX_CONNECTION;
}

/* ---- sending ---- */

static int
send_bytes(struct session *s, const void *a, size_t a_len, const void *b, size_t b_len,
    const char *what)
{
	if (net_send2(s->fd, a, a_len, b, b_len, s->cfg->timeout_ms) != 0)
		return conn_error(s, what);
	return 0;
}

/* Sends a small request (825, 826, 827, 900-902). */
static int
send_request(struct session *s, const struct buf *b, uint16_t code)
{
	log_verbose("-> %u %s (%zu payload bytes)", code, msg_code_name(code),
	    buf_len(b) - REQ_HEADER_SIZE);
	return send_bytes(s, buf_ptr(b), buf_len(b), NULL, 0, msg_code_name(code));
}

static int
send_name_request(struct session *s, uint16_t code, const uint8_t id[CLIENT_ID_SIZE],
    const char *text)
{
	uint8_t mem[REQ_HEADER_SIZE + PAYLOAD_NAME_SIZE];
	struct buf b;
	int r;

	buf_fixed(&b, mem, sizeof(mem));
	if ((r = msg_put_name_request(&b, id, code, text)) != 0) {
		log_fatal("cannot encode request %u: %s", code, sd_strerror(r));
		return CX_SERVER;
	}
	return send_request(s, &b, code);
}

/* ---- receiving ---- */

/* exchange() and read_reply() flags. */
#define EX_SKIP_ACKS 1u   /* pass over stray 1604s while waiting (before a 1603) */
#define EX_ANY_ACK 2u     /* a 1604 answers, whatever its payload (after 900 and 902) */

/* 1: the parser holds a complete 1604 header whose payload has not (all) come. frame.h fills
 * parser.header as soon as a header is complete; msg_bytes counts this message's bytes. */
static int
ack_pending(const struct session *s)
{
	return s->msg_bytes >= RESP_HEADER_SIZE && s->parser.header.code == RESP_ACK;
}

/* After 900 or 902 the 1604's code is the answer; what follows its header is not needed. Some
 * servers send no payload, some more than 16 bytes, some announce 255, send 16 and close: each
 * of them stored the file, so each is a confirmation. */
static int
ack_header_only(struct session *s, struct reply *rep, const char *how)
{
	memset(rep, 0, sizeof(*rep));
	rep->h = s->parser.header;
	log_verbose("<- %u %s announcing %u payload bytes, %zu received: %s; the 1604 is the "
	    "answer", rep->h.code, msg_code_name(rep->h.code), rep->h.payload_size,
	    s->msg_bytes - RESP_HEADER_SIZE, how);
	return 0;
}

/* Feeds the parser until it completes a response (*ev). 0 or an exit status; with EX_ANY_ACK,
 * 1 when a 1604 header came but its payload did not (the connection ended, the rest is more
 * than a reply may hold, or did not come within SESSION_ACK_WAIT_MS): *how says which. */
static int
read_frame(struct session *s, struct frame_event *ev, const char *what, int timeout_ms,
    unsigned flags, const char **how)
{
	long long ack_deadline = 0;
	size_t used, got;
	int r, wait;

	for (;;) {
		if (s->in_off < s->in_len) {
			r = frame_feed(&s->parser, s->in + s->in_off, s->in_len - s->in_off, &used,
			    ev);
			s->in_off += used;
			s->msg_bytes += used;
			if (r == SD_ERR_TOO_LARGE && (flags & EX_ANY_ACK) && ack_pending(s)) {
				*how = "more than a reply may hold, not read";
				return 1;
			}
			if (r != 0) {
				log_fatal("%s: the server broke the protocol framing (%s)", what,
				    sd_strerror(r));
				return CX_SERVER;
			}
			if (ev->type == FRAME_MESSAGE) {
				s->msg_bytes = 0;
				return 0;
			}
			if (ev->type != FRAME_NEED_MORE) {
				/* Responses are never streamed; an 828-like event is a broken peer. */
				log_fatal("%s: unexpected stream from the server", what);
				return CX_SERVER;
			}
			continue;
		}
		wait = timeout_ms;
		if ((flags & EX_ANY_ACK) && ack_pending(s)) {
			if (ack_deadline == 0)
				ack_deadline = net_now_ms() + SESSION_ACK_WAIT_MS;
			wait = (int)(ack_deadline - net_now_ms());
			if (wait <= 0) {
				*how = "the rest did not come";
				return 1;
			}
		}
		s->in_off = s->in_len = 0;
		r = net_recv(s->fd, s->in, sizeof(s->in), &got, wait);
		if ((r != 0 || got == 0) && (flags & EX_ANY_ACK) && ack_pending(s)) {
			*how = r != 0 && errno == ETIMEDOUT ? "the rest did not come" :
			    "then the server closed the connection";
			return 1;
		}
		if (r != 0)
			return conn_error(s, what);
		if (got == 0) {
			log_fatal("%s: the server closed the connection", what);
			return CX_CONNECTION;
		}
		s->in_len = got;
	}
}

/* Reads the next response. 0, or an exit status (connection lost, timeout, framing broken).
 * *decoded: its payload has the size and form of its code. */
static int
read_reply(struct session *s, struct reply *rep, int *decoded, const char *what, int timeout_ms,
    unsigned flags)
{
	struct frame_event ev;
	const char *how = NULL;
	long want;
	int r;

	memset(rep, 0, sizeof(*rep));
	*decoded = 0;
	if ((r = read_frame(s, &ev, what, timeout_ms, flags, &how)) == 1)
		return ack_header_only(s, rep, how);
	if (r != 0)
		return r;
	rep->h = *ev.header;
	log_verbose("<- %u %s (%u payload bytes)", rep->h.code, msg_code_name(rep->h.code),
	    rep->h.payload_size);
	want = msg_fixed_payload_size(rep->h.code);
	if (want < 0 || (size_t)want != ev.len)
		return 0;
	switch (rep->h.code) {
	case RESP_REGISTERED:
	case RESP_ACK:
	case RESP_RECONNECT_DENIED:
		r = msg_client_id_decode(ev.data, ev.len, rep->id);
		break;
	case RESP_AES_KEY:
	case RESP_RECONNECTED:
		r = msg_aes_key_decode(ev.data, ev.len, &rep->key);
		break;
	case RESP_FILE_CRC:
		r = msg_file_crc_decode(ev.data, ev.len, &rep->crc);
		break;
	default:
		r = 0;
		break;
	}
	*decoded = r == 0;
	return 0;
}

static int
code_in(uint16_t code, const uint16_t *want, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (want[i] == code)
			return 1;
	return 0;
}

/* Replies still coming when a step is retried (more 1607s for the rest of a failed upload) must
 * not be taken as answers to the retry: read and drop them until the server falls quiet for
 * SESSION_DRAIN_MS. */
static int
drain_errors(struct session *s)
{
	struct reply rep;
	int decoded, r;

	while (s->in_off < s->in_len || net_wait_readable(s->fd, SESSION_DRAIN_MS)) {
		if ((r = read_reply(s, &rep, &decoded, "reading the server's errors",
		    s->cfg->timeout_ms, 0)) != 0)
			return r;
		if (rep.h.code != RESP_ERROR)
			log_verbose("ignored a stray %u after an error", rep.h.code);
	}
	return 0;
}

/* One step of SPEC.md 7: send, read the reply; on 1607, an unexpected code, a payload that does
 * not decode, or a check that fails: say so and send again, SESSION_MAX_ATTEMPTS times in all.
 * flags: EX_SKIP_ACKS, EX_ANY_ACK, or 0. */
static int
exchange(struct session *s, const char *what, send_fn send, void *ctx, const uint16_t *want,
    size_t nwant, unsigned flags, check_fn check, struct reply *rep)
{
	int attempt, r, decoded, strays;
	char cause[160] = "";

	for (attempt = 1; attempt <= SESSION_MAX_ATTEMPTS; attempt++) {
		if (attempt > 1) {
			log_note("retrying %s (attempt %d of %d)", what, attempt,
			    SESSION_MAX_ATTEMPTS);
			if ((r = drain_errors(s)) != 0)
				return r;
		}
		if ((r = send(s, ctx)) != 0)
			return r;
		strays = 0;
		for (;;) {
			if ((r = read_reply(s, rep, &decoded, what, s->cfg->timeout_ms, flags)) != 0)
				return r;
			if ((flags & EX_SKIP_ACKS) && rep->h.code == RESP_ACK &&
			    strays < SESSION_MAX_STRAY_ACKS) {
				log_verbose("skipped a stray 1604 %s", msg_code_name(RESP_ACK));
				strays++;
				continue;
			}
			break;
		}
		if ((flags & EX_ANY_ACK) && rep->h.code == RESP_ACK) {
			/* Whatever it carries: a 900 answered with 1604 is never sent again. */
			return 0;
		} else if (rep->h.code == RESP_ERROR) {
			snprintf(cause, sizeof(cause), "the server answered 1607 (general error)");
		} else if (!code_in(rep->h.code, want, nwant)) {
			snprintf(cause, sizeof(cause), "unexpected reply %u (%s)", rep->h.code,
			    msg_code_name(rep->h.code));
		} else if (!decoded) {
			snprintf(cause, sizeof(cause), "malformed reply %u (payload of %u bytes)",
			    rep->h.code, rep->h.payload_size);
		} else if (check != NULL && check(s, rep) != 0) {
			snprintf(cause, sizeof(cause), "reply %u carries a key that does not unwrap "
			    "with our private key", rep->h.code);
		} else {
			return 0;
		}
		log_error("server responded with an error: %s: %s", what, cause);
	}
	log_fatal("%s failed %d times: %s", what, SESSION_MAX_ATTEMPTS, cause);
	return CX_SERVER;
}

/* ---- register and reconnect ---- */

struct name_req {
	uint16_t code;
	const uint8_t *id;
	const char *name;
};

static int
send_name_cb(struct session *s, void *ctx)
{
	const struct name_req *q = ctx;

	return send_name_request(s, q->code, q->id, q->name);
}

struct key_req {
	const uint8_t *id;
	uint8_t spki[PUBLIC_KEY_SIZE];
};

static int
send_key_cb(struct session *s, void *ctx)
{
	struct key_req *q = ctx;
	uint8_t mem[REQ_HEADER_SIZE + PAYLOAD_PUBLIC_KEY_SIZE];
	struct buf b;
	int r;

	buf_fixed(&b, mem, sizeof(mem));
	if ((r = msg_put_public_key_request(&b, q->id, s->cfg->name, q->spki)) != 0) {
		log_fatal("cannot encode request 826: %s", sd_strerror(r));
		return CX_SERVER;
	}
	return send_request(s, &b, REQ_PUBLIC_KEY);
}

static int
unwrap_check(struct session *s, const struct reply *rep)
{
	if (s->me.key == NULL ||
	    rsa_oaep_unwrap(s->me.key, rep->key.wrapped_key, s->aes_key) != 0)
		return -1;
	s->have_key = 1;
	return 0;
}

static void
check_reply_id(struct session *s, const uint8_t id[CLIENT_ID_SIZE], uint16_t code)
{
	char ours[2 * CLIENT_ID_SIZE + 1], theirs[2 * CLIENT_ID_SIZE + 1];

	if (memcmp(id, s->id, CLIENT_ID_SIZE) == 0)
		return;
	hex_encode(s->id, CLIENT_ID_SIZE, ours);
	hex_encode(id, CLIENT_ID_SIZE, theirs);
	log_verbose("reply %u names client %s, we are %s", code, theirs, ours);
}

/* New key pair, me.info and priv.key for s->id, then 826 and the AES key from 1602. */
static int
send_new_key(struct session *s)
{
	static const uint16_t want[] = { RESP_AES_KEY };
	struct rsa_private *key = NULL;
	struct key_req q;
	struct reply rep;
	char why[WHY_MAX];
	int r;

	if ((r = me_info_new_key(&key, q.spki, why, sizeof(why))) != 0) {
		log_fatal("%s", why);
		r = CX_ME_INFO;
		goto out;
	}
	if ((r = me_info_write(s->cfg->me_path, s->cfg->priv_path, s->cfg->name, s->id, key, why,
	    sizeof(why))) != 0) {
		log_fatal("%s", why);
		r = CX_ME_INFO;
		goto out;
	}
	log_verbose("wrote %s and %s (mode 0600)", s->cfg->me_path, s->cfg->priv_path);
	me_info_clear(&s->me);
	snprintf(s->me.name, sizeof(s->me.name), "%s", s->cfg->name);
	memcpy(s->me.id, s->id, CLIENT_ID_SIZE);
	s->me.key = key;
	key = NULL;
	s->have_me = 1;
	q.id = s->id;
	if ((r = exchange(s, "sending the public key (826)", send_key_cb, &q, want, 1, 0,
	    unwrap_check, &rep)) != 0)
		goto out;
	check_reply_id(s, rep.key.client_id, RESP_AES_KEY);
	log_note("public key sent, AES key received");
	r = 0;
out:
	rsa_private_free(key);
	return r;
}

/* 825; on 1600 a new identity. denied_id: the ID a 1606 carried (SPEC.md 6), or NULL. */
static int
do_register(struct session *s, const uint8_t *denied_id, const uint8_t *sent_id)
{
	static const uint16_t want[] = { RESP_REGISTERED, RESP_REGISTER_FAILED };
	static const uint8_t zero_id[CLIENT_ID_SIZE];
	struct name_req q = { REQ_REGISTER, zero_id, s->cfg->name };
	struct reply rep;
	char hex[2 * CLIENT_ID_SIZE + 1];
	int r;

	if ((r = exchange(s, "registering (825)", send_name_cb, &q, want, 2, 0, NULL, &rep)) != 0)
		return r;
	if (rep.h.code == RESP_REGISTER_FAILED) {
		/* A server that registered the name on the spot when it denied the reconnect put
		 * the new ID in its 1606; an echo of our own ID is no such registration. */
		if (denied_id != NULL && !bytes_zero(denied_id, CLIENT_ID_SIZE) &&
		    (sent_id == NULL || memcmp(denied_id, sent_id, CLIENT_ID_SIZE) != 0)) {
			memcpy(s->id, denied_id, CLIENT_ID_SIZE);
			hex_encode(s->id, CLIENT_ID_SIZE, hex);
			log_note("registration refused; continuing under the ID %s from 1606", hex);
			return send_new_key(s);
		}
		log_fatal("the server refused to register '%s' (1601: the name is taken or "
		    "invalid)", s->cfg->name);
		return CX_REFUSED;
	}
	memcpy(s->id, rep.id, CLIENT_ID_SIZE);
	hex_encode(s->id, CLIENT_ID_SIZE, hex);
	log_note("registered as '%s', ID %s", s->cfg->name, hex);
	return send_new_key(s);
}

static int
do_reconnect(struct session *s)
{
	static const uint16_t want[] = { RESP_RECONNECTED, RESP_RECONNECT_DENIED };
	uint8_t sent_id[CLIENT_ID_SIZE];
	struct name_req q;
	struct reply rep;
	int r;

	memcpy(s->id, s->me.id, CLIENT_ID_SIZE);
	memcpy(sent_id, s->id, CLIENT_ID_SIZE);
	q.code = REQ_RECONNECT;
	q.id = s->id;
	q.name = s->cfg->name;
	if ((r = exchange(s, "reconnecting (827)", send_name_cb, &q, want, 2, 0, NULL, &rep)) != 0)
		return r;
	if (rep.h.code == RESP_RECONNECTED) {
		/* Checked here rather than in exchange(): only 1605 carries a key. */
		if (unwrap_check(s, &rep) == 0) {
			check_reply_id(s, rep.key.client_id, RESP_RECONNECTED);
			log_note("reconnected, AES key received");
			return 0;
		}
		/* The retry of 827 gets a fresh key; give it the remaining attempts. */
		log_error("server responded with an error: reconnecting (827): the key in 1605 "
		    "does not unwrap with our private key");
		return exchange(s, "reconnecting (827)", send_name_cb, &q,
		    (const uint16_t[]){ RESP_RECONNECTED }, 1, 0, unwrap_check, &rep);
	}
	log_note("the server denied the reconnect (1606); registering anew");
	return do_register(s, rep.id, sent_id);
}

/* ---- the file ---- */

static void
session_layout(const struct session_config *cfg, struct send_layout *l)
{
	memset(l, 0, sizeof(*l));
	l->packet_size = cfg->packet_size;
	l->packet_size_fixed = cfg->packet_size_fixed;
	l->first_packet = cfg->first_packet;
	l->pad_last_packet = cfg->pad_last_packet;
	l->per_packet = cfg->per_packet;
	l->single_packet = cfg->single_packet;
	l->paced = cfg->paced;
}

int
session_plan(const struct session_config *cfg, uint64_t plain_size, uint32_t *packet_size,
    uint32_t *packets, uint64_t *cipher_size)
{
	struct send_layout l;

	session_layout(cfg, &l);
	return send_plan(&l, plain_size, packet_size, packets, cipher_size);
}

/* One upload of the whole file (send.c): reads it from the start, so a resend after 901 or a
 * retry after 1607 sends it again in full. Sets s->crc. */
static int
send_file_cb(struct session *s, void *ctx)
{
	struct send_layout l;
	struct send_job job;
	char label[96];
	int r;

	(void)ctx;
	session_layout(s->cfg, &l);
	memset(&job, 0, sizeof(job));
	job.sock = s->fd;
	job.timeout_ms = s->cfg->timeout_ms;
	job.file_fd = s->file_fd;
	job.file_path = s->cfg->file_path;
	job.file_size = s->file_size;
	job.file_name = s->file_name;
	job.client_id = s->id;
	job.aes_key = s->aes_key;
	job.upload_no = ++s->upload_no;
	job.progress = &s->progress;
	snprintf(label, sizeof(label), "sealdrop-client: %.60s", s->file_name);
	progress_start(&s->progress, s->cfg->progress, s->file_size, label);
	if (file_stamp_get(s->file_fd, &s->stamp) != 0) {
		log_fatal("cannot read %s: %s", s->cfg->file_path, strerror(errno));
		return CX_FILE;
	}
	r = send_file(&l, &job, &s->crc);
	if (r == 0)
		progress_finish(&s->progress);
	else
		progress_clear(&s->progress);
	return r;
}

static int
crc_loop(struct session *s)
{
	static const uint16_t want_crc[] = { RESP_FILE_CRC };
	static const uint16_t want_ack[] = { RESP_ACK };
	struct name_req q = { 0, s->id, s->file_name };
	struct reply rep;
	int attempt, r;

	for (attempt = 1; attempt <= SESSION_MAX_UPLOADS; attempt++) {
		if ((r = exchange(s, "sending the file (828)", send_file_cb, NULL, want_crc, 1,
		    EX_SKIP_ACKS, NULL, &rep)) != 0)
			return r;
		check_reply_id(s, rep.crc.client_id, RESP_FILE_CRC);
		if (file_stamp_changed(s->file_fd, s->cfg->file_path, &s->stamp)) {
			/* The CRC covers what was read, which may be torn: never confirmed. */
			q.code = REQ_CRC_FAIL;
			if ((r = exchange(s, "giving up on the file (902)", send_name_cb, &q,
			    want_ack, 1, EX_ANY_ACK, NULL, &rep)) != 0)
				return r;
			log_fatal("%s changed while it was being sent; sent 902, the server keeps "
			    "it unverified", s->cfg->file_path);
			return CX_FILE;
		}
		if (rep.crc.cksum == s->crc) {
			log_verbose("CRC %u matches (server: content_size %u)", s->crc,
			    rep.crc.content_size);
			q.code = REQ_CRC_OK;
			if ((r = exchange(s, "confirming the CRC (900)", send_name_cb, &q, want_ack,
			    1, EX_ANY_ACK, NULL, &rep)) != 0)
				return r;
			log_note("%s sent; the server confirmed its CRC %u", s->file_name, s->crc);
			return CX_OK;
		}
		log_warn("CRC mismatch on upload %d of %d: ours %u, the server's %u", attempt,
		    SESSION_MAX_UPLOADS, s->crc, rep.crc.cksum);
		if (attempt < SESSION_MAX_UPLOADS) {
			/* 901 gets no reply (SPEC.md 3): send it and the file again at once. */
			if ((r = send_name_request(s, REQ_CRC_RETRY, s->id, s->file_name)) != 0)
				return r;
			continue;
		}
	}
	q.code = REQ_CRC_FAIL;
	if ((r = exchange(s, "giving up on the CRC (902)", send_name_cb, &q, want_ack, 1,
	    EX_ANY_ACK, NULL, &rep)) != 0)
		return r;
	log_fatal("the CRC did not match after %d uploads; sent 902, the file stays unverified",
	    SESSION_MAX_UPLOADS);
	return CX_CRC;
}

/* ---- the session ---- */

static int
open_file(struct session *s)
{
	const char *p = s->cfg->file_path;
	char why[WHY_MAX];

	if (file_open_upload(p, NAME_MAX_LEN, s->file_name, &s->file_fd, &s->file_size, why,
	    sizeof(why)) != 0) {
		log_fatal("%s", why);
		return CX_FILE;
	}
	if (aes_cbc_ciphertext_size(s->file_size) > UINT32_MAX) {
		log_fatal("%s has %llu bytes; the protocol's 32-bit sizes allow at most %llu",
		    p, (unsigned long long)s->file_size,
		    (unsigned long long)(UINT32_MAX / AES_BLOCK_SIZE * AES_BLOCK_SIZE - 1));
		return CX_FILE;
	}
	return 0;
}

int
session_run(const struct session_config *cfg)
{
	struct session *s;
	char why[WHY_MAX];
	uint32_t ps, packets;
	uint64_t cipher;
	int r;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_fatal("out of memory");
		return CX_FILE;
	}
	s->cfg = cfg;
	s->fd = -1;
	s->file_fd = -1;
	log_set_hook(progress_hook, &s->progress);

	/* Everything local first: no connection for a session that cannot succeed. */
	if ((r = open_file(s)) != 0)
		goto out;
	if (session_plan(cfg, s->file_size, &ps, &packets, &cipher) != 0) {
		log_fatal("%s needs more than %u packets of %u bytes; choose a larger "
		    "--packet-size", cfg->file_path, SEND_MAX_PACKETS, cfg->packet_size);
		r = CX_FILE;
		goto out;
	}
	r = me_info_load(cfg->me_path, cfg->priv_path, &s->me, why, sizeof(why));
	if (r == 0) {
		s->have_me = 1;
		if (strcmp(s->me.name, cfg->name) != 0)
			log_warn("%s holds the name '%s'; using '%s' from transfer.info",
			    cfg->me_path, s->me.name, cfg->name);
	} else if (r != SD_ERR_NOT_FOUND) {
		log_fatal("%s (fix or remove it to register anew)", why);
		r = CX_ME_INFO;
		goto out;
	}

	if (net_connect(cfg->host, cfg->port, cfg->connect_timeout_ms, &s->fd, why,
	    sizeof(why)) != 0) {
		log_fatal("%s", why);
		r = CX_CONNECT;
		goto out;
	}
	log_verbose("connected to %s port %s", cfg->host, cfg->port);
	frame_init(&s->parser, FRAME_RESPONSES);

	r = s->have_me ? do_reconnect(s) : do_register(s, NULL, NULL);
	if (r != 0)
		goto out;
	r = crc_loop(s);
out:
	log_set_hook(NULL, NULL);
	if (s->fd >= 0)
		close(s->fd);
	if (s->file_fd >= 0)
		close(s->file_fd);
	me_info_clear(&s->me);
	crypto_wipe(s->aes_key, sizeof(s->aes_key));
	crypto_wipe(s, sizeof(*s));
	free(s);
	return r;
}
