/* store/pg.c — the PostgreSQL store backend ("postgresql://..." or
 * "postgres://...", handed to libpq as given).
 *
 * One connection per store handle.  The schema is the SQLite one in
 * PostgreSQL types, versioned in schema_version and brought up to date at
 * open in one transaction that holds an advisory lock, so that concurrent
 * first opens create it once.  Writes run in READ COMMITTED transactions:
 * the version check of each assignment and the guarded move of the audit
 * head (read FOR UPDATE inside a transaction) make concurrent changes
 * fail with ECONFLICT or wait, never overwrite.  Every change queues a
 * NOTIFY on channel "custody_changes" (payload "TYPE/IDENTITY",
 * "certificates" or "audit"), which PostgreSQL delivers on commit only.
 * Every statement is a constant string; values are always bound.
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

#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>

#include <custody/assign.h>
#include <custody/error.h>
#include <custody/log.h>
#include <custody/records.h>
#include <custody/store.h>

#include "store/backend.h"

#define NOTIFY_CHANNEL "custody_changes"
#define LOCK_TIMEOUT "SET lock_timeout = '10s'"
#define CONNECT_TIMEOUT "10"
/* pg_advisory_xact_lock(MIGRATION_LOCK, hash of the schema): "cust". */
#define MIGRATION_LOCK "1668642676"
#define MAX_PARAMS 16

struct pg_store {
	PGconn *conn;
	char name[512];		/* postgresql://HOST[:PORT]/DB, no user */
	int in_tx;
	int listening;		/* LISTEN custody_changes is in effect  */
};

/* ASCII case folding, as SQLite's NOCASE: the same expression in the
 * unique index and in every lookup, so that the index serves them. */
#define FOLD(x) "translate(" x ", 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', " \
	"'abcdefghijklmnopqrstuvwxyz')"

/*
 * The schema, one entry per version: migrations[v] brings a database of
 * version v-1 to version v.  Append only; never edit a released entry.
 * Equivalent to store/sqlite.c's, version for version.
 */
static const char *const migrations[] = {
	NULL,
	/* 1: certificate facts and assignments. */
	"CREATE TABLE certificates ("
	"  thumbprint TEXT PRIMARY KEY NOT NULL,"
	"  sha256 TEXT UNIQUE NOT NULL,"
	"  subject TEXT,"
	"  issuer TEXT,"
	"  serial TEXT,"
	"  not_before BIGINT NOT NULL,"
	"  not_after BIGINT NOT NULL,"
	"  alt_names TEXT NOT NULL DEFAULT '[]',"	/* JSON array of strings */
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
	FOLD("type") ", " FOLD("identity") ");",
	/* 2: the hash-chained audit log and its head (see store/sqlite.c).
	 * The triggers make an edit a deliberate act; the chain is what
	 * detects one. */
	"CREATE TABLE audit ("
	"  seq BIGINT PRIMARY KEY NOT NULL,"
	"  time BIGINT NOT NULL,"
	"  node TEXT NOT NULL,"
	"  actor TEXT NOT NULL,"
	"  action TEXT NOT NULL,"
	"  type TEXT NOT NULL DEFAULT '',"
	"  identity TEXT NOT NULL DEFAULT '',"
	"  thumbprint TEXT NOT NULL DEFAULT '',"
	"  previous_thumbprint TEXT NOT NULL DEFAULT '',"
	"  detail TEXT,"
	"  prev_hash TEXT NOT NULL,"
	"  hash TEXT NOT NULL"
	");"
	"CREATE INDEX audit_time ON audit(time, seq);"
	"CREATE TABLE audit_head ("
	"  id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),"
	"  seq BIGINT NOT NULL,"
	"  hash TEXT NOT NULL"
	");"
	"INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, "
	"  '0000000000000000000000000000000000000000000000000000000000000000');"
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
	"  EXECUTE FUNCTION custody_refuse('the audit head cannot be deleted');",	/* 3: the cluster (see store/sqlite.c). */
	"CREATE TABLE nodes ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  state TEXT NOT NULL CHECK (state IN ('enrolled', 'admitted', 'joined')),"
	"  transport_spki BYTEA,"
	"  kek_wrap BYTEA,"
	"  admitted_by TEXT NOT NULL DEFAULT '',"
	"  enrolled_at BIGINT NOT NULL DEFAULT 0,"
	"  admitted_at BIGINT NOT NULL DEFAULT 0,"
	"  joined_at BIGINT NOT NULL DEFAULT 0,"
	"  last_sync BIGINT NOT NULL DEFAULT 0,"
	"  version BIGINT NOT NULL"
	");"
	"CREATE TABLE packages ("
	"  thumbprint TEXT PRIMARY KEY NOT NULL,"
	"  key_id TEXT NOT NULL,"
	"  wrapped BYTEA NOT NULL,"
	"  kcv TEXT NOT NULL,"
	"  created_at BIGINT NOT NULL,"
	"  node TEXT NOT NULL"
	");"
	"CREATE TABLE node_reports ("
	"  node TEXT NOT NULL,"
	"  thumbprint TEXT NOT NULL,"
	"  held BOOLEAN NOT NULL,"
	"  detail TEXT NOT NULL DEFAULT '',"
	"  time BIGINT NOT NULL,"
	"  PRIMARY KEY (node, thumbprint)"
	");"
	"CREATE TABLE cluster_meta ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  value TEXT NOT NULL"
	");",
	/* 4: the signed admission: the KEK's 64-bit check and the cluster
	 * authority's signature over it, the node's name and transport key
	 * and the wrapped KEK (custody/cluster.h). */
	"ALTER TABLE nodes ADD COLUMN kek_check TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE nodes ADD COLUMN admission_sig BYTEA;",
	/* 5: integrity tags (custody/store.h): one per row that decides
	 * trust, made with the token's KEK.  A store made at this version
	 * (or empty when it reaches it) is tagged from its first row on;
	 * an older one waits for an operator to check it (custody tag). */
	"CREATE TABLE row_tags ("
	"  kind TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  tag TEXT NOT NULL,"
	"  PRIMARY KEY (kind, name)"
	");"
	"INSERT INTO cluster_meta (name, value) SELECT 'row_tags', 'v1' "
	"  WHERE NOT EXISTS (SELECT 1 FROM certificates) "
	"  AND NOT EXISTS (SELECT 1 FROM assignments) "
	"  AND NOT EXISTS (SELECT 1 FROM audit) "
	"  AND NOT EXISTS (SELECT 1 FROM nodes) "
	"  AND NOT EXISTS (SELECT 1 FROM packages);",
};

#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])) - 1)

_Static_assert(N_MIGRATIONS == CUSTODY_STORE_SCHEMA_VERSION,
	       "one migration per schema version");

#define ASSIGNMENT_COLUMNS \
	"type, identity, current_thumbprint, current_effective, " \
	"previous_thumbprint, previous_effective, pending_thumbprint, " \
	"pending_effective, version"

#define ASSIGNMENT_KEY \
	FOLD("type") " = " FOLD("$1") " AND " FOLD("identity") " = " FOLD("$2")

#define CERT_COLUMNS \
	"thumbprint, sha256, subject, issuer, serial, not_before, not_after, " \
	"alt_names, key_algorithm, key_id, key_uri, label, der"

#define AUDIT_COLUMNS \
	"seq, time, node, actor, action, type, identity, thumbprint, " \
	"previous_thumbprint, detail, prev_hash, hash"

/* ------------------------------------------------------------ parameters */

/* The bound values of one statement: text, or binary for byte strings. */
struct params {
	int n;
	const char *values[MAX_PARAMS];
	int lengths[MAX_PARAMS];
	int formats[MAX_PARAMS];
	char ints[MAX_PARAMS][24];
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

/* A slot is two values: its thumbprint and effective time, or two NULLs. */
static void
p_slot(struct params *p, const custody_slot *slot)
{
	if (slot->thumbprint[0] == '\0') {
		p_text(p, NULL);
		p_text(p, NULL);
	} else {
		p_text(p, slot->thumbprint);
		p_int(p, slot->effective);
	}
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
pg_error(struct pg_store *s, custody_err *err, const PGresult *res,
	 const char *fmt, ...) CUSTODY_PRINTF(4, 5);

static int
pg_error(struct pg_store *s, custody_err *err, const PGresult *res,
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
	struct pg_store *s = arg;
	char line[512];

	first_line(message, line, sizeof(line));
	custody_debug("store %s: %s", s->name, line);
}

/* Session settings, after each (re)connection: wait at most 10 s for a
 * lock, as the SQLite backend waits for a writer. */
static int
setup_session(struct pg_store *s, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	PGresult *res;

	PQsetNoticeProcessor(s->conn, notice, s);
	res = PQexec(s->conn, LOCK_TIMEOUT);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		r = pg_error(s, err, res, "cannot set up the session on store %s",
			     s->name);
		goto out;
	}
	r = CUSTODY_OK;
out:
	PQclear(res);
	return r;
}

/* Outside a transaction a lost connection is made again, once; inside
 * one it is an error ("store unreachable"): the transaction is gone. */
static int
ensure_connected(struct pg_store *s, custody_err *err, const char *what)
{
	int r = CUSTODY_EFAIL;

	if (PQstatus(s->conn) == CONNECTION_OK) {
		r = CUSTODY_OK;
		goto out;
	}
	if (!s->in_tx) {
		PQreset(s->conn);
		s->listening = 0;	/* a new session listens to nothing */
		if (PQstatus(s->conn) == CONNECTION_OK) {
			custody_debug("store %s: connection made again", s->name);
			r = setup_session(s, err);
			goto out;
		}
	}
	r = pg_error(s, err, NULL, "%s", what);
out:
	return r;
}

/*
 * Runs sql with the values of p (NULL: none) and expects a result of
 * status want.  On failure err says "WHAT: WHY" (WHAT from fmt) and, when
 * state is not NULL, it receives the SQLSTATE ("" when there is none).
 */
static int
query(struct pg_store *s, const char *sql, const struct params *p,
      ExecStatusType want, PGresult **out, char state[6], custody_err *err,
      const char *fmt, ...) CUSTODY_PRINTF(8, 9);

static int
query(struct pg_store *s, const char *sql, const struct params *p,
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
		res = PQexecParams(s->conn, sql, p != NULL ? p->n : 0, NULL,
				   p != NULL ? p->values : NULL,
				   p != NULL ? p->lengths : NULL,
				   p != NULL ? p->formats : NULL, 0);
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
command(struct pg_store *s, const char *sql, const struct params *p,
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
notify(struct pg_store *s, const char *payload, custody_err *err)
{
	struct params p = {0};
	PGresult *res = NULL;
	int r;

	p_text(&p, payload);
	r = query(s, "SELECT pg_notify('" NOTIFY_CHANNEL "', $1)", &p,
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

/* ------------------------------------------------------------ schema */

static void pg_rollback(void *handle);

/* 0 for a database (schema) without the schema_version table. */
static int
read_version(struct pg_store *s, int64_t *version, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	int exists;

	*version = 0;
	if ((r = query(s, "SELECT to_regclass('schema_version') IS NOT NULL",
		       NULL, PGRES_TUPLES_OK, &res, NULL, err,
		       "cannot read the schema of store %s", s->name)) != CUSTODY_OK)
		goto out;
	exists = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	res = NULL;
	if (!exists) {
		r = CUSTODY_OK;
		goto out;
	}
	if ((r = query(s, "SELECT coalesce(max(version), 0) FROM schema_version",
		       NULL, PGRES_TUPLES_OK, &res, NULL, err,
		       "cannot read the schema version of store %s",
		       s->name)) != CUSTODY_OK)
		goto out;
	*version = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	r = CUSTODY_OK;
out:
	PQclear(res);
	return r;
}

static int
check_not_newer(struct pg_store *s, int64_t version, custody_err *err)
{
	if (version > CUSTODY_STORE_SCHEMA_VERSION) {
		custody_err_set(err, CUSTODY_EFAIL,
				"cannot open store %s: its schema version %lld is "
				"newer than version %d of this build", s->name,
				(long long)version, CUSTODY_STORE_SCHEMA_VERSION);
		custody_err_hint(err, "upgrade custody on this node");
		return CUSTODY_EFAIL;
	}
	return CUSTODY_OK;
}

/* Runs a migration: constant text of several statements, no values. */
static int
run_migration(struct pg_store *s, int v, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	PGresult *res = PQexec(s->conn, migrations[v]);
	struct params p = {0};

	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		r = pg_error(s, err, res, "cannot upgrade store %s to schema "
			     "version %d", s->name, v);
		goto out;
	}
	p_int(&p, v);
	p_int(&p, (int64_t)time(NULL));
	if ((r = command(s, "INSERT INTO schema_version (version, applied_at) "
			 "VALUES ($1, $2)", &p, err,
			 "cannot record the schema version")) != CUSTODY_OK) {
		custody_err_prefix(err, "store %s", s->name);
		goto out;
	}
	r = CUSTODY_OK;
out:
	PQclear(res);
	return r;
}

/* Every missing migration, in one transaction holding an advisory lock
 * (keyed by the schema the tables go to). */
static int
migrate(struct pg_store *s, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	int64_t version = 0;
	int in_tx = 0;
	PGresult *res = NULL;
	int v;

	if ((r = read_version(s, &version, err)) != CUSTODY_OK ||
	    (r = check_not_newer(s, version, err)) != CUSTODY_OK)
		goto out;
	if (version == CUSTODY_STORE_SCHEMA_VERSION) {
		r = CUSTODY_OK;
		goto out;
	}
	if ((r = command(s, "BEGIN", NULL, err,
			 "cannot begin the schema upgrade")) != CUSTODY_OK)
		goto out;
	in_tx = 1;
	s->in_tx = 1;
	if ((r = query(s, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ", "
		       "hashtext(coalesce(current_schema(), '')))", NULL,
		       PGRES_TUPLES_OK, &res, NULL, err,
		       "cannot lock store %s for the schema upgrade",
		       s->name)) != CUSTODY_OK)
		goto out;
	if ((r = command(s, "CREATE TABLE IF NOT EXISTS schema_version ("
			 " version INTEGER PRIMARY KEY NOT NULL,"
			 " applied_at BIGINT NOT NULL)", NULL, err,
			 "cannot create the schema_version table")) != CUSTODY_OK)
		goto out;
	/* Another process may have upgraded it meanwhile. */
	if ((r = read_version(s, &version, err)) != CUSTODY_OK ||
	    (r = check_not_newer(s, version, err)) != CUSTODY_OK)
		goto out;
	for (v = (int)version + 1; v <= CUSTODY_STORE_SCHEMA_VERSION; v++)
		if ((r = run_migration(s, v, err)) != CUSTODY_OK)
			goto out;
	PQclear(res);
	res = NULL;
	if ((r = query(s, "COMMIT", NULL, PGRES_COMMAND_OK, &res, NULL, err,
		       "cannot commit the schema upgrade of store %s",
		       s->name)) != CUSTODY_OK)
		goto out;
	in_tx = 0;
	r = CUSTODY_OK;
out:
	PQclear(res);
	if (in_tx)
		pg_rollback(s);
	s->in_tx = 0;
	return r;
}

static void
pg_close(void *handle)
{
	struct pg_store *s = handle;

	if (s == NULL)
		return;
	PQfinish(s->conn);
	free(s);
}

static int
pg_open(const char *location, void **handle, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	struct pg_store *s = NULL;
	/* Defaults first: what the URL says wins. */
	const char *const keys[] = {
		"connect_timeout", "fallback_application_name", "dbname", NULL,
	};
	const char *values[] = { CONNECT_TIMEOUT, "custody", location, NULL };
	char why[512];

	*handle = NULL;
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
		} else {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot open store %s: store "
					    "unreachable: %s", s->name, why);
			custody_err_hint(err, "is the PostgreSQL server running "
						"and reachable from this node?");
		}
		goto out;
	}
	if ((r = setup_session(s, err)) != CUSTODY_OK ||
	    (r = migrate(s, err)) != CUSTODY_OK)
		goto out;
	*handle = s;
	s = NULL;
	r = CUSTODY_OK;
out:
	pg_close(s);
	return r;
}

/* ------------------------------------------------------------ transactions */

static int
pg_begin(void *handle, custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	char what[600];

	snprintf(what, sizeof(what), "cannot begin a write transaction on "
		 "store %s", s->name);
	if ((r = command(s, "BEGIN", NULL, err, what)) != CUSTODY_OK)
		goto out;
	s->in_tx = 1;
	r = CUSTODY_OK;
out:
	return r;
}

static int
pg_begin_read(void *handle, custody_err *err)
{
	struct pg_store *s = handle;
	char what[600];

	snprintf(what, sizeof(what), "cannot begin a read on store %s", s->name);
	/* Read committed would show each statement what committed before it;
	 * repeatable read shows every statement the same snapshot. */
	if (command(s, "BEGIN ISOLATION LEVEL REPEATABLE READ", NULL, err, what) !=
	    CUSTODY_OK)
		return CUSTODY_EFAIL;
	s->in_tx = 1;
	return CUSTODY_OK;
}

/* Ends the transaction the server still has open, if any. */
static void
pg_rollback(void *handle)
{
	struct pg_store *s = handle;
	PGTransactionStatusType ts = PQtransactionStatus(s->conn);

	if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
		PQclear(PQexec(s->conn, "ROLLBACK"));
	s->in_tx = 0;
}

static int
pg_commit(void *handle, custody_err *err)
{
	struct pg_store *s = handle;
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

/* ------------------------------------------------------------ reading */

/* Copies a text value into a fixed buffer; -1 when it does not fit. */
static int
value_fixed(PGresult *res, int row, int col, char *dst, size_t size)
{
	size_t len;

	memset(dst, 0, size);
	if (PQgetisnull(res, row, col))
		return 0;
	len = (size_t)PQgetlength(res, row, col);
	if (len >= size)
		return -1;
	memcpy(dst, PQgetvalue(res, row, col), len);
	return 0;
}

/* Copies a text value into a fixed buffer, cutting what does not fit;
 * *cut is set when it did. */
static void
value_cut(PGresult *res, int row, int col, char *dst, size_t size, int *cut)
{
	size_t len;

	memset(dst, 0, size);
	if (PQgetisnull(res, row, col))
		return;
	len = (size_t)PQgetlength(res, row, col);
	if (len >= size) {
		len = size - 1;
		*cut = 1;
	}
	memcpy(dst, PQgetvalue(res, row, col), len);
}

static int64_t
value_int(PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return 0;
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* NULL stays NULL; -1 when out of memory. */
static int
value_strdup(PGresult *res, int row, int col, char **dst)
{
	*dst = NULL;
	if (PQgetisnull(res, row, col))
		return 0;
	*dst = strdup(PQgetvalue(res, row, col));
	return *dst == NULL ? -1 : 0;
}

/* ------------------------------------------------------------ assignments */

static int
value_slot(PGresult *res, int row, int col, custody_slot *slot)
{
	if (value_fixed(res, row, col, slot->thumbprint,
			sizeof(slot->thumbprint)) != 0)
		return -1;
	slot->effective = slot->thumbprint[0] != '\0' ?
		value_int(res, row, col + 1) : 0;
	return 0;
}

static int
read_assignment(struct pg_store *s, PGresult *res, int row,
		custody_assignment *a, custody_err *err)
{
	memset(a, 0, sizeof(*a));
	if (value_fixed(res, row, 0, a->type, sizeof(a->type)) != 0 ||
	    value_fixed(res, row, 1, a->identity, sizeof(a->identity)) != 0 ||
	    value_slot(res, row, 2, &a->current) != 0 ||
	    value_slot(res, row, 4, &a->previous) != 0 ||
	    value_slot(res, row, 6, &a->pending) != 0) {
		memset(a, 0, sizeof(*a));
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot read an assignment from store %s: "
				       "a name or thumbprint is too long", s->name);
	}
	a->version = value_int(res, row, 8);
	return CUSTODY_OK;
}

static int
pg_get_assignment(void *handle, const char *type, const char *identity,
		  custody_assignment *out, custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	struct params p = {0};

	p_text(&p, type);
	p_text(&p, identity);
	if ((r = query(s, "SELECT " ASSIGNMENT_COLUMNS " FROM assignments "
		       "WHERE " ASSIGNMENT_KEY, &p, PGRES_TUPLES_OK, &res, NULL,
		       err, "cannot read the assignment of type %s (identity %s) "
		       "from store %s", type, identity, s->name)) != CUSTODY_OK)
		goto out;
	if (PQntuples(res) == 0) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "no certificate is assigned for type %s "
				    "(identity %s)", type, identity);
		goto out;
	}
	r = read_assignment(s, res, 0, out, err);
out:
	PQclear(res);
	return r;
}

static int
pg_list_assignments(void *handle, custody_assignment **out, size_t *n,
		    custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	custody_assignment *list = NULL;
	int rows, i;

	if ((r = query(s, "SELECT " ASSIGNMENT_COLUMNS " FROM assignments "
		       "ORDER BY " FOLD("type") " COLLATE \"C\", "
		       "CASE WHEN " FOLD("identity") " = 'global' THEN 0 ELSE 1 "
		       "END, " FOLD("identity") " COLLATE \"C\"", NULL,
		       PGRES_TUPLES_OK, &res, NULL, err,
		       "cannot list the assignments of store %s",
		       s->name)) != CUSTODY_OK)
		goto out;
	rows = PQntuples(res);
	if (rows > 0 && (list = calloc((size_t)rows, sizeof(*list))) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot list the assignments of store %s: out "
				    "of memory", s->name);
		goto out;
	}
	for (i = 0; i < rows; i++)
		if ((r = read_assignment(s, res, i, &list[i], err)) != CUSTODY_OK)
			goto out;
	*out = list;
	*n = (size_t)rows;
	list = NULL;
	r = CUSTODY_OK;
out:
	free(list);
	PQclear(res);
	return r;
}

static int
conflict(struct pg_store *s, const custody_assignment *a, custody_err *err)
{
	custody_err_set(err, CUSTODY_ECONFLICT,
			"cannot save the assignment of type %s (identity %s) in "
			"store %s: assignment changed concurrently", a->type,
			a->identity, s->name);
	custody_err_hint(err, "read it again and retry");
	return CUSTODY_ECONFLICT;
}

/* "TYPE/IDENTITY", the payload of an assignment's notification. */
static int
notify_assignment(struct pg_store *s, const custody_assignment *a,
		  custody_err *err)
{
	char payload[2 * CUSTODY_NAME_MAX + 2];

	snprintf(payload, sizeof(payload), "%s/%s", a->type, a->identity);
	return notify(s, payload, err);
}

/* An empty record: delete the row, if it is still the one that was read. */
static int
delete_assignment(struct pg_store *s, custody_assignment *a, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	struct params p = {0};

	p_text(&p, a->type);
	p_text(&p, a->identity);
	if (a->version == 0) {
		/* Nothing was read and nothing is to be written: the row must
		 * still be absent. */
		if ((r = query(s, "SELECT 1 FROM assignments WHERE "
			       ASSIGNMENT_KEY, &p, PGRES_TUPLES_OK, &res, NULL,
			       err, "cannot delete the assignment of type %s "
			       "(identity %s) from store %s", a->type, a->identity,
			       s->name)) != CUSTODY_OK)
			goto out;
		if (PQntuples(res) != 0) {
			r = conflict(s, a, err);
			goto out;
		}
		r = CUSTODY_OK;
		goto out;
	}
	p_int(&p, a->version);
	if ((r = query(s, "DELETE FROM assignments WHERE " ASSIGNMENT_KEY
		       " AND version = $3", &p, PGRES_COMMAND_OK, &res, NULL, err,
		       "cannot delete the assignment of type %s (identity %s) "
		       "from store %s", a->type, a->identity,
		       s->name)) != CUSTODY_OK)
		goto out;
	if (changed_rows(res) == 0) {
		r = conflict(s, a, err);
		goto out;
	}
	if ((r = notify_assignment(s, a, err)) != CUSTODY_OK)
		goto out;
	a->version = 0;
	r = CUSTODY_OK;
out:
	PQclear(res);
	return r;
}

static int
pg_put_assignment(void *handle, custody_assignment *a, custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	struct params p = {0};
	int insert = a->version == 0;
	const char *sql;

	if (custody_assign_is_empty(a)) {
		r = delete_assignment(s, a, err);
		goto out;
	}
	/* A row inserted meanwhile (in any case) makes the insert do
	 * nothing: a conflict, and the transaction stays usable. */
	if (insert)
		sql = "INSERT INTO assignments (type, identity, "
		      "current_thumbprint, current_effective, "
		      "previous_thumbprint, previous_effective, "
		      "pending_thumbprint, pending_effective, version) "
		      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1) "
		      "ON CONFLICT DO NOTHING";
	else
		sql = "UPDATE assignments SET "
		      "current_thumbprint = $3, current_effective = $4, "
		      "previous_thumbprint = $5, previous_effective = $6, "
		      "pending_thumbprint = $7, pending_effective = $8, "
		      "version = version + 1 "
		      "WHERE " ASSIGNMENT_KEY " AND version = $9";
	p_text(&p, a->type);
	p_text(&p, a->identity);
	p_slot(&p, &a->current);
	p_slot(&p, &a->previous);
	p_slot(&p, &a->pending);
	if (!insert)
		p_int(&p, a->version);
	if ((r = query(s, sql, &p, PGRES_COMMAND_OK, &res, NULL, err,
		       "cannot save the assignment of type %s (identity %s) in "
		       "store %s", a->type, a->identity, s->name)) != CUSTODY_OK)
		goto out;
	if (changed_rows(res) != 1) {
		r = conflict(s, a, err);
		goto out;
	}
	if ((r = notify_assignment(s, a, err)) != CUSTODY_OK)
		goto out;
	a->version = insert ? 1 : a->version + 1;
	r = CUSTODY_OK;
out:
	PQclear(res);
	return r;
}

/* ------------------------------------------------------------ certificates */

static int
alt_names_to_json(struct pg_store *s, const custody_cert_record *rec,
		  char **json, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	json_t *array = json_array();
	size_t i;

	*json = NULL;
	if (array == NULL)
		goto oom;
	for (i = 0; i < rec->n_alt_names; i++) {
		json_t *name;

		if (rec->alt_names[i] == NULL) {
			r = custody_err_set(err, CUSTODY_EUSAGE,
					    "cannot save certificate %s in store %s: "
					    "alternative name %zu is missing",
					    rec->thumbprint, s->name, i + 1);
			goto out;
		}
		name = json_string(rec->alt_names[i]);
		if (name == NULL) {
			r = custody_err_set(err, CUSTODY_EUSAGE,
					    "cannot save certificate %s in store %s: "
					    "alternative name %zu is not UTF-8",
					    rec->thumbprint, s->name, i + 1);
			goto out;
		}
		if (json_array_append_new(array, name) != 0)
			goto oom;
	}
	*json = json_dumps(array, JSON_COMPACT);
	if (*json == NULL)
		goto oom;
	r = CUSTODY_OK;
	goto out;
oom:
	r = custody_err_set(err, CUSTODY_EFAIL,
			    "cannot save certificate %s in store %s: out of memory",
			    rec->thumbprint, s->name);
out:
	json_decref(array);
	return r;
}

static int
alt_names_from_json(const char *text, custody_cert_record *rec)
{
	int r = -1;
	json_t *array = NULL;
	size_t i;

	rec->alt_names = NULL;
	rec->n_alt_names = 0;
	if (text == NULL) {
		r = 0;
		goto out;
	}
	array = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	if (array == NULL || !json_is_array(array))
		goto out;
	if (json_array_size(array) == 0) {
		r = 0;
		goto out;
	}
	rec->alt_names = calloc(json_array_size(array), sizeof(char *));
	if (rec->alt_names == NULL)
		goto out;
	for (i = 0; i < json_array_size(array); i++) {
		const char *name = json_string_value(json_array_get(array, i));

		if (name == NULL)
			goto out;
		rec->alt_names[i] = strdup(name);
		if (rec->alt_names[i] == NULL)
			goto out;
		rec->n_alt_names = i + 1;
	}
	r = 0;
out:
	json_decref(array);
	return r;
}

/* The DER of a BYTEA value (text form, "\x..." hex). */
static int
value_bytes(PGresult *res, int row, int col, unsigned char **dst, size_t *len)
{
	int r = -1;
	unsigned char *raw = NULL;
	size_t n = 0;

	*dst = NULL;
	*len = 0;
	if (PQgetisnull(res, row, col)) {
		r = 0;
		goto out;
	}
	raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, col), &n);
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

static int
read_cert(struct pg_store *s, PGresult *res, int row, custody_cert_record *rec,
	  custody_err *err)
{
	int r = CUSTODY_EFAIL;

	memset(rec, 0, sizeof(*rec));
	if (value_fixed(res, row, 0, rec->thumbprint, sizeof(rec->thumbprint)) != 0 ||
	    value_fixed(res, row, 1, rec->sha256, sizeof(rec->sha256)) != 0 ||
	    value_fixed(res, row, 8, rec->key_algorithm,
			sizeof(rec->key_algorithm)) != 0 ||
	    value_fixed(res, row, 9, rec->key_id, sizeof(rec->key_id)) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read a certificate from store %s: a "
				    "fingerprint, key algorithm or key id is too long",
				    s->name);
		goto out;
	}
	if (alt_names_from_json(PQgetisnull(res, row, 7) ? NULL :
				PQgetvalue(res, row, 7), rec) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read certificate %s from store %s: its "
				    "alternative names are not a JSON array of "
				    "strings (or out of memory)", rec->thumbprint,
				    s->name);
		goto out;
	}
	rec->not_before = value_int(res, row, 5);
	rec->not_after = value_int(res, row, 6);
	if (value_strdup(res, row, 2, &rec->subject) != 0 ||
	    value_strdup(res, row, 3, &rec->issuer) != 0 ||
	    value_strdup(res, row, 4, &rec->serial) != 0 ||
	    value_strdup(res, row, 10, &rec->key_uri) != 0 ||
	    value_strdup(res, row, 11, &rec->label) != 0 ||
	    value_bytes(res, row, 12, &rec->der, &rec->der_len) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read certificate %s from store %s: out "
				    "of memory", rec->thumbprint, s->name);
		goto out;
	}
	r = CUSTODY_OK;
out:
	if (r != CUSTODY_OK)
		custody_cert_record_clear(rec);
	return r;
}

static int
pg_put_cert(void *handle, const custody_cert_record *rec, custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	struct params p = {0};
	char *alt_names = NULL;
	char state[6];

	if (rec->der_len > (size_t)INT32_MAX) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot save certificate %s in store %s: its "
				    "DER is too large", rec->thumbprint, s->name);
		goto out;
	}
	if ((r = alt_names_to_json(s, rec, &alt_names, err)) != CUSTODY_OK)
		goto out;
	p_text(&p, rec->thumbprint);
	p_text(&p, rec->sha256);
	p_text(&p, rec->subject);
	p_text(&p, rec->issuer);
	p_text(&p, rec->serial);
	p_int(&p, rec->not_before);
	p_int(&p, rec->not_after);
	p_text(&p, alt_names);
	p_text(&p, rec->key_algorithm);
	p_text(&p, rec->key_id);
	p_text(&p, rec->key_uri);
	p_text(&p, rec->label);
	p_bytes(&p, rec->der, rec->der_len);
	p_int(&p, (int64_t)time(NULL));
	r = query(s, "INSERT INTO certificates (thumbprint, sha256, subject, "
		  "issuer, serial, not_before, not_after, alt_names, "
		  "key_algorithm, key_id, key_uri, label, der, created_at) "
		  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
		  "$13, $14) ON CONFLICT (thumbprint) DO UPDATE SET "
		  "key_uri = excluded.key_uri, label = excluded.label",
		  &p, PGRES_COMMAND_OK, &res, state, err,
		  "cannot save certificate %s in store %s", rec->thumbprint,
		  s->name);
	if (r != CUSTODY_OK && strcmp(state, "23505") == 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot save certificate %s in store %s: another "
				    "certificate has SHA-256 fingerprint %s",
				    rec->thumbprint, s->name, rec->sha256);
		goto out;
	}
	if (r != CUSTODY_OK)
		goto out;
	r = notify(s, "certificates", err);
out:
	PQclear(res);
	free(alt_names);
	return r;
}

static int
pg_get_cert(void *handle, const char *thumbprint, custody_cert_record *out,
	    custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	struct params p = {0};

	p_text(&p, thumbprint);
	if ((r = query(s, "SELECT " CERT_COLUMNS " FROM certificates "
		       "WHERE thumbprint = $1", &p, PGRES_TUPLES_OK, &res, NULL,
		       err, "cannot read certificate %s from store %s", thumbprint,
		       s->name)) != CUSTODY_OK)
		goto out;
	if (PQntuples(res) == 0) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "no certificate with thumbprint %s in store %s",
				    thumbprint, s->name);
		goto out;
	}
	r = read_cert(s, res, 0, out, err);
out:
	PQclear(res);
	return r;
}

static int
pg_list_certs(void *handle, custody_cert_record **out, size_t *n,
	      custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	custody_cert_record *list = NULL;
	size_t count = 0;
	int rows, i;

	if ((r = query(s, "SELECT " CERT_COLUMNS " FROM certificates "
		       "ORDER BY not_after, thumbprint COLLATE \"C\"", NULL,
		       PGRES_TUPLES_OK, &res, NULL, err,
		       "cannot list the certificates of store %s",
		       s->name)) != CUSTODY_OK)
		goto out;
	rows = PQntuples(res);
	if (rows > 0 && (list = calloc((size_t)rows, sizeof(*list))) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot list the certificates of store %s: "
				    "out of memory", s->name);
		goto out;
	}
	for (i = 0; i < rows; i++) {
		if ((r = read_cert(s, res, i, &list[i], err)) != CUSTODY_OK)
			goto out;
		count++;
	}
	*out = list;
	*n = count;
	list = NULL;
	count = 0;
	r = CUSTODY_OK;
out:
	custody_cert_records_free(list, count);
	PQclear(res);
	return r;
}

static int
pg_delete_cert(void *handle, const char *thumbprint, custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	struct params p = {0};

	p_text(&p, thumbprint);
	if ((r = query(s, "DELETE FROM certificates WHERE thumbprint = $1", &p,
		       PGRES_COMMAND_OK, &res, NULL, err,
		       "cannot delete certificate %s from store %s", thumbprint,
		       s->name)) != CUSTODY_OK)
		goto out;
	if (changed_rows(res) == 0) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "no certificate with thumbprint %s in store %s",
				    thumbprint, s->name);
		goto out;
	}
	r = notify(s, "certificates", err);
out:
	PQclear(res);
	return r;
}

/* ------------------------------------------------------------ audit log */

static int
audit_conflict(struct pg_store *s, const custody_audit_entry *e,
	       custody_err *err)
{
	custody_err_set(err, CUSTODY_ECONFLICT,
			"cannot append entry %lld to the audit log of store %s: "
			"audit log changed concurrently", (long long)e->seq,
			s->name);
	custody_err_hint(err, "read its head again and retry");
	return CUSTODY_ECONFLICT;
}

static int
pg_append_audit(void *handle, const custody_audit_entry *e, custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	struct params p = {0};

	/* The head moves from (seq - 1, prev_hash) to (seq, hash), or not
	 * at all: this is the chain's optimistic concurrency. */
	p_int(&p, e->seq);
	p_text(&p, e->hash);
	p_int(&p, e->seq - 1);
	p_text(&p, e->prev_hash);
	if ((r = query(s, "UPDATE audit_head SET seq = $1, hash = $2 "
		       "WHERE id = 1 AND seq = $3 AND hash = $4", &p,
		       PGRES_COMMAND_OK, &res, NULL, err,
		       "cannot move the audit head of store %s",
		       s->name)) != CUSTODY_OK)
		goto out;
	if (changed_rows(res) != 1) {
		r = audit_conflict(s, e, err);
		goto out;
	}
	PQclear(res);
	res = NULL;
	memset(&p, 0, sizeof(p));
	p_int(&p, e->seq);
	p_int(&p, e->time);
	p_text(&p, e->node);
	p_text(&p, e->actor);
	p_text(&p, e->action);
	p_text(&p, e->type);
	p_text(&p, e->identity);
	p_text(&p, e->thumbprint);
	p_text(&p, e->previous_thumbprint);
	p_text(&p, e->detail);
	p_text(&p, e->prev_hash);
	p_text(&p, e->hash);
	if ((r = query(s, "INSERT INTO audit (" AUDIT_COLUMNS ") VALUES "
		       "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
		       "ON CONFLICT (seq) DO NOTHING", &p, PGRES_COMMAND_OK, &res,
		       NULL, err, "cannot append entry %lld to the audit log of "
		       "store %s", (long long)e->seq, s->name)) != CUSTODY_OK)
		goto out;
	if (changed_rows(res) != 1) {
		r = audit_conflict(s, e, err);
		goto out;
	}
	r = notify(s, "audit", err);
out:
	PQclear(res);
	return r;
}

/*
 * One row of the audit table.  A field that does not fit its record (only
 * an edit of the table makes one) is cut, and the entry's hash is blanked,
 * so that verification names the entry as edited instead of failing to
 * read the log.
 */
static int
read_audit(struct pg_store *s, PGresult *res, int row, custody_audit_entry *e,
	   custody_err *err)
{
	int r = CUSTODY_EFAIL;
	int cut = 0;

	memset(e, 0, sizeof(*e));
	e->seq = value_int(res, row, 0);
	e->time = value_int(res, row, 1);
	value_cut(res, row, 2, e->node, sizeof(e->node), &cut);
	value_cut(res, row, 3, e->actor, sizeof(e->actor), &cut);
	value_cut(res, row, 4, e->action, sizeof(e->action), &cut);
	value_cut(res, row, 5, e->type, sizeof(e->type), &cut);
	value_cut(res, row, 6, e->identity, sizeof(e->identity), &cut);
	value_cut(res, row, 7, e->thumbprint, sizeof(e->thumbprint), &cut);
	value_cut(res, row, 8, e->previous_thumbprint,
		  sizeof(e->previous_thumbprint), &cut);
	value_cut(res, row, 10, e->prev_hash, sizeof(e->prev_hash), &cut);
	value_cut(res, row, 11, e->hash, sizeof(e->hash), &cut);
	if (value_strdup(res, row, 9, &e->detail) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read audit entry %lld from store %s: "
				    "out of memory", (long long)e->seq, s->name);
		goto out;
	}
	if (cut)
		e->hash[0] = '\0';
	r = CUSTODY_OK;
out:
	return r;
}

static int
pg_last_audit(void *handle, custody_audit_entry *out, custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;

	if ((r = query(s, "SELECT " AUDIT_COLUMNS " FROM audit "
		       "ORDER BY seq DESC LIMIT 1", NULL, PGRES_TUPLES_OK, &res,
		       NULL, err, "cannot read the audit log of store %s",
		       s->name)) != CUSTODY_OK)
		goto out;
	if (PQntuples(res) == 0) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "the audit log of store %s is empty", s->name);
		goto out;
	}
	r = read_audit(s, res, 0, out, err);
out:
	PQclear(res);
	return r;
}

static int
pg_list_audit(void *handle, int64_t since, custody_audit_entry **out,
	      size_t *n, custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	struct params p = {0};
	custody_audit_entry *list = NULL;
	size_t count = 0;
	int rows, i;

	p_int(&p, since);
	if ((r = query(s, "SELECT " AUDIT_COLUMNS " FROM audit "
		       "WHERE time >= $1 ORDER BY seq", &p, PGRES_TUPLES_OK, &res,
		       NULL, err, "cannot read the audit log of store %s",
		       s->name)) != CUSTODY_OK)
		goto out;
	rows = PQntuples(res);
	if (rows > 0 && (list = calloc((size_t)rows, sizeof(*list))) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read the audit log of store %s: out "
				    "of memory", s->name);
		goto out;
	}
	for (i = 0; i < rows; i++) {
		if ((r = read_audit(s, res, i, &list[i], err)) != CUSTODY_OK)
			goto out;
		count++;
	}
	*out = list;
	*n = count;
	list = NULL;
	count = 0;
	r = CUSTODY_OK;
out:
	custody_audit_entries_free(list, count);
	PQclear(res);
	return r;
}

/* Inside a write transaction the head is read FOR UPDATE: a concurrent
 * appender waits here for this transaction, then reads the head it left,
 * so that appends queue instead of failing. */
static int
pg_audit_head(void *handle, int64_t *seq, char *hash, custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	int cut = 0;

	if ((r = query(s, s->in_tx ?
		       "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE" :
		       "SELECT seq, hash FROM audit_head WHERE id = 1", NULL,
		       PGRES_TUPLES_OK, &res, NULL, err,
		       "cannot read the audit head of store %s",
		       s->name)) != CUSTODY_OK)
		goto out;
	if (PQntuples(res) == 0) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "the audit head of store %s is missing", s->name);
		goto out;
	}
	*seq = value_int(res, 0, 0);
	value_cut(res, 0, 1, hash, CUSTODY_AUDIT_HASH_HEX + 1, &cut);
	if (cut)
		hash[0] = '\0';
	r = CUSTODY_OK;
out:
	PQclear(res);
	return r;
}

/* ------------------------------------------------------------ changes */

/* Drops the notifications libpq has received; 1 when there was any. */
static int
drain_notifications(struct pg_store *s)
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
pg_changed(void *handle, int *changed, custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	char what[600];

	*changed = 1;
	if (s->listening && PQstatus(s->conn) == CONNECTION_OK &&
	    PQconsumeInput(s->conn) == 1) {
		*changed = drain_notifications(s);
		r = CUSTODY_OK;
		goto out;
	}
	if (s->in_tx) {
		/* LISTEN would wait for the commit: ask again after it. */
		r = CUSTODY_OK;
		goto out;
	}
	s->listening = 0;
	snprintf(what, sizeof(what), "cannot watch store %s for changes",
		 s->name);
	if ((r = command(s, "LISTEN " NOTIFY_CHANNEL, NULL, err, what)) !=
	    CUSTODY_OK)
		goto out;
	drain_notifications(s);
	s->listening = 1;
	r = CUSTODY_OK;
out:
	return r;
}

static int64_t
monotonic_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/*
 * Waits on the connection's socket for a notification: libpq reads what
 * arrived (PQconsumeInput) and hands it over (PQnotifies).  Not yet
 * listening, or the connection lost: pg_changed listens again (making a
 * new connection) and the answer is "maybe" at once.
 */
static int
pg_wait_change(void *handle, int timeout_ms, int *changed, custody_err *err)
{
	struct pg_store *s = handle;
	int64_t deadline = monotonic_ms() + timeout_ms;
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
			goto out;
		}
		if (drain_notifications(s)) {
			r = CUSTODY_OK;
			goto out;
		}
		*changed = 0;
		left = deadline - monotonic_ms();
		if (left <= 0) {
			r = CUSTODY_OK;
			goto out;
		}
		pfd.fd = PQsocket(s->conn);
		pfd.events = POLLIN;
		pfd.revents = 0;
		n = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (n < 0 && errno == EINTR) {
			r = CUSTODY_OK;	/* a signal: the caller looks */
			goto out;
		}
		if (n < 0) {
			r = custody_err_set(err, CUSTODY_EFAIL, "cannot wait for "
					    "changes of store %s: %s", s->name,
					    strerror(errno));
			goto out;
		}
		*changed = 1;
	}
out:
	return r;
}

/* ------------------------------------------------------------ cluster */

#define NODE_COLUMNS \
	"name, state, transport_spki, kek_wrap, admitted_by, enrolled_at, " \
	"admitted_at, joined_at, last_sync, version, kek_check, admission_sig"

#define PACKAGE_COLUMNS "thumbprint, key_id, wrapped, kcv, created_at, node"

#define REPORT_COLUMNS "node, thumbprint, held, detail, time"

/* A byte string, or SQL NULL when there is none. */
static void
p_bytes_or_null(struct params *p, const unsigned char *bytes, size_t len)
{
	if (bytes == NULL || len == 0)
		p_text(p, NULL);
	else
		p_bytes(p, bytes, len);
}

static int
read_node(struct pg_store *s, PGresult *res, int row, custody_node_record *rec,
	  custody_err *err)
{
	int r = CUSTODY_EFAIL;

	memset(rec, 0, sizeof(*rec));
	if (value_fixed(res, row, 0, rec->name, sizeof(rec->name)) != 0 ||
	    value_fixed(res, row, 1, rec->state, sizeof(rec->state)) != 0 ||
	    value_fixed(res, row, 4, rec->admitted_by,
			sizeof(rec->admitted_by)) != 0 ||
	    value_fixed(res, row, 10, rec->kek_check,
			sizeof(rec->kek_check)) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read a node from store %s: a name or "
				    "state is too long", s->name);
		goto out;
	}
	if (value_bytes(res, row, 2, &rec->transport_spki,
			&rec->transport_spki_len) != 0 ||
	    value_bytes(res, row, 3, &rec->kek_wrap, &rec->kek_wrap_len) != 0 ||
	    value_bytes(res, row, 11, &rec->admission_sig,
			&rec->admission_sig_len) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read node %s from store %s: out of "
				    "memory", rec->name, s->name);
		goto out;
	}
	rec->enrolled_at = value_int(res, row, 5);
	rec->admitted_at = value_int(res, row, 6);
	rec->joined_at = value_int(res, row, 7);
	rec->last_sync = value_int(res, row, 8);
	rec->version = value_int(res, row, 9);
	r = CUSTODY_OK;
out:
	if (r != CUSTODY_OK)
		custody_node_record_clear(rec);
	return r;
}

static int
node_conflict(struct pg_store *s, const custody_node_record *rec,
	      custody_err *err)
{
	custody_err_set(err, CUSTODY_ECONFLICT,
			"cannot save node %s in store %s: node %s changed "
			"concurrently", rec->name, s->name, rec->name);
	custody_err_hint(err, "read it again and retry");
	return CUSTODY_ECONFLICT;
}

static int
pg_put_node(void *handle, custody_node_record *rec, custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	struct params p = {0};
	int insert = rec->version == 0;
	char state[6];

	p_text(&p, rec->name);
	p_text(&p, rec->state);
	p_bytes_or_null(&p, rec->transport_spki, rec->transport_spki_len);
	p_bytes_or_null(&p, rec->kek_wrap, rec->kek_wrap_len);
	p_text(&p, rec->admitted_by);
	p_int(&p, rec->enrolled_at);
	p_int(&p, rec->admitted_at);
	p_int(&p, rec->joined_at);
	p_int(&p, rec->last_sync);
	p_text(&p, rec->kek_check);
	p_bytes_or_null(&p, rec->admission_sig, rec->admission_sig_len);
	if (!insert)
		p_int(&p, rec->version);
	r = query(s, insert ?
		  "INSERT INTO nodes (" NODE_COLUMNS ") VALUES ($1, $2, $3, $4, "
		  "$5, $6, $7, $8, $9, 1, $10, $11)" :
		  "UPDATE nodes SET state = $2, transport_spki = $3, kek_wrap = $4, "
		  "admitted_by = $5, enrolled_at = $6, admitted_at = $7, "
		  "joined_at = $8, last_sync = $9, kek_check = $10, "
		  "admission_sig = $11, version = version + 1 "
		  "WHERE name = $1 AND version = $12",
		  &p, PGRES_COMMAND_OK, &res, state, err,
		  "cannot save node %s in store %s", rec->name, s->name);
	if (r != CUSTODY_OK && insert && strcmp(state, "23505") == 0) {
		r = node_conflict(s, rec, err);
		goto out;
	}
	if (r != CUSTODY_OK)
		goto out;
	if (changed_rows(res) != 1) {
		r = node_conflict(s, rec, err);
		goto out;
	}
	if ((r = notify(s, "nodes", err)) != CUSTODY_OK)
		goto out;
	rec->version = insert ? 1 : rec->version + 1;
	r = CUSTODY_OK;
out:
	PQclear(res);
	return r;
}

static int
pg_get_node(void *handle, const char *name, custody_node_record *out,
	    custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	struct params p = {0};

	p_text(&p, name);
	if ((r = query(s, "SELECT " NODE_COLUMNS " FROM nodes WHERE name = $1",
		       &p, PGRES_TUPLES_OK, &res, NULL, err,
		       "cannot read node %s from store %s", name,
		       s->name)) != CUSTODY_OK)
		goto out;
	if (PQntuples(res) == 0) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "node %s is not in store %s", name, s->name);
		goto out;
	}
	r = read_node(s, res, 0, out, err);
out:
	PQclear(res);
	return r;
}

static int
pg_list_nodes(void *handle, custody_node_record **out, size_t *n,
	      custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	custody_node_record *list = NULL;
	size_t count = 0;
	int rows, i;

	if ((r = query(s, "SELECT " NODE_COLUMNS " FROM nodes ORDER BY name "
		       "COLLATE \"C\"", NULL, PGRES_TUPLES_OK, &res, NULL, err,
		       "cannot list the nodes of store %s", s->name)) != CUSTODY_OK)
		goto out;
	rows = PQntuples(res);
	if (rows > 0 && (list = calloc((size_t)rows, sizeof(*list))) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot list the nodes of store %s: out of "
				    "memory", s->name);
		goto out;
	}
	for (i = 0; i < rows; i++) {
		if ((r = read_node(s, res, i, &list[i], err)) != CUSTODY_OK)
			goto out;
		count++;
	}
	*out = list;
	*n = count;
	list = NULL;
	count = 0;
	r = CUSTODY_OK;
out:
	custody_node_records_free(list, count);
	PQclear(res);
	return r;
}

static int
read_package(struct pg_store *s, PGresult *res, int row,
	     custody_package_record *rec, custody_err *err)
{
	int r = CUSTODY_EFAIL;

	memset(rec, 0, sizeof(*rec));
	if (value_fixed(res, row, 0, rec->thumbprint, sizeof(rec->thumbprint)) != 0 ||
	    value_fixed(res, row, 1, rec->key_id, sizeof(rec->key_id)) != 0 ||
	    value_fixed(res, row, 3, rec->kcv, sizeof(rec->kcv)) != 0 ||
	    value_fixed(res, row, 5, rec->node, sizeof(rec->node)) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read a package from store %s: a "
				    "thumbprint, key id, key check value or node "
				    "is too long", s->name);
		goto out;
	}
	if (value_bytes(res, row, 2, &rec->wrapped, &rec->wrapped_len) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read the package of %s from store %s: "
				    "out of memory", rec->thumbprint, s->name);
		goto out;
	}
	rec->created_at = value_int(res, row, 4);
	r = CUSTODY_OK;
out:
	if (r != CUSTODY_OK)
		custody_package_record_clear(rec);
	return r;
}

static int
pg_put_package(void *handle, const custody_package_record *rec,
	       custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	struct params p = {0};

	p_text(&p, rec->thumbprint);
	p_text(&p, rec->key_id);
	p_bytes(&p, rec->wrapped, rec->wrapped_len);
	p_text(&p, rec->kcv);
	p_int(&p, rec->created_at);
	p_text(&p, rec->node);
	if ((r = query(s, "INSERT INTO packages (" PACKAGE_COLUMNS ") VALUES "
		       "($1, $2, $3, $4, $5, $6) ON CONFLICT (thumbprint) DO "
		       "UPDATE SET key_id = excluded.key_id, wrapped = "
		       "excluded.wrapped, kcv = excluded.kcv, created_at = "
		       "excluded.created_at, node = excluded.node", &p,
		       PGRES_COMMAND_OK, &res, NULL, err,
		       "cannot save the package of %s in store %s",
		       rec->thumbprint, s->name)) != CUSTODY_OK)
		goto out;
	r = notify(s, "packages", err);
out:
	PQclear(res);
	return r;
}

static int
pg_get_package(void *handle, const char *thumbprint,
	       custody_package_record *out, custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	struct params p = {0};

	p_text(&p, thumbprint);
	if ((r = query(s, "SELECT " PACKAGE_COLUMNS " FROM packages WHERE "
		       "thumbprint = $1", &p, PGRES_TUPLES_OK, &res, NULL, err,
		       "cannot read the package of %s from store %s",
		       thumbprint, s->name)) != CUSTODY_OK)
		goto out;
	if (PQntuples(res) == 0) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "no package for certificate %s in store %s",
				    thumbprint, s->name);
		goto out;
	}
	r = read_package(s, res, 0, out, err);
out:
	PQclear(res);
	return r;
}

static int
pg_list_packages(void *handle, custody_package_record **out, size_t *n,
		 custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	custody_package_record *list = NULL;
	size_t count = 0;
	int rows, i;

	if ((r = query(s, "SELECT " PACKAGE_COLUMNS " FROM packages ORDER BY "
		       "thumbprint COLLATE \"C\"", NULL, PGRES_TUPLES_OK, &res,
		       NULL, err, "cannot list the packages of store %s",
		       s->name)) != CUSTODY_OK)
		goto out;
	rows = PQntuples(res);
	if (rows > 0 && (list = calloc((size_t)rows, sizeof(*list))) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot list the packages of store %s: out "
				    "of memory", s->name);
		goto out;
	}
	for (i = 0; i < rows; i++) {
		if ((r = read_package(s, res, i, &list[i], err)) != CUSTODY_OK)
			goto out;
		count++;
	}
	*out = list;
	*n = count;
	list = NULL;
	count = 0;
	r = CUSTODY_OK;
out:
	custody_package_records_free(list, count);
	PQclear(res);
	return r;
}

static int
pg_delete_package(void *handle, const char *thumbprint, custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	struct params p = {0};

	p_text(&p, thumbprint);
	if ((r = query(s, "DELETE FROM packages WHERE thumbprint = $1", &p,
		       PGRES_COMMAND_OK, &res, NULL, err,
		       "cannot delete the package of %s from store %s",
		       thumbprint, s->name)) != CUSTODY_OK)
		goto out;
	if (changed_rows(res) == 0) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "no package for certificate %s in store %s",
				    thumbprint, s->name);
		goto out;
	}
	r = notify(s, "packages", err);
out:
	PQclear(res);
	return r;
}

static int
pg_put_report(void *handle, const custody_report_record *rec,
	      custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	struct params p = {0};

	p_text(&p, rec->node);
	p_text(&p, rec->thumbprint);
	p_text(&p, rec->held ? "true" : "false");
	p_text(&p, rec->detail);
	p_int(&p, rec->time);
	if ((r = query(s, "INSERT INTO node_reports (" REPORT_COLUMNS ") VALUES "
		       "($1, $2, $3, $4, $5) ON CONFLICT (node, thumbprint) DO "
		       "UPDATE SET held = excluded.held, detail = "
		       "excluded.detail, time = excluded.time", &p,
		       PGRES_COMMAND_OK, &res, NULL, err,
		       "cannot save the report of node %s in store %s",
		       rec->node, s->name)) != CUSTODY_OK)
		goto out;
	r = notify(s, "reports", err);
out:
	PQclear(res);
	return r;
}

static int
pg_list_reports(void *handle, const char *node, custody_report_record **out,
		size_t *n, custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	struct params p = {0};
	custody_report_record *list = NULL;
	int rows, i, cut = 0;

	p_text(&p, node);
	if ((r = query(s, "SELECT " REPORT_COLUMNS " FROM node_reports WHERE "
		       "$1::text IS NULL OR node = $1 ORDER BY node COLLATE "
		       "\"C\", thumbprint COLLATE \"C\"", &p, PGRES_TUPLES_OK,
		       &res, NULL, err, "cannot list the reports of store %s",
		       s->name)) != CUSTODY_OK)
		goto out;
	rows = PQntuples(res);
	if (rows > 0 && (list = calloc((size_t)rows, sizeof(*list))) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot list the reports of store %s: out of "
				    "memory", s->name);
		goto out;
	}
	for (i = 0; i < rows; i++) {
		custody_report_record *rec = &list[i];

		if (value_fixed(res, i, 0, rec->node, sizeof(rec->node)) != 0 ||
		    value_fixed(res, i, 1, rec->thumbprint,
				sizeof(rec->thumbprint)) != 0) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot read a report from store %s: a "
					    "node or thumbprint is too long", s->name);
			goto out;
		}
		rec->held = strcmp(PQgetvalue(res, i, 2), "t") == 0;
		value_cut(res, i, 3, rec->detail, sizeof(rec->detail), &cut);
		rec->time = value_int(res, i, 4);
	}
	*out = list;
	*n = (size_t)rows;
	list = NULL;
	r = CUSTODY_OK;
out:
	free(list);
	PQclear(res);
	return r;
}

static int
pg_get_meta(void *handle, const char *name, char *value, size_t size,
	    custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	struct params p = {0};

	p_text(&p, name);
	if ((r = query(s, "SELECT value FROM cluster_meta WHERE name = $1", &p,
		       PGRES_TUPLES_OK, &res, NULL, err,
		       "cannot read cluster fact %s from store %s", name,
		       s->name)) != CUSTODY_OK)
		goto out;
	if (PQntuples(res) == 0) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "cluster fact %s is not set in store %s", name,
				    s->name);
		goto out;
	}
	if (value_fixed(res, 0, 0, value, size) != 0) {
		value[0] = '\0';
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read cluster fact %s from store %s: "
				    "it is too long", name, s->name);
		goto out;
	}
	r = CUSTODY_OK;
out:
	PQclear(res);
	return r;
}

static int
pg_put_meta(void *handle, const char *name, const char *value, int replace,
	    custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	struct params p = {0};
	char state[6];

	p_text(&p, name);
	p_text(&p, value);
	r = query(s, replace ?
		  "INSERT INTO cluster_meta (name, value) VALUES ($1, $2) "
		  "ON CONFLICT (name) DO UPDATE SET value = excluded.value" :
		  "INSERT INTO cluster_meta (name, value) VALUES ($1, $2)",
		  &p, PGRES_COMMAND_OK, &res, state, err,
		  "cannot save cluster fact %s in store %s", name, s->name);
	if (r != CUSTODY_OK && strcmp(state, "23505") == 0) {
		r = custody_err_set(err, CUSTODY_ECONFLICT,
				    "cannot save cluster fact %s: it is already "
				    "set in store %s", name, s->name);
		goto out;
	}
	if (r != CUSTODY_OK)
		goto out;
	r = notify(s, "cluster", err);
out:
	PQclear(res);
	return r;
}

static int
pg_get_tag(void *handle, const char *kind, const char *name,
	   char tag[CUSTODY_TAG_HEX + 1], custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	struct params p = {0};

	tag[0] = '\0';
	p_text(&p, kind);
	p_text(&p, name);
	if ((r = query(s, "SELECT tag FROM row_tags WHERE kind = $1 AND "
		       "name = $2", &p, PGRES_TUPLES_OK, &res, NULL, err,
		       "cannot read the integrity tag of %s %s from store %s",
		       kind, name, s->name)) != CUSTODY_OK)
		goto out;
	if (PQntuples(res) == 0) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "the %s record %s carries no integrity tag "
				    "in store %s", kind, name, s->name);
		goto out;
	}
	if (value_fixed(res, 0, 0, tag, CUSTODY_TAG_HEX + 1) != 0) {
		/* Too long to be one: what the checker calls a wrong tag. */
		tag[0] = '\0';
	}
	r = CUSTODY_OK;
out:
	PQclear(res);
	return r;
}

static int
pg_put_tag(void *handle, const char *kind, const char *name, const char *tag,
	   custody_err *err)
{
	struct pg_store *s = handle;
	int r = CUSTODY_EFAIL;
	PGresult *res = NULL;
	struct params p = {0};

	p_text(&p, kind);
	p_text(&p, name);
	if (tag != NULL)
		p_text(&p, tag);
	r = query(s, tag != NULL ?
		  "INSERT INTO row_tags (kind, name, tag) VALUES ($1, $2, $3) "
		  "ON CONFLICT (kind, name) DO UPDATE SET tag = excluded.tag" :
		  "DELETE FROM row_tags WHERE kind = $1 AND name = $2",
		  &p, PGRES_COMMAND_OK, &res, NULL, err,
		  "cannot save the integrity tag of %s %s in store %s", kind,
		  name, s->name);
	PQclear(res);
	return r;
}

const struct custody_store_backend custody_store_pg_backend = {
	.name = "postgresql",
	.open = pg_open,
	.close = pg_close,
	.begin = pg_begin,
	.begin_read = pg_begin_read,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.get_assignment = pg_get_assignment,
	.list_assignments = pg_list_assignments,
	.put_assignment = pg_put_assignment,
	.put_cert = pg_put_cert,
	.get_cert = pg_get_cert,
	.list_certs = pg_list_certs,
	.delete_cert = pg_delete_cert,
	.append_audit = pg_append_audit,
	.last_audit = pg_last_audit,
	.list_audit = pg_list_audit,
	.audit_head = pg_audit_head,
	.changed = pg_changed,
	.wait_change = pg_wait_change,
	.put_node = pg_put_node,
	.get_node = pg_get_node,
	.list_nodes = pg_list_nodes,
	.put_package = pg_put_package,
	.get_package = pg_get_package,
	.list_packages = pg_list_packages,
	.delete_package = pg_delete_package,
	.put_report = pg_put_report,
	.list_reports = pg_list_reports,
	.get_meta = pg_get_meta,
	.put_meta = pg_put_meta,
	.get_tag = pg_get_tag,
	.put_tag = pg_put_tag,
};
