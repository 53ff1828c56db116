/* test_audit.c — the hash-chained audit log: the chain and its canonical
 * hash, verification naming the first edited, removed, reordered or added
 * entry and a cut tail, transactions, concurrency, the actor, and the
 * migration of a version-1 store.  The tests made with BOTH() run on the
 * SQLite store (suite "audit", each test with its own temporary directory
 * and store) and again on PostgreSQL (suite "audit_pg", each test with its
 * own schema; skipped without CUSTODY_TEST_PG_URL, see pgtest.h).
 * Tampering goes through the sqlite3 C API or libpq, as an intruder with
 * write access would. */
#include "config.h"

#include <pwd.h>
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

#include <custody/audit.h>
#include <custody/error.h>
#include <custody/records.h>
#include <custody/store.h>

#include "unit/pgtest.h"
#include "unit/testtagger.h"

#define A "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define B "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
#define C "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
#define ZEROS "0000000000000000000000000000000000000000000000000000000000000000"
#define T0 1795600800	/* 2026-11-25T10:00:00Z */

static char tmpdir[64];
static char dbpath[256];
static char url[512];
static int on_pg;		/* the test runs on PostgreSQL       */
static char schema[64];		/* PostgreSQL: the test's own schema */
static char store_name[256];	/* what messages call the store      */

static void
setup(void)
{
	strcpy(tmpdir, "/tmp/custody-audit-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(dbpath, sizeof(dbpath), "%s/custody.db", tmpdir);
	snprintf(url, sizeof(url), "sqlite:%s", dbpath);
	snprintf(store_name, sizeof(store_name), "%s", dbpath);
}

static void
teardown(void)
{
	pgtest_remove_tree(tmpdir);
}

TestSuite(audit, .init = setup, .fini = teardown);

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

TestSuite(audit_pg, .init = pg_setup, .fini = pg_teardown);

/* BOTH(name[, options]) { body }: the body runs as audit::name on SQLite
 * and as audit_pg::name on PostgreSQL. */
#define BOTH(...) BOTH_(__VA_ARGS__, .disabled = 0)
#define BOTH_(name, ...) \
	static void name##_body(void); \
	Test(audit, name, __VA_ARGS__) { name##_body(); } \
	Test(audit_pg, name, __VA_ARGS__) { pgtest_required(); name##_body(); } \
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
	test_tagger_attach(st);
	return st;
}

static custody_audit_entry
draft(int64_t t, const char *action, const char *type, const char *identity,
      const char *thumbprint, const char *previous, const char *detail)
{
	custody_audit_entry d;

	memset(&d, 0, sizeof(d));
	d.time = t;
	strcpy(d.node, "fe01");
	strcpy(d.actor, "alice");
	strcpy(d.action, action);
	strcpy(d.type, type);
	strcpy(d.identity, identity);
	strcpy(d.thumbprint, thumbprint);
	strcpy(d.previous_thumbprint, previous);
	d.detail = (char *)detail;
	return d;
}

static void
append_ok(custody_store *st, const custody_audit_entry *d)
{
	custody_err err = {0};

	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_audit_append(st, d, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_commit(st, &err), CUSTODY_OK, "%s", err.msg);
}

/* Five entries, one minute apart: import, set, roll, remove, delete. */
static custody_store *
five_entries(void)
{
	custody_store *st = open_ok();
	custody_audit_entry d;

	d = draft(T0, "import", "", "", A, "", "label fe01");
	append_ok(st, &d);
	d = draft(T0 + 60, "set", "OAuthTokenIssuer", "global", A, "", NULL);
	append_ok(st, &d);
	d = draft(T0 + 120, "roll", "OAuthTokenIssuer", "global", B, A,
		  "effective 2026-12-01T00:00:00Z");
	append_ok(st, &d);
	d = draft(T0 + 180, "remove", "Default", "fe01", C, "", "previous");
	append_ok(st, &d);
	d = draft(T0 + 240, "delete", "", "", C, "", "forced");
	append_ok(st, &d);
	return st;
}

static void
list_all(custody_store *st, custody_audit_entry **e, size_t *n)
{
	custody_err err = {0};

	cr_assert_eq(custody_store_list_audit(st, 0, e, n, &err), CUSTODY_OK, "%s",
		     err.msg);
}

static int64_t
sql_int(const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	int64_t v;

	if (on_pg)
		return pgtest_int(schema, sql);
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

/* Runs sql; returns SQLite's message ("" when it worked) in msg. */
static int
sql_try(const char *sql, char *msg, size_t size)
{
	sqlite3 *db = NULL;
	char *why = NULL;
	int rc;

	if (on_pg)
		return pgtest_try(schema, sql, msg, size);
	cr_assert_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	rc = sqlite3_exec(db, sql, NULL, NULL, &why);
	snprintf(msg, size, "%s", why != NULL ? why : "");
	sqlite3_free(why);
	sqlite3_close(db);
	return rc;
}

static void
sql_exec(const char *sql)
{
	char msg[256];

	cr_assert_eq(sql_try(sql, msg, sizeof(msg)), SQLITE_OK, "%s: %s", sql, msg);
}

/* What an intruder does first: drop the guards, then edit. */
static void
tamper(const char *sql)
{
	sql_exec(DIALECT("DROP TRIGGER IF EXISTS audit_no_update;"
			 "DROP TRIGGER IF EXISTS audit_no_delete;"
			 "DROP TRIGGER IF EXISTS audit_head_no_delete;",
			 "DROP TRIGGER IF EXISTS audit_no_update ON audit;"
			 "DROP TRIGGER IF EXISTS audit_no_delete ON audit;"
			 "DROP TRIGGER IF EXISTS audit_no_truncate ON audit;"
			 "DROP TRIGGER IF EXISTS audit_head_no_delete ON audit_head;"
			 "DROP TRIGGER IF EXISTS audit_head_no_truncate ON audit_head;"));
	sql_exec(sql);
}

/* Verifies the store; returns the status, the message in err. */
static int
verify(custody_store *st, custody_err *err)
{
	size_t n = 99;
	char head[CUSTODY_AUDIT_HASH_HEX + 1] = "untouched";
	int r = custody_audit_verify_store(st, &n, head, err);

	if (r != CUSTODY_OK) {
		cr_assert_eq(n, 99, "n is set on failure");
		cr_assert_str_eq(head, "untouched");
	}
	return r;
}

static void
assert_verify_fails(custody_store *st, const char *message)
{
	custody_err err = {0};

	cr_assert_eq(verify(st, &err), CUSTODY_EFAIL, "%s", err.msg);
	cr_assert_eq(err.code, CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg, message);
}

/* ---------------------------------------------------------------- the chain */

BOTH(an_appended_chain_verifies_and_keeps_every_field)
{
	custody_store *st = five_entries();
	custody_audit_entry *e = NULL, last;
	custody_err err = {0};
	char h[CUSTODY_AUDIT_HASH_HEX + 1], head[CUSTODY_AUDIT_HASH_HEX + 1];
	int64_t head_seq = 0;
	size_t n = 0, i;

	list_all(st, &e, &n);
	cr_assert_eq(n, 5);
	for (i = 0; i < n; i++) {
		cr_assert_eq(e[i].seq, (int64_t)i + 1);
		cr_assert_eq(e[i].time, T0 + 60 * (int64_t)i);
		cr_assert_str_eq(e[i].node, "fe01");
		cr_assert_str_eq(e[i].actor, "alice");
		cr_assert_str_eq(e[i].prev_hash, i == 0 ? ZEROS : e[i - 1].hash);
		cr_assert_eq(strlen(e[i].hash), 64);
		cr_assert_eq(strspn(e[i].hash, "0123456789abcdef"), 64, "%s", e[i].hash);
		cr_assert_eq(custody_audit_hash(&e[i], h, &err), CUSTODY_OK);
		cr_assert_str_eq(h, e[i].hash);
	}
	cr_assert_str_eq(e[0].action, "import");
	cr_assert_str_eq(e[0].type, "");
	cr_assert_str_eq(e[0].thumbprint, A);
	cr_assert_str_eq(e[0].detail, "label fe01");
	cr_assert_null(e[1].detail);
	cr_assert_str_eq(e[2].action, "roll");
	cr_assert_str_eq(e[2].type, "OAuthTokenIssuer");
	cr_assert_str_eq(e[2].identity, "global");
	cr_assert_str_eq(e[2].thumbprint, B);
	cr_assert_str_eq(e[2].previous_thumbprint, A);
	cr_assert_str_eq(e[2].detail, "effective 2026-12-01T00:00:00Z");

	cr_assert_eq(custody_store_audit_head(st, &head_seq, head, &err), CUSTODY_OK);
	cr_assert_eq(head_seq, 5);
	cr_assert_str_eq(head, e[4].hash);
	cr_assert_eq(custody_store_last_audit(st, &last, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(last.seq, 5);
	cr_assert_str_eq(last.hash, e[4].hash);
	cr_assert_str_eq(last.detail, "forced");
	custody_audit_entry_clear(&last);

	n = 0;
	cr_assert_eq(custody_audit_verify_store(st, &n, head, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_eq(n, 5);
	cr_assert_str_eq(head, e[4].hash);
	custody_audit_entries_free(e, 5);
	custody_store_close(st);
}

Test(audit, the_hash_is_the_documented_encoding)
{
	/* Known answers, computed apart from this code (Python hashlib over
	 * tag, seq, time, 7 texts, detail presence byte, prev_hash; texts
	 * as 8-byte big-endian length + bytes).  A change here breaks every
	 * existing log. */
	custody_audit_entry e = draft(T0, "set", "OAuthTokenIssuer", "global", A,
				      "", "effective now");
	char h[CUSTODY_AUDIT_HASH_HEX + 1];
	custody_err err = {0};

	e.seq = 1;
	strcpy(e.prev_hash, ZEROS);
	cr_assert_eq(custody_audit_hash(&e, h, &err), CUSTODY_OK);
	cr_assert_str_eq(h, "edbdc99c17a3d17df795e5be4cbc15ff3bee6b31cb84a0d1d3c88b6eb382c9ec");

	e = draft(T0, "delete", "", "", B, "", NULL);
	e.seq = 2;
	strcpy(e.prev_hash, "abababababababababababababababababababababababababababababababab");
	cr_assert_eq(custody_audit_hash(&e, h, &err), CUSTODY_OK);
	cr_assert_str_eq(h, "94c417c27f04d33556acfe4e75dda1bd6a811d8fde04f4469ccac05d24f74f37");
}

Test(audit, every_field_is_in_the_hash_and_fields_cannot_shift)
{
	custody_audit_entry base = draft(T0, "roll", "Default", "fe01", A, B, "x");
	custody_audit_entry e;
	char h0[CUSTODY_AUDIT_HASH_HEX + 1], h[CUSTODY_AUDIT_HASH_HEX + 1];
	int i;

	base.seq = 7;
	strcpy(base.prev_hash, ZEROS);
	cr_assert_eq(custody_audit_hash(&base, h0, NULL), CUSTODY_OK);
	for (i = 0; i < 12; i++) {
		e = base;
		switch (i) {
		case 0: e.seq = 8; break;
		case 1: e.time = T0 + 1; break;
		case 2: strcpy(e.node, "fe02"); break;
		case 3: strcpy(e.actor, "bob"); break;
		case 4: strcpy(e.action, "set"); break;
		case 5: strcpy(e.type, "Internal"); break;
		case 6: strcpy(e.identity, "global"); break;
		case 7: strcpy(e.thumbprint, C); break;
		case 8: strcpy(e.previous_thumbprint, ""); break;
		case 9: e.detail = NULL; break;
		case 10: e.detail = ""; break;
		case 11: e.prev_hash[63] = '1'; break;
		}
		cr_assert_eq(custody_audit_hash(&e, h, NULL), CUSTODY_OK);
		cr_assert_str_neq(h, h0, "field %d is not in the hash", i);
	}
	/* The hash field itself is not hashed. */
	e = base;
	strcpy(e.hash, "ffff");
	cr_assert_eq(custody_audit_hash(&e, h, NULL), CUSTODY_OK);
	cr_assert_str_eq(h, h0);
	/* "ab"+"c" and "a"+"bc" are different entries. */
	e = base;
	strcpy(e.node, "ab");
	strcpy(e.actor, "c");
	cr_assert_eq(custody_audit_hash(&e, h0, NULL), CUSTODY_OK);
	strcpy(e.node, "a");
	strcpy(e.actor, "bc");
	cr_assert_eq(custody_audit_hash(&e, h, NULL), CUSTODY_OK);
	cr_assert_str_neq(h, h0);
}

BOTH(an_empty_log_verifies_with_a_zero_head)
{
	custody_store *st = open_ok();
	custody_audit_entry last;
	custody_err err = {0};
	char head[CUSTODY_AUDIT_HASH_HEX + 1];
	size_t n = 9;

	cr_assert_eq(custody_audit_verify_store(st, &n, head, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_eq(n, 0);
	cr_assert_str_eq(head, ZEROS);
	cr_assert_eq(custody_store_last_audit(st, &last, &err), CUSTODY_ENOTFOUND);
	cr_assert(strstr(err.msg, "audit log of store") != NULL, "%s", err.msg);
	cr_assert(strstr(err.msg, "is empty") != NULL, "%s", err.msg);
	custody_store_close(st);
}

BOTH(since_lists_the_entries_at_or_after_it)
{
	custody_store *st = five_entries();
	custody_audit_entry *e = NULL;
	custody_err err = {0};
	size_t n = 0;

	cr_assert_eq(custody_store_list_audit(st, T0 + 120, &e, &n, &err), CUSTODY_OK);
	cr_assert_eq(n, 3);
	cr_assert_eq(e[0].seq, 3);
	cr_assert_eq(e[2].seq, 5);
	custody_audit_entries_free(e, n);
	cr_assert_eq(custody_store_list_audit(st, T0 + 241, &e, &n, &err), CUSTODY_OK);
	cr_assert_eq(n, 0);
	cr_assert_null(e);
	custody_store_close(st);
}

/* ---------------------------------------------------------------- tampering */

BOTH(the_table_refuses_plain_edits)
{
	custody_store *st = five_entries();
	char msg[256];

	cr_assert_neq(sql_try("UPDATE audit SET actor = 'mallory' WHERE seq = 3",
			      msg, sizeof(msg)), SQLITE_OK);
	cr_assert_str_eq(msg, "the audit log is append-only");
	cr_assert_neq(sql_try("DELETE FROM audit WHERE seq = 5", msg, sizeof(msg)),
		      SQLITE_OK);
	cr_assert_str_eq(msg, "the audit log is append-only");
	cr_assert_neq(sql_try("DELETE FROM audit_head", msg, sizeof(msg)), SQLITE_OK);
	cr_assert_eq(sql_int("SELECT count(*) FROM audit WHERE actor = 'alice'"), 5);
	custody_store_close(st);
}

BOTH(an_edited_field_names_its_entry)
{
	custody_store *st = five_entries();
	custody_audit_entry *e = NULL;
	size_t n = 0, bad = 99;
	custody_err err = {0};

	tamper("UPDATE audit SET actor = 'mallory' WHERE seq = 3");
	assert_verify_fails(st, "audit entry 3 (2026-11-25T10:02:00Z roll "
			    "OAuthTokenIssuer/global) was edited");
	/* The log alone says the same, with the index. */
	list_all(st, &e, &n);
	cr_assert_eq(custody_audit_verify(e, n, &bad, &err), CUSTODY_EFAIL);
	cr_assert_eq(bad, 2);
	cr_assert_str_eq(e[2].actor, "mallory");
	custody_audit_entries_free(e, n);
	custody_store_close(st);
}

BOTH(an_edited_time_or_entry_without_type_is_named)
{
	custody_store *st = five_entries();

	tamper("UPDATE audit SET time = time + 3600 WHERE seq = 1");
	assert_verify_fails(st, "audit entry 1 (2026-11-25T11:00:00Z import "
			    A ") was edited");
	custody_store_close(st);
}

BOTH(an_edit_with_its_hash_recomputed_is_named)
{
	custody_store *st = five_entries();
	custody_audit_entry *e = NULL;
	size_t n = 0;
	char h[CUSTODY_AUDIT_HASH_HEX + 1];
	char sql[256];

	/* The intruder edits entry 2 and recomputes its hash, but not the
	 * rest of the chain. */
	list_all(st, &e, &n);
	strcpy(e[1].identity, "fe09");
	cr_assert_eq(custody_audit_hash(&e[1], h, NULL), CUSTODY_OK);
	snprintf(sql, sizeof(sql), "UPDATE audit SET identity = 'fe09', hash = '%s' "
		 "WHERE seq = 2", h);
	tamper(sql);
	assert_verify_fails(st, "audit entry 2 (2026-11-25T10:01:00Z set "
			    "OAuthTokenIssuer/fe09) was edited: its hash was "
			    "recomputed, entry 3 recorded another");
	custody_audit_entries_free(e, n);
	custody_store_close(st);
}

BOTH(the_last_entry_rehashed_does_not_match_the_head)
{
	custody_store *st = five_entries();
	custody_audit_entry last;
	char h[CUSTODY_AUDIT_HASH_HEX + 1];
	char sql[256];

	cr_assert_eq(custody_store_last_audit(st, &last, NULL), CUSTODY_OK);
	strcpy(last.actor, "mallory");
	cr_assert_eq(custody_audit_hash(&last, h, NULL), CUSTODY_OK);
	snprintf(sql, sizeof(sql), "UPDATE audit SET actor = 'mallory', hash = '%s' "
		 "WHERE seq = 5", h);
	tamper(sql);
	assert_verify_fails(st, "audit entry 5 (2026-11-25T10:04:00Z delete " C
			    ") does not match the head: the entry (its hash "
			    "recomputed) or the head was edited");
	custody_audit_entry_clear(&last);
	custody_store_close(st);
}

BOTH(a_removed_middle_entry_is_named)
{
	custody_store *st = five_entries();
	custody_audit_entry *e = NULL;
	size_t n = 0, bad = 99;

	tamper("DELETE FROM audit WHERE seq = 3");
	assert_verify_fails(st, "audit entry 3 was removed: entry 4 "
			    "(2026-11-25T10:03:00Z remove Default/fe01) follows "
			    "entry 2");
	list_all(st, &e, &n);
	cr_assert_eq(n, 4);
	cr_assert_eq(custody_audit_verify(e, n, &bad, NULL), CUSTODY_EFAIL);
	cr_assert_eq(bad, 2, "the entry after the gap");
	custody_audit_entries_free(e, n);
	custody_store_close(st);
}

BOTH(several_removed_entries_and_a_removed_first_one)
{
	custody_store *st = five_entries();

	tamper("DELETE FROM audit WHERE seq IN (2, 3)");
	assert_verify_fails(st, "audit entries 2 to 3 were removed: entry 4 "
			    "(2026-11-25T10:03:00Z remove Default/fe01) follows "
			    "entry 1");
	tamper("DELETE FROM audit WHERE seq = 1");
	assert_verify_fails(st, "audit entries 1 to 3 were removed: the log starts "
			    "at entry 4 (2026-11-25T10:03:00Z remove Default/fe01)");
	custody_store_close(st);
}

BOTH(swapped_entries_are_out_of_order)
{
	custody_store *st = five_entries();
	custody_audit_entry *e = NULL;
	size_t n = 0, bad = 99;

	tamper("UPDATE audit SET seq = 100 WHERE seq = 3;"
	       "UPDATE audit SET seq = 3 WHERE seq = 4;"
	       "UPDATE audit SET seq = 4 WHERE seq = 100;");
	assert_verify_fails(st, "audit entry 3 (2026-11-25T10:02:00Z roll "
			    "OAuthTokenIssuer/global) is out of order: it is "
			    "stored as entry 4");
	list_all(st, &e, &n);
	cr_assert_eq(custody_audit_verify(e, n, &bad, NULL), CUSTODY_EFAIL);
	cr_assert_eq(bad, 2);
	custody_audit_entries_free(e, n);
	custody_store_close(st);
}

BOTH(an_unsorted_array_is_out_of_order)
{
	custody_store *st = five_entries();
	custody_audit_entry *e = NULL, tmp;
	size_t n = 0, bad = 99;
	custody_err err = {0};

	list_all(st, &e, &n);
	tmp = e[3];
	e[3] = e[4];
	e[4] = tmp;
	cr_assert_eq(custody_audit_verify(e, n, &bad, &err), CUSTODY_EFAIL);
	cr_assert_eq(bad, 3);
	cr_assert_str_eq(err.msg, "audit entry 4 (2026-11-25T10:03:00Z remove "
			 "Default/fe01) is out of order: it comes after entry 5");
	custody_audit_entries_free(e, n);
	custody_store_close(st);
}

BOTH(a_cut_tail_is_detected_through_the_head)
{
	custody_store *st = five_entries();
	custody_audit_entry *e = NULL;
	size_t n = 0, bad = 99;
	custody_err err = {0};

	tamper("DELETE FROM audit WHERE seq = 5");
	assert_verify_fails(st, "the log was truncated after entry 4 "
			    "(2026-11-25T10:03:00Z remove Default/fe01): the head "
			    "records entry 5");
	/* The log alone cannot show it: that is what the head is for. */
	list_all(st, &e, &n);
	cr_assert_eq(custody_audit_verify(e, n, &bad, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(bad, 4);
	custody_audit_entries_free(e, n);

	tamper("DELETE FROM audit");
	assert_verify_fails(st, "the log was truncated: all its entries are gone, "
			    "the head records entry 5");
	custody_store_close(st);
}

BOTH(an_append_after_a_cut_tail_keeps_the_gap_visible)
{
	custody_store *st = five_entries();
	custody_audit_entry d = draft(T0 + 600, "set", "Default", "global", A, "", NULL);
	custody_audit_entry last;

	tamper("DELETE FROM audit WHERE seq = 5");
	append_ok(st, &d);
	cr_assert_eq(custody_store_last_audit(st, &last, NULL), CUSTODY_OK);
	cr_assert_eq(last.seq, 6, "chains after the head, not after the last row");
	custody_audit_entry_clear(&last);
	assert_verify_fails(st, "audit entry 5 was removed: entry 6 "
			    "(2026-11-25T10:10:00Z set Default/global) follows "
			    "entry 4");
	custody_store_close(st);
}

BOTH(an_entry_added_outside_custody_is_named)
{
	custody_store *st = five_entries();
	custody_audit_entry forged = draft(T0 + 300, "set", "Default", "global", B,
					   "", NULL);
	custody_audit_entry last;
	char sql[1024];

	/* A well-formed sixth entry, chained and hashed, but the head not
	 * moved. */
	cr_assert_eq(custody_store_last_audit(st, &last, NULL), CUSTODY_OK);
	forged.seq = 6;
	strcpy(forged.prev_hash, last.hash);
	cr_assert_eq(custody_audit_hash(&forged, forged.hash, NULL), CUSTODY_OK);
	snprintf(sql, sizeof(sql), "INSERT INTO audit (seq, time, node, actor, "
		 "action, type, identity, thumbprint, previous_thumbprint, "
		 "detail, prev_hash, hash) VALUES (6, %d, 'fe01', 'alice', 'set', "
		 "'Default', 'global', '%s', '', NULL, '%s', '%s')", T0 + 300, B,
		 forged.prev_hash, forged.hash);
	sql_exec(sql);
	assert_verify_fails(st, "audit entry 6 (2026-11-25T10:05:00Z set "
			    "Default/global) was added outside custody: the head "
			    "records entry 5");
	custody_audit_entry_clear(&last);
	custody_store_close(st);
}

BOTH(a_missing_head_fails_verification_and_appends)
{
	custody_store *st = five_entries();
	custody_audit_entry d = draft(0, "set", "Default", "global", A, "", NULL);
	custody_err err = {0};

	tamper("DELETE FROM audit_head");
	assert_verify_fails(st, "the audit head is missing: the store was edited "
			    "outside custody");
	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK);
	cr_assert_eq(custody_audit_append(st, &d, &err), CUSTODY_EFAIL);
	cr_assert_str_eq(err.msg, "cannot append to the audit log: its head is "
			 "missing (the store was edited outside custody)");
	custody_store_rollback(st);
	cr_assert_eq(sql_int("SELECT count(*) FROM audit"), 5);
	custody_store_close(st);
}

BOTH(an_oversized_field_reads_as_an_edit_not_a_failure)
{
	custody_store *st = five_entries();
	custody_audit_entry *e = NULL;
	size_t n = 0;
	char sql[512];

	snprintf(sql, sizeof(sql), "UPDATE audit SET thumbprint = '%s%s' WHERE seq = 2",
		 A, "FF");
	tamper(sql);
	list_all(st, &e, &n);
	cr_assert_eq(n, 5);
	cr_assert_str_eq(e[1].thumbprint, A, "cut to its size");
	assert_verify_fails(st, "audit entry 2 (2026-11-25T10:01:00Z set "
			    "OAuthTokenIssuer/global) was edited");
	custody_audit_entries_free(e, n);
	custody_store_close(st);
}

/* ---------------------------------------------------------------- transactions */

BOTH(an_append_needs_a_transaction)
{
	custody_store *st = open_ok();
	custody_audit_entry d = draft(T0, "set", "Default", "global", A, "", NULL);
	custody_err err = {0};
	int64_t seq = 9;
	char head[CUSTODY_AUDIT_HASH_HEX + 1];

	cr_assert_eq(custody_audit_append(st, &d, &err), CUSTODY_EUSAGE);
	cr_assert_str_eq(err.msg, "cannot append to the audit log: no write "
			 "transaction is open (custody_store_begin comes first)");
	cr_assert_eq(sql_int("SELECT count(*) FROM audit"), 0);
	cr_assert_eq(custody_store_audit_head(st, &seq, head, &err), CUSTODY_OK);
	cr_assert_eq(seq, 0);
	cr_assert_str_eq(head, ZEROS);
	custody_store_close(st);
}

BOTH(a_rolled_back_change_leaves_no_entry)
{
	custody_store *st = open_ok();
	custody_audit_entry d = draft(T0, "set", "Default", "global", A, "", NULL);
	custody_audit_entry last;
	custody_assignment a;
	custody_err err = {0};

	memset(&a, 0, sizeof(a));
	strcpy(a.type, "Default");
	strcpy(a.identity, "global");
	strcpy(a.current.thumbprint, A);
	a.current.effective = T0;
	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK);
	cr_assert_eq(custody_store_put_assignment(st, &a, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_audit_append(st, &d, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_last_audit(st, &last, &err), CUSTODY_OK);
	cr_assert_eq(last.seq, 1, "the transaction reads its own entry");
	custody_audit_entry_clear(&last);
	custody_store_rollback(st);

	cr_assert_eq(sql_int("SELECT count(*) FROM audit"), 0);
	cr_assert_eq(sql_int("SELECT count(*) FROM assignments"), 0);
	cr_assert_eq(sql_int("SELECT seq FROM audit_head"), 0);
	/* The next append takes seq 1 again and the chain holds. */
	append_ok(st, &d);
	cr_assert_eq(sql_int("SELECT max(seq) FROM audit"), 1);
	cr_assert_eq(verify(st, &err), CUSTODY_OK, "%s", err.msg);
	custody_store_close(st);
}

BOTH(a_stale_head_is_a_conflict)
{
	custody_store *st = five_entries();
	custody_audit_entry e = draft(T0, "set", "Default", "global", A, "", NULL);
	custody_err err = {0};

	/* Written as if the head were still at entry 3. */
	e.seq = 4;
	strcpy(e.prev_hash, ZEROS);
	strcpy(e.hash, ZEROS);
	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK);
	cr_assert_eq(custody_store_append_audit(st, &e, &err), CUSTODY_ECONFLICT);
	cr_assert(strstr(err.msg, "audit log changed concurrently") != NULL, "%s",
		  err.msg);
	cr_assert(strstr(err.msg, store_name) != NULL, "%s", err.msg);
	custody_store_rollback(st);
	cr_assert_eq(sql_int("SELECT count(*) FROM audit"), 5);
	cr_assert_eq(verify(st, &err), CUSTODY_OK, "%s", err.msg);
	custody_store_close(st);
}

#define WORKERS 4
#define APPENDS 15

BOTH(concurrent_processes_build_one_chain, .timeout = 60)
{
	pid_t pids[WORKERS];
	custody_store *st;
	custody_err err = {0};
	size_t n = 0;
	int i, status;

	for (i = 0; i < WORKERS; i++) {
		pids[i] = fork();
		cr_assert(pids[i] >= 0);
		if (pids[i] == 0) {
			custody_store *cs = NULL;
			custody_err cerr = {0};
			int j, r = custody_store_open(url, &cs, &cerr);

			if (r == CUSTODY_OK)
				test_tagger_attach(cs);

			for (j = 0; r == CUSTODY_OK && j < APPENDS; j++) {
				custody_audit_entry d = draft(T0 + j, "set", "Default",
							      "global", A, "", NULL);

				snprintf(d.node, sizeof(d.node), "fe%02d", i);
				if ((r = custody_store_begin(cs, &cerr)) != CUSTODY_OK)
					break;
				if ((r = custody_audit_append(cs, &d, &cerr)) != CUSTODY_OK) {
					custody_store_rollback(cs);
					break;
				}
				r = custody_store_commit(cs, &cerr);
			}
			if (r != CUSTODY_OK)
				fprintf(stderr, "worker %d: %s\n", i, cerr.msg);
			custody_store_close(cs);
			_exit(r == CUSTODY_OK ? 0 : 10 + r);
		}
	}
	for (i = 0; i < WORKERS; i++) {
		cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			  "worker %d: status %d", i, status);
	}
	st = open_ok();
	cr_assert_eq(custody_audit_verify_store(st, &n, NULL, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_eq(n, WORKERS * APPENDS);
	cr_assert_eq(sql_int("SELECT count(DISTINCT node) FROM audit"), WORKERS);
	custody_store_close(st);
}

/* ---------------------------------------------------------------- drafts */

BOTH(bad_drafts_are_usage_errors_and_write_nothing)
{
	custody_store *st = open_ok();
	custody_audit_entry d;
	custody_err err = {0};

	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK);
	d = draft(T0, "Set", "Default", "global", A, "", NULL);
	cr_assert_eq(custody_audit_append(st, &d, &err), CUSTODY_EUSAGE);
	cr_assert_str_eq(err.msg, "cannot append to the audit log: bad action "
			 "\"Set\" (lower-case letters, digits and '-')");
	d = draft(T0, "", "Default", "global", A, "", NULL);
	cr_assert_eq(custody_audit_append(st, &d, &err), CUSTODY_EUSAGE);
	d = draft(T0, "set", "Default", "global", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		  "", NULL);
	cr_assert_eq(custody_audit_append(st, &d, &err), CUSTODY_EUSAGE);
	cr_assert_str_eq(err.msg, "cannot append to the audit log: a thumbprint is "
			 "not 40 upper-case hex digits");
	d = draft(T0, "set", "Default", "global", A, "ABCDEF", NULL);
	cr_assert_eq(custody_audit_append(st, &d, &err), CUSTODY_EUSAGE);
	d = draft(T0, "set", "Default", "global", A, "", NULL);
	d.node[0] = '\0';
	cr_assert_eq(custody_audit_append(st, &d, &err), CUSTODY_EUSAGE);
	cr_assert_str_eq(err.msg, "cannot append to the audit log: the entry names "
			 "no node");
	d = draft(T0, "set", "Default", "global", A, "", NULL);
	memset(d.type, 'x', sizeof(d.type));
	cr_assert_eq(custody_audit_append(st, &d, &err), CUSTODY_EUSAGE);
	cr_assert_str_eq(err.msg, "cannot append to the audit log: a field of the "
			 "entry is not terminated");
	cr_assert_eq(custody_store_commit(st, &err), CUSTODY_OK);
	cr_assert_eq(sql_int("SELECT count(*) FROM audit"), 0);
	cr_assert_eq(sql_int("SELECT seq FROM audit_head"), 0);
	custody_store_close(st);
}

BOTH(the_draft_time_defaults_to_now_and_actor_to_the_user)
{
	custody_store *st = open_ok();
	custody_audit_entry d = draft(0, "request", "", "", "", "", "CN=x\nforged line");
	custody_audit_entry last;
	char actor[CUSTODY_AUDIT_ACTOR_MAX + 1];
	int64_t before = (int64_t)time(NULL);

	d.actor[0] = '\0';
	cr_assert_eq(setenv("SUDO_USER", "operator7", 1), 0);
	append_ok(st, &d);
	cr_assert_eq(custody_store_last_audit(st, &last, NULL), CUSTODY_OK);
	cr_assert(last.time >= before && last.time <= (int64_t)time(NULL),
		  "time %lld", (long long)last.time);
	cr_assert_str_eq(last.actor, "operator7");
	cr_assert_str_eq(last.detail, "CN=x\nforged line", "kept as given");
	cr_assert_str_eq(custody_audit_actor(actor, sizeof(actor)), "operator7");
	custody_audit_entry_clear(&last);
	custody_store_close(st);
}

static const char *
real_login(void)
{
	struct passwd *pw = getpwuid(getuid());

	return pw != NULL ? pw->pw_name : NULL;
}

Test(audit, the_actor_is_sudo_user_else_the_login_name)
{
	char actor[CUSTODY_AUDIT_ACTOR_MAX + 1];
	char small[4];
	char expected[64];
	char longname[200];

	if (real_login() != NULL)
		snprintf(expected, sizeof(expected), "%s", real_login());
	else
		snprintf(expected, sizeof(expected), "uid %lu", (unsigned long)getuid());

	cr_assert_eq(unsetenv("SUDO_USER"), 0);
	cr_assert_str_eq(custody_audit_actor(actor, sizeof(actor)), expected);
	cr_assert_eq(setenv("SUDO_USER", "alice", 1), 0);
	cr_assert_str_eq(custody_audit_actor(actor, sizeof(actor)), "alice");
	/* A name that would forge a line, or does not fit, is not taken. */
	cr_assert_eq(setenv("SUDO_USER", "alice\nfe02 root set", 1), 0);
	cr_assert_str_eq(custody_audit_actor(actor, sizeof(actor)), expected);
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	cr_assert_eq(setenv("SUDO_USER", longname, 1), 0);
	cr_assert_str_eq(custody_audit_actor(actor, sizeof(actor)), expected);
	cr_assert_eq(setenv("SUDO_USER", "", 1), 0);
	cr_assert_str_eq(custody_audit_actor(actor, sizeof(actor)), expected);
	/* A buffer too small for any name still gets a terminated string. */
	cr_assert_eq(setenv("SUDO_USER", "alice", 1), 0);
	custody_audit_actor(small, sizeof(small));
	cr_assert_lt(strlen(small), sizeof(small));
}

/* ---------------------------------------------------------------- migration */

/* Schema version 1, exactly as the first release's migration made it. */
static const char v1_schema[] =
	"CREATE TABLE schema_version ("
	" version INTEGER PRIMARY KEY NOT NULL,"
	" applied_at INTEGER NOT NULL);"
	"CREATE TABLE certificates ("
	"  thumbprint TEXT PRIMARY KEY NOT NULL,"
	"  sha256 TEXT UNIQUE NOT NULL,"
	"  subject TEXT,"
	"  issuer TEXT,"
	"  serial TEXT,"
	"  not_before INTEGER NOT NULL,"
	"  not_after INTEGER NOT NULL,"
	"  alt_names TEXT NOT NULL DEFAULT '[]',"
	"  key_algorithm TEXT NOT NULL DEFAULT '',"
	"  key_id TEXT NOT NULL DEFAULT '',"
	"  key_uri TEXT,"
	"  label TEXT,"
	"  der BLOB NOT NULL,"
	"  created_at INTEGER NOT NULL"
	");"
	"CREATE INDEX certificates_not_after ON certificates(not_after, thumbprint);"
	"CREATE TABLE assignments ("
	"  type TEXT NOT NULL COLLATE NOCASE,"
	"  identity TEXT NOT NULL COLLATE NOCASE,"
	"  current_thumbprint TEXT,"
	"  current_effective INTEGER,"
	"  previous_thumbprint TEXT,"
	"  previous_effective INTEGER,"
	"  pending_thumbprint TEXT,"
	"  pending_effective INTEGER,"
	"  version INTEGER NOT NULL,"
	"  PRIMARY KEY (type COLLATE NOCASE, identity COLLATE NOCASE)"
	");"
	"INSERT INTO schema_version (version, applied_at) VALUES (1, 1700000000);"
	"INSERT INTO certificates (thumbprint, sha256, subject, not_before, "
	"  not_after, der, created_at) VALUES ('" A "', "
	"  'FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210', "
	"  'CN=fe01.example.com', 1700000000, 1800000000, x'3000', 1700000000);"
	"INSERT INTO assignments (type, identity, current_thumbprint, "
	"  current_effective, version) VALUES ('OAuthTokenIssuer', 'global', '"
	A "', 1700000000, 3);";

/* The same, as the PostgreSQL backend's first migration made it. */
static const char v1_schema_pg[] =
	"CREATE TABLE schema_version ("
	" version INTEGER PRIMARY KEY NOT NULL,"
	" applied_at BIGINT NOT NULL);"
	"CREATE TABLE certificates ("
	"  thumbprint TEXT PRIMARY KEY NOT NULL,"
	"  sha256 TEXT UNIQUE NOT NULL,"
	"  subject TEXT,"
	"  issuer TEXT,"
	"  serial TEXT,"
	"  not_before BIGINT NOT NULL,"
	"  not_after BIGINT NOT NULL,"
	"  alt_names TEXT NOT NULL DEFAULT '[]',"
	"  key_algorithm TEXT NOT NULL DEFAULT '',"
	"  key_id TEXT NOT NULL DEFAULT '',"
	"  key_uri TEXT,"
	"  label TEXT,"
	"  der BYTEA NOT NULL,"
	"  created_at BIGINT NOT NULL"
	");"
	"CREATE INDEX certificates_not_after ON certificates(not_after, thumbprint);"
	"CREATE TABLE assignments ("
	"  type TEXT NOT NULL,"
	"  identity TEXT NOT NULL,"
	"  current_thumbprint TEXT,"
	"  current_effective BIGINT,"
	"  previous_thumbprint TEXT,"
	"  previous_effective BIGINT,"
	"  pending_thumbprint TEXT,"
	"  pending_effective BIGINT,"
	"  version BIGINT NOT NULL"
	");"
	"CREATE UNIQUE INDEX assignments_key ON assignments ("
	"  translate(type, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'),"
	"  translate(identity, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', "
	"    'abcdefghijklmnopqrstuvwxyz'));"
	"INSERT INTO schema_version (version, applied_at) VALUES (1, 1700000000);"
	"INSERT INTO certificates (thumbprint, sha256, subject, not_before, "
	"  not_after, der, created_at) VALUES ('" A "', "
	"  'FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210', "
	"  'CN=fe01.example.com', 1700000000, 1800000000, '\\x3000', 1700000000);"
	"INSERT INTO assignments (type, identity, current_thumbprint, "
	"  current_effective, version) VALUES ('OAuthTokenIssuer', 'global', '"
	A "', 1700000000, 3);";

/* What `custody tag` does to the rows of a store from before tags. */
static void
tag_v1_rows(custody_store *st)
{
	custody_cert_record *certs = NULL;
	custody_assignment *as = NULL;
	custody_err err = {0};
	size_t nc = 0, na = 0, i;

	cr_assert_eq(custody_store_list_certs(st, &certs, &nc, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_list_assignments(st, &as, &na, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_eq(custody_store_begin(st, &err), CUSTODY_OK, "%s", err.msg);
	for (i = 0; i < nc; i++)
		cr_assert_eq(custody_store_retag_cert(st, &certs[i], &err), CUSTODY_OK, "%s",
			     err.msg);
	for (i = 0; i < na; i++)
		cr_assert_eq(custody_store_retag_assignment(st, &as[i], &err), CUSTODY_OK, "%s",
			     err.msg);
	cr_assert_eq(custody_store_tags_enable(st, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_eq(custody_store_commit(st, &err), CUSTODY_OK, "%s", err.msg);
	custody_cert_records_free(certs, nc);
	free(as);
}

BOTH(a_version_1_store_is_migrated_and_keeps_its_rows)
{
	custody_store *st;
	custody_assignment a;
	custody_cert_record rec;
	custody_audit_entry d = draft(T0, "set", "Default", "global", A, "", NULL);
	custody_err err = {0};
	int64_t seq = 9;
	char head[CUSTODY_AUDIT_HASH_HEX + 1];
	size_t n = 9;

	sql_exec(DIALECT(v1_schema, v1_schema_pg));
	cr_assert_eq(sql_int(DIALECT("SELECT count(*) FROM sqlite_master WHERE name = 'audit'",
				     "SELECT count(*) FROM pg_tables WHERE tablename = "
				     "'audit' AND schemaname = current_schema()")), 0);
	st = open_ok();
	/* Every later migration is applied, each recorded once. */
	cr_assert_geq(custody_store_schema_version(), 2);
	cr_assert_eq(sql_int("SELECT max(version) FROM schema_version"),
		     custody_store_schema_version());
	cr_assert_eq(sql_int("SELECT count(*) FROM schema_version"),
		     custody_store_schema_version());
	cr_assert_eq(sql_int("SELECT applied_at FROM schema_version WHERE version = 1"),
		     1700000000, "the version 1 row is kept");
	/* Its rows carry no integrity tags: trusted once tagged (custody
	 * tag), as they are. */
	cr_assert_eq(custody_store_get_assignment(st, "OAuthTokenIssuer", "global", &a,
						  &err), CUSTODY_EFAIL);
	cr_assert(strstr(err.msg, "no integrity tags yet") != NULL, "%s", err.msg);
	tag_v1_rows(st);
	/* v1 rows intact. */
	cr_assert_eq(custody_store_get_assignment(st, "OAuthTokenIssuer", "global", &a,
						  &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_str_eq(a.current.thumbprint, A);
	cr_assert_eq(a.current.effective, 1700000000);
	cr_assert_eq(a.version, 3);
	cr_assert_eq(custody_store_get_cert(st, A, &rec, &err), CUSTODY_OK, "%s", err.msg);
	cr_assert_str_eq(rec.subject, "CN=fe01.example.com");
	cr_assert_eq(rec.der_len, 2);
	custody_cert_record_clear(&rec);
	/* An empty, verifiable log with its head. */
	cr_assert_eq(custody_store_audit_head(st, &seq, head, &err), CUSTODY_OK);
	cr_assert_eq(seq, 0);
	cr_assert_str_eq(head, ZEROS);
	cr_assert_eq(custody_audit_verify_store(st, &n, NULL, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_eq(n, 0);
	append_ok(st, &d);
	cr_assert_eq(custody_audit_verify_store(st, &n, NULL, &err), CUSTODY_OK, "%s",
		     err.msg);
	cr_assert_eq(n, 1);
	custody_store_close(st);

	/* Opening again migrates nothing more. */
	st = open_ok();
	cr_assert_eq(sql_int("SELECT count(*) FROM schema_version"),
		     custody_store_schema_version());
	cr_assert_eq(sql_int("SELECT count(*) FROM audit"), 1);
	custody_store_close(st);
}

/* ---------------------------------------------------------------- PostgreSQL */

Test(audit_pg, truncate_is_refused_too)
{
	custody_store *st;
	char msg[256];

	pgtest_required();
	st = five_entries();
	cr_assert_neq(sql_try("TRUNCATE audit", msg, sizeof(msg)), 0);
	cr_assert_str_eq(msg, "the audit log is append-only");
	cr_assert_neq(sql_try("TRUNCATE audit_head", msg, sizeof(msg)), 0);
	cr_assert_str_eq(msg, "the audit head cannot be deleted");
	cr_assert_eq(sql_int("SELECT count(*) FROM audit"), 5);
	cr_assert_eq(sql_int("SELECT seq FROM audit_head"), 5);
	custody_store_close(st);
}
