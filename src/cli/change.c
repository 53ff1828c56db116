/* change.c — plan, write and report one assignment change. */
#include "config.h"

#include <string.h>
#include <time.h>

#include <custody/cluster.h>
#include <custody/policy.h>

#include "change.h"

int
change_plan(struct cli *cli, const struct change_request *req,
	    const custody_cert_record *rec, struct change *ch)
{
	custody_assignment stored;
	int r;

	memset(ch, 0, sizeof(*ch));
	/* The clock as the change is decided, not as the process started:
	 * an import may have waited on a pipe for a certificate made just now. */
	if (cli->args.at == NULL)
		cli->now = (int64_t)time(NULL);
	if ((r = custody_policy_check_identity(req->type, req->identity, &cli->err)) != CUSTODY_OK)
		return r;
	if ((r = cli_open_store(cli)) != CUSTODY_OK)
		return r;
	/* In a cluster of several nodes, global means every node: only a key
	 * that can travel (a package in the store) may be assigned there. */
	if ((r = custody_cluster_check_global(cli->store, req->identity, rec->thumbprint,
					      req->replicable, &cli->err)) != CUSTODY_OK)
		return r;
	r = custody_store_get_assignment(cli->store, req->type, req->identity, &stored,
					 &cli->err);
	if (r == CUSTODY_ENOTFOUND) {
		memset(&stored, 0, sizeof(stored));
		snprintf(stored.type, sizeof(stored.type), "%s", req->type);
		snprintf(stored.identity, sizeof(stored.identity), "%s", req->identity);
	} else if (r != CUSTODY_OK) {
		return r;
	} else if ((r = cli_open_token(cli)) != CUSTODY_OK ||
		   (r = custody_store_check_assignment(cli->store, &stored, &cli->err)) !=
			   CUSTODY_OK) {
		/* A change builds on the row: a forged one is neither kept as
		 * it is (a no-op) nor tagged anew with what it says. */
		return r;
	}
	custody_assign_resolve(&stored, cli->now, &ch->before);
	ch->roll = req->roll;
	if (req->roll) {
		r = custody_assign_roll(&stored, rec->thumbprint, req->effective, cli->now,
					&ch->after, &ch->outcome, &cli->err);
		if (r == CUSTODY_OK)
			custody_policy_roll_warning(req->type, req->effective - cli->now,
						    ch->warning, sizeof(ch->warning));
	} else {
		r = custody_assign_set(&stored, rec->thumbprint, cli->now, &ch->after,
				       &ch->outcome, &cli->err);
	}
	/* The version read is what the write is checked against. */
	ch->before.version = ch->after.version = stored.version;
	if (r != CUSTODY_OK)
		return r;
	/* The certificate must be valid when it becomes current. */
	r = custody_policy_check_valid_at(rec, req->roll ? req->effective : cli->now,
					  &cli->err);
	if (r != CUSTODY_OK && req->roll)
		custody_err_prefix(&cli->err, "at the effective date");
	return r;
}

int
change_write(struct cli *cli, struct change *ch)
{
	char detail[160];
	int r;

	if (ch->outcome.noop && !ch->outcome.rolled)
		return CUSTODY_OK;
	if ((r = custody_store_put_assignment(cli->store, &ch->after, &cli->err)) != CUSTODY_OK)
		return r;
	/* A roll that came due before this change is recorded first. */
	if (ch->outcome.rolled &&
	    (r = change_audit_due_roll(cli, &ch->before)) != CUSTODY_OK)
		return r;
	if (ch->outcome.noop)
		return CUSTODY_OK;
	if (ch->roll) {
		char t[CUSTODY_TIME_TEXT];

		snprintf(detail, sizeof(detail), "becomes current at %s%s%s",
			 out_time(ch->after.pending.effective, t),
			 ch->outcome.replaced_pending[0] != '\0' ? "; replaces pending " : "",
			 ch->outcome.replaced_pending);
		return cli_audit(cli, "roll", ch->after.type, ch->after.identity,
				 ch->after.pending.thumbprint, ch->before.current.thumbprint,
				 detail);
	}
	snprintf(detail, sizeof(detail), "%s%s",
		 ch->outcome.cancelled_pending[0] != '\0' ? "cancels pending " : "",
		 ch->outcome.cancelled_pending);
	return cli_audit(cli, "set", ch->after.type, ch->after.identity,
			 ch->after.current.thumbprint, ch->before.current.thumbprint,
			 detail[0] != '\0' ? detail : NULL);
}

int
change_audit_due_roll(struct cli *cli, const custody_assignment *resolved)
{
	char t[CUSTODY_TIME_TEXT], detail[80];

	snprintf(detail, sizeof(detail), "took effect at %s",
		 out_time(resolved->current.effective, t));
	return cli_audit(cli, "roll-effective", resolved->type, resolved->identity,
			 resolved->current.thumbprint, resolved->previous.thumbprint, detail);
}

int
change_materialize_due_roll(struct cli *cli, const char *type, const char *identity)
{
	custody_assignment stored, resolved;
	custody_err ignored;
	int r;

	/* Only the real clock makes a roll happen, never --at. */
	if (cli->args.at != NULL)
		return CUSTODY_OK;
	if ((r = custody_store_begin(cli->store, &ignored)) != CUSTODY_OK)
		return r;
	r = custody_store_get_assignment(cli->store, type, identity, &stored, &ignored);
	if (r == CUSTODY_OK && custody_assign_resolve(&stored, (int64_t)time(NULL), &resolved)) {
		custody_err saved = cli->err;

		if ((r = custody_store_put_assignment(cli->store, &resolved, &ignored)) == CUSTODY_OK)
			r = change_audit_due_roll(cli, &resolved);
		if (r == CUSTODY_OK)
			r = custody_store_commit(cli->store, &ignored);
		cli->err = saved;
	}
	custody_store_rollback(cli->store);	/* nothing left to undo after a commit */
	return r;
}

void
change_report(const struct cli *cli, const struct change *ch, int dry_run)
{
	if (ch->warning[0] != '\0')
		cli_warn("%s", ch->warning);
	if (cli->quiet)
		return;
	if (ch->outcome.noop) {
		char t[CUSTODY_TIME_TEXT];

		if (ch->roll)
			fprintf(stderr, "%s/%s: %s is already pending for %s; nothing to change\n",
				out_safe(ch->after.type), out_safe(ch->after.identity),
				out_safe(ch->after.pending.thumbprint),
				out_time(ch->after.pending.effective, t));
		else
			fprintf(stderr, "%s/%s: %s is already current; nothing to change\n",
				out_safe(ch->after.type), out_safe(ch->after.identity),
				out_safe(ch->after.current.thumbprint));
		return;
	}
	fprintf(stderr, "%s/%s: %s\n", out_safe(ch->after.type), out_safe(ch->after.identity),
		dry_run ? "would change (dry run, nothing written)" : "changed");
	change_print_details(stderr, ch);
}

void
change_print_details(FILE *f, const struct change *ch)
{
	out_assignment_diff(f, &ch->before, &ch->after);
	if (ch->outcome.cancelled_pending[0] != '\0')
		fprintf(f, "  the pending roll to %s is cancelled\n",
			out_safe(ch->outcome.cancelled_pending));
	if (ch->outcome.replaced_pending[0] != '\0')
		fprintf(f, "  the pending roll to %s is replaced\n",
			out_safe(ch->outcome.replaced_pending));
}
