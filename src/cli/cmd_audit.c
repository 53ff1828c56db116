/*
 * cmd_audit.c — `custody audit`: the append-only audit log, one line per
 * entry (or JSON), and --verify, which checks the hash chain and the head
 * and names the first broken entry.  Reads the store only: no token.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <custody/audit.h>
#include <custody/timefmt.h>

#include "cli.h"

struct audit_opts {
	const char *since;
	int verify;
};

enum { OPT_SINCE = OPT_FIRST_COMMAND_OPTION, OPT_VERIFY };

/* A field as shown in the table: "-" when empty, escaped as all terminal
 * output is (out_escape), spaces (which would shift the columns) as '_'. */
static char *
shown(char *dst, size_t size, const char *src)
{
	char *p;

	out_escape(dst, size, src == NULL || src[0] == '\0' ? "-" : src);
	for (p = dst; *p != '\0'; p++)
		if (*p == ' ')
			*p = '_';
	return dst;
}

/* The detail at the end of the line: spaces stay, the rest is escaped. */
static void
shown_detail(char *dst, size_t size, const char *src)
{
	out_escape(dst, size, src);
}

struct audit_columns {
	int node, actor, action, where;
};

/* Room for a field escaped: 4 bytes per byte at most. */
#define SHOWN(n) (4 * (n) + 1)

static void
where_of(const custody_audit_entry *e, char *buf, size_t size)
{
	char type[SHOWN(CUSTODY_NAME_MAX)], identity[SHOWN(CUSTODY_NAME_MAX)];

	if (e->type[0] == '\0' && e->identity[0] == '\0') {
		snprintf(buf, size, "-");
		return;
	}
	shown(type, sizeof(type), e->type);
	shown(identity, sizeof(identity), e->identity);
	snprintf(buf, size, "%s/%s", type, identity);
}

static void
widths(const custody_audit_entry *e, size_t n, struct audit_columns *w)
{
	char where[2 * SHOWN(CUSTODY_NAME_MAX)];
	char field[SHOWN(CUSTODY_AUDIT_ACTOR_MAX + CUSTODY_NAME_MAX)];
	size_t i;

	memset(w, 0, sizeof(*w));
	for (i = 0; i < n; i++) {
		int len;

		where_of(&e[i], where, sizeof(where));
		len = (int)strlen(shown(field, sizeof(field), e[i].node));
		w->node = len > w->node ? len : w->node;
		len = (int)strlen(shown(field, sizeof(field), e[i].actor));
		w->actor = len > w->actor ? len : w->actor;
		len = (int)strlen(shown(field, sizeof(field), e[i].action));
		w->action = len > w->action ? len : w->action;
		len = (int)strlen(where);
		w->where = len > w->where ? len : w->where;
	}
}

/* TIME NODE ACTOR ACTION TYPE/IDENTITY THUMBPRINT [<- PREVIOUS] DETAIL */
static void
print_line(const custody_audit_entry *e, const struct audit_columns *w)
{
	char t[CUSTODY_TIME_TEXT];
	char node[SHOWN(CUSTODY_NAME_MAX)], actor[SHOWN(CUSTODY_AUDIT_ACTOR_MAX)];
	char action[SHOWN(CUSTODY_AUDIT_ACTION_MAX)];
	char where[2 * SHOWN(CUSTODY_NAME_MAX)];
	char thumbprint[SHOWN(CUSTODY_THUMBPRINT_HEX)];
	char previous[SHOWN(CUSTODY_THUMBPRINT_HEX)];
	char detail[4096];

	shown(node, sizeof(node), e->node);
	shown(actor, sizeof(actor), e->actor);
	shown(action, sizeof(action), e->action);
	where_of(e, where, sizeof(where));
	shown(thumbprint, sizeof(thumbprint), e->thumbprint);
	shown(previous, sizeof(previous), e->previous_thumbprint);
	shown_detail(detail, sizeof(detail), e->detail);
	printf("%s %-*s %-*s %-*s %-*s %-*s", custody_time_format(e->time, t),
	       w->node, node, w->actor, actor, w->action, action, w->where, where,
	       CUSTODY_THUMBPRINT_HEX, thumbprint);
	if (e->previous_thumbprint[0] != '\0')
		printf(" <- %s", previous);
	if (detail[0] != '\0')
		printf(" %s", detail);
	putchar('\n');
}

static json_t *
text_or_null(const char *text)
{
	return text != NULL && text[0] != '\0' ? json_string(text) : json_null();
}

static json_t *
entry_json(const custody_audit_entry *e)
{
	char t[CUSTODY_TIME_TEXT];
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "time", json_string(custody_time_format(e->time, t)));
	json_object_set_new(o, "seq", json_integer(e->seq));
	json_object_set_new(o, "node", text_or_null(e->node));
	json_object_set_new(o, "actor", text_or_null(e->actor));
	json_object_set_new(o, "action", text_or_null(e->action));
	json_object_set_new(o, "type", text_or_null(e->type));
	json_object_set_new(o, "identity", text_or_null(e->identity));
	json_object_set_new(o, "thumbprint", text_or_null(e->thumbprint));
	json_object_set_new(o, "previous_thumbprint",
			    text_or_null(e->previous_thumbprint));
	json_object_set_new(o, "detail", text_or_null(e->detail));
	json_object_set_new(o, "hash", text_or_null(e->hash));
	json_object_set_new(o, "prev_hash", text_or_null(e->prev_hash));
	return o;
}

static int
show_log(struct cli *cli, int64_t since)
{
	int r = CUSTODY_EFAIL;
	custody_audit_entry *e = NULL;
	size_t n = 0, i;
	json_t *array = NULL;
	struct audit_columns w;

	if ((r = custody_store_list_audit(cli->store, since, &e, &n, &cli->err)) !=
	    CUSTODY_OK)
		goto out;
	if (cli->output == OUT_JSON) {
		array = json_array();
		for (i = 0; array != NULL && i < n; i++)
			if (json_array_append_new(array, entry_json(&e[i])) != 0) {
				json_decref(array);
				array = NULL;
			}
		r = out_json(cli, array);
		goto out;
	}
	if (n == 0)
		cli_say(cli, since != 0 ? "no audit entry since then" :
			"the audit log is empty");
	widths(e, n, &w);
	for (i = 0; i < n; i++)
		print_line(&e[i], &w);
	r = CUSTODY_OK;
out:
	custody_audit_entries_free(e, n);
	return r;
}

static int
verify_log(struct cli *cli)
{
	int r = CUSTODY_EFAIL;
	char head[CUSTODY_AUDIT_HASH_HEX + 1];
	size_t n = 0;

	if ((r = custody_audit_verify_store(cli->store, &n, head, &cli->err)) !=
	    CUSTODY_OK) {
		if (r == CUSTODY_EFAIL && cli->err.hint[0] == '\0')
			custody_err_hint(&cli->err, "the store was changed outside "
					 "custody: keep a copy of it before anything else");
		goto out;
	}
	if (cli->output == OUT_JSON)
		r = out_json(cli, json_pack("{s:b, s:I, s:s}", "verified", 1,
					    "entries", (json_int_t)n, "head", head));
	else
		printf("audit log verified: %zu entr%s, head %s, integrity tag holds\n", n,
		       n == 1 ? "y" : "ies", head);
out:
	return r;
}

const char cmd_audit_usage[] =
	"custody audit [--since TIME] [--verify] [-o table|json]\n"
	"\n"
	"Shows the append-only audit log, one line per change:\n"
	"TIME NODE ACTOR ACTION TYPE/IDENTITY THUMBPRINT [<- PREVIOUS] DETAIL.\n"
	"Entries are hash-chained and the store keeps the head (the newest hash);\n"
	"--verify checks every entry, the chain and the head, prints\n"
	"\"audit log verified: N entries, head HASH\", or exits 1 naming the first\n"
	"entry that was edited, removed or reordered, or where the log was cut.\n"
	"Whoever can write the store can rewrite the whole chain: keep the head\n"
	"printed by --verify somewhere else and compare it later.\n"
	"\n"
	"  --since TIME             only entries at or after TIME (ISO 8601)\n"
	"  --verify                 check the whole chain and the head\n";

int
cmd_audit(struct cli *cli, int argc, char **argv)
{
	struct audit_opts o = {NULL, 0};
	const struct cli_opt options[] = {
		CLI_OPT_TEXT("since", OPT_SINCE, &o.since),
		CLI_OPT_FLAG("verify", OPT_VERIFY, &o.verify),
		{NULL},
	};
	int64_t since = 0;
	int r;

	if ((r = cli_parse(cli, argc, argv, options, "", NULL, NULL)) != CUSTODY_OK)
		return r;
	if ((r = cli_check_output(cli, (1u << OUT_TABLE) | (1u << OUT_JSON))) !=
	    CUSTODY_OK)
		return r;
	if (o.verify && o.since != NULL)
		return cli_usage_error(cli, "--since does not apply to --verify: "
				       "the whole chain is checked");
	if (o.since != NULL && (r = cli_time_parse(cli, "--since", o.since, &since)) !=
	    CUSTODY_OK)
		return r;
	if ((r = cli_open_store(cli)) != CUSTODY_OK)
		return r;
	/* --verify checks the head's integrity tag too: with the token. */
	if (o.verify && (r = cli_open_token(cli)) != CUSTODY_OK)
		return r;
	return o.verify ? verify_log(cli) : show_log(cli, since);
}
