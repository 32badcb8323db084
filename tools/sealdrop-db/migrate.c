/* migrate.c: sealdrop-db migrate: the source is opened read-only, the destination read-write
 * (its schema created if needed); rows are copied by the domain functions, then every table is
 * counted on both sides and every source row looked up and compared in the destination. */
#include "migrate.h"

#include <stdio.h>
#include <string.h>

#include "../../db/db.h"
#include "../../protocol/err.h"
#include "output.h"

#define PROG "sealdrop-db"

struct mig {
	struct db *src;
	struct db *dst;
	long n[4];        /* clients, files, commits, uploads seen in the walk */
	long bad;         /* copy failures or differences */
	int checking;     /* 0: copying, 1: counting the destination, 2: comparing */
};

static void
complain(struct mig *m, const char *what, const char *name, int r)
{
	fprintf(stderr, PROG ": migrate: %s '%s': %s (%s)\n", what, name, sd_strerror(r),
	    db_errmsg(m->dst));
	m->bad++;
}

static int
same_client(const struct db_client *a, const struct db_client *b)
{
	return memcmp(a->id, b->id, CLIENT_ID_SIZE) == 0 && strcmp(a->name, b->name) == 0 &&
	    a->has_public_key == b->has_public_key && a->public_key_len == b->public_key_len &&
	    memcmp(a->public_key, b->public_key, a->public_key_len) == 0 &&
	    a->has_aes_key == b->has_aes_key &&
	    (!a->has_aes_key || memcmp(a->aes_key, b->aes_key, AES_KEY_SIZE) == 0) &&
	    a->last_seen == b->last_seen && strcmp(a->fingerprint, b->fingerprint) == 0;
}

static int
same_file(const struct db_file *a, const struct db_file *b)
{
	return strcmp(a->path_name, b->path_name) == 0 && a->verified == b->verified &&
	    a->size == b->size && a->crc == b->crc && a->uploaded == b->uploaded &&
	    a->has_sha256 == b->has_sha256 &&
	    (!a->has_sha256 || memcmp(a->sha256, b->sha256, DB_SHA256_SIZE) == 0);
}

static int
on_client(void *ctx, const struct db_client *c, long files)
{
	struct mig *m = ctx;
	struct db_client d;
	int r;

	(void)files;
	m->n[0]++;
	if (m->checking == 2) {
		if ((r = db_client_by_id(m->dst, c->id, &d)) != 0 || !same_client(c, &d)) {
			fprintf(stderr, PROG ": migrate: client '%s' differs in the destination\n",
			    c->name);
			m->bad++;
		}
	} else if (m->checking == 0 && (r = db_client_copy(m->dst, c)) != 0)
		complain(m, "client", c->name, r);
	return 0;
}

static int
on_file(void *ctx, const struct db_file *f)
{
	struct mig *m = ctx;
	struct db_file d;
	int r;

	m->n[1]++;
	if (m->checking == 2) {
		if ((r = db_file_get(m->dst, f->owner, f->file_name, &d)) != 0 || !same_file(f, &d)) {
			fprintf(stderr, PROG ": migrate: file '%s' of '%s' differs in the destination\n",
			    f->file_name, f->owner_name);
			m->bad++;
		}
		return 0;
	}
	if (m->checking != 0)
		return 0;
	/* The row as it is (an Uploaded that is NULL stays NULL, where db_file_record would
	 * write now): a second run writes the same values. */
	if ((r = db_file_copy(m->dst, f)) != 0)
		complain(m, "file", f->file_name, r);
	return 0;
}

static int
on_commit(void *ctx, const struct db_commit *c)
{
	struct mig *m = ctx;
	struct db_commit d;
	int r;

	m->n[2]++;
	if (m->checking == 0 && (r = db_commit_add(m->dst, c)) != 0 && r != SD_ERR_EXISTS)
		complain(m, "commit intent", c->file_name, r);
	if (m->checking != 1 && (db_commit_get(m->dst, c->owner, c->file_name, &d) != 0 ||
	    strcmp(d.temp_path, c->temp_path) != 0 || strcmp(d.path_name, c->path_name) != 0 ||
	    d.size != c->size || d.crc != c->crc || d.created != c->created ||
	    d.verified != c->verified || d.has_sha256 != c->has_sha256 ||
	    (c->has_sha256 && memcmp(d.sha256, c->sha256, DB_SHA256_SIZE) != 0))) {
		fprintf(stderr, PROG ": migrate: commit intent '%s' differs in the destination\n",
		    c->file_name);
		m->bad++;
	}
	return 0;
}

static int
on_upload(void *ctx, const struct db_upload *u)
{
	struct mig *m = ctx;
	struct db_upload d;
	int r;

	m->n[3]++;
	if (m->checking == 0 && (r = db_upload_copy(m->dst, u)) != 0)
		complain(m, "partial upload", u->file_name, r);
	if (m->checking != 1 && (db_upload_get(m->dst, u->owner, u->file_name, &d) != 0 ||
	    d.size != u->size || d.offset != u->offset || d.expires != u->expires ||
	    d.created != u->created || strcmp(d.temp_path, u->temp_path) != 0)) {
		fprintf(stderr, PROG ": migrate: partial upload '%s' differs in the destination\n",
		    u->file_name);
		m->bad++;
	}
	return 0;
}

/* One pass over a database: copy (from src), count (dst), or compare (src against dst). */
static int
walk(struct mig *m, struct db *db)
{
	int r;

	memset(m->n, 0, sizeof(m->n));
	if ((r = db_each_client(db, on_client, m)) != 0 ||
	    (r = db_each_file(db, NULL, 0, on_file, m)) != 0 ||
	    (r = db_each_commit(db, on_commit, m)) != 0 ||
	    (r = db_each_upload(db, NULL, on_upload, m)) != 0) {
		fprintf(stderr, PROG ": migrate: reading: %s (%s)\n", sd_strerror(r), db_errmsg(db));
		return -1;
	}
	return 0;
}

static int
open_one(const char *target, enum db_open_mode mode, const char *role, struct db **db)
{
	char why[256];
	int r = db_open_why(target, mode, db, why, sizeof(why));

	if (r == 0)
		return 0;
	/* A connection string may hold a password: name the side, not the string. */
	fprintf(stderr, PROG ": migrate: cannot open the %s database: %s%s%s\n", role,
	    sd_strerror(r), why[0] != '\0' ? ": " : "", why);
	return -1;
}

int
migrate(const char *from, const char *to)
{
	struct mig m;
	long src_n[4];
	int status = EXIT_PROBLEMS, i;
	static const char *const tables[4] = { "clients", "files", "commits", "uploads" };

	memset(&m, 0, sizeof(m));
	if (open_one(from, DB_READ_ONLY, "source", &m.src) != 0) {
		status = EXIT_NO_DB;
		goto out;
	}
	if (open_one(to, DB_READ_WRITE, "destination", &m.dst) != 0) {
		status = EXIT_NO_DB;
		goto out;
	}
	if (walk(&m, m.src) != 0)
		goto out;
	memcpy(src_n, m.n, sizeof(src_n));
	printf("copied: %ld clients, %ld files, %ld commit intents, %ld partial uploads\n",
	    src_n[0], src_n[1], src_n[2], src_n[3]);
	m.checking = 1;
	if (walk(&m, m.dst) != 0)
		goto out;
	/* The destination may hold rows of its own (another server's database copied in
	 * before): fewer rows than the source is a failed copy, more is not. */
	for (i = 0; i < 4; i++) {
		printf("check %-8s source %ld, destination %ld%s\n", tables[i], src_n[i], m.n[i],
		    src_n[i] > m.n[i] ? "  MISSING" : src_n[i] < m.n[i] ?
		    "  (more: rows the destination had)" : "");
		if (src_n[i] > m.n[i])
			m.bad++;
	}
	m.checking = 2;
	if (walk(&m, m.src) != 0)
		goto out;
	printf("check rows: %s\n", m.bad == 0 ? "every source row is in the destination, equal" :
	    "differences (see above)");
	status = m.bad == 0 ? EXIT_OK : EXIT_PROBLEMS;
out:
	db_close(m.src);
	db_close(m.dst);
	return status;
}
