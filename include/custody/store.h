/*
 * custody/store.h — the store: certificate facts (public parts only),
 * assignments and the audit log.  One interface, several backends: "sqlite:PATH" (embedded
 * default); "postgresql://..." (cluster, a later backend).
 *
 * Concurrency: a change is read → decided → written with
 * custody_store_put_assignment(), which succeeds only if the stored row
 * still has the version that was read (optimistic concurrency); otherwise
 * it fails with CUSTODY_ECONFLICT and writes nothing.  Writes happen
 * between custody_store_begin() and custody_store_commit(); any error
 * before commit must be followed by custody_store_rollback().
 *
 * Memory: records returned through out-pointers belong to the caller
 * (free with custody_cert_record_clear / custody_cert_records_free /
 * custody_audit_entry_clear / custody_audit_entries_free / free).
 */
#ifndef CUSTODY_STORE_H
#define CUSTODY_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <custody/error.h>
#include <custody/records.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct custody_store custody_store;

/* Opens (and for SQLite creates, with its directory, mode 0700/0600) the
 * store named by url and brings its schema to the current version.
 * An unknown scheme is EUSAGE naming the accepted forms. */
int custody_store_open(const char *url, custody_store **out, custody_err *err);
void custody_store_close(custody_store *st);

/* The schema version this build writes. */
int custody_store_schema_version(void);

/* One write transaction (SQLite: BEGIN IMMEDIATE, waiting up to 10 s for
 * another writer). */
int custody_store_begin(custody_store *st, custody_err *err);
int custody_store_commit(custody_store *st, custody_err *err);
void custody_store_rollback(custody_store *st);

/* ENOTFOUND when (type, identity) has no stored assignment.
 * Type and identity are matched case-insensitively. */
int custody_store_get_assignment(custody_store *st, const char *type,
				 const char *identity, custody_assignment *out,
				 custody_err *err);

/* All assignments, ordered by type then identity ("global" first). */
int custody_store_list_assignments(custody_store *st, custody_assignment **out,
				   size_t *n, custody_err *err);

/*
 * Writes a->{current,previous,pending} if the stored version still equals
 * a->version (0 = "there is no row yet").  On success a->version is the new
 * version.  A record whose three slots are all empty deletes the row.
 * ECONFLICT ("assignment changed concurrently") when the version differs.
 */
int custody_store_put_assignment(custody_store *st, custody_assignment *a,
				 custody_err *err);

/* Inserts the certificate, or updates key_uri and label of the one with
 * the same thumbprint. */
int custody_store_put_cert(custody_store *st, const custody_cert_record *rec,
			   custody_err *err);

/* ENOTFOUND when there is no certificate with that exact thumbprint
 * (40 upper-case hex digits). */
int custody_store_get_cert(custody_store *st, const char *thumbprint,
			   custody_cert_record *out, custody_err *err);

/* All certificates, ordered by not_after then thumbprint. */
int custody_store_list_certs(custody_store *st, custody_cert_record **out,
			     size_t *n, custody_err *err);

/* ENOTFOUND when absent. */
int custody_store_delete_cert(custody_store *st, const char *thumbprint,
			      custody_err *err);

/*
 * *changed = 1 when the store may have changed since the previous call on
 * this handle (a commit by any connection or process; the first call
 * says 1), else 0.  For a long-lived reader that keeps what it read (the
 * signer asks before every signature): a "maybe" costs the caller one
 * re-read, a "no" is exact.  SQLite asks the database (PRAGMA
 * data_version, about 1.7 µs) at the first 64 calls; from then on it
 * watches the database's directory (inotify) and asks only within a
 * second of a write there, so that a quiet store costs one read() that
 * finds nothing (0.3 µs).  Without inotify every call asks the database.
 */
int custody_store_changed(custody_store *st, int *changed, custody_err *err);

/* ------------------------------------------------------------ audit log */

#define CUSTODY_AUDIT_HASH_HEX 64	/* SHA-256, lower-case hex          */
#define CUSTODY_AUDIT_ACTOR_MAX 64	/* longest actor (login name)       */
#define CUSTODY_AUDIT_ACTION_MAX 31	/* longest action ("set", "roll")   */

/*
 * One entry of the append-only audit log, as the store keeps it.  The
 * chain (prev_hash, hash) is computed by custody/audit.h; the store only
 * keeps it.  Every char array is NUL-terminated; "" means "none" (an
 * action without a type, a thumbprint, ...).  detail is malloc'ed free
 * text or NULL: records returned by the store own it, free it with
 * custody_audit_entry_clear() / custody_audit_entries_free().
 */
typedef struct custody_audit_entry {
	int64_t seq;		/* 1, 2, 3, ... in the order appended    */
	int64_t time;		/* seconds since the epoch, UTC          */
	char node[CUSTODY_NAME_MAX + 1];
	char actor[CUSTODY_AUDIT_ACTOR_MAX + 1];
	char action[CUSTODY_AUDIT_ACTION_MAX + 1];
	char type[CUSTODY_NAME_MAX + 1];
	char identity[CUSTODY_NAME_MAX + 1];
	char thumbprint[CUSTODY_THUMBPRINT_HEX + 1];
	char previous_thumbprint[CUSTODY_THUMBPRINT_HEX + 1];
	char *detail;
	char prev_hash[CUSTODY_AUDIT_HASH_HEX + 1];
	char hash[CUSTODY_AUDIT_HASH_HEX + 1];
} custody_audit_entry;

/* Frees detail and zeroes the record (not the struct itself). */
void custody_audit_entry_clear(custody_audit_entry *e);
/* Clears each of n records, then frees the array. */
void custody_audit_entries_free(custody_audit_entry *e, size_t n);

/*
 * Appends e exactly as given (seq, prev_hash and hash included) and moves
 * the log's head (the seq and hash of its newest entry, kept in a row of
 * its own) to it, in the caller's write transaction: EUSAGE outside one.
 * ECONFLICT ("audit log changed concurrently") when e->seq is taken or
 * the head is not (e->seq - 1, e->prev_hash).  Use custody_audit_append()
 * rather than this: it computes the chain.
 */
int custody_store_append_audit(custody_store *st, const custody_audit_entry *e,
			       custody_err *err);

/* The entry with the highest seq; ENOTFOUND when the log is empty. */
int custody_store_last_audit(custody_store *st, custody_audit_entry *out,
			     custody_err *err);

/* The entries with time >= since (0: all), ordered by seq. */
int custody_store_list_audit(custody_store *st, int64_t since,
			     custody_audit_entry **out, size_t *n,
			     custody_err *err);

/* The head: seq and hash of the newest entry appended (0 and 64 zeros
 * for an empty log).  ENOTFOUND when the head row itself is gone (which
 * only tampering does). */
int custody_store_audit_head(custody_store *st, int64_t *seq,
			     char hash[CUSTODY_AUDIT_HASH_HEX + 1],
			     custody_err *err);

#ifdef __cplusplus
}
#endif
#endif
