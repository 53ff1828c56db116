/*
 * custody/ops.h — the operations of libcustody: what a command does, with
 * plain arguments, so that the `custody` command only parses, calls and
 * prints.
 *
 *   - custody_txn: one store transaction with its audit entries, and the
 *     token objects made for the operation, which go again when it fails.
 *   - custody_change_*: one change of an assignment (set, roll) planned
 *     with the assign state machine before anything is written, then
 *     written inside a transaction; a roll that came due, materialised.
 *   - custody_remove: one slot of an assignment emptied.
 *   - custody_import: a certificate (with its key, or its key's package)
 *     onto the token and into the store, optionally assigned.
 *
 * Narration and warnings go through custody/log.h.  Errors are set in the
 * caller's custody_err.  Memory: what an out-parameter holds belongs to
 * the caller, freed with the *_clear function named beside it.
 */
#ifndef CUSTODY_OPS_H
#define CUSTODY_OPS_H

#include <stddef.h>
#include <stdint.h>

#include <custody/assign.h>
#include <custody/cert.h>
#include <custody/cluster.h>
#include <custody/error.h>
#include <custody/policy.h>
#include <custody/records.h>
#include <custody/store.h>
#include <custody/token.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ txn
 *
 *	custody_txn tx;
 *
 *	custody_txn_init(&tx, st, tok, node, err);
 *	... token writes, each followed by custody_txn_undo_add() ...
 *	if ((r = custody_txn_begin(&tx)) != CUSTODY_OK ||
 *	    (r = <the writes>) != CUSTODY_OK ||
 *	    (r = custody_txn_audit(&tx, "action", ...)) != CUSTODY_OK ||
 *	    (r = custody_txn_commit(&tx)) != CUSTODY_OK)
 *		goto out;
 *	out:
 *	custody_txn_end(&tx, r);
 *
 * custody_txn_end rolls back a transaction that is still open and, when
 * the operation failed (r is not CUSTODY_OK: a write, the audit entry or
 * the commit failed, or anything else after the token objects were
 * made), destroys what the undo list names, in the order it was added.
 */

#define CUSTODY_TXN_UNDO_MAX (CUSTODY_TOKEN_CHAIN_MAX + 4)

enum custody_txn_undo_kind {
	CUSTODY_UNDO_KEY = 1,	/* every object of a key id (ENOTFOUND: gone) */
	CUSTODY_UNDO_CERT,	/* one certificate object (ENOTFOUND: gone)   */
	CUSTODY_UNDO_KEK,	/* the cluster KEK                            */
	CUSTODY_UNDO_AUTHORITY,	/* the cluster authority key                  */
	CUSTODY_UNDO_AUTHORITY_PIN,	/* the pinned cluster authority       */
	CUSTODY_UNDO_TRANSPORT,	/* the transport key pair of node `name`      */
};

typedef struct custody_txn_undo {
	enum custody_txn_undo_kind kind;
	char name[CUSTODY_KEY_ID_HEX + CUSTODY_NAME_MAX + 1];	/* key id or node */
	unsigned char *der;	/* CUSTODY_UNDO_CERT: a copy of the DER */
	size_t der_len;
	char warning[192];	/* "cannot remove X again": warned, with why */
} custody_txn_undo;

typedef struct custody_txn {
	custody_store *st;
	custody_token *tok;	/* the token the undo list is on        */
	const char *node;	/* the node named in audit entries      */
	custody_err *err;
	int began;		/* a store transaction is open    */
	size_t n_undo;
	custody_txn_undo undo[CUSTODY_TXN_UNDO_MAX];
} custody_txn;

/* Sets tx up; nothing is begun.  tok may be NULL when nothing is undone;
 * node is kept as a pointer and must outlive tx. */
void custody_txn_init(custody_txn *tx, custody_store *st, custody_token *tok,
		      const char *node, custody_err *err);

/* The token the undo list is on, when it was opened after init. */
void custody_txn_set_token(custody_txn *tx, custody_token *tok);

/* One write transaction (custody_store_begin). */
int custody_txn_begin(custody_txn *tx);

/* Appends one audit entry inside the transaction: this node, the invoking
 * user, the real clock.  type, identity, thumbprint, previous and detail
 * may be NULL.  Its error says "cannot append to the audit log: ...". */
int custody_txn_audit(custody_txn *tx, const char *action, const char *type,
		      const char *identity, const char *thumbprint,
		      const char *previous, const char *detail);

/* Commits. */
int custody_txn_commit(custody_txn *tx);

/*
 * Adds an object this operation made on tx's token (before or inside the
 * transaction) to the undo list: name is the key id (KEY, CERT) or the
 * node (TRANSPORT), der the certificate (CERT; copied).  The warning made
 * from fmt starts the sentence warned when the object cannot be destroyed
 * ("cannot remove the new KEK from token T again"); ": why" follows.
 * EFAIL when the list is full.
 */
int custody_txn_undo_add(custody_txn *tx, enum custody_txn_undo_kind kind,
			 const char *name, const unsigned char *der,
			 size_t der_len, const char *fmt, ...)
	CUSTODY_PRINTF(6, 7);

/*
 * Ends tx: rolls back a transaction still open; when status (the
 * operation's) is not CUSTODY_OK, destroys what the undo list names.
 * Returns 1 when everything is undone (or nothing had to be), 0 when
 * something stayed on the token (warned).  tx->err is left as it was.
 * Frees what tx holds.
 */
int custody_txn_end(custody_txn *tx, int status);

/* ------------------------------------------------------------ env
 *
 * Where an operation runs.  The store and the token are opened on first
 * need (open_store, open_token: NULL when store/token are given), so that
 * an operation refused early neither creates a store nor asks for a PIN;
 * opening the token attaches its integrity tagger to the store.
 */
struct custody_change;

typedef struct custody_ops_env {
	custody_store *store;
	custody_token *token;
	const char *node;		/* this node's name              */
	int64_t now;			/* the time the change is decided at */
	const custody_policy *policy;
	int (*open_store)(void *ctx, custody_store **st, custody_err *err);
	int (*open_token)(void *ctx, custody_token **tok, custody_err *err);
	/* Asked before a planned change is written (NULL: never asked);
	 * anything but CUSTODY_OK refuses it, nothing written. */
	int (*confirm)(void *ctx, const struct custody_change *planned,
		       custody_err *err);
	void *ctx;
} custody_ops_env;

int custody_ops_store(custody_ops_env *env, custody_err *err);
int custody_ops_token(custody_ops_env *env, custody_err *err);

/* ------------------------------------------------------------ change */

typedef struct custody_change_request {
	const char *type;	/* canonical */
	const char *identity;	/* canonical */
	int roll;		/* stage as pending at `effective` */
	int64_t effective;
	int replicable;		/* the caller puts the key's package into the
				   store in the same transaction (import or
				   request --replicable on a cluster member) */
	int64_t min_publish;	/* a roll takes effect no sooner than this
				   after now, published meanwhile ([rollover
				   TYPE] min-publish); 0: no such rule    */
} custody_change_request;

typedef struct custody_change {
	custody_assignment before;	/* as stored, resolved at now */
	custody_assignment after;
	custody_assign_outcome outcome;
	char warning[256];		/* "" or a lead-time warning */
	int roll;			/* the request was a roll */
} custody_change;

/*
 * Checks the request against the policy (identity, validity of the
 * certificate now or at the effective date; in a cluster of several
 * nodes, global only for a key with a package) and computes the new
 * assignment from the stored one at env->now, whose integrity tag is
 * checked (the token is opened for that).  Writes nothing.
 */
int custody_change_plan(custody_ops_env *env, const custody_change_request *req,
			const custody_cert_record *rec, custody_change *ch,
			custody_err *err);

/* As custody_change_plan, for a certificate the policy checks first
 * (rec->der: a certificate already on the token). */
int custody_change_plan_cert(custody_ops_env *env,
			     const custody_change_request *req,
			     const custody_cert_record *rec, custody_change *ch,
			     custody_err *err);

/* Writes ch->after with the version the plan read, and its audit entries
 * (a roll that came due first), inside tx: ECONFLICT when the assignment
 * changed since.  A no-op writes nothing. */
int custody_change_write(custody_txn *tx, custody_change *ch);

/* The "roll-effective" audit entry of a roll that came due (resolved: the
 * record after the roll), inside tx. */
int custody_change_audit_due_roll(custody_txn *tx,
				  const custody_assignment *resolved);

/*
 * In a transaction of its own: when the stored record of (type, identity)
 * holds a pending roll that is due at now, writes the rolled record and
 * its "roll-effective" audit entry, and the rolled record into *rolled
 * (may be NULL; its type stays "" when nothing was written).  OK when
 * there was nothing to do; the error of the first failing step otherwise
 * (its text is dropped: this is best effort).
 */
int custody_change_materialize_due_roll(custody_store *st, const char *node,
					const char *type, const char *identity,
					int64_t now, custody_assignment *rolled);

/* One set or roll of a certificate that is on the token with its key: the
 * certificate record and the change, in one transaction. */
int custody_change_apply(custody_txn *tx, const custody_cert_record *rec,
			 custody_change *ch);

/* The same certificate set or rolled for several assignments (ch[0..n),
 * each planned on its own): all of them, or none, in one transaction. */
int custody_change_apply_all(custody_txn *tx, const custody_cert_record *rec,
			     custody_change *ch, size_t n);

/* ------------------------------------------------------------ remove */

typedef struct custody_removal {
	custody_assignment before;	/* as read (a due roll recorded)  */
	custody_assignment after;
	enum custody_slot_name slot;
} custody_removal;

/*
 * Empties one slot of the assignment `before` (read by the caller at
 * now, its due roll recorded) with the assign state machine's rules
 * (overlap, force), and writes it with its "remove" audit entry in one
 * transaction.  out->before and out->after say what changed.
 */
int custody_remove(custody_ops_env *env, const custody_assignment *before,
		   enum custody_slot_name slot, int force, custody_removal *out,
		   custody_err *err);
/* Its plan alone (a dry run): the same checks and out, nothing written. */
int custody_remove_plan(custody_ops_env *env, const custody_assignment *before,
			enum custody_slot_name slot, int force,
			custody_removal *out, custody_err *err);

/* ------------------------------------------------------------ import */

typedef struct custody_import_request {
	/* The certificate (bundle->cert), with its key (bundle->key) and CA
	 * certificates (bundle->chain), or with the package of its key
	 * (package, bundle->key NULL).  Not freed here. */
	const custody_bundle *bundle;
	const custody_package *package;
	const char *label;		/* NULL: the subject's CN */
	int replicable;			/* the key may leave the token wrapped */
	const custody_change_request *assign;	/* NULL: no assignment */
	int dry_run;	/* check and plan only: res as the import would
			   record it, nothing written (import --dry-run) */
} custody_import_request;

typedef struct custody_import_result {
	custody_cert_record rec;	/* as stored                     */
	custody_change assign;		/* when an assignment was asked for */
} custody_import_result;

void custody_import_result_clear(custody_import_result *res);

/*
 * Import: the policy, the cluster (a replicable key's package under the
 * cluster KEK), the assignment's plan, then the token (a note of intent
 * first, for custody tidy), then the store in one transaction (the
 * certificate, its audit entry, the package, the change, this node's
 * report).  When the store refuses, what the import created on the token
 * is destroyed again.  Narrates each step.
 */
int custody_import(custody_ops_env *env, const custody_import_request *req,
		   custody_import_result *res, custody_err *err);

#ifdef __cplusplus
}
#endif
#endif
