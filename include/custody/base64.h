/*
 * custody/base64.h — base64 (RFC 4648 §4, padded) and base64url (§5,
 * unpadded) of byte strings, strict both ways: one byte string has one
 * text, and a text that is not the one text of its bytes is refused.
 * What these return is malloc'ed and belongs to the caller.
 */
#ifndef CUSTODY_BASE64_H
#define CUSTODY_BASE64_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum custody_base64_alphabet {
	CUSTODY_BASE64,		/* A-Z a-z 0-9 + /, padded with '=' to 4k  */
	CUSTODY_BASE64URL,	/* A-Z a-z 0-9 - _, no padding             */
};

/* The text of len bytes, NUL-terminated, on one line; NULL when out of
 * memory. */
char *custody_base64_encode(const unsigned char *in, size_t len,
			    enum custody_base64_alphabet alphabet);

/*
 * Decodes exactly len characters.  Refused: a character outside the
 * alphabet (whitespace too); for CUSTODY_BASE64 a length that is not a
 * multiple of 4, or '=' anywhere but as the last one or two characters;
 * for CUSTODY_BASE64URL any '=' or a length of 4k+1; and non-zero unused
 * bits in the last character.  *out is malloc'ed (at least one byte, even
 * for len 0).  Returns 0, or -1 on bad input or no memory, with the
 * reason in why (why_size bytes; why may be NULL).
 */
int custody_base64_decode(const char *in, size_t len,
			  enum custody_base64_alphabet alphabet,
			  unsigned char **out, size_t *out_len, char *why,
			  size_t why_size);

/* custody_base64_encode / decode with CUSTODY_BASE64URL, without the
 * reason (JWS, custody/jws.h). */
char *custody_base64url_encode(const unsigned char *in, size_t len);
int custody_base64url_decode(const char *in, size_t len, unsigned char **out,
			     size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif
