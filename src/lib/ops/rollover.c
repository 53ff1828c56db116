/*
 * ops/rollover.c — custody rollover (custody/rollover.h): what a
 * [rollover TYPE] policy says is due, and the successor made by the
 * request ceremony (custody/request.h) under the store's rollover lease.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include <custody/audit.h>
#include <custody/cert.h>
#include <custody/cluster.h>
#include <custody/hook.h>
#include <custody/log.h>
#include <custody/request.h>
#include <custody/rollover.h>
#include <custody/timefmt.h>

#define DAY 86400

/* ------------------------------------------------------------ deciding */

/* The successor's effective instant (see custody_rollover_decide). */
static int64_t
effective_instant(const custody_rollover_facts *f)
{
	int64_t not_after = f->current_not_after;
	int64_t effective = not_after - f->policy->promote_before;
	int64_t wait = f->overlap > f->policy->min_publish ? f->overlap : f->policy->min_publish;

	if (effective < f->now + wait)
		effective = f->now + wait;
	if (effective > not_after && not_after > f->now)
		effective = not_after;
	return effective;
}

/* The roll: recorded once it took effect, or waiting for members. */
static void
decide_roll(const custody_rollover_facts *f, custody_rollover_decision *out)
{
	const custody_assignment *a = f->assignment;
	char t[CUSTODY_TIME_TEXT];

	if (f->rolled) {
		out->record_roll = 1;
		snprintf(out->roll_why, sizeof(out->roll_why), "the roll to %s took effect at "
			 "%s: it is recorded", a->current.thumbprint,
			 custody_time_format(a->current.effective, t));
	} else if (f->held) {
		out->held = 1;
		snprintf(out->roll_why, sizeof(out->roll_why), "the roll to %s was due at %s and "
			 "waits for %s: they do not report holding its key (custody sync there)",
			 a->pending.thumbprint, custody_time_format(a->pending.effective, t),
			 f->missing != NULL && f->missing[0] != '\0' ? f->missing : "a member");
	}
}

/* The previous: kept keep-previous (at least the overlap) after the roll
 * instant, then retired. */
static void
decide_retire(const custody_rollover_facts *f, custody_rollover_decision *out)
{
	const custody_assignment *a = f->assignment;
	int64_t keep = f->policy->keep_previous > f->overlap ? f->policy->keep_previous :
		       f->overlap;
	char t[CUSTODY_TIME_TEXT];

	if (a->previous.thumbprint[0] == '\0' || a->current.thumbprint[0] == '\0')
		return;
	out->retire_at = a->current.effective + keep;
	out->retire = f->now >= out->retire_at;
	snprintf(out->retire_why, sizeof(out->retire_why), "the previous certificate %s %s %s",
		 a->previous.thumbprint, out->retire ? "is retired: it was kept until" :
		 "stays until", custody_time_format(out->retire_at, t));
}

void
custody_rollover_decide(const custody_rollover_facts *f, custody_rollover_decision *out)
{
	const custody_assignment *a = f->assignment;
	char t[CUSTODY_TIME_TEXT];

	memset(out, 0, sizeof(*out));
	out->due = CUSTODY_ROLLOVER_NOTHING;
	if (f->policy->enabled) {
		decide_roll(f, out);
		decide_retire(f, out);
	}
	if (!f->policy->enabled) {
		snprintf(out->why, sizeof(out->why), "the rollover policy is not enabled");
		return;
	}
	if (a->current.thumbprint[0] == '\0' || f->current_not_after == 0) {
		snprintf(out->why, sizeof(out->why), "no current certificate to roll over");
		return;
	}
	out->generate_at = f->current_not_after - f->policy->generate_before;
	if (a->pending.thumbprint[0] != '\0') {
		snprintf(out->why, sizeof(out->why), "successor %s is pending for %s",
			 a->pending.thumbprint, custody_time_format(a->pending.effective, t));
		return;
	}
	if (f->waiting_key_id != NULL && f->waiting_key_id[0] != '\0') {
		snprintf(out->why, sizeof(out->why), "the request for key id %s waits for its "
			 "certificate (custody import stages it)", f->waiting_key_id);
		return;
	}
	if (f->now < out->generate_at) {
		snprintf(out->why, sizeof(out->why), "not due: the successor is made from %s",
			 custody_time_format(out->generate_at, t));
		return;
	}
	out->due = CUSTODY_ROLLOVER_GENERATE;
	out->effective = effective_instant(f);
	snprintf(out->why, sizeof(out->why), "due: %s expires %s, the successor is made from "
		 "%s", a->current.thumbprint, custody_time_format(f->current_not_after, t),
		 custody_time_format(out->generate_at, (char[CUSTODY_TIME_TEXT]){0}));
}

/* ------------------------------------------------------------ reading */

void
custody_rollover_targets_free(custody_rollover_target *t, size_t n)
{
	size_t i;

	for (i = 0; t != NULL && i < n; i++)
		custody_cert_record_clear(&t[i].current);
	free(t);
}

/* Whether the store holds a certificate of key_id. */
static int
store_has_key_cert(const custody_cert_record *certs, size_t n, const char *key_id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcasecmp(certs[i].key_id, key_id) == 0)
			return 1;
	return 0;
}

/* Whether a request made on this node still waits: its private key on
 * the token, no certificate beside it (a key removed since was given up). */
static int
waits_on_token(custody_ops_env *env, const char *key_id)
{
	custody_token_key_objects objs;
	custody_err ignored;

	if (custody_ops_token(env, &ignored) != CUSTODY_OK ||
	    custody_token_count_key_objects(env->token, key_id, &objs, &ignored) != CUSTODY_OK)
		return 1;	/* cannot tell: never a second request */
	return objs.private_keys > 0 && objs.certificates == 0;
}

/* The newest rollover request of (type, identity) that waits for its
 * certificate, from the audit log, into out ("" when none): the newest
 * "request" entry of the pair without a thumbprint (a csr request's; a
 * self-signed one names its certificate), read alone. */
static int
find_waiting_request(custody_ops_env *env, const char *type, const char *identity,
		     char out[CUSTODY_KEY_ID_HEX + 1], custody_err *err)
{
	custody_audit_entry e;
	custody_cert_record *certs = NULL;
	size_t n_certs = 0;
	char id[CUSTODY_KEY_ID_HEX + 1];
	int r;

	out[0] = '\0';
	memset(&e, 0, sizeof(e));
	r = custody_store_find_audit(env->store, CUSTODY_AUDIT_REQUEST, type, identity, "", &e,
				     err);
	if (r == CUSTODY_ENOTFOUND) {
		custody_err_clear(err);
		return CUSTODY_OK;
	}
	if (r != CUSTODY_OK || !custody_request_csr_key_id(&e, id))
		goto out;
	if ((r = custody_store_list_certs(env->store, &certs, &n_certs, err)) != CUSTODY_OK)
		goto out;
	if (!store_has_key_cert(certs, n_certs, id) &&
	    (strcmp(e.node, env->node) != 0 || waits_on_token(env, id)))
		memcpy(out, id, sizeof(id));
out:
	custody_cert_records_free(certs, n_certs);
	custody_audit_entry_clear(&e);
	return r;
}

/* Whether the audit log has an entry of action for (type, identity,
 * thumbprint): 1, 0, or -1 with err set. */
static int
audit_has(custody_store *st, const char *action, const char *type, const char *identity,
	  const char *thumbprint, custody_err *err)
{
	custody_audit_entry e;
	int r;

	memset(&e, 0, sizeof(e));
	r = custody_store_find_audit(st, action, type, identity, thumbprint, &e, err);
	custody_audit_entry_clear(&e);
	if (r == CUSTODY_ENOTFOUND) {
		custody_err_clear(err);
		return 0;
	}
	return r == CUSTODY_OK ? 1 : -1;
}

/* The hooks owed: post-stage for the pending certificate, post-roll for a
 * current one that came by a roll ("roll" staged it); each once. */
static int
read_hooks_owed(custody_ops_env *env, custody_rollover_target *t, custody_err *err)
{
	const custody_assignment *a = &t->assignment;
	int has, staged = 0;

	t->post_stage_owed = t->post_roll_owed = 0;
	if (t->policy->post_stage[0] != '\0' && a->pending.thumbprint[0] != '\0') {
		if ((has = audit_has(env->store, CUSTODY_ROLLOVER_POST_STAGE, a->type, a->identity,
				     a->pending.thumbprint, err)) < 0)
			return err->code;
		t->post_stage_owed = !has;
	}
	if (t->policy->post_roll[0] != '\0' && a->current.thumbprint[0] != '\0') {
		if ((has = audit_has(env->store, CUSTODY_ROLLOVER_POST_ROLL, a->type, a->identity,
				     a->current.thumbprint, err)) < 0)
			return err->code;
		if (!has && (staged = audit_has(env->store, CUSTODY_AUDIT_ROLL, a->type, a->identity,
						a->current.thumbprint, err)) < 0)
			return err->code;
		t->post_roll_owed = !has && staged;
	}
	return CUSTODY_OK;
}

/* Reads target's assignment, current certificate and waiting request at
 * env->now, and decides. */
static int
read_target(custody_ops_env *env, custody_rollover_target *t, const char *type,
	    const char *identity, custody_err *err)
{
	custody_assignment stored;
	custody_rollover_facts f;
	char missing[256] = "";
	size_t n_needed = 0, n_missing = 0;
	int r;

	custody_cert_record_clear(&t->current);
	if ((r = custody_store_get_assignment(env->store, type, identity, &stored, err)) !=
	    CUSTODY_OK)
		return r;
	memset(&f, 0, sizeof(f));
	f.rolled = custody_assign_resolve(&stored, env->now, &t->assignment);
	f.held = stored.hold_pending && stored.pending.thumbprint[0] != '\0' &&
		 stored.pending.effective <= env->now;
	if (f.held && (r = custody_store_roll_gate(env->store, &stored, &n_needed, &n_missing,
						   missing, sizeof(missing), err)) != CUSTODY_OK)
		return r;
	f.missing = missing;
	if (t->assignment.current.thumbprint[0] != '\0' &&
	    (r = custody_store_get_cert(env->store, t->assignment.current.thumbprint,
					&t->current, err)) != CUSTODY_OK)
		return r;
	if (t->policy->mode == CUSTODY_ROLLOVER_CSR &&
	    (r = find_waiting_request(env, type, identity, t->waiting_key_id, err)) !=
	    CUSTODY_OK)
		return r;
	if ((r = read_hooks_owed(env, t, err)) != CUSTODY_OK)
		return r;
	f.policy = t->policy;
	f.assignment = &t->assignment;
	f.current_not_after = t->current.der != NULL ? t->current.not_after : 0;
	f.waiting_key_id = t->waiting_key_id;
	f.now = env->now;
	f.overlap = env->policy->overlap;
	custody_rollover_decide(&f, &t->decision);
	return CUSTODY_OK;
}

int
custody_rollover_has_work(const custody_rollover_target *t)
{
	return t->decision.due == CUSTODY_ROLLOVER_GENERATE || t->decision.record_roll ||
	       t->decision.retire || t->post_stage_owed || t->post_roll_owed;
}

static int
plan_one(custody_ops_env *env, const custody_config *cfg, const custody_rollover_policy *p,
	 const custody_assignment *a, custody_rollover_target *t, custody_err *err)
{
	memset(t, 0, sizeof(*t));
	t->policy = p;
	t->cfg = cfg;
	return read_target(env, t, a->type, a->identity, err);
}

int
custody_rollover_plan(custody_ops_env *env, const custody_config *cfg, const char *only_type,
		      custody_rollover_target **out, size_t *n_out, custody_err *err)
{
	custody_assignment *all = NULL;
	custody_rollover_target *t = NULL;
	const custody_rollover_policy *p;
	size_t n_all = 0, n = 0, i;
	int r;

	*out = NULL;
	*n_out = 0;
	/* The store alone: a run with nothing due needs no token (no PIN).
	 * What is made is decided again under the lease, with the token
	 * open and the store's integrity tags checked. */
	if ((r = custody_ops_store(env, err)) != CUSTODY_OK ||
	    (r = custody_store_list_assignments(env->store, &all, &n_all, err)) != CUSTODY_OK)
		return r;
	if ((t = calloc(n_all + 1, sizeof(*t))) == NULL) {
		r = custody_err_set(err, CUSTODY_EFAIL, "cannot plan the rollover: out of memory");
		goto out;
	}
	for (i = 0; i < n_all; i++) {
		p = custody_config_rollover(cfg, all[i].type);
		if (p == NULL || !p->enabled ||
		    (only_type != NULL && strcmp(p->type, only_type) != 0))
			continue;
		if ((r = plan_one(env, cfg, p, &all[i], &t[n], err)) != CUSTODY_OK) {
			custody_err_prefix(err, "%s/%s", all[i].type, all[i].identity);
			goto out;
		}
		n++;
	}
	*out = t;
	*n_out = n;
	t = NULL;
out:
	custody_rollover_targets_free(t, n_all);	/* zeroed beyond n */
	free(all);
	return r;
}

/* ------------------------------------------------------------ the lease */

/* The real clock: the lease is about processes running now, not --at. */
static int64_t
wall_clock(void)
{
	return (int64_t)time(NULL);
}

/* The furthest expiry a lease taken now may have (a minute of clock skew
 * between the nodes allowed). */
static int64_t
lease_limit(void)
{
	return wall_clock() + CUSTODY_ROLLOVER_LEASE_SECONDS + 60;
}

/* Takes the rollover lease for this process: ECONFLICT naming its holder
 * when another run holds it. */
static int
lease_take(custody_ops_env *env, custody_err *err)
{
	char value[256], holder[CUSTODY_NAME_MAX + 1], t[CUSTODY_TIME_TEXT], head[80];
	long pid = 0;
	long long until = 0;
	int64_t seq;
	int r;

	if ((r = custody_store_begin(env->store, err)) != CUSTODY_OK)
		return r;
	/* Reading the audit head inside the transaction locks it (PostgreSQL:
	 * FOR UPDATE; SQLite: the transaction is the one writer): a second
	 * taker reads the lease only once the first has committed. */
	if ((r = custody_store_audit_head(env->store, &seq, head, err)) != CUSTODY_OK &&
	    r != CUSTODY_ENOTFOUND)
		goto out;
	r = custody_store_get_meta(env->store, CUSTODY_ROLLOVER_LEASE, value, sizeof(value), err);
	if (r == CUSTODY_OK && sscanf(value, "%64s %ld %lld", holder, &pid, &until) == 3 &&
	    until > lease_limit()) {
		/* No run takes a lease that long: a store writer's, which
		 * would stop every rollover. */
		custody_warn("the store's rollover lease (node %s, process %ld) says it is held "
			     "until %s: longer than a run may hold it, not honoured", holder, pid,
			     custody_time_format((int64_t)until, t));
		until = 0;
	}
	if (r == CUSTODY_OK && until > wall_clock() &&
	    !(strcmp(holder, env->node) == 0 && pid == (long)getpid())) {
		r = custody_err_set(err, CUSTODY_ECONFLICT, "another rollover (node %s, process "
				    "%ld) holds the store's rollover lease until %s", holder, pid,
				    custody_time_format((int64_t)until, t));
		goto out;
	}
	if (r != CUSTODY_OK && r != CUSTODY_ENOTFOUND)
		goto out;
	snprintf(value, sizeof(value), "%s %ld %lld", env->node, (long)getpid(),
		 (long long)(wall_clock() + CUSTODY_ROLLOVER_LEASE_SECONDS));
	if ((r = custody_store_put_meta(env->store, CUSTODY_ROLLOVER_LEASE, value, 1, err)) ==
	    CUSTODY_OK)
		r = custody_store_commit(env->store, err);
out:
	if (r != CUSTODY_OK)
		custody_store_rollback(env->store);
	return r;
}

/* Lets the lease go when this process holds it (best effort: it expires
 * anyway). */
static void
lease_release(custody_ops_env *env)
{
	char value[256], holder[CUSTODY_NAME_MAX + 1];
	long pid = 0;
	long long until = 0;
	custody_err err;

	if (custody_store_begin(env->store, &err) != CUSTODY_OK)
		return;
	if (custody_store_get_meta(env->store, CUSTODY_ROLLOVER_LEASE, value, sizeof(value),
				   &err) == CUSTODY_OK &&
	    sscanf(value, "%64s %ld %lld", holder, &pid, &until) == 3 &&
	    strcmp(holder, env->node) == 0 && pid == (long)getpid()) {
		snprintf(value, sizeof(value), "%s %ld 0", env->node, pid);
		if (custody_store_put_meta(env->store, CUSTODY_ROLLOVER_LEASE, value, 1, &err) ==
		    CUSTODY_OK && custody_store_commit(env->store, &err) == CUSTODY_OK)
			return;
	}
	custody_store_rollback(env->store);
}

/* ------------------------------------------------------------ the request */

/* "RSA-2048" -> "rsa:2048", "EC-P256" -> "ec:p256": the current key's
 * kind, as a key spec. */
static void
spec_text_of(const char *algorithm, char *buf, size_t size)
{
	size_t i;

	if (strncasecmp(algorithm, "RSA-", 4) == 0)
		snprintf(buf, size, "rsa:%s", algorithm + 4);
	else if (strncasecmp(algorithm, "EC-", 3) == 0)
		snprintf(buf, size, "ec:%s", algorithm + 3);
	else
		snprintf(buf, size, "%s", algorithm);
	for (i = 0; buf[i] != '\0'; i++)
		if (buf[i] >= 'A' && buf[i] <= 'Z')
			buf[i] = (char)(buf[i] - 'A' + 'a');
}

/* The subject and SANs of the successor: the policy's, else the current
 * certificate's. */
static int
successor_names(const custody_rollover_target *t, custody_request *rq, custody_err *err)
{
	const custody_rollover_policy *p = t->policy;
	const unsigned char *der = t->current.der;
	X509 *x = NULL;
	int idx, r = CUSTODY_OK;

	if (p->subject[0] != '\0' && (r = custody_dn_parse(p->subject, &rq->subject, err)) !=
	    CUSTODY_OK)
		return custody_err_prefix(err, "[rollover %s] subject", p->type);
	if (p->san[0] != '\0' && (r = custody_san_parse(p->san, &rq->san, err)) != CUSTODY_OK)
		return custody_err_prefix(err, "[rollover %s] san", p->type);
	rq->san_text = p->san[0] != '\0' ? p->san : NULL;
	if ((x = d2i_X509(NULL, &der, (long)t->current.der_len)) == NULL ||
	    (rq->subject == NULL &&
	     (rq->subject = X509_NAME_dup(X509_get_subject_name(x))) == NULL) ||
	    (p->san[0] == '\0' && (idx = X509_get_ext_by_NID(x, NID_subject_alt_name, -1)) >= 0 &&
	     (rq->san = X509_EXTENSION_dup(X509_get_ext(x, idx))) == NULL))
		r = custody_err_openssl(err, CUSTODY_EFAIL, "cannot read the names of "
					"certificate %s", t->current.thumbprint);
	X509_free(x);
	if (r == CUSTODY_OK)
		custody_dn_text(rq->subject, rq->subject_text, sizeof(rq->subject_text));
	return r;
}

/* Replicable as the policy says, else as the current key: extractable
 * (under trusted wrap) on this token, or packaged in the store. */
static int
successor_replicable(custody_ops_env *env, const custody_rollover_target *t)
{
	custody_key_attrs attrs;
	custody_package_record pkg;
	custody_err ignored;
	int packaged;

	if (t->policy->replicable >= 0)
		return t->policy->replicable;
	if (custody_token_key_attrs(env->token, t->current.key_id, &attrs, &ignored) ==
	    CUSTODY_OK && attrs.extractable == 1)
		return 1;
	memset(&pkg, 0, sizeof(pkg));
	packaged = custody_store_get_package(env->store, t->current.thumbprint, &pkg,
					     &ignored) == CUSTODY_OK;
	custody_package_record_clear(&pkg);
	return packaged;
}

/* rq->label, or when another key holds it already (a run on another
 * store that shares this token, in the same second), the first of
 * LABEL-2 .. LABEL-9 that is free. */
static int
free_label(custody_token *tok, custody_request *rq, custody_err *err)
{
	char base[sizeof(rq->label)];
	int used = 0, n, r;

	snprintf(base, sizeof(base), "%s", rq->label);
	for (n = 2; n <= 9; n++) {
		if ((r = custody_token_label_used(tok, rq->label, &used, err)) != CUSTODY_OK ||
		    !used)
			return r;
		snprintf(rq->label, sizeof(rq->label), "%.*s-%d",
			 (int)(sizeof(rq->label) - 3), base, n);
	}
	return CUSTODY_OK;	/* check_token names the label taken */
}

/* The request of the successor: key, names, label, validity, where it
 * may go; checked against the policy and the token before anything is
 * made. */
static int
prepare_request(custody_ops_env *env, const custody_rollover_target *t, custody_request *rq,
		custody_err *err)
{
	const custody_rollover_policy *p = t->policy;
	char spec[32], stamp[32];
	struct tm tm;
	time_t now = (time_t)env->now;
	int r;

	spec_text_of(t->current.key_algorithm, spec, sizeof(spec));
	if ((r = custody_keyspec_parse(p->key[0] != '\0' ? p->key : spec, &rq->spec, err)) !=
	    CUSTODY_OK ||
	    (r = custody_request_check_key_policy(env->policy, &rq->spec, err)) != CUSTODY_OK ||
	    (r = successor_names(t, rq, err)) != CUSTODY_OK)
		return r;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(rq->label, sizeof(rq->label), "%s-%s-%s", t->assignment.type,
		 t->assignment.identity, stamp);
	if ((r = free_label(env->token, rq, err)) != CUSTODY_OK)
		return r;
	rq->days = p->validity_days > 0 ? p->validity_days :
		(long)((t->current.not_after - t->current.not_before + DAY - 1) / DAY);
	if (rq->days < 1)
		rq->days = 1;
	rq->replicable = successor_replicable(env, t);
	rq->now = env->now;
	rq->node = env->node;
	rq->type = t->assignment.type;
	rq->identity = t->assignment.identity;
	return custody_request_check_token(env->token, rq, err);
}

/* The token's word on the new private key, for the result. */
static void
note_key(custody_ops_env *env, const custody_request *rq, custody_rollover_result *res)
{
	custody_key_attrs attrs;
	custody_err ignored;

	snprintf(res->key_id, sizeof(res->key_id), "%s", rq->key_id);
	snprintf(res->key_algorithm, sizeof(res->key_algorithm), "%s", rq->spec.name);
	res->replicable = rq->replicable;
	res->extractable = -1;
	if (custody_token_key_attrs(env->token, rq->key_id, &attrs, &ignored) == CUSTODY_OK)
		res->extractable = attrs.extractable;
	custody_step("the token says the new private key is %s", res->extractable == 1 ?
		     "extractable (only under trusted wrap: replicable)" :
		     res->extractable == 0 ? "not extractable" : "of unknown extractability");
}

/* Self-signed: the certificate made in the token, put beside its key and
 * into the store with its roll, in one transaction. */
static int
make_self_signed(custody_ops_env *env, custody_rollover_target *t, custody_request *rq,
		 custody_rollover_result *res, custody_err *err)
{
	custody_change_request req;
	custody_cert_record rec;
	custody_change ch;
	X509 *x = NULL;
	int r;

	memset(&rec, 0, sizeof(rec));
	memset(&ch, 0, sizeof(ch));
	memset(&req, 0, sizeof(req));
	if (rq->replicable &&
	    (r = custody_request_plan_package(env->token, env->store, rq, err)) != CUSTODY_OK)
		return r;
	if ((r = custody_request_generate(env->token, rq, err)) != CUSTODY_OK)
		return r;
	note_key(env, rq, res);
	req.type = t->assignment.type;
	req.identity = t->assignment.identity;
	req.roll = 1;
	req.effective = t->decision.effective;
	req.replicable = rq->package;
	if ((r = custody_request_make_cert(env->token, env->policy, rq, &x, err)) != CUSTODY_OK ||
	    (r = custody_cert_record_from_x509(x, &rec, err)) != CUSTODY_OK ||
	    (r = custody_change_plan(env, &req, &rec, &ch, err)) != CUSTODY_OK ||
	    (r = custody_request_store_cert(env->token, env->store, rq, x, &rec, &ch, err)) !=
	    CUSTODY_OK)
		goto out;
	custody_step("staged %s as the pending certificate of %s/%s, effective %s",
		     rec.thumbprint, req.type, req.identity,
		     custody_time_format(req.effective, (char[CUSTODY_TIME_TEXT]){0}));
	memcpy(res->thumbprint, rec.thumbprint, sizeof(res->thumbprint));
	res->not_after = rec.not_after;
	res->effective = req.effective;
	res->made = 1;
out:
	custody_cert_record_clear(&rec);
	X509_free(x);
	return r;
}

/* CSR mode: the request into csr-dir (a new file), signed in the token,
 * and its audit entry naming the type and identity. */
static int
make_csr(custody_ops_env *env, custody_rollover_target *t, custody_request *rq,
	 custody_rollover_result *res, custody_err *err)
{
	int r;

	/* TYPE-IDENTITY-TIME.csr: the label, which names the key too. */
	snprintf(res->csr_path, sizeof(res->csr_path), "%s/%s.csr", t->policy->csr_dir,
		 rq->label);
	rq->csr_path = res->csr_path;
	if ((r = custody_request_create_file(rq, err)) != CUSTODY_OK ||
	    (r = custody_request_generate(env->token, rq, err)) != CUSTODY_OK)
		return r;
	note_key(env, rq, res);
	if ((r = custody_request_write_csr(env->token, env->policy, rq, err)) != CUSTODY_OK ||
	    (r = custody_request_record_csr(env->token, env->store, rq, err)) != CUSTODY_OK)
		return r;
	custody_step("the request for %s/%s waits for its certificate: custody import --path "
		     "CERT stages it", t->assignment.type, t->assignment.identity);
	res->made = 1;
	return CUSTODY_OK;
}

/* The due roll, written with its "roll-effective" entry. */
static int
record_roll(custody_ops_env *env, custody_rollover_target *t, custody_rollover_result *res)
{
	custody_assignment rolled;
	int r;

	r = custody_change_materialize_due_roll(env->store, env->node, t->assignment.type,
						t->assignment.identity, env->now, &rolled);
	if (r == CUSTODY_OK && rolled.current.thumbprint[0] != '\0') {
		res->recorded = 1;
		custody_step("%s/%s: %s", t->assignment.type, t->assignment.identity,
			     t->decision.roll_why);
	}
	return r;
}

/* The previous certificate out of the assignment, with a "remove" entry
 * (its key and certificate stay on the token until custody delete). */
static int
retire_previous(custody_ops_env *env, custody_rollover_target *t,
		custody_rollover_result *res, custody_err *err)
{
	custody_assignment stored;
	custody_removal removal;
	int r;

	if ((r = custody_store_get_assignment(env->store, t->assignment.type,
					      t->assignment.identity, &stored, err)) !=
	    CUSTODY_OK)
		return r;
	if ((r = custody_remove(env, &stored, CUSTODY_SLOT_PREVIOUS, 0, &removal, err)) !=
	    CUSTODY_OK)
		return r;
	memcpy(res->retired, removal.before.previous.thumbprint, sizeof(res->retired));
	custody_step("%s/%s: %s; its key stays on the token until custody delete",
		     t->assignment.type, t->assignment.identity, t->decision.retire_why);
	return CUSTODY_OK;
}

/* Each hook owed is claimed in the audit log under the lease ("started
 * on node N"), so that one run, on one node, runs it; the run itself
 * (custody_rollover_run_hooks) needs neither the lease nor the token. */
static int
claim_hooks(custody_ops_env *env, custody_rollover_target *t, custody_rollover_result *res,
	    custody_err *err)
{
	const custody_assignment *a = &t->assignment;
	char detail[CUSTODY_NAME_MAX + 32];
	custody_txn tx;
	int r;

	if (!t->post_stage_owed && !t->post_roll_owed)
		return CUSTODY_OK;
	snprintf(detail, sizeof(detail), "started on node %s", env->node);
	custody_txn_init(&tx, env->store, env->token, env->node, err);
	if ((r = custody_txn_begin(&tx)) == CUSTODY_OK && t->post_stage_owed)
		r = custody_txn_audit(&tx, CUSTODY_ROLLOVER_POST_STAGE, a->type, a->identity,
				      a->pending.thumbprint, a->current.thumbprint, detail);
	if (r == CUSTODY_OK && t->post_roll_owed)
		r = custody_txn_audit(&tx, CUSTODY_ROLLOVER_POST_ROLL, a->type, a->identity,
				      a->current.thumbprint, a->previous.thumbprint, detail);
	if (r == CUSTODY_OK)
		r = custody_txn_commit(&tx);
	custody_txn_end(&tx, r);
	if (r == CUSTODY_OK) {
		res->claimed[0] = t->post_stage_owed;
		res->claimed[1] = t->post_roll_owed;
		memcpy(res->hook_for[0], a->pending.thumbprint, sizeof(res->hook_for[0]));
		memcpy(res->hook_for[1], a->current.thumbprint, sizeof(res->hook_for[1]));
		memcpy(res->hook_prev[0], a->current.thumbprint, sizeof(res->hook_prev[0]));
		memcpy(res->hook_prev[1], a->previous.thumbprint, sizeof(res->hook_prev[1]));
		res->hook_effective[0] = a->pending.effective;
		res->hook_effective[1] = a->current.effective;
	}
	return r;
}

static int make_successor(custody_ops_env *env, custody_rollover_target *t,
			  int planned, custody_rollover_result *res, custody_err *err);

/* Under the lease, each step decided again from the store: the roll, the
 * previous, the successor, the hooks' claims. */
static int
apply_leased(custody_ops_env *env, custody_rollover_target *t, custody_rollover_result *res,
	     custody_err *err)
{
	char type[CUSTODY_NAME_MAX + 1], identity[CUSTODY_NAME_MAX + 1];
	int planned = t->decision.due == CUSTODY_ROLLOVER_GENERATE, r;

	memcpy(type, t->assignment.type, sizeof(type));
	memcpy(identity, t->assignment.identity, sizeof(identity));
	if ((r = read_target(env, t, type, identity, err)) != CUSTODY_OK)
		return r;
	if (t->decision.record_roll &&
	    ((r = record_roll(env, t, res)) != CUSTODY_OK ||
	     (r = read_target(env, t, type, identity, err)) != CUSTODY_OK))
		return r;
	if (t->decision.retire &&
	    ((r = retire_previous(env, t, res, err)) != CUSTODY_OK ||
	     (r = read_target(env, t, type, identity, err)) != CUSTODY_OK))
		return r;
	if ((r = make_successor(env, t, planned, res, err)) != CUSTODY_OK ||
	    (res->made && (r = read_target(env, t, type, identity, err)) != CUSTODY_OK))
		return r;
	return claim_hooks(env, t, res, err);
}

/* The successor, when it is still due. */
static int
make_successor(custody_ops_env *env, custody_rollover_target *t, int planned,
	       custody_rollover_result *res, custody_err *err)
{
	const char *type = t->assignment.type, *identity = t->assignment.identity;
	custody_request rq;
	int r;

	if (t->decision.due != CUSTODY_ROLLOVER_GENERATE) {
		snprintf(res->why, sizeof(res->why), "%s", t->decision.why);
		if (planned)
			custody_step("%s/%s, decided again under the lease: %s", type,
				     identity, t->decision.why);
		return CUSTODY_OK;
	}
	custody_request_init(&rq);
	if ((r = prepare_request(env, t, &rq, err)) == CUSTODY_OK) {
		custody_step("%s/%s: making the successor of %s (%s mode)", type, identity,
			     t->assignment.current.thumbprint,
			     t->policy->mode == CUSTODY_ROLLOVER_CSR ? "csr" : "self-signed");
		r = t->policy->mode == CUSTODY_ROLLOVER_CSR ? make_csr(env, t, &rq, res, err) :
			make_self_signed(env, t, &rq, res, err);
	}
	custody_request_finish(env->token, &rq, r == CUSTODY_OK);
	custody_request_clear(&rq);
	if (r != CUSTODY_OK)
		res->made = 0;
	return r;
}

int
custody_rollover_apply(custody_ops_env *env, custody_rollover_target *t,
		       custody_rollover_result *res, custody_err *err)
{
	int r;

	memset(res, 0, sizeof(*res));
	res->extractable = -1;
	if ((r = custody_ops_store(env, err)) != CUSTODY_OK)
		return r;
	custody_step("%s/%s: taking the store's rollover lease", t->assignment.type,
		     t->assignment.identity);
	r = lease_take(env, err);
	if (r == CUSTODY_ECONFLICT) {
		/* Not a failure: the holder makes the successor. */
		snprintf(res->why, sizeof(res->why), "%.200s: it makes the successor", err->msg);
		custody_step("%s", res->why);
		custody_err_clear(err);
		return CUSTODY_OK;
	}
	if (r != CUSTODY_OK)
		return r;
	/* The token after the lease: a run that stands back never waits for
	 * the token another run is generating on. */
	if ((r = custody_ops_token(env, err)) == CUSTODY_OK)
		r = apply_leased(env, t, res, err);
	lease_release(env);
	custody_step("%s/%s: let the rollover lease go", t->assignment.type,
		     t->assignment.identity);
	return r;
}

/* ------------------------------------------------------------ hooks */

const char *
custody_rollover_hook_name(int which)
{
	return which == 0 ? CUSTODY_ROLLOVER_POST_STAGE : CUSTODY_ROLLOVER_POST_ROLL;
}

#define HOOK_TIMEOUT_SECONDS 120
#define HOOK_VARS 8

/* NAME of a secret source env:NAME, into unset[*n]. */
static void
unset_env_source(const char *source, const char **unset, size_t *n)
{
	if (source != NULL && strncmp(source, "env:", 4) == 0 && source[4] != '\0')
		unset[(*n)++] = source + 4;
}

/* Runs hook `which` (0 post-stage, 1 post-roll) and says how it went. */
static void
run_one_hook(custody_ops_env *env, const custody_rollover_target *t, int which,
	     custody_rollover_result *res)
{
	char vars[HOOK_VARS][CUSTODY_NAME_MAX + 64], when[CUSTODY_TIME_TEXT];
	const char *set[HOOK_VARS + 1], *unset[3] = {NULL, NULL, NULL};
	const char *command = which == 0 ? t->policy->post_stage : t->policy->post_roll;
	custody_hook_result hr;
	custody_err err;
	size_t n_unset = 0, i;

	snprintf(vars[0], sizeof(vars[0]), "CUSTODY_HOOK=%s", custody_rollover_hook_name(which));
	snprintf(vars[1], sizeof(vars[1]), "CUSTODY_TYPE=%s", t->assignment.type);
	snprintf(vars[2], sizeof(vars[2]), "CUSTODY_IDENTITY=%s", t->assignment.identity);
	snprintf(vars[3], sizeof(vars[3]), "CUSTODY_THUMBPRINT=%s", res->hook_for[which]);
	snprintf(vars[4], sizeof(vars[4]), "CUSTODY_PREVIOUS_THUMBPRINT=%s",
		 res->hook_prev[which]);
	snprintf(vars[5], sizeof(vars[5]), "CUSTODY_EFFECTIVE=%s",
		 res->hook_effective[which] != 0 ?
		 custody_time_format(res->hook_effective[which], when) : "");
	snprintf(vars[6], sizeof(vars[6]), "CUSTODY_NODE=%s", env->node);
	for (i = 0; i < 7; i++)
		set[i] = vars[i];
	set[7] = NULL;
	if (t->cfg != NULL) {
		unset_env_source(t->cfg->pin_source, unset, &n_unset);
		unset_env_source(t->cfg->so_pin_source, unset, &n_unset);
	}
	custody_step("%s/%s: running the %s hook for %s", t->assignment.type,
		     t->assignment.identity, custody_rollover_hook_name(which), res->hook_for[which]);
	memset(&hr, 0, sizeof(hr));
	/* Whatever happened, hr says it (a failure to start in its output). */
	(void)custody_hook_run(command, set, unset, HOOK_TIMEOUT_SECONDS, &hr, &err);
	custody_hook_describe(custody_rollover_hook_name(which), &hr, res->hook_outcome[which],
			      sizeof(res->hook_outcome[which]));
	res->hook_failed[which] = hr.status != 0;
	if (res->hook_failed[which])
		custody_warn("%s/%s: %s (the roll stands)", t->assignment.type,
			     t->assignment.identity, res->hook_outcome[which]);
	else
		custody_step("%s/%s: %s", t->assignment.type, t->assignment.identity,
			     res->hook_outcome[which]);
}

int
custody_rollover_run_hooks(custody_ops_env *env, const custody_rollover_target *t,
			   custody_rollover_result *res, custody_err *err)
{
	custody_txn tx;
	int which, r = CUSTODY_OK;

	for (which = 0; which < 2 && r == CUSTODY_OK; which++) {
		if (!res->claimed[which])
			continue;
		run_one_hook(env, t, which, res);
		/* The outcome needs the store's tags: the token again. */
		if ((r = custody_ops_token(env, err)) != CUSTODY_OK)
			break;
		custody_txn_init(&tx, env->store, env->token, env->node, err);
		if ((r = custody_txn_begin(&tx)) == CUSTODY_OK &&
		    (r = custody_txn_audit(&tx, custody_rollover_hook_name(which), t->assignment.type,
					   t->assignment.identity, res->hook_for[which],
					   res->hook_prev[which], res->hook_outcome[which])) ==
		    CUSTODY_OK)
			r = custody_txn_commit(&tx);
		custody_txn_end(&tx, r);
	}
	return r;
}

/* ------------------------------------------------------------ import */

int
custody_rollover_request_of_key(custody_store *st, const char *key_id,
				char type[CUSTODY_NAME_MAX + 1],
				char identity[CUSTODY_NAME_MAX + 1], custody_err *err)
{
	custody_audit_entry *log = NULL;
	char id[CUSTODY_KEY_ID_HEX + 1];
	size_t n = 0, i;
	int found = 0;

	type[0] = identity[0] = '\0';
	if (custody_store_list_audit(st, 0, &log, &n, err) != CUSTODY_OK)
		return -1;
	for (i = n; i-- > 0 && !found;) {
		if (log[i].type[0] == '\0' || log[i].identity[0] == '\0' ||
		    !custody_request_csr_key_id(&log[i], id) || strcasecmp(id, key_id) != 0)
			continue;
		memcpy(type, log[i].type, CUSTODY_NAME_MAX + 1);
		memcpy(identity, log[i].identity, CUSTODY_NAME_MAX + 1);
		found = 1;
	}
	custody_audit_entries_free(log, n);
	return found;
}

int
custody_rollover_import_roll(custody_ops_env *env, const custody_config *cfg,
			     const char *key_id, int *found, char type[CUSTODY_NAME_MAX + 1],
			     char identity[CUSTODY_NAME_MAX + 1], int64_t *effective,
			     custody_err *err)
{
	custody_rollover_target t;
	custody_rollover_facts f;
	int r, of;

	*found = 0;
	*effective = 0;
	if ((r = custody_ops_token(env, err)) != CUSTODY_OK ||
	    (r = custody_ops_store(env, err)) != CUSTODY_OK)
		return r;
	if ((of = custody_rollover_request_of_key(env->store, key_id, type, identity, err)) < 0)
		return err->code;
	if (of == 0)
		return CUSTODY_OK;
	memset(&t, 0, sizeof(t));
	if ((t.policy = custody_config_rollover(cfg, type)) == NULL || !t.policy->enabled) {
		custody_step("the certificate answers the rollover request of %s/%s, but the "
			     "type has no enabled [rollover] policy: not staged (custody set "
			     "--roll stages it)", type, identity);
		return CUSTODY_OK;
	}
	if ((r = read_target(env, &t, type, identity, err)) != CUSTODY_OK) {
		custody_cert_record_clear(&t.current);
		return r;
	}
	memset(&f, 0, sizeof(f));
	f.policy = t.policy;
	f.assignment = &t.assignment;
	f.current_not_after = t.current.der != NULL ? t.current.not_after : 0;
	f.now = env->now;
	f.overlap = env->policy->overlap;
	*effective = f.current_not_after != 0 ? effective_instant(&f) : env->now + f.overlap;
	custody_cert_record_clear(&t.current);
	custody_step("the certificate answers the rollover request of %s/%s: it is staged as "
		     "the pending certificate, effective %s", type, identity,
		     custody_time_format(*effective, (char[CUSTODY_TIME_TEXT]){0}));
	*found = 1;
	return CUSTODY_OK;
}
