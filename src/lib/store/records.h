/*
 * store/records.h — the store's records as untyped elements (private to
 * libcustody): the destructors store/core.c's lists take (store/records.c).
 */
#ifndef CUSTODY_STORE_RECORDS_H
#define CUSTODY_STORE_RECORDS_H

#include <stddef.h>

/* Each clears one record (a custody_cert_record, custody_audit_entry,
 * custody_node_record or custody_package_record) as its custody_*_clear. */
void store_clear_cert(void *rec);
void store_clear_audit(void *rec);
void store_clear_node(void *rec);
void store_clear_package(void *rec);

#endif
