/*
 * util/module.h — custody's own loadable modules (the PostgreSQL store,
 * the agent's metadata server): libraries that bring what most custody
 * processes never need (libpq, libmicrohttpd and GnuTLS), so that only
 * the process that uses one pays for loading it.
 */
#ifndef CUSTODY_UTIL_MODULE_H
#define CUSTODY_UTIL_MODULE_H

#include <custody/error.h>

/*
 * The address of symbol in the module file: from the directory
 * $CUSTODY_MODULE_DIR (the tests: a build's .libs; ignored for setuid
 * programs), else CUSTODY_PKGLIBDIR.  The module stays loaded for the
 * life of the process.  what names it in errors: EFAIL "WHAT is not
 * installed: PATH: WHY" (with a hint: where it goes, CUSTODY_MODULE_DIR)
 * or "WHAT is not usable: PATH: WHY" when the symbol is missing.
 */
int custody_module_symbol(const char *file, const char *symbol,
			  const char *what, const void **out, custody_err *err);

#endif
