/*
 * ops/change.c — set, roll and remove: planned with the assign state
 * machine from the stored record before anything is written, then written
 * with their audit entries in one transaction.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/x509.h>

#include <custody/cluster.h>
#include <custody/ops.h>
#include <custody/policy.h>
#include <custody/timefmt.h>

/* The stored record of (type, identity), its integrity tag checked; an
 * empty one when there is none. */
static int
read_stored(custody_ops_env *env, const char *type, const char *identity,
	    custody_assignment *stored, custody_err *err)
{
	int r = custody_store_get_assignment(env->store, type, identity, stored, err);

	if (r == CUSTODY_ENOTFOUND) {
		memset(stored, 0, sizeof(*stored));
		snprintf(stored->type, sizeof(stored->type), "%s", type);
		snprintf(stored->identity, sizeof(stored->identity), "%s", identity);
		return CUSTODY_OK;
	}
	if (r != CUSTODY_OK)
		return r;
	/* A change builds on the row: a forged one is neither kept as it
	 * is (a no-op) nor tagged anew with what it says. */
	if ((r = custody_ops_token(env, err)) != CUSTODY_OK)
		return r;
	return custody_store_check_assignment(env->store, stored, err);
}

/* A roll is published (metadata) from the moment it is staged; partners
 * need time to fetch the new key before it signs. */
static int
check_min_publish(const custody_change_request *req, int64_t now, custody_err *err)
{
	char when[CUSTODY_TIME_TEXT], earliest[CUSTODY_TIME_TEXT], span[32];
	int64_t soonest = now + req->min_publish;

	if (req->min_publish <= 0 || req->effective >= soonest)
		return CUSTODY_OK;
	custody_duration_format(req->min_publish, span, sizeof(span));
	custody_err_set(err, CUSTODY_EFAIL, "a roll of %s at %s is too soon: the earliest "
			"safe instant is %s, once the successor has been published for %s "
			"([rollover %s] min-publish)", req->type,
			custody_time_format(req->effective, when),
			custody_time_format(soonest, earliest), span, req->type);
	return custody_err_hint(err, "give --effective-date %s or later, or --force to roll "
				"sooner", earliest);
}

int
custody_change_plan(custody_ops_env *env, const custody_change_request *req,
		    const custody_cert_record *rec, custody_change *ch,
		    custody_err *err)
{
	custody_assignment stored;
	int64_t now = env->now;
	int r;

	memset(ch, 0, sizeof(*ch));
	if ((r = custody_policy_check_identity(req->type, req->identity, err)) != CUSTODY_OK ||
	    (r = custody_ops_store(env, err)) != CUSTODY_OK)
		return r;
	/* In a cluster of several nodes, global means every node: only a key
	 * that can travel (a package in the store) may be assigned there. */
	if ((r = custody_cluster_check_global(env->store, req->identity, rec->thumbprint,
					      req->replicable, err)) != CUSTODY_OK ||
	    (r = read_stored(env, req->type, req->identity, &stored, err)) != CUSTODY_OK)
		return r;
	custody_assign_resolve(&stored, now, &ch->before);
	ch->roll = req->roll;
	if (req->roll && (r = check_min_publish(req, now, err)) != CUSTODY_OK)
		return r;
	if (req->roll) {
		r = custody_assign_roll(&stored, rec->thumbprint, req->effective, now,
					&ch->after, &ch->outcome, err);
		if (r == CUSTODY_OK)
			custody_policy_roll_warning(req->type, req->effective - now,
						    ch->warning, sizeof(ch->warning));
	} else {
		r = custody_assign_set(&stored, rec->thumbprint, now, &ch->after,
				       &ch->outcome, err);
	}
	/* The version read is what the write is checked against. */
	ch->before.version = ch->after.version = stored.version;
	if (r != CUSTODY_OK)
		return r;
	/* The certificate must be valid when it becomes current. */
	r = custody_policy_check_valid_at(rec, req->roll ? req->effective : now, err);
	if (r != CUSTODY_OK && req->roll)
		custody_err_prefix(err, "at the effective date");
	return r;
}

int
custody_change_plan_cert(custody_ops_env *env, const custody_change_request *req,
			 const custody_cert_record *rec, custody_change *ch,
			 custody_err *err)
{
	const unsigned char *p = rec->der;
	X509 *x;
	int r;

	if ((x = d2i_X509(NULL, &p, (long)rec->der_len)) == NULL)
		return custody_err_openssl(err, CUSTODY_EFAIL, "certificate %s", rec->thumbprint);
	if ((r = custody_policy_check_cert(env->policy, x, err)) == CUSTODY_OK)
		r = custody_change_plan(env, req, rec, ch, err);
	X509_free(x);
	return r;
}

/* The time as audit details show it ("" for 0). */
static const char *
time_text(int64_t t, char buf[CUSTODY_TIME_TEXT])
{
	if (t == 0) {
		buf[0] = '\0';
		return buf;
	}
	return custody_time_format(t, buf);
}

int
custody_change_write(custody_txn *tx, custody_change *ch)
{
	char detail[160], t[CUSTODY_TIME_TEXT];
	int r;

	if (ch->outcome.noop && !ch->outcome.rolled)
		return CUSTODY_OK;
	if ((r = custody_store_put_assignment(tx->st, &ch->after, tx->err)) != CUSTODY_OK)
		return r;
	/* A roll that came due before this change is recorded first. */
	if (ch->outcome.rolled &&
	    (r = custody_change_audit_due_roll(tx, &ch->before)) != CUSTODY_OK)
		return r;
	if (ch->outcome.noop)
		return CUSTODY_OK;
	if (ch->roll) {
		snprintf(detail, sizeof(detail), "becomes current at %s%s%s",
			 time_text(ch->after.pending.effective, t),
			 ch->outcome.replaced_pending[0] != '\0' ? "; replaces pending " : "",
			 ch->outcome.replaced_pending);
		return custody_txn_audit(tx, "roll", ch->after.type, ch->after.identity,
					 ch->after.pending.thumbprint,
					 ch->before.current.thumbprint, detail);
	}
	snprintf(detail, sizeof(detail), "%s%s",
		 ch->outcome.cancelled_pending[0] != '\0' ? "cancels pending " : "",
		 ch->outcome.cancelled_pending);
	return custody_txn_audit(tx, "set", ch->after.type, ch->after.identity,
				 ch->after.current.thumbprint, ch->before.current.thumbprint,
				 detail[0] != '\0' ? detail : NULL);
}

int
custody_change_audit_due_roll(custody_txn *tx, const custody_assignment *resolved)
{
	char t[CUSTODY_TIME_TEXT], detail[80];

	snprintf(detail, sizeof(detail), "took effect at %s",
		 time_text(resolved->current.effective, t));
	return custody_txn_audit(tx, "roll-effective", resolved->type, resolved->identity,
				 resolved->current.thumbprint, resolved->previous.thumbprint,
				 detail);
}

int
custody_change_materialize_due_roll(custody_store *st, const char *node,
				    const char *type, const char *identity,
				    int64_t now, custody_assignment *rolled)
{
	custody_assignment stored, resolved;
	custody_err ignored;
	custody_txn tx;
	int r;

	if (rolled != NULL)
		memset(rolled, 0, sizeof(*rolled));
	custody_txn_init(&tx, st, NULL, node, &ignored);
	if ((r = custody_txn_begin(&tx)) != CUSTODY_OK)
		goto out;
	r = custody_store_get_assignment(st, type, identity, &stored, &ignored);
	if (r != CUSTODY_OK || !custody_assign_resolve(&stored, now, &resolved))
		goto out;
	if ((r = custody_store_put_assignment(st, &resolved, &ignored)) != CUSTODY_OK ||
	    (r = custody_change_audit_due_roll(&tx, &resolved)) != CUSTODY_OK ||
	    (r = custody_txn_commit(&tx)) != CUSTODY_OK)
		goto out;
	if (rolled != NULL)
		*rolled = resolved;
out:
	custody_txn_end(&tx, r);
	return r;
}

int
custody_change_apply(custody_txn *tx, const custody_cert_record *rec, custody_change *ch)
{
	return custody_change_apply_all(tx, rec, ch, 1);
}

int
custody_change_apply_all(custody_txn *tx, const custody_cert_record *rec,
			 custody_change *ch, size_t n)
{
	size_t i;
	int r;

	if ((r = custody_txn_begin(tx)) == CUSTODY_OK &&
	    (r = custody_store_put_cert(tx->st, rec, tx->err)) == CUSTODY_OK) {
		for (i = 0; i < n && r == CUSTODY_OK; i++)
			r = custody_change_write(tx, &ch[i]);
		if (r == CUSTODY_OK)
			r = custody_txn_commit(tx);
	}
	custody_txn_end(tx, r);
	return r;
}

/* The thumbprint a slot held before the removal. */
static const char *
removed_thumbprint(const custody_assignment *a, enum custody_slot_name slot)
{
	switch (slot) {
	case CUSTODY_SLOT_PREVIOUS: return a->previous.thumbprint;
	case CUSTODY_SLOT_PENDING: return a->pending.thumbprint;
	default: return a->current.thumbprint;
	}
}

int
custody_remove_plan(custody_ops_env *env, const custody_assignment *before,
		    enum custody_slot_name slot, int force, custody_removal *out,
		    custody_err *err)
{
	custody_assign_outcome outcome;

	memset(out, 0, sizeof(*out));
	out->before = *before;
	out->slot = slot;
	return custody_assign_remove(before, slot, env->now, env->policy->overlap, force,
				     &out->after, &outcome, err);
}

int
custody_remove(custody_ops_env *env, const custody_assignment *before,
	       enum custody_slot_name slot, int force, custody_removal *out,
	       custody_err *err)
{
	custody_txn tx;
	int r;

	if ((r = custody_remove_plan(env, before, slot, force, out, err)) != CUSTODY_OK)
		return r;
	custody_txn_init(&tx, env->store, env->token, env->node, err);
	if ((r = custody_txn_begin(&tx)) == CUSTODY_OK &&
	    (r = custody_store_put_assignment(env->store, &out->after, err)) == CUSTODY_OK &&
	    (r = custody_txn_audit(&tx, "remove", out->after.type, out->after.identity,
				   removed_thumbprint(before, slot), NULL,
				   custody_slot_label(slot))) == CUSTODY_OK)
		r = custody_txn_commit(&tx);
	custody_txn_end(&tx, r);
	return r;
}
