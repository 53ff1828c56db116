/* cert/types.c — which certificate types a command may name: the known
 * ones and the custom ones custody.conf declares; a typo is refused with
 * the name it was probably meant to be. */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <custody/policy.h>
#include <custody/similar.h>

#define MAX_NAMES 64	/* known types + the declared ones offered as "did you mean" */

/* The nearest of the known and declared types to the mistyped in. */
static const char *
nearest_type(const char *in, const char *const *declared, size_t n_declared)
{
	const char *names[MAX_NAMES];
	const char *const *known = custody_known_types();
	size_t n = 0, i;

	for (i = 0; known[i] != NULL && n < MAX_NAMES; i++)
		names[n++] = known[i];
	for (i = 0; i < n_declared && n < MAX_NAMES; i++)
		names[n++] = declared[i];
	return custody_name_nearest(in, names, n);
}

int
custody_type_resolve(const char *in, const char *const *declared,
		     size_t n_declared, char out[CUSTODY_NAME_MAX + 1],
		     custody_err *err)
{
	const char *meant;
	int known = 0, r;
	size_t i;

	if ((r = custody_type_canonical(in, out, &known, err)) != CUSTODY_OK ||
	    known)
		return r;
	for (i = 0; i < n_declared; i++)
		if (declared[i] != NULL && strcasecmp(out, declared[i]) == 0) {
			snprintf(out, CUSTODY_NAME_MAX + 1, "%s", declared[i]);
			return CUSTODY_OK;
		}
	if ((meant = nearest_type(out, declared, n_declared)) != NULL)
		r = custody_err_set(err, CUSTODY_EUSAGE, "unknown type '%s': "
				    "did you mean %s?", out, meant);
	else
		r = custody_err_set(err, CUSTODY_EUSAGE, "unknown type '%s': "
				    "neither a known type nor a custom type "
				    "custody.conf declares", out);
	custody_err_hint(err, "declare a custom type in custody.conf: "
			 "[types] custom = %s", out);
	out[0] = '\0';
	return r;
}
