/* pg_test.h: runs the SQLite store's unit tests (test_db.c, test_db_v4.c, included by
 * test_db_pg.c and test_db_v4_pg.c) against PostgreSQL as well. SEALDROP_TEST_PG holds a
 * libpq keyword connection string of a server where we may create the database sd_unit
 * (tests/run.sh starts a throw-away cluster and sets it); unset, every test is skipped. Each
 * test's db_open of a path it has not opened before (":memory:" always) gets a fresh, empty
 * schema in sd_unit; reopening the same path finds what the test wrote. */
#ifndef SD_PG_TEST_H
#define SD_PG_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "../../db/db.h"

static char pgt_conninfo[1024];
static void pgt_quiet(void *arg, const char *msg) { (void)arg; (void)msg; }
static char pgt_last_path[512];

/* Runs fixed SQL on sd_unit outside the db API; 0 or -1. */
static int
pgt_exec(const char *sql)
{
	PGconn *c = PQconnectdb(pgt_conninfo);
	PGresult *res = NULL;
	int ok = PQstatus(c) == CONNECTION_OK;

	if (ok) {
		PQsetNoticeProcessor(c, pgt_quiet, NULL);
		res = PQexec(c, sql);
		ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
		if (!ok)
			fprintf(stderr, "pg_test: %s: %s", sql, PQerrorMessage(c));
	}
	PQclear(res);
	PQfinish(c);
	return ok ? 0 : -1;
}

/* Group setup: creates sd_unit (once per cluster), or skips everything when there is no
 * cluster. */
static int
pgt_setup(void **state)
{
	const char *base = getenv("SEALDROP_TEST_PG");
	PGconn *c;
	PGresult *res;

	(void)state;
	if (base == NULL || *base == '\0') {
		printf("SKIPPED: SEALDROP_TEST_PG is not set (no PostgreSQL cluster for the tests)\n");
		return 0;
	}
	c = PQconnectdb(base);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "pg_test: %s", PQerrorMessage(c));
		PQfinish(c);
		return -1;
	}
	PQsetNoticeProcessor(c, pgt_quiet, NULL);
	res = PQexec(c, "SELECT 1 FROM pg_database WHERE datname = 'sd_unit'");
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 0)
		PQclear(PQexec(c, "CREATE DATABASE sd_unit"));
	PQclear(res);
	PQfinish(c);
	/* In a keyword string the last value of a keyword wins. */
	snprintf(pgt_conninfo, sizeof(pgt_conninfo), "%s dbname=sd_unit", base);
	return 0;
}

static void
pgt_skip_unless_pg(void)
{
	if (pgt_conninfo[0] == '\0')
		skip();
}

#undef db_open
#undef db_open_why
static int
pgt_fresh(const char *path)
{
	if (strcmp(path, ":memory:") != 0 && strcmp(path, pgt_last_path) == 0)
		return 0;
	snprintf(pgt_last_path, sizeof(pgt_last_path), "%s", path);
	return pgt_exec("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public");
}

int
pgt_open(const char *path, enum db_open_mode mode, struct db **out)
{
	if (path == NULL)
		return db_open(path, mode, out);
	if (pgt_fresh(path) != 0)
		return SD_ERR_DB;
	return db_open(pgt_conninfo, mode, out);
}

int
pgt_open_why(const char *path, enum db_open_mode mode, struct db **out, char *why, size_t cap)
{
	if (path == NULL)
		return db_open_why(path, mode, out, why, cap);
	if (pgt_fresh(path) != 0)
		return SD_ERR_DB;
	return db_open_why(pgt_conninfo, mode, out, why, cap);
}

/* A test of the included file, run on PostgreSQL (skipped without a cluster). */
#define PGT_RUN(t) static void pg_##t(void **state) { pgt_skip_unless_pg(); pgt_last_path[0] = '\0'; t(state); }

#endif
