/*
 * cmd_node.c — `custody node enroll | admit NODE | join`: the rest of the
 * cluster key ceremony (see custody/cluster.h for the trust model).
 *
 *   enroll  on the new node: the cluster authority pinned on its token
 *           (its fingerprint confirmed by the operator: --authority, or
 *           typed at a terminal), its transport key pair in its token,
 *           the public half (and its fingerprint) in the store;
 *   admit   on the member that holds the authority, by the security
 *           officer: the SO PIN (from --so-pin-source, never argv) makes
 *           the new node's transport key a trusted wrapping key for this
 *           session, the KEK is wrapped for it and the authority signs
 *           the admission into the store;
 *   join    on the new node: the admission's signature is checked
 *           against the pinned authority, the KEK unwrapped into its
 *           token and its 64-bit check compared with the signed one (and
 *           --kcv, or a confirmation at a terminal); the wrapped KEK is
 *           deleted from the store and the transport key pair destroyed.
 *
 * Each step narrates what it is about to do and what it did, on stderr.
 * `node admit` without an SO PIN source, or with an SO PIN the token
 * refuses, exits 1 and changes nothing.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <custody/audit.h>
#include <custody/cluster.h>
#include <custody/secret.h>

#include "cli.h"

enum { OPT_AUTHORITY = OPT_FIRST_COMMAND_OPTION, OPT_KCV, OPT_FINGERPRINT };

struct node_opts {
	const char *operands[3];
	int n;
	const char *authority;	/* --authority FINGERPRINT (enroll)      */
	const char *kcv;	/* --kcv CHECK (join)                    */
	const char *fingerprint;	/* --fingerprint FP (admit)      */
};

static int
on_option(struct cli *cli, int c, const char *arg, void *ctx)
{
	struct node_opts *o = ctx;

	(void)c;	/* 1: an operand (the others are bound) */
	if (o->n == 3)
		return cli_usage_error(cli, "unexpected argument '%s'", arg);
	o->operands[o->n++] = arg;
	return CUSTODY_OK;
}

/* The head of the transcript: who, where, when. */
static void
say_header(struct cli *cli, const char *what)
{
	char actor[CUSTODY_AUDIT_ACTOR_MAX + 1], t[CUSTODY_TIME_TEXT];

	cli_say(cli, "custody node %s: node %s, token %s (serial %s), by %s, at %s", what,
		cli->node, custody_token_label(cli->token), custody_token_serial(cli->token),
		custody_audit_actor(actor, sizeof(actor)), out_time((int64_t)time(NULL), t));
}

/* At a terminal, asks the operator to confirm what `what` shows; returns
 * 1 when they typed yes or the value itself. */
static int
confirm_at_terminal(const char *question, const char *value)
{
	char line[160];
	size_t len;

	if (!isatty(STDIN_FILENO) || !isatty(STDERR_FILENO))
		return 0;
	fprintf(stderr, "%s\n  %s\nType yes, or the value itself, if it is the "
		"same: ", question, value);
	fflush(stderr);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return 0;
	len = strcspn(line, "\r\n");
	line[len] = '\0';
	return strcasecmp(line, "yes") == 0 || strcasecmp(line, value) == 0;
}

static int
node_enroll(struct cli *cli, const char *authority)
{
	char fp[CUSTODY_CLUSTER_FP_SIZE];
	int held = 0, r;

	if ((r = cli_open_store(cli)) != CUSTODY_OK || (r = cli_open_token(cli)) != CUSTODY_OK)
		return r;
	say_header(cli, "enroll");
	/* No --authority: the operator confirms the store's at a terminal
	 * (the library refuses without one unless the token has it pinned). */
	if (authority == NULL &&
	    custody_cluster_authority(NULL, cli->store, cli->node, 0, fp, &held,
				      &cli->err) == CUSTODY_OK &&
	    confirm_at_terminal("The store names this cluster authority. Compare "
				"it with custody kek authority on the member "
				"that holds it:", fp))
		authority = fp;
	if ((r = custody_cluster_node_enroll(cli->token, cli->store, cli->node,
					     authority, &cli->err)) != CUSTODY_OK)
		return r;
	printf("%s\n", cli->node);
	return CUSTODY_OK;
}

static int
node_admit(struct cli *cli, const char *node, const char *fingerprint)
{
	custody_secret pin = {NULL, 0}, so_pin = {NULL, 0};
	char prompt[256], fp[CUSTODY_CLUSTER_FP_SIZE];
	custody_node_record rec;
	custody_err ignored;
	int r;

	/* The SO PIN source is checked before anything is opened. */
	if (cli->cfg.so_pin_source == NULL) {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL,
				    "cannot admit node %s: no security officer PIN source",
				    node);
		custody_err_hint(&cli->err, "give --so-pin-source file:PATH|env:VAR|fd:N|prompt "
				 "(or CUSTODY_SO_PIN_SOURCE): admitting a node takes the SO");
		return r;
	}
	if ((r = custody_secret_source_check(cli->cfg.so_pin_source, &cli->err)) != CUSTODY_OK)
		return custody_err_prefix(&cli->err, "--so-pin-source");
	if ((r = cli_open_store(cli)) != CUSTODY_OK ||
	    (r = cli_open_token_keep_pin(cli, &pin)) != CUSTODY_OK)
		goto out;
	say_header(cli, "admit");
	/* No --fingerprint: at a terminal the SO compares the store's with
	 * what enroll printed on the node. */
	memset(&rec, 0, sizeof(rec));
	if (fingerprint == NULL &&
	    custody_store_get_node(cli->store, node, &rec, &ignored) == CUSTODY_OK &&
	    rec.transport_spki != NULL) {
		custody_cluster_fingerprint(rec.transport_spki, rec.transport_spki_len, fp);
		if (confirm_at_terminal("The store holds this transport key fingerprint "
					"for the node; compare it with what node enroll "
					"printed there:", fp))
			fingerprint = fp;
	}
	custody_node_record_clear(&rec);
	snprintf(prompt, sizeof(prompt), "Security officer PIN for token %s: ",
		 custody_token_label(cli->token));
	if ((r = custody_secret_read(cli->cfg.so_pin_source, prompt, &so_pin,
				     &cli->err)) != CUSTODY_OK)
		goto out;
	if (so_pin.data == NULL || so_pin.len == 0) {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL,
				    "cannot admit node %s: the security officer PIN is empty",
				    node);
		goto out;
	}
	r = custody_cluster_node_admit(cli->token, cli->store, cli->node, node,
				       fingerprint, so_pin.data, so_pin.len,
				       pin.data != NULL ? pin.data : "", pin.len, &cli->err);
	if (r != CUSTODY_OK)
		goto out;
	printf("%s\n", node);
out:
	custody_secret_clear(&so_pin);
	custody_secret_clear(&pin);
	return r;
}

static int
node_join(struct cli *cli, const char *kcv)
{
	char store_kcv[CUSTODY_KCV_HEX + 1], token_kcv[CUSTODY_KCV_HEX + 1];
	custody_node_record rec;
	custody_err ignored;
	int r;

	if ((r = cli_open_store(cli)) != CUSTODY_OK || (r = cli_open_token(cli)) != CUSTODY_OK)
		return r;
	say_header(cli, "join");
	/* No --kcv: at a terminal the operator confirms the admitted KEK's
	 * check (node admit printed it); elsewhere the authority's signature
	 * over it is what vouches for it. */
	memset(&rec, 0, sizeof(rec));
	if (kcv == NULL &&
	    custody_store_get_node(cli->store, cli->node, &rec, &ignored) == CUSTODY_OK &&
	    strcmp(rec.state, "admitted") == 0 && rec.kek_check[0] != '\0' &&
	    isatty(STDIN_FILENO) && isatty(STDERR_FILENO)) {
		if (!confirm_at_terminal("The admission says the KEK has this check "
					 "(node admit printed it):", rec.kek_check)) {
			custody_node_record_clear(&rec);
			return custody_err_set(&cli->err, CUSTODY_EFAIL,
					       "cannot join: the KEK check was not "
					       "confirmed: nothing unwrapped");
		}
		kcv = rec.kek_check;
	}
	r = custody_cluster_node_join(cli->token, cli->store, cli->node, kcv, &cli->err);
	custody_node_record_clear(&rec);
	if (r != CUSTODY_OK)
		return r;
	/* Joined and committed, the KCV checked: a token that then fails to
	 * say its KCV again does not undo that (exit 0, the store's KCV). */
	if (custody_cluster_kek_state(cli->token, cli->store, store_kcv, token_kcv,
				      &ignored) != CUSTODY_OK) {
		cli_warn("node %s has joined, but the KEK's key check value cannot be read "
			 "back: %s", cli->node, ignored.msg);
		if (custody_store_get_meta(cli->store, "kek_kcv", token_kcv, sizeof(token_kcv),
					   &ignored) != CUSTODY_OK)
			token_kcv[0] = '\0';
	}
	cli_say(cli, "next: custody sync brings the keys of the global assignments onto this token");
	printf("%s\n", token_kcv);
	return CUSTODY_OK;
}

const char cmd_node_usage[] =
	"custody node enroll [--authority FINGERPRINT]\n"
	"custody node admit NODE --so-pin-source SRC [--fingerprint FP]\n"
	"custody node join [--kcv CHECK]\n"
	"\n"
	"enroll (on the new node): pins the cluster authority on its token once you\n"
	"confirmed its fingerprint (--authority, compared with custody kek authority\n"
	"on the member that holds it, or typed at a terminal); then makes its\n"
	"RSA-3072 transport key pair in its token (the private half unwrap-only,\n"
	"never extractable) and records the public half in the store; prints its\n"
	"SHA-256 fingerprint on stderr.\n"
	"admit (on the member that holds the authority, by the security officer):\n"
	"confirm the fingerprint of NODE's transport key (--fingerprint, the one\n"
	"enroll printed there, or typed at a terminal). The SO PIN (from\n"
	"--so-pin-source, never the command line) makes NODE's transport key a\n"
	"trusted wrapping key for this session only; the KEK is wrapped for it\n"
	"(RSA-OAEP) and the authority signs the admission into the store. Every\n"
	"admission takes the SO PIN. Without an SO PIN source, or with a PIN the\n"
	"token refuses: exit 1, nothing changed.\n"
	"join (on the new node): checks the admission's signature against the pinned\n"
	"authority, unwraps the KEK into its token and proves its 64-bit check (the\n"
	"signed one; --kcv, or a confirmation at a terminal); then deletes the\n"
	"wrapped KEK from the store and destroys the transport key pair. A node not\n"
	"admitted, or whose admission does not verify, cannot join.\n"
	"\n"
	"  --authority FINGERPRINT  the cluster authority you compared (enroll only)\n"
	"  --kcv CHECK              the KEK check node admit printed (join only)\n"
	"  --fingerprint FP         NODE's transport key as enroll printed it (admit)\n"
	"  --so-pin-source SRC      file:PATH, env:VAR, fd:N or prompt (admit only)\n";

int
cmd_node(struct cli *cli, int argc, char **argv)
{
	struct node_opts o;
	const struct cli_opt options[] = {
		CLI_OPT_TEXT("authority", OPT_AUTHORITY, &o.authority),
		CLI_OPT_TEXT("kcv", OPT_KCV, &o.kcv),
		CLI_OPT_TEXT("fingerprint", OPT_FINGERPRINT, &o.fingerprint),
		{NULL},
	};
	int r;

	memset(&o, 0, sizeof(o));
	if ((r = cli_parse(cli, argc, argv, options, "-", on_option, &o)) != CUSTODY_OK)
		return r;
	if (o.n == 0)
		return cli_usage_error(cli, "which action? custody node enroll | admit NODE | join");
	if ((r = cli_check_output(cli, 1u << OUT_TABLE)) != CUSTODY_OK)
		return r;
	if (strcmp(o.operands[0], "enroll") == 0 || strcmp(o.operands[0], "join") == 0) {
		if (o.n > 1)
			return cli_usage_error(cli, "unexpected argument '%s'", o.operands[1]);
		if (o.operands[0][0] == 'e' && o.kcv != NULL)
			return cli_usage_error(cli, "--kcv belongs to node join");
		if (o.operands[0][0] == 'j' && o.authority != NULL)
			return cli_usage_error(cli, "--authority belongs to node enroll");
		if (o.fingerprint != NULL)
			return cli_usage_error(cli, "--fingerprint belongs to node admit");
		return o.operands[0][0] == 'e' ? node_enroll(cli, o.authority)
					       : node_join(cli, o.kcv);
	}
	if (o.authority != NULL || o.kcv != NULL)
		return cli_usage_error(cli, "--authority and --kcv belong to node enroll "
				       "and node join");
	if (strcmp(o.operands[0], "admit") == 0) {
		if (o.n != 2)
			return cli_usage_error(cli, "%s", o.n < 2 ? "node admit needs the NODE to admit"
					       : "node admit takes one NODE");
		return node_admit(cli, o.operands[1], o.fingerprint);
	}
	return cli_usage_error(cli, "unknown action '%s': custody node enroll | admit NODE | join",
			       o.operands[0]);
}
