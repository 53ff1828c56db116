/*
 * cmd_status.c — `custody status`: the nodes of the cluster against the
 * store: for every type assigned at identity global, the thumbprint each
 * node reported it holds, its last sync and the lag since, and whether it
 * is in line (custody_cluster_status: "differs" when it holds other keys
 * than the store says, "stale" when it has not reported since the last
 * change).  Reads the store only: no token, no PIN.  Exit 1 when any node
 * is not in line (or there is no node at all).
 *
 * The store is not trusted: the records of the certificates the global
 * assignments name (current, pending, previous) are checked against the
 * certificates they hold (custody_cert_record_check: a key id that is not
 * the certificate's own would make nodes use another key).  A record that
 * fails is listed under the table (and in "store_faults" of -o json), and
 * exits 1 naming it, before anything the nodes did.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <custody/cluster.h>
#include <custody/timefmt.h>

#include "cli.h"

/* Shown thumbprints are cut to this many hex digits in the table. */
#define SHORT_THUMBPRINT 8
/* The table's type columns. */
#define MAX_TYPES 16

/* A record of the store that does not match its certificate. */
struct store_fault {
	const custody_assignment *a;
	const char *slot;
	char thumbprint[CUSTODY_THUMBPRINT_HEX + 1];
	custody_err err;
};

struct status_view {
	custody_assignment *globals;	/* resolved at now */
	size_t n_globals;
	struct store_fault *faults;
	size_t n_faults;
	custody_node_status *nodes;
	size_t n_nodes;
	custody_report_record *reports;
	size_t n_reports;
	int all_ok;
};

static void
view_clear(struct status_view *v)
{
	free(v->globals);
	free(v->nodes);
	free(v->reports);
	free(v->faults);
	memset(v, 0, sizeof(*v));
}

/* Checks the record of every certificate a global assignment names. */
static int
check_records(struct cli *cli, struct status_view *v)
{
	static const char *const slot_names[3] = {"current", "pending", "previous"};
	custody_cert_record rec;
	size_t k, i;
	int r;

	for (k = 0; k < v->n_globals; k++) {
		const custody_assignment *a = &v->globals[k];
		const custody_slot *slots[3] = {&a->current, &a->pending, &a->previous};

		for (i = 0; i < 3; i++) {
			struct store_fault *f = &v->faults[v->n_faults];

			if (slots[i]->thumbprint[0] == '\0')
				continue;
			r = custody_store_get_cert(cli->store, slots[i]->thumbprint, &rec,
						   &cli->err);
			if (r == CUSTODY_ENOTFOUND) {	/* the nodes report it */
				custody_err_clear(&cli->err);
				continue;
			}
			/* A record that fails its integrity check is a fault. */
			if (r != CUSTODY_OK) {
				f->err = cli->err;
				custody_err_clear(&cli->err);
			}
			if (r != CUSTODY_OK ||
			    custody_cert_record_check(&rec, NULL, &f->err) != CUSTODY_OK) {
				f->a = a;
				f->slot = slot_names[i];
				snprintf(f->thumbprint, sizeof(f->thumbprint), "%s",
					 slots[i]->thumbprint);
				v->n_faults++;
			}
			custody_cert_record_clear(&rec);
		}
	}
	return CUSTODY_OK;
}

static int
read_view(struct cli *cli, struct status_view *v)
{
	custody_assignment *all = NULL;
	size_t n = 0, i;
	int r;

	memset(v, 0, sizeof(*v));
	if ((r = custody_cluster_status(cli->store, cli->now, &v->nodes, &v->n_nodes,
					&v->all_ok, &cli->err)) != CUSTODY_OK ||
	    (r = custody_store_list_reports(cli->store, NULL, &v->reports, &v->n_reports,
					    &cli->err)) != CUSTODY_OK ||
	    (r = custody_store_list_assignments(cli->store, &all, &n, &cli->err)) != CUSTODY_OK)
		goto out;
	if ((v->faults = calloc(4 * n + 1, sizeof(*v->faults))) == NULL) {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		custody_err e = {0};

		if (strcmp(all[i].identity, CUSTODY_SCOPE_GLOBAL) != 0)
			continue;
		/* The record as stored carries its integrity tag (checked
		 * before it is resolved at now). */
		if (custody_store_check_assignment(cli->store, &all[i], &e) != CUSTODY_OK) {
			struct store_fault *f = &v->faults[v->n_faults++];

			f->a = &all[v->n_globals];
			f->slot = "record";
			f->err = e;
		}
		custody_assign_resolve(&all[i], cli->now, &all[v->n_globals]);
		v->n_globals++;
	}
	v->globals = all;
	all = NULL;
	r = check_records(cli, v);
out:
	free(all);
	return r;
}

/* 1 when node reported thumbprint held. */
static int
node_holds(const struct status_view *v, const char *node, const char *thumbprint)
{
	size_t i;

	if (thumbprint[0] == '\0')
		return 0;
	for (i = 0; i < v->n_reports; i++)
		if (v->reports[i].held && strcmp(v->reports[i].node, node) == 0 &&
		    strcmp(v->reports[i].thumbprint, thumbprint) == 0)
			return 1;
	return 0;
}

/* 1 when thumbprint is one a global assignment names (a key the nodes
 * must hold or may still hold). */
static int
assigned_key(const struct status_view *v, const char *thumbprint)
{
	size_t k;

	for (k = 0; k < v->n_globals; k++)
		if (strcmp(v->globals[k].current.thumbprint, thumbprint) == 0 ||
		    strcmp(v->globals[k].pending.thumbprint, thumbprint) == 0 ||
		    strcmp(v->globals[k].previous.thumbprint, thumbprint) == 0)
			return 1;
	return 0;
}

/* The i-th report is a node's problem: a key the assignments name that
 * its last sync could not make held, with the reason it gave (a full or
 * read-only token, a package that does not unwrap there). */
static int
is_problem(const struct status_view *v, size_t i)
{
	return !v->reports[i].held && v->reports[i].detail[0] != '\0' &&
	       assigned_key(v, v->reports[i].thumbprint);
}

/* The thumbprint of type a that node holds: the current one, else the
 * previous one (the node is behind), else NULL. */
static const char *
held_for(const struct status_view *v, const char *node, const custody_assignment *a)
{
	if (node_holds(v, node, a->current.thumbprint))
		return a->current.thumbprint;
	if (node_holds(v, node, a->previous.thumbprint))
		return a->previous.thumbprint;
	return NULL;
}

static const char *
node_verdict(const custody_node_status *s)
{
	if (s->differs)
		return "differs";
	if (s->stale)
		return "stale";
	return "ok";
}

static int64_t
lag_of(const struct cli *cli, const custody_node_status *s)
{
	if (s->last_sync == 0)
		return -1;
	return cli->now > s->last_sync ? cli->now - s->last_sync : 0;
}

/* ------------------------------------------------------------ JSON */

/* [{"thumbprint","message"}]: the keys node reported it could not hold. */
static json_t *
problems_json(const struct status_view *v, const char *node)
{
	json_t *list = json_array();
	size_t i;

	for (i = 0; i < v->n_reports; i++)
		if (strcmp(v->reports[i].node, node) == 0 && is_problem(v, i))
			json_array_append_new(list,
				json_pack("{s:s, s:s}",
					  "thumbprint", v->reports[i].thumbprint,
					  "message", v->reports[i].detail));
	return list;
}

static json_t *
view_json(const struct cli *cli, const struct status_view *v, int ok)
{
	char t[CUSTODY_TIME_TEXT];
	json_t *nodes = json_array(), *store = json_object(), *faults = json_array(), *o;
	size_t i, k;

	for (i = 0; i < v->n_faults; i++)
		json_array_append_new(faults,
			json_pack("{s:s, s:s, s:s, s:s}",
				  "type", v->faults[i].a->type,
				  "slot", v->faults[i].slot,
				  "thumbprint", v->faults[i].thumbprint,
				  "message", v->faults[i].err.msg));

	for (k = 0; k < v->n_globals; k++) {
		const char *tp = v->globals[k].current.thumbprint;

		json_object_set_new(store, v->globals[k].type,
				    tp[0] != '\0' ? json_string(tp) : json_null());
	}
	for (i = 0; i < v->n_nodes; i++) {
		const custody_node_status *s = &v->nodes[i];
		json_t *holds = json_object();
		int64_t lag = lag_of(cli, s);

		for (k = 0; k < v->n_globals; k++) {
			const char *held = held_for(v, s->node, &v->globals[k]);

			json_object_set_new(holds, v->globals[k].type,
					    held != NULL ? json_string(held) : json_null());
		}
		o = json_pack("{s:s, s:s, s:s?, s:o, s:b, s:b, s:s, s:o, s:s?, s:o}",
			      "node", s->node,
			      "state", s->state,
			      "last_sync", s->last_sync != 0 ? out_time(s->last_sync, t) : NULL,
			      "lag_seconds", lag >= 0 ? json_integer(lag) : json_null(),
			      "stale", s->stale,
			      "differs", s->differs,
			      "verdict", node_verdict(s),
			      "holds", holds,
			      "detail", s->detail[0] != '\0' ? s->detail : NULL,
			      "problems", problems_json(v, s->node));
		json_array_append_new(nodes, o);
	}
	return json_pack("{s:s, s:o, s:o, s:o, s:b}",
			 "time", out_time(cli->now, t),
			 "store", store,
			 "store_faults", faults,
			 "nodes", nodes,
			 "ok", ok);
}

/* ------------------------------------------------------------ table */

static void
short_thumbprint(const char *tp, char out[SHORT_THUMBPRINT + 1])
{
	if (tp == NULL || tp[0] == '\0')
		snprintf(out, SHORT_THUMBPRINT + 1, "-");
	else
		snprintf(out, SHORT_THUMBPRINT + 1, "%.*s", SHORT_THUMBPRINT, tp);
}

static void
lag_text(int64_t lag, char *out, size_t size)
{
	if (lag < 0)
		snprintf(out, size, "-");
	else if (lag < 120)
		snprintf(out, size, "%llds", (long long)lag);
	else if (lag < 7200)
		snprintf(out, size, "%lldm", (long long)(lag / 60));
	else if (lag < 172800)
		snprintf(out, size, "%lldh", (long long)(lag / 3600));
	else
		snprintf(out, size, "%lldd", (long long)(lag / 86400));
}

/* Width of a type's column: its name, at least a short thumbprint. */
static int
column_width(const char *type)
{
	int w = (int)strlen(out_safe(type));

	return w > SHORT_THUMBPRINT ? w : SHORT_THUMBPRINT;
}

/*
 * NODE STATE LASTSYNC LAG TYPE... STATUS, one row per node, after a row
 * "(store)" with what the store assigns; then one line per node that is
 * not in line, with the library's detail, and one per record of the
 * store that does not match its certificate.
 */
static void
print_table(const struct cli *cli, const struct status_view *v)
{
	char t[CUSTODY_TIME_TEXT], lag[24], tp[SHORT_THUMBPRINT + 1];
	size_t i, k, types = v->n_globals < MAX_TYPES ? v->n_globals : MAX_TYPES;
	int width = 7;	/* "(store)" */

	for (i = 0; i < v->n_nodes; i++)
		if ((int)strlen(out_safe(v->nodes[i].node)) > width)
			width = (int)strlen(out_safe(v->nodes[i].node));
	printf("%-*s  %-8s  %-20s  %-5s", width, "Node", "State", "LastSync", "Lag");
	for (k = 0; k < types; k++)
		printf("  %-*s", column_width(v->globals[k].type), out_safe(v->globals[k].type));
	printf("  Status\n");

	printf("%-*s  %-8s  %-20s  %-5s", width, "(store)", "", "", "");
	for (k = 0; k < types; k++) {
		short_thumbprint(v->globals[k].current.thumbprint, tp);
		printf("  %-*s", column_width(v->globals[k].type), out_safe(tp));
	}
	printf("\n");

	for (i = 0; i < v->n_nodes; i++) {
		const custody_node_status *s = &v->nodes[i];

		lag_text(lag_of(cli, s), lag, sizeof(lag));
		printf("%-*s  %-8s  %-20s  %-5s", width, out_safe(s->node), out_safe(s->state),
		       s->last_sync != 0 ? out_time(s->last_sync, t) : "never", lag);
		for (k = 0; k < types; k++) {
			short_thumbprint(held_for(v, s->node, &v->globals[k]), tp);
			printf("  %-*s", column_width(v->globals[k].type), out_safe(tp));
		}
		printf("  %s\n", node_verdict(s));
	}
	for (i = 0; i < v->n_nodes; i++)
		if ((v->nodes[i].differs || v->nodes[i].stale) && v->nodes[i].detail[0] != '\0')
			printf("%s: %s\n", out_safe(v->nodes[i].node),
			       out_safe(v->nodes[i].detail));
	/* Why: what each node's last sync said of a key it could not hold. */
	for (i = 0; i < v->n_reports; i++)
		if (is_problem(v, i))
			printf("%s: %.8s not held: %s\n", out_safe(v->reports[i].node),
			       v->reports[i].thumbprint, out_safe(v->reports[i].detail));
	if (v->n_globals > MAX_TYPES)
		printf("(%zu more types: see -o json)\n", v->n_globals - MAX_TYPES);
	for (i = 0; i < v->n_faults; i++)
		printf("(store) %s/global %s: %s\n", v->faults[i].a->type, v->faults[i].slot,
		       v->faults[i].err.msg);
}

/* EFAIL naming the first record of the store that does not match its
 * certificate, else the nodes that are not in line. */
static int
not_ok_error(struct cli *cli, const struct status_view *v)
{
	char names[768] = "";
	size_t i, bad = 0, len;
	int r;

	if (v->n_faults > 0) {
		const struct store_fault *f = &v->faults[0];
		char more[64] = "";

		if (v->n_faults > 1)
			snprintf(more, sizeof(more), " (and %zu more: see the table)",
				 v->n_faults - 1);
		r = custody_err_set(&cli->err, f->err.code, "%s/global %s: %s%s", f->a->type,
				    f->slot, f->err.msg, more);
		custody_err_hint(&cli->err, "%s", f->err.hint);
		return r;
	}
	for (i = 0; i < v->n_nodes; i++) {
		const custody_node_status *s = &v->nodes[i];

		if (!s->differs && !s->stale)
			continue;
		bad++;
		len = strlen(names);
		snprintf(names + len, sizeof(names) - len, "%s%s (%s)",
			 len > 0 ? ", " : "", s->node, node_verdict(s));
	}
	if (v->n_nodes == 0) {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL,
				    "no node has enrolled in the cluster of this store");
		custody_err_hint(&cli->err, "run `custody kek create` on the first node, "
				 "`custody node enroll` on the others");
	} else if (bad == 0) {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL,
				    "the cluster is not in line with the store");
	} else {
		r = custody_err_set(&cli->err, CUSTODY_EFAIL,
				    "%zu of %zu nodes are not in line with the store: %s",
				    bad, v->n_nodes, names);
		custody_err_hint(&cli->err, "run `custody sync` on them (is custody-sync.service running?)");
	}
	return r;
}

const char cmd_status_usage[] =
	"custody status [-o table|json]\n"
	"\n"
	"One row per node: its state (enrolled, admitted, joined), last sync, lag\n"
	"(now - last report), for every type assigned at global the thumbprint it\n"
	"holds (first 8 hex digits; the row (store) shows what the store assigns),\n"
	"and ok, stale (no report since the last change) or differs (it holds other\n"
	"keys than the store says). -o json: {\"nodes\":[{\"node\",\"state\",\n"
	"\"last_sync\",\"lag_seconds\",\"stale\",\"differs\",\"holds\":{\"TYPE\":\n"
	"\"THUMBPRINT\"},\"problems\":[{\"thumbprint\",\"message\"}]}],\"ok\":BOOL}\n"
	"(problems: the keys its last sync could not make held, and why; the table\n"
	"has a line for each). Opens the token (user PIN) to check the\n"
	"integrity tags of the global assignments and their certificates.\n"
	"A record of a certificate the global assignments name that does not match\n"
	"its certificate (another key id: the store was changed) gets a line under\n"
	"the table (\"store_faults\" in JSON). Exit 1 when there is one, when any\n"
	"node differs or is stale, or no node has enrolled.\n";

int
cmd_status(struct cli *cli, int argc, char **argv)
{
	struct status_view v;
	int r, ok;

	memset(&v, 0, sizeof(v));
	if ((r = cli_parse(cli, argc, argv, NULL, "", NULL, NULL)) != CUSTODY_OK)
		return r;
	if ((r = cli_check_output(cli, 1u << OUT_TABLE | 1u << OUT_JSON)) != CUSTODY_OK)
		return r;
	/* The token checks the integrity tags of what the store says. */
	if ((r = cli_open_store(cli)) != CUSTODY_OK || (r = cli_open_token(cli)) != CUSTODY_OK)
		goto out;
	/* One snapshot: every read agrees, and the integrity tags are read
	 * once for all records (a constant number of queries, however many
	 * nodes report). */
	if ((r = custody_store_snapshot_begin(cli->store, &cli->err)) == CUSTODY_OK)
		r = read_view(cli, &v);
	custody_store_snapshot_end(cli->store);
	if (cli->verbose)
		cli_say(cli, "status: %lu statements to the store",
			custody_store_statements(cli->store));
	if (r != CUSTODY_OK)
		goto out;
	ok = v.all_ok && v.n_nodes > 0 && v.n_faults == 0;
	if (cli->output == OUT_JSON) {
		if ((r = out_json(cli, view_json(cli, &v, ok))) != CUSTODY_OK)
			goto out;
	} else {
		print_table(cli, &v);
	}
	fflush(stdout);
	r = ok ? CUSTODY_OK : not_ok_error(cli, &v);
out:
	view_clear(&v);
	return r;
}
