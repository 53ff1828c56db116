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

#include "agent_keys.h"
#include "config/internal.h"

static const char *const agent_keys = "listen, socket-mode, socket-group, workers, "
				      "frame-timeout, idle-timeout, max-connections, socket";

const char *
config_allow_section_type(const char *name)
{
	if (strncmp(name, "allow", 5) != 0)
		return NULL;
	if (name[5] == '\0')
		return name + 5;
	if (name[5] != ' ' && name[5] != '\t')
		return NULL;
	name += 5;
	while (*name == ' ' || *name == '\t')
		name++;
	return name;
}

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
	size_t i;

	for (i = 0; cfg != NULL && i < cfg->n_allow; i++)
		if (strcmp(cfg->allow[i].type, type) == 0)
			return &cfg->allow[i];
	return NULL;
}

/* The policy of an [allow TYPE] header, made empty on first use. */
static int
allow_slot(custody_config *cfg, const char *given, custody_allow_policy **out,
	   custody_err *err)
{
	char type[CUSTODY_NAME_MAX + 1];
	custody_allow_policy *grown;

	if (custody_type_canonical(given, type, NULL, err) != CUSTODY_OK)
		return custody_err_prefix(err, "[allow %s]", given);
	if ((*out = (custody_allow_policy *)custody_config_allow(cfg, type)) != NULL)
		return CUSTODY_OK;
	if (cfg->n_allow == CUSTODY_ALLOW_MAX)
		return custody_err_set(err, CUSTODY_EUSAGE, "more than %d [allow] "
				       "sections", CUSTODY_ALLOW_MAX);
	if ((grown = realloc(cfg->allow, (cfg->n_allow + 1) * sizeof(*grown))) == NULL)
		return custody_err_set(err, CUSTODY_EFAIL, "cannot set configuration: "
				       "out of memory");
	cfg->allow = grown;
	*out = &grown[cfg->n_allow++];
	memset(*out, 0, sizeof(**out));
	memcpy((*out)->type, type, sizeof(type));
	return CUSTODY_OK;
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

int
config_copy_allow(custody_config *dst, const custody_config *src, custody_err *err)
{
	dst->allow = NULL;
	dst->n_allow = 0;
	if (src->n_allow == 0)
		return CUSTODY_OK;
	/* plain values: a copy of the array is a deep copy */
	if ((dst->allow = malloc(src->n_allow * sizeof(*dst->allow))) == NULL)
		return custody_err_set(err, CUSTODY_EFAIL, "cannot copy configuration: "
				       "out of memory");
	memcpy(dst->allow, src->allow, src->n_allow * sizeof(*dst->allow));
	dst->n_allow = src->n_allow;
	return CUSTODY_OK;
}
