/*
 * change.h — the CLI's side of an assignment change (custody/ops.h plans
 * and writes it): the operation's environment made from the command's
 * state, and the narration of a change.
 */
#ifndef CUSTODY_CLI_CHANGE_H
#define CUSTODY_CLI_CHANGE_H

#include <custody/ops.h>

#include "cli.h"

/*
 * -t TYPE, -i IDENTITY, --roll --effective-date TIME: the options of a
 * command that assigns the certificate it makes or names (import, request
 * --self-signed, set).  CHANGE_OPTIONS(c) are their entries of the
 * command's cli_opt table; the command numbers its own options from
 * OPT_FIRST_CHANGE_COMMAND_OPTION.
 */
#define CHANGE_TYPES_MAX 16
struct change_opts {
	struct cli_list types;	/* each -t as given: a type or "A,B,C" */
	const char *identity;
	const char *effective_date;
	int roll;
	/* change_opts_request: the canonical names the requests point to */
	size_t n_types;
	char type_name[CHANGE_TYPES_MAX][CUSTODY_NAME_MAX + 1];
	char identity_name[CHANGE_TYPES_MAX][CUSTODY_NAME_MAX + 1];
	/* each type's [rollover TYPE] min-publish (0: none); a command's
	 * --force clears them (change_opts_force_early) */
	int64_t min_publish[CHANGE_TYPES_MAX];
};
/* Whether -t was given. */
#define change_opts_given(o) ((o)->types.n > 0)
enum {
	OPT_EFFECTIVE_DATE = OPT_FIRST_COMMAND_OPTION,
	OPT_ROLL,
	OPT_FIRST_CHANGE_COMMAND_OPTION,
};
#define CHANGE_OPTIONS(c) \
	CLI_OPT_LIST("type", 't', &(c)->types), \
	CLI_OPT_TEXT("identity", 'i', &(c)->identity), \
	CLI_OPT_TEXT("effective-date", OPT_EFFECTIVE_DATE, &(c)->effective_date), \
	CLI_OPT_FLAG("roll", OPT_ROLL, &(c)->roll)

/* --force: a roll may take effect sooner than min-publish allows. */
void change_opts_force_early(struct change_opts *o, custody_change_request *req);

/* The options that go together (EUSAGE): --roll with --effective-date,
 * -i and --roll with -t; several types (-t A,B or -t A -t B) only where
 * the command takes them (several). */
int change_opts_usage(struct cli *cli, const struct change_opts *o, int several);
/* The change request of -t TYPE (given): every type named, each a known
 * type or one the configuration declares (cli_type_resolve), in the order
 * given, once each; its identity (-i, else cli_default_identity of the
 * type) and the effective date of a roll.  req is the first type's;
 * change_opts_pick gives the others.  req points into o. */
int change_opts_request(struct cli *cli, struct change_opts *o,
			custody_change_request *req);
/* req (as change_opts_request made it) for type i of o->n_types. */
void change_opts_pick(const struct change_opts *o, size_t i,
		      custody_change_request *req);

/* The environment of an operation run for this command: its store and
 * token (opened on first need, cli_open_store / cli_open_token), node,
 * policy and clock. */
void change_env(struct cli *cli, custody_ops_env *env);
/* The same at the clock as the change is decided (--at when given):
 * cli->now is set to it. */
void change_env_now(struct cli *cli, custody_ops_env *env);

/* custody_change_plan in change_env_now's environment. */
int change_plan(struct cli *cli, const custody_change_request *req,
		const custody_cert_record *rec, custody_change *ch);

/*
 * Best effort, in its own transaction: when the stored record of (type,
 * identity) holds a pending roll that is due by the real clock, writes the
 * rolled record and its "roll-effective" audit entry, so that the log shows
 * when a roll took effect.  Never with --at.  cli->err is left untouched.
 */
int change_materialize_due_roll(struct cli *cli, const char *type,
				const char *identity);

/* Narrates the change on stderr ("would change" with dry_run). */
void change_report(const struct cli *cli, const custody_change *ch, int dry_run);

/*
 * The plan of a dry run as data (-o json): {"command", "dry_run": true,
 * "changes": [{type, identity, slot, old_thumbprint, new_thumbprint,
 * effective}], "deleted": [...], "created": [...], "warnings": [...]}.
 * plan_new makes it; the plan_add_* append to it; plan_print prints it on
 * stdout with -o json (the text is the command's, on stderr) and releases
 * it.  effective is the slot's new instant (or the old one when emptied).
 */
json_t *plan_new(const char *command);
void plan_add_diff(json_t *plan, const custody_assignment *before,
		   const custody_assignment *after);
void plan_add_object(json_t *plan, const char *list, json_t *object);
void plan_add_warning(json_t *plan, const char *text);
/* The plan as what was done ("dry_run": false) unless dry_run. */
json_t *plan_done(json_t *plan, int dry_run);
int plan_print(struct cli *cli, json_t *plan);

/* Whether the current key of type signs what custody issues (custody jwt:
 * OAuthTokenIssuer), so that changing it at once breaks every token its
 * partners check against the old key. */
int change_type_signs(const char *type);

/*
 * A write that breaks something; what says what, in one line ending with
 * the --force that does it anyway.  A dry run shows it as a warning (and
 * in plan) and goes on; --force goes on; on a terminal (standard input
 * and error) asks "type yes to go on"; otherwise refuses (EUSAGE: exit 2),
 * what as the message.
 */
int change_guard(struct cli *cli, int force, int dry_run, json_t *plan,
		 const char *what);
/* What a planned change breaks, if anything — a pending roll replaced, or
 * the key that signs tokens changed at once — guarded by change_guard. */
int change_guard_planned(struct cli *cli, int force, int dry_run, json_t *plan,
			 const custody_change *ch);

/* The plan of import --dry-run (custody_import with dry_run set made res):
 * the objects it would create and the change, as text on stderr and, with
 * -o json, as data on stdout. */
int change_import_plan(struct cli *cli, const custody_bundle *b, int from_package,
		       const custody_import_result *res, int assigns);

/* Prints what changes into f: the diff lines of out_assignment_diff(), then
 * a cancelled or replaced pending roll.  change_report() uses it; so does
 * the wizard's summary. */
void change_print_details(FILE *f, const custody_change *ch);

#endif
