/*
 * store/records.h — the store's records inside the store module (private
 * to libcustody; store/records.c): the destructors store/core.c's lists
 * take, on untyped records, and the audit entry's check that
 * store/store.c and store/audit.c share.
 */
#ifndef CUSTODY_STORE_RECORDS_H
#define CUSTODY_STORE_RECORDS_H

#include <stddef.h>

#include <custody/error.h>
#include <custody/store.h>

/* Each clears one record (a custody_cert_record, custody_audit_entry,
 * custody_node_record or custody_package_record) as its custody_*_clear. */
/* The store fact that holds the audit log's tag (store/audit.c): moved by
 * every append, a sync's too, so its write is no change members follow
 * (custody_store_put_meta neither notifies nor moves the generation for
 * it; the entry's own append does when its action is followed). */
#define STORE_META_AUDIT_TAG "audit_tag"

void store_clear_cert(void *rec);
void store_clear_audit(void *rec);
void store_clear_node(void *rec);
void store_clear_package(void *rec);

/* EUSAGE, "cannot append to the audit log: ...", unless e is an entry
 * whose text fields are terminated within their arrays: node to
 * previous_thumbprint, and with hashes prev_hash and hash too. */
int store_check_audit_fields(const custody_audit_entry *e, int hashes,
			     custody_err *err);

#endif
