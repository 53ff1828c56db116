/* config/agent_keys.h — the [agent] and [allow TYPE] keys, for config.c. */
#ifndef CUSTODY_CONFIG_AGENT_KEYS_H
#define CUSTODY_CONFIG_AGENT_KEYS_H

#include <custody/config.h>

/* "allow TYPE": the type an allow section names ("" for a bare
 * "[allow]"), else NULL. */
const char *config_allow_section_type(const char *section);

int config_set_agent(custody_config *cfg, const char *key, const char *value,
		     custody_err *err);
int config_set_allow(custody_config *cfg, const char *type, const char *key,
		     const char *value, int line, custody_err *err);

#endif
