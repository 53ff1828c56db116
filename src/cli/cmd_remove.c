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
};

struct remove_opts {
	const char *type;
	const char *identity;
	int previous, pending, force;
};

const char cmd_remove_usage[] =
	"custody remove -t TYPE [-i IDENTITY] [--previous | --pending] [--force]\n"
	"\n"
	"Removes the current (default), previous or pending certificate from an\n"
	"assignment. Token objects stay. A previous certificate inside its overlap\n"
	"window needs --force.\n";
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
		{NULL},
	};
	char type[CUSTODY_NAME_MAX + 1], identity[CUSTODY_NAME_MAX + 1];
	custody_assignment before;
	custody_removal done;
	custody_ops_env env;
	enum custody_slot_name slot;
	int r;

	memset(&o, 0, sizeof(o));
	if ((r = cli_parse(cli, argc, argv, options, "t:i:", NULL, NULL)) != CUSTODY_OK)
		return r;
	if (o.type == NULL)
		return cli_usage_error(cli, "-t TYPE is required");
	if (o.previous && o.pending)
		return cli_usage_error(cli, "give at most one of --previous and --pending");
	if ((r = cli_check_output(cli, 1u << OUT_TABLE)) != CUSTODY_OK)
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
	if (change_materialize_due_roll(cli, before.type, before.identity) == CUSTODY_OK &&
	    (r = cli_lookup_assignment(cli, before.type, before.identity, 0, &before)) != CUSTODY_OK)
		return r;
	change_env(cli, &env);
	if ((r = custody_remove(&env, &before, slot, o.force, &done, &cli->err)) != CUSTODY_OK)
		return r;
	cli_say(cli, "%s/%s: removed the %s certificate", done.after.type, done.after.identity,
		custody_slot_label(slot));
	if (!cli->quiet)
		out_assignment_diff(stderr, &done.before, &done.after);
	return CUSTODY_OK;
}
