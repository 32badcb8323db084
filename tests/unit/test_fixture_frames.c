/* test_fixture_frames.c: the frame parser and decoders against real bytes recorded from four
 * other clients and a reference server ($SEALDROP_FIXTURES/clients, read in place). Every run's
 * c2s.bin and s2c.bin, fed whole, byte by byte and in random splits, must give exactly the
 * messages of its messages.json and end at EOF between messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../protocol/codes.h"
#include "../../protocol/err.h"
#include "../../protocol/frame.h"
#include "../../protocol/msg.h"
#include "frame_drive.h"
#include "json_mini.h"

/* Random splits per stream and run (16 runs, two streams each). */
#define FIXTURE_RANDOM_SPLITS 6u
/* The index lists this many runs (4 clients x 2 sizes x first/second run). */
#define FIXTURE_RUNS 16u

static const char *fixtures_dir(void)
{
	return json_fixtures_dir();
}

static uint8_t *load(const char *dir, const char *name, size_t *len)
{
	char path[4096];
	uint8_t *data;

	assert_true((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) < sizeof(path));
	if ((data = json_read_file(path, len)) == NULL) {
		print_error("cannot read %s\n", path);
		fail();
	}
	return data;
}

static void assert_int_field(const struct json *fields, const char *key, long long got)
{
	const struct json *v = json_get(fields, key);

	if (v == NULL || v->type != JSON_INT) {
		print_error("field %s missing\n", key);
		fail();
	}
	assert_int_equal(got, v->i);
}

static void assert_str_field(const struct json *fields, const char *key, const char *got)
{
	const char *want = json_str(json_get(fields, key));

	assert_non_null(want);
	assert_string_equal(got, want);
}

static void assert_hex_field(const struct json *fields, const char *key, const uint8_t *got,
    size_t n)
{
	uint8_t want[PUBLIC_KEY_SIZE];

	assert_true(n <= sizeof(want));
	assert_int_equal(json_hex(json_get(fields, key), want, n), 0);
	assert_memory_equal(got, want, n);
}

/* Checks one parsed message (events [*i..]) against its messages.json entry m, advancing *i
 * past its events. data/n is the whole stream the events point into. */
static void check_message(const struct fd_log *log, size_t *i, const struct json *m,
    const uint8_t *data, size_t n, enum frame_direction dir)
{
	const struct fd_event *e = &log->ev[*i];
	const struct json *fields = json_get(m, "fields");
	size_t hsize = dir == FRAME_REQUESTS ? REQ_HEADER_SIZE : RESP_HEADER_SIZE;
	const uint8_t *payload;
	uint8_t id[CLIENT_ID_SIZE];
	char name[NAME_FIELD_SIZE];

	assert_non_null(fields);
	assert_int_equal(e->offset, json_int(json_get(m, "offset"), -1));
	assert_int_equal(e->header.code, json_int(json_get(m, "code"), -1));
	assert_int_equal(e->header.payload_size, json_int(json_get(m, "payload_size"), -1));
	assert_int_equal(e->header.version, json_int(json_get(m, "version"), -1));
	assert_int_equal(hsize, json_int(json_get(m, "header_size"), -1));
	assert_int_equal(e->offset + hsize, json_int(json_get(m, "payload_offset"), -1));
	if (dir == FRAME_REQUESTS)
		assert_hex_field(m, "header_client_id", e->header.client_id, CLIENT_ID_SIZE);
	assert_true(e->offset + hsize + e->header.payload_size <= n);
	payload = data + e->offset + hsize;

	if (e->type == FRAME_STREAM_START) {
		struct msg_file_packet f;
		size_t content_off = e->offset + hsize + FILE_PACKET_HEADER_SIZE, content_len = 0;

		assert_int_equal(e->header.code, REQ_SEND_FILE);
		assert_int_equal(msg_file_packet_decode(payload, FILE_PACKET_HEADER_SIZE, &f), 0);
		assert_int_field(fields, "content_size", f.content_size);
		assert_int_field(fields, "orig_file_size", f.orig_file_size);
		assert_int_field(fields, "u16_at_payload_8", f.packet_number);
		assert_int_field(fields, "u16_at_payload_10", f.total_packets);
		assert_str_field(fields, "file_name", f.file_name);
		(*i)++;
		assert_true(*i < log->n);
		if (log->ev[*i].type == FRAME_STREAM_DATA) {
			content_off = log->ev[*i].offset;
			content_len = log->ev[*i].len;
			(*i)++;
			assert_true(*i < log->n);
		}
		assert_int_equal(log->ev[*i].type, FRAME_STREAM_END);
		assert_int_equal(log->ev[*i].offset, content_off + content_len);
		(*i)++;
		assert_int_field(fields, "content_offset", (long long)content_off);
		assert_int_field(fields, "content_length", (long long)content_len);
		assert_int_equal(content_len, e->header.payload_size - FILE_PACKET_HEADER_SIZE);
		return;
	}

	assert_int_equal(e->type, FRAME_MESSAGE);
	(*i)++;
	switch (e->header.code) {
	case REQ_REGISTER:
	case REQ_RECONNECT:
		assert_int_equal(msg_name_decode(payload, e->len, name), 0);
		assert_str_field(fields, "name", name);
		break;
	case REQ_PUBLIC_KEY: {
		uint8_t key[PUBLIC_KEY_SIZE];

		assert_int_equal(msg_public_key_decode(payload, e->len, name, key), 0);
		assert_str_field(fields, "name", name);
		assert_hex_field(fields, "public_key_spki", key, PUBLIC_KEY_SIZE);
		break;
	}
	case REQ_CRC_OK:
	case REQ_CRC_RETRY:
	case REQ_CRC_FAIL:
		assert_int_equal(msg_name_decode(payload, e->len, name), 0);
		assert_str_field(fields, "file_name", name);
		break;
	case RESP_REGISTERED:
	case RESP_ACK:
	case RESP_RECONNECT_DENIED:
		assert_int_equal(msg_client_id_decode(payload, e->len, id), 0);
		assert_hex_field(fields, "client_id", id, CLIENT_ID_SIZE);
		break;
	case RESP_AES_KEY:
	case RESP_RECONNECTED: {
		struct msg_aes_key k;

		assert_int_equal(msg_aes_key_decode(payload, e->len, &k), 0);
		assert_hex_field(fields, "client_id", k.client_id, CLIENT_ID_SIZE);
		assert_hex_field(fields, "encrypted_aes_key", k.wrapped_key, WRAPPED_KEY_SIZE);
		break;
	}
	case RESP_FILE_CRC: {
		struct msg_file_crc c;

		assert_int_equal(msg_file_crc_decode(payload, e->len, &c), 0);
		assert_hex_field(fields, "client_id", c.client_id, CLIENT_ID_SIZE);
		assert_int_field(fields, "content_size", c.content_size);
		assert_str_field(fields, "file_name", c.file_name);
		assert_int_field(fields, "cksum", c.cksum);
		break;
	}
	case RESP_REGISTER_FAILED:
	case RESP_ERROR:
		assert_int_equal(e->len, 0);
		break;
	default:
		/* The recordings hold only protocol codes; anything else is a parsing fault. */
		print_error("unexpected code %u at offset %zu\n", e->header.code, e->offset);
		fail();
	}
}

/* One stream of one run: every split gives the same log, and that log is messages.json. */
static void check_stream(const char *rundir, const struct json *messages, const char *file,
    const char *dirname, enum frame_direction dir, size_t *checked)
{
	struct fd_log whole, other;
	const struct json *m;
	const char *why;
	uint8_t *data;
	size_t n, i = 0, want_count = 0;
	uint32_t seed;

	data = load(rundir, file, &n);
	why = fd_run(dir, FILE_PAYLOAD_MAX, data, n, FD_WHOLE, 0, &whole);
	if (why != NULL) {
		print_error("%s/%s: %s\n", rundir, file, why);
		fail();
	}
	/* Exactly at EOF, between messages, no error. */
	assert_int_equal(whole.err, 0);
	assert_int_equal(whole.consumed, n);
	assert_true(whole.idle);

	why = fd_run(dir, FILE_PAYLOAD_MAX, data, n, FD_BYTES, 0, &other);
	assert_null(why);
	assert_true(fd_log_equal(&whole, &other));
	fd_log_free(&other);
	for (seed = 1; seed <= FIXTURE_RANDOM_SPLITS; seed++) {
		why = fd_run(dir, FILE_PAYLOAD_MAX, data, n, FD_RANDOM, seed * 7919u, &other);
		assert_null(why);
		assert_true(fd_log_equal(&whole, &other));
		fd_log_free(&other);
	}

	for (m = json_first(messages); m != NULL; m = m->next) {
		const char *d = json_str(json_get(m, "dir"));

		assert_non_null(d);
		if (strcmp(d, dirname) != 0)
			continue;
		assert_true(i < whole.n);
		check_message(&whole, &i, m, data, n, dir);
		want_count++;
		(*checked)++;
	}
	/* No event left over: the parser saw no message that the recording does not list. */
	assert_int_equal(i, whole.n);
	assert_true(want_count > 0);
	fd_log_free(&whole);
	free(data);
}

/* The order of the codes in the index agrees with the parsed streams (a second source). */
static void check_codes(const struct json *run, const struct json *messages)
{
	static const char *const keys[2] = { "request_codes", "response_codes" };
	static const char *const dirs[2] = { "c2s", "s2c" };
	int k;

	for (k = 0; k < 2; k++) {
		const struct json *want = json_first(json_get(run, keys[k]));
		const struct json *m;

		for (m = json_first(messages); m != NULL; m = m->next) {
			if (strcmp(json_str(json_get(m, "dir")), dirs[k]) != 0)
				continue;
			assert_non_null(want);
			assert_int_equal(json_int(json_get(m, "code"), -1), json_int(want, -2));
			want = want->next;
		}
		assert_null(want);
	}
}

static void test_fixture_runs(void **state)
{
	const char *fx = fixtures_dir();
	char path[4096];
	struct json *index, *msgs;
	const struct json *run;
	size_t runs = 0, checked = 0;

	(void)state;
	assert_true((size_t)snprintf(path, sizeof(path), "%s/clients/index.json", fx) <
	    sizeof(path));
	if ((index = json_load_file(path)) == NULL) {
		print_error("cannot read %s\n", path);
		fail();
	}
	for (run = json_first(json_get(index, "runs")); run != NULL; run = run->next) {
		const char *dir = json_str(json_get(run, "dir"));
		char rundir[4096], mpath[4200];

		assert_non_null(dir);
		assert_true((size_t)snprintf(rundir, sizeof(rundir), "%s/clients/%s", fx, dir) <
		    sizeof(rundir));
		snprintf(mpath, sizeof(mpath), "%s/messages.json", rundir);
		if ((msgs = json_load_file(mpath)) == NULL) {
			print_error("cannot read %s\n", mpath);
			fail();
		}
		check_stream(rundir, json_get(msgs, "messages"), "c2s.bin", "c2s",
		    FRAME_REQUESTS, &checked);
		check_stream(rundir, json_get(msgs, "messages"), "s2c.bin", "s2c",
		    FRAME_RESPONSES, &checked);
		check_codes(run, json_get(msgs, "messages"));
		json_free(msgs);
		runs++;
	}
	json_free(index);
	assert_true(runs >= FIXTURE_RUNS);
	print_message("%zu runs, %zu messages checked\n", runs, checked);
}

/* The JSON reader itself, on the shapes the fixture files use and on broken text. */
static void test_json_mini(void **state)
{
	static const char text[] = " {\"a\": [1, -2, 30000000000, {\"b\": \"x\\u00e9\\n\\\"\"}],"
	    " \"t\": true, \"f\": false, \"z\": null, \"r\": 1.5, \"h\": \"0aFf\", \"e\": {}, "
	    "\"l\": []} ";
	static const char *const bad[] = {
		"", "{", "[1,]", "{\"a\" 1}", "{\"a\":}", "\"abc", "tru", "[1] x", "{1:2}",
		"\"\\x\"", "\"\\ud800\"", "[--1]", "\"a\nb\"",
	};
	struct json *root;
	const struct json *a;
	uint8_t hex[2] = { 0, 0 };
	size_t i;

	(void)state;
	assert_non_null(root = json_parse(text, strlen(text)));
	a = json_get(root, "a");
	assert_int_equal(json_count(a), 4);
	assert_int_equal(json_int(json_at(a, 0), 0), 1);
	assert_int_equal(json_int(json_at(a, 1), 0), -2);
	assert_true(json_int(json_at(a, 2), 0) == 30000000000LL);
	assert_string_equal(json_str(json_get(json_at(a, 3), "b")), "x\xc3\xa9\n\"");
	assert_null(json_at(a, 4));
	assert_int_equal(json_bool(json_get(root, "t"), -1), 1);
	assert_int_equal(json_bool(json_get(root, "f"), -1), 0);
	assert_int_equal(json_get(root, "z")->type, JSON_NULL);
	assert_int_equal(json_get(root, "r")->type, JSON_REAL);
	assert_true(json_get(root, "r")->d == 1.5);
	assert_int_equal(json_int(json_get(root, "r"), 7), 7);
	assert_int_equal(json_hex(json_get(root, "h"), hex, 2), 0);
	assert_int_equal(hex[0], 0x0a);
	assert_int_equal(hex[1], 0xff);
	assert_int_equal(json_hex(json_get(root, "h"), hex, 1), -1);
	assert_int_equal(json_count(json_get(root, "e")), 0);
	assert_int_equal(json_count(json_get(root, "l")), 0);
	assert_null(json_get(root, "missing"));
	assert_null(json_get(a, "a"));
	assert_null(json_str(json_get(root, "t")));
	assert_int_equal(json_count(root), 8);
	json_free(root);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_null(json_parse(bad[i], strlen(bad[i])));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_mini),
		cmocka_unit_test(test_fixture_runs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
