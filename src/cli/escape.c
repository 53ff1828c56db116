/*
 * escape.c — the escaping of terminal text and the printing of an error
 * (see escape.h): the C library only, shared by the launcher and the full
 * command so that both print alike.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"

/* Length of the UTF-8 sequence at s (1..4) when it is a valid one that is
 * not a C1 control character (U+0080..U+009F); 0 otherwise. */
static size_t
utf8_printable(const unsigned char *s)
{
	size_t n, i;
	unsigned long cp;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
		return 0;
	return n;
}

char *
out_escape(char *dst, size_t size, const char *src)
{
	const unsigned char *s = (const unsigned char *)(src != NULL ? src : "");
	size_t o = 0, n;
	char esc[5];

	if (size == 0)
		return dst;
	while (*s != '\0') {
		if (*s >= 0x20 && *s < 0x7f) {
			if (o + 1 >= size)
				break;
			dst[o++] = (char)*s++;
			continue;
		}
		if ((n = utf8_printable(s)) > 0) {
			if (o + n >= size)
				break;
			memcpy(dst + o, s, n);
			o += n;
			s += n;
			continue;
		}
		/* A control character (C0, DEL, C1) or a byte that is not
		 * UTF-8: shown as \xHH, never sent as it is. */
		snprintf(esc, sizeof(esc), "\\x%02x", *s);
		if (o + 4 >= size)
			break;
		memcpy(dst + o, esc, 4);
		o += 4;
		s++;
	}
	dst[o] = '\0';
	return dst;
}

/* out_safe's buffers: enough for the arguments of one printf. */
#define SAFE_SLOTS 16
static char *safe_slot[SAFE_SLOTS];
static size_t safe_next;

const char *
out_safe(const char *src)
{
	size_t need = 4 * strlen(src != NULL ? src : "") + 1;
	char *buf = malloc(need);

	if (buf == NULL)
		return "(out of memory)";
	free(safe_slot[safe_next]);
	safe_slot[safe_next] = buf;
	safe_next = (safe_next + 1) % SAFE_SLOTS;
	return out_escape(buf, need, src);
}

void
out_release(void)
{
	size_t i;

	for (i = 0; i < SAFE_SLOTS; i++) {
		free(safe_slot[i]);
		safe_slot[i] = NULL;
	}
}

void
out_report_error(const char *cmd, const custody_err *err)
{
	/* Messages may carry store, token or certificate text. */
	fprintf(stderr, "custody: %s: %s\n", cmd,
		err->msg[0] != '\0' ? out_safe(err->msg) : "failed");
	if (err->hint[0] != '\0')
		fprintf(stderr, "hint: %s\n", out_safe(err->hint));
	if (err->code == CUSTODY_EUSAGE && err->hint[0] == '\0')
		fprintf(stderr, "see: custody %s --help\n", cmd);
}
