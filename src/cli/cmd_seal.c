/*
 * cmd_seal.c — `custody seal --thumbprint X [--force]`: once every member
 * of the cluster reports holding a replicated key, turns its
 * CKA_EXTRACTABLE off on this token (irreversible), so that no token
 * keeps an exportable copy.  Refused, naming the nodes, while one does
 * not report it held (--force skips that check).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <custody/cluster.h>
#include <custody/thumbprint.h>

#include "change.h"
#include "cli.h"

enum { OPT_THUMBPRINT = OPT_FIRST_COMMAND_OPTION, OPT_FORCE, OPT_DRY_RUN };

struct seal_opts {
	const char *thumbprint;
	int force, dry_run;
};

/* The seal as plan data: one attribute of one private key. */
static json_t *
seal_plan(const char *thumbprint, const char *key_id)
{
	json_t *plan = plan_new("seal");

	json_object_set_new(plan, "modified", json_pack("[{s:s, s:s, s:s, s:s, s:s, s:b}]",
		"object", "private_key", "key_id", key_id, "where", "token",
		"thumbprint", thumbprint, "attribute", "CKA_EXTRACTABLE", "value", 0));
	return plan;
}

/* --dry-run: the seal's checks, then what it would change; without it,
 * the seal.  -o json: the plan, or what was done. */
static int
seal(struct cli *cli, const struct seal_opts *o, const char *thumbprint)
{
	custody_cert_record cert;
	int r;

	memset(&cert, 0, sizeof(cert));
	if ((r = custody_store_get_cert(cli->store, thumbprint, &cert, &cli->err)) != CUSTODY_OK)
		goto out;
	if (o->dry_run) {
		if ((r = custody_cluster_seal_check(cli->token, cli->store, cli->node, thumbprint,
						    o->force, &cli->err)) != CUSTODY_OK)
			goto out;
		cli_say(cli, "seal %s: would turn CKA_EXTRACTABLE off for key id %s on token %s "
			"(irreversible; dry run, nothing written)", thumbprint, cert.key_id,
			custody_token_label(cli->token));
	} else if ((r = custody_cluster_seal(cli->token, cli->store, cli->node, thumbprint,
					     o->force, &cli->err)) != CUSTODY_OK) {
		goto out;
	}
	if (cli->output == OUT_JSON)
		r = plan_print(cli, plan_done(seal_plan(thumbprint, cert.key_id), o->dry_run));
	else if (!o->dry_run)
		printf("%s\n", thumbprint);
out:
	custody_cert_record_clear(&cert);
	return r;
}

const char cmd_seal_usage[] =
	"custody seal --thumbprint X [--force] [--dry-run]\n"
	"\n"
	"Once every member of the cluster reports holding the key of X (custody sync\n"
	"on each), turns CKA_EXTRACTABLE off for it on this token: irreversible, and\n"
	"no token keeps an exportable copy. Refused, naming the nodes, while one\n"
	"does not report it; --force skips that check (they can then still unwrap\n"
	"the package already in the store).\n"
	"\n"
	"  --thumbprint X            the certificate whose key is sealed\n"
	"  --force                   seal although a node does not report the key\n"
	"  --dry-run                 check as the seal does, change nothing (-o json:\n"
	"                            the plan as data; without --dry-run, what was done)\n";

int
cmd_seal(struct cli *cli, int argc, char **argv)
{
	struct seal_opts o = {NULL, 0, 0};
	const struct cli_opt options[] = {
		CLI_OPT_TEXT("thumbprint", OPT_THUMBPRINT, &o.thumbprint),
		CLI_OPT_FLAG("force", OPT_FORCE, &o.force),
		CLI_OPT_FLAG("dry-run", OPT_DRY_RUN, &o.dry_run),
		{NULL},
	};
	char thumbprint[CUSTODY_THUMBPRINT_HEX + 1];
	int r;

	if ((r = cli_parse(cli, argc, argv, options, "", NULL, NULL)) != CUSTODY_OK)
		return r;
	if (o.thumbprint == NULL)
		return cli_usage_error(cli, "--thumbprint X is required");
	if ((r = cli_begin_on_stored_cert(cli, o.thumbprint, o.dry_run,
					  thumbprint)) != CUSTODY_OK ||
	    (r = cli_open_token(cli)) != CUSTODY_OK)
		return r;
	cli_say(cli, "custody seal %s: node %s, token %s (serial %s)", thumbprint, cli->node,
		custody_token_label(cli->token), custody_token_serial(cli->token));
	return seal(cli, &o, thumbprint);
}
