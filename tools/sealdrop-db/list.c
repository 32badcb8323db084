/* list.c: the listing commands of sealdrop-db: clients, files and show, as one JSON document
 * or aligned tables. */
#include "list.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../db/db.h"
#include "../../protocol/crypto.h"
#include "../../protocol/err.h"
#include "../../protocol/hex.h"
#include "output.h"

#define ID_HEX_SIZE (2 * CLIENT_ID_SIZE + 1)
#define FINGERPRINT_HEX 16           /* hex characters of SHA-256 shown for a public key */
#define TIME_TEXT_SIZE 32

/* Local time text, or "never"/"-" style placeholder for 0. */
static void
local_time(int64_t t, char out[TIME_TEXT_SIZE], const char *none)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (t <= 0 || localtime_r(&tt, &tm) == NULL ||
	    strftime(out, TIME_TEXT_SIZE, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(out, TIME_TEXT_SIZE, "%s", none);
}

static void
fingerprint(const struct db_client *c, char out[FINGERPRINT_HEX + 1])
{
	uint8_t d[32];

	if (!c->has_public_key) {
		out[0] = '\0';
		return;
	}
	crypto_sha256(c->public_key, c->public_key_len, d);
	hex_encode(d, FINGERPRINT_HEX / 2, out);
}

/* ---- clients ---- */

struct listing {
	int json;
	int count;
	struct out_table table;
};

static const char *const client_head[] = { "ID", "NAME", "KEY SHA-256", "AES KEY",
	"LAST SEEN", "FILES" };

static void
client_json(const struct db_client *c, long file_count)
{
	char id[ID_HEX_SIZE], fp[FINGERPRINT_HEX + 1], seen[TIME_TEXT_SIZE];

	hex_encode(c->id, CLIENT_ID_SIZE, id);
	fingerprint(c, fp);
	local_time(c->last_seen, seen, "");
	printf("{\"id\": \"%s\", \"name\": ", id);
	out_json_str(stdout, c->name);
	printf(", \"public_key_sha256\": ");
	out_json_str(stdout, c->has_public_key ? fp : NULL);
	printf(", \"aes_key\": %s, \"last_seen\": ", c->has_aes_key ? "true" : "false");
	if (c->last_seen > 0)
		printf("%" PRId64 ", \"last_seen_local\": ", c->last_seen);
	else
		printf("null, \"last_seen_local\": ");
	out_json_str(stdout, c->last_seen > 0 ? seen : NULL);
	printf(", \"files\": %ld}", file_count);
}

static void
client_row(struct out_table *t, const struct db_client *c, long file_count)
{
	char id[ID_HEX_SIZE], fp[FINGERPRINT_HEX + 1], seen[TIME_TEXT_SIZE], files[24];
	const char *row[6];

	hex_encode(c->id, CLIENT_ID_SIZE, id);
	fingerprint(c, fp);
	local_time(c->last_seen, seen, "never");
	snprintf(files, sizeof(files), "%ld", file_count);
	row[0] = id;
	row[1] = c->name;
	row[2] = c->has_public_key ? fp : "-";
	row[3] = c->has_aes_key ? "yes" : "no";
	row[4] = seen;
	row[5] = files;
	out_table_add(t, row);
}

static int
on_client(void *ctx, const struct db_client *c, long file_count)
{
	struct listing *l = ctx;

	if (l->json) {
		printf("%s\n  ", l->count > 0 ? "," : "");
		client_json(c, file_count);
	} else
		client_row(&l->table, c, file_count);
	l->count++;
	return 0;
}

/* ---- files ---- */

static const char *const file_head[] = { "OWNER", "FILE", "PATH", "SIZE", "CRC", "VERIFIED",
	"UPLOADED", "SHA-256" };
#define FILE_COLS 8
#define FILE_RIGHT ((1u << 3) | (1u << 4))

static void
file_json(const struct db_file *f)
{
	char id[ID_HEX_SIZE], up[TIME_TEXT_SIZE], sha[2 * DB_SHA256_SIZE + 1];

	hex_encode(f->owner, CLIENT_ID_SIZE, id);
	local_time(f->uploaded, up, "");
	printf("{\"owner_id\": \"%s\", \"owner\": ", id);
	/* A row whose owner is gone (only in a database damaged by hand) has no name. */
	out_json_str(stdout, f->owner_name[0] != '\0' ? f->owner_name : NULL);
	printf(", \"file_name\": ");
	out_json_str(stdout, f->file_name);
	printf(", \"path\": ");
	out_json_str(stdout, f->path_name);
	printf(", \"size\": %" PRIu64 ", \"crc\": %" PRIu32 ", \"verified\": %s, \"uploaded\": ",
	    f->size, f->crc, f->verified ? "true" : "false");
	if (f->uploaded > 0)
		printf("%" PRId64, f->uploaded);
	else
		printf("null");
	printf(", \"uploaded_local\": ");
	out_json_str(stdout, f->uploaded > 0 ? up : NULL);
	printf(", \"sha256\": ");
	if (f->has_sha256) {
		hex_encode(f->sha256, DB_SHA256_SIZE, sha);
		out_json_str(stdout, sha);
	} else
		printf("null");
	printf("}");
}

static void
file_row(struct out_table *t, const struct db_file *f)
{
	char size[24], crc[16], up[TIME_TEXT_SIZE], id[ID_HEX_SIZE], sha[FINGERPRINT_HEX + 1];
	const char *row[FILE_COLS];

	hex_encode(f->owner, CLIENT_ID_SIZE, id);
	snprintf(size, sizeof(size), "%" PRIu64, f->size);
	snprintf(crc, sizeof(crc), "%" PRIu32, f->crc);
	local_time(f->uploaded, up, "-");
	row[0] = f->owner_name[0] != '\0' ? f->owner_name : id;
	row[1] = f->file_name;
	row[2] = f->path_name;
	row[3] = size;
	row[4] = crc;
	row[5] = f->verified ? "yes" : "no";
	row[6] = up;
	/* A version-3 upload has no SHA-256 until version 4 first reads it whole. */
	if (f->has_sha256)
		hex_encode(f->sha256, FINGERPRINT_HEX / 2, sha);
	row[7] = f->has_sha256 ? sha : "-";
	out_table_add(t, row);
}

static int
on_file(void *ctx, const struct db_file *f)
{
	struct listing *l = ctx;

	if (l->json) {
		printf("%s\n  ", l->count > 0 ? "," : "");
		file_json(f);
	} else
		file_row(&l->table, f);
	l->count++;
	return 0;
}

/* The database path, for messages (set by each list_*() call). */
static const char *db_path_shown = "database";

/* A read that fails once the database is open means it is damaged or unreadable: that is the
 * same outcome as failing to open it. */
static int
db_failure(struct db *db, const char *what, int r)
{
	char shown[512];
	char *clean;

	/* A connection string may hold a password: only where the database is. */
	db_describe_target(db_path_shown, shown, sizeof(shown));
	clean = out_clean(shown);
	fprintf(stderr, PROG ": %s: %s: %s (%s)\n", clean != NULL ? clean : "database", what,
	    sd_strerror(r), db_errmsg(db));
	free(clean);
	return r == SD_ERR_ALLOC ? EXIT_PROBLEMS : EXIT_NO_DB;
}

static int
table_finish(struct listing *l)
{
	int failed = l->table.failed;

	if (!failed)
		out_table_print(&l->table, stdout);
	out_table_free(&l->table);
	if (failed) {
		fprintf(stderr, PROG ": out of memory\n");
		return EXIT_PROBLEMS;
	}
	return EXIT_OK;
}

/* Starts a listing: a JSON array under key, or a table with its header row. */
static void
listing_begin(struct listing *l, int json, const char *key, size_t ncols, unsigned right,
    const char *const *head)
{
	memset(l, 0, sizeof(*l));
	l->json = json;
	out_table_init(&l->table, ncols, right);
	if (json)
		printf("{\"%s\": [", key);
	else
		out_table_add(&l->table, head);
}

/* Ends a listing whose rows came from an iteration that returned r: closes the JSON array,
 * or prints the table. */
static int
listing_end(struct listing *l, struct db *db, const char *what, int r)
{
	if (l->json)
		printf("%s]}\n", l->count > 0 ? "\n" : "");
	if (r != 0 || l->json) {
		out_table_free(&l->table);
		return r != 0 ? db_failure(db, what, r) : EXIT_OK;
	}
	return table_finish(l);
}

int
list_clients(const struct list_query *q)
{
	struct db *db = q->db;
	struct listing l;
	int r;

	db_path_shown = q->db_path;
	listing_begin(&l, q->json, "clients", 6, 1u << 5, client_head);
	r = db_each_client(db, on_client, &l);
	return listing_end(&l, db, "reading clients", r);
}

/* Resolves NAME|ID; prints why not on failure. */
static int
find_client(struct db *db, const char *which, struct db_client *c)
{
	int r = db_client_find(db, which, c);
	char *clean;

	if (r == SD_ERR_NOT_FOUND) {
		clean = out_clean(which);
		fprintf(stderr, PROG ": no client named or with ID '%s'\n",
		    clean != NULL ? clean : "?");
		free(clean);
		return EXIT_PROBLEMS;
	}
	if (r != 0)
		return db_failure(db, "looking up a client", r);
	return EXIT_OK;
}

/* Starts a listing of q: the database path for messages, and q->client (if any) resolved
 * into c, *id its ID or NULL for every client. EXIT_OK, or the exit code find_client gave. */
static int
query_client(const struct list_query *q, struct db_client *c, const uint8_t **id)
{
	int r;

	db_path_shown = q->db_path;
	memset(c, 0, sizeof(*c));
	*id = NULL;
	if (q->client == NULL)
		return EXIT_OK;
	if ((r = find_client(q->db, q->client, c)) != EXIT_OK)
		return r;
	*id = c->id;
	return EXIT_OK;
}

int
list_files(const struct list_query *q)
{
	struct db *db = q->db;
	struct listing l;
	struct db_client c;
	const uint8_t *id;
	int r;

	if ((r = query_client(q, &c, &id)) != EXIT_OK)
		return r;
	listing_begin(&l, q->json, "files", FILE_COLS, FILE_RIGHT, file_head);
	r = db_each_file(db, id, q->unverified, on_file, &l);
	crypto_wipe(&c, sizeof(c));
	return listing_end(&l, db, "reading files", r);
}

static int
count_file(void *ctx, const struct db_file *f)
{
	(void)f;
	(*(long *)ctx)++;
	return 0;
}

int
list_show(const struct list_query *q)
{
	struct db *db = q->db;
	struct listing l;
	struct db_client c;
	struct out_table t;
	char id[ID_HEX_SIZE], fp[FINGERPRINT_HEX + 1], seen[TIME_TEXT_SIZE], files[24];
	const char *row[2];
	long count = 0;
	int r;

	db_path_shown = q->db_path;
	if ((r = find_client(db, q->which, &c)) != EXIT_OK)
		return r;
	if ((r = db_each_file(db, c.id, 0, count_file, &count)) != 0) {
		crypto_wipe(&c, sizeof(c));
		return db_failure(db, "reading files", r);
	}
	memset(&l, 0, sizeof(l));
	l.json = q->json;
	if (l.json) {
		printf("{\"client\": ");
		client_json(&c, count);
		printf(",\n \"files\": [");
	} else {
		hex_encode(c.id, CLIENT_ID_SIZE, id);
		fingerprint(&c, fp);
		local_time(c.last_seen, seen, "never");
		snprintf(files, sizeof(files), "%ld", count);
		out_table_init(&t, 2, 0);
		row[0] = "ID:", row[1] = id;
		out_table_add(&t, row);
		row[0] = "Name:", row[1] = c.name;
		out_table_add(&t, row);
		row[0] = "Key SHA-256:", row[1] = c.has_public_key ? fp : "- (registration pending)";
		out_table_add(&t, row);
		row[0] = "AES key:", row[1] = c.has_aes_key ? "yes" : "no";
		out_table_add(&t, row);
		row[0] = "Last seen:", row[1] = seen;
		out_table_add(&t, row);
		row[0] = "Files:", row[1] = files;
		out_table_add(&t, row);
		if (!t.failed)
			out_table_print(&t, stdout);
		r = t.failed;
		out_table_free(&t);
		if (r) {
			crypto_wipe(&c, sizeof(c));
			fprintf(stderr, PROG ": out of memory\n");
			return EXIT_PROBLEMS;
		}
		out_table_init(&l.table, FILE_COLS, FILE_RIGHT);
		out_table_add(&l.table, file_head);
	}
	r = db_each_file(db, c.id, 0, on_file, &l);
	crypto_wipe(&c, sizeof(c));
	if (r == 0 && !l.json) {
		if (count == 0) {  /* no file table under a client without files */
			out_table_free(&l.table);
			return EXIT_OK;
		}
		putchar('\n');
	}
	return listing_end(&l, db, "reading files", r);
}

/* ---- partial uploads (version 4) ---- */

static const char *const upload_head[] = { "OWNER", "FILE", "SIZE", "DURABLE", "EXPIRES",
	"TEMP PATH" };
#define UPLOAD_COLS 6
#define UPLOAD_RIGHT ((1u << 2) | (1u << 3))

struct upload_listing {
	struct listing l;
	struct db *db;
};

static int
on_upload(void *ctx, const struct db_upload *u)
{
	struct upload_listing *x = ctx;
	struct db_client c;
	char id[ID_HEX_SIZE], size[24], off[24], exp[TIME_TEXT_SIZE];
	const char *row[UPLOAD_COLS], *owner;

	hex_encode(u->owner, CLIENT_ID_SIZE, id);
	owner = db_client_by_id(x->db, u->owner, &c) == 0 ? c.name : NULL;
	local_time(u->expires, exp, "-");
	if (x->l.json) {
		printf("%s\n  {\"owner_id\": \"%s\", \"owner\": ", x->l.count > 0 ? "," : "", id);
		out_json_str(stdout, owner);
		printf(", \"file_name\": ");
		out_json_str(stdout, u->file_name);
		printf(", \"size\": %" PRIu64 ", \"offset\": %" PRIu64 ", \"expires\": %" PRId64
		    ", \"expires_local\": ", u->size, u->offset, u->expires);
		out_json_str(stdout, exp);
		printf(", \"temp_path\": ");
		out_json_str(stdout, u->temp_path);
		printf("}");
	} else {
		snprintf(size, sizeof(size), "%" PRIu64, u->size);
		snprintf(off, sizeof(off), "%" PRIu64, u->offset);
		row[0] = owner != NULL ? owner : id;
		row[1] = u->file_name;
		row[2] = size;
		row[3] = off;
		row[4] = exp;
		row[5] = u->temp_path;
		out_table_add(&x->l.table, row);
	}
	crypto_wipe(&c, sizeof(c));
	x->l.count++;
	return 0;
}

int
list_uploads(const struct list_query *q)
{
	struct db *db = q->db;
	struct upload_listing x;
	struct db_client c;
	const uint8_t *id;
	int r;

	if ((r = query_client(q, &c, &id)) != EXIT_OK)
		return r;
	listing_begin(&x.l, q->json, "uploads", UPLOAD_COLS, UPLOAD_RIGHT, upload_head);
	x.db = db;
	r = db_each_upload(db, id, on_upload, &x);
	crypto_wipe(&c, sizeof(c));
	return listing_end(&x.l, db, "reading partial uploads", r);
}
