/*
 * store/backend.h — what a store backend provides (private to libcustody).
 *
 * The store is one core and thin backends.  store/store.c checks the
 * arguments and keeps track of the write transaction; store/core.c does
 * everything about records once: which statement a call runs with which
 * values, decoding each row into its record, the alternative names' JSON,
 * growing lists, the conflict and not-found messages, the schema's version
 * check and migration driver.  A backend (store/sqlite.c, store/pg.c) is
 * a connection, the text of its statements and a driver: run one
 * statement with bound values and hand each result row to the core
 * through the row reader below.  Adding a column touches store/core.c and
 * the statements that name it (store/schema.h for the table), nothing
 * else; adding a backend is one more file (its connection, the statements
 * it words its own way, its driver and table) and one line in
 * store/store.c's URL dispatch.
 *
 * The library boundary: the PostgreSQL backend is a module (see below)
 * that calls nothing of the core.  The core calls a backend only through
 * its table, and a backend calls back only through the function pointers
 * it is handed (struct store_query's each_row); the statements' text
 * comes in the query.  So the module needs no symbol of libcustody but
 * its exported custody_* API (errors, logging): no core function is
 * exported for it, none is compiled into it twice, and libcustody may
 * export only ^custody_.  Keep it so: a helper both backends need belongs
 * in the core, called by the core, not by a backend.
 *
 * A backend gets only well-formed values: store/store.c checked them.  It
 * fills err itself when a statement fails, "WHAT: WHY", WHAT as the core
 * gave it (naming the store by where()).
 */
#ifndef CUSTODY_STORE_BACKEND_H
#define CUSTODY_STORE_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <custody/error.h>
#include <custody/records.h>
#include <custody/store.h>

/* A backend's connection to its store: each backend defines it (the
 * SQLite file, the PostgreSQL session); the core only passes it on. */
struct store_conn;

/* The schema version every backend of this build writes. */
#define CUSTODY_STORE_SCHEMA_VERSION 5

/*
 * Every statement the core runs.  Its text is the backend's, where the
 * two differ (the backend's sql[i]), else the standard SQL of store/core.c
 * that both take alike.  Values are bound as $1, $2..., in the order the
 * core gives them.
 */
enum store_sql {
	STORE_SQL_SCHEMA_EXISTS,	/* one boolean: schema_version exists   */
	STORE_SQL_SCHEMA_VERSION,	/* one integer: the newest version      */
	STORE_SQL_CREATE_SCHEMA_VERSION,
	STORE_SQL_RECORD_VERSION,	/* version, applied_at                  */

	STORE_SQL_GET_ASSIGNMENT,	/* type, identity                       */
	STORE_SQL_LIST_ASSIGNMENTS,
	STORE_SQL_FIND_ASSIGNMENT,	/* type, identity: a row if it exists   */
	STORE_SQL_DELETE_ASSIGNMENT,	/* type, identity, version              */
	STORE_SQL_INSERT_ASSIGNMENT,	/* type, identity, 3 slots              */
	STORE_SQL_UPDATE_ASSIGNMENT,	/* type, identity, 3 slots, version     */

	STORE_SQL_PUT_CERT,		/* 13 columns, created_at               */
	STORE_SQL_GET_CERT,		/* thumbprint                           */
	STORE_SQL_LIST_CERTS,
	STORE_SQL_LIST_CERTS_OF,	/* thumbprints, ","-separated      */
	STORE_SQL_DELETE_CERT,		/* thumbprint                           */

	STORE_SQL_MOVE_AUDIT_HEAD,	/* seq, hash, seq - 1, prev_hash        */
	STORE_SQL_INSERT_AUDIT,		/* 12 columns                           */
	STORE_SQL_LAST_AUDIT,
	STORE_SQL_LIST_AUDIT,		/* since                                */
	STORE_SQL_FIND_AUDIT,		/* action, type, identity, thumbprint,
					 * each NULL for any: the newest match   */
	STORE_SQL_NEWEST_AUDIT_OF,	/* actions (","-separated), thumbprint
					 * (NULL for any): the newest match      */
	STORE_SQL_AUDIT_HEAD,
	STORE_SQL_AUDIT_HEAD_LOCKED,	/* inside a transaction                 */

	STORE_SQL_INSERT_NODE,		/* 11 columns                           */
	STORE_SQL_UPDATE_NODE,		/* 11 columns, version                  */
	STORE_SQL_GET_NODE,		/* name                                 */
	STORE_SQL_LIST_NODES,
	STORE_SQL_PUT_PACKAGE,		/* 6 columns                            */
	STORE_SQL_GET_PACKAGE,		/* thumbprint                           */
	STORE_SQL_LIST_PACKAGES,
	STORE_SQL_LIST_PACKAGES_OF,	/* thumbprints, ","-separated      */
	STORE_SQL_DELETE_PACKAGE,	/* thumbprint                           */
	STORE_SQL_PUT_REPORT,		/* 5 columns                            */
	STORE_SQL_LIST_REPORTS,		/* node or NULL                         */
	STORE_SQL_GET_META,		/* name                                 */
	STORE_SQL_INSERT_META,		/* name, value                          */
	STORE_SQL_REPLACE_META,		/* name, value                          */
	STORE_SQL_GET_TAG,		/* kind, name                           */
	STORE_SQL_PUT_TAG,		/* kind, name, tag                      */
	STORE_SQL_DELETE_TAG,		/* kind, name                           */
	STORE_SQL_COUNT_ROWS,		/* one integer: rows written since made */
	STORE_SQL_BUMP_GENERATION,	/* the store's generation + 1           */
	STORE_SQL_GET_GENERATION,	/* one integer, no row: 0               */
	STORE_SQL_LIST_TAGS,		/* kind, name, tag of every row         */

	STORE_SQL_COUNT
};

/* The column lists both backends' statements share, in the order the
 * core's row readers expect. */
#define STORE_ASSIGNMENT_COLUMNS \
	"type, identity, current_thumbprint, current_effective, " \
	"previous_thumbprint, previous_effective, pending_thumbprint, " \
	"pending_effective, version"
#define STORE_CERT_COLUMNS \
	"thumbprint, sha256, subject, issuer, serial, not_before, not_after, " \
	"alt_names, key_algorithm, key_id, key_uri, label, der"
#define STORE_AUDIT_COLUMNS \
	"seq, time, node, actor, action, type, identity, thumbprint, " \
	"previous_thumbprint, detail, prev_hash, hash"
#define STORE_NODE_COLUMNS \
	"name, state, transport_spki, kek_wrap, admitted_by, enrolled_at, " \
	"admitted_at, joined_at, last_sync, version, kek_check, admission_sig"
#define STORE_PACKAGE_COLUMNS "thumbprint, key_id, wrapped, kcv, created_at, node"
#define STORE_REPORT_COLUMNS "node, thumbprint, held, detail, time"

#define STORE_MAX_VALUES 16

/* One bound value. */
enum store_value_kind {
	STORE_NULL,
	STORE_TEXT,	/* text                                    */
	STORE_INT,	/* integer                                 */
	STORE_BOOL,	/* integer, 0 or 1                         */
	STORE_BYTES,	/* bytes, len (a blob; BYTEA)              */
};

struct store_value {
	enum store_value_kind kind;
	const char *text;
	int64_t integer;
	const unsigned char *bytes;
	size_t len;
};

/* One result row, read through its backend's accessors. */
struct store_row;
struct store_row_reader {
	/* The text of column col and its length in bytes, NULL for SQL
	 * NULL; the text is NUL-terminated and may hold a NUL before len. */
	const char *(*text)(const struct store_row *row, int col, size_t *len);
	/* An integer column; 0 for NULL. */
	int64_t (*integer)(const struct store_row *row, int col);
	/* A boolean column: 1 for true. */
	int (*flag)(const struct store_row *row, int col);
	/* A byte-string column into a malloc'ed copy (NULL and 0 for NULL or
	 * empty); -1 when out of memory. */
	int (*bytes)(const struct store_row *row, int col, unsigned char **dst,
		     size_t *len);
};

struct store_row {
	const struct store_row_reader *reader;
	void *cursor;		/* the backend's statement or result */
	int index;		/* the row number in cursor, if it has several */
};

/*
 * One statement to run: the core fills sql, values and each_row; the
 * backend fills rows, changes and unique_violation.
 */
struct store_query {
	enum store_sql sql;
	const char *text;	/* the statement's text, the core sets it */
	struct store_value values[STORE_MAX_VALUES];
	int n_values;
	/* Called for each result row; NULL for a statement that returns
	 * none.  A result other than CUSTODY_OK (err set) stops the run and
	 * is what run returns. */
	int (*each_row)(void *arg, const struct store_row *row, custody_err *err);
	void *arg;

	size_t rows;		/* rows handed to each_row                  */
	long changes;		/* rows an INSERT, UPDATE or DELETE changed */
	int unique_violation;	/* it failed on a primary or unique key     */
};

struct custody_store_backend {
	const char *name;	/* "sqlite", "postgresql" */
	/* The text of the statements this backend words its own way,
	 * indexed by enum store_sql; NULL where the standard one serves. */
	const char *const *sql;
	/* The schema, one script per version: migrations[v] brings a store
	 * of version v-1 to version v (1 to CUSTODY_STORE_SCHEMA_VERSION). */
	const char *const *migrations;

	/* location: what follows the scheme ("PATH" of "sqlite:PATH", the
	 * whole URL for PostgreSQL).  With create, makes the store's file
	 * when it has none (never a directory); without, a store that has
	 * none is ENOTFOUND, err untouched (the store words it with the
	 * location, as the core does for a database without a schema; a
	 * backend whose location may hold a secret never returns it).
	 * The core then brings its schema to CUSTODY_STORE_SCHEMA_VERSION
	 * (or, without create, refuses a store that has no schema yet). */
	int (*open)(const char *location, int create, struct store_conn **s,
		    custody_err *err);
	void (*close)(struct store_conn *s);
	/* The store as messages name it: its path, or its host and
	 * database (never a user or password). */
	const char *(*where)(struct store_conn *s);

	int (*begin)(struct store_conn *s, custody_err *err);
	/* A read-only snapshot for a few reads that must agree (a row and its
	 * integrity tag), ended with rollback. */
	int (*begin_read)(struct store_conn *s, custody_err *err);
	/* On failure the backend has rolled back already. */
	int (*commit)(struct store_conn *s, custody_err *err);
	void (*rollback)(struct store_conn *s);
	/* 1 inside a transaction begun with begin or begin_read. */
	int (*in_transaction)(struct store_conn *s);
	/* 1 when a statement failed in the transaction and it can only be
	 * rolled back (its commit says so); NULL when a failed statement
	 * leaves the transaction usable. */
	int (*aborted)(struct store_conn *s);
	/* Inside the transaction of a schema upgrade (begun with begin):
	 * what keeps concurrent first opens from upgrading twice beyond
	 * begin's own lock; NULL when begin is enough. */
	int (*lock_schema)(struct store_conn *s, custody_err *err);

	/* Runs q->text with q's values (see struct store_query); on failure
	 * err says "WHAT: WHY". */
	int (*run)(struct store_conn *s, struct store_query *q, const char *what,
		   custody_err *err);
	/* Runs a constant script of several statements without values. */
	int (*run_script)(struct store_conn *s, const char *script, const char *what,
			  custody_err *err);
	/* Queues a change notification (payload "TYPE/IDENTITY",
	 * "certificates", "audit", ...) sent on commit; NULL: none.  The
	 * core notifies what members follow only, never a node's report. */
	int (*notify)(struct store_conn *s, const char *payload, custody_err *err);

	/* Inside a write transaction that found the store as its open made
	 * it: removes the store (its files), so that a first write that was
	 * refused leaves none; a connection of another process that opened
	 * it meanwhile finds it gone at its next begin.  NULL: a store of
	 * this backend is never removed (a PostgreSQL database keeps the
	 * schema made in it). */
	int (*unmake)(struct store_conn *s, custody_err *err);

	/* custody/store.h custody_store_changed; NULL: always "maybe". */
	int (*changed)(struct store_conn *s, int *changed, custody_err *err);
	/* custody/store.h custody_store_wait_change, outside a transaction;
	 * NULL: store/store.c asks changed() every 100 ms. */
	int (*wait_change)(struct store_conn *s, int timeout_ms, int *changed,
			   custody_err *err);
	/* The statements this connection sent to its store so far (round
	 * trips: transaction control and LISTEN included), for
	 * custody_store_statements. */
	unsigned long (*statements)(struct store_conn *s);
};

extern const struct custody_store_backend custody_store_sqlite_backend;

/* The PostgreSQL backend is not in libcustody (which then links no libpq):
 * it is the module CUSTODY_STORE_PG_MODULE, store/pg.c linked with libpq
 * and libcustody, whose one exported symbol is its table.  store/store.c loads
 * it on the first postgresql:// URL from $CUSTODY_MODULE_DIR, else from
 * CUSTODY_PKGLIBDIR (the installed $(pkglibdir)), and keeps it loaded. */
#define CUSTODY_STORE_PG_MODULE "custody-store-pg.so"
#define CUSTODY_STORE_PG_SYMBOL "custody_store_pg_backend"
extern const struct custody_store_backend custody_store_pg_backend;

#endif
