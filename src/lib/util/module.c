/* util/module.c — loading custody's own modules (util/module.h). */
#include "config.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <custody/error.h>

#include "util/module.h"

/* dlerror()'s reason without the path it starts with. */
static const char *
dl_reason(const char *path)
{
	const char *e = dlerror();
	size_t len = strlen(path);

	if (e == NULL)
		return "unknown error";
	if (strncmp(e, path, len) == 0 && e[len] == ':' && e[len + 1] == ' ')
		return e + len + 2;
	return e;
}

int
custody_module_symbol(const char *file, const char *symbol, const char *what,
		      const void **out, custody_err *err)
{
	const char *dir = secure_getenv("CUSTODY_MODULE_DIR");
	char path[PATH_MAX];
	void *module;
	int n;

	*out = NULL;
	if (dir == NULL || dir[0] == '\0')
		dir = CUSTODY_PKGLIBDIR;
	n = snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (n < 0 || (size_t)n >= sizeof(path))
		return custody_err_set(err, CUSTODY_EFAIL, "%s is not installed: "
				       "%s/%s: path too long", what, dir, file);
	if ((module = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		custody_err_set(err, CUSTODY_EFAIL, "%s is not installed: %s: %s",
				what, path, dl_reason(path));
		custody_err_hint(err, "install custody's %s in %s, or set "
				 "CUSTODY_MODULE_DIR to the directory that holds "
				 "it", file, CUSTODY_PKGLIBDIR);
		return CUSTODY_EFAIL;
	}
	dlerror();
	if ((*out = dlsym(module, symbol)) == NULL) {
		custody_err_set(err, CUSTODY_EFAIL, "%s is not usable: %s: %s", what,
				path, dl_reason(path));
		dlclose(module);
		return CUSTODY_EFAIL;
	}
	return CUSTODY_OK;	/* stays loaded: what *out points to is in use */
}
