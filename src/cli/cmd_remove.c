/*
 * cmd_remove.c — `custody remove` (Remove-CsCertificate): empties the
 * current, previous or pending slot of an assignment.  Token objects stay.
 */
#include "config.h"

#include <string.h>

#include <custody/policy.h>

#include "change.h"
#include "cli.h"

enum {
	OPT_PREVIOUS = OPT_FIRST_COMMAND_OPTION,
	OPT_PENDING,
	OPT_FORCE,
	OPT_DRY_RUN,
};

struct remove_opts {
	const char *type;
	const char *identity;
	int previous, pending, force, dry_run;
};

static int
on_option(struct cli *cli, int c, const char *arg, void *ctx)
{
	struct remove_opts *o = ctx;

	(void)arg;
	if (c == OPT_DRY_RUN)	/* a preview: makes no store */
		o->dry_run = cli->preview = 1;
	return CUSTODY_OK;
}

/* Removing the current certificate breaks whatever uses the type now:
 * guarded (change_guard), saying what. */
static int
guard(struct cli *cli, const struct remove_opts *o, const custody_removal *done,
      json_t *plan)
{
	const custody_assignment *b = &done->before;
	char what[512];

	if (done->slot != CUSTODY_SLOT_CURRENT)
		return CUSTODY_OK;
	if (change_type_signs(b->type))
		snprintf(what, sizeof(what), "%s/%s's current certificate %s signs every token: "
			 "removing it stops token issuing on every node; --force to remove "
			 "it anyway", b->type, b->identity, b->current.thumbprint);
	else
		snprintf(what, sizeof(what), "%s/%s's current certificate %s is in use: "
			 "removing it leaves %s with no certificate there, and what serves "
			 "it fails; --force to remove it anyway", b->type, b->identity,
			 b->current.thumbprint, b->type);
	return change_guard(cli, o->force, o->dry_run, plan, what);
}

const char cmd_remove_usage[] =
	"custody remove -t TYPE [-i IDENTITY] [--previous | --pending] [--force]\n"
	"              [--dry-run]\n"
	"\n"
	"Removes the current (default), previous or pending certificate from an\n"
	"assignment. Token objects stay. The current certificate (what the type\n"
	"uses now) asks on a terminal and needs --force without one; a previous\n"
	"certificate inside its overlap window needs --force.\n"
	"\n"
	"  -t, --type TYPE           certificate type\n"
	"  -i, --identity IDENTITY   global or a node name\n"
	"  --previous, --pending     remove that slot instead of the current one\n"
	"  --force                   remove it without asking\n"
	"  --dry-run                 print what would change, change nothing; with\n"
	"                            -o json the plan as data on stdout (without\n"
	"                            --dry-run: what was removed, \"dry_run\": false)\n";
int
cmd_remove(struct cli *cli, int argc, char **argv)
{
	struct remove_opts o;
	const struct cli_opt options[] = {
		CLI_OPT_TEXT("type", 't', &o.type),
		CLI_OPT_TEXT("identity", 'i', &o.identity),
		CLI_OPT_FLAG("previous", OPT_PREVIOUS, &o.previous),
		CLI_OPT_FLAG("pending", OPT_PENDING, &o.pending),
		CLI_OPT_FLAG("force", OPT_FORCE, &o.force),
		CLI_OPT("dry-run", no_argument, OPT_DRY_RUN),
		{NULL},
	};
	char type[CUSTODY_NAME_MAX + 1], identity[CUSTODY_NAME_MAX + 1];
	custody_assignment before;
	custody_removal done;
	custody_ops_env env;
	enum custody_slot_name slot;
	json_t *plan;
	int r;

	memset(&o, 0, sizeof(o));
	if ((r = cli_parse(cli, argc, argv, options, "t:i:", on_option, &o)) != CUSTODY_OK)
		return r;
	if (o.type == NULL)
		return cli_usage_error(cli, "-t TYPE is required");
	if (o.previous && o.pending)
		return cli_usage_error(cli, "give at most one of --previous and --pending");
	if ((r = cli_check_output(cli, (1u << OUT_TABLE) | (1u << OUT_JSON))) != CUSTODY_OK)
		return r;
	if ((r = custody_type_canonical(o.type, type, NULL, &cli->err)) != CUSTODY_OK)
		return r;
	if (o.identity != NULL &&
	    (r = custody_identity_canonical(o.identity, identity, &cli->err)) != CUSTODY_OK)
		return r;
	slot = o.previous ? CUSTODY_SLOT_PREVIOUS
			  : o.pending ? CUSTODY_SLOT_PENDING : CUSTODY_SLOT_CURRENT;
	/* The token tags the changed record (custody/integrity.h). */
	if ((r = cli_open_store(cli)) != CUSTODY_OK || (r = cli_open_token(cli)) != CUSTODY_OK)
		return r;
	/* The assignment as it stands (the version read is what the write
	 * is checked against).  A roll that came due is recorded first, with
	 * its own audit entry, then the record is read again. */
	if ((r = cli_lookup_assignment(cli, type, o.identity != NULL ? identity : NULL, 0,
				       &before)) != CUSTODY_OK)
		return r;
	/* (A dry run writes nothing: the plan resolves the roll itself.) */
	if (!o.dry_run &&
	    change_materialize_due_roll(cli, before.type, before.identity) == CUSTODY_OK &&
	    (r = cli_lookup_assignment(cli, before.type, before.identity, 0, &before)) != CUSTODY_OK)
		return r;
	change_env(cli, &env);
	if ((r = custody_remove_plan(&env, &before, slot, o.force, &done, &cli->err)) != CUSTODY_OK)
		return r;
	plan = plan_new("remove");
	if ((r = guard(cli, &o, &done, plan)) != CUSTODY_OK) {
		json_decref(plan);
		return r;
	}
	if (o.dry_run) {
		cli_say(cli, "%s/%s: would remove the %s certificate (dry run, nothing written)",
			done.after.type, done.after.identity, custody_slot_label(slot));
		if (!cli->quiet)
			out_assignment_diff(stderr, &done.before, &done.after);
		plan_add_diff(plan, &done.before, &done.after);
		return plan_print(cli, plan);
	}
	if ((r = custody_remove(&env, &before, slot, o.force, &done, &cli->err)) != CUSTODY_OK) {
		json_decref(plan);
		return r;
	}
	cli_say(cli, "%s/%s: removed the %s certificate", done.after.type, done.after.identity,
		custody_slot_label(slot));
	if (!cli->quiet)
		out_assignment_diff(stderr, &done.before, &done.after);
	plan_add_diff(plan, &done.before, &done.after);
	return plan_print(cli, plan_done(plan, 0));
}
