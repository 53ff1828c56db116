/*
 * sign/internal.h — what the files of the sign module share (not
 * installed): keyref.c and signer.c open their token the same way.
 */
#ifndef CUSTODY_SIGN_INTERNAL_H
#define CUSTODY_SIGN_INTERNAL_H

#include <custody/error.h>
#include <custody/token.h>

/* Opens the token of spec and logs in with the user PIN read from
 * pin_source (custody/secret.h; asked for as "User PIN for token
 * LABEL: "), cleansed before it returns.  EUSAGE before anything is
 * opened when spec names no module (with module_hint) or pin_source is
 * NULL (with pin_hint) or no PIN source.  On failure *out is NULL and the
 * token is closed again. */
int sign_token_login(const custody_token_spec *spec, const char *pin_source,
		     const char *module_hint, const char *pin_hint,
		     custody_token **out, custody_err *err);

#endif
