/*
 * cmd_rollover.c — `custody rollover`: for every type with an enabled
 * [rollover TYPE] policy, and each identity it is assigned at, what is due
 * at the clock (--at for rehearsals and tests) — the successor generated
 * in the token and staged, a request written for a CA, or nothing — said
 * and done.  The decisions and the ceremony are the library's
 * (custody/rollover.h); this file reads the options and prints.  Run it
 * from a timer: a second run finds the successor and does nothing.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <custody/rollover.h>

#include "change.h"
#include "cli.h"

enum {
	OPT_DRY_RUN = OPT_FIRST_COMMAND_OPTION,
};

struct rollover_opts {
	const char *type;
	int dry_run;
};

/* Whether any policy is enabled (for only_type, when given). */
static int
any_enabled(const struct cli *cli, const char *only_type)
{
	size_t i;

	for (i = 0; i < cli->cfg.n_rollover; i++)
		if (cli->cfg.rollover[i].enabled &&
		    (only_type == NULL || strcmp(cli->cfg.rollover[i].type, only_type) == 0))
			return 1;
	return 0;
}

/* The hooks run, as data. */
static json_t *
hooks_json(const custody_rollover_result *res)
{
	json_t *a = json_array();
	int i;

	for (i = 0; i < 2; i++)
		if (res->claimed[i])
			json_array_append_new(a, json_pack("{s:s, s:s, s:b, s:s}", "hook",
				custody_rollover_hook_name(i), "thumbprint", res->hook_for[i], "ok",
				!res->hook_failed[i], "outcome", res->hook_outcome[i]));
	return a;
}

/* One decision as plan data. */
static json_t *
decision_json(const custody_rollover_target *t, const custody_rollover_result *res,
	      int dry_run)
{
	const custody_rollover_decision *d = &t->decision;
	char na[CUSTODY_TIME_TEXT], ga[CUSTODY_TIME_TEXT], ef[CUSTODY_TIME_TEXT];
	int due = d->due == CUSTODY_ROLLOVER_GENERATE;
	json_t *o;

	o = json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s, s:s?}",
		      "type", t->assignment.type, "identity", t->assignment.identity,
		      "mode", t->policy->mode == CUSTODY_ROLLOVER_CSR ? "csr" : "self-signed",
		      "current", t->assignment.current.thumbprint[0] != '\0' ?
		      t->assignment.current.thumbprint : NULL,
		      "current_not_after", t->current.der != NULL ?
		      out_time(t->current.not_after, na) : NULL,
		      "generate_at", d->generate_at != 0 ? out_time(d->generate_at, ga) : NULL,
		      "decision", due ? "generate" : "nothing", "why", d->why);
	if (due && t->policy->mode != CUSTODY_ROLLOVER_CSR)
		json_object_set_new(o, "effective", json_string(out_time(d->effective, ef)));
	if (d->record_roll || d->held)
		json_object_set_new(o, "roll", json_pack("{s:s, s:s}", "state",
			d->held ? "held" : "took-effect", "why", d->roll_why));
	if (d->retire_at != 0)
		json_object_set_new(o, "retire_previous_at", json_string(out_time(d->retire_at,
										  ef)));
	if (res != NULL && !dry_run) {
		json_object_set_new(o, "made", json_boolean(res->made));
		json_object_set_new(o, "roll_recorded", json_boolean(res->recorded));
		if (res->retired[0] != '\0')
			json_object_set_new(o, "retired", json_string(res->retired));
		json_object_set_new(o, "hooks", hooks_json(res));
	}
	return o;
}

/* What was made, as plan objects. */
static void
result_json(json_t *plan, const custody_rollover_target *t, const custody_rollover_result *res)
{
	char ef[CUSTODY_TIME_TEXT], na[CUSTODY_TIME_TEXT];

	plan_add_object(plan, "created", json_pack("{s:s, s:s, s:s, s:s, s:b, s:o}",
		"object", "key_pair", "where", "token", "key_id", res->key_id,
		"key_algorithm", res->key_algorithm, "replicable", res->replicable,
		"extractable", res->extractable < 0 ? json_null() :
		json_boolean(res->extractable)));
	if (res->csr_path[0] != '\0') {
		plan_add_object(plan, "created", json_pack("{s:s, s:s, s:s}", "object",
							   "csr_file", "where", res->csr_path,
							   "key_id", res->key_id));
		return;
	}
	plan_add_object(plan, "created", json_pack("{s:s, s:s, s:s, s:s}", "object",
						   "certificate", "where", "token", "thumbprint",
						   res->thumbprint, "not_after",
						   out_time(res->not_after, na)));
	plan_add_object(plan, "changes", json_pack("{s:s, s:s, s:s, s:n, s:s, s:s}", "type",
						   t->assignment.type, "identity",
						   t->assignment.identity, "slot", "pending",
						   "old_thumbprint", "new_thumbprint",
						   res->thumbprint, "effective",
						   out_time(res->effective, ef)));
}

/* The dry run's word on a target that is due. */
static void
would(struct cli *cli, json_t *plan, const custody_rollover_target *t)
{
	char ef[CUSTODY_TIME_TEXT];

	if (t->policy->mode == CUSTODY_ROLLOVER_CSR) {
		cli_say(cli, "  would generate a key pair on token %s and write its request into "
			"%s", custody_token_label(cli->token), t->policy->csr_dir);
		plan_add_object(plan, "created", json_pack("{s:s, s:s}", "object", "key_pair",
							   "where", "token"));
		plan_add_object(plan, "created", json_pack("{s:s, s:s}", "object", "csr_file",
							   "where", t->policy->csr_dir));
		return;
	}
	cli_say(cli, "  would generate a key pair and a self-signed successor on token %s, "
		"staged pending for %s", custody_token_label(cli->token),
		out_time(t->decision.effective, ef));
	plan_add_object(plan, "created", json_pack("{s:s, s:s}", "object", "key_pair",
						   "where", "token"));
	plan_add_object(plan, "created", json_pack("{s:s, s:s}", "object", "certificate",
						   "where", "token"));
	plan_add_object(plan, "changes", json_pack("{s:s, s:s, s:s, s:n, s:n, s:s}", "type",
						   t->assignment.type, "identity",
						   t->assignment.identity, "slot", "pending",
						   "old_thumbprint", "new_thumbprint", "effective",
						   out_time(t->decision.effective, ef)));
}

/* The dry run's word on the roll, the previous and the hooks. */
static void
would_besides(struct cli *cli, json_t *plan, const custody_rollover_target *t)
{
	const custody_assignment *a = &t->assignment;

	if (t->decision.record_roll)
		cli_say(cli, "  would record the roll to %s", a->current.thumbprint);
	if (t->decision.retire) {
		cli_say(cli, "  would retire the previous certificate %s", a->previous.thumbprint);
		plan_add_object(plan, "changes", json_pack("{s:s, s:s, s:s, s:s, s:n}", "type",
			a->type, "identity", a->identity, "slot", "previous", "old_thumbprint",
			a->previous.thumbprint, "new_thumbprint"));
	}
	if (t->post_stage_owed)
		cli_say(cli, "  would run the post-stage hook for %s", a->pending.thumbprint);
	if (t->post_roll_owed)
		cli_say(cli, "  would run the post-roll hook for %s", a->current.thumbprint);
}

/* The hooks claimed, run without the token when it can be opened again
 * without asking (a hook may call custody, which waits for the token
 * this process holds), else with it. */
static int
run_hooks(struct cli *cli, custody_ops_env *env, const custody_rollover_target *t,
	  custody_rollover_result *res)
{
	const char *pin = cli->cfg.pin_source;

	if (!res->claimed[0] && !res->claimed[1])
		return CUSTODY_OK;
	if (pin != NULL && (strncmp(pin, "file:", 5) == 0 || strncmp(pin, "env:", 4) == 0)) {
		cli_close_token(cli);
		env->token = NULL;
	}
	return custody_rollover_run_hooks(env, t, res, &cli->err);
}

/* One target: said, and (unless a dry run) done. */
static int
run_target(struct cli *cli, custody_ops_env *env, custody_rollover_target *t, int dry_run,
	   json_t *plan, json_t *decisions)
{
	custody_rollover_result res;
	int r = CUSTODY_OK;

	cli_say(cli, "%s/%s: %s", t->assignment.type, t->assignment.identity, t->decision.why);
	if (t->decision.roll_why[0] != '\0')
		cli_say(cli, "  %s", t->decision.roll_why);
	if (t->decision.retire_why[0] != '\0')
		cli_say(cli, "  %s", t->decision.retire_why);
	memset(&res, 0, sizeof(res));
	if (dry_run) {
		/* A dry run checks the token it would use (and the store's
		 * tags, attached as the token opens) as the real run would. */
		if (t->decision.due == CUSTODY_ROLLOVER_GENERATE &&
		    (r = cli_open_token(cli)) == CUSTODY_OK)
			would(cli, plan, t);
		would_besides(cli, plan, t);
	} else if (custody_rollover_has_work(t)) {
		env->token = cli->token;
		if ((r = custody_rollover_apply(env, t, &res, &cli->err)) == CUSTODY_OK) {
			if (res.made)
				result_json(plan, t, &res);
			r = run_hooks(cli, env, t, &res);
		}
	}
	if (r == CUSTODY_OK)
		json_array_append_new(decisions, decision_json(t, &res, dry_run));
	return r;
}

/* Each target in turn. */
static int
run_targets(struct cli *cli, custody_ops_env *env, custody_rollover_target *t, size_t n,
	    int dry_run, json_t *plan, json_t *decisions)
{
	size_t i;
	int r = CUSTODY_OK;

	for (i = 0; i < n && r == CUSTODY_OK; i++)
		r = run_target(cli, env, &t[i], dry_run, plan, decisions);
	return r;
}

const char cmd_rollover_usage[] =
	"custody rollover [-t TYPE] [--dry-run] [--at TIME] [-o json]\n"
	"\n"
	"For every type with an enabled [rollover TYPE] policy in custody.conf, and\n"
	"each identity it is assigned at, does what is due now: when the current\n"
	"certificate is within generate-before of its end and no successor is\n"
	"pending, generates the successor's key pair inside the token and either\n"
	"makes a self-signed certificate, staged pending at notAfter minus\n"
	"promote-before (mode = self-signed), or writes its request into csr-dir\n"
	"(mode = csr; custody import of the issued certificate stages it).\n"
	"Otherwise nothing.  Idempotent: run it hourly (custody-rollover.timer); runs\n"
	"on several nodes at once make one successor (the store's rollover lease).\n"
	"\n"
	"It also records a roll that took effect (one waits while a member of the\n"
	"cluster does not report holding its key: custody test names it), retires\n"
	"the previous certificate keep-previous after the roll (its key stays on the\n"
	"token), and runs the post-stage and post-roll hooks once per certificate,\n"
	"their outcome in the audit log (a hook that fails undoes nothing).\n"
	"\n"
	"  -t, --type TYPE   only this type's policy\n"
	"  --dry-run         say what is due and what would be made; write nothing\n"
	"                    (-o json: the plan as data)\n"
	"  --at TIME         decide (and make the successor) as if now were TIME\n";

int
cmd_rollover(struct cli *cli, int argc, char **argv)
{
	struct rollover_opts o;
	const struct cli_opt options[] = {
		CLI_OPT_TEXT("type", 't', &o.type),
		CLI_OPT_FLAG("dry-run", OPT_DRY_RUN, &o.dry_run),
		{NULL},
	};
	char type[CUSTODY_NAME_MAX + 1];
	custody_rollover_target *targets = NULL;
	custody_ops_env env;
	json_t *plan = NULL, *decisions;
	size_t n = 0;
	int r;

	memset(&o, 0, sizeof(o));
	if ((r = cli_parse(cli, argc, argv, options, "t:", NULL, NULL)) != CUSTODY_OK)
		return r;
	if ((r = cli_check_output(cli, 1u << OUT_TABLE | 1u << OUT_JSON)) != CUSTODY_OK ||
	    (o.type != NULL && (r = cli_type_resolve(cli, o.type, type)) != CUSTODY_OK))
		return r;
	cli->preview = o.dry_run;	/* a dry run makes no store */
	plan = plan_done(plan_new("rollover"), o.dry_run);
	json_object_set_new(plan, "decisions", decisions = json_array());
	if (!any_enabled(cli, o.type != NULL ? type : NULL)) {
		cli_say(cli, "rollover: no enabled [rollover TYPE] policy%s%s: nothing to do",
			o.type != NULL ? " for " : "", o.type != NULL ? type : "");
		return plan_print(cli, plan);
	}
	change_env(cli, &env);
	if ((r = custody_rollover_plan(&env, &cli->cfg, o.type != NULL ? type : NULL, &targets,
				       &n, &cli->err)) != CUSTODY_OK)
		goto out;
	if (n == 0)
		cli_say(cli, "rollover: no assignment of a type with an enabled policy: nothing "
			"to do");
	if (o.dry_run)
		cli_say(cli, "rollover: dry run, nothing written");
	if ((r = run_targets(cli, &env, targets, n, o.dry_run, plan, decisions)) != CUSTODY_OK)
		goto out;
	r = plan_print(cli, plan);
	plan = NULL;
out:
	json_decref(plan);
	custody_rollover_targets_free(targets, n);
	return r;
}
