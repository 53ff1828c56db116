/* assign/records.c — copies and destructors of the shared records. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <custody/records.h>

static int
dup_string(char **dst, const char *src)
{
	*dst = NULL;
	if (src == NULL)
		return 0;
	*dst = strdup(src);
	return *dst == NULL ? -1 : 0;
}

int
custody_cert_record_copy(custody_cert_record *dst, const custody_cert_record *src)
{
	size_t i;

	memcpy(dst, src, sizeof(*dst));
	dst->subject = dst->issuer = dst->serial = NULL;
	dst->key_uri = dst->label = NULL;
	dst->alt_names = NULL;
	dst->n_alt_names = 0;
	dst->der = NULL;
	dst->der_len = 0;
	if (dup_string(&dst->subject, src->subject) != 0 ||
	    dup_string(&dst->issuer, src->issuer) != 0 ||
	    dup_string(&dst->serial, src->serial) != 0 ||
	    dup_string(&dst->key_uri, src->key_uri) != 0 ||
	    dup_string(&dst->label, src->label) != 0)
		goto fail;
	if (src->n_alt_names > 0) {
		dst->alt_names = calloc(src->n_alt_names, sizeof(char *));
		if (dst->alt_names == NULL)
			goto fail;
		for (i = 0; i < src->n_alt_names; i++) {
			dst->n_alt_names = i + 1;
			if (dup_string(&dst->alt_names[i], src->alt_names[i]) != 0)
				goto fail;
		}
	}
	if (src->der_len > 0) {
		dst->der = malloc(src->der_len);
		if (dst->der == NULL)
			goto fail;
		memcpy(dst->der, src->der, src->der_len);
		dst->der_len = src->der_len;
	}
	return 0;
fail:
	custody_cert_record_clear(dst);
	return -1;
}

void
custody_cert_record_clear(custody_cert_record *rec)
{
	size_t i;

	if (rec == NULL)
		return;
	free(rec->subject);
	free(rec->issuer);
	free(rec->serial);
	for (i = 0; i < rec->n_alt_names; i++)
		free(rec->alt_names[i]);
	free(rec->alt_names);
	free(rec->key_uri);
	free(rec->label);
	free(rec->der);
	memset(rec, 0, sizeof(*rec));
}
