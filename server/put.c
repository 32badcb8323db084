/* put.c: version 4's resumable upload: PUT_OPEN finds or starts the partial upload of
 * (account, stored name) and proves its prefix, PUT_DATA appends chunks (raw deflate inflated
 * through a fixed buffer), PUT_FINISH checks the SHA-256 and publishes through a commit
 * intent, PUT_ABORT discards. See put.h for the durability and takeover rules. */
#include "put.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "../db/db.h"
#include "../protocol/cksum.h"
#include "../protocol/crypto.h"
#include "../protocol/err.h"
#include "../protocol/hex.h"
#include "../protocol/msg4.h"
#include "commit.h"
#include "config.h"
#include "conn.h"
#include "crash.h"
#include "handlers_v4.h"
#include "limits.h"
#include "log.h"
#include "receive.h"
#include "storage.h"

/* Inflate output, and the block the prefix is re-hashed in: fixed, whatever the chunk. */
#define PUT_BLOCK 65536u
/* A resumed prefix is re-hashed at most this many bytes per loop turn (a few milliseconds),
 * so other connections of the worker are served in between. */
#define PUT_HASH_SLICE (4u << 20)
#define PUT_TMP_RANDOM 8u
#define PUT_TMP_NAME_MAX 64u
#define PUT_HEX_ID (CLIENT_ID_SIZE * 2u)

/* One (account, stored name) being uploaded somewhere in the process. gen changes on every
 * PUT_OPEN; the upload whose gen it is owns the file (read and written under mu). lock_fd
 * holds the flock of the file the slot's uploads write (lock_rel), for the slot's life: an
 * upload of this process taking the name over shares it (a dup), other servers see the file
 * held (docs/deployment.md).
 * The one upload of --max-uploads-per-client (limits.h) counted for the name is the owner's:
 * a takeover passes it on. */
struct put_slot {
	struct put_slot *next;
	uint8_t owner[CLIENT_ID_SIZE];
	char name[NAME_FIELD_SIZE];
	pthread_mutex_t mu;
	unsigned gen;                  /* 0: never owned */
	int counted;                   /* the owner holds a limits_upload_begin() count */
	unsigned refs;                 /* uploads pointing here (under reg_mu) */
	int lock_fd;                   /* -1 or a descriptor holding lock_rel's flock (under mu) */
	char lock_rel[DB_PATH_SIZE];
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct put_slot *reg_head;

struct put {
	struct put_slot *slot;
	unsigned gen;
	char name[NAME_FIELD_SIZE];          /* sanitised: the files row's and the disk's name */
	uint64_t size;                       /* as PUT_OPEN said */
	uint64_t offset;                     /* bytes in the temporary file */
	uint64_t durable;                    /* bytes fsynced and recorded */
	int dir_fd, fd;
	char tmp_name[PUT_TMP_NAME_MAX];     /* inside the account's folder */
	char rel_tmp[DB_PATH_SIZE];          /* <hex id>/<tmp_name> */
	struct sha256_ctx *sha;
	struct cksum ck;
	int hashing;                         /* PUT_STATE waits for the prefix's hash */
	uint64_t hashed;                     /* bytes of the prefix hashed so far */
	int64_t started_ms;                  /* first PUT_DATA (--min-upload-rate); 0: none */
	uint64_t wire_bytes;                 /* PUT_DATA bytes received since */

	/* The 851 arriving. */
	int in_chunk;
	int deflate;
	int z_ready, z_done;
	uint64_t chunk_start;
	uint32_t plain_len, produced;
	z_stream z;
	uint8_t block[PUT_BLOCK];
};

static int64_t
unix_now(void)
{
	return (int64_t)time(NULL);
}

static int64_t
expiry(const struct conn *c)
{
	return unix_now() + (int64_t)c->env->cfg->resume_ttl;
}

/* --- The registry ---------------------------------------------------------------------- */

/* The slot of (owner, name), made if needed, with one more reference. NULL: out of memory. */
static struct put_slot *
slot_get(const uint8_t owner[CLIENT_ID_SIZE], const char *name)
{
	struct put_slot *s;

	pthread_mutex_lock(&reg_mu);
	for (s = reg_head; s != NULL; s = s->next)
		if (memcmp(s->owner, owner, CLIENT_ID_SIZE) == 0 && strcmp(s->name, name) == 0)
			break;
	if (s == NULL && (s = calloc(1, sizeof(*s))) != NULL) {
		memcpy(s->owner, owner, CLIENT_ID_SIZE);
		snprintf(s->name, sizeof(s->name), "%s", name);
		pthread_mutex_init(&s->mu, NULL);
		s->lock_fd = -1;
		s->next = reg_head;
		reg_head = s;
	}
	if (s != NULL)
		s->refs++;
	pthread_mutex_unlock(&reg_mu);
	return s;
}

static void
slot_unref(struct put_slot *s)
{
	struct put_slot **pp;

	if (s == NULL)
		return;
	pthread_mutex_lock(&reg_mu);
	if (--s->refs == 0) {
		for (pp = &reg_head; *pp != NULL; pp = &(*pp)->next) {
			if (*pp == s) {
				*pp = s->next;
				break;
			}
		}
		pthread_mutex_destroy(&s->mu);
		if (s->lock_fd >= 0)
			(void)close(s->lock_fd);
		free(s);
	}
	pthread_mutex_unlock(&reg_mu);
}

/* The references to s now (under reg_mu). */
static unsigned
slot_refs(struct put_slot *s)
{
	unsigned n;

	pthread_mutex_lock(&reg_mu);
	n = s->refs;
	pthread_mutex_unlock(&reg_mu);
	return n;
}

struct put_slot *
put_name_lock(const uint8_t owner[CLIENT_ID_SIZE], const char *name)
{
	struct put_slot *s;

	if ((s = slot_get(owner, name)) != NULL)
		pthread_mutex_lock(&s->mu);
	return s;
}

void
put_name_unlock(struct put_slot *s)
{
	if (s == NULL)
		return;
	pthread_mutex_unlock(&s->mu);
	slot_unref(s);
}

/* Under p->slot->mu: 1 while p still owns its file. */
static int
owns(const struct put *p)
{
	return p->gen != 0 && p->slot->gen == p->gen;
}

/* Under the slot's mutex: fd (locked by this process) is the slot's file rel from now on; the
 * lock of an earlier file of the slot is let go. */
static void
slot_hold(struct put_slot *s, int fd, const char *rel)
{
	int dup_fd = dup(fd);

	if (s->lock_fd >= 0)
		(void)close(s->lock_fd);
	s->lock_fd = dup_fd;  /* -1 if dup failed: p's own descriptor still holds the lock */
	snprintf(s->lock_rel, sizeof(s->lock_rel), "%s", rel);
}

/* Under the slot's mutex, p owning its file: another server took the upload over (the
 * record names its own file now) or the record went. p's file is nobody's: it goes, and no
 * connection of this process owns the name any more (p answers ERROR 8 through put_check). */
static void
lost_locked(struct put *p)
{
	struct stat mine, named;

	if (p->tmp_name[0] != '\0' && fstat(p->fd, &mine) == 0 &&
	    fstatat(p->dir_fd, p->tmp_name, &named, AT_SYMLINK_NOFOLLOW) == 0 &&
	    mine.st_ino == named.st_ino && mine.st_dev == named.st_dev)
		(void)unlinkat(p->dir_fd, p->tmp_name, 0);
	p->slot->gen++;
	if (p->slot->lock_fd >= 0) {
		(void)close(p->slot->lock_fd);
		p->slot->lock_fd = -1;
	}
}

/* --- Replies --------------------------------------------------------------------------- */

void
put_reply_error(struct conn *c, uint16_t reason, int close, const char *message)
{
	conn_log(c, "v4", "ERROR %u (%s): %s%s", (unsigned)reason, msg4_reason_name(reason),
	    message, close ? "; closing" : "");
	if (close)
		handlers_v4_fail(c, reason, message);
	else
		handlers_v4_error(c, reason, message);
}

/* --- The upload's life ----------------------------------------------------------------- */

/* Closes and frees p; the file and its record stay as they are. The upload it owned, if
 * it still did, no longer counts against --max-uploads-per-client. */
static void
put_free(struct put *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->slot->mu);
	if (owns(p) && p->slot->counted) {
		p->slot->counted = 0;
		limits_upload_end(p->slot->owner);
	}
	pthread_mutex_unlock(&p->slot->mu);
	if (p->fd >= 0)
		(void)close(p->fd);
	if (p->dir_fd >= 0)
		(void)close(p->dir_fd);
	if (p->z_ready)
		(void)inflateEnd(&p->z);
	sha256_free(p->sha);
	slot_unref(p->slot);
	free(p);
}

/* Under the slot's mutex, p owning its file: fsync and record the durable offset, also when
 * it has not moved (the record then tells whether another server took the upload over).
 * SD_ERR_TAKEN when one did. */
static int
record_locked(struct conn *c, struct put *p)
{
	int e, moved = p->offset != p->durable;

	if (moved) {
		if (fsync(p->fd) != 0)
			return SD_ERR_IO;
		crash_point("put-sync-after-fsync");
	}
	e = db_upload_advance(c->env->db, c->id, p->name, p->rel_tmp, p->offset, expiry(c));
	if (e == SD_ERR_NOT_FOUND) {
		lost_locked(p);
		return SD_ERR_TAKEN;
	}
	if (e != 0)
		return e;
	if (moved)
		crash_point("put-sync-after-record");
	p->durable = p->offset;
	return 0;
}

/* Under the slot's mutex, p owning its file: record_locked when there is something new. */
static int
sync_locked(struct conn *c, struct put *p)
{
	if (p->offset == p->durable)
		return 0;
	return record_locked(c, p);
}

/* Under the slot's mutex, p owning its file: the file and its record go. */
static void
discard_locked(struct conn *c, struct put *p)
{
	int e;

	if (p->tmp_name[0] != '\0')
		(void)unlinkat(p->dir_fd, p->tmp_name, 0);
	crash_point("put-discard-after-unlink");
	/* Only p's record: another server may have taken the name over meanwhile. */
	if (p->rel_tmp[0] != '\0' &&
	    (e = db_upload_drop(c->env->db, c->id, p->name, p->rel_tmp)) != 0 &&
	    e != SD_ERR_NOT_FOUND)
		conn_log(c, "put", "failed to delete the partial upload's record: %s (%s)",
		    sd_strerror(e), db_errmsg(c->env->db));
}

void
put_release(struct conn *c)
{
	struct put *p = c->put;
	int e = 0, mine;

	if (p == NULL)
		return;
	c->put = NULL;
	pthread_mutex_lock(&p->slot->mu);
	/* The bytes of a chunk cut short are a prefix of the file too (inflated ones as well):
	 * they count. */
	if ((mine = owns(p)) != 0)
		e = record_locked(c, p);
	pthread_mutex_unlock(&p->slot->mu);
	if (!mine || e == SD_ERR_TAKEN)
		conn_log(c, "put", "upload taken over by a newer connection");
	else if (e != 0)
		conn_log(c, "put", "failed to record the durable offset: %s", sd_strerror(e));
	else
		conn_log(c, "put", "partial upload kept at %llu of %llu bytes",
		    (unsigned long long)p->durable, (unsigned long long)p->size);
	put_free(p);
}

int
put_check(struct conn *c)
{
	struct put *p = c->put;
	int mine;

	if (p == NULL || c->closing)
		return 0;
	pthread_mutex_lock(&p->slot->mu);
	mine = owns(p);
	pthread_mutex_unlock(&p->slot->mu);
	if (mine)
		return 0;
	c->put = NULL;
	put_free(p);
	put_reply_error(c, V4_REASON_BUSY, 1, "upload taken over by a newer connection");
	/* Found by the timer, not by an event of this connection: nothing else would write the
	 * ERROR until the peer sends again. */
	conn_flush(c);
	return 1;
}

int
put_too_slow(const struct conn *c, int64_t now_ms)
{
	const struct server_config *cfg = c->env->cfg;
	const struct put *p = c->put;
	int64_t age;

	if (p == NULL || cfg->min_upload_rate == 0 || p->started_ms == 0)
		return 0;
	age = now_ms - p->started_ms;
	if (age < (int64_t)cfg->min_rate_grace * 1000 || age <= 0)
		return 0;
	/* bytes / (age / 1000) < rate, without division */
	return p->wire_bytes * 1000u < (uint64_t)cfg->min_upload_rate * (uint64_t)age;
}

int
put_in_chunk(const struct conn *c)
{
	return c->put != NULL && c->put->in_chunk;
}

/* A temp_path from the database that names a resumable file in owner's folder: 1, *base
 * set to its name in the folder. */
static int
tmp_path_ok(const uint8_t owner[CLIENT_ID_SIZE], const char *rel, const char **base)
{
	char hex[PUT_HEX_ID + 1];
	const char *name;

	*base = NULL;
	hex_encode(owner, CLIENT_ID_SIZE, hex);
	if (strncmp(rel, hex, PUT_HEX_ID) != 0 || rel[PUT_HEX_ID] != '/')
		return 0;
	name = rel + PUT_HEX_ID + 1;
	if (strncmp(name, STORAGE_RESUME_PREFIX, strlen(STORAGE_RESUME_PREFIX)) != 0 ||
	    strchr(name, '/') != NULL || strlen(name) >= PUT_TMP_NAME_MAX)
		return 0;
	*base = name;
	return 1;
}

/* A new temporary file in the account's folder, locked and the slot's file from now on: p->fd,
 * p->tmp_name, p->rel_tmp. */
static int
create_tmp(struct conn *c, struct put *p)
{
	uint8_t rnd[PUT_TMP_RANDOM];
	char rnd_hex[PUT_TMP_RANDOM * 2 + 1], hex[PUT_HEX_ID + 1];
	int i;

	hex_encode(c->id, CLIENT_ID_SIZE, hex);
	for (i = 0; i < 8 && p->fd < 0; i++) {
		crypto_random(rnd, sizeof(rnd));
		hex_encode(rnd, sizeof(rnd), rnd_hex);
		snprintf(p->tmp_name, sizeof(p->tmp_name), "%s%s", STORAGE_RESUME_PREFIX, rnd_hex);
		p->fd = openat(p->dir_fd, p->tmp_name,
		    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (p->fd < 0 && errno != EEXIST)
			break;
	}
	if (p->fd < 0) {
		p->tmp_name[0] = '\0';
		return SD_ERR_IO;
	}
	crash_point("put-fresh-after-create");
	/* Locked before a byte is written: another server's clean-up leaves it (empty and young
	 * until then). */
	(void)storage_lock(p->fd, 1);
	snprintf(p->rel_tmp, sizeof(p->rel_tmp), "%s/%s", hex, p->tmp_name);
	slot_hold(p->slot, p->fd, p->rel_tmp);
	return 0;
}

/* Undoes create_tmp (the record, if any, is the caller's). */
static void
drop_tmp(struct put *p)
{
	if (p->tmp_name[0] != '\0')
		(void)unlinkat(p->dir_fd, p->tmp_name, 0);
	if (p->fd >= 0)
		(void)close(p->fd);
	p->fd = -1;
	p->tmp_name[0] = '\0';
	p->rel_tmp[0] = '\0';
}

/* A fresh temporary file and its record at offset 0 (an older record of the name replaced:
 * a connection of another server still on it finds so at its next record). */
static int
start_fresh(struct conn *c, struct put *p)
{
	struct db_upload u;
	int e;

	if ((e = create_tmp(c, p)) != 0)
		return e;
	memset(&u, 0, sizeof(u));
	memcpy(u.owner, c->id, CLIENT_ID_SIZE);
	snprintf(u.file_name, sizeof(u.file_name), "%s", p->name);
	u.size = p->size;
	u.offset = 0;
	memcpy(u.temp_path, p->rel_tmp, sizeof(u.temp_path));
	u.expires = expiry(c);
	if ((e = db_upload_put(c->env->db, &u)) != 0) {
		drop_tmp(p);
		return e;
	}
	p->offset = p->durable = 0;
	return 0;
}

/* The record u's file src is locked by another server's connection, alive or not yet aware
 * its client went: the upload moves to a new file of ours holding the durable prefix (bytes
 * below the recorded offset never change, their writer only appends), and the record to that
 * file. That connection finds at its next record, or at PUT_FINISH, that it lost the name.
 * src is closed. 1 resumed, 0 not (start afresh), or a negative sd_err. */
static int
take_from_live(struct conn *c, struct put *p, const struct db_upload *u, int src)
{
	struct db_upload v;
	uint64_t at = 0;
	size_t want, done;
	ssize_t n;
	int e = 0;

	if (u->size != p->size) {
		(void)close(src);
		return 0;  /* another file: start_fresh replaces the record */
	}
	if ((e = create_tmp(c, p)) != 0) {
		(void)close(src);
		return e;
	}
	while (e == 0 && at < u->offset) {
		want = u->offset - at < PUT_BLOCK ? (size_t)(u->offset - at) : PUT_BLOCK;
		if ((n = pread(src, p->block, want, (off_t)at)) < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			e = n == 0 ? SD_ERR_NOT_FOUND : SD_ERR_IO;  /* shorter: start afresh */
			break;
		}
		for (done = 0; e == 0 && done < (size_t)n; ) {
			ssize_t w = write(p->fd, p->block + done, (size_t)n - done);

			if (w < 0 && errno != EINTR)
				e = SD_ERR_IO;
			else if (w > 0)
				done += (size_t)w;
		}
		at += (uint64_t)n;
	}
	(void)close(src);
	if (e == 0 && fsync(p->fd) != 0)
		e = SD_ERR_IO;
	if (e == 0) {
		v = *u;
		memcpy(v.temp_path, p->rel_tmp, sizeof(v.temp_path));
		v.expires = expiry(c);
		/* NOT_FOUND: the record changed since it was read (published, moved, expired). */
		e = db_upload_move(c->env->db, u->temp_path, &v);
	}
	if (e != 0) {
		drop_tmp(p);
		return e == SD_ERR_NOT_FOUND ? 0 : e;
	}
	p->offset = p->durable = u->offset;
	return 1;
}

/* 1 when fd is the file name in dir_fd (not removed or replaced since it was opened). */
static int
still_named(int dir_fd, const char *name, int fd)
{
	struct stat a, b;

	return fstat(fd, &a) == 0 && fstatat(dir_fd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
	    a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

/* The recorded partial upload of p's name, if it is for this size and its file holds at
 * least the durable offset: reopened at the file's length (fsynced and recorded, since an
 * older connection may have written past its last record). Its file is shared with an older
 * connection of this process, locked when no other server holds it, and copied when one does
 * (take_from_live). 1 resumed, 0 not (the old record and file, when this server could lock
 * it, are gone then), or a negative sd_err. */
static int
try_resume(struct conn *c, struct put *p)
{
	struct db_upload u;
	struct stat st;
	const char *base = NULL;
	int e, fd = -1, held = 0;

	if ((e = db_upload_get(c->env->db, c->id, p->name, &u)) != 0)
		return e == SD_ERR_NOT_FOUND ? 0 : e;
	if (!tmp_path_ok(c->id, u.temp_path, &base))
		goto drop;
	if (p->slot->lock_fd >= 0 && strcmp(p->slot->lock_rel, u.temp_path) == 0) {
		/* An older connection of this process has it (it no longer touches it). */
		if ((fd = dup(p->slot->lock_fd)) < 0)
			return SD_ERR_IO;
		held = 1;
	} else {
		if ((fd = openat(p->dir_fd, base, O_RDWR | O_NOFOLLOW | O_CLOEXEC)) < 0)
			goto drop;
		if (storage_lock(fd, 0) == STORAGE_LOCK_HELD)
			return take_from_live(c, p, &u, fd);
		held = 1;
		/* Expired and removed between the read and the lock: not this record's file. */
		if (!still_named(p->dir_fd, base, fd))
			goto drop;
		slot_hold(p->slot, fd, u.temp_path);
	}
	if (u.size != p->size || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size < u.offset)
		goto drop;
	if ((uint64_t)st.st_size > u.size && ftruncate(fd, (off_t)u.offset) != 0)
		goto drop;
	if (fsync(fd) != 0 || fstat(fd, &st) != 0)
		goto drop;
	crash_point("put-resume-after-sync");
	p->fd = fd;
	snprintf(p->tmp_name, sizeof(p->tmp_name), "%s", base);
	memcpy(p->rel_tmp, u.temp_path, sizeof(p->rel_tmp));
	p->offset = p->durable = (uint64_t)st.st_size;
	e = db_upload_advance(c->env->db, c->id, p->name, p->rel_tmp, p->offset, expiry(c));
	if (e == SD_ERR_NOT_FOUND) {
		/* Changed since it was read: the file is no record's now. */
		p->rel_tmp[0] = '\0';
		drop_tmp(p);
		return 0;
	}
	if (e != 0)
		return e;
	return 1;
drop:
	if (fd >= 0)
		(void)close(fd);
	/* A file another server holds is its connection's to remove. */
	if (held && base != NULL)
		(void)unlinkat(p->dir_fd, base, 0);
	crash_point("put-resume-drop-after-unlink");
	if ((e = db_upload_drop(c->env->db, c->id, p->name, u.temp_path)) != 0 &&
	    e != SD_ERR_NOT_FOUND)
		return e;
	return 0;
}

/* The next at most PUT_HASH_SLICE bytes of the file's first p->offset into the SHA-256 and
 * cksum (p->hashed counts them). */
static int
hash_slice(struct put *p)
{
	uint64_t stop = p->offset - p->hashed > PUT_HASH_SLICE ? p->hashed + PUT_HASH_SLICE :
	    p->offset;
	ssize_t n;
	size_t want;

	while (p->hashed < stop) {
		want = stop - p->hashed < PUT_BLOCK ? (size_t)(stop - p->hashed) : PUT_BLOCK;
		if ((n = pread(p->fd, p->block, want, (off_t)p->hashed)) <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return SD_ERR_IO;
		}
		sha256_update(p->sha, p->block, (size_t)n);
		cksum_update(&p->ck, p->block, (size_t)n);
		p->hashed += (uint64_t)n;
	}
	return 0;
}

/* Under the slot's mutex: the file of p opened or resumed (its prefix is hashed afterwards,
 * by put_pump). 0 or (reason, message) set. */
static int
open_locked(struct conn *c, struct put *p, const char **why)
{
	int e;

	if ((e = storage_open_folder(c->env->cfg->storage_dir, c->id, &p->dir_fd)) != 0) {
		*why = "cannot open the account's folder";
		return e;
	}
	if ((e = try_resume(c, p)) < 0) {
		*why = "cannot read the partial upload";
		return e;
	}
	if (e == 0 && (e = start_fresh(c, p)) != 0) {
		*why = "cannot create the temporary file";
		return e;
	}
	if ((e = sha256_new(&p->sha)) != 0) {
		*why = "out of memory";
		return e;
	}
	cksum_init(&p->ck);
	return 0;
}

/* A new upload struct for name (sanitised) and size; NULL when out of memory. */
static struct put *
put_new(const uint8_t owner[CLIENT_ID_SIZE], const char *name, uint64_t size)
{
	struct put *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->fd = -1;
	p->dir_fd = -1;
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->size = size;
	if ((p->slot = slot_get(owner, name)) == NULL) {
		free(p);
		return NULL;
	}
	return p;
}

/* The per-client limits of version 3 (--max-client-storage, --max-client-files) for a file
 * of size bytes to be stored under safe: checked at PUT_OPEN, before any byte is written. */
static int
client_limits(struct conn *c, const char *safe, uint64_t size)
{
	char hex[CLIENT_ID_SIZE * 2 + 1], rel[STORAGE_PATH_MAX];
	int n;

	hex_encode(c->id, CLIENT_ID_SIZE, hex);
	n = snprintf(rel, sizeof(rel), "%s/%s", hex, safe);
	if (n < 0 || (size_t)n >= sizeof(rel))
		return SD_ERR_TOO_LARGE;
	return receive_check_client_limits(c, rel, size);
}

int
put_hashing(const struct conn *c)
{
	return c->put != NULL && c->put->hashing;
}

void
put_pump(struct conn *c)
{
	struct put *p = c->put;
	struct msg4_put_state st;
	int e, mine;

	if (p == NULL || !p->hashing || c->closing || put_check(c))
		return;
	/* Read without the lock: only the upload owning the file writes it, and that is this
	 * one until a PUT_OPEN elsewhere takes it over, which is checked before answering. */
	e = hash_slice(p);
	c->last_tx_ms = c->env->now_ms;  /* working for the peer: no idle timeout meanwhile */
	if (e == 0 && p->hashed < p->offset)
		return;  /* more on the next turn of the loop */
	pthread_mutex_lock(&p->slot->mu);
	if ((mine = owns(p)) != 0 && e == 0 && lseek(p->fd, (off_t)p->offset, SEEK_SET) < 0)
		e = SD_ERR_IO;
	pthread_mutex_unlock(&p->slot->mu);
	if (!mine) {
		(void)put_check(c);
		return;
	}
	memset(&st, 0, sizeof(st));
	st.offset = p->offset;
	if (e != 0 || sha256_peek(p->sha, st.prefix_sha256) != 0) {
		conn_log(c, "put", "failed: cannot read the partial upload: %s", sd_strerror(e));
		c->put = NULL;
		put_free(p);
		put_reply_error(c, V4_REASON_STORAGE, 0, "cannot read the partial upload");
		return;
	}
	st.max_chunk = PUT_MAX_CHUNK;
	p->hashing = 0;
	conn_queued(c, msg4_put_put_state(&c->out, &st));
}

/* PUT_OPEN: the request's checks and the account's limits, then a fresh upload or the
 * resumption of the recorded one (in place, or from a copy when another server holds it).
 * Longer than 60 lines on purpose: the checks in SPEC-v4.md's order, each refusal with its
 * reply beside it, then the name's slot taken under its mutex. */
void
put_open(struct conn *c, const struct frame_event *ev)
{
	struct msg4_put_open m;
	char safe[NAME_FIELD_SIZE], shown[LOG_NAME_MAX + 4];
	const char *why = NULL;
	struct put *p;
	int e;

	put_release(c);
	if (!c->known) {
		put_reply_error(c, V4_REASON_NOT_REGISTERED, 0, "not registered");
		return;
	}
	if (msg4_put_open_decode(ev->data, ev->len, &m) != 0) {
		put_reply_error(c, V4_REASON_BAD_REQUEST, 0, "malformed PUT_OPEN");
		return;
	}
	if (m.size > c->env->cfg->max_file_size_v4 || m.size > V4_FILE_SIZE_MAX) {
		put_reply_error(c, V4_REASON_TOO_LARGE, 0, "file larger than this server accepts");
		return;
	}
	if (storage_sanitize_name(m.name, safe) != 0) {
		log_sanitize(m.name, shown, sizeof(shown));
		conn_log(c, "put", "refused: file name \"%s\" cannot be stored", shown);
		put_reply_error(c, V4_REASON_BAD_REQUEST, 0, "file name cannot be stored");
		return;
	}
	if ((e = client_limits(c, safe, m.size)) != 0) {
		put_reply_error(c, e == SD_ERR_TOO_LARGE ? V4_REASON_TOO_LARGE : V4_REASON_STORAGE,
		    0, e == SD_ERR_TOO_LARGE ? "over this account's storage or file limit" :
		    "cannot count this account's files");
		return;
	}
	if ((p = put_new(c->id, safe, m.size)) == NULL) {
		put_reply_error(c, V4_REASON_STORAGE, 0, "out of memory");
		return;
	}
	pthread_mutex_lock(&p->slot->mu);
	/* One upload of the account more, unless this one takes over another connection's
	 * upload of the name, whose count it inherits. */
	if (!p->slot->counted &&
	    !limits_upload_begin(c->id, c->env->cfg->max_uploads_per_client)) {
		pthread_mutex_unlock(&p->slot->mu);
		put_free(p);
		conn_log(c, "limit", "upload refused: %u uploads of this client in progress "
		    "(--max-uploads-per-client)", c->env->cfg->max_uploads_per_client);
		put_reply_error(c, V4_REASON_BUSY, 0, "too many uploads of this account in progress");
		return;
	}
	p->slot->counted = 1;
	/* Takes the name over from any other connection: from now on it does not touch it. */
	if (++p->slot->gen == 0)
		p->slot->gen = 1;
	p->gen = p->slot->gen;
	e = open_locked(c, p, &why);
	pthread_mutex_unlock(&p->slot->mu);
	if (e != 0) {
		conn_log(c, "put", "failed: %s: %s", why, sd_strerror(e));
		put_free(p);
		put_reply_error(c, V4_REASON_STORAGE, 0, why);
		return;
	}
	c->put = p;
	log_sanitize(safe, shown, sizeof(shown));
	conn_log(c, "put", "\"%s\": %llu bytes, resuming at %llu", shown,
	    (unsigned long long)p->size, (unsigned long long)p->offset);
	/* PUT_STATE once the prefix is hashed, a slice per loop turn (conn.c reads nothing
	 * more from c meanwhile). */
	p->hashing = 1;
	put_pump(c);
}

/* Writes n plaintext bytes at p->offset: hashed, counted, synced every PUT_SYNC_INTERVAL.
 * 0, SD_ERR_TAKEN when p lost its file to a takeover, or another negative sd_err. */
static int
write_plain(struct conn *c, struct put *p, const uint8_t *data, size_t n)
{
	size_t done = 0;
	ssize_t w;
	int e = 0;

	pthread_mutex_lock(&p->slot->mu);
	if (!owns(p)) {
		pthread_mutex_unlock(&p->slot->mu);
		return SD_ERR_TAKEN;
	}
	while (done < n) {
		if ((w = write(p->fd, data + done, n - done)) < 0) {
			if (errno == EINTR)
				continue;
			e = SD_ERR_IO;
			break;
		}
		done += (size_t)w;
	}
	if (e == 0) {
		sha256_update(p->sha, data, n);
		cksum_update(&p->ck, data, n);
		p->offset += n;
		p->produced += (uint32_t)n;
		if (p->offset - p->durable >= PUT_SYNC_INTERVAL)
			e = sync_locked(c, p);
	}
	pthread_mutex_unlock(&p->slot->mu);
	return e;
}

/* A refused chunk: what it wrote goes (the file ends at the chunk's start again), ERROR
 * reason, close. */
static void
chunk_refused(struct conn *c, uint16_t reason, const char *message)
{
	struct put *p = c->put;
	uint64_t keep;

	if (p != NULL && p->in_chunk) {
		/* Never below the durable offset: a sync inside this chunk recorded it already,
		 * and a record past its file's end loses the whole upload (the prefix hash still
		 * checks those bytes at the next PUT_OPEN). */
		keep = p->durable > p->chunk_start ? p->durable : p->chunk_start;
		pthread_mutex_lock(&p->slot->mu);
		if (owns(p) && p->offset != keep && ftruncate(p->fd, (off_t)keep) == 0 &&
		    lseek(p->fd, (off_t)keep, SEEK_SET) >= 0)
			p->offset = keep;
		pthread_mutex_unlock(&p->slot->mu);
		p->in_chunk = 0;
	}
	put_reply_error(c, reason, 1, message);
}

/* The result of write_plain() as a reply: 0 goes on. */
static int
written(struct conn *c, int e)
{
	if (e == 0)
		return 0;
	if (e == SD_ERR_TAKEN)
		(void)put_check(c);
	else
		chunk_refused(c, V4_REASON_STORAGE, "cannot write the file");
	return -1;
}

void
put_data_start(struct conn *c, const struct frame_event *ev)
{
	struct msg4_put_data m;
	struct put *p = c->put;

	if (put_check(c))
		return;
	if (p == NULL) {
		put_reply_error(c, V4_REASON_BAD_REQUEST, 1, "PUT_DATA without PUT_OPEN");
		return;
	}
	/* The rate counts from the first chunk: after PUT_STATE the client may hash its own
	 * copy of a long prefix first (the idle timeout bounds that). */
	if (p->started_ms == 0)
		p->started_ms = c->env->now_ms > 0 ? c->env->now_ms : 1;
	p->wire_bytes += REQ_HEADER_SIZE + (uint64_t)ev->len;
	if (msg4_put_data_decode(ev->data, ev->len, ev->header->payload_size, PUT_MAX_CHUNK,
	    &m) != 0) {
		put_reply_error(c, V4_REASON_BAD_REQUEST, 1, "malformed PUT_DATA");
		return;
	}
	if (m.offset != p->offset) {
		put_reply_error(c, V4_REASON_MISMATCH, 1, "PUT_DATA at the wrong offset");
		return;
	}
	if (m.plain_len > p->size - p->offset) {
		put_reply_error(c, V4_REASON_MISMATCH, 1, "PUT_DATA past the announced size");
		return;
	}
	p->in_chunk = 1;
	p->chunk_start = p->offset;
	p->plain_len = m.plain_len;
	p->produced = 0;
	p->deflate = (m.flags & V4_PUT_FLAG_DEFLATE) != 0;
	p->z_done = 0;
	if (!p->deflate)
		return;
	if (!p->z_ready) {
		memset(&p->z, 0, sizeof(p->z));
		if (inflateInit2(&p->z, -15) != Z_OK) {
			chunk_refused(c, V4_REASON_STORAGE, "out of memory");
			return;
		}
		p->z_ready = 1;
	} else if (inflateReset(&p->z) != Z_OK) {
		chunk_refused(c, V4_REASON_STORAGE, "inflate failed");
	}
}

/* Inflates one slice through the fixed block: output beyond plain_len (a bomb), bytes after
 * the deflate stream's end, or a broken stream refuse the chunk. */
static void
inflate_slice(struct conn *c, struct put *p, const uint8_t *data, size_t len)
{
	int ret;
	size_t got;

	if (p->z_done) {
		chunk_refused(c, V4_REASON_BAD_REQUEST, "data after the end of the deflate stream");
		return;
	}
	p->z.next_in = (Bytef *)(uintptr_t)data;
	p->z.avail_in = (uInt)len;
	for (;;) {
		p->z.next_out = p->block;
		p->z.avail_out = PUT_BLOCK;
		ret = inflate(&p->z, Z_NO_FLUSH);
		got = PUT_BLOCK - p->z.avail_out;
		if (ret != Z_OK && ret != Z_STREAM_END && ret != Z_BUF_ERROR) {
			chunk_refused(c, V4_REASON_BAD_REQUEST, "broken deflate data");
			return;
		}
		if (got > p->plain_len - p->produced) {
			chunk_refused(c, V4_REASON_BAD_REQUEST, "deflate data longer than plain_len");
			return;
		}
		if (got > 0 && written(c, write_plain(c, p, p->block, got)) != 0)
			return;
		if (ret == Z_STREAM_END) {
			p->z_done = 1;
			if (p->z.avail_in > 0)
				chunk_refused(c, V4_REASON_BAD_REQUEST,
				    "data after the end of the deflate stream");
			return;
		}
		/* More output may wait only when the block was filled. */
		if (p->z.avail_out != 0 || (ret == Z_BUF_ERROR && got == 0))
			return;
	}
}

void
put_data_slice(struct conn *c, const struct frame_event *ev)
{
	struct put *p = c->put;

	if (c->closing || p == NULL || !p->in_chunk || ev->len == 0)
		return;
	p->wire_bytes += ev->len;
	if (p->deflate) {
		inflate_slice(c, p, ev->data, ev->len);
		return;
	}
	if (ev->len > p->plain_len - p->produced) {
		chunk_refused(c, V4_REASON_BAD_REQUEST, "data longer than plain_len");
		return;
	}
	(void)written(c, write_plain(c, p, ev->data, ev->len));
}

void
put_data_end(struct conn *c, const struct frame_event *ev)
{
	struct put *p = c->put;

	(void)ev;
	if (c->closing || p == NULL || !p->in_chunk)
		return;
	if (p->deflate && !p->z_done) {
		chunk_refused(c, V4_REASON_BAD_REQUEST, "deflate data ended early");
		return;
	}
	if (p->produced != p->plain_len) {
		chunk_refused(c, V4_REASON_BAD_REQUEST, "chunk shorter than plain_len");
		return;
	}
	p->in_chunk = 0;
}

/* Under the slot's mutex, p owning a complete, checked file: fsync, intent, rename, folder
 * fsync, publish (files row Verified = 1 with size, cksum and SHA-256), record gone. Until the
 * rename an earlier file of that name stays as it was, on disk and in the database.
 * Longer than 60 lines on purpose: the steps in their durable order with a crash point
 * between each (docs/architecture.md's table of version 4's steps), read as one sequence. */
static int
publish_locked(struct conn *c, struct put *p, const uint8_t sha[V4_SHA256_SIZE],
    uint32_t crc, const char **why)
{
	struct db_commit in;
	char hex[PUT_HEX_ID + 1];
	int e;

	*why = "cannot store the file";
	/* Again before publishing: the account's other uploads (of either version) may have
	 * been stored since PUT_OPEN. Refused, the partial upload stays as it is. */
	if ((e = client_limits(c, p->name, p->size)) != 0) {
		*why = e == SD_ERR_TOO_LARGE ? "over this account's storage or file limit" :
		    "cannot count this account's files";
		return e;
	}
	if (fsync(p->fd) != 0)
		return SD_ERR_IO;
	crash_point("put-before-intent");
	memset(&in, 0, sizeof(in));
	memcpy(in.owner, c->id, CLIENT_ID_SIZE);
	snprintf(in.file_name, sizeof(in.file_name), "%s", p->name);
	memcpy(in.temp_path, p->rel_tmp, sizeof(in.temp_path));
	hex_encode(c->id, CLIENT_ID_SIZE, hex);
	snprintf(in.path_name, sizeof(in.path_name), "%s/%s", hex, p->name);
	in.size = p->size;
	in.crc = crc;
	in.has_sha256 = 1;
	memcpy(in.sha256, sha, V4_SHA256_SIZE);
	in.verified = 1;
	/* The record goes with the intent's coming, if it still names p's file: an upload another
	 * server took over never publishes. */
	e = db_upload_commit(c->env->db, &in);
	/* In the way: an intent a killed server left (none has started since to roll it on). */
	if (e == SD_ERR_EXISTS &&
	    commit_roll_stale(c->env->db, c->env->cfg->storage_dir, &in) == 1)
		e = db_upload_commit(c->env->db, &in);
	if (e != 0) {
		if (e == SD_ERR_NOT_FOUND) {
			lost_locked(p);
			return SD_ERR_TAKEN;
		}
		*why = e == SD_ERR_EXISTS ? "another upload of this name is being stored" :
		    "cannot record the file";
		return e;
	}
	crash_point("put-after-intent");
	if (crash_fail("put-rename") ||
	    renameat(p->dir_fd, p->tmp_name, p->dir_fd, p->name) != 0) {
		(void)db_commit_delete(c->env->db, c->id, p->name);
		/* The record went with the intent: no upload resumes from this file any more, and
		 * nothing but the next start-up would remove it. */
		(void)unlinkat(p->dir_fd, p->tmp_name, 0);
		p->tmp_name[0] = '\0';
		return SD_ERR_IO;
	}
	p->tmp_name[0] = '\0';
	crash_point("put-after-rename");
	/* From here the file is in place. If the folder's fsync or the publishing transaction
	 * fails, the intent stays: the next upload of this path settles it once this server has
	 * let go of the file (commit_roll_stale), or the next start-up does. */
	if (crash_fail("put-dirsync") || fsync(p->dir_fd) != 0) {
		*why = "cannot sync the folder";
		return SD_ERR_IO;
	}
	crash_point("put-after-dirsync");
	e = crash_fail("put-publish") ? SD_ERR_DB : db_commit_publish(c->env->db, c->id, p->name);
	if (e != 0) {
		*why = "cannot record the file";
		return e;
	}
	crash_point("put-after-publish");
	/* (The partial-upload record went with the intent's coming.) */
	crash_point("put-after-record-gone");
	return 0;
}

/* PUT_FINISH: the size and hash checks, then publishing, in the order SPEC-v4.md gives them,
 * each refusal with its own ERROR reason.
 * Longer than 60 lines on purpose: the checks in SPEC-v4.md's order, one reply each. */
void
put_finish(struct conn *c, const struct frame_event *ev)
{
	struct put *p = c->put;
	struct msg4_put_done d;
	uint8_t want[V4_SHA256_SIZE];
	const char *why = NULL;
	char shown[LOG_NAME_MAX + 4];
	int e = 0, mine, match;

	if (put_check(c))
		return;
	if (p == NULL) {
		put_reply_error(c, V4_REASON_BAD_REQUEST, 0, "PUT_FINISH without PUT_OPEN");
		return;
	}
	if (msg4_put_finish_decode(ev->data, ev->len, want) != 0) {
		put_reply_error(c, V4_REASON_BAD_REQUEST, 0, "malformed PUT_FINISH");
		return;
	}
	if (p->offset != p->size) {
		put_reply_error(c, V4_REASON_MISMATCH, 0, "PUT_FINISH before the whole file");
		return;
	}
	memset(&d, 0, sizeof(d));
	if (sha256_peek(p->sha, d.sha256) != 0) {
		put_reply_error(c, V4_REASON_STORAGE, 0, "hash failed");
		return;
	}
	d.size = p->size;
	d.cksum = cksum_final(&p->ck);
	snprintf(d.name, sizeof(d.name), "%s", p->name);
	match = memcmp(d.sha256, want, V4_SHA256_SIZE) == 0;
	pthread_mutex_lock(&p->slot->mu);
	if ((mine = owns(p)) != 0) {
		if (!match)
			discard_locked(c, p);
		else
			e = publish_locked(c, p, d.sha256, d.cksum, &why);
	}
	pthread_mutex_unlock(&p->slot->mu);
	if (!mine || e == SD_ERR_TAKEN) {
		(void)put_check(c);
		return;
	}
	log_sanitize(d.name, shown, sizeof(shown));
	if (match && e == SD_ERR_TOO_LARGE) {
		/* Over the account's limits now: the upload stays open, so PUT_FINISH may be
		 * sent again once other files are deleted (or PUT_ABORT). */
		conn_log(c, "put", "\"%s\": not stored: %s", shown, why);
		put_reply_error(c, V4_REASON_TOO_LARGE, 0, why);
		return;
	}
	c->put = NULL;
	put_free(p);
	if (!match) {
		conn_log(c, "put", "\"%s\": SHA-256 mismatch; upload discarded", shown);
		put_reply_error(c, V4_REASON_MISMATCH, 0, "SHA-256 mismatch: upload discarded");
		return;
	}
	if (e != 0) {
		conn_log(c, "put", "\"%s\": %s: %s (%s)", shown, why, sd_strerror(e),
		    db_errmsg(c->env->db));
		put_reply_error(c, V4_REASON_STORAGE, 0, why);
		return;
	}
	conn_log(c, "put", "\"%s\" stored: %llu bytes, cksum %u, verified", shown,
	    (unsigned long long)d.size, (unsigned)d.cksum);
	conn_queued(c, msg4_put_put_done(&c->out, &d));
}

void
put_abort(struct conn *c, const struct frame_event *ev)
{
	struct put *p = c->put;

	if (msg4_empty_decode(ev->data, ev->len) != 0) {
		put_reply_error(c, V4_REASON_BAD_REQUEST, 0, "malformed PUT_ABORT");
		return;
	}
	if (put_check(c))
		return;
	if (p != NULL) {
		pthread_mutex_lock(&p->slot->mu);
		if (owns(p))
			discard_locked(c, p);
		pthread_mutex_unlock(&p->slot->mu);
		c->put = NULL;
		put_free(p);
		conn_log(c, "put", "aborted by the client; partial upload discarded");
	}
	conn_queued(c, msg4_put_empty_response(&c->out, RESP4_OK));
}

/* --- Start-up and expiry --------------------------------------------------------------- */

struct recon {
	int root_fd;
	long kept, dropped;
	char **paths;         /* temp paths of the records kept */
	size_t npaths, cap;
	int err;
};

static int
remember(struct recon *r, const char *path)
{
	char **grown;

	if (r->npaths == r->cap) {
		size_t cap = r->cap == 0 ? 64 : r->cap * 2;

		if ((grown = realloc(r->paths, cap * sizeof(*grown))) == NULL)
			return SD_ERR_ALLOC;
		r->paths = grown;
		r->cap = cap;
	}
	if ((r->paths[r->npaths] = strdup(path)) == NULL)
		return SD_ERR_ALLOC;
	r->npaths++;
	return 0;
}

struct recon_ctx {
	struct db *db;
	struct recon *r;
};

static int
on_upload(void *ctx, const struct db_upload *u)
{
	struct recon_ctx *x = ctx;
	struct recon *r = x->r;
	const char *base;
	struct stat st;
	int fd = -1, e, held = 0;

	if (!tmp_path_ok(u->owner, u->temp_path, &base))
		goto drop;
	if ((fd = openat(r->root_fd, u->temp_path, O_RDWR | O_NOFOLLOW | O_CLOEXEC)) < 0)
		goto drop;
	if (storage_lock(fd, 0) == STORAGE_LOCK_HELD) {
		/* Another live server writes it now: its bytes and record are its own. */
		(void)close(fd);
		r->kept++;
		return remember(r, u->temp_path);
	}
	held = 1;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < u->offset)
		goto drop;
	if ((uint64_t)st.st_size > u->offset &&
	    (ftruncate(fd, (off_t)u->offset) != 0 || fsync(fd) != 0))
		goto drop;
	crash_point("reconcile-after-truncate");
	(void)close(fd);
	r->kept++;
	return remember(r, u->temp_path);
drop:
	/* Under its lock (or not there at all), a file goes with its record. */
	if (base != NULL && (held || fd < 0))
		(void)unlinkat(r->root_fd, u->temp_path, 0);
	if (fd >= 0)
		(void)close(fd);
	crash_point("reconcile-after-unlink");
	r->dropped++;
	if ((e = db_upload_drop(x->db, u->owner, u->file_name, u->temp_path)) != 0 &&
	    e != SD_ERR_NOT_FOUND)
		return e;
	return 0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Removes resumable temporary files that no kept record names and no live server writes (a
 * server sharing the folder may have created one an instant ago and not recorded it yet). */
static void
remove_unrecorded(struct recon *r)
{
	DIR *d, *sub;
	struct dirent *e, *f;
	char rel[DB_PATH_SIZE];
	const char *key = rel;
	int fd, dup_fd;

	/* qsort and bsearch take no NULL array, even of 0 elements (C11 7.22.5). */
	if (r->npaths > 0)
		qsort(r->paths, r->npaths, sizeof(*r->paths), cmp_str);
	if ((dup_fd = dup(r->root_fd)) < 0)
		return;
	if ((d = fdopendir(dup_fd)) == NULL) {
		(void)close(dup_fd);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		if (strlen(e->d_name) != PUT_HEX_ID)
			continue;
		fd = openat(r->root_fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		if ((sub = fdopendir(fd)) == NULL) {
			(void)close(fd);
			continue;
		}
		while ((f = readdir(sub)) != NULL) {
			if (strncmp(f->d_name, STORAGE_RESUME_PREFIX,
			    strlen(STORAGE_RESUME_PREFIX)) != 0)
				continue;
			snprintf(rel, sizeof(rel), "%s/%s", e->d_name, f->d_name);
			if ((r->npaths == 0 ||
			    bsearch(&key, r->paths, r->npaths, sizeof(*r->paths), cmp_str) == NULL) &&
			    !storage_in_use(dirfd(sub), f->d_name) &&
			    unlinkat(dirfd(sub), f->d_name, 0) == 0)
				r->dropped++;
		}
		closedir(sub);
	}
	closedir(d);
}

int
put_reconcile(struct db *db, const char *root, long *kept, long *dropped)
{
	struct recon r;
	struct recon_ctx x;
	size_t i;
	int e;

	memset(&r, 0, sizeof(r));
	if (kept != NULL)
		*kept = 0;
	if (dropped != NULL)
		*dropped = 0;
	if ((r.root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? 0 : SD_ERR_IO;
	x.db = db;
	x.r = &r;
	if ((e = db_each_upload(db, NULL, on_upload, &x)) == 0)
		remove_unrecorded(&r);
	(void)close(r.root_fd);
	for (i = 0; i < r.npaths; i++)
		free(r.paths[i]);
	free(r.paths);
	if (kept != NULL)
		*kept = r.kept;
	if (dropped != NULL)
		*dropped = r.dropped;
	return e;
}

struct expire_ctx {
	struct db *db;
	int root_fd;
	int64_t now;
	long removed;
};

/* Under the name's lock, so that a PUT_OPEN resuming the upload either finds it whole or
 * finds it gone: skipped when another holds the lock or an upload of the name is on a
 * connection (it refreshes the expiry itself), deleted only when the record read again is
 * still expired and names the same file. */
static int
on_expired(void *ctx, const struct db_upload *u)
{
	struct expire_ctx *x = ctx;
	struct put_slot *s;
	struct db_upload now;
	const char *base;
	int e = 0, fd = -1;

	base = NULL;
	if ((s = slot_get(u->owner, u->file_name)) == NULL)
		return SD_ERR_ALLOC;
	if (pthread_mutex_trylock(&s->mu) != 0) {
		slot_unref(s);
		return 0;
	}
	if (slot_refs(s) > 1)
		goto out;  /* a connection is on it right now; it refreshes the expiry itself */
	if ((e = db_upload_get(x->db, u->owner, u->file_name, &now)) != 0) {
		if (e == SD_ERR_NOT_FOUND)
			e = 0;
		goto out;
	}
	if (now.expires > x->now || strcmp(now.temp_path, u->temp_path) != 0)
		goto out;
	if (tmp_path_ok(u->owner, u->temp_path, &base) &&
	    (fd = openat(x->root_fd, u->temp_path, O_RDWR | O_NOFOLLOW | O_CLOEXEC)) >= 0 &&
	    storage_lock(fd, 0) == STORAGE_LOCK_HELD)
		goto out;  /* a connection of another server is on it */
	/* Held (or missing) from here: the record, if still this file's, and the file go. */
	if ((e = db_upload_drop(x->db, u->owner, u->file_name, u->temp_path)) == 0) {
		if (base != NULL)
			(void)unlinkat(x->root_fd, u->temp_path, 0);
		crash_point("expire-after-unlink");
		x->removed++;
	} else if (e == SD_ERR_NOT_FOUND) {
		e = 0;
	}
out:
	if (fd >= 0)
		(void)close(fd);
	put_name_unlock(s);
	return e;
}

int
put_expire(struct db *db, const char *root, int64_t now, long *removed)
{
	struct expire_ctx x;
	int e;

	if (removed != NULL)
		*removed = 0;
	x.db = db;
	x.now = now;
	x.removed = 0;
	if ((x.root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? 0 : SD_ERR_IO;
	e = db_each_expired_upload(db, now, on_expired, &x);
	(void)close(x.root_fd);
	if (removed != NULL)
		*removed = x.removed;
	return e;
}

static _Atomic int64_t last_expire_ms;

void
put_expire_tick(struct db *db, const char *root, int64_t now_ms, int worker)
{
	int64_t last = atomic_load(&last_expire_ms);
	long removed = 0;
	int e;

	if (last != 0 && now_ms - last < PUT_EXPIRE_INTERVAL_MS)
		return;
	if (!atomic_compare_exchange_strong(&last_expire_ms, &last, now_ms))
		return;  /* another worker does it this time */
	if ((e = put_expire(db, root, unix_now(), &removed)) != 0)
		log_event(worker, "-", NULL, NULL, "expire", "partial uploads: %s",
		    sd_strerror(e));
	else if (removed > 0)
		log_event(worker, "-", NULL, NULL, "expire", "%ld expired partial upload%s deleted",
		    removed, removed == 1 ? "" : "s");
}
