/*
 * cmd_test.c — `custody test` (Test-CsCertificateConfiguration): checks the
 * assignments that concern this node and prints one line per check,
 * "OK|WARNING|CRITICAL TYPE/IDENTITY: WHAT" (or JSON objects), nothing
 * else on stdout.  Its exit status follows the monitoring-plugin
 * convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (returned to main()
 * as CLI_EXIT(status)).
 *
 * Which assignments: those at identity global and at this node's identity
 * (with -t, only of that type), resolved at now (or --at).  For each:
 *   assigned      a certificate is current, and the store has it (its
 *                 record matches the certificate: the key id is that of
 *                 its public key — else CRITICAL, the store was changed)
 *   key           its private key is on this node's token and signs a
 *                 random challenge that the certificate's key verifies
 *   policy        key size / curve and SIP domain (policy.*)
 *   valid         valid now
 *   expiry        expires more than N days from now (--warn-days,
 *                 policy.warn-days), or a pending successor takes over
 *                 before — else WARNING
 *   successor     a successor is staged (pending) to take over before
 *                 the current certificate expires — else WARNING within
 *                 --successor-warn-days (policy, 60), CRITICAL within
 *                 --successor-critical-days (14): the thresholds that
 *                 operators of S2S certificates run (issue 15); a
 *                 successor that takes effect only after the current
 *                 one expires leaves a gap: WARNING
 *   pending       a pending certificate is valid at its effective date;
 *   pending-key   its key is here and matches (the roll happens by
 *   pending-policy itself at that date, so these are CRITICAL)
 *   rollout       a pending certificate's key is held by every member of
 *                 the cluster that signs with it (the roll waits for
 *                 them): WARNING before its effective date, CRITICAL
 *                 after, naming them; no line without a cluster
 *   published     with a [rollover TYPE] policy: the pending certificate
 *                 was staged (published in metadata) at least min-publish
 *                 before it takes effect, by the audit log's "roll"
 *                 entry — else WARNING (partners may not have its key)
 *   previous-key  the previous certificate's key is here and matches —
 *                 WARNING only: verifiers need just its certificate
 *                 (published from the store); the key matters only for a
 *                 roll back
 *   csr           a csr-mode rollover's request waits for its
 *                 certificate and nothing is pending: WARNING, CRITICAL
 *                 once the promotion date (notAfter - promote-before) has
 *                 passed
 *   token         the token can sign with each key's kind, and be a
 *                 cluster member when the store records a cluster KEK
 *                 (a line only when it cannot: CRITICAL)
 *   cluster       a global assignment's current key is reported held by
 *                 every joined node: CRITICAL when this node's last sync
 *                 reported it could not (with its reason), WARNING for
 *                 another node behind or this one not reported yet; no
 *                 line without joined nodes
 *
 * Decisions: with -t, nothing assigned for that type is CRITICAL (the
 * caller asked about a role this node should fill); without -t, nothing
 * assigned at all is UNKNOWN (there is nothing to check — often a wrong
 * --store, since opening a SQLite store creates it).  UNKNOWN also when
 * the checks cannot run: a usage error, the store cannot be opened or
 * read, the token cannot be opened or logged into.  A key missing from
 * the token is a finding (CRITICAL), not UNKNOWN.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/x509.h>

#include <custody/audit.h>
#include <custody/cluster.h>
#include <custody/config.h>
#include <custody/policy.h>
#include <custody/rollover.h>
#include <custody/timefmt.h>

#include "change.h"
#include "cli.h"

enum {
	OPT_TYPE = 't',
	OPT_WARN_DAYS = OPT_FIRST_COMMAND_OPTION,
	OPT_SUCCESSOR_WARN_DAYS,
	OPT_SUCCESSOR_CRITICAL_DAYS,
};

enum result { R_OK = 0, R_WARNING = 1, R_CRITICAL = 2, R_UNKNOWN = 3 };

static const char *const result_names[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};

#define DAY 86400
#define WARN_DAYS_MAX 36500

struct test_opts {
	const char *type;
	const char *warn_days;
	const char *successor_warn_days;
	const char *successor_critical_days;
};

struct test_run {
	struct cli *cli;
	const char *type;	/* canonical -t, or NULL                     */
	int warn_days;
	int successor_warn_days;
	int successor_critical_days;
	json_t *results;	/* {"check","result","type","identity",...}  */
	enum result worst;
	/* The last key this run saw sign and verify on the token. */
	char signed_tp[CUSTODY_THUMBPRINT_HEX + 1];
};

static json_t *
result_object(enum result result, const char *check, const char *type,
	      const char *identity, const char *thumbprint, const char *msg)
{
	return json_pack("{s:s, s:s, s:s?, s:s?, s:s, s:s?}",
			 "check", check, "result", result_names[result],
			 "type", type, "identity", identity, "message", msg,
			 "thumbprint", thumbprint);
}

/* Records one check.  type/identity/thumbprint may be NULL. */
static void
report(struct test_run *t, enum result result, const char *check,
       const char *type, const char *identity, const char *thumbprint,
       const char *fmt, ...) CUSTODY_PRINTF(7, 8);

static void
report(struct test_run *t, enum result result, const char *check,
       const char *type, const char *identity, const char *thumbprint,
       const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	json_t *o;
	size_t i;

	va_start(ap, fmt);
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		msg[0] = '\0';
	va_end(ap);
	if (thumbprint != NULL && thumbprint[0] == '\0')
		thumbprint = NULL;
	if ((o = result_object(result, check, type, identity, thumbprint, msg)) == NULL) {
		/* Not UTF-8 (a subject can hold anything): keep the line,
		 * with those bytes as '?'. */
		for (i = 0; msg[i] != '\0'; i++)
			if ((unsigned char)msg[i] >= 0x80)
				msg[i] = '?';
		o = result_object(result, check, type, identity, thumbprint, msg);
	}
	json_array_append_new(t->results, o);
	if (result > t->worst)
		t->worst = result;
}

/* With [agent] in the configuration: does an agent answer on its socket
 * (custody agent --status says more). */
static void
check_agent(struct test_run *t)
{
	const char *path;
	char why[256];
	long pid = -1;

	if (!t->cli->cfg.agent.configured)
		return;
	path = cli_agent_path(t->cli, NULL);
	if (cli_agent_probe(path, &pid, why, sizeof(why)))
		report(t, R_OK, "agent", NULL, NULL, NULL, "custody agent is up at %s (pid %ld)",
		       path, pid);
	else
		report(t, R_CRITICAL, "agent", NULL, NULL, NULL, "custody agent is down at %s: %s",
		       path, why);
}

/* One line per check on stdout (or the JSON array). */
static int
print_results(struct test_run *t)
{
	size_t i;
	json_t *o;

	if (t->cli->output == OUT_JSON) {
		int r = out_json(t->cli, t->results);

		t->results = NULL;
		return r;
	}
	json_array_foreach(t->results, i, o) {
		const char *type = json_string_value(json_object_get(o, "type"));
		const char *id = json_string_value(json_object_get(o, "identity"));

		printf("%s %s/%s: %s\n",
		       json_string_value(json_object_get(o, "result")),
		       type != NULL ? out_safe(type) : "*", id != NULL ? out_safe(id) : "*",
		       out_safe(json_string_value(json_object_get(o, "message"))));
	}
	return CUSTODY_OK;
}

/* The checks could not run: an UNKNOWN line says why (cli->err, which
 * main() prints on stderr too), after whatever was found so far. */
static int
give_up(struct test_run *t)
{
	report(t, R_UNKNOWN, "run", t->type, NULL, NULL, "%s",
	       t->cli->err.msg[0] != '\0' ? t->cli->err.msg : "the checks could not run");
	print_results(t);
	return CLI_EXIT(R_UNKNOWN);
}

static const char *
time_text(int64_t when, char buf[CUSTODY_TIME_TEXT])
{
	return custody_time_format(when, buf);
}

/* "12 days", "1 day", "less than a day". */
static void
days_text(int64_t seconds, char *buf, size_t size)
{
	long long days = (long long)(seconds / DAY);

	if (days < 1)
		snprintf(buf, size, "less than a day");
	else
		snprintf(buf, size, "%lld day%s", days, days == 1 ? "" : "s");
}

/* How long between two instants, as the published check says it: hours
 * ("30h", "1h59m57s") under two days, whole days ("75 days") from there. */
static void
span_text(int64_t seconds, char *buf, size_t size)
{
	if (seconds >= 2 * DAY)
		days_text(seconds, buf, size);
	else
		custody_duration_format(seconds, buf, size);
}

/* Reads the certificate of a slot from the store.  A certificate the
 * store lacks is reported as `missing`, a record that does not match the
 * certificate it holds (cannot be read, or names another key id: the
 * store was changed outside custody) as CRITICAL; both give ENOTFOUND:
 * the caller skips the slot's other checks (no challenge is signed with
 * a key the record names wrongly).  Any other store error goes to
 * cli->err: the run cannot go on. */
static int
load_cert(struct test_run *t, const custody_assignment *a, const char *check,
	  const char *what, enum result missing, const custody_slot *slot,
	  custody_cert_record *rec, X509 **x)
{
	custody_err e = {0};
	int r;

	memset(rec, 0, sizeof(*rec));
	*x = NULL;
	r = custody_store_get_cert(t->cli->store, slot->thumbprint, rec, &t->cli->err);
	if (r == CUSTODY_ENOTFOUND) {
		custody_err_clear(&t->cli->err);
		report(t, missing, check, a->type, a->identity, slot->thumbprint,
		       "%s %s is assigned but not in the store", what, slot->thumbprint);
		return CUSTODY_ENOTFOUND;
	}
	if (r != CUSTODY_OK) {
		/* A record that fails its integrity check, or a store that
		 * cannot be read: critical, named, and nothing else of it. */
		report(t, R_CRITICAL, check, a->type, a->identity, slot->thumbprint,
		       "%s", t->cli->err.msg);
		custody_err_clear(&t->cli->err);
		return CUSTODY_ENOTFOUND;
	}
	if (custody_cert_record_check(rec, x, &e) != CUSTODY_OK) {
		report(t, R_CRITICAL, check, a->type, a->identity, slot->thumbprint,
		       "%s", e.msg);
		custody_cert_record_clear(rec);
		return CUSTODY_ENOTFOUND;
	}
	return CUSTODY_OK;
}

/* The sign/verify challenge with the slot's key on this node's token. */
static void
check_key(struct test_run *t, const custody_assignment *a, const char *check,
	  const char *whose, enum result failed, const custody_cert_record *rec,
	  X509 *x)
{
	const char *label = custody_token_label(t->cli->token);
	EVP_PKEY *pub = X509_get0_pubkey(x);
	custody_err e = {0};
	int r;

	/* A token that cannot sign with keys of this kind says so. */
	if (pub != NULL &&
	    custody_token_require_key(t->cli->token, EVP_PKEY_get_base_id(pub),
				      EVP_PKEY_get_bits(pub), "sign with", &e) != CUSTODY_OK) {
		report(t, failed, check, a->type, a->identity, rec->thumbprint, "%s", e.msg);
		return;
	}
	r = custody_token_verify_key(t->cli->token, rec->key_id, x, &e);
	if (r == CUSTODY_OK) {
		snprintf(t->signed_tp, sizeof(t->signed_tp), "%s", rec->thumbprint);
		report(t, R_OK, check, a->type, a->identity, rec->thumbprint,
		       "private key %s%s on token %s signs and verifies",
		       rec->key_id, whose, label);
	} else if (r == CUSTODY_ENOTFOUND)
		report(t, failed, check, a->type, a->identity, rec->thumbprint,
		       "private key %s%s is not on token %s%s", rec->key_id, whose, label,
		       failed == R_WARNING ? " (verifiers need only its certificate; "
					     "a roll back to it would fail)" : "");
	else
		report(t, failed, check, a->type, a->identity, rec->thumbprint,
		       "%s", e.msg);
}

static void
check_policy(struct test_run *t, const custody_assignment *a, const char *check,
	     const char *what, const custody_cert_record *rec, X509 *x)
{
	const custody_policy *p = &t->cli->cfg.policy;
	custody_err e = {0};

	if (custody_policy_check_cert(p, x, &e) != CUSTODY_OK)
		report(t, R_CRITICAL, check, a->type, a->identity, rec->thumbprint,
		       "%s%s", what, e.msg);
	else if (p->sip_domain[0] != '\0')
		report(t, R_OK, check, a->type, a->identity, rec->thumbprint,
		       "%s%s meets the policy, for SIP domain %s", what,
		       rec->key_algorithm, p->sip_domain);
	else
		report(t, R_OK, check, a->type, a->identity, rec->thumbprint,
		       "%s%s meets the policy", what, rec->key_algorithm);
}

/* What is checked of a slot's certificate, once load_cert read it. */
typedef void check_cert_fn(struct test_run *t, const custody_assignment *a,
			   const custody_cert_record *rec, X509 *x);

/* Reads the certificate of a slot (load_cert: `check`, `what` and
 * `missing` say how a failure is reported), checks it with fn, and lets
 * it go.  A certificate that could not be read is reported, not an error. */
static int
check_slot(struct test_run *t, const custody_assignment *a, const custody_slot *slot,
	   const char *check, const char *what, enum result missing, check_cert_fn *fn)
{
	custody_cert_record rec;
	X509 *x = NULL;
	int r;

	r = load_cert(t, a, check, what, missing, slot, &rec, &x);
	if (r != CUSTODY_OK)
		return r == CUSTODY_ENOTFOUND ? CUSTODY_OK : r;
	fn(t, a, &rec, x);
	custody_cert_record_clear(&rec);
	X509_free(x);
	return CUSTODY_OK;
}

/*
 * The current certificate has a successor staged in time: a certificate
 * that expires with nothing to take over breaks every partner that
 * verifies it, and a successor needs time to be made (a CA, for a CSR)
 * and published.  Called once the current certificate is valid now.
 */
static void
check_successor(struct test_run *t, const custody_assignment *a,
		const custody_cert_record *rec)
{
	char na[CUSTODY_TIME_TEXT], eff[CUSTODY_TIME_TEXT], left[32];
	int64_t remaining = rec->not_after - t->cli->now;
	enum result result = R_OK;

	time_text(rec->not_after, na);
	if (a->pending.thumbprint[0] != '\0') {
		time_text(a->pending.effective, eff);
		if (a->pending.effective <= rec->not_after)
			report(t, R_OK, "successor", a->type, a->identity, a->pending.thumbprint,
			       "successor %s staged for %s", a->pending.thumbprint, eff);
		else
			report(t, R_WARNING, "successor", a->type, a->identity,
			       a->pending.thumbprint,
			       "successor %s takes effect at %s, after the current certificate "
			       "expires (%s): a gap in which no valid certificate signs",
			       a->pending.thumbprint, eff, na);
		return;
	}
	days_text(remaining, left, sizeof(left));
	if (remaining < (int64_t)t->successor_critical_days * DAY)
		result = R_CRITICAL;
	else if (remaining < (int64_t)t->successor_warn_days * DAY)
		result = R_WARNING;
	if (result != R_OK)
		report(t, result, "successor", a->type, a->identity, rec->thumbprint,
		       "certificate expires in %s (%s) and no successor is staged", left, na);
	else
		report(t, R_OK, "successor", a->type, a->identity, rec->thumbprint,
		       "certificate expires in %s (%s), not within %d days: no successor "
		       "is needed yet", left, na, t->successor_warn_days);
}

static void
check_current_cert(struct test_run *t, const custody_assignment *a,
		   const custody_cert_record *rec, X509 *x)
{
	custody_err e = {0};
	char nb[CUSTODY_TIME_TEXT], na[CUSTODY_TIME_TEXT], left[32];
	int64_t now = t->cli->now;

	report(t, R_OK, "assigned", a->type, a->identity, rec->thumbprint,
	       "certificate %s (%s) is current", rec->thumbprint,
	       rec->subject != NULL ? rec->subject : "");
	check_key(t, a, "key", "", R_CRITICAL, rec, x);
	check_policy(t, a, "policy", "", rec, x);
	time_text(rec->not_before, nb);
	time_text(rec->not_after, na);
	if (custody_policy_check_valid_at(rec, now, &e) != CUSTODY_OK) {
		report(t, R_CRITICAL, "valid", a->type, a->identity, rec->thumbprint,
		       "%s", e.msg);
		return;
	}
	report(t, R_OK, "valid", a->type, a->identity, rec->thumbprint,
	       "certificate is valid from %s until %s", nb, na);
	days_text(rec->not_after - now, left, sizeof(left));
	/* A successor that takes over in time answers the expiry: the
	 * successor check speaks of it (a warning every day until the roll
	 * would teach operators to ignore this one). */
	if (rec->not_after - now < (int64_t)t->warn_days * DAY &&
	    a->pending.thumbprint[0] != '\0' && a->pending.effective <= rec->not_after)
		report(t, R_OK, "expiry", a->type, a->identity, rec->thumbprint,
		       "certificate expires in %s (%s); its successor takes over before",
		       left, na);
	else if (rec->not_after - now < (int64_t)t->warn_days * DAY)
		report(t, R_WARNING, "expiry", a->type, a->identity, rec->thumbprint,
		       "certificate expires in %s (%s)", left, na);
	else
		report(t, R_OK, "expiry", a->type, a->identity, rec->thumbprint,
		       "certificate expires in %s (%s), not within %d days",
		       left, na, t->warn_days);
	check_successor(t, a, rec);
}

static int
check_current(struct test_run *t, const custody_assignment *a)
{
	char eff[CUSTODY_TIME_TEXT];

	if (a->current.thumbprint[0] != '\0')
		return check_slot(t, a, &a->current, "assigned", "certificate", R_CRITICAL,
				  check_current_cert);
	if (a->pending.thumbprint[0] != '\0' && time_text(a->pending.effective, eff))
		report(t, R_CRITICAL, "assigned", a->type, a->identity, NULL,
		       "no certificate is current (pending %s becomes current at %s)",
		       a->pending.thumbprint, eff);
	else
		report(t, R_CRITICAL, "assigned", a->type, a->identity, NULL,
		       "no certificate is current");
	return CUSTODY_OK;
}

/* The roll happens by itself at the effective date: whatever would break
 * then is CRITICAL now. */
static void
check_pending_cert(struct test_run *t, const custody_assignment *a,
		   const custody_cert_record *rec, X509 *x)
{
	custody_err e = {0};
	char eff[CUSTODY_TIME_TEXT], na[CUSTODY_TIME_TEXT];

	time_text(a->pending.effective, eff);
	time_text(rec->not_after, na);
	if (custody_policy_check_valid_at(rec, a->pending.effective, &e) != CUSTODY_OK)
		report(t, R_CRITICAL, "pending", a->type, a->identity, rec->thumbprint,
		       "pending certificate %s is not valid at its effective date %s: %s",
		       rec->thumbprint, eff, e.msg);
	else
		report(t, R_OK, "pending", a->type, a->identity, rec->thumbprint,
		       "pending certificate %s becomes current at %s and is valid then "
		       "(until %s)", rec->thumbprint, eff, na);
	check_key(t, a, "pending-key", " of the pending certificate", R_CRITICAL, rec, x);
	check_policy(t, a, "pending-policy", "pending certificate: ", rec, x);
}

static void
check_previous_cert(struct test_run *t, const custody_assignment *a,
		    const custody_cert_record *rec, X509 *x)
{
	check_key(t, a, "previous-key", " of the previous certificate", R_WARNING, rec, x);
}

/*
 * The pending certificate's key is on every member that will sign with
 * it.  A due roll waits for the members that lack it (the store's reads
 * hold it back), so that nothing switches half the cluster: the current
 * key keeps signing, and this says who holds the roll up.
 */
static int
check_rollout(struct test_run *t, const custody_assignment *a)
{
	const char *tp = a->pending.thumbprint;
	char names[1024], eff[CUSTODY_TIME_TEXT];
	size_t needs = 0, missing = 0;
	int r;

	if (tp[0] == '\0')
		return CUSTODY_OK;
	if ((r = custody_store_roll_gate(t->cli->store, a, &needs, &missing, names,
					 sizeof(names), &t->cli->err)) != CUSTODY_OK || needs == 0)
		return r;
	time_text(a->pending.effective, eff);
	if (missing == 0)
		report(t, R_OK, "rollout", a->type, a->identity, tp,
		       "pending %s is on every node (%zu)", tp, needs);
	else if (t->cli->now >= a->pending.effective)
		report(t, R_CRITICAL, "rollout", a->type, a->identity, tp,
		       "roll to %s was due %s and waits for %s: %s (custody sync %s)",
		       tp, eff, names, missing == 1 ? "it does not hold its key" :
		       "they do not hold its key", missing == 1 ? "there" : "on each");
	else
		report(t, R_WARNING, "rollout", a->type, a->identity, tp,
		       "pending %s (effective %s) is not yet on %s (custody sync %s)",
		       tp, eff, names, missing == 1 ? "there" : "on each");
	return CUSTODY_OK;
}

/*
 * Partners fetch a new key from the metadata, where a pending certificate
 * is published from the moment it is staged: a roll sooner than the
 * type's min-publish after that may meet partners that do not know the
 * key yet.  When it was staged: the newest "roll" entry of the audit log
 * that names it (set --roll, rollover and the import that stages a CSR's
 * certificate all write one).
 */
static int
check_published(struct test_run *t, const custody_assignment *a)
{
	const custody_rollover_policy *p = custody_config_rollover(&t->cli->cfg, a->type);
	const char *tp = a->pending.thumbprint;
	char eff[CUSTODY_TIME_TEXT], staged[CUSTODY_TIME_TEXT], span[32], min[32];
	custody_audit_entry e;
	int r;

	if (tp[0] == '\0' || p == NULL)
		return CUSTODY_OK;
	r = custody_store_find_audit(t->cli->store, CUSTODY_AUDIT_ROLL, a->type, a->identity, tp, &e,
				     &t->cli->err);
	if (r == CUSTODY_ENOTFOUND) {
		custody_err_clear(&t->cli->err);
		report(t, R_WARNING, "published", a->type, a->identity, tp,
		       "pending %s: the audit log has no roll entry for it, so how long it "
		       "has been published is unknown", tp);
		return CUSTODY_OK;
	}
	if (r != CUSTODY_OK)
		return r;
	time_text(a->pending.effective, eff);
	time_text(e.time, staged);
	span_text(a->pending.effective - e.time, span, sizeof(span));
	custody_duration_format(p->min_publish, min, sizeof(min));
	if (a->pending.effective - e.time < p->min_publish)
		report(t, R_WARNING, "published", a->type, a->identity, tp,
		       "pending %s takes effect %s, only %s after it was published (%s); "
		       "min-publish is %s", tp, eff, span, staged, min);
	else
		report(t, R_OK, "published", a->type, a->identity, tp,
		       "pending %s takes effect %s, %s after it was published (%s); "
		       "min-publish is %s", tp, eff, span, staged, min);
	custody_audit_entry_clear(&e);
	return CUSTODY_OK;
}

/* The rollover target of a (its type's plan), into *out: 1 when found. */
static int
find_target(const custody_rollover_target *targets, size_t n, const custody_assignment *a,
	    const custody_rollover_target **out)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(targets[i].assignment.identity, a->identity) == 0) {
			*out = &targets[i];
			return 1;
		}
	return 0;
}

/*
 * A csr-mode rollover wrote a request for a CA and waits for its
 * certificate: the import stages it.  Until then nothing is pending, and
 * once the promotion date (notAfter - promote-before) has passed the
 * successor is late.  Which request waits is what custody rollover itself
 * decides by (custody_rollover_plan: a request of any member, whose
 * certificate the store does not hold yet), so that both agree.
 */
static void
check_csr(struct test_run *t, const custody_assignment *a)
{
	const custody_rollover_policy *p = custody_config_rollover(&t->cli->cfg, a->type);
	const custody_rollover_target *target = NULL;
	custody_rollover_target *targets = NULL;
	custody_ops_env env;
	custody_err e = {0};
	char promote[CUSTODY_TIME_TEXT];
	int64_t promote_at;
	size_t n = 0;

	if (p == NULL || !p->enabled || p->mode != CUSTODY_ROLLOVER_CSR ||
	    a->current.thumbprint[0] == '\0' || a->pending.thumbprint[0] != '\0')
		return;
	change_env(t->cli, &env);
	if (custody_rollover_plan(&env, &t->cli->cfg, a->type, &targets, &n, &e) !=
	    CUSTODY_OK) {
		report(t, R_CRITICAL, "csr", a->type, a->identity, NULL,
		       "cannot tell whether a rollover request waits: %s", e.msg);
		return;
	}
	if (find_target(targets, n, a, &target) && target->waiting_key_id[0] != '\0' &&
	    target->current.der != NULL) {
		promote_at = target->current.not_after - p->promote_before;
		time_text(promote_at, promote);
		if (t->cli->now >= promote_at)
			report(t, R_CRITICAL, "csr", a->type, a->identity, NULL,
			       "the certificate for request %s (rollover of %s) has not been "
			       "imported and the promotion date %s has passed",
			       target->waiting_key_id, a->type, promote);
		else
			report(t, R_WARNING, "csr", a->type, a->identity, NULL,
			       "the request %s (rollover of %s) waits for its certificate "
			       "(import it before %s)", target->waiting_key_id, a->type,
			       promote);
	}
	custody_rollover_targets_free(targets, n);
}

/* The report of node for thumbprint, or NULL when it made none. */
static const custody_report_record *
report_of(const custody_report_record *reps, size_t n, const char *node,
	  const char *thumbprint)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(reps[i].node, node) == 0 &&
		    strcmp(reps[i].thumbprint, thumbprint) == 0)
			return &reps[i];
	return NULL;
}

/* Appends "NODE (why)" to the list of nodes behind. */
static void
note_behind(char *list, size_t size, const char *node,
	    const custody_report_record *rep)
{
	size_t len = strlen(list);

	if (len + 1 >= size)
		return;
	snprintf(list + len, size - len, "%s%s (%s)", len > 0 ? "; " : "", node,
		 rep == NULL ? "has not reported it" :
		 rep->detail[0] != '\0' ? rep->detail : "does not hold it");
}

/*
 * The cluster check of a global assignment's current certificate: every
 * joined node reports it held.  This node's own failure (its last sync
 * reported the key not held, and why: a full or read-only token, a
 * package that does not unwrap here) is CRITICAL — its key line says the
 * key is missing, this line says why.  Another node behind is a WARNING
 * here: this node serves; `custody status` is the cluster's verdict.
 * This node not having reported yet is a WARNING too.  No line without
 * joined nodes.
 */
static int
check_cluster(struct test_run *t, const custody_assignment *a)
{
	const char *tp = a->current.thumbprint, *self = t->cli->node;
	const custody_report_record *rep, *mine = NULL;
	custody_node_record *nodes = NULL;
	custody_report_record *reps = NULL;
	size_t n_nodes = 0, n_reps = 0, joined = 0, behind = 0, i;
	char names[768] = "";
	int r, self_behind = 0;

	if (strcasecmp(a->identity, CUSTODY_SCOPE_GLOBAL) != 0 || tp[0] == '\0')
		return CUSTODY_OK;
	if ((r = custody_store_list_nodes(t->cli->store, &nodes, &n_nodes,
					  &t->cli->err)) != CUSTODY_OK ||
	    (r = custody_store_list_reports(t->cli->store, NULL, &reps, &n_reps,
					    &t->cli->err)) != CUSTODY_OK)
		goto out;
	for (i = 0; i < n_nodes; i++) {
		if (strcmp(nodes[i].state, "joined") != 0)
			continue;
		joined++;
		rep = report_of(reps, n_reps, nodes[i].name, tp);
		if (rep != NULL && rep->held)
			continue;
		if (strcmp(nodes[i].name, self) == 0) {
			self_behind = 1;
			mine = rep;
			continue;
		}
		behind++;
		note_behind(names, sizeof(names), nodes[i].name, rep);
	}
	/* A key this run saw sign here is held, whatever the last sync
	 * said: the store does not know it yet. */
	if (self_behind && mine != NULL && strcmp(t->signed_tp, tp) == 0)
		report(t, R_WARNING, "cluster", a->type, a->identity, tp,
		       "this node's last sync could not make it held (%s), but "
		       "it signs here now: run `custody sync` to report it",
		       mine->detail[0] != '\0' ? mine->detail : "no reason given");
	else if (self_behind && mine != NULL)
		report(t, R_CRITICAL, "cluster", a->type, a->identity, tp,
		       "this node's last sync could not make it held: %s",
		       mine->detail[0] != '\0' ? mine->detail : "no reason given");
	else if (self_behind)
		report(t, R_WARNING, "cluster", a->type, a->identity, tp,
		       "this node has not reported holding it (run `custody sync`)");
	if (behind > 0)
		report(t, R_WARNING, "cluster", a->type, a->identity, tp,
		       "%zu of %zu joined nodes do not hold it: %s", behind, joined, names);
	else if (joined > 0 && !self_behind)
		report(t, R_OK, "cluster", a->type, a->identity, tp,
		       "held by all %zu joined nodes", joined);
out:
	custody_node_records_free(nodes, n_nodes);
	free(reps);
	return r;
}

/* Every check of one assignment (resolved at now, its record genuine);
 * a store that cannot be read is an error (UNKNOWN). */
static int
check_assignment(struct test_run *t, const custody_assignment *a)
{
	int r;

	if ((r = check_current(t, a)) != CUSTODY_OK ||
	    (a->pending.thumbprint[0] != '\0' &&
	     (r = check_slot(t, a, &a->pending, "pending", "pending certificate",
			     R_CRITICAL, check_pending_cert)) != CUSTODY_OK) ||
	    (r = check_rollout(t, a)) != CUSTODY_OK ||
	    (r = check_published(t, a)) != CUSTODY_OK ||
	    (a->previous.thumbprint[0] != '\0' &&
	     (r = check_slot(t, a, &a->previous, "previous-key", "previous certificate",
			     R_WARNING, check_previous_cert)) != CUSTODY_OK) ||
	    (r = check_cluster(t, a)) != CUSTODY_OK)
		return r;
	check_csr(t, a);
	return CUSTODY_OK;
}

static int
applies_here(const struct test_run *t, const custody_assignment *a)
{
	return strcasecmp(a->identity, CUSTODY_SCOPE_GLOBAL) == 0 ||
	       strcasecmp(a->identity, t->cli->node) == 0;
}

/* The assignment's record is genuine (its integrity tag holds); else it
 * is reported critical and nothing it names is checked. */
static int
integrity_holds(struct test_run *t, const custody_assignment *a)
{
	custody_err e = {0};

	if (custody_store_check_assignment(t->cli->store, a, &e) == CUSTODY_OK)
		return 1;
	report(t, R_CRITICAL, "integrity", a->type, a->identity, NULL, "%s", e.msg);
	return 0;
}

/* A store that records a cluster KEK needs a token that can be a member:
 * a line only when this one cannot. */
static void
check_token_cluster(struct test_run *t)
{
	char store_kcv[CUSTODY_KCV_HEX + 1] = "", token_kcv[CUSTODY_KCV_HEX + 1];
	custody_err e = {0};

	if (custody_cluster_kek_state(NULL, t->cli->store, store_kcv, token_kcv, &e) !=
	    CUSTODY_OK || store_kcv[0] == '\0')
		return;
	if (custody_token_require_cluster(t->cli->token, "serve this store's cluster", &e) !=
	    CUSTODY_OK)
		report(t, R_CRITICAL, "token", NULL, NULL, NULL, "%s", e.msg);
}

/* The audit log's head carries its integrity tag. */
static void
check_audit_integrity(struct test_run *t)
{
	custody_err e = {0};
	char hash[CUSTODY_AUDIT_HASH_HEX + 1];
	int64_t seq = 0;

	if (custody_store_audit_head(t->cli->store, &seq, hash, &e) != CUSTODY_OK ||
	    custody_audit_check_tag(t->cli->store, seq, hash, &e) != CUSTODY_OK)
		report(t, R_CRITICAL, "integrity", NULL, NULL, NULL, "%s", e.msg);
}

/* *out resolved at now; *stored the same assignments as the store holds
 * them (their integrity tags are over these); both malloc'ed. */
static int
select_assignments(struct test_run *t, custody_assignment **out,
		   custody_assignment **stored, size_t *n)
{
	struct cli *cli = t->cli;
	const char *ids[2] = {cli->node, CUSTODY_SCOPE_GLOBAL};
	custody_assignment *all = NULL, *raw;
	size_t count = 0, i, k = 0;
	int r;

	*out = NULL;
	*stored = NULL;
	*n = 0;
	if (t->type != NULL) {
		if ((all = calloc(2, sizeof(*all))) == NULL)
			return custody_err_set(&cli->err, CUSTODY_EFAIL, "out of memory");
		/* global first, as the store lists them. */
		for (i = 2; i-- > 0;) {
			if (i == 0 && strcasecmp(ids[0], CUSTODY_SCOPE_GLOBAL) == 0)
				continue;
			r = custody_store_get_assignment(cli->store, t->type, ids[i],
							 &all[count], &cli->err);
			if (r == CUSTODY_ENOTFOUND) {
				custody_err_clear(&cli->err);
				continue;
			}
			if (r != CUSTODY_OK) {
				free(all);
				return r;
			}
			count++;
		}
	} else if ((r = custody_store_list_assignments(cli->store, &all, &count,
						       &cli->err)) != CUSTODY_OK) {
		return r;
	}
	if ((raw = calloc(count > 0 ? count : 1, sizeof(*raw))) == NULL) {
		free(all);
		return custody_err_set(&cli->err, CUSTODY_EFAIL, "out of memory");
	}
	for (i = 0; i < count; i++) {
		custody_assignment as_stored = all[i];

		custody_assign_resolve(&all[i], cli->now, &all[i]);
		if (applies_here(t, &all[i]) && !custody_assign_is_empty(&all[i])) {
			raw[k] = as_stored;
			all[k++] = all[i];
		}
	}
	*out = all;
	*stored = raw;
	*n = k;
	return CUSTODY_OK;
}

/* A number of days given as --OPTION TEXT (NULL: not given, *out kept). */
static int
parse_days(struct cli *cli, const char *option, const char *text, int *out)
{
	char *end = NULL;
	long v;

	if (text == NULL)
		return CUSTODY_OK;
	errno = 0;
	v = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || v < 0 || v > WARN_DAYS_MAX)
		return cli_usage_error(cli, "--%s %s: expected a number of days "
				       "from 0 to %d", option, text, WARN_DAYS_MAX);
	*out = (int)v;
	return CUSTODY_OK;
}

/* The thresholds: the policy's, then the options'. */
static int
parse_thresholds(struct test_run *t, const struct test_opts *o)
{
	const custody_policy *p = &t->cli->cfg.policy;
	int r;

	t->warn_days = p->warn_days;
	t->successor_warn_days = p->successor_warn_days;
	t->successor_critical_days = p->successor_critical_days;
	if ((r = parse_days(t->cli, "warn-days", o->warn_days, &t->warn_days)) != CUSTODY_OK ||
	    (r = parse_days(t->cli, "successor-warn-days", o->successor_warn_days,
			    &t->successor_warn_days)) != CUSTODY_OK)
		return r;
	return parse_days(t->cli, "successor-critical-days", o->successor_critical_days,
			  &t->successor_critical_days);
}

const char cmd_test_usage[] =
	"custody test [-t TYPE] [--warn-days N] [--successor-warn-days N]\n"
	"             [--successor-critical-days N] [-o table|json]\n"
	"\n"
	"Checks every assignment at global and at this node's identity (with -t, those\n"
	"of TYPE): something is current (assigned); its private key is on this node's\n"
	"token and signs what its certificate verifies (key); key size and SIP domain\n"
	"policy (policy); valid now (valid); expiry within N days (expiry); a successor\n"
	"staged before it expires (successor); a pending certificate valid at its\n"
	"effective date (pending, pending-key, pending-policy), its key on every node of\n"
	"the cluster (rollout) and published for min-publish before it takes effect\n"
	"(published, with a [rollover TYPE] policy); the previous certificate's key\n"
	"(previous-key); a csr-mode rollover request waiting for its certificate (csr);\n"
	"a global assignment's current key reported held by every joined node, this\n"
	"node's own failure with the reason its last sync gave (cluster);\n"
	"with [agent] configured, whether custody agent answers on its socket (agent).\n"
	"One line per check: OK|WARNING|CRITICAL TYPE/IDENTITY: WHAT. Exit status as\n"
	"monitoring plugins: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the checks could\n"
	"not run, or a usage error).\n"
	"\n"
	"  -t, --type TYPE          only this type\n"
	"  --warn-days N            WARNING when a certificate expires within N days\n"
	"                           (default policy.warn-days, 30)\n"
	"  --successor-warn-days N  WARNING when a certificate expires within N days\n"
	"                           and no successor is staged (default\n"
	"                           policy.successor-warn-days, 60)\n"
	"  --successor-critical-days N\n"
	"                           CRITICAL when it expires within N days with no\n"
	"                           successor (default policy.successor-critical-days, 14)\n";

int
cmd_test(struct cli *cli, int argc, char **argv)
{
	struct test_opts o = {NULL, NULL, NULL, NULL};
	const struct cli_opt options[] = {
		CLI_OPT_TEXT("type", OPT_TYPE, &o.type),
		CLI_OPT_TEXT("warn-days", OPT_WARN_DAYS, &o.warn_days),
		CLI_OPT_TEXT("successor-warn-days", OPT_SUCCESSOR_WARN_DAYS,
			     &o.successor_warn_days),
		CLI_OPT_TEXT("successor-critical-days", OPT_SUCCESSOR_CRITICAL_DAYS,
			     &o.successor_critical_days),
		{NULL},
	};
	struct test_run t;
	char type[CUSTODY_NAME_MAX + 1];
	custody_assignment *as = NULL, *stored = NULL;
	size_t n = 0, i;
	int r;

	memset(&t, 0, sizeof(t));
	t.cli = cli;
	if ((t.results = json_array()) == NULL)
		return custody_err_set(&cli->err, CUSTODY_EFAIL, "out of memory");
	r = cli_parse(cli, argc, argv, options, "t:", NULL, NULL);
	if (r < 0)
		goto out;	/* --help */
	if (r != CUSTODY_OK ||
	    (r = cli_check_output(cli, 1u << OUT_TABLE | 1u << OUT_JSON)) != CUSTODY_OK ||
	    (o.type != NULL &&
	     (r = custody_type_canonical(o.type, type, NULL, &cli->err)) != CUSTODY_OK))
		goto unknown;
	t.type = o.type != NULL ? type : NULL;
	if ((r = parse_thresholds(&t, &o)) != CUSTODY_OK)
		goto unknown;
	if ((r = cli_open_store(cli)) != CUSTODY_OK ||
	    (r = select_assignments(&t, &as, &stored, &n)) != CUSTODY_OK)
		goto unknown;

	if (n == 0 && t.type != NULL)
		report(&t, R_CRITICAL, "assigned", t.type, cli->node, NULL,
		       "no certificate is assigned for type %s (identity %s or global)",
		       t.type, cli->node);
	else if (n == 0)
		report(&t, R_UNKNOWN, "assigned", NULL, cli->node, NULL,
		       "nothing is assigned at identity %s or global: nothing to check",
		       cli->node);
	/* Every selected assignment names a certificate to check. */
	if (n > 0 && (r = cli_open_token(cli)) != CUSTODY_OK)
		goto unknown;
	if (n > 0) {
		check_audit_integrity(&t);
		check_token_cluster(&t);
	}
	for (i = 0; i < n; i++) {
		if (!integrity_holds(&t, &stored[i]))
			continue;
		if ((r = check_assignment(&t, &as[i])) != CUSTODY_OK)
			goto unknown;
	}
	check_agent(&t);
	custody_err_clear(&cli->err);
	if ((r = print_results(&t)) != CUSTODY_OK)
		goto unknown_printed;
	r = CLI_EXIT(t.worst);
	goto out;
unknown:
	r = give_up(&t);
	goto out;
unknown_printed:
	r = CLI_EXIT(R_UNKNOWN);
out:
	free(as);
	free(stored);
	json_decref(t.results);
	return r;
}
