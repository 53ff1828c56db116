/*
 * store/records.c — destructors of the records the store hands out (the
 * audit log's entries, nodes, key packages, lists of certificates).  Key
 * material in them (a wrapped KEK, a wrapped key) is cleansed before it is
 * freed.  And the check of an audit entry's fields.  Each is written once on an untyped record, as store/core.c's
 * lists take it (store/records.h); custody/store.h's names call it.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <custody/audit.h>
#include <custody/records.h>
#include <custody/store.h>

#include "store/records.h"

#define TERMINATED(field) (strnlen((field), sizeof(field)) < sizeof(field))

int
store_check_audit_fields(const custody_audit_entry *e, int hashes,
			 custody_err *err)
{
	if (e == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot append to the audit log: no entry");
	if (!TERMINATED(e->node) || !TERMINATED(e->actor) ||
	    !TERMINATED(e->action) || !TERMINATED(e->type) ||
	    !TERMINATED(e->identity) || !TERMINATED(e->thumbprint) ||
	    !TERMINATED(e->previous_thumbprint) ||
	    (hashes && (!TERMINATED(e->prev_hash) || !TERMINATED(e->hash))))
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot append to the audit log: a field of "
				       "the entry is not terminated");
	return CUSTODY_OK;
}

void
store_clear_cert(void *rec)
{
	custody_cert_record_clear(rec);
}

void
store_clear_audit(void *rec)
{
	custody_audit_entry *e = rec;

	if (e == NULL)
		return;
	free(e->detail);
	memset(e, 0, sizeof(*e));
}

void
store_clear_node(void *rec)
{
	custody_node_record *node = rec;

	if (node == NULL)
		return;
	free(node->transport_spki);
	free(node->admission_sig);
	if (node->kek_wrap != NULL)
		OPENSSL_clear_free(node->kek_wrap, node->kek_wrap_len);
	memset(node, 0, sizeof(*node));
}

void
store_clear_package(void *rec)
{
	custody_package_record *pkg = rec;

	if (pkg == NULL)
		return;
	if (pkg->wrapped != NULL)
		OPENSSL_clear_free(pkg->wrapped, pkg->wrapped_len);
	memset(pkg, 0, sizeof(*pkg));
}

/* ------------------------------------------------ custody/store.h's names */

void
custody_cert_records_free(custody_cert_record *recs, size_t n)
{
	size_t i;

	if (recs == NULL)
		return;
	for (i = 0; i < n; i++)
		custody_cert_record_clear(&recs[i]);
	free(recs);
}

void
custody_audit_entry_clear(custody_audit_entry *e)
{
	store_clear_audit(e);
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

void
custody_node_record_clear(custody_node_record *rec)
{
	store_clear_node(rec);
}

void
custody_node_records_free(custody_node_record *recs, size_t n)
{
	size_t i;

	if (recs == NULL)
		return;
	for (i = 0; i < n; i++)
		custody_node_record_clear(&recs[i]);
	free(recs);
}

void
custody_package_record_clear(custody_package_record *rec)
{
	store_clear_package(rec);
}

void
custody_package_records_free(custody_package_record *recs, size_t n)
{
	size_t i;

	if (recs == NULL)
		return;
	for (i = 0; i < n; i++)
		custody_package_record_clear(&recs[i]);
	free(recs);
}
