/*
 * custody/hexfmt.h — hex encoding of byte strings.
 */
#ifndef CUSTODY_HEXFMT_H
#define CUSTODY_HEXFMT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Writes 2*len hex digits and a NUL into out (size >= 2*len+1). */
void custody_hex_encode(const unsigned char *in, size_t len, char *out,
			int upper);

/* 1 when s[0..len) is exactly n hex digits of one case (0-9 and A-F when
 * upper, 0-9 and a-f otherwise), else 0. */
int custody_hex_is_exact(const char *s, size_t len, size_t n, int upper);

/* The value of one hex digit (either case), or -1 if c is not one. */
int custody_hex_digit(char c);

/* Decodes an even-length hex string (either case) into out (at most
 * max bytes); returns the number of bytes, or -1 on a bad digit, odd
 * length or overflow. */
long custody_hex_decode(const char *in, unsigned char *out, size_t max);

#ifdef __cplusplus
}
#endif
#endif
