/*
 * change.h — the CLI's side of an assignment change (custody/ops.h plans
 * and writes it): the operation's environment made from the command's
 * state, and the narration of a change.
 */
#ifndef CUSTODY_CLI_CHANGE_H
#define CUSTODY_CLI_CHANGE_H

#include <custody/ops.h>

#include "cli.h"

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

/* Prints what changes into f: the diff lines of out_assignment_diff(), then
 * a cancelled or replaced pending roll.  change_report() uses it; so does
 * the wizard's summary. */
void change_print_details(FILE *f, const custody_change *ch);

#endif
