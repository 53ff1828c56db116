/*
 * config/sections.c — the sections that name a type ([rollover TYPE],
 * [metadata TYPE], [allow TYPE]): their headers, and the array of
 * entries, one per type, each beginning with its canonical type name,
 * that a configuration keeps of each kind.
 */
#include "config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <custody/cert.h>

#include "internal.h"

_Static_assert(offsetof(custody_rollover_policy, type) == 0, "a section's type comes first");
_Static_assert(offsetof(custody_metadata_conf, type) == 0, "a section's type comes first");
_Static_assert(offsetof(custody_allow_policy, type) == 0, "a section's type comes first");

const char *
config_section_type(const char *name, const char *word)
{
	size_t n = strlen(word);

	if (strncmp(name, word, n) != 0)
		return NULL;
	if (name[n] == '\0')
		return name + n;
	if (name[n] != ' ' && name[n] != '\t')
		return NULL;
	name += n;
	while (*name == ' ' || *name == '\t')
		name++;
	return name;
}

const void *
config_section_find(const void *array, size_t n, size_t size, const char *type)
{
	const char *entry = array;
	size_t i;

	for (i = 0; i < n; i++, entry += size)
		if (strcmp(entry, type) == 0)
			return entry;
	return NULL;
}

int
config_section_slot(const struct config_sections *kind, const char *given, void **out,
		    int *made, custody_err *err)
{
	char type[CUSTODY_NAME_MAX + 1];
	void *array, *grown;

	*made = 0;
	if (custody_type_canonical(given, type, NULL, err) != CUSTODY_OK)
		return custody_err_prefix(err, "[%s %s]", kind->word, given);
	/* The array field is a pointer to the entries' own type: read and
	 * written as bytes, not through a void ** to it. */
	memcpy(&array, kind->array, sizeof(array));
	if ((*out = (void *)config_section_find(array, *kind->n, kind->size, type)) != NULL)
		return CUSTODY_OK;
	if (*kind->n == kind->max)
		return custody_err_set(err, CUSTODY_EUSAGE, "more than %zu [%s] sections",
				       kind->max, kind->word);
	if ((grown = realloc(array, (*kind->n + 1) * kind->size)) == NULL)
		return custody_err_set(err, CUSTODY_EFAIL, "cannot set configuration: out of "
				       "memory");
	memcpy(kind->array, &grown, sizeof(grown));
	*out = (char *)grown + *kind->n * kind->size;
	(*kind->n)++;
	memset(*out, 0, kind->size);
	memcpy(*out, type, sizeof(type));
	*made = 1;
	return CUSTODY_OK;
}
