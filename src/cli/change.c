/* change.c — the CLI's side of an assignment change: its environment,
 * and its narration (custody/ops.h plans and writes it). */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509.h>

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
	const custody_rollover_policy *rollover;
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
		rollover = custody_config_rollover(&cli->cfg, o->type_name[i]);
		o->min_publish[i] = rollover != NULL ? rollover->min_publish : 0;
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
	req->min_publish = o->min_publish[i];
}

void
change_opts_force_early(struct change_opts *o, custody_change_request *req)
{
	memset(o->min_publish, 0, sizeof(o->min_publish));
	req->min_publish = 0;
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

/* An operation about to write a change asks here first (import -t): the
 * guards of set, with --force (cli->force) going on without asking. */
static int
confirm_hook(void *ctx, const custody_change *planned, custody_err *err)
{
	struct cli *cli = ctx;
	int r;

	/* The guard words its refusal in cli->err: the caller's err is
	 * that one as a rule, else it gets a copy. */
	r = change_guard_planned(cli, cli->force, 0, NULL, planned);
	if (r != CUSTODY_OK && err != &cli->err)
		*err = cli->err;
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
	env->confirm = confirm_hook;
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

json_t *
plan_new(const char *command)
{
	return json_pack("{s:s, s:b, s:[], s:[], s:[], s:[]}", "command", command,
			 "dry_run", 1, "changes", "deleted", "created", "warnings");
}

static void
plan_add_slot(json_t *plan, const custody_assignment *a, const char *name,
	      const custody_slot *old, const custody_slot *new)
{
	char t[CUSTODY_TIME_TEXT];
	int64_t when = new->thumbprint[0] != '\0' ? new->effective : old->effective;

	if (strcmp(old->thumbprint, new->thumbprint) == 0 && old->effective == new->effective)
		return;
	json_array_append_new(json_object_get(plan, "changes"),
		json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s?}",
			  "type", a->type, "identity", a->identity, "slot", name,
			  "old_thumbprint", old->thumbprint[0] != '\0' ? old->thumbprint : NULL,
			  "new_thumbprint", new->thumbprint[0] != '\0' ? new->thumbprint : NULL,
			  "effective", when != 0 ? custody_time_format(when, t) : NULL));
}

void
plan_add_diff(json_t *plan, const custody_assignment *before,
	      const custody_assignment *after)
{
	plan_add_slot(plan, after, "current", &before->current, &after->current);
	plan_add_slot(plan, after, "pending", &before->pending, &after->pending);
	plan_add_slot(plan, after, "previous", &before->previous, &after->previous);
}

void
plan_add_object(json_t *plan, const char *list, json_t *object)
{
	json_array_append_new(json_object_get(plan, list), object);
}

void
plan_add_warning(json_t *plan, const char *text)
{
	if (plan != NULL)
		json_array_append_new(json_object_get(plan, "warnings"), json_string(text));
}

json_t *
plan_done(json_t *plan, int dry_run)
{
	if (plan != NULL && !dry_run)
		json_object_set_new(plan, "dry_run", json_false());
	return plan;
}

int
plan_print(struct cli *cli, json_t *plan)
{
	if (cli->output == OUT_JSON)
		return out_json(cli, plan);
	json_decref(plan);
	return CUSTODY_OK;
}

int
change_type_signs(const char *type)
{
	return strcasecmp(type, "OAuthTokenIssuer") == 0;
}

/* Asks on the terminal; only "yes" goes on. */
static int
ask(struct cli *cli, const char *what)
{
	char line[16];

	fprintf(stderr, "custody: %s: %s\ntype yes to go on: ", cli->cmd, out_safe(what));
	fflush(stderr);
	if (fgets(line, sizeof(line), stdin) != NULL && strcmp(line, "yes\n") == 0)
		return CUSTODY_OK;
	return custody_err_set(&cli->err, CUSTODY_EUSAGE, "not confirmed: nothing was changed");
}

int
change_guard(struct cli *cli, int force, int dry_run, json_t *plan, const char *what)
{
	if (dry_run) {
		/* A preview never asks: the warning is part of the plan. */
		cli_warn("%s", what);
		plan_add_warning(plan, what);
		return CUSTODY_OK;
	}
	if (force)
		return CUSTODY_OK;
	if (isatty(STDIN_FILENO) && isatty(STDERR_FILENO))
		return ask(cli, what);
	custody_err_set(&cli->err, CUSTODY_EUSAGE, "%s", what);
	custody_err_hint(&cli->err, "custody %s --dry-run shows the whole change; "
			 "on a terminal custody asks instead", cli->cmd);
	return CUSTODY_EUSAGE;
}

/* What a planned change breaks, if anything: a pending roll replaced, or
 * the key that signs tokens changed at once.  Guarded (change_guard). */
int
change_guard_planned(struct cli *cli, int force, int dry_run, json_t *plan,
		     const custody_change *ch)
{
	const custody_assignment *b = &ch->before, *a = &ch->after;
	char what[512], t[CUSTODY_TIME_TEXT];

	if (ch->outcome.noop)
		return CUSTODY_OK;
	if (ch->roll && ch->outcome.replaced_pending[0] != '\0') {
		snprintf(what, sizeof(what), "%s/%s has a roll to %s pending for %s: replacing it "
			 "with %s moves the roll every node and partner was prepared for; "
			 "--force to replace it anyway", a->type, a->identity,
			 ch->outcome.replaced_pending, out_time(b->pending.effective, t),
			 a->pending.thumbprint);
		return change_guard(cli, force, dry_run, plan, what);
	}
	if (!ch->roll && change_type_signs(a->type) && b->current.thumbprint[0] != '\0') {
		snprintf(what, sizeof(what), "%s/%s's current certificate %s signs every token: "
			 "making %s current at once breaks token checks at every partner until "
			 "it fetches the new metadata; --force to go on anyway (or stage it "
			 "with --roll --effective-date TIME)", a->type, a->identity,
			 b->current.thumbprint, a->current.thumbprint);
		return change_guard(cli, force, dry_run, plan, what);
	}
	return CUSTODY_OK;
}

/* One object the import would create, as plan data and a line of text. */
static void
import_object(const struct cli *cli, json_t *plan, const char *object,
	      const custody_cert_record *rec, const char *thumbprint)
{
	plan_add_object(plan, "created", json_pack("{s:s, s:s, s:s, s:s?}", "object", object,
						   "key_id", rec->key_id, "where", "token",
						   "thumbprint", thumbprint));
	if (!cli->quiet)
		fprintf(stderr, "  would create %s%s%s (key id %s) on token %s\n", object,
			thumbprint != NULL ? " " : "", thumbprint != NULL ? thumbprint : "",
			rec->key_id, custody_token_label(cli->token));
}

int
change_import_plan(struct cli *cli, const custody_bundle *b, int from_package,
		   const custody_import_result *res, int assigns)
{
	json_t *plan = plan_new("import");
	const custody_cert_record *rec = &res->rec;
	int chain = b->chain != NULL ? sk_X509_num(b->chain) : 0, i;

	if (!cli->quiet)
		fprintf(stderr, "import %s: would change (dry run, nothing written)\n",
			rec->thumbprint);
	import_object(cli, plan, "certificate", rec, rec->thumbprint);
	if (b->key != NULL || from_package)
		import_object(cli, plan, "private_key", rec, NULL);
	for (i = 0; i < chain; i++)
		import_object(cli, plan, "ca_certificate", rec, NULL);
	plan_add_object(plan, "created", json_pack("{s:s, s:s, s:s}", "object",
						   "certificate_record", "thumbprint",
						   rec->thumbprint, "where", "store"));
	if (assigns) {
		if (res->assign.warning[0] != '\0')
			plan_add_warning(plan, res->assign.warning);
		change_guard_planned(cli, 0, 1, plan, &res->assign);
		plan_add_diff(plan, &res->assign.before, &res->assign.after);
		change_report(cli, &res->assign, 1);
	}
	return plan_print(cli, plan);
}
