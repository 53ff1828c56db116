/*
 * cmd_tag.c — `custody tag [--yes]`: the integrity tags of a store written
 * before custody tagged its rows (custody/store.h), made once by an
 * operator who has seen what they vouch for.  It lists every certificate,
 * assignment, package and admitted node the store holds, checks the audit
 * chain, and after a confirmation (--yes, or "yes" typed at a terminal)
 * tags them all, the audit log's head too, in one transaction.  A store
 * already tagged is checked instead: its rows are never tagged anew here,
 * for that would launder a forgery.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <custody/audit.h>
#include <custody/ops.h>
#include <custody/store.h>

#include "cli.h"

enum { OPT_YES = OPT_FIRST_COMMAND_OPTION };

struct rows {
	custody_cert_record *certs;
	size_t n_certs;
	custody_assignment *assignments;
	size_t n_assignments;
	custody_package_record *packages;
	size_t n_packages;
	custody_node_record *nodes;
	size_t n_nodes;
	int64_t head_seq;
	char head[CUSTODY_AUDIT_HASH_HEX + 1];
};

static void
rows_clear(struct rows *w)
{
	custody_cert_records_free(w->certs, w->n_certs);
	free(w->assignments);
	custody_package_records_free(w->packages, w->n_packages);
	custody_node_records_free(w->nodes, w->n_nodes);
	memset(w, 0, sizeof(*w));
}

static int
read_rows(struct cli *cli, struct rows *w)
{
	size_t n = 0;
	int r;

	memset(w, 0, sizeof(*w));
	if ((r = custody_store_list_certs(cli->store, &w->certs, &w->n_certs, &cli->err)) != CUSTODY_OK ||
	    (r = custody_store_list_assignments(cli->store, &w->assignments, &w->n_assignments,
						&cli->err)) != CUSTODY_OK ||
	    (r = custody_store_list_packages(cli->store, &w->packages, &w->n_packages,
					     &cli->err)) != CUSTODY_OK ||
	    (r = custody_store_list_nodes(cli->store, &w->nodes, &w->n_nodes, &cli->err)) !=
	    CUSTODY_OK)
		return r;
	/* The chain first: a log broken already is not vouched for (and its
	 * head's tag checked, on a store that has tags). */
	if ((r = custody_audit_verify_store(cli->store, &n, w->head, &cli->err)) != CUSTODY_OK)
		return custody_err_prefix(&cli->err, "cannot tag the audit log");
	return custody_store_audit_head(cli->store, &w->head_seq, w->head, &cli->err);
}

static void
show_slot(const char *name, const custody_slot *s)
{
	if (s->thumbprint[0] != '\0')
		printf(" %s %s", name, s->thumbprint);
}

/* What the operator vouches for, on standard output. */
static void
show_rows(const struct rows *w)
{
	size_t i;

	printf("certificates (%zu):\n", w->n_certs);
	for (i = 0; i < w->n_certs; i++)
		printf("  %s  %s  key id %s\n", w->certs[i].thumbprint,
		       out_safe(w->certs[i].subject != NULL ? w->certs[i].subject : ""),
		       w->certs[i].key_id);
	printf("assignments (%zu):\n", w->n_assignments);
	for (i = 0; i < w->n_assignments; i++) {
		const custody_assignment *a = &w->assignments[i];

		printf("  %s/%s:", out_safe(a->type), out_safe(a->identity));
		show_slot("current", &a->current);
		show_slot("previous", &a->previous);
		show_slot("pending", &a->pending);
		printf("\n");
	}
	printf("packages (%zu):\n", w->n_packages);
	for (i = 0; i < w->n_packages; i++)
		printf("  %s  key id %s  from node %s\n", w->packages[i].thumbprint,
		       w->packages[i].key_id, out_safe(w->packages[i].node));
	printf("nodes (%zu):\n", w->n_nodes);
	for (i = 0; i < w->n_nodes; i++)
		printf("  %s  %s\n", out_safe(w->nodes[i].name), w->nodes[i].state);
	printf("audit log: %lld entries, chain intact, head %s\n", (long long)w->head_seq,
	       w->head);
}

/* Checks every row of a tagged store; EFAIL naming how many fail. */
static int
check_all(struct cli *cli, const struct rows *w)
{
	custody_err e;
	size_t i, bad = 0, total = 0;

#define CHECK_ROW(call)							\
	do {								\
		total++;						\
		memset(&e, 0, sizeof(e));				\
		if ((call) != CUSTODY_OK) {				\
			bad++;						\
			fprintf(stderr, "custody: tag: %s\n", out_safe(e.msg)); \
		}							\
	} while (0)
	for (i = 0; i < w->n_certs; i++)
		CHECK_ROW(custody_store_check_cert(cli->store, &w->certs[i], &e));
	for (i = 0; i < w->n_assignments; i++)
		CHECK_ROW(custody_store_check_assignment(cli->store, &w->assignments[i], &e));
	for (i = 0; i < w->n_packages; i++)
		CHECK_ROW(custody_store_check_package(cli->store, &w->packages[i], &e));
	for (i = 0; i < w->n_nodes; i++)
		CHECK_ROW(custody_store_check_node(cli->store, &w->nodes[i], &e));
	CHECK_ROW(custody_audit_check_tag(cli->store, w->head_seq, w->head, &e));
#undef CHECK_ROW
	if (bad > 0) {
		custody_err_set(&cli->err, CUSTODY_EFAIL,
				"%zu of the store's %zu tagged records fail their integrity check",
				bad, total);
		custody_err_hint(&cli->err, "they were changed outside custody: keep a copy "
				 "of the store, and remove what nobody wrote");
		return CUSTODY_EFAIL;
	}
	printf("the store's rows are tagged, and all %zu records hold\n", total);
	return CUSTODY_OK;
}

static int
confirmed(struct cli *cli, int yes)
{
	char line[16];

	if (yes)
		return CUSTODY_OK;
	if (!isatty(STDIN_FILENO)) {
		custody_err_set(&cli->err, CUSTODY_EUSAGE,
				"tagging vouches for every row listed above: confirm with --yes, "
				"or at a terminal");
		return CUSTODY_EUSAGE;
	}
	printf("Every row above will be trusted from now on. Type yes if you know them all: ");
	fflush(stdout);
	if (fgets(line, sizeof(line), stdin) == NULL || strcmp(line, "yes\n") != 0) {
		custody_err_set(&cli->err, CUSTODY_EFAIL, "not confirmed: nothing was tagged");
		return CUSTODY_EFAIL;
	}
	return CUSTODY_OK;
}

static int
tag_all(struct cli *cli, const struct rows *w)
{
	custody_txn tx;
	char detail[160];
	size_t i;
	int r;

	custody_txn_init(&tx, cli->store, cli->token, cli->node, &cli->err);
	if ((r = custody_txn_begin(&tx)) != CUSTODY_OK)
		goto out;
	for (i = 0; i < w->n_certs; i++)
		if ((r = custody_store_retag_cert(cli->store, &w->certs[i], &cli->err)) != CUSTODY_OK)
			goto out;
	for (i = 0; i < w->n_assignments; i++)
		if ((r = custody_store_retag_assignment(cli->store, &w->assignments[i],
							&cli->err)) != CUSTODY_OK)
			goto out;
	for (i = 0; i < w->n_packages; i++)
		if ((r = custody_store_retag_package(cli->store, &w->packages[i], &cli->err)) !=
		    CUSTODY_OK)
			goto out;
	for (i = 0; i < w->n_nodes; i++)
		if ((r = custody_store_retag_node(cli->store, &w->nodes[i], &cli->err)) != CUSTODY_OK)
			goto out;
	if ((w->head_seq > 0 &&
	     (r = custody_audit_tag_head(cli->store, w->head_seq, w->head, &cli->err)) !=
	     CUSTODY_OK) ||
	    (r = custody_store_tags_enable(cli->store, &cli->err)) != CUSTODY_OK)
		goto out;
	snprintf(detail, sizeof(detail), "integrity tags on %zu certificates, %zu assignments, "
		 "%zu packages, %zu nodes and the audit head", w->n_certs, w->n_assignments,
		 w->n_packages, w->n_nodes);
	if ((r = custody_txn_audit(&tx, "tag", NULL, NULL, NULL, NULL, detail)) != CUSTODY_OK)
		goto out;
	r = custody_txn_commit(&tx);
out:
	custody_txn_end(&tx, r);
	return r;
}

const char cmd_tag_usage[] =
	"custody tag [--yes]\n"
	"\n"
	"Every certificate, assignment, package and admitted node in the store, and\n"
	"the audit log's head, carries an integrity tag made with the token's KEK: a\n"
	"row changed outside custody is refused where it would be used. A store\n"
	"written by an earlier custody has none: this lists every row, checks the\n"
	"audit chain and, once you confirm (--yes, or yes typed at a terminal), tags\n"
	"them all in one transaction. Confirm only rows you know. On a store tagged\n"
	"already it checks every row instead (exit 1 naming those that fail) and\n"
	"never tags anything anew.\n"
	"\n"
	"  --yes    confirm without a terminal (scripts that listed the rows)\n";

int
cmd_tag(struct cli *cli, int argc, char **argv)
{
	struct rows w;
	int yes = 0, on = 0, r;
	const struct cli_opt options[] = {
		CLI_OPT_FLAG("yes", OPT_YES, &yes),
		{NULL},
	};

	memset(&w, 0, sizeof(w));
	if ((r = cli_parse(cli, argc, argv, options, "", NULL, NULL)) != CUSTODY_OK ||
	    (r = cli_check_output(cli, 1u << OUT_TABLE)) != CUSTODY_OK)
		return r;
	if ((r = cli_open_store(cli)) != CUSTODY_OK || (r = cli_open_token(cli)) != CUSTODY_OK ||
	    (r = custody_store_tags_on(cli->store, &on, &cli->err)) != CUSTODY_OK ||
	    (r = read_rows(cli, &w)) != CUSTODY_OK)
		goto out;
	if (on) {
		r = check_all(cli, &w);
		goto out;
	}
	printf("store rows written before custody tagged them; check each:\n");
	show_rows(&w);
	fflush(stdout);
	if ((r = confirmed(cli, yes)) != CUSTODY_OK)
		goto out;
	cli_say(cli, "tagging them with the KEK of token %s", custody_token_label(cli->token));
	if ((r = tag_all(cli, &w)) != CUSTODY_OK)
		goto out;
	printf("tagged: from now on a row changed outside custody is refused\n");
out:
	rows_clear(&w);
	return r;
}
