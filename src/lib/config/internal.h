/* config/internal.h — what config.c shares with publish.c (the
 * [metadata TYPE] sections and the [agent] http-* keys). */
#ifndef CUSTODY_CONFIG_INTERNAL_H
#define CUSTODY_CONFIG_INTERNAL_H

#include <custody/config.h>

/* "metadata TYPE": the type named by a metadata section ("" when the
 * header names none), else NULL. */
const char *config_metadata_section_type(const char *name);

/* One key of a [metadata TYPE] section (value not empty). */
int config_set_metadata(custody_config *cfg, const char *type, const char *key,
			const char *value, custody_err *err);

/* One http-* key of [agent]; ENOTFOUND (err untouched) when key is not
 * one of them, so that the [agent] section's other keys go elsewhere. */
int config_set_http(custody_config *cfg, const char *key, const char *value,
		    custody_err *err);
#define CONFIG_HTTP_KEYS "http-listen, http-types, http-max-age, " \
	"http-max-connections, http-timeout"

/* Remembers the line of a [metadata TYPE] section's first key. */
void config_note_metadata_line(custody_config *cfg, const char *section, int line);

/* The [metadata] sections of src, copied into dst (a plain array);
 * -1 when out of memory (dst has none then). */
int config_copy_metadata(custody_config *dst, const custody_config *src);

#endif
