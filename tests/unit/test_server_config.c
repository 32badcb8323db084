/* test_server_config.c: the server's small pure parts: port.info and number parsing, the
 * client-name rule of SPEC.md 6 (printable UTF-8, no control characters) and the sanitising of
 * wire text before it reaches the log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../protocol/err.h"
#include "../../server/config.h"
#include "../../server/handlers.h"
#include "../../server/log.h"

static char port_path[64];

static int
setup_port_file(void **state)
{
	int fd;

	(void)state;
	snprintf(port_path, sizeof(port_path), "/tmp/sd-port-XXXXXX");
	fd = mkstemp(port_path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int
teardown_port_file(void **state)
{
	(void)state;
	unlink(port_path);
	return 0;
}

static void
write_port_file(const char *text, size_t n)
{
	FILE *f = fopen(port_path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, n, f), n);
	fclose(f);
}

static int
read_port(const char *text, uint16_t *port)
{
	write_port_file(text, strlen(text));
	*port = 4242;
	return config_read_port_file(port_path, port);
}

static void
test_port_file_valid(void **state)
{
	uint16_t port;

	(void)state;
	assert_int_equal(read_port("1234", &port), 0);
	assert_int_equal(port, 1234);
	assert_int_equal(read_port("8080\n", &port), 0);
	assert_int_equal(port, 8080);
	assert_int_equal(read_port("  \t65535 \r\n", &port), 0);
	assert_int_equal(port, 65535);
	assert_int_equal(read_port("1", &port), 0);
	assert_int_equal(port, 1);
}

static void
test_port_file_invalid(void **state)
{
	static const char *bad[] = {
		"", "\n", "0", "65536", "70000", "-5", "+5", "abc", "12 34", "12abc", "0x50",
		"99999999999999999999999999", "1.5",
	};
	char longtext[200];
	uint16_t port;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(read_port(bad[i], &port), SD_ERR_BAD_FIELD);
		assert_int_equal(port, 4242);  /* untouched on failure */
	}
	memset(longtext, ' ', sizeof(longtext) - 1);
	longtext[sizeof(longtext) - 1] = '\0';
	longtext[150] = '7';
	assert_int_equal(read_port(longtext, &port), SD_ERR_BAD_FIELD);
	write_port_file("12\0" "34", 5);
	assert_int_equal(config_read_port_file(port_path, &port), SD_ERR_BAD_FIELD);
	unlink(port_path);
	assert_int_equal(config_read_port_file(port_path, &port), SD_ERR_NOT_FOUND);
	assert_int_equal(port, 4242);
}

static void
test_parse_u64(void **state)
{
	uint64_t v = 7;

	(void)state;
	assert_int_equal(config_parse_u64("0", 0, 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(config_parse_u64("10", 0, 10, &v), 0);
	assert_int_equal(v, 10);
	assert_int_equal(config_parse_u64("4294967295", 0, 4294967295ull, &v), 0);
	assert_true(v == 4294967295ull);
	v = 7;
	assert_int_equal(config_parse_u64("11", 0, 10, &v), SD_ERR_BAD_FIELD);
	assert_int_equal(config_parse_u64("0", 1, 10, &v), SD_ERR_BAD_FIELD);
	assert_int_equal(config_parse_u64("", 0, 10, &v), SD_ERR_BAD_FIELD);
	assert_int_equal(config_parse_u64(" 1", 0, 10, &v), SD_ERR_BAD_FIELD);
	assert_int_equal(config_parse_u64("-1", 0, UINT64_MAX, &v), SD_ERR_BAD_FIELD);
	assert_int_equal(config_parse_u64("1k", 0, 10000, &v), SD_ERR_BAD_FIELD);
	assert_int_equal(config_parse_u64("18446744073709551616", 0, UINT64_MAX, &v),
	    SD_ERR_BAD_FIELD);
	assert_int_equal(config_parse_u64(NULL, 0, 10, &v), SD_ERR_BAD_FIELD);
	assert_int_equal(v, 7);
}

static void
test_defaults(void **state)
{
	struct server_config c;

	(void)state;
	config_defaults(&c);
	assert_int_equal(c.port, 1256);
	assert_string_equal(c.db_path, "defensive.db");
	assert_string_equal(c.storage_dir, "files");
	assert_string_equal(c.bind_addr, "0.0.0.0");
	assert_int_equal(c.max_connections, 10000);
	assert_int_equal(c.idle_timeout, 60);
	assert_int_equal(c.grace, 10);
	assert_true(c.max_file_size == 4294967295ull);
	assert_int_equal(c.test_corrupt_crc, 0);
	assert_true(config_workers(&c) >= 1);
	c.workers = 3;
	assert_int_equal(config_workers(&c), 3);
}

static void
test_name_rule(void **state)
{
	char longest[256], too_long[256];

	(void)state;
	assert_true(handlers_name_valid("Fixture Tester"));
	assert_true(handlers_name_valid("a"));
	assert_true(handlers_name_valid("\xc3\xa9l\xc3\xa8ve"));            /* élève */
	assert_true(handlers_name_valid("\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d")); /* Hebrew */
	assert_true(handlers_name_valid("\xf0\x9f\x98\x80 smile"));         /* U+1F600 */
	assert_true(handlers_name_valid("~!@#$%^&*()_+{}|:\"<>?"));
	memset(longest, 'n', 254);
	longest[254] = '\0';
	assert_true(handlers_name_valid(longest));
	memset(too_long, 'n', 255);
	too_long[255] = '\0';
	assert_false(handlers_name_valid(too_long));

	assert_false(handlers_name_valid(""));
	assert_false(handlers_name_valid("tab\there"));
	assert_false(handlers_name_valid("new\nline"));
	assert_false(handlers_name_valid("del\x7f"));
	assert_false(handlers_name_valid("esc\x1b[31m"));
	assert_false(handlers_name_valid("c1 \xc2\x85"));       /* U+0085, a C1 control */
	assert_false(handlers_name_valid("\xc0\xaf"));          /* overlong '/' */
	assert_false(handlers_name_valid("\xe0\x80\xaf"));      /* overlong, 3 bytes */
	assert_false(handlers_name_valid("\xed\xa0\x80"));      /* surrogate U+D800 */
	assert_false(handlers_name_valid("\xf4\x90\x80\x80"));  /* past U+10FFFF */
	assert_false(handlers_name_valid("\xe2\x82"));          /* cut sequence */
	assert_false(handlers_name_valid("\x80"));              /* lone continuation */
	assert_false(handlers_name_valid("\xff"));
	assert_false(handlers_name_valid("ab\xc3"));
}

static void
test_log_sanitize(void **state)
{
	char out[LOG_NAME_MAX + 8];
	char longname[300];

	(void)state;
	log_sanitize("plain name", out, sizeof(out));
	assert_string_equal(out, "plain name");
	log_sanitize("a\nfake line\" \\ \x1b\x7f\xc3\xa9", out, sizeof(out));
	assert_string_equal(out, "a?fake line? ? ????");
	log_sanitize(NULL, out, sizeof(out));
	assert_string_equal(out, "");
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	log_sanitize(longname, out, sizeof(out));
	assert_int_equal(strlen(out), LOG_NAME_MAX);
	assert_string_equal(out + LOG_NAME_MAX - 3, "...");
	log_sanitize("abcdefgh", out, 6);
	assert_string_equal(out, "ab...");
	log_sanitize("abc", out, 2);
	assert_string_equal(out, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_port_file_valid, setup_port_file,
		    teardown_port_file),
		cmocka_unit_test_setup_teardown(test_port_file_invalid, setup_port_file,
		    teardown_port_file),
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_name_rule),
		cmocka_unit_test(test_log_sanitize),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
