/* store/sqlite.c — the SQLite store backend ("sqlite:PATH").
 *
 * One database file, created 0600 in a directory created 0700 when
 * missing; WAL journal, 10 s busy timeout, foreign keys on.  The schema
 * is versioned in the schema_version table and brought up to date at
 * open, in one transaction.  Every statement is a constant string with
 * bound parameters.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libgen.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include <custody/assign.h>
#include <custody/error.h>
#include <custody/log.h>
#include <custody/records.h>
#include <custody/store.h>

#include "store/backend.h"

#define BUSY_TIMEOUT_MS 10000
#define WAL_RETRY_MS 20

/* How long after a write in the store's directory custody_store_changed
 * keeps asking the database: a commit's WAL frames are written (and seen
 * by inotify) a moment before the commit becomes visible. */
#define WATCH_DIRTY_NS 1000000000LL
/* The watch starts at this call: a short-lived reader (`custody sign`)
 * never makes one (closing an inotify descriptor waits for an RCU grace
 * period, 10 to 25 ms measured, more than the queries it saves). */
#define WATCH_AFTER_CALLS 64

struct sqlite_store {
	sqlite3 *db;
	char *path;
	/* custody_store_changed: */
	sqlite3_stmt *data_version;	/* "PRAGMA data_version", kept      */
	int watch_fd;			/* inotify on the directory; -1     */
	int watching;			/* 0: not tried yet                  */
	unsigned calls;			/* custody_store_changed so far      */
	int64_t last_version;
	int64_t dirty_until;		/* CLOCK_MONOTONIC ns                */
};

/*
 * The schema, one entry per version: migrations[v] brings a database of
 * version v-1 to version v.  Append only; never edit a released entry.
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
	"  not_before INTEGER NOT NULL,"
	"  not_after INTEGER NOT NULL,"
	"  alt_names TEXT NOT NULL DEFAULT '[]',"	/* JSON array of strings */
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
	");",
	/* 2: the hash-chained audit log and its head (the seq and hash of
	 * the newest entry, moved in the same transaction as each append,
	 * so that a truncated tail shows).  The triggers make an edit a
	 * deliberate act; the chain is what detects one. */
	"CREATE TABLE audit ("
	"  seq INTEGER PRIMARY KEY NOT NULL,"
	"  time INTEGER NOT NULL,"
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
	"  seq INTEGER NOT NULL,"
	"  hash TEXT NOT NULL"
	");"
	"INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, "
	"  '0000000000000000000000000000000000000000000000000000000000000000');"
	"CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit "
	"  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
	"CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit "
	"  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
	"CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head "
	"  BEGIN SELECT RAISE(ABORT, 'the audit head cannot be deleted'); END;",	/* 3: the cluster: nodes (transport public keys, the KEK wrapped for
	 * each until it joins), packages (private keys wrapped under the
	 * KEK), what each node reported holding, and cluster facts (the
	 * KEK's key check value).  Nothing in clear is secret. */
	"CREATE TABLE nodes ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  state TEXT NOT NULL CHECK (state IN ('enrolled', 'admitted', 'joined')),"
	"  transport_spki BLOB,"
	"  kek_wrap BLOB,"
	"  admitted_by TEXT NOT NULL DEFAULT '',"
	"  enrolled_at INTEGER NOT NULL DEFAULT 0,"
	"  admitted_at INTEGER NOT NULL DEFAULT 0,"
	"  joined_at INTEGER NOT NULL DEFAULT 0,"
	"  last_sync INTEGER NOT NULL DEFAULT 0,"
	"  version INTEGER NOT NULL"
	");"
	"CREATE TABLE packages ("
	"  thumbprint TEXT PRIMARY KEY NOT NULL,"
	"  key_id TEXT NOT NULL,"
	"  wrapped BLOB NOT NULL,"
	"  kcv TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  node TEXT NOT NULL"
	");"
	"CREATE TABLE node_reports ("
	"  node TEXT NOT NULL,"
	"  thumbprint TEXT NOT NULL,"
	"  held INTEGER NOT NULL,"
	"  detail TEXT NOT NULL DEFAULT '',"
	"  time INTEGER NOT NULL,"
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
	"ALTER TABLE nodes ADD COLUMN admission_sig BLOB;",
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

/* Column lists, spliced into constant statements at compile time. */
#define ASSIGNMENT_COLUMNS \
	"type, identity, current_thumbprint, current_effective, " \
	"previous_thumbprint, previous_effective, pending_thumbprint, " \
	"pending_effective, version"

#define CERT_COLUMNS \
	"thumbprint, sha256, subject, issuer, serial, not_before, not_after, " \
	"alt_names, key_algorithm, key_id, key_uri, label, der"

#define AUDIT_COLUMNS \
	"seq, time, node, actor, action, type, identity, thumbprint, " \
	"previous_thumbprint, detail, prev_hash, hash"

static int
is_busy(int rc)
{
	return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
}

/* EFAIL "WHAT: WHY" with SQLite's reason; a lock that outlasted the busy
 * timeout says "store is busy". */
static int
db_error(struct sqlite_store *s, custody_err *err, int rc, const char *fmt, ...)
	CUSTODY_PRINTF(4, 5);

static int
db_error(struct sqlite_store *s, custody_err *err, int rc, const char *fmt, ...)
{
	va_list ap;
	char what[512];
	const char *why = s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);

	va_start(ap, fmt);
	if (vsnprintf(what, sizeof(what), fmt, ap) < 0)
		what[0] = '\0';
	va_end(ap);
	if (is_busy(rc)) {
		custody_err_set(err, CUSTODY_EFAIL, "%s: store is busy: %s", what,
				why);
		custody_err_hint(err, "another process is writing to it; "
					"try again");
		return CUSTODY_EFAIL;
	}
	return custody_err_set(err, CUSTODY_EFAIL, "%s: %s", what, why);
}

static int
prepare(struct sqlite_store *s, const char *sql, sqlite3_stmt **stmt,
	custody_err *err)
{
	int rc = sqlite3_prepare_v2(s->db, sql, -1, stmt, NULL);

	if (rc != SQLITE_OK) {
		*stmt = NULL;
		return db_error(s, err, rc, "cannot prepare a query on store %s",
				s->path);
	}
	return CUSTODY_OK;
}

/* Room for one more element in a list read row by row: returns the array
 * (cap elements of elem bytes), doubled when count reached cap, and sets
 * *r; on failure the array is returned unchanged, still the caller's. */
static void *
grow_list(struct sqlite_store *s, void *list, size_t *cap, size_t count,
	  size_t elem, int *r, custody_err *err)
{
	size_t ncap;
	void *grown;

	*r = CUSTODY_OK;
	if (count < *cap)
		return list;
	ncap = *cap == 0 ? 8 : *cap * 2;
	if ((grown = realloc(list, ncap * elem)) == NULL) {
		*r = custody_err_set(err, CUSTODY_EFAIL,
				     "cannot read store %s: out of memory", s->path);
		return list;
	}
	*cap = ncap;
	return grown;
}

static int
exec_constant(struct sqlite_store *s, const char *sql, custody_err *err,
	      const char *what)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return db_error(s, err, rc, "%s on store %s", what, s->path);
	return CUSTODY_OK;
}

/* ------------------------------------------------------------ the file */

/* mkdir -p of the directory holding path; what it creates is 0700. */
static int
make_parent_dirs(const char *path, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	char *dir = strdup(path);
	char *slash;
	char *p;
	struct stat sb;

	if (dir == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot open store %s: out of memory", path);
		goto out;
	}
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir) {
		r = CUSTODY_OK;	/* the cwd or / */
		goto out;
	}
	*slash = '\0';
	for (p = dir + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		{
			char saved = *p;

			*p = '\0';
			if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
				r = custody_err_set(err, CUSTODY_EFAIL,
						    "cannot create directory %s "
						    "for store %s: %s", dir, path,
						    strerror(errno));
				goto out;
			}
			*p = saved;
			if (saved == '\0')
				break;
		}
	}
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot open store %s: %s is not a directory",
				    path, dir);
		goto out;
	}
	r = CUSTODY_OK;
out:
	free(dir);
	return r;
}

/* Creates the file 0600 when missing (the umask can only take bits
 * away); warns when an existing one is open to other users. */
static int
create_file(const char *path, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	int fd;
	struct stat sb;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = custody_err_set(err, CUSTODY_EFAIL, "cannot open store %s: %s",
				    path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &sb) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL, "cannot open store %s: %s",
				    path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot open store %s: not a regular file", path);
		goto out;
	}
	if ((sb.st_mode & 077) != 0)
		custody_warn("store %s can be read by other users (mode %04o)",
			     path, (unsigned)(sb.st_mode & 07777));
	r = CUSTODY_OK;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

/* ------------------------------------------------------------ schema */

/* 0 for a database without the schema_version table. */
static int
read_version(struct sqlite_store *s, int64_t *version, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	int rc;
	int exists;

	*version = 0;
	if ((r = prepare(s, "SELECT count(*) FROM sqlite_master "
			 "WHERE type = 'table' AND name = 'schema_version'",
			 &st, err)) != CUSTODY_OK)
		goto out;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = db_error(s, err, rc, "cannot read the schema of store %s",
			     s->path);
		goto out;
	}
	exists = sqlite3_column_int(st, 0) > 0;
	sqlite3_finalize(st);
	st = NULL;
	if (!exists) {
		r = CUSTODY_OK;
		goto out;
	}
	if ((r = prepare(s, "SELECT coalesce(max(version), 0) FROM schema_version",
			 &st, err)) != CUSTODY_OK)
		goto out;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = db_error(s, err, rc, "cannot read the schema version of store %s",
			     s->path);
		goto out;
	}
	*version = sqlite3_column_int64(st, 0);
	r = CUSTODY_OK;
out:
	sqlite3_finalize(st);
	return r;
}

static int
check_not_newer(struct sqlite_store *s, int64_t version, custody_err *err)
{
	if (version > CUSTODY_STORE_SCHEMA_VERSION) {
		custody_err_set(err, CUSTODY_EFAIL,
				"cannot open store %s: its schema version %lld is "
				"newer than version %d of this build", s->path,
				(long long)version, CUSTODY_STORE_SCHEMA_VERSION);
		custody_err_hint(err, "upgrade custody on this node");
		return CUSTODY_EFAIL;
	}
	return CUSTODY_OK;
}

static int
record_version(struct sqlite_store *s, int version, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	int rc;

	if ((r = prepare(s, "INSERT INTO schema_version (version, applied_at) "
			 "VALUES (?1, ?2)", &st, err)) != CUSTODY_OK)
		goto out;
	sqlite3_bind_int(st, 1, version);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)time(NULL));
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		r = db_error(s, err, rc, "cannot record schema version %d in store %s",
			     version, s->path);
		goto out;
	}
	r = CUSTODY_OK;
out:
	sqlite3_finalize(st);
	return r;
}

/* Every missing migration, in one write transaction. */
static int
migrate(struct sqlite_store *s, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	int64_t version = 0;
	int in_tx = 0;
	int v;

	if ((r = read_version(s, &version, err)) != CUSTODY_OK ||
	    (r = check_not_newer(s, version, err)) != CUSTODY_OK)
		goto out;
	if (version == CUSTODY_STORE_SCHEMA_VERSION) {
		r = CUSTODY_OK;
		goto out;
	}
	if ((r = exec_constant(s, "BEGIN IMMEDIATE", err,
			       "cannot begin the schema upgrade")) != CUSTODY_OK)
		goto out;
	in_tx = 1;
	if ((r = exec_constant(s, "CREATE TABLE IF NOT EXISTS schema_version ("
			       " version INTEGER PRIMARY KEY NOT NULL,"
			       " applied_at INTEGER NOT NULL)", err,
			       "cannot create the schema_version table")) != CUSTODY_OK)
		goto out;
	/* Another process may have upgraded it meanwhile. */
	if ((r = read_version(s, &version, err)) != CUSTODY_OK ||
	    (r = check_not_newer(s, version, err)) != CUSTODY_OK)
		goto out;
	for (v = (int)version + 1; v <= CUSTODY_STORE_SCHEMA_VERSION; v++) {
		int rc = sqlite3_exec(s->db, migrations[v], NULL, NULL, NULL);

		if (rc != SQLITE_OK) {
			r = db_error(s, err, rc, "cannot upgrade store %s to schema "
				     "version %d", s->path, v);
			goto out;
		}
		if ((r = record_version(s, v, err)) != CUSTODY_OK)
			goto out;
	}
	if ((r = exec_constant(s, "COMMIT", err,
			       "cannot commit the schema upgrade")) != CUSTODY_OK)
		goto out;
	in_tx = 0;
	r = CUSTODY_OK;
out:
	if (in_tx)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

/* The journal mode of the database, lower-case, into mode[8]. */
static int
query_journal_mode(struct sqlite_store *s, const char *sql, char mode[8],
		   custody_err *err)
{
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	const unsigned char *text;
	int waited = 0;
	int rc;

	if ((r = prepare(s, sql, &st, err)) != CUSTODY_OK)
		goto out;
	/* Switching a new database to WAL takes a lock that SQLite does not
	 * wait for: wait here, as the busy timeout would. */
	while ((rc = sqlite3_step(st)) != SQLITE_ROW && is_busy(rc) &&
	       waited < BUSY_TIMEOUT_MS) {
		int slept;

		sqlite3_reset(st);
		slept = sqlite3_sleep(WAL_RETRY_MS);
		waited += slept > 0 ? slept : WAL_RETRY_MS;
	}
	if (rc != SQLITE_ROW) {
		r = db_error(s, err, rc, "cannot switch store %s to WAL mode", s->path);
		goto out;
	}
	text = sqlite3_column_text(st, 0);
	snprintf(mode, 8, "%s", text != NULL ? (const char *)text : "");
	r = CUSTODY_OK;
out:
	sqlite3_finalize(st);
	return r;
}

static int
set_wal(struct sqlite_store *s, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	char mode[8];

	if ((r = query_journal_mode(s, "PRAGMA journal_mode", mode, err)) !=
	    CUSTODY_OK)
		goto out;
	if (sqlite3_stricmp(mode, "wal") == 0) {
		r = CUSTODY_OK;
		goto out;
	}
	if ((r = query_journal_mode(s, "PRAGMA journal_mode = WAL", mode, err)) !=
	    CUSTODY_OK)
		goto out;
	if (sqlite3_stricmp(mode, "wal") != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot switch store %s to WAL mode: it stays "
				    "in %s mode", s->path, mode);
		goto out;
	}
	r = CUSTODY_OK;
out:
	return r;
}

static void
sqlite_close(void *handle)
{
	struct sqlite_store *s = handle;

	if (s == NULL)
		return;
	sqlite3_finalize(s->data_version);
	if (s->watch_fd >= 0)
		close(s->watch_fd);
	sqlite3_close_v2(s->db);
	free(s->path);
	free(s);
}

static int
sqlite_open(const char *location, void **handle, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	struct sqlite_store *s = NULL;
	char *open_name = NULL;
	int rc;

	*handle = NULL;
	s = calloc(1, sizeof(*s));
	if (s != NULL)
		s->watch_fd = -1;
	if (s == NULL || (s->path = strdup(location)) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot open store %s: out of memory", location);
		goto out;
	}
	if ((r = make_parent_dirs(s->path, err)) != CUSTODY_OK ||
	    (r = create_file(s->path, err)) != CUSTODY_OK)
		goto out;
	/* SQLite may read a name starting with "file:" as a URI (Debian
	 * builds it with SQLITE_USE_URI): "./" keeps a relative one a path. */
	if (s->path[0] != '/') {
		size_t len = strlen(s->path) + 3;

		if ((open_name = malloc(len)) == NULL) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot open store %s: out of memory",
					    s->path);
			goto out;
		}
		snprintf(open_name, len, "./%s", s->path);
	}
	rc = sqlite3_open_v2(open_name != NULL ? open_name : s->path, &s->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		r = db_error(s, err, rc, "cannot open store %s", s->path);
		goto out;
	}
	sqlite3_extended_result_codes(s->db, 1);
	{
		/* Keep -wal and -shm when the last connection closes: making
		 * and deleting them again costs every process 0.5 ms or so
		 * (measured: 1.7 -> 0.5 ms per open). */
		int persist = 1;

		sqlite3_file_control(s->db, "main", SQLITE_FCNTL_PERSIST_WAL,
				     &persist);
	}
	if ((rc = sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS)) != SQLITE_OK) {
		r = db_error(s, err, rc, "cannot set the busy timeout of store %s",
			     s->path);
		goto out;
	}
	/* With the WAL kept, an empty one keeps the next process from
	 * rebuilding its index and checkpointing old frames (measured: about
	 * 1 ms a process, 5 ms under disk load). */
	if ((r = exec_constant(s, "PRAGMA journal_size_limit = 0", err,
			       "cannot limit the journal size")) != CUSTODY_OK ||
	    (r = exec_constant(s, "PRAGMA foreign_keys = ON", err,
			       "cannot turn foreign keys on")) != CUSTODY_OK ||
	    (r = set_wal(s, err)) != CUSTODY_OK ||
	    (r = migrate(s, err)) != CUSTODY_OK)
		goto out;
	*handle = s;
	s = NULL;
	r = CUSTODY_OK;
out:
	free(open_name);
	sqlite_close(s);
	return r;
}

/* ------------------------------------------------------------ transactions */

static int
sqlite_begin(void *handle, custody_err *err)
{
	return exec_constant(handle, "BEGIN IMMEDIATE", err,
			     "cannot begin a write transaction");
}

/* A deferred transaction: the first read takes the snapshot (a shared
 * lock, or WAL's read mark) that the later ones see too. */
static int
sqlite_begin_read(void *handle, custody_err *err)
{
	return exec_constant(handle, "BEGIN DEFERRED", err, "cannot begin a read");
}

static int
sqlite_commit(void *handle, custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = exec_constant(s, "COMMIT", err, "cannot commit");

	if (r != CUSTODY_OK && !sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

static void
sqlite_rollback(void *handle)
{
	struct sqlite_store *s = handle;

	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ------------------------------------------------------------ assignments */

/* Copies a text column into a fixed buffer; -1 when it does not fit. */
static int
column_fixed(sqlite3_stmt *st, int col, char *dst, size_t size)
{
	const unsigned char *text = sqlite3_column_text(st, col);
	size_t len;

	memset(dst, 0, size);
	if (text == NULL)
		return 0;
	len = (size_t)sqlite3_column_bytes(st, col);
	if (len >= size || strlen((const char *)text) != len)
		return -1;
	memcpy(dst, text, len);
	return 0;
}

static int
column_slot(sqlite3_stmt *st, int col, custody_slot *slot)
{
	if (column_fixed(st, col, slot->thumbprint, sizeof(slot->thumbprint)) != 0)
		return -1;
	slot->effective = slot->thumbprint[0] != '\0' ?
		sqlite3_column_int64(st, col + 1) : 0;
	return 0;
}

static int
read_assignment(struct sqlite_store *s, sqlite3_stmt *st, custody_assignment *a,
		custody_err *err)
{
	memset(a, 0, sizeof(*a));
	if (column_fixed(st, 0, a->type, sizeof(a->type)) != 0 ||
	    column_fixed(st, 1, a->identity, sizeof(a->identity)) != 0 ||
	    column_slot(st, 2, &a->current) != 0 ||
	    column_slot(st, 4, &a->previous) != 0 ||
	    column_slot(st, 6, &a->pending) != 0) {
		memset(a, 0, sizeof(*a));
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot read an assignment from store %s: "
				       "a name or thumbprint is too long", s->path);
	}
	a->version = sqlite3_column_int64(st, 8);
	return CUSTODY_OK;
}

static void
bind_slot(sqlite3_stmt *st, int col, const custody_slot *slot)
{
	if (slot->thumbprint[0] == '\0') {
		sqlite3_bind_null(st, col);
		sqlite3_bind_null(st, col + 1);
	} else {
		sqlite3_bind_text(st, col, slot->thumbprint, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, col + 1, slot->effective);
	}
}

static int
sqlite_get_assignment(void *handle, const char *type, const char *identity,
		      custody_assignment *out, custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	int rc;

	if ((r = prepare(s, "SELECT " ASSIGNMENT_COLUMNS " FROM assignments "
			 "WHERE type = ?1 AND identity = ?2", &st, err)) != CUSTODY_OK)
		goto out;
	sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, identity, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "no certificate is assigned for type %s "
				    "(identity %s)", type, identity);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = db_error(s, err, rc, "cannot read the assignment of type %s "
			     "(identity %s) from store %s", type, identity, s->path);
		goto out;
	}
	r = read_assignment(s, st, out, err);
out:
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_list_assignments(void *handle, custody_assignment **out, size_t *n,
			custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	custody_assignment *list = NULL;
	size_t count = 0;
	size_t cap = 0;
	int rc;

	if ((r = prepare(s, "SELECT " ASSIGNMENT_COLUMNS " FROM assignments "
			 "ORDER BY type, CASE WHEN identity = 'global' THEN 0 "
			 "ELSE 1 END, identity", &st, err)) != CUSTODY_OK)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		list = grow_list(s, list, &cap, count, sizeof(*list), &r, err);
		if (r != CUSTODY_OK)
			goto out;
		if ((r = read_assignment(s, st, &list[count], err)) != CUSTODY_OK)
			goto out;
		count++;
	}
	if (rc != SQLITE_DONE) {
		r = db_error(s, err, rc, "cannot list the assignments of store %s",
			     s->path);
		goto out;
	}
	*out = list;
	*n = count;
	list = NULL;
	r = CUSTODY_OK;
out:
	free(list);
	sqlite3_finalize(st);
	return r;
}

static int
conflict(struct sqlite_store *s, const custody_assignment *a, custody_err *err)
{
	custody_err_set(err, CUSTODY_ECONFLICT,
			"cannot save the assignment of type %s (identity %s) in "
			"store %s: assignment changed concurrently", a->type,
			a->identity, s->path);
	custody_err_hint(err, "read it again and retry");
	return CUSTODY_ECONFLICT;
}

/* An empty record: delete the row, if it is still the one that was read. */
static int
delete_assignment(struct sqlite_store *s, custody_assignment *a,
		  custody_err *err)
{
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	int rc;

	if (a->version == 0) {
		/* Nothing was read and nothing is to be written: the row must
		 * still be absent. */
		if ((r = prepare(s, "SELECT 1 FROM assignments "
				 "WHERE type = ?1 AND identity = ?2",
				 &st, err)) != CUSTODY_OK)
			goto out;
	} else {
		if ((r = prepare(s, "DELETE FROM assignments WHERE type = ?1 "
				 "AND identity = ?2 AND version = ?3",
				 &st, err)) != CUSTODY_OK)
			goto out;
		sqlite3_bind_int64(st, 3, a->version);
	}
	sqlite3_bind_text(st, 1, a->type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, a->identity, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (a->version == 0 && rc == SQLITE_ROW) {
		r = conflict(s, a, err);
		goto out;
	}
	if (rc != SQLITE_DONE) {
		r = db_error(s, err, rc, "cannot delete the assignment of type %s "
			     "(identity %s) from store %s", a->type, a->identity,
			     s->path);
		goto out;
	}
	if (a->version != 0 && sqlite3_changes(s->db) == 0) {
		r = conflict(s, a, err);
		goto out;
	}
	a->version = 0;
	r = CUSTODY_OK;
out:
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_put_assignment(void *handle, custody_assignment *a, custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	int insert = a->version == 0;
	int rc;

	if (custody_assign_is_empty(a)) {
		r = delete_assignment(s, a, err);
		goto out;
	}
	if (insert) {
		r = prepare(s, "INSERT INTO assignments (type, identity, "
			    "current_thumbprint, current_effective, "
			    "previous_thumbprint, previous_effective, "
			    "pending_thumbprint, pending_effective, version) "
			    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1)", &st, err);
	} else {
		r = prepare(s, "UPDATE assignments SET "
			    "current_thumbprint = ?3, current_effective = ?4, "
			    "previous_thumbprint = ?5, previous_effective = ?6, "
			    "pending_thumbprint = ?7, pending_effective = ?8, "
			    "version = version + 1 "
			    "WHERE type = ?1 AND identity = ?2 AND version = ?9",
			    &st, err);
	}
	if (r != CUSTODY_OK)
		goto out;
	sqlite3_bind_text(st, 1, a->type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, a->identity, -1, SQLITE_STATIC);
	bind_slot(st, 3, &a->current);
	bind_slot(st, 5, &a->previous);
	bind_slot(st, 7, &a->pending);
	if (!insert)
		sqlite3_bind_int64(st, 9, a->version);
	rc = sqlite3_step(st);
	if (insert && (rc == SQLITE_CONSTRAINT_PRIMARYKEY ||
		       rc == SQLITE_CONSTRAINT_UNIQUE)) {
		r = conflict(s, a, err);
		goto out;
	}
	if (rc != SQLITE_DONE) {
		r = db_error(s, err, rc, "cannot save the assignment of type %s "
			     "(identity %s) in store %s", a->type, a->identity,
			     s->path);
		goto out;
	}
	if (sqlite3_changes(s->db) != 1) {
		r = conflict(s, a, err);
		goto out;
	}
	a->version = insert ? 1 : a->version + 1;
	r = CUSTODY_OK;
out:
	sqlite3_finalize(st);
	return r;
}

/* ------------------------------------------------------------ certificates */

static int
alt_names_to_json(struct sqlite_store *s, const custody_cert_record *rec,
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
					    rec->thumbprint, s->path, i + 1);
			goto out;
		}
		name = json_string(rec->alt_names[i]);
		if (name == NULL) {
			r = custody_err_set(err, CUSTODY_EUSAGE,
					    "cannot save certificate %s in store %s: "
					    "alternative name %zu is not UTF-8",
					    rec->thumbprint, s->path, i + 1);
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
			    rec->thumbprint, s->path);
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

static int
column_strdup(sqlite3_stmt *st, int col, char **dst)
{
	const unsigned char *text = sqlite3_column_text(st, col);

	*dst = NULL;
	if (text == NULL)
		return 0;
	*dst = strdup((const char *)text);
	return *dst == NULL ? -1 : 0;
}

static int
read_cert(struct sqlite_store *s, sqlite3_stmt *st, custody_cert_record *rec,
	  custody_err *err)
{
	int r = CUSTODY_EFAIL;
	const void *der;
	int der_len;

	memset(rec, 0, sizeof(*rec));
	if (column_fixed(st, 0, rec->thumbprint, sizeof(rec->thumbprint)) != 0 ||
	    column_fixed(st, 1, rec->sha256, sizeof(rec->sha256)) != 0 ||
	    column_fixed(st, 8, rec->key_algorithm, sizeof(rec->key_algorithm)) != 0 ||
	    column_fixed(st, 9, rec->key_id, sizeof(rec->key_id)) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read a certificate from store %s: a "
				    "fingerprint, key algorithm or key id is too long",
				    s->path);
		goto out;
	}
	if (alt_names_from_json((const char *)sqlite3_column_text(st, 7), rec) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read certificate %s from store %s: its "
				    "alternative names are not a JSON array of "
				    "strings (or out of memory)", rec->thumbprint,
				    s->path);
		goto out;
	}
	rec->not_before = sqlite3_column_int64(st, 5);
	rec->not_after = sqlite3_column_int64(st, 6);
	der = sqlite3_column_blob(st, 12);
	der_len = sqlite3_column_bytes(st, 12);
	if (column_strdup(st, 2, &rec->subject) != 0 ||
	    column_strdup(st, 3, &rec->issuer) != 0 ||
	    column_strdup(st, 4, &rec->serial) != 0 ||
	    column_strdup(st, 10, &rec->key_uri) != 0 ||
	    column_strdup(st, 11, &rec->label) != 0 ||
	    (der_len > 0 && (rec->der = malloc((size_t)der_len)) == NULL)) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read certificate %s from store %s: out "
				    "of memory", rec->thumbprint, s->path);
		goto out;
	}
	if (der_len > 0) {
		memcpy(rec->der, der, (size_t)der_len);
		rec->der_len = (size_t)der_len;
	}
	r = CUSTODY_OK;
out:
	if (r != CUSTODY_OK)
		custody_cert_record_clear(rec);
	return r;
}

static void
bind_text_or_null(sqlite3_stmt *st, int col, const char *text)
{
	if (text == NULL)
		sqlite3_bind_null(st, col);
	else
		sqlite3_bind_text(st, col, text, -1, SQLITE_STATIC);
}

static int
sqlite_put_cert(void *handle, const custody_cert_record *rec, custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	char *alt_names = NULL;
	int rc;

	if (rec->der_len > (size_t)INT32_MAX) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot save certificate %s in store %s: its "
				    "DER is too large", rec->thumbprint, s->path);
		goto out;
	}
	if ((r = alt_names_to_json(s, rec, &alt_names, err)) != CUSTODY_OK)
		goto out;
	if ((r = prepare(s, "INSERT INTO certificates (thumbprint, sha256, "
			 "subject, issuer, serial, not_before, not_after, "
			 "alt_names, key_algorithm, key_id, key_uri, label, der, "
			 "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
			 "?9, ?10, ?11, ?12, ?13, ?14) "
			 "ON CONFLICT (thumbprint) DO UPDATE SET "
			 "key_uri = excluded.key_uri, label = excluded.label",
			 &st, err)) != CUSTODY_OK)
		goto out;
	sqlite3_bind_text(st, 1, rec->thumbprint, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, rec->sha256, -1, SQLITE_STATIC);
	bind_text_or_null(st, 3, rec->subject);
	bind_text_or_null(st, 4, rec->issuer);
	bind_text_or_null(st, 5, rec->serial);
	sqlite3_bind_int64(st, 6, rec->not_before);
	sqlite3_bind_int64(st, 7, rec->not_after);
	sqlite3_bind_text(st, 8, alt_names, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, rec->key_algorithm, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, rec->key_id, -1, SQLITE_STATIC);
	bind_text_or_null(st, 11, rec->key_uri);
	bind_text_or_null(st, 12, rec->label);
	sqlite3_bind_blob(st, 13, rec->der, (int)rec->der_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 14, (sqlite3_int64)time(NULL));
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot save certificate %s in store %s: another "
				    "certificate has SHA-256 fingerprint %s",
				    rec->thumbprint, s->path, rec->sha256);
		goto out;
	}
	if (rc != SQLITE_DONE) {
		r = db_error(s, err, rc, "cannot save certificate %s in store %s",
			     rec->thumbprint, s->path);
		goto out;
	}
	r = CUSTODY_OK;
out:
	sqlite3_finalize(st);
	free(alt_names);
	return r;
}

static int
sqlite_get_cert(void *handle, const char *thumbprint, custody_cert_record *out,
		custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	int rc;

	if ((r = prepare(s, "SELECT " CERT_COLUMNS " FROM certificates "
			 "WHERE thumbprint = ?1", &st, err)) != CUSTODY_OK)
		goto out;
	sqlite3_bind_text(st, 1, thumbprint, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "no certificate with thumbprint %s in store %s",
				    thumbprint, s->path);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = db_error(s, err, rc, "cannot read certificate %s from store %s",
			     thumbprint, s->path);
		goto out;
	}
	r = read_cert(s, st, out, err);
out:
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_list_certs(void *handle, custody_cert_record **out, size_t *n,
		  custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	custody_cert_record *list = NULL;
	size_t count = 0;
	size_t cap = 0;
	int rc;

	if ((r = prepare(s, "SELECT " CERT_COLUMNS " FROM certificates "
			 "ORDER BY not_after, thumbprint", &st, err)) != CUSTODY_OK)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		list = grow_list(s, list, &cap, count, sizeof(*list), &r, err);
		if (r != CUSTODY_OK)
			goto out;
		if ((r = read_cert(s, st, &list[count], err)) != CUSTODY_OK)
			goto out;
		count++;
	}
	if (rc != SQLITE_DONE) {
		r = db_error(s, err, rc, "cannot list the certificates of store %s",
			     s->path);
		goto out;
	}
	*out = list;
	*n = count;
	list = NULL;
	count = 0;
	r = CUSTODY_OK;
out:
	custody_cert_records_free(list, count);
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_delete_cert(void *handle, const char *thumbprint, custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	int rc;

	if ((r = prepare(s, "DELETE FROM certificates WHERE thumbprint = ?1",
			 &st, err)) != CUSTODY_OK)
		goto out;
	sqlite3_bind_text(st, 1, thumbprint, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		r = db_error(s, err, rc, "cannot delete certificate %s from store %s",
			     thumbprint, s->path);
		goto out;
	}
	if (sqlite3_changes(s->db) == 0) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "no certificate with thumbprint %s in store %s",
				    thumbprint, s->path);
		goto out;
	}
	r = CUSTODY_OK;
out:
	sqlite3_finalize(st);
	return r;
}

/* ------------------------------------------------------------ audit log */

static int
audit_conflict(struct sqlite_store *s, const custody_audit_entry *e,
	       custody_err *err)
{
	custody_err_set(err, CUSTODY_ECONFLICT,
			"cannot append entry %lld to the audit log of store %s: "
			"audit log changed concurrently", (long long)e->seq,
			s->path);
	custody_err_hint(err, "read its head again and retry");
	return CUSTODY_ECONFLICT;
}

static int
sqlite_append_audit(void *handle, const custody_audit_entry *e,
		    custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	int rc;

	/* The head moves from (seq - 1, prev_hash) to (seq, hash), or not
	 * at all: this is the chain's optimistic concurrency. */
	if ((r = prepare(s, "UPDATE audit_head SET seq = ?1, hash = ?2 "
			 "WHERE id = 1 AND seq = ?3 AND hash = ?4",
			 &st, err)) != CUSTODY_OK)
		goto out;
	sqlite3_bind_int64(st, 1, e->seq);
	sqlite3_bind_text(st, 2, e->hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, e->seq - 1);
	sqlite3_bind_text(st, 4, e->prev_hash, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		r = db_error(s, err, rc, "cannot move the audit head of store %s",
			     s->path);
		goto out;
	}
	if (sqlite3_changes(s->db) != 1) {
		r = audit_conflict(s, e, err);
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if ((r = prepare(s, "INSERT INTO audit (" AUDIT_COLUMNS ") VALUES "
			 "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
			 &st, err)) != CUSTODY_OK)
		goto out;
	sqlite3_bind_int64(st, 1, e->seq);
	sqlite3_bind_int64(st, 2, e->time);
	sqlite3_bind_text(st, 3, e->node, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, e->actor, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, e->action, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, e->type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, e->identity, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, e->thumbprint, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, e->previous_thumbprint, -1, SQLITE_STATIC);
	bind_text_or_null(st, 10, e->detail);
	sqlite3_bind_text(st, 11, e->prev_hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 12, e->hash, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
		r = audit_conflict(s, e, err);
		goto out;
	}
	if (rc != SQLITE_DONE) {
		r = db_error(s, err, rc, "cannot append entry %lld to the audit log "
			     "of store %s", (long long)e->seq, s->path);
		goto out;
	}
	r = CUSTODY_OK;
out:
	sqlite3_finalize(st);
	return r;
}

/* Copies a text column into a fixed buffer, cutting what does not fit
 * (or follows a NUL); *cut is set when it did. */
static void
column_cut(sqlite3_stmt *st, int col, char *dst, size_t size, int *cut)
{
	const unsigned char *text = sqlite3_column_text(st, col);
	size_t len;

	memset(dst, 0, size);
	if (text == NULL)
		return;
	len = (size_t)sqlite3_column_bytes(st, col);
	if (strlen((const char *)text) != len) {
		len = strlen((const char *)text);
		*cut = 1;
	}
	if (len >= size) {
		len = size - 1;
		*cut = 1;
	}
	memcpy(dst, text, len);
}

/*
 * One row of the audit table.  A field that does not fit its record (only
 * an edit of the table makes one) is cut, and the entry's hash is blanked,
 * so that verification names the entry as edited instead of failing to
 * read the log.
 */
static int
read_audit(struct sqlite_store *s, sqlite3_stmt *st, custody_audit_entry *e,
	   custody_err *err)
{
	int r = CUSTODY_EFAIL;
	int cut = 0;

	memset(e, 0, sizeof(*e));
	e->seq = sqlite3_column_int64(st, 0);
	e->time = sqlite3_column_int64(st, 1);
	column_cut(st, 2, e->node, sizeof(e->node), &cut);
	column_cut(st, 3, e->actor, sizeof(e->actor), &cut);
	column_cut(st, 4, e->action, sizeof(e->action), &cut);
	column_cut(st, 5, e->type, sizeof(e->type), &cut);
	column_cut(st, 6, e->identity, sizeof(e->identity), &cut);
	column_cut(st, 7, e->thumbprint, sizeof(e->thumbprint), &cut);
	column_cut(st, 8, e->previous_thumbprint, sizeof(e->previous_thumbprint),
		   &cut);
	column_cut(st, 10, e->prev_hash, sizeof(e->prev_hash), &cut);
	column_cut(st, 11, e->hash, sizeof(e->hash), &cut);
	if (column_strdup(st, 9, &e->detail) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read audit entry %lld from store %s: "
				    "out of memory", (long long)e->seq, s->path);
		goto out;
	}
	if (e->detail != NULL &&
	    strlen(e->detail) != (size_t)sqlite3_column_bytes(st, 9))
		cut = 1;
	if (cut)
		e->hash[0] = '\0';
	r = CUSTODY_OK;
out:
	return r;
}

static int
sqlite_last_audit(void *handle, custody_audit_entry *out, custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	int rc;

	if ((r = prepare(s, "SELECT " AUDIT_COLUMNS " FROM audit "
			 "ORDER BY seq DESC LIMIT 1", &st, err)) != CUSTODY_OK)
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "the audit log of store %s is empty", s->path);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = db_error(s, err, rc, "cannot read the audit log of store %s",
			     s->path);
		goto out;
	}
	r = read_audit(s, st, out, err);
out:
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_list_audit(void *handle, int64_t since, custody_audit_entry **out,
		  size_t *n, custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	custody_audit_entry *list = NULL;
	size_t count = 0;
	size_t cap = 0;
	int rc;

	if ((r = prepare(s, "SELECT " AUDIT_COLUMNS " FROM audit "
			 "WHERE time >= ?1 ORDER BY seq", &st, err)) != CUSTODY_OK)
		goto out;
	sqlite3_bind_int64(st, 1, since);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		list = grow_list(s, list, &cap, count, sizeof(*list), &r, err);
		if (r != CUSTODY_OK)
			goto out;
		if ((r = read_audit(s, st, &list[count], err)) != CUSTODY_OK)
			goto out;
		count++;
	}
	if (rc != SQLITE_DONE) {
		r = db_error(s, err, rc, "cannot read the audit log of store %s",
			     s->path);
		goto out;
	}
	*out = list;
	*n = count;
	list = NULL;
	count = 0;
	r = CUSTODY_OK;
out:
	custody_audit_entries_free(list, count);
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_audit_head(void *handle, int64_t *seq, char *hash, custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	int cut = 0;
	int rc;

	if ((r = prepare(s, "SELECT seq, hash FROM audit_head WHERE id = 1",
			 &st, err)) != CUSTODY_OK)
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "the audit head of store %s is missing", s->path);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = db_error(s, err, rc, "cannot read the audit head of store %s",
			     s->path);
		goto out;
	}
	*seq = sqlite3_column_int64(st, 0);
	column_cut(st, 1, hash, CUSTODY_AUDIT_HASH_HEX + 1, &cut);
	if (cut)
		hash[0] = '\0';
	r = CUSTODY_OK;
out:
	sqlite3_finalize(st);
	return r;
}

/* ------------------------------------------------------------ changes */

static int64_t
monotonic_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Watches the database's directory: every file SQLite writes for a commit
 * (the database, its -wal) is there.  Without inotify, -1: ask always. */
static void
start_watch(struct sqlite_store *s)
{
	char *copy = strdup(s->path);
	const char *dir = copy != NULL ? dirname(copy) : NULL;
	int fd = -1;

	s->watching = 1;
	if (dir != NULL &&
	    (fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) >= 0 &&
	    inotify_add_watch(fd, dir, IN_MODIFY | IN_CREATE | IN_DELETE |
			      IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF |
			      IN_MOVE_SELF) < 0) {
		close(fd);
		fd = -1;
	}
	s->watch_fd = fd;
	free(copy);
}

/* 1 when inotify reported anything since the last look (events are read
 * and dropped: any of them only means "ask the database"). */
static int
watch_fired(struct sqlite_store *s)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	int fired = 0;
	ssize_t n;

	while ((n = read(s->watch_fd, buf, sizeof(buf))) > 0)
		fired = 1;
	if (n < 0 && errno != EAGAIN && errno != EINTR) {
		/* The watch broke (overflow is a normal event): ask always. */
		close(s->watch_fd);
		s->watch_fd = -1;
		fired = 1;
	}
	return fired;
}

static int
sqlite_changed(void *handle, int *changed, custody_err *err)
{
	struct sqlite_store *s = handle;
	int64_t version;
	int first = s->calls == 0, r = CUSTODY_EFAIL, rc;

	*changed = 1;
	if (s->calls < WATCH_AFTER_CALLS)
		s->calls++;
	else if (!s->watching)
		start_watch(s);	/* asks the database once more, below */
	else if (s->watch_fd >= 0 && watch_fired(s))
		s->dirty_until = monotonic_ns() + WATCH_DIRTY_NS;
	else if (s->watch_fd >= 0 && monotonic_ns() >= s->dirty_until) {
		*changed = 0;
		r = CUSTODY_OK;
		goto out;
	}
	if (s->data_version == NULL &&
	    (r = prepare(s, "PRAGMA data_version", &s->data_version, err)) !=
	    CUSTODY_OK)
		goto out;
	rc = sqlite3_step(s->data_version);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s->data_version);
		r = db_error(s, err, rc, "cannot ask store %s for changes",
			     s->path);
		goto out;
	}
	version = sqlite3_column_int64(s->data_version, 0);
	sqlite3_reset(s->data_version);
	*changed = first || version != s->last_version;
	s->last_version = version;
	r = CUSTODY_OK;
out:
	return r;
}

/* ------------------------------------------------------------ cluster */

#define NODE_COLUMNS \
	"name, state, transport_spki, kek_wrap, admitted_by, enrolled_at, " \
	"admitted_at, joined_at, last_sync, version, kek_check, admission_sig"

#define PACKAGE_COLUMNS "thumbprint, key_id, wrapped, kcv, created_at, node"

#define REPORT_COLUMNS "node, thumbprint, held, detail, time"

/* A blob column into a malloc'ed copy (NULL for NULL or empty). */
static int
column_blob(sqlite3_stmt *st, int col, unsigned char **dst, size_t *len)
{
	const void *p = sqlite3_column_blob(st, col);
	int n = sqlite3_column_bytes(st, col);

	*dst = NULL;
	*len = 0;
	if (p == NULL || n <= 0)
		return 0;
	if ((*dst = malloc((size_t)n)) == NULL)
		return -1;
	memcpy(*dst, p, (size_t)n);
	*len = (size_t)n;
	return 0;
}

static void
bind_blob_or_null(sqlite3_stmt *st, int col, const unsigned char *p,
		  size_t len)
{
	if (p == NULL || len == 0)
		sqlite3_bind_null(st, col);
	else
		sqlite3_bind_blob(st, col, p, (int)len, SQLITE_STATIC);
}

static int
read_node(struct sqlite_store *s, sqlite3_stmt *st, custody_node_record *rec,
	  custody_err *err)
{
	int r = CUSTODY_EFAIL;

	memset(rec, 0, sizeof(*rec));
	if (column_fixed(st, 0, rec->name, sizeof(rec->name)) != 0 ||
	    column_fixed(st, 1, rec->state, sizeof(rec->state)) != 0 ||
	    column_fixed(st, 4, rec->admitted_by, sizeof(rec->admitted_by)) != 0 ||
	    column_fixed(st, 10, rec->kek_check, sizeof(rec->kek_check)) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read a node from store %s: a name or "
				    "state is too long", s->path);
		goto out;
	}
	if (column_blob(st, 2, &rec->transport_spki,
			&rec->transport_spki_len) != 0 ||
	    column_blob(st, 3, &rec->kek_wrap, &rec->kek_wrap_len) != 0 ||
	    column_blob(st, 11, &rec->admission_sig,
			&rec->admission_sig_len) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read node %s from store %s: out of "
				    "memory", rec->name, s->path);
		goto out;
	}
	rec->enrolled_at = sqlite3_column_int64(st, 5);
	rec->admitted_at = sqlite3_column_int64(st, 6);
	rec->joined_at = sqlite3_column_int64(st, 7);
	rec->last_sync = sqlite3_column_int64(st, 8);
	rec->version = sqlite3_column_int64(st, 9);
	r = CUSTODY_OK;
out:
	if (r != CUSTODY_OK)
		custody_node_record_clear(rec);
	return r;
}

static int
node_conflict(struct sqlite_store *s, const custody_node_record *rec,
	      custody_err *err)
{
	custody_err_set(err, CUSTODY_ECONFLICT,
			"cannot save node %s in store %s: node %s changed "
			"concurrently", rec->name, s->path, rec->name);
	custody_err_hint(err, "read it again and retry");
	return CUSTODY_ECONFLICT;
}

static int
sqlite_put_node(void *handle, custody_node_record *rec, custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	int insert = rec->version == 0;
	int rc;

	if (insert)
		r = prepare(s, "INSERT INTO nodes (" NODE_COLUMNS ") VALUES "
			    "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?11, ?12)",
			    &st, err);
	else
		r = prepare(s, "UPDATE nodes SET state = ?2, transport_spki = ?3, "
			    "kek_wrap = ?4, admitted_by = ?5, enrolled_at = ?6, "
			    "admitted_at = ?7, joined_at = ?8, last_sync = ?9, "
			    "kek_check = ?11, admission_sig = ?12, "
			    "version = version + 1 WHERE name = ?1 AND "
			    "version = ?10", &st, err);
	if (r != CUSTODY_OK)
		goto out;
	sqlite3_bind_text(st, 1, rec->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, rec->state, -1, SQLITE_STATIC);
	bind_blob_or_null(st, 3, rec->transport_spki, rec->transport_spki_len);
	bind_blob_or_null(st, 4, rec->kek_wrap, rec->kek_wrap_len);
	sqlite3_bind_text(st, 5, rec->admitted_by, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, rec->enrolled_at);
	sqlite3_bind_int64(st, 7, rec->admitted_at);
	sqlite3_bind_int64(st, 8, rec->joined_at);
	sqlite3_bind_int64(st, 9, rec->last_sync);
	if (!insert)
		sqlite3_bind_int64(st, 10, rec->version);
	sqlite3_bind_text(st, 11, rec->kek_check, -1, SQLITE_STATIC);
	bind_blob_or_null(st, 12, rec->admission_sig, rec->admission_sig_len);
	rc = sqlite3_step(st);
	if (insert && (rc == SQLITE_CONSTRAINT_PRIMARYKEY ||
		       rc == SQLITE_CONSTRAINT_UNIQUE)) {
		r = node_conflict(s, rec, err);
		goto out;
	}
	if (rc != SQLITE_DONE) {
		r = db_error(s, err, rc, "cannot save node %s in store %s",
			     rec->name, s->path);
		goto out;
	}
	if (sqlite3_changes(s->db) != 1) {
		r = node_conflict(s, rec, err);
		goto out;
	}
	rec->version = insert ? 1 : rec->version + 1;
	r = CUSTODY_OK;
out:
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_get_node(void *handle, const char *name, custody_node_record *out,
		custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	int rc;

	if ((r = prepare(s, "SELECT " NODE_COLUMNS " FROM nodes WHERE name = ?1",
			 &st, err)) != CUSTODY_OK)
		goto out;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "node %s is not in store %s", name, s->path);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = db_error(s, err, rc, "cannot read node %s from store %s",
			     name, s->path);
		goto out;
	}
	r = read_node(s, st, out, err);
out:
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_list_nodes(void *handle, custody_node_record **out, size_t *n,
		  custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	custody_node_record *list = NULL;
	size_t count = 0, cap = 0;
	int rc;

	if ((r = prepare(s, "SELECT " NODE_COLUMNS " FROM nodes ORDER BY name",
			 &st, err)) != CUSTODY_OK)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		list = grow_list(s, list, &cap, count, sizeof(*list), &r, err);
		if (r != CUSTODY_OK)
			goto out;
		if ((r = read_node(s, st, &list[count], err)) != CUSTODY_OK)
			goto out;
		count++;
	}
	if (rc != SQLITE_DONE) {
		r = db_error(s, err, rc, "cannot list the nodes of store %s",
			     s->path);
		goto out;
	}
	*out = list;
	*n = count;
	list = NULL;
	count = 0;
	r = CUSTODY_OK;
out:
	custody_node_records_free(list, count);
	sqlite3_finalize(st);
	return r;
}

static int
read_package(struct sqlite_store *s, sqlite3_stmt *st,
	     custody_package_record *rec, custody_err *err)
{
	int r = CUSTODY_EFAIL;

	memset(rec, 0, sizeof(*rec));
	if (column_fixed(st, 0, rec->thumbprint, sizeof(rec->thumbprint)) != 0 ||
	    column_fixed(st, 1, rec->key_id, sizeof(rec->key_id)) != 0 ||
	    column_fixed(st, 3, rec->kcv, sizeof(rec->kcv)) != 0 ||
	    column_fixed(st, 5, rec->node, sizeof(rec->node)) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read a package from store %s: a "
				    "thumbprint, key id, key check value or node "
				    "is too long", s->path);
		goto out;
	}
	if (column_blob(st, 2, &rec->wrapped, &rec->wrapped_len) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read the package of %s from store %s: "
				    "out of memory", rec->thumbprint, s->path);
		goto out;
	}
	rec->created_at = sqlite3_column_int64(st, 4);
	r = CUSTODY_OK;
out:
	if (r != CUSTODY_OK)
		custody_package_record_clear(rec);
	return r;
}

static int
sqlite_put_package(void *handle, const custody_package_record *rec,
		   custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	int rc;

	if ((r = prepare(s, "INSERT INTO packages (" PACKAGE_COLUMNS ") VALUES "
			 "(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (thumbprint) DO "
			 "UPDATE SET key_id = excluded.key_id, wrapped = "
			 "excluded.wrapped, kcv = excluded.kcv, created_at = "
			 "excluded.created_at, node = excluded.node",
			 &st, err)) != CUSTODY_OK)
		goto out;
	sqlite3_bind_text(st, 1, rec->thumbprint, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, rec->key_id, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, rec->wrapped, (int)rec->wrapped_len,
			  SQLITE_STATIC);
	sqlite3_bind_text(st, 4, rec->kcv, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, rec->created_at);
	sqlite3_bind_text(st, 6, rec->node, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		r = db_error(s, err, rc, "cannot save the package of %s in store %s",
			     rec->thumbprint, s->path);
		goto out;
	}
	r = CUSTODY_OK;
out:
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_get_package(void *handle, const char *thumbprint,
		   custody_package_record *out, custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	int rc;

	if ((r = prepare(s, "SELECT " PACKAGE_COLUMNS " FROM packages "
			 "WHERE thumbprint = ?1", &st, err)) != CUSTODY_OK)
		goto out;
	sqlite3_bind_text(st, 1, thumbprint, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "no package for certificate %s in store %s",
				    thumbprint, s->path);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = db_error(s, err, rc, "cannot read the package of %s from "
			     "store %s", thumbprint, s->path);
		goto out;
	}
	r = read_package(s, st, out, err);
out:
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_list_packages(void *handle, custody_package_record **out, size_t *n,
		     custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	custody_package_record *list = NULL;
	size_t count = 0, cap = 0;
	int rc;

	if ((r = prepare(s, "SELECT " PACKAGE_COLUMNS " FROM packages "
			 "ORDER BY thumbprint", &st, err)) != CUSTODY_OK)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		list = grow_list(s, list, &cap, count, sizeof(*list), &r, err);
		if (r != CUSTODY_OK)
			goto out;
		if ((r = read_package(s, st, &list[count], err)) != CUSTODY_OK)
			goto out;
		count++;
	}
	if (rc != SQLITE_DONE) {
		r = db_error(s, err, rc, "cannot list the packages of store %s",
			     s->path);
		goto out;
	}
	*out = list;
	*n = count;
	list = NULL;
	count = 0;
	r = CUSTODY_OK;
out:
	custody_package_records_free(list, count);
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_delete_package(void *handle, const char *thumbprint, custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	int rc;

	if ((r = prepare(s, "DELETE FROM packages WHERE thumbprint = ?1", &st,
			 err)) != CUSTODY_OK)
		goto out;
	sqlite3_bind_text(st, 1, thumbprint, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		r = db_error(s, err, rc, "cannot delete the package of %s from "
			     "store %s", thumbprint, s->path);
		goto out;
	}
	if (sqlite3_changes(s->db) == 0) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "no package for certificate %s in store %s",
				    thumbprint, s->path);
		goto out;
	}
	r = CUSTODY_OK;
out:
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_put_report(void *handle, const custody_report_record *rec,
		  custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	int rc;

	if ((r = prepare(s, "INSERT INTO node_reports (" REPORT_COLUMNS ") "
			 "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (node, "
			 "thumbprint) DO UPDATE SET held = excluded.held, "
			 "detail = excluded.detail, time = excluded.time",
			 &st, err)) != CUSTODY_OK)
		goto out;
	sqlite3_bind_text(st, 1, rec->node, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, rec->thumbprint, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, rec->held ? 1 : 0);
	sqlite3_bind_text(st, 4, rec->detail, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, rec->time);
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		r = db_error(s, err, rc, "cannot save the report of node %s in "
			     "store %s", rec->node, s->path);
		goto out;
	}
	r = CUSTODY_OK;
out:
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_list_reports(void *handle, const char *node, custody_report_record **out,
		    size_t *n, custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	custody_report_record *list = NULL;
	size_t count = 0, cap = 0;
	int cut = 0, rc;

	if ((r = prepare(s, "SELECT " REPORT_COLUMNS " FROM node_reports "
			 "WHERE ?1 IS NULL OR node = ?1 ORDER BY node, "
			 "thumbprint", &st, err)) != CUSTODY_OK)
		goto out;
	if (node != NULL)
		sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		custody_report_record *rec;

		list = grow_list(s, list, &cap, count, sizeof(*list), &r, err);
		if (r != CUSTODY_OK)
			goto out;
		rec = &list[count];
		memset(rec, 0, sizeof(*rec));
		if (column_fixed(st, 0, rec->node, sizeof(rec->node)) != 0 ||
		    column_fixed(st, 1, rec->thumbprint, sizeof(rec->thumbprint)) != 0) {
			r = custody_err_set(err, CUSTODY_EFAIL,
					    "cannot read a report from store %s: a "
					    "node or thumbprint is too long", s->path);
			goto out;
		}
		rec->held = sqlite3_column_int(st, 2) != 0;
		column_cut(st, 3, rec->detail, sizeof(rec->detail), &cut);
		rec->time = sqlite3_column_int64(st, 4);
		count++;
	}
	if (rc != SQLITE_DONE) {
		r = db_error(s, err, rc, "cannot list the reports of store %s",
			     s->path);
		goto out;
	}
	*out = list;
	*n = count;
	list = NULL;
	r = CUSTODY_OK;
out:
	free(list);
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_get_meta(void *handle, const char *name, char *value, size_t size,
		custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	int rc;

	if ((r = prepare(s, "SELECT value FROM cluster_meta WHERE name = ?1",
			 &st, err)) != CUSTODY_OK)
		goto out;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "cluster fact %s is not set in store %s", name,
				    s->path);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = db_error(s, err, rc, "cannot read cluster fact %s from store %s",
			     name, s->path);
		goto out;
	}
	if (column_fixed(st, 0, value, size) != 0) {
		value[0] = '\0';
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read cluster fact %s from store %s: "
				    "it is too long", name, s->path);
		goto out;
	}
	r = CUSTODY_OK;
out:
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_put_meta(void *handle, const char *name, const char *value, int replace,
		custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	int rc;

	r = prepare(s, replace ?
		    "INSERT INTO cluster_meta (name, value) VALUES (?1, ?2) "
		    "ON CONFLICT (name) DO UPDATE SET value = excluded.value" :
		    "INSERT INTO cluster_meta (name, value) VALUES (?1, ?2)",
		    &st, err);
	if (r != CUSTODY_OK)
		goto out;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
		r = custody_err_set(err, CUSTODY_ECONFLICT,
				    "cannot save cluster fact %s: it is already "
				    "set in store %s", name, s->path);
		goto out;
	}
	if (rc != SQLITE_DONE) {
		r = db_error(s, err, rc, "cannot save cluster fact %s in store %s",
			     name, s->path);
		goto out;
	}
	r = CUSTODY_OK;
out:
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_get_tag(void *handle, const char *kind, const char *name,
	       char tag[CUSTODY_TAG_HEX + 1], custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	int rc;

	tag[0] = '\0';
	if ((r = prepare(s, "SELECT tag FROM row_tags WHERE kind = ?1 AND "
			 "name = ?2", &st, err)) != CUSTODY_OK)
		goto out;
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "the %s record %s carries no integrity tag "
				    "in store %s", kind, name, s->path);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = db_error(s, err, rc, "cannot read the integrity tag of %s "
			     "%s from store %s", kind, name, s->path);
		goto out;
	}
	if (column_fixed(st, 0, tag, CUSTODY_TAG_HEX + 1) != 0) {
		/* Too long to be one: what the checker calls a wrong tag. */
		tag[0] = '\0';
	}
	r = CUSTODY_OK;
out:
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_put_tag(void *handle, const char *kind, const char *name,
	       const char *tag, custody_err *err)
{
	struct sqlite_store *s = handle;
	int r = CUSTODY_EFAIL;
	sqlite3_stmt *st = NULL;
	int rc;

	r = prepare(s, tag != NULL ?
		    "INSERT INTO row_tags (kind, name, tag) VALUES (?1, ?2, ?3) "
		    "ON CONFLICT (kind, name) DO UPDATE SET tag = excluded.tag" :
		    "DELETE FROM row_tags WHERE kind = ?1 AND name = ?2",
		    &st, err);
	if (r != CUSTODY_OK)
		goto out;
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	if (tag != NULL)
		sqlite3_bind_text(st, 3, tag, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		r = db_error(s, err, rc, "cannot save the integrity tag of %s "
			     "%s in store %s", kind, name, s->path);
		goto out;
	}
	r = CUSTODY_OK;
out:
	sqlite3_finalize(st);
	return r;
}

const struct custody_store_backend custody_store_sqlite_backend = {
	.name = "sqlite",
	.open = sqlite_open,
	.close = sqlite_close,
	.begin = sqlite_begin,
	.begin_read = sqlite_begin_read,
	.commit = sqlite_commit,
	.rollback = sqlite_rollback,
	.get_assignment = sqlite_get_assignment,
	.list_assignments = sqlite_list_assignments,
	.put_assignment = sqlite_put_assignment,
	.put_cert = sqlite_put_cert,
	.get_cert = sqlite_get_cert,
	.list_certs = sqlite_list_certs,
	.delete_cert = sqlite_delete_cert,
	.append_audit = sqlite_append_audit,
	.last_audit = sqlite_last_audit,
	.list_audit = sqlite_list_audit,
	.audit_head = sqlite_audit_head,
	.changed = sqlite_changed,
	.put_node = sqlite_put_node,
	.get_node = sqlite_get_node,
	.list_nodes = sqlite_list_nodes,
	.put_package = sqlite_put_package,
	.get_package = sqlite_get_package,
	.list_packages = sqlite_list_packages,
	.delete_package = sqlite_delete_package,
	.put_report = sqlite_put_report,
	.list_reports = sqlite_list_reports,
	.get_meta = sqlite_get_meta,
	.put_meta = sqlite_put_meta,
	.get_tag = sqlite_get_tag,
	.put_tag = sqlite_put_tag,
};
