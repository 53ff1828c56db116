/* pgtest.h — the PostgreSQL side of the store and audit tests.
 *
 * When CUSTODY_TEST_PG_URL names a server (scripts/test-postgres.sh env),
 * each PostgreSQL test gets a fresh schema of its own in that database
 * (its URL sets search_path to it) and drops it at the end; without the
 * variable the PostgreSQL tests are reported as skipped. */
#ifndef CUSTODY_TESTS_PGTEST_H
#define CUSTODY_TESTS_PGTEST_H

#include <stddef.h>
#include <stdint.h>

#define PGTEST_SKIPPED "CUSTODY_TEST_PG_URL is not set: no PostgreSQL " \
	"server to test against (scripts/test-postgres.sh start; eval " \
	"\"$(scripts/test-postgres.sh env)\")"

/* The server's URL, or NULL when the tests have none. */
const char *pgtest_base_url(void);

/* Creates a fresh schema (name into schema[64]) and writes the store URL
 * whose search_path is that schema into url.  Asserts on failure. */
void pgtest_create(char *url, size_t url_size, char schema[64]);
/* Drops the schema and everything in it (no-op for ""). */
void pgtest_drop(const char *schema);

/* The database name of the base URL: what store messages name. */
const char *pgtest_dbname(void);

/* Runs sql on a connection of its own, search_path = schema. */
int64_t pgtest_int(const char *schema, const char *sql);
/* 0 when sql worked; else nonzero and the server's message in msg. */
int pgtest_try(const char *schema, const char *sql, char *msg, size_t size);
void pgtest_exec(const char *schema, const char *sql);

/* Skips the running test (cr_skip_test) when there is no server. */
void pgtest_required(void);

/* rm -rf of a test's temporary directory (no-op for ""). */
void pgtest_remove_tree(const char *dir);

#endif
