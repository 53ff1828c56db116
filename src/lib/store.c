/* store.c — the store interface (see custody/store.h): checks arguments,
 * keeps track of the write transaction and hands each call to the backend
 * chosen by the URL (see store_backend.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <custody/error.h>
#include <custody/store.h>

#include "store_backend.h"

#define ACCEPTED_FORMS "sqlite:PATH or postgresql://[USER@]HOST[:PORT]/DBNAME"

struct custody_store {
	const struct custody_store_backend *backend;
	void *handle;
	int in_transaction;
};

static int
has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Which backend serves url, and the part of the URL it is given.  Only the
 * scheme of an unknown URL is quoted: the rest may hold a password. */
static int
choose_backend(const char *url, const struct custody_store_backend **backend,
	       const char **location, custody_err *err)
{
	int r = CUSTODY_EUSAGE;
	size_t scheme_len;

	if (url == NULL || url[0] == '\0') {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "no store URL given: use " ACCEPTED_FORMS);
		goto out;
	}
	if (has_prefix(url, "sqlite:")) {
		if (has_prefix(url, "sqlite://") || url[7] == '\0') {
			r = custody_err_set(err, CUSTODY_EUSAGE,
					    "bad store URL \"%s\": use sqlite:PATH "
					    "(for example sqlite:/var/lib/custody/custody.db)",
					    url);
			goto out;
		}
		*backend = &custody_store_sqlite_backend;
		*location = url + 7;
		r = CUSTODY_OK;
		goto out;
	}
	if (has_prefix(url, "postgresql://") || has_prefix(url, "postgres://")) {
		/* libpq takes the whole URL. */
		*backend = &custody_store_pg_backend;
		*location = url;
		r = CUSTODY_OK;
		goto out;
	}
	scheme_len = strcspn(url, ":");
	if (url[scheme_len] == ':')
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "unknown store URL scheme \"%.*s\": use "
				    ACCEPTED_FORMS,
				    scheme_len > 32 ? 32 : (int)scheme_len, url);
	else
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "bad store URL \"%s\": use " ACCEPTED_FORMS,
				    url);
out:
	return r;
}

/* A name fits when it is non-empty and at most CUSTODY_NAME_MAX long. */
static int
check_name(const char *what, const char *name, size_t size, custody_err *err)
{
	size_t len;

	if (name == NULL || name[0] == '\0')
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "bad assignment: the %s is empty", what);
	len = strnlen(name, size);
	if (len > CUSTODY_NAME_MAX || len == size)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "bad assignment: the %s is longer than %d "
				       "characters", what, CUSTODY_NAME_MAX);
	return CUSTODY_OK;
}

static int
check_slot(const char *what, const custody_slot *s, custody_err *err)
{
	if (strnlen(s->thumbprint, sizeof(s->thumbprint)) == sizeof(s->thumbprint))
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "bad assignment: the %s thumbprint is not "
				       "terminated", what);
	return CUSTODY_OK;
}

static int
check_writable(custody_store *st, const char *what, custody_err *err)
{
	if (st == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot %s: no store is open", what);
	if (!st->in_transaction)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot %s: no write transaction is open "
				       "(custody_store_begin comes first)", what);
	return CUSTODY_OK;
}

static int
check_thumbprint(const char *thumbprint, custody_err *err)
{
	if (thumbprint == NULL || thumbprint[0] == '\0')
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "no thumbprint given");
	return CUSTODY_OK;
}

int
custody_store_schema_version(void)
{
	return CUSTODY_STORE_SCHEMA_VERSION;
}

int
custody_store_open(const char *url, custody_store **out, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	const struct custody_store_backend *backend = NULL;
	const char *location = NULL;
	custody_store *st = NULL;

	if (out == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot open the store: nowhere to put it");
		goto out;
	}
	*out = NULL;
	if ((r = choose_backend(url, &backend, &location, err)) != CUSTODY_OK)
		goto out;
	st = calloc(1, sizeof(*st));
	if (st == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "cannot open the store: out of memory");
		goto out;
	}
	st->backend = backend;
	if ((r = backend->open(location, &st->handle, err)) != CUSTODY_OK)
		goto out;
	*out = st;
	st = NULL;
	r = CUSTODY_OK;
out:
	free(st);
	return r;
}

void
custody_store_close(custody_store *st)
{
	if (st == NULL)
		return;
	if (st->in_transaction)
		st->backend->rollback(st->handle);
	st->backend->close(st->handle);
	free(st);
}

int
custody_store_begin(custody_store *st, custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if (st == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot begin a transaction: no store is open");
		goto out;
	}
	if (st->in_transaction) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot begin a transaction: one is already open");
		goto out;
	}
	if ((r = st->backend->begin(st->handle, err)) != CUSTODY_OK)
		goto out;
	st->in_transaction = 1;
	r = CUSTODY_OK;
out:
	return r;
}

int
custody_store_commit(custody_store *st, custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if ((r = check_writable(st, "commit", err)) != CUSTODY_OK)
		goto out;
	/* Committed or rolled back: either way the transaction is over. */
	st->in_transaction = 0;
	r = st->backend->commit(st->handle, err);
out:
	return r;
}

void
custody_store_rollback(custody_store *st)
{
	if (st == NULL || !st->in_transaction)
		return;
	st->in_transaction = 0;
	st->backend->rollback(st->handle);
}

int
custody_store_get_assignment(custody_store *st, const char *type,
			     const char *identity, custody_assignment *out,
			     custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if (st == NULL || out == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot read an assignment: no store or no record");
		goto out;
	}
	if ((r = check_name("type", type, CUSTODY_NAME_MAX + 1, err)) != CUSTODY_OK ||
	    (r = check_name("identity", identity, CUSTODY_NAME_MAX + 1, err)) !=
		    CUSTODY_OK)
		goto out;
	r = st->backend->get_assignment(st->handle, type, identity, out, err);
out:
	return r;
}

int
custody_store_list_assignments(custody_store *st, custody_assignment **out,
			       size_t *n, custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if (st == NULL || out == NULL || n == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot list assignments: no store or no list");
		goto out;
	}
	*out = NULL;
	*n = 0;
	r = st->backend->list_assignments(st->handle, out, n, err);
out:
	return r;
}

int
custody_store_put_assignment(custody_store *st, custody_assignment *a,
			     custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if ((r = check_writable(st, "save the assignment", err)) != CUSTODY_OK)
		goto out;
	if (a == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot save the assignment: no record");
		goto out;
	}
	if ((r = check_name("type", a->type, sizeof(a->type), err)) != CUSTODY_OK ||
	    (r = check_name("identity", a->identity, sizeof(a->identity), err)) !=
		    CUSTODY_OK ||
	    (r = check_slot("current", &a->current, err)) != CUSTODY_OK ||
	    (r = check_slot("previous", &a->previous, err)) != CUSTODY_OK ||
	    (r = check_slot("pending", &a->pending, err)) != CUSTODY_OK)
		goto out;
	if (a->version < 0) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "bad assignment: negative version %lld",
				    (long long)a->version);
		goto out;
	}
	r = st->backend->put_assignment(st->handle, a, err);
out:
	return r;
}

int
custody_store_put_cert(custody_store *st, const custody_cert_record *rec,
		       custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if ((r = check_writable(st, "save the certificate", err)) != CUSTODY_OK)
		goto out;
	if (rec == NULL || rec->thumbprint[0] == '\0' || rec->sha256[0] == '\0' ||
	    rec->der == NULL || rec->der_len == 0 ||
	    (rec->n_alt_names > 0 && rec->alt_names == NULL)) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot save the certificate: the record lacks "
				    "its thumbprint, fingerprint or DER");
		goto out;
	}
	if (strnlen(rec->thumbprint, sizeof(rec->thumbprint)) == sizeof(rec->thumbprint) ||
	    strnlen(rec->sha256, sizeof(rec->sha256)) == sizeof(rec->sha256) ||
	    strnlen(rec->key_algorithm, sizeof(rec->key_algorithm)) ==
		    sizeof(rec->key_algorithm) ||
	    strnlen(rec->key_id, sizeof(rec->key_id)) == sizeof(rec->key_id)) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot save the certificate: a field of the "
				    "record is not terminated");
		goto out;
	}
	r = st->backend->put_cert(st->handle, rec, err);
out:
	return r;
}

int
custody_store_get_cert(custody_store *st, const char *thumbprint,
		       custody_cert_record *out, custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if (st == NULL || out == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot read a certificate: no store or no record");
		goto out;
	}
	if ((r = check_thumbprint(thumbprint, err)) != CUSTODY_OK)
		goto out;
	r = st->backend->get_cert(st->handle, thumbprint, out, err);
out:
	return r;
}

int
custody_store_list_certs(custody_store *st, custody_cert_record **out,
			 size_t *n, custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if (st == NULL || out == NULL || n == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot list certificates: no store or no list");
		goto out;
	}
	*out = NULL;
	*n = 0;
	r = st->backend->list_certs(st->handle, out, n, err);
out:
	return r;
}

int
custody_store_delete_cert(custody_store *st, const char *thumbprint,
			  custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if ((r = check_writable(st, "delete the certificate", err)) != CUSTODY_OK)
		goto out;
	if ((r = check_thumbprint(thumbprint, err)) != CUSTODY_OK)
		goto out;
	r = st->backend->delete_cert(st->handle, thumbprint, err);
out:
	return r;
}

/* ------------------------------------------------------------ audit log */

void
custody_audit_entry_clear(custody_audit_entry *e)
{
	if (e == NULL)
		return;
	free(e->detail);
	memset(e, 0, sizeof(*e));
}

void
custody_audit_entries_free(custody_audit_entry *e, size_t n)
{
	size_t i;

	if (e == NULL)
		return;
	for (i = 0; i < n; i++)
		custody_audit_entry_clear(&e[i]);
	free(e);
}

#define TERMINATED(field) (strnlen((field), sizeof(field)) < sizeof(field))

static int
check_audit_entry(const custody_audit_entry *e, custody_err *err)
{
	if (e == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot append to the audit log: no entry");
	if (!TERMINATED(e->node) || !TERMINATED(e->actor) ||
	    !TERMINATED(e->action) || !TERMINATED(e->type) ||
	    !TERMINATED(e->identity) || !TERMINATED(e->thumbprint) ||
	    !TERMINATED(e->previous_thumbprint) || !TERMINATED(e->prev_hash) ||
	    !TERMINATED(e->hash))
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot append to the audit log: a field of "
				       "the entry is not terminated");
	if (e->seq < 1 || e->action[0] == '\0' ||
	    strlen(e->prev_hash) != CUSTODY_AUDIT_HASH_HEX ||
	    strlen(e->hash) != CUSTODY_AUDIT_HASH_HEX)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot append to the audit log: the entry "
				       "lacks its seq, action or hashes");
	return CUSTODY_OK;
}

int
custody_store_append_audit(custody_store *st, const custody_audit_entry *e,
			   custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if ((r = check_writable(st, "append to the audit log", err)) != CUSTODY_OK ||
	    (r = check_audit_entry(e, err)) != CUSTODY_OK)
		goto out;
	r = st->backend->append_audit(st->handle, e, err);
out:
	return r;
}

int
custody_store_last_audit(custody_store *st, custody_audit_entry *out,
			 custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if (st == NULL || out == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot read the audit log: no store or no record");
		goto out;
	}
	memset(out, 0, sizeof(*out));
	r = st->backend->last_audit(st->handle, out, err);
out:
	return r;
}

int
custody_store_list_audit(custody_store *st, int64_t since,
			 custody_audit_entry **out, size_t *n, custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if (st == NULL || out == NULL || n == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot read the audit log: no store or no list");
		goto out;
	}
	*out = NULL;
	*n = 0;
	r = st->backend->list_audit(st->handle, since, out, n, err);
out:
	return r;
}

int
custody_store_audit_head(custody_store *st, int64_t *seq,
			 char hash[CUSTODY_AUDIT_HASH_HEX + 1], custody_err *err)
{
	int r = CUSTODY_EFAIL;

	if (st == NULL || seq == NULL || hash == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "cannot read the audit head: no store or no record");
		goto out;
	}
	*seq = 0;
	hash[0] = '\0';
	r = st->backend->audit_head(st->handle, seq, hash, err);
out:
	return r;
}

int
custody_store_changed(custody_store *st, int *changed, custody_err *err)
{
	if (st == NULL || changed == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot watch the store: no store or no "
				       "answer");
	*changed = 1;
	if (st->backend->changed == NULL)
		return CUSTODY_OK;
	return st->backend->changed(st->handle, changed, err);
}
