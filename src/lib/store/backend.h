/*
 * store/backend.h — what a store backend provides (private to libcustody).
 *
 * store/store.c checks the arguments, keeps track of the write transaction and
 * dispatches every call of custody/store.h through one of these tables.
 * A backend gets only well-formed arguments: non-NULL pointers, type and
 * identity non-empty and at most CUSTODY_NAME_MAX characters, writes only
 * inside a transaction it began.  It fills err itself, naming its store
 * (path or host) in every message.  Adding a backend = one more file with
 * one more table, plus one line in store/store.c's URL dispatch.
 */
#ifndef CUSTODY_STORE_BACKEND_H
#define CUSTODY_STORE_BACKEND_H

#include <stddef.h>
#include <custody/error.h>
#include <custody/records.h>
#include <custody/store.h>

/* The schema version every backend of this build writes. */
#define CUSTODY_STORE_SCHEMA_VERSION 5

struct custody_store_backend {
	const char *name;	/* "sqlite", "postgresql" */

	/* location: what follows the scheme ("PATH" of "sqlite:PATH", the
	 * whole URL for PostgreSQL).  Creates the store when needed and
	 * brings its schema to CUSTODY_STORE_SCHEMA_VERSION. */
	int (*open)(const char *location, void **handle, custody_err *err);
	void (*close)(void *handle);

	int (*begin)(void *handle, custody_err *err);
	/* A read-only snapshot for a few reads that must agree (a row and its
	 * integrity tag), ended with rollback. */
	int (*begin_read)(void *handle, custody_err *err);
	/* On failure the backend has rolled back already. */
	int (*commit)(void *handle, custody_err *err);
	void (*rollback)(void *handle);

	int (*get_assignment)(void *handle, const char *type,
			      const char *identity, custody_assignment *out,
			      custody_err *err);
	int (*list_assignments)(void *handle, custody_assignment **out,
				size_t *n, custody_err *err);
	int (*put_assignment)(void *handle, custody_assignment *a,
			      custody_err *err);

	int (*put_cert)(void *handle, const custody_cert_record *rec,
			custody_err *err);
	int (*get_cert)(void *handle, const char *thumbprint,
			custody_cert_record *out, custody_err *err);
	int (*list_certs)(void *handle, custody_cert_record **out, size_t *n,
			  custody_err *err);
	int (*delete_cert)(void *handle, const char *thumbprint,
			   custody_err *err);

	/* The audit log: see custody/store.h.  append_audit gets an entry
	 * whose fields are all terminated and whose seq is >= 1. */
	int (*append_audit)(void *handle, const custody_audit_entry *e,
			    custody_err *err);
	int (*last_audit)(void *handle, custody_audit_entry *out,
			  custody_err *err);
	int (*list_audit)(void *handle, int64_t since, custody_audit_entry **out,
			  size_t *n, custody_err *err);
	int (*audit_head)(void *handle, int64_t *seq, char *hash,
			  custody_err *err);

	/* custody/store.h custody_store_changed; NULL: always "maybe". */
	int (*changed)(void *handle, int *changed, custody_err *err);
	/* custody/store.h custody_store_wait_change, outside a transaction;
	 * NULL: store/store.c asks changed() every 100 ms. */
	int (*wait_change)(void *handle, int timeout_ms, int *changed,
			   custody_err *err);

	/* The cluster (schema 3): see custody/store.h.  Names and
	 * thumbprints are checked by store/store.c; put_node gets a known state. */
	int (*put_node)(void *handle, custody_node_record *rec,
			custody_err *err);
	int (*get_node)(void *handle, const char *name,
			custody_node_record *out, custody_err *err);
	int (*list_nodes)(void *handle, custody_node_record **out, size_t *n,
			  custody_err *err);
	int (*put_package)(void *handle, const custody_package_record *rec,
			   custody_err *err);
	int (*get_package)(void *handle, const char *thumbprint,
			   custody_package_record *out, custody_err *err);
	int (*list_packages)(void *handle, custody_package_record **out,
			     size_t *n, custody_err *err);
	int (*delete_package)(void *handle, const char *thumbprint,
			      custody_err *err);
	int (*put_report)(void *handle, const custody_report_record *rec,
			  custody_err *err);
	int (*list_reports)(void *handle, const char *node,
			    custody_report_record **out, size_t *n,
			    custody_err *err);
	int (*get_meta)(void *handle, const char *name, char *value,
			size_t size, custody_err *err);
	int (*put_meta)(void *handle, const char *name, const char *value,
			int replace, custody_err *err);

	/* Integrity tags (schema 5): one per (kind, name), see
	 * custody/store.h.  get_tag: ENOTFOUND when the row has none;
	 * put_tag replaces, and with tag NULL removes, the row's tag. */
	int (*get_tag)(void *handle, const char *kind, const char *name,
		       char tag[CUSTODY_TAG_HEX + 1], custody_err *err);
	int (*put_tag)(void *handle, const char *kind, const char *name,
		       const char *tag, custody_err *err);
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
