/*
 * launch.c — main() of `custody`.  A process that loads libcrypto cannot
 * start in under ~3.5 ms, and one `custody sign` per signature through
 * the agent must take little more than an empty program; so the program
 * links the C library and a few small libraries only: `custody sign`
 * through an agent is done here (fast_sign.c), and every other command
 * line goes to the full command, the module custody-cli.so, loaded with
 * dlopen() and called in this process (no second exec: the test suites
 * run custody thousands of times).
 *
 * The module is the build tree's when this program runs from one
 * (.libs/custody-cli.so beside it, with that tree's libcustody), else the
 * installed $(pkglibdir)/custody-cli.so.
 */
#include "config.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "launch.h"

#define CLI_MODULE "custody-cli.so"

/* The build tree's libtool output directory beside this program, in dir
 * (size bytes): 1 when it holds the module. */
static int
build_tree_libs(char *dir, size_t size)
{
	char self[PATH_MAX], module[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n <= 0)
		return 0;
	self[n] = '\0';
	if ((slash = strrchr(self, '/')) == NULL)
		return 0;
	*slash = '\0';
	if ((size_t)snprintf(dir, size, "%s/.libs", self) >= size)
		return 0;
	snprintf(module, sizeof(module), "%s/" CLI_MODULE, dir);
	return access(module, R_OK) == 0;
}

/* The full command's module, loaded; NULL after printing why not. */
static void *
load_full_command(void)
{
	char dir[PATH_MAX], path[PATH_MAX + 32];
	void *h;

	if (build_tree_libs(dir, sizeof(dir))) {
		/* The module's own search path is the install's libdir: the
		 * tree's libcustody first, so that its soname is taken. */
		snprintf(path, sizeof(path), "%s/libcustody.so.0", dir);
		if (access(path, R_OK) == 0 &&
		    dlopen(path, RTLD_LAZY | RTLD_GLOBAL) == NULL) {
			fprintf(stderr, "custody: cannot load %s: %s\n", path,
				dlerror());
			return NULL;
		}
		snprintf(path, sizeof(path), "%s/" CLI_MODULE, dir);
	} else {
		snprintf(path, sizeof(path), "%s/" CLI_MODULE,
			 CUSTODY_PKGLIBDIR);
	}
	if ((h = dlopen(path, RTLD_LAZY | RTLD_LOCAL)) == NULL)
		fprintf(stderr, "custody: cannot load the custody command "
			"(%s): %s\n", path, dlerror());
	return h;
}

int
main(int argc, char **argv)
{
	int (*full)(int, char **);
	void *h;
	int status;

	if (fast_sign(argc, argv, &status))
		return status;
	if ((h = load_full_command()) == NULL)
		return 1;
	*(void **)(&full) = dlsym(h, "custody_cli_main");
	if (full == NULL) {
		fprintf(stderr, "custody: the custody command module has no "
			"entry: %s\n", dlerror());
		return 1;
	}
	return full(argc, argv);
}
