/* test_db_v4_pg.c: test_db_v4.c's tests of accounts, fingerprints, files, commit intents and
 * partial uploads, run on PostgreSQL through pg_test.h. Skipped without SEALDROP_TEST_PG.
 * Below the #include of pg_test.h db_open is the real one again: tests written here open
 * with pgt_open (a db_open(":memory:") there would test SQLite). */
#include "../../db/db.h"
int pgt_open(const char *path, enum db_open_mode mode, struct db **out);
int pgt_open_why(const char *path, enum db_open_mode mode, struct db **out, char *why,
    size_t cap);
#define db_open pgt_open
#define db_open_why pgt_open_why
#define main test_db_v4_sqlite_main
#include "test_db_v4.c"
#undef main
#include "pg_test.h"

PGT_RUN(test_v4_accounts)
PGT_RUN(test_fingerprint_form)
PGT_RUN(test_register_conn)
PGT_RUN(test_files_v4)
PGT_RUN(test_commit_publish)
PGT_RUN(test_each_commit)
PGT_RUN(test_fingerprint_race)
PGT_RUN(test_read_only_v4)

/* test_expire_pending with PostgreSQL's SQL for the rows made old (a LastSeen that is not a
 * time cannot exist there): pending rows older than the TTL, or never seen, go with their
 * other rows; rows with a key, and newer ones, stay. */
static void
pg_test_expire_pending(void **state)
{
	struct db *db = NULL;
	struct db_client c;
	uint8_t a[CLIENT_ID_SIZE], b[CLIENT_ID_SIZE], k[CLIENT_ID_SIZE], key[PUBLIC_KEY_SIZE];
	struct db_upload u;
	long n = -1;

	(void)state;
	pgt_skip_unless_pg();
	make_id(a, 21);
	make_id(b, 22);
	make_id(k, 23);
	make_key(key, 4);
	assert_int_equal(pgt_open(":memory:", DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_register(db, "old-pending", a), 0);
	assert_int_equal(db_client_register(db, "new-pending", b), 0);
	assert_int_equal(db_client_register(db, "old-keyed", k), 0);
	assert_int_equal(db_client_set_public_key(db, k, key, sizeof(key)), 0);
	fill_upload(&u, a, "x", 10, 0, 2000000000);
	assert_int_equal(db_upload_put(db, &u), 0);
	assert_int_equal(db_client_expire_pending(db, 600, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(pgt_exec("UPDATE clients SET LastSeen = LastSeen - interval '11 minutes' "
	    "WHERE Name IN ('old-pending', 'old-keyed'); INSERT INTO clients (ID, Name) VALUES "
	    "('\\x99999999999999999999999999999999', 'never')"), 0);
	assert_int_equal(db_client_expire_pending(db, -1, &n), SD_ERR_INVALID_ARG);
	assert_int_equal(db_client_expire_pending(db, 600, &n), 0);
	assert_int_equal(n, 2); /* old-pending, never */
	assert_int_equal(db_client_by_name(db, "old-pending", &c), SD_ERR_NOT_FOUND);
	assert_int_equal(db_client_by_name(db, "never", &c), SD_ERR_NOT_FOUND);
	assert_int_equal(db_client_by_name(db, "new-pending", &c), 0);
	assert_int_equal(db_client_by_name(db, "old-keyed", &c), 0);
	assert_int_equal(db_upload_get(db, a, "x", &u), SD_ERR_NOT_FOUND);
	assert_int_equal(db_client_register_conn(db, "old-pending", b, NULL), SD_ERR_EXISTS);
	assert_int_equal(db_client_register_conn(db, "old-pending", a, NULL), 0);
	assert_int_equal(db_client_expire_pending(db, 600, NULL), 0);
	db_close(db);
}

/* test_publish_atomic with a PostgreSQL trigger: when publish's last step fails, the files
 * rows are as before and the intent is still there. */
static void
pg_test_publish_atomic(void **state)
{
	struct db *db = NULL;
	struct db_commit c;
	struct db_file f, g;
	uint8_t a[CLIENT_ID_SIZE];

	(void)state;
	pgt_skip_unless_pg();
	make_id(a, 43);
	assert_int_equal(pgt_open(":memory:", DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_register(db, "dora", a), 0);
	fill_file(&f, a, "s", "A/s", 5, 1);
	assert_int_equal(db_file_record(db, &f), 0);
	assert_int_equal(db_file_set_verified(db, a, "s", 1), 0);
	fill_commit(&c, a, "t/s", "A/.part", "A/s", 9, 2);
	assert_int_equal(db_commit_add(db, &c), 0);
	assert_int_equal(pgt_exec("CREATE FUNCTION sd_refuse() RETURNS trigger LANGUAGE plpgsql "
	    "AS $$BEGIN RAISE EXCEPTION 'refused by the test'; END$$; CREATE TRIGGER no_delete "
	    "BEFORE DELETE ON commits FOR EACH ROW EXECUTE FUNCTION sd_refuse()"), 0);
	assert_int_not_equal(db_commit_publish(db, a, "t/s"), 0);
	assert_non_null(strstr(db_errmsg(db), "refused by the test"));
	assert_int_equal(db_file_get(db, a, "s", &g), 0);
	assert_int_equal(g.size, 5);
	assert_true(g.verified);
	assert_int_equal(db_file_get(db, a, "t/s", &g), SD_ERR_NOT_FOUND);
	assert_int_equal(db_commit_get(db, a, "t/s", &c), 0);
	assert_int_equal(pgt_exec("DROP TRIGGER no_delete ON commits"), 0);
	assert_int_equal(db_commit_publish(db, a, "t/s"), 0);
	assert_int_equal(db_file_get(db, a, "s", &g), SD_ERR_NOT_FOUND);
	assert_int_equal(db_file_get(db, a, "t/s", &g), 0);
	assert_int_equal(g.size, 9);
	assert_true(g.verified);
	db_close(db);
}
PGT_RUN(test_upload_owner)

static int
count_upload(void *ctx, const struct db_upload *u)
{
	(void)u;
	(*(int *)ctx)++;
	return 0;
}

/* Partial uploads (test_uploads reads the SQLite file directly, so it has this version):
 * create, replace whole, the offset only forward, walks by owner and by expiry, deletion. */
static void
pg_test_uploads(void **state)
{
	struct db *db = NULL;
	struct db_upload u, v;
	uint8_t id[CLIENT_ID_SIZE], other[CLIENT_ID_SIZE];
	int64_t now = (int64_t)time(NULL);
	int n;

	(void)state;
	pgt_skip_unless_pg();
	make_id(id, 1);
	make_id(other, 2);
	assert_int_equal(pgt_open(":memory:", DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_register(db, "owner", id), 0);
	memset(&u, 0, sizeof(u));
	memcpy(u.owner, other, CLIENT_ID_SIZE);
	snprintf(u.file_name, sizeof(u.file_name), "big");
	snprintf(u.temp_path, sizeof(u.temp_path), "owner/.sealdrop-part-big");
	u.size = 5000000000ull;
	u.offset = 0;
	u.expires = now + 600;
	assert_int_equal(db_upload_put(db, &u), SD_ERR_NOT_FOUND);
	memcpy(u.owner, id, CLIENT_ID_SIZE);
	assert_int_equal(db_upload_put(db, &u), 0);
	assert_int_equal(db_upload_get(db, id, "big", &v), 0);
	assert_int_equal(v.size, 5000000000ull);
	assert_int_equal(v.expires, now + 600);
	assert_true(v.created >= now - 5 && v.created <= now + 5);
	assert_string_equal(v.temp_path, "owner/.sealdrop-part-big");
	assert_int_equal(db_upload_set_offset(db, id, "big", 4096, 0), 0);
	assert_int_equal(db_upload_set_offset(db, id, "big", 4095, 0), SD_ERR_BAD_FIELD);
	assert_int_equal(db_upload_set_offset(db, id, "big", 5000000001ull, 0), SD_ERR_BAD_FIELD);
	assert_int_equal(db_upload_set_offset(db, id, "nope", 1, 0), SD_ERR_NOT_FOUND);
	assert_int_equal(db_upload_set_offset(db, id, "big", 8192, now + 900), 0);
	assert_int_equal(db_upload_get(db, id, "big", &v), 0);
	assert_int_equal(v.offset, 8192);
	assert_int_equal(v.expires, now + 900);
	u.offset = u.size + 1;
	assert_int_equal(db_upload_put(db, &u), SD_ERR_INVALID_ARG);
	snprintf(u.file_name, sizeof(u.file_name), "old");
	u.offset = 0;
	u.expires = now - 10;
	assert_int_equal(db_upload_put(db, &u), 0);
	n = 0;
	assert_int_equal(db_each_upload(db, id, count_upload, &n), 0);
	assert_int_equal(n, 2);
	n = 0;
	assert_int_equal(db_each_upload(db, other, count_upload, &n), 0);
	assert_int_equal(n, 0);
	n = 0;
	assert_int_equal(db_each_expired_upload(db, now, count_upload, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(db_upload_delete(db, id, "old"), 0);
	assert_int_equal(db_upload_delete(db, id, "old"), SD_ERR_NOT_FOUND);
	n = 0;
	assert_int_equal(db_each_upload(db, NULL, count_upload, &n), 0);
	assert_int_equal(n, 1);
	db_close(db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pg_test_v4_accounts),
		cmocka_unit_test(pg_test_fingerprint_form),
		cmocka_unit_test(pg_test_register_conn),
		cmocka_unit_test(pg_test_files_v4),
		cmocka_unit_test(pg_test_commit_publish),
		cmocka_unit_test(pg_test_each_commit),
		cmocka_unit_test(pg_test_uploads),
		cmocka_unit_test(pg_test_fingerprint_race),
		cmocka_unit_test(pg_test_read_only_v4),
		cmocka_unit_test(pg_test_expire_pending),
		cmocka_unit_test(pg_test_publish_atomic),
		cmocka_unit_test(pg_test_upload_owner),
	};

	return cmocka_run_group_tests(tests, pgt_setup, NULL);
}
