/* check.c: sealdrop-db check: SQLite's integrity check, then every file row against the
 * storage folder (size, and the CRC of verified rows) and every stored file against the rows,
 * without following symbolic links. A row or file with a commit intent is being committed
 * (the server renames, then publishes; a restart rolls it forward): listed, not a problem. */
#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../db/db.h"
#include "../../protocol/cksum.h"
#include "../../protocol/err.h"
#include "../../protocol/text.h"
#include "output.h"

#define STARTUP_LOCK_FILE ".sealdrop-startup.lock"

/* The storage folder is <client id hex>/<name>: anything much deeper is not ours, and the
 * bound keeps a hostile tree (or a loop through bind mounts) from running us out of stack. */
#define WALK_MAX_DEPTH 8
#define PATH_TEXT_MAX 4096
#define CRC_READ_CHUNK 65536u

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
	int crc;                    /* compare the CRC of verified rows with their files */
	struct strlist committing;  /* PathName of every commit intent, sorted */
	struct strlist crcs;        /* "path\tdb\tdisk" of verified rows whose file has another CRC */
	struct strlist busy;        /* rows and files being committed (not a problem) */
	long rows;
	long stored;
	struct strlist row_paths;   /* every PathName, sorted once all rows are in */
	struct strlist missing;     /* "path" of rows without their file */
	struct strlist bad_paths;   /* PathName that would leave the storage folder */
	struct strlist sizes;       /* "path\tdb\tdisk" of rows whose file has another size */
	struct strlist orphans;     /* stored files without a row */
	struct strlist partial;     /* uploads in progress (or left by a crash) */
	struct strlist unreadable;  /* folders we could not list */
	struct strlist uploads_bad; /* "path\treason" of partial uploads not matching their file */
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

/* The cksum of the regular file at path (not following a link), or -1 if unreadable. */
static int
file_cksum(const char *path, uint32_t *out)
{
	static uint8_t chunk[CRC_READ_CHUNK];
	struct cksum ck;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -1;
	cksum_init(&ck);
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			close(fd);
			return -1;
		}
		cksum_update(&ck, chunk, (size_t)n);
	}
	close(fd);
	*out = cksum_final(&ck);
	return 0;
}

static int
on_check_file(void *ctx, const struct db_file *f)
{
	struct check *k = ctx;
	char path[PATH_TEXT_MAX], line[PATH_TEXT_MAX + 64];
	struct stat st;
	uint32_t crc;

	k->rows++;
	if (strlist_add(&k->row_paths, f->path_name) != 0)
		return SD_ERR_ALLOC;
	if (!safe_rel_path(f->path_name))
		return strlist_add(&k->bad_paths, f->path_name);
	if (strlist_has(&k->committing, f->path_name))
		return strlist_add(&k->busy, f->path_name);
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
	if (k->crc && f->verified) {
		if (file_cksum(path, &crc) != 0)
			return strlist_add(&k->unreadable, f->path_name);
		if (crc != f->crc) {
			snprintf(line, sizeof(line), "%s\t%" PRIu32 "\t%" PRIu32, f->path_name,
			    f->crc, crc);
			return strlist_add(&k->crcs, line);
		}
	}
	return 0;
}

/* A partial version-4 upload: its temporary file must be there, a regular file in its owner's
 * folder holding at least the durable offset (the server cuts what lies beyond at start-up)
 * and no more than the file's size. */
static int
on_check_upload(void *ctx, const struct db_upload *u)
{
	struct check *k = ctx;
	char path[PATH_TEXT_MAX], line[PATH_TEXT_MAX + 64];
	struct stat st;
	const char *why = NULL;

	if (!safe_rel_path(u->temp_path) ||
	    (size_t)snprintf(path, sizeof(path), "%s/%s", k->storage, u->temp_path) >= sizeof(path))
		why = "path outside the storage folder";
	else if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
		why = "temporary file missing";
	else if ((uint64_t)st.st_size < u->offset)
		why = "temporary file shorter than the durable offset";
	else if ((uint64_t)st.st_size > u->size)
		why = "temporary file longer than the file";
	if (why == NULL)
		return 0;
	snprintf(line, sizeof(line), "%s\t%s", u->temp_path, why);
	return strlist_add(&k->uploads_bad, line);
}

static int
on_commit(void *ctx, const struct db_commit *c)
{
	struct check *k = ctx;

	return strlist_add(&k->committing, c->path_name);
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
		/* The servers' start-up lock (server/storage.h STORAGE_STARTUP_LOCK): no upload. */
		if (rel[0] == '\0' && strcmp(base, STARTUP_LOCK_FILE) == 0)
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
		/* The server's temporary files: names the file-name rule keeps for it. */
		if (strncmp(base, TEXT_RESERVED_PREFIX, strlen(TEXT_RESERVED_PREFIX)) == 0) {
			if (strlist_add(&k->partial, sub) != 0)
				k->failed = 1;
			continue;
		}
		k->stored++;
		if (!strlist_has(&k->row_paths, sub) && strlist_has(&k->committing, sub)) {
			if (strlist_add(&k->busy, sub) != 0)
				k->failed = 1;
		} else if (!strlist_has(&k->row_paths, sub) && strlist_add(&k->orphans, sub) != 0)
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
		out_json_str(stdout, l->v[i]);
	}
	printf("]");
}

static void
print_list(const char *label, const struct strlist *l)
{
	size_t i;
	char *clean;

	for (i = 0; i < l->n; i++) {
		clean = out_clean(l->v[i]);
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
	    k->unreadable.n + k->crcs.n + (integrity != NULL) + (k->rows_error[0] != '\0') +
	    k->uploads_bad.n;
	const char *path, *dbsz, *disk;
	char *clean;

	if (k->json) {
		printf("{\"integrity\": ");
		out_json_str(stdout, integrity != NULL ? integrity : "ok");
		printf(",\n \"rows\": %ld, \"stored\": %ld", k->rows, k->stored);
		json_list("missing", &k->missing);
		json_list("orphans", &k->orphans);
		printf(",\n \"size_mismatch\": [");
		for (i = 0; i < k->sizes.n; i++) {
			split_size_line(k->sizes.v[i], &path, &dbsz, &disk);
			printf("%s{\"path\": ", i > 0 ? ", " : "");
			out_json_str(stdout, path);
			printf(", \"db_size\": %s, \"disk_size\": %s}", dbsz, disk);
		}
		printf("],\n \"crc_mismatch\": [");
		for (i = 0; i < k->crcs.n; i++) {
			split_size_line(k->crcs.v[i], &path, &dbsz, &disk);
			printf("%s{\"path\": ", i > 0 ? ", " : "");
			out_json_str(stdout, path);
			printf(", \"db_crc\": %s, \"disk_crc\": %s}", dbsz, disk);
		}
		printf("]");
		printf(",\n \"crc_checked\": %s", k->crc ? "true" : "false");
		json_list("committing", &k->busy);
		json_list("bad_paths", &k->bad_paths);
		json_list("unreadable", &k->unreadable);
		json_list("partial", &k->partial);
		printf(",\n \"partial_upload_problems\": [");
		for (i = 0; i < k->uploads_bad.n; i++) {
			char *tab = strrchr(k->uploads_bad.v[i], '\t');

			*tab = '\0';
			printf("%s{\"temp_path\": ", i > 0 ? ", " : "");
			out_json_str(stdout, k->uploads_bad.v[i]);
			printf(", \"problem\": ");
			out_json_str(stdout, tab + 1);
			printf("}");
		}
		printf("]");
		printf(",\n \"rows_error\": ");
		out_json_str(stdout, k->rows_error[0] != '\0' ? k->rows_error : NULL);
		printf(",\n \"problems\": %zu, \"ok\": %s}\n", problems, problems ? "false" : "true");
		return;
	}
	clean = out_clean(integrity != NULL ? integrity : "ok");
	printf("integrity: %s\n", clean != NULL ? clean : "?");
	free(clean);
	if (k->rows_error[0] != '\0') {
		clean = out_clean(k->rows_error);
		printf("file rows unreadable: %s\n", clean != NULL ? clean : "?");
		free(clean);
	} else
		printf("file rows: %ld, stored files: %ld, partial uploads: %zu\n", k->rows,
		    k->stored, k->partial.n);
	print_list("missing (row without its file)", &k->missing);
	print_list("orphan (file without a row)", &k->orphans);
	for (i = 0; i < k->sizes.n; i++) {
		split_size_line(k->sizes.v[i], &path, &dbsz, &disk);
		clean = out_clean(path);
		printf("size differs: %s (database %s, on disk %s)\n", clean != NULL ? clean : "?",
		    dbsz, disk);
		free(clean);
	}
	for (i = 0; i < k->crcs.n; i++) {
		split_size_line(k->crcs.v[i], &path, &dbsz, &disk);
		clean = out_clean(path);
		printf("CRC differs on a verified file: %s (database %s, on disk %s)\n",
		    clean != NULL ? clean : "?", dbsz, disk);
		free(clean);
	}
	print_list("being committed (not a problem; a restart finishes it)", &k->busy);
	print_list("bad path (outside the storage folder)", &k->bad_paths);
	print_list("unreadable", &k->unreadable);
	print_list("partial upload (not a problem)", &k->partial);
	print_list("partial upload does not match its file", &k->uploads_bad);
	if (problems == 0)
		printf("check: OK\n");
	else
		printf("check: %zu problem%s\n", problems, problems == 1 ? "" : "s");
}

int
check_storage(struct db *db, int json, int crc, const char *storage)
{
	struct check k;
	char integrity[256];
	int r, have_integrity_problem = 0, status;

	memset(&k, 0, sizeof(k));
	k.storage = storage;
	k.json = json;
	k.crc = crc;
	r = db_integrity_check(db);
	if (r != 0) {
		snprintf(integrity, sizeof(integrity), "%s", db_errmsg(db));
		have_integrity_problem = 1;
	}
	if ((r = db_each_commit(db, on_commit, &k)) == 0) {
		strlist_sort(&k.committing);
		r = db_each_file(db, NULL, 0, on_check_file, &k);
	}
	if (r == SD_ERR_ALLOC) {
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
	if ((r = db_each_upload(db, NULL, on_check_upload, &k)) == SD_ERR_ALLOC)
		k.failed = 1;
	else if (r != 0 && k.rows_error[0] == '\0')
		snprintf(k.rows_error, sizeof(k.rows_error), "partial uploads: %s (%s)",
		    sd_strerror(r), db_errmsg(db));
	if (k.failed) {
		fprintf(stderr, PROG ": out of memory\n");
		status = EXIT_PROBLEMS;
		goto out;
	}
	strlist_sort(&k.orphans);
	strlist_sort(&k.partial);
	strlist_sort(&k.busy);
	check_report(&k, have_integrity_problem ? integrity : NULL);
	status = (have_integrity_problem || k.rows_error[0] != '\0' || k.missing.n || k.bad_paths.n || k.sizes.n ||
	    k.orphans.n || k.unreadable.n || k.crcs.n || k.uploads_bad.n) ? EXIT_PROBLEMS : EXIT_OK;
out:
	strlist_free(&k.row_paths);
	strlist_free(&k.missing);
	strlist_free(&k.bad_paths);
	strlist_free(&k.sizes);
	strlist_free(&k.orphans);
	strlist_free(&k.partial);
	strlist_free(&k.unreadable);
	strlist_free(&k.uploads_bad);
	strlist_free(&k.committing);
	strlist_free(&k.crcs);
	strlist_free(&k.busy);
	return status;
}
