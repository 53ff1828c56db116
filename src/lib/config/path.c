/*
 * config/path.c — which configuration file applies (custody/config.h):
 * the C library only, so that the `custody` launcher finds the same file
 * the full command reads.
 */
#include "config.h"

#include <stdlib.h>
#include <unistd.h>

#include <custody/config.h>

const char *
custody_config_path(const char *given)
{
	const char *path = given;

	if (path == NULL)
		path = secure_getenv("CUSTODY_CONFIG");
	if (path == NULL && access(CUSTODY_DEFAULT_CONFIG, F_OK) == 0)
		path = CUSTODY_DEFAULT_CONFIG;
	return path != NULL && path[0] != '\0' ? path : NULL;
}
