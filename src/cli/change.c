/* change.c — the CLI's side of an assignment change: its environment,
 * and its narration (custody/ops.h plans and writes it). */
#include "config.h"

#include <string.h>
#include <time.h>

#include <custody/policy.h>

#include "change.h"

int
change_opts_usage(struct cli *cli, const struct change_opts *o, int several)
{
	if (o->roll && o->effective_date == NULL)
		return cli_usage_error(cli, "--roll needs --effective-date TIME");
	if (o->effective_date != NULL && !o->roll)
		return cli_usage_error(cli, "--effective-date needs --roll");
	if (!change_opts_given(o) && (o->identity != NULL || o->roll))
		return cli_usage_error(cli, "-i and --roll need -t TYPE");
	if (!several && (o->types.n > 1 ||
			 (o->types.n == 1 && strchr(o->types.item[0], ',') != NULL)))
		return cli_usage_error(cli, "%s assigns one type: give -t once "
				       "(custody set -t A,B assigns several)", cli->cmd);
	return CUSTODY_OK;
}

/* Adds the type named by text[0..len) to o, once. */
static int
add_type(struct cli *cli, struct change_opts *o, const char *text, size_t len)
{
	char given[CUSTODY_NAME_MAX + 2], name[CUSTODY_NAME_MAX + 1];
	size_t i;
	int r;

	if (len == 0)
		return cli_usage_error(cli, "-t: an empty type name in a list");
	snprintf(given, sizeof(given), "%.*s",
		 (int)(len > CUSTODY_NAME_MAX ? CUSTODY_NAME_MAX + 1 : len), text);
	if ((r = cli_type_resolve(cli, given, name)) != CUSTODY_OK)
		return r;
	for (i = 0; i < o->n_types; i++)
		if (strcmp(o->type_name[i], name) == 0)
			return CUSTODY_OK;
	if (o->n_types == CHANGE_TYPES_MAX)
		return cli_usage_error(cli, "-t: more than %d types", CHANGE_TYPES_MAX);
	memcpy(o->type_name[o->n_types++], name, sizeof(name));
	return CUSTODY_OK;
}

int
change_opts_request(struct cli *cli, struct change_opts *o, custody_change_request *req)
{
	const char *p;
	size_t i, len;
	int r;

	memset(req, 0, sizeof(*req));
	o->n_types = 0;
	for (i = 0; i < o->types.n; i++)
		for (p = o->types.item[i];; p += len + 1) {
			len = strcspn(p, ",");
			if ((r = add_type(cli, o, p, len)) != CUSTODY_OK)
				return r;
			if (p[len] == '\0')
				break;
		}
	for (i = 0; i < o->n_types; i++) {
		r = custody_identity_canonical(o->identity != NULL ? o->identity :
					       cli_default_identity(cli, o->type_name[i]),
					       o->identity_name[i], &cli->err);
		if (r != CUSTODY_OK)
			return r;
	}
	if (o->roll && (r = cli_time_parse(cli, "--effective-date", o->effective_date,
					   &req->effective)) != CUSTODY_OK)
		return r;
	req->roll = o->roll;
	change_opts_pick(o, 0, req);
	return CUSTODY_OK;
}

void
change_opts_pick(const struct change_opts *o, size_t i, custody_change_request *req)
{
	req->type = o->type_name[i];
	req->identity = o->identity_name[i];
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
