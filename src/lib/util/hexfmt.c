/* util/hexfmt.c — hex encoding of byte strings. */
#include "config.h"

#include <string.h>

#include <custody/hexfmt.h>

void
custody_hex_encode(const unsigned char *in, size_t len, char *out, int upper)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * len] = '\0';
}

int
custody_hex_is_exact(const char *s, size_t len, size_t n, int upper)
{
	size_t i;

	if (len != n)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= '0' && c <= '9') ||
		      (upper ? (c >= 'A' && c <= 'F') : (c >= 'a' && c <= 'f'))))
			return 0;
	}
	return 1;
}

int
custody_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

long
custody_hex_decode(const char *in, unsigned char *out, size_t max)
{
	size_t len = strlen(in), i;

	if (len % 2 != 0 || len / 2 > max)
		return -1;
	for (i = 0; i < len / 2; i++) {
		int hi = custody_hex_digit(in[2 * i]);
		int lo = custody_hex_digit(in[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return (long)(len / 2);
}
