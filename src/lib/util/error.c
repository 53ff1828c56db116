/* util/error.c — the one error idiom (see custody/error.h); the C library
 * only (custody_err_openssl is in error_openssl.c), so that the fast
 * `custody sign` links it without libcrypto. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <custody/error.h>

static void
vformat(char *buf, size_t size, const char *fmt, va_list ap)
{
	int n = vsnprintf(buf, size, fmt, ap);

	if (n < 0)
		buf[0] = '\0';
}

/* A fresh error: code and message, no hint, no PKCS#11 return value. */
static void
vset(custody_err *err, int code, const char *fmt, va_list ap)
{
	err->code = code;
	err->hint[0] = '\0';
	err->ckr = 0;
	vformat(err->msg, sizeof(err->msg), fmt, ap);
}

int
custody_err_set(custody_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	va_start(ap, fmt);
	vset(err, code, fmt, ap);
	va_end(ap);
	return code;
}

int
custody_err_hint(custody_err *err, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return CUSTODY_EFAIL;
	va_start(ap, fmt);
	vformat(err->hint, sizeof(err->hint), fmt, ap);
	va_end(ap);
	return err->code;
}

int
custody_err_prefix(custody_err *err, const char *fmt, ...)
{
	va_list ap;
	char prefix[512];
	size_t plen, mlen;

	if (err == NULL)
		return CUSTODY_EFAIL;
	va_start(ap, fmt);
	vformat(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	/* "PREFIX: MESSAGE", the message cut where the buffer ends. */
	plen = strlen(prefix);
	if (plen + 2 >= sizeof(err->msg))
		plen = sizeof(err->msg) - 3;
	mlen = strnlen(err->msg, sizeof(err->msg) - 1);
	if (plen + 2 + mlen >= sizeof(err->msg))
		mlen = sizeof(err->msg) - 1 - plen - 2;
	memmove(err->msg + plen + 2, err->msg, mlen);
	memcpy(err->msg, prefix, plen);
	err->msg[plen] = ':';
	err->msg[plen + 1] = ' ';
	err->msg[plen + 2 + mlen] = '\0';
	return err->code;
}

void
custody_err_clear(custody_err *err)
{
	if (err == NULL)
		return;
	err->code = CUSTODY_OK;
	err->ckr = 0;
	err->msg[0] = '\0';
	err->hint[0] = '\0';
}

int
custody_err_exit_status(int code)
{
	switch (code) {
	case CUSTODY_OK:
		return 0;
	case CUSTODY_EUSAGE:
		return 2;
	case CUSTODY_ENOTFOUND:
		return 3;
	default:
		return 1;
	}
}
