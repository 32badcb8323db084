/* test_db_pg.c: the store (db/db.h) on PostgreSQL: test_db.c's tests that need no SQLite file,
 * run through a PostgreSQL connection string (pg_test.h), and what only several connections
 * to one server can show: a name race decided by the unique constraint, reconnection after the
 * server dropped the connection, a foreign database refused. Skipped without SEALDROP_TEST_PG. */
#include "../../db/db.h"
int pgt_open(const char *path, enum db_open_mode mode, struct db **out);
int pgt_open_why(const char *path, enum db_open_mode mode, struct db **out, char *why,
    size_t cap);
#define db_open pgt_open
#define db_open_why pgt_open_why
#define main test_db_sqlite_main
#include "test_db.c"
#undef main
#include "pg_test.h"

PGT_RUN(test_register_and_lookup)
PGT_RUN(test_name_rules)
PGT_RUN(test_keys)
PGT_RUN(test_files)
PGT_RUN(test_iteration)
PGT_RUN(test_find)
PGT_RUN(test_integrity_and_close)

/* Two connections (two servers) register one name at the same instant, many times: exactly
 * one wins each round, the other gets SD_ERR_EXISTS (the server answers 1601). */
struct racer {
	struct db *db;
	pthread_barrier_t *go;
	int round;
	int tag;
	int result;
};

static void *
race_one(void *arg)
{
	struct racer *r = arg;
	uint8_t id[CLIENT_ID_SIZE];
	char name[32];

	make_id(id, (uint8_t)(r->tag * 100 + r->round % 100));
	id[15] = (uint8_t)(r->round / 100);
	id[14] = (uint8_t)r->tag;
	snprintf(name, sizeof(name), "race-%d", r->round);
	pthread_barrier_wait(r->go);
	r->result = db_client_register_conn(r->db, name, id, NULL);
	return NULL;
}

static void
pg_test_register_race(void **state)
{
	struct db *a = NULL, *b = NULL;
	struct db_client c;
	pthread_barrier_t go;
	pthread_t ta, tb;
	struct racer ra, rb;
	int round, wins_a = 0, wins_b = 0;

	(void)state;
	pgt_skip_unless_pg();
	assert_int_equal(pgt_open(":memory:", DB_READ_WRITE, &a), 0);
	assert_int_equal(db_open_why(pgt_conninfo, DB_READ_WRITE, &b, NULL, 0), 0);
	for (round = 0; round < 40; round++) {
		pthread_barrier_init(&go, NULL, 2);
		ra = (struct racer){ a, &go, round, 1, 99 };
		rb = (struct racer){ b, &go, round, 2, 99 };
		assert_int_equal(pthread_create(&ta, NULL, race_one, &ra), 0);
		assert_int_equal(pthread_create(&tb, NULL, race_one, &rb), 0);
		pthread_join(ta, NULL);
		pthread_join(tb, NULL);
		pthread_barrier_destroy(&go);
		assert_true((ra.result == 0 && rb.result == SD_ERR_EXISTS) ||
		    (rb.result == 0 && ra.result == SD_ERR_EXISTS));
		wins_a += ra.result == 0;
		wins_b += rb.result == 0;
	}
	assert_int_equal(wins_a + wins_b, 40);
	assert_int_equal(db_client_by_name(a, "race-7", &c), 0);
	db_close(a);
	db_close(b);
}

static long pgt_int(const char *sql);

/* Ends the sessions on sd_unit that match where (SQL on pg_stat_activity), as a database
 * restart does, and waits (up to 5 s) until they are gone. */
static void
end_sessions(const char *where)
{
	char sql[256];
	int i;

	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
	    "WHERE datname = 'sd_unit' AND pid <> pg_backend_pid() AND %s", where);
	assert_int_equal(pgt_exec(sql), 0);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity "
	    "WHERE datname = 'sd_unit' AND pid <> pg_backend_pid() AND %s", where);
	for (i = 0; i < 500 && pgt_int(sql) != 0; i++)
		usleep(10000);
	assert_true(i < 500);
}

/* Ends every other session on sd_unit. */
static void
kill_sessions(void)
{
	end_sessions("true");
}

/* Restarts the whole cluster when tests/run.sh said where it is (SEALDROP_TEST_PG_DIR);
 * 0 when it did, -1 when it cannot. */
static int
restart_cluster(void)
{
	const char *dir = getenv("SEALDROP_TEST_PG_DIR"), *top = getenv("SEALDROP_TOP");
	char cmd[1024];

	if (dir == NULL || *dir == '\0' || top == NULL || *top == '\0')
		return -1;
	snprintf(cmd, sizeof(cmd), "sh '%s/tests/pgcluster.sh' restart '%s'", top, dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* A read-only connection (sealdrop-db) stays read-only on the new connection made after the
 * database went away: a SET on the old one would be lost with it. */
static void
pg_test_read_only_after_restart(void **state)
{
	struct db *db = NULL, *ro = NULL;
	struct db_client c;
	uint8_t id[CLIENT_ID_SIZE];
	int round;

	(void)state;
	pgt_skip_unless_pg();
	make_id(id, 9);
	assert_int_equal(pgt_open(":memory:", DB_READ_WRITE, &db), 0);
	db_close(db);
	assert_int_equal(db_open(pgt_conninfo, DB_READ_ONLY, &ro), 0);
	assert_int_equal(db_client_register(ro, "w0", id), SD_ERR_DB);
	for (round = 0; round < 2; round++) {
		if (round == 0)
			kill_sessions();
		else if (restart_cluster() != 0)
			break;
		/* A read reconnects; then every kind of write is still refused. */
		assert_int_equal(db_client_by_name(ro, "w0", &c), SD_ERR_NOT_FOUND);
		assert_int_equal(db_client_register(ro, "w1", id), SD_ERR_DB);
		assert_int_equal(db_client_expire_pending(ro, 0, NULL), SD_ERR_DB);
		assert_int_equal(db_client_touch(ro, id), SD_ERR_DB);
	}
	db_close(ro);
	assert_int_equal(db_open(pgt_conninfo, DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_by_name(db, "w1", &c), SD_ERR_NOT_FOUND);
	db_close(db);
}

/* One integer from a query on sd_unit (a fresh connection each time: pg_stat_activity is
 * read once per transaction); -1 on failure. */
static long
pgt_int(const char *sql)
{
	PGconn *c = PQconnectdb(pgt_conninfo);
	PGresult *res = PQstatus(c) == CONNECTION_OK ? PQexec(c, sql) : NULL;
	long v = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		v = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	PQfinish(c);
	return v;
}

struct blocked {
	struct db *db;
	const uint8_t *id;
	struct db_commit *m;
	int result;
};

static void *
blocked_register(void *arg)
{
	struct blocked *b = arg;

	b->result = db_client_register(b->db, "carol", b->id);
	return NULL;
}

static void *
blocked_commit_add(void *arg)
{
	struct blocked *b = arg;

	b->result = db_commit_add(b->db, b->m);
	return NULL;
}

/* Runs fn in a thread while another session holds table locked, ends fn's session while its
 * statement waits for the lock (so the connection breaks while the statement is in flight),
 * then lets go of the lock; b->result is fn's. */
static void
drop_while_waiting(void *(*fn)(void *), struct blocked *b, const char *table)
{
	PGconn *locker = PQconnectdb(pgt_conninfo);
	PGresult *res;
	char sql[128];
	pthread_t th;
	int i;

	assert_int_equal(PQstatus(locker), CONNECTION_OK);
	snprintf(sql, sizeof(sql), "BEGIN; LOCK TABLE %s IN ACCESS EXCLUSIVE MODE", table);
	res = PQexec(locker, sql);
	assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	b->result = 99;
	assert_int_equal(pthread_create(&th, NULL, fn, b), 0);
	for (i = 0; i < 500 && pgt_int("SELECT count(*) FROM pg_stat_activity WHERE "
	    "datname = 'sd_unit' AND wait_event_type = 'Lock'") != 1; i++)
		usleep(10000);
	assert_true(i < 500);
	end_sessions("wait_event_type = 'Lock'");
	/* A retry on a new connection would wait for the lock again: let go only now. */
	usleep(100000);
	PQclear(PQexec(locker, "ROLLBACK"));
	PQfinish(locker);
	assert_int_equal(pthread_join(th, NULL), 0);
}

/* After the server dropped an idle connection: a read, a transaction and a single write all
 * run on a new one (nothing was sent on the old one). A connection that breaks while a
 * statement runs: a single write that may or may not have run fails (the request gets 1607),
 * as does a transaction, which PostgreSQL rolled back; nothing is retried, nothing is left
 * half-done, and the connection serves again afterwards. */
static void
pg_test_reconnect(void **state)
{
	struct db *db = NULL;
	struct db_client c;
	struct db_commit m, got;
	struct blocked b;
	uint8_t id[CLIENT_ID_SIZE], id2[CLIENT_ID_SIZE], id3[CLIENT_ID_SIZE];

	(void)state;
	pgt_skip_unless_pg();
	make_id(id, 1);
	make_id(id2, 2);
	make_id(id3, 3);
	assert_int_equal(pgt_open(":memory:", DB_READ_WRITE, &db), 0);
	assert_int_equal(db_client_register(db, "alice", id), 0);

	kill_sessions();
	assert_int_equal(db_client_by_name(db, "alice", &c), 0);
	assert_memory_equal(c.id, id, CLIENT_ID_SIZE);

	kill_sessions();
	assert_int_equal(db_client_register(db, "bob", id2), 0);
	assert_int_equal(db_client_by_name(db, "bob", &c), 0);

	memset(&m, 0, sizeof(m));
	memcpy(m.owner, id, CLIENT_ID_SIZE);
	snprintf(m.file_name, sizeof(m.file_name), "f");
	snprintf(m.temp_path, sizeof(m.temp_path), "alice/.part");
	snprintf(m.path_name, sizeof(m.path_name), "alice/f");
	kill_sessions();
	assert_int_equal(db_commit_add(db, &m), 0);
	assert_int_equal(db_commit_get(db, id, "f", &got), 0);
	assert_int_equal(db_commit_delete(db, id, "f"), 0);

	/* A single write whose connection breaks under it. */
	b = (struct blocked){ db, id, &m, 0 };
	drop_while_waiting(blocked_commit_add, &b, "commits");
	assert_int_equal(b.result, SD_ERR_DB);
	assert_true(strlen(db_errmsg(db)) > 0);
	assert_int_equal(db_commit_get(db, id, "f", &got), SD_ERR_NOT_FOUND);
	assert_int_equal(db_commit_add(db, &m), 0);
	assert_int_equal(db_commit_get(db, id, "f", &got), 0);

	/* A transaction (register: delete a pending row, insert) whose connection breaks in
	 * its middle. */
	b = (struct blocked){ db, id3, NULL, 0 };
	drop_while_waiting(blocked_register, &b, "clients");
	assert_int_equal(b.result, SD_ERR_DB);
	assert_int_equal(db_client_by_name(db, "carol", &c), SD_ERR_NOT_FOUND);
	assert_int_equal(db_client_register(db, "carol", id3), 0);
	assert_int_equal(db_client_by_name(db, "carol", &c), 0);
	db_close(db);
}

/* Tables that are not ours, or a read-only open of an empty database: SD_ERR_SCHEMA with a
 * reason; a server that does not answer: SD_ERR_IO. */
static void
pg_test_open_refusals(void **state)
{
	struct db *db = NULL;
	char why[256], bad[1100];

	(void)state;
	pgt_skip_unless_pg();
	assert_int_equal(pgt_fresh(":memory:"), 0);
	assert_int_equal(db_open_why(pgt_conninfo, DB_READ_ONLY, &db, why, sizeof(why)),
	    SD_ERR_SCHEMA);
	assert_null(db);
	assert_non_null(strstr(why, "no sealdrop tables"));
	assert_int_equal(pgt_exec("CREATE TABLE clients (x integer)"), 0);
	assert_int_equal(db_open_why(pgt_conninfo, DB_READ_WRITE, &db, why, sizeof(why)),
	    SD_ERR_SCHEMA);
	assert_null(db);
	snprintf(bad, sizeof(bad), "%s port=1", pgt_conninfo);
	assert_int_equal(db_open_why(bad, DB_READ_WRITE, &db, why, sizeof(why)), SD_ERR_IO);
	assert_true(strlen(why) > 0);
	/* Written once, a read-only open serves and refuses writes. */
	assert_int_equal(pgt_fresh(":memory:"), 0);
	assert_int_equal(db_open(pgt_conninfo, DB_READ_WRITE, &db), 0);
	db_close(db);
	assert_int_equal(db_open(pgt_conninfo, DB_READ_ONLY, &db), 0);
	assert_int_equal(db_client_register(db, "x", (const uint8_t *)"0123456789abcdef"),
	    SD_ERR_DB);
	db_close(db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pg_test_register_and_lookup),
		cmocka_unit_test(pg_test_name_rules),
		cmocka_unit_test(pg_test_keys),
		cmocka_unit_test(pg_test_files),
		cmocka_unit_test(pg_test_iteration),
		cmocka_unit_test(pg_test_find),
		cmocka_unit_test(pg_test_integrity_and_close),
		cmocka_unit_test(pg_test_register_race),
		cmocka_unit_test(pg_test_reconnect),
		cmocka_unit_test(pg_test_open_refusals),
		cmocka_unit_test(pg_test_read_only_after_restart),
	};

	return cmocka_run_group_tests(tests, pgt_setup, NULL);
}
