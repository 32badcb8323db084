/* fetch.c: version 4's LIST (the account's verified files, one snapshot, streamed), GET (GET_DATA blocks read straight
 * into the output buffer as it drains, then GET_END with the whole file's size and SHA-256,
 * hashing and storing it on the first full read of a version-3 file) and DELETE. */
#include "fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../db/db.h"
#include "../protocol/crypto.h"
#include "../protocol/err.h"
#include "../protocol/hex.h"
#include "../protocol/msg4.h"
#include "commit.h"
#include "config.h"
#include "conn.h"
#include "crash.h"
#include "log.h"
#include "put.h"
#include "storage.h"

#define FETCH_HEX_ID (CLIENT_ID_SIZE * 2u)

/* What a connection streams into its output as it drains (c->get): a download, or the
 * entries of a LISTING whose header is queued. */
struct fetch {
	int list;                      /* 1: LISTING entries, 0: a download */
	int fd;                        /* the stored file; a listing's temporary file or -1 */
	uint64_t next;                 /* offset of the next GET_DATA or listing byte */
	struct db_file seen;           /* the row the download serves */
	struct sha256_ctx *sha;        /* hashing the whole file (no stored SHA-256) */
	struct buf mem;                /* a listing's entries when fd < 0 */
	uint64_t size;                 /* a listing's entries' size */
	uint64_t hashed;               /* with sha: bytes before the first GET_DATA hashed */
};

/* A download from an offset of a file with no stored SHA-256 hashes the bytes before the
 * offset first, at most this many per loop turn (a few milliseconds), so other connections
 * of the worker are served in between. */
#define FETCH_HASH_SLICE (4u << 20)

/* Free room at the end of c's output buffer. */
static size_t
out_room(const struct conn *c)
{
	return c->out.max > c->out.len ? c->out.max - c->out.len : 0;
}

/* pread of exactly n bytes at off into dst: 0 or SD_ERR_IO (also when the file is shorter). */
static int
read_exact(int fd, uint8_t *dst, size_t n, uint64_t off)
{
	ssize_t r;

	while (n > 0) {
		if ((r = pread(fd, dst, n, (off_t)off)) <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return SD_ERR_IO;
		}
		dst += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* Appends n bytes of the file at off to c->out (the buffer's tail is read into directly). */
static int
put_file_bytes(struct conn *c, int fd, size_t n, uint64_t off)
{
	int e;

	if ((e = buf_put_zeros(&c->out, n)) != 0)
		return e;
	if ((e = read_exact(fd, c->out.data + c->out.len - n, n, off)) != 0)
		c->out.len -= n;
	return e;
}

/* The stored row of the account's file name in f (only the account's own, verified rows). */
static int
own_file(struct conn *c, const char *name, struct db_file *f)
{
	int e = db_file_get(c->env->db, c->id, name, f);

	if (e == 0 && !f->verified)
		return SD_ERR_NOT_FOUND;
	return e;
}

/* The base name of a row's path, only when it lies in the account's folder. */
static const char *
own_base(const struct conn *c, const struct db_file *f)
{
	char hex[FETCH_HEX_ID + 1];
	const char *base;

	hex_encode(c->id, CLIENT_ID_SIZE, hex);
	if (strncmp(f->path_name, hex, FETCH_HEX_ID) != 0 || f->path_name[FETCH_HEX_ID] != '/')
		return NULL;
	base = f->path_name + FETCH_HEX_ID + 1;
	if (base[0] == '\0' || strchr(base, '/') != NULL || strcmp(base, "..") == 0 ||
	    strcmp(base, ".") == 0)
		return NULL;
	return base;
}

/* --- LIST ------------------------------------------------------------------------------ */

/* A LISTING is built in one pass over the account's rows: one statement, one snapshot, so
 * the count and size of its header describe exactly the entries that follow, whatever other
 * connections delete or publish meanwhile. The entries wait in memory up to LIST_MEM_MAX
 * bytes, beyond that in an unlinked temporary file in the account's folder (memory does not
 * grow with the account's files), and go into the output as it drains, like a download. */
#define LIST_MEM_MAX (64u << 10)

_Static_assert(V4_LISTING_PAYLOAD_MAX - V4_LISTING_HEAD_SIZE <= UINT32_MAX,
    "a LISTING's entries are counted in its u32 payload size");

struct listing {
	struct conn *c;
	uint32_t count;
	uint64_t bytes;   /* the entries' size */
	struct buf mem;   /* the entries; with fd >= 0 the write buffer in front of it */
	int fd;           /* -1: every entry is in mem */
	int err;
};

static void
entry_of(const struct db_file *f, struct msg4_file_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->size = f->size;
	e->uploaded = f->uploaded > 0 ? (uint64_t)f->uploaded : 0;
	if (f->has_sha256)
		memcpy(e->sha256, f->sha256, V4_SHA256_SIZE);
	snprintf(e->name, sizeof(e->name), "%s", f->file_name);
}

/* An unlinked temporary file in the account's folder: O_TMPFILE, or where the file system
 * lacks it a new STORAGE_TMP_PREFIX name removed at once (a crash in between leaves what
 * storage_remove_stale() removes at the next start). The fd or -1. */
static int
list_temp_file(struct conn *c)
{
	char name[sizeof(STORAGE_TMP_PREFIX "list-") + 16];
	uint8_t rnd[8];
	int dir_fd = -1, fd = -1;

	if (storage_open_folder(c->env->cfg->storage_dir, c->id, &dir_fd) != 0)
		return -1;
	fd = openat(dir_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		crypto_random(rnd, sizeof(rnd));
		memcpy(name, STORAGE_TMP_PREFIX "list-", sizeof(STORAGE_TMP_PREFIX "list-") - 1);
		hex_encode(rnd, sizeof(rnd), name + sizeof(STORAGE_TMP_PREFIX "list-") - 1);
		fd = openat(dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0)
			(void)unlinkat(dir_fd, name, 0);
	}
	(void)close(dir_fd);
	return fd;
}

/* Moves the entries in l->mem to the temporary file (made on first use). */
static int
list_spill(struct listing *l)
{
	const uint8_t *p = buf_ptr(&l->mem);
	size_t n = buf_len(&l->mem);
	ssize_t w;

	if (l->fd < 0 && (l->fd = list_temp_file(l->c)) < 0)
		return SD_ERR_IO;
	while (n > 0) {
		if ((w = write(l->fd, p, n)) < 0) {
			if (errno == EINTR)
				continue;
			return SD_ERR_IO;
		}
		p += w;
		n -= (size_t)w;
	}
	buf_reset(&l->mem);
	return 0;
}

static int
on_listed(void *ctx, const struct db_file *f)
{
	struct listing *l = ctx;
	struct msg4_file_entry e;
	size_t n;

	if (!msg4_name_valid(f->file_name, strlen(f->file_name)))
		return 0;  /* a version-3 name version 4 cannot carry: left out */
	if (l->count == V4_LISTING_COUNT_MAX)
		return 1;  /* the first V4_LISTING_COUNT_MAX by name */
	entry_of(f, &e);
	n = msg4_listing_entry_size(&e);
	if ((buf_len(&l->mem) + n > LIST_MEM_MAX && (l->err = list_spill(l)) != 0) ||
	    (l->err = msg4_put_listing_entry(&l->mem, &e)) != 0)
		return 1;
	l->count++;
	l->bytes += n;
	return 0;
}

void
fetch_list(struct conn *c, const struct frame_event *ev)
{
	struct listing l;
	struct fetch *g = NULL;
	int e;

	if (!c->known) {
		put_reply_error(c, V4_REASON_NOT_REGISTERED, 0, "not registered");
		return;
	}
	if (msg4_empty_decode(ev->data, ev->len) != 0) {
		put_reply_error(c, V4_REASON_BAD_REQUEST, 0, "malformed LIST");
		return;
	}
	memset(&l, 0, sizeof(l));
	l.c = c;
	l.fd = -1;
	buf_init(&l.mem, LIST_MEM_MAX);
	if ((e = db_each_verified_file(c->env->db, c->id, on_listed, &l)) < 0 || l.err != 0 ||
	    (l.fd >= 0 && list_spill(&l) != 0)) {
		conn_log(c, "list", "failed: %s", sd_strerror(e < 0 ? e : l.err != 0 ? l.err :
		    SD_ERR_IO));
		put_reply_error(c, V4_REASON_STORAGE, 0, e < 0 ? "cannot read the database" :
		    "cannot build the listing");
		goto out;
	}
	if ((e = msg4_put_listing_head(&c->out, l.count, (uint32_t)l.bytes)) != 0) {
		conn_queued(c, e);
		goto out;
	}
	conn_log(c, "list", "%u files", (unsigned)l.count);
	if (l.fd < 0 && buf_len(&l.mem) <= out_room(c)) {
		conn_queued(c, buf_put_bytes(&c->out, buf_ptr(&l.mem), buf_len(&l.mem)));
		goto out;
	}
	/* The header is queued: from here a failure cannot keep the framing, it closes. */
	if ((g = calloc(1, sizeof(*g))) == NULL) {
		conn_log(c, "list", "out of memory mid-listing; closing");
		conn_close_later(c);
		goto out;
	}
	g->list = 1;
	g->fd = l.fd;
	g->mem = l.mem;  /* taken over (empty when the entries are in the file) */
	g->size = l.bytes;
	l.fd = -1;
	buf_init(&l.mem, 0);
	c->get = g;
	fetch_pump(c);
out:
	if (l.fd >= 0)
		(void)close(l.fd);
	buf_free(&l.mem);
}

/* --- GET ------------------------------------------------------------------------------- */

void
fetch_end(struct conn *c)
{
	struct fetch *g = c->get;

	if (g == NULL)
		return;
	c->get = NULL;
	if (g->fd >= 0)
		(void)close(g->fd);
	sha256_free(g->sha);
	buf_free(&g->mem);
	free(g);
}

/* Hashes the next at most FETCH_HASH_SLICE bytes before g->next into g->sha, using the
 * output buffer's free tail as the block (nothing is queued; too little room: next turn). */
static int
hash_slice(struct conn *c, struct fetch *g)
{
	uint64_t stop = g->next - g->hashed > FETCH_HASH_SLICE ? g->hashed + FETCH_HASH_SLICE :
	    g->next;
	size_t n;
	int e;

	while (g->hashed < stop) {
		n = stop - g->hashed < FETCH_BLOCK ? (size_t)(stop - g->hashed) : FETCH_BLOCK;
		if (n > out_room(c))
			return 0;
		if ((e = put_file_bytes(c, g->fd, n, g->hashed)) != 0)
			return e;
		sha256_update(g->sha, c->out.data + c->out.len - n, n);
		c->out.len -= n;
		g->hashed += n;
	}
	return 0;
}

void
fetch_get(struct conn *c, const struct frame_event *ev)
{
	struct msg4_get m;
	struct fetch *g = NULL;
	struct stat st;
	const char *base;
	int dir_fd = -1, e;

	if (!c->known) {
		put_reply_error(c, V4_REASON_NOT_REGISTERED, 0, "not registered");
		return;
	}
	if (msg4_get_decode(ev->data, ev->len, &m) != 0) {
		put_reply_error(c, V4_REASON_BAD_REQUEST, 0, "malformed GET");
		return;
	}
	fetch_end(c);
	if ((g = calloc(1, sizeof(*g))) == NULL) {
		put_reply_error(c, V4_REASON_STORAGE, 0, "out of memory");
		return;
	}
	g->fd = -1;
	if ((e = own_file(c, m.name, &g->seen)) != 0) {
		put_reply_error(c, e == SD_ERR_NOT_FOUND ? V4_REASON_NOT_FOUND : V4_REASON_STORAGE, 0,
		    e == SD_ERR_NOT_FOUND ? "no such file" : "cannot read the database");
		goto fail;
	}
	if (m.offset > g->seen.size) {
		put_reply_error(c, V4_REASON_BAD_REQUEST, 0, "offset past the end of the file");
		goto fail;
	}
	if ((base = own_base(c, &g->seen)) == NULL ||
	    storage_open_folder(c->env->cfg->storage_dir, c->id, &dir_fd) != 0 ||
	    (g->fd = openat(dir_fd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    fstat(g->fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != g->seen.size) {
		conn_log(c, "get", "stored file missing or not as recorded");
		put_reply_error(c, V4_REASON_STORAGE, 0, "stored file unreadable");
		goto fail;
	}
	if (!g->seen.has_sha256 && (e = sha256_new(&g->sha)) != 0) {
		put_reply_error(c, V4_REASON_STORAGE, 0, "out of memory");
		goto fail;
	}
	if (dir_fd >= 0)
		(void)close(dir_fd);
	g->next = m.offset;
	c->get = g;
	conn_log(c, "get", "%llu bytes from %llu", (unsigned long long)g->seen.size,
	    (unsigned long long)m.offset);
	fetch_pump(c);
	return;
fail:
	if (dir_fd >= 0)
		(void)close(dir_fd);
	if (g->fd >= 0)
		(void)close(g->fd);
	sha256_free(g->sha);
	free(g);
}

/* The download is complete: GET_END (storing a hash just computed), the download ends. */
static void
get_end(struct conn *c, struct fetch *g)
{
	struct msg4_get_end end;
	int e;

	memset(&end, 0, sizeof(end));
	end.size = g->seen.size;
	if (g->sha == NULL) {
		memcpy(end.sha256, g->seen.sha256, V4_SHA256_SIZE);
	} else {
		if (sha256_peek(g->sha, end.sha256) != 0) {
			conn_close_later(c);
			return;
		}
		/* The first full read of a version-3 file: its hash is kept for LIST and later
		 * downloads (refused when the row changed meanwhile). */
		if ((e = db_file_set_sha256(c->env->db, &g->seen, end.sha256)) != 0 &&
		    e != SD_ERR_NOT_FOUND)
			conn_log(c, "get", "cannot store the SHA-256: %s", sd_strerror(e));
	}
	conn_queued(c, msg4_put_get_end(&c->out, &end));
	fetch_end(c);
}

/* The next bytes of a LISTING's entries, as many as the output takes; the listing ends
 * with its last byte. */
static void
pump_listing(struct conn *c, struct fetch *g)
{
	size_t n, room;
	int e;

	while (buf_len(&c->out) < CONN_OUT_HIGH && g->next < g->size) {
		if ((room = out_room(c)) == 0)
			return;  /* conn_flush() moves what waits to the front */
		n = g->size - g->next < FETCH_BLOCK ? (size_t)(g->size - g->next) : FETCH_BLOCK;
		if (n > room)
			n = room;
		if (g->fd >= 0)
			e = put_file_bytes(c, g->fd, n, g->next);
		else
			e = buf_put_bytes(&c->out, buf_ptr(&g->mem) + g->next, n);
		if (e != 0) {
			conn_log(c, "list", "failed mid-listing: %s; closing", sd_strerror(e));
			conn_close_later(c);
			return;
		}
		g->next += n;
	}
	if (g->next == g->size)
		fetch_end(c);
}

void
fetch_pump(struct conn *c)
{
	struct fetch *g = c->get;
	size_t n, room;
	int e;

	if (g == NULL || c->closing)
		return;
	if (g->list) {
		pump_listing(c, g);
		return;
	}
	if (g->sha != NULL && g->hashed < g->next) {
		/* The bytes before the offset first, a slice per turn (nothing is sent yet). */
		if ((e = hash_slice(c, g)) != 0) {
			conn_log(c, "get", "failed reading the stored file: %s", sd_strerror(e));
			fetch_end(c);
			put_reply_error(c, V4_REASON_STORAGE, 0, "cannot read the stored file");
			return;
		}
		c->last_tx_ms = c->env->now_ms;  /* working for the peer: not idle */
		if (g->hashed < g->next)
			return;
	}
	while (buf_len(&c->out) < CONN_OUT_HIGH && g->next < g->seen.size) {
		room = out_room(c);
		if (room < RESP_HEADER_SIZE + V4_GET_DATA_HEAD_SIZE + 1)
			return;  /* conn_flush() moves what waits to the front */
		room -= RESP_HEADER_SIZE + V4_GET_DATA_HEAD_SIZE;
		n = g->seen.size - g->next < FETCH_BLOCK ? (size_t)(g->seen.size - g->next) :
		    FETCH_BLOCK;
		if (n > room)
			n = room;
		if ((e = msg4_put_get_data_head(&c->out, g->next, (uint32_t)n)) != 0 ||
		    (e = put_file_bytes(c, g->fd, n, g->next)) != 0) {
			/* The header may be out already: the framing cannot be kept. */
			conn_log(c, "get", "failed reading the stored file: %s; closing",
			    sd_strerror(e));
			conn_close_later(c);
			return;
		}
		if (g->sha != NULL)
			sha256_update(g->sha, c->out.data + c->out.len - n, n);
		g->next += n;
	}
	if (g->next == g->seen.size &&
	    out_room(c) >= RESP_HEADER_SIZE + 8u + V4_SHA256_SIZE)
		get_end(c, g);
}

/* --- DELETE ---------------------------------------------------------------------------- */

/* The path of the commit intent that makes a DELETE safe against a kill: a temporary name
 * nothing ever creates (no stored name can take the reserved prefix), so the start-up finds
 * no attempt to rename and keeps the intent only while its file is still there. */
#define FETCH_DELETE_TEMP COMMIT_DELETE_TEMP

/* Removes f's file (base in the account's folder) with its row, through a commit intent that
 * describes the row: a kill after the intent but before the file is gone is rolled back at
 * start-up (the file still matches the intent: the row is published again), a kill after the
 * unlink drops the intent (nothing matches it any more), so a row and its file always go
 * together. 0 or a negative sd_err; *why says what failed.
 * Longer than 60 lines on purpose: the steps in their durable order with a crash point
 * between each, as docs/architecture.md lists them. */
static int
delete_row_and_file(struct conn *c, const struct db_file *f, const char *base,
    const char **why)
{
	struct db_commit in;
	char hex[FETCH_HEX_ID + 1];
	int dir_fd = -1, lock_fd = -1, e, r;

	*why = "cannot delete the file";
	if ((e = storage_open_folder(c->env->cfg->storage_dir, c->id, &dir_fd)) != 0)
		return e;
	/* The file's lock, held until the intent is gone: a roll-forward on another server (one
	 * starting, or one whose upload meets this intent) leaves a DELETE in progress alone. */
	lock_fd = openat(dir_fd, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (lock_fd >= 0 && storage_lock(lock_fd, 0) == STORAGE_LOCK_HELD) {
		*why = "this file is being stored or deleted";
		e = SD_ERR_EXISTS;
		goto out;
	}
	memset(&in, 0, sizeof(in));
	memcpy(in.owner, c->id, CLIENT_ID_SIZE);
	memcpy(in.file_name, f->file_name, sizeof(in.file_name));
	hex_encode(c->id, CLIENT_ID_SIZE, hex);
	snprintf(in.temp_path, sizeof(in.temp_path), "%s/%s", hex, FETCH_DELETE_TEMP);
	memcpy(in.path_name, f->path_name, sizeof(in.path_name));
	in.size = f->size;
	in.crc = f->crc;
	in.has_sha256 = f->has_sha256;
	memcpy(in.sha256, f->sha256, sizeof(in.sha256));
	in.verified = f->verified;
	in.created = f->uploaded;
	if ((e = db_commit_add(c->env->db, &in)) != 0) {
		if (e == SD_ERR_EXISTS)
			*why = "this file is being stored or deleted";
		goto out;
	}
	crash_point("delete-after-intent");
	if ((e = db_file_delete(c->env->db, c->id, f->file_name)) != 0)
		goto undo;
	crash_point("delete-after-row");
	/* Another of the account's names may still be stored at that path (two names that
	 * sanitise alike keep one row, so normally none). */
	if (unlinkat(dir_fd, base, 0) != 0 && errno != ENOENT) {
		conn_log(c, "delete", "cannot remove %s: %s", f->path_name, strerror(errno));
		e = SD_ERR_IO;
		goto undo;
	}
	(void)fsync(dir_fd);
	crash_point("delete-after-unlink");
	if ((r = db_commit_delete(c->env->db, c->id, f->file_name)) != 0)
		conn_log(c, "delete", "deleted, but its intent stays until the next start: %s",
		    sd_strerror(r));
	crash_point("delete-after-intent-gone");
	e = 0;
	goto out;
undo:
	/* The file is still there: the row comes back from the intent. */
	if ((r = db_commit_publish(c->env->db, c->id, f->file_name)) != 0)
		conn_log(c, "delete", "restoring the row failed: %s; the next start restores it",
		    sd_strerror(r));
out:
	if (lock_fd >= 0)
		(void)close(lock_fd);
	(void)close(dir_fd);
	return e;
}

/* The row of name read under the lock of the stored name it lies at (put.h), which every
 * publishing of that name holds too: until *lk is unlocked the row cannot be replaced, so the
 * row read is the row deleted and its file goes before a newer upload of the name appears.
 * 0 (row in *f, *lk locked), SD_ERR_NOT_FOUND, SD_ERR_TAKEN (the row moved meanwhile) or
 * another sd_err. */
static int
lock_row(struct conn *c, const char *name, struct db_file *f, struct put_slot **lk)
{
	char at[NAME_FIELD_SIZE];
	const char *base;
	int e, tries;

	*lk = NULL;
	if (storage_sanitize_name(name, at) != 0)
		return SD_ERR_NOT_FOUND;  /* nothing of that name can be stored */
	for (tries = 0; tries < 2; tries++) {
		if ((*lk = put_name_lock(c->id, at)) == NULL)
			return SD_ERR_ALLOC;
		if ((e = db_file_get(c->env->db, c->id, name, f)) != 0)
			break;
		/* Normally the row lies at the name's sanitised path; one written otherwise (an
		 * older server) is locked by the name it lies at. */
		if ((base = own_base(c, f)) == NULL || strcmp(base, at) == 0)
			return 0;
		snprintf(at, sizeof(at), "%s", base);
		put_name_unlock(*lk);
		*lk = NULL;
		e = SD_ERR_TAKEN;
	}
	put_name_unlock(*lk);
	*lk = NULL;
	return e;
}

void
fetch_delete(struct conn *c, const struct frame_event *ev)
{
	char name[V4_NAME_BUF], shown[LOG_NAME_MAX + 4];
	struct db_file f;
	struct put_slot *lk = NULL;
	const char *base, *why = NULL;
	int e;

	if (!c->known) {
		put_reply_error(c, V4_REASON_NOT_REGISTERED, 0, "not registered");
		return;
	}
	if (msg4_delete_decode(ev->data, ev->len, name) != 0) {
		put_reply_error(c, V4_REASON_BAD_REQUEST, 0, "malformed DELETE");
		return;
	}
	if ((e = lock_row(c, name, &f, &lk)) != 0) {
		put_reply_error(c, e == SD_ERR_NOT_FOUND ? V4_REASON_NOT_FOUND :
		    e == SD_ERR_TAKEN ? V4_REASON_BUSY : V4_REASON_STORAGE, 0,
		    e == SD_ERR_NOT_FOUND ? "no such file" : e == SD_ERR_TAKEN ?
		    "the file is being replaced" : "cannot read the database");
		return;
	}
	if ((base = own_base(c, &f)) != NULL)
		e = delete_row_and_file(c, &f, base, &why);
	else if ((e = db_file_delete(c->env->db, c->id, name)) != 0)
		why = "cannot delete the file";  /* a row naming no file of ours: only the row */
	put_name_unlock(lk);
	if (e != 0) {
		conn_log(c, "delete", "failed: %s: %s (%s)", why, sd_strerror(e),
		    db_errmsg(c->env->db));
		put_reply_error(c, e == SD_ERR_NOT_FOUND ? V4_REASON_NOT_FOUND : V4_REASON_STORAGE, 0,
		    why);
		return;
	}
	log_sanitize(name, shown, sizeof(shown));
	conn_log(c, "delete", "\"%s\" deleted", shown);
	conn_queued(c, msg4_put_empty_response(&c->out, RESP4_OK));
}
