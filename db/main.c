/* main.c: sealdrop-db, the read-only inspection tool for the server's database and storage
 * folder (clients, files, show, check), as aligned text or JSON. Safe while the server runs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "../protocol/crypto.h"
#include "../protocol/err.h"
#include "../protocol/hex.h"
#include "../server/storage.h"

#ifndef SEALDROP_VERSION
#define SEALDROP_VERSION "unknown"
#endif

#define PROG "sealdrop-db"
#define DEFAULT_DB "defensive.db"
#define DEFAULT_STORAGE "files"

/* Exit statuses (documented in usage()). */
#define EXIT_OK 0
#define EXIT_PROBLEMS 1
#define EXIT_USAGE 2
#define EXIT_NO_DB 3

#define ID_HEX_SIZE (2 * CLIENT_ID_SIZE + 1)
#define FINGERPRINT_HEX 16           /* hex characters of SHA-256 shown for a public key */
#define TIME_TEXT_SIZE 32
/* The storage folder is <client id hex>/<name>: anything much deeper is not ours, and the
 * bound keeps a hostile tree (or a loop through bind mounts) from running us out of stack. */
#define WALK_MAX_DEPTH 8
#define PATH_TEXT_MAX 4096

struct opts {
	const char *db_path;
	const char *storage;
	int json;
	const char *client;
	int unverified;
	const char *cmd;
	const char *arg;
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: " PROG " [--db PATH] [--storage DIR] [--json] COMMAND\n"
	    "Read-only inspection of a sealdrop server's database; safe while the server runs.\n"
	    "\n"
	    "commands:\n"
	    "  clients                          every client: ID, name, key fingerprint, AES key\n"
	    "                                   set, last seen (local time), number of files\n"
	    "  files [--client NAME|ID] [--unverified]\n"
	    "                                   file rows: owner, name, stored path, size, CRC,\n"
	    "                                   verified, upload time\n"
	    "  show NAME|ID                     one client and its files\n"
	    "  check                            SQLite integrity check, and every file row has its\n"
	    "                                   stored file and every stored file its row\n"
	    "\n"
	    "options:\n"
	    "  --db PATH       the database (default " DEFAULT_DB ")\n"
	    "  --storage DIR   the storage folder (default: " DEFAULT_STORAGE " next to the database)\n"
	    "  --json          JSON instead of aligned text\n"
	    "  --help, --version\n"
	    "\n"
	    "exit status: 0 ok, 1 problems found (check) or no such client, 2 usage error,\n"
	    "3 database missing, unreadable or not a sealdrop database\n");
}

static int
usage_error(const char *what, const char *arg)
{
	if (arg != NULL)
		fprintf(stderr, PROG ": %s '%s'\n", what, arg);
	else
		fprintf(stderr, PROG ": %s\n", what);
	fprintf(stderr, "Try '" PROG " --help'.\n");
	return EXIT_USAGE;
}

/* Options may come before or after the command; "--" ends them. Returns -1 to go on, or an
 * exit status. */
static int
parse_args(int argc, char **argv, struct opts *o)
{
	const char *pos[2];
	int npos = 0, i, only_pos = 0, help = 0, version = 0;
	const char **value;
	const char *a, *eq;
	size_t namelen;

	memset(o, 0, sizeof(*o));
	o->db_path = DEFAULT_DB;
	for (i = 1; i < argc; i++) {
		a = argv[i];
		if (only_pos || a[0] != '-' || a[1] == '\0') {
			if (npos == 2)
				return usage_error("too many arguments at", a);
			pos[npos++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_pos = 1;
			continue;
		}
		if (strcmp(a, "--json") == 0) {
			o->json = 1;
			continue;
		}
		if (strcmp(a, "--unverified") == 0) {
			o->unverified = 1;
			continue;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			help = 1;
			continue;
		}
		if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
			version = 1;
			continue;
		}
		/* Options with a value: "--opt VALUE" or "--opt=VALUE". */
		eq = strchr(a, '=');
		namelen = eq != NULL ? (size_t)(eq - a) : strlen(a);
		if (namelen == 4 && strncmp(a, "--db", 4) == 0)
			value = &o->db_path;
		else if (namelen == 9 && strncmp(a, "--storage", 9) == 0)
			value = &o->storage;
		else if (namelen == 8 && strncmp(a, "--client", 8) == 0)
			value = &o->client;
		else
			return usage_error("unknown option", a);
		if (eq != NULL)
			*value = eq + 1;
		else if (i + 1 < argc)
			*value = argv[++i];
		else
			return usage_error("missing value after", a);
		if (**value == '\0')
			return usage_error("empty value for", a);
	}
	if (help) {
		usage(stdout);
		return EXIT_OK;
	}
	if (version) {
		printf(PROG " " SEALDROP_VERSION "\n");
		return EXIT_OK;
	}
	if (npos == 0)
		return usage_error("no command given (clients, files, show, check)", NULL);
	o->cmd = pos[0];
	o->arg = npos > 1 ? pos[1] : NULL;
	if (strcmp(o->cmd, "show") == 0) {
		if (o->arg == NULL)
			return usage_error("show needs a client name or ID", NULL);
	} else if (strcmp(o->cmd, "clients") != 0 && strcmp(o->cmd, "files") != 0 &&
	    strcmp(o->cmd, "check") != 0) {
		return usage_error("unknown command", o->cmd);
	} else if (o->arg != NULL) {
		return usage_error("unexpected argument", o->arg);
	}
	if ((o->client != NULL || o->unverified) && strcmp(o->cmd, "files") != 0)
		return usage_error("--client and --unverified go with the files command", NULL);
	return -1;
}

/* ---- text helpers ---- */

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0 if it is not one:
 * no overlong forms, no surrogates, nothing past U+10FFFF. */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
	uint32_t cp;
	size_t len, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1fu;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0fu;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07u;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3fu);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* A string safe for a terminal: control characters and bytes that are not UTF-8 become
 * \xNN, so a hostile name cannot move the cursor or fake other lines. Caller frees. */
static char *
text_clean(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, o = 0, k;
	char *out;

	if ((out = malloc(4 * n + 1)) == NULL)
		return NULL;
	while (i < n) {
		k = utf8_seq(p + i, n - i);
		if (k == 0 || p[i] < 0x20 || p[i] == 0x7f) {
			snprintf(out + o, 5, "\\x%02x", p[i]);
			o += 4;
			i++;
			continue;
		}
		memcpy(out + o, p + i, k);
		o += k;
		i += k;
	}
	out[o] = '\0';
	return out;
}

/* Characters on screen of clean text (code points; wide characters count one). */
static size_t
text_width(const char *s)
{
	size_t w = 0;

	for (; *s != '\0'; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

/* Writes s as a JSON string: valid UTF-8 as is, the rest escaped (bytes that are not UTF-8
 * as \u00XX, which names the byte, since JSON text itself must be valid UTF-8). */
static void
json_str(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n, i = 0, k;

	if (s == NULL) {
		fputs("null", f);
		return;
	}
	n = strlen(s);
	fputc('"', f);
	while (i < n) {
		k = utf8_seq(p + i, n - i);
		if (p[i] == '"' || p[i] == '\\') {
			fputc('\\', f);
			fputc(p[i], f);
		} else if (p[i] == '\n') {
			fputs("\\n", f);
		} else if (p[i] == '\t') {
			fputs("\\t", f);
		} else if (p[i] == '\r') {
			fputs("\\r", f);
		} else if (k == 0 || p[i] < 0x20 || p[i] == 0x7f) {
			fprintf(f, "\\u%04x", p[i]);
		} else {
			fwrite(p + i, 1, k, f);
			i += k;
			continue;
		}
		i++;
	}
	fputc('"', f);
}

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

/* ---- aligned text tables ---- */

#define TABLE_MAX_COLS 8

struct table {
	size_t ncols;
	unsigned right;    /* bit i: column i is right-aligned (numbers) */
	size_t nrows, cap;
	char **cells;      /* nrows * ncols, cleaned text */
	int failed;        /* out of memory on some row */
};

static void
table_init(struct table *t, size_t ncols, unsigned right)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	t->right = right;
}

static void
table_add(struct table *t, const char *const *row)
{
	char **grown;
	size_t i, base;

	if (t->failed)
		return;
	if (t->nrows == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16;
		if ((grown = realloc(t->cells, t->cap * t->ncols * sizeof(*grown))) == NULL) {
			t->failed = 1;
			return;
		}
		t->cells = grown;
	}
	base = t->nrows * t->ncols;
	for (i = 0; i < t->ncols; i++)
		t->cells[base + i] = text_clean(row[i]);
	t->nrows++;
	for (i = 0; i < t->ncols; i++)
		if (t->cells[base + i] == NULL)
			t->failed = 1;
}

static void
table_print(const struct table *t, FILE *f)
{
	size_t width[TABLE_MAX_COLS] = { 0 };
	size_t r, c, w;
	const char *cell;

	for (r = 0; r < t->nrows; r++)
		for (c = 0; c < t->ncols; c++)
			if ((w = text_width(t->cells[r * t->ncols + c])) > width[c])
				width[c] = w;
	for (r = 0; r < t->nrows; r++) {
		for (c = 0; c < t->ncols; c++) {
			cell = t->cells[r * t->ncols + c];
			w = text_width(cell);
			if (c > 0)
				fputs("  ", f);
			if (t->right & (1u << c))
				fprintf(f, "%*s%s", (int)(width[c] - w), "", cell);
			else if (c + 1 < t->ncols)
				fprintf(f, "%s%*s", cell, (int)(width[c] - w), "");
			else
				fputs(cell, f);
		}
		fputc('\n', f);
	}
}

static void
table_free(struct table *t)
{
	size_t i;

	for (i = 0; t->cells != NULL && i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

/* ---- clients ---- */

struct listing {
	int json;
	int count;
	struct table table;
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
	json_str(stdout, c->name);
	printf(", \"public_key_sha256\": ");
	json_str(stdout, c->has_public_key ? fp : NULL);
	printf(", \"aes_key\": %s, \"last_seen\": ", c->has_aes_key ? "true" : "false");
	if (c->last_seen > 0)
		printf("%" PRId64 ", \"last_seen_local\": ", c->last_seen);
	else
		printf("null, \"last_seen_local\": ");
	json_str(stdout, c->last_seen > 0 ? seen : NULL);
	printf(", \"files\": %ld}", file_count);
}

static void
client_row(struct table *t, const struct db_client *c, long file_count)
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
	table_add(t, row);
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
	"UPLOADED" };
#define FILE_RIGHT ((1u << 3) | (1u << 4))

static void
file_json(const struct db_file *f)
{
	char id[ID_HEX_SIZE], up[TIME_TEXT_SIZE];

	hex_encode(f->owner, CLIENT_ID_SIZE, id);
	local_time(f->uploaded, up, "");
	printf("{\"owner_id\": \"%s\", \"owner\": ", id);
	/* A row whose owner is gone (only in a database damaged by hand) has no name. */
	json_str(stdout, f->owner_name[0] != '\0' ? f->owner_name : NULL);
	printf(", \"file_name\": ");
	json_str(stdout, f->file_name);
	printf(", \"path\": ");
	json_str(stdout, f->path_name);
	printf(", \"size\": %" PRIu64 ", \"crc\": %" PRIu32 ", \"verified\": %s, \"uploaded\": ",
	    f->size, f->crc, f->verified ? "true" : "false");
	if (f->uploaded > 0)
		printf("%" PRId64, f->uploaded);
	else
		printf("null");
	printf(", \"uploaded_local\": ");
	json_str(stdout, f->uploaded > 0 ? up : NULL);
	printf("}");
}

static void
file_row(struct table *t, const struct db_file *f)
{
	char size[24], crc[16], up[TIME_TEXT_SIZE], id[ID_HEX_SIZE];
	const char *row[7];

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
	table_add(t, row);
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

/* The database path, for messages. */
static const char *db_path_shown = DEFAULT_DB;

/* A read that fails once the database is open means it is damaged or unreadable: that is the
 * same outcome as failing to open it. */
static int
db_failure(struct db *db, const char *what, int r)
{
	char *clean = text_clean(db_path_shown);

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
		table_print(&l->table, stdout);
	table_free(&l->table);
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
	table_init(&l->table, ncols, right);
	if (json)
		printf("{\"%s\": [", key);
	else
		table_add(&l->table, head);
}

/* Ends a listing whose rows came from an iteration that returned r: closes the JSON array,
 * or prints the table. */
static int
listing_end(struct listing *l, struct db *db, const char *what, int r)
{
	if (l->json)
		printf("%s]}\n", l->count > 0 ? "\n" : "");
	if (r != 0 || l->json) {
		table_free(&l->table);
		return r != 0 ? db_failure(db, what, r) : EXIT_OK;
	}
	return table_finish(l);
}

static int
cmd_clients(struct db *db, const struct opts *o)
{
	struct listing l;
	int r;

	listing_begin(&l, o->json, "clients", 6, 1u << 5, client_head);
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
		clean = text_clean(which);
		fprintf(stderr, PROG ": no client named or with ID '%s'\n",
		    clean != NULL ? clean : "?");
		free(clean);
		return EXIT_PROBLEMS;
	}
	if (r != 0)
		return db_failure(db, "looking up a client", r);
	return EXIT_OK;
}

static int
cmd_files(struct db *db, const struct opts *o)
{
	struct listing l;
	struct db_client c;
	int r;

	memset(&c, 0, sizeof(c));
	if (o->client != NULL && (r = find_client(db, o->client, &c)) != EXIT_OK)
		return r;
	listing_begin(&l, o->json, "files", 7, FILE_RIGHT, file_head);
	r = db_each_file(db, o->client != NULL ? c.id : NULL, o->unverified, on_file, &l);
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

static int
cmd_show(struct db *db, const struct opts *o)
{
	struct listing l;
	struct db_client c;
	struct table t;
	char id[ID_HEX_SIZE], fp[FINGERPRINT_HEX + 1], seen[TIME_TEXT_SIZE], files[24];
	const char *row[2];
	long count = 0;
	int r;

	if ((r = find_client(db, o->arg, &c)) != EXIT_OK)
		return r;
	if ((r = db_each_file(db, c.id, 0, count_file, &count)) != 0) {
		crypto_wipe(&c, sizeof(c));
		return db_failure(db, "reading files", r);
	}
	memset(&l, 0, sizeof(l));
	l.json = o->json;
	if (l.json) {
		printf("{\"client\": ");
		client_json(&c, count);
		printf(",\n \"files\": [");
	} else {
		hex_encode(c.id, CLIENT_ID_SIZE, id);
		fingerprint(&c, fp);
		local_time(c.last_seen, seen, "never");
		snprintf(files, sizeof(files), "%ld", count);
		table_init(&t, 2, 0);
		row[0] = "ID:", row[1] = id;
		table_add(&t, row);
		row[0] = "Name:", row[1] = c.name;
		table_add(&t, row);
		row[0] = "Key SHA-256:", row[1] = c.has_public_key ? fp : "- (registration pending)";
		table_add(&t, row);
		row[0] = "AES key:", row[1] = c.has_aes_key ? "yes" : "no";
		table_add(&t, row);
		row[0] = "Last seen:", row[1] = seen;
		table_add(&t, row);
		row[0] = "Files:", row[1] = files;
		table_add(&t, row);
		if (!t.failed)
			table_print(&t, stdout);
		r = t.failed;
		table_free(&t);
		if (r) {
			crypto_wipe(&c, sizeof(c));
			fprintf(stderr, PROG ": out of memory\n");
			return EXIT_PROBLEMS;
		}
		table_init(&l.table, 7, FILE_RIGHT);
		table_add(&l.table, file_head);
	}
	r = db_each_file(db, c.id, 0, on_file, &l);
	crypto_wipe(&c, sizeof(c));
	if (r == 0 && !l.json) {
		if (count == 0) {  /* no file table under a client without files */
			table_free(&l.table);
			return EXIT_OK;
		}
		putchar('\n');
	}
	return listing_end(&l, db, "reading files", r);
}

/* ---- check ---- */

struct strlist {
	char **v;
	size_t n, cap;
};

static int
strlist_add(struct strlist *l, const char *s)
{
	char **grown;
	char *copy;

	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 32;
		if ((grown = realloc(l->v, l->cap * sizeof(*grown))) == NULL)
			return SD_ERR_ALLOC;
		l->v = grown;
	}
	if ((copy = strdup(s)) == NULL)
		return SD_ERR_ALLOC;
	l->v[l->n++] = copy;
	return 0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* qsort and bsearch must not see the NULL of an empty list (undefined even for 0 items). */
static void
strlist_sort(struct strlist *l)
{
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), cmp_str);
}

static int
strlist_has(const struct strlist *l, const char *s)
{
	return l->n > 0 && bsearch(&s, l->v, l->n, sizeof(*l->v), cmp_str) != NULL;
}

static void
strlist_free(struct strlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}


struct check {
	const char *storage;
	int json;
	long rows;
	long stored;
	struct strlist row_paths;   /* every PathName, sorted once all rows are in */
	struct strlist missing;     /* "path" of rows without their file */
	struct strlist bad_paths;   /* PathName that would leave the storage folder */
	struct strlist sizes;       /* "path\tdb\tdisk" of rows whose file has another size */
	struct strlist orphans;     /* stored files without a row */
	struct strlist partial;     /* uploads in progress (or left by a crash) */
	struct strlist unreadable;  /* folders we could not list */
	char rows_error[512];       /* why the file rows could not be read, "" if they could */
	int failed;
};

/* A PathName we are willing to look up: relative, without "." or ".." components. */
static int
safe_rel_path(const char *p)
{
	const char *s = p, *e;
	size_t n;

	if (*p == '\0' || *p == '/')
		return 0;
	while (*s != '\0') {
		e = strchr(s, '/');
		n = e != NULL ? (size_t)(e - s) : strlen(s);
		if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return 0;
		s += n;
		if (*s == '/')
			s++;
		if (e != NULL && *s == '\0')
			return 0;
	}
	return 1;
}

static int
on_check_file(void *ctx, const struct db_file *f)
{
	struct check *k = ctx;
	char path[PATH_TEXT_MAX], line[PATH_TEXT_MAX + 64];
	struct stat st;

	k->rows++;
	if (strlist_add(&k->row_paths, f->path_name) != 0)
		return SD_ERR_ALLOC;
	if (!safe_rel_path(f->path_name))
		return strlist_add(&k->bad_paths, f->path_name);
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", k->storage, f->path_name) >=
	    sizeof(path))
		return strlist_add(&k->bad_paths, f->path_name);
	if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return strlist_add(&k->missing, f->path_name);
	if ((uint64_t)st.st_size != f->size) {
		snprintf(line, sizeof(line), "%s\t%" PRIu64 "\t%jd", f->path_name, f->size,
		    (intmax_t)st.st_size);
		return strlist_add(&k->sizes, line);
	}
	return 0;
}

/* Walks dir (rel is its path under the storage folder, "" at the top) without following
 * symbolic links; every entry that is not a folder is a stored file. */
static void
walk(struct check *k, const char *rel, int depth)
{
	char dir[PATH_TEXT_MAX], sub[PATH_TEXT_MAX], full[PATH_TEXT_MAX];
	struct dirent *e;
	struct stat st;
	DIR *d;
	const char *base;
	int n;

	n = rel[0] != '\0' ? snprintf(dir, sizeof(dir), "%s/%s", k->storage, rel) :
	    snprintf(dir, sizeof(dir), "%s", k->storage);
	if (n < 0 || (size_t)n >= sizeof(dir) || depth > WALK_MAX_DEPTH ||
	    (d = opendir(dir)) == NULL) {
		/* A missing storage folder just means nothing was stored yet. */
		if (!(rel[0] == '\0' && errno == ENOENT) && strlist_add(&k->unreadable,
		    rel[0] != '\0' ? rel : ".") != 0)
			k->failed = 1;
		return;
	}
	while ((e = readdir(d)) != NULL) {
		base = e->d_name;
		if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
			continue;
		n = rel[0] != '\0' ? snprintf(sub, sizeof(sub), "%s/%s", rel, base) :
		    snprintf(sub, sizeof(sub), "%s", base);
		if (n < 0 || (size_t)n >= sizeof(sub) ||
		    (size_t)snprintf(full, sizeof(full), "%s/%s", k->storage, sub) >= sizeof(full) ||
		    lstat(full, &st) != 0) {
			if (strlist_add(&k->unreadable, sub) != 0)
				k->failed = 1;
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			walk(k, sub, depth + 1);
			continue;
		}
		if (strncmp(base, STORAGE_TMP_PREFIX, strlen(STORAGE_TMP_PREFIX)) == 0) {
			if (strlist_add(&k->partial, sub) != 0)
				k->failed = 1;
			continue;
		}
		k->stored++;
		if (!strlist_has(&k->row_paths, sub) && strlist_add(&k->orphans, sub) != 0)
			k->failed = 1;
	}
	closedir(d);
}

static void
json_list(const char *key, const struct strlist *l)
{
	size_t i;

	printf(",\n \"%s\": [", key);
	for (i = 0; i < l->n; i++) {
		if (i > 0)
			printf(", ");
		json_str(stdout, l->v[i]);
	}
	printf("]");
}

static void
text_list(const char *label, const struct strlist *l)
{
	size_t i;
	char *clean;

	for (i = 0; i < l->n; i++) {
		clean = text_clean(l->v[i]);
		printf("%s: %s\n", label, clean != NULL ? clean : "?");
		free(clean);
	}
}

/* "path\tdb\tdisk" into its parts (path may not contain a tab: row paths come from our
 * database and a tab would only split wrongly, never overflow). */
static void
split_size_line(char *line, const char **path, const char **dbsz, const char **disk)
{
	char *t1 = strrchr(line, '\t'), *t2;

	*path = line, *dbsz = "?", *disk = "?";
	if (t1 == NULL)
		return;
	*t1 = '\0';
	*disk = t1 + 1;
	if ((t2 = strrchr(line, '\t')) == NULL)
		return;
	*t2 = '\0';
	*dbsz = t2 + 1;
}

static void
check_report(struct check *k, const char *integrity)
{
	size_t i, problems = k->missing.n + k->bad_paths.n + k->sizes.n + k->orphans.n +
	    k->unreadable.n + (integrity != NULL) + (k->rows_error[0] != '\0');
	const char *path, *dbsz, *disk;
	char *clean;

	if (k->json) {
		printf("{\"integrity\": ");
		json_str(stdout, integrity != NULL ? integrity : "ok");
		printf(",\n \"rows\": %ld, \"stored\": %ld", k->rows, k->stored);
		json_list("missing", &k->missing);
		json_list("orphans", &k->orphans);
		printf(",\n \"size_mismatch\": [");
		for (i = 0; i < k->sizes.n; i++) {
			split_size_line(k->sizes.v[i], &path, &dbsz, &disk);
			printf("%s{\"path\": ", i > 0 ? ", " : "");
			json_str(stdout, path);
			printf(", \"db_size\": %s, \"disk_size\": %s}", dbsz, disk);
		}
		printf("]");
		json_list("bad_paths", &k->bad_paths);
		json_list("unreadable", &k->unreadable);
		json_list("partial", &k->partial);
		printf(",\n \"rows_error\": ");
		json_str(stdout, k->rows_error[0] != '\0' ? k->rows_error : NULL);
		printf(",\n \"problems\": %zu, \"ok\": %s}\n", problems, problems ? "false" : "true");
		return;
	}
	clean = text_clean(integrity != NULL ? integrity : "ok");
	printf("integrity: %s\n", clean != NULL ? clean : "?");
	free(clean);
	if (k->rows_error[0] != '\0') {
		clean = text_clean(k->rows_error);
		printf("file rows unreadable: %s\n", clean != NULL ? clean : "?");
		free(clean);
	} else
		printf("file rows: %ld, stored files: %ld, partial uploads: %zu\n", k->rows,
		    k->stored, k->partial.n);
	text_list("missing (row without its file)", &k->missing);
	text_list("orphan (file without a row)", &k->orphans);
	for (i = 0; i < k->sizes.n; i++) {
		split_size_line(k->sizes.v[i], &path, &dbsz, &disk);
		clean = text_clean(path);
		printf("size differs: %s (database %s, on disk %s)\n", clean != NULL ? clean : "?",
		    dbsz, disk);
		free(clean);
	}
	text_list("bad path (outside the storage folder)", &k->bad_paths);
	text_list("unreadable", &k->unreadable);
	text_list("partial upload (not a problem)", &k->partial);
	if (problems == 0)
		printf("check: OK\n");
	else
		printf("check: %zu problem%s\n", problems, problems == 1 ? "" : "s");
}

static int
cmd_check(struct db *db, const struct opts *o, const char *storage)
{
	struct check k;
	char integrity[256];
	int r, have_integrity_problem = 0, status;

	memset(&k, 0, sizeof(k));
	k.storage = storage;
	k.json = o->json;
	r = db_integrity_check(db);
	if (r != 0) {
		snprintf(integrity, sizeof(integrity), "%s", db_errmsg(db));
		have_integrity_problem = 1;
	}
	if ((r = db_each_file(db, NULL, 0, on_check_file, &k)) == SD_ERR_ALLOC) {
		fprintf(stderr, PROG ": out of memory\n");
		status = EXIT_PROBLEMS;
		goto out;
	}
	if (r != 0) {
		/* Damage that hides rows is a finding of the check; comparing the storage folder
		 * against a partial list of rows would only add false orphans. */
		snprintf(k.rows_error, sizeof(k.rows_error), "%s (%s)", sd_strerror(r),
		    db_errmsg(db));
	} else {
		strlist_sort(&k.row_paths);
		walk(&k, "", 0);
	}
	if (k.failed) {
		fprintf(stderr, PROG ": out of memory\n");
		status = EXIT_PROBLEMS;
		goto out;
	}
	strlist_sort(&k.orphans);
	strlist_sort(&k.partial);
	check_report(&k, have_integrity_problem ? integrity : NULL);
	status = (have_integrity_problem || k.rows_error[0] != '\0' || k.missing.n || k.bad_paths.n || k.sizes.n ||
	    k.orphans.n || k.unreadable.n) ? EXIT_PROBLEMS : EXIT_OK;
out:
	strlist_free(&k.row_paths);
	strlist_free(&k.missing);
	strlist_free(&k.bad_paths);
	strlist_free(&k.sizes);
	strlist_free(&k.orphans);
	strlist_free(&k.partial);
	strlist_free(&k.unreadable);
	return status;
}

/* The storage folder: --storage, else "files" in the database's folder (the server's
 * default layout, wherever the tool is started from). Caller frees. */
static char *
storage_path(const struct opts *o)
{
	const char *slash;
	char *p;
	size_t n;

	if (o->storage != NULL)
		return strdup(o->storage);
	if ((slash = strrchr(o->db_path, '/')) == NULL)
		return strdup(DEFAULT_STORAGE);
	n = (size_t)(slash - o->db_path) + 1;
	if ((p = malloc(n + sizeof(DEFAULT_STORAGE))) == NULL)
		return NULL;
	memcpy(p, o->db_path, n);
	memcpy(p + n, DEFAULT_STORAGE, sizeof(DEFAULT_STORAGE));
	return p;
}

static int
open_db(const char *path, struct db **db)
{
	int r = db_open(path, DB_READ_ONLY, db);
	int fd = -1;
	struct stat st;
	char *clean;
	const char *why;

	if (r == 0)
		return EXIT_OK;
	switch (r) {
	case SD_ERR_NOT_FOUND:
		why = "no such database";
		break;
	case SD_ERR_IO:
		/* SQLite does not keep errno; ask the file system ourselves. */
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			why = "is a directory, not a database";
		else if ((fd = open(path, O_RDONLY)) < 0)
			why = strerror(errno);
		else
			why = "cannot open";
		if (fd >= 0)
			close(fd);
		break;
	case SD_ERR_SCHEMA:
		why = "not a sealdrop database";
		break;
	default:
		why = sd_strerror(r);
		break;
	}
	clean = text_clean(path);
	fprintf(stderr, PROG ": %s: %s\n", clean != NULL ? clean : path, why);
	free(clean);
	return EXIT_NO_DB;
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct db *db = NULL;
	char *storage = NULL;
	int status;

	if ((status = parse_args(argc, argv, &o)) >= 0)
		return status;
	if (crypto_init() != 0) {
		fprintf(stderr, PROG ": cannot initialise libgcrypt\n");
		return EXIT_PROBLEMS;
	}
	db_path_shown = o.db_path;
	if ((status = open_db(o.db_path, &db)) != EXIT_OK)
		return status;
	if (strcmp(o.cmd, "clients") == 0)
		status = cmd_clients(db, &o);
	else if (strcmp(o.cmd, "files") == 0)
		status = cmd_files(db, &o);
	else if (strcmp(o.cmd, "show") == 0)
		status = cmd_show(db, &o);
	else if ((storage = storage_path(&o)) == NULL) {
		fprintf(stderr, PROG ": out of memory\n");
		status = EXIT_PROBLEMS;
	} else
		status = cmd_check(db, &o, storage);
	free(storage);
	db_close(db);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, PROG ": writing the output: %s\n", strerror(errno));
		if (status == EXIT_OK)
			status = EXIT_PROBLEMS;
	}
	return status;
}
