/* receive.c: a file being received on a connection: version 3's 828 packets go through the
 * reassembler (upload.c) into a temporary file (storage.c); a complete file is stored,
 * recorded in the database and answered with 1603. See receive.h for where a second kind of
 * receive goes. */
#include "receive.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../db/db.h"
#include "../protocol/crypto.h"
#include "../protocol/err.h"
#include "../protocol/msg.h"
#include "commit.h"
#include "config.h"
#include "conn.h"
#include "crash.h"
#include "limits.h"
#include "log.h"
#include "storage.h"
#include "upload.h"

/* LastSeen is written for an intermediate 828 packet at most this often. */
#define RECEIVE_TOUCH_INTERVAL_MS 1000

struct receive {
	enum receive_kind kind;
	struct storage_file sf;      /* the temporary file; sf.fd >= 0 while open */
	char file[NAME_FIELD_SIZE];  /* the file of the attempt in progress (as sent) */
	uint8_t owner[CLIENT_ID_SIZE];  /* whose upload slot (limits.h) it holds */
	int holds_slot;              /* counted in limits_upload_begin() */
	int64_t started_ms;          /* when the receive began (--min-upload-rate) */
	uint64_t wire_bytes;         /* request bytes received for it since started_ms */

	/* RECEIVE_V3_PACKETS */
	struct upload *up;           /* the reassembler, under the connection's session key */
	int in_packet;               /* an 828's content is arriving */
};

/* What the file turned out to be, whatever the kind: the input of store_and_reply(). */
struct receive_done {
	char file_name[NAME_FIELD_SIZE];  /* as sent */
	uint64_t plain_size;
	uint64_t wire_size;               /* 1603 content_size */
	uint32_t cksum;
	uint32_t packets;
};

/* An empty receive of kind; the caller makes it c->recv. */
static struct receive *
receive_new(enum receive_kind kind)
{
	struct receive *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->kind = kind;
	r->sf.fd = -1;
	r->sf.dir_fd = -1;
	return r;
}

/* What only one kind holds. */
static void
receive_free_kind(struct receive *r)
{
	switch (r->kind) {
	case RECEIVE_V3_PACKETS:
		upload_free(r->up);
		r->up = NULL;
		break;
	}
}

void
receive_abort(struct conn *c)
{
	struct receive *r = c->recv;

	if (r == NULL)
		return;
	c->recv = NULL;
	if (r->holds_slot)
		limits_upload_end(r->owner);
	receive_free_kind(r);
	storage_abort(&r->sf);  /* accepts a closed file */
	crypto_wipe(r, sizeof(*r));
	free(r);
}

int
receive_too_slow(const struct conn *c, int64_t now_ms)
{
	const struct server_config *cfg = c->env->cfg;
	const struct receive *r = c->recv;
	int64_t age;

	if (r == NULL || cfg->min_upload_rate == 0)
		return 0;
	age = now_ms - r->started_ms;
	if (age < (int64_t)cfg->min_rate_grace * 1000 || age <= 0)
		return 0;
	/* bytes / (age / 1000) < rate, without division */
	return r->wire_bytes * 1000u < (uint64_t)cfg->min_upload_rate * (uint64_t)age;
}

int
receive_in_packet(const struct receive *r)
{
	return r->in_packet;
}

/* The reassembler's sink: plaintext goes to the temporary file. */
static int
sink_write(void *ctx, const uint8_t *data, size_t n)
{
	struct receive *r = ctx;

	if (r->sf.fd < 0)
		return SD_ERR_INTERNAL;
	return storage_write(&r->sf, data, n);
}

static void
sink_of(struct receive *r, struct upload_sink *s)
{
	s->write = sink_write;
	s->ctx = r;
}

/* A new attempt at file_name (the first packet, or a resend the reassembler recognised): a
 * fresh temporary file under the sanitised name, replacing the attempt's old one. Every kind
 * of receive starts its file here. */
static int
open_attempt_file(struct conn *c, struct receive *r, const char *file_name)
{
	char safe[NAME_FIELD_SIZE];
	int e;

	if (r->sf.fd >= 0) {
		/* A new first packet mid-upload: a resend of the same file starts over silently;
		 * another file means the one in progress was abandoned, and its sender is told. */
		if (strcmp(r->file, file_name) != 0) {
			conn_log(c, "send file", "upload abandoned for another file: 1607");
			conn_reply_error(c);
		}
		storage_abort(&r->sf);
	}
	/* A new attempt (the resend after 901, or another file) ends the one waiting for its
	 * verdict: never confirmed, it goes and the stored version stays. */
	commit_discard(c);
	snprintf(r->file, sizeof(r->file), "%s", file_name);
	if ((e = storage_sanitize_name(file_name, safe)) != 0) {
		char shown[LOG_NAME_MAX + 4];

		log_sanitize(file_name, shown, sizeof(shown));
		conn_log(c, "send file", "refused: file name \"%s\" cannot be stored", shown);
		return e;
	}
	if ((e = storage_begin(c->env->cfg->storage_dir, c->id, safe, &r->sf)) != 0) {
		conn_log(c, "send file", "failed: cannot create the temporary file: %s",
		    strerror(r->sf.err));
		return e;
	}
	return 0;
}

int
receive_check_client_limits(struct conn *c, const char *rel_path, uint64_t size)
{
	const struct server_config *cfg = c->env->cfg;
	/* The refusal the caller sends: version 3's 1607, version 4's ERROR 7 (quota). */
	const char *reply = c->v4 ? "ERROR 7" : "1607";
	struct limits_usage u;
	int e;

	if (cfg->max_client_storage == 0 && cfg->max_client_files == 0)
		return 0;
	if ((e = limits_client_usage(c->env->db, c->id, rel_path, &u)) != 0) {
		conn_log(c, "send file", "failed: counting stored files: %s (%s)", sd_strerror(e),
		    db_errmsg(c->env->db));
		return e;
	}
	if (cfg->max_client_files > 0 && !u.replaces && u.files + 1 > cfg->max_client_files) {
		conn_log(c, "limit", "upload refused: the client stores %llu files already "
		    "(--max-client-files %llu): %s", (unsigned long long)u.files,
		    (unsigned long long)cfg->max_client_files, reply);
		return SD_ERR_TOO_LARGE;
	}
	if (cfg->max_client_storage > 0 && (u.bytes > cfg->max_client_storage ||
	    size > cfg->max_client_storage - u.bytes)) {
		conn_log(c, "limit", "upload refused: %llu bytes stored and %llu more would pass "
		    "--max-client-storage %llu: %s", (unsigned long long)u.bytes,
		    (unsigned long long)size, (unsigned long long)cfg->max_client_storage, reply);
		return SD_ERR_TOO_LARGE;
	}
	return 0;
}

/* The first packet of an upload: it must come from the connection that was given the
 * client's key in this session (1602 or 1605; issue 9 item 2: an ID travels in clear, so a
 * key looked up by the header's ID would let anyone who saw it upload as that client), and
 * the file name must be safe to store. Makes c->recv. */
static int
begin_upload(struct conn *c, const struct msg_file_packet *p, uint32_t content_len,
    const uint8_t id[CLIENT_ID_SIZE])
{
	struct receive *r;
	int e;

	receive_abort(c);
	if (!c->known || !c->has_key || memcmp(c->id, id, CLIENT_ID_SIZE) != 0) {
		conn_log_as(c, id, NULL, "send file", "refused: no key was issued to this client "
		    "ID on this connection (1602 or 1605 first)");
		e = SD_ERR_NOT_FOUND;
		goto out;
	}
	if ((c->recv = r = receive_new(RECEIVE_V3_PACKETS)) == NULL) {
		e = SD_ERR_ALLOC;
		conn_log(c, "send file", "failed: %s", sd_strerror(e));
		goto out;
	}
	r->started_ms = c->env->now_ms;
	if (!limits_upload_begin(c->id, c->env->cfg->max_uploads_per_client)) {
		conn_log(c, "limit", "upload refused: %u uploads of this client in progress "
		    "(--max-uploads-per-client): 1607", c->env->cfg->max_uploads_per_client);
		e = SD_ERR_TOO_LARGE;
		goto out;
	}
	memcpy(r->owner, c->id, CLIENT_ID_SIZE);
	r->holds_slot = 1;
	if ((e = upload_new(&r->up, c->aes_key, c->env->cfg->max_file_size)) != 0) {
		conn_log(c, "send file", "failed: %s", sd_strerror(e));
		goto out;
	}
	if ((e = upload_packet_begin(r->up, p, content_len)) != 0) {
		conn_log(c, "send file", "refused first packet: %s", sd_strerror(e));
		goto out;
	}
	if ((e = open_attempt_file(c, r, p->file_name)) != 0 ||
	    (e = receive_check_client_limits(c, r->sf.rel_path, p->orig_file_size)) != 0)
		goto out;
	conn_touch(c, c->id);
	e = 0;
out:
	if (e != 0)
		receive_abort(c);
	return e;
}

/* An attempt at file was refused: its later packets are skipped without a log line each (one
 * line for the refusal; every packet still gets its 1607, as SPEC.md 3 says of anything
 * invalid, so the replies a client reads do not change). */
static void
remember_refused(struct conn *c, const uint8_t id[CLIENT_ID_SIZE], const char *file)
{
	c->refused = 1;
	memcpy(c->refused_id, id, CLIENT_ID_SIZE);
	snprintf(c->refused_file, sizeof(c->refused_file), "%s", file);
}

/* 1 when p continues the attempt refused last (same ID and name, and it could not open an
 * upload: neither number field is 0 or 1). */
static int
refused_rest(const struct conn *c, const uint8_t id[CLIENT_ID_SIZE],
    const struct msg_file_packet *p)
{
	return c->refused && memcmp(c->refused_id, id, CLIENT_ID_SIZE) == 0 &&
	    strcmp(c->refused_file, p->file_name) == 0 && p->packet_number > 1 &&
	    p->total_packets > 1;
}

/* A packet that continues c->recv. */
static int
continue_upload(struct conn *c, const struct msg_file_packet *p, uint32_t content_len)
{
	struct receive *r = c->recv;
	int e;

	if ((e = upload_packet_begin(r->up, p, content_len)) != 0) {
		conn_log(c, "send file", "refused packet: %s; upload discarded", sd_strerror(e));
		return e;
	}
	/* The reassembler decides what restarts an attempt (a resend after 901, or a sender
	 * that gave up mid-file): then the old temporary file goes. */
	if (upload_packet_is_first(r->up) && ((e = open_attempt_file(c, r, p->file_name)) != 0 ||
	    (e = receive_check_client_limits(c, r->sf.rel_path, p->orig_file_size)) != 0))
		return e;
	if (c->env->now_ms - c->last_touch_ms >= RECEIVE_TOUCH_INTERVAL_MS)
		conn_touch(c, c->id);
	return 0;
}

void
receive_packet_start(struct conn *c, const struct frame_event *ev)
{
	const struct msg_header *h = ev->header;
	struct msg_file_packet p;
	uint32_t content_len;
	int e;

	c->skip_content = 1;  /* until the packet is accepted */
	if (h->payload_size < FILE_PACKET_HEADER_SIZE) {
		conn_reply_error(c);  /* not reachable: the parser sends these as messages */
		return;
	}
	content_len = h->payload_size - FILE_PACKET_HEADER_SIZE;
	if ((e = msg_file_packet_decode(ev->data, ev->len, &p)) != 0) {
		conn_log(c, "send file", "refused: %s", sd_strerror(e));
		receive_abort(c);
		return;
	}
	crash_point("packet");
	if (c->recv != NULL && memcmp(h->client_id, c->id, CLIENT_ID_SIZE) != 0) {
		conn_log(c, "send file", "refused: packet of another client ID mid-upload");
		remember_refused(c, c->id, c->recv->file);
		receive_abort(c);
		return;
	}
	if (c->recv == NULL && refused_rest(c, h->client_id, &p))
		return;  /* the rest of a refused attempt: 1607 at its end, no log line */
	if (c->recv == NULL)
		e = begin_upload(c, &p, content_len, h->client_id);
	else if ((e = continue_upload(c, &p, content_len)) != 0)
		receive_abort(c);
	if (e != 0) {
		remember_refused(c, h->client_id, p.file_name);
		return;
	}
	c->refused = 0;
	c->recv->wire_bytes += REQ_HEADER_SIZE + (uint64_t)ev->len;
	c->skip_content = 0;
	c->recv->in_packet = 1;
}

/* Why storage failed, for a log line: the errno text when there is one ("No space left on
 * device"), else the error's name. */
static const char *
storage_why(const struct receive *r, int e)
{
	return e == SD_ERR_IO && r->sf.err != 0 ? strerror(r->sf.err) : sd_strerror(e);
}

void
receive_packet_data(struct conn *c, const struct frame_event *ev)
{
	struct upload_sink sink;
	int e;

	if (c->skip_content)
		return;  /* a refused packet: its content is dropped as it arrives */
	c->recv->wire_bytes += ev->len;
	crash_point("data");  /* content arriving (written as the upload's buffer fills) */
	sink_of(c->recv, &sink);
	if ((e = upload_packet_data(c->recv->up, ev->data, ev->len, &sink)) != 0) {
		conn_log(c, "send file", "refused content: %s; upload discarded",
		    storage_why(c->recv, e));
		remember_refused(c, c->id, c->recv->file);
		receive_abort(c);
		c->skip_content = 1;
	}
}

/* A complete file, whatever the kind of receive: its temporary file is fsynced and stays
 * beside the stored version, waiting for the client's verdict (commit.h: no row changes
 * before 900 or 902); 1603 with the CRC is queued and the receive ends. On failure the
 * receive is aborted and 1607 queued. */
static void
store_and_reply(struct conn *c, const struct receive_done *d)
{
	struct receive *r = c->recv;
	struct msg_file_crc crc;
	char shown[LOG_NAME_MAX + 4], path[LOG_PATH_MAX + 1];

	memset(&crc, 0, sizeof(crc));
	/* Again at the end: uploads of one client on other connections may have been stored
	 * since this one began. */
	if (receive_check_client_limits(c, r->sf.rel_path, d->plain_size) != 0)
		goto fail;
	/* The receive's count and the stored file's must agree; they can only differ through a
	 * bug, and then the file is not kept. */
	if (d->plain_size != r->sf.written) {
		conn_log(c, "send file", "failed: reassembly and stored bytes disagree");
		goto fail;
	}
	crash_point("before-stage");
	log_sanitize_path(r->sf.rel_path, path, sizeof(path));
	if (commit_stage(c, &r->sf, d->file_name, d->plain_size, d->cksum) != 0)
		goto fail;
	crash_point("after-stage");
	memcpy(crc.client_id, c->id, CLIENT_ID_SIZE);
	crc.content_size = d->wire_size > UINT32_MAX ? UINT32_MAX : (uint32_t)d->wire_size;
	memcpy(crc.file_name, d->file_name, sizeof(crc.file_name));
	crc.cksum = d->cksum;
	if (c->corrupt_left > 0) {
		/* --test-corrupt-crc: lets tests and the demo show the client's retry loop. */
		c->corrupt_left--;
		crc.cksum = ~d->cksum;
	}
	c->uploads_done++;
	c->awaiting_verdict = 1;
	c->verdict_failed = 0;
	memcpy(c->last_file, d->file_name, sizeof(c->last_file));
	receive_abort(c);  /* the file is staged: nothing is left to remove */
	conn_touch(c, c->id);
	log_sanitize(d->file_name, shown, sizeof(shown));
	conn_log(c, "send file", "\"%s\" received for %s: %llu bytes in %u packets, cksum %u%s: "
	    "1603", shown, path, (unsigned long long)d->plain_size,
	    (unsigned)d->packets, (unsigned)d->cksum, crc.cksum != d->cksum ?
	    " (reported corrupted, test option)" : "");
	conn_queued(c, msg_put_file_crc_response(&c->out, &crc));
	if (crash_armed("after-1603")) {
		conn_flush(c);
		crash_point("after-1603");
	}
	return;
fail:
	receive_abort(c);
	conn_reply_error(c);
}

/* The last 828 checked out: its outcome, then the shared end. */
static void
finish_upload(struct conn *c)
{
	struct upload_result res;
	struct receive_done d;

	memset(&d, 0, sizeof(d));
	if (upload_result(c->recv->up, &res) != 0) {
		conn_log(c, "send file", "failed: reassembly and stored bytes disagree");
		receive_abort(c);
		conn_reply_error(c);
		return;
	}
	memcpy(d.file_name, res.file_name, sizeof(d.file_name));
	d.plain_size = res.plain_size;
	d.wire_size = res.ciphertext_size;
	d.cksum = res.cksum;
	d.packets = res.packets;
	store_and_reply(c, &d);
}

void
receive_packet_end(struct conn *c, const struct frame_event *ev)
{
	struct upload_sink sink;
	int e, complete = 0;

	(void)ev;
	if (c->skip_content) {
		c->skip_content = 0;
		conn_reply_error(c);
		return;
	}
	c->recv->in_packet = 0;
	sink_of(c->recv, &sink);
	if ((e = upload_packet_end(c->recv->up, &sink, &complete)) != 0) {
		conn_log(c, "send file", "refused: %s; upload discarded", storage_why(c->recv, e));
		remember_refused(c, c->id, c->recv->file);
		receive_abort(c);
		conn_reply_error(c);
		return;
	}
	if (complete)
		finish_upload(c);
}
