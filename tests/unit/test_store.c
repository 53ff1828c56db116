/* test_store.c — the store through its public interface: schema versions,
 * certificate and assignment round-trips, optimistic concurrency (between
 * handles and between processes), transactions and URL forms.  The tests
 * made with BOTH() run on the SQLite backend (suite "store", each test
 * with its own temporary directory) and again on PostgreSQL (suite
 * "store_pg", each test with its own schema; skipped without
 * CUSTODY_TEST_PG_URL, see pgtest.h); the others are about one backend:
 * files and modes for SQLite; notifications, lost connections and URLs
 * for PostgreSQL. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include <custody/error.h>
#include <custody/log.h>
#include <custody/records.h>
#include <custody/store.h>

#include "unit/pgtest.h"
#include "unit/testtagger.h"

#define A "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define B "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
#define C "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"

static char tmpdir[64];
static char dbpath[256];	/* tmpdir/var/lib/custody/custody.db (the
				 * directories made by setup) */
static char url[512];		/* sqlite:dbpath, or the PostgreSQL URL */
static int on_pg;		/* the test runs on PostgreSQL       */
static char schema[64];		/* PostgreSQL: the test's own schema */
static char store_name[256];	/* what messages call the store      */

static void
setup(void)
{
	strcpy(tmpdir, "/tmp/custody-store-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(dbpath, sizeof(dbpath), "%s/var", tmpdir);
	cr_assert_eq(mkdir(dbpath, 0700), 0);
	strcat(dbpath, "/lib");
	cr_assert_eq(mkdir(dbpath, 0700), 0);
	strcat(dbpath, "/custody");
	cr_assert_eq(mkdir(dbpath, 0700), 0);
	strcat(dbpath, "/custody.db");
	snprintf(url, sizeof(url), "sqlite:%s", dbpath);
	snprintf(store_name, sizeof(store_name), "%s", dbpath);
}

static void
teardown(void)
{
	pgtest_remove_tree(tmpdir);
}

TestSuite(store, .init = setup, .fini = teardown);

/* The same temporary directory (some tests chdir there), and a schema of
 * its own when there is a server. */
static void
pg_setup(void)
{
	setup();
	on_pg = 1;
	if (pgtest_base_url() == NULL)
		return;
	pgtest_create(url, sizeof(url), schema);
	snprintf(store_name, sizeof(store_name), "%s", pgtest_dbname());
}

static void
pg_teardown(void)
{
	if (pgtest_base_url() != NULL)
		pgtest_drop(schema);
	teardown();
}

TestSuite(store_pg, .init = pg_setup, .fini = pg_teardown);

/* BOTH(name[, options]) { body }: the body runs as store::name on SQLite
 * and as store_pg::name on PostgreSQL. */
#define BOTH(...) BOTH_(__VA_ARGS__, .disabled = 0)
#define BOTH_(name, ...) \
	static void name##_body(void); \
	Test(store, name, __VA_ARGS__) { name##_body(); } \
	Test(store_pg, name, __VA_ARGS__) { pgtest_required(); name##_body(); } \
	static void name##_body(void)

/* PG_ONLY(name[, options]) { body }: store_pg::name. */
#define PG_ONLY(...) PG_ONLY_(__VA_ARGS__, .disabled = 0)
#define PG_ONLY_(name, ...) \
	static void name##_body(void); \
	Test(store_pg, name, __VA_ARGS__) { pgtest_required(); name##_body(); } \
	static void name##_body(void)

/* The SQL of the test's backend, where the two differ. */
#define DIALECT(sqlite_sql, pg_sql) (on_pg ? (pg_sql) : (sqlite_sql))

/* ---------------------------------------------------------------- helpers */

static custody_store *
open_ok(void)
{
	custody_store *st = NULL;
	custody_err err = {0};

	cr_assert_eq(custody_store_open(url, &st, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_not_null(st);
	test_tagger_attach(st);
	return st;
}

static char *
xstrdup(const char *s)
{
	char *d = strdup(s);

	cr_assert_not_null(d);
	return d;
}

/* A certificate record made by hand: n picks the fingerprints and names. */
static custody_cert_record
make_cert(int n, int64_t not_after)
{
	custody_cert_record rec;
	static const unsigned char der[] = {
		0x30, 0x82, 0x00, 0x0a, 0x00, 0x00, 0xff, 0x01, 0x02, 0x00, 0x7f,
		0x80, 0x00, 0x00,
	};
	char text[128];
	int i;

	memset(&rec, 0, sizeof(rec));
	for (i = 0; i < CUSTODY_THUMBPRINT_HEX; i++)
		rec.thumbprint[i] = "0123456789ABCDEF"[(n + i) % 16];
	for (i = 0; i < CUSTODY_SHA256_HEX; i++)
		rec.sha256[i] = "FEDCBA9876543210"[(n * 3 + i) % 16];
	for (i = 0; i < CUSTODY_KEY_ID_HEX; i++)
		rec.key_id[i] = "0123456789abcdef"[(n * 7 + i) % 16];
	snprintf(text, sizeof(text), "CN=node%d.example.com,O=Example", n);
	rec.subject = xstrdup(text);
	rec.issuer = xstrdup("CN=Example CA,O=Example,C=US");
	snprintf(text, sizeof(text), "0A1B2C%04X", n);
	rec.serial = xstrdup(text);
	rec.not_before = not_after - 365 * 86400;
	rec.not_after = not_after;
	rec.n_alt_names = 3;
	rec.alt_names = calloc(3, sizeof(char *));
	cr_assert_not_null(rec.alt_names);
	snprintf(text, sizeof(text), "DNS:node%d.example.com", n);
	rec.alt_names[0] = xstrdup(text);
	rec.alt_names[1] = xstrdup("IP:10.0.0.1");
	/* A newline and a quote must not split or break the list. */
	rec.alt_names[2] = xstrdup("URI:spiffe://example/\"x\"\nDNS:evil.example");
	strcpy(rec.key_algorithm, "RSA-2048");
	snprintf(text, sizeof(text), "pkcs11:token=custody;id=%%%02x;type=private", n);
	rec.key_uri = xstrdup(text);
	snprintf(text, sizeof(text), "node%d", n);
	rec.label = xstrdup(text);
	rec.der = malloc(sizeof(der) + 1);
	cr_assert_not_null(rec.der);
	memcpy(rec.der, der, sizeof(der));
	rec.der[sizeof(der)] = (unsigned char)n;
	rec.der_len = sizeof(der) + 1;
	return rec;
}

static void
assert_opt_str_eq(const char *x, const char *y)
{
	if (y == NULL)
		cr_assert_null(x, "got \"%s\", want NULL", x);
	else
		cr_assert_str_eq(x, y);
}

static void
assert_cert_eq(const custody_cert_record *x, const custody_cert_record *y)
{
	size_t i;

	cr_assert_str_eq(x->thumbprint, y->thumbprint);
	cr_assert_str_eq(x->sha256, y->sha256);
	assert_opt_str_eq(x->subject, y->subject);
	assert_opt_str_eq(x->issuer, y->issuer);
	assert_opt_str_eq(x->serial, y->serial);
	cr_assert_eq(x->not_before, y->not_before);
	cr_assert_eq(x->not_after, y->not_after);
	cr_assert_eq(x->n_alt_names, y->n_alt_names);
	for (i = 0; i < y->n_alt_names; i++)
		cr_assert_str_eq(x->alt_names[i], y->alt_names[i]);
	cr_assert_str_eq(x->key_algorithm, y->key_algorithm);
	cr_assert_str_eq(x->key_id, y->key_id);
	assert_opt_str_eq(x->key_uri, y->key_uri);
	assert_opt_str_eq(x->label, y->label);
	cr_assert_eq(x->der_len, y->der_len);
	cr_assert_eq(memcmp(x->der, y->der, y->der_len), 0, "DER bytes differ");
}

static custody_assignment
make_assignment(const char *type, const char *identity)
{
	custody_assignment a;

	memset(&a, 0, sizeof(a));
	strcpy(a.type, type);
	strcpy(a.identity, identity);
	return a;
}

static void
slot_set(custody_slot *s, const char *thumbprint, int64_t effective)
{
	strcpy(s->thumbprint, thumbprint);
	s->effective = effective;
}

static void
put_ok(custody_store *st, custody_assignment *a)
{
	custody_err err = {0};

	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_put_assignment(st, a, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_eq(custody_store_commit(st, &err), CUSTODY_OK, "%s", err.msg);
}

static void
put_cert_ok(custody_store *st, const custody_cert_record *rec)
{
	custody_err err = {0};

	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_put_cert(st, rec, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_commit(st, &err), CUSTODY_OK, "%s", err.msg);
}

static int64_t
sql_int(const char *sql)
{
	sqlite3 *db = NULL;

	if (on_pg)
		return pgtest_int(schema, sql);
	sqlite3_stmt *q = NULL;
	int64_t v;

	cr_assert_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL),
		     SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK, "%s",
		     sqlite3_errmsg(db));
	cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
	v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(db);
	return v;
}

static void
sql_exec(const char *sql)
{
	sqlite3 *db = NULL;

	if (on_pg) {
		pgtest_exec(schema, sql);
		return;
	}
	cr_assert_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s",
		     sqlite3_errmsg(db));
	sqlite3_close(db);
}

static int
contains(const char *haystack, const char *needle)
{
	return strstr(haystack, needle) != NULL;
}

/* ---------------------------------------------------------------- files */

Test(store, open_creates_the_file_0600_and_says_it_made_the_store)
{
	custody_store *st;
	struct stat sb;
	char wal[300];
	mode_t old = umask(0);

	st = open_ok();
	umask(old);
	cr_assert_eq(custody_store_made(st), 1);
	cr_assert_str_eq(custody_store_where(st), dbpath);
	cr_assert_eq(stat(dbpath, &sb), 0);
	cr_assert(S_ISREG(sb.st_mode));
	cr_assert_eq(sb.st_mode & 07777, 0600, "mode %o", sb.st_mode & 07777);
	/* The write-ahead log holds the same data: same mode. */
	snprintf(wal, sizeof(wal), "%s-wal", dbpath);
	cr_assert_eq(stat(wal, &sb), 0, "no WAL file: %s", strerror(errno));
	cr_assert_eq(sb.st_mode & 07777, 0600, "WAL mode %o", sb.st_mode & 07777);
	custody_store_close(st);
	st = open_ok();
	cr_assert_eq(custody_store_made(st), 0, "the second open made nothing");
	custody_store_close(st);
}

Test(store, a_missing_directory_is_an_error_and_nothing_is_made)
{
	custody_store *st = NULL;
	custody_err err = {0};
	char missing[300], where[400];
	struct stat sb;

	snprintf(missing, sizeof(missing), "%s/no/such", tmpdir);
	snprintf(where, sizeof(where), "sqlite:%s/x.db", missing);
	cr_assert_eq(custody_store_open(where, &st, &err), CUSTODY_EFAIL);
	cr_assert_null(st);
	cr_assert(contains(err.msg, "directory") && contains(err.msg, missing) &&
		  contains(err.msg, "does not exist"), "%s", err.msg);
	snprintf(missing, sizeof(missing), "%s/no", tmpdir);
	cr_assert_neq(stat(missing, &sb), 0, "a directory was made");
	cr_assert_eq(custody_store_open_existing(where, &st, &err), CUSTODY_EFAIL);
	cr_assert_neq(stat(missing, &sb), 0, "a directory was made");
}

Test(store, a_read_never_makes_a_store)
{
	custody_store *st = NULL;
	custody_err err = {0};
	struct stat sb;
	int fd;

	cr_assert_eq(custody_store_open_existing(url, &st, &err), CUSTODY_EFAIL);
	cr_assert_null(st);
	cr_assert(contains(err.msg, "no store at") && contains(err.msg, dbpath),
		  "%s", err.msg);
	cr_assert(contains(err.hint, "custody import"), "%s", err.hint);
	cr_assert_neq(stat(dbpath, &sb), 0, "the read made %s", dbpath);
	/* An empty file is no store either: the read leaves it empty. */
	fd = open(dbpath, O_CREAT | O_WRONLY, 0600);
	cr_assert(fd >= 0);
	close(fd);
	cr_assert_eq(custody_store_open_existing(url, &st, &err), CUSTODY_EFAIL);
	cr_assert(contains(err.msg, "no store at"), "%s", err.msg);
	cr_assert_eq(stat(dbpath, &sb), 0);
	cr_assert_eq(sb.st_size, 0, "the read wrote %lld bytes", (long long)sb.st_size);
	/* Once a write has made it, a read opens it. */
	custody_store_close(open_ok());
	cr_assert_eq(custody_store_open_existing(url, &st, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_eq(custody_store_made(st), 0);
	custody_store_close(st);
}

/* A first write that fails closes with custody_store_close_failed: the
 * store its open made is removed (with its -wal and -shm), and a
 * connection another process opened to it meanwhile refuses to write
 * into the removed file; a store that was written to stays. */
Test(store, a_failed_first_write_removes_the_store_it_made)
{
	custody_store *made, *other = NULL;
	custody_err err = {0};
	custody_cert_record rec = make_cert(1, 2000000000);
	char side[300];
	struct stat sb;

	made = open_ok();
	cr_assert_eq(custody_store_made(made), 1);
	cr_assert_eq(custody_store_open_existing(url, &other, &err), CUSTODY_OK,
		     "%s", err.msg);
	custody_store_close_failed(made);
	cr_assert_neq(stat(dbpath, &sb), 0, "%s stays", dbpath);
	snprintf(side, sizeof(side), "%s-wal", dbpath);
	cr_assert_neq(stat(side, &sb), 0, "%s stays", side);
	snprintf(side, sizeof(side), "%s-shm", dbpath);
	cr_assert_neq(stat(side, &sb), 0, "%s stays", side);
	cr_assert_eq(custody_store_begin(other, &err), CUSTODY_EFAIL);
	cr_assert(contains(err.msg, "was removed") && contains(err.msg, dbpath),
		  "%s", err.msg);
	cr_assert(contains(err.hint, "run the command again"), "%s", err.hint);
	custody_store_close(other);
	cr_assert_neq(stat(dbpath, &sb), 0, "the refused write made %s again", dbpath);

	/* Written to by another connection: it stays. */
	made = open_ok();
	other = open_ok();
	cr_assert_eq(custody_store_made(other), 0);
	put_cert_ok(other, &rec);
	custody_store_close(other);
	custody_store_close_failed(made);
	cr_assert_eq(stat(dbpath, &sb), 0, "a written store was removed");
	/* Not made by this open: it stays, even empty of certificates. */
	other = open_ok();
	custody_store_close_failed(other);
	cr_assert_eq(stat(dbpath, &sb), 0, "a store this open did not make was removed");
	custody_cert_record_clear(&rec);
}

static char warned[1024];

static void
capture(enum custody_log_level level, const char *line, void *ctx)
{
	(void)ctx;
	if (level == CUSTODY_LOG_WARN)
		snprintf(warned, sizeof(warned), "%s", line);
}

Test(store, a_store_other_users_can_read_is_warned_about)
{
	custody_store *st;
	char dir[300];
	int fd;

	snprintf(dir, sizeof(dir), "%s/var/lib/custody", tmpdir);
	cr_assert_eq(chmod(dir, 0755), 0);
	fd = open(dbpath, O_CREAT | O_WRONLY, 0600);
	cr_assert(fd >= 0);
	cr_assert_eq(fchmod(fd, 0644), 0);
	close(fd);
	custody_log_set_handler(capture, NULL);
	st = open_ok();
	custody_log_set_handler(NULL, NULL);
	cr_assert(contains(warned, dbpath), "warning: \"%s\"", warned);
	cr_assert(contains(warned, "can be read by other users (mode 0644)"),
		  "warning: \"%s\"", warned);
	custody_store_close(st);
}

Test(store, relative_path_is_relative_to_the_cwd)
{
	custody_store *st = NULL;
	custody_err err = {0};
	char abs[300];
	struct stat sb;

	cr_assert_eq(chdir(tmpdir), 0);
	cr_assert_eq(mkdir("data", 0700), 0);
	cr_assert_eq(custody_store_open("sqlite:data/rel.db", &st, &err), CUSTODY_OK,
		     "%s", err.msg);
	snprintf(abs, sizeof(abs), "%s/data/rel.db", tmpdir);
	cr_assert_eq(stat(abs, &sb), 0);
	custody_store_close(st);
}

Test(store, a_path_that_looks_like_an_sqlite_uri_stays_a_path)
{
	custody_store *st = NULL;
	custody_assignment a = make_assignment("Default", "global"), got;
	custody_err err = {0};
	struct stat sb;

	cr_assert_eq(chdir(tmpdir), 0);
	cr_assert_eq(custody_store_open("sqlite:file:odd.db?mode=memory", &st, &err),
		     CUSTODY_OK, "%s", err.msg);
	test_tagger_attach(st);
	slot_set(&a.current, A, 1);
	put_ok(st, &a);
	custody_store_close(st);
	cr_assert_eq(stat("file:odd.db?mode=memory", &sb), 0);
	cr_assert(sb.st_size > 0 || stat("file:odd.db?mode=memory-wal", &sb) == 0);
	cr_assert_eq(custody_store_open("sqlite:file:odd.db?mode=memory", &st, &err),
		     CUSTODY_OK, "%s", err.msg);
	test_tagger_attach(st);
	cr_assert_eq(custody_store_get_assignment(st, "Default", "global", &got, &err),
		     CUSTODY_OK, "the data is in the file, not in memory: %s", err.msg);
	custody_store_close(st);
}

Test(store, a_file_that_is_not_a_database_is_refused)
{
	custody_store *st = NULL;
	custody_err err = {0};
	FILE *f;

	f = fopen(dbpath, "w");
	cr_assert_not_null(f);
	fputs("this is not an SQLite database, but it is long enough to be read "
	      "as a header of one: the first hundred bytes of the file are read\n",
	      f);
	fclose(f);
	cr_assert_eq(custody_store_open(url, &st, &err), CUSTODY_EFAIL);
	cr_assert_null(st);
	cr_assert(contains(err.msg, dbpath), "%s", err.msg);
	cr_assert(contains(err.msg, "not a database"), "%s", err.msg);
}

/* ---------------------------------------------------------------- schema */

BOTH(schema_version_is_recorded)
{
	custody_store *st = open_ok();

	cr_assert_eq(custody_store_schema_version(), 5);
	cr_assert_eq(sql_int("SELECT max(version) FROM schema_version"),
		     custody_store_schema_version());
	/* One row per migration, each applied once. */
	cr_assert_eq(sql_int("SELECT count(*) FROM schema_version"),
		     custody_store_schema_version());
	cr_assert_eq(sql_int(DIALECT("SELECT count(*) FROM sqlite_master WHERE type = "
				     "'table' AND name IN ('certificates', 'assignments')",
				     "SELECT count(*) FROM pg_tables WHERE schemaname = "
				     "current_schema() AND tablename IN ('certificates', "
				     "'assignments')")), 2);
	cr_assert_eq(sql_int(DIALECT("SELECT count(*) FROM sqlite_master WHERE type = "
				     "'table' AND name IN ('audit', 'audit_head')",
				     "SELECT count(*) FROM pg_tables WHERE schemaname = "
				     "current_schema() AND tablename IN ('audit', "
				     "'audit_head')")), 2);
	if (!on_pg)
		cr_assert_eq(sql_int("SELECT count(*) FROM pragma_journal_mode "
				     "WHERE journal_mode = 'wal'"), 1);
	else
		cr_assert_eq(sql_int("SELECT count(*) FROM pg_tables WHERE "
				     "schemaname = 'public'"), 0,
			     "the tables are in the schema of the URL");
	custody_store_close(st);
}

BOTH(a_newer_schema_is_refused_naming_both_versions)
{
	custody_store *st = open_ok();
	custody_err err = {0};

	custody_store_close(st);
	sql_exec("INSERT INTO schema_version (version, applied_at) VALUES (7, 0)");
	st = NULL;
	cr_assert_eq(custody_store_open(url, &st, &err), CUSTODY_EFAIL);
	cr_assert_null(st);
	cr_assert_eq(err.code, CUSTODY_EFAIL);
	cr_assert(contains(err.msg, store_name), "%s", err.msg);
	cr_assert(contains(err.msg, "schema version 7 is newer than version 5 "
			   "of this build"), "%s", err.msg);
	cr_assert_eq(sql_int("SELECT max(version) FROM schema_version"), 7);
}

BOTH(reopen_keeps_data_and_does_not_migrate_again)
{
	custody_store *st = open_ok();
	custody_cert_record rec = make_cert(1, 2000000000), got;
	custody_assignment a = make_assignment("Default", "global"), b;
	custody_err err = {0};

	put_cert_ok(st, &rec);
	slot_set(&a.current, rec.thumbprint, 1700000000);
	put_ok(st, &a);
	custody_store_close(st);

	st = open_ok();
	cr_assert_eq(custody_store_get_cert(st, rec.thumbprint, &got, &err),
		     CUSTODY_OK, "%s", err.msg);
	assert_cert_eq(&got, &rec);
	cr_assert_eq(custody_store_get_assignment(st, "Default", "global", &b, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_str_eq(b.current.thumbprint, rec.thumbprint);
	cr_assert_eq(b.version, 1);
	cr_assert_eq(sql_int("SELECT count(*) FROM schema_version"),
		     custody_store_schema_version());
	custody_cert_record_clear(&got);
	custody_cert_record_clear(&rec);
	custody_store_close(st);
}

BOTH(concurrent_first_opens_create_the_schema_once)
{
	pid_t pids[8];
	int i, status;

	for (i = 0; i < 8; i++) {
		pids[i] = fork();
		cr_assert(pids[i] >= 0);
		if (pids[i] == 0) {
			custody_store *st = NULL;
			custody_err err = {0};
			int r = custody_store_open(url, &st, &err);

			if (r != CUSTODY_OK)
				fprintf(stderr, "child open: %s\n", err.msg);
			custody_store_close(st);
			_exit(r == CUSTODY_OK ? 0 : 10 + r);
		}
	}
	for (i = 0; i < 8; i++) {
		cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			  "child %d: status %d", i, status);
	}
	cr_assert_eq(sql_int("SELECT count(*) FROM schema_version"),
		     custody_store_schema_version());
	cr_assert_eq(sql_int("SELECT count(*) FROM audit_head"), 1);
}

/* ---------------------------------------------------------------- certificates */

BOTH(cert_round_trip_keeps_every_field)
{
	custody_store *st = open_ok();
	custody_cert_record rec = make_cert(5, 1900000000), got;
	custody_err err = {0};

	put_cert_ok(st, &rec);
	cr_assert_eq(custody_store_get_cert(st, rec.thumbprint, &got, &err),
		     CUSTODY_OK, "%s", err.msg);
	assert_cert_eq(&got, &rec);
	cr_assert_str_eq(got.alt_names[2], "URI:spiffe://example/\"x\"\nDNS:evil.example");
	cr_assert_eq(got.der[4], 0x00);
	cr_assert_eq(got.der[got.der_len - 1], 5);
	custody_cert_record_clear(&got);
	custody_cert_record_clear(&rec);
	custody_store_close(st);
}

BOTH(cert_without_optional_fields)
{
	custody_store *st = open_ok();
	custody_cert_record rec = make_cert(6, 1900000000), got;
	custody_err err = {0};
	size_t i;

	for (i = 0; i < rec.n_alt_names; i++)
		free(rec.alt_names[i]);
	free(rec.alt_names);
	rec.alt_names = NULL;
	rec.n_alt_names = 0;
	free(rec.key_uri);
	rec.key_uri = NULL;
	free(rec.label);
	rec.label = NULL;
	put_cert_ok(st, &rec);
	cr_assert_eq(custody_store_get_cert(st, rec.thumbprint, &got, &err),
		     CUSTODY_OK, "%s", err.msg);
	assert_cert_eq(&got, &rec);
	cr_assert_null(got.alt_names);
	cr_assert_null(got.key_uri);
	cr_assert_null(got.label);
	custody_cert_record_clear(&got);
	custody_cert_record_clear(&rec);
	custody_store_close(st);
}

BOTH(put_cert_twice_updates_key_uri_and_label_only)
{
	custody_store *st = open_ok();
	custody_cert_record rec = make_cert(2, 1900000000), again, got;
	custody_err err = {0};

	put_cert_ok(st, &rec);
	cr_assert_eq(custody_cert_record_copy(&again, &rec), 0);
	free(again.key_uri);
	again.key_uri = xstrdup("pkcs11:token=other;id=%02;type=private");
	free(again.label);
	again.label = xstrdup("renamed");
	free(again.subject);
	again.subject = xstrdup("CN=forged");
	again.not_after = 1;
	put_cert_ok(st, &again);

	cr_assert_eq(custody_store_get_cert(st, rec.thumbprint, &got, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_str_eq(got.key_uri, "pkcs11:token=other;id=%02;type=private");
	cr_assert_str_eq(got.label, "renamed");
	cr_assert_str_eq(got.subject, rec.subject, "the facts of a certificate never change");
	cr_assert_eq(got.not_after, rec.not_after);
	cr_assert_eq(sql_int("SELECT count(*) FROM certificates"), 1);
	custody_cert_record_clear(&got);
	custody_cert_record_clear(&again);
	custody_cert_record_clear(&rec);
	custody_store_close(st);
}

BOTH(get_missing_cert_is_not_found)
{
	custody_store *st = open_ok();
	custody_cert_record got;
	custody_err err = {0};
	char want[512];

	cr_assert_eq(custody_store_get_cert(st, A, &got, &err), CUSTODY_ENOTFOUND);
	cr_assert_eq(err.code, CUSTODY_ENOTFOUND);
	snprintf(want, sizeof(want), "no certificate with thumbprint " A
		 " in store %s", on_pg ? "postgresql://" : dbpath);
	cr_assert(strncmp(err.msg, want, strlen(want)) == 0, "%s", err.msg);
	cr_assert(contains(err.msg, store_name), "%s", err.msg);
	if (!on_pg)
		cr_assert_str_eq(err.msg, want);
	custody_store_close(st);
}

BOTH(thumbprint_lookup_is_exact)
{
	custody_store *st = open_ok();
	custody_cert_record rec = make_cert(3, 1900000000), got;
	custody_err err = {0};
	char lower[CUSTODY_THUMBPRINT_HEX + 1];
	size_t i;

	put_cert_ok(st, &rec);
	for (i = 0; i <= CUSTODY_THUMBPRINT_HEX; i++)
		lower[i] = (char)(rec.thumbprint[i] >= 'A' && rec.thumbprint[i] <= 'F' ?
				  rec.thumbprint[i] + 32 : rec.thumbprint[i]);
	cr_assert_eq(custody_store_get_cert(st, lower, &got, &err), CUSTODY_ENOTFOUND);
	custody_cert_record_clear(&rec);
	custody_store_close(st);
}

BOTH(list_certs_by_expiry_then_thumbprint)
{
	custody_store *st = open_ok();
	custody_cert_record r1 = make_cert(1, 1900000000);
	custody_cert_record r2 = make_cert(2, 1800000000);
	custody_cert_record r3 = make_cert(3, 1900000000);
	custody_cert_record *list = NULL;
	size_t n = 0;
	custody_err err = {0};

	put_cert_ok(st, &r3);
	put_cert_ok(st, &r1);
	put_cert_ok(st, &r2);
	cr_assert_eq(custody_store_list_certs(st, &list, &n, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_eq(n, 3);
	assert_cert_eq(&list[0], &r2);
	/* r1 and r3 expire together: thumbprint order, "1234..." < "3456...". */
	assert_cert_eq(&list[1], &r1);
	assert_cert_eq(&list[2], &r3);
	custody_cert_records_free(list, n);
	custody_cert_record_clear(&r1);
	custody_cert_record_clear(&r2);
	custody_cert_record_clear(&r3);
	custody_store_close(st);
}

BOTH(list_certs_of_some_thumbprints_reads_only_those)
{
	custody_store *st = open_ok();
	custody_cert_record r1 = make_cert(1, 1900000000);
	custody_cert_record r2 = make_cert(2, 1800000000);
	custody_cert_record r3 = make_cert(3, 1900000000);
	custody_cert_record *list = NULL;
	const char *want[3], *bad[1] = {"1234"};
	size_t n = 0;
	custody_err err = {0};

	put_cert_ok(st, &r1);
	put_cert_ok(st, &r2);
	put_cert_ok(st, &r3);
	/* r3 and r1, and one the store does not hold. */
	want[0] = r3.thumbprint;
	want[1] = "00000000000000000000000000000000000000AA";
	want[2] = r1.thumbprint;
	cr_assert_eq(custody_store_list_certs_of(st, want, 3, &list, &n, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(n, 2);
	assert_cert_eq(&list[0], &r1);
	assert_cert_eq(&list[1], &r3);
	custody_cert_records_free(list, n);
	list = NULL;
	cr_assert_eq(custody_store_list_certs_of(st, want, 0, &list, &n, &err),
		     CUSTODY_OK);
	cr_assert_eq(n, 0);
	cr_assert_null(list);
	/* A malformed thumbprint (a comma would widen the filter) is refused. */
	cr_assert_eq(custody_store_list_certs_of(st, bad, 1, &list, &n, &err),
		     CUSTODY_EUSAGE);
	bad[0] = "1234567890123456789012345678901234567,AB";
	cr_assert_eq(custody_store_list_certs_of(st, bad, 1, &list, &n, &err),
		     CUSTODY_EUSAGE);
	cr_assert_null(list);
	custody_cert_record_clear(&r1);
	custody_cert_record_clear(&r2);
	custody_cert_record_clear(&r3);
	custody_store_close(st);
}

BOTH(list_certs_of_an_empty_store)
{
	custody_store *st = open_ok();
	custody_cert_record *list = (custody_cert_record *)1;
	size_t n = 99;
	custody_err err = {0};

	cr_assert_eq(custody_store_list_certs(st, &list, &n, &err), CUSTODY_OK);
	cr_assert_eq(n, 0);
	cr_assert_null(list);
	custody_store_close(st);
}

BOTH(delete_cert)
{
	custody_store *st = open_ok();
	custody_cert_record r1 = make_cert(1, 1900000000);
	custody_cert_record r2 = make_cert(2, 1900000000), got;
	custody_err err = {0};

	put_cert_ok(st, &r1);
	put_cert_ok(st, &r2);
	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK);
	cr_assert_eq(custody_store_delete_cert(st, r1.thumbprint, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_eq(custody_store_delete_cert(st, r1.thumbprint, &err),
		     CUSTODY_ENOTFOUND);
	cr_assert(contains(err.msg, r1.thumbprint), "%s", err.msg);
	cr_assert_eq(custody_store_commit(st, &err), CUSTODY_OK);
	cr_assert_eq(custody_store_get_cert(st, r1.thumbprint, &got, &err),
		     CUSTODY_ENOTFOUND);
	cr_assert_eq(custody_store_get_cert(st, r2.thumbprint, &got, &err), CUSTODY_OK);
	assert_cert_eq(&got, &r2);
	custody_cert_record_clear(&got);
	custody_cert_record_clear(&r1);
	custody_cert_record_clear(&r2);
	custody_store_close(st);
}

/* ---------------------------------------------------------------- assignments */

BOTH(assignment_round_trip_and_versions)
{
	custody_store *st = open_ok();
	custody_assignment a = make_assignment("OAuthTokenIssuer", "global"), got;
	custody_err err = {0};

	slot_set(&a.current, A, 1767225600);
	slot_set(&a.pending, C, 1767312000);
	put_ok(st, &a);
	cr_assert_eq(a.version, 1);
	cr_assert_eq(custody_store_get_assignment(st, "OAuthTokenIssuer", "global",
						  &got, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(memcmp(&got, &a, sizeof(a)), 0, "round trip differs");
	cr_assert_str_empty(got.previous.thumbprint);
	cr_assert_eq(got.previous.effective, 0);

	/* The roll happens: pending → current, current → previous. */
	got.previous = got.current;
	got.current = got.pending;
	memset(&got.pending, 0, sizeof(got.pending));
	put_ok(st, &got);
	cr_assert_eq(got.version, 2);
	cr_assert_eq(custody_store_get_assignment(st, "OAuthTokenIssuer", "global",
						  &a, &err), CUSTODY_OK);
	cr_assert_eq(memcmp(&got, &a, sizeof(a)), 0, "round trip differs");
	cr_assert_str_eq(a.current.thumbprint, C);
	cr_assert_eq(a.current.effective, 1767312000);
	cr_assert_str_eq(a.previous.thumbprint, A);
	cr_assert_eq(a.previous.effective, 1767225600);
	cr_assert_eq(sql_int("SELECT count(*) FROM assignments WHERE "
			     "pending_thumbprint IS NULL AND pending_effective IS NULL"), 1);
	custody_store_close(st);
}

BOTH(missing_assignment_is_not_found)
{
	custody_store *st = open_ok();
	custody_assignment got;
	custody_err err = {0};

	cr_assert_eq(custody_store_get_assignment(st, "Default", "node1", &got, &err),
		     CUSTODY_ENOTFOUND);
	cr_assert_eq(err.code, CUSTODY_ENOTFOUND);
	cr_assert_str_eq(err.msg, "no certificate is assigned for type Default "
			 "(identity node1)");
	custody_store_close(st);
}

BOTH(stale_version_is_a_conflict_and_changes_nothing)
{
	custody_store *st = open_ok();
	custody_assignment a = make_assignment("Default", "global"), stale, got;
	custody_err err = {0};

	slot_set(&a.current, A, 100);
	put_ok(st, &a);
	stale = a;
	slot_set(&a.current, B, 200);
	slot_set(&a.previous, A, 100);
	put_ok(st, &a);
	cr_assert_eq(a.version, 2);

	slot_set(&stale.current, C, 300);
	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK);
	cr_assert_eq(custody_store_put_assignment(st, &stale, &err), CUSTODY_ECONFLICT);
	custody_store_rollback(st);
	cr_assert_eq(err.code, CUSTODY_ECONFLICT);
	cr_assert(contains(err.msg, "assignment changed concurrently"), "%s", err.msg);
	cr_assert(contains(err.msg, store_name), "%s", err.msg);
	cr_assert_eq(stale.version, 1, "a failed put keeps the version it read");
	cr_assert_eq(custody_store_get_assignment(st, "Default", "global", &got, &err),
		     CUSTODY_OK);
	cr_assert_eq(memcmp(&got, &a, sizeof(a)), 0, "the stored row changed");
	custody_store_close(st);
}

BOTH(insert_over_an_existing_row_is_a_conflict)
{
	custody_store *st = open_ok();
	custody_assignment a = make_assignment("Default", "global");
	custody_assignment b = make_assignment("DEFAULT", "Global"), got;
	custody_err err = {0};

	slot_set(&a.current, A, 100);
	put_ok(st, &a);
	slot_set(&b.current, B, 200);
	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK);
	cr_assert_eq(custody_store_put_assignment(st, &b, &err), CUSTODY_ECONFLICT);
	cr_assert(contains(err.msg, "assignment changed concurrently"), "%s", err.msg);
	custody_store_rollback(st);
	cr_assert_eq(b.version, 0);
	cr_assert_eq(custody_store_get_assignment(st, "default", "GLOBAL", &got, &err),
		     CUSTODY_OK);
	cr_assert_str_eq(got.current.thumbprint, A);
	cr_assert_eq(sql_int("SELECT count(*) FROM assignments"), 1);
	custody_store_close(st);
}

BOTH(two_handles_a_concurrent_change_is_detected_not_lost)
{
	custody_store *sa = open_ok();
	custody_store *sb = open_ok();
	custody_assignment a = make_assignment("Default", "global"), ra, rb, got;
	custody_err err = {0};

	slot_set(&a.current, A, 100);
	put_ok(sa, &a);
	/* A reads. */
	cr_assert_eq(custody_store_get_assignment(sa, "Default", "global", &ra, &err),
		     CUSTODY_OK);
	/* B reads and writes. */
	cr_assert_eq(custody_store_get_assignment(sb, "Default", "global", &rb, &err),
		     CUSTODY_OK);
	slot_set(&rb.previous, A, 100);
	slot_set(&rb.current, B, 200);
	put_ok(sb, &rb);
	/* A's write, decided on what it read, must fail. */
	slot_set(&ra.previous, A, 100);
	slot_set(&ra.current, C, 300);
	cr_assert_eq(custody_store_begin(sa, &err), CUSTODY_OK);
	cr_assert_eq(custody_store_put_assignment(sa, &ra, &err), CUSTODY_ECONFLICT);
	custody_store_rollback(sa);
	cr_assert(contains(err.msg, "assignment changed concurrently"), "%s", err.msg);
	/* B's change is there, seen from both handles. */
	cr_assert_eq(custody_store_get_assignment(sa, "Default", "global", &got, &err),
		     CUSTODY_OK);
	cr_assert_str_eq(got.current.thumbprint, B);
	cr_assert_eq(got.version, 2);
	cr_assert_eq(custody_store_get_assignment(sb, "Default", "global", &got, &err),
		     CUSTODY_OK);
	cr_assert_str_eq(got.current.thumbprint, B);
	custody_store_close(sa);
	custody_store_close(sb);
}

#define WORKERS 8
#define INCREMENTS 50

/* One process: INCREMENTS read-modify-write cycles of the counter kept in
 * current.effective, retrying on ECONFLICT.  Exit status 0 = all done. */
static int
increment_worker(void)
{
	custody_store *st = NULL;
	custody_err err = {0};
	int done = 0;
	int r;

	if (custody_store_open(url, &st, &err) != CUSTODY_OK) {
		fprintf(stderr, "worker open: %s\n", err.msg);
		return 2;
	}
	test_tagger_attach(st);
	while (done < INCREMENTS) {
		custody_assignment a;

		r = custody_store_get_assignment(st, "Default", "global", &a, &err);
		if (r == CUSTODY_ENOTFOUND) {
			a = make_assignment("Default", "global");
			slot_set(&a.current, A, 0);
		} else if (r != CUSTODY_OK) {
			fprintf(stderr, "worker get: %s\n", err.msg);
			return 3;
		}
		a.current.effective++;
		if (custody_store_begin(st, &err) != CUSTODY_OK) {
			fprintf(stderr, "worker begin: %s\n", err.msg);
			return 4;
		}
		r = custody_store_put_assignment(st, &a, &err);
		if (r == CUSTODY_ECONFLICT) {
			custody_store_rollback(st);
			continue;
		}
		if (r != CUSTODY_OK || custody_store_commit(st, &err) != CUSTODY_OK) {
			fprintf(stderr, "worker put: %s\n", err.msg);
			custody_store_rollback(st);
			return 5;
		}
		done++;
	}
	custody_store_close(st);
	return 0;
}

BOTH(concurrent_processes_lose_no_change)
{
	pid_t pids[WORKERS];
	custody_store *st;
	custody_assignment got;
	custody_err err = {0};
	int i, status;

	for (i = 0; i < WORKERS; i++) {
		pids[i] = fork();
		cr_assert(pids[i] >= 0);
		if (pids[i] == 0)
			_exit(increment_worker());
	}
	for (i = 0; i < WORKERS; i++) {
		cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			  "worker %d: status %d", i, status);
	}
	st = open_ok();
	cr_assert_eq(custody_store_get_assignment(st, "Default", "global", &got, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(got.current.effective, WORKERS * INCREMENTS,
		     "count %lld", (long long)got.current.effective);
	cr_assert_eq(got.version, WORKERS * INCREMENTS);
	custody_store_close(st);
}

BOTH(type_and_identity_match_case_insensitively)
{
	custody_store *st = open_ok();
	custody_assignment a = make_assignment("OAuthTokenIssuer", "global"), got;
	custody_err err = {0};

	slot_set(&a.current, A, 100);
	put_ok(st, &a);
	cr_assert_eq(custody_store_get_assignment(st, "oauthtokenissuer", "GLOBAL",
						  &got, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_str_eq(got.type, "OAuthTokenIssuer", "stored case is kept");
	cr_assert_str_eq(got.identity, "global");
	cr_assert_str_eq(got.current.thumbprint, A);

	/* An update through other case updates the same row. */
	strcpy(got.type, "OAUTHTOKENISSUER");
	slot_set(&got.current, B, 200);
	put_ok(st, &got);
	cr_assert_eq(sql_int("SELECT count(*) FROM assignments"), 1);
	cr_assert_eq(sql_int(DIALECT("SELECT count(*) FROM assignments WHERE type = "
				     "'OAuthTokenIssuer' COLLATE BINARY AND version = 2",
				     "SELECT count(*) FROM assignments WHERE type = "
				     "'OAuthTokenIssuer' COLLATE \"C\" AND version = 2")), 1);
	custody_store_close(st);
}

BOTH(list_assignments_by_type_then_global_first)
{
	custody_store *st = open_ok();
	static const char *const rows[][2] = {
		{"OAuthTokenIssuer", "global"}, {"Default", "node2"},
		{"Default", "Node1"}, {"Default", "global"}, {"XmppServer", "edge1"},
	};
	static const char *const want[][2] = {
		{"Default", "global"}, {"Default", "Node1"}, {"Default", "node2"},
		{"OAuthTokenIssuer", "global"}, {"XmppServer", "edge1"},
	};
	custody_assignment *list = NULL;
	size_t n = 0, i;
	custody_err err = {0};

	for (i = 0; i < 5; i++) {
		custody_assignment a = make_assignment(rows[i][0], rows[i][1]);

		slot_set(&a.current, A, (int64_t)i);
		put_ok(st, &a);
	}
	cr_assert_eq(custody_store_list_assignments(st, &list, &n, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_eq(n, 5);
	for (i = 0; i < 5; i++) {
		cr_assert_str_eq(list[i].type, want[i][0], "row %zu", i);
		cr_assert_str_eq(list[i].identity, want[i][1], "row %zu", i);
		cr_assert_eq(list[i].version, 1);
	}
	free(list);
	custody_store_close(st);
}

BOTH(an_empty_record_deletes_the_row_with_the_version_check)
{
	custody_store *st = open_ok();
	custody_assignment a = make_assignment("Default", "global"), stale, got;
	custody_err err = {0};

	slot_set(&a.current, A, 100);
	put_ok(st, &a);
	stale = a;
	slot_set(&a.previous, A, 100);
	slot_set(&a.current, B, 200);
	put_ok(st, &a);

	/* Emptied from a stale read: refused, row kept. */
	memset(&stale.current, 0, sizeof(stale.current));
	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK);
	cr_assert_eq(custody_store_put_assignment(st, &stale, &err), CUSTODY_ECONFLICT);
	custody_store_rollback(st);
	cr_assert_eq(custody_store_get_assignment(st, "Default", "global", &got, &err),
		     CUSTODY_OK);
	cr_assert_eq(got.version, 2);

	/* Emptied from the current version: the row goes. */
	memset(&got.current, 0, sizeof(got.current));
	memset(&got.previous, 0, sizeof(got.previous));
	put_ok(st, &got);
	cr_assert_eq(got.version, 0);
	cr_assert_eq(custody_store_get_assignment(st, "Default", "global", &got, &err),
		     CUSTODY_ENOTFOUND);
	cr_assert_eq(sql_int("SELECT count(*) FROM assignments"), 0);
	custody_store_close(st);
}

BOTH(an_empty_new_record_writes_nothing)
{
	custody_store *st = open_ok();
	custody_assignment a = make_assignment("Default", "global");

	put_ok(st, &a);
	cr_assert_eq(a.version, 0);
	cr_assert_eq(sql_int("SELECT count(*) FROM assignments"), 0);
	custody_store_close(st);
}

BOTH(bad_assignment_names_are_usage_errors)
{
	custody_store *st = open_ok();
	custody_assignment a = make_assignment("", "global"), got;
	custody_err err = {0};

	slot_set(&a.current, A, 1);
	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK);
	cr_assert_eq(custody_store_put_assignment(st, &a, &err), CUSTODY_EUSAGE);
	cr_assert_str_eq(err.msg, "bad assignment: the type is empty");
	custody_store_rollback(st);
	cr_assert_eq(custody_store_get_assignment(st, "Default", NULL, &got, &err),
		     CUSTODY_EUSAGE);
	cr_assert_str_eq(err.msg, "bad assignment: the identity is empty");
	cr_assert_eq(sql_int("SELECT count(*) FROM assignments"), 0);
	custody_store_close(st);
}

/* ---------------------------------------------------------------- transactions */

BOTH(rollback_leaves_nothing)
{
	custody_store *st = open_ok();
	custody_store *other = open_ok();
	custody_cert_record rec = make_cert(4, 1900000000), got;
	custody_assignment a = make_assignment("Default", "global"), ga;
	custody_err err = {0};

	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK);
	cr_assert_eq(custody_store_put_cert(st, &rec, &err), CUSTODY_OK, "%s", err.msg);
	slot_set(&a.current, rec.thumbprint, 100);
	cr_assert_eq(custody_store_put_assignment(st, &a, &err), CUSTODY_OK);
	/* Inside the transaction it reads its own writes... */
	cr_assert_eq(custody_store_get_cert(st, rec.thumbprint, &got, &err), CUSTODY_OK);
	custody_cert_record_clear(&got);
	/* ...others do not. */
	cr_assert_eq(custody_store_get_cert(other, rec.thumbprint, &got, &err),
		     CUSTODY_ENOTFOUND);
	custody_store_rollback(st);

	cr_assert_eq(custody_store_get_cert(st, rec.thumbprint, &got, &err),
		     CUSTODY_ENOTFOUND);
	cr_assert_eq(custody_store_get_assignment(st, "Default", "global", &ga, &err),
		     CUSTODY_ENOTFOUND);
	cr_assert_eq(custody_store_get_assignment(other, "Default", "global", &ga,
						  &err), CUSTODY_ENOTFOUND);
	cr_assert_eq(sql_int("SELECT (SELECT count(*) FROM certificates) + "
			     "(SELECT count(*) FROM assignments)"), 0);
	/* A rollback without a transaction is harmless. */
	custody_store_rollback(st);
	custody_cert_record_clear(&rec);
	custody_store_close(st);
	custody_store_close(other);
}

BOTH(close_with_an_open_transaction_rolls_back)
{
	custody_store *st = open_ok();
	custody_assignment a = make_assignment("Default", "global");
	custody_err err = {0};

	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK);
	slot_set(&a.current, A, 100);
	cr_assert_eq(custody_store_put_assignment(st, &a, &err), CUSTODY_OK);
	custody_store_close(st);
	cr_assert_eq(sql_int("SELECT count(*) FROM assignments"), 0);
}

BOTH(writes_need_a_transaction)
{
	custody_store *st = open_ok();
	custody_cert_record rec = make_cert(4, 1900000000);
	custody_assignment a = make_assignment("Default", "global");
	custody_err err = {0};

	slot_set(&a.current, A, 100);
	cr_assert_eq(custody_store_put_assignment(st, &a, &err), CUSTODY_EUSAGE);
	cr_assert(contains(err.msg, "no write transaction is open"), "%s", err.msg);
	cr_assert_eq(custody_store_put_cert(st, &rec, &err), CUSTODY_EUSAGE);
	cr_assert_eq(custody_store_delete_cert(st, A, &err), CUSTODY_EUSAGE);
	cr_assert_eq(custody_store_commit(st, &err), CUSTODY_EUSAGE);
	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK);
	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_EUSAGE);
	cr_assert(contains(err.msg, "already open"), "%s", err.msg);
	custody_store_rollback(st);
	cr_assert_eq(sql_int("SELECT (SELECT count(*) FROM certificates) + "
			     "(SELECT count(*) FROM assignments)"), 0);
	custody_cert_record_clear(&rec);
	custody_store_close(st);
}

Test(store, a_writer_held_past_the_timeout_is_store_busy, .timeout = 60)
{
	custody_store *sa = open_ok();
	custody_store *sb = open_ok();
	custody_assignment a = make_assignment("Default", "global"), got;
	custody_err err = {0};
	time_t t0;

	cr_assert_eq(custody_store_begin(sa, &err), CUSTODY_OK);
	t0 = time(NULL);
	cr_assert_eq(custody_store_begin(sb, &err), CUSTODY_EFAIL);
	cr_assert(time(NULL) - t0 >= 9, "gave up after %lld s",
		  (long long)(time(NULL) - t0));
	cr_assert(contains(err.msg, "store is busy: "), "%s", err.msg);
	cr_assert(contains(err.msg, dbpath), "%s", err.msg);
	/* B can still read, and write once A is done. */
	cr_assert_eq(custody_store_get_assignment(sb, "Default", "global", &got, &err),
		     CUSTODY_ENOTFOUND);
	custody_store_rollback(sa);
	slot_set(&a.current, A, 1);
	put_ok(sb, &a);
	custody_store_close(sa);
	custody_store_close(sb);
}

/* ---------------------------------------------------------------- cluster (schema 3) */

static void
begin_ok(custody_store *st)
{
	custody_err err = {0};

	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK, "%s", err.msg);
}

static void
commit_ok(custody_store *st)
{
	custody_err err = {0};

	cr_assert_eq(custody_store_commit(st, &err), CUSTODY_OK, "%s", err.msg);
}

static unsigned char *
bytes(const char *text, size_t len)
{
	unsigned char *b = malloc(len);

	cr_assert_not_null(b);
	memcpy(b, text, len);
	return b;
}

BOTH(cluster_tables_are_in_schema_3)
{
	custody_store *st = open_ok();

	cr_assert_eq(sql_int(DIALECT("SELECT count(*) FROM sqlite_master WHERE type = "
				     "'table' AND name IN ('nodes', 'packages', "
				     "'node_reports', 'cluster_meta')",
				     "SELECT count(*) FROM pg_tables WHERE schemaname = "
				     "current_schema() AND tablename IN ('nodes', 'packages', "
				     "'node_reports', 'cluster_meta')")), 4);
	custody_store_close(st);
}

BOTH(nodes_round_trip_with_a_version_check)
{
	custody_store *st = open_ok();
	custody_node_record n, got, stale, *list = NULL;
	custody_err err = {0};
	size_t count = 0;

	memset(&n, 0, sizeof(n));
	strcpy(n.name, "node-b.example");
	strcpy(n.state, "enrolled");
	n.transport_spki = bytes("\x30\x00\x01\xff spki", 9);
	n.transport_spki_len = 9;
	n.enrolled_at = 1700000000;
	begin_ok(st);
	cr_assert_eq(custody_store_put_node(st, &n, &err), CUSTODY_OK, "%s", err.msg);
	commit_ok(st);
	cr_assert_eq(n.version, 1);
	cr_assert_eq(custody_store_get_node(st, "node-b.example", &got, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_str_eq(got.state, "enrolled");
	cr_assert_eq(got.transport_spki_len, 9);
	cr_assert_eq(memcmp(got.transport_spki, "\x30\x00\x01\xff spki", 9), 0,
		     "bytes with NUL and 0xff survive");
	cr_assert_null(got.kek_wrap);
	cr_assert_eq(got.enrolled_at, 1700000000);
	cr_assert_eq(got.version, 1);
	stale = got;
	memset(&got, 0, sizeof(got));

	/* Admitted: the wrap goes in, the version moves. */
	strcpy(n.state, "admitted");
	strcpy(n.admitted_by, "node-a");
	n.kek_wrap = bytes("\x00wrapped\x00", 9);
	n.kek_wrap_len = 9;
	n.admitted_at = 1700000100;
	begin_ok(st);
	cr_assert_eq(custody_store_put_node(st, &n, &err), CUSTODY_OK, "%s", err.msg);
	commit_ok(st);
	cr_assert_eq(n.version, 2);
	/* A writer holding version 1 loses and writes nothing. */
	strcpy(stale.state, "joined");
	begin_ok(st);
	cr_assert_eq(custody_store_put_node(st, &stale, &err), CUSTODY_ECONFLICT);
	cr_assert(contains(err.msg, "node node-b.example changed concurrently"), "%s", err.msg);
	custody_store_rollback(st);
	/* So does a second insert of the same name. */
	stale.version = 0;
	begin_ok(st);
	cr_assert_eq(custody_store_put_node(st, &stale, &err), CUSTODY_ECONFLICT);
	custody_store_rollback(st);
	custody_node_record_clear(&stale);
	cr_assert_eq(custody_store_get_node(st, "node-b.example", &got, &err), CUSTODY_OK);
	cr_assert_str_eq(got.state, "admitted");
	cr_assert_str_eq(got.admitted_by, "node-a");
	cr_assert_eq(got.kek_wrap_len, 9);
	cr_assert_eq(memcmp(got.kek_wrap, "\x00wrapped\x00", 9), 0);
	custody_node_record_clear(&got);

	/* Joined: the wrap is gone. */
	free(n.kek_wrap);
	n.kek_wrap = NULL;
	n.kek_wrap_len = 0;
	strcpy(n.state, "joined");
	begin_ok(st);
	cr_assert_eq(custody_store_put_node(st, &n, &err), CUSTODY_OK, "%s", err.msg);
	commit_ok(st);
	cr_assert_eq(custody_store_get_node(st, "node-b.example", &got, &err), CUSTODY_OK);
	cr_assert_null(got.kek_wrap);
	custody_node_record_clear(&got);

	memset(&got, 0, sizeof(got));
	strcpy(got.name, "node-a");
	strcpy(got.state, "joined");
	begin_ok(st);
	cr_assert_eq(custody_store_put_node(st, &got, &err), CUSTODY_OK, "%s", err.msg);
	commit_ok(st);
	cr_assert_eq(custody_store_list_nodes(st, &list, &count, &err), CUSTODY_OK);
	cr_assert_eq(count, 2);
	cr_assert_str_eq(list[0].name, "node-a");
	cr_assert_str_eq(list[1].name, "node-b.example");
	custody_node_records_free(list, count);

	cr_assert_eq(custody_store_get_node(st, "node-c", &got, &err), CUSTODY_ENOTFOUND);
	cr_assert(contains(err.msg, "node node-c is not in store"), "%s", err.msg);
	strcpy(got.state, "leaving");
	got.version = 0;
	strcpy(got.name, "node-c");
	begin_ok(st);
	cr_assert_eq(custody_store_put_node(st, &got, &err), CUSTODY_EUSAGE);
	cr_assert(contains(err.msg, "enrolled, admitted or joined"), "%s", err.msg);
	strcpy(got.state, "joined");
	strcpy(got.name, "node c");
	cr_assert_eq(custody_store_put_node(st, &got, &err), CUSTODY_EUSAGE);
	cr_assert(contains(err.msg, "invalid node name"), "%s", err.msg);
	custody_store_rollback(st);
	cr_assert_eq(sql_int("SELECT count(*) FROM nodes"), 2);
	custody_node_record_clear(&n);
	custody_store_close(st);
}

static custody_package_record
make_package(int n)
{
	custody_package_record p;
	int i;

	memset(&p, 0, sizeof(p));
	for (i = 0; i < CUSTODY_THUMBPRINT_HEX; i++)
		p.thumbprint[i] = "0123456789ABCDEF"[(n + i) % 16];
	for (i = 0; i < CUSTODY_KEY_ID_HEX; i++)
		p.key_id[i] = "0123456789abcdef"[(n * 7 + i) % 16];
	strcpy(p.kcv, "0A1B2C");
	strcpy(p.node, "node1");
	p.wrapped = bytes("\x00\x01\x02\xfe\xff wrapped key bytes", 24);
	p.wrapped[5] = (unsigned char)n;
	p.wrapped_len = 24;
	p.created_at = 1700000000 + n;
	return p;
}

BOTH(packages_round_trip_replace_and_delete)
{
	custody_store *st = open_ok();
	custody_package_record p1 = make_package(1), p2 = make_package(2), got, *list = NULL;
	custody_err err = {0};
	size_t count = 0;

	begin_ok(st);
	cr_assert_eq(custody_store_put_package(st, &p2, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_put_package(st, &p1, &err), CUSTODY_OK, "%s", err.msg);
	commit_ok(st);
	cr_assert_eq(custody_store_get_package(st, p1.thumbprint, &got, &err), CUSTODY_OK);
	cr_assert_str_eq(got.key_id, p1.key_id);
	cr_assert_str_eq(got.kcv, "0A1B2C");
	cr_assert_str_eq(got.node, "node1");
	cr_assert_eq(got.created_at, p1.created_at);
	cr_assert_eq(got.wrapped_len, 24);
	cr_assert_eq(memcmp(got.wrapped, p1.wrapped, 24), 0);
	custody_package_record_clear(&got);
	/* The same thumbprint again replaces it. */
	p1.wrapped[0] = 0x42;
	strcpy(p1.kcv, "FFFFFF");
	begin_ok(st);
	cr_assert_eq(custody_store_put_package(st, &p1, &err), CUSTODY_OK, "%s", err.msg);
	commit_ok(st);
	cr_assert_eq(custody_store_list_packages(st, &list, &count, &err), CUSTODY_OK);
	cr_assert_eq(count, 2);
	cr_assert(strcmp(list[0].thumbprint, list[1].thumbprint) < 0, "ordered by thumbprint");
	custody_package_records_free(list, count);
	{
		const char *only[1] = {p2.thumbprint};

		cr_assert_eq(custody_store_list_packages_of(st, only, 1, &list, &count,
							    &err), CUSTODY_OK, "%s", err.msg);
		cr_assert_eq(count, 1);
		cr_assert_str_eq(list[0].thumbprint, p2.thumbprint);
		custody_package_records_free(list, count);
	}
	cr_assert_eq(custody_store_get_package(st, p1.thumbprint, &got, &err), CUSTODY_OK);
	cr_assert_eq(got.wrapped[0], 0x42);
	cr_assert_str_eq(got.kcv, "FFFFFF");
	custody_package_record_clear(&got);

	cr_assert_eq(custody_store_put_package(st, &p1, &err), CUSTODY_EUSAGE,
		     "a write outside a transaction");
	begin_ok(st);
	strcpy(p2.kcv, "abcdef");
	cr_assert_eq(custody_store_put_package(st, &p2, &err), CUSTODY_EUSAGE,
		     "a lower-case key check value");
	cr_assert(contains(err.msg, "key check value (6 upper-case hex)"), "%s", err.msg);
	cr_assert_eq(custody_store_delete_package(st, p2.thumbprint, &err), CUSTODY_OK);
	cr_assert_eq(custody_store_delete_package(st, p2.thumbprint, &err), CUSTODY_ENOTFOUND);
	commit_ok(st);
	cr_assert_eq(custody_store_get_package(st, p2.thumbprint, &got, &err), CUSTODY_ENOTFOUND);
	cr_assert(contains(err.msg, "no package for certificate"), "%s", err.msg);
	cr_assert_eq(sql_int("SELECT count(*) FROM packages"), 1);
	custody_package_record_clear(&p1);
	custody_package_record_clear(&p2);
	custody_store_close(st);
}

BOTH(reports_are_one_per_node_and_key)
{
	custody_store *st = open_ok();
	custody_report_record r, *list = NULL;
	custody_err err = {0};
	size_t count = 0;

	memset(&r, 0, sizeof(r));
	begin_ok(st);
	strcpy(r.node, "node2");
	strcpy(r.thumbprint, B);
	r.held = 1;
	r.time = 10;
	cr_assert_eq(custody_store_put_report(st, &r, &err), CUSTODY_OK, "%s", err.msg);
	strcpy(r.thumbprint, A);
	r.held = 0;
	strcpy(r.detail, "package refused, nothing unwrapped: CKR_GENERAL_ERROR");
	cr_assert_eq(custody_store_put_report(st, &r, &err), CUSTODY_OK, "%s", err.msg);
	strcpy(r.node, "node1");
	r.held = 1;
	r.detail[0] = '\0';
	cr_assert_eq(custody_store_put_report(st, &r, &err), CUSTODY_OK, "%s", err.msg);
	commit_ok(st);
	/* node2 reports A again, now held. */
	begin_ok(st);
	strcpy(r.node, "node2");
	r.time = 20;
	cr_assert_eq(custody_store_put_report(st, &r, &err), CUSTODY_OK, "%s", err.msg);
	commit_ok(st);
	cr_assert_eq(custody_store_list_reports(st, NULL, &list, &count, &err), CUSTODY_OK);
	cr_assert_eq(count, 3);
	cr_assert_str_eq(list[0].node, "node1");
	cr_assert_str_eq(list[1].node, "node2");
	cr_assert_str_eq(list[1].thumbprint, A);
	cr_assert_eq(list[1].held, 1);
	cr_assert_eq(list[1].time, 20);
	cr_assert_str_eq(list[1].detail, "");
	free(list);
	cr_assert_eq(custody_store_list_reports(st, "node2", &list, &count, &err), CUSTODY_OK);
	cr_assert_eq(count, 2);
	cr_assert_str_eq(list[1].thumbprint, B);
	free(list);
	custody_store_close(st);
}

/* A node of the given state, written (for the gate of a roll). */
static void
put_node_state(custody_store *st, const char *name, const char *state)
{
	custody_node_record n;
	custody_err err = {0};

	memset(&n, 0, sizeof(n));
	strcpy(n.name, name);
	strcpy(n.state, state);
	begin_ok(st);
	cr_assert_eq(custody_store_put_node(st, &n, &err), CUSTODY_OK, "%s", err.msg);
	commit_ok(st);
}

static void
put_held(custody_store *st, const char *node, const char *thumbprint)
{
	custody_report_record r;
	custody_err err = {0};

	memset(&r, 0, sizeof(r));
	strcpy(r.node, node);
	strcpy(r.thumbprint, thumbprint);
	r.held = 1;
	r.time = 10;
	begin_ok(st);
	cr_assert_eq(custody_store_put_report(st, &r, &err), CUSTODY_OK, "%s", err.msg);
	commit_ok(st);
}

/* Whether the stored (type, identity)'s pending roll is held back. */
static int
held_back(custody_store *st, const char *identity)
{
	custody_assignment a, *all = NULL;
	custody_err err = {0};
	size_t n = 0, i;
	int listed = -1;

	cr_assert_eq(custody_store_get_assignment(st, "OAuthTokenIssuer", identity, &a, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_list_assignments(st, &all, &n, &err), CUSTODY_OK);
	for (i = 0; i < n; i++)
		if (strcmp(all[i].identity, identity) == 0)
			listed = all[i].hold_pending;
	free(all);
	cr_assert_eq(listed, a.hold_pending, "a list and a read say the same");
	return a.hold_pending;
}

BOTH(a_roll_waits_while_a_joined_member_does_not_report_its_key)
{
	custody_store *st = open_ok();
	custody_assignment a;
	custody_err err = {0};
	const char *identity[2] = {"global", "node2"};
	int i;

	for (i = 0; i < 2; i++) {
		memset(&a, 0, sizeof(a));
		strcpy(a.type, "OAuthTokenIssuer");
		strcpy(a.identity, identity[i]);
		strcpy(a.current.thumbprint, A);
		a.current.effective = 100;
		strcpy(a.pending.thumbprint, B);
		a.pending.effective = 200;
		begin_ok(st);
		cr_assert_eq(custody_store_put_assignment(st, &a, &err), CUSTODY_OK, "%s", err.msg);
		commit_ok(st);
	}
	cr_assert_eq(held_back(st, "global"), 0, "no cluster: nothing to wait for");
	put_node_state(st, "node1", "joined");
	put_node_state(st, "node2", "joined");
	put_node_state(st, "node3", "enrolled");
	cr_assert_eq(held_back(st, "global"), 1, "no member reports B");
	put_held(st, "node1", B);
	cr_assert_eq(held_back(st, "global"), 1, "node2 does not report B");
	cr_assert_eq(held_back(st, "node2"), 1, "node2's own assignment waits for node2");
	put_held(st, "node2", A);
	cr_assert_eq(held_back(st, "global"), 1, "node2 holds another key");
	put_held(st, "node2", B);
	cr_assert_eq(held_back(st, "global"), 0, "every joined member holds B (node3 has "
		     "not joined: it signs nothing)");
	cr_assert_eq(held_back(st, "node2"), 0);
	custody_store_close(st);
}

BOTH(cluster_facts_are_set_once_unless_replaced)
{
	custody_store *st = open_ok();
	custody_err err = {0};
	char v[16], tiny[3];

	cr_assert_eq(custody_store_get_meta(st, "kek_kcv", v, sizeof(v), &err),
		     CUSTODY_ENOTFOUND);
	cr_assert(contains(err.msg, "cluster fact kek_kcv is not set"), "%s", err.msg);
	begin_ok(st);
	cr_assert_eq(custody_store_put_meta(st, "kek_kcv", "A1B2C3", 0, &err), CUSTODY_OK,
		     "%s", err.msg);
	commit_ok(st);
	begin_ok(st);
	cr_assert_eq(custody_store_put_meta(st, "kek_kcv", "FFFFFF", 0, &err),
		     CUSTODY_ECONFLICT);
	cr_assert(contains(err.msg, "it is already set"), "%s", err.msg);
	custody_store_rollback(st);
	cr_assert_eq(custody_store_get_meta(st, "kek_kcv", v, sizeof(v), &err), CUSTODY_OK);
	cr_assert_str_eq(v, "A1B2C3", "the refused write changed nothing");
	begin_ok(st);
	cr_assert_eq(custody_store_put_meta(st, "kek_kcv", "FFFFFF", 1, &err), CUSTODY_OK);
	commit_ok(st);
	cr_assert_eq(custody_store_get_meta(st, "kek_kcv", v, sizeof(v), &err), CUSTODY_OK);
	cr_assert_str_eq(v, "FFFFFF");
	cr_assert_eq(custody_store_get_meta(st, "kek_kcv", tiny, sizeof(tiny), &err),
		     CUSTODY_EFAIL);
	cr_assert(contains(err.msg, "too long"), "%s", err.msg);
	begin_ok(st);
	cr_assert_eq(custody_store_put_meta(st, "KEK", "x", 1, &err), CUSTODY_EUSAGE);
	cr_assert_eq(custody_store_put_meta(st, "kek_kcv", "a\nb", 1, &err), CUSTODY_EUSAGE);
	custody_store_rollback(st);
	custody_store_close(st);
}

BOTH(a_version_2_store_is_migrated_to_4_and_keeps_its_rows)
{
	custody_store *st = open_ok();
	custody_cert_record rec = make_cert(3, 2000000000), got;
	custody_assignment a = make_assignment("OAuthTokenIssuer", "global"), b;
	custody_err err = {0};
	custody_node_record n;

	put_cert_ok(st, &rec);
	slot_set(&a.current, rec.thumbprint, 1700000000);
	put_ok(st, &a);
	custody_store_close(st);
	/* Back to version 2: what a store of the previous release holds. */
	sql_exec("DROP TABLE nodes; DROP TABLE packages; DROP TABLE node_reports; "
		 "DROP TABLE cluster_meta; DROP TABLE row_tags; "
		 "DELETE FROM schema_version WHERE version >= 3");
	cr_assert_eq(sql_int("SELECT max(version) FROM schema_version"), 2);

	st = open_ok();
	cr_assert_eq(sql_int("SELECT max(version) FROM schema_version"), 5);
	cr_assert_eq(sql_int("SELECT count(*) FROM schema_version"), 5);
	/* Its rows carry no integrity tags: nothing is trusted until they
	 * are tagged (custody tag), and then they read as before. */
	cr_assert_eq(custody_store_get_cert(st, rec.thumbprint, &got, &err), CUSTODY_EFAIL);
	cr_assert(contains(err.msg, "no integrity tags yet"), "%s", err.msg);
	begin_ok(st);
	cr_assert_eq(custody_store_retag_cert(st, &rec, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_retag_assignment(st, &a, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_tags_enable(st, &err), CUSTODY_OK, "%s", err.msg);
	commit_ok(st);
	cr_assert_eq(custody_store_get_cert(st, rec.thumbprint, &got, &err), CUSTODY_OK,
		     "%s", err.msg);
	assert_cert_eq(&got, &rec);
	custody_cert_record_clear(&got);
	cr_assert_eq(custody_store_get_assignment(st, "OAuthTokenIssuer", "global", &b, &err),
		     CUSTODY_OK);
	cr_assert_str_eq(b.current.thumbprint, rec.thumbprint);
	/* The new tables work. */
	memset(&n, 0, sizeof(n));
	strcpy(n.name, "node1");
	strcpy(n.state, "joined");
	begin_ok(st);
	cr_assert_eq(custody_store_put_node(st, &n, &err), CUSTODY_OK, "%s", err.msg);
	commit_ok(st);
	cr_assert_eq(sql_int("SELECT count(*) FROM nodes"), 1);
	custody_cert_record_clear(&rec);
	custody_store_close(st);
}

BOTH(a_version_3_store_gets_the_signed_admission_and_keeps_its_nodes)
{
	custody_store *st = open_ok();
	custody_node_record n, got;
	custody_err err = {0};
	unsigned char sig[3] = {0x30, 0x01, 0x00};

	custody_store_close(st);
	/* Back to version 3: the nodes table without the admission. */
	sql_exec("ALTER TABLE nodes DROP COLUMN admission_sig; "
		 "ALTER TABLE nodes DROP COLUMN kek_check; DROP TABLE row_tags; "
		 "DELETE FROM cluster_meta WHERE name = 'row_tags'; "
		 "DELETE FROM schema_version WHERE version >= 4");
	sql_exec("INSERT INTO nodes (name, state, admitted_by, version) "
		 "VALUES ('node2', 'enrolled', '', 1)");
	st = open_ok();
	cr_assert_eq(sql_int("SELECT max(version) FROM schema_version"), 5);
	memset(&got, 0, sizeof(got));
	cr_assert_eq(custody_store_get_node(st, "node2", &got, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_str_eq(got.state, "enrolled");
	cr_assert_str_eq(got.kek_check, "", "an old admission has no check");
	cr_assert_null(got.admission_sig);
	custody_node_record_clear(&got);
	/* The new columns hold what admit writes. */
	memset(&n, 0, sizeof(n));
	strcpy(n.name, "node3");
	strcpy(n.state, "admitted");
	strcpy(n.kek_check, "0123456789ABCDEF");
	n.admission_sig = sig;
	n.admission_sig_len = sizeof(sig);
	begin_ok(st);
	cr_assert_eq(custody_store_put_node(st, &n, &err), CUSTODY_OK, "%s", err.msg);
	commit_ok(st);
	cr_assert_eq(custody_store_get_node(st, "node3", &got, &err), CUSTODY_OK);
	cr_assert_str_eq(got.kek_check, "0123456789ABCDEF");
	cr_assert_eq(got.admission_sig_len, sizeof(sig));
	cr_assert_eq(memcmp(got.admission_sig, sig, sizeof(sig)), 0);
	custody_node_record_clear(&got);
	custody_store_close(st);
}

BOTH(a_cluster_change_rolled_back_leaves_nothing)
{
	custody_store *st = open_ok();
	custody_package_record p = make_package(4);
	custody_node_record n;
	custody_err err = {0};

	memset(&n, 0, sizeof(n));
	strcpy(n.name, "node1");
	strcpy(n.state, "enrolled");
	begin_ok(st);
	cr_assert_eq(custody_store_put_node(st, &n, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_put_package(st, &p, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_put_meta(st, "kek_kcv", "A1B2C3", 0, &err), CUSTODY_OK);
	custody_store_rollback(st);
	cr_assert_eq(sql_int("SELECT count(*) FROM nodes"), 0);
	cr_assert_eq(sql_int("SELECT count(*) FROM packages"), 0);
	cr_assert_eq(sql_int("SELECT count(*) FROM cluster_meta WHERE name <> 'row_tags'"), 0);
	cr_assert_eq(sql_int("SELECT count(*) FROM row_tags"), 0, "nor their tags");
	custody_package_record_clear(&p);
	custody_store_close(st);
}

/* ---------------------------------------------------------------- audit search */

/* Appends entry seq (the chain's next) naming action, type, identity and
 * thumbprint; its hash is seq's number, written out to 64 digits. */
static void
append_entry(custody_store *st, int64_t seq, const char *action, const char *type,
	     const char *identity, const char *thumbprint)
{
	custody_audit_entry e;
	custody_err err = {0};

	memset(&e, 0, sizeof(e));
	e.seq = seq;
	e.time = 1795600800 + seq;
	strcpy(e.node, "fe01");
	strcpy(e.actor, "alice");
	strcpy(e.action, action);
	strcpy(e.type, type);
	strcpy(e.identity, identity);
	strcpy(e.thumbprint, thumbprint);
	snprintf(e.prev_hash, sizeof(e.prev_hash), "%064lld", (long long)seq - 1);
	snprintf(e.hash, sizeof(e.hash), "%064lld", (long long)seq);
	cr_assert_eq(custody_store_append_audit(st, &e, &err), CUSTODY_OK, "%s", err.msg);
}

/* The seq of the newest entry custody_store_find_audit finds, or 0 for
 * none (ENOTFOUND). */
static int64_t
found_seq(custody_store *st, const char *action, const char *type,
	  const char *identity, const char *thumbprint)
{
	custody_audit_entry e;
	custody_err err = {0};
	int64_t seq;
	int r;

	memset(&e, 0x5a, sizeof(e));
	e.detail = NULL;
	r = custody_store_find_audit(st, action, type, identity, thumbprint, &e, &err);
	if (r == CUSTODY_ENOTFOUND) {
		cr_assert(contains(err.msg, "has no entry"), "%s", err.msg);
		cr_assert_eq(e.seq, 0, "a record not found is left empty");
		return 0;
	}
	cr_assert_eq(r, CUSTODY_OK, "%s", err.msg);
	seq = e.seq;
	custody_audit_entry_clear(&e);
	return seq;
}

BOTH(find_audit_gives_the_newest_entry_that_matches_every_field_given)
{
	custody_store *st = open_ok();
	custody_audit_entry e;
	custody_err err = {0};
	char head[CUSTODY_AUDIT_HASH_HEX + 1], head_after[CUSTODY_AUDIT_HASH_HEX + 1];
	char too_long[CUSTODY_NAME_MAX + 2];
	int64_t seq = 0, seq_after = 0;

	cr_assert_eq(found_seq(st, "roll", NULL, NULL, NULL), 0, "an empty log has none");
	begin_ok(st);
	append_entry(st, 1, "roll", "OAuthTokenIssuer", "global", A);
	append_entry(st, 2, "set", "OAuthTokenIssuer", "global", A);
	append_entry(st, 3, "roll", "OAuthTokenIssuer", "node1", A);
	append_entry(st, 4, "roll", "OAuthTokenIssuer", "global", B);
	append_entry(st, 5, "roll", "Default", "global", A);
	append_entry(st, 6, "import", "", "", C);
	append_entry(st, 7, "roll", "OAuthTokenIssuer", "global", A);
	append_entry(st, 8, "set", "OAuthTokenIssuer", "global", B);
	cr_assert_eq(custody_store_commit(st, &err), CUSTODY_OK, "%s", err.msg);

	cr_assert_eq(found_seq(st, "roll", "OAuthTokenIssuer", "global", A), 7,
		     "the newest of the entries that match");
	cr_assert_eq(found_seq(st, "roll", "OAuthTokenIssuer", "global", B), 4);
	cr_assert_eq(found_seq(st, "roll", "OAuthTokenIssuer", "node1", A), 3);
	cr_assert_eq(found_seq(st, "roll", "Default", NULL, NULL), 5);
	cr_assert_eq(found_seq(st, "set", NULL, NULL, NULL), 8, "NULL matches any");
	cr_assert_eq(found_seq(st, NULL, NULL, NULL, NULL), 8,
		     "no filter: the newest entry");
	cr_assert_eq(found_seq(st, NULL, NULL, NULL, C), 6);
	cr_assert_eq(found_seq(st, NULL, "", NULL, NULL), 6,
		     "\"\" matches an entry that names no type");
	cr_assert_eq(found_seq(st, "roll", "Default", "node1", NULL), 0,
		     "every field given must match");
	cr_assert_eq(found_seq(st, "ROLL", "oauthtokenissuer", "global", A), 0,
		     "fields are matched exactly, as written");
	cr_assert_eq(found_seq(st, "request", NULL, NULL, NULL), 0);

	/* The whole entry comes back, as appended. */
	memset(&e, 0, sizeof(e));
	cr_assert_eq(custody_store_find_audit(st, "roll", "OAuthTokenIssuer", "node1", NULL,
					      &e, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(e.time, 1795600803);
	cr_assert_str_eq(e.node, "fe01");
	cr_assert_str_eq(e.actor, "alice");
	cr_assert_str_eq(e.thumbprint, A);
	cr_assert_str_eq(e.hash, "0000000000000000000000000000000000000000000000000000000000000003");
	custody_audit_entry_clear(&e);

	/* A value no field could hold is the caller's mistake. */
	memset(too_long, 'x', sizeof(too_long) - 1);
	too_long[sizeof(too_long) - 1] = '\0';
	cr_assert_eq(custody_store_find_audit(st, NULL, too_long, NULL, NULL, &e, &err),
		     CUSTODY_EUSAGE);
	cr_assert(contains(err.msg, "type is longer than"), "%s", err.msg);
	cr_assert_eq(custody_store_find_audit(st, NULL, NULL, NULL, NULL, NULL, &err),
		     CUSTODY_EUSAGE);
	cr_assert_eq(custody_store_find_audit(NULL, NULL, NULL, NULL, NULL, &e, &err),
		     CUSTODY_EUSAGE);

	/* A read: the log and its head are as they were, inside a write
	 * transaction too. */
	cr_assert_eq(custody_store_audit_head(st, &seq, head, &err), CUSTODY_OK, "%s", err.msg);
	begin_ok(st);
	cr_assert_eq(found_seq(st, "set", "OAuthTokenIssuer", "global", A), 2);
	custody_store_rollback(st);
	cr_assert_eq(custody_store_audit_head(st, &seq_after, head_after, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_eq(seq_after, seq);
	cr_assert_str_eq(head_after, head);
	cr_assert_eq(sql_int("SELECT count(*) FROM audit"), 8);
	custody_store_close(st);
}

/* The seq of the newest entry custody_store_newest_audit_of finds (any
 * thumbprint when NULL), or 0 for none (ENOTFOUND). */
static int64_t
newest_seq(custody_store *st, const char *const *actions, const char *thumbprint)
{
	custody_audit_entry e;
	custody_err err = {0};
	int64_t seq;
	int r;

	memset(&e, 0, sizeof(e));
	r = custody_store_newest_audit_of(st, actions, thumbprint, &e, &err);
	if (r == CUSTODY_ENOTFOUND) {
		cr_assert(contains(err.msg, "has no entry"), "%s", err.msg);
		return 0;
	}
	cr_assert_eq(r, CUSTODY_OK, "%s", err.msg);
	seq = e.seq;
	custody_audit_entry_clear(&e);
	return seq;
}

BOTH(newest_audit_of_gives_the_newest_entry_of_any_action_listed_naming_it)
{
	static const char *const changes[] = {"set", "roll", "delete", NULL};
	static const char *const one[] = {"import", NULL};
	static const char *const none[] = {"request", "remove", NULL};
	static const char *const prefix[] = {"se", "rol", NULL};
	static const char *const empty[] = {NULL};
	static const char *const comma[] = {"set,sync", NULL};
	custody_store *st = open_ok();
	custody_audit_entry e;
	custody_err err = {0};

	cr_assert_eq(newest_seq(st, changes, NULL), 0, "an empty log has none");
	begin_ok(st);
	append_entry(st, 1, "roll", "OAuthTokenIssuer", "global", A);
	append_entry(st, 2, "import", "", "", C);
	append_entry(st, 3, "set", "OAuthTokenIssuer", "global", B);
	append_entry(st, 4, "sync", "", "", "");
	append_entry(st, 5, "sync", "", "", "");
	cr_assert_eq(custody_store_commit(st, &err), CUSTODY_OK, "%s", err.msg);

	cr_assert_eq(newest_seq(st, changes, NULL), 3,
		     "the newest listed action, past the newer entries of others");
	cr_assert_eq(newest_seq(st, one, NULL), 2);
	cr_assert_eq(newest_seq(st, none, NULL), 0);
	cr_assert_eq(newest_seq(st, prefix, NULL), 0, "actions are matched whole");
	cr_assert_eq(newest_seq(st, changes, A), 1, "only entries naming it");
	cr_assert_eq(newest_seq(st, changes, B), 3);
	cr_assert_eq(newest_seq(st, changes, C), 0);
	cr_assert_eq(newest_seq(st, one, C), 2);
	cr_assert_eq(custody_store_newest_audit_of(st, empty, NULL, &e, &err),
		     CUSTODY_EUSAGE);
	cr_assert_eq(custody_store_newest_audit_of(st, NULL, NULL, &e, &err),
		     CUSTODY_EUSAGE);
	cr_assert_eq(custody_store_newest_audit_of(st, comma, NULL, &e, &err),
		     CUSTODY_EUSAGE);
	cr_assert(contains(err.msg, "is not an action"), "%s", err.msg);
	cr_assert_eq(custody_store_newest_audit_of(st, changes, NULL, NULL, &err),
		     CUSTODY_EUSAGE);
	cr_assert_eq(custody_store_newest_audit_of(st, changes, A "0", &e, &err),
		     CUSTODY_EUSAGE);
	custody_store_close(st);
}

/* ---------------------------------------------------------------- URLs */

Test(store, bad_urls_are_usage_errors)
{
	static const char *const bad[] = {
		"", "/var/lib/custody/custody.db", "sqlite:", "sqlite://tmp/x.db",
		"sqlite:///tmp/x.db", "SQLite:/tmp/x.db", "file:/tmp/x.db",
		"mysql://admin:hunter2@db/custody",
	};
	custody_store *st;
	custody_err err;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		st = (custody_store *)1;
		custody_err_clear(&err);
		cr_assert_eq(custody_store_open(bad[i], &st, &err), CUSTODY_EUSAGE,
			     "\"%s\" accepted", bad[i]);
		cr_assert_null(st);
		cr_assert(contains(err.msg, "sqlite:PATH"), "\"%s\": %s", bad[i], err.msg);
		cr_assert_not(contains(err.msg, "hunter2"), "password echoed: %s",
			      err.msg);
	}
	cr_assert_eq(custody_store_open(NULL, &st, &err), CUSTODY_EUSAGE);
	cr_assert(contains(err.msg, "postgresql://"), "%s", err.msg);
}

/* ---------------------------------------------------------------- PostgreSQL */

/* url with text inserted after "postgresql://" (a user, a password). */
static void
url_with_userinfo(char *dst, size_t size, const char *userinfo)
{
	cr_assert(strncmp(url, "postgresql://", 13) == 0, "%s", url);
	cr_assert_null(strchr(url, '@'), "the test URL has a user already");
	snprintf(dst, size, "postgresql://%s%s", userinfo, url + 13);
}

PG_ONLY(both_schemes_open_and_no_password_is_ever_shown)
{
	custody_store *st = NULL;
	custody_err err = {0};
	char other[600];

	snprintf(other, sizeof(other), "postgres://%s", url + 13);
	cr_assert_eq(custody_store_open(other, &st, &err), CUSTODY_OK, "%s", err.msg);
	custody_store_close(st);

	/* A user the server does not know, with a password. */
	url_with_userinfo(other, sizeof(other), "nosuchrole:hunter2@");
	st = (custody_store *)1;
	cr_assert_eq(custody_store_open(other, &st, &err), CUSTODY_EFAIL);
	cr_assert_null(st);
	cr_assert(contains(err.msg, "cannot open store postgresql://"), "%s", err.msg);
	cr_assert(contains(err.msg, store_name), "%s", err.msg);
	cr_assert(contains(err.msg, "role \"nosuchrole\" does not exist"), "%s",
		  err.msg);
	cr_assert_not(contains(err.msg, "hunter2"), "%s", err.msg);
	cr_assert_not(contains(err.hint, "hunter2"), "%s", err.hint);

	/* A URL libpq cannot parse is a usage error, the secret kept. */
	url_with_userinfo(other, sizeof(other), "u:hunter2@");
	strcat(other, "&nosuchoption=hunter2");
	cr_assert_eq(custody_store_open(other, &st, &err), CUSTODY_EUSAGE);
	cr_assert(contains(err.msg, "bad store URL: "), "%s", err.msg);
	cr_assert_not(contains(err.msg, "hunter2"), "%s", err.msg);
}

PG_ONLY(a_read_never_makes_the_schema)
{
	custody_store *st = NULL;
	custody_err err = {0};

	/* The test's schema is empty: no custody store in it yet. */
	cr_assert_eq(custody_store_open_existing(url, &st, &err), CUSTODY_EFAIL);
	cr_assert_null(st);
	cr_assert(contains(err.msg, "no store at"), "%s", err.msg);
	cr_assert(contains(err.hint, "custody import"), "%s", err.hint);
	cr_assert_eq(custody_store_open_existing(url, &st, &err), CUSTODY_EFAIL,
		     "the first read made the schema");
	st = open_ok();
	cr_assert_eq(custody_store_made(st), 1);
	cr_assert_not(contains(custody_store_where(st), "password"), "%s",
		      custody_store_where(st));
	custody_store_close(st);
	cr_assert_eq(custody_store_open_existing(url, &st, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_eq(custody_store_made(st), 0);
	custody_store_close(st);
}

PG_ONLY(a_server_that_is_not_there_is_unreachable)
{
	static const char *const gone[] = {
		"postgresql://u:hunter2@127.0.0.1:1/custody",
		"postgresql:///custody?host=/nonexistent/socket/dir&password=hunter2",
	};
	custody_store *st;
	custody_err err = {0};
	size_t i;

	for (i = 0; i < 2; i++) {
		st = (custody_store *)1;
		cr_assert_eq(custody_store_open(gone[i], &st, &err), CUSTODY_EFAIL);
		cr_assert_null(st);
		cr_assert(contains(err.msg, "store unreachable: "), "%s", err.msg);
		cr_assert(contains(err.msg, i == 0 ? "postgresql://127.0.0.1:1/custody" :
				   "postgresql:///custody?host=/nonexistent/socket/dir"),
			  "%s", err.msg);
		cr_assert_not(contains(err.msg, "hunter2"), "%s", err.msg);
		cr_assert_not(contains(err.msg, "u@"), "%s", err.msg);
	}
}

/* A connection of the test's own to the server: LISTENs when asked. */
static PGconn *
listener(void)
{
	PGconn *c = PQconnectdb(url);

	cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
	PQclear(PQexec(c, "LISTEN custody_changes"));
	return c;
}

/* Collects the payloads that arrive within ms milliseconds, '\n' after
 * each, into got; returns when want (if not NULL) has arrived. */
static void
collect(PGconn *c, int ms, const char *want, char *got, size_t size)
{
	struct timespec t0, t;
	PGnotify *n;
	long waited = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (waited <= ms) {
		cr_assert_eq(PQconsumeInput(c), 1, "%s", PQerrorMessage(c));
		while ((n = PQnotifies(c)) != NULL) {
			cr_assert_str_eq(n->relname, "custody_changes");
			if (strlen(got) + strlen(n->extra) + 2 < size) {
				strcat(got, n->extra);
				strcat(got, "\n");
			}
			PQfreemem(n);
		}
		if (want != NULL && contains(got, want))
			return;
		usleep(5000);
		clock_gettime(CLOCK_MONOTONIC, &t);
		waited = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
	}
}

PG_ONLY(a_change_is_notified_on_commit_and_not_on_rollback)
{
	custody_store *st = open_ok();
	PGconn *c = listener();
	custody_cert_record rec = make_cert(1, 1900000000);
	custody_assignment a, b;
	custody_audit_entry e;
	custody_err err = {0};
	char got[4096] = "";
	char type_a[48], type_b[48];
	char want_a[160], want_b[160];

	/* The channel is the database's: names of this test's own. */
	snprintf(type_a, sizeof(type_a), "RolledBack%.36s", schema + 2);
	snprintf(type_b, sizeof(type_b), "Committed%.36s", schema + 2);
	snprintf(want_a, sizeof(want_a), "%s/global\n", type_a);
	snprintf(want_b, sizeof(want_b), "%s/Node1\n", type_b);
	a = make_assignment(type_a, "global");
	b = make_assignment(type_b, "Node1");
	slot_set(&a.current, A, 1);
	slot_set(&b.current, B, 2);

	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_put_assignment(st, &a, &err), CUSTODY_OK, "%s", err.msg);
	collect(c, 200, want_a, got, sizeof(got));
	cr_assert_not(contains(got, want_a), "notified before the commit: %s", got);
	custody_store_rollback(st);

	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_put_assignment(st, &b, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_put_cert(st, &rec, &err), CUSTODY_OK, "%s", err.msg);
	memset(&e, 0, sizeof(e));
	e.seq = 1;
	e.time = 1795600800;
	strcpy(e.node, "fe01");
	strcpy(e.actor, "alice");
	strcpy(e.action, "set");
	memset(e.prev_hash, '0', CUSTODY_AUDIT_HASH_HEX);
	memset(e.hash, 'a', CUSTODY_AUDIT_HASH_HEX);
	cr_assert_eq(custody_store_append_audit(st, &e, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_commit(st, &err), CUSTODY_OK, "%s", err.msg);
	collect(c, 5000, want_b, got, sizeof(got));
	cr_assert(contains(got, want_b), "no notification of the commit: \"%s\"", got);
	/* Sent in commit order: the rolled back change would be first. */
	cr_assert_not(contains(got, want_a), "the rolled back change was notified");
	collect(c, 2000, "audit\n", got, sizeof(got));
	cr_assert(contains(got, "certificates\n"), "%s", got);
	cr_assert(contains(got, "audit\n"), "%s", got);

	/* A delete is a change too. */
	got[0] = '\0';
	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK, "%s", err.msg);
	memset(&b.current, 0, sizeof(b.current));
	cr_assert_eq(custody_store_put_assignment(st, &b, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_commit(st, &err), CUSTODY_OK, "%s", err.msg);
	collect(c, 5000, want_b, got, sizeof(got));
	cr_assert(contains(got, want_b), "no notification of the delete: \"%s\"", got);
	PQfinish(c);
	custody_cert_record_clear(&rec);
	custody_store_close(st);
}

/* custody_store_changed, polled for up to ms milliseconds until it says
 * 1; returns the last answer. */
static int
changed_within(custody_store *st, int ms)
{
	custody_err err = {0};
	int changed = 0, waited;

	for (waited = 0; waited <= ms; waited += 2) {
		cr_assert_eq(custody_store_changed(st, &changed, &err), CUSTODY_OK,
			     "%s", err.msg);
		if (changed)
			break;
		usleep(2000);
	}
	return changed;
}

PG_ONLY(changed_says_maybe_first_then_only_after_a_commit)
{
	custody_store *reader = open_ok();
	custody_store *writer = open_ok();
	custody_assignment a = make_assignment("Default", "global");
	custody_err err = {0};
	int changed = 0;

	cr_assert_eq(custody_store_changed(reader, &changed, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_eq(changed, 1, "the first answer is \"maybe\"");
	/* Quiet: no. (Other tests share the channel: at most a few maybes.) */
	cr_assert_eq(custody_store_changed(reader, &changed, &err), CUSTODY_OK);
	cr_assert_eq(changed, 0);

	/* A rolled back change is no change. */
	cr_assert_eq(custody_store_begin(writer, &err), CUSTODY_OK);
	slot_set(&a.current, A, 1);
	cr_assert_eq(custody_store_put_assignment(writer, &a, &err), CUSTODY_OK);
	custody_store_rollback(writer);
	a.version = 0;
	/* A commit is seen, a moment later. */
	put_ok(writer, &a);
	cr_assert_eq(changed_within(reader, 2000), 1, "the commit was not seen");
	custody_store_close(reader);
	custody_store_close(writer);
}

/* Terminates the server process of the connections named app. */
static void
terminate(const char *app)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "SELECT count(pg_terminate_backend(pid)) FROM "
		 "pg_stat_activity WHERE application_name = '%s'", app);
	cr_assert_eq(sql_int(sql), 1);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity "
		 "WHERE application_name = '%s'", app);
	while (sql_int(sql) != 0)
		usleep(10000);
}

PG_ONLY(a_connection_lost_is_unreachable_then_made_again)
{
	custody_store *st = NULL;
	custody_assignment a = make_assignment("Default", "global"), got;
	custody_err err = {0};
	char app[80];
	int changed = 0;

	/* A name of its own, to find its server process. */
	snprintf(app, sizeof(app), "custody_%s", schema);
	snprintf(url + strlen(url), sizeof(url) - strlen(url),
		 "&application_name=%s", app);
	st = open_ok();
	cr_assert_eq(custody_store_changed(st, &changed, &err), CUSTODY_OK);

	/* Lost inside a transaction: the transaction is gone. */
	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK, "%s", err.msg);
	slot_set(&a.current, A, 1);
	cr_assert_eq(custody_store_put_assignment(st, &a, &err), CUSTODY_OK, "%s", err.msg);
	terminate(app);
	a.version = 1;
	cr_assert_eq(custody_store_put_assignment(st, &a, &err), CUSTODY_EFAIL);
	cr_assert_eq(err.code, CUSTODY_EFAIL);
	cr_assert(contains(err.msg, "store unreachable: "), "%s", err.msg);
	cr_assert(contains(err.msg, store_name), "%s", err.msg);
	cr_assert_eq(custody_store_commit(st, &err), CUSTODY_EFAIL);
	cr_assert(contains(err.msg, "store unreachable: "), "%s", err.msg);
	custody_store_rollback(st);

	/* Outside one, the next call connects again; nothing was written. */
	cr_assert_eq(custody_store_get_assignment(st, "Default", "global", &got, &err),
		     CUSTODY_ENOTFOUND, "%s", err.msg);
	cr_assert_eq(custody_store_changed(st, &changed, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(changed, 1, "a new connection may have missed changes");
	a.version = 0;
	put_ok(st, &a);

	/* Lost while idle: the same. */
	terminate(app);
	cr_assert_eq(custody_store_get_assignment(st, "Default", "global", &got, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_str_eq(got.current.thumbprint, A);
	custody_store_close(st);
}

/* A connection that listens (a watcher's) keeps its statements prepared;
 * one that does not sends their text.  What shows it: a column whose type
 * another process changes (a schema upgrade) fails the kept plan once
 * (the server refuses a plan whose result changed, and the transaction
 * is gone), and the connection prepares again: the next read works. */
PG_ONLY(a_listening_connection_keeps_its_statements_prepared)
{
	custody_store *watcher = open_ok(), *plain = open_ok();
	custody_assignment a = make_assignment("Default", "global"), got;
	custody_err err = {0};
	int changed = 0;

	slot_set(&a.current, A, 1);
	put_ok(plain, &a);
	cr_assert_eq(custody_store_changed(watcher, &changed, &err), CUSTODY_OK,
		     "%s", err.msg);
	cr_assert_eq(custody_store_get_assignment(watcher, "Default", "global",
						  &got, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_eq(custody_store_get_assignment(plain, "Default", "global",
						  &got, &err), CUSTODY_OK, "%s",
		     err.msg);

	pgtest_exec(schema, "ALTER TABLE assignments ALTER COLUMN version "
		    "TYPE NUMERIC");
	/* The plain connection plans every statement anew. */
	cr_assert_eq(custody_store_begin(plain, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_eq(custody_store_get_assignment(plain, "Default", "global",
						  &got, &err), CUSTODY_OK, "%s",
		     err.msg);
	custody_store_rollback(plain);
	/* The watcher's kept plan is refused once, in its transaction. */
	cr_assert_eq(custody_store_begin(watcher, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_eq(custody_store_get_assignment(watcher, "Default", "global",
						  &got, &err), CUSTODY_EFAIL);
	cr_assert(contains(err.msg, "SQLSTATE 0A000"), "%s", err.msg);
	custody_store_rollback(watcher);
	cr_assert_eq(custody_store_begin(watcher, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_eq(custody_store_get_assignment(watcher, "Default", "global",
						  &got, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_str_eq(got.current.thumbprint, A);
	custody_store_rollback(watcher);

	custody_store_close(watcher);
	custody_store_close(plain);
}

PG_ONLY(a_writer_held_past_the_lock_timeout_is_store_busy, .timeout = 60)
{
	custody_store *sa = open_ok();
	custody_store *sb = open_ok();
	custody_assignment a = make_assignment("Default", "global");
	custody_assignment b = make_assignment("Default", "global"), got;
	custody_err err = {0};
	time_t t0;

	/* A inserts and holds its transaction; B's insert waits for it. */
	slot_set(&a.current, A, 1);
	slot_set(&b.current, B, 2);
	cr_assert_eq(custody_store_begin(sa, &err), CUSTODY_OK);
	cr_assert_eq(custody_store_put_assignment(sa, &a, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_begin(sb, &err), CUSTODY_OK);
	t0 = time(NULL);
	cr_assert_eq(custody_store_put_assignment(sb, &b, &err), CUSTODY_EFAIL);
	cr_assert(time(NULL) - t0 >= 9, "gave up after %lld s",
		  (long long)(time(NULL) - t0));
	cr_assert(contains(err.msg, "store is busy: "), "%s", err.msg);
	cr_assert(contains(err.msg, "SQLSTATE 55P03"), "%s", err.msg);
	cr_assert(contains(err.msg, store_name), "%s", err.msg);
	custody_store_rollback(sb);
	/* A commits; B, reading again, sees A's row and updates it. */
	cr_assert_eq(custody_store_commit(sa, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_get_assignment(sb, "Default", "global", &got, &err),
		     CUSTODY_OK);
	slot_set(&got.current, B, 2);
	put_ok(sb, &got);
	cr_assert_eq(got.version, 2);
	custody_store_close(sa);
	custody_store_close(sb);
}

PG_ONLY(a_failed_statement_makes_commit_fail_not_half_commit)
{
	custody_store *st = open_ok();
	custody_cert_record r1 = make_cert(1, 1900000000), r2 = make_cert(2, 1900000000);
	custody_assignment a = make_assignment("Default", "global");
	custody_err err = {0};

	put_cert_ok(st, &r1);
	/* Another thumbprint with r1's SHA-256: the server refuses it. */
	memcpy(r2.sha256, r1.sha256, sizeof(r2.sha256));
	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK);
	slot_set(&a.current, A, 1);
	cr_assert_eq(custody_store_put_assignment(st, &a, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_put_cert(st, &r2, &err), CUSTODY_EFAIL);
	cr_assert(contains(err.msg, "another certificate has SHA-256 fingerprint"),
		  "%s", err.msg);
	cr_assert_eq(custody_store_commit(st, &err), CUSTODY_EFAIL);
	cr_assert(contains(err.msg, "rolled back after an earlier error"), "%s", err.msg);
	cr_assert_eq(sql_int("SELECT count(*) FROM assignments"), 0);
	cr_assert_eq(sql_int("SELECT count(*) FROM certificates"), 1);
	custody_cert_record_clear(&r1);
	custody_cert_record_clear(&r2);
	custody_store_close(st);
}
