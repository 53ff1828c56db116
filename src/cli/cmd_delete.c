/*
 * cmd_delete.c — `custody delete`: destroys a certificate on the token, and
 * its key when no other certificate uses it.
 *
 * The rules:
 * - Refused while an assignment (current, previous or pending) names the
 *   certificate, unless --force, which also empties those slots (no
 *   assignment may name a certificate that is gone).
 * - The key (private key and public key object) is destroyed only when no
 *   other certificate on the token has its key id.  When one does (a
 *   renewal on the same key), the certificate object alone goes.
 * - A key that goes must not be the key of any other certificate that an
 *   assignment names (through the store's record of it): refused, even
 *   with --force, which clears this certificate's slots and no others.
 * - The certificate's key package (its private key wrapped under the
 *   cluster KEK) goes from the store with its record: no sync may bring
 *   the key back from it.
 * - Every object destroyed (and the package) gets an audit entry;
 *   --dry-run says what would go and changes nothing.
 * - The store first, in one transaction; the token last: when the token
 *   refuses, the transaction is rolled back.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <custody/ops.h>
#include <custody/thumbprint.h>

#include "change.h"
#include "cli.h"

enum { OPT_THUMBPRINT = OPT_FIRST_COMMAND_OPTION, OPT_FORCE, OPT_DRY_RUN };

struct delete_opts {
	const char *thumbprint;
	int force;
	int dry_run;
};

/* What a delete will do. */
struct delete_plan {
	const custody_cert_record *victim;
	char sharers[256];	/* other certificates on the token with its key id */
	int key_stays;
	custody_token_key_objects held;	/* the token's objects under the key id */
	custody_package_record package;	/* its key package in the store       */
	int has_package;
};

/* Empties every slot of a that holds thumbprint; returns how many. */
static int
clear_slots(custody_assignment *a, const char *thumbprint)
{
	custody_slot *slots[] = {&a->current, &a->previous, &a->pending};
	int n = 0;
	size_t i;

	for (i = 0; i < 3; i++)
		if (strcmp(slots[i]->thumbprint, thumbprint) == 0) {
			memset(slots[i], 0, sizeof(*slots[i]));
			n++;
		}
	return n;
}

/* The key id of the certificate with this thumbprint, from the token's
 * records, else the store's; "" when neither knows it. */
static void
key_id_of(struct cli *cli, const custody_cert_record *recs, size_t n,
	  const char *thumbprint, char out[CUSTODY_KEY_ID_HEX + 1])
{
	custody_cert_record rec;
	custody_err ignored;
	size_t i;

	out[0] = '\0';
	for (i = 0; i < n; i++)
		if (strcmp(recs[i].thumbprint, thumbprint) == 0) {
			snprintf(out, CUSTODY_KEY_ID_HEX + 1, "%s", recs[i].key_id);
			return;
		}
	memset(&rec, 0, sizeof(rec));
	if (custody_store_get_cert(cli->store, thumbprint, &rec, &ignored) == CUSTODY_OK)
		snprintf(out, CUSTODY_KEY_ID_HEX + 1, "%s", rec.key_id);
	custody_cert_record_clear(&rec);
}

/* Which other certificates on the token use the victim's key. */
static int
plan_key(struct cli *cli, const custody_cert_record *recs, size_t n,
	 struct delete_plan *p)
{
	const custody_cert_record *v = p->victim;
	size_t i, named = 0, same = 0;
	int r;

	if ((r = custody_token_count_key_objects(cli->token, v->key_id, &p->held,
						 &cli->err)) != CUSTODY_OK)
		return r;
	for (i = 0; i < n; i++) {
		size_t len = strlen(p->sharers);

		if (strcmp(recs[i].key_id, v->key_id) != 0)
			continue;
		if (strcmp(recs[i].thumbprint, v->thumbprint) == 0) {
			same++;
			continue;
		}
		named++;
		snprintf(p->sharers + len, sizeof(p->sharers) - len, "%s%s",
			 len > 0 ? ", " : "", recs[i].thumbprint);
	}
	/* A certificate custody cannot read still counts as a user. */
	p->key_stays = named > 0 || p->held.certificates > same;
	if (p->key_stays && named == 0)
		snprintf(p->sharers, sizeof(p->sharers), "another certificate on token %s",
			 custody_token_label(cli->token));
	return CUSTODY_OK;
}

/*
 * Checks every stored assignment against the plan: one naming the victim
 * is refused without --force; one naming another certificate on the
 * victim's key is refused when the key goes.  Sets *clears to how many
 * assignments --force will change.
 */
static int
check_assignments(struct cli *cli, const struct delete_opts *o,
		  const struct delete_plan *p, const custody_cert_record *recs,
		  size_t n, const custody_assignment *all, size_t n_all,
		  size_t *clears)
{
	const custody_cert_record *v = p->victim;
	size_t i, s;
	int r;

	*clears = 0;
	for (i = 0; i < n_all; i++) {
		const custody_slot *slots[] = {&all[i].current, &all[i].previous,
					       &all[i].pending};
		const enum custody_slot_name names[] = {CUSTODY_SLOT_CURRENT,
							CUSTODY_SLOT_PREVIOUS,
							CUSTODY_SLOT_PENDING};
		int names_victim = 0;

		for (s = 0; s < 3; s++) {
			const char *tp = slots[s]->thumbprint;
			char kid[CUSTODY_KEY_ID_HEX + 1];

			if (tp[0] == '\0')
				continue;
			if (strcmp(tp, v->thumbprint) == 0) {
				if (!o->force) {
					r = custody_err_set(&cli->err, CUSTODY_EFAIL,
							    "certificate %s is assigned as %s/%s:%s",
							    v->thumbprint, all[i].type,
							    all[i].identity,
							    custody_slot_label(names[s]));
					custody_err_hint(&cli->err, "remove it from the assignment first, or use --force");
					return r;
				}
				names_victim = 1;
				continue;
			}
			if (p->key_stays)
				continue;
			key_id_of(cli, recs, n, tp, kid);
			if (strcmp(kid, v->key_id) != 0)
				continue;
			r = custody_err_set(&cli->err, CUSTODY_EFAIL,
					    "the key of certificate %s (key id %s) is in use: "
					    "certificate %s on the same key is assigned as %s/%s:%s",
					    v->thumbprint, v->key_id, tp, all[i].type,
					    all[i].identity, custody_slot_label(names[s]));
			custody_err_hint(&cli->err, "remove %s from that assignment first "
					 "(--force never destroys a key another "
					 "certificate's assignment uses)", tp);
			return r;
		}
		if (names_victim)
			(*clears)++;
	}
	return CUSTODY_OK;
}

/* The victim's key package in the store, if there is one. */
static int
plan_package(struct cli *cli, struct delete_plan *p)
{
	int r;

	r = custody_store_get_package(cli->store, p->victim->thumbprint, &p->package,
				      &cli->err);
	if (r == CUSTODY_ENOTFOUND) {
		custody_err_clear(&cli->err);
		return CUSTODY_OK;
	}
	p->has_package = r == CUSTODY_OK;
	return r;
}

/* "key package (key id K, wrapped under KEK C on node N) in the store" */
static void
package_text(const struct delete_plan *p, char *buf, size_t size)
{
	snprintf(buf, size, "key package (key id %s, wrapped under KEK %s on node %s) "
		 "in the store", p->package.key_id, p->package.kcv, p->package.node);
}

/* One object that would go, as plan data. */
static void
plan_object(json_t *plan, const char *object, const char *key_id, const char *where,
	    const char *thumbprint)
{
	plan_add_object(plan, "deleted", json_pack("{s:s, s:s, s:s, s:s?}", "object", object,
						   "key_id", key_id, "where", where,
						   "thumbprint", thumbprint));
}

/* Prints what would go (--dry-run): text on stderr, data into plan. */
static void
show_plan(struct cli *cli, const struct delete_plan *p,
	  const custody_assignment *all, size_t n_all, json_t *plan, int dry_run)
{
	const custody_cert_record *v = p->victim;
	const char *label = custody_token_label(cli->token);
	FILE *f = cli->quiet || !dry_run ? NULL : stderr;
	size_t i;

	if (f != NULL)
		fprintf(f, "delete %s: would change (dry run, nothing written)\n",
			v->thumbprint);
	for (i = 0; i < n_all; i++) {
		custody_assignment after = all[i];

		if (clear_slots(&after, v->thumbprint) == 0)
			continue;
		plan_add_diff(plan, &all[i], &after);
		if (f == NULL)
			continue;
		fprintf(f, "  would clear %s/%s:\n", out_safe(all[i].type),
			out_safe(all[i].identity));
		out_assignment_diff(f, &all[i], &after);
	}
	plan_object(plan, "certificate", v->key_id, "token", v->thumbprint);
	if (f != NULL)
		fprintf(f, "  would destroy certificate %s (key id %s) on token %s\n",
			v->thumbprint, v->key_id, label);
	if (p->has_package) {
		char what[256];

		package_text(p, what, sizeof(what));
		plan_object(plan, "key_package", v->key_id, "store", v->thumbprint);
		if (f != NULL)
			fprintf(f, "  would delete its %s\n", what);
	}
	if (p->key_stays) {
		if (f != NULL)
			fprintf(f, "  its key (key id %s) stays: %s uses it\n", v->key_id,
				p->sharers);
		return;
	}
	if (p->held.public_keys > 0)
		plan_object(plan, "public_key", v->key_id, "token", NULL);
	if (p->held.private_keys > 0)
		plan_object(plan, "private_key", v->key_id, "token", NULL);
	if (f != NULL && p->held.public_keys > 0)
		fprintf(f, "  would destroy public key (key id %s) on token %s\n",
			v->key_id, label);
	if (f != NULL && p->held.private_keys > 0)
		fprintf(f, "  would destroy private key (key id %s) on token %s\n",
			v->key_id, label);
}

/* The audit entries of the objects that go, one each. */
static int
audit_objects(custody_txn *tx, const struct delete_plan *p, const char *label)
{
	const custody_cert_record *v = p->victim;
	char detail[4][512];
	size_t n = 0, i;
	int r = CUSTODY_OK;

	if (p->key_stays)
		snprintf(detail[n++], sizeof(detail[0]),
			 "certificate object, key id %s on token %s; the key stays: %s uses it",
			 v->key_id, label, p->sharers);
	else
		snprintf(detail[n++], sizeof(detail[0]),
			 "certificate object, key id %s on token %s", v->key_id, label);
	if (p->has_package)
		package_text(p, detail[n++], sizeof(detail[0]));
	if (!p->key_stays && p->held.public_keys > 0)
		snprintf(detail[n++], sizeof(detail[0]), "public key, key id %s on token %s",
			 v->key_id, label);
	if (!p->key_stays && p->held.private_keys > 0)
		snprintf(detail[n++], sizeof(detail[0]), "private key, key id %s on token %s",
			 v->key_id, label);
	for (i = 0; i < n && r == CUSTODY_OK; i++)
		r = custody_txn_audit(tx, "delete", NULL, NULL, v->thumbprint, NULL, detail[i]);
	return r;
}

/* The token's part, certificate first, private key last. */
static int
destroy_objects(struct cli *cli, const struct delete_plan *p)
{
	const custody_cert_record *v = p->victim;
	int r;

	r = custody_token_delete_cert(cli->token, v->key_id, v->der, v->der_len, &cli->err);
	if (r != CUSTODY_OK)
		return custody_err_prefix(&cli->err, "certificate %s", v->thumbprint);
	if (p->key_stays || (p->held.public_keys == 0 && p->held.private_keys == 0))
		return CUSTODY_OK;
	r = custody_token_delete_key(cli->token, v->key_id, NULL, &cli->err);
	if (r != CUSTODY_OK) {
		custody_err_prefix(&cli->err, "certificate %s", v->thumbprint);
		custody_err_hint(&cli->err, "its certificate object is gone from the token "
				 "already; the store is unchanged");
	}
	return r;
}

/* Which assignments (as stored, any slot) name the victim or its key,
 * then the store's part and the token's, in one transaction; a dry run
 * only shows it and writes nothing.  *clears: how many were cleared;
 * *done: the plan as data (the caller's, printed once it holds). */
static int
delete_victim(struct cli *cli, const struct delete_opts *o, struct delete_plan *plan,
	      const custody_cert_record *recs, size_t n, size_t *clears, json_t **done)
{
	const char *thumbprint = plan->victim->thumbprint;
	custody_assignment *all = NULL;
	size_t n_all = 0, i;
	custody_txn tx;
	int r;

	custody_txn_init(&tx, cli->store, cli->token, cli->node, &cli->err);
	if ((r = custody_txn_begin(&tx)) != CUSTODY_OK ||
	    (r = custody_store_list_assignments(cli->store, &all, &n_all, &cli->err)) != CUSTODY_OK ||
	    (r = check_assignments(cli, o, plan, recs, n, all, n_all, clears)) != CUSTODY_OK ||
	    (r = plan_package(cli, plan)) != CUSTODY_OK)
		goto out;
	/* The plan as data: a dry run's, or (-o json) what is done. */
	*done = plan_new("delete");
	show_plan(cli, plan, all, n_all, *done, o->dry_run);
	if (o->dry_run)
		goto out;	/* rolled back: nothing was written */
	for (i = 0; i < n_all; i++) {
		if (clear_slots(&all[i], thumbprint) == 0)
			continue;
		if ((r = custody_store_put_assignment(cli->store, &all[i], &cli->err)) != CUSTODY_OK ||
		    (r = custody_txn_audit(&tx, "remove", all[i].type, all[i].identity,
					   thumbprint, NULL, "delete --force")) != CUSTODY_OK)
			goto out;
		cli_warn("%s/%s no longer refers to %s", all[i].type, all[i].identity, thumbprint);
	}
	r = custody_store_delete_cert(cli->store, thumbprint, &cli->err);
	if (r != CUSTODY_OK && r != CUSTODY_ENOTFOUND)
		goto out;
	if ((plan->has_package &&
	     (r = custody_store_delete_package(cli->store, thumbprint, &cli->err)) != CUSTODY_OK) ||
	    (r = audit_objects(&tx, plan, custody_token_label(cli->token))) != CUSTODY_OK ||
	    /* The token last: if it fails, the store transaction is rolled back. */
	    (r = destroy_objects(cli, plan)) != CUSTODY_OK)
		goto out;
	r = custody_txn_commit(&tx);
out:
	custody_txn_end(&tx, r);
	free(all);
	return r;
}

const char cmd_delete_usage[] =
	"custody delete --thumbprint X [--force] [--dry-run]\n"
	"\n"
	"Destroys the certificate on the token, and its key (private and public key\n"
	"objects) when no other certificate on the token has its key id; when one\n"
	"has (a renewal on the same key), the key stays and says which certificate\n"
	"uses it. Refused while an assignment refers to the certificate, unless\n"
	"--force (which also clears those slots). A key that would go while an\n"
	"assignment names another certificate on it is refused, even with --force.\n"
	"Its key package (cluster) leaves the store with it. Each object destroyed,\n"
	"and the package, gets its own audit entry.\n"
	"\n"
	"  --thumbprint X            SHA-1 thumbprint, SHA-256 fingerprint or a unique\n"
	"                            prefix of at least 8 hex digits\n"
	"  --force                   also clear the assignment slots that name X\n"
	"  --dry-run                 print each object and slot that would go, change\n"
	"                            nothing; with -o json the plan as data on stdout\n"
	"                            (without --dry-run: what went, \"dry_run\": false)\n";

int
cmd_delete(struct cli *cli, int argc, char **argv)
{
	struct delete_opts o = {NULL, 0, 0};
	const struct cli_opt options[] = {
		CLI_OPT_TEXT("thumbprint", OPT_THUMBPRINT, &o.thumbprint),
		CLI_OPT_FLAG("force", OPT_FORCE, &o.force),
		CLI_OPT_FLAG("dry-run", OPT_DRY_RUN, &o.dry_run),
		{NULL},
	};
	struct delete_plan plan;
	custody_cert_record *recs = NULL;
	size_t n = 0, index, clears = 0;
	json_t *done = NULL;
	int r;

	memset(&plan, 0, sizeof(plan));
	if ((r = cli_parse(cli, argc, argv, options, "", NULL, NULL)) != CUSTODY_OK)
		return r;
	if (o.thumbprint == NULL)
		return cli_usage_error(cli, "--thumbprint X is required");
	if ((r = cli_check_thumbprint(cli, o.thumbprint)) != CUSTODY_OK)
		return r;
	if ((r = cli_check_output(cli, (1u << OUT_TABLE) | (1u << OUT_JSON))) != CUSTODY_OK)
		return r;
	cli->preview = o.dry_run;	/* a dry run makes no store */
	if ((r = cli_open_store(cli)) != CUSTODY_OK ||
	    (r = cli_open_token(cli)) != CUSTODY_OK ||
	    (r = cli_token_records(cli, &recs, NULL, &n)) != CUSTODY_OK)
		goto out;
	if ((r = custody_thumbprint_match(o.thumbprint, recs, n, &index, &cli->err)) != CUSTODY_OK)
		goto out;
	plan.victim = &recs[index];
	if ((r = plan_key(cli, recs, n, &plan)) != CUSTODY_OK ||
	    (r = delete_victim(cli, &o, &plan, recs, n, &clears, &done)) != CUSTODY_OK)
		goto out;
	if (o.dry_run) {
		r = plan_print(cli, done);
		done = NULL;
		goto out;
	}
	if (plan.key_stays)
		cli_say(cli, "removed certificate %s; its key (key id %s) stays: %s uses it%s%s",
			plan.victim->thumbprint, plan.victim->key_id, plan.sharers,
			clears > 0 ? "; its assignments were cleared" : "",
			plan.has_package ? "; its key package was deleted from the store" : "");
	else
		cli_say(cli, "destroyed certificate %s and its key (key id %s) on token %s%s%s",
			plan.victim->thumbprint, plan.victim->key_id,
			custody_token_label(cli->token),
			clears > 0 ? "; its assignments were cleared" : "",
			plan.has_package ? "; its key package was deleted from the store" : "");
	r = plan_print(cli, plan_done(done, 0));
	done = NULL;
out:
	json_decref(done);
	custody_cert_records_free(recs, n);
	custody_package_record_clear(&plan.package);
	return r;
}
