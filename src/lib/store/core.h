/*
 * store/core.h — the store's records, once for every backend (private to
 * libcustody, used by store/store.c only; see store/backend.h).
 *
 * Each function runs its statements through c's backend and connection.  The
 * arguments are what store/store.c checked: non-NULL pointers, names of at
 * most CUSTODY_NAME_MAX characters, writes inside a transaction.  The
 * semantics are custody/store.h's; err names the store by its backend's where().
 */
#ifndef CUSTODY_STORE_CORE_H
#define CUSTODY_STORE_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "store/backend.h"

/* A store's backend and its connection, as store/store.c keeps them. */
struct store_core {
	const struct custody_store_backend *backend;
	struct store_conn *conn;
	/* The audit entry being appended goes with no change members
	 * follow (a sync's, a repair's): its notification is a report's. */
	int audit_is_report;
	/* The same for a cluster fact: the audit log's tag. */
	int meta_is_report;
};

/* EFAIL: there is no store at where (named as messages name it) yet, and
 * how one is made.  For an open without create that finds none. */
int store_core_no_store(const char *where, custody_err *err);
/* Brings the schema to this build's version; a store with none yet gets
 * it only with create (*made set), else it is an error. */
int store_core_migrate(const struct store_core *c, int create, int *made,
		       custody_err *err);
/* Removes a store that holds nothing but what store_core_migrate made in
 * it (the backend's unmake), in one write transaction; a store written
 * meanwhile, or of a backend without unmake, stays. */
int store_core_unmake(const struct store_core *c, custody_err *err);

/* What custody/store.h's lists list, each into a malloc'ed array of its
 * record. */
enum store_list {
	STORE_LIST_ASSIGNMENTS,	/* custody_assignment                      */
	STORE_LIST_CERTS,	/* custody_cert_record                     */
	STORE_LIST_CERTS_OF,	/* the same, filter: thumbprints "A,B,..." */
	STORE_LIST_AUDIT,	/* custody_audit_entry, filter: since      */
	STORE_LIST_NODES,	/* custody_node_record                     */
	STORE_LIST_PACKAGES,	/* custody_package_record                  */
	STORE_LIST_PACKAGES_OF,	/* the same, filter: thumbprints "A,B,..." */
	STORE_LIST_REPORTS,	/* custody_report_record, filter: the node */
};

/* Every record of the list (filter NULL, or the one value its statement
 * takes) into *out, n of them. */
int store_core_list(const struct store_core *c, enum store_list list,
		    const struct store_value *filter, void **out, size_t *n,
		    custody_err *err);

int store_core_get_assignment(const struct store_core *c, const char *type,
			      const char *identity, custody_assignment *out,
			      custody_err *err);
/* An empty record deletes the row; a changed version is ECONFLICT. */
int store_core_put_assignment(const struct store_core *c, custody_assignment *a,
			      custody_err *err);

int store_core_put_cert(const struct store_core *c,
			const custody_cert_record *rec, custody_err *err);
int store_core_get_cert(const struct store_core *c, const char *thumbprint,
			custody_cert_record *out, custody_err *err);
int store_core_delete_cert(const struct store_core *c, const char *thumbprint,
			   custody_err *err);

/* The audit log: e's fields are all terminated and its seq is >= 1. */
int store_core_append_audit(const struct store_core *c,
			    const custody_audit_entry *e, custody_err *err);
int store_core_last_audit(const struct store_core *c, custody_audit_entry *out,
			  custody_err *err);
/* The newest entry matching every non-NULL argument; ENOTFOUND when none. */
int store_core_find_audit(const struct store_core *c, const char *action,
			  const char *type, const char *identity,
			  const char *thumbprint, custody_audit_entry *out,
			  custody_err *err);
/* The newest entry whose action is one of actions (","-separated), naming
 * thumbprint unless it is NULL; ENOTFOUND when none. */
int store_core_newest_audit_of(const struct store_core *c, const char *actions,
			       const char *thumbprint, custody_audit_entry *out,
			       custody_err *err);
/* Inside a transaction the head is read locked (PostgreSQL: FOR UPDATE),
 * so that concurrent appends queue. */
int store_core_audit_head(const struct store_core *c, int64_t *seq, char *hash,
			  custody_err *err);

/* The cluster (schema 3); put_node gets a known state. */
int store_core_put_node(const struct store_core *c, custody_node_record *rec,
			custody_err *err);
int store_core_get_node(const struct store_core *c, const char *name,
			custody_node_record *out, custody_err *err);
int store_core_put_package(const struct store_core *c,
			   const custody_package_record *rec, custody_err *err);
int store_core_get_package(const struct store_core *c, const char *thumbprint,
			   custody_package_record *out, custody_err *err);
int store_core_delete_package(const struct store_core *c,
			      const char *thumbprint, custody_err *err);
int store_core_put_report(const struct store_core *c,
			  const custody_report_record *rec, custody_err *err);
int store_core_get_meta(const struct store_core *c, const char *name,
			char *value, size_t size, custody_err *err);
int store_core_put_meta(const struct store_core *c, const char *name,
			const char *value, int replace, custody_err *err);

/* Integrity tags (schema 5): one per (kind, name).  get_tag: ENOTFOUND
 * when the row has none; put_tag replaces, and with tag NULL removes, the
 * row's tag. */
/* The generation of the store (custody_store_generation): + 1, inside
 * the write transaction, as its last statement; read: 0 when none. */
int store_core_bump_generation(const struct store_core *c, custody_err *err);
int store_core_generation(const struct store_core *c, int64_t *generation,
			  custody_err *err);
/* Every integrity tag, handed to each in no particular order. */
int store_core_list_tags(const struct store_core *c,
			 int (*each)(void *arg, const char *kind,
				     const char *name, const char *tag,
				     custody_err *err),
			 void *arg, custody_err *err);
int store_core_get_tag(const struct store_core *c, const char *kind,
		       const char *name, char tag[CUSTODY_TAG_HEX + 1],
		       custody_err *err);
int store_core_put_tag(const struct store_core *c, const char *kind,
		       const char *name, const char *tag, custody_err *err);

#endif
