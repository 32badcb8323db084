/* commit.c: a received file takes the place of its stored version only on its client's
 * verdict, through a commit intent rolled forward at start-up (see commit.h for the invariant
 * and the steps). */
#include "commit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../db/db.h"
#include "../protocol/cksum.h"
#include "../protocol/err.h"
#include "../protocol/hex.h"
#include "config.h"
#include "conn.h"
#include "crash.h"
#include "limits.h"
#include "log.h"
#include "put.h"
#include "storage.h"

#define COMMIT_READ_CHUNK 65536u

/* A finished attempt waiting for its verdict: sf fsynced and still open (its lock held until
 * commit_discard, after the publishing), its folder open, its temporary name set. */
struct commit_staged {
	struct storage_file sf;
	char file_name[NAME_FIELD_SIZE];  /* as sent */
	uint8_t owner[CLIENT_ID_SIZE];    /* whose staged count (limits.h) it is in */
	uint64_t size;
	uint32_t crc;
};

void
commit_discard(struct conn *c)
{
	struct commit_staged *s = c->staged;

	if (s == NULL)
		return;
	c->staged = NULL;
	limits_unstage(s->owner, s->size);
	storage_abort(&s->sf);  /* removes the temporary file unless it was renamed */
	free(s);
}

int
commit_staged(const struct conn *c, const char *file_name)
{
	return c->staged != NULL && strcmp(c->staged->file_name, file_name) == 0;
}

int
commit_stage(struct conn *c, struct storage_file *sf, const char *file_name, uint64_t size,
    uint32_t crc)
{
	struct commit_staged *s;
	int e;

	commit_discard(c);
	if ((e = storage_finish(sf)) != 0) {
		conn_log(c, "send file", "failed: storing the file: %s", strerror(sf->err));
		storage_abort(sf);
		return e;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		conn_log(c, "send file", "failed: %s", sd_strerror(SD_ERR_ALLOC));
		storage_abort(sf);
		return SD_ERR_ALLOC;
	}
	/* Counted against the client's storage limits until its verdict. */
	if (!limits_stage(c->id, size)) {
		conn_log(c, "limit", "upload refused: too many clients with uploads in progress");
		storage_abort(sf);
		free(s);
		return SD_ERR_TOO_LARGE;
	}
	memcpy(s->owner, c->id, CLIENT_ID_SIZE);
	s->sf = *sf;  /* the folder descriptor and the temporary name move to s */
	memset(sf, 0, sizeof(*sf));
	sf->fd = -1;
	sf->dir_fd = -1;
	snprintf(s->file_name, sizeof(s->file_name), "%s", file_name);
	s->size = size;
	s->crc = crc;
	c->staged = s;
	return 0;
}

struct verified_at {
	const char *path;
	int found;
};

static int
on_owner_file(void *ctx, const struct db_file *f)
{
	struct verified_at *v = ctx;

	if (f->verified && strcmp(f->path_name, v->path) == 0) {
		v->found = 1;
		return 1;
	}
	return 0;
}

/* 1 when one of c's rows with Verified = 1 is stored at path (then a 902 must not replace it),
 * 0 when none, or a negative sd_err. */
static int
verified_stored(struct conn *c, const char *path)
{
	struct verified_at v = { path, 0 };
	int r = db_each_file(c->env->db, c->id, 0, on_owner_file, &v);

	if (r < 0)
		return r;
	return v.found;
}

/* The intent of c's staged attempt s. */
static int
intent_of(struct conn *c, const struct commit_staged *s, int verified, struct db_commit *in)
{
	char hex[CLIENT_ID_SIZE * 2 + 1];
	int n;

	memset(in, 0, sizeof(*in));
	memcpy(in->owner, c->id, CLIENT_ID_SIZE);
	memcpy(in->file_name, s->file_name, sizeof(in->file_name));
	hex_encode(c->id, CLIENT_ID_SIZE, hex);
	n = snprintf(in->temp_path, sizeof(in->temp_path), "%s/%s", hex, s->sf.tmp_name);
	if (n < 0 || (size_t)n >= sizeof(in->temp_path) ||
	    strlen(s->sf.rel_path) >= sizeof(in->path_name))
		return SD_ERR_TOO_LARGE;
	memcpy(in->path_name, s->sf.rel_path, strlen(s->sf.rel_path) + 1);
	in->size = s->size;
	in->crc = s->crc;
	in->verified = verified;
	return 0;
}

/* A storage step failed by SEALDROP_FAIL_AT (crash.h): as the step itself fails, errno kept
 * for the log. */
static int
injected(struct storage_file *f)
{
	f->err = errno;
	return SD_ERR_IO;
}

/* Steps (a) to (c) of commit.h for c's staged attempt s. */
static int
publish(struct conn *c, struct commit_staged *s, int verified)
{
	const char *what = verified ? "crc ok" : "crc fail";
	struct db_commit in;
	int e, r;

	if ((e = intent_of(c, s, verified, &in)) != 0) {
		conn_log(c, what, "failed: stored path too long for the database");
		return e;
	}
	crash_point("before-intent");
	e = db_commit_add(c->env->db, &in);
	/* In the way: an intent a killed server left (none has started since to roll it
	 * forward). */
	if (e == SD_ERR_EXISTS &&
	    commit_roll_stale(c->env->db, c->env->cfg->storage_dir, &in) == 1)
		e = db_commit_add(c->env->db, &in);
	if (e != 0) {
		/* Nothing on disk has changed: the stored version stays as it was. */
		conn_log(c, what, "failed: recording the commit: %s (%s)", sd_strerror(e),
		    e == SD_ERR_EXISTS ? "another upload of this file is being committed" :
		    db_errmsg(c->env->db));
		return e;
	}
	crash_point("after-intent");
	if ((e = crash_fail("rename") ? injected(&s->sf) : storage_rename(&s->sf)) != 0) {
		conn_log(c, what, "failed: renaming the file into place: %s", strerror(s->sf.err));
		if ((r = db_commit_delete(c->env->db, c->id, s->file_name)) != 0)
			conn_log(c, what, "dropping the commit failed: %s (%s); the next start drops "
			    "it", sd_strerror(r), db_errmsg(c->env->db));
		return e;
	}
	crash_point("after-rename");
	if ((e = crash_fail("dirsync") ? injected(&s->sf) : storage_sync_folder(&s->sf)) != 0) {
		/* The rename may not be durable yet: the intent stays, as for version 4, and the
		 * next upload of this path (commit_roll_stale) or the next start settles it. */
		conn_log(c, what, "failed: syncing the folder: %s; the next upload of this path or "
		    "the next start rolls the commit forward", strerror(s->sf.err));
		return e;
	}
	crash_point("after-dirsync");
	r = crash_fail("publish") ? SD_ERR_DB : db_commit_publish(c->env->db, c->id, s->file_name);
	if (r != 0) {
		conn_log(c, what, "failed: publishing the row: %s (%s); the next upload of this "
		    "file or the next start rolls the commit forward", sd_strerror(r),
		    db_errmsg(c->env->db));
		return r;
	}
	crash_point("after-publish");
	return e;
}

int
commit_verdict(struct conn *c, int verified)
{
	struct commit_staged *s = c->staged;
	struct put_slot *lk;
	int e;

	if (s == NULL)
		return SD_ERR_NOT_FOUND;
	/* Under the stored name's lock (put.h), which a version-4 upload publishing the same
	 * name and DELETE take too: the row and the file change in one order. */
	if ((lk = put_name_lock(c->id, s->sf.final_name)) == NULL) {
		e = SD_ERR_ALLOC;
		conn_log(c, verified ? "crc ok" : "crc fail", "failed: %s", sd_strerror(e));
		goto out;
	}
	if (!verified) {
		/* An attempt the client calls wrong never replaces a verified file. */
		if ((e = verified_stored(c, s->sf.rel_path)) < 0) {
			conn_log(c, "crc fail", "failed: %s (%s)", sd_strerror(e),
			    db_errmsg(c->env->db));
			goto out;
		}
		if (e == 1) {
			conn_log(c, "crc fail", "attempt discarded: the verified version stays");
			e = 0;
			goto out;
		}
	}
	e = publish(c, s, verified);
out:
	put_name_unlock(lk);
	commit_discard(c);
	return e;
}

/* Start-up recovery. */

struct recover {
	struct db *db;
	int root_fd;
	long rolled, dropped, left;
	int err;
};

/* Splits rel ("<owner hex>/<name>") into its folder and name, checking the folder is the
 * owner's and the name one plain component. 0 or SD_ERR_BAD_FIELD. */
static int
split_rel(const char *rel, const uint8_t owner[CLIENT_ID_SIZE], const char **name)
{
	char hex[CLIENT_ID_SIZE * 2 + 1];
	size_t hl = CLIENT_ID_SIZE * 2;

	hex_encode(owner, CLIENT_ID_SIZE, hex);
	if (strncmp(rel, hex, hl) != 0 || rel[hl] != '/' || rel[hl + 1] == '\0' ||
	    strchr(rel + hl + 1, '/') != NULL || strcmp(rel + hl + 1, ".") == 0 ||
	    strcmp(rel + hl + 1, "..") == 0)
		return SD_ERR_BAD_FIELD;
	*name = rel + hl + 1;
	return 0;
}

/* 1 when the regular file name in dir_fd has exactly size bytes of CRC crc, else 0. */
static int
file_matches(int dir_fd, const char *name, uint64_t size, uint32_t crc)
{
	uint8_t *chunk;
	struct cksum ck;
	struct stat st;
	ssize_t n;
	int fd, ok = 0;

	if ((chunk = malloc(COMMIT_READ_CHUNK)) == NULL)
		return 0;
	if ((fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		free(chunk);
		return 0;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != size)
		goto out;
	cksum_init(&ck);
	while ((n = read(fd, chunk, COMMIT_READ_CHUNK)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto out;
		}
		cksum_update(&ck, chunk, (size_t)n);
	}
	ok = ck.length == size && cksum_final(&ck) == crc;
out:
	(void)close(fd);
	free(chunk);
	return ok;
}

static int
drop_intent(struct recover *k, const struct db_commit *in, const char *why)
{
	char shown[LOG_PATH_MAX + 1];
	int r;

	log_sanitize_path(in->path_name, shown, sizeof(shown));
	log_server("commit of %s dropped: %s", shown, why);
	if ((r = db_commit_delete(k->db, in->owner, in->file_name)) != 0)
		return r;
	k->dropped++;
	return 0;
}

/* 1 when a live server holds the lock of name in dir_fd (storage.h): the file of a commit it
 * is completing right now, before or after the rename. */
static int
held_by_live_server(int dir_fd, const char *name)
{
	int fd, held;

	if ((fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0)
		return 0;
	held = storage_lock(fd, 0) == STORAGE_LOCK_HELD;
	(void)close(fd);
	return held;
}

/* One intent: rename if the temporary file is still there, then publish. An intent whose file
 * a live server holds (another server sharing the storage folder is completing it) is left
 * to that server.
 * Longer than 60 lines on purpose: the decision table for one intent (its file held, renamed
 * or not, matching or not) read top to bottom, every branch logged on one exit path. */
static int
on_intent(void *ctx, const struct db_commit *in)
{
	struct recover *k = ctx;
	const char *tmp, *fin;
	char hex[CLIENT_ID_SIZE * 2 + 1], shown[LOG_PATH_MAX + 1];
	struct stat st;
	int dir_fd = -1, tmp_fd = -1, r;

	log_sanitize_path(in->path_name, shown, sizeof(shown));
	if (split_rel(in->temp_path, in->owner, &tmp) != 0 ||
	    split_rel(in->path_name, in->owner, &fin) != 0 ||
	    strncmp(tmp, STORAGE_TMP_PREFIX, strlen(STORAGE_TMP_PREFIX)) != 0)
		return drop_intent(k, in, "malformed paths");
	hex_encode(in->owner, CLIENT_ID_SIZE, hex);
	dir_fd = openat(k->root_fd, hex, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dir_fd < 0) {
		r = drop_intent(k, in, "the client's folder is missing");
		goto out;
	}
	/* Held by this roll-forward until it is done, so that another server rolling the same
	 * intent forward at once (starting, or commit_roll_stale) leaves it. */
	tmp_fd = openat(dir_fd, tmp, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if ((tmp_fd >= 0 && storage_lock(tmp_fd, 0) == STORAGE_LOCK_HELD) ||
	    (tmp_fd < 0 && held_by_live_server(dir_fd, fin))) {
		log_server("commit of %s left to the live server completing it", shown);
		k->left++;
		r = 0;
		goto out;
	}
	if (tmp_fd >= 0 && fstat(tmp_fd, &st) == 0 && S_ISREG(st.st_mode)) {
		if (renameat(dir_fd, tmp, dir_fd, fin) != 0 || fsync(dir_fd) != 0) {
			log_server("fatal: cannot roll the commit of %s forward: %s", shown,
			    strerror(errno));
			r = SD_ERR_IO;
			goto out;
		}
		crash_point("recover-after-rename");
	} else if (!file_matches(dir_fd, fin, in->size, in->crc)) {
		/* Neither the attempt nor its bytes under the final name: the rename never
		 * happened (it failed and the attempt was removed). */
		r = drop_intent(k, in, "the attempt is gone and the stored file is another");
		goto out;
	}
	if ((r = db_commit_publish(k->db, in->owner, in->file_name)) != 0) {
		/* Its server published it an instant ago (it let go of the lock just before). */
		if (r == SD_ERR_NOT_FOUND)
			r = 0;
		goto out;
	}
	k->rolled++;
	log_server("commit of %s rolled forward: %llu bytes, cksum %u, %s", shown,
	    (unsigned long long)in->size, (unsigned)in->crc,
	    in->verified ? "verified" : "not verified");
out:
	if (tmp_fd >= 0)
		(void)close(tmp_fd);
	if (dir_fd >= 0)
		(void)close(dir_fd);
	return r;
}

int
commit_recover(struct db *db, const char *root, long *rolled, long *dropped)
{
	struct recover k;
	int r;

	memset(&k, 0, sizeof(k));
	k.db = db;
	*rolled = 0;
	*dropped = 0;
	if ((k.root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return SD_ERR_IO;
	r = db_each_commit(db, on_intent, &k);
	(void)close(k.root_fd);
	*rolled = k.rolled;
	*dropped = k.dropped;
	return r;
}

struct stale {
	struct recover k;
	const struct db_commit *mine;
	int found;
};

/* The intent in the way of mine (same name, or same stored path): rolled forward unless a live
 * server holds it; the walk stops there. */
static int
on_stale(void *ctx, const struct db_commit *in)
{
	struct stale *x = ctx;
	int r;

	if (memcmp(in->owner, x->mine->owner, CLIENT_ID_SIZE) != 0 ||
	    (strcmp(in->file_name, x->mine->file_name) != 0 &&
	    strcmp(in->path_name, x->mine->path_name) != 0))
		return 0;
	x->found = 1;
	if ((r = on_intent(&x->k, in)) != 0)
		return r;
	return 1;
}

int
commit_settle(struct conn *c, const char *file_name)
{
	char safe[NAME_FIELD_SIZE];
	struct db_commit mine;
	struct put_slot *lk;
	int r;

	if (storage_sanitize_name(file_name, safe) != 0)
		return 0;  /* never stored under any name: no intent either */
	memset(&mine, 0, sizeof(mine));
	memcpy(mine.owner, c->id, CLIENT_ID_SIZE);
	snprintf(mine.file_name, sizeof(mine.file_name), "%s", file_name);
	if ((lk = put_name_lock(c->id, safe)) == NULL)
		return SD_ERR_ALLOC;
	crash_point("settle-before");
	r = commit_roll_stale(c->env->db, c->env->cfg->storage_dir, &mine);
	put_name_unlock(lk);
	if (r == 1)
		crash_point("settle-after");  /* rolled forward, 1604 not sent yet */
	return r;
}

int
commit_roll_stale(struct db *db, const char *root, const struct db_commit *mine)
{
	struct stale x;
	int r;

	memset(&x, 0, sizeof(x));
	x.k.db = db;
	x.mine = mine;
	if ((x.k.root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return SD_ERR_IO;
	r = db_each_commit(db, on_stale, &x);
	(void)close(x.k.root_fd);
	if (r < 0)
		return r;
	return x.found && x.k.left == 0 ? 1 : 0;
}
