/*
 * cmd_delete.c — `custody delete`: destroys a certificate and its private
 * key on the token.  Refused while an assignment refers to it, unless
 * --force, which also empties those slots (no assignment may name a key
 * that is gone).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <custody/thumbprint.h>

#include "cli.h"

enum { OPT_THUMBPRINT = OPT_FIRST_COMMAND_OPTION, OPT_FORCE };

struct delete_opts {
	const char *thumbprint;
	int force;
};

static int
on_option(struct cli *cli, int c, const char *arg, void *ctx)
{
	struct delete_opts *o = ctx;

	(void)cli;
	if (c == OPT_THUMBPRINT)
		o->thumbprint = arg;
	else if (c == OPT_FORCE)
		o->force = 1;
	return CUSTODY_OK;
}

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

int
cmd_delete(struct cli *cli, int argc, char **argv)
{
	static const struct option options[] = {
		{"thumbprint", required_argument, NULL, OPT_THUMBPRINT},
		{"force", no_argument, NULL, OPT_FORCE},
		{NULL, 0, NULL, 0},
	};
	struct delete_opts o = {NULL, 0};
	custody_cert_record *recs = NULL;
	custody_assignment *all = NULL;
	const custody_cert_record *victim;
	size_t n = 0, n_all = 0, i, index, refs = 0;
	char normalized[65];
	int r, in_tx = 0;

	if ((r = cli_parse(cli, argc, argv, options, "", on_option, &o)) != CUSTODY_OK)
		return r;
	if (o.thumbprint == NULL)
		return cli_usage_error(cli, "--thumbprint X is required");
	if ((r = custody_thumbprint_normalize(o.thumbprint, normalized, &cli->err)) != CUSTODY_OK)
		return r;
	if ((r = cli_check_output(cli, 1u << OUT_TABLE)) != CUSTODY_OK)
		return r;
	if ((r = cli_open_store(cli)) != CUSTODY_OK ||
	    (r = cli_open_token(cli)) != CUSTODY_OK ||
	    (r = cli_token_records(cli, &recs, NULL, &n)) != CUSTODY_OK)
		goto out;
	if ((r = custody_thumbprint_match(o.thumbprint, recs, n, &index, &cli->err)) != CUSTODY_OK)
		goto out;
	victim = &recs[index];

	/* Which assignments (as stored, any slot) still name it. */
	if ((r = custody_store_begin(cli->store, &cli->err)) != CUSTODY_OK)
		goto out;
	in_tx = 1;
	if ((r = custody_store_list_assignments(cli->store, &all, &n_all, &cli->err)) != CUSTODY_OK)
		goto out;
	for (i = 0; i < n_all; i++) {
		enum custody_slot_name slot = custody_assign_find(&all[i], victim->thumbprint);

		if (slot == CUSTODY_SLOT_NONE)
			continue;
		refs++;
		if (!o.force) {
			r = custody_err_set(&cli->err, CUSTODY_EFAIL,
					    "certificate %s is assigned as %s/%s:%s",
					    victim->thumbprint, all[i].type, all[i].identity,
					    custody_slot_label(slot));
			custody_err_hint(&cli->err, "remove it from the assignment first, or use --force");
			goto out;
		}
		clear_slots(&all[i], victim->thumbprint);
		if ((r = custody_store_put_assignment(cli->store, &all[i], &cli->err)) != CUSTODY_OK ||
		    (r = cli_audit(cli, "remove", all[i].type, all[i].identity,
				   victim->thumbprint, NULL, "delete --force")) != CUSTODY_OK)
			goto out;
		cli_warn("%s/%s no longer refers to %s", all[i].type, all[i].identity,
			 victim->thumbprint);
	}
	r = custody_store_delete_cert(cli->store, victim->thumbprint, &cli->err);
	if (r != CUSTODY_OK && r != CUSTODY_ENOTFOUND)
		goto out;
	{
		char detail[128];

		snprintf(detail, sizeof(detail), "key id %s on token %s", victim->key_id,
			 custody_token_label(cli->token));
		if ((r = cli_audit(cli, "delete", NULL, NULL, victim->thumbprint, NULL,
				   detail)) != CUSTODY_OK)
			goto out;
	}
	/* The token last: if it fails, the store transaction is rolled back. */
	if ((r = custody_token_delete(cli->token, victim->key_id, &cli->err)) != CUSTODY_OK)
		goto out;
	if ((r = custody_store_commit(cli->store, &cli->err)) != CUSTODY_OK)
		goto out;
	in_tx = 0;
	cli_say(cli, "destroyed certificate %s and its key (key id %s) on token %s%s",
		victim->thumbprint, victim->key_id, custody_token_label(cli->token),
		refs > 0 ? "; its assignments were cleared" : "");
out:
	if (in_tx)
		custody_store_rollback(cli->store);
	custody_cert_records_free(recs, n);
	free(all);
	return r;
}
