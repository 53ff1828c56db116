/*
 * store/records.c — destructors of the records the store hands out (the
 * audit log's entries, nodes, key packages, lists of certificates).  Key
 * material in them (a wrapped KEK, a wrapped key) is cleansed before it is
 * freed.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <custody/audit.h>
#include <custody/records.h>
#include <custody/store.h>

#include "store/records.h"

void
store_records_free(void *recs, size_t n, size_t size, void (*clear)(void *rec))
{
	size_t i;

	if (recs == NULL)
		return;
	for (i = 0; clear != NULL && i < n; i++)
		clear((char *)recs + i * size);
	free(recs);
}

void
store_clear_cert(void *rec)
{
	custody_cert_record_clear(rec);
}

void
custody_cert_records_free(custody_cert_record *recs, size_t n)
{
	store_records_free(recs, n, sizeof(*recs), store_clear_cert);
}

void
custody_audit_entry_clear(custody_audit_entry *e)
{
	if (e == NULL)
		return;
	free(e->detail);
	memset(e, 0, sizeof(*e));
}

void
store_clear_audit(void *rec)
{
	custody_audit_entry_clear(rec);
}

void
custody_audit_entries_free(custody_audit_entry *e, size_t n)
{
	store_records_free(e, n, sizeof(*e), store_clear_audit);
}

void
custody_node_record_clear(custody_node_record *rec)
{
	if (rec == NULL)
		return;
	free(rec->transport_spki);
	free(rec->admission_sig);
	if (rec->kek_wrap != NULL)
		OPENSSL_clear_free(rec->kek_wrap, rec->kek_wrap_len);
	memset(rec, 0, sizeof(*rec));
}

void
store_clear_node(void *rec)
{
	custody_node_record_clear(rec);
}

void
custody_node_records_free(custody_node_record *recs, size_t n)
{
	store_records_free(recs, n, sizeof(*recs), store_clear_node);
}

void
custody_package_record_clear(custody_package_record *rec)
{
	if (rec == NULL)
		return;
	if (rec->wrapped != NULL)
		OPENSSL_clear_free(rec->wrapped, rec->wrapped_len);
	memset(rec, 0, sizeof(*rec));
}

void
store_clear_package(void *rec)
{
	custody_package_record_clear(rec);
}

void
custody_package_records_free(custody_package_record *recs, size_t n)
{
	store_records_free(recs, n, sizeof(*recs), store_clear_package);
}
