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
	/* node list reads: it opens the store as a read does, never making
	 * one (cli_open_store). */
	if (o->n == 1 && strcmp(arg, "list") == 0)
		cli->preview = 1;
	return CUSTODY_OK;
}

/* The transport key fingerprint of a node record, "" when it has none. */
static void
node_fingerprint(const custody_node_record *rec, char fp[CUSTODY_CLUSTER_FP_SIZE])
{
	fp[0] = '\0';
	if (rec->transport_spki != NULL)
		custody_cluster_fingerprint(rec->transport_spki, rec->transport_spki_len, fp);
}

/* What a step did, for a script: the node's name alone (and the KEK's
 * check after join), or with -o json {"node","state"[,"fingerprint"]
 * [,"kcv"]}, the store's record of the node filling it in. */
static int
print_step(struct cli *cli, const char *node, const char *kcv)
{
	char fp[CUSTODY_CLUSTER_FP_SIZE] = "";
	custody_node_record rec;
	custody_err ignored;
	json_t *o;

	if (cli->output != OUT_JSON) {
		printf("%s\n", kcv != NULL ? kcv : node);
		return CUSTODY_OK;
	}
	memset(&rec, 0, sizeof(rec));
	if (custody_store_get_node(cli->store, node, &rec, &ignored) == CUSTODY_OK)
		node_fingerprint(&rec, fp);
	o = json_pack("{s:s, s:s?}", "node", node,
		      "state", rec.state[0] != '\0' ? rec.state : NULL);
	if (o != NULL && fp[0] != '\0')
		json_object_set_new(o, "fingerprint", json_string(fp));
	if (o != NULL && kcv != NULL)
		json_object_set_new(o, "kcv", json_string(kcv));
	custody_node_record_clear(&rec);
	return out_json(cli, o);
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
	return print_step(cli, cli->node, NULL);
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
	r = print_step(cli, node, NULL);
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
	return print_step(cli, cli->node, token_kcv);
}

/* One node as a JSON object (times null until they happened). */
static json_t *
node_json(const custody_node_record *rec)
{
	char t[4][CUSTODY_TIME_TEXT], fp[CUSTODY_CLUSTER_FP_SIZE];

	node_fingerprint(rec, fp);
	return json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?}",
			 "node", rec->name, "state", rec->state,
			 "fingerprint", fp[0] != '\0' ? fp : NULL,
			 "enrolled_at", rec->enrolled_at ? out_time(rec->enrolled_at, t[0]) : NULL,
			 "admitted_by", rec->admitted_by[0] != '\0' ? rec->admitted_by : NULL,
			 "admitted_at", rec->admitted_at ? out_time(rec->admitted_at, t[1]) : NULL,
			 "joined_at", rec->joined_at ? out_time(rec->joined_at, t[2]) : NULL,
			 "last_sync", rec->last_sync ? out_time(rec->last_sync, t[3]) : NULL);
}

static void
node_block(const custody_node_record *rec)
{
	char t[CUSTODY_TIME_TEXT], fp[CUSTODY_CLUSTER_FP_SIZE];

	node_fingerprint(rec, fp);
	out_field("Node", rec->name);
	out_field("State", rec->state);
	out_field("Fingerprint", fp);
	out_field("EnrolledAt", out_time(rec->enrolled_at, t));
	out_field("AdmittedBy", rec->admitted_by);
	out_field("AdmittedAt", out_time(rec->admitted_at, t));
	out_field("JoinedAt", out_time(rec->joined_at, t));
	out_field("LastSync", out_time(rec->last_sync, t));
	out_block_end();
}

/* node list: the store's nodes (no token, no PIN); [] in JSON when none
 * has enrolled, exit 0 as for any list. */
static int
node_list(struct cli *cli)
{
	custody_node_record *recs = NULL;
	json_t *array = NULL;
	size_t n = 0, i;
	int r;

	if ((r = cli_open_store(cli)) != CUSTODY_OK ||
	    (r = custody_store_list_nodes(cli->store, &recs, &n, &cli->err)) != CUSTODY_OK)
		return r;
	if (cli->output == OUT_JSON) {
		array = json_array();
		for (i = 0; array != NULL && i < n; i++)
			if (json_array_append_new(array, node_json(&recs[i])) != 0) {
				json_decref(array);
				array = NULL;
			}
		r = out_json(cli, array);
	} else {
		if (n == 0)
			cli_say(cli, "no node has enrolled in the cluster of this store");
		for (i = 0; i < n; i++)
			node_block(&recs[i]);
	}
	custody_node_records_free(recs, n);
	return r;
}

const char cmd_node_usage[] =
	"custody node enroll [--authority FINGERPRINT]\n"
	"custody node admit NODE --so-pin-source SRC [--fingerprint FP]\n"
	"custody node join [--kcv CHECK]\n"
	"custody node list [-o table|json]\n"
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
	"list: the nodes the store knows (no token, no PIN): state, transport key\n"
	"fingerprint, when each step was taken, last sync; -o json: an array of\n"
	"{\"node\",\"state\",\"fingerprint\",\"enrolled_at\",\"admitted_by\",\"admitted_at\",\n"
	"\"joined_at\",\"last_sync\"} ([] when none). enroll, admit and join print the\n"
	"node's name (join: the KEK check); -o json {\"node\",\"state\",\"fingerprint\"\n"
	"[,\"kcv\"]}.\n"
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
		return cli_usage_error(cli, "which action? custody node enroll | admit NODE | "
				       "join | list");
	if ((r = cli_check_output(cli, 1u << OUT_TABLE | 1u << OUT_JSON)) != CUSTODY_OK)
		return r;
	if (strcmp(o.operands[0], "list") == 0) {
		if (o.n > 1)
			return cli_usage_error(cli, "unexpected argument '%s'", o.operands[1]);
		if (o.authority != NULL || o.kcv != NULL || o.fingerprint != NULL)
			return cli_usage_error(cli, "node list takes no --authority, --kcv "
					       "or --fingerprint");
		return node_list(cli);
	}
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
	return cli_usage_error(cli, "unknown action '%s': custody node enroll | admit NODE | "
			       "join | list", o.operands[0]);
}
