/*
 * assign/lookup.c — which assignment applies on this node: its own when
 * the type is assigned there, else the global one (see custody/assign.h).
 * The reading is the caller's; this file only decides.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <custody/assign.h>
#include <custody/error.h>

/* ENOTFOUND naming (type, identity). */
static int
not_assigned(const char *type, const char *identity, custody_err *err)
{
	return custody_err_set(err, CUSTODY_ENOTFOUND,
			       "no certificate is assigned for type %s "
			       "(identity %s)", type, identity);
}

int
custody_assign_lookup(const char *type, const char *identity,
		      const char *node, custody_assign_reader read,
		      void *source, custody_assignment *out, custody_err *err)
{
	const char *looked_at[2];
	size_t n = 0, i;
	int r = CUSTODY_ENOTFOUND;

	if (identity != NULL && identity[0] != '\0') {
		looked_at[n++] = identity;
	} else {
		if (node != NULL && node[0] != '\0' &&
		    strcmp(node, CUSTODY_SCOPE_GLOBAL) != 0)
			looked_at[n++] = node;
		looked_at[n++] = CUSTODY_SCOPE_GLOBAL;
	}
	for (i = 0; i < n && r == CUSTODY_ENOTFOUND; i++)
		r = read(source, type, looked_at[i], out, err);
	if (r == CUSTODY_ENOTFOUND) {
		memset(out, 0, sizeof(*out));
		snprintf(out->type, sizeof(out->type), "%s", type);
		snprintf(out->identity, sizeof(out->identity), "%s",
			 looked_at[n - 1]);
		r = not_assigned(type, looked_at[n - 1], err);
	}
	return r;
}

int
custody_assign_current_at(const custody_assignment *stored, int64_t now,
			  custody_assignment *out, custody_err *err)
{
	custody_assign_resolve(stored, now, out);
	if (out->current.thumbprint[0] != '\0')
		return CUSTODY_OK;
	return not_assigned(out->type, out->identity, err);
}

int
custody_node_name_valid(const char *name)
{
	size_t len = name != NULL ? strnlen(name, CUSTODY_NAME_MAX + 1) : 0;
	size_t i;

	if (len == 0 || len > CUSTODY_NAME_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}
