/*
 * cluster/problem.c — a node that could not sync says why.  When its
 * token cannot be opened or used at all (read-only, gone, its PIN
 * refused), custody_cluster_sync never runs and so reports nothing: the
 * store would only show the node as stale, without the reason the node
 * knows.  Here every key of a global assignment (current and pending, the
 * ones a node must hold) that the node has not reported held gets a
 * report "not held" with that reason, which `custody status` and
 * `custody test` show.  Reports it made held are left alone (the token
 * may still hold those keys), as is the node's last sync (it did not
 * sync), and a report that already says the same is not written again,
 * so that a watcher retrying does not write at every pause.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <custody/assign.h>
#include <custody/cluster.h>
#include <custody/error.h>
#include <custody/records.h>
#include <custody/store.h>

/* The report of node for thumbprint among reps, or NULL. */
static const custody_report_record *
find_report(const custody_report_record *reps, size_t n, const char *thumbprint)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(reps[i].thumbprint, thumbprint) == 0)
			return &reps[i];
	return NULL;
}

/* Reports thumbprint not held with why, unless the node reported it held
 * or already said just that. */
static int
report_unheld(custody_store *st, const char *node, const char *thumbprint,
	      const char *why, int64_t now, const custody_report_record *reps,
	      size_t n_reps, custody_err *err)
{
	const custody_report_record *old = find_report(reps, n_reps, thumbprint);
	custody_report_record rep;

	if (thumbprint[0] == '\0')
		return CUSTODY_OK;
	memset(&rep, 0, sizeof(rep));
	snprintf(rep.detail, sizeof(rep.detail), "%s", why);
	if (old != NULL && (old->held || strcmp(old->detail, rep.detail) == 0))
		return CUSTODY_OK;
	snprintf(rep.node, sizeof(rep.node), "%s", node);
	snprintf(rep.thumbprint, sizeof(rep.thumbprint), "%s", thumbprint);
	rep.time = now;
	return custody_store_put_report(st, &rep, err);
}

int
custody_cluster_report_problem(custody_store *st, const char *node, int64_t now,
			       const char *why, custody_err *err)
{
	custody_assignment *all = NULL, a;
	custody_node_record me;
	custody_report_record *reps = NULL;
	size_t n_all = 0, n_reps = 0, i;
	int r;

	memset(&me, 0, sizeof(me));
	if (st == NULL || node == NULL || node[0] == '\0' || why == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "cannot report a node's problem: no store or node");
	/* One transaction: what it reads is what it judges by. */
	if ((r = custody_store_begin(st, err)) != CUSTODY_OK)
		return r;
	/* Only a member that has joined follows the global assignments: a
	 * store without a cluster, or a node on its way in, gets nothing. */
	if ((r = custody_store_get_node(st, node, &me, err)) != CUSTODY_OK ||
	    strcmp(me.state, "joined") != 0) {
		if (r == CUSTODY_ENOTFOUND) {
			custody_err_clear(err);
			r = CUSTODY_OK;
		}
		goto out;
	}
	if ((r = custody_store_list_assignments(st, &all, &n_all, err)) != CUSTODY_OK ||
	    (r = custody_store_list_reports(st, node, &reps, &n_reps, err)) != CUSTODY_OK)
		goto out;
	for (i = 0; i < n_all && r == CUSTODY_OK; i++) {
		if (strcmp(all[i].identity, CUSTODY_SCOPE_GLOBAL) != 0)
			continue;
		custody_assign_resolve(&all[i], now, &a);
		r = report_unheld(st, node, a.current.thumbprint, why, now, reps, n_reps, err);
		if (r == CUSTODY_OK)
			r = report_unheld(st, node, a.pending.thumbprint, why, now, reps,
					  n_reps, err);
	}
out:
	if (r == CUSTODY_OK)
		r = custody_store_commit(st, err);
	else
		custody_store_rollback(st);
	custody_node_record_clear(&me);
	free(all);
	free(reps);
	return r;
}
