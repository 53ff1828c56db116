/*
 * cluster/global.c — the cluster's rule for a global assignment: on a
 * cluster of several nodes, every node must be able to hold the key, so a
 * key without a package in the store cannot be assigned at global.  Asked
 * by the operations (import, set, request) before they write.
 */
#include "config.h"

#include <string.h>
#include <strings.h>

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
