/*
 * custody/assign.h — the assignment state machine (current / previous /
 * pending).  Every rule about those three slots lives here and nowhere
 * else.
 *
 * Pure: no I/O, no OpenSSL, no PKCS#11, no clock.  "now" is always an
 * argument.  Each operation reads `in` and writes a new record to `out`
 * (in and out may be the same object); `out->type`, `out->identity` and
 * `out->version` are copied from `in` unchanged.  On error `out` is left
 * exactly as `in` was and err says why.
 */
#ifndef CUSTODY_ASSIGN_H
#define CUSTODY_ASSIGN_H

#include <stdint.h>
#include <custody/error.h>
#include <custody/records.h>

#ifdef __cplusplus
extern "C" {
#endif

enum custody_slot_name {
	CUSTODY_SLOT_NONE = 0,
	CUSTODY_SLOT_CURRENT,
	CUSTODY_SLOT_PREVIOUS,
	CUSTODY_SLOT_PENDING,
};

/* What an operation did besides the new record. */
typedef struct custody_assign_outcome {
	int noop;		/* nothing changed (e.g. set of the current)  */
	int rolled;		/* a due pending became current first         */
	char cancelled_pending[CUSTODY_THUMBPRINT_HEX + 1]; /* "" if none  */
	char replaced_pending[CUSTODY_THUMBPRINT_HEX + 1];  /* "" if none  */
} custody_assign_outcome;

/* "current", "previous", "pending" ("" for NONE). */
const char *custody_slot_label(enum custody_slot_name slot);

/* 1 when all three slots are empty. */
int custody_assign_is_empty(const custody_assignment *a);

/* Which slot holds thumbprint (CURRENT first), or CUSTODY_SLOT_NONE. */
enum custody_slot_name custody_assign_find(const custody_assignment *a,
					   const char *thumbprint);

/*
 * The assignment as it stands at `now`: a pending slot whose effective
 * time is <= now has become current, and the old current previous —
 * unless in->hold_pending says a node still lacks its key: then the roll
 * waits and the pending slot stays as it is.  Returns 1 when it rolled,
 * 0 when `out` equals `in`.  set, roll and remove resolve the same way.
 */
int custody_assign_resolve(const custody_assignment *in, int64_t now,
			   custody_assignment *out);

/*
 * The rule of the roll's gate: 1 when `node` (a member of the cluster
 * that has joined) must report holding the key of a's pending
 * certificate before it may take effect: every member for the global
 * assignment, the member itself for the assignment at its own name.  0
 * for any other (and when nothing is pending).
 */
int custody_assign_pending_needs(const custody_assignment *a, const char *node);

/*
 * Set-CsCertificate without -Roll: thumbprint becomes current at `now`,
 * the old current becomes previous, a pending roll is cancelled (reported
 * in outcome->cancelled_pending).  Setting the certificate that is already
 * current is a no-op (outcome->noop).  The record is resolved at `now`
 * first.
 */
int custody_assign_set(const custody_assignment *in, const char *thumbprint,
		       int64_t now, custody_assignment *out,
		       custody_assign_outcome *outcome, custody_err *err);

/*
 * Set-CsCertificate -Roll -EffectiveDate: thumbprint becomes pending, to
 * become current at `effective`.  Refused (EFAIL) when effective <= now,
 * or when thumbprint is already current.  An existing pending roll is
 * replaced (outcome->replaced_pending).  Resolved at `now` first.
 */
int custody_assign_roll(const custody_assignment *in, const char *thumbprint,
			int64_t effective, int64_t now, custody_assignment *out,
			custody_assign_outcome *outcome, custody_err *err);

/*
 * Remove-CsCertificate: empties one slot (resolved at `now` first).
 * Removing an empty slot is ENOTFOUND.  Removing the previous certificate
 * while now < current.effective + overlap needs force (else EFAIL naming
 * the instant the window ends).  Removing current leaves previous and
 * pending as they are.
 */
int custody_assign_remove(const custody_assignment *in,
			  enum custody_slot_name slot, int64_t now,
			  int64_t overlap, int force, custody_assignment *out,
			  custody_assign_outcome *outcome, custody_err *err);

/*
 * Reads the assignment of (type, identity) as stored, for
 * custody_assign_lookup: CUSTODY_OK, CUSTODY_ENOTFOUND when there is
 * none, or another status with err set.  `source` is the caller's (a
 * store, a store behind a lock...): the reader does the I/O, assign none.
 */
typedef int (*custody_assign_reader)(void *source, const char *type,
				     const char *identity,
				     custody_assignment *out,
				     custody_err *err);

/*
 * Which assignment applies for type on this node, as stored (the one rule
 * the command, the signer and the OpenSSL engine follow): the one at
 * `identity` when one is given; else, identity NULL or "", this node's
 * (`node`) when the type is assigned there, whatever its slots hold at a
 * given time; else the global one (CUSTODY_SCOPE_GLOBAL).  A read that
 * fails otherwise than ENOTFOUND is returned as it is: a record that
 * cannot be read (say, its integrity tag fails) is never passed over for
 * the global one.  ENOTFOUND "no certificate is assigned for type T
 * (identity I)", I the identity looked at last; *out is then an empty
 * record of (type, I).
 */
int custody_assign_lookup(const char *type, const char *identity,
			  const char *node, custody_assign_reader read,
			  void *source, custody_assignment *out,
			  custody_err *err);

/*
 * `stored` resolved at now into *out (custody_assign_resolve), and
 * ENOTFOUND "no certificate is assigned for type T (identity I)" (its
 * type and identity) when nothing is current at now.
 */
int custody_assign_current_at(const custody_assignment *stored, int64_t now,
			      custody_assignment *out, custody_err *err);

/* What a node's name may be, wherever one is taken (the store, the token's
 * key ids, the cluster): 1 to CUSTODY_NAME_MAX of A-Z a-z 0-9 . _ -.
 * 1: it is one; 0: it is not (NULL included). */
int custody_node_name_valid(const char *name);

#ifdef __cplusplus
}
#endif
#endif
