/*
 * config/agent_keys.c — [agent] (the agent's socket, workers, timeouts;
 * a client's socket) and [allow TYPE] (who may use a type through the
 * agent).  Names in allow lists are kept as text: the agent resolves
 * them to ids when it loads the configuration (a name that does not
 * resolve is its error then, not the parser's: the file may be read
 * where those users do not exist).
 */
#include "config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <custody/cert.h>
#include <custody/policy.h>

#include "internal.h"

static const char *const agent_keys = "listen, socket-mode, socket-group, workers, "
				      "frame-timeout, idle-timeout, max-connections, socket";

static int
copy_text(char *slot, size_t size, const char *key, const char *value,
	  custody_err *err)
{
	size_t len = strlen(value);

	if (len >= size)
		return custody_err_set(err, CUSTODY_EUSAGE, "%s is too long: at "
				       "most %zu characters", key, size - 1);
	memcpy(slot, value, len + 1);
	return CUSTODY_OK;
}

/* A whole number in [min, max]. */
static int
parse_count(const char *key, const char *value, long min, long max, int *out,
	    custody_err *err)
{
	char *end = NULL;
	long v = strtol(value, &end, 10);

	if (end == value || *end != '\0' || v < min || v > max)
		return custody_err_set(err, CUSTODY_EUSAGE, "invalid %s '%s': a "
				       "whole number from %ld to %ld", key,
				       value, min, max);
	*out = (int)v;
	return CUSTODY_OK;
}

static int
parse_seconds(const char *key, const char *value, int64_t *out,
	      custody_err *err)
{
	int64_t v = 0;

	if (custody_policy_parse_duration(value, &v) != 0 || v < 1 ||
	    v > 86400)
		return custody_err_set(err, CUSTODY_EUSAGE, "invalid %s '%s': a "
				       "duration from 1s to 24h (5s, 10m, "
				       "300)", key, value);
	*out = v;
	return CUSTODY_OK;
}

static int
parse_mode(const char *value, int *out, custody_err *err)
{
	char *end = NULL;
	long v = strtol(value, &end, 8);

	if (end == value || *end != '\0' || v < 0 || v > 0777 ||
	    (v & 0600) != 0600)
		return custody_err_set(err, CUSTODY_EUSAGE, "invalid socket-mode "
				       "'%s': octal permissions such as 0660 "
				       "(the owner keeps read and write)", value);
	*out = (int)v;
	return CUSTODY_OK;
}

static int
parse_path(char *slot, const char *key, const char *value, custody_err *err)
{
	if (value[0] != '/' && strcmp(key, "socket") != 0)
		return custody_err_set(err, CUSTODY_EUSAGE, "invalid %s '%s': an "
				       "absolute path", key, value);
	return copy_text(slot, CUSTODY_AGENT_PATH_MAX, key, value, err);
}

int
config_set_agent(custody_config *cfg, const char *key, const char *value,
		 custody_err *err)
{
	custody_agent_settings *a = &cfg->agent;

	a->configured = 1;
	if (strcmp(key, "listen") == 0)
		return parse_path(a->listen, key, value, err);
	if (strcmp(key, "socket") == 0)
		return parse_path(a->socket, key, value, err);
	if (strcmp(key, "socket-mode") == 0)
		return parse_mode(value, &a->socket_mode, err);
	if (strcmp(key, "socket-group") == 0)
		return copy_text(a->socket_group, sizeof(a->socket_group), key,
				 value, err);
	if (strcmp(key, "workers") == 0)
		return parse_count(key, value, 1, 64, &a->workers, err);
	if (strcmp(key, "max-connections") == 0)
		return parse_count(key, value, 1, 65536, &a->max_connections, err);
	if (strcmp(key, "frame-timeout") == 0)
		return parse_seconds(key, value, &a->frame_timeout, err);
	if (strcmp(key, "idle-timeout") == 0)
		return parse_seconds(key, value, &a->idle_timeout, err);
	custody_err_set(err, CUSTODY_EUSAGE, "unknown key '%s' in section [agent]", key);
	custody_err_hint(err, "keys of [agent]: %s, %s", agent_keys, CONFIG_HTTP_KEYS);
	return CUSTODY_EUSAGE;
}

const custody_allow_policy *
custody_config_allow(const custody_config *cfg, const char *type)
{
	return cfg == NULL ? NULL : config_section_find(cfg->allow, cfg->n_allow,
						       sizeof(*cfg->allow), type);
}

/* The policy of an [allow TYPE] header, made empty on first use. */
static int
allow_slot(custody_config *cfg, const char *given, custody_allow_policy **out,
	   custody_err *err)
{
	const struct config_sections kind = {"allow", &cfg->allow, &cfg->n_allow,
					     CUSTODY_ALLOW_MAX, sizeof(*cfg->allow)};
	void *entry;
	int made, r;

	r = config_section_slot(&kind, given, &entry, &made, err);
	*out = entry;
	return r;
}

int
config_set_allow(custody_config *cfg, const char *type, const char *key,
		 const char *value, int line, custody_err *err)
{
	custody_allow_policy *p = NULL;
	int r;

	if (type[0] == '\0')
		return custody_err_set(err, CUSTODY_EUSAGE, "[allow] names its type: "
				       "[allow TYPE]");
	if (strcmp(key, "users") != 0 && strcmp(key, "groups") != 0) {
		custody_err_set(err, CUSTODY_EUSAGE, "unknown key '%s' in section "
				"[allow TYPE]", key);
		custody_err_hint(err, "keys of [allow TYPE]: users, groups");
		return CUSTODY_EUSAGE;
	}
	if ((r = allow_slot(cfg, type, &p, err)) != CUSTODY_OK)
		return r;
	if (p->line == 0)
		p->line = line;
	return copy_text(key[0] == 'u' ? p->users : p->groups, CUSTODY_ALLOW_TEXT,
			 key, value, err);
}

