/*
 * custody/secret.h — PINs and passwords, from where they may come.
 *
 * Sources (RFC 7512 pin-source style): "file:PATH" (trailing CR/LF
 * stripped; a warning when the file is readable by group or others),
 * "env:VAR", "fd:N" (read to EOF or the first newline), "prompt" (no echo,
 * from /dev/tty; EFAIL when there is no terminal).  There is deliberately
 * no source that takes the value itself.
 *
 * What follows a source's prefix is never repeated in an error message or
 * a warning (it may be the secret, typed in the wrong place); neither is
 * a source without a known prefix.  Messages name the kind of source.
 * An env: variable is read with secure_getenv().
 *
 * A custody_secret owns its buffer; custody_secret_clear() cleanses and
 * frees it.  Secrets are at most 1023 bytes.
 */
#ifndef CUSTODY_SECRET_H
#define CUSTODY_SECRET_H

#include <stddef.h>
#include <custody/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct custody_secret {
	char *data;	/* NUL-terminated; NULL when empty/unset */
	size_t len;
} custody_secret;

/* Reads the secret named by source.  prompt is the text shown for
 * "prompt" ("User PIN for token demo: ").  A malformed source is EUSAGE
 * naming the accepted forms; an unreadable one is EFAIL. */
int custody_secret_read(const char *source, const char *prompt,
			custody_secret *out, custody_err *err);

/* Checks the form of source without reading it (EUSAGE if malformed). */
int custody_secret_source_check(const char *source, custody_err *err);

void custody_secret_clear(custody_secret *s);

#ifdef __cplusplus
}
#endif
#endif
