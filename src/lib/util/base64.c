/* util/base64.c — base64 and base64url, strict both ways (custody/base64.h). */
#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <custody/base64.h>
#include <custody/error.h>

static const char alphabet_std[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char alphabet_url[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static const char *
letters(enum custody_base64_alphabet alphabet)
{
	return alphabet == CUSTODY_BASE64URL ? alphabet_url : alphabet_std;
}

/* The 6-bit value of c in the alphabet, or -1. */
static int
value_of(unsigned char c, enum custody_base64_alphabet alphabet)
{
	const char *abc = letters(alphabet);
	const char *at = memchr(abc, c, 64);

	return at != NULL ? (int)(at - abc) : -1;
}

char *
custody_base64_encode(const unsigned char *in, size_t len,
		      enum custody_base64_alphabet alphabet)
{
	int pad = alphabet == CUSTODY_BASE64;
	const char *abc = letters(alphabet);
	size_t i, n, o = 0;
	uint32_t v;
	char *out;

	if (len > (SIZE_MAX - 5) / 4 * 3 ||
	    (out = malloc((len + 2) / 3 * 4 + 1)) == NULL)
		return NULL;
	for (i = 0; i < len; i += 3) {
		n = len - i < 3 ? len - i : 3;	/* bytes of this group */
		v = (uint32_t)in[i] << 16;
		if (n > 1)
			v |= (uint32_t)in[i + 1] << 8;
		if (n > 2)
			v |= in[i + 2];
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
		if (n > 1 || pad)
			out[o++] = n > 1 ? abc[v >> 6 & 63] : '=';
		if (n > 2 || pad)
			out[o++] = n > 2 ? abc[v & 63] : '=';
	}
	out[o] = '\0';
	return out;
}

/* Writes why (when asked) and returns -1. */
static int CUSTODY_PRINTF(3, 4)
refuse(char *why, size_t why_size, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && why_size > 0) {
		va_start(ap, fmt);
		vsnprintf(why, why_size, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Checks every character and the length; *body = the characters that
 * carry bits (len less the padding). */
static int
check_text(const char *in, size_t len, enum custody_base64_alphabet alphabet,
	   size_t *body, char *why, size_t why_size)
{
	int url = alphabet == CUSTODY_BASE64URL;
	const char *name = url ? "base64url" : "base64";
	size_t pad = 0, i;

	while (!url && pad < 2 && pad < len && in[len - 1 - pad] == '=')
		pad++;
	for (i = 0; i < len - pad; i++) {
		unsigned char c = (unsigned char)in[i];

		if (value_of(c, alphabet) >= 0)
			continue;
		if (c == '=' && url)
			return refuse(why, why_size,
				      "'=' padding is not allowed");
		if (c == '=')
			return refuse(why, why_size, "'=' at offset %zu is not "
				      "padding at the end", i);
		if (c > 0x20 && c < 0x7f)
			return refuse(why, why_size, "character '%c' at offset "
				      "%zu is not %s", c, i, name);
		return refuse(why, why_size, "byte 0x%02x at offset %zu is "
			      "not %s", c, i, name);
	}
	if (url && len % 4 == 1)
		return refuse(why, why_size, "a length of %zu characters "
			      "cannot be base64url", len);
	if (!url && len % 4 != 0)
		return refuse(why, why_size, "a length of %zu characters is "
			      "not a multiple of 4", len);
	*body = len - pad;
	return 0;
}

int
custody_base64_decode(const char *in, size_t len,
		      enum custody_base64_alphabet alphabet,
		      unsigned char **out, size_t *out_len, char *why,
		      size_t why_size)
{
	unsigned char *buf;
	size_t body = 0, room, i, o = 0;
	uint32_t acc = 0;
	int bits = 0;

	*out = NULL;
	*out_len = 0;
	if (check_text(in, len, alphabet, &body, why, why_size) != 0)
		return -1;
	room = body / 4 * 3 + 3;
	if ((buf = malloc(room)) == NULL)
		return refuse(why, why_size, "out of memory");
	for (i = 0; i < body; i++) {
		acc = (acc << 6 | (uint32_t)value_of((unsigned char)in[i],
						     alphabet)) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (unsigned char)(acc >> bits & 0xff);
		}
	}
	/* The bits of the last character that make no byte must be zero:
	 * otherwise several texts would decode to the same bytes. */
	if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
		OPENSSL_clear_free(buf, room);
		return refuse(why, why_size, "the last character has non-zero "
			      "unused bits");
	}
	*out = buf;
	*out_len = o;
	return 0;
}

char *
custody_base64url_encode(const unsigned char *in, size_t len)
{
	return custody_base64_encode(in, len, CUSTODY_BASE64URL);
}

int
custody_base64url_decode(const char *in, size_t len, unsigned char **out,
			 size_t *out_len)
{
	return custody_base64_decode(in, len, CUSTODY_BASE64URL, out, out_len,
				     NULL, 0);
}
