/* commands.c: the version-4 commands (SPEC-v4.md 3 "Uploads", "Listing, downloads,
 * deletion"): send (resumable, pipelined, verified, optionally deflated per chunk), list, get
 * (resumable through PATH.part, SHA-256 checked) and rm. A dropped connection is retried
 * cfg->retries times with a growing wait. Memory is a chunk or two, whatever the file size. */
#include "v4.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "../protocol/cksum.h"
#include "../protocol/crypto.h"
#include "../protocol/err.h"
#include "../protocol/hex.h"
#include "../protocol/text.h"
#include "log.h"
#include "progress.h"

#define HASH_READ_CHUNK (1u << 20)  /* reading a prefix to hash it */
#define AUTO_MIN_SAVING_PCT 10u     /* --compress auto: chunks must shrink by this much */
#define AUTO_PROBE_EVERY 64u        /* --compress auto: try again every this many chunks */
#define PART_SUFFIX ".part"

static long long
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Reads exactly n bytes at off (fewer only at the end of the file: *got says). */
static int
pread_full(int fd, uint8_t *p, size_t n, uint64_t off, size_t *got)
{
	ssize_t k;

	*got = 0;
	while (*got < n) {
		k = pread(fd, p + *got, n - *got, (off_t)(off + *got));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return SD_ERR_IO;
		if (k == 0)
			break;
		*got += (size_t)k;
	}
	return 0;
}

static int
write_full(int fd, const uint8_t *p, size_t n)
{
	ssize_t k;

	while (n > 0) {
		k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return SD_ERR_IO;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static void
clear_bar(void *ctx)
{
	progress_clear(ctx);
}

/* Connects again after a loss: 0 when connected, or the final exit status. */
static int
reconnect(struct v4_client *c, unsigned *attempt, int r)
{
	for (;;) {
		if (r != CX_CONNECTION && !(r == CX_CONNECT && c->connected_once))
			return r;
		if (*attempt >= c->cfg->retries && c->transient != 0) {
			log_fatal("the server answered ERROR %u (%s) %u time%s; giving up "
			    "(--retries %u)", c->transient, msg4_reason_name(c->transient),
			    *attempt + 1, *attempt == 0 ? "" : "s", c->cfg->retries);
			return CX_SERVER;
		}
		if (*attempt >= c->cfg->retries) {
			log_fatal("the connection to %s was lost %u time%s; giving up (--retries %u)",
			    c->server_key, *attempt + 1, *attempt == 0 ? "" : "s", c->cfg->retries);
			return CX_CONNECTION;
		}
		(*attempt)++;
		v4_backoff(*attempt);
		if ((r = v4_connect(c)) == 0)
			return 0;
	}
}

/* One request-reply exchange, connecting again (within --retries) whenever the connection is
 * lost before the reply: 0 with *rep filled, or the final exit status. *resent (if not NULL)
 * is 1 when the request was sent again after a reconnect: the first may have been served. */
static int
call_reconnecting(struct v4_client *c, uint16_t code, const struct buf *req, struct v4_reply *rep,
    const char *what, int *resent)
{
	unsigned attempt = 0;
	int r;

	if (resent != NULL)
		*resent = 0;
	for (;;) {
		if (resent != NULL && attempt > 0)
			*resent = 1;
		r = c->conn == NULL ? CX_CONNECTION : v4_call(c, code, req, rep, what);
		if (r != CX_CONNECTION)
			return r;
		if ((r = reconnect(c, &attempt, r)) != 0)
			return r;
	}
}

/* ---- send ---- */

struct upload {
	struct v4_client *c;
	const char *path;
	char name[V4_NAME_BUF];         /* the base name sent in PUT_OPEN */
	int fd;
	uint64_t size;
	struct file_stamp stamp;        /* the file as opened: sent only while it stays so */
	struct sha256_ctx *sha;
	struct cksum ck;
	uint8_t *plain;                 /* max_chunk bytes */
	uint8_t *packed;                /* the deflated chunk (max_chunk + slack) */
	uint32_t buf_chunk;             /* size the buffers were made for */
	z_stream z;
	int z_ready;
	struct progress progress;
	/* --compress auto's measurements (all chunks of this run) */
	uint64_t tried_plain, tried_packed, deflate_ns;
	uint64_t sent_wire, send_ns, sent_plain;
	unsigned since_probe;
	int compressing;
	uint64_t chunks_deflated;
};

static int
file_changed(struct upload *u)
{
	log_fatal("%s changed while it was being sent", u->path);
	return CX_FILE;
}

/* 0 while the file is the one opened (size, mtime, ctime, inode), else file_changed(). */
static int
check_unchanged(struct upload *u)
{
	return file_stamp_changed(u->fd, u->path, &u->stamp) ? file_changed(u) : 0;
}

static int
open_upload(struct upload *u)
{
	char why[WHY_MAX];

	if (file_open_upload(u->path, V4_NAME_MAX_LEN, u->name, &u->fd, &u->size, why,
	    sizeof(why)) != 0) {
		log_fatal("%s", why);
		return CX_FILE;
	}
	if (file_stamp_get(u->fd, &u->stamp) != 0 || (uint64_t)u->stamp.size != u->size) {
		log_fatal("cannot read %s: %s", u->path, strerror(errno));
		return CX_FILE;
	}
	return 0;
}

/* Buffers for chunks of max_chunk bytes (the server's choice, at most 1 MiB). */
static int
chunk_buffers(struct upload *u, uint32_t max_chunk)
{
	if (u->buf_chunk >= max_chunk)
		return 0;
	free(u->plain);
	free(u->packed);
	u->plain = malloc(max_chunk);
	u->packed = malloc((size_t)max_chunk + V4_CHUNK_SLACK);
	if (u->plain == NULL || u->packed == NULL) {
		log_fatal("out of memory");
		return CX_FILE;
	}
	u->buf_chunk = max_chunk;
	return 0;
}

/* Reads want bytes at off into u->plain and feeds them to the SHA-256 and cksum states:
 * 0, CX_FILE on a read error, or file_changed()'s code if the file got shorter. */
static int
read_hashed(struct upload *u, uint64_t off, size_t want)
{
	size_t got;

	if (pread_full(u->fd, u->plain, want, off, &got) != 0) {
		log_fatal("cannot read %s: %s", u->path, strerror(errno));
		return CX_FILE;
	}
	if (got < want)
		return file_changed(u);
	sha256_update(u->sha, u->plain, got);
	cksum_update(&u->ck, u->plain, got);
	return 0;
}

/* Hashes the file's first n bytes into fresh SHA-256 and cksum states. */
static int
hash_prefix(struct upload *u, uint64_t n)
{
	uint64_t off = 0;
	size_t want;
	int r;

	sha256_free(u->sha);
	u->sha = NULL;
	if ((r = sha256_new(&u->sha)) != 0) {
		log_fatal("cannot hash: %s", sd_strerror(r));
		return CX_FILE;
	}
	cksum_init(&u->ck);
	while (off < n) {
		want = n - off < u->buf_chunk ? (size_t)(n - off) : u->buf_chunk;
		if ((r = read_hashed(u, off, want)) != 0)
			return r;
		off += want;
	}
	return 0;
}

static int
put_open(struct upload *u, struct msg4_put_state *st)
{
	uint8_t mem[REQ_HEADER_SIZE + V4_PUT_OPEN_PAYLOAD_MAX];
	struct v4_reply rep;
	struct buf req;
	unsigned reason;
	int r;

	buf_fixed(&req, mem, sizeof(mem));
	if ((r = msg4_put_put_open(&req, u->size, u->name)) != 0) {
		log_fatal("cannot encode PUT_OPEN for '%s': %s", u->name, sd_strerror(r));
		return CX_FILE;
	}
	if ((r = v4_call(u->c, REQ4_PUT_OPEN, &req, &rep, "opening the upload (PUT_OPEN)")) != 0)
		return r;
	if (rep.code == RESP4_ERROR) {
		reason = v4_error_reply(u->c, &rep, "opening the upload (PUT_OPEN)");
		if (reason == V4_REASON_TOO_LARGE) {
			log_fatal("the server does not take %s (%llu bytes): too large or over quota",
			    u->path, (unsigned long long)u->size);
			return CX_FILE;
		}
		log_fatal("the server refused the upload of %s", u->name);
		return CX_SERVER;
	}
	if (rep.code != RESP4_PUT_STATE || msg4_put_state_decode(rep.p, rep.n, st) != 0)
		return v4_unexpected(rep.code, "opening the upload (PUT_OPEN)");
	if (st->offset > u->size) {
		log_warn("the server holds %llu bytes of %s, which has %llu; starting again",
		    (unsigned long long)st->offset, u->name, (unsigned long long)u->size);
	}
	return 0;
}

static int
put_abort(struct upload *u)
{
	uint8_t mem[REQ_HEADER_SIZE];
	struct v4_reply rep;
	struct buf req;
	int r;

	buf_fixed(&req, mem, sizeof(mem));
	if (msg4_put_empty_request(&req, REQ4_PUT_ABORT) != 0)
		return CX_SERVER;
	if ((r = v4_call(u->c, REQ4_PUT_ABORT, &req, &rep,
	    "discarding the server's partial upload (PUT_ABORT)")) != 0)
		return r;
	if (rep.code == RESP4_ERROR) {
		(void)v4_error_reply(u->c, &rep, "PUT_ABORT");
		return CX_SERVER;
	}
	if (rep.code != RESP4_OK || msg4_empty_decode(rep.p, rep.n) != 0)
		return v4_unexpected(rep.code, "PUT_ABORT");
	return 0;
}

/* Opens the upload and agrees on the offset: the server's, if its prefix hash equals ours;
 * else the server's partial upload is discarded and the upload starts at 0. */
static int
negotiate(struct upload *u, struct msg4_put_state *st)
{
	uint8_t mine[V4_SHA256_SIZE];
	int r;

	if ((r = put_open(u, st)) != 0 || (r = chunk_buffers(u, st->max_chunk)) != 0)
		return r;
	if (st->offset <= u->size) {
		if ((r = hash_prefix(u, st->offset)) != 0)
			return r;
		if ((r = sha256_peek(u->sha, mine)) != 0) {
			log_fatal("cannot hash: %s", sd_strerror(r));
			return CX_FILE;
		}
		if (memcmp(mine, st->prefix_sha256, sizeof(mine)) == 0) {
			if (st->offset > 0)
				log_note("resuming %s at byte %llu of %llu (the server holds them "
				    "already)", u->name, (unsigned long long)st->offset,
				    (unsigned long long)u->size);
			return 0;
		}
		log_note("the server's first %llu bytes of %s differ from the file: sending it "
		    "again from the start", (unsigned long long)st->offset, u->name);
	}
	if ((r = put_abort(u)) != 0 || (r = put_open(u, st)) != 0 ||
	    (r = chunk_buffers(u, st->max_chunk)) != 0)
		return r;
	if (st->offset != 0) {
		log_fatal("the server still holds %llu bytes of %s after PUT_ABORT",
		    (unsigned long long)st->offset, u->name);
		return CX_SERVER;
	}
	return hash_prefix(u, 0);
}

/* Deflates plain (n bytes) into u->packed as one raw stream; *out_len is 0 when the result
 * would not be smaller. */
static int
deflate_chunk(struct upload *u, size_t n, size_t *out_len)
{
	long long t0 = now_ns();
	int zr;

	*out_len = 0;
	if (!u->z_ready) {
		memset(&u->z, 0, sizeof(u->z));
		/* Level 1: speed matters more than the last percent of ratio here. */
		if (deflateInit2(&u->z, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
			log_fatal("cannot start deflate");
			return CX_FILE;
		}
		u->z_ready = 1;
	} else if (deflateReset(&u->z) != Z_OK) {
		log_fatal("cannot restart deflate");
		return CX_FILE;
	}
	u->z.next_in = u->plain;
	u->z.avail_in = (uInt)n;
	u->z.next_out = u->packed;
	u->z.avail_out = (uInt)n;  /* no more than the plaintext: else it does not pay */
	zr = deflate(&u->z, Z_FINISH);
	u->deflate_ns += (uint64_t)(now_ns() - t0);
	u->tried_plain += n;
	if (zr == Z_STREAM_END) {
		*out_len = n - u->z.avail_out;
		u->tried_packed += *out_len;
	} else {
		u->tried_packed += n;
	}
	return 0;
}

/* --compress auto: deflate while the chunks so far shrank by AUTO_MIN_SAVING_PCT or more and
 * deflate took the bytes faster than the connection; after a miss, probe again now and then. */
static int
want_deflate(struct upload *u)
{
	double deflate_rate, send_rate;

	switch (u->c->cfg->compress) {
	case COMPRESS_YES: return 1;
	case COMPRESS_NO: return 0;
	default: break;
	}
	if (u->tried_plain == 0)
		return 1;
	if (u->tried_packed * 100 > u->tried_plain * (100 - AUTO_MIN_SAVING_PCT))
		goto miss;
	deflate_rate = (double)u->tried_plain / ((double)u->deflate_ns + 1.0);
	send_rate = (double)u->sent_plain / ((double)u->send_ns + 1.0);
	if (u->sent_plain > 0 && deflate_rate < send_rate)
		goto miss;
	u->compressing = 1;
	return 1;
miss:
	if (u->compressing)
		log_verbose("compression stops paying (%llu of %llu bytes deflated)",
		    (unsigned long long)u->tried_packed, (unsigned long long)u->tried_plain);
	u->compressing = 0;
	if (++u->since_probe >= AUTO_PROBE_EVERY) {
		u->since_probe = 0;
		return 1;
	}
	return 0;
}

/* Sends [offset, size) as pipelined PUT_DATA chunks (no reply per chunk). */
static int
send_chunks(struct upload *u, uint64_t offset, uint32_t max_chunk, uint64_t resumed)
{
	uint8_t head[REQ_HEADER_SIZE + V4_PUT_DATA_HEAD_SIZE];
	struct v4_reply rep;
	struct buf h;
	size_t got, packed;
	const uint8_t *data;
	size_t dlen;
	uint8_t flags;
	long long t0;
	int r;

	while (offset < u->size) {
		got = u->size - offset < max_chunk ? (size_t)(u->size - offset) : max_chunk;
		if ((r = read_hashed(u, offset, got)) != 0)
			return r;
		data = u->plain;
		dlen = got;
		flags = 0;
		if (want_deflate(u)) {
			if ((r = deflate_chunk(u, got, &packed)) != 0)
				return r;
			if (packed > 0) {
				data = u->packed;
				dlen = packed;
				flags = V4_PUT_FLAG_DEFLATE;
				u->chunks_deflated++;
			}
		}
		buf_fixed(&h, head, sizeof(head));
		if (msg4_put_put_data_head(&h, offset, flags, (uint32_t)got, (uint32_t)dlen) != 0) {
			log_fatal("cannot encode PUT_DATA at byte %llu", (unsigned long long)offset);
			return CX_SERVER;
		}
		t0 = now_ns();
		r = v4conn_write2(u->c->conn, buf_ptr(&h), buf_len(&h), data, dlen);
		u->send_ns += (uint64_t)(now_ns() - t0);
		if (r != 0) {
			/* The server may have said why before it closed. */
			if (v4conn_readable(u->c->conn, 0) &&
			    v4conn_read_response(u->c->conn, &rep.code, &rep.p, &rep.n) == 0 &&
			    rep.code == RESP4_ERROR) {
				if ((r = v4_transient_error(u->c, &rep,
				    "sending the file (PUT_DATA)")) != 0)
					return r;
				(void)v4_error_reply(u->c, &rep, "sending the file (PUT_DATA)");
				return CX_SERVER;
			}
			log_warn("sending %s: connection lost at byte %llu (%s)", u->name,
			    (unsigned long long)offset, r == SD_ERR_IO ? strerror(errno) :
			    sd_strerror(r));
			v4_disconnect(u->c);
			return CX_CONNECTION;
		}
		u->sent_wire += dlen;
		u->sent_plain += got;
		offset += got;
		progress_set_stats(&u->progress, resumed, u->sent_plain, u->sent_wire);
		progress_update(&u->progress, offset);
		/* No reply is due per chunk: anything that arrives is an ERROR. */
		if (v4conn_readable(u->c->conn, 0)) {
			if ((r = v4_read(u->c, &rep, "sending the file (PUT_DATA)")) != 0)
				return r;
			if (rep.code == RESP4_ERROR) {
				(void)v4_error_reply(u->c, &rep, "sending the file (PUT_DATA)");
				return CX_SERVER;
			}
			return v4_unexpected(rep.code, "sending the file (PUT_DATA)");
		}
	}
	return 0;
}

/* PUT_FINISH with our SHA-256, and PUT_DONE checked against our SHA-256 and cksum. */
static int
finish(struct upload *u)
{
	uint8_t sha[V4_SHA256_SIZE], extra;
	char ours[2 * V4_SHA256_SIZE + 1], theirs[2 * V4_SHA256_SIZE + 1];
	char shown[TEXT_ESCAPE_SIZE(V4_NAME_MAX_LEN)];
	uint8_t mem[REQ_HEADER_SIZE + V4_SHA256_SIZE];
	struct msg4_put_done d;
	struct v4_reply rep;
	struct buf req;
	size_t got;
	unsigned reason;
	uint32_t crc;
	int r;

	/* The file must be the one whose bytes were hashed and sent: not grown, not edited in
	 * place, not replaced. Else what the server holds may be torn: discarded. */
	if (pread_full(u->fd, &extra, 1, u->size, &got) != 0 || got != 0 ||
	    file_stamp_changed(u->fd, u->path, &u->stamp)) {
		r = file_changed(u);
		if (put_abort(u) == 0)
			log_note("the server discarded what it received of %s", u->name);
		return r;
	}
	if ((r = sha256_peek(u->sha, sha)) != 0) {
		log_fatal("cannot hash: %s", sd_strerror(r));
		return CX_FILE;
	}
	crc = cksum_final(&u->ck);
	buf_fixed(&req, mem, sizeof(mem));
	if (msg4_put_put_finish(&req, sha) != 0)
		return CX_SERVER;
	if ((r = v4_call(u->c, REQ4_PUT_FINISH, &req, &rep, "finishing (PUT_FINISH)")) != 0)
		return r;
	if (rep.code == RESP4_ERROR) {
		reason = v4_error_reply(u->c, &rep, "finishing (PUT_FINISH)");
		if (reason == V4_REASON_MISMATCH) {
			log_fatal("the server's SHA-256 of %s is not ours: the upload was discarded",
			    u->name);
			return CX_CRC;
		}
		return CX_SERVER;
	}
	if (rep.code != RESP4_PUT_DONE || msg4_put_done_decode(rep.p, rep.n, &d) != 0)
		return v4_unexpected(rep.code, "finishing (PUT_FINISH)");
	if (d.size != u->size || memcmp(d.sha256, sha, sizeof(sha)) != 0 || d.cksum != crc) {
		hex_encode(sha, sizeof(sha), ours);
		hex_encode(d.sha256, sizeof(d.sha256), theirs);
		log_fatal("PUT_DONE does not match: size %llu / ours %llu, SHA-256 %s / ours %s, "
		    "cksum %u / ours %u", (unsigned long long)d.size, (unsigned long long)u->size,
		    theirs, ours, d.cksum, crc);
		return CX_CRC;
	}
	hex_encode(sha, sizeof(sha), ours);
	text_escape(d.name, shown, sizeof(shown));  /* the server's text */
	log_note("%s sent (%llu bytes, stored as '%s'); the server confirmed SHA-256 %s and "
	    "CRC %u", u->name, (unsigned long long)u->size, shown, ours, crc);
	return CX_OK;
}

static int
upload_once(struct upload *u, int *first)
{
	struct msg4_put_state st;
	char label[96];
	int r;

	/* Also after a reconnect: the file may have changed while the connection was down. */
	if ((r = check_unchanged(u)) != 0 || (r = negotiate(u, &st)) != 0)
		return r;
	if (*first) {
		snprintf(label, sizeof(label), "sealdrop-client: %.60s", u->name);
		progress_start(&u->progress, u->c->cfg->progress, u->size, label);
		/* What an earlier run left on the server: shown, and not counted in the rate. */
		u->progress.resumed = st.offset;
		*first = 0;
	}
	progress_update(&u->progress, st.offset);
	if ((r = send_chunks(u, st.offset, st.max_chunk, u->progress.resumed)) != 0)
		return r;
	return finish(u);
}

int
v4_cmd_send(struct v4_client *c)
{
	struct upload u;
	unsigned attempt = 0;
	int r, first = 1;

	memset(&u, 0, sizeof(u));
	u.c = c;
	u.fd = -1;
	u.path = c->cfg->file_path;
	log_set_hook(clear_bar, &u.progress);
	if ((r = open_upload(&u)) != 0)
		goto out;
	if ((r = chunk_buffers(&u, V4_MAX_CHUNK_MIN)) != 0)
		goto out;
	for (;;) {
		if (c->conn == NULL)
			r = CX_CONNECTION;
		else
			r = upload_once(&u, &first);
		if (r != CX_CONNECTION)
			break;
		progress_clear(&u.progress);
		if ((r = reconnect(c, &attempt, r)) != 0)
			break;
	}
	if (r == CX_OK) {
		progress_set_stats(&u.progress, u.progress.resumed, u.sent_plain, u.sent_wire);
		progress_finish(&u.progress);
		if (u.chunks_deflated > 0)
			log_verbose("%llu chunks deflated: %llu file bytes took %llu on the wire",
			    (unsigned long long)u.chunks_deflated,
			    (unsigned long long)u.sent_plain, (unsigned long long)u.sent_wire);
	} else {
		progress_clear(&u.progress);
	}
out:
	log_set_hook(NULL, NULL);
	if (u.z_ready)
		deflateEnd(&u.z);
	sha256_free(u.sha);
	free(u.plain);
	free(u.packed);
	if (u.fd >= 0)
		close(u.fd);
	return r;
}

/* ---- list ---- */

/* Prints s with control characters (and, for JSON, quotes and backslashes) escaped. */
static void
print_name(const char *s, int json)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p != '\0'; p++) {
		if (json && (*p == '"' || *p == '\\'))
			printf("\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			printf(json ? "\\u%04x" : "?", *p);
		else if (json && p[0] == 0xc2 && p[1] >= 0x80 && p[1] < 0xa0)
			printf("\\u%04x", *++p);  /* a C1 control, escaped as JSON allows */
		else
			putchar(*p);
	}
}

int
v4_cmd_list(struct v4_client *c)
{
	uint8_t mem[REQ_HEADER_SIZE];
	struct msg4_file_entry e;
	struct v4_reply rep;
	struct buf req, entries;
	char hex[2 * V4_SHA256_SIZE + 1], when[32], shown[TEXT_ESCAPE_SIZE(V4_NAME_MAX_LEN)];
	uint32_t count, i;
	struct tm tm;
	time_t t;
	size_t n;
	int r;

	buf_fixed(&req, mem, sizeof(mem));
	if (msg4_put_empty_request(&req, REQ4_LIST) != 0)
		return CX_SERVER;
	if ((r = call_reconnecting(c, REQ4_LIST, &req, &rep, "listing (LIST)", NULL)) != 0)
		return r;
	if (rep.code == RESP4_ERROR) {
		(void)v4_error_reply(c, &rep, "listing (LIST)");
		return CX_SERVER;
	}
	if (rep.code != RESP4_LISTING || rep.n < V4_LISTING_HEAD_SIZE || rep.n > UINT32_MAX ||
	    msg4_listing_head_decode(rep.p, V4_LISTING_HEAD_SIZE, (uint32_t)rep.n, &count) != 0)
		return v4_unexpected(rep.code, "listing (LIST)");
	buf_view(&entries, rep.p + V4_LISTING_HEAD_SIZE, rep.n - V4_LISTING_HEAD_SIZE);
	if (c->cfg->json)
		printf("[");
	else
		printf("%-40s %15s  %-19s  %s\n", "NAME", "SIZE", "UPLOADED (UTC)", "SHA-256");
	for (i = 0; i < count; i++) {
		if (msg4_listing_entry_get(&entries, &e) != 0) {
			if (c->cfg->json)
				printf("]\n");
			return v4_unexpected(rep.code, "listing (a malformed entry)");
		}
		t = (time_t)(e.uploaded > (uint64_t)INT32_MAX * 1024 ? 0 : e.uploaded);
		if (gmtime_r(&t, &tm) == NULL || strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S",
		    &tm) == 0)
			snprintf(when, sizeof(when), "?");
		hex_encode(e.sha256, sizeof(e.sha256), hex);
		if (c->cfg->json) {
			printf("%s\n  {\"name\": \"", i == 0 ? "" : ",");
			print_name(e.name, 1);
			printf("\", \"size\": %llu, \"uploaded\": %llu, \"sha256\": ",
			    (unsigned long long)e.size, (unsigned long long)e.uploaded);
			if (bytes_zero(e.sha256, sizeof(e.sha256)))
				printf("null}");
			else
				printf("\"%s\"}", hex);
		} else {
			/* The server's text: through the display sanitiser (no C0, DEL or C1). */
			n = text_escape(e.name, shown, sizeof(shown));
			printf("%s%*s %15llu  %-19s  %s\n", shown, n < 40 ? (int)(40 - n) : 0, "",
			    (unsigned long long)e.size, when,
			    bytes_zero(e.sha256, sizeof(e.sha256)) ? "-" : hex);
		}
	}
	if (c->cfg->json)
		printf("%s]\n", count > 0 ? "\n" : "");
	if (buf_len(&entries) != 0)
		log_warn("the listing has %zu bytes after its %u entries", buf_len(&entries), count);
	if (fflush(stdout) != 0) {
		log_fatal("cannot write the listing: %s", strerror(errno));
		return CX_FILE;
	}
	return CX_OK;
}

/* ---- get ---- */

/* The size LIST gives for name: 0 with *size, CX_NOT_FOUND if it is not listed, or an exit
 * status. GET has no size before its end: this is the bound a download is held to. */
static int
listed_size(struct v4_client *c, const char *name, uint64_t *size)
{
	uint8_t mem[REQ_HEADER_SIZE];
	struct msg4_file_entry e;
	struct v4_reply rep;
	struct buf req, entries;
	uint32_t count, i;
	int r;

	buf_fixed(&req, mem, sizeof(mem));
	if (msg4_put_empty_request(&req, REQ4_LIST) != 0)
		return CX_SERVER;
	if ((r = call_reconnecting(c, REQ4_LIST, &req, &rep, "looking up the size (LIST)",
	    NULL)) != 0)
		return r;
	if (rep.code == RESP4_ERROR) {
		(void)v4_error_reply(c, &rep, "looking up the size (LIST)");
		return CX_SERVER;
	}
	if (rep.code != RESP4_LISTING || rep.n < V4_LISTING_HEAD_SIZE || rep.n > UINT32_MAX ||
	    msg4_listing_head_decode(rep.p, V4_LISTING_HEAD_SIZE, (uint32_t)rep.n, &count) != 0)
		return v4_unexpected(rep.code, "looking up the size (LIST)");
	buf_view(&entries, rep.p + V4_LISTING_HEAD_SIZE, rep.n - V4_LISTING_HEAD_SIZE);
	for (i = 0; i < count; i++) {
		if (msg4_listing_entry_get(&entries, &e) != 0)
			return v4_unexpected(rep.code, "looking up the size (a malformed entry)");
		if (strcmp(e.name, name) == 0) {
			*size = e.size;
			return 0;
		}
	}
	return CX_NOT_FOUND;
}

struct download {
	struct v4_client *c;
	const char *name;
	char out[PATH_MAX];
	char part[PATH_MAX];
	int fd;
	uint64_t size;              /* the size LIST announced: never more is written */
	uint64_t have;              /* bytes in the .part file, all hashed into sha */
	struct sha256_ctx *sha;
	struct progress progress;
};

/* (Re)opens the .part file and hashes what it holds. */
static int
part_open(struct download *d, int truncate)
{
	uint8_t *tmp = NULL;
	struct stat st;
	size_t got;
	int r = CX_FILE;

	if (d->fd >= 0)
		close(d->fd);
	d->fd = open(d->part, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (truncate ? O_TRUNC : 0),
	    0644);
	if (d->fd < 0 || fstat(d->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		log_fatal("cannot write %s: %s", d->part, strerror(errno));
		return CX_FILE;
	}
	sha256_free(d->sha);
	d->sha = NULL;
	if (sha256_new(&d->sha) != 0 || (tmp = malloc(HASH_READ_CHUNK)) == NULL) {
		log_fatal("out of memory");
		goto out;
	}
	d->have = 0;
	while (d->have < (uint64_t)st.st_size) {
		if (pread_full(d->fd, tmp, HASH_READ_CHUNK, d->have, &got) != 0) {
			log_fatal("cannot read %s: %s", d->part, strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		sha256_update(d->sha, tmp, got);
		d->have += got;
	}
	if (lseek(d->fd, (off_t)d->have, SEEK_SET) < 0) {
		log_fatal("cannot write %s: %s", d->part, strerror(errno));
		goto out;
	}
	r = 0;
out:
	free(tmp);
	return r;
}

static int
get_once(struct download *d, int *restart)
{
	uint8_t mem[REQ_HEADER_SIZE + V4_PUT_OPEN_PAYLOAD_MAX];
	uint8_t sha[V4_SHA256_SIZE];
	struct msg4_get_end e;
	struct v4_reply rep;
	struct buf req;
	uint64_t off;
	unsigned reason;
	int r;

	*restart = 0;
	buf_fixed(&req, mem, sizeof(mem));
	if (msg4_put_get(&req, d->have, d->name) != 0) {
		log_fatal("the name '%s' cannot be sent", d->name);
		return CX_USAGE;
	}
	if (d->have > 0)
		log_note("resuming the download of %s at byte %llu", d->name,
		    (unsigned long long)d->have);
	if ((r = v4_call(d->c, REQ4_GET, &req, &rep, "downloading (GET)")) != 0)
		return r;
	for (;;) {
		if (rep.code == RESP4_ERROR) {
			reason = v4_error_reply(d->c, &rep, "downloading (GET)");
			if (reason == V4_REASON_NOT_FOUND) {
				log_fatal("the server has no file '%s'", d->name);
				return CX_NOT_FOUND;
			}
			if (d->have > 0 && (reason == V4_REASON_MISMATCH ||
			    reason == V4_REASON_BAD_REQUEST)) {
				*restart = 1;
				return CX_SERVER;
			}
			return CX_SERVER;
		}
		if (rep.code == RESP4_GET_END)
			break;
		if (rep.code != RESP4_GET_DATA || rep.n < V4_GET_DATA_HEAD_SIZE ||
		    msg4_get_data_head_decode(rep.p, V4_GET_DATA_HEAD_SIZE, &off) != 0)
			return v4_unexpected(rep.code, "downloading (GET)");
		if (off != d->have) {
			log_fatal("GET_DATA at byte %llu; expected %llu", (unsigned long long)off,
			    (unsigned long long)d->have);
			return CX_SERVER;
		}
		if (rep.n - V4_GET_DATA_HEAD_SIZE > d->size - d->have) {
			/* A server may not fill the disk: not a byte past the announced size. */
			log_fatal("the server sends more of %s than the %llu bytes its listing "
			    "announced; refusing the rest", d->name, (unsigned long long)d->size);
			v4_disconnect(d->c);
			return CX_SERVER;
		}
		if (write_full(d->fd, rep.p + V4_GET_DATA_HEAD_SIZE,
		    rep.n - V4_GET_DATA_HEAD_SIZE) != 0) {
			log_fatal("cannot write %s: %s", d->part, strerror(errno));
			return CX_FILE;
		}
		sha256_update(d->sha, rep.p + V4_GET_DATA_HEAD_SIZE, rep.n - V4_GET_DATA_HEAD_SIZE);
		d->have += rep.n - V4_GET_DATA_HEAD_SIZE;
		progress_update(&d->progress, d->have);
		if ((r = v4_read(d->c, &rep, "downloading (GET)")) != 0)
			return r;
	}
	if (msg4_get_end_decode(rep.p, rep.n, &e) != 0)
		return v4_unexpected(rep.code, "downloading (GET_END)");
	if (sha256_peek(d->sha, sha) != 0)
		return CX_FILE;
	if (e.size != d->have || memcmp(e.sha256, sha, sizeof(sha)) != 0) {
		log_error("%s: %llu bytes received, the server's file has %llu; SHA-256 %s",
		    d->name, (unsigned long long)d->have, (unsigned long long)e.size,
		    memcmp(e.sha256, sha, sizeof(sha)) == 0 ? "matches" : "differs");
		*restart = 1;
		return CX_CRC;
	}
	if (fsync(d->fd) != 0 || rename(d->part, d->out) != 0) {
		log_fatal("cannot write %s: %s", d->out, strerror(errno));
		return CX_FILE;
	}
	progress_finish(&d->progress);
	log_note("%s received (%llu bytes, SHA-256 checked) into %s", d->name,
	    (unsigned long long)d->have, d->out);
	return CX_OK;
}

/* 1 if name (a bare file name) is one of the client's own files in this folder. */
static int
own_file(const struct v4_config *cfg, const char *name)
{
	const char *own[] = { cfg->me_path, cfg->priv_path, cfg->key_path, cfg->known_path,
	    cfg->transfer_path, "transfer.info" };
	size_t i;

	for (i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		if (own[i] != NULL && strcmp(own[i], name) == 0)
			return 1;
	return 0;
}

int
v4_cmd_get(struct v4_client *c)
{
	struct download d;
	char base[NAME_FIELD_SIZE], shown[TEXT_ESCAPE_SIZE(V4_NAME_MAX_LEN)];
	char label[96];
	unsigned attempt = 0;
	int r, restart = 0, restarted = 0;

	memset(&d, 0, sizeof(d));
	d.c = c;
	d.fd = -1;
	d.name = c->cfg->arg;
	/* Without -o the file goes to the current folder under the name's last component, by
	 * the file-name rule the server stores under (text.h): never "..", a folder, a control
	 * character or a reserved prefix. */
	if (c->cfg->output == NULL && text_file_name(d.name, base, NULL) != 0) {
		text_escape(d.name, shown, sizeof(shown));
		log_fatal("'%s' is no file name to write here; use -o PATH", shown);
		return CX_USAGE;
	}
	if (c->cfg->output == NULL && own_file(c->cfg, base)) {
		log_fatal("'%s' would overwrite the client's own file of that name here; use -o "
		    "PATH", base);
		return CX_USAGE;
	}
	if ((size_t)snprintf(d.out, sizeof(d.out), "%s", c->cfg->output != NULL ?
	    c->cfg->output : base) >= sizeof(d.out) ||
	    (size_t)snprintf(d.part, sizeof(d.part), "%s%s", d.out, PART_SUFFIX) >=
	    sizeof(d.part)) {
		log_fatal("the output path is too long");
		return CX_USAGE;
	}
	log_set_hook(clear_bar, &d.progress);
	if ((r = listed_size(c, d.name, &d.size)) != 0) {
		if (r == CX_NOT_FOUND)
			log_fatal("the server has no file '%s'", d.name);
		goto out;
	}
	if ((r = part_open(&d, 0)) != 0)
		goto out;
	if (d.have > d.size && (r = part_open(&d, 1)) != 0)
		goto out;  /* longer than the file: not a prefix of it */
	snprintf(label, sizeof(label), "sealdrop-client: %.60s", d.name);
	/* The size is known only at GET_END: no bar, the notes say what happened. */
	progress_start(&d.progress, 0, 0, label);
	for (;;) {
		restart = 0;
		r = c->conn == NULL ? CX_CONNECTION : get_once(&d, &restart);
		if (r != CX_OK && restart && !restarted) {
			/* The partial file is not a prefix of the server's: once from 0. */
			log_note("starting the download of %s again from the start", d.name);
			restarted = 1;
			if ((r = part_open(&d, 1)) != 0)
				break;
			if (c->conn == NULL && (r = reconnect(c, &attempt, CX_CONNECTION)) != 0)
				break;
			continue;
		}
		if (r != CX_CONNECTION)
			break;
		progress_clear(&d.progress);
		if ((r = reconnect(c, &attempt, r)) != 0)
			break;
	}
	if (r == CX_NOT_FOUND || (r != CX_OK && restart)) {
		/* Nothing worth keeping: the name is unknown, or the bytes are wrong. */
		(void)unlink(d.part);
	}
out:
	progress_clear(&d.progress);
	log_set_hook(NULL, NULL);
	sha256_free(d.sha);
	if (d.fd >= 0)
		close(d.fd);
	return r;
}

/* ---- rm ---- */

int
v4_cmd_rm(struct v4_client *c)
{
	uint8_t mem[REQ_HEADER_SIZE + V4_NAME_FIELD_MAX];
	struct v4_reply rep;
	struct buf req;
	unsigned reason;
	int r, resent;

	buf_fixed(&req, mem, sizeof(mem));
	if (msg4_put_delete(&req, c->cfg->arg) != 0) {
		log_fatal("the name '%s' cannot be sent (1 to %u bytes)", c->cfg->arg,
		    V4_NAME_MAX_LEN);
		return CX_USAGE;
	}
	if ((r = call_reconnecting(c, REQ4_DELETE, &req, &rep, "deleting (DELETE)",
	    &resent)) != 0)
		return r;
	if (rep.code == RESP4_ERROR) {
		if (resent && msg4_error_decode(rep.p, rep.n, &c->last_error) == 0 &&
		    c->last_error.reason == V4_REASON_NOT_FOUND) {
			/* The DELETE before the reconnect was served; its reply was lost. */
			log_note("%s deleted (the reply to the first DELETE was lost; the one sent "
			    "again after reconnecting found the file gone)", c->cfg->arg);
			return CX_OK;
		}
		reason = v4_error_reply(c, &rep, "deleting (DELETE)");
		if (reason == V4_REASON_NOT_FOUND) {
			log_fatal("the server has no file '%s'", c->cfg->arg);
			return CX_NOT_FOUND;
		}
		return CX_SERVER;
	}
	if (rep.code != RESP4_OK || msg4_empty_decode(rep.p, rep.n) != 0)
		return v4_unexpected(rep.code, "deleting (DELETE)");
	log_note("%s deleted", c->cfg->arg);
	return CX_OK;
}
