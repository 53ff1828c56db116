/* cert/name_text.h — what the modules that check names share: the
 * character classes of names, and a copy of a name fit to echo in a
 * message (private to the library). */
#ifndef CUSTODY_CERT_NAME_TEXT_H
#define CUSTODY_CERT_NAME_TEXT_H

#include <string.h>

#define OAUTH_TYPE "OAuthTokenIssuer"

/* A copy of s fit to echo in a message: printable ASCII, at most 80. */
static inline void
shown(const char *s, char out[84])
{
	size_t i;

	for (i = 0; s[i] != '\0' && i < 80; i++)
		out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	if (s[i] != '\0') {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
}

static inline int
is_alpha(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static inline int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

#endif
