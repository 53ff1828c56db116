/* store/core.c — the store's records, once for every backend: which
 * statement each call runs with which values, each row decoded into its
 * record, the alternative names' JSON, lists, the conflict and not-found
 * messages, the schema's migration driver (see store/backend.h). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include <custody/assign.h>
#include <custody/error.h>
#include <custody/records.h>
#include <custody/store.h>

#include "store/core.h"
#include "store/records.h"

#define WHAT_MAX 512

/* A record read from one row into rec (a custody_*_record). */
typedef int (*record_reader)(const struct store_core *c,
			     const struct store_row *row,
			     void *rec, custody_err *err);

static const char *
where(const struct store_core *c)
{
	return c->backend->where(c->conn);
}

/* Formats the WHAT of a message into buf (WHAT_MAX bytes); returns buf. */
static const char *
say(char *buf, const char *fmt, ...) CUSTODY_PRINTF(2, 3);

static const char *
say(char *buf, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(buf, WHAT_MAX, fmt, ap) < 0)
		buf[0] = '\0';
	va_end(ap);
	return buf;
}

/* ------------------------------------------------------------ values */

static struct store_value *
next_value(struct store_query *q, enum store_value_kind kind)
{
	struct store_value *v = &q->values[q->n_values++];

	memset(v, 0, sizeof(*v));
	v->kind = kind;
	return v;
}

/* NULL binds SQL NULL. */
static void
v_text(struct store_query *q, const char *text)
{
	next_value(q, text != NULL ? STORE_TEXT : STORE_NULL)->text = text;
}

static void
v_int(struct store_query *q, int64_t integer)
{
	next_value(q, STORE_INT)->integer = integer;
}

static void
v_bool(struct store_query *q, int flag)
{
	next_value(q, STORE_BOOL)->integer = flag ? 1 : 0;
}

static void
v_bytes(struct store_query *q, const unsigned char *bytes, size_t len)
{
	struct store_value *v = next_value(q, STORE_BYTES);

	v->bytes = bytes;
	v->len = len;
}

/* A byte string, or SQL NULL when there is none. */
static void
v_bytes_or_null(struct store_query *q, const unsigned char *bytes, size_t len)
{
	if (bytes == NULL || len == 0)
		next_value(q, STORE_NULL);
	else
		v_bytes(q, bytes, len);
}

/* A slot is two values: its thumbprint and effective time, or two NULLs. */
static void
v_slot(struct store_query *q, const custody_slot *slot)
{
	if (slot->thumbprint[0] == '\0') {
		next_value(q, STORE_NULL);
		next_value(q, STORE_NULL);
	} else {
		v_text(q, slot->thumbprint);
		v_int(q, slot->effective);
	}
}

/* ------------------------------------------------------------ running */

/* The statements both backends take alike; a backend's own wording (its
 * sql[i]) replaces one here, and words every NULL one. */
static const char *const standard_sql[STORE_SQL_COUNT] = {
	[STORE_SQL_SCHEMA_VERSION] =
	"SELECT coalesce(max(version), 0) FROM schema_version",
	[STORE_SQL_RECORD_VERSION] =
	"INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",

	[STORE_SQL_PUT_CERT] =
	"INSERT INTO certificates (" STORE_CERT_COLUMNS ", created_at) "
	"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) "
	"ON CONFLICT (thumbprint) DO UPDATE SET "
	"key_uri = excluded.key_uri, label = excluded.label",
	[STORE_SQL_GET_CERT] =
	"SELECT " STORE_CERT_COLUMNS " FROM certificates WHERE thumbprint = $1",
	[STORE_SQL_DELETE_CERT] =
	"DELETE FROM certificates WHERE thumbprint = $1",

	[STORE_SQL_MOVE_AUDIT_HEAD] =
	"UPDATE audit_head SET seq = $1, hash = $2 "
	"WHERE id = 1 AND seq = $3 AND hash = $4",
	[STORE_SQL_LAST_AUDIT] =
	"SELECT " STORE_AUDIT_COLUMNS " FROM audit ORDER BY seq DESC LIMIT 1",
	[STORE_SQL_LIST_AUDIT] =
	"SELECT " STORE_AUDIT_COLUMNS " FROM audit WHERE time >= $1 ORDER BY seq",
	[STORE_SQL_AUDIT_HEAD] = "SELECT seq, hash FROM audit_head WHERE id = 1",

	[STORE_SQL_INSERT_NODE] =
	"INSERT INTO nodes (" STORE_NODE_COLUMNS ") VALUES "
	"($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $11)",
	[STORE_SQL_UPDATE_NODE] =
	"UPDATE nodes SET state = $2, transport_spki = $3, kek_wrap = $4, "
	"admitted_by = $5, enrolled_at = $6, admitted_at = $7, joined_at = $8, "
	"last_sync = $9, kek_check = $10, admission_sig = $11, "
	"version = version + 1 WHERE name = $1 AND version = $12",
	[STORE_SQL_GET_NODE] =
	"SELECT " STORE_NODE_COLUMNS " FROM nodes WHERE name = $1",
	[STORE_SQL_PUT_PACKAGE] =
	"INSERT INTO packages (" STORE_PACKAGE_COLUMNS ") VALUES "
	"($1, $2, $3, $4, $5, $6) ON CONFLICT (thumbprint) DO "
	"UPDATE SET key_id = excluded.key_id, wrapped = excluded.wrapped, "
	"kcv = excluded.kcv, created_at = excluded.created_at, "
	"node = excluded.node",
	[STORE_SQL_GET_PACKAGE] =
	"SELECT " STORE_PACKAGE_COLUMNS " FROM packages WHERE thumbprint = $1",
	[STORE_SQL_DELETE_PACKAGE] =
	"DELETE FROM packages WHERE thumbprint = $1",
	[STORE_SQL_PUT_REPORT] =
	"INSERT INTO node_reports (" STORE_REPORT_COLUMNS ") "
	"VALUES ($1, $2, $3, $4, $5) ON CONFLICT (node, thumbprint) DO UPDATE "
	"SET held = excluded.held, detail = excluded.detail, "
	"time = excluded.time",
	[STORE_SQL_GET_META] =
	"SELECT value FROM cluster_meta WHERE name = $1",
	[STORE_SQL_INSERT_META] =
	"INSERT INTO cluster_meta (name, value) VALUES ($1, $2)",
	[STORE_SQL_REPLACE_META] =
	"INSERT INTO cluster_meta (name, value) VALUES ($1, $2) "
	"ON CONFLICT (name) DO UPDATE SET value = excluded.value",
	[STORE_SQL_GET_TAG] =
	"SELECT tag FROM row_tags WHERE kind = $1 AND name = $2",
	[STORE_SQL_PUT_TAG] =
	"INSERT INTO row_tags (kind, name, tag) VALUES ($1, $2, $3) "
	"ON CONFLICT (kind, name) DO UPDATE SET tag = excluded.tag",
	[STORE_SQL_DELETE_TAG] =
	"DELETE FROM row_tags WHERE kind = $1 AND name = $2",
	/* What a store made by store_core_migrate holds is its schema, the
	 * audit head at 0 and the row_tags fact: anything else was written. */
	[STORE_SQL_COUNT_ROWS] =
	"SELECT (SELECT count(*) FROM certificates) "
	"+ (SELECT count(*) FROM assignments) + (SELECT count(*) FROM audit) "
	"+ (SELECT seq FROM audit_head WHERE id = 1) "
	"+ (SELECT count(*) FROM nodes) + (SELECT count(*) FROM packages) "
	"+ (SELECT count(*) FROM node_reports) + (SELECT count(*) FROM row_tags) "
	"+ (SELECT count(*) FROM cluster_meta WHERE name <> 'row_tags')",
	/* The generation (custody/store.h custody_store_generation): a
	 * cluster fact, so that no schema change is needed; the row lock
	 * of the update is taken last in a transaction (at its commit), so
	 * it orders no other lock. */
	[STORE_SQL_BUMP_GENERATION] =
	"INSERT INTO cluster_meta (name, value) VALUES ('generation', '1') "
	"ON CONFLICT (name) DO UPDATE SET value = "
	"CAST(CAST(cluster_meta.value AS BIGINT) + 1 AS TEXT)",
	[STORE_SQL_GET_GENERATION] =
	"SELECT CAST(value AS BIGINT) FROM cluster_meta WHERE name = 'generation'",
	[STORE_SQL_LIST_TAGS] = "SELECT kind, name, tag FROM row_tags",
};

static const char *
statement(const struct custody_store_backend *b, enum store_sql sql)
{
	return b->sql[sql] != NULL ? b->sql[sql] : standard_sql[sql];
}

static int
run(const struct store_core *c, struct store_query *q, const char *what,
    custody_err *err)
{
	q->text = statement(c->backend, q->sql);
	return c->backend->run(c->conn, q, what, err);
}

/* What members follow is notified; what nodes report (reports, their
 * node rows, audit entries of no such change) is not: nobody waits for
 * it, and PostgreSQL signals every listening backend of the database for
 * every NOTIFY, whatever its channel, so N reports after each change
 * would cost the server N x N wake-ups (measured: 1,000 simulated nodes
 * made 10 reports a second; docs/scale.md). */
static int
notify(const struct store_core *c, const char *payload, custody_err *err)
{
	if (c->backend->notify == NULL || strcmp(payload, "reports") == 0 ||
	    strcmp(payload, "nodes") == 0)
		return CUSTODY_OK;
	return c->backend->notify(c->conn, payload, err);
}

/* r and q of a write that lost a race: its insert met a row inserted
 * meanwhile, or it changed not exactly one row (an update or delete of a
 * row written meanwhile). */
static int
lost_race(int r, int insert, const struct store_query *q)
{
	return (r != CUSTODY_OK && insert && q->unique_violation) ||
	       (r == CUSTODY_OK && q->changes != 1);
}

/* Rows only counted (q->rows). */
static int
count_row(void *arg, const struct store_row *row, custody_err *err)
{
	(void)arg;
	(void)row;
	(void)err;
	return CUSTODY_OK;
}

struct one_record {
	const struct store_core *c;
	record_reader read;
	void *rec;
};

static int
first_row(void *arg, const struct store_row *row, custody_err *err)
{
	struct one_record *one = arg;
	void *rec = one->rec;

	if (rec == NULL)
		return CUSTODY_OK;	/* a second row: the first one counts */
	one->rec = NULL;
	return one->read(one->c, row, rec, err);
}

/* The first row of q into rec; ENOTFOUND, saying missing, when there was
 * none (rec untouched). */
static int
get_record(const struct store_core *c, struct store_query *q,
	   record_reader read, void *rec, const char *what, const char *missing,
	   custody_err *err)
{
	struct one_record one = { c, read, rec };
	int r;

	q->each_row = first_row;
	q->arg = &one;
	if ((r = run(c, q, what, err)) == CUSTODY_OK && q->rows == 0)
		r = custody_err_set(err, CUSTODY_ENOTFOUND, "%s", missing);
	return r;
}

/* A kind of record a list reads: custody/store.h's lists. */
struct list_kind {
	enum store_sql sql;
	record_reader read;
	size_t elem;			/* the record's size */
	void (*clear)(void *rec);	/* NULL: nothing to free inside */
	const char *what;		/* "cannot list the assignments" */
};

struct record_list {
	const struct store_core *c;
	const struct list_kind *kind;
	const char *what;
	char *items;
	size_t count;
	size_t cap;
};

static int
list_row(void *arg, const struct store_row *row, custody_err *err)
{
	struct record_list *l = arg;
	size_t elem = l->kind->elem;
	int r = CUSTODY_EFAIL;

	if (l->count == l->cap) {
		size_t ncap = l->cap == 0 ? 8 : l->cap * 2;
		char *grown = realloc(l->items, ncap * elem);

		if (grown == NULL)
			return custody_err_set(err, CUSTODY_EFAIL,
					       "%s: out of memory", l->what);
		l->items = grown;
		l->cap = ncap;
	}
	r = l->kind->read(l->c, row, l->items + l->count * elem, err);
	if (r == CUSTODY_OK)
		l->count++;
	return r;
}

/* ------------------------------------------------------------ decoding */

/* Copies a text column into a fixed buffer; -1 when it does not fit (or
 * holds a NUL). */
static int
row_fixed(const struct store_row *row, int col, char *dst, size_t size)
{
	size_t len;
	const char *text = row->reader->text(row, col, &len);

	memset(dst, 0, size);
	if (text == NULL)
		return 0;
	if (len >= size || strlen(text) != len)
		return -1;
	memcpy(dst, text, len);
	return 0;
}

/* Copies a text column into a fixed buffer, cutting what does not fit
 * (or follows a NUL); *cut is set when it did. */
static void
row_cut(const struct store_row *row, int col, char *dst, size_t size, int *cut)
{
	size_t len;
	const char *text = row->reader->text(row, col, &len);

	memset(dst, 0, size);
	if (text == NULL)
		return;
	if (strlen(text) != len) {
		len = strlen(text);
		*cut = 1;
	}
	if (len >= size) {
		len = size - 1;
		*cut = 1;
	}
	memcpy(dst, text, len);
}

/* NULL stays NULL; -1 when out of memory.  *cut (if cut is not NULL) is
 * set when the text holds a NUL. */
static int
row_strdup(const struct store_row *row, int col, char **dst, int *cut)
{
	size_t len;
	const char *text = row->reader->text(row, col, &len);

	*dst = NULL;
	if (text == NULL)
		return 0;
	if (cut != NULL && strlen(text) != len)
		*cut = 1;
	*dst = strdup(text);
	return *dst == NULL ? -1 : 0;
}

static int64_t
row_int(const struct store_row *row, int col)
{
	return row->reader->integer(row, col);
}

static int
row_bytes(const struct store_row *row, int col, unsigned char **dst,
	  size_t *len)
{
	return row->reader->bytes(row, col, dst, len);
}

static int
row_slot(const struct store_row *row, int col, custody_slot *slot)
{
	if (row_fixed(row, col, slot->thumbprint, sizeof(slot->thumbprint)) != 0)
		return -1;
	slot->effective = slot->thumbprint[0] != '\0' ? row_int(row, col + 1) : 0;
	return 0;
}

/* ------------------------------------------------------------ schema */

static int
read_flag(void *arg, const struct store_row *row, custody_err *err)
{
	(void)err;
	*(int *)arg = row->reader->flag(row, 0);
	return CUSTODY_OK;
}

static int
read_integer(void *arg, const struct store_row *row, custody_err *err)
{
	(void)err;
	*(int64_t *)arg = row_int(row, 0);
	return CUSTODY_OK;
}

/* 0 for a store without the schema_version table. */
static int
read_version(const struct store_core *c, int64_t *version, custody_err *err)
{
	struct store_query q = { .sql = STORE_SQL_SCHEMA_EXISTS };
	char what[WHAT_MAX];
	int exists = 0;
	int r;

	*version = 0;
	q.each_row = read_flag;
	q.arg = &exists;
	if ((r = run(c, &q, say(what, "cannot read the schema of store %s",
				where(c)), err)) != CUSTODY_OK ||
	    q.rows != 1 || !exists)
		return r;
	memset(&q, 0, sizeof(q));
	q.sql = STORE_SQL_SCHEMA_VERSION;
	q.each_row = read_integer;
	q.arg = version;
	return run(c, &q, say(what, "cannot read the schema version of store %s",
			      where(c)), err);
}

/* The version read (0 if none), refused when newer than this build's. */
static int
read_known_version(const struct store_core *c, int64_t *version,
		   custody_err *err)
{
	int r;

	if ((r = read_version(c, version, err)) != CUSTODY_OK)
		return r;
	if (*version > CUSTODY_STORE_SCHEMA_VERSION) {
		custody_err_set(err, CUSTODY_EFAIL,
				"cannot open store %s: its schema version %lld is "
				"newer than version %d of this build", where(c),
				(long long)*version, CUSTODY_STORE_SCHEMA_VERSION);
		custody_err_hint(err, "upgrade custody on this node");
		return CUSTODY_EFAIL;
	}
	return CUSTODY_OK;
}

/* A backend that lacks a statement is a bug of this build: said at open,
 * not at the first call that needs it. */
static int
check_statements(const struct store_core *c, custody_err *err)
{
	int i;

	for (i = 0; i < STORE_SQL_COUNT; i++)
		if (statement(c->backend, (enum store_sql)i) == NULL)
			return custody_err_set(err, CUSTODY_EFAIL,
					       "cannot open store %s: the %s "
					       "backend has no statement %d",
					       where(c), c->backend->name, i);
	for (i = 1; i <= CUSTODY_STORE_SCHEMA_VERSION; i++)
		if (c->backend->migrations[i] == NULL)
			return custody_err_set(err, CUSTODY_EFAIL,
					       "cannot open store %s: the %s "
					       "backend has no schema version %d",
					       where(c), c->backend->name, i);
	return CUSTODY_OK;
}

static int
upgrade_to(const struct store_core *c, int v, custody_err *err)
{
	struct store_query q = { .sql = STORE_SQL_RECORD_VERSION };
	char what[WHAT_MAX];
	int r;

	if ((r = c->backend->run_script(c->conn, c->backend->migrations[v],
				  say(what, "cannot upgrade store %s to schema "
				      "version %d", where(c), v), err)) != CUSTODY_OK)
		return r;
	v_int(&q, v);
	v_int(&q, (int64_t)time(NULL));
	return run(c, &q, say(what, "cannot record schema version %d in store %s",
			      v, where(c)), err);
}

int
store_core_no_store(const char *where, custody_err *err)
{
	custody_err_set(err, CUSTODY_EFAIL, "no store at %s: nothing has been "
			"written to it yet", where);
	custody_err_hint(err, "the first command that writes makes it (custody "
			 "import --path FILE); or name another store with --store");
	return CUSTODY_EFAIL;
}

int
store_core_migrate(const struct store_core *c, int create, int *made,
		   custody_err *err)
{
	struct store_query q = { .sql = STORE_SQL_CREATE_SCHEMA_VERSION };
	char what[WHAT_MAX];
	int64_t version = 0;
	int in_tx = 0;
	int r, v;

	*made = 0;
	if ((r = check_statements(c, err)) != CUSTODY_OK ||
	    (r = read_known_version(c, &version, err)) != CUSTODY_OK ||
	    version == CUSTODY_STORE_SCHEMA_VERSION)
		goto out;
	if (version == 0 && !create) {
		r = store_core_no_store(where(c), err);
		goto out;
	}
	if ((r = c->backend->begin(c->conn, err)) != CUSTODY_OK)
		goto out;
	in_tx = 1;
	if ((c->backend->lock_schema != NULL &&
	     (r = c->backend->lock_schema(c->conn, err)) != CUSTODY_OK) ||
	    (r = run(c, &q, say(what, "cannot create the schema_version table "
				 "on store %s", where(c)), err)) != CUSTODY_OK)
		goto out;
	/* Another process may have upgraded it meanwhile. */
	if ((r = read_known_version(c, &version, err)) != CUSTODY_OK)
		goto out;
	for (v = (int)version + 1; v <= CUSTODY_STORE_SCHEMA_VERSION; v++)
		if ((r = upgrade_to(c, v, err)) != CUSTODY_OK)
			goto out;
	in_tx = 0;	/* a failed commit has rolled back */
	if ((r = c->backend->commit(c->conn, err)) == CUSTODY_OK)
		*made = version == 0;
out:
	if (in_tx)
		c->backend->rollback(c->conn);
	return r;
}

int
store_core_unmake(const struct store_core *c, custody_err *err)
{
	struct store_query q = { .sql = STORE_SQL_COUNT_ROWS };
	char what[WHAT_MAX];
	int64_t rows = -1;
	int r;

	if (c->backend->unmake == NULL)
		return CUSTODY_OK;
	if ((r = c->backend->begin(c->conn, err)) != CUSTODY_OK)
		return r;
	q.each_row = read_integer;
	q.arg = &rows;
	/* Under the write lock: no other process writes between the count
	 * and the removal. */
	if ((r = run(c, &q, say(what, "cannot count the rows of store %s",
				where(c)), err)) == CUSTODY_OK && rows == 0)
		r = c->backend->unmake(c->conn, err);
	c->backend->rollback(c->conn);
	return r;
}

/* ------------------------------------------------------------ assignments */

static int
read_assignment(const struct store_core *c, const struct store_row *row,
		void *out, custody_err *err)
{
	custody_assignment *a = out;

	memset(a, 0, sizeof(*a));
	if (row_fixed(row, 0, a->type, sizeof(a->type)) != 0 ||
	    row_fixed(row, 1, a->identity, sizeof(a->identity)) != 0 ||
	    row_slot(row, 2, &a->current) != 0 ||
	    row_slot(row, 4, &a->previous) != 0 ||
	    row_slot(row, 6, &a->pending) != 0) {
		memset(a, 0, sizeof(*a));
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot read an assignment from store %s: "
				       "a name or thumbprint is too long", where(c));
	}
	a->version = row_int(row, 8);
	return CUSTODY_OK;
}

int
store_core_get_assignment(const struct store_core *c, const char *type,
			  const char *identity, custody_assignment *out,
			  custody_err *err)
{
	struct store_query q = { .sql = STORE_SQL_GET_ASSIGNMENT };
	char what[WHAT_MAX];
	char missing[WHAT_MAX];

	v_text(&q, type);
	v_text(&q, identity);
	say(what, "cannot read the assignment of type %s (identity %s) from "
	    "store %s", type, identity, where(c));
	say(missing, "no certificate is assigned for type %s (identity %s)",
	    type, identity);
	return get_record(c, &q, read_assignment, out, what, missing, err);
}

static int
assignment_conflict(const struct store_core *c, const custody_assignment *a,
		    custody_err *err)
{
	custody_err_set(err, CUSTODY_ECONFLICT,
			"cannot save the assignment of type %s (identity %s) in "
			"store %s: assignment changed concurrently", a->type,
			a->identity, where(c));
	custody_err_hint(err, "read it again and retry");
	return CUSTODY_ECONFLICT;
}

/* "TYPE/IDENTITY", the payload of an assignment's notification. */
static int
notify_assignment(const struct store_core *c, const custody_assignment *a,
		  custody_err *err)
{
	char payload[2 * CUSTODY_NAME_MAX + 2];

	snprintf(payload, sizeof(payload), "%s/%s", a->type, a->identity);
	return notify(c, payload, err);
}

/* An empty record: delete the row, if it is still the one that was read. */
static int
delete_assignment(const struct store_core *c, custody_assignment *a,
		  custody_err *err)
{
	struct store_query q = { .sql = STORE_SQL_DELETE_ASSIGNMENT };
	char what[WHAT_MAX];
	int r;

	v_text(&q, a->type);
	v_text(&q, a->identity);
	say(what, "cannot delete the assignment of type %s (identity %s) from "
	    "store %s", a->type, a->identity, where(c));
	if (a->version == 0) {
		/* Nothing was read and nothing is to be written: the row must
		 * still be absent. */
		q.sql = STORE_SQL_FIND_ASSIGNMENT;
		q.each_row = count_row;
		if ((r = run(c, &q, what, err)) == CUSTODY_OK && q.rows != 0)
			r = assignment_conflict(c, a, err);
		return r;
	}
	v_int(&q, a->version);
	if ((r = run(c, &q, what, err)) != CUSTODY_OK)
		return r;
	if (q.changes == 0)
		return assignment_conflict(c, a, err);
	if ((r = notify_assignment(c, a, err)) != CUSTODY_OK)
		return r;
	a->version = 0;
	return CUSTODY_OK;
}

int
store_core_put_assignment(const struct store_core *c, custody_assignment *a,
			  custody_err *err)
{
	int insert = a->version == 0;
	struct store_query q = { .sql = insert ? STORE_SQL_INSERT_ASSIGNMENT :
					  STORE_SQL_UPDATE_ASSIGNMENT };
	char what[WHAT_MAX];
	int r;

	if (custody_assign_is_empty(a))
		return delete_assignment(c, a, err);
	v_text(&q, a->type);
	v_text(&q, a->identity);
	v_slot(&q, &a->current);
	v_slot(&q, &a->previous);
	v_slot(&q, &a->pending);
	if (!insert)
		v_int(&q, a->version);
	r = run(c, &q, say(what, "cannot save the assignment of type %s "
			    "(identity %s) in store %s", a->type, a->identity,
			    where(c)), err);
	/* A row inserted meanwhile (in any case): a conflict. */
	if (lost_race(r, insert, &q))
		return assignment_conflict(c, a, err);
	if (r != CUSTODY_OK || (r = notify_assignment(c, a, err)) != CUSTODY_OK)
		return r;
	a->version = insert ? 1 : a->version + 1;
	return CUSTODY_OK;
}

/* ------------------------------------------------------------ certificates */

static int
alt_names_to_json(const struct store_core *c, const custody_cert_record *rec,
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
					    rec->thumbprint, where(c), i + 1);
			goto out;
		}
		name = json_string(rec->alt_names[i]);
		if (name == NULL) {
			r = custody_err_set(err, CUSTODY_EUSAGE,
					    "cannot save certificate %s in store %s: "
					    "alternative name %zu is not UTF-8",
					    rec->thumbprint, where(c), i + 1);
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
			    rec->thumbprint, where(c));
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
read_cert(const struct store_core *c, const struct store_row *row, void *out,
	  custody_err *err)
{
	custody_cert_record *rec = out;
	int r = CUSTODY_EFAIL;
	size_t len;

	memset(rec, 0, sizeof(*rec));
	if (row_fixed(row, 0, rec->thumbprint, sizeof(rec->thumbprint)) != 0 ||
	    row_fixed(row, 1, rec->sha256, sizeof(rec->sha256)) != 0 ||
	    row_fixed(row, 8, rec->key_algorithm, sizeof(rec->key_algorithm)) != 0 ||
	    row_fixed(row, 9, rec->key_id, sizeof(rec->key_id)) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read a certificate from store %s: a "
				    "fingerprint, key algorithm or key id is too long",
				    where(c));
		goto out;
	}
	if (alt_names_from_json(row->reader->text(row, 7, &len), rec) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read certificate %s from store %s: its "
				    "alternative names are not a JSON array of "
				    "strings (or out of memory)", rec->thumbprint,
				    where(c));
		goto out;
	}
	rec->not_before = row_int(row, 5);
	rec->not_after = row_int(row, 6);
	if (row_strdup(row, 2, &rec->subject, NULL) != 0 ||
	    row_strdup(row, 3, &rec->issuer, NULL) != 0 ||
	    row_strdup(row, 4, &rec->serial, NULL) != 0 ||
	    row_strdup(row, 10, &rec->key_uri, NULL) != 0 ||
	    row_strdup(row, 11, &rec->label, NULL) != 0 ||
	    row_bytes(row, 12, &rec->der, &rec->der_len) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read certificate %s from store %s: out "
				    "of memory", rec->thumbprint, where(c));
		goto out;
	}
	r = CUSTODY_OK;
out:
	if (r != CUSTODY_OK)
		custody_cert_record_clear(rec);
	return r;
}

int
store_core_put_cert(const struct store_core *c, const custody_cert_record *rec,
		    custody_err *err)
{
	struct store_query q = { .sql = STORE_SQL_PUT_CERT };
	char what[WHAT_MAX];
	char *alt_names = NULL;
	int r;

	if (rec->der_len > (size_t)INT32_MAX)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot save certificate %s in store %s: its "
				       "DER is too large", rec->thumbprint, where(c));
	if ((r = alt_names_to_json(c, rec, &alt_names, err)) != CUSTODY_OK)
		return r;
	v_text(&q, rec->thumbprint);
	v_text(&q, rec->sha256);
	v_text(&q, rec->subject);
	v_text(&q, rec->issuer);
	v_text(&q, rec->serial);
	v_int(&q, rec->not_before);
	v_int(&q, rec->not_after);
	v_text(&q, alt_names);
	v_text(&q, rec->key_algorithm);
	v_text(&q, rec->key_id);
	v_text(&q, rec->key_uri);
	v_text(&q, rec->label);
	v_bytes(&q, rec->der, rec->der_len);
	v_int(&q, (int64_t)time(NULL));
	r = run(c, &q, say(what, "cannot save certificate %s in store %s",
			    rec->thumbprint, where(c)), err);
	if (r != CUSTODY_OK && q.unique_violation)
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot save certificate %s in store %s: another "
				    "certificate has SHA-256 fingerprint %s",
				    rec->thumbprint, where(c), rec->sha256);
	else if (r == CUSTODY_OK)
		r = notify(c, "certificates", err);
	free(alt_names);
	return r;
}

int
store_core_get_cert(const struct store_core *c, const char *thumbprint,
		    custody_cert_record *out, custody_err *err)
{
	struct store_query q = { .sql = STORE_SQL_GET_CERT };
	char what[WHAT_MAX];
	char missing[WHAT_MAX];

	v_text(&q, thumbprint);
	say(what, "cannot read certificate %s from store %s", thumbprint,
	    where(c));
	say(missing, "no certificate with thumbprint %s in store %s",
	    thumbprint, where(c));
	return get_record(c, &q, read_cert, out, what, missing, err);
}

/* Deletes the row of thumbprint with statement sql; ENOTFOUND (notfound,
 * formatted with thumbprint and the store) when there was none. */
static int
delete_row(const struct store_core *c, enum store_sql sql,
	   const char *thumbprint, const char *what, const char *notfound,
	   const char *payload, custody_err *err)
{
	struct store_query q = { .sql = sql };
	int r;

	v_text(&q, thumbprint);
	if ((r = run(c, &q, what, err)) != CUSTODY_OK)
		return r;
	if (q.changes == 0)
		return custody_err_set(err, CUSTODY_ENOTFOUND, "%s %s in store %s",
				       notfound, thumbprint, where(c));
	return notify(c, payload, err);
}

int
store_core_delete_cert(const struct store_core *c, const char *thumbprint,
		       custody_err *err)
{
	char what[WHAT_MAX];

	return delete_row(c, STORE_SQL_DELETE_CERT, thumbprint,
			  say(what, "cannot delete certificate %s from store %s",
			      thumbprint, where(c)),
			  "no certificate with thumbprint", "certificates", err);
}

/* ------------------------------------------------------------ audit log */

static int
audit_conflict(const struct store_core *c, const custody_audit_entry *e,
	       custody_err *err)
{
	custody_err_set(err, CUSTODY_ECONFLICT,
			"cannot append entry %lld to the audit log of store %s: "
			"audit log changed concurrently", (long long)e->seq,
			where(c));
	custody_err_hint(err, "read its head again and retry");
	return CUSTODY_ECONFLICT;
}

/* The head moves from (seq - 1, prev_hash) to (seq, hash), or not at
 * all: this is the chain's optimistic concurrency. */
static int
move_audit_head(const struct store_core *c, const custody_audit_entry *e,
		custody_err *err)
{
	struct store_query q = { .sql = STORE_SQL_MOVE_AUDIT_HEAD };
	char what[WHAT_MAX];
	int r;

	v_int(&q, e->seq);
	v_text(&q, e->hash);
	v_int(&q, e->seq - 1);
	v_text(&q, e->prev_hash);
	if ((r = run(c, &q, say(what, "cannot move the audit head of store %s",
				where(c)), err)) != CUSTODY_OK)
		return r;
	return q.changes == 1 ? CUSTODY_OK : audit_conflict(c, e, err);
}

int
store_core_append_audit(const struct store_core *c,
			const custody_audit_entry *e, custody_err *err)
{
	struct store_query q = { .sql = STORE_SQL_INSERT_AUDIT };
	char what[WHAT_MAX];
	int r;

	if ((r = move_audit_head(c, e, err)) != CUSTODY_OK)
		return r;
	v_int(&q, e->seq);
	v_int(&q, e->time);
	v_text(&q, e->node);
	v_text(&q, e->actor);
	v_text(&q, e->action);
	v_text(&q, e->type);
	v_text(&q, e->identity);
	v_text(&q, e->thumbprint);
	v_text(&q, e->previous_thumbprint);
	v_text(&q, e->detail);
	v_text(&q, e->prev_hash);
	v_text(&q, e->hash);
	r = run(c, &q, say(what, "cannot append entry %lld to the audit log of "
			    "store %s", (long long)e->seq, where(c)), err);
	if (lost_race(r, 1, &q))
		return audit_conflict(c, e, err);
	if (r != CUSTODY_OK)
		return r;
	return notify(c, c->audit_is_report ? "reports" : "audit", err);	/* see notify */
}

/*
 * One row of the audit table.  A field that does not fit its record (only
 * an edit of the table makes one) is cut, and the entry's hash is blanked,
 * so that verification names the entry as edited instead of failing to
 * read the log.
 */
static int
read_audit(const struct store_core *c, const struct store_row *row, void *out,
	   custody_err *err)
{
	custody_audit_entry *e = out;
	int cut = 0;

	memset(e, 0, sizeof(*e));
	e->seq = row_int(row, 0);
	e->time = row_int(row, 1);
	row_cut(row, 2, e->node, sizeof(e->node), &cut);
	row_cut(row, 3, e->actor, sizeof(e->actor), &cut);
	row_cut(row, 4, e->action, sizeof(e->action), &cut);
	row_cut(row, 5, e->type, sizeof(e->type), &cut);
	row_cut(row, 6, e->identity, sizeof(e->identity), &cut);
	row_cut(row, 7, e->thumbprint, sizeof(e->thumbprint), &cut);
	row_cut(row, 8, e->previous_thumbprint, sizeof(e->previous_thumbprint),
		&cut);
	row_cut(row, 10, e->prev_hash, sizeof(e->prev_hash), &cut);
	row_cut(row, 11, e->hash, sizeof(e->hash), &cut);
	if (row_strdup(row, 9, &e->detail, &cut) != 0)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot read audit entry %lld from store %s: "
				       "out of memory", (long long)e->seq, where(c));
	if (cut)
		e->hash[0] = '\0';
	return CUSTODY_OK;
}

int
store_core_last_audit(const struct store_core *c, custody_audit_entry *out,
		      custody_err *err)
{
	struct store_query q = { .sql = STORE_SQL_LAST_AUDIT };
	char what[WHAT_MAX];
	char missing[WHAT_MAX];

	say(what, "cannot read the audit log of store %s", where(c));
	say(missing, "the audit log of store %s is empty", where(c));
	return get_record(c, &q, read_audit, out, what, missing, err);
}

int
store_core_find_audit(const struct store_core *c, const char *action,
		      const char *type, const char *identity,
		      const char *thumbprint, custody_audit_entry *out,
		      custody_err *err)
{
	struct store_query q = { .sql = STORE_SQL_FIND_AUDIT };
	char what[WHAT_MAX];
	char missing[WHAT_MAX];

	v_text(&q, action);
	v_text(&q, type);
	v_text(&q, identity);
	v_text(&q, thumbprint);
	say(what, "cannot read the audit log of store %s", where(c));
	say(missing, "the audit log of store %s has no entry%s%s%s%s%s%s%s%s",
	    where(c), action != NULL ? " of action " : "", action != NULL ? action : "",
	    type != NULL ? " for type " : "", type != NULL ? type : "",
	    identity != NULL ? " at identity " : "", identity != NULL ? identity : "",
	    thumbprint != NULL ? " naming " : "", thumbprint != NULL ? thumbprint : "");
	return get_record(c, &q, read_audit, out, what, missing, err);
}

int
store_core_newest_audit_of(const struct store_core *c, const char *actions,
			   const char *thumbprint, custody_audit_entry *out,
			   custody_err *err)
{
	struct store_query q = { .sql = STORE_SQL_NEWEST_AUDIT_OF };
	char what[WHAT_MAX];
	char missing[WHAT_MAX];

	v_text(&q, actions);
	v_text(&q, thumbprint);
	say(what, "cannot read the audit log of store %s", where(c));
	say(missing, "the audit log of store %s has no entry of action %s%s%s",
	    where(c), actions, thumbprint != NULL ? " naming " : "",
	    thumbprint != NULL ? thumbprint : "");
	return get_record(c, &q, read_audit, out, what, missing, err);
}

struct audit_head {
	int64_t *seq;
	char *hash;
};

static int
read_audit_head(void *arg, const struct store_row *row, custody_err *err)
{
	struct audit_head *head = arg;
	int cut = 0;

	(void)err;
	*head->seq = row_int(row, 0);
	row_cut(row, 1, head->hash, CUSTODY_AUDIT_HASH_HEX + 1, &cut);
	if (cut)
		head->hash[0] = '\0';
	return CUSTODY_OK;
}

int
store_core_audit_head(const struct store_core *c, int64_t *seq, char *hash,
		      custody_err *err)
{
	struct audit_head head = { seq, hash };
	struct store_query q = { .sql = c->backend->in_transaction(c->conn) ?
					  STORE_SQL_AUDIT_HEAD_LOCKED :
					  STORE_SQL_AUDIT_HEAD };
	char what[WHAT_MAX];
	int r;

	q.each_row = read_audit_head;
	q.arg = &head;
	r = run(c, &q, say(what, "cannot read the audit head of store %s",
			    where(c)), err);
	if (r == CUSTODY_OK && q.rows == 0)
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "the audit head of store %s is missing",
				    where(c));
	return r;
}

/* ------------------------------------------------------------ cluster */

static int
read_node(const struct store_core *c, const struct store_row *row, void *out,
	  custody_err *err)
{
	custody_node_record *rec = out;
	int r = CUSTODY_EFAIL;

	memset(rec, 0, sizeof(*rec));
	if (row_fixed(row, 0, rec->name, sizeof(rec->name)) != 0 ||
	    row_fixed(row, 1, rec->state, sizeof(rec->state)) != 0 ||
	    row_fixed(row, 4, rec->admitted_by, sizeof(rec->admitted_by)) != 0 ||
	    row_fixed(row, 10, rec->kek_check, sizeof(rec->kek_check)) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read a node from store %s: a name or "
				    "state is too long", where(c));
		goto out;
	}
	if (row_bytes(row, 2, &rec->transport_spki,
		      &rec->transport_spki_len) != 0 ||
	    row_bytes(row, 3, &rec->kek_wrap, &rec->kek_wrap_len) != 0 ||
	    row_bytes(row, 11, &rec->admission_sig,
		      &rec->admission_sig_len) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read node %s from store %s: out of "
				    "memory", rec->name, where(c));
		goto out;
	}
	rec->enrolled_at = row_int(row, 5);
	rec->admitted_at = row_int(row, 6);
	rec->joined_at = row_int(row, 7);
	rec->last_sync = row_int(row, 8);
	rec->version = row_int(row, 9);
	r = CUSTODY_OK;
out:
	if (r != CUSTODY_OK)
		custody_node_record_clear(rec);
	return r;
}

static int
node_conflict(const struct store_core *c, const custody_node_record *rec,
	      custody_err *err)
{
	custody_err_set(err, CUSTODY_ECONFLICT,
			"cannot save node %s in store %s: node %s changed "
			"concurrently", rec->name, where(c), rec->name);
	custody_err_hint(err, "read it again and retry");
	return CUSTODY_ECONFLICT;
}

int
store_core_put_node(const struct store_core *c, custody_node_record *rec,
		    custody_err *err)
{
	int insert = rec->version == 0;
	struct store_query q = { .sql = insert ? STORE_SQL_INSERT_NODE :
					  STORE_SQL_UPDATE_NODE };
	char what[WHAT_MAX];
	int r;

	v_text(&q, rec->name);
	v_text(&q, rec->state);
	v_bytes_or_null(&q, rec->transport_spki, rec->transport_spki_len);
	v_bytes_or_null(&q, rec->kek_wrap, rec->kek_wrap_len);
	v_text(&q, rec->admitted_by);
	v_int(&q, rec->enrolled_at);
	v_int(&q, rec->admitted_at);
	v_int(&q, rec->joined_at);
	v_int(&q, rec->last_sync);
	v_text(&q, rec->kek_check);
	v_bytes_or_null(&q, rec->admission_sig, rec->admission_sig_len);
	if (!insert)
		v_int(&q, rec->version);
	r = run(c, &q, say(what, "cannot save node %s in store %s", rec->name,
			    where(c)), err);
	if (lost_race(r, insert, &q))
		return node_conflict(c, rec, err);
	if (r != CUSTODY_OK || (r = notify(c, "nodes", err)) != CUSTODY_OK)
		return r;
	rec->version = insert ? 1 : rec->version + 1;
	return CUSTODY_OK;
}

int
store_core_get_node(const struct store_core *c, const char *name,
		    custody_node_record *out, custody_err *err)
{
	struct store_query q = { .sql = STORE_SQL_GET_NODE };
	char what[WHAT_MAX];
	char missing[WHAT_MAX];

	v_text(&q, name);
	say(what, "cannot read node %s from store %s", name, where(c));
	say(missing, "node %s is not in store %s", name, where(c));
	return get_record(c, &q, read_node, out, what, missing, err);
}

static int
read_package(const struct store_core *c, const struct store_row *row, void *out,
	     custody_err *err)
{
	custody_package_record *rec = out;
	int r = CUSTODY_EFAIL;

	memset(rec, 0, sizeof(*rec));
	if (row_fixed(row, 0, rec->thumbprint, sizeof(rec->thumbprint)) != 0 ||
	    row_fixed(row, 1, rec->key_id, sizeof(rec->key_id)) != 0 ||
	    row_fixed(row, 3, rec->kcv, sizeof(rec->kcv)) != 0 ||
	    row_fixed(row, 5, rec->node, sizeof(rec->node)) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read a package from store %s: a "
				    "thumbprint, key id, key check value or node "
				    "is too long", where(c));
		goto out;
	}
	if (row_bytes(row, 2, &rec->wrapped, &rec->wrapped_len) != 0) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot read the package of %s from store %s: "
				    "out of memory", rec->thumbprint, where(c));
		goto out;
	}
	rec->created_at = row_int(row, 4);
	r = CUSTODY_OK;
out:
	if (r != CUSTODY_OK)
		custody_package_record_clear(rec);
	return r;
}

int
store_core_put_package(const struct store_core *c,
		       const custody_package_record *rec, custody_err *err)
{
	struct store_query q = { .sql = STORE_SQL_PUT_PACKAGE };
	char what[WHAT_MAX];
	int r;

	v_text(&q, rec->thumbprint);
	v_text(&q, rec->key_id);
	v_bytes(&q, rec->wrapped, rec->wrapped_len);
	v_text(&q, rec->kcv);
	v_int(&q, rec->created_at);
	v_text(&q, rec->node);
	if ((r = run(c, &q, say(what, "cannot save the package of %s in store "
				 "%s", rec->thumbprint, where(c)), err)) !=
	    CUSTODY_OK)
		return r;
	return notify(c, "packages", err);
}

int
store_core_get_package(const struct store_core *c, const char *thumbprint,
		       custody_package_record *out, custody_err *err)
{
	struct store_query q = { .sql = STORE_SQL_GET_PACKAGE };
	char what[WHAT_MAX];
	char missing[WHAT_MAX];

	v_text(&q, thumbprint);
	say(what, "cannot read the package of %s from store %s", thumbprint,
	    where(c));
	say(missing, "no package for certificate %s in store %s",
	    thumbprint, where(c));
	return get_record(c, &q, read_package, out, what, missing, err);
}

int
store_core_delete_package(const struct store_core *c, const char *thumbprint,
			  custody_err *err)
{
	char what[WHAT_MAX];

	return delete_row(c, STORE_SQL_DELETE_PACKAGE, thumbprint,
			  say(what, "cannot delete the package of %s from store %s",
			      thumbprint, where(c)),
			  "no package for certificate", "packages", err);
}

int
store_core_put_report(const struct store_core *c,
		      const custody_report_record *rec, custody_err *err)
{
	struct store_query q = { .sql = STORE_SQL_PUT_REPORT };
	char what[WHAT_MAX];
	int r;

	v_text(&q, rec->node);
	v_text(&q, rec->thumbprint);
	v_bool(&q, rec->held);
	v_text(&q, rec->detail);
	v_int(&q, rec->time);
	if ((r = run(c, &q, say(what, "cannot save the report of node %s in "
				 "store %s", rec->node, where(c)), err)) !=
	    CUSTODY_OK)
		return r;
	return notify(c, "reports", err);
}

static int
read_report(const struct store_core *c, const struct store_row *row, void *out,
	    custody_err *err)
{
	custody_report_record *rec = out;
	int cut = 0;

	memset(rec, 0, sizeof(*rec));
	if (row_fixed(row, 0, rec->node, sizeof(rec->node)) != 0 ||
	    row_fixed(row, 1, rec->thumbprint, sizeof(rec->thumbprint)) != 0)
		return custody_err_set(err, CUSTODY_EFAIL,
				       "cannot read a report from store %s: a "
				       "node or thumbprint is too long", where(c));
	rec->held = row->reader->flag(row, 2);
	row_cut(row, 3, rec->detail, sizeof(rec->detail), &cut);
	rec->time = row_int(row, 4);
	return CUSTODY_OK;
}

/* ------------------------------------------------------------ facts, tags */

/* A one-column text row into a buffer; too_long set when it does not fit
 * (the buffer is then empty). */
struct text_value {
	char *dst;
	size_t size;
	int too_long;
};

static int
read_text_value(void *arg, const struct store_row *row, custody_err *err)
{
	struct text_value *t = arg;

	(void)err;
	if (row_fixed(row, 0, t->dst, t->size) != 0) {
		t->dst[0] = '\0';
		t->too_long = 1;
	}
	return CUSTODY_OK;
}

int
store_core_get_meta(const struct store_core *c, const char *name, char *value,
		    size_t size, custody_err *err)
{
	struct text_value t = { value, size, 0 };
	struct store_query q = { .sql = STORE_SQL_GET_META,
				 .each_row = read_text_value, .arg = &t };
	char what[WHAT_MAX];
	int r;

	v_text(&q, name);
	if ((r = run(c, &q, say(what, "cannot read cluster fact %s from store %s",
				 name, where(c)), err)) != CUSTODY_OK)
		return r;
	if (q.rows == 0)
		return custody_err_set(err, CUSTODY_ENOTFOUND,
				       "cluster fact %s is not set in store %s",
				       name, where(c));
	if (t.too_long)
		return custody_err_set(err, CUSTODY_EFAIL, "%s: it is too long",
				       what);
	return CUSTODY_OK;
}

int
store_core_put_meta(const struct store_core *c, const char *name,
		    const char *value, int replace, custody_err *err)
{
	struct store_query q = { .sql = replace ? STORE_SQL_REPLACE_META :
					  STORE_SQL_INSERT_META };
	char what[WHAT_MAX];
	int r;

	v_text(&q, name);
	v_text(&q, value);
	r = run(c, &q, say(what, "cannot save cluster fact %s in store %s",
			    name, where(c)), err);
	if (r != CUSTODY_OK && q.unique_violation)
		return custody_err_set(err, CUSTODY_ECONFLICT,
				       "cannot save cluster fact %s: it is already "
				       "set in store %s", name, where(c));
	if (r != CUSTODY_OK)
		return r;
	return notify(c, c->meta_is_report ? "reports" : "cluster", err);	/* see notify */
}

int
store_core_bump_generation(const struct store_core *c, custody_err *err)
{
	struct store_query q = { .sql = STORE_SQL_BUMP_GENERATION };
	char what[WHAT_MAX];

	return run(c, &q, say(what, "cannot count the change in store %s",
			      where(c)), err);
}

int
store_core_generation(const struct store_core *c, int64_t *generation,
		      custody_err *err)
{
	struct store_query q = { .sql = STORE_SQL_GET_GENERATION,
				 .each_row = read_integer, .arg = generation };
	char what[WHAT_MAX];

	*generation = 0;	/* a store never changed has none */
	return run(c, &q, say(what, "cannot read the generation of store %s",
			      where(c)), err);
}

struct tag_lister {
	int (*each)(void *arg, const char *kind, const char *name,
		    const char *tag, custody_err *err);
	void *arg;
};

static int
list_one_tag(void *arg, const struct store_row *row, custody_err *err)
{
	struct tag_lister *l = arg;
	char kind[32], name[2 * CUSTODY_NAME_MAX + 2], tag[CUSTODY_TAG_HEX + 1];

	/* A row that cannot be a tag of custody's is left out: the row it
	 * would vouch for then has none, which its check says. */
	if (row_fixed(row, 0, kind, sizeof(kind)) != 0 ||
	    row_fixed(row, 1, name, sizeof(name)) != 0 ||
	    row_fixed(row, 2, tag, sizeof(tag)) != 0)
		return CUSTODY_OK;
	return l->each(l->arg, kind, name, tag, err);
}

int
store_core_list_tags(const struct store_core *c,
		     int (*each)(void *arg, const char *kind, const char *name,
				 const char *tag, custody_err *err),
		     void *arg, custody_err *err)
{
	struct tag_lister l = { each, arg };
	struct store_query q = { .sql = STORE_SQL_LIST_TAGS,
				 .each_row = list_one_tag, .arg = &l };
	char what[WHAT_MAX];

	return run(c, &q, say(what, "cannot read the integrity tags of store %s",
			      where(c)), err);
}

int
store_core_get_tag(const struct store_core *c, const char *kind,
		   const char *name, char tag[CUSTODY_TAG_HEX + 1],
		   custody_err *err)
{
	/* Too long to be one: what the checker calls a wrong tag (""). */
	struct text_value t = { tag, CUSTODY_TAG_HEX + 1, 0 };
	struct store_query q = { .sql = STORE_SQL_GET_TAG,
				 .each_row = read_text_value, .arg = &t };
	char what[WHAT_MAX];
	int r;

	tag[0] = '\0';
	v_text(&q, kind);
	v_text(&q, name);
	r = run(c, &q, say(what, "cannot read the integrity tag of %s %s from "
			    "store %s", kind, name, where(c)), err);
	if (r == CUSTODY_OK && q.rows == 0)
		r = custody_err_set(err, CUSTODY_ENOTFOUND,
				    "the %s record %s carries no integrity tag "
				    "in store %s", kind, name, where(c));
	return r;
}

int
store_core_put_tag(const struct store_core *c, const char *kind,
		   const char *name, const char *tag, custody_err *err)
{
	struct store_query q = { .sql = tag != NULL ? STORE_SQL_PUT_TAG :
					  STORE_SQL_DELETE_TAG };
	char what[WHAT_MAX];

	v_text(&q, kind);
	v_text(&q, name);
	if (tag != NULL)
		v_text(&q, tag);
	return run(c, &q, say(what, "cannot save the integrity tag of %s %s in "
			       "store %s", kind, name, where(c)), err);
}

/* ------------------------------------------------------------ lists */

static const struct list_kind list_kinds[] = {
	[STORE_LIST_ASSIGNMENTS] = { STORE_SQL_LIST_ASSIGNMENTS, read_assignment,
				     sizeof(custody_assignment), NULL,
				     "cannot list the assignments" },
	[STORE_LIST_CERTS] = { STORE_SQL_LIST_CERTS, read_cert,
			       sizeof(custody_cert_record), store_clear_cert,
			       "cannot list the certificates" },
	[STORE_LIST_CERTS_OF] = { STORE_SQL_LIST_CERTS_OF, read_cert,
				  sizeof(custody_cert_record), store_clear_cert,
				  "cannot list the certificates" },
	[STORE_LIST_AUDIT] = { STORE_SQL_LIST_AUDIT, read_audit,
			       sizeof(custody_audit_entry), store_clear_audit,
			       "cannot read the audit log" },
	[STORE_LIST_NODES] = { STORE_SQL_LIST_NODES, read_node,
			       sizeof(custody_node_record), store_clear_node,
			       "cannot list the nodes" },
	[STORE_LIST_PACKAGES] = { STORE_SQL_LIST_PACKAGES, read_package,
				  sizeof(custody_package_record),
				  store_clear_package,
				  "cannot list the packages" },
	[STORE_LIST_PACKAGES_OF] = { STORE_SQL_LIST_PACKAGES_OF, read_package,
				     sizeof(custody_package_record),
				     store_clear_package,
				     "cannot list the packages" },
	[STORE_LIST_REPORTS] = { STORE_SQL_LIST_REPORTS, read_report,
				 sizeof(custody_report_record), NULL,
				 "cannot list the reports" },
};

int
store_core_list(const struct store_core *c, enum store_list list,
		const struct store_value *filter, void **out, size_t *n,
		custody_err *err)
{
	const struct list_kind *kind = &list_kinds[list];
	struct store_query q = { .sql = kind->sql };
	char what[WHAT_MAX];
	struct record_list l = { c, kind, what, NULL, 0, 0 };
	int r;
	size_t i;

	if (filter != NULL)
		q.values[q.n_values++] = *filter;
	q.each_row = list_row;
	q.arg = &l;
	if ((r = run(c, &q, say(what, "%s of store %s", kind->what, where(c)),
		     err)) != CUSTODY_OK) {
		for (i = 0; kind->clear != NULL && i < l.count; i++)
			kind->clear(l.items + i * kind->elem);
		free(l.items);
		return r;
	}
	*out = l.items;
	*n = l.count;
	return CUSTODY_OK;
}
