/*
 * cmd_set.c — `custody set` (Set-CsCertificate): a certificate that is on
 * the token with its private key becomes current now, or pending at an
 * effective date (--roll).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <custody/policy.h>
#include <custody/thumbprint.h>
#include <custody/timefmt.h>

#include "change.h"
#include "cli.h"

enum {
	OPT_THUMBPRINT = OPT_FIRST_CHANGE_COMMAND_OPTION,
	OPT_FROM_TYPE,
	OPT_DRY_RUN,
	OPT_FORCE,
};

struct set_opts {
	const char *thumbprint;
	const char *from_type;
	int dry_run, force;
	struct change_opts change;	/* -t, -i, --roll --effective-date */
};

static int
on_option(struct cli *cli, int c, const char *arg, void *ctx)
{
	struct set_opts *o = ctx;

	(void)arg;
	if (c == OPT_DRY_RUN)	/* a preview: --at may come with it */
		o->dry_run = cli->preview = 1;
	return CUSTODY_OK;
}

static int
check_options(struct cli *cli, struct set_opts *o, custody_change_request *req,
	      char *from_type)
{
	int r;

	if (!change_opts_given(&o->change))
		return cli_usage_error(cli, "-t TYPE is required");
	if ((o->thumbprint == NULL) == (o->from_type == NULL))
		return cli_usage_error(cli, "give exactly one of --thumbprint X and --from-type OTHER");
	if ((r = change_opts_usage(cli, &o->change, 1)) != CUSTODY_OK ||
	    (r = change_opts_request(cli, &o->change, req)) != CUSTODY_OK)
		return r;
	if (o->force)
		change_opts_force_early(&o->change, req);
	if (o->from_type != NULL &&
	    (r = custody_type_canonical(o->from_type, from_type, NULL, &cli->err)) != CUSTODY_OK)
		return r;
	if (o->thumbprint != NULL && (r = cli_check_thumbprint(cli, o->thumbprint)) != CUSTODY_OK)
		return r;
	/* -o json: the change as data (a dry run's plan, or what was done). */
	return cli_check_output(cli, (1u << OUT_TABLE) | (1u << OUT_JSON));
}

/* The certificate the user named, among those on the token; it must have
 * its private key there. */
static int
find_on_token(struct cli *cli, const struct set_opts *o, const char *from_type,
	      custody_cert_record *out)
{
	custody_cert_record *recs = NULL;
	custody_assignment other;
	int *has_key = NULL;
	size_t n = 0, i;
	const char *query = o->thumbprint;
	int r;

	if (from_type != NULL) {
		if ((r = cli_lookup_assignment(cli, from_type, NULL, 1, &other)) != CUSTODY_OK)
			return r;
		query = other.current.thumbprint;
	}
	if ((r = cli_token_records(cli, &recs, &has_key, &n)) != CUSTODY_OK)
		return r;
	r = custody_thumbprint_match(query, recs, n, &i, &cli->err);
	if (r == CUSTODY_ENOTFOUND) {
		custody_cert_record stored;

		/* Known to the store but not on this token says more. */
		if (strlen(query) == CUSTODY_THUMBPRINT_HEX &&
		    custody_store_get_cert(cli->store, query, &stored, NULL) == CUSTODY_OK) {
			r = custody_err_set(&cli->err, CUSTODY_EFAIL,
					    "certificate %s is not on token %s", query,
					    custody_token_label(cli->token));
			custody_cert_record_clear(&stored);
		} else {
			custody_err_hint(&cli->err, "`custody list` shows the certificates on the token");
		}
		goto out;
	}
	if (r != CUSTODY_OK)
		goto out;
	if (!has_key[i]) {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL,
				    "certificate %s has no private key on token %s (key id %s)",
				    recs[i].thumbprint, custody_token_label(cli->token),
				    recs[i].key_id);
		goto out;
	}
	*out = recs[i];
	memset(&recs[i], 0, sizeof(recs[i]));
	r = CUSTODY_OK;
out:
	custody_cert_records_free(recs, n);
	free(has_key);
	return r;
}

const char cmd_set_usage[] =
	"custody set -t TYPE[,TYPE...] (--thumbprint X | --from-type OTHER) [-i IDENTITY]\n"
	"            [--roll --effective-date TIME] [--dry-run] [--force]\n"
	"\n"
	"Without --roll the certificate becomes current now and the old current\n"
	"becomes previous (a pending roll is cancelled). With --roll it becomes\n"
	"pending and turns current at TIME on every node.\n"
	"An immediate set that replaces the current certificate of a type that signs\n"
	"tokens (OAuthTokenIssuer), and a roll that replaces a pending one, ask on a\n"
	"terminal and need --force without one.\n"
	"\n"
	"  -t, --type TYPE[,TYPE...] certificate type: a known one or one custody.conf\n"
	"                            declares ([types] custom); several (a list, or -t\n"
	"                            again) are set together, in one transaction\n"
	"  --thumbprint X            SHA-1 thumbprint, SHA-256 fingerprint or a unique\n"
	"                            prefix of at least 8 hex digits\n"
	"  --from-type OTHER         the current certificate of another type\n"
	"  -i, --identity IDENTITY   global or a node name\n"
	"  --roll --effective-date TIME   stage a roll\n"
	"  --dry-run                 print what would change, change nothing; the\n"
	"                            one write that takes --at TIME (a preview at TIME);\n"
	"                            with -o json the plan as data on stdout (without\n"
	"                            --dry-run: what was changed, \"dry_run\": false)\n"
	"  --force                   replace the signing certificate at once, or a\n"
	"                            pending roll, without asking; a roll may take\n"
	"                            effect sooner than [rollover TYPE] min-publish\n";

int
cmd_set(struct cli *cli, int argc, char **argv)
{
	struct set_opts o;
	const struct cli_opt options[] = {
		CHANGE_OPTIONS(&o.change),
		CLI_OPT_TEXT("thumbprint", OPT_THUMBPRINT, &o.thumbprint),
		CLI_OPT_TEXT("from-type", OPT_FROM_TYPE, &o.from_type),
		CLI_OPT("dry-run", no_argument, OPT_DRY_RUN),
		CLI_OPT_FLAG("force", OPT_FORCE, &o.force),
		{NULL},
	};
	custody_change_request req;
	custody_change ch[CHANGE_TYPES_MAX];
	custody_ops_env env;
	custody_txn tx;
	char from_type[CUSTODY_NAME_MAX + 1];
	custody_cert_record rec;
	json_t *plan = NULL;
	size_t i, n_noop = 0;
	int r;

	memset(&o, 0, sizeof(o));
	memset(&rec, 0, sizeof(rec));
	if ((r = cli_parse(cli, argc, argv, options, "t:i:", on_option, &o)) != CUSTODY_OK)
		return r;
	if ((r = check_options(cli, &o, &req, from_type)) != CUSTODY_OK)
		return r;
	if ((r = cli_open_store(cli)) != CUSTODY_OK)
		goto out;
	if ((r = cli_open_token(cli)) != CUSTODY_OK)
		goto out;
	if ((r = find_on_token(cli, &o, o.from_type != NULL ? from_type : NULL, &rec)) != CUSTODY_OK)
		goto out;
	change_env_now(cli, &env);
	plan = plan_new("set");
	/* Each type planned on its own; written together or not at all. */
	for (i = 0; i < o.change.n_types; i++) {
		change_opts_pick(&o.change, i, &req);
		if ((r = custody_change_plan_cert(&env, &req, &rec, &ch[i], &cli->err)) !=
		    CUSTODY_OK || (r = change_guard_planned(cli, o.force, o.dry_run, plan,
								       &ch[i])) != CUSTODY_OK)
			goto out;
		plan_add_diff(plan, &ch[i].before, &ch[i].after);
		/* A no-op still records a roll that came due (get shows it,
		 * and leaves the writing to a command that holds the token). */
		if (ch[i].outcome.noop && !ch[i].outcome.rolled)
			n_noop++;
	}
	if (!o.dry_run && n_noop < o.change.n_types) {
		custody_txn_init(&tx, cli->store, cli->token, cli->node, &cli->err);
		if ((r = custody_change_apply_all(&tx, &rec, ch, o.change.n_types)) !=
		    CUSTODY_OK)
			goto out;
	}
	for (i = 0; i < o.change.n_types; i++)
		change_report(cli, &ch[i], o.dry_run);
	r = plan_print(cli, plan_done(plan, o.dry_run));
	plan = NULL;
out:
	json_decref(plan);
	custody_cert_record_clear(&rec);
	return r;
}
