/*
 * cmd_wizard.c — `custody wizard`: the Deployment Wizard's certificate
 * assignment in a terminal.  Steps: the type (the known ones, the custom
 * ones custody.conf declares, with what is assigned now), the identity
 * (where the type allows a choice), a certificate from the token -- or,
 * when a roll is pending there, cancelling it -- now or a roll at a date,
 * the summary (the lines `set --dry-run` prints), the confirmation, the
 * result.
 *
 * At every question a number chooses, "b" goes back one step and "q"
 * cancels (exit 0, "cancelled, nothing changed"); end of input cancels
 * too.  Ctrl-C ends with status 130.  The token is read once at the start
 * (one PIN) and closed again, so no token lock is held while a person
 * thinks; the store is written only after "y" at the confirmation.
 */
#include "config.h"

#include <ctype.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include <custody/policy.h>
#include <custody/timefmt.h>

#include "change.h"
#include "cli.h"

#define WIZARD_EXIT_INTERRUPTED 130	/* 128 + SIGINT, as shells report it */
#define ANSWER_MAX 256
#define STEPS 5

enum step {
	STEP_TYPE,
	STEP_IDENTITY,
	STEP_CERT,
	STEP_WHEN,
	STEP_DATE,
	STEP_SUMMARY,
	/* the ends */
	STEP_APPLIED,
	STEP_CANCELLED,
	STEP_INTERRUPTED,
	STEP_FAILED,
};

/* What a question got. */
enum answer {
	ANSWER_NONE,	/* not a keyword */
	ANSWER_CHOICE,	/* a listed number, or text for a free answer */
	ANSWER_BACK,
	ANSWER_CANCEL,
	ANSWER_INTERRUPT,
};

typedef char wizard_name[CUSTODY_NAME_MAX + 1];

struct wizard {
	struct cli *cli;
	int status;			/* the custody status for STEP_FAILED */
	char token_label[256];
	/* the token's certificates, read once */
	custody_cert_record *recs;
	int *has_key;
	size_t n_recs;
	/* the store's assignments, resolved at now, read at the type step */
	custody_assignment *all;
	size_t n_all;
	/* the answers so far */
	wizard_name type;
	wizard_name identity;
	int identity_fixed;		/* the type allows one identity only */
	size_t cert;			/* index into recs */
	int cancel_pending;		/* cancel the pending roll instead */
	int roll;
	int64_t effective;
	custody_change ch;
};

static volatile sig_atomic_t interrupted;

static void
on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* "Now" moves on while a person answers, unless --at fixed it. */
static void
refresh_now(struct wizard *w)
{
	if (w->cli->args.at == NULL)
		w->cli->now = (int64_t)time(NULL);
}

/*
 * Reads one line from the terminal into buf, without surrounding blanks.
 * Returns 1 with a line, 0 at the end of input, -1 after Ctrl-C.
 */
static int
read_line(char *buf, size_t size)
{
	size_t start = 0, len;
	int c;

	fflush(stdout);
	if (interrupted)
		return -1;
	if (fgets(buf, (int)size, stdin) == NULL) {
		clearerr(stdin);
		return interrupted ? -1 : 0;
	}
	if (interrupted)
		return -1;
	len = strlen(buf);
	if (len > 0 && buf[len - 1] != '\n')
		while ((c = getchar()) != EOF && c != '\n')
			;	/* the rest of an overlong line */
	while (len > 0 && isspace((unsigned char)buf[len - 1]))
		buf[--len] = '\0';
	while (isspace((unsigned char)buf[start]))
		start++;
	memmove(buf, buf + start, len - start + 1);
	return 1;
}

/* "b"/"back" and "q"/"cancel", in any case. */
static enum answer
keyword(const char *line)
{
	if (strcasecmp(line, "b") == 0 || strcasecmp(line, "back") == 0)
		return ANSWER_BACK;
	if (strcasecmp(line, "q") == 0 || strcasecmp(line, "cancel") == 0)
		return ANSWER_CANCEL;
	return ANSWER_NONE;
}

/* A decimal number from 1 to n, nothing else; *choice is 0-based. */
static int
parse_choice(const char *line, size_t n, size_t *choice)
{
	unsigned long v = 0;
	size_t i;

	if (line[0] == '\0' || strlen(line) > 9)
		return 0;
	for (i = 0; line[i] != '\0'; i++) {
		if (!isdigit((unsigned char)line[i]))
			return 0;
		v = v * 10 + (unsigned long)(line[i] - '0');
	}
	if (v < 1 || v > n)
		return 0;
	*choice = (size_t)v - 1;
	return 1;
}

/* Reads a line for a question; end of input is a cancel (after a newline,
 * so the next output starts on a line of its own). */
static enum answer
ask_line(const char *prompt, char *line, size_t size)
{
	enum answer a;
	int r;

	fputs(prompt, stdout);
	r = read_line(line, size);
	if (r < 0)
		return ANSWER_INTERRUPT;
	if (r == 0) {
		putchar('\n');
		return ANSWER_CANCEL;
	}
	a = keyword(line);
	return a != ANSWER_NONE ? a : ANSWER_CHOICE;
}

/* Asks until the answer is a number from 1 to n, b or q. */
static enum answer
ask_choice(const char *what, size_t n, size_t *choice)
{
	char prompt[128], line[ANSWER_MAX];
	enum answer a;

	snprintf(prompt, sizeof(prompt), "%s [1-%zu, b = back, q = cancel]: ", what, n);
	for (;;) {
		a = ask_line(prompt, line, sizeof(line));
		if (a != ANSWER_CHOICE || parse_choice(line, n, choice))
			break;
		printf("please answer with a number from 1 to %zu, b to go back or q to cancel\n", n);
	}
	return a;
}

static enum step
step_end(enum answer a, enum step back)
{
	switch (a) {
	case ANSWER_BACK: return back;
	case ANSWER_INTERRUPT: return STEP_INTERRUPTED;
	default: return STEP_CANCELLED;
	}
}

static enum step
failed(struct wizard *w, int status)
{
	w->status = status;
	return STEP_FAILED;
}

/* ---- what the store holds ---- */

static int
load_assignments(struct wizard *w)
{
	size_t i;
	int r;

	free(w->all);
	w->all = NULL;
	w->n_all = 0;
	refresh_now(w);
	r = custody_store_list_assignments(w->cli->store, &w->all, &w->n_all, &w->cli->err);
	for (i = 0; r == CUSTODY_OK && i < w->n_all; i++)
		custody_assign_resolve(&w->all[i], w->cli->now, &w->all[i]);
	return r;
}

/* "current X, pending Y from T" of an assignment. */
static void
print_slots(const custody_assignment *a)
{
	char t[CUSTODY_TIME_TEXT];

	printf("current %s", a->current.thumbprint[0] != '\0' ? out_safe(a->current.thumbprint) :
	       "(none)");
	if (a->pending.thumbprint[0] != '\0')
		printf(", pending %s from %s", out_safe(a->pending.thumbprint),
		       out_time(a->pending.effective, t));
}

static const custody_assignment *
find_assignment(const struct wizard *w, const char *type, const char *identity)
{
	size_t i;

	for (i = 0; i < w->n_all; i++)
		if (strcasecmp(w->all[i].type, type) == 0 &&
		    strcasecmp(w->all[i].identity, identity) == 0 &&
		    !custody_assign_is_empty(&w->all[i]))
			return &w->all[i];
	return NULL;
}

/* ---- step 1: the type ---- */

static int
has_name(const wizard_name *names, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcasecmp(names[i], name) == 0)
			return 1;
	return 0;
}

/* The custom types custody.conf declares ([types] custom), after the
 * known ones: what set -t would take. */
static size_t
add_declared(const struct wizard *w, wizard_name *types, size_t n)
{
	wizard_name declared[CUSTODY_CUSTOM_TYPES_MAX];
	size_t n_declared, i;

	n_declared = custody_config_custom_types(&w->cli->cfg, declared);
	for (i = 0; i < n_declared; i++)
		if (!has_name(types, n, declared[i]))
			memcpy(types[n++], declared[i], sizeof(types[0]));
	return n;
}

static enum step
step_type(struct wizard *w)
{
	const char *const *known = custody_known_types();
	wizard_name *types = NULL;
	size_t n = 0, i, j, k, choice = 0;
	enum step next;
	enum answer a;
	int r;

	if ((r = load_assignments(w)) != CUSTODY_OK)
		return failed(w, r);
	for (i = 0; known[i] != NULL; i++)
		;
	if ((types = calloc(i + CUSTODY_CUSTOM_TYPES_MAX + w->n_all, sizeof(*types))) == NULL)
		return failed(w, custody_err_set(&w->cli->err, CUSTODY_EFAIL, "out of memory"));
	for (i = 0; known[i] != NULL; i++)
		snprintf(types[n++], sizeof(types[0]), "%s", known[i]);
	n = add_declared(w, types, n);
	/* Custom types the store already knows follow the declared ones. */
	for (i = 0; i < w->n_all; i++)
		if (!has_name(types, n, w->all[i].type))
			snprintf(types[n++], sizeof(types[0]), "%s", w->all[i].type);

	printf("\nStep 1 of %d: the certificate type\n", STEPS);
	for (i = 0; i < n; i++) {
		for (j = 0, k = 0; j < w->n_all; j++)
			k += strcmp(w->all[j].type, types[i]) == 0 &&
			     !custody_assign_is_empty(&w->all[j]);
		if (k == 0) {
			printf("  %2zu) %-24s (nothing assigned)\n", i + 1, out_safe(types[i]));
			continue;
		}
		printf("  %2zu) %s\n", i + 1, out_safe(types[i]));
		for (j = 0; j < w->n_all; j++) {
			if (strcmp(w->all[j].type, types[i]) != 0 ||
			    custody_assign_is_empty(&w->all[j]))
				continue;
			printf("        %s: ", out_safe(w->all[j].identity));
			print_slots(&w->all[j]);
			putchar('\n');
		}
	}
	a = ask_choice("Type", n, &choice);
	if (a == ANSWER_BACK) {
		printf("this is the first step; q cancels\n");
		next = STEP_TYPE;
	} else if (a != ANSWER_CHOICE) {
		next = step_end(a, STEP_TYPE);
	} else {
		snprintf(w->type, sizeof(w->type), "%s", types[choice]);
		/* A type that may not be assigned at this node's identity
		 * (OAuthTokenIssuer) allows global alone. */
		w->identity_fixed = custody_policy_check_identity(w->type, w->cli->node,
								  NULL) != CUSTODY_OK;
		if (w->identity_fixed) {
			snprintf(w->identity, sizeof(w->identity), "%s", CUSTODY_SCOPE_GLOBAL);
			printf("\nStep 2 of %d: the identity is global (%s is assigned at global only)\n",
			       STEPS, out_safe(w->type));
		}
		next = w->identity_fixed ? STEP_CERT : STEP_IDENTITY;
	}
	free(types);
	return next;
}

/* ---- step 2: the identity ---- */

static enum step
step_identity(struct wizard *w)
{
	wizard_name *ids = NULL;
	size_t n = 0, i, choice = 0;
	enum step next;
	enum answer a;

	if ((ids = calloc(2 + w->n_all, sizeof(*ids))) == NULL)
		return failed(w, custody_err_set(&w->cli->err, CUSTODY_EFAIL, "out of memory"));
	snprintf(ids[n++], sizeof(ids[0]), "%s", w->cli->node);
	if (!has_name(ids, n, CUSTODY_SCOPE_GLOBAL))
		snprintf(ids[n++], sizeof(ids[0]), "%s", CUSTODY_SCOPE_GLOBAL);
	/* Other nodes where the type is assigned already. */
	for (i = 0; i < w->n_all; i++)
		if (strcmp(w->all[i].type, w->type) == 0 && !has_name(ids, n, w->all[i].identity))
			snprintf(ids[n++], sizeof(ids[0]), "%s", w->all[i].identity);

	printf("\nStep 2 of %d: where %s is assigned\n", STEPS, out_safe(w->type));
	for (i = 0; i < n; i++) {
		const custody_assignment *as = find_assignment(w, w->type, ids[i]);

		printf("  %2zu) %-20s %s", i + 1, out_safe(ids[i]),
		       strcmp(ids[i], w->cli->node) == 0 ? "this node" :
		       strcmp(ids[i], CUSTODY_SCOPE_GLOBAL) == 0 ? "every node" : "another node");
		if (as != NULL) {
			printf(": ");
			print_slots(as);
		}
		putchar('\n');
	}
	a = ask_choice("Identity", n, &choice);
	if (a == ANSWER_CHOICE) {
		snprintf(w->identity, sizeof(w->identity), "%s", ids[choice]);
		next = STEP_CERT;
	} else {
		next = step_end(a, STEP_TYPE);
	}
	free(ids);
	return next;
}

/* ---- step 3: the certificate ---- */

/* "Type/identity:slot, ..." for every slot that holds thumbprint. */
static void
print_assigned_as(const struct wizard *w, const char *thumbprint)
{
	static const enum custody_slot_name names[] = {
		CUSTODY_SLOT_CURRENT, CUSTODY_SLOT_PREVIOUS, CUSTODY_SLOT_PENDING};
	size_t i, s;
	int k = 0;

	for (i = 0; i < w->n_all; i++) {
		const custody_slot *held[] = {&w->all[i].current, &w->all[i].previous,
					      &w->all[i].pending};

		for (s = 0; s < 3; s++) {
			if (strcmp(held[s]->thumbprint, thumbprint) != 0)
				continue;
			printf("%s%s/%s:%s", k++ == 0 ? "\n        assigned as " : ", ",
			       out_safe(w->all[i].type), out_safe(w->all[i].identity),
			       custody_slot_label(names[s]));
		}
	}
}

/* The policy's word on a certificate (key size, curve, SIP domain). */
static int
check_policy(struct wizard *w, const custody_cert_record *rec)
{
	const unsigned char *p = rec->der;
	X509 *x;
	int r;

	if ((x = d2i_X509(NULL, &p, (long)rec->der_len)) == NULL)
		return custody_err_openssl(&w->cli->err, CUSTODY_EFAIL, "certificate %s",
					   rec->thumbprint);
	r = custody_policy_check_cert(&w->cli->cfg.policy, x, &w->cli->err);
	X509_free(x);
	return r;
}

/* The pending roll of the chosen assignment, or NULL. */
static const custody_slot *
pending_roll(const struct wizard *w)
{
	const custody_assignment *as = find_assignment(w, w->type, w->identity);

	return as != NULL && as->pending.thumbprint[0] != '\0' ? &as->pending : NULL;
}

/* The last choice of the certificate step when a roll is pending: to
 * cancel it (as remove --pending), the current certificate staying. */
static size_t
offer_cancel(const struct wizard *w, size_t n)
{
	const custody_slot *pending = pending_roll(w);
	char t[CUSTODY_TIME_TEXT];

	if (pending == NULL)
		return 0;
	printf("  %2zu) cancel the pending roll to %s (due %s); the current certificate stays\n",
	       n + 1, out_safe(pending->thumbprint), out_time(pending->effective, t));
	return 1;
}

static enum step
step_cert(struct wizard *w)
{
	char t[CUSTODY_TIME_TEXT];
	size_t *pick = NULL;
	size_t n = 0, i, choice = 0, without_key = 0, cancel;
	enum step next = STEP_CANCELLED;
	enum answer a;

	if ((pick = calloc(w->n_recs + 1, sizeof(*pick))) == NULL)
		return failed(w, custody_err_set(&w->cli->err, CUSTODY_EFAIL, "out of memory"));
	printf("\nStep 3 of %d: the certificate for %s/%s (token %s)\n", STEPS, out_safe(w->type),
	       out_safe(w->identity), out_safe(w->token_label));
	for (i = 0; i < w->n_recs; i++) {
		const custody_cert_record *rec = &w->recs[i];

		if (w->has_key[i] != 1) {
			without_key++;
			continue;
		}
		pick[n++] = i;
		printf("  %2zu) %s\n        expires %s, key %s, thumbprint %s", n,
		       rec->subject != NULL ? out_safe(rec->subject) : "(no subject)",
		       out_time(rec->not_after, t), out_safe(rec->key_algorithm),
		       out_safe(rec->thumbprint));
		print_assigned_as(w, rec->thumbprint);
		putchar('\n');
	}
	if (without_key > 0) {
		printf("  not selectable, their private key is not on the token:\n");
		for (i = 0; i < w->n_recs; i++)
			if (w->has_key[i] != 1)
				printf("      - %s, thumbprint %s\n",
				       w->recs[i].subject != NULL ? out_safe(w->recs[i].subject) :
				       "(no subject)", out_safe(w->recs[i].thumbprint));
	}
	cancel = offer_cancel(w, n);
	w->cancel_pending = 0;
	for (;;) {
		a = ask_choice("Certificate", n + cancel, &choice);
		if (a != ANSWER_CHOICE) {
			next = step_end(a, w->identity_fixed ? STEP_TYPE : STEP_IDENTITY);
			break;
		}
		if (choice == n) {
			w->cancel_pending = 1;
			next = STEP_SUMMARY;
			break;
		}
		if (check_policy(w, &w->recs[pick[choice]]) == CUSTODY_OK) {
			w->cert = pick[choice];
			next = STEP_WHEN;
			break;
		}
		printf("certificate %zu cannot be assigned: %s\n", choice + 1,
		       out_safe(w->cli->err.msg));
		custody_err_clear(&w->cli->err);
	}
	free(pick);
	return next;
}

/* ---- step 4: now, or a roll at a date ---- */

static enum step
step_when(struct wizard *w)
{
	size_t choice = 0;
	enum answer a;

	printf("\nStep 4 of %d: when it takes effect\n", STEPS);
	printf("   1) now: it becomes current at once, the current certificate becomes previous\n");
	printf("   2) roll at a date: it is pending until then, then current on every node\n");
	a = ask_choice("When", 2, &choice);
	if (a != ANSWER_CHOICE)
		return step_end(a, STEP_CERT);
	w->roll = choice == 1;
	return w->roll ? STEP_DATE : STEP_SUMMARY;
}

static enum step
step_date(struct wizard *w)
{
	char line[ANSWER_MAX], t[CUSTODY_TIME_TEXT];
	enum answer a;
	int64_t when = 0;

	for (;;) {
		refresh_now(w);
		/* The instant is UTC unless the answer says otherwise: the
		 * question shows what time it is there. */
		printf("It is now %s (UTC).\n", out_time(w->cli->now, t));
		a = ask_line("Effective date, YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS](Z|+HH:MM) "
			     "[b = back, q = cancel]: ", line, sizeof(line));
		if (a != ANSWER_CHOICE)
			return step_end(a, STEP_WHEN);
		refresh_now(w);
		if (custody_time_parse(line, &when, &w->cli->err) != CUSTODY_OK) {
			printf("%s\n", out_safe(w->cli->err.msg));
			if (w->cli->err.hint[0] != '\0')
				printf("(%s)\n", out_safe(w->cli->err.hint));
			custody_err_clear(&w->cli->err);
		} else if (when <= w->cli->now) {
			printf("the effective date must be in the future (now is %s)\n",
			       out_time(w->cli->now, t));
		} else {
			break;
		}
	}
	w->effective = when;
	return STEP_SUMMARY;
}

/* ---- step 5: the summary and the confirmation ---- */

/* Asks until the answer is yes, no (or nothing: no), b or q. */
static enum answer
ask_confirm(void)
{
	char line[ANSWER_MAX];
	enum answer a;

	for (;;) {
		a = ask_line("Apply? [y/N, b = back, q = cancel]: ", line, sizeof(line));
		if (a != ANSWER_CHOICE)
			break;
		if (strcasecmp(line, "y") == 0 || strcasecmp(line, "yes") == 0)
			break;
		if (line[0] == '\0' || strcasecmp(line, "n") == 0 || strcasecmp(line, "no") == 0) {
			a = ANSWER_CANCEL;
			break;
		}
		printf("please answer y to apply, n or q to cancel, or b to go back\n");
	}
	return a;
}

/* The summary of cancelling the pending roll. */
static enum step
summary_cancel(struct wizard *w)
{
	const custody_slot *pending = pending_roll(w);
	const custody_assignment *as = find_assignment(w, w->type, w->identity);
	char t[CUSTODY_TIME_TEXT];
	enum answer a;

	if (pending == NULL) {
		printf("nothing is pending at %s/%s any more\n", out_safe(w->type),
		       out_safe(w->identity));
		return STEP_CERT;
	}
	printf("\nStep 5 of %d: summary\n", STEPS);
	printf("%s/%s will change:\n", out_safe(w->type), out_safe(w->identity));
	printf("  pending: %s (due %s) -> (none): the roll is cancelled\n",
	       out_safe(pending->thumbprint), out_time(pending->effective, t));
	printf("  current: %s stays\n", as->current.thumbprint[0] != '\0' ?
	       out_safe(as->current.thumbprint) : "(none)");
	a = ask_confirm();
	return a == ANSWER_CHOICE ? STEP_APPLIED : step_end(a, STEP_CERT);
}

static enum step
step_summary(struct wizard *w)
{
	const custody_cert_record *rec = &w->recs[w->cert];
	custody_change_request req;
	enum step back = w->roll ? STEP_DATE : STEP_WHEN;
	char t[CUSTODY_TIME_TEXT];
	enum answer a;

	if (w->cancel_pending) {
		refresh_now(w);
		if (load_assignments(w) != CUSTODY_OK)
			return failed(w, CUSTODY_EFAIL);
		return summary_cancel(w);
	}
	memset(&req, 0, sizeof(req));
	req.type = w->type;
	req.identity = w->identity;
	req.roll = w->roll;
	req.effective = w->effective;
	refresh_now(w);
	if (change_plan(w->cli, &req, rec, &w->ch) != CUSTODY_OK) {
		printf("this cannot be done: %s\n", out_safe(w->cli->err.msg));
		if (w->cli->err.hint[0] != '\0')
			printf("hint: %s\n", out_safe(w->cli->err.hint));
		custody_err_clear(&w->cli->err);
		return w->roll ? STEP_DATE : STEP_CERT;
	}
	if (w->ch.outcome.noop) {
		if (w->roll)
			printf("%s is already pending for %s at %s/%s; nothing to change\n",
			       out_safe(rec->thumbprint), out_time(w->effective, t),
			       out_safe(w->type), out_safe(w->identity));
		else
			printf("%s is already current at %s/%s; nothing to change\n",
			       out_safe(rec->thumbprint), out_safe(w->type), out_safe(w->identity));
		return w->roll ? STEP_DATE : STEP_CERT;
	}
	printf("\nStep 5 of %d: summary\n", STEPS);
	printf("  certificate %s\n  (%s, expires %s)\n", out_safe(rec->thumbprint),
	       rec->subject != NULL ? out_safe(rec->subject) : "(no subject)",
	       out_time(rec->not_after, t));
	printf("%s/%s will change:\n", out_safe(w->type), out_safe(w->identity));
	change_print_details(stdout, &w->ch);
	if (w->ch.warning[0] != '\0')
		printf("warning: %s\n", out_safe(w->ch.warning));
	a = ask_confirm();
	return a == ANSWER_CHOICE ? STEP_APPLIED : step_end(a, back);
}

/* ---- the write, and the result ---- */

/* Cancels the pending roll as remove --pending does: the assignment read
 * again (a roll that came due meanwhile recorded first, and then there is
 * nothing pending to cancel), its pending slot emptied with its audit
 * entry. */
static int
apply_cancel(struct wizard *w)
{
	struct cli *cli = w->cli;
	custody_assignment before;
	custody_removal done;
	custody_ops_env env;
	int r;

	if ((r = cli_lookup_assignment(cli, w->type, w->identity, 0, &before)) != CUSTODY_OK)
		return r;
	if (change_materialize_due_roll(cli, before.type, before.identity) == CUSTODY_OK &&
	    (r = cli_lookup_assignment(cli, before.type, before.identity, 0, &before)) !=
	    CUSTODY_OK)
		return r;
	change_env(cli, &env);
	return custody_remove(&env, &before, CUSTODY_SLOT_PENDING, 0, &done, &cli->err);
}

/* Writes the planned change in one transaction, Ctrl-C held off meanwhile:
 * an interruption before the write wins, one during it waits. */
static int
apply(struct wizard *w)
{
	struct cli *cli = w->cli;
	sigset_t block, old;
	custody_txn tx;
	int r;

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &old);
	if (interrupted) {
		r = CUSTODY_EFAIL;
		goto out;
	}
	/* The token again, for the write alone: it tags the changed records
	 * (custody/integrity.h), and is not held while the operator thinks. */
	if ((r = cli_open_token(cli)) != CUSTODY_OK)
		goto out;
	if (w->cancel_pending) {
		r = apply_cancel(w);
		goto out;
	}
	custody_txn_init(&tx, cli->store, cli->token, cli->node, &cli->err);
	r = custody_change_apply(&tx, &w->recs[w->cert], &w->ch);
out:
	if (cli->token != NULL)
		cli_close_token(cli);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (r == CUSTODY_OK)
		interrupted = 0;	/* written: too late to take it back */
	return r;
}

/* The assignment as the store now has it, in `custody get`'s fields. */
static void
print_result(struct wizard *w)
{
	struct cli *cli = w->cli;
	custody_assignment a;
	custody_cert_record cur;
	char t[CUSTODY_TIME_TEXT];

	memset(&cur, 0, sizeof(cur));
	if (cli_lookup_assignment(cli, w->type, w->identity, 0, &a) != CUSTODY_OK) {
		cli_warn("cannot read the assignment back: %s", cli->err.msg);
		custody_err_clear(&cli->err);
		return;
	}
	if (a.current.thumbprint[0] != '\0')
		custody_store_get_cert(cli->store, a.current.thumbprint, &cur, NULL);
	printf("\nDone. %s/%s is now:\n", out_safe(a.type), out_safe(a.identity));
	out_field("Type", a.type);
	out_field("Identity", a.identity);
	out_field("Thumbprint", a.current.thumbprint);
	out_field("Subject", cur.subject);
	out_field("NotAfter", cur.thumbprint[0] != '\0' ? out_time(cur.not_after, t) : "");
	out_field("EffectiveDate", out_time(a.current.effective, t));
	out_field("PreviousThumbprint", a.previous.thumbprint);
	out_field("PendingThumbprint", a.pending.thumbprint);
	out_field("PendingEffectiveDate", out_time(a.pending.effective, t));
	printf("\n`custody get -t %s -i %s` shows it in full.\n", out_safe(a.type),
	       out_safe(a.identity));
	custody_cert_record_clear(&cur);
}

/* ---- the session ---- */

/* Reads the token's certificates (one login), then closes the token. */
static int
read_token(struct wizard *w)
{
	struct cli *cli = w->cli;
	size_t i, usable = 0;
	int r;

	if ((r = cli_open_store(cli)) != CUSTODY_OK ||
	    (r = cli_open_token(cli)) != CUSTODY_OK ||
	    (r = cli_token_records(cli, &w->recs, &w->has_key, &w->n_recs)) != CUSTODY_OK)
		goto out;
	snprintf(w->token_label, sizeof(w->token_label), "%s", custody_token_label(cli->token));
	for (i = 0; i < w->n_recs; i++)
		usable += w->has_key[i] == 1;
	if (usable == 0) {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL,
				    "nothing to assign: no certificate on token %s has its private key there",
				    w->token_label);
		custody_err_hint(&cli->err, "import one first: custody import --path FILE");
		goto out;
	}
	printf("custody wizard: assign a certificate of token %s (%zu with a private key)\n"
	       "At every question: a number chooses, b goes back, q cancels.\n"
	       "Nothing is written before you confirm.\n", out_safe(w->token_label), usable);
	r = CUSTODY_OK;
out:
	cli_close_token(cli);
	return r;
}

static enum step
run_step(struct wizard *w, enum step step)
{
	switch (step) {
	case STEP_TYPE: return step_type(w);
	case STEP_IDENTITY: return step_identity(w);
	case STEP_CERT: return step_cert(w);
	case STEP_WHEN: return step_when(w);
	case STEP_DATE: return step_date(w);
	case STEP_SUMMARY: return step_summary(w);
	default: return step;
	}
}

/* Ctrl-C: nothing was written; leave as a shell expects (status 130). */
static void
exit_interrupted(struct cli *cli)
{
	fflush(stdout);
	fputs("\ninterrupted, nothing changed\n", stderr);
	cli_close_token(cli);
	if (cli->store != NULL)
		custody_store_close(cli->store);
	custody_config_clear(&cli->cfg);
	OPENSSL_cleanse(&cli->err, sizeof(cli->err));
	exit(WIZARD_EXIT_INTERRUPTED);
}

const char cmd_wizard_usage[] =
	"custody wizard\n"
	"\n"
	"The Deployment Wizard's certificate assignment: choose the type (the known\n"
	"ones and the custom ones custody.conf declares, with what is assigned now),\n"
	"the identity where the type allows a choice, a certificate from the token\n"
	"(or, when a roll is pending there, cancel it: remove --pending), now or a\n"
	"roll at a date; read the summary (as set --dry-run prints it), confirm, see\n"
	"the result. At every question a number chooses,\n"
	"b goes back one step, q cancels (exit 0, nothing changed); Ctrl-C exits 130\n"
	"and changes nothing. The store is written only after the confirmation.\n"
	"Needs a terminal on standard input and output (else exit 2: use set).\n";

int
cmd_wizard(struct cli *cli, int argc, char **argv)
{
	struct wizard w;
	struct sigaction sa, old_sa;
	enum step step = STEP_TYPE;
	int r, handler = 0;

	memset(&w, 0, sizeof(w));
	w.cli = cli;
	if ((r = cli_parse(cli, argc, argv, NULL, "", NULL, NULL)) != CUSTODY_OK)
		return r;
	if ((r = cli_check_output(cli, 1u << OUT_TABLE)) != CUSTODY_OK)
		return r;
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		r = cli_usage_error(cli, "the wizard needs a terminal");
		custody_err_hint(&cli->err, "without one, use custody set -t TYPE --thumbprint X [--dry-run]");
		return r;
	}
	if ((r = read_token(&w)) != CUSTODY_OK)
		goto out;
	/* No SA_RESTART: Ctrl-C ends the read of an answer at once. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	interrupted = 0;
	if (sigaction(SIGINT, &sa, &old_sa) == 0)
		handler = 1;
	while (step < STEP_APPLIED)
		step = run_step(&w, step);
	switch (step) {
	case STEP_APPLIED:
		if ((r = apply(&w)) == CUSTODY_OK)
			print_result(&w);
		else if (interrupted)
			step = STEP_INTERRUPTED;
		break;
	case STEP_CANCELLED:
		printf("cancelled, nothing changed\n");
		r = CUSTODY_OK;
		break;
	case STEP_FAILED:
		r = w.status;
		break;
	default:
		break;
	}
out:
	if (handler)
		sigaction(SIGINT, &old_sa, NULL);
	custody_cert_records_free(w.recs, w.n_recs);
	free(w.has_key);
	free(w.all);
	if (step == STEP_INTERRUPTED)
		exit_interrupted(cli);
	return r;
}
