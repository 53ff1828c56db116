/* pgtest.c — see pgtest.h. */
#include "config.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include "unit/pgtest.h"

const char *
pgtest_base_url(void)
{
	const char *url = getenv("CUSTODY_TEST_PG_URL");

	return url != NULL && url[0] != '\0' ? url : NULL;
}

const char *
pgtest_dbname(void)
{
	static char name[128];
	PQconninfoOption *opts, *o;

	if (name[0] != '\0')
		return name;
	opts = PQconninfoParse(pgtest_base_url(), NULL);
	cr_assert_not_null(opts, "CUSTODY_TEST_PG_URL cannot be parsed");
	for (o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "dbname") == 0 && o->val != NULL)
			snprintf(name, sizeof(name), "%s", o->val);
	PQconninfoFree(opts);
	cr_assert(name[0] != '\0', "CUSTODY_TEST_PG_URL names no database");
	return name;
}

static PGconn *
connect_to(const char *schema)
{
	PGconn *c = PQconnectdb(pgtest_base_url());
	const char *values[1];
	PGresult *res;

	cr_assert_eq(PQstatus(c), CONNECTION_OK, "cannot connect to %s: %s",
		     pgtest_base_url(), PQerrorMessage(c));
	PQclear(PQexec(c, "SET client_min_messages = warning"));
	if (schema != NULL && schema[0] != '\0') {
		values[0] = schema;
		res = PQexecParams(c, "SELECT set_config('search_path', $1, false)",
				   1, NULL, values, NULL, NULL, 0);
		cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s",
			     PQerrorMessage(c));
		PQclear(res);
	}
	return c;
}

void
pgtest_create(char *url, size_t url_size, char schema[64])
{
	static unsigned counter;
	const char *base = pgtest_base_url();
	char sql[128];

	cr_assert_not_null(base);
	snprintf(schema, 64, "t_%ld_%ld_%u", (long)getpid(), (long)time(NULL),
		 counter++);
	snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", schema);
	pgtest_exec(NULL, sql);
	/* libpq's URI options: "-c search_path=SCHEMA", percent-encoded. */
	snprintf(url, url_size, "%s%coptions=-csearch_path%%3D%s", base,
		 strchr(base, '?') != NULL ? '&' : '?', schema);
}

void
pgtest_drop(const char *schema)
{
	char sql[512];

	if (schema == NULL || schema[0] == '\0')
		return;
	/* A failed test may have left a transaction open on the schema's
	 * tables: its connection goes first, or DROP would wait for it. */
	snprintf(sql, sizeof(sql), "SELECT count(pg_terminate_backend(l.pid)) "
		 "FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
		 "JOIN pg_namespace n ON n.oid = c.relnamespace "
		 "WHERE n.nspname = '%s' AND l.pid <> pg_backend_pid()", schema);
	pgtest_exec(NULL, sql);
	snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", schema);
	pgtest_exec(NULL, sql);
}

int
pgtest_try(const char *schema, const char *sql, char *msg, size_t size)
{
	PGconn *c = connect_to(schema);
	PGresult *res = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(res);
	const char *why = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	int failed = st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK;

	snprintf(msg, size, "%s", failed && why != NULL ? why : "");
	PQclear(res);
	PQfinish(c);
	return failed;
}

void
pgtest_exec(const char *schema, const char *sql)
{
	char msg[512];

	cr_assert_eq(pgtest_try(schema, sql, msg, sizeof(msg)), 0, "%s: %s", sql, msg);
}

int64_t
pgtest_int(const char *schema, const char *sql)
{
	PGconn *c = connect_to(schema);
	PGresult *res = PQexec(c, sql);
	int64_t v;

	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s: %s", sql,
		     PQerrorMessage(c));
	cr_assert_eq(PQntuples(res), 1, "%s: %d rows", sql, PQntuples(res));
	v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	PQfinish(c);
	return v;
}

void
pgtest_required(void)
{
	if (pgtest_base_url() == NULL)
		cr_skip_test(PGTEST_SKIPPED);
}

static int
remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void
pgtest_remove_tree(const char *dir)
{
	if (dir[0] != '\0')
		nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
