/*
 * fuzz_thumbprint.c — custody_thumbprint_normalize and
 * custody_thumbprint_match, what a user types to name a certificate.
 *
 * Input: the query on the first line; each further line (at most
 * N_SUBJECTS) becomes the subject of one candidate, as certificates from
 * outside bring their own subjects into the ambiguity hint.  Twelve
 * candidates share the prefix 0123456789ABCDEF (more than the hint lists),
 * one is listed twice, and the default subjects are long UTF-8 text so
 * that the hint is cut.
 */
#include "config.h"

#include <ctype.h>
#include <strings.h>

#include <custody/thumbprint.h>

#include "fuzz_common.h"

#define N_CANDIDATES 15
#define N_SUBJECTS 6

static custody_cert_record cands[N_CANDIDATES];
static char default_subject[400];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	size_t i, len = 0;

	(void)argc;
	(void)argv;
	/* "CN=Zoë Ünïcødé, ..." long enough to overflow the hint. */
	len += (size_t)snprintf(default_subject, sizeof(default_subject),
				"CN=Zo\xc3\xab \xc3\x9c" "n\xc3\xaf" "c\xc3\xb8"
				"d\xc3\xa9");
	while (len + 12 < sizeof(default_subject))
		len += (size_t)snprintf(default_subject + len,
					sizeof(default_subject) - len,
					",O=\xe2\x82\xac\xf0\x9f\x94\x91");
	for (i = 0; i < N_CANDIDATES; i++) {
		if (i < 12) {
			snprintf(cands[i].thumbprint, sizeof(cands[i].thumbprint),
				 "0123456789ABCDEF%024zX", i * 0x1111);
			snprintf(cands[i].sha256, sizeof(cands[i].sha256),
				 "FEDCBA98%056zX", i * 0x3333);
		} else if (i == 12) {
			/* The same certificate as the first, listed again. */
			memcpy(cands[i].thumbprint, cands[0].thumbprint,
			       sizeof(cands[i].thumbprint));
			memcpy(cands[i].sha256, cands[0].sha256,
			       sizeof(cands[i].sha256));
		} else {
			snprintf(cands[i].thumbprint, sizeof(cands[i].thumbprint),
				 "A1B2C3D4E5F6%028zX", i);
			snprintf(cands[i].sha256, sizeof(cands[i].sha256),
				 "0123456789AB%052zX", i);
		}
		cands[i].subject = i == 14 ? NULL : default_subject;
	}
	return 0;
}

static int
valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	int more;

	while (*p != '\0') {
		if (*p < 0x80)
			more = 0;
		else if (*p >= 0xc2 && *p <= 0xdf)
			more = 1;
		else if (*p >= 0xe0 && *p <= 0xef)
			more = 2;
		else if (*p >= 0xf0 && *p <= 0xf4)
			more = 3;
		else
			return 0;
		for (p++; more > 0; more--, p++)
			if ((*p & 0xc0) != 0x80)
				return 0;
	}
	return 1;
}

static int
names(const custody_cert_record *c, const char *q)
{
	size_t n = strlen(q);

	return strncasecmp(c->thumbprint, q, n) == 0 ||
	       strncasecmp(c->sha256, q, n) == 0;
}

/* The invisible marks a pasted thumbprint may carry, by code point (the
 * model's own list, decoded here: not the library's table of bytes). */
static int
invisible(unsigned long cp)
{
	return cp == 0xA0 || cp == 0x200B || cp == 0x200E || cp == 0x200F ||
	       (cp >= 0x202A && cp <= 0x202F) || cp == 0x2060 || cp == 0xFEFF;
}

/* The length of the well-formed UTF-8 sequence at p when it encodes an
 * invisible mark, else 0. */
static size_t
invisible_at(const unsigned char *p)
{
	unsigned long cp;
	size_t n, i;

	if ((p[0] & 0xe0) == 0xc0)
		n = 2, cp = p[0] & 0x1f;
	else if ((p[0] & 0xf0) == 0xe0)
		n = 3, cp = p[0] & 0x0f;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	return invisible(cp) ? n : 0;
}

static void
check_normalize(const char *query)
{
	char out[65];
	custody_err err;
	size_t digits = 0, others = 0, i, mark;
	const char *p;

	custody_err_clear(&err);
	for (p = query; *p != '\0'; p++) {
		if ((mark = invisible_at((const unsigned char *)p)) > 0)
			p += mark - 1;
		else if (isxdigit((unsigned char)*p))
			digits++;
		else if (*p != ':' && *p != ' ')
			others++;
	}
	if (custody_thumbprint_normalize(query, out, &err) != CUSTODY_OK) {
		FUZZ_EXPECT(fuzz_err_is(&err, CUSTODY_EUSAGE, CUSTODY_EUSAGE));
		FUZZ_EXPECT(out[0] == '\0');
		FUZZ_EXPECT(others > 0 || digits < 8 || digits > 64);
		return;
	}
	FUZZ_EXPECT(others == 0 && digits >= 8 && digits <= 64);
	FUZZ_EXPECT(strlen(out) == digits);
	for (i = 0; out[i] != '\0'; i++)
		FUZZ_EXPECT(isxdigit((unsigned char)out[i]) &&
			    !islower((unsigned char)out[i]));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_string(data, size), *line, *next;
	char q[65];
	custody_cert_record local[N_CANDIDATES];
	custody_err err;
	size_t i, index = N_CANDIDATES, k;
	int r, utf8 = 1;

	memcpy(local, cands, sizeof(local));
	line = strchr(text, '\n');
	if (line != NULL)
		*line++ = '\0';
	for (k = 0; line != NULL && k < N_SUBJECTS; k++, line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		local[k].subject = line;
	}
	for (i = 0; i < N_CANDIDATES; i++)
		if (local[i].subject != NULL && !valid_utf8(local[i].subject))
			utf8 = 0;
	check_normalize(text);
	custody_err_clear(&err);
	r = custody_thumbprint_match(text, local, N_CANDIDATES, &index, &err);
	fuzz_note("custody_thumbprint_match", r, &err);
	if (r == CUSTODY_OK) {
		FUZZ_EXPECT(index < N_CANDIDATES);
		FUZZ_EXPECT(custody_thumbprint_normalize(text, q, NULL) ==
			    CUSTODY_OK);
		FUZZ_EXPECT(names(&local[index], q));
	} else if (r == CUSTODY_ENOTFOUND) {
		FUZZ_EXPECT(fuzz_err_is(&err, r, r));
		FUZZ_EXPECT(custody_thumbprint_normalize(text, q, NULL) ==
			    CUSTODY_OK);
		for (i = 0; i < N_CANDIDATES; i++)
			FUZZ_EXPECT(!names(&local[i], q));
	} else if (r == CUSTODY_EFAIL) {
		FUZZ_EXPECT(fuzz_err_is(&err, r, r));
		FUZZ_EXPECT(strstr(err.msg, "is ambiguous") != NULL);
		FUZZ_EXPECT(err.hint[0] != '\0');
		FUZZ_EXPECT(!utf8 || valid_utf8(err.hint));
	} else {
		FUZZ_EXPECT(fuzz_err_is(&err, CUSTODY_EUSAGE, CUSTODY_EUSAGE));
	}
	free(text);
	return 0;
}
