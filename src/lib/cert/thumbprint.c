/* cert/thumbprint.c — finding a certificate by what a user typed. */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <custody/thumbprint.h>

#define MIN_DIGITS 8
#define MAX_DIGITS CUSTODY_SHA256_HEX
#define MAX_LISTED 10	/* candidates named in the hint of an ambiguity */

/* What a copy from a certificate dialog or a web page puts between or
 * before the digits, invisible on screen (UTF-8): Windows' certificate
 * dialog copies its thumbprint with U+200E in front. */
static const char *const invisible[] = {
	"\xc2\xa0",		/* U+00A0 no-break space */
	"\xe2\x80\x8b",	/* U+200B zero width space */
	"\xe2\x80\x8e",	/* U+200E left-to-right mark */
	"\xe2\x80\x8f",	/* U+200F right-to-left mark */
	"\xe2\x80\xaa",	/* U+202A..U+202E bidirectional embeddings */
	"\xe2\x80\xab",
	"\xe2\x80\xac",
	"\xe2\x80\xad",
	"\xe2\x80\xae",
	"\xe2\x80\xaf",	/* U+202F narrow no-break space */
	"\xe2\x81\xa0",	/* U+2060 word joiner */
	"\xef\xbb\xbf",	/* U+FEFF zero width no-break space (BOM) */
};

/* The length of the separator or invisible mark at p, 0 when there is
 * none. */
static size_t
ignorable(const char *p)
{
	size_t i;

	if (*p == ':' || *p == ' ')
		return 1;
	for (i = 0; i < sizeof(invisible) / sizeof(invisible[0]); i++)
		if (strncmp(p, invisible[i], strlen(invisible[i])) == 0)
			return strlen(invisible[i]);
	return 0;
}

int
custody_thumbprint_normalize(const char *query, char out[65],
			     custody_err *err)
{
	int r = CUSTODY_EFAIL;
	size_t n = 0, skip;
	const char *p;

	out[0] = '\0';
	if (query == NULL) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "invalid thumbprint: none given");
		goto out;
	}
	for (p = query; *p != '\0'; p++) {
		if ((skip = ignorable(p)) > 0) {
			p += skip - 1;
			continue;
		}
		if (!isxdigit((unsigned char)*p)) {
			r = custody_err_set(err, CUSTODY_EUSAGE,
					    "invalid thumbprint '%s': use hex "
					    "digits (':' and spaces are "
					    "ignored)", query);
			goto out;
		}
		if (n == MAX_DIGITS) {
			r = custody_err_set(err, CUSTODY_EUSAGE,
					    "invalid thumbprint '%s': longer "
					    "than %d hex digits", query,
					    MAX_DIGITS);
			goto out;
		}
		out[n++] = (char)toupper((unsigned char)*p);
	}
	out[n] = '\0';
	if (n < MIN_DIGITS) {
		r = custody_err_set(err, CUSTODY_EUSAGE,
				    "invalid thumbprint '%s': give at least "
				    "%d hex digits", query, MIN_DIGITS);
		goto out;
	}
	r = CUSTODY_OK;
out:
	if (r != CUSTODY_OK)
		out[0] = '\0';
	return r;
}

/* Whether the normalized query q is the start (or all) of a candidate's
 * SHA-1 thumbprint or SHA-256 fingerprint. */
static int
names(const custody_cert_record *c, const char *q, size_t qlen)
{
	return (strlen(c->thumbprint) >= qlen &&
		strncasecmp(c->thumbprint, q, qlen) == 0) ||
	       (strlen(c->sha256) >= qlen &&
		strncasecmp(c->sha256, q, qlen) == 0);
}

/* Whether candidate i is the first of the matching candidates with its
 * thumbprint (a certificate listed twice counts once). */
static int
first_of_its_kind(const custody_cert_record *cands, size_t i, const char *q,
		  size_t qlen)
{
	size_t j;

	for (j = 0; j < i; j++)
		if (names(&cands[j], q, qlen) &&
		    strcasecmp(cands[j].thumbprint, cands[i].thumbprint) == 0)
			return 0;
	return 1;
}

/* Appends text to buf (of size) and keeps room for "..." at the end; when
 * text does not fit, cuts it on a UTF-8 character boundary, writes "..."
 * and returns -1. */
static int
append(char *buf, size_t size, const char *text)
{
	size_t len = strlen(buf), add = strlen(text), room;

	if (len + add + 3 < size) {
		memcpy(buf + len, text, add + 1);
		return 0;
	}
	room = size - 1 - 3 - len;	/* callers keep len + 3 < size */
	while (room > 0 && ((unsigned char)text[room] & 0xC0) == 0x80)
		room--;
	memcpy(buf + len, text, room);
	memcpy(buf + len + room, "...", 4);
	return -1;
}

/* The hint of an ambiguity: "THUMBPRINT SUBJECT; ..." for the first
 * MAX_LISTED distinct candidates, cut cleanly to fit. */
static void
list_candidates(char *hint, size_t size, const custody_cert_record *cands,
		size_t n, const char *q, size_t qlen)
{
	size_t i, listed = 0;
	char entry[CUSTODY_THUMBPRINT_HEX + 2];

	hint[0] = '\0';
	for (i = 0; i < n; i++) {
		if (!names(&cands[i], q, qlen) ||
		    !first_of_its_kind(cands, i, q, qlen))
			continue;
		if (listed == MAX_LISTED) {
			append(hint, size, "; ...");
			return;
		}
		if (listed > 0 && append(hint, size, "; ") != 0)
			return;
		snprintf(entry, sizeof(entry), "%s ", cands[i].thumbprint);
		if (append(hint, size, entry) != 0 ||
		    append(hint, size, cands[i].subject != NULL ?
			   cands[i].subject : "(no subject)") != 0)
			return;
		listed++;
	}
}

int
custody_thumbprint_match(const char *query,
			 const custody_cert_record *candidates, size_t n,
			 size_t *index, custody_err *err)
{
	int r = CUSTODY_EFAIL;
	char q[MAX_DIGITS + 1];
	char hint[sizeof(((custody_err *)0)->hint)];
	size_t qlen, i, found = 0, first = 0;

	if ((r = custody_thumbprint_normalize(query, q, err)) != CUSTODY_OK)
		return r;
	qlen = strlen(q);
	for (i = 0; i < n; i++) {
		if (!names(&candidates[i], q, qlen) ||
		    !first_of_its_kind(candidates, i, q, qlen))
			continue;
		if (found++ == 0)
			first = i;
	}
	if (found == 0)
		return custody_err_set(err, CUSTODY_ENOTFOUND,
				       "no certificate with thumbprint %s", q);
	if (found > 1) {
		r = custody_err_set(err, CUSTODY_EFAIL,
				    "thumbprint prefix %s is ambiguous", q);
		list_candidates(hint, sizeof(hint), candidates, n, q, qlen);
		custody_err_hint(err, "%s", hint);
		return r;
	}
	*index = first;
	return CUSTODY_OK;
}
