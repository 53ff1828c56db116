/* store/sqlite.c — the SQLite store backend ("sqlite:PATH"): the
 * connection, the text of the statements and the driver that runs them
 * for store/core.c (see store/backend.h).
 *
 * One database file, created 0600 in a directory created 0700 when
 * missing; WAL journal, 10 s busy timeout, foreign keys on.  The schema
 * is versioned in the schema_version table; store/core.c brings it up to
 * date at open, in one write transaction (BEGIN IMMEDIATE).  Every
 * statement is a constant string with bound parameters.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libgen.h>
#include <limits.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include <custody/clock.h>
#include <custody/error.h>
#include <custody/log.h>
#include <custody/records.h>
#include <custody/store.h>

#include "store/backend.h"
#include "store/schema.h"

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

struct store_conn {
	sqlite3 *db;
	char *path;
	dev_t dev;			/* the file opened: a write checks  */
	ino_t ino;			/* its path still names it          */
	/* custody_store_changed: */
	sqlite3_stmt *data_version;	/* "PRAGMA data_version", kept      */
	int watch_fd;			/* inotify on the directory; -1     */
	int watching;			/* 0: not tried yet                  */
	unsigned calls;			/* custody_store_changed so far      */
	int64_t last_version;
	int64_t dirty_until;		/* CLOCK_MONOTONIC ns                */
	unsigned long statements;	/* run so far (sqlite_statements)    */
};

/*
 * The schema, one entry per version (see store/schema.h): SQLite's
 * types, NOCASE names and the audit log's triggers.
 */
static const char *const migrations[CUSTODY_STORE_SCHEMA_VERSION + 1] = {
	NULL,
	STORE_SCHEMA_CERTIFICATES("INTEGER", "BLOB")
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
	STORE_SCHEMA_AUDIT("INTEGER")
	"CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit "
	"  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
	"CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit "
	"  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
	"CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head "
	"  BEGIN SELECT RAISE(ABORT, 'the audit head cannot be deleted'); END;",
	STORE_SCHEMA_CLUSTER("INTEGER", "BLOB", "INTEGER"),
	STORE_SCHEMA_ADMISSION("BLOB"),
	STORE_SCHEMA_TAGS,
};

/* The statements SQLite words its own way (store/backend.h); the rest are
 * store/core.c's.  Names compare as NOCASE through the columns' collation,
 * lists sort in byte order (BINARY). */
static const char *const statements[STORE_SQL_COUNT] = {
	[STORE_SQL_SCHEMA_EXISTS] =
	"SELECT count(*) FROM sqlite_master "
	"WHERE type = 'table' AND name = 'schema_version'",
	[STORE_SQL_CREATE_SCHEMA_VERSION] = STORE_SCHEMA_VERSIONS("INTEGER"),

	[STORE_SQL_GET_ASSIGNMENT] =
	"SELECT " STORE_ASSIGNMENT_COLUMNS " FROM assignments "
	"WHERE type = $1 AND identity = $2",
	[STORE_SQL_FIND_ASSIGNMENT] =
	"SELECT 1 FROM assignments WHERE type = $1 AND identity = $2",
	[STORE_SQL_DELETE_ASSIGNMENT] =
	"DELETE FROM assignments WHERE type = $1 AND identity = $2 "
	"AND version = $3",
	[STORE_SQL_INSERT_ASSIGNMENT] =
	"INSERT INTO assignments (" STORE_ASSIGNMENT_COLUMNS ") "
	"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1)",
	[STORE_SQL_UPDATE_ASSIGNMENT] =
	"UPDATE assignments SET current_thumbprint = $3, "
	"current_effective = $4, previous_thumbprint = $5, "
	"previous_effective = $6, pending_thumbprint = $7, "
	"pending_effective = $8, version = version + 1 "
	"WHERE type = $1 AND identity = $2 AND version = $9",
	[STORE_SQL_LIST_ASSIGNMENTS] =
	"SELECT " STORE_ASSIGNMENT_COLUMNS " FROM assignments ORDER BY type, "
	"CASE WHEN identity = 'global' THEN 0 ELSE 1 END, identity",
	[STORE_SQL_LIST_CERTS] =
	"SELECT " STORE_CERT_COLUMNS " FROM certificates "
	"ORDER BY not_after, thumbprint",
	[STORE_SQL_LIST_CERTS_OF] =
	"SELECT " STORE_CERT_COLUMNS " FROM certificates "
	"WHERE instr(',' || $1 || ',', ',' || thumbprint || ',') > 0 "
	"ORDER BY not_after, thumbprint",
	/* A second entry of the same seq fails on the primary key. */
	[STORE_SQL_INSERT_AUDIT] =
	"INSERT INTO audit (" STORE_AUDIT_COLUMNS ") VALUES "
	"($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
	/* A write transaction (BEGIN IMMEDIATE) holds the lock already. */
	[STORE_SQL_AUDIT_HEAD_LOCKED] =
	"SELECT seq, hash FROM audit_head WHERE id = 1",
	[STORE_SQL_LIST_NODES] =
	"SELECT " STORE_NODE_COLUMNS " FROM nodes ORDER BY name",
	[STORE_SQL_LIST_PACKAGES] =
	"SELECT " STORE_PACKAGE_COLUMNS " FROM packages ORDER BY thumbprint",
	[STORE_SQL_LIST_PACKAGES_OF] =
	"SELECT " STORE_PACKAGE_COLUMNS " FROM packages "
	"WHERE instr(',' || $1 || ',', ',' || thumbprint || ',') > 0 "
	"ORDER BY thumbprint",
	[STORE_SQL_LIST_REPORTS] =
	"SELECT " STORE_REPORT_COLUMNS " FROM node_reports "
	"WHERE $1 IS NULL OR node = $1 ORDER BY node, thumbprint",
	/* Backwards along the primary key, the first match stops it. */
	[STORE_SQL_FIND_AUDIT] =
	"SELECT " STORE_AUDIT_COLUMNS " FROM audit "
	"WHERE ($1 IS NULL OR action = $1) AND ($2 IS NULL OR type = $2) "
	"AND ($3 IS NULL OR identity = $3) AND ($4 IS NULL OR thumbprint = $4) "
	"ORDER BY seq DESC LIMIT 1",
	[STORE_SQL_NEWEST_AUDIT_OF] =
	"SELECT " STORE_AUDIT_COLUMNS " FROM audit "
	"WHERE instr(',' || $1 || ',', ',' || action || ',') > 0 "
	"AND ($2 IS NULL OR thumbprint = $2) "
	"ORDER BY seq DESC LIMIT 1",
};


static int
is_busy(int rc)
{
	return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
}

/* EFAIL "WHAT: WHY" with SQLite's reason; a lock that outlasted the busy
 * timeout says "store is busy". */
static int
db_error(struct store_conn *s, custody_err *err, int rc, const char *fmt, ...)
	CUSTODY_PRINTF(4, 5);

static int
db_error(struct store_conn *s, custody_err *err, int rc, const char *fmt, ...)
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
prepare(struct store_conn *s, const char *sql, sqlite3_stmt **stmt,
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

static int
exec_constant(struct store_conn *s, const char *sql, custody_err *err,
	      const char *what)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return db_error(s, err, rc, "%s on store %s", what, s->path);
	return CUSTODY_OK;
}

/* ------------------------------------------------------------ the file */

/* The directory that holds path must exist: custody makes a store's file,
 * never its directory (a mistyped path is an error, not a new tree). */
static int
check_parent_dir(const char *path, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	char *dir = strdup(path);
	char *slash;
	struct stat sb;
	int found;

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
	if ((found = stat(dir, &sb) == 0) && S_ISDIR(sb.st_mode)) {
		r = CUSTODY_OK;
	} else if (!found && errno == ENOENT) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot open store %s: directory %s does not "
				    "exist", path, dir);
		custody_err_hint(err, "custody makes the store's file, not its "
				 "directory: check the path, or make the "
				 "directory (mode 0700) first");
	} else {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot open store %s: %s is not a directory",
				    path, dir);
	}
out:
	free(dir);
	return r;
}

/* Without create, a store whose file is missing or empty is none
 * (ENOTFOUND, which the core words; opening an empty one would write it). */
static int
check_exists(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) == 0 ? sb.st_size > 0 || !S_ISREG(sb.st_mode) :
	    errno != ENOENT)
		return CUSTODY_OK;	/* open says what else is wrong */
	return CUSTODY_ENOTFOUND;
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

/* The journal mode of the database, lower-case, into mode[8]. */
static int
query_journal_mode(struct store_conn *s, const char *sql, char mode[8],
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
set_wal(struct store_conn *s, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	char mode[8];

	if ((r = query_journal_mode(s, "PRAGMA journal_mode", mode, err)) !=
	    CUSTODY_OK)
		return r;
	if (sqlite3_stricmp(mode, "wal") == 0)
		return CUSTODY_OK;
	if ((r = query_journal_mode(s, "PRAGMA journal_mode = WAL", mode, err)) !=
	    CUSTODY_OK)
		return r;
	if (sqlite3_stricmp(mode, "wal") != 0)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot switch store %s to WAL mode: it stays "
				       "in %s mode", s->path, mode);
	return CUSTODY_OK;
}

/* Which file the connection has open, for still_linked. */
static int
note_file(struct store_conn *s, custody_err *err)
{
	struct stat sb;

	if (stat(s->path, &sb) != 0)
		return custody_err_set(err, CUSTODY_EFAIL, "cannot open store %s: %s",
				       s->path, strerror(errno));
	s->dev = sb.st_dev;
	s->ino = sb.st_ino;
	return CUSTODY_OK;
}

/* A store made by a first write that was then refused is removed again
 * (sqlite_unmake): a connection opened to it meanwhile must not write
 * into a file no path names any more. */
static int
still_linked(struct store_conn *s, custody_err *err)
{
	struct stat sb;

	if (stat(s->path, &sb) == 0 && sb.st_dev == s->dev && sb.st_ino == s->ino)
		return CUSTODY_OK;
	custody_err_set(err, CUSTODY_EFAIL, "store %s was removed while this "
			"command had it open (a first write to it was refused, "
			"and the store it made removed)", s->path);
	custody_err_hint(err, "run the command again: nothing was written");
	return CUSTODY_EFAIL;
}

static void
sqlite_close(struct store_conn *s)
{
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
sqlite_open(const char *location, int create, struct store_conn **out,
	    custody_err *err)
{
	int r = CUSTODY_EFAIL;
	struct store_conn *s = NULL;
	char *open_name = NULL;
	int rc;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (s != NULL)
		s->watch_fd = -1;
	if (s == NULL || (s->path = strdup(location)) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot open store %s: out of memory", location);
		goto out;
	}
	if ((r = check_parent_dir(s->path, err)) != CUSTODY_OK ||
	    (r = create ? create_file(s->path, err) : check_exists(s->path)) !=
	    CUSTODY_OK)
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
	    (r = note_file(s, err)) != CUSTODY_OK)
		goto out;
	*out = s;
	s = NULL;
	r = CUSTODY_OK;
out:
	free(open_name);
	sqlite_close(s);
	return r;
}

/* ------------------------------------------------------------ transactions */

static int
sqlite_begin(struct store_conn *s, custody_err *err)
{
	int r;

	if ((r = exec_constant(s, "BEGIN IMMEDIATE", err,
			       "cannot begin a write transaction")) != CUSTODY_OK)
		return r;
	/* Under the write lock, which sqlite_unmake holds as it removes. */
	if ((r = still_linked(s, err)) != CUSTODY_OK)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

/* The database file and the WAL and shared-memory files kept beside it
 * (SQLITE_FCNTL_PERSIST_WAL), removed under the write lock. */
static int
sqlite_unmake(struct store_conn *s, custody_err *err)
{
	static const char *const suffixes[] = { "-wal", "-shm", "" };
	char name[PATH_MAX];
	size_t i;

	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if ((size_t)snprintf(name, sizeof(name), "%s%s", s->path,
				     suffixes[i]) >= sizeof(name))
			return custody_err_set(err, CUSTODY_EFAIL,
					       "cannot remove store %s: path too long",
					       s->path);
		if (unlink(name) != 0 && errno != ENOENT)
			return custody_err_set(err, CUSTODY_EFAIL,
					       "cannot remove %s: %s", name,
					       strerror(errno));
	}
	return CUSTODY_OK;
}

/* A deferred transaction: the first read takes the snapshot (a shared
 * lock, or WAL's read mark) that the later ones see too. */
static int
sqlite_begin_read(struct store_conn *s, custody_err *err)
{
	return exec_constant(s, "BEGIN DEFERRED", err, "cannot begin a read");
}

static int
sqlite_commit(struct store_conn *s, custody_err *err)
{
	int r = exec_constant(s, "COMMIT", err, "cannot commit");

	if (r != CUSTODY_OK && !sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

static void
sqlite_rollback(struct store_conn *s)
{
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

static int
sqlite_in_transaction(struct store_conn *s)
{
	return !sqlite3_get_autocommit(s->db);
}

static const char *
sqlite_where(struct store_conn *s)
{
	return s->path;
}

/* ------------------------------------------------------------ statements */

/* Value i is the parameter named "$i+1" (SQLite numbers named parameters
 * in the order they first stand in the text, not by their names). */
static void
bind_values(sqlite3_stmt *st, const struct store_query *q)
{
	char name[16];
	int i, at;

	for (i = 0; i < q->n_values; i++) {
		const struct store_value *v = &q->values[i];

		snprintf(name, sizeof(name), "$%d", i + 1);
		if ((at = sqlite3_bind_parameter_index(st, name)) == 0)
			continue;
		if (v->kind == STORE_TEXT)
			sqlite3_bind_text(st, at, v->text, -1, SQLITE_STATIC);
		else if (v->kind == STORE_INT || v->kind == STORE_BOOL)
			sqlite3_bind_int64(st, at, v->integer);
		else if (v->kind == STORE_BYTES)
			sqlite3_bind_blob(st, at, v->bytes, (int)v->len,
					  SQLITE_STATIC);
		else
			sqlite3_bind_null(st, at);
	}
}

static const char *
column_text(const struct store_row *row, int col, size_t *len)
{
	const unsigned char *text = sqlite3_column_text(row->cursor, col);

	*len = 0;
	if (text == NULL)
		return NULL;
	*len = (size_t)sqlite3_column_bytes(row->cursor, col);
	return (const char *)text;
}

static int64_t
column_integer(const struct store_row *row, int col)
{
	return sqlite3_column_int64(row->cursor, col);
}

static int
column_flag(const struct store_row *row, int col)
{
	return sqlite3_column_int(row->cursor, col) != 0;
}

/* A blob column into a malloc'ed copy (NULL for NULL or empty). */
static int
column_bytes(const struct store_row *row, int col, unsigned char **dst,
	     size_t *len)
{
	const void *p = sqlite3_column_blob(row->cursor, col);
	int n = sqlite3_column_bytes(row->cursor, col);

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

static const struct store_row_reader column_reader = {
	.text = column_text, .integer = column_integer,
	.flag = column_flag, .bytes = column_bytes,
};

static int
sqlite_run(struct store_conn *s, struct store_query *q, const char *what,
	   custody_err *err)
{
	struct store_row row = { &column_reader, NULL, 0 };
	sqlite3_stmt *st = NULL;
	int r = CUSTODY_EFAIL;
	int rc;

	s->statements++;
	if ((r = prepare(s, q->text, &st, err)) != CUSTODY_OK)
		goto out;
	bind_values(st, q);
	row.cursor = st;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		q->rows++;
		if (q->each_row != NULL &&
		    (r = q->each_row(q->arg, &row, err)) != CUSTODY_OK)
			goto out;
	}
	if (rc != SQLITE_DONE) {
		q->unique_violation = rc == SQLITE_CONSTRAINT_PRIMARYKEY ||
			rc == SQLITE_CONSTRAINT_UNIQUE;
		r = db_error(s, err, rc, "%s", what);
		goto out;
	}
	q->changes = sqlite3_changes(s->db);
	r = CUSTODY_OK;
out:
	sqlite3_finalize(st);
	return r;
}

static int
sqlite_run_script(struct store_conn *s, const char *script, const char *what,
		  custody_err *err)
{
	int rc = sqlite3_exec(s->db, script, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return db_error(s, err, rc, "%s", what);
	return CUSTODY_OK;
}

/* ------------------------------------------------------------ changes */

/* Watches the database's directory: every file SQLite writes for a commit
 * (the database, its -wal) is there.  Without inotify, -1: ask always. */
static void
start_watch(struct store_conn *s)
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
watch_fired(struct store_conn *s)
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
sqlite_changed(struct store_conn *s, int *changed, custody_err *err)
{
	int64_t version;
	int first = s->calls == 0, r = CUSTODY_EFAIL, rc;

	*changed = 1;
	if (s->calls < WATCH_AFTER_CALLS)
		s->calls++;
	else if (!s->watching)
		start_watch(s);	/* asks the database once more, below */
	else if (s->watch_fd >= 0 && watch_fired(s))
		s->dirty_until = custody_monotonic_ns() + WATCH_DIRTY_NS;
	else if (s->watch_fd >= 0 && custody_monotonic_ns() >= s->dirty_until) {
		*changed = 0;
		return CUSTODY_OK;
	}
	if (s->data_version == NULL &&
	    (r = prepare(s, "PRAGMA data_version", &s->data_version, err)) !=
	    CUSTODY_OK)
		return r;
	rc = sqlite3_step(s->data_version);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s->data_version);
		r = db_error(s, err, rc, "cannot ask store %s for changes",
			     s->path);
		return r;
	}
	version = sqlite3_column_int64(s->data_version, 0);
	sqlite3_reset(s->data_version);
	*changed = first || version != s->last_version;
	s->last_version = version;
	return CUSTODY_OK;
}

static unsigned long
sqlite_statements(struct store_conn *s)
{
	return s->statements;
}

const struct custody_store_backend custody_store_sqlite_backend = {
	.name = "sqlite", .sql = statements, .migrations = migrations,
	.open = sqlite_open, .close = sqlite_close, .where = sqlite_where,
	.begin = sqlite_begin, .begin_read = sqlite_begin_read,
	.commit = sqlite_commit, .rollback = sqlite_rollback,
	.in_transaction = sqlite_in_transaction,
	.run = sqlite_run, .run_script = sqlite_run_script,
	.unmake = sqlite_unmake, .changed = sqlite_changed,
	.statements = sqlite_statements,
};
