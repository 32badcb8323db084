/* test_server_storage.c: file name sanitisation, the temp-file-then-rename life of a stored file, and
 * that symlinks planted in the storage never let a write escape it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../protocol/crypto.h"
#include "../../protocol/err.h"
#include "../../server/storage.h"

static const uint8_t owner[CLIENT_ID_SIZE] = {
	0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0x00, 0xff, 0x10, 0x20, 0x30, 0x40, 0x5a,
	0xa5,
};
#define OWNER_HEX "abcdef012345678900ff102030405aa5"

/* A fresh scratch folder: test/root is the storage, test/outside what must stay untouched. */
struct scratch {
	char top[64];
	char root[128];
	char outside[128];
};

static void
scratch_make(struct scratch *s)
{
	snprintf(s->top, sizeof(s->top), "/tmp/sd-storage-XXXXXX");
	assert_non_null(mkdtemp(s->top));
	snprintf(s->root, sizeof(s->root), "%s/root", s->top);
	snprintf(s->outside, sizeof(s->outside), "%s/outside", s->top);
	assert_int_equal(mkdir(s->root, 0700), 0);
	assert_int_equal(mkdir(s->outside, 0700), 0);
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void
scratch_remove(struct scratch *s)
{
	assert_int_equal(nftw(s->top, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* Number of entries in a folder other than . and .. (-1 if it cannot be read). */
static int
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

/* The content of a regular file (not followed through symlinks) into buf. */
static size_t
read_plain_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, cap - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(fd);
	return (size_t)n;
}

static void
test_sanitize_table(void **state)
{
	static const struct {
		const char *in;
		const char *out;  /* NULL: refused */
	} t[] = {
		{ "file.txt", "file.txt" },
		{ "upload-3000.bin", "upload-3000.bin" },
		{ "../x", "x" },
		{ "../../../../etc/shadow", "shadow" },
		{ "/etc/passwd", "passwd" },
		{ "a\\b\\c", "c" },
		{ "C:\\Users\\me\\file.bin", "file.bin" },
		{ "mixed/dir\\name", "name" },
		{ "..\\..\\x", "x" },
		{ " spaced name ", " spaced name " },
		{ "...", "..." },
		{ "r\xc3\xa9sum\xc3\xa9.pdf", "r\xc3\xa9sum\xc3\xa9.pdf" },
		{ "\xe6\x97\xa5\xe6\x9c\xac.txt", "\xe6\x97\xa5\xe6\x9c\xac.txt" },
		{ "smile \xf0\x9f\x98\x80", "smile \xf0\x9f\x98\x80" },
		{ "dir/\xd0\xb4\xd0\xb0", "\xd0\xb4\xd0\xb0" },
		{ "", NULL },
		{ ".", NULL },
		{ "..", NULL },
		{ "a/..", NULL },
		{ "a\\.", NULL },
		{ "dir/", NULL },
		{ "dir\\", NULL },
		{ "/", NULL },
		{ "new\nline", NULL },
		{ "cr\r", NULL },
		{ "tab\there", NULL },
		{ "esc\x1b[31m", NULL },
		{ "del\x7f", NULL },
		{ "\x01", NULL },
		{ "ctl\n/ok", NULL },          /* the whole name is checked, not just the kept part */
		{ "\xff", NULL },
		{ "bad\xc3", NULL },           /* truncated sequence */
		{ "\xc0\xaf", NULL },          /* overlong '/' */
		{ "\xe0\x80\xaf", NULL },      /* overlong '/' in three bytes */
		{ "\xed\xa0\x80", NULL },      /* UTF-16 surrogate */
		{ "\xf4\x90\x80\x80", NULL },  /* past U+10FFFF */
		{ "\x80x", NULL },             /* lone continuation byte */
		{ ".sealdrop-part-0011", NULL },
		{ "x/.sealdrop-part-0011", NULL },
		{ "sealdrop-part-0011", "sealdrop-part-0011" },
	};
	char out[NAME_FIELD_SIZE];
	size_t i;
	int r;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(out, 'Z', sizeof(out));
		r = storage_sanitize_name(t[i].in, out);
		if (t[i].out == NULL) {
			if (r != SD_ERR_BAD_STRING)
				fail_msg("accepted \"%s\" (case %zu)", t[i].in, i);
			assert_string_equal(out, "");
		} else {
			if (r != 0)
				fail_msg("refused \"%s\" (case %zu)", t[i].in, i);
			assert_string_equal(out, t[i].out);
		}
	}
	assert_int_equal(storage_sanitize_name(NULL, out), SD_ERR_INVALID_ARG);
}

static void
test_sanitize_long(void **state)
{
	char in[400], out[NAME_FIELD_SIZE];

	(void)state;
	/* 254 bytes, the most a field holds, are kept whole. */
	memset(in, 'a', sizeof(in));
	in[NAME_MAX_LEN] = '\0';
	assert_int_equal(storage_sanitize_name(in, out), 0);
	assert_int_equal(strlen(out), NAME_MAX_LEN);
	/* No NUL within the 255-byte field: refused, nothing read past it matters. */
	in[NAME_MAX_LEN] = 'a';
	in[sizeof(in) - 1] = '\0';
	assert_int_equal(storage_sanitize_name(in, out), SD_ERR_BAD_STRING);
	/* A long path whose last component is short. */
	memset(in, 'd', 250);
	in[250] = '/';
	memcpy(in + 251, "f.c", 4);
	assert_int_equal(storage_sanitize_name(in, out), 0);
	assert_string_equal(out, "f.c");
	/* 2-byte characters up to the limit are valid UTF-8. */
	for (size_t i = 0; i + 1 < NAME_MAX_LEN; i += 2)
		memcpy(in + i, "\xc3\xa9", 2);
	in[NAME_MAX_LEN] = '\0';
	assert_int_equal(storage_sanitize_name(in, out), 0);
	/* ... but one cut in the middle at the end is not. */
	in[NAME_MAX_LEN - 1] = '\0';
	assert_int_equal(storage_sanitize_name(in, out), SD_ERR_BAD_STRING);
}

static void
test_begin_write_commit(void **state)
{
	struct scratch s;
	struct storage_file f;
	char path[1200], buf[256];
	struct stat st;

	(void)state;
	scratch_make(&s);
	assert_int_equal(storage_begin(s.root, owner, "hello.txt", &f), 0);
	assert_true(f.fd >= 0 && f.dir_fd >= 0);
	assert_string_equal(f.rel_path, OWNER_HEX "/hello.txt");
	assert_string_equal(f.final_name, "hello.txt");
	assert_int_equal(strncmp(f.tmp_name, STORAGE_TMP_PREFIX, strlen(STORAGE_TMP_PREFIX)), 0);
	assert_int_equal(storage_write(&f, "hello, ", 7), 0);
	assert_int_equal(storage_write(&f, "world", 5), 0);
	assert_int_equal(storage_write(&f, NULL, 0), 0);
	/* Not visible under its final name before the commit. */
	snprintf(path, sizeof(path), "%s/%s/hello.txt", s.root, OWNER_HEX);
	assert_int_equal(lstat(path, &st), -1);
	snprintf(path, sizeof(path), "%s/%s", s.root, OWNER_HEX);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(count_entries(path), 1);
	assert_int_equal(storage_commit(&f), 0);
	assert_int_equal(f.fd, -1);
	assert_int_equal(f.dir_fd, -1);
	assert_int_equal(count_entries(path), 1);  /* the file, no temporary file left */
	snprintf(path, sizeof(path), "%s/%s", s.root, f.rel_path);
	assert_int_equal(read_plain_file(path, buf, sizeof(buf)), 12);
	assert_string_equal(buf, "hello, world");

	/* A second upload of the same name replaces the first. */
	assert_int_equal(storage_begin(s.root, owner, "hello.txt", &f), 0);
	assert_int_equal(storage_write(&f, "again", 5), 0);
	assert_int_equal(storage_commit(&f), 0);
	assert_int_equal(read_plain_file(path, buf, sizeof(buf)), 5);
	assert_string_equal(buf, "again");
	/* Commit of a closed file is refused. */
	assert_int_equal(storage_commit(&f), SD_ERR_INVALID_ARG);
	assert_int_equal(storage_write(&f, "x", 1), SD_ERR_INVALID_ARG);
	scratch_remove(&s);
}

/* A file larger than several writeback chunks, written in odd slices: the writeback marks
 * advance chunk by chunk and the stored bytes are exactly what was written. */
static void
test_large_file_writeback(void **state)
{
	static uint8_t slice[65537];
	struct scratch s;
	struct storage_file f;
	char path[1200];
	uint64_t total = 0, check = 0;
	size_t i, n;
	FILE *fp;
	int ch;

	(void)state;
	for (i = 0; i < sizeof(slice); i++)
		slice[i] = (uint8_t)(i * 7 + 3);
	scratch_make(&s);
	assert_int_equal(storage_begin(s.root, owner, "big.bin", &f), 0);
	while (total < 3 * (uint64_t)STORAGE_WRITEBACK_CHUNK + 12345) {
		assert_int_equal(storage_write(&f, slice, sizeof(slice)), 0);
		total += sizeof(slice);
		assert_true(f.written == total);
		assert_true(f.writeback_from <= f.written);
		assert_true(f.written - f.writeback_from < STORAGE_WRITEBACK_CHUNK);
	}
	assert_true(f.writeback_from >= 3 * (uint64_t)STORAGE_WRITEBACK_CHUNK);
	assert_int_equal(storage_commit(&f), 0);
	snprintf(path, sizeof(path), "%s/%s/big.bin", s.root, OWNER_HEX);
	assert_non_null(fp = fopen(path, "rb"));
	for (n = 0; (ch = fgetc(fp)) != EOF; n++, check++)
		if ((uint8_t)ch != slice[n % sizeof(slice)])
			fail_msg("byte %llu differs", (unsigned long long)check);
	fclose(fp);
	assert_true(check == total);
	scratch_remove(&s);
}

static void
test_root_created(void **state)
{
	struct scratch s;
	struct storage_file f;
	char root[256], path[512], buf[16];

	(void)state;
	scratch_make(&s);
	snprintf(root, sizeof(root), "%s/fresh", s.top);
	assert_int_equal(storage_begin(root, owner, "a", &f), 0);
	assert_int_equal(storage_write(&f, "1", 1), 0);
	assert_int_equal(storage_commit(&f), 0);
	snprintf(path, sizeof(path), "%s/%s/a", root, OWNER_HEX);
	assert_int_equal(read_plain_file(path, buf, sizeof(buf)), 1);
	scratch_remove(&s);
}

static void
test_abort(void **state)
{
	struct scratch s;
	struct storage_file f;
	char path[512];

	(void)state;
	scratch_make(&s);
	assert_int_equal(storage_begin(s.root, owner, "partial.bin", &f), 0);
	assert_int_equal(storage_write(&f, "half", 4), 0);
	storage_abort(&f);
	assert_int_equal(f.fd, -1);
	assert_int_equal(f.dir_fd, -1);
	snprintf(path, sizeof(path), "%s/%s", s.root, OWNER_HEX);
	assert_int_equal(count_entries(path), 0);
	storage_abort(&f);  /* a closed file is fine */
	storage_abort(NULL);
	scratch_remove(&s);
}

static void
test_bad_arguments(void **state)
{
	struct scratch s;
	struct storage_file f;

	(void)state;
	scratch_make(&s);
	/* Only an already sanitised single component is accepted. */
	assert_int_equal(storage_begin(s.root, owner, "../x", &f), SD_ERR_INVALID_ARG);
	assert_int_equal(f.fd, -1);
	assert_int_equal(storage_begin(s.root, owner, "a/b", &f), SD_ERR_INVALID_ARG);
	assert_int_equal(storage_begin(s.root, owner, "..", &f), SD_ERR_INVALID_ARG);
	assert_int_equal(storage_begin(s.root, owner, "", &f), SD_ERR_INVALID_ARG);
	assert_int_equal(storage_begin(s.root, owner, NULL, &f), SD_ERR_INVALID_ARG);
	assert_int_equal(count_entries(s.root), 0);
	assert_int_equal(count_entries(s.outside), 0);
	scratch_remove(&s);
}

/* A symlink planted where the client's folder goes: the write fails, nothing escapes. */
static void
test_symlink_folder(void **state)
{
	struct scratch s;
	struct storage_file f;
	char path[512];

	(void)state;
	scratch_make(&s);
	snprintf(path, sizeof(path), "%s/%s", s.root, OWNER_HEX);
	assert_int_equal(symlink(s.outside, path), 0);
	assert_int_equal(storage_begin(s.root, owner, "x.bin", &f), SD_ERR_IO);
	assert_int_equal(f.fd, -1);
	assert_int_equal(f.dir_fd, -1);
	assert_int_equal(count_entries(s.outside), 0);
	scratch_remove(&s);
}

/* A symlink planted at the final name: the commit replaces the link, the target is intact. */
static void
test_symlink_final_name(void **state)
{
	struct scratch s;
	struct storage_file f;
	char path[512], target[512], buf[64];
	struct stat st;

	(void)state;
	scratch_make(&s);
	snprintf(target, sizeof(target), "%s/victim", s.outside);
	write_file(target, "precious");
	snprintf(path, sizeof(path), "%s/%s", s.root, OWNER_HEX);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/%s/x.bin", s.root, OWNER_HEX);
	assert_int_equal(symlink(target, path), 0);

	assert_int_equal(storage_begin(s.root, owner, "x.bin", &f), 0);
	assert_int_equal(storage_write(&f, "upload", 6), 0);
	assert_int_equal(storage_commit(&f), 0);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(read_plain_file(path, buf, sizeof(buf)), 6);
	assert_string_equal(buf, "upload");
	assert_int_equal(read_plain_file(target, buf, sizeof(buf)), 8);
	assert_string_equal(buf, "precious");
	assert_int_equal(count_entries(s.outside), 1);
	scratch_remove(&s);
}

static void
test_remove_stale(void **state)
{
	struct scratch s;
	struct storage_file f;
	char path[1024], dir2[256];

	(void)state;
	scratch_make(&s);
	/* A committed file, a temporary file of an upload in progress (as after a crash). */
	assert_int_equal(storage_begin(s.root, owner, "kept.bin", &f), 0);
	assert_int_equal(storage_write(&f, "k", 1), 0);
	assert_int_equal(storage_commit(&f), 0);
	assert_int_equal(storage_begin(s.root, owner, "lost.bin", &f), 0);
	assert_int_equal(storage_write(&f, "l", 1), 0);
	/* More leftovers in another client's folder, and things that are not ours to remove. */
	snprintf(dir2, sizeof(dir2), "%s/00000000000000000000000000000001", s.root);
	assert_int_equal(mkdir(dir2, 0700), 0);
	snprintf(path, sizeof(path), "%s/" STORAGE_TMP_PREFIX "aaaa", dir2);
	write_file(path, "t");
	snprintf(path, sizeof(path), "%s/" STORAGE_TMP_PREFIX "bbbb", dir2);
	write_file(path, "t");
	snprintf(path, sizeof(path), "%s/sealdrop-part-cccc", dir2);
	write_file(path, "not a temp file");
	snprintf(path, sizeof(path), "%s/" STORAGE_TMP_PREFIX "dir", dir2);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/" STORAGE_TMP_PREFIX "outside", s.outside);
	write_file(path, "t");
	snprintf(path, sizeof(path), "%s/" STORAGE_TMP_PREFIX "link", dir2);
	assert_int_equal(symlink(s.outside, path), 0);
	snprintf(path, sizeof(path), "%s/linked-client", s.root);
	assert_int_equal(symlink(s.outside, path), 0);

	/* The upload in progress holds its temporary file's lock: a server sharing the folder
	 * that starts now leaves it alone. Once its writer is gone (a crash closes the file) it
	 * is stale like the others. */
	assert_int_equal(storage_remove_stale(s.root), 2);
	snprintf(path, sizeof(path), "%s/%s", s.root, OWNER_HEX);
	assert_int_equal(count_entries(path), 2);         /* kept.bin, the live temporary file */
	assert_int_equal(close(f.fd), 0);
	f.fd = -1;
	assert_int_equal(storage_remove_stale(s.root), 1);
	storage_abort(&f);  /* its file went already; abort still closes cleanly */
	assert_int_equal(count_entries(dir2), 3);         /* cccc, the folder, the link */
	assert_int_equal(count_entries(s.outside), 1);    /* untouched */
	snprintf(path, sizeof(path), "%s/%s", s.root, OWNER_HEX);
	assert_int_equal(count_entries(path), 1);         /* kept.bin */
	assert_int_equal(storage_remove_stale(s.root), 0);

	snprintf(path, sizeof(path), "%s/none", s.top);
	assert_int_equal(storage_remove_stale(path), 0);  /* no storage yet */
	scratch_remove(&s);
}

/* A finished upload waiting for its client's verdict (synced, not yet renamed) keeps its
 * lock: another server starting meanwhile leaves it; it stays open and locked through the
 * rename and publishing, until storage_abort(). */
static void
test_finished_stays_locked(void **state)
{
	struct scratch s;
	struct storage_file f;
	char path[1024];

	(void)state;
	scratch_make(&s);
	assert_int_equal(storage_begin(s.root, owner, "wait.bin", &f), 0);
	assert_int_equal(storage_write(&f, "verdict", 7), 0);
	assert_int_equal(storage_finish(&f), 0);
	assert_int_equal(storage_remove_stale(s.root), 0);
	snprintf(path, sizeof(path), "%s/%s", s.root, OWNER_HEX);
	assert_int_equal(count_entries(path), 1);         /* the temporary file, still there */
	assert_int_equal(storage_rename(&f), 0);
	assert_true(f.fd >= 0);                           /* still held while it publishes */
	assert_int_equal(storage_sync_folder(&f), 0);
	storage_abort(&f);
	assert_int_equal(f.fd, -1);
	snprintf(path, sizeof(path), "%s/%s/wait.bin", s.root, OWNER_HEX);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(storage_remove_stale(s.root), 0);
	scratch_remove(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sanitize_table),
		cmocka_unit_test(test_sanitize_long),
		cmocka_unit_test(test_begin_write_commit),
		cmocka_unit_test(test_large_file_writeback),
		cmocka_unit_test(test_root_created),
		cmocka_unit_test(test_abort),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_symlink_folder),
		cmocka_unit_test(test_symlink_final_name),
		cmocka_unit_test(test_remove_stale),
		cmocka_unit_test(test_finished_stays_locked),
	};

	if (crypto_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
