/*
 * custody/audit.h — the append-only, hash-chained audit log.
 *
 * Every change custody makes appends one entry (time, node, actor, action,
 * type/identity, thumbprints, detail) in the same store transaction as the
 * change itself:
 *
 *	custody_store_begin → the change → custody_audit_append → commit
 *
 * so the entry is there exactly when the change is: a rollback takes both.
 *
 * The chain: each entry holds prev_hash, the hash of the entry before it
 * (64 zeros for the first), and hash = SHA-256 of an unambiguous encoding
 * of all its fields, seq and prev_hash included (a version tag, then every
 * integer as 8 bytes big-endian and every text as an 8-byte length and its
 * bytes; detail has a presence byte).  The store also keeps the head, the
 * seq and hash of the newest entry, in a row of its own that moves in the
 * same transaction as each append.
 *
 * What verification detects: an entry whose fields were edited; an entry
 * removed (a gap in seq); entries reordered (an entry that is genuine for
 * another seq); an entry added outside custody (beyond the head); a
 * truncated tail (the head is ahead of the last entry).  A log alone
 * cannot show that its tail was cut: a truncated log looks like one that
 * simply ended.  That is what the head row is for.
 *
 * What it cannot detect: the chain is a checksum, not a signature.
 * Whoever can write the store can rewrite every entry from the one they
 * change onwards, recompute the hashes and move the head (or cut the tail
 * and move the head back).  Against a writer of the store, keep the head
 * elsewhere: `custody audit --verify` prints it; record it (a ticket, a
 * signed ceremony transcript, another system) and compare it later.
 *
 * The actor is what the process was told: SUDO_USER comes from the
 * environment, which the invoking user controls.
 *
 * Memory: see custody_audit_entry in custody/store.h.
 */
#ifndef CUSTODY_AUDIT_H
#define CUSTODY_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <custody/error.h>
#include <custody/store.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The actions custody records (any other [a-z][a-z0-9-]* is accepted). */
#define CUSTODY_AUDIT_IMPORT "import"	/* a certificate (and key) onto the token */
#define CUSTODY_AUDIT_SET "set"		/* assigned, current now                  */
#define CUSTODY_AUDIT_ROLL "roll"	/* a roll staged: pending until its date  */
#define CUSTODY_AUDIT_ROLL_EFFECTIVE "roll-effective"	/* a staged roll took effect */
#define CUSTODY_AUDIT_REMOVE "remove"	/* removed from an assignment              */
#define CUSTODY_AUDIT_DELETE "delete"	/* destroyed on the token                  */
#define CUSTODY_AUDIT_NODE_ENROLL "node-enroll"	/* a node asks to join the cluster */
#define CUSTODY_AUDIT_REQUEST "request"	/* a key pair generated on the token       */

/*
 * Appends one entry, inside the caller's write transaction (EUSAGE
 * outside one).  From draft it takes time (0: the clock now), node
 * (required), actor ("": custody_audit_actor()), action (required,
 * [a-z][a-z0-9-]*), type, identity, thumbprint and previous_thumbprint
 * (each "" or 40 upper-case hex digits), detail (NULL or free text); it
 * ignores draft's seq, prev_hash and hash, and sets them: the next seq
 * after the head, the head's hash, the new hash.  ECONFLICT when the log
 * moved meanwhile (another backend's writer); EFAIL when the head is
 * missing or damaged (the store was edited outside custody).
 */
int custody_audit_append(custody_store *st, const custody_audit_entry *draft,
			 custody_err *err);

/* Who acts: SUDO_USER when it is set (and printable, and fits), else the
 * login name of the real uid (getpwuid_r), else "uid N".  Returns buf. */
char *custody_audit_actor(char *buf, size_t size);

/* SHA-256 of e's canonical encoding (seq and prev_hash included; hash
 * itself excluded), as 64 lower-case hex digits. */
int custody_audit_hash(const custody_audit_entry *e,
		       char out[CUSTODY_AUDIT_HASH_HEX + 1], custody_err *err);

/* "2026-11-25T10:00:00Z set OAuthTokenIssuer/global" (or the thumbprint
 * when there is no type), control characters shown as '?'.  Returns buf. */
char *custody_audit_describe(const custody_audit_entry *e, char *buf,
			     size_t size);

/*
 * Checks a whole log, e[0..n) in seq order from entry 1: every entry's
 * hash, the chain (prev_hash is the hash before it), consecutive seq.
 * On the first break: EFAIL, *first_bad = the index in e of the entry the
 * message names (for a removal, of the entry after the gap), and a
 * message that names it:
 *   "audit entry 17 (2026-11-25T10:00:00Z set OAuthTokenIssuer/global) was edited"
 *   "audit entry 17 was removed: entry 18 (...) follows entry 16"
 *   "audit entry 17 (...) is out of order: it is stored as entry 18"
 * A log alone cannot show a truncated tail: see custody_audit_verify_store.
 */
int custody_audit_verify(const custody_audit_entry *e, size_t n,
			 size_t *first_bad, custody_err *err);

/*
 * Reads the whole log and its head in one transaction (call it outside
 * one), checks it as custody_audit_verify does, then against the head:
 *   "the log was truncated after entry 17 (...): the head records entry 19"
 *   "audit entry 18 (...) was added outside custody: the head records entry 17"
 * On success *n is the number of entries and head the newest hash (64
 * zeros for an empty log).  n and head may be NULL.
 */
int custody_audit_verify_store(custody_store *st, size_t *n,
			       char head[CUSTODY_AUDIT_HASH_HEX + 1],
			       custody_err *err);

/*
 * The audit log's integrity tag (custody/store.h): appends by a writer
 * that holds the store's KEK move it to the new head (custody_audit_append
 * checks it first and refuses a log rewritten outside custody); a node
 * that enrolls, holding no KEK yet, appends without it.
 * custody_audit_check_tag: OK when the tag holds for the head (seq, hash);
 * EFAIL "the audit log fails its integrity check ..." otherwise, ENOTFOUND
 * when the token holds no KEK to check it with.  custody_audit_verify_store
 * checks it too when the store has a tagger.  custody_audit_tag_head tags
 * a head (the `custody tag` ceremony), in a write transaction.
 */
int custody_audit_check_tag(custody_store *st, int64_t head_seq,
			    const char *head_hash, custody_err *err);
int custody_audit_tag_head(custody_store *st, int64_t seq, const char *hash,
			   custody_err *err);

#ifdef __cplusplus
}
#endif
#endif
