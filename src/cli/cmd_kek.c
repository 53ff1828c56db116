/*
 * cmd_kek.c — `custody kek create`: the first step of the cluster key
 * ceremony.  The cluster KEK (AES-256) and the cluster authority key are
 * generated inside this node's token, the KEK's key check value and the
 * authority's public key go to the store, and this node becomes the
 * cluster's first member.  Every step is narrated on stderr, so that the
 * transcript can be signed and kept; the key check value alone goes to
 * stdout.
 *
 * `custody kek authority` prints the cluster authority's fingerprint (what
 * every enrolling node confirms); in a cluster made by an earlier custody,
 * which has none, it creates the authority on this token, which must hold
 * the KEK.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <custody/audit.h>
#include <custody/cluster.h>

#include "cli.h"

struct kek_opts {
	const char *action;
	const char *extra;
};

static int
on_option(struct cli *cli, int c, const char *arg, void *ctx)
{
	struct kek_opts *o = ctx;

	(void)cli;
	if (c == 1) {
		if (o->action == NULL)
			o->action = arg;
		else if (o->extra == NULL)
			o->extra = arg;
	}
	return CUSTODY_OK;
}

static int
kek_authority(struct cli *cli)
{
	char fp[CUSTODY_CLUSTER_FP_SIZE];
	int held = 0, r;

	if ((r = custody_cluster_authority(cli->token, cli->store, cli->node, 1, fp,
					   &held, &cli->err)) != CUSTODY_OK)
		return r;
	cli_say(cli, "cluster authority %s: %s", fp,
		held ? "its private key is on this token: node admit runs here"
		     : "its private key is on another member's token");
	if (cli->output == OUT_JSON)
		return out_json(cli, json_pack("{s:s, s:b}", "authority_fingerprint", fp,
					       "held_here", held));
	printf("%s\n", fp);
	return CUSTODY_OK;
}

const char cmd_kek_usage[] =
	"custody kek create\n"
	"custody kek authority\n"
	"\n"
	"create: the first step of the cluster key ceremony, on the first node:\n"
	"generates the cluster KEK (AES-256) inside this node's token (private,\n"
	"sensitive, wrap and unwrap only, not copyable, extractable only under a\n"
	"trusted key) and the cluster authority key beside it (EC P-256, sign only,\n"
	"never extractable), records the KEK's key check value and the authority's\n"
	"public key in the store and this node as the first member, and prints the\n"
	"key check value. Refused when the store records a KEK already. Every step is\n"
	"narrated on stderr: keep (and sign) the transcript.\n"
	"authority: prints the cluster authority's fingerprint, which every enrolling\n"
	"node confirms; in a cluster made by an earlier custody it creates the\n"
	"authority on this token, which must hold the KEK.\n"
	"With -o json: {\"kcv\", \"node\"} (create) or {\"authority_fingerprint\",\n"
	"\"held_here\"} (authority).\n";

int
cmd_kek(struct cli *cli, int argc, char **argv)
{
	struct kek_opts o = {NULL, NULL};
	char kcv[CUSTODY_KCV_HEX + 1];
	char actor[CUSTODY_AUDIT_ACTOR_MAX + 1], t[CUSTODY_TIME_TEXT];
	int r;

	if ((r = cli_parse(cli, argc, argv, NULL, "-", on_option, &o)) != CUSTODY_OK)
		return r;
	if (o.action == NULL)
		return cli_usage_error(cli, "which action? custody kek create | authority");
	if (strcmp(o.action, "create") != 0 && strcmp(o.action, "authority") != 0)
		return cli_usage_error(cli, "unknown action '%s': custody kek create | authority",
				       o.action);
	if (o.extra != NULL)
		return cli_usage_error(cli, "unexpected argument '%s'", o.extra);
	if ((r = cli_check_output(cli, (1u << OUT_TABLE) | (1u << OUT_JSON))) != CUSTODY_OK)
		return r;
	if ((r = cli_open_store(cli)) != CUSTODY_OK ||
	    (r = cli_open_token(cli)) != CUSTODY_OK ||
	    (r = custody_token_require_cluster(cli->token, strcmp(o.action, "create") == 0 ?
					       "create the cluster KEK" :
					       "hold the cluster authority",
					       &cli->err)) != CUSTODY_OK)
		return r;
	if (strcmp(o.action, "authority") == 0)
		return kek_authority(cli);
	cli_say(cli, "custody kek create: node %s, token %s (serial %s), by %s, at %s",
		cli->node, custody_token_label(cli->token), custody_token_serial(cli->token),
		custody_audit_actor(actor, sizeof(actor)), out_time((int64_t)time(NULL), t));
	/* The value it recorded: once committed, nothing more is asked of
	 * the token, so a done kek create never reports a failure. */
	if ((r = custody_cluster_kek_create(cli->token, cli->store, cli->node, kcv,
					    &cli->err)) != CUSTODY_OK)
		return r;
	cli_say(cli, "next: on each new node, custody node enroll; then here, with the "
		"SO PIN, custody node admit NODE; then on that node, custody node join");
	if (cli->output == OUT_JSON)
		return out_json(cli, json_pack("{s:s, s:s}", "kcv", kcv, "node", cli->node));
	printf("%s\n", kcv);
	return CUSTODY_OK;
}
