/* cert/typename.c — the names of types and identities: the known types
 * and the canonical spelling of a name (see custody/policy.h).  The C
 * library only, so that the fast `custody sign` checks a name as the full
 * program does. */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <custody/policy.h>

#include "cert/name_text.h"

static const char *const known_types[] = {
	"Default",
	"WebServicesInternal",
	"WebServicesExternal",
	OAUTH_TYPE,
	"AudioVideoAuthentication",
	"XmppServer",
	"Internal",
	"External",
	"AccessEdgeExternal",
	"DataEdgeExternal",
	NULL,
};

const char *const *
custody_known_types(void)
{
	return known_types;
}

/* The canonical spelling of a known type, or NULL. */
static const char *
known_type(const char *name)
{
	size_t i;

	for (i = 0; known_types[i] != NULL; i++)
		if (strcasecmp(name, known_types[i]) == 0)
			return known_types[i];
	return NULL;
}

/* first: the set of the first character's test; rest: of the others. */
static int
valid_name(const char *s, int (*first)(int), const char *punct)
{
	size_t i;

	if (s[0] == '\0' || !first((unsigned char)s[0]))
		return 0;
	for (i = 1; s[i] != '\0'; i++) {
		int c = (unsigned char)s[i];

		if (i >= CUSTODY_NAME_MAX)
			return 0;
		if (!is_alpha(c) && !is_digit(c) && strchr(punct, c) == NULL)
			return 0;
	}
	return 1;
}

static int
is_alnum(int c)
{
	return is_alpha(c) || is_digit(c);
}

int
custody_type_canonical(const char *in, char out[CUSTODY_NAME_MAX + 1],
		       int *known, custody_err *err)
{
	const char *canon;
	char text[84];
	int r;

	out[0] = '\0';
	if (known != NULL)
		*known = 0;
	if (in == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "invalid type name: none given");
	if ((canon = known_type(in)) != NULL) {
		if (known != NULL)
			*known = 1;
		in = canon;
	} else if (!valid_name(in, is_alpha, "_-")) {
		shown(in, text);
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "invalid type name '%s': a type is a known "
				    "type or a custom name of at most %d letters, "
				    "digits, '_' and '-' that starts with a "
				    "letter", text, CUSTODY_NAME_MAX);
		custody_err_hint(err, "known types: Default, "
				 "WebServicesInternal, WebServicesExternal, "
				 "OAuthTokenIssuer, AudioVideoAuthentication, "
				 "XmppServer, Internal, External, "
				 "AccessEdgeExternal, DataEdgeExternal");
		return r;
	}
	snprintf(out, CUSTODY_NAME_MAX + 1, "%s", in);
	return CUSTODY_OK;
}

int
custody_identity_canonical(const char *in, char out[CUSTODY_NAME_MAX + 1],
			   custody_err *err)
{
	char text[84];

	out[0] = '\0';
	if (in == NULL)
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "invalid identity: none given");
	if (strcasecmp(in, CUSTODY_SCOPE_GLOBAL) == 0) {
		in = CUSTODY_SCOPE_GLOBAL;
	} else if (!valid_name(in, is_alnum, "._-")) {
		shown(in, text);
		return custody_err_set(err, CUSTODY_EUSAGE,
				       "invalid identity '%s': an identity is "
				       "'global' or a node name of at most %d "
				       "letters, digits, '.', '_' and '-' that "
				       "starts with a letter or digit", text,
				       CUSTODY_NAME_MAX);
	}
	snprintf(out, CUSTODY_NAME_MAX + 1, "%s", in);
	return CUSTODY_OK;
}

