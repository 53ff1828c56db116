/* test_store.c — the store through its public interface, on the SQLite
 * backend: files and modes, schema versions, certificate and assignment
 * round-trips, optimistic concurrency (between handles and between
 * processes), transactions and URL forms.  Each test has its own
 * temporary directory. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <sqlite3.h>

#include <custody/error.h>
#include <custody/log.h>
#include <custody/records.h>
#include <custody/store.h>

#define A "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define B "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
#define C "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"

static char tmpdir[64];
static char dbpath[256];	/* tmpdir/var/lib/custody/custody.db */
static char url[300];		/* sqlite:dbpath */

static int
remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
setup(void)
{
	strcpy(tmpdir, "/tmp/custody-store-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(dbpath, sizeof(dbpath), "%s/var/lib/custody/custody.db", tmpdir);
	snprintf(url, sizeof(url), "sqlite:%s", dbpath);
}

static void
teardown(void)
{
	if (tmpdir[0] != '\0')
		nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(store, .init = setup, .fini = teardown);

/* ---------------------------------------------------------------- helpers */

static custody_store *
open_ok(void)
{
	custody_store *st = NULL;
	custody_err err = {0};

	cr_assert_eq(custody_store_open(url, &st, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_not_null(st);
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

Test(store, open_creates_directory_0700_and_file_0600)
{
	custody_store *st;
	struct stat sb;
	char dir[300], wal[300];
	mode_t old = umask(0);

	st = open_ok();
	umask(old);
	cr_assert_eq(stat(dbpath, &sb), 0);
	cr_assert(S_ISREG(sb.st_mode));
	cr_assert_eq(sb.st_mode & 07777, 0600, "mode %o", sb.st_mode & 07777);
	snprintf(dir, sizeof(dir), "%s/var/lib/custody", tmpdir);
	cr_assert_eq(stat(dir, &sb), 0);
	cr_assert_eq(sb.st_mode & 07777, 0700, "mode %o", sb.st_mode & 07777);
	snprintf(dir, sizeof(dir), "%s/var", tmpdir);
	cr_assert_eq(stat(dir, &sb), 0);
	cr_assert_eq(sb.st_mode & 07777, 0700, "mode %o", sb.st_mode & 07777);
	/* The write-ahead log holds the same data: same mode. */
	snprintf(wal, sizeof(wal), "%s-wal", dbpath);
	cr_assert_eq(stat(wal, &sb), 0, "no WAL file: %s", strerror(errno));
	cr_assert_eq(sb.st_mode & 07777, 0600, "WAL mode %o", sb.st_mode & 07777);
	custody_store_close(st);
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

	snprintf(dir, sizeof(dir), "%s/var", tmpdir);
	cr_assert_eq(mkdir(dir, 0755), 0);
	strcat(dir, "/lib");
	cr_assert_eq(mkdir(dir, 0755), 0);
	strcat(dir, "/custody");
	cr_assert_eq(mkdir(dir, 0755), 0);
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
	slot_set(&a.current, A, 1);
	put_ok(st, &a);
	custody_store_close(st);
	cr_assert_eq(stat("file:odd.db?mode=memory", &sb), 0);
	cr_assert(sb.st_size > 0 || stat("file:odd.db?mode=memory-wal", &sb) == 0);
	cr_assert_eq(custody_store_open("sqlite:file:odd.db?mode=memory", &st, &err),
		     CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_get_assignment(st, "Default", "global", &got, &err),
		     CUSTODY_OK, "the data is in the file, not in memory: %s", err.msg);
	custody_store_close(st);
}

Test(store, a_file_that_is_not_a_database_is_refused)
{
	custody_store *st = NULL;
	custody_err err = {0};
	char dir[300];
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/var", tmpdir);
	cr_assert_eq(mkdir(dir, 0700), 0);
	snprintf(dir, sizeof(dir), "%s/var/lib", tmpdir);
	cr_assert_eq(mkdir(dir, 0700), 0);
	snprintf(dir, sizeof(dir), "%s/var/lib/custody", tmpdir);
	cr_assert_eq(mkdir(dir, 0700), 0);
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

Test(store, schema_version_is_recorded)
{
	custody_store *st = open_ok();

	cr_assert_eq(custody_store_schema_version(), 2);
	cr_assert_eq(sql_int("SELECT max(version) FROM schema_version"),
		     custody_store_schema_version());
	/* One row per migration, each applied once. */
	cr_assert_eq(sql_int("SELECT count(*) FROM schema_version"),
		     custody_store_schema_version());
	cr_assert_eq(sql_int("SELECT count(*) FROM sqlite_master WHERE type = "
			     "'table' AND name IN ('certificates', 'assignments')"), 2);
	cr_assert_eq(sql_int("SELECT count(*) FROM sqlite_master WHERE type = "
			     "'table' AND name IN ('audit', 'audit_head')"), 2);
	cr_assert_eq(sql_int("SELECT count(*) FROM pragma_journal_mode "
			     "WHERE journal_mode = 'wal'"), 1);
	custody_store_close(st);
}

Test(store, a_newer_schema_is_refused_naming_both_versions)
{
	custody_store *st = open_ok();
	custody_err err = {0};

	custody_store_close(st);
	sql_exec("INSERT INTO schema_version (version, applied_at) VALUES (7, 0)");
	st = NULL;
	cr_assert_eq(custody_store_open(url, &st, &err), CUSTODY_EFAIL);
	cr_assert_null(st);
	cr_assert_eq(err.code, CUSTODY_EFAIL);
	cr_assert(contains(err.msg, dbpath), "%s", err.msg);
	cr_assert(contains(err.msg, "schema version 7 is newer than version 2 "
			   "of this build"), "%s", err.msg);
	cr_assert_eq(sql_int("SELECT max(version) FROM schema_version"), 7);
}

Test(store, reopen_keeps_data_and_does_not_migrate_again)
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

Test(store, concurrent_first_opens_create_the_schema_once)
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

Test(store, cert_round_trip_keeps_every_field)
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

Test(store, cert_without_optional_fields)
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

Test(store, put_cert_twice_updates_key_uri_and_label_only)
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

Test(store, get_missing_cert_is_not_found)
{
	custody_store *st = open_ok();
	custody_cert_record got;
	custody_err err = {0};
	char want[512];

	cr_assert_eq(custody_store_get_cert(st, A, &got, &err), CUSTODY_ENOTFOUND);
	cr_assert_eq(err.code, CUSTODY_ENOTFOUND);
	snprintf(want, sizeof(want), "no certificate with thumbprint " A
		 " in store %s", dbpath);
	cr_assert_str_eq(err.msg, want);
	custody_store_close(st);
}

Test(store, thumbprint_lookup_is_exact)
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

Test(store, list_certs_by_expiry_then_thumbprint)
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

Test(store, list_certs_of_an_empty_store)
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

Test(store, delete_cert)
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

Test(store, assignment_round_trip_and_versions)
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

Test(store, missing_assignment_is_not_found)
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

Test(store, stale_version_is_a_conflict_and_changes_nothing)
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
	cr_assert(contains(err.msg, dbpath), "%s", err.msg);
	cr_assert_eq(stale.version, 1, "a failed put keeps the version it read");
	cr_assert_eq(custody_store_get_assignment(st, "Default", "global", &got, &err),
		     CUSTODY_OK);
	cr_assert_eq(memcmp(&got, &a, sizeof(a)), 0, "the stored row changed");
	custody_store_close(st);
}

Test(store, insert_over_an_existing_row_is_a_conflict)
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

Test(store, two_handles_a_concurrent_change_is_detected_not_lost)
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

Test(store, concurrent_processes_lose_no_change)
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

Test(store, type_and_identity_match_case_insensitively)
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
	cr_assert_eq(sql_int("SELECT count(*) FROM assignments WHERE type = "
			     "'OAuthTokenIssuer' COLLATE BINARY AND version = 2"), 1);
	custody_store_close(st);
}

Test(store, list_assignments_by_type_then_global_first)
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

Test(store, an_empty_record_deletes_the_row_with_the_version_check)
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

Test(store, an_empty_new_record_writes_nothing)
{
	custody_store *st = open_ok();
	custody_assignment a = make_assignment("Default", "global");

	put_ok(st, &a);
	cr_assert_eq(a.version, 0);
	cr_assert_eq(sql_int("SELECT count(*) FROM assignments"), 0);
	custody_store_close(st);
}

Test(store, bad_assignment_names_are_usage_errors)
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

Test(store, rollback_leaves_nothing)
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

Test(store, close_with_an_open_transaction_rolls_back)
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

Test(store, writes_need_a_transaction)
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

Test(store, postgresql_is_not_in_this_build_yet)
{
	static const char *const pg[] = {
		"postgresql://custody@db.example/custody", "postgres://db/custody",
	};
	custody_store *st;
	custody_err err;
	size_t i;

	for (i = 0; i < 2; i++) {
		st = (custody_store *)1;
		cr_assert_eq(custody_store_open(pg[i], &st, &err), CUSTODY_EFAIL);
		cr_assert_null(st);
		cr_assert(contains(err.msg, "the PostgreSQL store is not available "
				   "in this build yet"), "%s", err.msg);
	}
}
