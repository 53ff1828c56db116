/* change.c — the CLI's side of an assignment change: its environment,
 * and its narration (custody/ops.h plans and writes it). */
#include "config.h"

#include <string.h>
#include <time.h>

#include <custody/policy.h>

#include "change.h"

int
change_opts_usage(struct cli *cli, const struct change_opts *o)
{
	if (o->roll && o->effective_date == NULL)
		return cli_usage_error(cli, "--roll needs --effective-date TIME");
	if (o->effective_date != NULL && !o->roll)
		return cli_usage_error(cli, "--effective-date needs --roll");
	if (o->type == NULL && (o->identity != NULL || o->roll))
		return cli_usage_error(cli, "-i and --roll need -t TYPE");
	return CUSTODY_OK;
}

int
change_opts_request(struct cli *cli, struct change_opts *o, custody_change_request *req)
{
	int r;

	memset(req, 0, sizeof(*req));
	if ((r = custody_type_canonical(o->type, o->type_name, NULL, &cli->err)) != CUSTODY_OK)
		return r;
	r = custody_identity_canonical(o->identity != NULL ? o->identity
							   : cli_default_identity(cli, o->type_name),
				       o->identity_name, &cli->err);
	if (r != CUSTODY_OK)
		return r;
	if (o->roll &&
	    (r = custody_time_parse(o->effective_date, &req->effective, &cli->err)) != CUSTODY_OK)
		return custody_err_prefix(&cli->err, "--effective-date");
	req->type = o->type_name;
	req->identity = o->identity_name;
	req->roll = o->roll;
	return CUSTODY_OK;
}

static int
open_store_hook(void *ctx, custody_store **st, custody_err *err)
{
	struct cli *cli = ctx;
	int r;

	(void)err;	/* cli->err, the same */
	r = cli_open_store(cli);
	*st = cli->store;
	return r;
}

static int
open_token_hook(void *ctx, custody_token **tok, custody_err *err)
{
	struct cli *cli = ctx;
	int r;

	(void)err;
	r = cli_open_token(cli);
	*tok = cli->token;
	return r;
}

void
change_env(struct cli *cli, custody_ops_env *env)
{
	memset(env, 0, sizeof(*env));
	env->store = cli->store;
	env->token = cli->token;
	env->node = cli->node;
	env->now = cli->now;
	env->policy = &cli->cfg.policy;
	env->open_store = open_store_hook;
	env->open_token = open_token_hook;
	env->ctx = cli;
}

void
change_env_now(struct cli *cli, custody_ops_env *env)
{
	/* The clock as the change is decided, not as the process started:
	 * an import may have waited on a pipe for a certificate made just now. */
	if (cli->args.at == NULL)
		cli->now = (int64_t)time(NULL);
	change_env(cli, env);
}

int
change_plan(struct cli *cli, const custody_change_request *req,
	    const custody_cert_record *rec, custody_change *ch)
{
	custody_ops_env env;

	change_env_now(cli, &env);
	return custody_change_plan(&env, req, rec, ch, &cli->err);
}

int
change_materialize_due_roll(struct cli *cli, const char *type, const char *identity)
{
	/* Only the real clock makes a roll happen, never --at. */
	if (cli->args.at != NULL)
		return CUSTODY_OK;
	return custody_change_materialize_due_roll(cli->store, cli->node, type, identity,
						   (int64_t)time(NULL), NULL);
}

void
change_report(const struct cli *cli, const custody_change *ch, int dry_run)
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
change_print_details(FILE *f, const custody_change *ch)
{
	out_assignment_diff(f, &ch->before, &ch->after);
	if (ch->outcome.cancelled_pending[0] != '\0')
		fprintf(f, "  the pending roll to %s is cancelled\n",
			out_safe(ch->outcome.cancelled_pending));
	if (ch->outcome.replaced_pending[0] != '\0')
		fprintf(f, "  the pending roll to %s is replaced\n",
			out_safe(ch->outcome.replaced_pending));
}
