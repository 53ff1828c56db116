/*
 * change.h — one change of an assignment, shared by `set` and `import -t`:
 * planned (store read, rules of the assign state machine, policy checks)
 * before anything is written, written in the caller's store transaction,
 * then reported.
 */
#ifndef CUSTODY_CLI_CHANGE_H
#define CUSTODY_CLI_CHANGE_H

#include "cli.h"

struct change_request {
	const char *type;	/* canonical */
	const char *identity;	/* canonical */
	int roll;		/* stage as pending at `effective` */
	int64_t effective;
	int replicable;		/* the caller puts the key's package into the
				   store in the same transaction (import or
				   request --replicable on a cluster member) */
};

struct change {
	custody_assignment before;	/* as stored, resolved at now */
	custody_assignment after;
	custody_assign_outcome outcome;
	char warning[256];		/* "" or a lead-time warning */
	int roll;			/* the request was a roll */
};

/*
 * Checks the request against the policy (identity, validity of the
 * certificate now or at the effective date) and computes the new
 * assignment from the stored one.  Writes nothing.
 */
int change_plan(struct cli *cli, const struct change_request *req,
		const custody_cert_record *rec, struct change *ch);

/* Writes ch->after with the version read by change_plan (inside the
 * caller's transaction): ECONFLICT when the assignment changed since. */
int change_write(struct cli *cli, struct change *ch);

/* Appends the "roll-effective" audit entry of a roll that came due
 * (resolved: the record after the roll). */
int change_audit_due_roll(struct cli *cli, const custody_assignment *resolved);

/*
 * Best effort, in its own transaction: when the stored record of (type,
 * identity) holds a pending roll that is due by the real clock, writes the
 * rolled record and its "roll-effective" audit entry, so that the log shows
 * when a roll took effect.  Never with --at.  cli->err is left untouched.
 */
int change_materialize_due_roll(struct cli *cli, const char *type,
				const char *identity);

/* Narrates the change on stderr ("would change" with dry_run). */
void change_report(const struct cli *cli, const struct change *ch, int dry_run);

/* Prints what changes into f: the diff lines of out_assignment_diff(), then
 * a cancelled or replaced pending roll.  change_report() uses it; so does
 * the wizard's summary. */
void change_print_details(FILE *f, const struct change *ch);

#endif
