/* store/pg.c — the PostgreSQL store backend ("postgresql://..." or
 * "postgres://...", handed to libpq as given).
 *
 * The connection, the text of the statements and the driver that runs
 * them for store/core.c (see store/backend.h).  One connection per store
 * handle.  The schema is the SQLite one in PostgreSQL types, versioned in
 * schema_version; store/core.c brings it up to date at open in one
 * transaction that holds an advisory lock (pg_lock_schema), so that
 * concurrent first opens create it once.  Writes run in READ COMMITTED
 * transactions: the version check of each assignment and the guarded move
 * of the audit head (read FOR UPDATE inside a transaction) make concurrent
 * changes fail with ECONFLICT or wait, never overwrite; begin_read takes a
 * REPEATABLE READ snapshot.  Every change queues a
 * NOTIFY on channel "custody_changes" (payload "TYPE/IDENTITY",
 * "certificates" or "audit"), which PostgreSQL delivers on commit only;
 * what nodes report (their reports, node rows, sync entries) is not
 * notified (store/core.c notify).
 * Every statement is a constant string; values are always bound.  A
 * connection that listens (a watcher's) keeps its statements prepared
 * (store/pg_prepared.c).
 * Messages name the store by host and database, never by user or
 * password.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include <custody/clock.h>
#include <custody/error.h>
#include <custody/log.h>
#include <custody/records.h>
#include <custody/store.h>

#include "store/backend.h"
#include "store/pg_prepared.h"
#include "store/schema.h"

#define NOTIFY_CHANNEL "custody_changes"
#define LOCK_TIMEOUT "SET lock_timeout = '10s'"
#define CONNECT_TIMEOUT "10"
/* pg_advisory_xact_lock(MIGRATION_LOCK, hash of the schema): "cust". */
#define MIGRATION_LOCK "1668642676"

struct store_conn {
	PGconn *conn;
	char name[512];		/* postgresql://HOST[:PORT]/DB, no user */
	int in_tx;
	int listening;		/* LISTEN custody_changes is in effect  */
	/* The statements kept prepared: once the connection listens (a
	 * watcher's, its own for its life), NULL before. */
	struct pg_prepared *prepared;
	unsigned long statements;	/* sent so far (pg_statements)   */
};

/* ASCII case folding, as SQLite's NOCASE: the same expression in the
 * unique index and in every lookup, so that the index serves them. */
#define FOLD(x) "translate(" x ", 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', " \
	"'abcdefghijklmnopqrstuvwxyz')"

/*
 * The schema, one entry per version (see store/schema.h): PostgreSQL's
 * types, names folded as SQLite's NOCASE does, the audit log's triggers.
 */
static const char *const migrations[CUSTODY_STORE_SCHEMA_VERSION + 1] = {
	NULL,
	STORE_SCHEMA_CERTIFICATES("BIGINT", "BYTEA")
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
	FOLD("type") ", " FOLD("identity") ");",
	STORE_SCHEMA_AUDIT("BIGINT")
	"CREATE FUNCTION custody_refuse() RETURNS trigger LANGUAGE plpgsql AS "
	"  $$BEGIN RAISE EXCEPTION '%', TG_ARGV[0]; END$$;"
	"CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit FOR EACH ROW "
	"  EXECUTE FUNCTION custody_refuse('the audit log is append-only');"
	"CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit FOR EACH ROW "
	"  EXECUTE FUNCTION custody_refuse('the audit log is append-only');"
	"CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit "
	"  FOR EACH STATEMENT "
	"  EXECUTE FUNCTION custody_refuse('the audit log is append-only');"
	"CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head "
	"  FOR EACH ROW "
	"  EXECUTE FUNCTION custody_refuse('the audit head cannot be deleted');"
	"CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head "
	"  FOR EACH STATEMENT "
	"  EXECUTE FUNCTION custody_refuse('the audit head cannot be deleted');",
	STORE_SCHEMA_CLUSTER("BIGINT", "BYTEA", "BOOLEAN"),
	STORE_SCHEMA_ADMISSION("BYTEA"),
	STORE_SCHEMA_TAGS,
};

#define ASSIGNMENT_KEY \
	FOLD("type") " = " FOLD("$1") " AND " FOLD("identity") " = " FOLD("$2")
#define IN_BYTE_ORDER " COLLATE \"C\""

/* The statements PostgreSQL words its own way (store/backend.h); the rest
 * are store/core.c's.  Names compare folded (ASSIGNMENT_KEY, served by
 * the index assignments_key), lists sort in byte order as SQLite's do. */
static const char *const statements[STORE_SQL_COUNT] = {
	[STORE_SQL_SCHEMA_EXISTS] =
	"SELECT to_regclass('schema_version') IS NOT NULL",
	[STORE_SQL_CREATE_SCHEMA_VERSION] = STORE_SCHEMA_VERSIONS("BIGINT"),
	[STORE_SQL_LIST_ASSIGNMENTS] =
	"SELECT " STORE_ASSIGNMENT_COLUMNS " FROM assignments "
	"ORDER BY " FOLD("type") IN_BYTE_ORDER ", "
	"CASE WHEN " FOLD("identity") " = 'global' THEN 0 ELSE 1 END, "
	FOLD("identity") IN_BYTE_ORDER,
	[STORE_SQL_GET_ASSIGNMENT] =
	"SELECT " STORE_ASSIGNMENT_COLUMNS " FROM assignments WHERE "
	ASSIGNMENT_KEY,
	[STORE_SQL_FIND_ASSIGNMENT] =
	"SELECT 1 FROM assignments WHERE " ASSIGNMENT_KEY,
	[STORE_SQL_DELETE_ASSIGNMENT] =
	"DELETE FROM assignments WHERE " ASSIGNMENT_KEY " AND version = $3",
	/* A row inserted meanwhile (in any case) makes the insert do
	 * nothing: a conflict, and the transaction stays usable. */
	[STORE_SQL_INSERT_ASSIGNMENT] =
	"INSERT INTO assignments (" STORE_ASSIGNMENT_COLUMNS ") "
	"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1) ON CONFLICT DO NOTHING",
	[STORE_SQL_UPDATE_ASSIGNMENT] =
	"UPDATE assignments SET "
	"current_thumbprint = $3, current_effective = $4, "
	"previous_thumbprint = $5, previous_effective = $6, "
	"pending_thumbprint = $7, pending_effective = $8, "
	"version = version + 1 "
	"WHERE " ASSIGNMENT_KEY " AND version = $9",
	[STORE_SQL_LIST_CERTS] =
	"SELECT " STORE_CERT_COLUMNS " FROM certificates "
	"ORDER BY not_after, thumbprint" IN_BYTE_ORDER,
	[STORE_SQL_LIST_CERTS_OF] =
	"SELECT " STORE_CERT_COLUMNS " FROM certificates "
	"WHERE thumbprint = ANY (string_to_array($1::text, ',')) "
	"ORDER BY not_after, thumbprint" IN_BYTE_ORDER,
	[STORE_SQL_INSERT_AUDIT] =
	"INSERT INTO audit (" STORE_AUDIT_COLUMNS ") VALUES "
	"($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
	"ON CONFLICT (seq) DO NOTHING",
	/* A concurrent appender waits here for this transaction, then reads
	 * the head it left, so that appends queue instead of failing. */
	[STORE_SQL_AUDIT_HEAD_LOCKED] =
	"SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
	[STORE_SQL_LIST_NODES] =
	"SELECT " STORE_NODE_COLUMNS " FROM nodes ORDER BY name" IN_BYTE_ORDER,
	[STORE_SQL_LIST_PACKAGES] =
	"SELECT " STORE_PACKAGE_COLUMNS " FROM packages "
	"ORDER BY thumbprint" IN_BYTE_ORDER,
	[STORE_SQL_LIST_PACKAGES_OF] =
	"SELECT " STORE_PACKAGE_COLUMNS " FROM packages "
	"WHERE thumbprint = ANY (string_to_array($1::text, ',')) "
	"ORDER BY thumbprint" IN_BYTE_ORDER,
	[STORE_SQL_LIST_REPORTS] =
	"SELECT " STORE_REPORT_COLUMNS " FROM node_reports "
	"WHERE $1::text IS NULL OR node = $1 "
	"ORDER BY node" IN_BYTE_ORDER ", thumbprint" IN_BYTE_ORDER,
	/* The casts type a parameter that may be NULL; backwards along the
	 * primary key, the first match stops the scan. */
	[STORE_SQL_FIND_AUDIT] =
	"SELECT " STORE_AUDIT_COLUMNS " FROM audit "
	"WHERE ($1::text IS NULL OR action = $1) AND ($2::text IS NULL OR type = $2) "
	"AND ($3::text IS NULL OR identity = $3) "
	"AND ($4::text IS NULL OR thumbprint = $4) "
	"ORDER BY seq DESC LIMIT 1",
	[STORE_SQL_NEWEST_AUDIT_OF] =
	"SELECT " STORE_AUDIT_COLUMNS " FROM audit "
	"WHERE action = ANY (string_to_array($1::text, ',')) "
	"AND ($2::text IS NULL OR thumbprint = $2) "
	"ORDER BY seq DESC LIMIT 1",
};

/* ------------------------------------------------------------ parameters */

/* The bound values of one statement: text, or binary for byte strings. */
struct params {
	int n;
	const char *values[STORE_MAX_VALUES];
	int lengths[STORE_MAX_VALUES];
	int formats[STORE_MAX_VALUES];
	char ints[STORE_MAX_VALUES][24];
};

/* NULL binds SQL NULL. */
static void
p_text(struct params *p, const char *text)
{
	p->values[p->n] = text;
	p->lengths[p->n] = 0;
	p->formats[p->n] = 0;
	p->n++;
}

static void
p_int(struct params *p, int64_t v)
{
	snprintf(p->ints[p->n], sizeof(p->ints[p->n]), "%" PRId64, v);
	p_text(p, p->ints[p->n]);
}

static void
p_bytes(struct params *p, const unsigned char *bytes, size_t len)
{
	p->values[p->n] = (const char *)bytes;
	p->lengths[p->n] = (int)len;
	p->formats[p->n] = 1;
	p->n++;
}

/* ------------------------------------------------------------ errors */

/* The first line of text into dst, without libpq's "FATAL:  " or
 * "ERROR:  " severity prefix. */
static void
first_line(const char *text, char *dst, size_t size)
{
	size_t len;

	if (text == NULL)
		text = "";
	if (strncmp(text, "FATAL:  ", 8) == 0 || strncmp(text, "ERROR:  ", 8) == 0)
		text += 8;
	len = strcspn(text, "\r\n");
	if (len >= size)
		len = size - 1;
	memcpy(dst, text, len);
	dst[len] = '\0';
}

/* Class 08 (connection exception) and the shutdown codes of class 57. */
static int
is_gone(const char *state)
{
	return state != NULL &&
		(strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
		 strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0);
}

/*
 * EFAIL "WHAT: WHY" for a failed statement (res, may be NULL): WHY is the
 * server's message with its SQLSTATE; a lost connection says "store
 * unreachable", a lock that outlasted lock_timeout "store is busy", a
 * deadlock or serialization failure is ECONFLICT.
 */
static int
pg_error(struct store_conn *s, custody_err *err, const PGresult *res,
	 const char *fmt, ...) CUSTODY_PRINTF(4, 5);

static int
pg_error(struct store_conn *s, custody_err *err, const PGresult *res,
	 const char *fmt, ...)
{
	va_list ap;
	char what[512];
	char why[512];
	const char *state = NULL;
	const char *primary = NULL;

	va_start(ap, fmt);
	if (vsnprintf(what, sizeof(what), fmt, ap) < 0)
		what[0] = '\0';
	va_end(ap);
	if (res != NULL) {
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	}
	if (primary != NULL)
		first_line(primary, why, sizeof(why));
	else if (res != NULL && PQresultErrorMessage(res)[0] != '\0')
		first_line(PQresultErrorMessage(res), why, sizeof(why));
	else
		first_line(PQerrorMessage(s->conn), why, sizeof(why));
	if (PQstatus(s->conn) != CONNECTION_OK || is_gone(state)) {
		custody_err_set(err, CUSTODY_EFAIL, "%s: store unreachable: %s%s%s%s",
				what, why, state != NULL ? " (SQLSTATE " : "",
				state != NULL ? state : "", state != NULL ? ")" : "");
		custody_err_hint(err, "is the PostgreSQL server of %s running and "
					"reachable from this node?", s->name);
		return CUSTODY_EFAIL;
	}
	/* A hot standby (or a primary demoted under a running session):
	 * the transaction wrote nothing, and the commit is refused. */
	if (state != NULL && strcmp(state, "25006") == 0) {
		custody_err_set(err, CUSTODY_EFAIL, "%s: store %s is read-only "
				"(a standby server): nothing was written "
				"(SQLSTATE %s)", what, s->name, state);
		custody_err_hint(err, "write to the primary: name every server "
					"in the URL with target_session_attrs="
					"read-write, e.g. postgresql://HOST1,HOST2/DB"
					"?target_session_attrs=read-write");
		return CUSTODY_EFAIL;
	}
	if (state != NULL && strcmp(state, "55P03") == 0) {
		custody_err_set(err, CUSTODY_EFAIL, "%s: store is busy: %s "
				"(SQLSTATE %s)", what, why, state);
		custody_err_hint(err, "another process is writing to it; "
					"try again");
		return CUSTODY_EFAIL;
	}
	if (state != NULL && (strcmp(state, "40P01") == 0 ||
			      strcmp(state, "40001") == 0)) {
		custody_err_set(err, CUSTODY_ECONFLICT, "%s: changed concurrently: "
				"%s (SQLSTATE %s)", what, why, state);
		custody_err_hint(err, "read it again and retry");
		return CUSTODY_ECONFLICT;
	}
	if (state != NULL)
		return custody_err_set(err, CUSTODY_EFAIL, "%s: %s (SQLSTATE %s)",
				       what, why, state);
	return custody_err_set(err, CUSTODY_EFAIL, "%s: %s", what, why);
}

/* ------------------------------------------------------------ connection */

static void
notice(void *arg, const char *message)
{
	struct store_conn *s = arg;
	char line[512];

	first_line(message, line, sizeof(line));
	custody_debug("store %s: %s", s->name, line);
}

/* A constant script of several statements, no values (a migration). */
static int
pg_run_script(struct store_conn *s, const char *script, const char *what,
	      custody_err *err)
{
	int r = CUSTODY_OK;
	PGresult *res = PQexec(s->conn, script);

	s->statements++;

	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		r = pg_error(s, err, res, "%s", what);
	PQclear(res);
	return r;
}

/* Session settings, after each (re)connection: wait at most 10 s for a
 * lock, as the SQLite backend waits for a writer. */
static int
setup_session(struct store_conn *s, custody_err *err)
{
	char what[600];

	PQsetNoticeProcessor(s->conn, notice, s);
	snprintf(what, sizeof(what), "cannot set up the session on store %s",
		 s->name);
	return pg_run_script(s, LOCK_TIMEOUT, what, err);
}

/* Outside a transaction a lost connection is made again, once; inside
 * one it is an error ("store unreachable"): the transaction is gone. */
static int
ensure_connected(struct store_conn *s, custody_err *err, const char *what)
{
	int r = CUSTODY_EFAIL;

	if (PQstatus(s->conn) == CONNECTION_OK)
		return CUSTODY_OK;
	if (!s->in_tx) {
		PQreset(s->conn);
		s->listening = 0;	/* a new session listens to nothing */
		pg_prepared_forget(s->prepared);	/* and has nothing prepared */
		if (PQstatus(s->conn) == CONNECTION_OK) {
			custody_debug("store %s: connection made again", s->name);
			r = setup_session(s, err);
			return r;
		}
	}
	r = pg_error(s, err, NULL, "%s", what);
	return r;
}

/*
 * Runs sql with the values of p (NULL: none) and expects a result of
 * status want.  On failure err says "WHAT: WHY" (WHAT from fmt) and, when
 * state is not NULL, it receives the SQLSTATE ("" when there is none).
 */
static int
query(struct store_conn *s, const char *sql, const struct params *p,
      ExecStatusType want, PGresult **out, char state[6], custody_err *err,
      const char *fmt, ...) CUSTODY_PRINTF(8, 9);

static int
query(struct store_conn *s, const char *sql, const struct params *p,
      ExecStatusType want, PGresult **out, char state[6], custody_err *err,
      const char *fmt, ...)
{
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	va_list ap;
	char what[512];
	const char *code;
	int attempt;

	*out = NULL;
	if (state != NULL)
		state[0] = '\0';
	va_start(ap, fmt);
	if (vsnprintf(what, sizeof(what), fmt, ap) < 0)
		what[0] = '\0';
	va_end(ap);
	for (attempt = 0; attempt < 2; attempt++) {
		PQclear(res);
		res = NULL;	/* else a failed reconnect clears it twice */
		if ((r = ensure_connected(s, err, what)) != CUSTODY_OK)
			goto out;
		s->statements++;
		res = pg_prepared_exec(s->prepared, s->conn, sql,
				       p != NULL ? p->n : 0,
				       p != NULL ? p->values : NULL,
				       p != NULL ? p->lengths : NULL,
				       p != NULL ? p->formats : NULL);
		/* A connection found lost outside a transaction (the server
		 * restarted while this one was idle): once more, on a new
		 * one.  Nothing was written: writes need a transaction. */
		if (PQresultStatus(res) == want || s->in_tx ||
		    PQstatus(s->conn) == CONNECTION_OK)
			break;
	}
	if (PQresultStatus(res) != want) {
		code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (state != NULL && code != NULL)
			snprintf(state, 6, "%s", code);
		r = pg_error(s, err, res, "%s", what);
		goto out;
	}
	*out = res;
	res = NULL;
	r = CUSTODY_OK;
out:
	PQclear(res);
	return r;
}

/* A statement whose result is not needed. */
static int
command(struct store_conn *s, const char *sql, const struct params *p,
	custody_err *err, const char *what)
{
	PGresult *res = NULL;
	int r = query(s, sql, p, PGRES_COMMAND_OK, &res, NULL, err, "%s", what);

	PQclear(res);
	return r;
}

/* Rows changed by the statement of res. */
static long
changed_rows(PGresult *res)
{
	return strtol(PQcmdTuples(res), NULL, 10);
}

/* Queues a change notification; PostgreSQL sends it when the transaction
 * commits, once per distinct payload, and drops it on rollback. */
static int
pg_notify(struct store_conn *s, const char *payload, custody_err *err)
{
	struct params p = {0};
	PGresult *res = NULL;
	int r;

	p_text(&p, NOTIFY_CHANNEL);
	p_text(&p, payload);
	r = query(s, "SELECT pg_notify($1, $2)", &p,
		  PGRES_TUPLES_OK, &res, NULL, err,
		  "cannot queue the change notification on store %s", s->name);
	PQclear(res);
	return r;
}

/* "postgresql://HOST[:PORT]/DB", or "postgresql:///DB?host=DIR" for a
 * Unix socket: the user, password and other options left out. */
static int
store_name(const char *url, char *name, size_t size, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	PQconninfoOption *opts = NULL;
	PQconninfoOption *o;
	char *why = NULL;
	const char *host = "", *port = "", *db = "";

	opts = PQconninfoParse(url, &why);
	if (opts == NULL) {
		/* libpq's reason may quote a piece of the URL: only the
		 * reason's kind is given when the URL has a secret. */
		char line[256];

		first_line(why != NULL ? why : "out of memory", line, sizeof(line));
		if (strchr(url, '@') != NULL || strstr(url, "password") != NULL)
			line[strcspn(line, ":\"")] = '\0';
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "bad store URL: %s", line);
		custody_err_hint(err, "use postgresql://[USER@]HOST[:PORT]/DBNAME");
		goto out;
	}
	for (o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;
		if (strcmp(o->keyword, "host") == 0)
			host = o->val;
		else if (strcmp(o->keyword, "port") == 0)
			port = o->val;
		else if (strcmp(o->keyword, "dbname") == 0)
			db = o->val;
	}
	if (host[0] == '/' || host[0] == '@')
		snprintf(name, size, "postgresql:///%s?host=%s%s%s", db, host,
			 port[0] != '\0' ? "&port=" : "", port);
	else
		snprintf(name, size, "postgresql://%s%s%s/%s", host,
			 port[0] != '\0' ? ":" : "", port, db);
	r = CUSTODY_OK;
out:
	if (opts != NULL) {
		for (o = opts; o->keyword != NULL; o++)
			if (o->val != NULL)
				OPENSSL_cleanse(o->val, strlen(o->val));
		PQconninfoFree(opts);
	}
	PQfreemem(why);
	return r;
}

static void
pg_close(struct store_conn *s)
{
	if (s != NULL) {
		PQfinish(s->conn);
		pg_prepared_free(s->prepared);
	}
	free(s);
}

static int
pg_in_transaction(struct store_conn *s)
{
	return s->in_tx;
}

/* Concurrent first opens upgrade the schema once: an advisory lock,
 * keyed by the schema the tables go to, held to the end of the
 * transaction. */
static int
pg_lock_schema(struct store_conn *s, custody_err *err)
{
	PGresult *res = NULL;
	int r = query(s, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ", "
		      "hashtext(coalesce(current_schema(), '')))", NULL,
		      PGRES_TUPLES_OK, &res, NULL, err,
		      "cannot lock store %s for the schema upgrade", s->name);

	PQclear(res);
	return r;
}

static const char *
pg_where(struct store_conn *s)
{
	return s->name;
}

static int
pg_open(const char *location, int create, struct store_conn **out,
	custody_err *err)
{
	struct store_conn *s = NULL;
	int r = CUSTODY_EFAIL;
	/* Defaults first: what the URL says wins. */
	const char *const keys[] = {
		"connect_timeout", "fallback_application_name", "dbname", NULL,
	};
	const char *values[] = { CONNECT_TIMEOUT, "custody", location, NULL };
	char why[512];

	(void)create;	/* a database is never made here; the core refuses
			 * one without a schema when create is not given */
	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot open the store: out of memory");
		goto out;
	}
	if ((r = store_name(location, s->name, sizeof(s->name), err)) != CUSTODY_OK)
		goto out;
	s->conn = PQconnectdbParams(keys, values, 1);
	if (s->conn == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot open store %s: out of memory", s->name);
		goto out;
	}
	if (PQstatus(s->conn) != CONNECTION_OK) {
		first_line(PQerrorMessage(s->conn), why, sizeof(why));
		/* The server answered and refused (a role, a database, a
		 * password): reached, not unreachable. */
		if (strstr(PQerrorMessage(s->conn), "FATAL:") != NULL) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot open store %s: %s", s->name, why);
		} else if (strstr(why, "read-only") != NULL ||
			   strstr(why, "standby") != NULL) {
			/* target_session_attrs=read-write (or primary) and
			 * every server named is a standby. */
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot open store %s: no server it "
					    "names accepts writes (each is a "
					    "read-only standby): %s", s->name, why);
			custody_err_hint(err, "promote a standby, or name the "
						"primary in the URL");
		} else {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot open store %s: store "
					    "unreachable: %s", s->name, why);
			custody_err_hint(err, "is the PostgreSQL server running "
						"and reachable from this node?");
		}
		goto out;
	}
	if ((r = setup_session(s, err)) != CUSTODY_OK)
		goto out;
	*out = s;
	s = NULL;
	r = CUSTODY_OK;
out:
	pg_close(s);
	return r;
}

/* ------------------------------------------------------------ transactions */

/* BEGIN, or with snapshot a read-only snapshot: read committed would
 * show each statement what committed before it, repeatable read shows
 * every statement the same snapshot.  in_tx from then on. */
static int
start_transaction(struct store_conn *s, int snapshot, custody_err *err)
{
	char what[600];
	int r;

	snprintf(what, sizeof(what), "cannot begin %s on store %s",
		 snapshot ? "a read" : "a write transaction", s->name);
	r = command(s, snapshot ? "BEGIN ISOLATION LEVEL REPEATABLE READ" :
		    "BEGIN", NULL, err, what);
	if (r == CUSTODY_OK)
		s->in_tx = 1;
	return r;
}

static int
pg_begin(struct store_conn *s, custody_err *err)
{
	return start_transaction(s, 0, err);
}

static int
pg_begin_read(struct store_conn *s, custody_err *err)
{
	return start_transaction(s, 1, err);
}

/* Ends the transaction the server still has open, if any. */
static void
pg_rollback(struct store_conn *s)
{
	PGTransactionStatusType ts = PQtransactionStatus(s->conn);

	if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) {
		s->statements++;
		PQclear(PQexec(s->conn, "ROLLBACK"));
	}
	s->in_tx = 0;
}

static int
pg_aborted(struct store_conn *s)
{
	return PQtransactionStatus(s->conn) == PQTRANS_INERROR;
}

static int
pg_commit(struct store_conn *s, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;

	if ((r = query(s, "COMMIT", NULL, PGRES_COMMAND_OK, &res, NULL, err,
		       "cannot commit on store %s", s->name)) != CUSTODY_OK)
		goto out;
	/* COMMIT of a transaction that failed earlier rolls it back. */
	if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot commit on store %s: the transaction "
				    "was rolled back after an earlier error",
				    s->name);
		goto out;
	}
	r = CUSTODY_OK;
out:
	PQclear(res);
	pg_rollback(s);
	return r;
}


/* ------------------------------------------------------------ statements */

static const char *
value_text(const struct store_row *row, int col, size_t *len)
{
	*len = 0;
	if (PQgetisnull(row->cursor, row->index, col))
		return NULL;
	*len = (size_t)PQgetlength(row->cursor, row->index, col);
	return PQgetvalue(row->cursor, row->index, col);
}

static int64_t
value_integer(const struct store_row *row, int col)
{
	if (PQgetisnull(row->cursor, row->index, col))
		return 0;
	return strtoll(PQgetvalue(row->cursor, row->index, col), NULL, 10);
}

static int
value_flag(const struct store_row *row, int col)
{
	return strcmp(PQgetvalue(row->cursor, row->index, col), "t") == 0;
}

/* A BYTEA value (text form, "\x..." hex) into a malloc'ed copy. */
static int
value_bytes(const struct store_row *row, int col, unsigned char **dst,
	    size_t *len)
{
	int r = -1;
	unsigned char *raw = NULL;
	size_t n = 0;

	*dst = NULL;
	*len = 0;
	if (PQgetisnull(row->cursor, row->index, col)) {
		r = 0;
		goto out;
	}
	raw = PQunescapeBytea((const unsigned char *)
			      PQgetvalue(row->cursor, row->index, col), &n);
	if (raw == NULL)
		goto out;
	if (n > 0) {
		if ((*dst = malloc(n)) == NULL)
			goto out;
		memcpy(*dst, raw, n);
		*len = n;
	}
	r = 0;
out:
	PQfreemem(raw);
	return r;
}

static const struct store_row_reader value_reader = {
	.text = value_text, .integer = value_integer, .flag = value_flag,
	.bytes = value_bytes,
};

static void
bind_values(struct params *p, const struct store_query *q)
{
	int i;

	for (i = 0; i < q->n_values; i++) {
		const struct store_value *v = &q->values[i];

		switch (v->kind) {
		case STORE_NULL:
			p_text(p, NULL);
			break;
		case STORE_TEXT:
			p_text(p, v->text);
			break;
		case STORE_INT:
			p_int(p, v->integer);
			break;
		case STORE_BOOL:
			p_text(p, v->integer ? "true" : "false");
			break;
		case STORE_BYTES:
			p_bytes(p, v->bytes, v->len);
			break;
		}
	}
}

static int
pg_run(struct store_conn *s, struct store_query *q, const char *what,
       custody_err *err)
{
	struct store_row row = { &value_reader, NULL, 0 };
	struct params p = {0};
	PGresult *res = NULL;
	char state[6];
	int r = CUSTODY_EFAIL;
	int rows;

	bind_values(&p, q);
	r = query(s, q->text, &p, q->each_row != NULL ?
		  PGRES_TUPLES_OK : PGRES_COMMAND_OK, &res, state, err, "%s",
		  what);
	if (r != CUSTODY_OK) {
		q->unique_violation = strcmp(state, "23505") == 0;
		goto out;
	}
	q->changes = changed_rows(res);
	row.cursor = res;
	rows = PQntuples(res);
	for (row.index = 0; row.index < rows; row.index++) {
		q->rows++;
		if (q->each_row != NULL &&
		    (r = q->each_row(q->arg, &row, err)) != CUSTODY_OK)
			goto out;
	}
	r = CUSTODY_OK;
out:
	PQclear(res);
	return r;
}

/* ------------------------------------------------------------ changes */

/* Drops the notifications libpq has received; 1 when there was any. */
static int
drain_notifications(struct store_conn *s)
{
	PGnotify *n;
	int any = 0;

	while ((n = PQnotifies(s->conn)) != NULL) {
		any = 1;
		PQfreemem(n);
	}
	return any;
}

/*
 * The first call LISTENs on the change channel and says "maybe"; then a
 * call reads what the server sent (no round trip) and says "changed" when
 * a notification came, from this database's custody stores, this handle
 * included.  A notification reaches the listener a moment after the
 * writer's COMMIT returns.  A lost connection is made again and listened
 * on again: "maybe".
 */
static int
pg_changed(struct store_conn *s, int *changed, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	char what[600];

	*changed = 1;
	if (s->listening && PQstatus(s->conn) == CONNECTION_OK &&
	    PQconsumeInput(s->conn) == 1) {
		*changed = drain_notifications(s);
		return CUSTODY_OK;
	}
	if (s->in_tx) {
		/* LISTEN would wait for the commit: ask again after it. */
		return CUSTODY_OK;
	}
	s->listening = 0;
	snprintf(what, sizeof(what), "cannot watch store %s for changes",
		 s->name);
	if ((r = command(s, "LISTEN " NOTIFY_CHANNEL, NULL, err, what)) !=
	    CUSTODY_OK)
		return r;
	drain_notifications(s);
	s->listening = 1;
	/* A connection that listens is the process's own for its life and
	 * runs the same statements at every change: it keeps them prepared
	 * (without when out of memory). */
	if (s->prepared == NULL)
		s->prepared = pg_prepared_new();
	return CUSTODY_OK;
}

/*
 * Waits on the connection's socket for a notification: libpq reads what
 * arrived (PQconsumeInput) and hands it over (PQnotifies).  Not yet
 * listening, or the connection lost: pg_changed listens again (making a
 * new connection) and the answer is "maybe" at once.
 */
static int
pg_wait_change(struct store_conn *s, int timeout_ms, int *changed, custody_err *err)
{
	int64_t deadline = custody_monotonic_ms() + timeout_ms;
	int64_t left;
	struct pollfd pfd;
	int r = CUSTODY_EFAIL, n;

	*changed = 1;
	for (;;) {
		if (!s->listening || PQstatus(s->conn) != CONNECTION_OK ||
		    PQconsumeInput(s->conn) != 1 ||
		    PQstatus(s->conn) != CONNECTION_OK) {
			s->listening = 0;
			r = pg_changed(s, changed, err);
			*changed = 1;
			return r;
		}
		if (drain_notifications(s))
			return CUSTODY_OK;
		*changed = 0;
		left = deadline - custody_monotonic_ms();
		if (left <= 0)
			return CUSTODY_OK;
		pfd.fd = PQsocket(s->conn);
		pfd.events = POLLIN;
		pfd.revents = 0;
		n = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (n < 0 && errno == EINTR) {
			r = CUSTODY_OK;	/* a signal: the caller looks */
			return r;
		}
		if (n < 0)
			return custody_err_set(err, CUSTODY_EFAIL, "cannot wait for "
					       "changes of store %s: %s", s->name,
					       strerror(errno));
		*changed = 1;
	}
	return r;
}

static unsigned long
pg_statements(struct store_conn *s)
{
	return s->statements;
}

const struct custody_store_backend custody_store_pg_backend = {
	.name = "postgresql", .sql = statements, .migrations = migrations,
	.open = pg_open, .close = pg_close, .where = pg_where,
	.begin = pg_begin, .begin_read = pg_begin_read, .commit = pg_commit,
	.rollback = pg_rollback, .in_transaction = pg_in_transaction, .aborted = pg_aborted,
	.lock_schema = pg_lock_schema,
	.run = pg_run, .run_script = pg_run_script, .notify = pg_notify,
	.changed = pg_changed, .wait_change = pg_wait_change,
	.statements = pg_statements,
};
