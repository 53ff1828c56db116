/*
 * cluster/global.c — the cluster's rule for a global assignment: on a
 * cluster of several nodes, every node must be able to hold the key, so a
 * key without a package in the store cannot be assigned at global.  Asked
 * by the operations (import, set, request) before they write.  And the
 * gate of a roll: which members still lack the key of a pending
 * certificate (custody_assign_pending_needs says who must hold it).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <custody/assign.h>
#include <custody/cluster.h>
#include <custody/error.h>
#include <custody/records.h>
#include <custody/store.h>

/* How many nodes the store knows, in any state. */
static int
count_nodes(custody_store *st, size_t *n, custody_err *err)
{
	custody_node_record *nodes = NULL;
	int r;

	*n = 0;
	r = custody_store_list_nodes(st, &nodes, n, err);
	custody_node_records_free(nodes, *n);
	return r;
}

int
custody_cluster_check_global(custody_store *st, const char *identity,
			     const char *thumbprint, int will_package,
			     custody_err *err)
{
	custody_package_record pkg;
	size_t n = 0;
	int r;

	memset(&pkg, 0, sizeof(pkg));
	if (identity == NULL || strcasecmp(identity, CUSTODY_SCOPE_GLOBAL) != 0 ||
	    will_package)
		return CUSTODY_OK;
	if ((r = count_nodes(st, &n, err)) != CUSTODY_OK || n <= 1)
		return r;
	r = custody_store_get_package(st, thumbprint, &pkg, err);
	custody_package_record_clear(&pkg);
	if (r != CUSTODY_ENOTFOUND)
		return r;
	r = custody_err_set(err, CUSTODY_EFAIL,
			    "cannot assign %s at global: the cluster has %zu "
			    "nodes and its key is not replicable (no package "
			    "in the store)", thumbprint, n);
	custody_err_hint(err, "import or request it with --replicable on a "
			 "member, or assign it at this node's identity");
	return r;
}

int
custody_cluster_pending_missing(custody_store *st, const custody_assignment *a,
				char *names, size_t size, size_t *n_missing,
				custody_err *err)
{
	custody_node_record *nodes = NULL;
	custody_report_record *reports = NULL;
	size_t n_nodes = 0, n_reports = 0, i, k, used = 0;
	int r, held;

	*n_missing = 0;
	if (size > 0)
		names[0] = '\0';
	if (a->pending.thumbprint[0] == '\0')
		return CUSTODY_OK;
	if ((r = custody_store_list_nodes(st, &nodes, &n_nodes, err)) != CUSTODY_OK ||
	    (r = custody_store_list_reports(st, NULL, &reports, &n_reports, err)) != CUSTODY_OK)
		goto out;
	for (i = 0; i < n_nodes; i++) {
		if (strcmp(nodes[i].state, "joined") != 0 ||
		    !custody_assign_pending_needs(a, nodes[i].name))
			continue;
		for (k = 0, held = 0; k < n_reports && !held; k++)
			held = reports[k].held && strcmp(reports[k].node, nodes[i].name) == 0 &&
			       strcmp(reports[k].thumbprint, a->pending.thumbprint) == 0;
		if (held)
			continue;
		if (used < size)
			used += (size_t)snprintf(names + used, size - used, "%s%s",
						 *n_missing > 0 ? ", " : "", nodes[i].name);
		(*n_missing)++;
	}
out:
	custody_node_records_free(nodes, n_nodes);
	free(reports);
	return r;
}
