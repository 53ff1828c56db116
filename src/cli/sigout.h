/*
 * sigout.h — the input and output of `custody sign`, shared by the full
 * command (cmd_sign.c) and the launcher's agent path (fast_sign.c) so that
 * both read, refuse and write alike: the C library only.
 */
#ifndef CUSTODY_CLI_SIGOUT_H
#define CUSTODY_CLI_SIGOUT_H

#include <stddef.h>

#include <custody/error.h>

/* Called with each piece of the input in turn; nonzero stops the read
 * (the caller's hash failed: it has set err). */
typedef int (*sig_input_fn)(void *ctx, const unsigned char *piece,
			    size_t len, custody_err *err);

/* Reads path (NULL: standard input) whole, in pieces, into fn.  EFAIL
 * "cannot open PATH: WHY" / "cannot read NAME: WHY", or fn's error. */
int sig_read_input(const char *path, sig_input_fn fn, void *ctx,
		   custody_err *err);

/* EFAIL when path (--out) exists: checked before anything is read or
 * opened, since an existing file is never overwritten. */
int sig_refuse_existing(const char *path, custody_err *err);

/* The signature to a new file path (0644: it is public), or to standard
 * output for NULL.  A file left half-written is removed. */
int sig_write(const char *path, const unsigned char *sig, size_t len,
	      custody_err *err);

#endif
