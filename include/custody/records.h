/*
 * custody/records.h — plain data records shared by the modules.
 *
 * Types only: no functions but the destructors (in assign/records.c).  These are
 * what the store persists and the assign state machine works on; they hold
 * no OpenSSL or PKCS#11 types, so `assign` and `store` stay free of both.
 *
 * Times are seconds since the Unix epoch, UTC (int64_t).
 */
#ifndef CUSTODY_RECORDS_H
#define CUSTODY_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CUSTODY_THUMBPRINT_HEX 40	/* SHA-1, upper-case hex          */
#define CUSTODY_SHA256_HEX 64		/* SHA-256, upper-case hex         */
#define CUSTODY_KEY_ID_HEX 40		/* CKA_ID, lower-case hex          */
#define CUSTODY_NAME_MAX 64		/* longest type or identity name   */
#define CUSTODY_TAG_HEX 32		/* a store row's integrity tag     */
#define CUSTODY_TAG_INPUT_LEN 32	/* what a tag is made of: SHA-256  */

/* The identity of an assignment that applies on every node (a node's own
 * name is the other kind of identity). */
#define CUSTODY_SCOPE_GLOBAL "global"

/* Facts about one certificate, as the store keeps them (public parts only). */
typedef struct custody_cert_record {
	char thumbprint[CUSTODY_THUMBPRINT_HEX + 1];
	char sha256[CUSTODY_SHA256_HEX + 1];
	char *subject;		/* RFC 2253 order, "CN=a,O=b"            */
	char *issuer;
	char *serial;		/* upper-case hex, no separators         */
	int64_t not_before;
	int64_t not_after;
	char **alt_names;	/* "DNS:a.example", "IP:10.0.0.1", ...   */
	size_t n_alt_names;
	char key_algorithm[16];	/* "RSA-2048", "EC-P256", ...            */
	char key_id[CUSTODY_KEY_ID_HEX + 1];
	char *key_uri;		/* RFC 7512 URI of the private key, or NULL */
	char *label;		/* CKA_LABEL on the token, or NULL       */
	unsigned char *der;
	size_t der_len;
} custody_cert_record;

/* Frees the members (not the struct itself) and zeroes it. */
void custody_cert_record_clear(custody_cert_record *rec);
/* Clears each of n records, then frees the array. */
void custody_cert_records_free(custody_cert_record *recs, size_t n);
/* Deep copy; returns 0, or -1 when out of memory (dst is then cleared). */
int custody_cert_record_copy(custody_cert_record *dst,
			     const custody_cert_record *src);

/* One slot of an assignment.  Empty when thumbprint[0] == '\0'. */
typedef struct custody_slot {
	char thumbprint[CUSTODY_THUMBPRINT_HEX + 1];
	int64_t effective;	/* when it became (or becomes) current   */
} custody_slot;

/*
 * The assignment of one (type, identity): current, previous, pending.
 * previous.effective is when the previous certificate became current;
 * current.effective is when it stopped being current (the roll instant),
 * which is what the overlap window counts from.
 */
typedef struct custody_assignment {
	char type[CUSTODY_NAME_MAX + 1];
	char identity[CUSTODY_NAME_MAX + 1];
	custody_slot current;
	custody_slot previous;
	custody_slot pending;
	int64_t version;	/* store row version; 0 = never stored   */
	/* Not stored: set by the store's reads.  1 when a node that signs
	 * with this assignment does not report holding the pending
	 * certificate's key (custody_assign_pending_needs): the roll waits,
	 * whatever its effective date says. */
	int hold_pending;
} custody_assignment;

#ifdef __cplusplus
}
#endif
#endif
