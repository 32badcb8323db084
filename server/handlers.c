/* handlers.c: what the server does for each request (SPEC.md sections 3-6): register, public
 * key, reconnect, the 828 packets of an upload (streamed to a temporary file) and the CRC
 * verdicts. Replies are queued in the connection's output buffer. */
#include "handlers.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../db/db.h"
#include "../protocol/crypto.h"
#include "../protocol/err.h"
#include "../protocol/msg.h"
#include "../protocol/rsa.h"
#include "../protocol/text.h"
#include "conn.h"
#include "log.h"
#include "loop.h"
#include "storage.h"
#include "upload.h"

/* Before a client is known, a connection may send this many invalid requests; then it is
 * closed (Redis-style lower caps before authentication). */
#define UNKNOWN_CLIENT_MAX_ERRORS 32
/* LastSeen is written for an intermediate 828 packet at most this often. */
#define TOUCH_INTERVAL_MS 1000

/* Log lines of a request; after CONN_LOG_MAX of them a connection logs nothing more, so a
 * flood of bad requests cannot flood the log. id/name: the client the line is about. */
static void
vhlog(struct conn *c, const uint8_t *id, const char *name, const char *event,
    const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static void
vhlog(struct conn *c, const uint8_t *id, const char *name, const char *event,
    const char *fmt, va_list ap)
{
	if (c->logged > CONN_LOG_MAX)
		return;
	if (c->logged++ == CONN_LOG_MAX) {
		log_event(c->w->index, c->peer, id, name, "log", "%u events logged for this "
		    "connection; the rest are not", CONN_LOG_MAX);
		return;
	}
	log_eventv(c->w->index, c->peer, id, name, event, fmt, ap);
}

static void hlog(struct conn *c, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void hlog_as(struct conn *c, const uint8_t *id, const char *name, const char *event,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A line about the connection's own client (or "-" before one is known). */
static void
hlog(struct conn *c, const char *event, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vhlog(c, c->known ? c->id : NULL, c->known ? c->name : NULL, event, fmt, ap);
	va_end(ap);
}

/* A line about the client a request names (which may not be the connection's). */
static void
hlog_as(struct conn *c, const uint8_t *id, const char *name, const char *event,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vhlog(c, id, name, event, fmt, ap);
	va_end(ap);
}

/* Replies. A reply that does not fit the output buffer means the peer does not read while it
 * keeps sending; that cannot happen with backpressure, so it closes the connection. */
static void
queued(struct conn *c, int r)
{
	if (r != 0) {
		hlog(c, "reply", "failed: %s; closing", sd_strerror(r));
		loop_mark_closing(c);
	}
}

static void
reply_error(struct conn *c)
{
	queued(c, msg_put_empty_response(&c->out, RESP_ERROR));
	c->errors++;
	if (!c->known && c->errors > UNKNOWN_CLIENT_MAX_ERRORS) {
		hlog(c, "limit", "too many invalid requests before registration; closing");
		loop_mark_closing(c);
	}
}

static void
reply_id(struct conn *c, uint16_t code, const uint8_t id[CLIENT_ID_SIZE])
{
	queued(c, msg_put_client_id_response(&c->out, code, id));
}

static void
touch(struct conn *c, const uint8_t id[CLIENT_ID_SIZE])
{
	int r = db_client_touch(c->w->db, id);

	if (r != 0 && r != SD_ERR_NOT_FOUND)
		hlog(c, "lastseen", "failed: %s (%s)", sd_strerror(r), db_errmsg(c->w->db));
	c->last_touch_ms = c->w->now_ms;
}

/* A fresh client ID from the strong RNG; never all zeros (what 825 headers carry). */
static void
new_client_id(uint8_t id[CLIENT_ID_SIZE])
{
	static const uint8_t zero[CLIENT_ID_SIZE];

	do
		crypto_random(id, CLIENT_ID_SIZE);
	while (memcmp(id, zero, CLIENT_ID_SIZE) == 0);
}

int
handlers_name_valid(const char *name)
{
	return text_name_check(name, NULL) == 0;
}

/* Makes id the connection's identity with key as its current AES key: the reassembler gets
 * the key (an upload in progress under an older key is dropped). */
static int
set_session(struct conn *c, const uint8_t id[CLIENT_ID_SIZE], const char *name,
    const uint8_t *key)
{
	if (!c->known || memcmp(c->id, id, CLIENT_ID_SIZE) != 0) {
		conn_abort_upload(c);
		c->uploads_done = 0;
		c->awaiting_verdict = 0;
	}
	c->known = 1;
	memcpy(c->id, id, CLIENT_ID_SIZE);
	if (name != c->name)
		snprintf(c->name, sizeof(c->name), "%s", name);
	if (key == NULL) {
		c->has_key = 0;
		crypto_wipe(c->aes_key, sizeof(c->aes_key));
		return 0;
	}
	if (c->has_key && memcmp(c->aes_key, key, AES_KEY_SIZE) == 0)
		return 0;
	conn_abort_upload(c);  /* an upload under an older key cannot go on */
	memcpy(c->aes_key, key, AES_KEY_SIZE);
	c->has_key = 1;
	return 0;
}

/* A fresh AES key for client id: wrapped to its public key (spki, len), stored as the client's
 * most recent key, made the connection's key and sent in a reply of code (1602 or 1605).
 * For 826, store_spki = 1 also stores the public key (only after everything else worked, so
 * a failure leaves the client able to try 826 again). */
static int
issue_key(struct conn *c, uint16_t code, const uint8_t id[CLIENT_ID_SIZE], const char *name,
    const uint8_t *spki, size_t spki_len, int store_spki)
{
	struct rsa_public *pub = NULL;
	struct msg_aes_key reply;
	uint8_t key[AES_KEY_SIZE];
	int r;

	memset(&reply, 0, sizeof(reply));
	if ((r = rsa_public_from_spki(spki, spki_len, &pub)) != 0)
		goto out;
	crypto_random(key, sizeof(key));
	if ((r = rsa_oaep_wrap(pub, key, reply.wrapped_key)) != 0)
		goto out;
	if (store_spki && (r = db_client_set_public_key(c->w->db, id, spki, spki_len)) != 0)
		goto out;
	if ((r = db_client_set_aes_key(c->w->db, id, key)) != 0)
		goto out;
	if ((r = set_session(c, id, name, key)) != 0)
		goto out;
	memcpy(reply.client_id, id, CLIENT_ID_SIZE);
	queued(c, msg_put_aes_key_response(&c->out, code, &reply));
	r = 0;
out:
	crypto_wipe(key, sizeof(key));
	rsa_public_free(pub);
	return r;
}

/* 825: SPEC.md 6. */
static void
handle_register(struct conn *c, const struct frame_event *ev)
{
	char name[NAME_FIELD_SIZE];
	uint8_t id[CLIENT_ID_SIZE];
	int r;

	if ((r = msg_name_decode(ev->data, ev->len, name)) == SD_ERR_BAD_SIZE) {
		hlog(c, "register", "refused: %s", sd_strerror(r));
		reply_error(c);
		return;
	}
	if (r != 0 || !handlers_name_valid(name)) {
		hlog(c, "register", "refused: invalid name");
		queued(c, msg_put_empty_response(&c->out, RESP_REGISTER_FAILED));
		return;
	}
	new_client_id(id);
	if ((r = db_client_register(c->w->db, name, id)) != 0) {
		char safe[LOG_NAME_MAX + 4];

		log_sanitize(name, safe, sizeof(safe));
		if (r == SD_ERR_EXISTS) {
			hlog(c, "register", "refused: name \"%s\" taken", safe);
			queued(c, msg_put_empty_response(&c->out, RESP_REGISTER_FAILED));
		} else {
			hlog(c, "register", "failed: %s (%s)", sd_strerror(r), db_errmsg(c->w->db));
			reply_error(c);
		}
		return;
	}
	if ((r = set_session(c, id, name, NULL)) != 0) {
		hlog(c, "register", "failed: %s", sd_strerror(r));
		reply_error(c);
		return;
	}
	hlog(c, "register", "ok: 1600");
	reply_id(c, RESP_REGISTERED, id);
}

/* 826: a key for a registered client that has none; never replaces a key. */
static void
handle_public_key(struct conn *c, const struct frame_event *ev)
{
	const uint8_t *id = ev->header->client_id;
	char name[NAME_FIELD_SIZE];
	uint8_t spki[PUBLIC_KEY_SIZE];
	struct db_client cl;
	int r;

	memset(&cl, 0, sizeof(cl));
	if ((r = msg_public_key_decode(ev->data, ev->len, name, spki)) != 0) {
		hlog(c, "public key", "refused: %s", sd_strerror(r));
		goto fail;
	}
	if ((r = db_client_by_id(c->w->db, id, &cl)) != 0) {
		hlog(c, "public key", "refused: %s",
		    r == SD_ERR_NOT_FOUND ? "unknown client ID" : db_errmsg(c->w->db));
		goto fail;
	}
	if (strcmp(cl.name, name) != 0) {
		hlog(c, "public key", "refused: name does not match the ID");
		goto fail;
	}
	if (cl.has_public_key) {
		/* The ID travels in clear: replacing the key would hand the account over. */
		hlog_as(c, id, cl.name, "public key",
		    "refused: the client has a key already");
		goto fail;
	}
	if ((r = issue_key(c, RESP_AES_KEY, id, cl.name, spki, sizeof(spki), 1)) != 0) {
		hlog_as(c, id, cl.name, "public key", "refused: %s",
		    sd_strerror(r));
		goto fail;
	}
	hlog(c, "public key", "ok: 1602");
	crypto_wipe(&cl, sizeof(cl));
	return;
fail:
	crypto_wipe(&cl, sizeof(cl));
	reply_error(c);
}

/* 827: SPEC.md 6, including the pending registration of an unknown name. */
static void
handle_reconnect(struct conn *c, const struct frame_event *ev)
{
	const uint8_t *req_id = ev->header->client_id;
	char name[NAME_FIELD_SIZE];
	char safe[LOG_NAME_MAX + 4];
	uint8_t id[CLIENT_ID_SIZE];
	struct db_client cl;
	int r;

	memset(&cl, 0, sizeof(cl));
	if ((r = msg_name_decode(ev->data, ev->len, name)) != 0 || !handlers_name_valid(name)) {
		hlog(c, "reconnect", "refused: %s", r != 0 ? sd_strerror(r) : "invalid name");
		reply_error(c);
		return;
	}
	log_sanitize(name, safe, sizeof(safe));
	r = db_client_by_name(c->w->db, name, &cl);
	if (r == SD_ERR_NOT_FOUND) {
		/* Unknown name: a pending registration whose ID travels in 1606, so that clients
		 * going on with 826 and clients going on with 825 both carry on. */
		new_client_id(id);
		if ((r = db_client_register(c->w->db, name, id)) != 0) {
			hlog(c, "reconnect", "name \"%s\" unknown; registering failed: %s", safe,
			    sd_strerror(r));
			reply_id(c, RESP_RECONNECT_DENIED, req_id);
			return;
		}
		if ((r = set_session(c, id, name, NULL)) != 0) {
			reply_error(c);
			return;
		}
		hlog(c, "reconnect", "denied: unknown name, pending registration: 1606 (new ID)");
		reply_id(c, RESP_RECONNECT_DENIED, id);
		return;
	}
	if (r != 0) {
		hlog(c, "reconnect", "failed: %s (%s)", sd_strerror(r), db_errmsg(c->w->db));
		reply_error(c);
		return;
	}
	if (memcmp(cl.id, req_id, CLIENT_ID_SIZE) != 0 || !cl.has_public_key) {
		/* A known name is never handed to whoever knows it. */
		if (memcmp(cl.id, req_id, CLIENT_ID_SIZE) == 0)
			touch(c, req_id);
		hlog_as(c, req_id, name, "reconnect", "denied: %s: 1606",
		    cl.has_public_key ? "ID does not match the name" : "no public key stored");
		crypto_wipe(&cl, sizeof(cl));
		reply_id(c, RESP_RECONNECT_DENIED, req_id);
		return;
	}
	r = issue_key(c, RESP_RECONNECTED, cl.id, cl.name, cl.public_key,
	    cl.public_key_len > 0 && cl.public_key_len <= PUBLIC_KEY_SIZE ?
	    cl.public_key_len : PUBLIC_KEY_SIZE, 0);
	crypto_wipe(&cl, sizeof(cl));
	if (r != 0) {
		hlog_as(c, req_id, name, "reconnect", "failed: %s",
		    sd_strerror(r));
		reply_error(c);
		return;
	}
	hlog(c, "reconnect", "ok: 1605");
}

/* 900, 901, 902: only after this connection received a file from this client. */
static void
handle_verdict(struct conn *c, const struct frame_event *ev)
{
	uint16_t code = ev->header->code;
	char file_name[NAME_FIELD_SIZE];
	char safe[LOG_NAME_MAX + 4];
	const char *what = code == REQ_CRC_OK ? "crc ok" :
	    code == REQ_CRC_RETRY ? "crc retry" : "crc fail";
	int r;

	if ((r = msg_name_decode(ev->data, ev->len, file_name)) != 0) {
		hlog(c, what, "refused: %s", sd_strerror(r));
		reply_error(c);
		return;
	}
	if (!c->known || memcmp(ev->header->client_id, c->id, CLIENT_ID_SIZE) != 0 ||
	    c->uploads_done == 0) {
		hlog(c, what, "refused: no file received from this client on this connection");
		reply_error(c);
		return;
	}
	log_sanitize(file_name, safe, sizeof(safe));
	if (strcmp(file_name, c->last_file) != 0) {
		/* A verdict is about the file whose CRC was just reported, not any other. */
		hlog(c, what, "\"%s\" refused: the last file received was another one", safe);
		reply_error(c);
		return;
	}
	touch(c, c->id);
	if (code == REQ_CRC_RETRY) {
		/* No reply (SPEC.md 3); the resend replaces the file and its row. */
		c->awaiting_verdict = 0;
		hlog(c, what, "\"%s\": waiting for the resend", safe);
		return;
	}
	r = db_file_set_verified(c->w->db, c->id, file_name, code == REQ_CRC_OK ? 1 : 0);
	if (r != 0) {
		hlog(c, what, "\"%s\" refused: %s", safe,
		    r == SD_ERR_NOT_FOUND ? "no such file" : db_errmsg(c->w->db));
		reply_error(c);
		return;
	}
	c->awaiting_verdict = 0;
	hlog(c, what, "\"%s\" %s: 1604", safe, code == REQ_CRC_OK ? "verified" :
	    "left unverified");
	reply_id(c, RESP_ACK, c->id);
}

void
handle_message(struct conn *c, const struct frame_event *ev)
{
	switch (ev->header->code) {
	case REQ_REGISTER:
		handle_register(c, ev);
		break;
	case REQ_PUBLIC_KEY:
		handle_public_key(c, ev);
		break;
	case REQ_RECONNECT:
		handle_reconnect(c, ev);
		break;
	case REQ_CRC_OK:
	case REQ_CRC_RETRY:
	case REQ_CRC_FAIL:
		handle_verdict(c, ev);
		break;
	case REQ_SEND_FILE:
		hlog(c, "send file", "refused: payload shorter than the packet header");
		reply_error(c);
		break;
	default:
		hlog(c, "request", "refused: unknown code %u", (unsigned)ev->header->code);
		reply_error(c);
		break;
	}
}

/* The reassembler's sink: plaintext goes to the temporary file. */
static int
sink_write(void *ctx, const uint8_t *data, size_t n)
{
	struct conn *c = ctx;

	if (!c->storing)
		return SD_ERR_INTERNAL;
	return storage_write(&c->sf, data, n);
}

static void
sink_of(struct conn *c, struct upload_sink *s)
{
	s->write = sink_write;
	s->ctx = c;
}

/* A new upload attempt (first packet, or a resend the reassembler recognised): a fresh
 * temporary file under the sanitised name. On failure the upload is discarded. */
static int
open_attempt_file(struct conn *c, const struct msg_file_packet *p)
{
	char safe[NAME_FIELD_SIZE];
	int r;

	if (c->storing) {
		/* A new first packet mid-upload: a resend of the same file starts over silently;
		 * another file means the one in progress was abandoned, and its sender is told. */
		if (strcmp(c->attempt_file, p->file_name) != 0) {
			hlog(c, "send file", "upload abandoned for another file: 1607");
			reply_error(c);
		}
		storage_abort(&c->sf);
		c->storing = 0;
	}
	snprintf(c->attempt_file, sizeof(c->attempt_file), "%s", p->file_name);
	if ((r = storage_sanitize_name(p->file_name, safe)) != 0) {
		char shown[LOG_NAME_MAX + 4];

		log_sanitize(p->file_name, shown, sizeof(shown));
		hlog(c, "send file", "refused: file name \"%s\" cannot be stored", shown);
		upload_abort(c->up);
		return r;
	}
	if ((r = storage_begin(c->w->cfg->storage_dir, c->id, safe, &c->sf)) != 0) {
		upload_abort(c->up);
		hlog(c, "send file", "failed: cannot create the temporary file");
		return r;
	}
	c->storing = 1;
	return 0;
}

/* The first packet of an upload attempt: the client must hold an AES key (the one most
 * recently issued, read from the database), the file name must be safe to store. */
static int
begin_upload(struct conn *c, const struct msg_file_packet *p, uint32_t content_len,
    const uint8_t id[CLIENT_ID_SIZE])
{
	struct db_client cl;
	int r;

	memset(&cl, 0, sizeof(cl));
	conn_abort_upload(c);
	if ((r = db_client_by_id(c->w->db, id, &cl)) != 0) {
		hlog_as(c, id, NULL, "send file", "refused: %s",
		    r == SD_ERR_NOT_FOUND ? "unknown client ID" : db_errmsg(c->w->db));
		goto out;
	}
	if (!cl.has_aes_key) {
		hlog_as(c, id, cl.name, "send file",
		    "refused: no AES key was issued to this client");
		r = SD_ERR_NOT_FOUND;
		goto out;
	}
	if ((r = set_session(c, cl.id, cl.name, cl.aes_key)) != 0 ||
	    (r = upload_new(&c->up, c->aes_key, c->w->cfg->max_file_size)) != 0) {
		hlog(c, "send file", "failed: %s", sd_strerror(r));
		goto out;
	}
	if ((r = upload_packet_begin(c->up, p, content_len)) != 0) {
		hlog(c, "send file", "refused first packet: %s", sd_strerror(r));
		goto out;
	}
	if ((r = open_attempt_file(c, p)) != 0)
		goto out;
	touch(c, c->id);
	r = 0;
out:
	crypto_wipe(&cl, sizeof(cl));
	return r;
}

void
handle_stream_start(struct conn *c, const struct frame_event *ev)
{
	const struct msg_header *h = ev->header;
	struct msg_file_packet p;
	uint32_t content_len;
	int r, in_progress;

	c->stream = CONN_STREAM_SKIP;  /* until the packet is accepted */
	if (h->payload_size < FILE_PACKET_HEADER_SIZE) {
		reply_error(c);  /* not reachable: the parser sends these as messages */
		return;
	}
	content_len = h->payload_size - FILE_PACKET_HEADER_SIZE;
	if ((r = msg_file_packet_decode(ev->data, ev->len, &p)) != 0) {
		hlog(c, "send file", "refused: %s", sd_strerror(r));
		conn_abort_upload(c);
		return;
	}
	in_progress = c->up != NULL && upload_in_progress(c->up);
	if (in_progress && memcmp(h->client_id, c->id, CLIENT_ID_SIZE) != 0) {
		hlog(c, "send file", "refused: packet of another client ID mid-upload");
		conn_abort_upload(c);
		return;
	}
	if (!in_progress) {
		if (begin_upload(c, &p, content_len, h->client_id) != 0)
			return;
	} else {
		if ((r = upload_packet_begin(c->up, &p, content_len)) != 0) {
			hlog(c, "send file", "refused packet: %s; upload discarded",
			    sd_strerror(r));
			conn_abort_upload(c);
			return;
		}
		/* The reassembler decides what restarts an attempt (a resend after 901, or a
		 * sender that gave up mid-file): then the old temporary file goes. */
		if (upload_packet_is_first(c->up) && open_attempt_file(c, &p) != 0) {
			conn_abort_upload(c);
			return;
		}
		if (c->w->now_ms - c->last_touch_ms >= TOUCH_INTERVAL_MS)
			touch(c, c->id);
	}
	c->stream = CONN_STREAM_UPLOAD;
}

void
handle_stream_data(struct conn *c, const struct frame_event *ev)
{
	struct upload_sink sink;
	int r;

	if (c->stream != CONN_STREAM_UPLOAD)
		return;  /* a refused packet: its content is dropped as it arrives */
	sink_of(c, &sink);
	if ((r = upload_packet_data(c->up, ev->data, ev->len, &sink)) != 0) {
		hlog(c, "send file", "refused content: %s; upload discarded", sd_strerror(r));
		conn_abort_upload(c);
		c->stream = CONN_STREAM_SKIP;
	}
}

/* The last packet checked out: store the file, record it, answer 1603. */
static void
finish_upload(struct conn *c)
{
	struct upload_result res;
	struct msg_file_crc crc;
	struct db_file f;
	char shown[LOG_NAME_MAX + 4];
	int r;

	memset(&f, 0, sizeof(f));
	memset(&crc, 0, sizeof(crc));
	/* The reassembler's count and the stored file's must agree; they can only differ
	 * through a bug, and then the file is not recorded. */
	if ((r = upload_result(c->up, &res)) != 0 || res.plain_size != c->sf.written) {
		hlog(c, "send file", "failed: reassembly and stored bytes disagree");
		goto fail;
	}
	memcpy(f.owner, c->id, CLIENT_ID_SIZE);
	snprintf(f.owner_name, sizeof(f.owner_name), "%s", c->name);
	snprintf(f.file_name, sizeof(f.file_name), "%s", res.file_name);
	if (strlen(c->sf.rel_path) >= sizeof(f.path_name)) {
		hlog(c, "send file", "failed: stored path too long for the database");
		goto fail;
	}
	memcpy(f.path_name, c->sf.rel_path, strlen(c->sf.rel_path) + 1);
	f.verified = 0;
	f.size = res.plain_size;
	f.crc = res.cksum;
	f.uploaded = (int64_t)time(NULL);
	r = storage_commit(&c->sf);
	c->storing = 0;
	if (r != 0) {
		storage_abort(&c->sf);
		hlog(c, "send file", "failed: storing the file: %s", sd_strerror(r));
		goto fail;
	}
	if ((r = db_file_record(c->w->db, &f)) != 0) {
		hlog(c, "send file", "failed: recording the file: %s (%s)", sd_strerror(r),
		    db_errmsg(c->w->db));
		goto fail;
	}
	memcpy(crc.client_id, c->id, CLIENT_ID_SIZE);
	crc.content_size = res.ciphertext_size > UINT32_MAX ? UINT32_MAX :
	    (uint32_t)res.ciphertext_size;
	memcpy(crc.file_name, res.file_name, sizeof(crc.file_name));
	crc.cksum = res.cksum;
	if (c->corrupt_left > 0) {
		/* --test-corrupt-crc: lets tests and the demo show the client's retry loop. */
		c->corrupt_left--;
		crc.cksum = ~res.cksum;
	}
	c->uploads_done++;
	c->awaiting_verdict = 1;
	memcpy(c->last_file, res.file_name, sizeof(c->last_file));
	upload_free(c->up);
	c->up = NULL;
	touch(c, c->id);
	log_sanitize(res.file_name, shown, sizeof(shown));
	hlog(c, "send file", "\"%s\" stored as %s: %llu bytes in %u packets, cksum %u%s: 1603",
	    shown, f.path_name, (unsigned long long)res.plain_size, (unsigned)res.packets,
	    (unsigned)res.cksum, crc.cksum != res.cksum ? " (reported corrupted, test option)" :
	    "");
	queued(c, msg_put_file_crc_response(&c->out, &crc));
	return;
fail:
	conn_abort_upload(c);
	reply_error(c);
}

void
handle_stream_end(struct conn *c, const struct frame_event *ev)
{
	struct upload_sink sink;
	int r, complete = 0;

	(void)ev;
	if (c->stream == CONN_STREAM_SKIP) {
		c->stream = CONN_STREAM_NONE;
		reply_error(c);
		return;
	}
	c->stream = CONN_STREAM_NONE;
	sink_of(c, &sink);
	if ((r = upload_packet_end(c->up, &sink, &complete)) != 0) {
		hlog(c, "send file", "refused: %s; upload discarded", sd_strerror(r));
		conn_abort_upload(c);
		reply_error(c);
		return;
	}
	if (complete)
		finish_upload(c);
}
