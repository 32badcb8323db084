/* test_client_files.c: the client's file readers and writer (transfer.info, me.info, priv.key)
 * against a table of edge cases and the me.info/priv.key files of the four recorded clients in
 * $SEALDROP_FIXTURES; plus the option parser and the packet plan. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../client/files.h"
#include "../../client/me_info.h"
#include "../../client/options.h"
#include "../../client/session.h"
#include "../../client/transfer.h"
#include "../../protocol/base64.h"
#include "../../protocol/crypto.h"
#include "../../protocol/rsa.h"
#include "../../protocol/err.h"
#include "../../protocol/hex.h"
#include "../../server/handlers.h"
#include "../../server/storage.h"
#include "json_mini.h"
#include "test_util.h"

/* ---- helpers ---- */

/* A whole file, NUL-terminated (free()); NULL on failure. */
static char *
read_all(const char *path, size_t *n)
{
	return (char *)json_read_file(path, n);
}

static void
write_all(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

/* A string member of a run's keys.json, copied into out (cap bytes with the NUL). */
static void
keys_string(const char *path, const char *key, char *out, size_t cap)
{
	struct json *keys = json_load_file(path);
	const struct json *v = json_get(keys, key);

	assert_non_null(keys);
	assert_non_null(json_str(v));
	assert_true(v->slen < cap);
	memcpy(out, v->s, v->slen + 1);
	json_free(keys);
}

static void
spki_hex(const struct rsa_private *k, char *out)
{
	struct rsa_public *pub = NULL;
	uint8_t der[PUBLIC_KEY_SIZE + 16];
	size_t len = 0, i;

	assert_int_equal(rsa_public_from_private(k, &pub), 0);
	assert_int_equal(rsa_public_to_spki(pub, der, sizeof(der), &len), 0);
	assert_int_equal(len, PUBLIC_KEY_SIZE);
	for (i = 0; i < len; i++)
		sprintf(out + 2 * i, "%02x", der[i]);
	rsa_public_free(pub);
}

static char g_tmp[256];

static void
make_tmpdir(void)
{
	snprintf(g_tmp, sizeof(g_tmp), "/tmp/sd-client-files-XXXXXX");
	assert_non_null(mkdtemp(g_tmp));
}

static void
remove_tmpdir(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_tmp);
	assert_int_equal(system(cmd), 0);
}

/* ---- opening the file to upload, writing with fsync ---- */

static void
test_file_open_upload(void **state)
{
	char path[400], name[8], why[WHY_MAX], got[16], folder[64];
	uint64_t size;
	int fd, wfd;

	(void)state;
	make_tmpdir();
	snprintf(path, sizeof(path), "%s/abc", g_tmp);
	assert_int_equal((wfd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0, 1);
	assert_int_equal(file_write_sync(wfd, "hello", 5), 0);
	assert_int_equal(close(wfd), 0);
	assert_int_equal(file_open_upload(path, 7, name, &fd, &size, why, sizeof(why)), 0);
	assert_string_equal(name, "abc");
	assert_int_equal(size, 5);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, got, sizeof(got)), 5);
	assert_memory_equal(got, "hello", 5);
	close(fd);
	/* Trailing slashes are ignored for the name (the open then fails: not a folder). */
	snprintf(path, sizeof(path), "%s/abc//", g_tmp);
	assert_int_equal(file_open_upload(path, 7, name, &fd, &size, why, sizeof(why)), SD_ERR_IO);
	assert_string_equal(name, "abc");
	assert_int_equal(fd, -1);
	/* A name longer than name_max, one with a control character, an empty one. */
	snprintf(path, sizeof(path), "%s/abcdefgh", g_tmp);
	assert_int_equal(file_open_upload(path, 7, name, &fd, &size, why, sizeof(why)),
	    SD_ERR_INVALID_ARG);
	assert_non_null(strstr(why, "empty or longer than 7 bytes"));
	snprintf(path, sizeof(path), "%s/a\tb", g_tmp);
	assert_int_equal(file_open_upload(path, 7, name, &fd, &size, why, sizeof(why)),
	    SD_ERR_INVALID_ARG);
	assert_non_null(strstr(why, "control character"));
	assert_int_equal(file_open_upload("/", 7, name, &fd, &size, why, sizeof(why)),
	    SD_ERR_INVALID_ARG);
	/* A folder and a missing file. */
	assert_int_equal(file_open_upload(g_tmp, sizeof(folder) - 1, folder, &fd, &size, why,
	    sizeof(why)), SD_ERR_IO);
	assert_non_null(strstr(why, "is not a regular file"));
	assert_int_equal(fd, -1);
	snprintf(path, sizeof(path), "%s/none", g_tmp);
	assert_int_equal(file_open_upload(path, 7, name, &fd, &size, why, sizeof(why)), SD_ERR_IO);
	assert_non_null(strstr(why, "cannot open"));
	/* A write to a closed descriptor fails. */
	assert_int_equal(file_write_sync(-1, "x", 1), -1);
	remove_tmpdir();
}

/* ---- transfer.info ---- */

struct ti_case {
	const char *text;
	int ok;
	const char *host, *port, *name, *file;
};

static const char long_name_100[] =
    "aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeeeeeeffffffffffgggggggggghhhhhhhhhh"
    "iiiiiiiiiijjjjjjjjjj";

static void
test_transfer_info_table(void **state)
{
	static char with_100[300], with_101[300];
	const struct ti_case cases[] = {
		{ "127.0.0.1:1256\nAlice Example\nREADME.md\n", 1, "127.0.0.1", "1256",
		  "Alice Example", "README.md" },
		{ "127.0.0.1:1256\r\nAlice\r\nfile.bin\r\n", 1, "127.0.0.1", "1256", "Alice",
		  "file.bin" },
		{ "localhost:80\nBob\n/tmp/x y.bin", 1, "localhost", "80", "Bob", "/tmp/x y.bin" },
		{ "host:65535\nBob\nf\n\n\n", 1, "host", "65535", "Bob", "f" },
		{ "[::1]:1256\nBob\nf\n", 1, "::1", "1256", "Bob", "f" },
		{ "  example.org:01256 \nBob\nf\n", 1, "example.org", "1256", "Bob", "f" },
		{ with_100, 1, "h", "1", long_name_100, "f" },
		{ "", 0, NULL, NULL, NULL, NULL },
		{ "127.0.0.1:1256\n", 0, NULL, NULL, NULL, NULL },
		{ "127.0.0.1:1256\nAlice\n", 0, NULL, NULL, NULL, NULL },
		{ "127.0.0.1:1256\nAlice\n\n", 0, NULL, NULL, NULL, NULL },
		{ "127.0.0.1:1256\n\nfile\n", 0, NULL, NULL, NULL, NULL },
		{ "127.0.0.1\nAlice\nfile\n", 0, NULL, NULL, NULL, NULL },
		{ "127.0.0.1:\nAlice\nfile\n", 0, NULL, NULL, NULL, NULL },
		{ ":1256\nAlice\nfile\n", 0, NULL, NULL, NULL, NULL },
		{ "127.0.0.1:0\nAlice\nfile\n", 0, NULL, NULL, NULL, NULL },
		{ "127.0.0.1:65536\nAlice\nfile\n", 0, NULL, NULL, NULL, NULL },
		{ "127.0.0.1:12ab\nAlice\nfile\n", 0, NULL, NULL, NULL, NULL },
		{ "127.0.0.1:-1\nAlice\nfile\n", 0, NULL, NULL, NULL, NULL },
		{ "::1:1256\nAlice\nfile\n", 0, NULL, NULL, NULL, NULL },
		{ "[::1]1256\nAlice\nfile\n", 0, NULL, NULL, NULL, NULL },
		{ "127.0.0.1:1256\nAl\tice\nfile\n", 0, NULL, NULL, NULL, NULL },
		{ "127.0.0.1:1256\nAlice\nfile\nextra\n", 0, NULL, NULL, NULL, NULL },
		{ with_101, 0, NULL, NULL, NULL, NULL },
		{ "h:1\nc1 \xc2\x85\nf\n", 0, NULL, NULL, NULL, NULL },  /* C1: the server refuses */
		{ "h:1\nLatin-1 \xe9\nf\n", 0, NULL, NULL, NULL, NULL },
		{ "h:1\n\xc3\xa9l\xc3\xa8ve\nf\n", 1, "h", "1", "\xc3\xa9l\xc3\xa8ve", "f" },
	};
	struct transfer_info ti;
	char why[WHY_MAX];
	size_t i;
	int r;

	(void)state;
	snprintf(with_100, sizeof(with_100), "h:1\n%s\nf\n", long_name_100);
	snprintf(with_101, sizeof(with_101), "h:1\n%sx\nf\n", long_name_100);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		why[0] = '\0';
		r = transfer_info_parse(cases[i].text, strlen(cases[i].text), 0, &ti, why,
		    sizeof(why));
		if (cases[i].ok) {
			if (r != 0)
				fail_msg("case %zu should parse: %s", i, why);
			assert_string_equal(ti.host, cases[i].host);
			assert_string_equal(ti.port, cases[i].port);
			assert_string_equal(ti.name, cases[i].name);
			assert_string_equal(ti.file_path, cases[i].file);
		} else {
			if (r == 0)
				fail_msg("case %zu should be refused", i);
			assert_true(r < 0);
			assert_true(strlen(why) > 0);  /* a reason for the message */
		}
	}
}

/* The client refuses exactly the names the server refuses (its own 100-byte limit aside):
 * a table of edge cases, then random strings of bytes chosen around the rule's edges. */
static void
test_names_match_the_server(void **state)
{
	static const char *const names[] = {
		"Alice", "\xc3\xa9l\xc3\xa8ve", "\xc2\xa0", "\xf0\x9f\x98\x80", "", "a\tb", "del\x7f",
		"c1 \xc2\x85", "\xc2\x9f", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xed\xbf\xbf",
		"\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80", "ab\xc3", "\x80", "\xff",
	};
	static const uint8_t pool[] = { 'a', ' ', '/', '\\', '.', 0x01, 0x1f, 0x7f, 0x80, 0x85,
		0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xc3, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff };
	char why[WHY_MAX], s[16], out[NAME_FIELD_SIZE];
	size_t i, k, n;
	int client, server;

	(void)state;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		client = transfer_name_check(names[i], why, sizeof(why)) == 0;
		if (client != handlers_name_valid(names[i]))
			fail_msg("name case %zu: client %d, server %d", i, client, !client);
		if (!client)
			assert_non_null(strstr(why, "the client name "));
	}
	for (i = 0; i < 200000; i++) {
		n = 1 + tu_below(sizeof(s) - 1);
		for (k = 0; k < n - 1; k++)
			s[k] = (char)pool[tu_below(sizeof(pool))];
		s[n - 1] = '\0';
		client = transfer_name_check(s, why, sizeof(why)) == 0;
		server = handlers_name_valid(s);
		if (client != server)
			fail_msg("name %zu: client %d, server %d", i, client, server);
		/* A file without '/' is sent under its own name, so both see the same string. */
		if (memchr(s, '/', n) != NULL)
			continue;
		client = transfer_file_check(s, why, sizeof(why)) == 0;
		server = storage_sanitize_name(s, out) == 0;
		if (client != server)
			fail_msg("file %zu: client %d, server %d", i, client, server);
	}
}

static void
test_file_names(void **state)
{
	char why[WHY_MAX], long_path[400];

	(void)state;
	assert_int_equal(transfer_file_check("dir/report.pdf", why, sizeof(why)), 0);
	assert_int_equal(transfer_file_check("/abs/dir/", why, sizeof(why)), 0);
	assert_int_equal(transfer_file_check("win\\path.bin", why, sizeof(why)), 0);
	assert_int_equal(transfer_file_check("c1 \xc2\x85", why, sizeof(why)), 0);
	assert_int_equal(transfer_file_check("dir/.sealdrop-part-1", why, sizeof(why)),
	    SD_ERR_BAD_STRING);
	assert_non_null(strstr(why, "the server refuses it"));
	assert_non_null(strstr(why, "reserved"));
	assert_int_equal(transfer_file_check("trailing\\", why, sizeof(why)), SD_ERR_BAD_STRING);
	assert_int_equal(transfer_file_check("x/..", why, sizeof(why)), SD_ERR_BAD_STRING);
	assert_int_equal(transfer_file_check("/", why, sizeof(why)), SD_ERR_BAD_STRING);
	assert_int_equal(transfer_file_check("bad\xed\xa0\x80", why, sizeof(why)),
	    SD_ERR_BAD_STRING);
	assert_non_null(strstr(why, "'bad\\xed\\xa0\\x80' is not valid UTF-8"));
	assert_int_equal(transfer_file_check("esc\x1b[2J", why, sizeof(why)), SD_ERR_BAD_STRING);
	assert_null(strchr(why, '\x1b'));  /* the message never carries the control byte */
	memset(long_path, 'f', sizeof(long_path) - 1);
	long_path[sizeof(long_path) - 1] = '\0';
	assert_int_equal(transfer_file_check(long_path, why, sizeof(why)), SD_ERR_BAD_STRING);
	long_path[100] = '/';
	assert_int_equal(transfer_file_check(long_path, why, sizeof(why)), SD_ERR_BAD_STRING);
	long_path[300] = '/';  /* the base after it has 98 bytes */
	assert_int_equal(transfer_file_check(long_path, why, sizeof(why)), 0);
}

static void
test_transfer_info_skip_and_load(void **state)
{
	struct transfer_info ti;
	char why[WHY_MAX], path[300];
	const char *t = "not a server\nBob\n";
	int r;

	(void)state;
	/* Overridden lines are neither checked nor required. */
	assert_int_not_equal(transfer_info_parse(t, strlen(t), 0, &ti, why, sizeof(why)), 0);
	assert_int_equal(transfer_info_parse(t, strlen(t), TRANSFER_SKIP_SERVER | TRANSFER_SKIP_FILE, &ti,
	    why, sizeof(why)), 0);
	assert_string_equal(ti.name, "Bob");

	make_tmpdir();
	snprintf(path, sizeof(path), "%s/transfer.info", g_tmp);
	r = transfer_info_load(path, 0, &ti, why, sizeof(why));
	assert_int_equal(r, SD_ERR_NOT_FOUND);
	write_all(path, "h:9\nN\nf\n", 8);
	assert_int_equal(transfer_info_load(path, 0, &ti, why, sizeof(why)), 0);
	assert_string_equal(ti.port, "9");
	remove_tmpdir();
}

/* ---- me.info and priv.key of the recorded clients ---- */

static const char *clients[] = { "client-fixed1024-from0", "client-fixed1024-from1",
	"client-var8192-from1", "client-perpacket-swapped" };
static const char *runs[] = { "first-run-3000", "first-run-20000", "second-run-3000",
	"second-run-20000" };

static void
check_loaded(const struct me_info *mi, const char *id_hex, const char *spki)
{
	char hex[2 * CLIENT_ID_SIZE + 1], got[2 * PUBLIC_KEY_SIZE + 1];

	assert_string_equal(mi->name, "Fixture Tester");
	hex_encode(mi->id, CLIENT_ID_SIZE, hex);
	assert_string_equal(hex, id_hex);
	assert_non_null(mi->key);
	spki_hex(mi->key, got);
	assert_string_equal(got, spki);
}

static void
test_fixture_me_info(void **state)
{
	const char *fx = json_fixtures_dir();
	char dir[512], path[600], mepath[600], privpath[600];
	char id_hex[64], spki[2 * PUBLIC_KEY_SIZE + 8], got[2 * PUBLIC_KEY_SIZE + 8], why[WHY_MAX];
	char *me, *priv;
	size_t men, privn, i, j, checked = 0, raw_der = 0, nul_padded = 0;
	struct me_info mi;
	struct rsa_private *k = NULL;
	const char *third;

	(void)state;
	if (fx == NULL || *fx == '\0')
		skip();
	for (i = 0; i < 4; i++) {
		for (j = 0; j < 4; j++) {
			snprintf(dir, sizeof(dir), "%s/clients/%s/%s", fx, clients[i], runs[j]);
			snprintf(path, sizeof(path), "%s/keys.json", dir);
			keys_string(path, "client_id", id_hex, sizeof(id_hex));
			keys_string(path, "public_key_spki", spki, sizeof(spki));
			snprintf(mepath, sizeof(mepath), "%s/me.info", dir);
			snprintf(privpath, sizeof(privpath), "%s/priv.key", dir);

			/* me.info with its own (wrapped) key lines. */
			assert_int_equal(me_info_load(mepath, privpath, &mi, why, sizeof(why)), 0);
			assert_int_equal(mi.key_from_priv_key, 0);
			check_loaded(&mi, id_hex, spki);
			me_info_clear(&mi);

			/* priv.key alone: base64 or raw DER. */
			priv = read_all(privpath, &privn);
			assert_non_null(priv);
			if (privn > 0 && (uint8_t)priv[0] == 0x30)
				raw_der++;
			assert_int_equal(me_info_parse_key((const uint8_t *)priv, privn, &k, why,
			    sizeof(why)), 0);
			spki_hex(k, got);
			assert_string_equal(got, spki);
			rsa_private_free(k);
			k = NULL;

			/* me.info cut after line 2: the key then comes from priv.key. */
			me = read_all(mepath, &men);
			assert_non_null(me);
			if (memchr(me, '\0', men) != NULL)
				nul_padded++;
			third = memchr(me, '\n', men);
			assert_non_null(third);
			third = memchr(third + 1, '\n', men - (size_t)(third + 1 - me));
			assert_non_null(third);
			assert_int_equal(me_info_parse(me, (size_t)(third + 1 - me),
			    (const uint8_t *)priv, privn, &mi, why, sizeof(why)), 0);
			assert_int_equal(mi.key_from_priv_key, 1);
			check_loaded(&mi, id_hex, spki);
			me_info_clear(&mi);
			/* ... and without priv.key it is refused. */
			assert_int_not_equal(me_info_parse(me, (size_t)(third + 1 - me), NULL, 0,
			    &mi, why, sizeof(why)), 0);
			assert_null(mi.key);
			free(me);
			free(priv);
			checked++;
		}
	}
	assert_int_equal(checked, 16);
	assert_int_equal(raw_der, 4);      /* client-perpacket-swapped writes raw DER */
	assert_int_equal(nul_padded, 4);   /* client-var8192-from1 pads its name line */
}

static void
test_priv_key_only_me_info_on_disk(void **state)
{
	const char *fx = json_fixtures_dir();
	char src[600], dst[600], privdst[600], why[WHY_MAX], id_hex[64], spki[400];
	char *me, *priv;
	size_t men, privn;
	const char *cut;
	struct me_info mi;

	(void)state;
	if (fx == NULL || *fx == '\0')
		skip();
	/* The raw-DER client: me.info reduced to two lines makes the loader read priv.key. */
	snprintf(src, sizeof(src), "%s/clients/client-perpacket-swapped/first-run-3000/me.info",
	    fx);
	me = read_all(src, &men);
	assert_non_null(me);
	snprintf(src, sizeof(src), "%s/clients/client-perpacket-swapped/first-run-3000/priv.key",
	    fx);
	priv = read_all(src, &privn);
	assert_non_null(priv);
	snprintf(src, sizeof(src), "%s/clients/client-perpacket-swapped/first-run-3000/keys.json",
	    fx);
	keys_string(src, "client_id", id_hex, sizeof(id_hex));
	keys_string(src, "public_key_spki", spki, sizeof(spki));
	make_tmpdir();
	cut = strchr(strchr(me, '\n') + 1, '\n') + 1;
	snprintf(dst, sizeof(dst), "%s/me.info", g_tmp);
	snprintf(privdst, sizeof(privdst), "%s/priv.key", g_tmp);
	write_all(dst, me, (size_t)(cut - me));
	assert_int_not_equal(me_info_load(dst, privdst, &mi, why, sizeof(why)), 0);
	write_all(privdst, priv, privn);
	assert_int_equal(me_info_load(dst, privdst, &mi, why, sizeof(why)), 0);
	assert_int_equal(mi.key_from_priv_key, 1);
	check_loaded(&mi, id_hex, spki);
	me_info_clear(&mi);
	remove_tmpdir();
	free(me);
	free(priv);
}

/* ---- the writer ---- */

static void
test_me_info_round_trip(void **state)
{
	static const uint8_t id[CLIENT_ID_SIZE] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
		0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff };
	struct rsa_private *k = NULL;
	struct me_info mi;
	struct stat st;
	char me[300], priv[300], why[WHY_MAX], a[400], b[400];
	char *text, *line3;
	size_t n;

	(void)state;
	make_tmpdir();
	snprintf(me, sizeof(me), "%s/me.info", g_tmp);
	snprintf(priv, sizeof(priv), "%s/priv.key", g_tmp);
	assert_int_equal(rsa_generate(&k), 0);
	assert_int_equal(me_info_write(me, priv, "Round Trip", id, k, why, sizeof(why)), 0);
	assert_int_equal(stat(me, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(priv, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* The format of SPEC.md 8: name, lower-case hex ID, one line of base64. */
	text = read_all(me, &n);
	assert_non_null(text);
	assert_memory_equal(text, "Round Trip\n00112233445566778899aabbccddeeff\n", 44);
	line3 = text + 44;
	assert_non_null(strchr(line3, '\n'));
	assert_int_equal(strchr(line3, '\n') - text + 1, (long)n);  /* exactly three lines */
	free(text);
	text = read_all(priv, &n);
	assert_non_null(text);
	assert_true(n > 0 && text[n - 1] == '\n');
	free(text);

	assert_int_equal(me_info_load(me, priv, &mi, why, sizeof(why)), 0);
	assert_string_equal(mi.name, "Round Trip");
	assert_memory_equal(mi.id, id, CLIENT_ID_SIZE);
	spki_hex(k, a);
	spki_hex(mi.key, b);
	assert_string_equal(a, b);
	me_info_clear(&mi);
	me_info_clear(NULL);

	/* No temporary files are left behind: just the two files. */
	{
		char cmd[400];
		snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 2", g_tmp);
		assert_int_equal(system(cmd), 0);
	}
	rsa_private_free(k);
	remove_tmpdir();
}

static void
test_broken_me_info(void **state)
{
	static const uint8_t id[CLIENT_ID_SIZE] = { 1 };
	const char *broken[] = {
		"",
		"Name only\n",
		"Name\nnot-hex-at-all-not-hex-at-all-xx\nAAAA\n",
		"Name\n0011\nAAAA\n",
		"Name\n00112233445566778899aabbccddeeff\n@@@ not base64 @@@\n",
		"Name\n00112233445566778899aabbccddeeff\nAAAAAAAA\n",  /* base64, not a key */
		"\nabc\n",
	};
	struct rsa_private *k = NULL;
	struct me_info mi;
	char me[300], priv[300], why[WHY_MAX];
	char *before, *after;
	size_t i, bn, an;

	(void)state;
	make_tmpdir();
	snprintf(me, sizeof(me), "%s/me.info", g_tmp);
	snprintf(priv, sizeof(priv), "%s/priv.key", g_tmp);
	for (i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
		write_all(me, broken[i], strlen(broken[i]));
		why[0] = '\0';
		assert_int_not_equal(me_info_load(me, priv, &mi, why, sizeof(why)), 0);
		assert_null(mi.key);
		assert_true(strlen(why) > 0);
		/* Refusing it leaves it as it was. */
		after = read_all(me, &an);
		assert_non_null(after);
		assert_int_equal(an, strlen(broken[i]));
		assert_memory_equal(after, broken[i], an);
		free(after);
	}

	/* A valid me.info is not replaced when a write cannot complete. */
	assert_int_equal(rsa_generate(&k), 0);
	assert_int_equal(me_info_write(me, priv, "Valid", id, k, why, sizeof(why)), 0);
	before = read_all(me, &bn);
	assert_int_not_equal(me_info_write(me, priv, "two\nlines", id, k, why, sizeof(why)), 0);
	assert_int_not_equal(me_info_write(me, priv, "", id, k, why, sizeof(why)), 0);
	{
		char bad[600];
		snprintf(bad, sizeof(bad), "%s/no-such-folder/me.info", g_tmp);
		assert_int_not_equal(me_info_write(bad, NULL, "Valid", id, k, why, sizeof(why)),
		    0);
	}
	after = read_all(me, &an);
	assert_int_equal(an, bn);
	assert_memory_equal(after, before, an);
	free(before);
	free(after);

	/* Upper-case hex, CRLF and a NUL-padded name line are read. */
	{
		char text[2000], *b64 = NULL;
		uint8_t *der = NULL;
		size_t der_len = 0, b64_len = 0, len;
		assert_int_equal(rsa_private_to_pkcs8(k, &der, &der_len), 0);
		assert_int_equal(base64_encode(der, der_len, &b64, &b64_len), 0);
		memset(text, 0, sizeof(text));
		memcpy(text, "Padded", 6);
		len = 255;
		len += (size_t)snprintf(text + len, sizeof(text) - len,
		    "\r\n00112233445566778899AABBCCDDEEFF\r\n%s\r\n", b64);
		assert_int_equal(me_info_parse(text, len, NULL, 0, &mi, why, sizeof(why)), 0);
		assert_string_equal(mi.name, "Padded");
		assert_int_equal(mi.id[15], 0xff);
		me_info_clear(&mi);
		crypto_free_secret(der, der_len);
		crypto_free_secret(b64, b64_len + 1);
	}
	rsa_private_free(k);
	remove_tmpdir();
}

/* ---- options and the packet plan ---- */

static int
parse(struct client_options *o, const char *a1, const char *a2, const char *a3)
{
	char *argv[5] = { (char *)"sealdrop-client", (char *)a1, (char *)a2, (char *)a3, NULL };
	char why[WHY_MAX];
	int argc = 1 + (a1 != NULL) + (a2 != NULL) + (a3 != NULL);

	return options_parse(argc, argv, o, why, sizeof(why));
}

static void
test_options(void **state)
{
	struct client_options o;

	(void)state;
	assert_int_equal(parse(&o, NULL, NULL, NULL), 0);
	assert_string_equal(o.transfer, "transfer.info");
	assert_int_equal(o.packet_size, DEFAULT_PACKET_SIZE);
	assert_int_equal(o.first_packet, 1);
	assert_int_equal(o.timeout_ms, DEFAULT_TIMEOUT_MS);
	assert_int_equal(parse(&o, "--packet-size", "1024", "--pad-last-packet"), 0);
	assert_int_equal(o.packet_size, 1024);
	assert_true(o.packet_size_set && o.pad_last_packet);
	assert_int_equal(parse(&o, "--first-packet", "0", NULL), 0);
	assert_int_equal(o.first_packet, 0);
	assert_int_equal(parse(&o, "--timeout", "0.5", "-q"), 0);
	assert_int_equal(o.timeout_ms, 500);
	assert_int_equal(parse(&o, "-C", "/tmp", "--verbose"), 0);
	assert_string_equal(o.dir, "/tmp");
	assert_int_not_equal(parse(&o, "--first-packet", "2", NULL), 0);
	assert_int_not_equal(parse(&o, "--packet-size", "0", NULL), 0);
	assert_int_not_equal(parse(&o, "--packet-size", "12x", NULL), 0);
	assert_int_not_equal(parse(&o, "--timeout", "-1", NULL), 0);
	assert_int_not_equal(parse(&o, "--bogus", NULL, NULL), 0);
	assert_int_not_equal(parse(&o, "stray", NULL, NULL), 0);
	assert_int_not_equal(parse(&o, "--timeout", NULL, NULL), 0);
	assert_int_not_equal(parse(&o, "--single-packet", "--per-packet-encryption", NULL), 0);
	assert_int_not_equal(parse(&o, "--quiet", "--verbose", NULL), 0);
}

static void
test_plan(void **state)
{
	struct session_config c;
	uint32_t ps, n;
	uint64_t cs;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.packet_size = 1024;
	c.packet_size_fixed = 1;
	/* One CBC stream: 3000 bytes -> 3008 of ciphertext -> 3 packets of 1024. */
	assert_int_equal(session_plan(&c, 3000, &ps, &n, &cs), 0);
	assert_int_equal(ps, 1024);
	assert_int_equal(n, 3);
	assert_int_equal(cs, 3008);
	/* 1008 of ciphertext fits one packet; 1024 plaintext gives 1040: two. */
	assert_int_equal(session_plan(&c, 1000, &ps, &n, &cs), 0);
	assert_int_equal(n, 1);
	assert_int_equal(session_plan(&c, 1024, &ps, &n, &cs), 0);
	assert_int_equal(n, 2);
	assert_int_equal(session_plan(&c, 0, &ps, &n, &cs), 0);
	assert_int_equal(n, 1);
	assert_int_equal(cs, 16);
	/* Per packet: plaintext chunks, 20000 bytes -> 20 packets (as the recorded client). */
	c.per_packet = 1;
	assert_int_equal(session_plan(&c, 20000, &ps, &n, &cs), 0);
	assert_int_equal(n, 20);
	assert_int_equal(session_plan(&c, 0, &ps, &n, &cs), 0);
	assert_int_equal(n, 1);
	c.per_packet = 0;
	/* Single packet. */
	c.single_packet = 1;
	assert_int_equal(session_plan(&c, 20000, &ps, &n, &cs), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ps, 20016);
	c.single_packet = 0;
	/* Too many packets for the u16: refused when fixed, enlarged when not. */
	assert_int_equal(session_plan(&c, 1024ull * 70000, &ps, &n, &cs), SD_ERR_TOO_LARGE);
	c.packet_size_fixed = 0;
	assert_int_equal(session_plan(&c, 1024ull * 70000, &ps, &n, &cs), 0);
	assert_true(n <= 65535);
	assert_true((uint64_t)ps * n >= cs);
	assert_int_equal(ps % 16, 0);
	/* The u32 sizes: 4 GiB - 1 plaintext needs more than 32 bits of ciphertext. */
	assert_int_equal(session_plan(&c, 0xFFFFFFFFull, &ps, &n, &cs), SD_ERR_TOO_LARGE);
	assert_int_equal(session_plan(&c, 0xFFFFFFEFull, &ps, &n, &cs), 0);
	assert_int_equal(cs, 0xFFFFFFF0ull);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transfer_info_table),
		cmocka_unit_test(test_file_open_upload),
		cmocka_unit_test(test_names_match_the_server),
		cmocka_unit_test(test_file_names),
		cmocka_unit_test(test_transfer_info_skip_and_load),
		cmocka_unit_test(test_fixture_me_info),
		cmocka_unit_test(test_priv_key_only_me_info_on_disk),
		cmocka_unit_test(test_me_info_round_trip),
		cmocka_unit_test(test_broken_me_info),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_plan),
	};

	if (crypto_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
