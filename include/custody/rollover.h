/*
 * custody/rollover.h — certificates that never expire by surprise: what
 * a [rollover TYPE] policy (custody/config.h) says is due at a given
 * instant, and doing it.
 *
 * Two parts:
 *   - custody_rollover_decide: pure (no token, no store, no clock): from
 *     the policy, the assignment resolved at now, the current
 *     certificate's notAfter and the request that may wait for its
 *     certificate, what is due — nothing, or the successor.
 *   - custody_rollover_plan / custody_rollover_apply: the targets read
 *     from the store (every identity a type with an enabled policy is
 *     assigned at), and the successor made: generated inside the token
 *     by the request ceremony (custody/request.h), then a self-signed
 *     certificate stored and staged as pending, or a request written
 *     into the policy's csr-dir (staged when its certificate is
 *     imported).
 *
 * Concurrency: runs on several nodes sharing one store make one successor.
 * A run takes the store's rollover lease (a cluster fact naming the
 * holder and its expiry, taken in a write transaction that first locks
 * the audit head, so that two takers are serialised on every backend)
 * before it generates, and decides again under the lease: a run that
 * finds the lease held, or the successor made, makes nothing.
 *
 * Memory: what an out-parameter holds is the caller's, freed with the
 * function named beside it.
 */
#ifndef CUSTODY_ROLLOVER_H
#define CUSTODY_ROLLOVER_H

#include <stddef.h>
#include <stdint.h>

#include <custody/config.h>
#include <custody/error.h>
#include <custody/ops.h>
#include <custody/records.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ deciding */

enum custody_rollover_due {
	CUSTODY_ROLLOVER_NOTHING = 0,	/* nothing to do now (why says why) */
	CUSTODY_ROLLOVER_GENERATE,	/* make the successor now            */
};

/* What the decision looks at. */
typedef struct custody_rollover_facts {
	const custody_rollover_policy *policy;
	const custody_assignment *assignment;	/* resolved at now          */
	int64_t current_not_after;	/* 0: no current certificate         */
	const char *waiting_key_id;	/* "" or NULL: no request of this
					   (type, identity) waits for its
					   certificate                        */
	int64_t now;
	int64_t overlap;		/* the policy's ([policy] overlap)   */
	int rolled;			/* the stored record's pending came
					   due by now and took effect in
					   `assignment`: the roll is to be
					   recorded                           */
	int held;			/* it came due but waits: a member
					   lacks its key (hold_pending)       */
	const char *missing;		/* held: the members it waits for     */
} custody_rollover_facts;

typedef struct custody_rollover_decision {
	enum custody_rollover_due due;
	int64_t generate_at;	/* current notAfter - generate-before (0: none) */
	int64_t effective;	/* GENERATE: when the successor becomes current */
	char why[256];		/* one sentence, for the narration and the plan */
	/* Besides the successor, in this order: */
	int record_roll;	/* a due roll took effect: record it           */
	int held;		/* a due roll waits for members (roll_why)     */
	char roll_why[256];	/* record_roll or held: which, and for whom    */
	int retire;		/* the previous has been kept keep-previous
				   after the roll: remove it from the
				   assignment (its key stays on the token)     */
	int64_t retire_at;	/* when it is (0: no previous)                 */
	char retire_why[256];
} custody_rollover_decision;

/*
 * What is due at facts->now.  First the roll: a pending certificate that
 * came due and took effect is recorded (record_roll), one held back by a
 * member that lacks its key is said (held); then the previous, kept
 * keep-previous after the roll instant (current.effective), is retired;
 * then the successor.
 *
 * The successor: nothing when the policy is disabled, there
 * is no current certificate, a successor is pending already, a request
 * waits for its certificate, or now is before notAfter - generate-before.
 * Otherwise GENERATE, with the successor's effective instant: notAfter -
 * promote-before, but never sooner than now + min-publish or now +
 * overlap, whichever is longer (partners need time to fetch the new key
 * from the metadata; overlap is the window the operator already gives a
 * roll), and never later than notAfter while the current
 * certificate is still valid then (an expired signer fails every
 * partner: the successor takes over as the current one ends).
 */
void custody_rollover_decide(const custody_rollover_facts *facts,
			     custody_rollover_decision *out);

/* ------------------------------------------------------------ doing */

/* One (type, identity) an enabled policy applies to. */
typedef struct custody_rollover_target {
	const custody_rollover_policy *policy;	/* points into the config */
	custody_assignment assignment;	/* resolved at env->now            */
	custody_cert_record current;	/* the current certificate (store) */
	char waiting_key_id[CUSTODY_KEY_ID_HEX + 1];
	custody_rollover_decision decision;
	/* The hooks owed (the policy names one, and the audit log has no
	 * entry of it for that certificate): post-stage for the pending
	 * certificate, post-roll for a current one that came by a roll. */
	int post_stage_owed, post_roll_owed;
	const custody_config *cfg;	/* the hooks' environment: what not to
					   pass (the PIN sources' variables) */
} custody_rollover_target;

/* Whether a target has anything to do (a successor, a roll to record, a
 * previous to retire, a hook owed). */
int custody_rollover_has_work(const custody_rollover_target *t);

void custody_rollover_targets_free(custody_rollover_target *t, size_t n);

/*
 * The targets of every enabled policy of cfg (only_type: of that type
 * alone; NULL: all), each decided at env->now, in the order of the
 * store's assignments.  Reads the store alone (the token only for a csr
 * request of this node that may wait): a run with nothing due needs no
 * PIN.  What custody_rollover_apply makes it decides again, with the
 * token open and the store's integrity tags checked.  Writes nothing.
 */
int custody_rollover_plan(custody_ops_env *env, const custody_config *cfg,
			  const char *only_type, custody_rollover_target **out,
			  size_t *n, custody_err *err);

/* What custody_rollover_apply made. */
typedef struct custody_rollover_result {
	int recorded;			/* the due roll was recorded        */
	char retired[CUSTODY_THUMBPRINT_HEX + 1];	/* "" or the previous
							   removed            */
	/* The hooks, [0] post-stage and [1] post-roll: claimed under the
	 * lease (custody_rollover_run_hooks runs them), for which
	 * certificate, the one it follows, its effective instant, and what
	 * the run gave (the audit entry's detail; "" until it ran). */
	int claimed[2];
	char hook_for[2][CUSTODY_THUMBPRINT_HEX + 1];
	char hook_prev[2][CUSTODY_THUMBPRINT_HEX + 1];
	int64_t hook_effective[2];
	char hook_outcome[2][640];
	int hook_failed[2];		/* it ran and did not exit 0        */
	int made;			/* 0: nothing (why says why)        */
	char why[256];
	char key_id[CUSTODY_KEY_ID_HEX + 1];
	char key_algorithm[16];
	int replicable;
	int extractable;		/* as the token reports it (-1: unsaid) */
	char thumbprint[CUSTODY_THUMBPRINT_HEX + 1];	/* self-signed      */
	int64_t not_after;		/* self-signed                       */
	int64_t effective;		/* self-signed: staged for          */
	char csr_path[CUSTODY_ROLLOVER_TEXT + 256 + 8];	/* csr-dir/LABEL.csr */
} custody_rollover_result;

/*
 * Does what target's decision says is due, under the store's rollover
 * lease, each step decided again from the store first: records the due
 * roll ("roll-effective"), retires the previous ("remove", detail "retired
 * after keep-previous"), makes the successor (below), then runs the hooks
 * owed — post-stage for the pending certificate, post-roll for a current
 * one that came by a roll — with CUSTODY_HOOK, CUSTODY_TYPE,
 * CUSTODY_IDENTITY, CUSTODY_THUMBPRINT (the certificate staged, or made
 * current), CUSTODY_PREVIOUS_THUMBPRINT, CUSTODY_EFFECTIVE and
 * CUSTODY_NODE in its environment (and not the PIN sources' variables),
 * each recorded in the audit log (action "post-stage" or "post-roll":
 * its exit status and the start of its output) whatever it returns: a
 * hook that fails undoes nothing and is not run again for that
 * certificate.
 *
 * The successor: takes the store's
 * rollover lease (a run elsewhere holding it: made = 0, why says whose),
 * reads and decides again under it (made = 0 when nothing is due any
 * more), then generates the key pair inside env's token and either
 * stores the self-signed successor and stages it (one transaction: the
 * certificate, the "request" and "roll" audit entries, the package of a
 * replicable key, the assignment) or writes the request into csr-dir and
 * its audit entry ("request", naming the type and identity: the import
 * of its certificate stages it).  All or nothing: a failure removes what
 * was made.  The lease is let go in the end.  Narrates each step.
 */
int custody_rollover_apply(custody_ops_env *env, custody_rollover_target *target,
			   custody_rollover_result *res, custody_err *err);

/*
 * Runs the hooks custody_rollover_apply claimed (res->claimed), one after
 * the other, each with its own timeout, neither the lease nor the token
 * held while it runs (a hook may call custody); records each outcome in
 * the audit log (the token is opened again for that, through env) and in
 * res->hook_outcome.  A hook that fails is a warning, never an error: the
 * roll stands.  EFAIL only when the outcome cannot be recorded.
 */
int custody_rollover_run_hooks(custody_ops_env *env, const custody_rollover_target *t,
			       custody_rollover_result *res, custody_err *err);

/*
 * The (type, identity) a rollover request was made for, when key_id (hex)
 * is the key of such a request (its audit entry): 1 and the names, else
 * 0; -1 with err set when the audit log cannot be read.  For the import
 * of the certificate a CA issued for it.
 */
int custody_rollover_request_of_key(custody_store *st, const char *key_id,
				    char type[CUSTODY_NAME_MAX + 1],
				    char identity[CUSTODY_NAME_MAX + 1],
				    custody_err *err);

/*
 * The import of a certificate alone whose key (key_id, hex) a csr-mode
 * rollover generated: *found = 1, and the roll that stages it — type and
 * identity of the request, effective as custody_rollover_decide puts it
 * (from the current certificate of that assignment at env->now, the
 * type's policy in cfg, env->policy's overlap).  *found = 0 when key_id is
 * no rollover's, or its type has no enabled policy any more (a note says
 * so: the import then assigns nothing).  Reads the store (env's, opened on
 * need).
 */
int custody_rollover_import_roll(custody_ops_env *env, const custody_config *cfg,
				 const char *key_id, int *found,
				 char type[CUSTODY_NAME_MAX + 1],
				 char identity[CUSTODY_NAME_MAX + 1],
				 int64_t *effective, custody_err *err);

/* The audit actions of the hooks: each names the certificate it ran for. */
#define CUSTODY_ROLLOVER_POST_STAGE "post-stage"
#define CUSTODY_ROLLOVER_POST_ROLL "post-roll"

/* The hook res->claimed[which] and its kin name: 0 post-stage, 1 post-roll. */
const char *custody_rollover_hook_name(int which);

/* The name of the store's rollover lease (a cluster fact). */
#define CUSTODY_ROLLOVER_LEASE "rollover_lease"
/* How long a lease lasts unless let go: longer than any generation. */
#define CUSTODY_ROLLOVER_LEASE_SECONDS 600

#ifdef __cplusplus
}
#endif
#endif
