/*
 * cmd_tidy.c — `custody tidy [--dry-run | --yes]`: lists what interrupted
 * custody processes left on this node's token (the objects of a note of
 * intent that nothing in the store names) and, with --yes, destroys it
 * (custody/tidy.h).  --dry-run, the default, changes nothing.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <custody/tidy.h>

#include "cli.h"

enum { OPT_DRY_RUN = OPT_FIRST_COMMAND_OPTION, OPT_YES };

struct tidy_opts {
	int dry_run, yes;
};

static const char *
item_action(const custody_tidy_item *it)
{
	if (it->named)
		return "keep";		/* the objects; the note goes */
	if (it->objects.certificates + it->objects.public_keys +
	    it->objects.private_keys == 0)
		return "note-only";	/* nothing was created */
	return "destroy";
}

static int
print_json(struct cli *cli, const custody_tidy_plan *plan, int done)
{
	json_t *items = json_array(), *deleted = json_array();
	size_t i;

	for (i = 0; i < plan->n; i++) {
		const custody_tidy_item *it = &plan->items[i];
		const char *kinds[] = {"private_key", "public_key", "certificate"};
		const size_t counts[] = {it->objects.private_keys, it->objects.public_keys,
					 it->objects.certificates};
		size_t k, j;

		/* The plan as every dry run gives it: each object that goes. */
		for (k = 0; k < 3 && strcmp(item_action(it), "destroy") == 0; k++)
			for (j = 0; j < counts[k]; j++)
				json_array_append_new(deleted,
					json_pack("{s:s, s:s, s:s}", "object", kinds[k],
						  "key_id", it->key_id, "where", "token"));

		json_array_append_new(items,
			json_pack("{s:s, s:s, s:I, s:I, s:I, s:s?}",
				  "key_id", it->key_id,
				  "action", item_action(it),
				  "private_keys", (json_int_t)it->objects.private_keys,
				  "public_keys", (json_int_t)it->objects.public_keys,
				  "certificates", (json_int_t)it->objects.certificates,
				  "named_by", it->named ? it->named_by : NULL));
	}
	return out_json(cli, json_pack("{s:s, s:s, s:b, s:b, s:o, s:[], s:o, s:[], s:[]}",
				       "command", "tidy", "token",
				       custody_token_label(cli->token), "done", done,
				       "dry_run", !done, "items", items, "changes",
				       "deleted", deleted, "created", "warnings"));
}

static void
print_table(const custody_tidy_plan *plan, int done)
{
	size_t i;

	for (i = 0; i < plan->n; i++) {
		const custody_tidy_item *it = &plan->items[i];
		const char *a = item_action(it);

		if (strcmp(a, "keep") == 0)
			printf("%s  keep: %s names it (only its note %s)\n", out_safe(it->key_id),
			       out_safe(it->named_by), done ? "was removed" : "goes");
		else if (strcmp(a, "note-only") == 0)
			printf("%s  no objects (only its note %s)\n", out_safe(it->key_id),
			       done ? "was removed" : "goes");
		else
			printf("%s  %s %zu private key(s), %zu public key(s), %zu certificate(s)\n",
			       out_safe(it->key_id), done ? "destroyed" : "would destroy",
			       it->objects.private_keys, it->objects.public_keys,
			       it->objects.certificates);
	}
}

const char cmd_tidy_usage[] =
	"custody tidy [--dry-run | --yes] [-o table|json]\n"
	"\n"
	"Before custody creates key objects (import, request, import --package) it\n"
	"leaves a note of intent on the token, and removes it once the store records\n"
	"the key. A note still there names objects that an interrupted process was\n"
	"making. tidy lists, for each note, the objects of its key id: when nothing in\n"
	"the store names the key id (no certificate record, package, assignment or\n"
	"pending CSR) they would be destroyed; otherwise they stay and only the note\n"
	"goes. Objects without a note (another application's, custody's finished\n"
	"ones, torn objects without CKA_ID) are never listed. One audit entry \"tidy\"\n"
	"per key id whose objects go.\n"
	"\n"
	"  --dry-run                 list only (the default); with -o json the plan\n"
	"                            as data (\"dry_run\": true)\n"
	"  --yes                     destroy what is listed\n";

int
cmd_tidy(struct cli *cli, int argc, char **argv)
{
	struct tidy_opts o = {0, 0};
	const struct cli_opt options[] = {
		CLI_OPT_FLAG("dry-run", OPT_DRY_RUN, &o.dry_run),
		CLI_OPT_FLAG("yes", OPT_YES, &o.yes),
		{NULL},
	};
	custody_tidy_plan plan;
	size_t i, destroy = 0;
	int r;

	memset(&plan, 0, sizeof(plan));
	if ((r = cli_parse(cli, argc, argv, options, "", NULL, NULL)) != CUSTODY_OK)
		return r;
	if (o.dry_run && o.yes)
		return cli_usage_error(cli, "--dry-run and --yes exclude each other");
	if ((r = cli_check_output(cli, (1u << OUT_TABLE) | (1u << OUT_JSON))) != CUSTODY_OK)
		return r;
	cli->preview = !o.yes;	/* a dry run makes no store */
	if ((r = cli_open_store(cli)) != CUSTODY_OK ||
	    (r = cli_open_token(cli)) != CUSTODY_OK)
		return r;
	if ((r = custody_tidy_plan_make(cli->token, cli->store, &plan, &cli->err)) != CUSTODY_OK)
		goto out;
	for (i = 0; i < plan.n; i++)
		destroy += strcmp(item_action(&plan.items[i]), "destroy") == 0;
	cli_say(cli, "token %s (serial %s): %zu note(s) of interrupted custody work; %zu key id(s) "
		"with objects that nothing in the store names", custody_token_label(cli->token),
		custody_token_serial(cli->token), plan.n, destroy);
	if (o.yes && plan.n > 0 &&
	    (r = custody_tidy_apply(cli->token, cli->store, cli->node, &plan, &cli->err)) !=
	    CUSTODY_OK)
		goto out;
	if (cli->output == OUT_JSON)
		r = print_json(cli, &plan, o.yes);
	else
		print_table(&plan, o.yes);
	if (!o.yes && plan.n > 0)
		cli_say(cli, "nothing was changed (--dry-run); custody tidy --yes does it");
out:
	custody_tidy_plan_clear(&plan);
	return r;
}
