/* config/internal.h — what the files of config/ share: config.c reads
 * the file and hands each section's keys to the file that knows them
 * (publish.c: [metadata TYPE] and the [agent] http-* keys; agent_keys.c:
 * [agent] and [allow TYPE]); sections.c keeps the sections that name a
 * type. */
#ifndef CUSTODY_CONFIG_INTERNAL_H
#define CUSTODY_CONFIG_INTERNAL_H

#include <stddef.h>

#include <custody/config.h>

/* ------------------------------------------------ sections of a type */

/* "WORD TYPE": the type a section of that kind names ("" when the header
 * names none), else NULL. */
const char *config_section_type(const char *name, const char *word);

/* One kind of such section in a configuration: its array of entries
 * (the address of the config's pointer to them), their count and most,
 * an entry's size.  Every entry begins with its canonical type name. */
struct config_sections {
	const char *word;	/* "rollover", "metadata", "allow" */
	void *array;		/* e.g. &cfg->rollover */
	size_t *n;
	size_t max;
	size_t size;
};

/* The entry of type among the n entries of size bytes at array, or NULL. */
const void *config_section_find(const void *array, size_t n, size_t size,
				const char *type);

/* The entry of the type a header names (given: as written), made zeroed
 * with its canonical type on first use (*made = 1). */
int config_section_slot(const struct config_sections *kind, const char *given,
			void **out, int *made, custody_err *err);

/* ------------------------------------------------ [metadata TYPE], http-* */

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

/* ------------------------------------------------ [agent], [allow TYPE] */

int config_set_agent(custody_config *cfg, const char *key, const char *value,
		     custody_err *err);
int config_set_allow(custody_config *cfg, const char *type, const char *key,
		     const char *value, int line, custody_err *err);

#endif
