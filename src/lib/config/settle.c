/*
 * config/settle.c — where the configuration comes from (file, then
 * environment) and this node's name, for the command, the signer and the
 * OpenSSL engine alike (see custody/config.h).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <custody/config.h>
#include <custody/policy.h>

/* 1 when CUSTODY_AGENT names an agent's socket (not "none"). */
static int
agent_in_env(void)
{
	const char *v = getenv("CUSTODY_AGENT");

	return v != NULL && v[0] != '\0' && strcmp(v, "none") != 0;
}

int
custody_config_settle(custody_config *cfg, const char *given,
		      custody_err *err)
{
	const char *path = custody_config_path(given);
	int r;

	/* A service that signs through the agent (CUSTODY_AGENT) runs as a
	 * user that may not read the host's custody.conf: that file, with
	 * the token's settings, is the agent's.  Unless named with -c, it is
	 * left unread when this user may not read it. */
	if (path != NULL && given == NULL && agent_in_env() &&
	    access(path, R_OK) != 0 && errno == EACCES)
		path = NULL;
	if (path != NULL &&
	    (r = custody_config_load(cfg, path, err)) != CUSTODY_OK)
		return r;
	return custody_config_apply_env(cfg, err);
}

const char *
custody_config_store_url(const custody_config *cfg)
{
	return cfg->store_url != NULL ? cfg->store_url : CUSTODY_DEFAULT_STORE;
}

const char *
custody_config_agent_socket(const custody_config *cfg)
{
	if (cfg == NULL || cfg->agent.socket[0] == '\0' ||
	    strcmp(cfg->agent.socket, "none") == 0)
		return NULL;
	return cfg->agent.socket;
}

int
custody_config_node_name(const char *configured,
			 char out[CUSTODY_NAME_MAX + 1], custody_err *err)
{
	char host[256], *dot;
	int r;

	if (configured != NULL) {
		r = custody_identity_canonical(configured, out, err);
		if (r != CUSTODY_OK)
			custody_err_prefix(err, "node name");
		return r;
	}
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	if ((dot = strchr(host, '.')) != NULL)
		*dot = '\0';
	if (custody_identity_canonical(host, out, NULL) != CUSTODY_OK)
		snprintf(out, CUSTODY_NAME_MAX + 1, "localhost");
	return CUSTODY_OK;
}
