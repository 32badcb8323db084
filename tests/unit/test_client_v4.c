/* test_client_v4.c: the client's version-4 pieces that need no server: known_servers
 * (fingerprint form, parsing, lookup verdicts, append), me.key (round trip, mode, a broken file
 * never replaces a good one), and the version-4 options and commands (the payloads are
 * protocol/msg4's, tested in test_msg4). */
#include <dirent.h>
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
#include "../../client/identity.h"
#include "../../client/known_servers.h"
#include "../../client/options.h"
#include "../../protocol/crypto.h"
#include "../../protocol/err.h"
#include "../../protocol/tls.h"

#define FP_A "SHA256:P2OAJWIEYywDd744hZ+rifuBvmgs5hT1mQfzb+djZ34"
#define FP_B "SHA256:zQKO5rbXRPZTv3f1EQh7yhtRClD4l1aow9oMf6q3rKc"

static char tmp_dir[256];

static void
make_tmpdir(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmp_dir, sizeof(tmp_dir), "%s/sdv4-XXXXXX", t != NULL && *t ? t : "/tmp");
	assert_non_null(mkdtemp(tmp_dir));
}

static void
in_tmp(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", tmp_dir, name);
}

static void
remove_tmp(const char *name)
{
	char p[512];

	in_tmp(p, sizeof(p), name);
	unlink(p);
}

/* Entries in tmp_dir other than . and .. */
static int
count_tmp_entries(void)
{
	struct dirent *e;
	DIR *d;
	int n = 0;

	assert_non_null(d = opendir(tmp_dir));
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static char *
slurp(const char *path, size_t *n)
{
	char *text = NULL;

	assert_int_equal(file_read_small(path, 1u << 20, &text, n), 0);
	return text;
}

static void
spit(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

/* ---- fingerprints and known_servers ---- */

static void
test_fingerprint_form(void **state)
{
	(void)state;
	assert_int_equal(fingerprint_check(FP_A), 0);
	assert_int_equal(fingerprint_check(FP_B), 0);
	/* Ours and the library's agree. */
	assert_true(tls_fingerprint_valid(FP_A));
	assert_int_not_equal(fingerprint_check("SHA256:"), 0);
	assert_int_not_equal(fingerprint_check("sha256:P2OAJWIEYywDd744hZ+rifuBvmgs5hT1mQfzb+djZ34"), 0);
	assert_int_not_equal(fingerprint_check(FP_A "A"), 0);
	/* 'Z' ends in stray bits: no SHA-256 gives it as the 43rd character. */
	assert_int_not_equal(fingerprint_check("SHA256:P2OAJWIEYywDd744hZ+rifuBvmgs5hT1mQfzb+djZ3Z"), 0);
	assert_int_not_equal(fingerprint_check("SHA256:P2OAJWIEYywDd744hZ+rifuBvmgs5hT1mQfzb+djZ3="), 0);
	assert_int_not_equal(fingerprint_check("SHA256:P2OAJWIEYywDd744hZ-rifuBvmgs5hT1mQfzb+djZ34"), 0);
	assert_int_equal(fingerprint_check(NULL), SD_ERR_INVALID_ARG);
}

static void
test_known_servers_key(void **state)
{
	char k[SERVER_KEY_TEXT_MAX + 1];

	(void)state;
	assert_int_equal(known_servers_key("example.org", "1256", k, sizeof(k)), 0);
	assert_string_equal(k, "example.org:1256");
	assert_int_equal(known_servers_key("::1", "1256", k, sizeof(k)), 0);
	assert_string_equal(k, "[::1]:1256");
	assert_int_equal(known_servers_key("example.org", "1256", k, 8), SD_ERR_TOO_LARGE);
}

static void
test_known_servers_parse(void **state)
{
	const char *text =
	    "# comment\r\n"
	    "\n"
	    "example.org:1256 " FP_A "\r\n"
	    "  [::1]:1256\t" FP_B "  \n"
	    "Example.ORG:1256 " FP_B "\n"
	    "other:1 " FP_A;  /* no final newline */
	struct known_result kr;
	char why[WHY_MAX];

	(void)state;
	/* A match anywhere wins; the first line of the server is what a mismatch names. */
	assert_int_equal(known_servers_parse(text, strlen(text), "example.org:1256", FP_A, &kr,
	    why, sizeof(why)), 0);
	assert_int_equal(kr.verdict, KNOWN_MATCH);
	assert_int_equal(kr.line, 3);
	assert_int_equal(known_servers_parse(text, strlen(text), "example.org:1256", FP_B, &kr,
	    why, sizeof(why)), 0);
	assert_int_equal(kr.verdict, KNOWN_MATCH);
	assert_int_equal(kr.line, 5);
	assert_int_equal(known_servers_parse(text, strlen(text), "[::1]:1256", FP_A, &kr, why,
	    sizeof(why)), 0);
	assert_int_equal(kr.verdict, KNOWN_MISMATCH);
	assert_int_equal(kr.line, 4);
	assert_string_equal(kr.fingerprint, FP_B);
	assert_int_equal(known_servers_parse(text, strlen(text), "other:1", NULL, &kr, why,
	    sizeof(why)), 0);
	assert_int_equal(kr.verdict, KNOWN_MISMATCH);
	assert_string_equal(kr.fingerprint, FP_A);
	/* Ports are exact: other:12 is a different server. */
	assert_int_equal(known_servers_parse(text, strlen(text), "other:12", FP_A, &kr, why,
	    sizeof(why)), 0);
	assert_int_equal(kr.verdict, KNOWN_NONE);
	assert_int_equal(known_servers_parse("", 0, "x:1", FP_A, &kr, why, sizeof(why)), 0);
	assert_int_equal(kr.verdict, KNOWN_NONE);
}

static void
test_known_servers_malformed(void **state)
{
	static const char *bad[] = {
		"example.org:1256\n",
		"example.org:1256 SHA256:abc\n",
		"example.org:1256 " FP_A " extra\n",
		" " FP_A "\n",
		"example.org:1256 md5:" FP_A "\n",
	};
	struct known_result kr;
	char why[WHY_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		assert_int_equal(known_servers_parse(bad[i], strlen(bad[i]), "example.org:1256",
		    FP_A, &kr, why, sizeof(why)), SD_ERR_BAD_FIELD);
		assert_non_null(strstr(why, "line 1"));
	}
	/* A NUL inside a line is not text. */
	assert_int_equal(known_servers_parse("a:1 \0x\n", 7, "a:1", FP_A, &kr, why, sizeof(why)),
	    SD_ERR_BAD_FIELD);
}

static void
test_known_servers_file(void **state)
{
	struct known_result kr;
	char path[512], old_path[512], why[WHY_MAX];
	char *text;
	size_t n;

	(void)state;
	make_tmpdir();
	in_tmp(path, sizeof(path), "known_servers");
	/* Missing file: nothing known. */
	assert_int_equal(known_servers_lookup(path, "a:1", FP_A, &kr, why, sizeof(why)), 0);
	assert_int_equal(kr.verdict, KNOWN_NONE);
	assert_int_equal(known_servers_append(path, "a:1", FP_A, why, sizeof(why)), 0);
	assert_int_equal(known_servers_lookup(path, "a:1", FP_A, &kr, why, sizeof(why)), 0);
	assert_int_equal(kr.verdict, KNOWN_MATCH);
	assert_int_equal(known_servers_lookup(path, "a:1", FP_B, &kr, why, sizeof(why)), 0);
	assert_int_equal(kr.verdict, KNOWN_MISMATCH);
	assert_string_equal(kr.fingerprint, FP_A);
	/* A file without a final newline gets one before the appended line. */
	spit(path, "# mine\nb:2 " FP_B);
	assert_int_equal(known_servers_append(path, "a:1", FP_A, why, sizeof(why)), 0);
	text = slurp(path, &n);
	assert_string_equal(text, "# mine\nb:2 " FP_B "\na:1 " FP_A "\n");
	file_free_small(text, n);
	/* The old file is never changed in place (a crash in the middle would leave a torn
	 * line): a new one replaces it whole, and no temporary file stays behind. */
	in_tmp(old_path, sizeof(old_path), "known_servers.old");
	assert_int_equal(link(path, old_path), 0);
	assert_int_equal(known_servers_append(path, "c:3", FP_B, why, sizeof(why)), 0);
	text = slurp(old_path, &n);
	assert_string_equal(text, "# mine\nb:2 " FP_B "\na:1 " FP_A "\n");
	file_free_small(text, n);
	text = slurp(path, &n);
	assert_string_equal(text, "# mine\nb:2 " FP_B "\na:1 " FP_A "\nc:3 " FP_B "\n");
	file_free_small(text, n);
	assert_int_equal(count_tmp_entries(), 2);
	remove_tmp("known_servers.old");
	spit(path, "# mine\nb:2 " FP_B "\na:1 " FP_A "\n");
	/* Refused input is never written. */
	assert_int_equal(known_servers_append(path, "a b:1", FP_A, why, sizeof(why)),
	    SD_ERR_INVALID_ARG);
	assert_int_equal(known_servers_append(path, "a:1", "SHA256:x", why, sizeof(why)),
	    SD_ERR_INVALID_ARG);
	text = slurp(path, &n);
	assert_int_equal(n, strlen("# mine\nb:2 " FP_B "\na:1 " FP_A "\n"));
	file_free_small(text, n);
	/* A malformed file is an error with its name, not "unknown". */
	spit(path, "a:1 nonsense\n");
	assert_int_equal(known_servers_lookup(path, "a:1", FP_A, &kr, why, sizeof(why)),
	    SD_ERR_BAD_FIELD);
	assert_non_null(strstr(why, "known_servers"));
	remove_tmp("known_servers");
	rmdir(tmp_dir);
}

/* ---- me.key ---- */

static void
test_me_key_round_trip(void **state)
{
	struct tls_identity *id = NULL, *back = NULL;
	char path[512], why[WHY_MAX], fa[TLS_FP_TEXT_SIZE], fb[TLS_FP_TEXT_SIZE];
	struct stat st;
	char *text;
	size_t n;

	(void)state;
	make_tmpdir();
	in_tmp(path, sizeof(path), "me.key");
	assert_int_equal(identity_load(path, &back, why, sizeof(why)), SD_ERR_NOT_FOUND);
	assert_null(back);
	assert_int_equal(identity_generate("Alice \x01 Example", &id, why, sizeof(why)), 0);
	assert_int_equal(identity_save(path, id, why, sizeof(why)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	text = slurp(path, &n);
	/* PKCS#8 key first, then the certificate. */
	assert_non_null(strstr(text, "-----BEGIN PRIVATE KEY-----"));
	assert_non_null(strstr(text, "-----BEGIN CERTIFICATE-----"));
	assert_true(strstr(text, "PRIVATE KEY") < strstr(text, "CERTIFICATE"));
	file_free_small(text, n);
	assert_int_equal(identity_load(path, &back, why, sizeof(why)), 0);
	assert_int_equal(tls_identity_fingerprint(id, fa), 0);
	assert_int_equal(tls_identity_fingerprint(back, fb), 0);
	assert_string_equal(fa, fb);
	assert_int_equal(fingerprint_check(fa), 0);
	tls_identity_free(back);
	back = NULL;

	/* A broken me.key is reported, and left as it is. */
	spit(path, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
	assert_int_equal(identity_load(path, &back, why, sizeof(why)), SD_ERR_BAD_KEY);
	assert_null(back);
	assert_non_null(strstr(why, "me.key"));
	/* Saving over it replaces it whole, through a temporary file. */
	assert_int_equal(identity_save(path, id, why, sizeof(why)), 0);
	assert_int_equal(identity_load(path, &back, why, sizeof(why)), 0);
	assert_int_equal(tls_identity_fingerprint(back, fb), 0);
	assert_string_equal(fa, fb);
	tls_identity_free(back);
	/* A save that cannot write leaves nothing behind and the old file intact. */
	assert_int_not_equal(identity_save("/nonexistent-dir/me.key", id, why, sizeof(why)), 0);
	tls_identity_free(id);
	remove_tmp("me.key");
	rmdir(tmp_dir);
}

/* ---- options ---- */

static int
parse(struct client_options *o, int argc, const char **args)
{
	char *argv[12];
	char why[WHY_MAX];
	int i;

	argv[0] = (char *)"sealdrop-client";
	for (i = 0; i < argc && i < 10; i++)
		argv[i + 1] = (char *)args[i];
	argv[argc + 1] = NULL;
	return options_parse(argc + 1, argv, o, why, sizeof(why));
}

#define PARSE(o, ...) parse((o), (int)(sizeof((const char *[]){ __VA_ARGS__ }) / \
    sizeof(const char *)), (const char *[]){ __VA_ARGS__ })

static void
test_options_v4(void **state)
{
	struct client_options o;

	(void)state;
	assert_int_equal(parse(&o, 0, NULL), 0);
	assert_int_equal(o.command, CMD_SEND);
	assert_null(o.arg);
	assert_int_equal(o.protocol, PROTO_AUTO);
	assert_int_equal(o.compress, COMPRESS_AUTO);
	assert_int_equal(o.retries, DEFAULT_RETRIES);
	assert_null(o.server_key);

	assert_int_equal(PARSE(&o, "send", "a.bin", "--protocol", "4"), 0);
	assert_int_equal(o.command, CMD_SEND);
	assert_string_equal(o.arg, "a.bin");
	assert_int_equal(o.protocol, PROTO_V4);
	assert_int_equal(PARSE(&o, "--protocol", "3", "send"), 0);
	assert_int_equal(o.protocol, PROTO_V3);
	assert_int_equal(PARSE(&o, "list", "--json"), 0);
	assert_int_equal(o.command, CMD_LIST);
	assert_true(o.json);
	/* Options may follow the command and its name. */
	assert_int_equal(PARSE(&o, "get", "report.pdf", "-o", "/tmp/r.pdf", "--retries", "0"), 0);
	assert_int_equal(o.command, CMD_GET);
	assert_string_equal(o.arg, "report.pdf");
	assert_string_equal(o.output, "/tmp/r.pdf");
	assert_int_equal(o.retries, 0);
	assert_int_equal(PARSE(&o, "rm", "x", "--server-key", FP_A, "--compress", "no"), 0);
	assert_int_equal(o.command, CMD_RM);
	assert_string_equal(o.server_key, FP_A);
	assert_int_equal(o.compress, COMPRESS_NO);
	assert_int_equal(PARSE(&o, "--compress", "yes"), 0);
	assert_int_equal(o.compress, COMPRESS_YES);

	assert_int_not_equal(PARSE(&o, "--protocol", "5"), 0);
	assert_int_not_equal(PARSE(&o, "--compress", "maybe"), 0);
	assert_int_not_equal(PARSE(&o, "--server-key", "SHA256:abc"), 0);
	assert_int_not_equal(PARSE(&o, "--retries", "-1"), 0);
	assert_int_not_equal(PARSE(&o, "--retries", "1001"), 0);
	assert_int_not_equal(PARSE(&o, "get"), 0);
	assert_int_not_equal(PARSE(&o, "get", ""), 0);
	assert_int_not_equal(PARSE(&o, "rm", "a", "b"), 0);
	assert_int_not_equal(PARSE(&o, "list", "x"), 0);
	assert_int_not_equal(PARSE(&o, "send", "a", "b"), 0);
	assert_int_not_equal(PARSE(&o, "frobnicate"), 0);
	assert_int_not_equal(PARSE(&o, "list", "-o", "x"), 0);
	assert_int_not_equal(PARSE(&o, "get", "x", "--json"), 0);
	assert_int_not_equal(PARSE(&o, "list", "--protocol", "3"), 0);
	assert_int_not_equal(PARSE(&o, "send", "a", "--file", "b"), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fingerprint_form),
		cmocka_unit_test(test_known_servers_key),
		cmocka_unit_test(test_known_servers_parse),
		cmocka_unit_test(test_known_servers_malformed),
		cmocka_unit_test(test_known_servers_file),
		cmocka_unit_test(test_me_key_round_trip),
		cmocka_unit_test(test_options_v4),
	};

	if (crypto_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
