/*
 * store/records.c — destructors of the records the store hands out (the
 * audit log's entries, nodes, key packages).  Key material in them (a
 * wrapped KEK, a wrapped key) is cleansed before it is freed.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <custody/audit.h>
#include <custody/store.h>

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
	if (rec == NULL)
		return;
	if (rec->wrapped != NULL)
		OPENSSL_clear_free(rec->wrapped, rec->wrapped_len);
	memset(rec, 0, sizeof(*rec));
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
